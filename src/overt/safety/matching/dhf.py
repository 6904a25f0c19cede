"""Threshold sharing and the *detectable hash function* that tells real shares from synthetic ones.

Two polynomials per account generation, both known only to the client:

* **Shamir** (over ``Z_l``, ``l`` the ristretto255 group order): ``f(x) = s + a_1·x + … +
  a_{t−1}·x^{t−1}``. Every voucher of image ``n`` carries the share ``(x_n, f(x_n))``; any ``t``
  shares give ``s = f(0)`` by Lagrange interpolation, ``t − 1`` say nothing about ``s``.
* **Detection** (over ``F_p``, ``p = 2^31 − 1``): a vector polynomial ``C(x) = c_0 + c_1·x + … +
  c_{t−2}·x^{t−2}`` with coefficients in ``F_p^D`` (``D`` = :attr:`width`). Image ``n`` carries
  the row ``v_n = C(x_n)``. Synthetic images carry a uniformly random share and a uniformly
  random row instead.

**Below threshold nothing is detectable.** For ``r ≤ t − 1`` real images with distinct
``x``, the map ``C ↦ (C(x_1), …, C(x_r))`` is onto ``(F_p^D)^r`` (a Vandermonde system of rank
``r``), so real rows are uniform and independent — exactly the distribution of synthetic rows —
and likewise real shares are uniform in ``Z_l``. The server's view of an opened image is the
same whether it is real or synthetic: no test, however long it runs, tells them apart.

**From ``t`` real images on, detection is linear algebra.** Write each opened image as the row
``[1, x, …, x^{t−2} | v] ∈ F_p^{t−1+D}``. Real rows lie in the ``(t−1)``-dimensional space
``{[a | a·C] : a ∈ F_p^{t−1}}``, so ``r ≥ t`` of them are linearly *dependent*; synthetic rows
are random vectors and, as long as there are at most ``D`` of them, linearly independent of
everything else except with probability about ``e/p^{D−e+1}``. So the rows that appear in a
linear dependency (the support of the left null space) are exactly the real ones
(:func:`identify_real`). This is the interleaved Reed–Solomon view of a noisy codeword: errors
(synthetic rows) in many interleaved columns are found from the syndrome's column space, as
long as there are fewer than the interleaving width.

With the real images found the server interpolates ``s`` from ``t`` of their shares
(:func:`interpolate_at_zero`) and checks that *every* identified share lies on that
polynomial (:func:`consistent`) before using ``s``; a wrong identification can therefore never
open anything silently.

**Several seeds in one account.** All devices of an account share one seed, but a device linked
before seeds were shared holds its own: its real rows lie in a second ``(t−1)``-dimensional
space, which meets the first only in 0 (except with probability about ``p^{−(D−t+2)}``). The
dependencies then split: every linear dependency among the rows is a sum of dependencies
within each seed's rows, so the real rows of one seed are found only once that seed has ``t``
of them, and :func:`real_classes` separates the seeds: the rows that are real fall into the
connected components of the matroid they form (computed from the fundamental circuits of one
basis — Krogdahl's theorem), one component per seed that reached ``t``. Each component is
checked and opened on its own.

The coordinates are public integers chosen by the client: ``x = device · G + (n mod G) + 1``
(``G`` images per generation, see :mod:`~overt.safety.matching.psi`), distinct per account
generation, below ``2^20`` and so valid in both fields.

Randomness comes from the :class:`~overt.crypto.Rng` handed in or from a seed. This module
knows no vouchers, keys or images.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
from numpy.typing import NDArray

from overt.crypto import GROUP_ORDER, Rng, hkdf_expand

DHF_PRIME: Final = (1 << 31) - 1
"""The detection field: the Mersenne prime 2^31 − 1 (products of two elements fit in int64)."""
DHF_ELEMENT_BYTES: Final = 4
_EXPAND_BLOCK: Final = 8160  # HKDF-SHA256's longest output

FieldRows = NDArray[np.int64]
"""A matrix over F_p, entries in 0..p−1."""


# ----------------------------------------------------------------------------- F_p helpers


def _reduce_u64(raw: bytes, count: int) -> FieldRows:
    """``count`` field elements from 8 bytes each (bias below 2^-33 per element)."""
    words = np.frombuffer(raw[: 8 * count], dtype=">u8").astype(np.uint64)
    out: FieldRows = (words % np.uint64(DHF_PRIME)).astype(np.int64)
    return out


def random_row(rng: Rng, width: int) -> FieldRows:
    """A uniformly random row of ``F_p^width`` (what a synthetic image carries)."""
    return _reduce_u64(rng.random_bytes(8 * width), width)


def derive_coefficients(seed: bytes, count: int, width: int) -> FieldRows:
    """``count × width`` detection coefficients expanded from a 32-byte secret seed."""
    need = 8 * count * width
    chunks: list[bytes] = []
    block = 0
    while sum(len(c) for c in chunks) < need:
        chunks.append(
            hkdf_expand(
                seed, b"Overt_DHF_coefficients_v1" + block.to_bytes(4, "big"), _EXPAND_BLOCK
            )
        )
        block += 1
    values = _reduce_u64(b"".join(chunks), count * width)
    return values.reshape(count, width)


def evaluate_rows(coefficients: FieldRows, x: int) -> FieldRows:
    """``C(x) = Σ_j c_j·x^j`` by Horner's rule; the zero row if there are no coefficients."""
    width = coefficients.shape[1]
    row = np.zeros(width, dtype=np.int64)
    xx = np.int64(x % DHF_PRIME)
    for j in range(coefficients.shape[0] - 1, -1, -1):
        row = (row * xx + coefficients[j]) % DHF_PRIME
    return row


