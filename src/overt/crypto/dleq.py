"""Chaum-Pedersen proofs of discrete-logarithm equality on ristretto255, in RFC 9497's format.

This is RFC 9497 §2.2 exactly — ``GenerateProof`` with ``ComputeCompositesFast``,
``VerifyProof`` with ``ComputeComposites``, the seed, composite and challenge transcripts, and
the 64-byte proof ``SerializeScalar(c) || SerializeScalar(s)`` — for the ristretto255-SHA512
group (``HashToScalar`` is :func:`overt.crypto.h2c.hash_to_scalar`, ``Hash`` is SHA-512). The one
generalisation is that RFC 9497's ``contextString`` is a parameter: with
``b"OPRFV1-\\x01-ristretto255-SHA512"`` the proofs are byte-for-byte those of RFC 9497's VOPRF
mode, and Overt passes its own context (see :func:`overt_context`) so that its proofs can never
be replayed as, or confused with, an OPRF server's.

A proof convinces a verifier that one secret scalar ``k`` satisfies ``B = k·A`` and
``D[i] = k·C[i]`` for every ``i``. Overt's escrow custodians use it with ``A = G``,
``B = x_i·G`` (their verification key), ``C = [R, ...]`` and ``D = [x_i·R, ...]``.

The proof randomness comes only from the :class:`overt.crypto.Rng` handed in. Every failure to
verify — wrong length, a non-canonical scalar, mismatched inputs, a wrong proof — raises the same
:class:`overt.errors.InvalidMessage`, without a reason.

This module knows nothing of custodians, warrants, OPRF modes or wire formats: scalars and
points in, 64 bytes out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from overt.crypto._hash import constant_time_eq, sha512
from overt.crypto._ristretto import POINT_LEN, SCALAR_LEN, Point, Scalar
from overt.crypto._rng import Rng
from overt.crypto.h2c import MAX_DST_LEN, hash_to_scalar
from overt.errors import DecodeError, InvalidMessage

#: A proof is ``c || s``, two canonical scalars.
PROOF_LEN: Final = 2 * SCALAR_LEN
#: Composite weights are indexed by a two-byte counter, so a batch has at most 2^16 pairs.
MAX_BATCH: Final = 1 << 16
#: RFC 9497 §4: ``HashToScalar`` uses ``"HashToScalar-" || contextString`` unless told otherwise.
HASH_TO_SCALAR_DST_PREFIX: Final = b"HashToScalar-"
#: RFC 9497 §2.2.1: the composite seed is hashed under ``"Seed-" || contextString``.
SEED_DST_PREFIX: Final = b"Seed-"
#: Labels closing the composite and challenge transcripts (RFC 9497 §2.2).
COMPOSITE_LABEL: Final = b"Composite"
CHALLENGE_LABEL: Final = b"Challenge"
#: The longest context such that the ``HashToScalar`` tag stays within RFC 9380's 255 bytes.
MAX_CONTEXT_LEN: Final = MAX_DST_LEN - len(HASH_TO_SCALAR_DST_PREFIX)
#: Overt's own contexts are ``OVERT_CONTEXT_PREFIX || label``.
OVERT_CONTEXT_PREFIX: Final = b"OvertDLEQ-v1-"

_IDENTITY: Final = Point(bytes(POINT_LEN))
_GENERATOR: Final = Point.base_mul(Scalar.from_int(1))
_LEN_BYTES: Final = 2


def overt_context(label: str) -> bytes:
    """The context string of one Overt use of DLEQ proofs, e.g. ``overt_context("escrow-share")``.

    Each use (each statement shape) should have its own label, so that a proof made for one can
    never be accepted for another.
    """
    if not label or not label.isascii():
        raise ValueError("a DLEQ context label is a non-empty ASCII string")
    return _checked_context(OVERT_CONTEXT_PREFIX + label.encode("ascii"))


def _checked_context(context: bytes) -> bytes:
    if not 0 < len(context) <= MAX_CONTEXT_LEN:
        raise ValueError(f"a DLEQ context is 1 to {MAX_CONTEXT_LEN} bytes")
    return context


def _framed(data: bytes) -> bytes:
    """``I2OSP(len(data), 2) || data``."""
    return len(data).to_bytes(_LEN_BYTES, "big") + data


def _composite_weights(
    b: Point, c: Sequence[Point], d: Sequence[Point], context: bytes
) -> list[Scalar]:
    """The per-pair scalars ``d_i`` of RFC 9497 ``ComputeComposites``."""
    seed = sha512(_framed(b.raw) + _framed(SEED_DST_PREFIX + context))
    framed_seed = _framed(seed)
    dst = HASH_TO_SCALAR_DST_PREFIX + context
    return [
        hash_to_scalar(
            framed_seed
            + i.to_bytes(_LEN_BYTES, "big")
            + _framed(c_i.raw)
            + _framed(d_i.raw)
            + COMPOSITE_LABEL,
            dst,
        )
        for i, (c_i, d_i) in enumerate(zip(c, d, strict=True))
    ]


def _linear_combination(weights: Sequence[Scalar], points: Sequence[Point]) -> Point:
    total = _IDENTITY
    for w, p in zip(weights, points, strict=True):
        total = p.mul(w) + total
    return total


def _mul(p: Point, s: Scalar) -> Point:
    """``s·p``, through the faster fixed-base multiplication when ``p`` is the generator."""
    return Point.base_mul(s) if p == _GENERATOR else p.mul(s)


def _challenge(elements: Sequence[Point], context: bytes) -> Scalar:
    """``HashToScalar`` of the framed ``B, M, Z, t2, t3`` and the label ``"Challenge"``."""
    transcript = b"".join(_framed(p.raw) for p in elements) + CHALLENGE_LABEL
    return hash_to_scalar(transcript, HASH_TO_SCALAR_DST_PREFIX + context)


def generate_proof(
    k: Scalar,
    A: Point,
    B: Point,
    C: Sequence[Point],
    D: Sequence[Point],
    *,
    rng: Rng,
    context: bytes,
) -> bytes:
    """Prove that ``B = k·A`` and ``D[i] = k·C[i]`` for all ``i`` (RFC 9497 ``GenerateProof``).

    The caller is responsible for the statement being true; a proof of a false statement simply
    fails to verify. The nonce ``r`` is one ``Scalar.random(rng)`` draw (64 bytes reduced).
    Unequal or empty lists, or more than :data:`MAX_BATCH` pairs, are a :class:`ValueError`; an
    identity element anywhere in the statement raises :class:`InvalidMessage`, as everywhere
    in :class:`Point` arithmetic.
    """
    context = _checked_context(context)
    if len(C) != len(D) or not 0 < len(C) <= MAX_BATCH:
        raise ValueError(f"a DLEQ proof needs 1 to {MAX_BATCH} pairs (C[i], D[i])")
    m = _linear_combination(_composite_weights(B, C, D, context), C)
    z = m.mul(k)
    r = Scalar.random(rng)
    t2 = _mul(A, r)
    t3 = m.mul(r)
    c = _challenge((B, m, z, t2, t3), context)
    s = r - c * k
    return c.raw + s.raw


def verify_proof(
    A: Point,
    B: Point,
    C: Sequence[Point],
    D: Sequence[Point],
    proof: bytes,
    *,
    context: bytes,
) -> None:
    """Return if ``proof`` shows ``B = k·A`` and ``D[i] = k·C[i]``; else raise InvalidMessage.

    RFC 9497 ``VerifyProof``. Malformed proofs (wrong length, scalars not reduced modulo the
    group order), unequal or empty lists and wrong proofs are all the same
    :class:`InvalidMessage`. A statement involving the identity element is refused too (RFC 9497
    never serializes it), as is, with negligible probability, an honest proof whose ``c`` or
    ``s`` is zero.
    """
    context = _checked_context(context)
    if len(C) != len(D) or not 0 < len(C) <= MAX_BATCH or len(proof) != PROOF_LEN:
        raise InvalidMessage()
    try:
        c = Scalar.from_bytes(proof[:SCALAR_LEN])
        s = Scalar.from_bytes(proof[SCALAR_LEN:])
    except DecodeError:
        raise InvalidMessage() from None
    weights = _composite_weights(B, C, D, context)
    m = _linear_combination(weights, C)
    z = _linear_combination(weights, D)
    t2 = _mul(A, s) + B.mul(c)
    t3 = m.mul(s) + z.mul(c)
    expected = _challenge((B, m, z, t2, t3), context)
    if not constant_time_eq(expected.raw, c.raw):
        raise InvalidMessage()
