"""RFC 9162 §2.1 Merkle trees: hashing, inclusion proofs and consistency proofs.

Hashing is exactly that of RFC 9162 (and RFC 6962): a leaf hash is SHA-256(0x00 ‖ data), an
interior node is SHA-256(0x01 ‖ left ‖ right), and the Merkle Tree Hash (MTH) of a list splits
it at the largest power of two smaller than its length.

Proof *generation* runs over a :class:`NodeSource`: anything that can return the hash of a
complete (perfect) subtree, addressed by ``(level, index)`` — the subtree covering leaves
``[index·2^level, (index+1)·2^level)``. Every hash a proof needs is either such a subtree or the
right edge of the tree, which folds O(log n) of them, so a persistent store serves a proof at any
size — including a past size — with O(log n) lookups and no recomputation. :class:`MemoryTree` is
the in-memory reference source. :class:`CompactRange` keeps only the tree's right edge, what a
monitor or auditor needs to recompute the root of a log it downloads entry by entry.

Proof *verification* (RFC 9162 §2.1.3.2 and §2.1.4.2) is pure and takes bytes. Every failure,
including a malformed argument such as an index outside the tree, raises
:class:`overt.errors.InvalidMessage` without a reason. A consistency proof from size 0 is
refused, as in the published test data this module is checked against. Misuse of a generator
(an index or size that the source does not cover) raises :class:`overt.errors.LocalError`.

This module never sees storage, sockets, clocks, keys or the formats of entries and
checkpoints: leaf data and hashes are opaque bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final, Protocol

from overt.crypto import constant_time_eq, sha256
from overt.errors import InvalidMessage, LocalError

HASH_LEN: Final = 32
"""Length of every leaf, node and root hash (SHA-256)."""

MAX_TREE_SIZE: Final = (1 << 63) - 1
"""Largest tree size (and so largest index + 1) accepted anywhere: a signed 64-bit integer."""

MAX_INCLUSION_PROOF_HASHES: Final = 63
"""An inclusion proof in a tree of at most :data:`MAX_TREE_SIZE` leaves has at most 63 hashes."""

MAX_CONSISTENCY_PROOF_HASHES: Final = 64
"""A consistency proof up to :data:`MAX_TREE_SIZE` leaves has at most 63 + 1 hashes."""

_LEAF_PREFIX: Final = b"\x00"
_NODE_PREFIX: Final = b"\x01"

EMPTY_ROOT: Final = sha256(b"")
"""MTH({}) — the root hash of the empty tree."""


def hash_leaf(data: bytes) -> bytes:
    """MTH({d}) = SHA-256(0x00 ‖ d)."""
    return sha256(_LEAF_PREFIX + bytes(data))


def hash_node(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 ‖ left ‖ right)."""
    return sha256(_NODE_PREFIX + left + right)


