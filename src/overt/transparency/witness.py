"""A transparency-log witness, as a sans-I/O state machine (DESIGN §4, c2sp.org/tlog-witness).

A witness holds its own cosignature/v1 key and, for each log it is configured with (an origin
and the log's verifier keys), the last checkpoint it cosigned. It cosigns a new checkpoint only
if the log signed it and it is provably an append-only extension of that last one, so a log that
shows different trees to different people (a *split view*) cannot get both cosigned by the same
honest witness. It never signs a smaller tree than the one it signed last, nor a different root
at the same size.

``add-checkpoint`` follows the tlog-witness semantics, checked in this order:

==================================================  ======  ======================================
condition                                           status  exception
==================================================  ======  ======================================
request or checkpoint malformed                     400     :class:`overt.errors.DecodeError`
checkpoint origin not configured                    404     :class:`UnknownLog`
no trusted log signature verifies                   403     :class:`UntrustedCheckpoint`
same size as the cosigned one, other root           409     :class:`CheckpointConflict` (evidence)
old size larger than the checkpoint size            400     :class:`InvalidOldSize`
old size is not the size last cosigned              409     :class:`CheckpointConflict`
consistency proof does not verify                   422     :class:`InconsistentCheckpoint`
                                                            (evidence, if it contradicts a
                                                            cosigned checkpoint)
otherwise: cosign, remember the checkpoint          200     a cosignature/v1 :class:`NoteSignature`
==================================================  ======  ======================================

The split-view check comes first, whatever the old size says: two checkpoints signed by the log
with one size and two roots are proof of misbehaviour on their own. Refusals that contradict what
the witness cosigned are kept as :class:`Evidence` — both log-signed checkpoints (stripped to the
log's signature lines, so anyone can check them with the log's key), the old size and the proof
— and counted, within :data:`MAX_EVIDENCE_PER_KIND` records per log and kind.

Stage, then commit. :meth:`Witness.stage` computes the outcome and the state that follows it
without changing anything; the caller persists :attr:`Staged.state` when :attr:`Staged.changed`,
then calls :meth:`Witness.commit`, then answers with :meth:`Staged.result`. tlog-witness requires
the check and the update to be atomic and the update to be durable before the cosignature
leaves, so the caller runs stage → persist → commit under one lock (the service does).
:meth:`Witness.add_checkpoint` does all three for callers without storage.

Cosignature times never go backwards for a log: a cosignature says "as of this time, this is the
largest consistent tree I have seen", so it is made at ``max(now, last time)``.

State serializes to versioned canonical JSON (:meth:`WitnessState.to_bytes`): notes as their
text, hashes in base64, sizes as decimal strings (tree sizes reach 2^63 − 1, beyond JSON's safe
integers).

This module never sees sockets, files or clocks: request bodies, ``now`` and the persisted state
are passed in, and bytes, signatures and new state come out.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field, replace
from typing import Final, Literal, Self

from overt.errors import (
    DecodeError,
    InvalidMessage,
    LocalError,
    OvertError,
    ProtocolViolation,
)
from overt.transparency.checkpoint import Checkpoint, verify_checkpoint_consistency
from overt.transparency.merkle import EMPTY_ROOT, HASH_LEN, MAX_TREE_SIZE
from overt.transparency.note import (
    ALG_ED25519,
    MAX_NOTE_BYTES,
    CosignatureSigner,
    Note,
    NoteSignature,
    VerifierKey,
    parse_note,
    verify_signatures,
)
from overt.wire.jcs import MAX_SAFE_INTEGER, JsonValue, canonicalize, parse_strict

MAX_PROOF_LINES: Final = 63
"""Most consistency-proof lines in a request (tlog-witness: clients MUST NOT send more)."""

MAX_ADD_CHECKPOINT_BYTES: Final = 32 + MAX_PROOF_LINES * 45 + 1 + MAX_NOTE_BYTES
"""Largest add-checkpoint body: the old-size line, 63 proof lines, the blank line, a note."""

MAX_EVIDENCE_PER_KIND: Final = 16
"""Evidence records kept per log and kind; later refusals are only counted. One record of a
split view suffices as proof; the bound keeps a misbehaving log from growing the state."""

MAX_STATE_BYTES: Final = 1 << 23
"""Largest state file accepted: 8 MiB, far above what the evidence bound allows."""

MAX_WITNESSED_LOGS: Final = 256
"""Most logs one witness is configured with."""

STATE_FORMAT: Final = "overt-witness-state"
STATE_VERSION: Final = 1

SIZE_CONTENT_TYPE: Final = "text/x.tlog.size"
"""Content type of a 409 response body that carries the witness's current size."""

