"""The transparency log service over both storage backends.

:class:`MemoryTree` is the oracle: every root, subtree hash and proof the log serves from its
store must equal the in-memory tree's, and must verify with :mod:`overt.transparency.merkle`'s
verifiers; every checkpoint must verify with :func:`verify_checkpoint`.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Collection, Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from overt.crypto import DeterministicRng, Ed25519PrivateKey
from overt.errors import ConfigurationError, InvalidMessage, LocalError
from overt.storage import (
    LogLeaf,
    LogNode,
    LogStore,
    Storage,
    StoredCheckpoint,
    open_memory,
    open_sqlite,
)
from overt.transparency import (
    ENTRIES_PAGE_MAX,
    AccessReceipt,
    AggregateStatistics,
    Appender,
    Checkpoint,
    CosignatureSigner,
    Entry,
    KeyDirectoryUpdate,
    Log,
    ManifestEntry,
    MemoryTree,
    Note,
    NoteSigner,
    NotYetCheckpointed,
    StoreNodeSource,
    WarrantCommitment,
    WarrantUnsealing,
    cosign_checkpoint,
    decode_entry,
    hash_leaf,
    inclusion_proof,
    parse_proof_bundle,
    verify_checkpoint,
    verify_checkpoint_consistency,
    verify_consistency,
    verify_inclusion,
    verify_proof_bundle,
)

ORIGIN = "log.overt.example/test"


def key(seed: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate(DeterministicRng(seed))


LOG_SIGNER = NoteSigner(ORIGIN, key("log"))
WITNESS_A = CosignatureSigner("witness.a.example", key("witness a"))
WITNESS_B = CosignatureSigner("witness.b.example", key("witness b"))
STRANGER = CosignatureSigner("witness.unknown.example", key("stranger"))
WITNESS_KEYS = (WITNESS_A.verifier_key, WITNESS_B.verifier_key)


def entry(i: int) -> KeyDirectoryUpdate:
    return KeyDirectoryUpdate(
        i.to_bytes(32, "big"), b"K" * 32, i, (i + 1).to_bytes(32, "big"), b"C" * 32
    )


def make_log(store: LogStore, clock_ms: list[int] | None = None, interval_ms: int = 0) -> Log:
    now = [0] if clock_ms is None else clock_ms
    return Log(
        store,
        LOG_SIGNER,
        ORIGIN,
        lambda: now[0],
        witnesses=WITNESS_KEYS,
        min_checkpoint_interval_ms=interval_ms,
    )


async def open_backend(name: str, directory: Path) -> Storage:
    if name == "memory":
        return await open_memory()
    return await open_sqlite(directory / "log.db")


@pytest.fixture(params=["memory", "sqlite"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    s = await open_backend(request.param, tmp_path)
    yield s
    await s.close()


async def append_all(log: Log, tree: MemoryTree, batches: Sequence[int]) -> None:
    for n in batches:
        start = tree.size
        entries = [entry(i) for i in range(start, start + n)]
        assert await log.append_batch(entries) == list(range(start, start + n))
        for e in entries:
            tree.append(e.encode())


# ============================================================================= the oracle


@settings(max_examples=25, deadline=None)
@given(
    batches=st.lists(st.integers(0, 40), min_size=1, max_size=8),
    picks=st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=1, max_size=8),
)
def test_appends_roots_and_proofs_equal_the_memory_tree(
    batches: list[int], picks: list[tuple[float, float]]
) -> None:
    async def check(backend: str, directory: Path) -> None:
        storage = await open_backend(backend, directory)
        try:
            log = make_log(storage.log)
            tree = MemoryTree()
            for n in batches:
                await append_all(log, tree, [n])
                assert await log.size() == tree.size
            n = tree.size
            # Every complete subtree the store holds is the oracle's, and nothing more.
            keys = [
                (level, index)
                for level in range(n.bit_length() + 1)
                for index in range((n >> level) + 1)
            ]
            expected = [tree.hash_at(*k) if (k[1] + 1) << k[0] <= n else None for k in keys]
            assert list(await storage.log.hashes(keys)) == expected
            if n == 0:
                return
            for a, b in picks:
                size = 1 + int(a * (n - 1))
                index = int(b * (size - 1))
                root = await log.root(size)
                assert root == tree.root(size)
                proof = await log.inclusion_proof(index, size)
                assert proof == tree.inclusion_proof(index, size)
                verify_inclusion(hash_leaf(entry(index).encode()), index, size, proof, root)
                old = 1 + int(b * (size - 1))
                consistency = await log.consistency_proof(old, size)
                assert consistency == tree.consistency_proof(old, size)
                verify_consistency(old, size, consistency, tree.root(old), root)
        finally:
            await storage.close()

    with tempfile.TemporaryDirectory() as directory:
        for backend in ("memory", "sqlite"):
            asyncio.run(check(backend, Path(directory)))


# ============================================================================= checkpoints


async def test_checkpoints_verify_and_extend_each_other(storage: Storage) -> None:
    log = make_log(storage.log)
    tree = MemoryTree()
    previous: Checkpoint | None = None
    for batch in (0, 1, 6, 25, 100):
        await append_all(log, tree, [batch])
        note = await log.checkpoint()
        verified = verify_checkpoint(note, log.verifier_key)
        cp = verified.checkpoint
        assert (cp.origin, cp.size, cp.root_hash) == (ORIGIN, tree.size, tree.root())
        if previous is not None:
            proof = []
            if 0 < previous.size < cp.size:
                proof = await log.consistency_proof(previous.size, cp.size)
            verify_checkpoint_consistency(previous, cp, proof)
        previous = cp
    assert await log.latest_checkpoint() == note
    older = await log.checkpoint_at(7)
    assert older is not None
    assert verify_checkpoint(older, log.verifier_key).checkpoint.size == 7
    assert await log.checkpoint_at(8) is None


async def test_a_checkpoint_is_signed_only_when_the_tree_grew(storage: Storage) -> None:
    log = make_log(storage.log)
    empty = await log.checkpoint()
    assert verify_checkpoint(empty, log.verifier_key).checkpoint.size == 0
    assert await log.checkpoint() == empty
    await log.append_batch([entry(0)])
    first = await log.checkpoint()
    assert first != empty
    assert await log.checkpoint() == first
    stored = await storage.log.get_checkpoint()
    assert stored == StoredCheckpoint(1, first.to_bytes())


async def test_the_clock_spaces_checkpoints(storage: Storage) -> None:
    now = [1_000]
    log = make_log(storage.log, now, interval_ms=500)
    await log.append_batch([entry(0)])
    assert Checkpoint.from_text((await log.checkpoint()).text).size == 1
    await log.append_batch([entry(1)])
    now[0] = 1_499
    assert Checkpoint.from_text((await log.checkpoint()).text).size == 1
    now[0] = 1_500
    assert Checkpoint.from_text((await log.checkpoint()).text).size == 2


# ============================================================================= witnesses


async def test_witness_cosignatures_are_merged_into_the_stored_checkpoint(
    storage: Storage,
) -> None:
    log = make_log(storage.log)
    await log.append_batch([entry(i) for i in range(10)])
    note = await log.checkpoint()
    with pytest.raises(InvalidMessage):
        verify_checkpoint(note, log.verifier_key, WITNESS_KEYS, quorum=1)

    merged = await log.add_cosignatures(cosign_checkpoint(note, WITNESS_A, 1_700_000_000))
    assert len(merged.signatures) == 2
    # B's cosignature arrives on a note that also carries an unknown witness's line.
    from_b = cosign_checkpoint(cosign_checkpoint(note, STRANGER, 5), WITNESS_B, 1_700_000_001)
    merged = await log.add_cosignatures(from_b)
    assert [s.name for s in merged.signatures] == [ORIGIN, WITNESS_A.name, WITNESS_B.name]
    verified = verify_checkpoint(merged, log.verifier_key, WITNESS_KEYS, quorum=2)
    assert sorted(v.timestamp or 0 for v in verified.cosignatures) == [1_700_000_000, 1_700_000_001]
    # A witness that cosigns again keeps its first line; the stored note is the merged one.
    again = await log.add_cosignatures(cosign_checkpoint(note, WITNESS_A, 1_800_000_000))
    assert again == merged
    assert await log.latest_checkpoint() == merged
    assert await log.checkpoint() == merged  # the tree did not grow

    bundle = parse_proof_bundle((await log.proof_bundle(3)).to_bytes())
    verify_proof_bundle(
        bundle,
        leaf_data=entry(3).encode(),
        log_key=log.verifier_key,
        witnesses=WITNESS_KEYS,
        quorum=2,
    )


async def test_cosignatures_that_do_not_fit_are_refused_and_change_nothing(
    storage: Storage,
) -> None:
    log = make_log(storage.log)
    await log.append_batch([entry(i) for i in range(4)])
    note = await log.checkpoint()
    # Over a text this log never signed (another root at the same size).
    forged = Note(Checkpoint(ORIGIN, 4, b"\x01" * 32).to_text())
    with pytest.raises(InvalidMessage):
        await log.add_cosignatures(cosign_checkpoint(forged, WITNESS_A, 1))
    # Over a size the log has no checkpoint for.
    other = Note(Checkpoint(ORIGIN, 3, b"\x01" * 32).to_text())
    with pytest.raises(InvalidMessage):
        await log.add_cosignatures(cosign_checkpoint(other, WITNESS_A, 1))
    # A known witness's line that does not verify.
    good = cosign_checkpoint(note, WITNESS_A, 1).signatures[-1]
    broken = type(good)(good.name, good.key_id, good.signature[:-1] + b"\x00")
    with pytest.raises(InvalidMessage):
        await log.add_cosignatures(note.with_signatures(broken))
    assert await log.latest_checkpoint() == note


async def test_an_older_checkpoint_can_still_collect_cosignatures(storage: Storage) -> None:
    log = make_log(storage.log)
    await log.append_batch([entry(0), entry(1)])
    old = await log.checkpoint()
    await log.append_batch([entry(2)])
    new = await log.checkpoint()
    merged = await log.add_cosignatures(cosign_checkpoint(old, WITNESS_B, 9))
    assert await log.checkpoint_at(2) == merged
    assert await log.latest_checkpoint() == new


# ============================================================================= proofs, entries


async def test_a_proof_bundle_needs_a_checkpoint_that_covers_the_entry(storage: Storage) -> None:
    log = make_log(storage.log)
    with pytest.raises(NotYetCheckpointed) as caught:
        await log.proof_bundle(0)
    assert caught.value.status_hint == 404
    await log.append_batch([entry(0), entry(1)])
    await log.checkpoint()
    await log.append_batch([entry(2)])
    for index in (2, 3, -1):
        with pytest.raises(NotYetCheckpointed):
            await log.proof_bundle(index)
    bundle = await log.proof_bundle(1)
    verify_proof_bundle(bundle, leaf_data=entry(1).encode(), log_key=log.verifier_key)
    with pytest.raises(InvalidMessage):
        verify_proof_bundle(bundle, leaf_data=entry(0).encode(), log_key=log.verifier_key)


async def test_proofs_outside_the_tree_are_local_errors(storage: Storage) -> None:
    log = make_log(storage.log)
    await log.append_batch([entry(i) for i in range(5)])
    for call in (
        log.inclusion_proof(0, 6),
        log.inclusion_proof(5, 5),
        log.consistency_proof(0, 5),
        log.consistency_proof(3, 6),
        log.root(6),
        log.root(-1),
        log.entries(-1, 2),
        log.entries(3, 2),
    ):
        with pytest.raises(LocalError):
            await call
    assert await log.consistency_proof(5, 5) == []
    assert await log.inclusion_proof(0, 1) == []


def every_kind() -> list[Entry]:
    return [
        ManifestEntry(b"manifest v1, signed"),
        entry(1),
        WarrantCommitment(b"W" * 32, b"J" * 32, 86_400, 1_900_000_000, b"T" * 32),
        WarrantUnsealing(b"W" * 32, b"opening"),
        AccessReceipt(b"W" * 32, b"U" * 32, 3, b"X" * 32),
        AggregateStatistics(0, 86_400, (("reports", 5),)),
    ]


async def test_entries_round_trip_through_the_log(storage: Storage) -> None:
    log = make_log(storage.log)
    kinds = every_kind()
    assert await log.append_batch(kinds) == list(range(6))
    assert [decode_entry(e) for e in await log.entries(0, 6)] == kinds
    assert await log.entries(4, 100) == [kinds[4].encode(), kinds[5].encode()]
    assert await log.entries(6, 7) == []
    assert await log.entries(2, 2) == []
    await log.append_batch([entry(i) for i in range(ENTRIES_PAGE_MAX + 10)])
    page = await log.entries(0, 10**9)
    assert len(page) == ENTRIES_PAGE_MAX
    assert page[:6] == [k.encode() for k in kinds]


# ============================================================================= batching


class CountingStore:
    """A LogStore that counts appends and can be told to fail them."""

    def __init__(self, inner: LogStore) -> None:
        self.inner = inner
        self.appends: list[int] = []
        self.fail: Exception | None = None

    async def append(
        self, expected_size: int, leaves: Sequence[LogLeaf], nodes: Collection[LogNode]
    ) -> int:
        if self.fail is not None:
            raise self.fail
        self.appends.append(len(leaves))
        return await self.inner.append(expected_size, leaves, nodes)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


async def test_the_appender_commits_concurrent_appends_together(storage: Storage) -> None:
    store = CountingStore(storage.log)
    log = make_log(store)  # type: ignore[arg-type]
    appender = Appender(log, max_batch=1000, window_ms=5)
    requests = [[entry(1000 * c + k) for k in range(c % 3 + 1)] for c in range(200)]
    results = await asyncio.gather(*(appender.append(r) for r in requests))
    assert store.appends == [sum(len(r) for r in requests)]
    assert appender.batches == 1
    seen: list[int] = []
    for request, indices in zip(requests, results, strict=True):
        assert indices == list(range(indices[0], indices[0] + len(request)))
        stored = await log.entries(indices[0], indices[-1] + 1)
        assert stored == [e.encode() for e in request]
        seen += indices
    assert sorted(seen) == list(range(await log.size()))


async def test_the_appender_respects_its_batch_bound(storage: Storage) -> None:
    store = CountingStore(storage.log)
    log = make_log(store)  # type: ignore[arg-type]
    appender = Appender(log, max_batch=10, window_ms=0)
    singles = [appender.append([entry(i)]) for i in range(25)]
    large = appender.append([entry(100 + i) for i in range(15)])
    await asyncio.gather(*singles, large)
    assert max(store.appends) == 15  # the large call alone
    assert all(n <= 10 for n in store.appends if n != 15)
    assert sum(store.appends) == 40
    assert await appender.append([]) == []


async def test_a_failed_batch_fails_each_of_its_callers_and_the_next_one_works(
    storage: Storage,
) -> None:
    store = CountingStore(storage.log)
    log = make_log(store)  # type: ignore[arg-type]
    appender = Appender(log, window_ms=1)
    store.fail = RuntimeError("disk on fire")
    results = await asyncio.gather(
        *(appender.append([entry(i)]) for i in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) for r in results)
    store.fail = None
    assert await appender.append([entry(7)]) == [0]
    # A malformed entry fails its own caller before it is queued.
    with pytest.raises(LocalError):
        await appender.append([b"raw bytes"])  # type: ignore[list-item]
    assert await log.append([entry(8), entry(9)]) == [1, 2]
    tree = MemoryTree(hash_leaf(e.encode()) for e in (entry(7), entry(8), entry(9)))
    assert await log.root(3) == tree.root()


async def test_a_cancelled_caller_does_not_stop_the_batch(storage: Storage) -> None:
    log = make_log(storage.log)
    appender = Appender(log, window_ms=50)
    cancelled = asyncio.create_task(appender.append([entry(0)]))
    others = [asyncio.create_task(appender.append([entry(i)])) for i in (1, 2)]
    await asyncio.sleep(0)  # all three are queued; the batch waits for its window
    cancelled.cancel()
    assert sorted([*await asyncio.gather(*others)]) == [[1], [2]]
    assert cancelled.cancelled()
    # Its entry was committed with the batch all the same, as with any lost reply.
    assert await log.entries(0, 3) == [entry(i).encode() for i in range(3)]


def test_appender_and_log_refuse_bad_configuration() -> None:
    async def body() -> None:
        storage = await open_memory()
        with pytest.raises(ConfigurationError):
            Appender(make_log(storage.log), max_batch=0)
        with pytest.raises(ConfigurationError):
            Appender(make_log(storage.log), window_ms=-1)
        with pytest.raises(LocalError):
            Log(storage.log, LOG_SIGNER, "bad\norigin", lambda: 0)
        with pytest.raises(ConfigurationError):
            Log(storage.log, LOG_SIGNER, ORIGIN, lambda: 0, witnesses=[LOG_SIGNER.verifier_key])
        with pytest.raises(ConfigurationError):
            Log(storage.log, LOG_SIGNER, ORIGIN, lambda: 0, min_checkpoint_interval_ms=-1)
        await storage.close()

    asyncio.run(body())


# ============================================================================= integrity


async def test_a_second_writer_is_noticed_and_the_batch_recomputed(storage: Storage) -> None:
    first, second = make_log(storage.log), make_log(storage.log)
    tree = MemoryTree()
    await append_all(first, tree, [5])
    await append_all(second, tree, [3])  # second loads the frontier at size 5
    await append_all(first, tree, [2])  # first's frontier is stale: conflict, reload, retry
    await append_all(second, tree, [7])
    assert await first.root(17) == tree.root()
    note = await second.checkpoint()
    assert verify_checkpoint(note, first.verifier_key).checkpoint.root_hash == tree.root()


class TamperingStore(CountingStore):
    """Serves other hashes for some subtrees once told to: a store whose history changed."""

    def __init__(self, inner: LogStore) -> None:
        super().__init__(inner)
        self.tampered: set[tuple[int, int]] = set()

    async def hashes(self, keys: Sequence[tuple[int, int]]) -> tuple[bytes | None, ...]:
        found = await self.inner.hashes(keys)
        return tuple(
            b"\xee" * 32 if k in self.tampered and h is not None else h
            for k, h in zip(keys, found, strict=True)
        )


async def test_the_log_refuses_to_sign_a_tree_that_rewrote_its_history(storage: Storage) -> None:
    store = TamperingStore(storage.log)
    log = make_log(store)  # type: ignore[arg-type]
    await log.append_batch([entry(i) for i in range(6)])
    signed = await log.checkpoint()
    await log.append_batch([entry(i) for i in range(6, 20)])
    # Leaf 0 rewritten, with every subtree above it recomputed to match.
    store.tampered = {(level, 0) for level in range(5)}
    with pytest.raises(LocalError, match="not consistent"):
        await log.checkpoint()
    assert await log.latest_checkpoint() == signed


async def test_a_store_missing_a_subtree_is_a_local_error(storage: Storage) -> None:
    await storage.log.append(0, [LogLeaf(b"a", hash_leaf(b"a"))], [])
    await storage.log.append(1, [LogLeaf(b"b", hash_leaf(b"b"))], [LogNode(1, 0, b"\x00" * 7)])
    log = make_log(storage.log)
    with pytest.raises(LocalError):
        await log.root(2)  # a 7-byte "hash" is not a SHA-256 subtree
    source = await StoreNodeSource.prefetch(storage.log, 1, lambda s: inclusion_proof(s, 0, 1))
    with pytest.raises(LocalError):
        source.hash_at(0, 0)  # not prefetched: a one-leaf proof reads nothing


# ============================================================================= durability


async def test_the_log_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "durable.db"
    tree = MemoryTree()
    storage = await open_sqlite(path)
    log = make_log(storage.log)
    await append_all(log, tree, [13, 1, 50])
    note = await log.add_cosignatures(cosign_checkpoint(await log.checkpoint(), WITNESS_A, 42))
    await append_all(log, tree, [7])  # appended after the checkpoint
    await storage.close()

    storage = await open_sqlite(path)
    log = make_log(storage.log)
    assert await log.size() == tree.size == 71
    assert await log.latest_checkpoint() == note
    bundle = await log.proof_bundle(40)
    verify_proof_bundle(
        bundle,
        leaf_data=entry(40).encode(),
        log_key=log.verifier_key,
        witnesses=WITNESS_KEYS,
        quorum=1,
    )
    await append_all(log, tree, [9, 30])  # the frontier comes back from the store
    new = verify_checkpoint(await log.checkpoint(), log.verifier_key).checkpoint
    assert new.root_hash == tree.root()
    old = verify_checkpoint(note, log.verifier_key).checkpoint
    verify_checkpoint_consistency(old, new, await log.consistency_proof(old.size, new.size))
    await storage.close()


# ============================================================================= scale


async def test_a_100k_entry_sqlite_log_serves_inclusion_and_consistency_proofs(
    tmp_path: Path,
) -> None:
    n, batch = 100_000, 10_000
    storage = await open_sqlite(tmp_path / "large.db")
    try:
        log = make_log(storage.log)
        tree = MemoryTree()
        for start in range(0, n, batch):
            entries = [entry(i) for i in range(start, start + batch)]
            await log.append_batch(entries)
            for e in entries:
                tree.append(e.encode())
        checkpoint = verify_checkpoint(await log.checkpoint(), log.verifier_key).checkpoint
        assert (checkpoint.size, checkpoint.root_hash) == (n, tree.root())
        for index in (0, 1, 4095, 65_536, 77_777, n - 1):
            proof = await log.inclusion_proof(index, n)
            assert proof == tree.inclusion_proof(index, n)
            verify_inclusion(hash_leaf(entry(index).encode()), index, n, proof, tree.root())
        for old in (1, 2, 1000, 65_536, 99_999):
            proof = await log.consistency_proof(old, n)
            verify_consistency(old, n, proof, tree.root(old), tree.root())
        proof = await log.inclusion_proof(31_337, 50_001)
        verify_inclusion(
            hash_leaf(entry(31_337).encode()), 31_337, 50_001, proof, tree.root(50_001)
        )
    finally:
        await storage.close()
