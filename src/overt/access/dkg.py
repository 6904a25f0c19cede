"""Distributed key generation for escrow epochs: Pedersen's DKG with Feldman commitments.

No dealer ever holds an epoch's secret ``x``. For parameters ``(n, t)`` each custodian
``i ∈ {1..n}`` deals a random polynomial ``f_i`` of degree ``t−1`` over the ristretto255 scalars
and the ``n`` custodians end up with shares ``x_j = Σ_{i∈QUAL} f_i(j)`` of
``x = Σ_{i∈QUAL} f_i(0)``, any ``t`` of which recover ``x·R`` (never ``x`` itself, see
:mod:`overt.access.threshold`). The rounds, each a method of :class:`DkgParticipant`:

1. **Deal** (:meth:`~DkgParticipant.round1`). Custodian ``i`` draws ``a_i0..a_i,t−1``,
   broadcasts :class:`DealerCommitment` — the Feldman commitments ``C_ik = a_ik·G`` and a
   Schnorr proof of knowledge of ``a_i0`` bound to the session and to ``i`` (as FROST's key
   generation does, so no dealer can pick its ``C_i0`` as a function of the others') — and sends
   each ``j`` the :class:`DealtShare` ``s_ij = f_i(j)`` privately.
2. **Complain** (:meth:`~DkgParticipant.round2`). Custodian ``j`` checks every share it got,
   ``s_ij·G == Σ_k j^k·C_ik``, and broadcasts :class:`Complaints` naming each dealer whose
   share failed or never came. A dealer whose commitment is missing, malformed or whose proof
   fails is out without a complaint: everyone sees that broadcast.
3. **Answer** (:meth:`~DkgParticipant.round3`). A dealer accused by ``j`` broadcasts
   :class:`ComplaintAnswer` revealing ``s_ij``. Anyone checks it against ``C_i``.
4. **Finalize** (:meth:`~DkgParticipant.finalize`). ``QUAL`` is every dealer with a valid
   commitment and a valid answer to every complaint against it (:func:`qualify`, a pure
   function of the broadcast messages, so every honest custodian — and any auditor — computes
   the same one). Custodian ``j`` adds its ``QUAL`` shares (taking the revealed share where it
   complained). The public :class:`DkgTranscript` holds the aggregated commitments
   ``A_k = Σ_{i∈QUAL} C_ik``: the epoch key is ``Y = A_0`` and custodian ``j``'s verification
   key is ``X_j = Σ_k j^k·A_k = x_j·G``, computable by anyone.

The DKG fails (:class:`DkgFailed`) if fewer than ``t`` dealers qualify: at most ``t−1``
custodians are assumed to cheat, so ``t`` qualified dealers include an honest one, whose random
polynomial makes ``x`` uniform and unknown to the cheaters. (Joint-Feldman lets a cheater bias
``Y``'s distribution slightly — Gennaro et al., 1999 — which does not help anyone decrypt an
ElGamal-style access field; see docs/lawful-access.md.)

**What the service provides.** An authenticated *broadcast* channel — every custodian must see
the same commitments, complaints and answers (e.g. signed by each custodian's manifest key and
relayed through one bulletin) — and encrypted, authenticated point-to-point channels for the
shares. This module only builds and checks messages; the service encrypts, signs, relays and
decides when a round's deadline has passed (then calls the next round: a missing message is
treated as described above).

**State machine.** Every transition is in :data:`TRANSITIONS`; a call that the current state
does not allow raises :class:`DkgStateError` and leaves the participant in ``ERROR`` for good.
A peer message that is malformed, for another session or another recipient, or contradicts an
earlier one from the same sender, raises :class:`ProtocolViolation` and changes nothing.

**Encodings.** Every message and the share at rest is versioned binary
(``version u8 ‖ kind u8 ‖ ...``, :mod:`overt.wire.codec`); decoding is strict.

**Destruction.** When an epoch's retention ends the custodian service deletes the stored share;
:meth:`EpochKeyShare.destroy` returns the :class:`DestroyedShare` tombstone it keeps instead,
which holds only public values and offers no way back to the secret. Python cannot promise to
wipe memory; the guarantee is that no stored form and no API path leads from a tombstone to a
share.

Randomness comes only from the :class:`~overt.crypto.Rng` passed in; secrets (coefficients,
shares) are immutable :class:`~overt.crypto.Scalar` s whose ``repr`` is redacted. This module
never sees sockets, files or clocks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from typing import Final, Self

from overt.access.errors import DkgFailed, DkgStateError
from overt.access.limits import MAX_CUSTODIANS, MIN_THRESHOLD, SESSION_ID_LEN
from overt.crypto import POINT_LEN, SCALAR_LEN, Point, Rng, Scalar, constant_time_eq, sha256
from overt.crypto.h2c import hash_to_scalar
from overt.errors import DecodeError, InvalidMessage, LocalError, ProtocolViolation
from overt.wire import Reader, Writer

DKG_VERSION: Final = 1
"""The encoding version of every DKG message, transcript and stored share."""

POK_DST: Final = b"Overt_DKG_PoK_v1"
"""Domain separation tag of the dealers' Schnorr proofs of knowledge."""

