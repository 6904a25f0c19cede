"""The DKG: all honest, cheating dealers, complaints, the state machine, encodings."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from overt.access import (
    DealerCommitment,
    DestroyedShare,
    DkgFailed,
    DkgParameters,
    DkgParticipant,
    DkgState,
    DkgStateError,
    DkgTranscript,
    EpochKeyShare,
    Round1Message,
    session_id,
    transcript_from_messages,
)
from overt.access.dkg import ComplaintAnswer, Complaints, DealtShare, qualify
from overt.access.threshold import lagrange_at_zero
from overt.crypto import DeterministicRng, Point, Scalar
from overt.errors import DecodeError, InvalidMessage, LocalError, ProtocolViolation

from .support import bad_share_to, run_dkg


def _secret_from(shares: dict[int, EpochKeyShare], indices: list[int]) -> Scalar:
    """Test-only reconstruction of x from t shares (the system never does this)."""
    lam = lagrange_at_zero(indices)
    total = Scalar.from_int(0)
    for j in indices:
        total = total + lam[j] * shares[j].secret
    return total


def _agree(shares: dict[int, EpochKeyShare]) -> DkgTranscript:
    transcripts = {s.transcript for s in shares.values()}
    assert len(transcripts) == 1
    (tr,) = transcripts
    for j, s in shares.items():
        s.check()
        assert Point.base_mul(s.secret) == tr.verification_key(j)
    return tr


def test_all_honest_5_of_3() -> None:
    shares, run = run_dkg(5, 3)
    tr = _agree(shares)
    assert tr.qualified == (1, 2, 3, 4, 5)
    assert all(p.state is DkgState.DONE for p in run.participants.values())
    # Anyone recomputes the transcript from the broadcast messages alone.
    assert transcript_from_messages(run.params, run.commitments, run.complaints, {}) == tr
    # Every t-subset interpolates the same x, and x·G is Y.
    x = _secret_from(shares, [1, 2, 3])
    assert Point.base_mul(x) == tr.public_key()
    assert Point.base_mul(_secret_from(shares, [2, 4, 5])) == tr.public_key()
    # t-1 shares do not (with overwhelming probability).
    lam = lagrange_at_zero([1, 2])
    two = lam[1] * shares[1].secret + lam[2] * shares[2].secret
    assert Point.base_mul(two) != tr.public_key()


def test_cheating_dealer_is_disqualified_and_the_rest_agree() -> None:
    shares, run = run_dkg(5, 3, tamper={2: bad_share_to([4])}, silent_answers=frozenset({2}))
    assert run.complaints[4].dealers == (2,)
    assert all(not c.dealers for j, c in run.complaints.items() if j != 4)
    honest = {j: s for j, s in shares.items() if j != 2}
    tr = _agree(honest)
    assert tr.qualified == (1, 3, 4, 5)
    q = qualify(run.params, run.commitments, run.complaints, run.answers)
    assert q.disqualified == (2,)
    # Y is the sum of the qualified dealers' constant commitments only.
    y = run.commitments[1].commitments[0]
    for i in (3, 4, 5):
        y = y + run.commitments[i].commitments[0]
    assert tr.public_key() == y
    assert Point.base_mul(_secret_from(shares, [1, 4, 5])) == y
    # The cheater, who saw its own (unsent) answer, is alone in another view.
    assert shares[2].transcript != tr


def test_dealer_answering_with_a_bad_share_is_disqualified() -> None:
    def answer_badly(out: Round1Message) -> Round1Message:
        return bad_share_to([1, 3])(out)

    shares, run = run_dkg(5, 3, tamper={5: answer_badly})
    # Dealer 5 answered with the true shares (its polynomial is honest, only its round-1 shares
    # were wrong), so it stays qualified and the accusers adopt the revealed shares.
    tr = _agree(shares)
    assert tr.qualified == (1, 2, 3, 4, 5)
    assert [j for j, _ in run.answers[5].revealed] == [1, 3]
    # A forged answer (wrong revealed share) disqualifies.
    forged = ComplaintAnswer(
        run.params.session_id,
        5,
        tuple((j, s + Scalar.from_int(1)) for j, s in run.answers[5].revealed),
    )
    q = qualify(run.params, run.commitments, run.complaints, {5: forged})
    assert 5 in q.disqualified


def test_false_complaint_is_answered_and_dismissed() -> None:
    shares, run = run_dkg(5, 3, false_accusers={3: (1,)})
    assert run.complaints[3].dealers == (1,)
    tr = _agree(shares)
    assert tr.qualified == (1, 2, 3, 4, 5)


def test_bad_proof_of_knowledge_is_disqualified_without_complaint() -> None:
    def bad_pok(out: Round1Message) -> Round1Message:
        c = out.commitment
        return Round1Message(replace(c, proof=c.proof[:32] + bytes(32)), out.shares)

    shares, run = run_dkg(5, 3, tamper={1: bad_pok})
    assert all(not c.dealers for c in run.complaints.values())
    # The honest custodians agree; the cheater alone sees its own, untampered commitment.
    assert _agree({j: s for j, s in shares.items() if j != 1}).qualified == (2, 3, 4, 5)


def test_rogue_commitment_copy_is_refused() -> None:
    """A dealer replaying another's C_0 (to cancel or steer Y) cannot prove knowledge of it."""

    _, run = run_dkg(3, 2)
    c1, c3 = run.commitments[1], run.commitments[3]
    stolen = DealerCommitment(c3.session_id, 3, (c1.commitments[0], *c3.commitments[1:]), c1.proof)
    with pytest.raises(InvalidMessage):
        stolen.verify(run.params)


