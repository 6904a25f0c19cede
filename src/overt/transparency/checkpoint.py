"""C2SP tlog checkpoints (c2sp.org/tlog-checkpoint) and tlog proofs (c2sp.org/tlog-proof).

A checkpoint is the text of a signed note: the log's origin line, the tree size in decimal (no
leading zeros), the base64 root hash, then optional non-empty extension lines. The log signs it
with Ed25519 (signature type 0x01); witnesses add cosignature/v1 lines (type 0x04).
:func:`verify_checkpoint` accepts a checkpoint only if the log's key signed it, its origin is the
expected one, and at least ``quorum`` distinct trusted witnesses cosigned it.

A proof bundle (``c2sp.org/tlog-proof@v1``) carries an entry's index, its inclusion proof and the
cosigned checkpoint, so that :func:`verify_proof_bundle` can check offline that the entry is in the
tree a quorum of witnesses saw.

Parsing is strict and bounded (:class:`overt.errors.DecodeError`); failed signatures, quorums and
proofs raise :class:`overt.errors.InvalidMessage` without a reason; a witness policy that can never
be met, or keys of the wrong type, raise :class:`overt.errors.ConfigurationError`.

This module never sees clocks (cosignature times are parameters), sockets or storage, and does not
know what the log's entries mean. It does not decide *whether* a witness should cosign (that takes
the witness's memory of the last checkpoint it signed); it only formats and checks.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Final, Self

from overt.errors import ConfigurationError, DecodeError, InvalidMessage, LocalError
from overt.transparency.merkle import (
    EMPTY_ROOT,
    HASH_LEN,
    MAX_INCLUSION_PROOF_HASHES,
    MAX_TREE_SIZE,
    hash_leaf,
    verify_consistency,
    verify_inclusion,
)
from overt.transparency.note import (
    ALG_COSIGNATURE_V1,
    ALG_ED25519,
    MAX_NOTE_BYTES,
    CosignatureSigner,
    Note,
    NoteSigner,
    VerifiedSignature,
    VerifierKey,
    b64decode_strict,
    b64encode,
    verify_signatures,
)

MAX_ORIGIN_BYTES: Final = 255
"""Longest origin line, in UTF-8 bytes (what the ML-DSA cosignature format can carry)."""

MAX_EXTENSION_LINES: Final = 16
"""Most extension lines after the root hash."""

MAX_EXTENSION_LINE_BYTES: Final = 1024
"""Longest extension line, in UTF-8 bytes."""

PROOF_BUNDLE_HEADER: Final = "c2sp.org/tlog-proof@v1"

MAX_EXTRA_BYTES: Final = 1 << 16
"""Largest opaque ``extra`` field of a proof bundle, decoded."""

MAX_PROOF_BUNDLE_BYTES: Final = MAX_NOTE_BYTES + 2 * MAX_EXTRA_BYTES + 8192
"""Largest encoded proof bundle: a note, the base64 extra, the index and 63 hashes."""

_ROOT_B64_LEN: Final = 44  # base64 of 32 bytes
_MAX_DECIMAL_DIGITS: Final = len(str(MAX_TREE_SIZE))


def _decimal(s: str, what: str) -> int:
    """ASCII decimal without leading zeros, at most MAX_TREE_SIZE, or DecodeError."""
    if not s or len(s) > _MAX_DECIMAL_DIGITS or not (s.isascii() and s.isdigit()):
        raise DecodeError(f"{what}: not a decimal number")
    if s[0] == "0" and s != "0":
        raise DecodeError(f"{what}: leading zero")
    value = int(s)
    if value > MAX_TREE_SIZE:
        raise DecodeError(f"{what}: out of range")
    return value


def _line_problem(line: str, max_bytes: int, what: str) -> str | None:
    """Why ``line`` is not a non-empty line of valid text of at most ``max_bytes``, or None."""
    if not line or any(ch < " " for ch in line):
        return f"{what} must be a non-empty line without control characters"
    try:
        n = len(line.encode("utf-8"))
    except UnicodeEncodeError:
        return f"{what} is not valid Unicode"
    if n > max_bytes:
        return f"{what} is too long"
    return None


def _origin_problem(origin: str) -> str | None:
    return _line_problem(origin, MAX_ORIGIN_BYTES, "origin")


def _extension_problem(line: str) -> str | None:
    return _line_problem(line, MAX_EXTENSION_LINE_BYTES, "extension line")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The body of a checkpoint: origin, tree size, root hash and extension lines."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        problem = _origin_problem(self.origin)
        if problem is not None:
            raise LocalError(problem)
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise LocalError("tree size out of range")
        if len(self.root_hash) != HASH_LEN:
            raise LocalError("root hash must be 32 bytes")
        if self.size == 0 and self.root_hash != EMPTY_ROOT:
            raise LocalError("the empty tree's root hash is SHA-256 of the empty string")
        if len(self.extensions) > MAX_EXTENSION_LINES:
            raise LocalError("too many extension lines")
        for line in self.extensions:
            problem = _extension_problem(line)
            if problem is not None:
                raise LocalError(problem)

    def to_text(self) -> str:
        lines = [self.origin, str(self.size), b64encode(self.root_hash), *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def from_text(cls, text: str) -> Self:
        """Parse a checkpoint body strictly; :class:`DecodeError` if it is malformed."""
        if not text.endswith("\n"):
            raise DecodeError("checkpoint: does not end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise DecodeError("checkpoint: fewer than three lines")
        if len(lines) > 3 + MAX_EXTENSION_LINES:
            raise DecodeError("checkpoint: too many extension lines")
        origin, size_line, root_line, *extensions = lines
        if _origin_problem(origin) is not None:
            raise DecodeError("checkpoint: bad origin line")
        size = _decimal(size_line, "checkpoint tree size")
        if len(root_line) != _ROOT_B64_LEN:
            raise DecodeError("checkpoint: root hash is not 32 bytes of base64")
        root = b64decode_strict(root_line, "checkpoint root hash")
        if len(root) != HASH_LEN:
            raise DecodeError("checkpoint: root hash is not 32 bytes")
        if size == 0 and root != EMPTY_ROOT:
            raise DecodeError("checkpoint: empty tree with a root other than SHA-256('')")
        for line in extensions:
            if _extension_problem(line) is not None:
                raise DecodeError("checkpoint: bad extension line")
        return cls(origin, size, root, tuple(extensions))


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse a checkpoint body strictly (see :meth:`Checkpoint.from_text`)."""
    return Checkpoint.from_text(text)