SESSION_DST: Final = b"Overt_DKG_session_v1"
"""Label of :func:`session_id`."""

POK_LEN: Final = POINT_LEN + SCALAR_LEN


class Kind(IntEnum):
    """The kind byte after the version."""

    DEALER_COMMITMENT = 1
    DEALT_SHARE = 2
    COMPLAINTS = 3
    COMPLAINT_ANSWER = 4
    TRANSCRIPT = 5
    KEY_SHARE = 6
    DESTROYED_SHARE = 7


def _header(kind: Kind) -> Writer:
    return Writer().u8(DKG_VERSION).u8(kind)


def _reader(data: bytes, kind: Kind, what: str) -> Reader:
    r = Reader(data, what)
    r.version(DKG_VERSION)
    if r.u8("kind") != kind:
        raise DecodeError(f"{what}: not a {kind.name.lower()}")
    return r


def _point(r: Reader, what: str) -> Point:
    return Point.from_bytes(r.fixed(POINT_LEN, what))


def _scalar(r: Reader, what: str) -> Scalar:
    return Scalar.from_bytes(r.fixed(SCALAR_LEN, what))


# ----------------------------------------------------------------------------- parameters


@dataclass(frozen=True, slots=True)
class DkgParameters:
    """One DKG run: its session id, the escrow epoch, ``n`` custodians and threshold ``t``.

    Custodian indices are ``1..n``: index ``j`` is the ``j``-th custodian of the manifest.
    """

    session_id: bytes
    epoch: int
    n: int
    t: int

    def __post_init__(self) -> None:
        if not isinstance(self.session_id, bytes) or len(self.session_id) != SESSION_ID_LEN:
            raise LocalError(f"a DKG session id is {SESSION_ID_LEN} bytes")
        if not 0 <= self.epoch < 1 << 32:
            raise LocalError("a DKG epoch is a u32")
        if not MIN_THRESHOLD <= self.n <= MAX_CUSTODIANS:
            raise LocalError(f"a DKG has {MIN_THRESHOLD}..{MAX_CUSTODIANS} participants")
        if not MIN_THRESHOLD <= self.t <= self.n:
            raise LocalError(f"the DKG threshold must be in [{MIN_THRESHOLD}, n]")

    def write(self, w: Writer) -> None:
        w.fixed(self.session_id, SESSION_ID_LEN).u32(self.epoch).u8(self.n).u8(self.t)

    @classmethod
    def read(cls, r: Reader) -> DkgParameters:
        sid, epoch, n, t = r.fixed(SESSION_ID_LEN, "session id"), r.u32("epoch"), r.u8(), r.u8()
        try:
            return cls(sid, epoch, n, t)
        except LocalError as e:
            raise DecodeError(f"{r.what}: {e}") from None

    def check_index(self, index: int, what: str) -> None:
        if not 1 <= index <= self.n:
            raise ProtocolViolation(f"{what} {index} is not a custodian index in 1..{self.n}")


def session_id(deployment: str, epoch: int, attempt: int, custodian_keys: Sequence[bytes]) -> bytes:
    """A session id binding a run to the deployment, the epoch, the attempt number and the
    custodians' keys in manifest order, so that no message of one run is accepted in another."""
    w = Writer().raw(SESSION_DST).vec(deployment.encode("utf-8"), 2).u32(epoch).u32(attempt)
    w.u8(len(custodian_keys))
    for k in custodian_keys:
        w.vec(k, 1)
    return sha256(w.getvalue())


# ----------------------------------------------------------------------------- polynomials


