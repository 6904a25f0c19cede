"""The storage contract: one small Protocol per kind of thing, the records they exchange, and
:class:`Storage`, which bundles one store of each kind with the means to close them.

The relay server stores what clients upload as *opaque bytes*: signed device lists, public
prekeys, ciphertext envelopes, encrypted attachments. This layer must not know how any of them
is encoded, signed or encrypted; it never imports :mod:`overt.protocol`, :mod:`overt.server` or
:mod:`overt.client`. It knows only the identifiers it indexes by — an account id (bytes), a
device id (uint32), prekey ids (uint32), server message ids it assigns, blob ids chosen by
callers — and the bounds of :mod:`overt.storage.limits`.

Conventions every backend follows, and ``tests/storage/test_contract.py`` checks:

* Every operation is a coroutine and is atomic: it happens entirely or not at all, also when
  several callers (tasks, threads, processes on one SQLite file) race.
* ``None`` means absent; an exception means failure (see :mod:`overt.storage.errors`).
* Server times and ids are plain integers supplied by the caller or assigned by the store;
  the store never reads a clock or draws randomness.
* Records are frozen; ``repr`` leaves out envelopes, reporting tags and blob contents.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import TracebackType
from typing import Protocol, Self

# ----------------------------------------------------------------------------- records


class OneTimeKind(StrEnum):
    """The two pools of one-time prekeys a device publishes (stored as these strings)."""

    X25519 = "x25519"
    ML_KEM_768 = "ml-kem-768"


@dataclass(frozen=True, slots=True)
class PrekeyRecord:
    """A public prekey as the device uploaded it: its id and its opaque encoding."""

    id: int
    data: bytes


@dataclass(frozen=True, slots=True)
class DeviceAuth:
    """A device of an account and the public key its requests are signed with."""

    device: int
    signing_key: bytes


@dataclass(frozen=True, slots=True)
class AccountRecord:
    """An account: identity key, the signed device list with its serial, the devices' auth keys.

    ``devices`` is sorted by device id when it comes out of a store.
    """

    account_id: bytes
    identity_key: bytes
    device_list: bytes
    serial: int
    devices: tuple[DeviceAuth, ...]


@dataclass(frozen=True, slots=True)
class NewMail:
    """One envelope to enqueue for one recipient device."""

    recipient_account: bytes
    recipient_device: int
    sender_account: bytes
    sender_device: int
    envelope: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class Mail:
    """One stored envelope, as fetched by its recipient device."""

    id: int
    recipient_account: bytes
    recipient_device: int
    sender_account: bytes
    sender_device: int
    server_time: int
    envelope: bytes = field(repr=False)
    reporting_tag: bytes = field(repr=False)


ReportingTagger = Callable[[int, NewMail], bytes]
"""Computes an item's reporting tag from the server message id the store assigned to it.

