"""Accounts: registration with proof of possession, the public account record, and device-list
replacement with a compare-and-swap on the serial.

A device list is accepted only if the account identity key signed it (``verify_device_list``);
registration further requires that it lists exactly one device and that this device signs the
request (the route checks that signature with :attr:`Registration.device_key`), so whoever
registers holds both keys. A replacement must be signed by the same account key and carry a
larger serial; devices it drops lose authentication at once (their keys leave the store in the
same swap), their connections are told to close, and their one-time prekeys and mailboxes are
drained in the background by :class:`DeviceCleanup` (the storage API has no bulk delete; the
signed and last-resort prekeys of a removed device stay stored but unreachable, because
bundles are built only for listed devices).

Every registration and every accepted replacement is published to the key directory
(:class:`~overt.server.directory.KeyDirectory`: a key-directory entry in the transparency log)
in the same request, before the answer, while holding the account's directory lock so that the
log lists one account's serials in order.

This service knows the signed device list of :mod:`overt.wire` and its check in
:mod:`overt.protocol`; it knows no HTTP, no SQL and no clock.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from overt.errors import ProtocolViolation
from overt.protocol import verify_device_list
from overt.server import notify
from overt.server.directory import KeyDirectory
from overt.server.errors import Forbidden
from overt.server.limits import INT64_MAX
from overt.server.notify import Notifier
from overt.server.prekeys import PrekeyService, verify_upload
from overt.storage import (
    AccountRecord,
    AccountStore,
    DeviceAuth,
    MailboxStore,
    NotFound,
    OneTimeKind,
    PrekeyStore,
)
from overt.wire import Address, DeviceList, SignedDeviceList

_log = logging.getLogger("overt.server")

CLEANUP_PAGE: Final = 500
"""Mail ids fetched and acknowledged per step when draining a removed device's mailbox."""


@dataclass(frozen=True, slots=True)
class Registration:
    """A registration whose device list verified under its account key; the request must
    still be verified under :attr:`device_key` before :meth:`AccountService.register`."""

    signed_device_list: bytes
    device_list: DeviceList

    @property
    def device(self) -> Address:
        return Address(self.device_list.account, self.device_list.devices[0].device)

    @property
    def device_key(self) -> bytes:
        """The key the registration request must be signed with."""
        return self.device_list.devices[0].identity_sign


def _check_list(dl: DeviceList, account: bytes) -> None:
    if dl.account != account:
        raise ProtocolViolation("the device list names another account than the request")
    if not dl.devices:
        raise ProtocolViolation("a device list lists at least one device")
    if dl.serial > INT64_MAX:
        raise ProtocolViolation(f"a device-list serial is at most {INT64_MAX}")


def _devices(dl: DeviceList) -> tuple[DeviceAuth, ...]:
    return tuple(DeviceAuth(d.device, d.identity_sign) for d in dl.devices)


class DeviceCleanup:
    """Drains the one-time prekeys and the mailbox of removed devices, in background tasks."""

    def __init__(
        self, accounts: AccountStore, prekeys: PrekeyStore, mailboxes: MailboxStore
    ) -> None:
        self._accounts = accounts
        self._prekeys = prekeys
        self._mailboxes = mailboxes
        self._tasks: set[asyncio.Task[None]] = set()

    def schedule(self, account: bytes, devices: tuple[int, ...]) -> None:
        if not devices:
            return
        task = asyncio.get_running_loop().create_task(self._run(account, devices))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait(self) -> None:
        """Until every scheduled cleanup has finished (for shutdown and tests)."""
        while self._tasks:
            await asyncio.wait(tuple(self._tasks))

    async def _still_removed(self, account: bytes, device: int) -> bool:
        listed = await self._accounts.list_devices(account)
        return listed is None or device not in listed

    async def _run(self, account: bytes, devices: tuple[int, ...]) -> None:
        try:
            for device in devices:
                await self._drain(account, device)
        except Exception as e:  # a background task has no caller to raise to
            _log.warning("device cleanup stopped", extra={"fields": {"cause": type(e).__name__}})

    async def _drain(self, account: bytes, device: int) -> None:
        for kind in OneTimeKind:
            drained = False
            while not drained and await self._still_removed(account, device):
                for _ in range(CLEANUP_PAGE):
                    if await self._prekeys.take_one_time(account, device, kind) is None:
                        drained = True
                        break
        while await self._still_removed(account, device):
            page = await self._mailboxes.fetch(account, device, 0, CLEANUP_PAGE)
            if not page:
                break
            await self._mailboxes.ack(account, device, [m.id for m in page])