def _powers(j: int, t: int) -> list[Scalar]:
    x = Scalar.from_int(j)
    out = [Scalar.from_int(1)]
    for _ in range(t - 1):
        out.append(out[-1] * x)
    return out


def _evaluate(coefficients: Sequence[Scalar], j: int) -> Scalar:
    """``f(j)`` by Horner's rule."""
    x = Scalar.from_int(j)
    acc = coefficients[-1]
    for a in reversed(coefficients[:-1]):
        acc = acc * x + a
    return acc


def _commitment_at(commitments: Sequence[Point], j: int) -> Point:
    """``Σ_k j^k·C_k``: what ``f(j)·G`` must equal."""
    powers = _powers(j, len(commitments))
    acc = commitments[0]
    for c, p in zip(commitments[1:], powers[1:], strict=True):
        acc = acc + c.mul(p)
    return acc


def _share_ok(commitments: Sequence[Point], j: int, share: Scalar) -> bool:
    if share.is_zero():
        return False
    return constant_time_eq(Point.base_mul(share).raw, _commitment_at(commitments, j).raw)


def _pok_challenge(session: bytes, dealer: int, c0: Point, nonce_point: Point) -> Scalar:
    msg = Writer().fixed(session, SESSION_ID_LEN).u8(dealer).fixed(c0.raw, POINT_LEN)
    return hash_to_scalar(msg.fixed(nonce_point.raw, POINT_LEN).getvalue(), POK_DST)


# ----------------------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True)
class DealerCommitment:
    """Round 1, broadcast: dealer ``i``'s Feldman commitments and proof of knowledge of
    ``a_i0``."""

    session_id: bytes
    dealer: int
    commitments: tuple[Point, ...]
    proof: bytes

    def verify(self, params: DkgParameters) -> None:
        """:class:`InvalidMessage` unless the shape fits ``params`` and the proof verifies."""
        if (
            self.session_id != params.session_id
            or not 1 <= self.dealer <= params.n
            or len(self.commitments) != params.t
            or len(self.proof) != POK_LEN
        ):
            raise InvalidMessage()
        try:
            nonce_point = Point.from_bytes(self.proof[:POINT_LEN])
            z = Scalar.from_bytes(self.proof[POINT_LEN:])
        except DecodeError:
            raise InvalidMessage() from None
        c0 = self.commitments[0]
        c = _pok_challenge(self.session_id, self.dealer, c0, nonce_point)
        if not constant_time_eq(Point.base_mul(z).raw, (nonce_point + c0.mul(c)).raw):
            raise InvalidMessage()

    def encode(self) -> bytes:
        w = _header(Kind.DEALER_COMMITMENT).fixed(self.session_id, SESSION_ID_LEN)
        w.u8(self.dealer).u8(len(self.commitments))
        for c in self.commitments:
            w.fixed(c.raw, POINT_LEN)
        return w.fixed(self.proof, POK_LEN).getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = _reader(data, Kind.DEALER_COMMITMENT, "DealerCommitment")
        sid, dealer, t = r.fixed(SESSION_ID_LEN, "session id"), r.u8("dealer"), r.u8("t")
        if not MIN_THRESHOLD <= t <= MAX_CUSTODIANS:
            raise DecodeError("DealerCommitment: threshold out of range")
        commitments = tuple(_point(r, "commitment") for _ in range(t))
        proof = r.fixed(POK_LEN, "proof")
        r.finish()
        return cls(sid, dealer, commitments, proof)


@dataclass(frozen=True, slots=True)
class DealtShare:
    """Round 1, private: ``s_ij = f_i(j)`` from dealer ``i`` to recipient ``j``.

    A secret: the service sends it only over an encrypted, authenticated channel to ``j``.
    """

    session_id: bytes
    dealer: int
    recipient: int
    share: Scalar = field(repr=False)

    def encode(self) -> bytes:
        w = _header(Kind.DEALT_SHARE).fixed(self.session_id, SESSION_ID_LEN)
        w.u8(self.dealer).u8(self.recipient)
        return w.fixed(self.share.export_secret(), SCALAR_LEN).getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = _reader(data, Kind.DEALT_SHARE, "DealtShare")
        sid, dealer, recipient = r.fixed(SESSION_ID_LEN, "session id"), r.u8(), r.u8()
        share = _scalar(r, "share")
        r.finish()
        return cls(sid, dealer, recipient, share)

    def __repr__(self) -> str:
        return f"DealtShare({self.dealer}→{self.recipient}, <redacted>)"


