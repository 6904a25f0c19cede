"""The LogStore contract, written once and run on every backend (see ``support.BACKENDS``).

The store keeps leaves, the hashes of complete subtrees and signed checkpoints as opaque bytes:
these tests feed it hashes made by a stand-in function (not RFC 9162's), to show that it stores
what it is given and only checks positions, lengths and bounds. ``ModelLog`` computes which
nodes each append completes, the way the transparency log does.
"""

from __future__ import annotations

import asyncio

import pytest

from overt.crypto import sha256
from overt.errors import LimitExceeded, ProtocolViolation
from overt.storage import (
    InvalidArgument,
    LogLeaf,
    LogNode,
    Storage,
    StorageConflict,
    StorageUnavailable,
    StoredCheckpoint,
)
from overt.storage.interfaces import log_nodes_completed
from overt.storage.limits import (
    LOG_APPEND_BATCH_MAX,
    LOG_CHECKPOINT_MAX_LEN,
    LOG_ENTRY_MAX_LEN,
    LOG_HASH_MAX_LEN,
    LOG_HASHES_MAX,
    LOG_PAGE_MAX,
)

from .support import Backend


class ModelLog:
    """Every complete subtree's stand-in hash, level by level, and the batches that grow it."""

    def __init__(self) -> None:
        self.data: list[bytes] = []
        self.levels: list[list[bytes]] = [[]]

    @property
    def size(self) -> int:
        return len(self.data)

    def batch(self, entries: list[bytes]) -> tuple[int, list[LogLeaf], list[LogNode]]:
        """``(expected_size, leaves, nodes)`` for appending ``entries``; updates the model."""
        start = self.size
        leaves = [LogLeaf(e, sha256(b"leaf" + e)) for e in entries]
        nodes: list[LogNode] = []
        for leaf in leaves:
            self.data.append(leaf.data)
            self.levels[0].append(leaf.hash)
            level = 0
            while len(self.levels[level]) % 2 == 0:
                pair = self.levels[level][-2:]
                level += 1
                if level == len(self.levels):
                    self.levels.append([])
                node = LogNode(level, len(self.levels[level]), sha256(b"node" + b"".join(pair)))
                self.levels[level].append(node.hash)
                nodes.append(node)
        return start, leaves, nodes

    def hash(self, level: int, index: int) -> bytes | None:
        if level < len(self.levels) and index < len(self.levels[level]):
            return self.levels[level][index]
        return None


def entries(start: int, n: int) -> list[bytes]:
    return [b"entry-%d" % i for i in range(start, start + n)]


async def grow(s: Storage, model: ModelLog, n: int) -> None:
    expected, leaves, nodes = model.batch(entries(model.size, n))
    assert await s.log.append(expected, leaves, nodes) == model.size


