"""Merkle tree hashing and proof generation, checked against a direct transcription of RFC 9162.

The reference functions below follow the recursive definitions of RFC 9162 §2.1 literally
(MTH, PATH, PROOF/SUBPROOF) over a Python list; the implementation under test works over a
NodeSource with O(log n) lookups. They must agree everywhere, and what is generated must verify.
"""

from __future__ import annotations

import base64
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from overt.crypto import sha256
from overt.errors import InvalidMessage, LocalError
from overt.transparency.merkle import (
    EMPTY_ROOT,
    MAX_CONSISTENCY_PROOF_HASHES,
    MAX_INCLUSION_PROOF_HASHES,
    MAX_TREE_SIZE,
    MemoryTree,
    consistency_proof,
    hash_leaf,
    hash_node,
    inclusion_proof,
    mth,
    root_at,
    root_from_inclusion_proof,
    root_from_leaf_hashes,
    subtree_hash,
    verify_consistency,
    verify_inclusion,
)

# ----------------------------------------------------------------------------- RFC 9162 reference


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: list[bytes]) -> bytes:
    n = len(d)
    if n == 0:
        return sha256(b"")
    if n == 1:
        return sha256(b"\x00" + d[0])
    k = _k(n)
    return sha256(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:]))


def ref_path(m: int, d: list[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def ref_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = _k(n)
    if m <= k:
        return [*ref_subproof(m, d[:k], b), ref_mth(d[k:])]
    return [*ref_subproof(m - k, d[k:], False), ref_mth(d[:k])]


def entries(n: int) -> list[bytes]:
    return [f"entry {i}".encode() for i in range(n)]


SMALL = 64
DATA = entries(SMALL)
TREE = MemoryTree()
for _e in DATA:
    TREE.append(_e)
REF_ROOTS = [ref_mth(DATA[:n]) for n in range(SMALL + 1)]


# ----------------------------------------------------------------------------- hashing


def test_hash_prefixes() -> None:
    assert hash_leaf(b"abc") == sha256(b"\x00abc")
    assert hash_node(b"L" * 32, b"R" * 32) == sha256(b"\x01" + b"L" * 32 + b"R" * 32)
    assert mth([]) == EMPTY_ROOT == sha256(b"")


def test_known_roots_of_the_rfc6962_leaves() -> None:
    # The eight leaves used by RFC 6962 test suites; roots as in tests/vectors/merkle
    # (consistency/1/happy-path.json for size 8, inclusion/0/happy-path.json for size 1).
    hexes = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
             "606162636465666768696a6b6c6d6e6f"]  # fmt: skip
    leaves = [bytes.fromhex(h) for h in hexes]
    assert (
        base64.b64encode(mth(leaves[:1])).decode() == "bjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB0="
    )
    assert base64.b64encode(mth(leaves)).decode() == "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg="


@pytest.mark.parametrize("n", range(SMALL + 1))
def test_roots_agree_with_rfc(n: int) -> None:
    assert mth(DATA[:n]) == REF_ROOTS[n]
    assert TREE.root(n) == REF_ROOTS[n]
    assert root_from_leaf_hashes(hash_leaf(e) for e in DATA[:n]) == REF_ROOTS[n]


def test_memory_tree_is_incremental() -> None:
    tree = MemoryTree()
    assert tree.size == 0
    assert tree.root() == EMPTY_ROOT
    for i, e in enumerate(DATA):
        assert tree.append(e) == i
        assert tree.root() == REF_ROOTS[i + 1]
    rebuilt = MemoryTree(hash_leaf(e) for e in DATA)
    assert rebuilt.root() == TREE.root()


def test_memory_tree_stores_every_complete_subtree() -> None:
    for level in range(7):
        width = 1 << level
        for index in range(SMALL // width):
            chunk = DATA[index * width : (index + 1) * width]
            assert TREE.hash_at(level, index) == ref_mth(chunk)
    with pytest.raises(LocalError):
        TREE.hash_at(7, 0)
    with pytest.raises(LocalError):
        TREE.hash_at(0, SMALL)


# ----------------------------------------------------------------------------- generation


@pytest.mark.parametrize("size", range(1, SMALL + 1))
def test_inclusion_proofs_all_indices(size: int) -> None:
    root = REF_ROOTS[size]
    for index in range(size):
        proof = TREE.inclusion_proof(index, size)
        assert proof == ref_path(index, DATA[:size])
        verify_inclusion(hash_leaf(DATA[index]), index, size, proof, root)
        # The proof is for this index only.
        for other in {index - 1, index + 1} & set(range(size)):
            if DATA[other] != DATA[index]:
                with pytest.raises(InvalidMessage):
                    verify_inclusion(hash_leaf(DATA[other]), index, size, proof, root)


@pytest.mark.parametrize("size2", range(1, SMALL + 1))
def test_consistency_proofs_all_pairs(size2: int) -> None:
    for size1 in range(1, size2 + 1):
        proof = TREE.consistency_proof(size1, size2)
        assert proof == ref_subproof(size1, DATA[:size2], True)
        verify_consistency(size1, size2, proof, REF_ROOTS[size1], REF_ROOTS[size2])
        if size1 < size2:
            with pytest.raises(InvalidMessage):
                verify_consistency(size1, size2, proof, REF_ROOTS[size1 - 1], REF_ROOTS[size2])
            with pytest.raises(InvalidMessage):
                verify_consistency(size1, size2, proof[:-1], REF_ROOTS[size1], REF_ROOTS[size2])
            with pytest.raises(InvalidMessage):
                verify_consistency(size1, size2, proof, REF_ROOTS[size2], REF_ROOTS[size1])


def test_generators_refuse_misuse() -> None:
    tree = MemoryTree(hash_leaf(e) for e in DATA[:5])
    for bad in [(5, 5), (-1, 5), (0, 6), (0, 0)]:
        with pytest.raises(LocalError):
            inclusion_proof(tree, *bad)
    for bad in [(0, 3), (4, 3), (1, 6), (-1, 2)]:
        with pytest.raises(LocalError):
            consistency_proof(tree, *bad)
    with pytest.raises(LocalError):
        root_at(tree, 6)
    with pytest.raises(LocalError):
        subtree_hash(tree, 1, 3)  # not a subtree: 1 is not a multiple of 2
    with pytest.raises(LocalError):
        tree.append_leaf_hash(b"short")
    with pytest.raises(LocalError):
        root_from_leaf_hashes([b"short"])


# ----------------------------------------------------------------------------- verification edges


def test_verification_rejects_malformed_arguments() -> None:
    leaf = hash_leaf(DATA[0])
    proof = TREE.inclusion_proof(0, 8)
    root = REF_ROOTS[8]
    verify_inclusion(leaf, 0, 8, proof, root)
    for args in [
        (leaf, 8, 8, proof, root),  # index == size
        (leaf, -1, 8, proof, root),
        (leaf, 0, 0, [], EMPTY_ROOT),
        (leaf[:31], 0, 8, proof, root),
        (leaf, 0, 8, [*proof[:-1], proof[-1] + b"\x00"], root),
        (leaf, 0, 8, [*proof, proof[-1]], root),
        (leaf, 0, MAX_TREE_SIZE + 1, proof, root),
        (leaf, 0, 8, [proof[0]] * (MAX_INCLUSION_PROOF_HASHES + 1), root),
    ]:
        with pytest.raises(InvalidMessage):
            verify_inclusion(*args)
    with pytest.raises(InvalidMessage):
        root_from_inclusion_proof(leaf, 0, 8, proof[:2])
    for c_args in [
        (0, 0, [], EMPTY_ROOT, EMPTY_ROOT),  # from size 0: refused by convention
        (0, 8, [], EMPTY_ROOT, root),
        (3, 2, [], REF_ROOTS[3], REF_ROOTS[2]),
        (8, 8, [root], root, root),  # equal sizes need an empty proof
        (4, 8, [b"\x00" * 32] * (MAX_CONSISTENCY_PROOF_HASHES + 1), REF_ROOTS[4], root),
    ]:
        with pytest.raises(InvalidMessage):
            verify_consistency(*c_args)


def test_invalid_message_is_uninformative() -> None:
    with pytest.raises(InvalidMessage) as info:
        verify_inclusion(hash_leaf(b"x"), 0, 1, [], REF_ROOTS[1])
    assert str(info.value) == "invalid message"


# ----------------------------------------------------------------------------- bigger trees


class CountingSource:
    """A NodeSource wrapper that counts lookups, as a store would count reads."""

    def __init__(self, inner: MemoryTree) -> None:
        self.inner = inner
        self.lookups = 0

    @property
    def size(self) -> int:
        return self.inner.size

    def hash_at(self, level: int, index: int) -> bytes:
        self.lookups += 1
        return self.inner.hash_at(level, index)


BIG_N = 5000
BIG_DATA = entries(BIG_N)
BIG_TREE = MemoryTree()
for _e in BIG_DATA:
    BIG_TREE.append(_e)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_random_inclusion_in_bigger_trees(data: st.DataObject) -> None:
    size = data.draw(st.integers(1, BIG_N), label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    source = CountingSource(BIG_TREE)
    proof = inclusion_proof(source, index, size)
    assert source.lookups <= 2 * size.bit_length() + 2
    root = root_at(BIG_TREE, size)
    verify_inclusion(hash_leaf(BIG_DATA[index]), index, size, proof, root)
    if proof:
        flip = data.draw(st.integers(0, len(proof) - 1), label="flip")
        bad = list(proof)
        bad[flip] = bytes([bad[flip][0] ^ 1]) + bad[flip][1:]
        with pytest.raises(InvalidMessage):
            verify_inclusion(hash_leaf(BIG_DATA[index]), index, size, bad, root)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_random_consistency_in_bigger_trees(data: st.DataObject) -> None:
    size2 = data.draw(st.integers(1, BIG_N), label="size2")
    size1 = data.draw(st.integers(1, size2), label="size1")
    source = CountingSource(BIG_TREE)
    proof = consistency_proof(source, size1, size2)
    assert source.lookups <= 3 * size2.bit_length() + 2
    root1, root2 = root_at(BIG_TREE, size1), root_at(BIG_TREE, size2)
    verify_consistency(size1, size2, proof, root1, root2)
    if size1 < size2:
        assert root1 != root2
        with pytest.raises(InvalidMessage):
            verify_consistency(size1, size2, proof, root2, root1)


def test_ref_agrees_on_a_few_big_sizes() -> None:
    for size in [1000, 1023, 1024, 1025, 4097]:
        assert root_at(BIG_TREE, size) == ref_mth(BIG_DATA[:size])
        index = size // 3
        assert inclusion_proof(BIG_TREE, index, size) == ref_path(index, BIG_DATA[:size])
        assert consistency_proof(BIG_TREE, index, size) == ref_subproof(
            index, BIG_DATA[:size], True
        )


class UniformSource:
    """A consistent virtual tree of any size whose leaves are all the same entry."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.levels = [hash_leaf(b"same")]
        for _ in range(63):
            self.levels.append(hash_node(self.levels[-1], self.levels[-1]))

    def hash_at(self, level: int, index: int) -> bytes:
        assert (index + 1) << level <= self.size
        return self.levels[level]


@pytest.mark.parametrize("size", [10**6, 2**40 + 12345, MAX_TREE_SIZE])
def test_proofs_at_huge_sizes(size: int) -> None:
    source = UniformSource(size)
    rng = random.Random(size)
    leaf = hash_leaf(b"same")
    for _ in range(20):
        index = rng.randrange(size)
        proof = inclusion_proof(source, index, size)
        assert len(proof) <= MAX_INCLUSION_PROOF_HASHES
        verify_inclusion(leaf, index, size, proof, root_at(source, size))
        size1 = rng.randrange(1, size + 1)
        cproof = consistency_proof(source, size1, size)
        assert len(cproof) <= MAX_CONSISTENCY_PROOF_HASHES
        verify_consistency(size1, size, cproof, root_at(source, size1), root_at(source, size))


@pytest.mark.slow
def test_a_million_entries_in_memory() -> None:
    n = 10**6
    tree = MemoryTree()
    for i in range(n):
        tree.append(i.to_bytes(4, "big"))
    root = tree.root()
    rng = random.Random(7)
    for _ in range(200):
        index = rng.randrange(n)
        source = CountingSource(tree)
        proof = inclusion_proof(source, index, n)
        assert source.lookups <= 2 * n.bit_length() + 2
        verify_inclusion(hash_leaf(index.to_bytes(4, "big")), index, n, proof, root)
        old = rng.randrange(1, n + 1)
        verify_consistency(old, n, tree.consistency_proof(old), tree.root(old), root)