def _split_point(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def mth(entries: Sequence[bytes]) -> bytes:
    """The Merkle Tree Hash of a list of leaf *data* (not leaf hashes).

    Computed bottom-up in O(n) hashes and O(log n) memory; the result equals the recursive
    definition of RFC 9162 §2.1.1.
    """
    return root_from_leaf_hashes(hash_leaf(e) for e in entries)


def root_from_leaf_hashes(leaf_hashes: Iterable[bytes]) -> bytes:
    """The root hash of the tree whose leaves have the given hashes, in order."""
    # A stack of complete subtrees of strictly decreasing size, as in MemoryTree.append.
    stack: list[tuple[int, bytes]] = []
    for h in leaf_hashes:
        if len(h) != HASH_LEN:
            raise LocalError("a leaf hash must be 32 bytes")
        level, node = 0, bytes(h)
        while stack and stack[-1][0] == level:
            _, left = stack.pop()
            node = hash_node(left, node)
            level += 1
        stack.append((level, node))
    if not stack:
        return EMPTY_ROOT
    # The right edge: fold the remaining complete subtrees from the smallest upwards.
    _, root = stack.pop()
    while stack:
        _, left = stack.pop()
        root = hash_node(left, root)
    return root


class CompactRange:
    """The right edge of the tree over leaves ``[0, size)``: what a verifier keeps to follow a
    growing log in O(log n) memory.

    ``hashes`` holds one complete-subtree hash per set bit of ``size``, largest (leftmost)
    first — the subtrees of the RFC 9162 decomposition of ``[0, size)``. Appending a leaf hash
    merges equal-sized subtrees as :class:`MemoryTree` does; :meth:`root` folds them from the
    right into MTH(D[0:size]). A monitor that downloads entries appends their leaf hashes and
    compares :meth:`root` with a signed checkpoint's root: equal roots mean the entries are
    exactly the log's leaves. ``(size, hashes)`` is the whole state, so it can be stored and
    restored (a state that does not fit its size raises :class:`LocalError`).
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self, size: int = 0, hashes: Iterable[bytes] = ()) -> None:
        state = [bytes(h) for h in hashes]
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_TREE_SIZE:
            raise LocalError("a compact range's size must be in 0..MAX_TREE_SIZE")
        if len(state) != size.bit_count() or any(len(h) != HASH_LEN for h in state):
            raise LocalError("a compact range holds one 32-byte hash per set bit of its size")
        self._size = size
        self._hashes = state

    @property
    def size(self) -> int:
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """The complete subtrees' hashes, largest first (the state to persist)."""
        return tuple(self._hashes)

    def append(self, leaf_hash: bytes) -> None:
        """Add the leaf whose RFC 9162 leaf hash is ``leaf_hash`` (see :func:`hash_leaf`)."""
        if len(leaf_hash) != HASH_LEN:
            raise LocalError("a leaf hash must be 32 bytes")
        if self._size >= MAX_TREE_SIZE:
            raise LocalError("the tree is full")
        node = bytes(leaf_hash)
        size = self._size
        # Each trailing one bit of the size is a subtree of the new leaf's height: merge it.
        while size & 1:
            node = hash_node(self._hashes.pop(), node)
            size >>= 1
        self._hashes.append(node)
        self._size += 1

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """:meth:`append` each of ``leaf_hashes``, in order."""
        for h in leaf_hashes:
            self.append(h)

    def root(self) -> bytes:
        """MTH(D[0:size]): the root hash of the leaves appended so far."""
        if not self._hashes:
            return EMPTY_ROOT
        root = self._hashes[-1]
        for left in reversed(self._hashes[:-1]):
            root = hash_node(left, root)
        return root

    def copy(self) -> CompactRange:
        return CompactRange(self._size, self._hashes)

    def __repr__(self) -> str:
        return f"CompactRange(size={self._size})"


# ----------------------------------------------------------------------------- node sources


class NodeSource(Protocol):
    """Read access to the complete subtrees of an append-only Merkle tree.

    ``size`` is the number of leaves. ``hash_at(level, index)`` returns the 32-byte hash of the
    perfect subtree over leaves ``[index·2^level, (index+1)·2^level)``; it is only called for
    subtrees that lie entirely within ``size`` (level 0 is the leaf hashes). A store answers
    from what it persisted; an absent node is a bug of the store and may raise
    :class:`overt.errors.LocalError`.
    """

    @property
    def size(self) -> int: ...

    def hash_at(self, level: int, index: int) -> bytes: ...


class MemoryTree:
    """The in-memory :class:`NodeSource`: every level of every complete subtree.

    Each level is one contiguous ``bytearray`` of 32-byte hashes (level 0 holds the leaf
    hashes), so memory is about 64 bytes per leaf. ``append`` costs O(1) amortized hashes
    (O(log n) at worst). Roots and proofs for the current or any past size cost O(log n)
    lookups.
    """

    __slots__ = ("_levels",)

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        self._levels: list[bytearray] = [bytearray()]
        for h in leaf_hashes:
            self.append_leaf_hash(h)

    @property
    def size(self) -> int:
        return len(self._levels[0]) // HASH_LEN

    def append(self, data: bytes) -> int:
        """Append a leaf with this data; return its index."""
        return self.append_leaf_hash(hash_leaf(data))

    def append_leaf_hash(self, h: bytes) -> int:
        """Append a leaf whose leaf hash is ``h``; return its index."""
        if len(h) != HASH_LEN:
            raise LocalError("a leaf hash must be 32 bytes")
        index = self.size
        if index >= MAX_TREE_SIZE:
            raise LocalError("the tree is full")
        node = bytes(h)
        level = 0
        while True:
            row = self._levels[level]
            row += node
            if (len(row) // HASH_LEN) % 2:
                break
            # This level now ends in a complete pair: their parent completes the level above.
            node = hash_node(bytes(row[-2 * HASH_LEN : -HASH_LEN]), node)
            level += 1
            if level == len(self._levels):
                self._levels.append(bytearray())
        return index

    def hash_at(self, level: int, index: int) -> bytes:
        if not (0 <= level < len(self._levels) and index >= 0):
            raise LocalError(f"no complete subtree at level {level}, index {index}")
        start = index * HASH_LEN
        h = bytes(self._levels[level][start : start + HASH_LEN])
        if len(h) != HASH_LEN:
            raise LocalError(f"no complete subtree at level {level}, index {index}")
        return h

    def root(self, size: int | None = None) -> bytes:
        """The root hash at ``size`` leaves (default: the current size)."""
        return root_at(self, self.size if size is None else size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """The inclusion proof of leaf ``index`` in the tree of ``size`` leaves (default: now)."""
        return inclusion_proof(self, index, self.size if size is None else size)

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        """The consistency proof from ``size1`` to ``size2`` leaves (default: now)."""
        return consistency_proof(self, size1, self.size if size2 is None else size2)


def _check_covered(source: NodeSource, size: int) -> None:
    if not 0 <= size <= source.size:
        raise LocalError(f"size {size} outside the source's {source.size} leaves")


def _perfect(source: NodeSource, level: int, index: int) -> bytes:
    h = source.hash_at(level, index)
    if len(h) != HASH_LEN:
        raise LocalError("the node source returned a hash that is not 32 bytes")
    return h


def subtree_hash(source: NodeSource, start: int, end: int) -> bytes:
    """MTH(D[start:end]) for a subtree that occurs in RFC 9162's recursion.

    Such a range is either a perfect subtree or the right edge of a tree: ``start`` is a
    multiple of the largest power of two not exceeding ``end - start``. It is folded from at
    most log2(end - start) + 1 perfect subtrees.
    """
    _check_covered(source, end)
    n = end - start
    if start < 0 or n <= 0:
        raise LocalError(f"[{start}, {end}) is not a range of leaves")
    top = 1 << (n.bit_length() - 1)
    if start % top:
        raise LocalError(f"[{start}, {end}) is not a subtree of a Merkle tree")
    pieces: list[bytes] = []
    pos = start
    for level in range(n.bit_length() - 1, -1, -1):
        if n >> level & 1:
            pieces.append(_perfect(source, level, pos >> level))
            pos += 1 << level
    acc = pieces.pop()
    while pieces:
        acc = hash_node(pieces.pop(), acc)
    return acc


def root_at(source: NodeSource, size: int) -> bytes:
    """The root hash of the first ``size`` leaves of ``source``."""
    _check_covered(source, size)
    return EMPTY_ROOT if size == 0 else subtree_hash(source, 0, size)


def inclusion_proof(source: NodeSource, index: int, size: int) -> list[bytes]:
    """PATH(index, D[0:size]) of RFC 9162 §2.1.3.1, leaf sibling first."""
    _check_covered(source, size)
    if not 0 <= index < size:
        raise LocalError(f"index {index} is not in a tree of {size} leaves")
    path: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split_point(hi - lo)
        if index < lo + k:
            path.append(subtree_hash(source, lo + k, hi))
            hi = lo + k
        else:
            path.append(subtree_hash(source, lo, lo + k))
            lo += k
    path.reverse()
    return path


def consistency_proof(source: NodeSource, size1: int, size2: int) -> list[bytes]:
    """PROOF(size1, D[0:size2]) of RFC 9162 §2.1.4.1; empty when the sizes are equal.

    A proof from size 0 is not defined here (raises :class:`LocalError`), matching
    :func:`verify_consistency`.
    """
    _check_covered(source, size2)
    if not 0 < size1 <= size2:
        raise LocalError(f"no consistency proof from size {size1} to {size2}")
    proof: list[bytes] = []
    m = size1
    lo, hi = 0, size2
    complete = True  # the "b" flag of SUBPROOF: the old tree is a complete subtree here
    while m != hi - lo:
        k = _split_point(hi - lo)
        if m <= k:
            proof.append(subtree_hash(source, lo + k, hi))
            hi = lo + k
        else:
            proof.append(subtree_hash(source, lo, lo + k))
            lo += k
            m -= k
            complete = False
    if not complete:
        proof.append(subtree_hash(source, lo, hi))
    proof.reverse()
    return proof


# ----------------------------------------------------------------------------- verification


def _check_hashes(proof: Sequence[bytes], limit: int) -> None:
    if len(proof) > limit or any(len(p) != HASH_LEN for p in proof):
        raise InvalidMessage()


def root_from_inclusion_proof(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes]
) -> bytes:
    """The root that ``proof`` implies for leaf ``index`` of a ``size``-leaf tree.

    RFC 9162 §2.1.3.2 steps 1–5. Raises :class:`InvalidMessage` if the proof does not have
    the shape that ``index`` and ``size`` require.
    """
    if not 0 <= index < size <= MAX_TREE_SIZE or len(leaf_hash) != HASH_LEN:
        raise InvalidMessage()
    _check_hashes(proof, MAX_INCLUSION_PROOF_HASHES)
    fn, sn = index, size - 1
    r = bytes(leaf_hash)
    for p in proof:
        if sn == 0:
            raise InvalidMessage()
        if fn & 1 or fn == sn:
            r = hash_node(p, r)
            # Skip the levels where this node has no right sibling (the right edge).
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = hash_node(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise InvalidMessage()
    return r


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise :class:`InvalidMessage` unless ``proof`` shows leaf ``index`` of ``root``."""
    computed = root_from_inclusion_proof(leaf_hash, index, size, proof)
    if not constant_time_eq(computed, bytes(root)):
        raise InvalidMessage()


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Raise :class:`InvalidMessage` unless ``proof`` shows ``root1`` is a prefix of ``root2``.

    RFC 9162 §2.1.4.2. Equal sizes need an empty proof and equal roots; ``size1 == 0`` is
    refused.
    """
    if not 0 < size1 <= size2 <= MAX_TREE_SIZE:
        raise InvalidMessage()
    _check_hashes(proof, MAX_CONSISTENCY_PROOF_HASHES)
    if size1 == size2:
        if proof or not constant_time_eq(bytes(root1), bytes(root2)):
            raise InvalidMessage()
        return
    if not proof:
        raise InvalidMessage()
    path = list(proof)
    if size1 & (size1 - 1) == 0:
        # The old tree is a complete subtree of the new one: its root is the starting node.
        path.insert(0, bytes(root1))
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise InvalidMessage()
        if fn & 1 or fn == sn:
            fr = hash_node(c, fr)
            sr = hash_node(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = hash_node(sr, c)
        fn >>= 1
        sn >>= 1
    ok_old = constant_time_eq(fr, bytes(root1))
    ok_new = constant_time_eq(sr, bytes(root2))
    if sn != 0 or not ok_old or not ok_new:
        raise InvalidMessage()