async def assert_matches(s: Storage, model: ModelLog) -> None:
    assert await s.log.size() == model.size
    keys = [(level, i) for level, row in enumerate(model.levels) for i in range(len(row) + 1)]
    for start in range(0, len(keys), LOG_HASHES_MAX):
        chunk = keys[start : start + LOG_HASHES_MAX]
        assert await s.log.hashes(chunk) == tuple(model.hash(*k) for k in chunk)
    for level, index in keys[:: max(1, len(keys) // 50)]:
        assert await s.log.hash_at(level, index) == model.hash(level, index)
    for start in range(0, model.size, LOG_PAGE_MAX):
        page = model.data[start : start + LOG_PAGE_MAX]
        assert await s.log.leaves(start, start + LOG_PAGE_MAX) == tuple(page)


# ============================================================================= appends


def test_an_empty_log_has_nothing(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        assert await s.log.size() == 0
        assert await s.log.leaf(0) is None
        assert await s.log.leaves(0, 10) == ()
        assert await s.log.hash_at(0, 0) is None
        assert await s.log.hash_at(1, 0) is None
        assert await s.log.hashes([(0, 0), (5, 3)]) == (None, None)
        assert await s.log.get_checkpoint() is None
        assert await s.log.checkpoint_at(0) is None

    backend.run(body)


def test_appends_keep_leaves_and_every_completed_subtree(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        model = ModelLog()
        for n in (1, 1, 2, 3, 0, 7, 16, 1, 33, 100):
            await grow(s, model, n)
            await assert_matches(s, model)
        assert model.size == 164
        assert await s.log.leaf(0) == b"entry-0"
        assert await s.log.leaf(163) == b"entry-163"
        assert await s.log.leaf(164) is None
        assert await s.log.leaves(160, 170) == tuple(entries(160, 4))
        assert await s.log.leaves(170, 180) == ()
        assert await s.log.leaves(5, 5) == ()
        # Subtrees not complete yet are absent, also at a level whose earlier nodes exist.
        assert await s.log.hash_at(2, 41) is None  # covers [164, 168)
        assert await s.log.hash_at(2, 40) == model.hash(2, 40)
        assert await s.log.hash_at(7, 1) is None

    backend.run(body)


def test_one_large_batch_equals_many_small_ones(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        model = ModelLog()
        await grow(s, model, 1000)
        await assert_matches(s, model)
        small = ModelLog()
        for _ in range(10):
            small.batch(entries(small.size, 100))
        assert small.levels == model.levels

    backend.run(body)


def test_nodes_of_an_append_may_come_in_any_order(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        model = ModelLog()
        expected, leaves, nodes = model.batch(entries(0, 37))
        await s.log.append(expected, leaves, list(reversed(nodes)))
        await assert_matches(s, model)

    backend.run(body)


def test_the_store_keeps_the_bytes_it_is_given(backend: Backend) -> None:
    """Hashes are opaque: any non-empty bytes up to the bound, not only 32-byte digests."""

    async def body(s: Storage) -> None:
        leaves = [LogLeaf(b"", b"h"), LogLeaf(b"\x00" * 3, b"x" * LOG_HASH_MAX_LEN)]
        await s.log.append(0, leaves, [LogNode(1, 0, b"n" * 7)])
        assert await s.log.hashes([(0, 0), (0, 1), (1, 0)]) == (b"h", b"x" * 64, b"n" * 7)
        assert await s.log.leaves(0, 2) == (b"", b"\x00" * 3)

    backend.run(body)


def test_an_append_at_a_stale_size_is_a_conflict_and_stores_nothing(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        model = ModelLog()
        await grow(s, model, 5)
        other = ModelLog()
        expected, leaves, nodes = other.batch(entries(0, 3))
        with pytest.raises(StorageConflict) as caught:
            await s.log.append(expected, leaves, nodes)
        assert isinstance(caught.value, ProtocolViolation)
        assert caught.value.status_hint == 409
        # Ahead of the log is stale too.
        ahead = ModelLog()
        ahead.batch(entries(0, 6))
        expected, leaves, nodes = ahead.batch(entries(6, 2))
        with pytest.raises(StorageConflict):
            await s.log.append(expected, leaves, nodes)
        await assert_matches(s, model)

    backend.run(body)


def test_racing_appends_at_one_size_let_exactly_one_win(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        a, b = ModelLog(), ModelLog()
        batch_a = a.batch([b"a"] * 3)
        batch_b = b.batch([b"b"] * 4)
        results = await asyncio.gather(
            s.log.append(*batch_a), s.log.append(*batch_b), return_exceptions=True
        )
        won = [r for r in results if isinstance(r, int)]
        lost = [r for r in results if isinstance(r, StorageConflict)]
        assert len(won) == 1 and len(lost) == 1
        await assert_matches(s, a if won == [3] else b)

    backend.run(body)


def bad_node_sets(model: ModelLog) -> dict[str, tuple[int, list[LogLeaf], list[LogNode]]]:
    """Variants of appending 6 leaves to a log of 5, each wrong in one way."""
    expected, leaves, nodes = model.batch(entries(5, 6))  # 5 -> 11
    keys = sorted((n.level, n.index) for n in nodes)
    assert keys == sorted(log_nodes_completed(5, 11))
    h = b"h" * 32
    return {
        "missing": (expected, leaves, nodes[:-1]),
        "extra incomplete": (expected, leaves, [*nodes[:-1], LogNode(1, 5, h)]),
        "extra already complete": (expected, leaves, [*nodes[:-1], LogNode(1, 0, h)]),
        "duplicate": (expected, leaves, [*nodes[:-1], nodes[0]]),
        "level 0": (expected, leaves, [*nodes[:-1], LogNode(0, 5, h)]),
        "negative index": (expected, leaves, [*nodes[:-1], LogNode(1, -1, h)]),
        "empty hash": (expected, leaves, [*nodes[:-1], LogNode(1, 5, b"")]),
        "str hash": (expected, leaves, [*nodes[:-1], LogNode(1, 5, "h")]),  # type: ignore[arg-type]
        "tuple node": (expected, leaves, [*nodes[:-1], (1, 5, h)]),  # type: ignore[list-item]
        "empty leaf hash": (expected, [*leaves[:-1], LogLeaf(b"x", b"")], nodes),
        "str leaf data": (expected, [*leaves[:-1], LogLeaf("x", h)], nodes),  # type: ignore[arg-type]
        "negative size": (-1, leaves, nodes),
        "bool size": (True, leaves, nodes),
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing",
        "extra incomplete",
        "extra already complete",
        "duplicate",
        "level 0",
        "negative index",
        "empty hash",
        "str hash",
        "tuple node",
        "empty leaf hash",
        "str leaf data",
        "negative size",
        "bool size",
    ],
)
def test_an_append_with_the_wrong_nodes_or_values_is_refused_whole(
    backend: Backend, case: str
) -> None:
    async def body(s: Storage) -> None:
        model = ModelLog()
        await grow(s, model, 5)
        snapshot = ModelLog()
        snapshot.batch(entries(0, 5))
        expected, leaves, nodes = bad_node_sets(model)[case]
        with pytest.raises(InvalidArgument):
            await s.log.append(expected, leaves, nodes)
        await assert_matches(s, snapshot)

    backend.run(body)


def test_log_bounds_are_limits_and_refuse_the_whole_append(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        model = ModelLog()
        with pytest.raises(LimitExceeded) as caught:
            await s.log.append(0, [LogLeaf(b"x" * (LOG_ENTRY_MAX_LEN + 1), b"h")], [])
        assert caught.value.status_hint == 413
        await s.log.append(0, [LogLeaf(b"x" * LOG_ENTRY_MAX_LEN, b"h")], [])
        model.data.append(b"x" * LOG_ENTRY_MAX_LEN)
        model.levels[0].append(b"h")
        with pytest.raises(LimitExceeded):
            await s.log.append(1, [LogLeaf(b"", b"h" * (LOG_HASH_MAX_LEN + 1))], [])
        with pytest.raises(LimitExceeded):
            long_node = LogNode(1, 0, b"n" * (LOG_HASH_MAX_LEN + 1))
            await s.log.append(1, [LogLeaf(b"", b"h")], [long_node])
        too_many = [LogLeaf(b"", b"h")] * (LOG_APPEND_BATCH_MAX + 1)
        with pytest.raises(LimitExceeded):
            await s.log.append(1, too_many, [])
        with pytest.raises(LimitExceeded):
            await s.log.hashes([(0, 0)] * (LOG_HASHES_MAX + 1))
        assert await s.log.size() == 1
        assert await s.log.leaf(0) == b"x" * LOG_ENTRY_MAX_LEN

    backend.run(body)


def test_reads_refuse_positions_outside_the_contract(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        for call in (
            s.log.hash_at(-1, 0),
            s.log.hash_at(0, -1),
            s.log.hash_at(64, 0),
            s.log.hashes([(0, -1)]),
            s.log.hashes([(1, 2, 3)]),  # type: ignore[list-item]
            s.log.leaf(-1),
            s.log.leaves(-1, 3),
            s.log.leaves(5, 4),
            s.log.leaves(0, LOG_PAGE_MAX + 1),
            s.log.checkpoint_at(-1),
        ):
            with pytest.raises(InvalidArgument):
                await call
        assert await s.log.leaves(0, LOG_PAGE_MAX) == ()

    backend.run(body)


def test_nodes_completed_by_growth() -> None:
    assert list(log_nodes_completed(0, 1)) == []
    assert list(log_nodes_completed(0, 2)) == [(1, 0)]
    assert list(log_nodes_completed(3, 4)) == [(1, 1), (2, 0)]
    assert list(log_nodes_completed(5, 11)) == [(1, 2), (1, 3), (1, 4), (2, 1), (3, 0)]
    assert list(log_nodes_completed(7, 7)) == []
    n = (1 << 62) + 5
    assert list(log_nodes_completed(n, n + 1)) == [(1, n >> 1)]


# ============================================================================= checkpoints


def test_checkpoints_are_kept_by_size_and_the_largest_is_the_latest(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        model = ModelLog()
        await s.log.set_checkpoint(0, b"cp-0")
        assert await s.log.get_checkpoint() == StoredCheckpoint(0, b"cp-0")
        await grow(s, model, 10)
        await s.log.set_checkpoint(4, b"cp-4")
        await s.log.set_checkpoint(10, b"cp-10")
        assert await s.log.get_checkpoint() == StoredCheckpoint(10, b"cp-10")
        # The same size again replaces (cosignatures are added this way).
        await s.log.set_checkpoint(10, b"cp-10 cosigned")
        assert await s.log.get_checkpoint() == StoredCheckpoint(10, b"cp-10 cosigned")
        assert await s.log.checkpoint_at(0) == b"cp-0"
        assert await s.log.checkpoint_at(4) == b"cp-4"
        assert await s.log.checkpoint_at(10) == b"cp-10 cosigned"
        assert await s.log.checkpoint_at(7) is None

    backend.run(body)


def test_the_latest_checkpoint_never_moves_backwards(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        await grow(s, ModelLog(), 10)
        await s.log.set_checkpoint(5, b"cp-5")
        await s.log.set_checkpoint(8, b"cp-8")
        for size in (3, 7):
            with pytest.raises(StorageConflict):
                await s.log.set_checkpoint(size, b"older")
        assert await s.log.checkpoint_at(3) is None
        # An older checkpoint that is stored may still be replaced (late cosignatures)...
        await s.log.set_checkpoint(5, b"cp-5 cosigned")
        assert await s.log.checkpoint_at(5) == b"cp-5 cosigned"
        # ...without becoming the latest.
        assert await s.log.get_checkpoint() == StoredCheckpoint(8, b"cp-8")

    backend.run(body)


def test_a_checkpoint_beyond_the_tree_or_out_of_bounds_is_refused(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        await grow(s, ModelLog(), 3)
        with pytest.raises(InvalidArgument):
            await s.log.set_checkpoint(4, b"future")
        with pytest.raises(InvalidArgument):
            await s.log.set_checkpoint(2, b"")
        with pytest.raises(InvalidArgument):
            await s.log.set_checkpoint(-1, b"cp")
        with pytest.raises(LimitExceeded):
            await s.log.set_checkpoint(3, b"c" * (LOG_CHECKPOINT_MAX_LEN + 1))
        assert await s.log.get_checkpoint() is None
        await s.log.set_checkpoint(3, b"c" * LOG_CHECKPOINT_MAX_LEN)

    backend.run(body)


# ============================================================================= lifetime


LOG_OPERATIONS = {
    "append": lambda s: s.log.append(0, [], []),
    "size": lambda s: s.log.size(),
    "hash_at": lambda s: s.log.hash_at(0, 0),
    "hashes": lambda s: s.log.hashes([(0, 0)]),
    "leaf": lambda s: s.log.leaf(0),
    "leaves": lambda s: s.log.leaves(0, 1),
    "set_checkpoint": lambda s: s.log.set_checkpoint(0, b"cp"),
    "get_checkpoint": lambda s: s.log.get_checkpoint(),
    "checkpoint_at": lambda s: s.log.checkpoint_at(0),
}


@pytest.mark.parametrize("operation", sorted(LOG_OPERATIONS))
def test_a_closed_log_store_raises_instead_of_answering_absent(
    backend: Backend, operation: str
) -> None:
    async def body(s: Storage) -> None:
        await LOG_OPERATIONS[operation](s)  # works while open
        await s.close()
        with pytest.raises(StorageUnavailable):
            await LOG_OPERATIONS[operation](s)

    backend.run(body)


def test_the_log_survives_closing_and_reopening(backend: Backend) -> None:
    if not backend.durable:
        pytest.skip(f"the {backend.name} backend is not durable")
    model = ModelLog()

    async def write(s: Storage) -> None:
        await grow(s, model, 21)
        await s.log.set_checkpoint(21, b"cp-21")

    async def read_and_extend(s: Storage) -> None:
        await assert_matches(s, model)
        assert await s.log.get_checkpoint() == StoredCheckpoint(21, b"cp-21")
        await grow(s, model, 11)
        await assert_matches(s, model)

    backend.run(write)
    backend.run(read_and_extend)