def test_too_few_qualified_fails() -> None:
    tamper = {i: bad_share_to([1, 2, 3, 4, 5]) for i in (1, 2, 3)}
    with pytest.raises(DkgFailed, match="only 2 dealers qualified"):
        run_dkg(5, 3, tamper=tamper, silent_answers=frozenset({1, 2, 3}))


def test_missing_share_draws_a_complaint() -> None:
    def drop(out: Round1Message) -> Round1Message:
        return Round1Message(out.commitment, tuple(s for s in out.shares if s.recipient != 2))

    shares, run = run_dkg(4, 2, tamper={4: drop})
    assert run.complaints[2].dealers == (4,)
    assert _agree(shares).qualified == (1, 2, 3, 4)  # answered: the share is now public


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(min_value=2, max_value=6).flatmap(
        lambda n: st.tuples(st.just(n), st.integers(min_value=2, max_value=n))
    ),
    st.integers(min_value=0, max_value=2**16),
)
def test_any_small_n_t(nt: tuple[int, int], seed: int) -> None:
    n, t = nt
    shares, _ = run_dkg(n, t, seed=seed)
    tr = _agree(shares)
    first = list(range(1, t + 1))
    last = list(range(n - t + 1, n + 1))
    assert Point.base_mul(_secret_from(shares, first)) == tr.public_key()
    assert Point.base_mul(_secret_from(shares, last)) == tr.public_key()


# ----------------------------------------------------------------------------- state machine


def test_out_of_order_call_sticks_in_error() -> None:
    params = DkgParameters(bytes(32), 1, 3, 2)
    p = DkgParticipant(params, 1, DeterministicRng(1))
    with pytest.raises(DkgStateError):
        p.finalize()
    assert p.state is DkgState.ERROR
    with pytest.raises(DkgStateError):
        p.round1()


