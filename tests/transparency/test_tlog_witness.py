"""The sans-I/O witness: tlog-witness add-checkpoint semantics, evidence, state and restarts."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from overt.crypto import DeterministicRng, Ed25519PrivateKey
from overt.errors import DecodeError, LocalError
from overt.transparency.checkpoint import Checkpoint, sign_checkpoint, verify_checkpoint
from overt.transparency.merkle import EMPTY_ROOT, MemoryTree
from overt.transparency.note import (
    CosignatureSigner,
    Note,
    NoteSignature,
    NoteSigner,
    verify_signatures,
)
from overt.transparency.witness import (
    MAX_EVIDENCE_PER_KIND,
    MAX_PROOF_LINES,
    AddCheckpointRequest,
    CheckpointConflict,
    InconsistentCheckpoint,
    InvalidOldSize,
    UnknownLog,
    UntrustedCheckpoint,
    Witness,
    WitnessedLog,
    WitnessState,
    encode_add_checkpoint,
    parse_cosignature_response,
)
from overt.wire.jcs import canonicalize, parse_strict


def key(seed: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate(DeterministicRng(seed))


ORIGIN = "log.overt.example/v1"
LOG_SIGNER = NoteSigner(ORIGIN, key("log"))
IMPOSTOR = NoteSigner(ORIGIN, key("impostor"))  # same name, another key
WITNESS_SIGNER = CosignatureSigner("witness.overt.example", key("witness"))
NOW = 1_750_000_000


class Log:
    """A log: a Merkle tree and the key that signs its checkpoints."""

    def __init__(self, entries: list[bytes], signer: NoteSigner = LOG_SIGNER) -> None:
        self.tree = MemoryTree()
        for e in entries:
            self.tree.append(e)
        self.signer = signer

    def checkpoint(self, size: int | None = None, *extensions: str) -> Note:
        size = self.tree.size if size is None else size
        cp = Checkpoint(self.signer.name, size, self.tree.root(size), extensions)
        return sign_checkpoint(cp, self.signer)

    def proof(self, old: int, new: int | None = None) -> list[bytes]:
        new = self.tree.size if new is None else new
        return [] if old in (0, new) else self.tree.consistency_proof(old, new)


def entries(n: int, tag: str = "entry") -> list[bytes]:
    return [f"{tag} {i}".encode() for i in range(n)]


HONEST = Log(entries(40))
# A fork: the same first 10 entries, then different ones.
FORK = Log(entries(10) + entries(30, "forked"))


def new_witness(state: WitnessState | None = None) -> Witness:
    return Witness(WITNESS_SIGNER, [WitnessedLog.from_vkey(LOG_SIGNER.verifier_key)], state)


def cosign(w: Witness, log: Log, old: int, new: int, now: int = NOW) -> Note:
    note = log.checkpoint(new)
    sig = w.add_checkpoint(old, log.proof(old, new), note.to_bytes(), now)
    return note.with_signatures(sig)


# ----------------------------------------------------------------------------- consistent growth


def test_consistent_growth_is_cosigned() -> None:
    w = new_witness()
    old = 0
    for i, size in enumerate([1, 2, 3, 7, 8, 8, 9, 16, 17, 40]):
        cosigned = cosign(w, HONEST, old, size, NOW + i)
        verified = verify_checkpoint(
            cosigned, LOG_SIGNER.verifier_key, [WITNESS_SIGNER.verifier_key], 1
        )
        assert verified.checkpoint.size == size
        assert verified.cosignatures[0].timestamp == NOW + i
        assert w.state.size_of(ORIGIN) == size
        old = size
    assert w.state.evidence == ()
    assert w.state.logs[ORIGIN].refusals == 0


def test_the_empty_tree_and_growth_from_it() -> None:
    w = new_witness()
    cosign(w, HONEST, 0, 0)
    assert w.state.logs[ORIGIN].root_hash == EMPTY_ROOT
    cosign(w, HONEST, 0, 5)  # from size 0 there is nothing to prove
    assert w.state.size_of(ORIGIN) == 5


def test_extension_lines_are_cosigned_but_do_not_matter() -> None:
    w = new_witness()
    cosign(w, HONEST, 0, 4)
    note = HONEST.checkpoint(4, "extension a")
    sig = w.add_checkpoint(4, [], note, NOW)
    assert verify_signatures(note.with_signatures(sig), [WITNESS_SIGNER.verifier_key])


def test_kept_checkpoint_holds_only_the_log_signature() -> None:
    w = new_witness()
    other = NoteSigner("someone.else", key("else"))
    note = HONEST.checkpoint(6)
    note = note.with_signatures(other.sign(note.text))
    w.add_checkpoint(0, [], note, NOW)
    kept = w.state.logs[ORIGIN].checkpoint
    assert kept.text == note.text
    assert [s.name for s in kept.signatures] == [ORIGIN]


def test_cosignature_time_never_goes_backwards() -> None:
    w = new_witness()
    cosign(w, HONEST, 0, 3, now=NOW)
    cosigned = cosign(w, HONEST, 3, 5, now=NOW - 3600)  # the clock stepped back
    (v,) = verify_signatures(cosigned, [WITNESS_SIGNER.verifier_key])
    assert v.timestamp == NOW
    assert w.state.logs[ORIGIN].cosigned_at == NOW


# ----------------------------------------------------------------------------- refusals


def test_old_size_mismatch_is_a_conflict_naming_the_current_size() -> None:
    w = new_witness()
    cosign(w, HONEST, 0, 8)
    before = w.state
    for old in (0, 5, 7):
        staged = w.stage(old, HONEST.proof(old, 12) if old else [], HONEST.checkpoint(12), NOW)
        assert not staged.changed
        with pytest.raises(CheckpointConflict) as e:
            staged.result()
        assert e.value.current_size == 8
        assert not e.value.split_view
        assert e.value.status_hint == 409
    assert w.state is before


def test_old_size_above_checkpoint_size() -> None:
    w = new_witness()
    cosign(w, HONEST, 0, 8)
    with pytest.raises(InvalidOldSize) as e:
        w.add_checkpoint(8, [], HONEST.checkpoint(5), NOW)
    assert e.value.status_hint == 400


def test_never_signs_a_smaller_tree() -> None:
    w = new_witness()
    cosign(w, HONEST, 0, 20)
    for size in (0, 1, 10, 19):
        for old in (0, size, 20):
            with pytest.raises((CheckpointConflict, InvalidOldSize)):
                w.add_checkpoint(old, HONEST.proof(old, size) if old <= size else [],
                                 HONEST.checkpoint(size), NOW)  # fmt: skip
    assert w.state.size_of(ORIGIN) == 20


@pytest.mark.parametrize("old", [0, 8, 3])
def test_split_view_refused_with_evidence(old: int) -> None:
    """Same size, another root, whatever old size is claimed: refused, evidence kept."""
    w = new_witness()
    cosign(w, HONEST, 0, 3)
    cosign(w, HONEST, 3, 8)
    lie = Log([*entries(7), b"a different entry"])
    with pytest.raises(CheckpointConflict) as e:
        w.add_checkpoint(old, [], lie.checkpoint(8), NOW + 1)
    assert e.value.split_view and e.value.current_size == 8
    assert w.state.size_of(ORIGIN) == 8
    assert w.state.logs[ORIGIN].root_hash == HONEST.tree.root(8)
    assert w.state.logs[ORIGIN].refusals == 1
    (ev,) = w.state.evidence
    assert ev.kind == "split-view" and ev.origin == ORIGIN and ev.observed_at == NOW + 1
    assert ev.old_size == old
    # Both checkpoints are signed by the log: anyone with its key can check the evidence.
    for note in (ev.cosigned, ev.offered):
        verify_checkpoint(note, LOG_SIGNER.verifier_key)
    a = Checkpoint.from_text(ev.cosigned.text)
    b = Checkpoint.from_text(ev.offered.text)
    assert a.size == b.size == 8 and a.root_hash != b.root_hash


def test_fork_refused_with_evidence() -> None:
    """A bigger tree from a fork, with a proof that is valid in the fork but not from what the
    witness cosigned: 422 and evidence."""
    w = new_witness()
    cosign(w, HONEST, 0, 12)  # the fork diverges at entry 10
    proof = FORK.proof(12, 30)
    with pytest.raises(InconsistentCheckpoint) as e:
        w.add_checkpoint(12, proof, FORK.checkpoint(30), NOW)
    assert e.value.status_hint == 422
    assert w.state.size_of(ORIGIN) == 12
    (ev,) = w.state.evidence
    assert ev.kind == "inconsistent-proof"
    assert ev.proof == tuple(proof)
    assert Checkpoint.from_text(ev.offered.text).size == 30
    # The honest continuation is still cosigned.
    cosign(w, HONEST, 12, 30)


def test_bad_proofs_for_the_right_tree_refused() -> None:
    w = new_witness()
    cosign(w, HONEST, 0, 5)
    good = HONEST.proof(5, 13)
    bad_proofs = [
        [],
        good[:-1],
        [*good, good[0]],
        [bytes(32)] * len(good),
        [good[0][:31] + bytes([good[0][31] ^ 1]), *good[1:]],
        HONEST.proof(4, 13),
    ]
    for proof in bad_proofs:
        with pytest.raises(InconsistentCheckpoint):
            w.add_checkpoint(5, proof, HONEST.checkpoint(13), NOW)
    assert w.state.size_of(ORIGIN) == 5
    w.add_checkpoint(5, good, HONEST.checkpoint(13), NOW)


def test_proofs_where_none_is_needed_refused_without_evidence() -> None:
    w = new_witness()
    with pytest.raises(InconsistentCheckpoint):
        w.add_checkpoint(0, [bytes(32)], HONEST.checkpoint(4), NOW)
    cosign(w, HONEST, 0, 4)
    with pytest.raises(InconsistentCheckpoint):
        w.add_checkpoint(4, [bytes(32)], HONEST.checkpoint(4), NOW)
    assert w.state.evidence == ()


def test_wrong_log_key_refused() -> None:
    w = new_witness()
    impostor = Log(entries(40), IMPOSTOR)  # the right origin and name, the wrong key
    with pytest.raises(UntrustedCheckpoint) as e:
        w.add_checkpoint(0, [], impostor.checkpoint(5), NOW)
    assert e.value.status_hint == 403
    # A right-key line whose signature is broken is refused too.
    note = HONEST.checkpoint(5)
    (sig,) = note.signatures
    broken = Note(note.text, (NoteSignature(sig.name, sig.key_id, bytes(64)),))
    with pytest.raises(UntrustedCheckpoint):
        w.add_checkpoint(0, [], broken, NOW)
    # An impostor's split view is not evidence against the log.
    cosign(w, HONEST, 0, 5)
    with pytest.raises(UntrustedCheckpoint):
        w.add_checkpoint(5, [], Log(entries(6), IMPOSTOR).checkpoint(5), NOW)
    assert w.state.evidence == ()


def test_unknown_origin_refused() -> None:
    w = new_witness()
    other = Log(entries(3), NoteSigner("other.example/log", key("other")))
    with pytest.raises(UnknownLog) as e:
        w.add_checkpoint(0, [], other.checkpoint(), NOW)
    assert e.value.status_hint == 404


_PROOF_LINE = base64.b64encode(bytes(32)) + b"\n"


@pytest.mark.parametrize(
    ("head", "with_note"),
    [
        (b"", False),
        (b"old 0\n", False),
        (b"old 0\n\n", False),
        (b"old 0\n\nlog.overt.example/v1\n5\n", False),
        (b"old 01\n\n", True),
        (b"old -1\n\n", True),
        (b"old 1 \n\n", True),
        (b"old\n\n", True),
        (b"new 0\n\n", True),
        (b"old 99999999999999999999\n\n", True),
        (b"old 0\nnot base64\n\n", True),
        (b"old 0\n" + base64.b64encode(bytes(31)) + b"\n\n", True),
        (b"old 0\n" + base64.b64encode(bytes(33)) + b"\n\n", True),
        (b"old 5\n" + _PROOF_LINE * (MAX_PROOF_LINES + 1) + b"\n", True),
        (b"old 0\n" + b"x" * 300_000 + b"\n\n", True),
        (b"old 0\n", True),  # no blank line: the note's first line is read as a proof line
    ],
)
def test_malformed_requests_refused(head: bytes, with_note: bool) -> None:
    w = new_witness()
    body = head + (HONEST.checkpoint(5).to_bytes() if with_note else b"")
    staged = w.stage_request(body, NOW)
    assert not staged.changed
    with pytest.raises(DecodeError):
        staged.result()
    # The same head with a well-formed request is accepted.
    assert w.stage_request(b"old 0\n\n" + HONEST.checkpoint(5).to_bytes(), NOW).refusal is None


def test_malformed_checkpoint_text_refused() -> None:
    w = new_witness()
    note = sign_checkpoint_text("log.overt.example/v1\nnot a size\nroot\n")
    with pytest.raises(DecodeError):
        w.add_checkpoint(0, [], note, NOW)


def sign_checkpoint_text(text: str) -> Note:
    return Note(text, (LOG_SIGNER.sign(text),))


# ----------------------------------------------------------------------------- evidence bounds


def test_repeated_evidence_is_counted_once_kept() -> None:
    w = new_witness()
    cosign(w, HONEST, 0, 8)
    lie = Log([*entries(7), b"x"]).checkpoint(8)
    for _ in range(3):
        with pytest.raises(CheckpointConflict):
            w.add_checkpoint(8, [], lie, NOW)
    assert len(w.state.evidence) == 1
    assert w.state.logs[ORIGIN].refusals == 3


def test_evidence_is_bounded_per_kind() -> None:
    w = new_witness()
    cosign(w, HONEST, 0, 12)
    for i in range(MAX_EVIDENCE_PER_KIND + 5):
        with pytest.raises(CheckpointConflict):
            w.add_checkpoint(12, [], Log([*entries(11), b"lie %d" % i]).checkpoint(12), NOW)
    with pytest.raises(InconsistentCheckpoint):
        w.add_checkpoint(12, FORK.proof(12, 20), FORK.checkpoint(20), NOW)
    kinds = [e.kind for e in w.state.evidence]
    assert kinds.count("split-view") == MAX_EVIDENCE_PER_KIND
    assert kinds.count("inconsistent-proof") == 1  # a full split-view quota does not block it
    assert w.state.logs[ORIGIN].refusals == MAX_EVIDENCE_PER_KIND + 6


# ----------------------------------------------------------------------------- stage / commit


def test_stage_changes_nothing_until_commit() -> None:
    w = new_witness()
    cosign(w, HONEST, 0, 8)
    before = w.state
    staged = w.stage(8, [], Log([*entries(7), b"x"]).checkpoint(8), NOW)
    assert staged.changed and w.state is before
    w.commit(staged)
    assert w.state is staged.state and len(w.state.evidence) == 1
    staged = w.stage(8, HONEST.proof(8, 9), HONEST.checkpoint(9), NOW)
    assert staged.changed and w.state.size_of(ORIGIN) == 8
    signature = staged.result()
    w.commit(staged)
    assert w.state.size_of(ORIGIN) == 9
    assert verify_signatures(
        HONEST.checkpoint(9).with_signatures(signature), [WITNESS_SIGNER.verifier_key]
    )


def test_stale_staged_outcomes_cannot_be_committed() -> None:
    """Two requests staged from one state (the race tlog-witness warns of): only one lands."""
    w = new_witness()
    cosign(w, HONEST, 0, 8)
    a = w.stage(8, HONEST.proof(8, 20), HONEST.checkpoint(20), NOW)
    b = w.stage(8, HONEST.proof(8, 12), HONEST.checkpoint(12), NOW)
    w.commit(a)
    with pytest.raises(LocalError):
        w.commit(b)
    assert w.state.size_of(ORIGIN) == 20


def test_misconfiguration() -> None:
    log = WitnessedLog.from_vkey(LOG_SIGNER.verifier_key)
    with pytest.raises(LocalError):
        Witness(WITNESS_SIGNER, [log, log])
    with pytest.raises(LocalError):
        Witness(CosignatureSigner("w", LOG_SIGNER.private_key), [log])
    with pytest.raises(LocalError):
        WitnessedLog(ORIGIN, ())
    with pytest.raises(LocalError):
        WitnessedLog(ORIGIN, (WITNESS_SIGNER.verifier_key,))
    with pytest.raises(LocalError):
        new_witness().add_checkpoint(0, [], HONEST.checkpoint(1), -1)
    assert WitnessedLog.from_vkey(LOG_SIGNER.verifier_key.to_text(), "x/y").origin == "x/y"


# ----------------------------------------------------------------------------- state and restarts


def test_state_round_trips_as_versioned_canonical_json() -> None:
    w = new_witness()
    cosign(w, HONEST, 0, 12)
    with pytest.raises(CheckpointConflict):
        w.add_checkpoint(12, [], FORK.checkpoint(12), NOW)
    with pytest.raises(InconsistentCheckpoint):
        w.add_checkpoint(12, FORK.proof(12, 25), FORK.checkpoint(25), NOW)
    data = w.state.to_bytes()
    assert canonicalize(parse_strict(data)) == data
    doc = json.loads(data)
    assert doc["format"] == "overt-witness-state" and doc["version"] == 1
    assert doc["evidence"][1]["old_size"] == "12"
    loaded = WitnessState.from_bytes(data)
    assert loaded == w.state
    assert loaded.to_bytes() == data


def test_restart_keeps_refusing_what_contradicts_the_past() -> None:
    w = new_witness()
    cosign(w, HONEST, 0, 12)
    saved = w.state.to_bytes()

    restarted = new_witness(WitnessState.from_bytes(saved))
    with pytest.raises(CheckpointConflict) as e:
        restarted.add_checkpoint(12, [], FORK.checkpoint(12), NOW)
    assert e.value.split_view
    with pytest.raises(InconsistentCheckpoint):
        restarted.add_checkpoint(12, FORK.proof(12, 30), FORK.checkpoint(30), NOW)
    with pytest.raises(CheckpointConflict) as e:
        restarted.add_checkpoint(0, [], FORK.checkpoint(30), NOW)  # "forget me": no
    assert e.value.current_size == 12
    cosign(restarted, HONEST, 12, 30)
    # A witness that lost its state would have signed the fork: the state is what protects.
    cosign(new_witness(), FORK, 0, 30)


def _state_doc() -> dict[str, object]:
    w = new_witness()
    cosign(w, HONEST, 0, 3)
    with pytest.raises(CheckpointConflict):
        w.add_checkpoint(3, [], Log([*entries(2), b"x"]).checkpoint(3), NOW)
    doc = json.loads(w.state.to_bytes())
    assert isinstance(doc, dict)
    return doc


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.update(format="something-else"),
        lambda d: d.update(version=2),
        lambda d: d.update(extra=1),
        lambda d: d.pop("evidence"),
        lambda d: d.update(logs=[]),
        lambda d: d["logs"].update({"other/origin": d["logs"][ORIGIN]}),
        lambda d: d["logs"][ORIGIN].update(checkpoint="not a note"),
        lambda d: d["logs"][ORIGIN].update(cosigned_at=-1),
        lambda d: d["logs"][ORIGIN].update(refusals="1"),
        lambda d: d["evidence"][0].update(kind="rumour"),
        lambda d: d["evidence"][0].update(old_size=3),
        lambda d: d["evidence"][0].update(proof=["AAAA"]),
    ],
)
def test_corrupt_state_refused(mutate: object) -> None:
    doc = _state_doc()
    mutate(doc)  # type: ignore[operator]
    with pytest.raises(DecodeError):
        WitnessState.from_bytes(canonicalize(doc))  # type: ignore[arg-type]


def test_state_file_garbage_refused() -> None:
    for data in (b"", b"{}", b"\x00", b"[1]", b'{"format":"overt-witness-state"}'):
        with pytest.raises(DecodeError):
            WitnessState.from_bytes(data)


# ----------------------------------------------------------------------------- wire helpers


def test_request_encoding_round_trip() -> None:
    note = HONEST.checkpoint(13)
    proof = HONEST.proof(5, 13)
    body = encode_add_checkpoint(5, proof, note.to_bytes())
    lines = body.split(b"\n")
    assert lines[0] == b"old 5"
    assert lines[1 : 1 + len(proof)] == [base64.b64encode(h) for h in proof]
    assert lines[1 + len(proof)] == b""
    assert body.endswith(note.to_bytes())
    request = AddCheckpointRequest.from_bytes(body)
    assert (request.old_size, list(request.proof), request.checkpoint) == (5, proof, note)


def test_cosignature_response_parsing() -> None:
    note = HONEST.checkpoint(4)
    sig = WITNESS_SIGNER.sign(note.text, NOW)
    cosigned = parse_cosignature_response(note.to_bytes(), sig.to_line().encode())
    assert cosigned.signatures == (sig,)
    for bad in (b"", b"not a signature\n", sig.to_line().encode()[:-1]):
        with pytest.raises(DecodeError):
            parse_cosignature_response(note, bad)


# ----------------------------------------------------------------------------- a property


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["honest", "fork", "stale", "garbage-proof"]),
            st.integers(0, 40),
            st.integers(0, 40),
        ),
        max_size=25,
    )
)
def test_never_cosigns_two_inconsistent_views(ops: list[tuple[str, int, int]]) -> None:
    """Whatever mix of honest growth, fork offers, stale sizes and bad proofs arrives, every
    checkpoint the witness cosigns is consistent with every other one it cosigned, and sizes
    never decrease — also across a restart from the persisted state halfway."""
    w = new_witness()
    cosigned: list[tuple[int, bytes]] = []
    for i, (kind, a, b) in enumerate(ops):
        if i == len(ops) // 2:
            w = new_witness(WitnessState.from_bytes(w.state.to_bytes()))
        current = w.state.size_of(ORIGIN)
        size = max(a, b)
        log = FORK if kind == "fork" else HONEST
        if kind == "stale":
            old, proof = min(a, b), log.proof(min(a, b), size)
        elif kind == "garbage-proof":
            old, proof = current, [bytes([i]) * 32]
        else:
            old = current if current <= size else size
            proof = log.proof(old, size) if old <= size else []
        try:
            w.add_checkpoint(old, proof, log.checkpoint(size), NOW + i)
        except (CheckpointConflict, InconsistentCheckpoint, InvalidOldSize):
            continue
        cosigned.append((size, log.tree.root(size)))
    sizes = [s for s, _ in cosigned]
    assert sizes == sorted(sizes)
    # All cosigned views are prefixes of one tree (HONEST and FORK share their first 10 leaves).
    assert any(all(t.tree.root(s) == r for s, r in cosigned) for t in (HONEST, FORK))
    if cosigned:
        assert w.state.logs[ORIGIN].root_hash == cosigned[-1][1]
