"""CompactRange: the right edge of a Merkle tree, as a monitor keeps it.

Its root must equal MemoryTree's (itself checked against RFC 9162's recursive definition and
published vectors) at every size, however the leaves arrive, and its state must round-trip.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from overt.crypto import sha256
from overt.errors import LocalError
from overt.transparency.merkle import (
    EMPTY_ROOT,
    MAX_TREE_SIZE,
    CompactRange,
    MemoryTree,
    hash_leaf,
    mth,
)


def leaf(i: int) -> bytes:
    return hash_leaf(i.to_bytes(4, "big"))


def test_roots_equal_memory_tree_at_every_size_up_to_300() -> None:
    tree = MemoryTree()
    cr = CompactRange()
    assert cr.root() == EMPTY_ROOT == tree.root()
    for i in range(300):
        tree.append_leaf_hash(leaf(i))
        cr.append(leaf(i))
        assert cr.size == tree.size == i + 1
        assert cr.root() == tree.root(), i
        assert len(cr.hashes) == cr.size.bit_count()


def test_root_is_the_mth_of_the_entries() -> None:
    entries = [bytes([i]) * i for i in range(37)]
    cr = CompactRange()
    cr.extend(hash_leaf(e) for e in entries)
    assert cr.root() == mth(entries)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=70), min_size=1, max_size=12))
def test_random_batches_and_restored_state_agree_with_memory_tree(batches: list[int]) -> None:
    tree = MemoryTree()
    cr = CompactRange()
    n = 0
    for batch in batches:
        hashes = [leaf(n + j) for j in range(batch)]
        n += batch
        for h in hashes:
            tree.append_leaf_hash(h)
        # A monitor persists (size, hashes) between checks and resumes from them.
        cr = CompactRange(cr.size, cr.hashes)
        cr.extend(hashes)
        assert cr.root() == tree.root()
        assert cr.size == tree.size


def test_copy_is_independent() -> None:
    cr = CompactRange()
    cr.extend(leaf(i) for i in range(5))
    other = cr.copy()
    other.append(leaf(5))
    assert cr.size == 5 and other.size == 6
    assert cr.root() != other.root()


@pytest.mark.parametrize(
    ("size", "hashes"),
    [
        (1, []),  # one set bit, no hash
        (3, [bytes(32)]),  # two set bits, one hash
        (2, [bytes(31)]),  # a short hash
        (-1, []),
        (MAX_TREE_SIZE + 1, []),
    ],
)
def test_a_state_that_does_not_fit_its_size_is_refused(size: int, hashes: list[bytes]) -> None:
    with pytest.raises(LocalError):
        CompactRange(size, hashes)


def test_a_leaf_hash_must_be_32_bytes() -> None:
    with pytest.raises(LocalError):
        CompactRange().append(b"short")


def test_a_changed_leaf_changes_the_root() -> None:
    a, b = CompactRange(), CompactRange()
    a.extend(leaf(i) for i in range(9))
    b.extend(leaf(i) for i in range(8))
    b.append(sha256(b"not leaf 8"))
    assert a.root() != b.root()
