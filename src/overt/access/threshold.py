"""Threshold decryption shares: each custodian's ``x_j·R_i`` with one batched DLEQ proof, and
the LEA's check and Lagrange combination.

A custodian ``j`` asked (and willing, see :mod:`overt.access.custodian_policy`) to help open
the access fields with points ``R_1..R_m`` answers with ``D_ij = x_j·R_i`` and *one* proof, RFC
9497's batched Chaum–Pedersen DLEQ (:func:`overt.crypto.dleq.generate_proof`), that the same
``x_j`` links ``G → X_j`` and every ``R_i → D_ij``. The proof's context string is
:data:`SHARE_CONTEXT` (``overt_context("escrow-share")``), so it is never valid as an OPRF
proof or as any other Overt proof.

The LEA checks each answer against ``X_j`` from the epoch's DKG transcript, drops any custodian
whose proof fails (:func:`collect` reports which), and combines any ``t`` valid answers with the
Lagrange coefficients at zero, ``x·R_i = Σ_{j∈S} λ_j·D_ij``, ``λ_j = Π_{m∈S,m≠j} m/(m−j)``.
:func:`overt.protocol.access.recover` then turns ``x·R_i`` into the message key, and refuses a
wrong point, so a combination of bad shares can never yield a wrong key silently.

Errors: a failed proof, a wrong number of shares or an answer for another epoch or custodian is
:class:`~overt.errors.InvalidMessage` (no reason); fewer than ``t`` valid answers is
:class:`~overt.access.errors.ThresholdNotMet` (which says who was dropped). Randomness (the
proof nonce) comes only from the :class:`~overt.crypto.Rng` passed in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Self

from overt.access.dkg import DKG_VERSION, DkgTranscript, EpochKeyShare
from overt.access.errors import ThresholdNotMet
from overt.access.limits import MAX_CUSTODIANS, MAX_SHARE_BATCH
from overt.crypto import GROUP_ORDER, POINT_LEN, Point, Rng, Scalar
from overt.crypto.dleq import PROOF_LEN, generate_proof, overt_context, verify_proof
from overt.errors import DecodeError, InvalidMessage, LocalError
from overt.wire import Reader, Writer

SHARE_CONTEXT: Final = overt_context("escrow-share")
"""The DLEQ context string of decryption-share proofs."""

SHARE_RESPONSE_KIND: Final = 8
"""Kind byte of an encoded :class:`ShareResponse` (after the DKG kinds 1..7)."""

_G: Final = Point.base_mul(Scalar.from_int(1))


@dataclass(frozen=True, slots=True)
class ShareResponse:
    """Custodian ``index``'s answer for one epoch: ``D_i = x_j·R_i`` in request order, and
    the batched DLEQ proof."""

    epoch: int
    index: int
    shares: tuple[Point, ...]
    proof: bytes

    def encode(self) -> bytes:
        """``version ‖ kind ‖ epoch u32 ‖ index u8 ‖ count u16 ‖ points ‖ proof[64]``."""
        w = Writer().u8(DKG_VERSION).u8(SHARE_RESPONSE_KIND).u32(self.epoch).u8(self.index)
        w.u16(len(self.shares))
        for d in self.shares:
            w.fixed(d.raw, POINT_LEN)
        return w.fixed(self.proof, PROOF_LEN).getvalue()

    @classmethod
    def read(cls, r: Reader) -> Self:
        r.version(DKG_VERSION)
        if r.u8("kind") != SHARE_RESPONSE_KIND:
            raise DecodeError(f"{r.what}: not a share response")
        epoch, index, count = r.u32("epoch"), r.u8("index"), r.u16("count")
        if not 1 <= index <= MAX_CUSTODIANS or not 0 < count <= MAX_SHARE_BATCH:
            raise DecodeError(f"{r.what}: index or count out of range")
        shares = tuple(Point.from_bytes(r.fixed(POINT_LEN, "share")) for _ in range(count))
        return cls(epoch, index, shares, r.fixed(PROOF_LEN, "proof"))

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = Reader(data, "ShareResponse")
        out = cls.read(r)
        r.finish()
        return out


def _check_points(points: Sequence[Point]) -> None:
    if not 0 < len(points) <= MAX_SHARE_BATCH:
        raise LocalError(f"a share request holds 1..{MAX_SHARE_BATCH} points")


def make_shares(share: EpochKeyShare, points: Sequence[Point], rng: Rng) -> ShareResponse:
    """The custodian's side: ``x_j·R_i`` for every point and one proof for all of them.

    Call it only after :func:`overt.access.custodian_policy.decide` approved the request.
    A point at the identity is an :class:`InvalidMessage`.
    """
    _check_points(points)
    x = share.secret
    shares = tuple(p.mul(x) for p in points)
    proof = generate_proof(
        x, _G, share.verification_key, points, shares, rng=rng, context=SHARE_CONTEXT
    )
    return ShareResponse(share.epoch, share.index, shares, proof)


def verify_shares(
    verification_key: Point, points: Sequence[Point], response: ShareResponse
) -> None:
    """Return if ``response`` proves ``D_i = x_j·R_i`` for ``X_j = verification_key``; else
    :class:`InvalidMessage` (whatever is wrong: count, proof)."""
    if len(response.shares) != len(points) or not 0 < len(points) <= MAX_SHARE_BATCH:
        raise InvalidMessage()
    verify_proof(
        _G, verification_key, points, response.shares, response.proof, context=SHARE_CONTEXT
    )


def lagrange_at_zero(indices: Sequence[int]) -> dict[int, Scalar]:
    """``λ_j = Π_{m≠j} m/(m−j)`` mod the group order, for distinct indices in 1..n."""
    if len(set(indices)) != len(indices) or any(not 0 < j < GROUP_ORDER for j in indices):
        raise LocalError("Lagrange interpolation needs distinct non-zero indices")
    out = {}
    for j in indices:
        num, den = 1, 1
        for m in indices:
            if m != j:
                num = num * m % GROUP_ORDER
                den = den * (m - j) % GROUP_ORDER
        out[j] = Scalar.from_int(num * pow(den, -1, GROUP_ORDER))
    return out


def combine(responses: Mapping[int, ShareResponse], t: int) -> list[Point]:
    """``x·R_i`` for every point, from ``t`` *already verified* responses (keyed by custodian
    index; the ``t`` lowest are used). :class:`ThresholdNotMet` if fewer than ``t``."""
    if t < 1:
        raise LocalError("the threshold is at least 1")
    if len(responses) < t:
        raise ThresholdNotMet(len(responses), t)
    chosen = sorted(responses)[:t]
    for j in chosen:
        if responses[j].index != j:
            raise LocalError(
                f"response filed under custodian {j} is custodian {responses[j].index}'s"
            )
    counts = {len(responses[j].shares) for j in chosen}
    if len(counts) != 1:
        raise InvalidMessage()
    lam = lagrange_at_zero(chosen)
    (m,) = counts
    out = []
    for i in range(m):
        acc: Point | None = None
        for j in chosen:
            term = responses[j].shares[i].mul(lam[j])
            acc = term if acc is None else acc + term
        assert acc is not None
        out.append(acc)
    return out


@dataclass(frozen=True, slots=True)
class Combined:
    """What :func:`collect` yields: ``x·R_i`` per point, who was used and who was dropped."""

    points: tuple[Point, ...]
    used: tuple[int, ...]
    rejected: tuple[int, ...]


def collect(
    transcript: DkgTranscript,
    points: Sequence[Point],
    responses: Mapping[int, ShareResponse],
) -> Combined:
    """The LEA's side: verify every answer against the transcript's ``X_j``, drop the ones
    that fail (or answer for another epoch or custodian), combine ``t`` valid ones.

    :class:`ThresholdNotMet` (listing the dropped custodians) if fewer than ``t`` are valid.
    """
    _check_points(points)
    valid: dict[int, ShareResponse] = {}
    rejected: list[int] = []
    for j, response in sorted(responses.items()):
        try:
            if response.index != j or response.epoch != transcript.epoch:
                raise InvalidMessage()
            if not 1 <= j <= transcript.params.n:
                raise InvalidMessage()
            verify_shares(transcript.verification_key(j), points, response)
        except InvalidMessage:
            rejected.append(j)
            continue
        valid[j] = response
    t = transcript.threshold
    if len(valid) < t:
        raise ThresholdNotMet(len(valid), t, rejected)
    combined = combine(valid, t)
    return Combined(tuple(combined), tuple(sorted(valid)[:t]), tuple(rejected))


__all__ = [
    "SHARE_CONTEXT",
    "Combined",
    "ShareResponse",
    "collect",
    "combine",
    "lagrange_at_zero",
    "make_shares",
    "verify_shares",
]