def sign_checkpoint(checkpoint: Checkpoint, signer: NoteSigner) -> Note:
    """The checkpoint as a note signed by the log. Its key name SHOULD be the origin."""
    text = checkpoint.to_text()
    return Note(text, (signer.sign(text),))


def cosign_checkpoint(note: Note, cosigner: CosignatureSigner, timestamp: int) -> Note:
    """``note`` with a cosignature/v1 line from ``cosigner`` at ``timestamp`` (Unix seconds).

    Only checks that the text is a well-formed checkpoint; whether to cosign (the log's
    signature, consistency with what the witness signed before) is the caller's decision.
    """
    Checkpoint.from_text(note.text)
    return note.with_signatures(cosigner.sign(note.text, timestamp))


@dataclass(frozen=True, slots=True)
class VerifiedCheckpoint:
    """A checkpoint whose log signature and witness quorum verified."""

    checkpoint: Checkpoint
    note: Note
    cosignatures: tuple[VerifiedSignature, ...]
    """The valid cosignatures of trusted witnesses, one per witness, with their times."""


def _check_policy(log_key: VerifierKey, witnesses: Collection[VerifierKey], quorum: int) -> None:
    if log_key.alg != ALG_ED25519:
        raise ConfigurationError("the log key must be an Ed25519 note key (type 0x01)")
    if any(w.alg != ALG_COSIGNATURE_V1 for w in witnesses):
        raise ConfigurationError("witness keys must be cosignature/v1 keys (type 0x04)")
    publics = [w.public_key.raw for w in witnesses]
    if len(set(publics)) != len(publics):
        raise ConfigurationError("two witnesses share a public key")
    if log_key.public_key.raw in publics:
        raise ConfigurationError("the log cannot witness itself")
    if not 0 <= quorum <= len(publics):
        raise ConfigurationError("the witness quorum cannot be met by the witnesses given")


def verify_checkpoint(
    note: Note,
    log_key: VerifierKey,
    witnesses: Collection[VerifierKey] = (),
    quorum: int = 0,
    *,
    origin: str | None = None,
) -> VerifiedCheckpoint:
    """Verify a signed checkpoint against the log's key and a witness quorum.

    Accepts only if ``log_key`` signed the note, the checkpoint's origin is ``origin`` (by
    default the log key's name), and at least ``quorum`` distinct ``witnesses`` have valid
    cosignatures. A failing signature from any trusted key, log or witness, rejects the note.
    Signatures from unknown keys are ignored. Raises :class:`InvalidMessage` on failure and
    :class:`DecodeError` if the signed text is not a checkpoint.
    """
    _check_policy(log_key, witnesses, quorum)
    verified = verify_signatures(note, [log_key, *witnesses])
    if not any(v.key == log_key for v in verified):
        raise InvalidMessage()
    checkpoint = Checkpoint.from_text(note.text)
    expected_origin = log_key.name if origin is None else origin
    if checkpoint.origin != expected_origin:
        raise InvalidMessage()
    cosignatures = tuple(v for v in verified if v.key != log_key)
    if len(cosignatures) < quorum:
        raise InvalidMessage()
    return VerifiedCheckpoint(checkpoint, note, cosignatures)


def verify_checkpoint_consistency(old: Checkpoint, new: Checkpoint, proof: Sequence[bytes]) -> None:
    """Raise :class:`InvalidMessage` unless ``new`` extends ``old`` (same log, append-only).

    From an empty tree every tree is consistent, with an empty proof.
    """
    if old.origin != new.origin or old.size > new.size:
        raise InvalidMessage()
    if old.size == 0:
        if proof:
            raise InvalidMessage()
        return
    verify_consistency(old.size, new.size, proof, old.root_hash, new.root_hash)


