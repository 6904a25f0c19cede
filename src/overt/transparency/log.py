"""The transparency log service: appends typed entries to a persistent Merkle tree, signs
checkpoints, merges witness cosignatures and serves proofs.

:class:`Log` sits between a :class:`~overt.storage.LogStore` (opaque leaves, subtree hashes and
checkpoints) and the pure modules of this package. It does the hashing: every append computes
the leaf hashes and the hashes of the subtrees the batch completes, from the tree's right edge
(its *frontier*, at most 63 hashes, cached in memory and reloaded from the store when another
writer got there first), and hands both to the store in one atomic call that only succeeds if
the tree still has the size the frontier was computed for. Proofs and roots never recompute
the tree: :class:`StoreNodeSource` prefetches the O(log n) subtree hashes that a generator of
:mod:`overt.transparency.merkle` will ask for, in one store read, and then serves them to it.

Before signing a checkpoint the log checks that the new tree is consistent with the last one it
signed (a consistency proof from the store, verified against the stored signed root), so a
store whose history changed underneath it is refused rather than signed.

:class:`Appender` coalesces concurrent ``append`` calls into one store transaction: calls made
within a short window, or until a batch is full, commit together (group commit), so many small
appends cost one commit.

What this module must not know: SQL or any backend (only the ``LogStore`` protocol), sockets
and HTTP (the witness client and the server routes live elsewhere), and the manifest's format.
It reads time only through the ``clock`` it is given, and randomness never.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Final

from overt.errors import ConfigurationError, InvalidMessage, LocalError, ProtocolViolation
from overt.storage import LogLeaf, LogNode, LogStore, StorageConflict
from overt.storage.limits import LOG_HASHES_MAX, LOG_PAGE_MAX
from overt.transparency.checkpoint import (
    Checkpoint,
    ProofBundle,
    sign_checkpoint,
    verify_checkpoint_consistency,
)
from overt.transparency.entries import Entry, encode_entry
from overt.transparency.merkle import (
    EMPTY_ROOT,
    HASH_LEN,
    NodeSource,
    consistency_proof,
    hash_leaf,
    hash_node,
    inclusion_proof,
    root_at,
)
from overt.transparency.note import (
    ALG_COSIGNATURE_V1,
    Note,
    NoteSigner,
    VerifierKey,
    verify_signatures,
)

APPEND_BATCH_MAX: Final = 4096
"""Most entries an :class:`Appender` commits in one batch by default."""

APPEND_WINDOW_MS: Final = 2
"""How long an :class:`Appender` waits for more appends before committing, by default."""

APPEND_RETRIES: Final = 32
"""Attempts of one batch when another writer keeps appending first. Several server nodes on one
PostgreSQL append to one log, each after reading the tree's right edge, so under a stream of
registrations a node loses the race about every other time: a few attempts are not enough."""

ENTRIES_PAGE_MAX: Final = LOG_PAGE_MAX
"""Most entries :meth:`Log.entries` returns at once."""


class NotYetCheckpointed(ProtocolViolation):
    """No signed checkpoint covers this entry yet; retry after the next checkpoint."""

    status_hint = 404


# ----------------------------------------------------------------------------- node sources


class _KeyRecorder:
    """A :class:`NodeSource` that answers with placeholders and remembers what was asked.

    The proof generators choose which subtrees to read from the index and sizes alone, never
    from hash values, so a dry run over this source lists exactly the reads of a real run.
    """

    __slots__ = ("_size", "keys")

    def __init__(self, size: int) -> None:
        self._size = size
        self.keys: dict[tuple[int, int], None] = {}

    @property
    def size(self) -> int:
        return self._size

    def hash_at(self, level: int, index: int) -> bytes:
        self.keys[(level, index)] = None
        return bytes(HASH_LEN)


class StoreNodeSource:
    """A :class:`NodeSource` over subtree hashes prefetched from a :class:`LogStore`.

    Build one with :meth:`prefetch`, giving the computations it will serve; asking it for a
    subtree it did not prefetch raises :class:`LocalError`.
    """

    __slots__ = ("_nodes", "_size")

    def __init__(self, size: int, nodes: Mapping[tuple[int, int], bytes]) -> None:
        self._size = size
        self._nodes = dict(nodes)

    @property
    def size(self) -> int:
        return self._size

    def hash_at(self, level: int, index: int) -> bytes:
        try:
            return self._nodes[(level, index)]
        except KeyError:
            raise LocalError(f"subtree ({level}, {index}) was not prefetched") from None

    @classmethod
    async def prefetch(
        cls, store: LogStore, size: int, *plans: Callable[[NodeSource], object]
    ) -> StoreNodeSource:
        """Dry-run each of ``plans`` over the first ``size`` leaves, read every subtree hash
        they need from ``store`` in one call, and return a source that serves them.

        ``size`` must not exceed the store's size (the caller checks). A subtree the store
        lacks is a broken store: :class:`LocalError`.
        """
        recorder = _KeyRecorder(size)
        for plan in plans:
            plan(recorder)
        keys = list(recorder.keys)
        found: dict[tuple[int, int], bytes] = {}
        for start in range(0, len(keys), LOG_HASHES_MAX):
            chunk = keys[start : start + LOG_HASHES_MAX]
            for key, value in zip(chunk, await store.hashes(chunk), strict=True):
                if value is None or len(value) != HASH_LEN:
                    raise LocalError(f"the log store lacks the complete subtree {key}")
                found[key] = value
        return cls(size, found)


# ----------------------------------------------------------------------------- tree growth


def _frontier_keys(size: int) -> list[tuple[int, int]]:
    """The complete subtrees along the right edge of a tree of ``size`` leaves, left first."""
    levels = range(size.bit_length() - 1, -1, -1)
    return [(level, (size >> level) - 1) for level in levels if size >> level & 1]


def _grow(
    frontier: Sequence[tuple[int, bytes]], size: int, leaf_hashes: Sequence[bytes]
) -> tuple[list[LogNode], list[tuple[int, bytes]]]:
    """The subtree hashes that appending ``leaf_hashes`` at ``size`` completes, and the new
    frontier. ``frontier`` is ``(level, hash)`` of the right-edge subtrees, left first."""
    stack = list(frontier)
    nodes: list[LogNode] = []
    index = size
    for h in leaf_hashes:
        level, node, at = 0, h, index
        while stack and stack[-1][0] == level:
            node = hash_node(stack.pop()[1], node)
            level += 1
            at >>= 1
            nodes.append(LogNode(level, at, node))
        stack.append((level, node))
        index += 1
    return nodes, stack


# ----------------------------------------------------------------------------- the log


class Log:
    """One transparency log over a :class:`LogStore`, signing with the log's note key.

    ``origin`` is the checkpoints' first line (the signer's key name SHOULD equal it, since
    verifiers default to that). ``clock`` returns the time in milliseconds. ``witnesses`` are
    the cosignature/v1 keys whose cosignatures :meth:`add_cosignatures` accepts. A new
    checkpoint is signed at most every ``min_checkpoint_interval_ms``.
    """

    def __init__(
        self,
        store: LogStore,
        signer: NoteSigner,
        origin: str,
        clock: Callable[[], int],
        *,
        witnesses: Collection[VerifierKey] = (),
        min_checkpoint_interval_ms: int = 0,
    ) -> None:
        Checkpoint(origin, 0, EMPTY_ROOT)  # validates the origin line
        if any(w.alg != ALG_COSIGNATURE_V1 for w in witnesses):
            raise ConfigurationError("witness keys must be cosignature/v1 keys (type 0x04)")
        if min_checkpoint_interval_ms < 0:
            raise ConfigurationError("the checkpoint interval cannot be negative")
        self._store = store
        self._signer = signer
        self._origin = origin
        self._clock = clock
        self._witnesses = tuple(witnesses)
        self._min_interval_ms = min_checkpoint_interval_ms
        self._lock = asyncio.Lock()
        self._frontier: list[tuple[int, bytes]] | None = None
        self._size = 0
        self._known_size = 0  # the log never shrinks: any size seen is a lower bound
        self._last_signed_ms: int | None = None
        self._appender: Appender | None = None

    @property
    def origin(self) -> str:
        return self._origin

    @property
    def verifier_key(self) -> VerifierKey:
        """The log's public note key, for :func:`~overt.transparency.verify_checkpoint`."""
        return self._signer.verifier_key

    async def size(self) -> int:
        """How many entries the log holds (some may not be in a checkpoint yet)."""
        return self._saw(await self._store.size())

    def _saw(self, size: int) -> int:
        self._known_size = max(self._known_size, size)
        return size

    # ------------------------------------------------------------------------- appending

    async def append(self, entries: Sequence[Entry]) -> list[int]:
        """Append ``entries`` together with other callers' concurrent appends (through a
        default :class:`Appender`); return their indices, in order."""
        if self._appender is None:
            self._appender = Appender(self)
        return await self._appender.append(entries)

    async def append_batch(self, entries: Sequence[Entry]) -> list[int]:
        """Append ``entries`` in one store transaction; return their indices, in order."""
        return await self._append_encoded([encode_entry(e) for e in entries])

    async def _append_encoded(self, data: Sequence[bytes]) -> list[int]:
        if not data:
            return []
        leaves = [LogLeaf(d, hash_leaf(d)) for d in data]
        leaf_hashes = [leaf.hash for leaf in leaves]
        async with self._lock:
            attempts = 0
            while True:
                frontier = self._frontier
                if frontier is None:
                    frontier = await self._load_frontier()
                start = self._size
                nodes, grown = _grow(frontier, start, leaf_hashes)
                try:
                    new_size = await self._store.append(start, leaves, nodes)
                except StorageConflict:
                    self._frontier = None  # another writer appended: reload and recompute
                    attempts += 1
                    if attempts == APPEND_RETRIES:
                        raise
                    continue
                except BaseException:
                    self._frontier = None  # the outcome is unknown: reload next time
                    raise
                self._frontier, self._size = grown, self._saw(new_size)
                return list(range(start, new_size))

    async def _load_frontier(self) -> list[tuple[int, bytes]]:
        size = await self._store.size()
        keys = _frontier_keys(size)
        hashes = await self._store.hashes(keys)
        frontier: list[tuple[int, bytes]] = []
        for (level, _), h in zip(keys, hashes, strict=True):
            if h is None or len(h) != HASH_LEN:
                raise LocalError("the log store lacks a subtree on the tree's right edge")
            frontier.append((level, h))
        self._frontier, self._size = frontier, self._saw(size)
        return frontier

    # ------------------------------------------------------------------------- checkpoints

    async def checkpoint(self) -> Note:
        """The latest checkpoint, after signing and storing a new one if the tree grew (and
        the last was signed at least ``min_checkpoint_interval_ms`` ago)."""
        async with self._lock:
            size = self._saw(await self._store.size())
            stored = await self._store.get_checkpoint()
            now = self._clock()
            latest = None if stored is None else Note.from_bytes(stored.checkpoint)
            if stored is not None and latest is not None:
                recent = (
                    self._last_signed_ms is not None
                    and now - self._last_signed_ms < self._min_interval_ms
                )
                if stored.size == size or recent:
                    return latest
            source = await StoreNodeSource.prefetch(self._store, size, lambda s: root_at(s, size))
            new = Checkpoint(self._origin, size, root_at(source, size))
            if latest is not None:
                await self._check_extends(Checkpoint.from_text(latest.text), new)
            note = sign_checkpoint(new, self._signer)
            await self._store.set_checkpoint(size, note.to_bytes())
            self._last_signed_ms = now
            return note

    async def _check_extends(self, old: Checkpoint, new: Checkpoint) -> None:
        proof: list[bytes] = []
        if 0 < old.size < new.size:
            proof = await self.consistency_proof(old.size, new.size)
        try:
            verify_checkpoint_consistency(old, new, proof)
        except InvalidMessage:
            raise LocalError(
                "refusing to sign: the stored tree is not consistent with the last checkpoint"
            ) from None

    async def latest_checkpoint(self) -> Note | None:
        """The latest stored checkpoint with its cosignatures, or ``None``; signs nothing."""
        stored = await self._store.get_checkpoint()
        return None if stored is None else Note.from_bytes(stored.checkpoint)

    async def checkpoint_at(self, size: int) -> Note | None:
        """The checkpoint the log signed at ``size``, or ``None``."""
        raw = await self._store.checkpoint_at(size)
        return None if raw is None else Note.from_bytes(raw)

    async def add_cosignatures(self, note: Note) -> Note:
        """Merge the witnesses' cosignatures on ``note`` into the stored checkpoint.

        ``note`` must carry the text of a checkpoint this log stored, of any size (else
        :class:`InvalidMessage`; :class:`DecodeError` if the text is no checkpoint at all).
        Lines of the configured witnesses must verify (else :class:`InvalidMessage`, nothing
        merged); a witness that already cosigned keeps its first line; lines of unknown keys
        are dropped. Returns the stored note.
        """
        checkpoint = Checkpoint.from_text(note.text)
        async with self._lock:
            raw = await self._store.checkpoint_at(checkpoint.size)
            if raw is None:
                raise InvalidMessage()
            stored = Note.from_bytes(raw)
            if stored.text != note.text:
                raise InvalidMessage()
            verify_signatures(note, self._witnesses)
            known = {(w.name, w.key_id) for w in self._witnesses}
            present = {(s.name, s.key_id) for s in stored.signatures}
            added = []
            for line in note.signatures:
                key = (line.name, line.key_id)
                if key in known and key not in present:
                    added.append(line)
                    present.add(key)
            if not added:
                return stored
            merged = stored.with_signatures(*added)
            await self._store.set_checkpoint(checkpoint.size, merged.to_bytes())
            return merged

    # ------------------------------------------------------------------------- proofs

    async def _covered(self, size: int) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise LocalError("a tree size is a non-negative integer")
        # Only ask the store when the size is beyond what this log has already seen.
        if size > self._known_size and size > self._saw(await self._store.size()):
            raise LocalError(f"the log does not have {size} entries")

    async def root(self, size: int) -> bytes:
        """The root hash of the first ``size`` entries."""
        await self._covered(size)
        source = await StoreNodeSource.prefetch(self._store, size, lambda s: root_at(s, size))
        return root_at(source, size)

    async def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """The RFC 9162 inclusion proof of entry ``index`` in the tree of ``size`` entries."""
        await self._covered(size)
        source = await StoreNodeSource.prefetch(
            self._store, size, lambda s: inclusion_proof(s, index, size)
        )
        return inclusion_proof(source, index, size)

    async def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        """The RFC 9162 consistency proof from ``size1`` to ``size2`` entries (``size1 > 0``)."""
        await self._covered(size2)
        source = await StoreNodeSource.prefetch(
            self._store, size2, lambda s: consistency_proof(s, size1, size2)
        )
        return consistency_proof(source, size1, size2)

    async def proof_bundle(self, index: int) -> ProofBundle:
        """A C2SP tlog-proof of entry ``index`` against the latest stored checkpoint, with the
        cosignatures collected so far; :class:`NotYetCheckpointed` if it does not cover it."""
        if isinstance(index, bool) or not isinstance(index, int):
            raise LocalError("an entry index is an integer")
        stored = await self._store.get_checkpoint()
        if stored is None or not 0 <= index < stored.size:
            raise NotYetCheckpointed("no checkpoint covers this entry yet; retry later")
        self._saw(stored.size)
        note = Note.from_bytes(stored.checkpoint)
        proof = await self.inclusion_proof(index, stored.size)
        return ProofBundle(index, tuple(proof), note)

    async def entries(self, start: int, end: int) -> list[bytes]:
        """The encoded entries ``[start, end)``: at most :data:`ENTRIES_PAGE_MAX` of them,
        fewer past the end of the log. Decode them with
        :func:`~overt.transparency.entries.decode_entry`."""
        if isinstance(start, bool) or not isinstance(start, int) or not 0 <= start <= end:
            raise LocalError("an entry range needs 0 <= start <= end")
        return list(await self._store.leaves(start, min(end, start + ENTRIES_PAGE_MAX)))


