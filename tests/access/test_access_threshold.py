"""Threshold decryption: shares with batched proofs, dropping liars, combining t."""

from __future__ import annotations

import pytest

from overt.access import (
    ShareResponse,
    ThresholdNotMet,
    collect,
    combine,
    make_shares,
    verify_shares,
)
from overt.access.threshold import lagrange_at_zero
from overt.crypto import DeterministicRng, Point, Scalar
from overt.errors import DecodeError, InvalidMessage, LocalError

from .support import run_dkg


def _points(m: int, seed: int = 3) -> list[Point]:
    rng = DeterministicRng(seed)
    return [Point.base_mul(Scalar.random(rng)) for _ in range(m)]


def _x(shares: dict, indices: list[int]) -> Scalar:  # type: ignore[type-arg]
    lam = lagrange_at_zero(indices)
    total = Scalar.from_int(0)
    for j in indices:
        total = total + lam[j] * shares[j].secret
    return total


def test_3_of_5_recovers_exactly_x_R() -> None:
    shares, _ = run_dkg(5, 3)
    tr = shares[1].transcript
    pts = _points(8)
    responses = {j: make_shares(s, pts, DeterministicRng(j)) for j, s in shares.items()}
    x = _x(shares, [1, 2, 3])
    expected = [p.mul(x) for p in pts]
    c = collect(tr, pts, responses)
    assert list(c.points) == expected and c.used == (1, 2, 3) and c.rejected == ()
    for subset in ([1, 2, 3], [1, 4, 5], [2, 3, 5], [3, 4, 5]):
        assert combine({j: responses[j] for j in subset}, 3) == expected
    for j, r in responses.items():
        verify_shares(tr.verification_key(j), pts, r)


def test_wrong_share_is_caught_and_honest_ones_complete() -> None:
    shares, _ = run_dkg(5, 3)
    tr = shares[1].transcript
    pts = _points(4)
    responses = {j: make_shares(s, pts, DeterministicRng(j)) for j, s in shares.items()}
    evil = responses[1]
    bumped = (evil.shares[0] + Point.base_mul(Scalar.from_int(1)), *evil.shares[1:])
    responses[1] = ShareResponse(evil.epoch, 1, bumped, evil.proof)
    # A liar proving a share under another custodian's key, and a swapped index.
    responses[2] = ShareResponse(evil.epoch, 2, evil.shares, evil.proof)
    with pytest.raises(InvalidMessage):
        verify_shares(tr.verification_key(1), pts, responses[1])
    c = collect(tr, pts, responses)
    assert c.rejected == (1, 2) and c.used == (3, 4, 5)
    assert list(c.points) == [p.mul(_x(shares, [3, 4, 5])) for p in pts]
    # Combining unverified bad shares yields a wrong point (which recover() would refuse).
    assert combine({j: responses[j] for j in (1, 3, 4)}, 3) != list(c.points)


def test_fewer_than_t_valid() -> None:
    shares, _ = run_dkg(5, 3)
    tr = shares[1].transcript
    pts = _points(2)
    responses = {j: make_shares(shares[j], pts, DeterministicRng(j)) for j in (1, 2)}
    with pytest.raises(ThresholdNotMet, match="2 valid decryption shares, 3 needed"):
        collect(tr, pts, responses)
    bad = make_shares(shares[3], _points(2, seed=9), DeterministicRng(3))  # other points
    with pytest.raises(ThresholdNotMet) as info:
        collect(tr, pts, {**responses, 3: bad})
    assert info.value.rejected == (3,)
    with pytest.raises(ThresholdNotMet):
        combine(responses, 3)


def test_wrong_epoch_or_count_rejected() -> None:
    shares, _ = run_dkg(3, 2)
    other, _ = run_dkg(3, 2, seed=2, epoch=8)
    tr = shares[1].transcript
    pts = _points(3)
    responses = {j: make_shares(s, pts, DeterministicRng(j)) for j, s in shares.items()}
    responses[1] = make_shares(other[1], pts, DeterministicRng(1))
    c = collect(tr, pts, responses)
    assert c.rejected == (1,)
    with pytest.raises(InvalidMessage):
        verify_shares(tr.verification_key(2), pts[:2], responses[2])


def test_encoding_round_trip_and_bounds() -> None:
    shares, _ = run_dkg(3, 2)
    pts = _points(5)
    r = make_shares(shares[2], pts, DeterministicRng(1))
    assert ShareResponse.decode(r.encode()) == r
    with pytest.raises(DecodeError):
        ShareResponse.decode(r.encode() + b"\x00")
    with pytest.raises(LocalError):
        make_shares(shares[2], [], DeterministicRng(1))
    with pytest.raises(LocalError):
        lagrange_at_zero([1, 1])