@dataclass(frozen=True, slots=True)
class Round1Message:
    """What :meth:`DkgParticipant.round1` produces: one broadcast and ``n−1`` private shares."""

    commitment: DealerCommitment
    shares: tuple[DealtShare, ...] = field(repr=False)

    def share_for(self, recipient: int) -> DealtShare:
        for s in self.shares:
            if s.recipient == recipient:
                return s
        raise LocalError(f"no share for custodian {recipient}")


@dataclass(frozen=True, slots=True)
class Complaints:
    """Round 2, broadcast: the dealers whose share to ``accuser`` failed or never came."""

    session_id: bytes
    accuser: int
    dealers: tuple[int, ...]
    """Strictly increasing dealer indices (empty: no complaint)."""

    def encode(self) -> bytes:
        w = _header(Kind.COMPLAINTS).fixed(self.session_id, SESSION_ID_LEN).u8(self.accuser)
        w.u8(len(self.dealers))
        for d in self.dealers:
            w.u8(d)
        return w.getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = _reader(data, Kind.COMPLAINTS, "Complaints")
        sid, accuser, n = r.fixed(SESSION_ID_LEN, "session id"), r.u8("accuser"), r.u8("count")
        if n > MAX_CUSTODIANS:
            raise DecodeError("Complaints: too many")
        dealers = tuple(r.u8("dealer") for _ in range(n))
        r.finish()
        if list(dealers) != sorted(set(dealers)):
            raise DecodeError("Complaints: dealers not strictly increasing")
        return cls(sid, accuser, dealers)


@dataclass(frozen=True, slots=True)
class ComplaintAnswer:
    """Round 3, broadcast: dealer ``i`` reveals ``s_ij`` for every ``j`` that accused it."""

    session_id: bytes
    dealer: int
    revealed: tuple[tuple[int, Scalar], ...] = field(repr=False)
    """``(accuser, share)`` pairs, accusers strictly increasing."""

    def encode(self) -> bytes:
        w = _header(Kind.COMPLAINT_ANSWER).fixed(self.session_id, SESSION_ID_LEN).u8(self.dealer)
        w.u8(len(self.revealed))
        for j, s in self.revealed:
            w.u8(j).fixed(s.export_secret(), SCALAR_LEN)
        return w.getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = _reader(data, Kind.COMPLAINT_ANSWER, "ComplaintAnswer")
        sid, dealer, n = r.fixed(SESSION_ID_LEN, "session id"), r.u8("dealer"), r.u8("count")
        if n > MAX_CUSTODIANS:
            raise DecodeError("ComplaintAnswer: too many")
        revealed = tuple((r.u8("accuser"), _scalar(r, "share")) for _ in range(n))
        r.finish()
        accusers = [j for j, _ in revealed]
        if accusers != sorted(set(accusers)):
            raise DecodeError("ComplaintAnswer: accusers not strictly increasing")
        return cls(sid, dealer, revealed)

    def __repr__(self) -> str:
        return f"ComplaintAnswer(dealer={self.dealer}, to={[j for j, _ in self.revealed]})"


# ----------------------------------------------------------------------------- transcript


