"""Shared fixtures of the access tests: a manifest, a court, an in-memory log, a DKG driver and
warrants. Deterministic throughout (``DeterministicRng``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from overt.access import (
    AccessItem,
    AccessRequest,
    AccessTrust,
    Approval,
    Approved,
    Authorisation,
    Decision,
    Delivery,
    DkgParameters,
    DkgParticipant,
    DkgTranscript,
    EpochKeyShare,
    EvidenceBatch,
    EvidenceBundle,
    ReceiptRecord,
    Round1Message,
    SessionKeys,
    ShareResponse,
    Task,
    Timespan,
    Warrant,
    collect,
    decide,
    make_shares,
    open_direct,
    sign_warrant,
    warrant_commitment,
)
from overt.access.dkg import ComplaintAnswer, Complaints, DealerCommitment
from overt.access.limits import DAY_SECONDS
from overt.crypto import DeterministicRng, Ed25519PrivateKey, Point, Scalar
from overt.protocol import Device, EscrowPolicy, access
from overt.transparency.checkpoint import (
    Checkpoint,
    ProofBundle,
    cosign_checkpoint,
    sign_checkpoint,
)
from overt.transparency.entries import Entry, KeyDirectoryUpdate, encode_entry
from overt.transparency.manifest import (
    Custodian,
    EscrowAccess,
    LogInfo,
    Manifest,
    NamedKey,
    WitnessInfo,
)
from overt.transparency.merkle import MemoryTree
from overt.transparency.note import CosignatureSigner, Note, NoteSigner
from overt.wire import Envelope


def key(seed: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate(DeterministicRng(seed))


COURT = key("court")
COURT_NAME = "District Court"
ROGUE_COURT = key("rogue-court")
CUSTODIAN_KEYS = [key(f"custodian{i}") for i in range(1, 6)]
ORIGIN = "log.overt.example/v1"
LOG = NoteSigner(ORIGIN, key("log"))
WITNESSES = [CosignatureSigner(f"witness{i}.example", key(f"witness{i}")) for i in range(3)]
QUORUM = 2
MAX_SEAL_DAYS = 180
EPOCH = 7

# The protocol tests' clock: 2023-11-14T22:13:20Z, day 19675.
MSG_MS = 1_700_000_000_000
MSG_DAY = MSG_MS // 86_400_000
T0 = (MSG_DAY - 5) * DAY_SECONDS  # approval and start of the authorisation
NOW = T0 + 10 * DAY_SECONDS


def manifest(n: int = 5, t: int = 3) -> Manifest:
    return Manifest(
        deployment="overt.example",
        version=1,
        provider_key=key("provider").public_key,
        server_keys=(NamedKey("api", key("server").public_key),),
        log=LogInfo(ORIGIN, LOG.verifier_key),
        witnesses=tuple(WitnessInfo(f"W{i}", w.verifier_key) for i, w in enumerate(WITNESSES)),
        witness_quorum=QUORUM,
        access=EscrowAccess(
            custodians=tuple(
                Custodian(f"Custodian {i}", f"https://c{i}.example/api", k.public_key)
                for i, k in enumerate(CUSTODIAN_KEYS[:n], start=1)
            ),
            threshold=t,
            court_keys=(NamedKey(COURT_NAME, COURT.public_key),),
            epoch_length_days=30,
            retention_days=90,
            max_seal_days=MAX_SEAL_DAYS,
        ),
    )


TRUST = AccessTrust.from_manifest(manifest())


# ----------------------------------------------------------------------------- warrants


def make_warrant(
    targets: Sequence[bytes] = (b"alice",),
    *,
    seed: str = "w1",
    task_days: int = 30,
    auth_days: int = 60,
    seal_days: int = 120,
    cap: int = 100,
    delivery: Delivery = Delivery.CONTENT,
    court: Ed25519PrivateKey = COURT,
    extra_tasks: tuple[Task, ...] = (),
) -> Warrant:
    rng = DeterministicRng(seed)
    return Warrant(
        warrant_id=rng.random_bytes(32),
        authorisation=Authorisation(
            reference="AUTH-2023-0042",
            legal_basis="Investigatory Powers Act s.15",
            timespan=Timespan(T0, T0 + auth_days * DAY_SECONDS),
            approval=Approval(COURT_NAME, court.public_key, "J. Doe / 2023/117", T0),
        ),
        tasks=(
            Task("TASK-1", tuple(targets), Timespan(T0, T0 + task_days * DAY_SECONDS), delivery),
            *extra_tasks,
        ),
        sealed_until=T0 + seal_days * DAY_SECONDS,
        max_messages=cap,
        targets_salt=rng.random_bytes(32),
    )


def signed(warrant: Warrant, court: Ed25519PrivateKey = COURT) -> bytes:
    return sign_warrant(warrant, court, max_seal_days=MAX_SEAL_DAYS)


# ----------------------------------------------------------------------------- the log


@dataclass
class FakeLog:
    """An in-memory log: append entries, sign and cosign checkpoints, hand out proofs."""

    tree: MemoryTree = field(default_factory=MemoryTree)
    entries: list[Entry] = field(default_factory=list)

    def append(self, entry: Entry) -> int:
        self.entries.append(entry)
        return self.tree.append(encode_entry(entry))

    def checkpoint(self, cosigners: int = QUORUM) -> Note:
        cp = Checkpoint(ORIGIN, self.tree.size, self.tree.root())
        note = sign_checkpoint(cp, LOG)
        for w in WITNESSES[:cosigners]:
            note = cosign_checkpoint(note, w, 1_700_000_000)
        return note

    def proof(self, index: int, cosigners: int = QUORUM) -> bytes:
        note = self.checkpoint(cosigners)
        return ProofBundle(index, tuple(self.tree.inclusion_proof(index)), note).to_bytes()

    def indexed(self) -> list[tuple[int, Entry]]:
        return list(enumerate(self.entries))


# ----------------------------------------------------------------------------- DKG


@dataclass
class DkgRun:
    params: DkgParameters
    participants: dict[int, DkgParticipant]
    commitments: dict[int, DealerCommitment] = field(default_factory=dict)
    complaints: dict[int, Complaints] = field(default_factory=dict)
    answers: dict[int, ComplaintAnswer] = field(default_factory=dict)


Tamper = Callable[[Round1Message], Round1Message]


def run_dkg(
    n: int = 5,
    t: int = 3,
    *,
    seed: int = 1,
    epoch: int = 7,
    tamper: Mapping[int, Tamper] | None = None,
    silent_answers: frozenset[int] = frozenset(),
    false_accusers: Mapping[int, tuple[int, ...]] | None = None,
) -> tuple[dict[int, EpochKeyShare], DkgRun]:
    """Drive a whole DKG over a perfect broadcast. ``tamper[i]`` rewrites dealer ``i``'s round-1
    output; dealers in ``silent_answers`` never answer complaints; ``false_accusers[j]`` makes
    custodian ``j`` accuse those dealers whatever it received."""
    params = DkgParameters(bytes([seed % 256]) * 32, epoch, n, t)
    ps = {i: DkgParticipant(params, i, DeterministicRng(seed * 1000 + i)) for i in range(1, n + 1)}
    run = DkgRun(params, ps)
    outs = {i: p.round1() for i, p in ps.items()}
    for i, tf in (tamper or {}).items():
        outs[i] = tf(outs[i])
    for i, out in outs.items():
        run.commitments[i] = out.commitment
    for j, p in ps.items():
        for i, out in outs.items():
            if i != j:
                share = next((s for s in out.shares if s.recipient == j), None)
                p.receive_round1(out.commitment, share)
    for j, p in ps.items():
        c = p.round2()
        if false_accusers and j in false_accusers:
            c = Complaints(c.session_id, j, tuple(sorted(set(c.dealers) | set(false_accusers[j]))))
        run.complaints[j] = c
    for j, p in ps.items():
        for i, c in run.complaints.items():
            if i != j:
                p.receive_complaints(c)
    for i, p in ps.items():
        a = p.round3()
        if a is not None and i not in silent_answers:
            run.answers[i] = a
    for j, p in ps.items():
        for i, a in run.answers.items():
            if i != j:
                p.receive_answer(a)
    return {j: p.finalize() for j, p in ps.items()}, run


def bad_share_to(recipients: Sequence[int]) -> Tamper:
    """A dealer that sends a wrong share to each of ``recipients``."""

    def tamper(out: Round1Message) -> Round1Message:
        shares = tuple(
            replace(s, share=s.share + Scalar.from_int(1)) if s.recipient in recipients else s
            for s in out.shares
        )
        return Round1Message(out.commitment, shares)

    return tamper


# ----------------------------------------------------------------------------- a whole world


def envelope_context(env: Envelope) -> bytes:
    assert env.access is not None
    return access.context(
        env.access.epoch, env.sender, env.recipient, env.conversation_id, env.message_id,
        env.timestamp_ms,
    )  # fmt: skip


def session_keys(sender: Device, recipient: Device, sender_initiated: bool) -> SessionKeys:
    return SessionKeys(
        sender.identity.dh.public_key.raw,
        sender.identity.sign.public_key.raw,
        recipient.identity.dh.public_key.raw,
        recipient.identity.sign.public_key.raw,
        sender_initiated,
    )


@dataclass
class World:
    """Five custodians after a DKG, three devices exchanging messages under the epoch key, a
    court's warrant on alice logged by the provider."""

    shares: dict[int, EpochKeyShare]
    transcript: DkgTranscript
    alice: Device
    bob: Device
    carol: Device
    log: FakeLog
    warrant: Warrant
    warrant_bytes: bytes
    commitment_index: int
    targeted: list[tuple[Envelope, SessionKeys, bytes]]
    """(envelope, its session keys, its plaintext body) of alice's messages."""
    untargeted: list[tuple[Envelope, SessionKeys, bytes]]

    @classmethod
    def build(cls, *, cap: int = 100, messages: int = 2) -> World:
        shares, _ = run_dkg(5, 3, epoch=EPOCH)
        transcript = shares[1].transcript
        policy = EscrowPolicy(EPOCH, transcript.public_key())
        alice = Device.create(b"alice", 1, rng=DeterministicRng(11), policy=policy)
        bob = Device.create(b"bob", 1, rng=DeterministicRng(12), policy=policy)
        carol = Device.create(b"carol", 1, rng=DeterministicRng(13), policy=policy)
        alice.start_session(bob.prekey_bundle())
        bob.start_session(carol.prekey_bundle())
        targeted, untargeted = [], []
        for k in range(messages):
            body = f"alice to bob {k}".encode()
            env = alice.encrypt(bob.address, body, now_ms=MSG_MS + k)
            assert bob.decrypt(env).body == body
            targeted.append((env, session_keys(alice, bob, True), body))
            reply = f"bob to alice {k}".encode()
            env = bob.encrypt(alice.address, reply, now_ms=MSG_MS + k + 1)
            assert alice.decrypt(env).body == reply
            targeted.append((env, session_keys(bob, alice, False), reply))
            other = f"bob to carol {k}".encode()
            env = bob.encrypt(carol.address, other, now_ms=MSG_MS + k + 2)
            assert carol.decrypt(env).body == other
            untargeted.append((env, session_keys(bob, carol, True), other))
        log = FakeLog()
        log.append(KeyDirectoryUpdate(bytes(32), bytes(32), 1, bytes(32), bytes(32)))
        warrant = make_warrant(cap=cap)
        index = log.append(warrant_commitment(warrant)[0])
        return cls(shares, transcript, alice, bob, carol, log, warrant, signed(warrant), index,
                   targeted, untargeted)  # fmt: skip

    def request(self, envelopes: Sequence[Envelope]) -> AccessRequest:
        items = []
        for env in envelopes:
            assert env.access is not None
            items.append(AccessItem(envelope_context(env), Point.from_bytes(env.access.r)))
        return AccessRequest(self.warrant.warrant_id, tuple(items))

    def decide(self, request: AccessRequest, custodian: int = 1, **overrides: Any) -> Decision:
        args: dict[str, Any] = {
            "trust": TRUST,
            "custodian_index": custodian,
            "warrant_bytes": self.warrant_bytes,
            "revocations": (),
            "log_proof": self.log.proof(self.commitment_index),
            "now": NOW,
            "epochs_alive": {EPOCH: True},
            "used_count_so_far": 0,
        }
        args.update(overrides)
        return decide(request, **args)

    def release(
        self, request: AccessRequest, custodians: Sequence[int] = (1, 2, 3)
    ) -> tuple[dict[int, ShareResponse], list[ReceiptRecord]]:
        """Each custodian decides, logs its receipt, then answers."""
        responses, receipts = {}, []
        indices = []
        for j in custodians:
            d = self.decide(request, j)
            assert isinstance(d, Approved), d
            indices.append((self.log.append(d.receipt), d.receipt))
            responses[j] = make_shares(self.shares[j], d.points, DeterministicRng(100 + j))
        for index, receipt in indices:
            receipts.append(ReceiptRecord(receipt, self.log.proof(index)))
        return responses, receipts

    def evidence(self, custodians: Sequence[int] = (1, 2, 3)) -> EvidenceBundle:
        envs = [env for env, _, _ in self.targeted]
        request = self.request(envs)
        responses, receipts = self.release(request, custodians)
        combined = collect(self.transcript, request.points, responses)
        items = tuple(
            open_direct(env.encode(), keys, point)
            for (env, keys, _), point in zip(self.targeted, combined.points, strict=True)
        )
        batch = EvidenceBatch(
            self.transcript.encode(), items, tuple(responses.values()), tuple(receipts)
        )
        return EvidenceBundle(self.warrant_bytes, self.log.proof(self.commitment_index), (batch,))