EvidenceKind = Literal["split-view", "inconsistent-proof"]
EVIDENCE_KINDS: Final[tuple[EvidenceKind, ...]] = ("split-view", "inconsistent-proof")

_HASH_B64_LEN: Final = 44
_MAX_DECIMAL_DIGITS: Final = len(str(MAX_TREE_SIZE))


# ----------------------------------------------------------------------------- errors


class WitnessRefusal(ProtocolViolation):
    """The witness will not cosign this checkpoint (status hint: the tlog-witness status)."""


class UnknownLog(WitnessRefusal):
    """The checkpoint's origin is not a log this witness is configured for."""

    status_hint = 404


class UntrustedCheckpoint(WitnessRefusal):
    """No signature of the log's trusted keys verifies on the checkpoint."""

    status_hint = 403

    def __init__(self) -> None:
        super().__init__("the checkpoint is not signed by a trusted key of its log")


class InvalidOldSize(WitnessRefusal):
    """The old size is larger than the checkpoint's size."""


class CheckpointConflict(WitnessRefusal):
    """The request does not start from the checkpoint the witness cosigned last.

    ``current_size`` is the size of that checkpoint (0 if none). ``split_view`` is set when the
    offered checkpoint has that very size and another root: proof of a split view.
    """

    status_hint = 409

    def __init__(self, current_size: int, *, split_view: bool = False) -> None:
        what = "a different root at the cosigned size" if split_view else "old size mismatch"
        super().__init__(f"{what}; the witness is at size {current_size}")
        self.current_size = current_size
        self.split_view = split_view


class InconsistentCheckpoint(WitnessRefusal):
    """The consistency proof does not show the checkpoint extends the cosigned one."""

    status_hint = 422

    def __init__(self) -> None:
        super().__init__("the consistency proof does not verify")


# ----------------------------------------------------------------------------- configuration


@dataclass(frozen=True, slots=True)
class WitnessedLog:
    """A log the witness cosigns for: its checkpoint origin and its trusted note keys."""

    origin: str
    keys: tuple[VerifierKey, ...]

    def __post_init__(self) -> None:
        Checkpoint(self.origin, 0, EMPTY_ROOT)  # LocalError if the origin is not a valid line
        if not self.keys:
            raise LocalError("a witnessed log needs at least one key")
        if any(k.alg != ALG_ED25519 for k in self.keys):
            raise LocalError("log keys must be Ed25519 note keys (type 0x01)")

    @classmethod
    def from_vkey(cls, vkey: str | VerifierKey, origin: str | None = None) -> Self:
        """The log whose key is ``vkey`` (C2SP text or parsed); origin defaults to its name."""
        key = vkey if isinstance(vkey, VerifierKey) else VerifierKey.from_text(vkey)
        return cls(key.name if origin is None else origin, (key,))


# ----------------------------------------------------------------------------- requests