# ----------------------------------------------------------------------------- proof bundles


@dataclass(frozen=True, slots=True)
class ProofBundle:
    """A c2sp.org/tlog-proof@v1 bundle: index, inclusion proof, cosigned checkpoint, extra.

    ``extra`` is opaque, unauthenticated application data (None when absent).
    """

    index: int
    proof: tuple[bytes, ...]
    checkpoint: Note
    extra: bytes | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.index < MAX_TREE_SIZE:
            raise LocalError("index out of range")
        if len(self.proof) > MAX_INCLUSION_PROOF_HASHES:
            raise LocalError("inclusion proof too long")
        if any(len(h) != HASH_LEN for h in self.proof):
            raise LocalError("inclusion proof hashes must be 32 bytes")
        if not self.checkpoint.signatures:
            raise LocalError("the checkpoint must be signed")
        if self.extra is not None and len(self.extra) > MAX_EXTRA_BYTES:
            raise LocalError("extra data too long")

    def to_bytes(self) -> bytes:
        lines = [PROOF_BUNDLE_HEADER]
        if self.extra is not None:
            lines.append(f"extra {b64encode(self.extra)}")
        lines.append(f"index {self.index}")
        lines.extend(b64encode(h) for h in self.proof)
        head = "".join(line + "\n" for line in lines) + "\n"
        return head.encode("ascii") + self.checkpoint.to_bytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Parse a proof bundle strictly; :class:`DecodeError` if it is malformed."""
        if len(data) > MAX_PROOF_BUNDLE_BYTES:
            raise DecodeError("proof bundle: too large")
        data = bytes(data)
        pos = 0

        def next_line() -> str:
            nonlocal pos
            end = data.find(b"\n", pos)
            if end < 0:
                raise DecodeError("proof bundle: truncated")
            raw = data[pos:end]
            pos = end + 1
            if not raw.isascii():
                raise DecodeError("proof bundle: non-ASCII header line")
            return raw.decode("ascii")

        if next_line() != PROOF_BUNDLE_HEADER:
            raise DecodeError("proof bundle: unknown header")
        line = next_line()
        extra: bytes | None = None
        if line.startswith("extra "):
            b64 = line[len("extra ") :]
            if len(b64) > 4 * ((MAX_EXTRA_BYTES + 2) // 3):
                raise DecodeError("proof bundle: extra data too long")
            extra = b64decode_strict(b64, "proof bundle extra")
            line = next_line()
        if not line.startswith("index "):
            raise DecodeError("proof bundle: no index line")
        index = _decimal(line[len("index ") :], "proof bundle index")
        if index >= MAX_TREE_SIZE:
            raise DecodeError("proof bundle: index out of range")
        proof: list[bytes] = []
        while (line := next_line()) != "":
            if len(proof) == MAX_INCLUSION_PROOF_HASHES:
                raise DecodeError("proof bundle: inclusion proof too long")
            if len(line) != _ROOT_B64_LEN:
                raise DecodeError("proof bundle: proof line is not 32 bytes of base64")
            node = b64decode_strict(line, "proof bundle hash")
            if len(node) != HASH_LEN:
                raise DecodeError("proof bundle: proof line is not 32 bytes of base64")
            proof.append(node)
        note = Note.from_bytes(data[pos:])
        Checkpoint.from_text(note.text)
        return cls(index, tuple(proof), note, extra)


def parse_proof_bundle(data: bytes) -> ProofBundle:
    """Parse a proof bundle strictly (see :meth:`ProofBundle.from_bytes`)."""
    return ProofBundle.from_bytes(data)


def verify_proof_bundle(
    bundle: ProofBundle,
    *,
    leaf_data: bytes | None = None,
    leaf_hash: bytes | None = None,
    log_key: VerifierKey,
    witnesses: Collection[VerifierKey] = (),
    quorum: int = 0,
    origin: str | None = None,
) -> VerifiedCheckpoint:
    """Check offline that an entry is in a checkpoint that the log signed and witnesses cosigned.

    Give exactly one of ``leaf_data`` (the entry; its RFC 9162 leaf hash is computed) or
    ``leaf_hash``. The checkpoint is verified as by :func:`verify_checkpoint`, then the inclusion
    proof of ``bundle.index`` against its size and root. Raises :class:`InvalidMessage` on any
    failure. ``bundle.extra`` is not authenticated and is not looked at.
    """
    if leaf_hash is None:
        if leaf_data is None:
            raise LocalError("give exactly one of leaf_data and leaf_hash")
        target = hash_leaf(leaf_data)
    elif leaf_data is None:
        target = bytes(leaf_hash)
    else:
        raise LocalError("give exactly one of leaf_data and leaf_hash")
    verified = verify_checkpoint(bundle.checkpoint, log_key, witnesses, quorum, origin=origin)
    cp = verified.checkpoint
    verify_inclusion(target, bundle.index, cp.size, bundle.proof, cp.root_hash)
    return verified