class AccountService:
    """Registration, account records and device lists."""

    def __init__(
        self,
        accounts: AccountStore,
        prekeys: PrekeyService,
        cleanup: DeviceCleanup,
        notifier: Notifier,
        directory: KeyDirectory,
    ) -> None:
        self._accounts = accounts
        self._prekeys = prekeys
        self._cleanup = cleanup
        self._notifier = notifier
        self._directory = directory

    @staticmethod
    def check_registration(
        signer: Address, account: bytes, signed_device_list: bytes
    ) -> Registration:
        """Decode and verify a new account's device list, and that ``signer`` (the device the
        request headers claim) is its only device. Cheap on purpose: the request signature
        is checked next, before any prekey signature costs the server work."""
        dl = verify_device_list(SignedDeviceList.decode(signed_device_list))
        _check_list(dl, account)
        if len(dl.devices) != 1:
            raise ProtocolViolation("a new account's device list lists exactly one device")
        if signer != Address(dl.account, dl.devices[0].device):
            raise ProtocolViolation("the new account's only device must sign the request")
        return Registration(signed_device_list, dl)

    async def register(
        self,
        registration: Registration,
        *,
        signed_prekey: bytes | None,
        last_resort_kem: bytes | None,
        one_time: Sequence[bytes],
        kem_one_time: Sequence[bytes],
    ) -> Address:
        """Verify the device's prekeys, create the account (``AlreadyExists`` if taken) and
        publish it to the key directory, then store the prekeys."""
        if signed_prekey is None or last_resort_kem is None:
            raise ProtocolViolation(
                "a new device uploads a signed prekey and a last-resort ML-KEM prekey"
            )
        verified = verify_upload(
            registration.device_key,
            signed_prekey=signed_prekey,
            last_resort_kem=last_resort_kem,
            one_time=one_time,
            kem_one_time=kem_one_time,
        )
        dl = registration.device_list
        async with self._directory.locked(dl.account):
            await self._accounts.create(
                AccountRecord(
                    dl.account,
                    dl.account_key,
                    registration.signed_device_list,
                    dl.serial,
                    _devices(dl),
                )
            )
            await self._directory.publish(
                dl.account, dl.account_key, dl.serial, registration.signed_device_list
            )
        await self._prekeys.store(registration.device, verified)
        return registration.device

    async def get(self, account: bytes) -> AccountRecord:
        record = await self._accounts.get(account)
        if record is None:
            raise NotFound("no account with this id")
        return record

    async def replace_devices(
        self,
        requester: Address,
        account: bytes,
        signed_device_list: bytes,
        expected_serial: int,
    ) -> int:
        """Swap in a new device list signed by the account key; returns its serial.

        ``Forbidden`` for another account's list, ``StaleSerial`` if the stored serial is not
        ``expected_serial`` or the new one is not larger.
        """
        if requester.account != account:
            raise Forbidden("a device may change only its own account's device list")
        record = await self.get(account)
        dl = verify_device_list(SignedDeviceList.decode(signed_device_list), record.identity_key)
        _check_list(dl, account)
        before = {d.device: d.signing_key for d in record.devices}
        for entry in dl.devices:
            key = before.get(entry.device)
            if key is not None and key != entry.identity_sign:
                raise ProtocolViolation(
                    f"device {entry.device} is listed with other keys than before: "
                    "give a new device a new id"
                )
        async with self._directory.locked(account):
            await self._accounts.replace_device_list(
                account,
                expected_serial=expected_serial,
                serial=dl.serial,
                device_list=signed_device_list,
                devices=_devices(dl),
            )
            await self._directory.publish(account, dl.account_key, dl.serial, signed_device_list)
        removed = tuple(sorted(set(before) - {d.device for d in dl.devices}))
        for device in removed:
            await self._notifier.notify(Address(account, device), notify.REVOKED)
        self._cleanup.schedule(account, removed)
        return dl.serial
