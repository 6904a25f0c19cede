"""A per-node cache of what nearly every request reads: each account's devices and their keys.

Every signed request needs its device's authentication key, and every send needs the current
device set of the sender's and the recipients' accounts (the stale-device check). Both come from
one small record per account — device id to Ed25519 key — that changes only when the account's
device list is replaced. :class:`CachedAccountStore` wraps the
:class:`~overt.storage.AccountStore` that every service of one server is given and keeps those
records in memory:

* **Invalidation on this node.** ``create`` and ``replace_device_list`` go through the wrapper,
  which drops the account's record once the store has answered (committed or refused), so on a
  single node a device-list change is seen by the very next request. A read that started before
  an invalidation never stores its (possibly older) answer (a generation counter).
* **Other nodes, bounded by** :data:`DEVICE_CACHE_TTL_S`. A change made through another node
  is not announced here; a record is used for at most that long after it was read. In that
  window a device removed elsewhere may still authenticate here, and a send addressed to the
  old device set may be accepted (as when the list changes between the check and the store,
  see :mod:`overt.server.messages`). Nothing is ever *refused* from the cache: a device missing
  from a cached record is looked up in the store, and a send whose device set differs from the
  cached one is checked again against the store before it is answered ``409 stale_devices``.
* **Bounded** by :data:`DEVICE_CACHE_MAX` accounts (the oldest record goes first). Absent
  accounts and devices are not cached.

``get`` (the public account record, with its signed device list) always reads the store, and
refreshes the cached record on the way. ``list_devices`` and ``device_auth_key`` answer from a
fresh record, or read one with ``get``; lookups of one account that miss while that read is in
flight wait for it instead of each reading (unless the account was invalidated meanwhile).

This module knows the storage Protocol and a monotonic clock; no HTTP, no envelopes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Final

from overt.storage import AccountRecord, AccountStore, DeviceAuth

DEVICE_CACHE_TTL_S: Final = 1.0
"""Seconds a cached account record is used before it is read again: the longest a device-list
change made through *another* node goes unseen here (changes through this node are seen at
once)."""

DEVICE_CACHE_MAX: Final = 100_000
"""Accounts whose records are cached at most (a few hundred bytes each)."""

MonotonicClock = Callable[[], float]
"""Seconds on a clock that never goes back (``time.monotonic``)."""


class CachedAccountStore:
    """An :class:`~overt.storage.AccountStore` that caches each account's device keys in memory
    (see the module's docstring)."""

    def __init__(
        self,
        inner: AccountStore,
        *,
        ttl_s: float = DEVICE_CACHE_TTL_S,
        max_accounts: int = DEVICE_CACHE_MAX,
        clock: MonotonicClock = time.monotonic,
    ) -> None:
        self._inner = inner
        self._ttl = ttl_s
        self._max = max_accounts
        self._clock = clock
        self._records: dict[bytes, tuple[float, dict[int, bytes]]] = {}
        """Account id → (monotonic time read, device id → auth key), oldest read first."""
        self._generation = 0
        """Bumped by every invalidation; a read stores its answer only if it did not move."""
        self._loading: dict[bytes, asyncio.Future[dict[int, bytes] | None]] = {}
        """The read in flight per account: lookups that miss together share it."""

    @property
    def inner(self) -> AccountStore:
        """The wrapped store."""
        return self._inner

    def __len__(self) -> int:
        return len(self._records)

    def invalidate(self, account_id: bytes) -> None:
        """Forget ``account_id``'s record (its device list changed, or may have)."""
        self._generation += 1
        self._records.pop(account_id, None)
        self._loading.pop(account_id, None)  # later lookups must not share an older read

    def _fresh(self, account_id: bytes) -> dict[int, bytes] | None:
        entry = self._records.get(account_id)
        if entry is None:
            return None
        if self._clock() - entry[0] >= self._ttl:
            del self._records[account_id]
            return None
        return entry[1]

    def _store(self, account_id: bytes, devices: Sequence[DeviceAuth], read_at: float) -> None:
        self._records.pop(account_id, None)
        self._records[account_id] = (read_at, {d.device: d.signing_key for d in devices})
        while len(self._records) > self._max:
            del self._records[next(iter(self._records))]

    async def _load(self, account_id: bytes) -> dict[int, bytes] | None:
        loading = self._loading.get(account_id)
        if loading is None:
            loading = asyncio.ensure_future(self._read(account_id))
            self._loading[account_id] = loading
            loading.add_done_callback(lambda done: self._loaded(account_id, done))
        # A caller that gives up does not cancel the read the others wait for.
        return await asyncio.shield(loading)

    async def _read(self, account_id: bytes) -> dict[int, bytes] | None:
        record = await self.get(account_id)
        return None if record is None else {d.device: d.signing_key for d in record.devices}

    def _loaded(self, account_id: bytes, done: asyncio.Future[dict[int, bytes] | None]) -> None:
        if self._loading.get(account_id) is done:
            del self._loading[account_id]
        if not done.cancelled():
            done.exception()  # retrieved: every waiter that is left has it raised

    # ------------------------------------------------------------------ AccountStore

    async def create(self, account: AccountRecord) -> None:
        try:
            await self._inner.create(account)
        finally:
            self.invalidate(account.account_id)

    async def get(self, account_id: bytes) -> AccountRecord | None:
        generation, read_at = self._generation, self._clock()
        record = await self._inner.get(account_id)
        if record is None:
            self._records.pop(account_id, None)
        elif generation == self._generation:
            self._store(account_id, record.devices, read_at)
        return record

    async def replace_device_list(
        self,
        account_id: bytes,
        *,
        expected_serial: int,
        serial: int,
        device_list: bytes,
        devices: Sequence[DeviceAuth],
    ) -> None:
        try:
            await self._inner.replace_device_list(
                account_id,
                expected_serial=expected_serial,
                serial=serial,
                device_list=device_list,
                devices=devices,
            )
        finally:
            self.invalidate(account_id)

    async def device_auth_key(self, account_id: bytes, device: int) -> bytes | None:
        cached = self._fresh(account_id)
        if cached is not None and device in cached:
            return cached[device]
        loaded = await self._load(account_id)
        return None if loaded is None else loaded.get(device)

    async def list_devices(self, account_id: bytes) -> tuple[int, ...] | None:
        devices = self._fresh(account_id)
        if devices is None:
            devices = await self._load(account_id)
        return None if devices is None else tuple(sorted(devices))