def encode_row(row: FieldRows) -> bytes:
    return row.astype(">u4").tobytes()


def decode_row(raw: bytes, width: int) -> FieldRows | None:
    """The row of ``width`` elements, or None if any is not below p."""
    if len(raw) != DHF_ELEMENT_BYTES * width:
        return None
    row = np.frombuffer(raw, dtype=">u4").astype(np.int64)
    if bool(np.any(row >= DHF_PRIME)):
        return None
    return row


def _fundamental_circuits(m: FieldRows) -> list[set[int]]:
    """The fundamental circuits of the rows of ``m`` over F_p with respect to the basis that
    Gaussian elimination picks: one per row outside it, that row and the basis rows that
    express it. Their union is the set of rows in some linear dependency."""
    a = m.T.copy() % DHF_PRIME  # columns of `a` are the rows of m
    n_rows, n_cols = a.shape
    pivots: list[int] = []
    r = 0
    for c in range(n_cols):
        if r == n_rows:
            break
        nz = np.flatnonzero(a[r:, c])
        if nz.size == 0:
            continue
        p = r + int(nz[0])
        if p != r:
            a[[r, p]] = a[[p, r]]
        inv = pow(int(a[r, c]), DHF_PRIME - 2, DHF_PRIME)
        a[r] = (a[r] * inv) % DHF_PRIME
        factors = a[:, c].copy()
        factors[r] = 0
        rows = np.flatnonzero(factors)
        if rows.size:
            a[rows] = (a[rows] - (factors[rows, None] * a[r][None, :]) % DHF_PRIME) % DHF_PRIME
        pivots.append(c)
        r += 1
    pivot_set = set(pivots)
    circuits: list[set[int]] = []
    for f in (c for c in range(n_cols) if c not in pivot_set):
        # Null vector: z_f = 1, z_pivot(i) = −a[i, f]; its support is f and the pivots used.
        circuits.append({f, *(pivots[i] for i in range(len(pivots)) if a[i, f] != 0)})
    return circuits


def _left_null_support(m: FieldRows) -> set[int]:
    """Indices of the rows of ``m`` that take part in some linear dependency over F_p."""
    return set().union(*_fundamental_circuits(m))