def test_peer_messages_checked_without_state_change() -> None:
    params = DkgParameters(bytes(32), 1, 3, 2)
    other = DkgParameters(b"\x01" * 32, 1, 3, 2)
    ps = {i: DkgParticipant(params, i, DeterministicRng(i)) for i in (1, 2)}
    stranger = DkgParticipant(other, 2, DeterministicRng(9))
    out1, out2 = ps[1].round1(), ps[2].round1()
    foreign = stranger.round1()
    p = ps[1]
    with pytest.raises(ProtocolViolation, match="another session"):
        p.receive_round1(foreign.commitment, foreign.share_for(1))
    with pytest.raises(ProtocolViolation, match="our own"):
        p.receive_round1(out1.commitment, None)
    with pytest.raises(ProtocolViolation, match="recipient"):
        p.receive_round1(out2.commitment, out2.share_for(3))
    p.receive_round1(out2.commitment, out2.share_for(1))
    p.receive_round1(out2.commitment, out2.share_for(1))  # the same again is harmless
    ps3 = DkgParticipant(params, 2, DeterministicRng(77)).round1()
    with pytest.raises(ProtocolViolation, match="two commitments"):
        p.receive_round1(ps3.commitment, None)
    assert p.state is DkgState.ROUND1


def test_parameters_validated() -> None:
    for args in [
        (bytes(31), 1, 3, 2),
        (bytes(32), 1, 1, 1),
        (bytes(32), 1, 3, 4),
        (bytes(32), -1, 3, 2),
    ]:
        with pytest.raises(LocalError):
            DkgParameters(*args)
    with pytest.raises(LocalError):
        DkgParticipant(DkgParameters(bytes(32), 1, 3, 2), 4, DeterministicRng(1))
    a = session_id("overt.example", 7, 0, [b"k1", b"k2"])
    assert a != session_id("overt.example", 7, 1, [b"k1", b"k2"])
    assert a != session_id("overt.example", 8, 0, [b"k1", b"k2"])
    assert len(a) == 32


# ----------------------------------------------------------------------------- encodings


def test_every_message_round_trips_and_is_strict() -> None:
    shares, run = run_dkg(4, 3, tamper={2: bad_share_to([3])})
    p = DkgParticipant(run.params, 1, DeterministicRng(5))
    out = p.round1()
    samples: list[tuple[Any, bytes]] = [
        (DealerCommitment, out.commitment.encode()),
        (DealtShare, out.shares[0].encode()),
        (Complaints, run.complaints[3].encode()),
        (ComplaintAnswer, run.answers[2].encode()),
        (DkgTranscript, shares[1].transcript.encode()),
    ]
    for cls, data in samples:
        again = cls.decode(data)
        assert again.encode() == data
        with pytest.raises(DecodeError):
            cls.decode(data + b"\x00")
        with pytest.raises(DecodeError):
            cls.decode(data[:-1])
        with pytest.raises(DecodeError):
            cls.decode(b"\x02" + data[1:])
    with pytest.raises(DecodeError):
        DealtShare.decode(out.commitment.encode())  # another kind


def test_share_at_rest_and_destruction() -> None:
    shares, _ = run_dkg(5, 3)
    s = shares[3]
    data = s.encode()
    back = EpochKeyShare.decode(data)
    assert back.index == 3 and back.transcript == s.transcript
    assert back.secret.raw == s.secret.raw
    assert "redacted" in repr(s) and s.secret.raw.hex() not in repr(s)
    # A stored share whose secret does not match its transcript is refused.
    forged = data[:3] + Scalar.from_int(5).raw + data[35:]
    with pytest.raises(DecodeError, match="does not match"):
        EpochKeyShare.decode(forged)
    tomb = s.destroy()
    assert isinstance(tomb, DestroyedShare)
    assert DestroyedShare.decode(tomb.encode()) == tomb
    assert not hasattr(tomb, "secret")
    with pytest.raises(DecodeError):
        EpochKeyShare.decode(tomb.encode())  # no way back
    assert s.secret.raw not in tomb.encode()
    dealt = DealtShare(bytes(32), 1, 2, Scalar.from_int(9))
    assert "redacted" in repr(dealt)


def test_coefficients_dropped_after_finalize() -> None:
    shares, run = run_dkg(3, 2)
    for p in run.participants.values():
        assert p._coefficients == ()
    assert shares