# ----------------------------------------------------------------------------- coalescing


class Appender:
    """Coalesces concurrent :meth:`append` calls on one event loop into batched commits.

    A call queues its entries and waits. One background task commits the queue with
    :meth:`Log.append_batch`'s machinery: it waits up to ``window_ms`` for more calls (or until
    ``max_batch`` entries are queued), then commits whole calls, up to ``max_batch`` entries,
    in one store transaction; calls arriving during a commit join the next batch. A call with
    more than ``max_batch`` entries is committed alone. If a commit fails, every call in that
    batch gets the exception. A caller that is cancelled while waiting does not withdraw its
    entries: they may still be appended, as with any lost reply.
    """

    def __init__(
        self, log: Log, *, max_batch: int = APPEND_BATCH_MAX, window_ms: float = APPEND_WINDOW_MS
    ) -> None:
        if max_batch < 1 or window_ms < 0:
            raise ConfigurationError("an appender needs max_batch >= 1 and window_ms >= 0")
        self._log = log
        self._max_batch = max_batch
        self._window_s = window_ms / 1000
        self._pending: list[tuple[list[bytes], asyncio.Future[list[int]]]] = []
        self._pending_count = 0
        self._full = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        """How many batches were committed (or failed): for monitoring and tests."""

    async def append(self, entries: Sequence[Entry]) -> list[int]:
        """Append ``entries`` in some batch; return their indices, in order."""
        encoded = [encode_entry(e) for e in entries]  # a bad entry fails only its caller
        if not encoded:
            return []
        future: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        self._pending.append((encoded, future))
        self._pending_count += len(encoded)
        if self._pending_count >= self._max_batch:
            self._full.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        return await future

    def _take(self) -> list[tuple[list[bytes], asyncio.Future[list[int]]]]:
        batch = [self._pending.pop(0)]
        count = len(batch[0][0])
        while self._pending and count + len(self._pending[0][0]) <= self._max_batch:
            item = self._pending.pop(0)
            batch.append(item)
            count += len(item[0])
        self._pending_count -= count
        if self._pending_count < self._max_batch:
            self._full.clear()
        return batch

    async def _run(self) -> None:
        while self._pending:
            if self._pending_count < self._max_batch:
                try:
                    async with asyncio.timeout(self._window_s):
                        await self._full.wait()
                except TimeoutError:
                    pass
            batch = self._take()
            try:
                indices = await self._log._append_encoded([d for data, _ in batch for d in data])
            except BaseException as exc:
                for _, future in batch:
                    if future.done():
                        continue
                    if isinstance(exc, asyncio.CancelledError):
                        future.cancel()
                    else:
                        future.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
            else:
                position = 0
                for data, future in batch:
                    if not future.done():
                        future.set_result(indices[position : position + len(data)])
                    position += len(data)
            finally:
                self.batches += 1