@dataclass(frozen=True, slots=True)
class AddCheckpointRequest:
    """An add-checkpoint request: old size, consistency proof and the signed checkpoint."""

    old_size: int
    proof: tuple[bytes, ...]
    checkpoint: Note

    def __post_init__(self) -> None:
        if not 0 <= self.old_size <= MAX_TREE_SIZE:
            raise LocalError("old size out of range")
        if len(self.proof) > MAX_PROOF_LINES or any(len(h) != HASH_LEN for h in self.proof):
            raise LocalError("a proof is at most 63 hashes of 32 bytes")

    def to_bytes(self) -> bytes:
        """The request body: ``old <size>``, one base64 hash per line, a blank line, the note."""
        head = f"old {self.old_size}\n" + "".join(_b64(h) + "\n" for h in self.proof) + "\n"
        return head.encode("ascii") + self.checkpoint.to_bytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Parse a request body strictly; :class:`DecodeError` on anything malformed."""
        if len(data) > MAX_ADD_CHECKPOINT_BYTES:
            raise DecodeError("add-checkpoint: body too large")
        data = bytes(data)
        end = data.find(b"\n")
        if end < 0:
            raise DecodeError("add-checkpoint: no old size line")
        first = data[:end]
        if not first.startswith(b"old "):
            raise DecodeError("add-checkpoint: the first line must be 'old <size>'")
        old_size = _decimal(first[4:], "add-checkpoint old size")
        pos = end + 1
        proof: list[bytes] = []
        while True:
            end = data.find(b"\n", pos)
            if end < 0:
                raise DecodeError("add-checkpoint: no blank line before the checkpoint")
            line = data[pos:end]
            pos = end + 1
            if not line:
                break
            if len(proof) == MAX_PROOF_LINES:
                raise DecodeError("add-checkpoint: more than 63 proof lines")
            proof.append(_unb64_hash(line, "add-checkpoint proof line"))
        return cls(old_size, tuple(proof), parse_note(data[pos:]))


def encode_add_checkpoint(old_size: int, proof: Sequence[bytes], checkpoint: bytes | Note) -> bytes:
    """An add-checkpoint request body (what a log sends a witness)."""
    note = checkpoint if isinstance(checkpoint, Note) else parse_note(checkpoint)
    return AddCheckpointRequest(old_size, tuple(bytes(h) for h in proof), note).to_bytes()


def parse_cosignature_response(checkpoint: bytes | Note, body: bytes) -> Note:
    """The checkpoint's text with the signature lines of a witness's 200 response.

    The caller verifies the result with the witness keys it trusts (lines from unknown keys are
    to be ignored). :class:`DecodeError` if the body is not signature lines.
    """
    note = checkpoint if isinstance(checkpoint, Note) else parse_note(checkpoint)
    if not body or not body.endswith(b"\n"):
        raise DecodeError("cosignature response: not newline-terminated signature lines")
    return parse_note(note.text.encode("utf-8") + b"\n" + bytes(body))


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _unb64_hash(text: bytes | str, what: str) -> bytes:
    raw_text = text.encode("ascii") if isinstance(text, str) else text
    if len(raw_text) != _HASH_B64_LEN:
        raise DecodeError(f"{what}: not 32 bytes of base64")
    try:
        raw = base64.b64decode(raw_text, validate=True)
    except (binascii.Error, ValueError):
        raise DecodeError(f"{what}: not base64") from None
    if len(raw) != HASH_LEN or base64.b64encode(raw) != raw_text:
        raise DecodeError(f"{what}: not canonical base64 of 32 bytes")
    return raw


def _decimal(text: bytes | str, what: str) -> int:
    s = text.decode("ascii", "replace") if isinstance(text, bytes) else text
    if not s or len(s) > _MAX_DECIMAL_DIGITS or not (s.isascii() and s.isdigit()):
        raise DecodeError(f"{what}: not a decimal number")
    if s[0] == "0" and s != "0":
        raise DecodeError(f"{what}: leading zero")
    value = int(s)
    if value > MAX_TREE_SIZE:
        raise DecodeError(f"{what}: out of range")
    return value


# ----------------------------------------------------------------------------- state


@dataclass(frozen=True, slots=True)
class LogRecord:
    """What the witness remembers of one log: the last checkpoint it cosigned (with the log's
    signature lines only), when, and how many inconsistent checkpoints it refused."""

    checkpoint: Note
    cosigned_at: int
    refusals: int = 0
    parsed: Checkpoint = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "parsed", Checkpoint.from_text(self.checkpoint.text))
        if not self.checkpoint.signatures:
            raise LocalError("a cosigned checkpoint keeps the log's signature")
        if not 0 <= self.cosigned_at <= MAX_SAFE_INTEGER or self.refusals < 0:
            raise LocalError("cosignature time or refusal count out of range")

    @property
    def size(self) -> int:
        return self.parsed.size

    @property
    def root_hash(self) -> bytes:
        return self.parsed.root_hash


@dataclass(frozen=True, slots=True)
class Evidence:
    """A log-signed checkpoint that contradicts one the witness cosigned.

    ``split-view``: same size, different root — both signed by the log, proof on its own.
    ``inconsistent-proof``: a larger checkpoint whose consistency proof from the cosigned one
    fails; a fork if no valid proof exists, which anyone can ask the log to produce.
    """

    kind: EvidenceKind
    origin: str
    cosigned: Note
    offered: Note
    old_size: int
    proof: tuple[bytes, ...]
    observed_at: int

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "cosigned": self.cosigned.to_bytes().decode("utf-8"),
            "kind": self.kind,
            "observed_at": self.observed_at,
            "offered": self.offered.to_bytes().decode("utf-8"),
            "old_size": str(self.old_size),
            "origin": self.origin,
            "proof": [_b64(h) for h in self.proof],
        }

    @classmethod
    def from_json(cls, value: JsonValue) -> Self:
        m = _object(value, "evidence", _EVIDENCE_MEMBERS)
        proof = m["proof"]
        if not isinstance(proof, list) or len(proof) > MAX_PROOF_LINES:
            raise DecodeError("witness state: evidence proof must be a list of hashes")
        return cls(
            kind=_evidence_kind(m["kind"]),
            origin=_string(m["origin"], "evidence origin"),
            cosigned=_note(m["cosigned"], "evidence cosigned checkpoint"),
            offered=_note(m["offered"], "evidence offered checkpoint"),
            old_size=_decimal(_string(m["old_size"], "evidence old size"), "evidence old size"),
            proof=tuple(_unb64_hash(_string(h, "proof hash"), "evidence proof") for h in proof),
            observed_at=_safe_int(m["observed_at"], "evidence time"),
        )


@dataclass(frozen=True, slots=True)
class WitnessState:
    """Everything a witness persists: per-origin records and the evidence it kept. Immutable."""

    logs: Mapping[str, LogRecord] = field(default_factory=dict)
    evidence: tuple[Evidence, ...] = ()

    def size_of(self, origin: str) -> int:
        """The size of the last checkpoint cosigned for ``origin`` (0 if none)."""
        record = self.logs.get(origin)
        return 0 if record is None else record.size

    def to_bytes(self) -> bytes:
        """Versioned canonical JSON."""
        return canonicalize(
            {
                "evidence": [e.to_json() for e in self.evidence],
                "format": STATE_FORMAT,
                "logs": {
                    origin: {
                        "checkpoint": r.checkpoint.to_bytes().decode("utf-8"),
                        "cosigned_at": r.cosigned_at,
                        "refusals": r.refusals,
                    }
                    for origin, r in self.logs.items()
                },
                "version": STATE_VERSION,
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Load a persisted state; :class:`DecodeError` if it is not one this code wrote."""
        doc = _object(
            parse_strict(data, max_bytes=MAX_STATE_BYTES),
            "witness state",
            {"evidence", "format", "logs", "version"},
        )
        if doc["format"] != STATE_FORMAT:
            raise DecodeError("witness state: not a witness state file")
        if doc["version"] != STATE_VERSION:
            raise DecodeError(f"witness state: unsupported version {doc['version']!r}")
        logs_json = doc["logs"]
        evidence_json = doc["evidence"]
        if not isinstance(logs_json, dict) or not isinstance(evidence_json, list):
            raise DecodeError("witness state: logs must be an object and evidence a list")
        logs: dict[str, LogRecord] = {}
        for origin, value in logs_json.items():
            m = _object(value, "log record", {"checkpoint", "cosigned_at", "refusals"})
            try:
                record = LogRecord(
                    _note(m["checkpoint"], "cosigned checkpoint"),
                    _safe_int(m["cosigned_at"], "cosignature time"),
                    _safe_int(m["refusals"], "refusal count"),
                )
            except LocalError as e:
                raise DecodeError(f"witness state: {e}") from None
            if record.parsed.origin != origin:
                raise DecodeError("witness state: a record is filed under another origin")
            logs[origin] = record
        evidence = tuple(Evidence.from_json(e) for e in evidence_json)
        return cls(logs, evidence)