Called inside the enqueue transaction (on the backend's worker thread for SQLite), once per
item, in order. It must be a quick, pure function: no I/O, no event loop. If it raises, the
enqueue stores nothing and the exception propagates unchanged.
"""

# ----------------------------------------------------------------------------- stores


class AccountStore(Protocol):
    """Accounts, their signed device lists (compare-and-swap on the serial) and auth keys."""

    async def create(self, account: AccountRecord) -> None:
        """Store a new account. Raises ``AlreadyExists`` if the id is taken."""
        ...

    async def get(self, account_id: bytes) -> AccountRecord | None:
        """The account, or ``None``."""
        ...

    async def replace_device_list(
        self,
        account_id: bytes,
        *,
        expected_serial: int,
        serial: int,
        device_list: bytes,
        devices: Sequence[DeviceAuth],
    ) -> None:
        """Swap in a new signed device list and the new set of device auth keys.

        Succeeds only if the stored serial equals ``expected_serial`` and ``serial`` is greater;
        otherwise raises ``StaleSerial`` and changes nothing. ``NotFound`` if no such account.
        """
        ...

    async def device_auth_key(self, account_id: bytes, device: int) -> bytes | None:
        """The device's request-signing key, or ``None`` if account or device is unknown."""
        ...

    async def list_devices(self, account_id: bytes) -> tuple[int, ...] | None:
        """The account's device ids in ascending order, or ``None`` if the account is unknown."""
        ...


class PrekeyStore(Protocol):
    """Each device's published prekeys: one signed prekey, one last-resort ML-KEM prekey, and
    two pools of one-time prekeys (:class:`OneTimeKind`) that are handed out at most once."""

    async def set_signed_prekey(self, account_id: bytes, device: int, prekey: PrekeyRecord) -> None:
        """Store or replace the device's signed prekey."""
        ...

    async def get_signed_prekey(self, account_id: bytes, device: int) -> PrekeyRecord | None:
        """The device's signed prekey, or ``None``."""
        ...

    async def set_last_resort_kem(
        self, account_id: bytes, device: int, prekey: PrekeyRecord
    ) -> None:
        """Store or replace the device's last-resort ML-KEM prekey."""
        ...

    async def get_last_resort_kem(self, account_id: bytes, device: int) -> PrekeyRecord | None:
        """The device's last-resort ML-KEM prekey, or ``None``."""
        ...

    async def add_one_time(
        self, account_id: bytes, device: int, kind: OneTimeKind, prekeys: Sequence[PrekeyRecord]
    ) -> None:
        """Add a batch to a pool, all or nothing.

        ``AlreadyExists`` if an id repeats (in the batch or in the pool); ``LimitExceeded`` if the
        pool would exceed ``StorageLimits.one_time_prekeys``.
        """
        ...

    async def take_one_time(
        self, account_id: bytes, device: int, kind: OneTimeKind
    ) -> PrekeyRecord | None:
        """Remove and return the pool's prekey with the lowest id, or ``None`` if it is empty.

        Each stored prekey is returned to exactly one caller, however many race.
        """
        ...

    async def count_one_time(self, account_id: bytes, device: int, kind: OneTimeKind) -> int:
        """How many prekeys remain in the pool."""
        ...


class MailboxStore(Protocol):
    """Durable per-device mailboxes of envelopes awaiting acknowledgement."""

    async def enqueue(
        self, batch: Sequence[NewMail], server_time: int, tag: ReportingTagger
    ) -> tuple[int, ...]:
        """Store every item of ``batch`` in one transaction, all or nothing.

        Returns the server message id assigned to each item, in batch order. Ids are unique
        across all mailboxes, never reused, and increase in commit order, so a device that has
        seen id ``n`` misses nothing by fetching after ``n``. ``tag`` computes each item's
        reporting tag from its id (see :data:`ReportingTagger`). ``LimitExceeded`` if any
        recipient device's mailbox would exceed ``StorageLimits.mailbox_depth``.
        """
        ...

    async def fetch(
        self, account_id: bytes, device: int, after_id: int, limit: int
    ) -> tuple[Mail, ...]:
        """Up to ``limit`` pending items with ids greater than ``after_id``, in id order."""
        ...

    async def ack(self, account_id: bytes, device: int, ids: Collection[int]) -> int:
        """Remove these items from the device's mailbox; returns how many were removed.

        Ids that are unknown, already acknowledged or addressed to another device are ignored.
        """
        ...

    async def depth(self, account_id: bytes, device: int) -> int:
        """How many items are pending for the device."""
        ...


class BlobStore(Protocol):
    """Encrypted attachments under random ids chosen by the uploader."""

    async def put(self, blob_id: bytes, data: bytes) -> None:
        """Store a blob. ``AlreadyExists`` if the id is taken; ``LimitExceeded`` if too large."""
        ...

    async def get(self, blob_id: bytes) -> bytes | None:
        """The blob, or ``None``."""
        ...

    async def delete(self, blob_id: bytes) -> bool:
        """Remove a blob; ``True`` if it existed."""
        ...


# ----------------------------------------------------------------------------- the bundle


@dataclass(frozen=True, slots=True)
class Storage:
    """One store of each kind over one backend. Close it once; any call after that raises
    ``StorageUnavailable``. Usable as ``async with``."""

    accounts: AccountStore
    prekeys: PrekeyStore
    mailboxes: MailboxStore
    blobs: BlobStore
    _close: Callable[[], Awaitable[None]] = field(repr=False)

    async def close(self) -> None:
        """Wait for operations in flight, then release the backend. Idempotent."""
        await self._close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