def identify_real(xs: Sequence[int], rows: Sequence[FieldRows], threshold: int) -> list[int]:
    """Positions of the opened images whose detection rows are real (see the module doc).

    Returns an empty list when fewer than ``threshold`` real rows can be present (below
    threshold nothing is linearly dependent). ``xs`` must be distinct.
    """
    if len(xs) != len(rows) or len(set(xs)) != len(xs):
        raise ValueError("identify_real needs one distinct x per row")
    if len(xs) < threshold or not rows:
        return []
    return sorted(_left_null_support(_matrix(xs, rows, threshold)))


def _matrix(xs: Sequence[int], rows: Sequence[FieldRows], threshold: int) -> FieldRows:
    k = threshold - 1
    width = rows[0].shape[0]
    m = np.zeros((len(xs), k + width), dtype=np.int64)
    for i, (x, row) in enumerate(zip(xs, rows, strict=True)):
        power = 1
        for j in range(k):
            m[i, j] = power
            power = power * x % DHF_PRIME
        m[i, k:] = row
    return m


def real_classes(xs: Sequence[int], rows: Sequence[FieldRows], threshold: int) -> list[list[int]]:
    """The real rows (as :func:`identify_real`), split by the seed they come from: the
    connected components of their matroid (see the module doc), each sorted, largest first.
    With one seed this is ``[identify_real(...)]`` (or ``[]``)."""
    if len(xs) != len(rows) or len(set(xs)) != len(xs):
        raise ValueError("real_classes needs one distinct x per row")
    if len(xs) < threshold or not rows:
        return []
    parent: dict[int, int] = {}

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for circuit in _fundamental_circuits(_matrix(xs, rows, threshold)):
        members = sorted(circuit)
        for i in members:
            parent.setdefault(i, i)
        for i in members[1:]:
            parent[find(i)] = find(members[0])
    classes: dict[int, list[int]] = {}
    for i in sorted(parent):
        classes.setdefault(find(i), []).append(i)
    return sorted(classes.values(), key=lambda c: (-len(c), c[0]))


# ----------------------------------------------------------------------------- Shamir over Z_l


def derive_scalars(seed: bytes, count: int) -> list[int]:
    """``count`` integers mod l from a secret seed (64 expanded bytes each, bias < 2^-250)."""
    out = []
    for j in range(count):
        wide = hkdf_expand(seed, b"Overt_Shamir_coefficient_v1" + j.to_bytes(4, "big"), 64)
        out.append(int.from_bytes(wide, "little") % GROUP_ORDER)
    return out


def evaluate_polynomial(coefficients: Sequence[int], x: int) -> int:
    acc = 0
    for c in reversed(coefficients):
        acc = (acc * x + c) % GROUP_ORDER
    return acc


def interpolate_at_zero(points: Sequence[tuple[int, int]]) -> int:
    """Lagrange interpolation of ``f(0)`` through ``points`` (distinct x, all mod l)."""
    total = 0
    for i, (xi, yi) in enumerate(points):
        num, den = 1, 1
        for j, (xj, _) in enumerate(points):
            if i != j:
                num = num * xj % GROUP_ORDER
                den = den * (xj - xi) % GROUP_ORDER
        total = (total + yi * num * pow(den, -1, GROUP_ORDER)) % GROUP_ORDER
    return total


def interpolate_at(points: Sequence[tuple[int, int]], x: int) -> int:
    """Lagrange interpolation of ``f(x)`` through ``points``."""
    total = 0
    for i, (xi, yi) in enumerate(points):
        num, den = 1, 1
        for j, (xj, _) in enumerate(points):
            if i != j:
                num = num * (x - xj) % GROUP_ORDER
                den = den * (xi - xj) % GROUP_ORDER
        total = (total + yi * num * pow(den, -1, GROUP_ORDER)) % GROUP_ORDER
    return total


def consistent(points: Sequence[tuple[int, int]], threshold: int) -> bool:
    """Whether all ``points`` lie on the polynomial of degree < ``threshold`` through the first
    ``threshold`` of them."""
    if len(points) < threshold:
        return False
    base = list(points[:threshold])
    return all(interpolate_at(base, x) == y for x, y in points[threshold:])