_EVIDENCE_MEMBERS: Final = {
    "cosigned",
    "kind",
    "observed_at",
    "offered",
    "old_size",
    "origin",
    "proof",
}


def _evidence_kind(value: JsonValue) -> EvidenceKind:
    if value == "split-view":
        return "split-view"
    if value == "inconsistent-proof":
        return "inconsistent-proof"
    raise DecodeError("witness state: unknown evidence kind")


def _object(value: JsonValue, what: str, members: Set[str]) -> dict[str, JsonValue]:
    if not isinstance(value, dict) or value.keys() != members:
        raise DecodeError(f"witness state: {what} must have exactly {sorted(members)}")
    return value


def _string(value: JsonValue, what: str) -> str:
    if not isinstance(value, str):
        raise DecodeError(f"witness state: {what} must be a string")
    return value


def _safe_int(value: JsonValue, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise DecodeError(f"witness state: {what} must be a non-negative integer")
    return value


def _note(value: JsonValue, what: str) -> Note:
    note = parse_note(_string(value, what).encode("utf-8"))
    Checkpoint.from_text(note.text)
    return note


# ----------------------------------------------------------------------------- the machine


@dataclass(frozen=True, slots=True)
class Staged:
    """The outcome of one request, computed but not yet committed.

    Exactly one of ``cosignature`` and ``refusal`` is set. ``state`` is the state that follows;
    when :attr:`changed`, persist it before :meth:`Witness.commit` and before answering.
    """

    base: WitnessState
    state: WitnessState
    cosignature: NoteSignature | None = None
    refusal: OvertError | None = None

    @property
    def changed(self) -> bool:
        return self.state is not self.base

    def result(self) -> NoteSignature:
        """The cosignature line, or raise the refusal."""
        if self.refusal is not None:
            raise self.refusal
        if self.cosignature is None:  # pragma: no cover - construction guarantees one of them
            raise LocalError("staged outcome has neither a cosignature nor a refusal")
        return self.cosignature


class Witness:
    """The witness for a set of logs, with its key and its current (immutable) state."""

    __slots__ = ("_logs", "_signer", "_state")

    def __init__(
        self,
        signer: CosignatureSigner,
        logs: Iterable[WitnessedLog],
        state: WitnessState | None = None,
    ) -> None:
        self._signer = signer
        self._logs: dict[str, WitnessedLog] = {}
        for log in logs:
            if log.origin in self._logs:
                raise LocalError(f"log origin {log.origin!r} configured twice")
            if any(k.public_key == signer.private_key.public_key for k in log.keys):
                raise LocalError("the witness key cannot be one of the log's keys")
            self._logs[log.origin] = log
        if len(self._logs) > MAX_WITNESSED_LOGS:
            raise LocalError("too many witnessed logs")
        self._state = WitnessState() if state is None else state

    @property
    def state(self) -> WitnessState:
        return self._state

    @property
    def verifier_key(self) -> VerifierKey:
        """The witness's own cosignature/v1 verifier key."""
        return self._signer.verifier_key

    @property
    def logs(self) -> Mapping[str, WitnessedLog]:
        return dict(self._logs)

    # --------------------------------------------------------------------- public operations

    def add_checkpoint(
        self, old_size: int, proof: Sequence[bytes], checkpoint: bytes | Note, now: int
    ) -> NoteSignature:
        """Stage, commit and return the cosignature line, or raise the refusal (see module)."""
        staged = self.stage(old_size, proof, checkpoint, now)
        self.commit(staged)
        return staged.result()

    def stage_request(self, body: bytes, now: int) -> Staged:
        """:meth:`stage` for a raw add-checkpoint body (a malformed body is a staged refusal)."""
        try:
            request = AddCheckpointRequest.from_bytes(body)
        except DecodeError as e:
            return Staged(self._state, self._state, refusal=e)
        return self._stage(request.old_size, request.proof, request.checkpoint, now)

    def stage(
        self, old_size: int, proof: Sequence[bytes], checkpoint: bytes | Note, now: int
    ) -> Staged:
        """Decide on a request without changing anything. Remote faults become refusals."""
        try:
            if not isinstance(old_size, int) or not 0 <= old_size <= MAX_TREE_SIZE:
                raise DecodeError("old size out of range")
            hashes = tuple(bytes(h) for h in proof)
            if len(hashes) > MAX_PROOF_LINES or any(len(h) != HASH_LEN for h in hashes):
                raise DecodeError("a proof is at most 63 hashes of 32 bytes")
            note = checkpoint if isinstance(checkpoint, Note) else parse_note(checkpoint)
        except DecodeError as e:
            return Staged(self._state, self._state, refusal=e)
        return self._stage(old_size, hashes, note, now)

    def commit(self, staged: Staged) -> None:
        """Adopt ``staged.state``; it must have been staged from the current state."""
        if staged.base is not self._state:
            raise LocalError("stale staged outcome: the state changed since it was staged")
        self._state = staged.state

    # --------------------------------------------------------------------- the decision

    def _stage(self, old_size: int, proof: tuple[bytes, ...], note: Note, now: int) -> Staged:
        if not isinstance(now, int) or not 0 <= now <= MAX_SAFE_INTEGER:
            raise LocalError("now must be a POSIX time in seconds")
        base = self._state

        def refuse(error: OvertError, state: WitnessState = base) -> Staged:
            return Staged(base, state, refusal=error)

        try:
            checkpoint = Checkpoint.from_text(note.text)
        except DecodeError as e:
            return refuse(e)
        log = self._logs.get(checkpoint.origin)
        if log is None:
            return refuse(UnknownLog("this witness does not witness that log"))
        try:
            verified = verify_signatures(note, log.keys)
        except InvalidMessage:
            return refuse(UntrustedCheckpoint())
        if not verified:
            return refuse(UntrustedCheckpoint())
        signed_by = {(v.key.name, v.key.key_id) for v in verified}
        log_signed = Note(
            note.text, tuple(s for s in note.signatures if (s.name, s.key_id) in signed_by)
        )

        record = base.logs.get(checkpoint.origin)
        current = 0 if record is None else record.size

        if (
            record is not None
            and checkpoint.size == record.size
            and checkpoint.root_hash != record.root_hash
        ):
            evidence = Evidence(
                "split-view",
                checkpoint.origin,
                record.checkpoint,
                log_signed,
                old_size,
                proof,
                now,
            )
            return refuse(
                CheckpointConflict(current, split_view=True),
                self._with_refusal(base, record, evidence),
            )
        if old_size > checkpoint.size:
            return refuse(InvalidOldSize("the old size is larger than the checkpoint's size"))
        if old_size != current:
            return refuse(CheckpointConflict(current))
        if record is None or record.size in (0, checkpoint.size):
            # From nothing, or the same tree again: there is nothing to prove.
            if proof:
                return refuse(InconsistentCheckpoint())
        else:
            try:
                verify_checkpoint_consistency(record.parsed, checkpoint, proof)
            except InvalidMessage:
                evidence = Evidence(
                    "inconsistent-proof",
                    checkpoint.origin,
                    record.checkpoint,
                    log_signed,
                    old_size,
                    proof,
                    now,
                )
                return refuse(InconsistentCheckpoint(), self._with_refusal(base, record, evidence))

        timestamp = now if record is None else max(now, record.cosigned_at)
        signature = self._signer.sign(note.text, timestamp)
        new_record = LogRecord(log_signed, timestamp, 0 if record is None else record.refusals)
        logs = {**base.logs, checkpoint.origin: new_record}
        return Staged(base, WitnessState(logs, base.evidence), cosignature=signature)

    @staticmethod
    def _with_refusal(base: WitnessState, record: LogRecord, evidence: Evidence) -> WitnessState:
        """``base`` with the refusal counted and ``evidence`` kept, if new and within bounds."""
        counted = replace(record, refusals=record.refusals + 1)
        logs = {**base.logs, evidence.origin: counted}
        same_kind = [
            e for e in base.evidence if (e.origin, e.kind) == (evidence.origin, evidence.kind)
        ]
        duplicate = any(
            e.offered.text == evidence.offered.text and e.cosigned.text == evidence.cosigned.text
            for e in same_kind
        )
        keep = not duplicate and len(same_kind) < MAX_EVIDENCE_PER_KIND
        return WitnessState(logs, (*base.evidence, evidence) if keep else base.evidence)


__all__ = [
    "EVIDENCE_KINDS",
    "MAX_ADD_CHECKPOINT_BYTES",
    "MAX_EVIDENCE_PER_KIND",
    "MAX_PROOF_LINES",
    "MAX_STATE_BYTES",
    "MAX_WITNESSED_LOGS",
    "SIZE_CONTENT_TYPE",
    "STATE_FORMAT",
    "STATE_VERSION",
    "AddCheckpointRequest",
    "CheckpointConflict",
    "Evidence",
    "EvidenceKind",
    "InconsistentCheckpoint",
    "InvalidOldSize",
    "LogRecord",
    "Staged",
    "UnknownLog",
    "UntrustedCheckpoint",
    "Witness",
    "WitnessRefusal",
    "WitnessState",
    "WitnessedLog",
    "encode_add_checkpoint",
    "parse_cosignature_response",
]
