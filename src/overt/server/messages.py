"""Messages: sending (with the stale-device-set check and reporting tags), fetching and
acknowledging.

A send carries one envelope per recipient device. The service checks that every envelope was
made by the authenticated device and is addressed to a listed device, exactly one per listed
device, and that the listed devices are each account's current devices (the sender's own
account: all but the sending device) — otherwise :class:`~overt.server.errors.StaleDevices`
with the current lists. Then every copy is stored in one transaction; the reporting tag of each
(DESIGN.md §5, :func:`overt.protocol.franking.reporting_tag`) is computed inside that
transaction from the server message id the store assigns, under the server's franking key.
Wake-ups are published only after the commit, one per recipient device, each carrying the
stored mail (:func:`overt.server.notify.mail_hint`) so that a connection can pass it on
without reading the mailbox. Both steps are :mod:`overt.server.fanout`, which group sends
share.

The device sets come from :meth:`~overt.storage.AccountStore.list_devices`, which the server
answers from a per-node cache (:mod:`overt.server.cache`); a set that differs from the listed
devices is read again from the store before the send is refused, so a stale cache never causes
a ``409``. The device-set check and the enqueue are two steps: a device list replaced in between
(or, through another node, up to :data:`~overt.server.cache.DEVICE_CACHE_TTL_S` before the
check) lets one send reach the devices listed when it was checked (the next send is refused as
stale).

This service knows envelopes and franking; it knows no HTTP, no SQL, and reads time only from
the injected clock. It is given the account store (read only), the mailbox store and the
notifier.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from overt.server.auth import Clock
from overt.server.codec import b64encode
from overt.server.errors import CurrentDevices, Mismatch, StaleDevices
from overt.server.fanout import notify_stored, store_tagged
from overt.server.notify import Notifier
from overt.server.signals import SignalService

if TYPE_CHECKING:
    from overt.server.lawful import LawfulAccess
from overt.storage import AccountStore, Mail, MailboxStore, NewMail, NotFound
from overt.wire import Address, Envelope


def _others(account: bytes, devices: Sequence[int], sender: Address) -> list[int]:
    """``account``'s devices that a send by ``sender`` must address, sorted."""
    return sorted(d for d in devices if Address(account, d) != sender)


@dataclass(frozen=True, slots=True)
class Sent:
    ids: tuple[int, ...]
    server_time: int


@dataclass(frozen=True, slots=True)
class Page:
    mail: tuple[Mail, ...]
    more: bool


class MessageService:
    """Send, fetch, acknowledge."""

    def __init__(
        self,
        accounts: AccountStore,
        mailboxes: MailboxStore,
        notifier: Notifier,
        franking_key: bytes,
        clock: Clock,
        signals: SignalService | None = None,
        lawful: LawfulAccess | None = None,
    ) -> None:
        self._accounts = accounts
        self._mailboxes = mailboxes
        self._notifier = notifier
        self._franking_key = franking_key
        self._clock = clock
        self._signals = signals
        self._lawful = lawful

    @staticmethod
    def _match(
        sender: Address, recipients: Mapping[bytes, Sequence[int]], envelopes: Sequence[bytes]
    ) -> list[Envelope]:
        listed: set[Address] = set()
        for account, devices in recipients.items():
            if len(set(devices)) != len(devices):
                raise Mismatch("a device is listed twice for one account in 'recipients'")
            listed.update(Address(account, d) for d in devices)
        if sender in listed:
            raise Mismatch("the sending device does not send to itself: leave it out")
        decoded: list[Envelope] = []
        addressed: set[Address] = set()
        for i, data in enumerate(envelopes):
            envelope = Envelope.decode(data)
            if envelope.sender != sender:
                raise Mismatch(f"envelope {i} was not made by the device that signed the request")
            if envelope.recipient not in listed:
                raise Mismatch(f"envelope {i} is addressed to a device not listed in 'recipients'")
            if envelope.recipient in addressed:
                raise Mismatch(f"envelope {i} is a second envelope for the same device")
            addressed.add(envelope.recipient)
            decoded.append(envelope)
        if addressed != listed:
            raise Mismatch("send exactly one envelope to every device listed in 'recipients'")
        return decoded

    async def _check_current(
        self, sender: Address, recipients: Mapping[bytes, Sequence[int]]
    ) -> None:
        stale: dict[str, CurrentDevices] = {}
        for account in sorted({*recipients, sender.account}):
            listed = sorted(recipients.get(account, ()))
            known = await self._accounts.list_devices(account)  # may come from a cache
            if known is not None and listed == _others(account, known, sender):
                continue
            record = await self._accounts.get(account)  # never refuse from a cached answer
            if record is None:
                raise NotFound("a recipient account does not exist")
            current = [d.device for d in record.devices]
            if listed != _others(account, current, sender):
                stale[b64encode(account)] = CurrentDevices(
                    record.serial, tuple(current), b64encode(record.device_list)
                )
        if stale:
            raise StaleDevices(stale)

    async def send(
        self,
        sender: Address,
        recipients: Mapping[bytes, Sequence[int]],
        envelopes: Sequence[bytes],
    ) -> Sent:
        """Check and store one message for every listed device; returns the server ids."""
        decoded = self._match(sender, recipients, envelopes)
        await self._check_current(sender, recipients)
        commitments = {e.recipient: e.franking_commitment for e in decoded}
        batch = [
            NewMail(e.recipient.account, e.recipient.device, sender.account, sender.device, data)
            for e, data in zip(decoded, envelopes, strict=True)
        ]
        server_time = self._clock()
        stored = await store_tagged(
            self._mailboxes, self._franking_key, sender, batch, server_time, commitments.__getitem__
        )
        if self._lawful is not None:  # copies only what a live, logged warrant covers
            await self._lawful.intercept(batch, stored.ids, server_time)
        await notify_stored(self._notifier, batch, stored, server_time)
        if self._signals is not None:  # metadata-only abuse signals; never fails the send
            await self._signals.observe_send(
                sender, recipients, [len(e) for e in envelopes], server_time
            )
        return Sent(stored.ids, server_time)

    async def fetch(self, device: Address, after: int, limit: int) -> Page:
        """Up to ``limit`` pending messages after id ``after``, and whether more wait."""
        found = await self._mailboxes.fetch(device.account, device.device, after, limit + 1)
        return Page(found[:limit], len(found) > limit)

    async def ack(self, device: Address, ids: Sequence[int]) -> int:
        """Remove acknowledged messages from the device's mailbox; returns how many."""
        return await self._mailboxes.ack(device.account, device.device, ids)

    async def depth(self, device: Address) -> int:
        return await self._mailboxes.depth(device.account, device.device)
