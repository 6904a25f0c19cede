"""The in-memory reference backend: plain dicts, one event loop, nothing durable.

It is the executable statement of the contract in :mod:`overt.storage.interfaces`: every other
backend must pass the same tests (``tests/storage/test_contract.py``). Each operation runs to
completion without awaiting anything, so on one event loop it is atomic by construction;
the stores are not meant to be shared between threads.

Like every backend, it stores opaque bytes and knows nothing of their encoding, of the protocol,
of SQL, clocks or randomness.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import replace

from overt.errors import LimitExceeded
from overt.storage import _checks
from overt.storage._groups_memory import MemoryGroupStore
from overt.storage._matching_memory import MemoryMatchingStore
from overt.storage._moderation_memory import (
    MemoryModeratorStore,
    MemoryReportStore,
    MemoryStandingStore,
)
from overt.storage.errors import (
    AlreadyExists,
    InvalidArgument,
    NotFound,
    StaleSerial,
    StorageConflict,
    StorageUnavailable,
)
from overt.storage.interfaces import (
    AccountRecord,
    DeviceAuth,
    EpochRecord,
    Intercept,
    KtRecord,
    LogLeaf,
    LogNode,
    Mail,
    NewIntercept,
    NewMail,
    OneTimeKind,
    PrekeyRecord,
    ReportingTagger,
    Storage,
    StoredCheckpoint,
    WarrantRecord,
    check_log_append,
    check_log_checkpoint,
    check_log_index,
    check_log_keys,
    check_log_position,
    check_log_range,
)
from overt.storage.limits import LIVE_WARRANTS_MAX, StorageLimits

_DeviceKey = tuple[bytes, int]


class _Lifetime:
    """Shared by the stores of one :class:`Storage`: refuses every call once closed."""

    __slots__ = ("closed",)

    def __init__(self) -> None:
        self.closed = False

    def check(self) -> None:
        if self.closed:
            raise StorageUnavailable("storage is closed")

    async def close(self) -> None:
        self.closed = True


class MemoryAccountStore:
    """:class:`~overt.storage.interfaces.AccountStore` in a dict."""

    def __init__(self, lifetime: _Lifetime) -> None:
        self._life = lifetime
        self._accounts: dict[bytes, AccountRecord] = {}

    async def create(self, account: AccountRecord) -> None:
        self._life.check()
        record = _checks.account(account)
        if record.account_id in self._accounts:
            raise AlreadyExists("an account with this id exists")
        self._accounts[record.account_id] = record

    async def get(self, account_id: bytes) -> AccountRecord | None:
        self._life.check()
        _checks.account_id(account_id)
        return self._accounts.get(account_id)

    async def replace_device_list(
        self,
        account_id: bytes,
        *,
        expected_serial: int,
        serial: int,
        device_list: bytes,
        devices: Sequence[DeviceAuth],
    ) -> None:
        self._life.check()
        _checks.account_id(account_id)
        _checks.serial(expected_serial)
        _checks.serial(serial)
        _checks.device_list(device_list)
        ordered = _checks.devices(devices)
        current = self._accounts.get(account_id)
        if current is None:
            raise NotFound("no account with this id")
        if current.serial != expected_serial or serial <= expected_serial:
            raise StaleSerial("the device list changed since it was read, or the serial is old")
        self._accounts[account_id] = AccountRecord(
            account_id, current.identity_key, device_list, serial, ordered
        )

    async def device_auth_key(self, account_id: bytes, device: int) -> bytes | None:
        self._life.check()
        _checks.device(account_id, device)
        record = self._accounts.get(account_id)
        if record is None:
            return None
        return next((d.signing_key for d in record.devices if d.device == device), None)

    async def list_devices(self, account_id: bytes) -> tuple[int, ...] | None:
        self._life.check()
        _checks.account_id(account_id)
        record = self._accounts.get(account_id)
        return None if record is None else tuple(d.device for d in record.devices)


class MemoryPrekeyStore:
    """:class:`~overt.storage.interfaces.PrekeyStore` in dicts."""

    def __init__(self, lifetime: _Lifetime, limits: StorageLimits) -> None:
        self._life = lifetime
        self._limits = limits
        self._signed: dict[_DeviceKey, PrekeyRecord] = {}
        self._last_resort: dict[_DeviceKey, PrekeyRecord] = {}
        self._pools: dict[tuple[bytes, int, OneTimeKind], dict[int, bytes]] = {}

    async def set_signed_prekey(self, account_id: bytes, device: int, prekey: PrekeyRecord) -> None:
        self._life.check()
        _checks.device(account_id, device)
        _checks.prekey(prekey)
        self._signed[(account_id, device)] = prekey

    async def get_signed_prekey(self, account_id: bytes, device: int) -> PrekeyRecord | None:
        self._life.check()
        _checks.device(account_id, device)
        return self._signed.get((account_id, device))

    async def set_last_resort_kem(
        self, account_id: bytes, device: int, prekey: PrekeyRecord
    ) -> None:
        self._life.check()
        _checks.device(account_id, device)
        _checks.prekey(prekey)
        self._last_resort[(account_id, device)] = prekey

    async def get_last_resort_kem(self, account_id: bytes, device: int) -> PrekeyRecord | None:
        self._life.check()
        _checks.device(account_id, device)
        return self._last_resort.get((account_id, device))

    async def add_one_time(
        self, account_id: bytes, device: int, kind: OneTimeKind, prekeys: Sequence[PrekeyRecord]
    ) -> None:
        self._life.check()
        _checks.device(account_id, device)
        _checks.kind(kind)
        _checks.one_time_batch(prekeys)
        pool = self._pools.get((account_id, device, kind), {})
        if len(pool) + len(prekeys) > self._limits.one_time_prekeys:
            raise LimitExceeded("too many one-time prekeys for this device")
        if any(p.id in pool for p in prekeys):
            raise AlreadyExists("a one-time prekey id is already stored")
        if prekeys:
            self._pools[(account_id, device, kind)] = pool
            pool.update((p.id, p.data) for p in prekeys)

    async def take_one_time(
        self, account_id: bytes, device: int, kind: OneTimeKind
    ) -> PrekeyRecord | None:
        self._life.check()
        _checks.device(account_id, device)
        _checks.kind(kind)
        pool = self._pools.get((account_id, device, kind))
        if not pool:
            return None
        key_id = min(pool)
        data = pool.pop(key_id)
        if not pool:
            del self._pools[(account_id, device, kind)]
        return PrekeyRecord(key_id, data)

    async def count_one_time(self, account_id: bytes, device: int, kind: OneTimeKind) -> int:
        self._life.check()
        _checks.device(account_id, device)
        _checks.kind(kind)
        return len(self._pools.get((account_id, device, kind), ()))


class MemoryMailboxStore:
    """:class:`~overt.storage.interfaces.MailboxStore` as one insertion-ordered dict per device."""

    def __init__(self, lifetime: _Lifetime, limits: StorageLimits) -> None:
        self._life = lifetime
        self._limits = limits
        self._last_id = 0
        self._boxes: dict[_DeviceKey, dict[int, Mail]] = {}

    async def enqueue(
        self, batch: Sequence[NewMail], server_time: int, tag: ReportingTagger
    ) -> tuple[int, ...]:
        self._life.check()
        _checks.mail_batch(batch, server_time)
        arriving = Counter((m.recipient_account, m.recipient_device) for m in batch)
        for key, n in arriving.items():
            if len(self._boxes.get(key, ())) + n > self._limits.mailbox_depth:
                raise LimitExceeded("a recipient device's mailbox is full")
        stored: list[Mail] = []
        for offset, m in enumerate(batch, start=1):
            server_id = self._last_id + offset
            reporting_tag = tag(server_id, m)
            _checks.reporting_tag(reporting_tag)
            stored.append(
                Mail(
                    server_id,
                    m.recipient_account,
                    m.recipient_device,
                    m.sender_account,
                    m.sender_device,
                    server_time,
                    m.envelope,
                    reporting_tag,
                    m.kind,
                )
            )
        for mail in stored:
            key = (mail.recipient_account, mail.recipient_device)
            self._boxes.setdefault(key, {})[mail.id] = mail
        self._last_id += len(stored)
        return tuple(mail.id for mail in stored)

    async def fetch(
        self, account_id: bytes, device: int, after_id: int, limit: int
    ) -> tuple[Mail, ...]:
        self._life.check()
        _checks.device(account_id, device)
        _checks.fetch(after_id, limit)
        found: list[Mail] = []
        for server_id, mail in self._boxes.get((account_id, device), {}).items():
            if server_id > after_id:
                found.append(mail)
                if len(found) == limit:
                    break
        return tuple(found)

    async def ack(self, account_id: bytes, device: int, ids: Collection[int]) -> int:
        self._life.check()
        _checks.device(account_id, device)
        wanted = _checks.ack_ids(ids)
        box = self._boxes.get((account_id, device))
        if box is None:
            return 0
        removed = sum(1 for i in wanted if box.pop(i, None) is not None)
        if not box:
            del self._boxes[(account_id, device)]
        return removed

    async def depth(self, account_id: bytes, device: int) -> int:
        self._life.check()
        _checks.device(account_id, device)
        return len(self._boxes.get((account_id, device), ()))


class MemoryBlobStore:
    """:class:`~overt.storage.interfaces.BlobStore` in a dict."""

    def __init__(self, lifetime: _Lifetime, limits: StorageLimits) -> None:
        self._life = lifetime
        self._limits = limits
        self._blobs: dict[bytes, bytes] = {}

    async def put(self, blob_id: bytes, data: bytes) -> None:
        self._life.check()
        _checks.blob(blob_id, data, self._limits.blob_size)
        if blob_id in self._blobs:
            raise AlreadyExists("a blob with this id exists")
        self._blobs[blob_id] = data

    async def get(self, blob_id: bytes) -> bytes | None:
        self._life.check()
        _checks.blob(blob_id)
        return self._blobs.get(blob_id)

    async def delete(self, blob_id: bytes) -> bool:
        self._life.check()
        _checks.blob(blob_id)
        return self._blobs.pop(blob_id, None) is not None


class MemoryLogStore:
    """:class:`~overt.storage.interfaces.LogStore` as one list per tree level.

    ``_levels[0]`` holds the leaf hashes and ``_levels[k]`` the hashes of the complete subtrees
    of level ``k`` in index order; the subtrees an append completes are always the next ones of
    each level, so every level only ever grows at its end.
    """

    def __init__(self, lifetime: _Lifetime) -> None:
        self._life = lifetime
        self._data: list[bytes] = []
        self._levels: list[list[bytes]] = [[]]
        self._checkpoints: dict[int, bytes] = {}
        self._latest: int | None = None

    async def append(
        self, expected_size: int, leaves: Sequence[LogLeaf], nodes: Collection[LogNode]
    ) -> int:
        self._life.check()
        new_size = check_log_append(expected_size, leaves, nodes)
        if expected_size != len(self._data):
            raise StorageConflict("the log grew since its size was read")
        # Validation is complete, so nothing below can fail half-way.
        self._data.extend(leaf.data for leaf in leaves)
        self._levels[0].extend(leaf.hash for leaf in leaves)
        for node in sorted(nodes, key=lambda n: (n.level, n.index)):
            while node.level >= len(self._levels):
                self._levels.append([])
            self._levels[node.level].append(node.hash)
        return new_size

    async def size(self) -> int:
        self._life.check()
        return len(self._data)

    def _hash(self, level: int, index: int) -> bytes | None:
        if level < len(self._levels) and index < len(self._levels[level]):
            return self._levels[level][index]
        return None

    async def hash_at(self, level: int, index: int) -> bytes | None:
        self._life.check()
        check_log_position(level, index)
        return self._hash(level, index)

    async def hashes(self, keys: Sequence[tuple[int, int]]) -> tuple[bytes | None, ...]:
        self._life.check()
        check_log_keys(keys)
        return tuple(self._hash(level, index) for level, index in keys)

    async def leaf(self, index: int) -> bytes | None:
        self._life.check()
        check_log_index(index)
        return self._data[index] if index < len(self._data) else None

    async def leaves(self, start: int, end: int) -> tuple[bytes, ...]:
        self._life.check()
        check_log_range(start, end)
        return tuple(self._data[start:end])

    async def set_checkpoint(self, size: int, checkpoint: bytes) -> None:
        self._life.check()
        check_log_checkpoint(size, checkpoint)
        if size > len(self._data):
            raise InvalidArgument("a checkpoint cannot cover leaves the log does not hold")
        if self._latest is not None and size < self._latest and size not in self._checkpoints:
            raise StorageConflict("a checkpoint of a larger tree is stored already")
        self._checkpoints[size] = checkpoint
        self._latest = max(size, self._latest or 0)

    async def get_checkpoint(self) -> StoredCheckpoint | None:
        self._life.check()
        if self._latest is None:
            return None
        return StoredCheckpoint(self._latest, self._checkpoints[self._latest])

    async def checkpoint_at(self, size: int) -> bytes | None:
        self._life.check()
        check_log_checkpoint(size)
        return self._checkpoints.get(size)


class MemoryKtStore:
    """:class:`~overt.storage.interfaces.KtStore` as one dict of records per account."""

    def __init__(self, lifetime: _Lifetime) -> None:
        self._life = lifetime
        self._records: dict[bytes, dict[int, KtRecord]] = {}

    async def add(self, account_id: bytes, record: KtRecord) -> None:
        self._life.check()
        _checks.kt_record(account_id, record)
        records = self._records.setdefault(account_id, {})
        if record.serial in records:
            raise AlreadyExists("a key-directory record of this serial exists")
        records[record.serial] = record

    async def latest(self, account_id: bytes) -> KtRecord | None:
        self._life.check()
        _checks.account_id(account_id)
        records = self._records.get(account_id)
        return None if not records else records[max(records)]


class MemoryWarrantStore:
    """:class:`~overt.storage.interfaces.WarrantStore` in a dict."""

    def __init__(self, lifetime: _Lifetime) -> None:
        self._life = lifetime
        self._warrants: dict[bytes, WarrantRecord] = {}

    async def add(self, record: WarrantRecord) -> None:
        self._life.check()
        _checks.warrant_record(record)
        if record.warrant_id in self._warrants:
            raise AlreadyExists("a warrant with this id exists")
        self._warrants[record.warrant_id] = record

    async def get(self, warrant_id: bytes) -> WarrantRecord | None:
        self._life.check()
        _checks.warrant_id(warrant_id)
        return self._warrants.get(warrant_id)

    async def live(self, now: int) -> tuple[WarrantRecord, ...]:
        self._life.check()
        _checks.time_value(now)
        found = [w for w in self._warrants.values() if w.revocation is None and w.not_after > now]
        return tuple(sorted(found, key=lambda w: w.index)[:LIVE_WARRANTS_MAX])

    async def revoke(self, warrant_id: bytes, revocation: bytes) -> bool:
        self._life.check()
        _checks.warrant_id(warrant_id)
        _checks.revocation(revocation)
        record = self._warrants.get(warrant_id)
        if record is None:
            raise NotFound("no such warrant")
        if record.revocation is not None:
            return False
        self._warrants[warrant_id] = replace(record, revocation=revocation)
        return True

    async def due_for_unsealing(self, now: int, limit: int) -> tuple[WarrantRecord, ...]:
        self._life.check()
        _checks.time_value(now)
        _checks.warrant_page(limit)
        due = [
            w for w in self._warrants.values() if w.sealed_until <= now and w.unsealed_index is None
        ]
        return tuple(sorted(due, key=lambda w: (w.sealed_until, w.warrant_id))[:limit])

    async def set_unsealed(self, warrant_id: bytes, index: int) -> None:
        self._life.check()
        _checks.warrant_id(warrant_id)
        _checks.log_index(index)
        record = self._warrants.get(warrant_id)
        if record is None:
            raise NotFound("no such warrant")
        if record.unsealed_index is not None:
            if record.unsealed_index != index:
                raise StorageConflict("the warrant's unsealing was recorded at another index")
            return
        self._warrants[warrant_id] = replace(record, unsealed_index=index)


class MemoryInterceptStore:
    """:class:`~overt.storage.interfaces.InterceptStore` as one list per warrant."""

    def __init__(self, lifetime: _Lifetime) -> None:
        self._life = lifetime
        self._next_id = 1
        self._by_warrant: dict[bytes, list[Intercept]] = {}

    async def add(self, batch: Sequence[NewIntercept]) -> tuple[int, ...]:
        self._life.check()
        _checks.intercept_batch(batch)
        ids = []
        for item in batch:
            stored = Intercept(
                self._next_id, item.warrant_id, item.mail_id, item.server_time,
                item.sender_account, item.sender_device, item.recipient_account,
                item.recipient_device, item.envelope, item.kind, item.membership,
            )  # fmt: skip
            self._by_warrant.setdefault(item.warrant_id, []).append(stored)
            ids.append(self._next_id)
            self._next_id += 1
        return tuple(ids)

    async def page(self, warrant_id: bytes, after_id: int, limit: int) -> tuple[Intercept, ...]:
        self._life.check()
        _checks.intercept_page(warrant_id, after_id, limit)
        items = self._by_warrant.get(warrant_id, [])
        return tuple(i for i in items if i.id > after_id)[:limit]

    async def count(self, warrant_id: bytes) -> int:
        self._life.check()
        _checks.warrant_id(warrant_id)
        return len(self._by_warrant.get(warrant_id, []))


class MemoryEpochStore:
    """:class:`~overt.storage.interfaces.EpochStore` in a dict."""

    def __init__(self, lifetime: _Lifetime) -> None:
        self._life = lifetime
        self._epochs: dict[int, EpochRecord] = {}

    async def add(self, record: EpochRecord) -> None:
        self._life.check()
        _checks.epoch_record(record)
        if record.epoch in self._epochs:
            raise AlreadyExists("this epoch has a record")
        self._epochs[record.epoch] = record

    async def get(self, epoch: int) -> EpochRecord | None:
        self._life.check()
        _checks.epoch(epoch)
        return self._epochs.get(epoch)

    async def latest(self, limit: int) -> tuple[EpochRecord, ...]:
        self._life.check()
        _checks.epoch_page(limit)
        return tuple(self._epochs[e] for e in sorted(self._epochs, reverse=True)[:limit])


async def open_memory(limits: StorageLimits | None = None) -> Storage:
    """A fresh, empty in-memory :class:`Storage` (asynchronous only for symmetry with
    :func:`overt.storage.sqlite.open_sqlite`)."""
    limits = StorageLimits() if limits is None else limits
    life = _Lifetime()
    return Storage(
        accounts=MemoryAccountStore(life),
        prekeys=MemoryPrekeyStore(life, limits),
        mailboxes=MemoryMailboxStore(life, limits),
        blobs=MemoryBlobStore(life, limits),
        log=MemoryLogStore(life),
        _close=life.close,
        kt=MemoryKtStore(life),
        warrants=MemoryWarrantStore(life),
        intercepts=MemoryInterceptStore(life),
        epochs=MemoryEpochStore(life),
        reports=MemoryReportStore(life.check),
        standing=MemoryStandingStore(life.check),
        moderators=MemoryModeratorStore(life.check),
        matching=MemoryMatchingStore(life.check),
        groups=MemoryGroupStore(life.check),
    )