@dataclass(frozen=True, slots=True)
class DkgTranscript:
    """The public outcome of a DKG: who qualified and the aggregated commitments.

    ``aggregate[k] = Σ_{i∈QUAL} C_ik``; :meth:`public_key` is the epoch key ``Y`` and
    :meth:`verification_key` gives every custodian's ``X_j``.
    """

    params: DkgParameters
    qualified: tuple[int, ...]
    aggregate: tuple[Point, ...]

    def __post_init__(self) -> None:
        if len(self.aggregate) != self.params.t:
            raise LocalError("a transcript holds t aggregated commitments")
        if list(self.qualified) != sorted(set(self.qualified)) or not all(
            1 <= i <= self.params.n for i in self.qualified
        ):
            raise LocalError("qualified dealers must be increasing custodian indices")
        if len(self.qualified) < self.params.t:
            raise LocalError("fewer than t qualified dealers")

    @property
    def epoch(self) -> int:
        return self.params.epoch

    @property
    def threshold(self) -> int:
        return self.params.t

    def public_key(self) -> Point:
        """The epoch public key ``Y = x·G`` (what the manifest's clients encrypt to)."""
        return self.aggregate[0]

    def verification_key(self, index: int) -> Point:
        """Custodian ``index``'s ``X_j = x_j·G``."""
        if not 1 <= index <= self.params.n:
            raise LocalError(f"custodian index must be in 1..{self.params.n}")
        return _commitment_at(self.aggregate, index)

    def verification_keys(self) -> dict[int, Point]:
        return {j: self.verification_key(j) for j in range(1, self.params.n + 1)}

    def encode(self) -> bytes:
        w = _header(Kind.TRANSCRIPT)
        self.params.write(w)
        w.u8(len(self.qualified))
        for i in self.qualified:
            w.u8(i)
        for a in self.aggregate:
            w.fixed(a.raw, POINT_LEN)
        return w.getvalue()

    @classmethod
    def read(cls, r: Reader) -> DkgTranscript:
        params = DkgParameters.read(r)
        n_qual = r.u8("qualified count")
        if n_qual > params.n:
            raise DecodeError(f"{r.what}: more qualified dealers than custodians")
        qualified = tuple(r.u8("qualified") for _ in range(n_qual))
        aggregate = tuple(_point(r, "aggregate commitment") for _ in range(params.t))
        try:
            return cls(params, qualified, aggregate)
        except LocalError as e:
            raise DecodeError(f"{r.what}: {e}") from None

    @classmethod
    def decode(cls, data: bytes) -> DkgTranscript:
        r = _reader(data, Kind.TRANSCRIPT, "DkgTranscript")
        out = cls.read(r)
        r.finish()
        return out


@dataclass(frozen=True, slots=True)
class Qualification:
    """What :func:`qualify` decides from the broadcast messages."""

    qualified: tuple[int, ...]
    disqualified: tuple[int, ...]
    revealed: Mapping[tuple[int, int], Scalar] = field(repr=False)
    """Valid shares revealed in answers, by ``(dealer, accuser)``."""


def qualify(
    params: DkgParameters,
    commitments: Mapping[int, DealerCommitment],
    complaints: Mapping[int, Complaints],
    answers: Mapping[int, ComplaintAnswer],
) -> Qualification:
    """Decide ``QUAL`` from the broadcast messages alone (dealer and accuser index keys).

    A dealer qualifies iff its commitment is present and valid and every complaint against it
    (from a custodian ``j ≠ i``) is answered with a share that verifies against its
    commitments. Deterministic: every party with the same broadcast view gets the same answer.
    """
    revealed: dict[tuple[int, int], Scalar] = {}
    qualified: list[int] = []
    for i in range(1, params.n + 1):
        c = commitments.get(i)
        if c is None or c.dealer != i:
            continue
        try:
            c.verify(params)
        except InvalidMessage:
            continue
        accusers = [
            j
            for j, comp in complaints.items()
            if j != i and comp.accuser == j and comp.session_id == params.session_id
            and i in comp.dealers
        ]  # fmt: skip
        answer = answers.get(i)
        given = (
            dict(answer.revealed)
            if answer is not None and answer.dealer == i and answer.session_id == params.session_id
            else {}
        )
        ok = True
        for j in accusers:
            share = given.get(j)
            if share is None or not 1 <= j <= params.n or not _share_ok(c.commitments, j, share):
                ok = False
                break
            revealed[(i, j)] = share
        if ok:
            qualified.append(i)
    disqualified = tuple(i for i in range(1, params.n + 1) if i not in qualified)
    return Qualification(tuple(qualified), disqualified, revealed)


def transcript_from_messages(
    params: DkgParameters,
    commitments: Mapping[int, DealerCommitment],
    complaints: Mapping[int, Complaints],
    answers: Mapping[int, ComplaintAnswer],
) -> DkgTranscript:
    """The public transcript anyone computes from the broadcast messages of a run.

    Raises :class:`DkgFailed` if fewer than ``t`` dealers qualify.
    """
    return _transcript(params, commitments, qualify(params, commitments, complaints, answers))


def _transcript(
    params: DkgParameters, commitments: Mapping[int, DealerCommitment], q: Qualification
) -> DkgTranscript:
    if len(q.qualified) < params.t:
        raise DkgFailed(
            f"only {len(q.qualified)} dealers qualified, {params.t} needed; "
            f"disqualified: {list(q.disqualified)}"
        )
    aggregate = []
    for k in range(params.t):
        acc = commitments[q.qualified[0]].commitments[k]
        for i in q.qualified[1:]:
            acc = acc + commitments[i].commitments[k]
        aggregate.append(acc)
    return DkgTranscript(params, q.qualified, tuple(aggregate))


