"""The key directory (DESIGN §4): every account registration and device-list change becomes a
:class:`~overt.transparency.entries.KeyDirectoryUpdate` in the transparency log, appended in
the same request, before the server answers; a lookup returns the account's latest entry with
what a client needs to check it.

An entry never names the account. Its ``label`` is the first 32 bytes of the vrf-r255 output of
the account id under the directory's VRF key, and its ``commitment`` is
``SHA-256("Overt_KT_commit_v1" ‖ opening ‖ account id)`` over 32 fresh random bytes drawn from
the injected RNG. The opening is kept server-side (:class:`overt.storage.KtStore`, with the log
index and the signed device list the entry hashes) so that a lookup can reveal it to whoever
asks about that account id — and only then.

A lookup (:meth:`KeyDirectory.lookup`) answers the VRF proof of the label, the entry's log
index, the opening, the signed device list and an inclusion proof under the published
checkpoint (a C2SP tlog-proof bundle), or :class:`~overt.server.errors.NotYetPublished` while
the latest entry is not covered by one.

Repairs. The account store, the log and the key-directory store are three transactions: if the
process dies between them, an account can be ahead of its entries. A lookup that finds the
account's device-list serial ahead of its latest record publishes the missing entry (from the
signed device list the account store holds, which is what peers are served anyway) and answers
"not yet". Within one process, appends for one account are serialised with the store change
that causes them, so the log lists an account's serials in order.

What this module must not know: HTTP, SQL, the wire format of device lists (callers pass the
signed bytes, the account key and the serial they verified). It draws randomness only from the
RNG it is given.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field

from overt.crypto import Rng, sha256
from overt.crypto.vrf import VrfSecretKey, proof_to_hash, prove
from overt.server.checkpointer import Published
from overt.server.errors import NotYetPublished
from overt.server.keyed_locks import KeyedLocks
from overt.server.logs import LOGGER
from overt.storage import AccountStore, AlreadyExists, KtRecord, KtStore, NotFound
from overt.transparency.checkpoint import ProofBundle
from overt.transparency.entries import (
    KT_OPENING_LEN,
    KeyDirectoryUpdate,
    kt_commitment,
    kt_label,
)
from overt.transparency.log import Appender, Log

_log = logging.getLogger(LOGGER)

_RETRY = "retry in a second"


@dataclass(frozen=True, slots=True)
class Lookup:
    """The answer of ``GET /v1/kt/{account}``."""

    vrf_proof: bytes
    index: int
    opening: bytes = field(repr=False)
    signed_device_list: bytes = field(repr=False)
    bundle: ProofBundle = field(repr=False)


class KeyDirectory:
    """Publishes account keys to the log and answers lookups.

    ``ready`` is awaited before the first append (the manifest must be entry 0);
    ``published`` returns the published checkpoint, if any.
    """

    def __init__(
        self,
        log: Log,
        accounts: AccountStore,
        store: KtStore,
        vrf_key: VrfSecretKey,
        rng: Rng,
        *,
        ready: Callable[[], Awaitable[object]],
        published: Callable[[], Published | None],
    ) -> None:
        self._log = log
        self._accounts = accounts
        self._store = store
        self._vrf = vrf_key
        self._rng = rng
        self._ready = ready
        self._published = published
        self._locks = KeyedLocks()
        self._appender: tuple[asyncio.AbstractEventLoop, Appender] | None = None

    def label(self, account_id: bytes) -> bytes:
        """The account's label: the first 32 bytes of its vrf-r255 output."""
        return kt_label(proof_to_hash(prove(self._vrf, account_id)))

    def locked(self, account_id: bytes) -> AbstractAsyncContextManager[None]:
        """Hold while changing the account's keys and publishing the change, so that this
        process logs one account's serials in order."""
        return self._locks.hold(account_id)

    async def publish(
        self, account_id: bytes, account_key: bytes, serial: int, signed_device_list: bytes
    ) -> int:
        """Append the entry for this device list and keep its opening; its log index."""
        await self._ready()
        opening = self._rng.random_bytes(KT_OPENING_LEN)
        entry = KeyDirectoryUpdate(
            label=self.label(account_id),
            account_key=account_key,
            serial=serial,
            device_list_hash=sha256(signed_device_list),
            commitment=kt_commitment(opening, account_id),
        )
        (index,) = await self._appender_here().append([entry])
        try:
            await self._store.add(account_id, KtRecord(serial, index, opening, signed_device_list))
        except AlreadyExists:
            # Another server node published this serial first; its record answers lookups.
            _log.warning("key-directory entry published twice", extra={"fields": {"index": index}})
        return index

    def _appender_here(self) -> Appender:
        """The appender of the running event loop. Appends of concurrent requests are
        committed together; an application driven from several loops (Starlette's test client
        runs each request in its own) gets one appender per loop, never a batch waiting on a
        loop that is gone."""
        loop = asyncio.get_running_loop()
        if self._appender is None or self._appender[0] is not loop:
            self._appender = (loop, Appender(self._log))
        return self._appender[1]

    async def lookup(self, account_id: bytes) -> Lookup:
        """The account's latest entry with its proofs; ``NotFound`` for an unknown account,
        :class:`NotYetPublished` while the entry is not in a published checkpoint."""
        current = await self._accounts.get(account_id)
        if current is None:
            raise NotFound("no account with this id")
        record = await self._store.latest(account_id)
        if record is None or record.serial < current.serial:
            await self._repair(account_id)
            raise NotYetPublished(f"the account's keys are being published; {_RETRY}")
        published = self._published()
        if published is None or record.index >= published.size:
            raise NotYetPublished(
                f"the account's latest keys are not in a published checkpoint yet; {_RETRY}"
            )
        proof = await self._log.inclusion_proof(record.index, published.size)
        return Lookup(
            vrf_proof=prove(self._vrf, account_id),
            index=record.index,
            opening=record.opening,
            signed_device_list=record.device_list,
            bundle=ProofBundle(record.index, tuple(proof), published.note),
        )

    async def _repair(self, account_id: bytes) -> None:
        async with self.locked(account_id):
            current = await self._accounts.get(account_id)
            record = await self._store.latest(account_id)
            if current is None or (record is not None and record.serial >= current.serial):
                return
            _log.warning("publishing a key-directory entry that was missing")
            await self.publish(
                account_id, current.identity_key, current.serial, current.device_list
            )