# ----------------------------------------------------------------------------- key shares


@dataclass(frozen=True, slots=True, eq=False)
class EpochKeyShare:
    """Custodian ``index``'s share ``x_j`` of one epoch's key, with the public transcript.

    A secret: ``repr`` is redacted and the raw scalar leaves only through :meth:`encode` (the
    custodian service stores that encrypted at rest). :meth:`destroy` gives the tombstone to
    keep once the service has deleted the stored share.
    """

    index: int
    secret: Scalar = field(repr=False)
    transcript: DkgTranscript

    def __post_init__(self) -> None:
        if not 1 <= self.index <= self.transcript.params.n:
            raise LocalError("share index outside the transcript's custodians")

    @property
    def epoch(self) -> int:
        return self.transcript.epoch

    @property
    def public_key(self) -> Point:
        return self.transcript.public_key()

    @property
    def verification_key(self) -> Point:
        return self.transcript.verification_key(self.index)

    def check(self) -> None:
        """:class:`InvalidMessage` unless ``x_j·G`` is the transcript's ``X_j``."""
        if self.secret.is_zero() or not constant_time_eq(
            Point.base_mul(self.secret).raw, self.verification_key.raw
        ):
            raise InvalidMessage()

    def encode(self) -> bytes:
        """The share at rest: ``version ‖ kind ‖ index u8 ‖ secret[32] ‖ transcript``."""
        w = _header(Kind.KEY_SHARE).u8(self.index).fixed(self.secret.export_secret(), SCALAR_LEN)
        return w.raw(self.transcript.encode()).getvalue()

    @classmethod
    def decode(cls, data: bytes) -> EpochKeyShare:
        """Read a stored share; :class:`DecodeError` if malformed or inconsistent."""
        r = _reader(data, Kind.KEY_SHARE, "EpochKeyShare")
        index = r.u8("index")
        secret = _scalar(r, "secret")
        r2 = _reader(r.fixed(r.remaining(), "transcript"), Kind.TRANSCRIPT, "EpochKeyShare")
        transcript = DkgTranscript.read(r2)
        r2.finish()
        try:
            share = cls(index, secret, transcript)
            share.check()
        except (LocalError, InvalidMessage):
            raise DecodeError("EpochKeyShare: the secret does not match the transcript") from None
        return share

    def destroy(self) -> DestroyedShare:
        """The tombstone to keep after the stored share is deleted: public values only."""
        return DestroyedShare(self.index, self.transcript)

    def __repr__(self) -> str:
        return f"EpochKeyShare(epoch={self.epoch}, index={self.index}, <redacted>)"


@dataclass(frozen=True, slots=True)
class DestroyedShare:
    """What a custodian keeps of an epoch after destroying its share: the public transcript
    and its own index, so it can still answer "which epoch, which key" — and nothing secret."""

    index: int
    transcript: DkgTranscript

    @property
    def epoch(self) -> int:
        return self.transcript.epoch

    def encode(self) -> bytes:
        return _header(Kind.DESTROYED_SHARE).u8(self.index).raw(self.transcript.encode()).getvalue()

    @classmethod
    def decode(cls, data: bytes) -> DestroyedShare:
        r = _reader(data, Kind.DESTROYED_SHARE, "DestroyedShare")
        index = r.u8("index")
        r2 = _reader(r.fixed(r.remaining(), "transcript"), Kind.TRANSCRIPT, "DestroyedShare")
        transcript = DkgTranscript.read(r2)
        r2.finish()
        if not 1 <= index <= transcript.params.n:
            raise DecodeError("DestroyedShare: index outside the transcript's custodians")
        return cls(index, transcript)


# ----------------------------------------------------------------------------- participant


class DkgState(Enum):
    INIT = "init"
    ROUND1 = "round1"
    """Dealt; collecting the others' commitments and shares."""
    ROUND2 = "round2"
    """Complaints sent; collecting the others' complaints."""
    ROUND3 = "round3"
    """Answers sent; collecting the others' answers."""
    DONE = "done"
    ERROR = "error"


TRANSITIONS: Final[Mapping[tuple[DkgState, str], DkgState]] = {
    (DkgState.INIT, "round1"): DkgState.ROUND1,
    (DkgState.ROUND1, "receive_round1"): DkgState.ROUND1,
    (DkgState.ROUND1, "round2"): DkgState.ROUND2,
    (DkgState.ROUND2, "receive_complaints"): DkgState.ROUND2,
    (DkgState.ROUND2, "round3"): DkgState.ROUND3,
    (DkgState.ROUND3, "receive_answer"): DkgState.ROUND3,
    (DkgState.ROUND3, "finalize"): DkgState.DONE,
}
"""Every allowed ``(state, event) → state``; anything else is ``ERROR``, for good."""


class DkgParticipant:
    """One custodian's side of one DKG run (sans-I/O: messages in, messages out).

    Usage, with the service relaying each output to the others::

        p = DkgParticipant(params, index, rng)
        out = p.round1()                       # broadcast out.commitment, send out.shares
        p.receive_round1(commitment, share)    # for every other dealer (share may be None)
        complaints = p.round2()                # broadcast (possibly empty)
        p.receive_complaints(c)                # for every other custodian
        answer = p.round3()                    # broadcast if not None
        p.receive_answer(a)                    # for every accused dealer that answered
        share = p.finalize()                   # EpochKeyShare; DkgFailed if too few qualify
    """

    def __init__(self, params: DkgParameters, index: int, rng: Rng) -> None:
        if not 1 <= index <= params.n:
            raise LocalError(f"custodian index must be in 1..{params.n}")
        self.params = params
        self.index = index
        self._rng = rng
        self._state = DkgState.INIT
        self._coefficients: tuple[Scalar, ...] = ()
        self._commitments: dict[int, DealerCommitment] = {}
        self._shares: dict[int, Scalar] = {}
        self._complaints: dict[int, Complaints] = {}
        self._answers: dict[int, ComplaintAnswer] = {}

    @property
    def state(self) -> DkgState:
        return self._state

    def _step(self, event: str) -> None:
        nxt = TRANSITIONS.get((self._state, event))
        if nxt is None:
            was = self._state
            self._state = DkgState.ERROR
            raise DkgStateError(f"DKG participant {self.index}: {event} not allowed in {was.value}")
        self._state = nxt

    # -- round 1 ---------------------------------------------------------------------------

    def round1(self) -> Round1Message:
        """Deal: draw the polynomial, commit to it, prove knowledge of its constant term."""
        self._step("round1")
        p = self.params
        coefficients = tuple(Scalar.random(self._rng) for _ in range(p.t))
        commitments = tuple(Point.base_mul(a) for a in coefficients)
        k = Scalar.random(self._rng)
        nonce_point = Point.base_mul(k)
        c = _pok_challenge(p.session_id, self.index, commitments[0], nonce_point)
        z = k + c * coefficients[0]
        commitment = DealerCommitment(
            p.session_id, self.index, commitments, nonce_point.raw + z.raw
        )
        shares = tuple(
            DealtShare(p.session_id, self.index, j, _evaluate(coefficients, j))
            for j in range(1, p.n + 1)
            if j != self.index
        )
        self._coefficients = coefficients
        self._commitments[self.index] = commitment
        self._shares[self.index] = _evaluate(coefficients, self.index)
        return Round1Message(commitment, shares)

    def receive_round1(self, commitment: DealerCommitment, share: DealtShare | None) -> None:
        """Take dealer ``i``'s broadcast commitment and the share it sent us (None if none
        came). A share that fails to verify is kept aside for a complaint, not refused."""
        p = self.params
        if self._state is DkgState.ROUND1:
            if commitment.session_id != p.session_id:
                raise ProtocolViolation("DKG commitment for another session")
            p.check_index(commitment.dealer, "dealer")
            if commitment.dealer == self.index:
                raise ProtocolViolation("a commitment claiming to be our own")
            seen = self._commitments.get(commitment.dealer)
            if seen is not None and seen != commitment:
                raise ProtocolViolation(f"dealer {commitment.dealer} sent two commitments")
            if share is not None and (
                share.session_id != p.session_id
                or share.dealer != commitment.dealer
                or share.recipient != self.index
            ):
                raise ProtocolViolation("DKG share for another session, dealer or recipient")
        self._step("receive_round1")
        self._commitments[commitment.dealer] = commitment
        if share is not None:
            self._shares[commitment.dealer] = share.share

    # -- round 2 ---------------------------------------------------------------------------

    def _valid_share(self, dealer: int) -> bool:
        c = self._commitments[dealer]
        s = self._shares.get(dealer)
        return s is not None and _share_ok(c.commitments, self.index, s)

    def round2(self) -> Complaints:
        """Check every share received; complain about each dealer whose share failed or never
        came (dealers without a valid commitment are out anyway and draw no complaint)."""
        self._step("round2")
        accused = []
        for i in range(1, self.params.n + 1):
            if i == self.index or i not in self._commitments:
                continue
            try:
                self._commitments[i].verify(self.params)
            except InvalidMessage:
                continue
            if not self._valid_share(i):
                accused.append(i)
        mine = Complaints(self.params.session_id, self.index, tuple(accused))
        self._complaints[self.index] = mine
        return mine

    def receive_complaints(self, complaints: Complaints) -> None:
        p = self.params
        if self._state is DkgState.ROUND2:
            if complaints.session_id != p.session_id:
                raise ProtocolViolation("DKG complaints for another session")
            p.check_index(complaints.accuser, "accuser")
            if complaints.accuser == self.index:
                raise ProtocolViolation("complaints claiming to be our own")
            seen = self._complaints.get(complaints.accuser)
            if seen is not None and seen != complaints:
                raise ProtocolViolation(f"custodian {complaints.accuser} sent two complaint lists")
        self._step("receive_complaints")
        self._complaints[complaints.accuser] = complaints

    # -- round 3 ---------------------------------------------------------------------------

    def round3(self) -> ComplaintAnswer | None:
        """Answer every complaint against us by revealing the accuser's share (None if no one
        complained)."""
        self._step("round3")
        accusers = sorted(
            j for j, c in self._complaints.items() if j != self.index and self.index in c.dealers
        )
        if not accusers:
            return None
        revealed = tuple((j, _evaluate(self._coefficients, j)) for j in accusers)
        answer = ComplaintAnswer(self.params.session_id, self.index, revealed)
        self._answers[self.index] = answer
        return answer

    def receive_answer(self, answer: ComplaintAnswer) -> None:
        p = self.params
        if self._state is DkgState.ROUND3:
            if answer.session_id != p.session_id:
                raise ProtocolViolation("DKG answer for another session")
            p.check_index(answer.dealer, "dealer")
            if answer.dealer == self.index:
                raise ProtocolViolation("an answer claiming to be our own")
            seen = self._answers.get(answer.dealer)
            if seen is not None and seen.encode() != answer.encode():
                raise ProtocolViolation(f"dealer {answer.dealer} sent two answers")
        self._step("receive_answer")
        self._answers[answer.dealer] = answer

    # -- finalize --------------------------------------------------------------------------

    def finalize(self) -> EpochKeyShare:
        """Sum the qualified dealers' shares into ``x_j`` and return it with the transcript.

        :class:`DkgFailed` if fewer than ``t`` dealers qualified (the state is then ERROR).
        """
        self._step("finalize")
        try:
            q = qualify(self.params, self._commitments, self._complaints, self._answers)
            transcript = _transcript(self.params, self._commitments, q)
            total: Scalar | None = None
            for i in transcript.qualified:
                s = q.revealed.get((i, self.index))
                if s is None:
                    s = self._shares.get(i)
                if s is None or not _share_ok(self._commitments[i].commitments, self.index, s):
                    # We did not complain, yet hold no valid share: our own view is broken.
                    raise DkgFailed(f"no valid share from qualified dealer {i}")
                total = s if total is None else total + s
            assert total is not None
            share = EpochKeyShare(self.index, total, transcript)
            share.check()
        except (DkgFailed, InvalidMessage):
            self._state = DkgState.ERROR
            raise
        finally:
            self._coefficients = ()
        return share

    def __repr__(self) -> str:
        return f"DkgParticipant(index={self.index}, epoch={self.params.epoch}, {self._state.value})"


__all__ = [
    "DKG_VERSION",
    "TRANSITIONS",
    "ComplaintAnswer",
    "Complaints",
    "DealerCommitment",
    "DealtShare",
    "DestroyedShare",
    "DkgParameters",
    "DkgParticipant",
    "DkgState",
    "DkgTranscript",
    "EpochKeyShare",
    "Kind",
    "Qualification",
    "Round1Message",
    "qualify",
    "session_id",
    "transcript_from_messages",
]
