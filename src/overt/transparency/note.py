"""C2SP signed notes (c2sp.org/signed-note) with Ed25519, and tlog cosignatures (cosignature/v1).

A signed note is UTF-8 text that ends in a newline and holds no control character other than
newline, then a blank line, then one or more signature lines ``— <key name> <base64>``, where the
base64 decodes to a 4-byte big-endian key ID followed by the signature. Two signature types are
implemented:

* ``0x01`` — Ed25519 over the note text (signed-note); a log signs its checkpoints this way.
* ``0x04`` — cosignature/v1 (c2sp.org/tlog-cosignature): Ed25519 over
  ``cosignature/v1\\ntime <t>\\n`` ‖ note text, carried as an 8-byte big-endian timestamp ‖ the
  64-byte signature; witnesses cosign checkpoints this way.

The key ID is the first 4 bytes of SHA-256(name ‖ 0x0A ‖ type ‖ public key). Verifier keys
travel as ``<name>+<8 hex digits of key ID>+<base64(type ‖ public key)>``.

Verification follows the spec's rules: a signature line whose name and key ID match no known key
is kept but ignored; a line that matches a known key must verify, and if it does not the whole
note is rejected with :class:`overt.errors.InvalidMessage` (no reason given). Parsing is strict
and bounded; malformed bytes raise :class:`overt.errors.DecodeError`; misuse (an invalid key name
or note text handed to a constructor) raises :class:`overt.errors.LocalError`.

This module never sees clocks (a cosignature's timestamp is a parameter), sockets, storage or the
meaning of a note's text; :mod:`overt.transparency.checkpoint` gives the text its structure.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final, Self

from overt.crypto import ED25519_SIG_LEN, Ed25519PrivateKey, Ed25519PublicKey, sha256
from overt.errors import ConfigurationError, DecodeError, InvalidMessage, LocalError

ALG_ED25519: Final = 0x01
"""Signature type of plain Ed25519 note signatures."""

ALG_COSIGNATURE_V1: Final = 0x04
"""Signature type of timestamped Ed25519 witness cosignatures (cosignature/v1)."""

SUPPORTED_ALGS: Final = frozenset({ALG_ED25519, ALG_COSIGNATURE_V1})

KEY_ID_LEN: Final = 4
TIMESTAMP_LEN: Final = 8
COSIGNATURE_LEN: Final = TIMESTAMP_LEN + ED25519_SIG_LEN

MAX_NOTE_BYTES: Final = 1 << 18
"""Largest encoded note accepted: room for 16 post-quantum signatures and then some."""

MAX_SIGNATURES: Final = 64
"""Most signature lines in one note (the spec requires accepting at least 16)."""

MAX_SIGNATURE_BYTES: Final = 8192
"""Largest decoded signature (key ID included) on a line, known type or not."""

MAX_KEY_NAME_BYTES: Final = 255
"""Longest key name, in UTF-8 bytes."""

MAX_TIMESTAMP: Final = (1 << 63) - 1
"""Largest cosignature timestamp (tlog-cosignature: it MUST NOT exceed 2^63 - 1)."""

SIGNATURE_PREFIX: Final = "\u2014 "
"""Em dash and space: how every signature line starts."""

COSIGNATURE_V1_HEADER: Final = b"cosignature/v1\n"


# ----------------------------------------------------------------------------- text rules


def _text_problem(text: str) -> str | None:
    """Why ``text`` is not acceptable note text, or None."""
    if not text.endswith("\n"):
        return "note text must end with a newline"
    if any(ch < " " and ch != "\n" for ch in text):
        return "note text holds a control character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "note text is not valid Unicode"
    return None


def _name_problem(name: str) -> str | None:
    """Why ``name`` is not an acceptable key name, or None."""
    if not name:
        return "key name is empty"
    if any(ch.isspace() or ch == "+" or ch < " " for ch in name):
        return "key name holds a space, a plus or a control character"
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        return "key name is not valid Unicode"
    if len(encoded) > MAX_KEY_NAME_BYTES:
        return "key name is too long"
    return None


def b64decode_strict(s: str, what: str) -> bytes:
    """Standard, padded, canonical base64 (RFC 4648 §4) or :class:`DecodeError`."""
    try:
        raw = base64.b64decode(s.encode("ascii"), validate=True)
    except ValueError:  # binascii.Error and UnicodeEncodeError are ValueErrors
        raise DecodeError(f"{what}: not base64") from None
    if base64.b64encode(raw).decode("ascii") != s:
        raise DecodeError(f"{what}: non-canonical base64")
    return raw


def b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def key_id(name: str, alg: int, public_key: bytes) -> int:
    """SHA-256(name ‖ 0x0A ‖ alg ‖ public key)[:4], as a big-endian uint32."""
    digest = sha256(name.encode("utf-8") + b"\n" + bytes((alg,)) + public_key)
    return int.from_bytes(digest[:KEY_ID_LEN], "big")


def cosignature_message(text: str, timestamp: int) -> bytes:
    """What a cosignature/v1 signs: the header line, the time line and the note text."""
    return COSIGNATURE_V1_HEADER + f"time {timestamp}\n".encode("ascii") + text.encode("utf-8")


# ----------------------------------------------------------------------------- notes


@dataclass(frozen=True, slots=True)
class NoteSignature:
    """One signature line: key name, key ID and the signature bytes that follow the key ID."""

    name: str
    key_id: int
    signature: bytes

    def __post_init__(self) -> None:
        problem = _name_problem(self.name)
        if problem is not None:
            raise LocalError(problem)
        if not 0 <= self.key_id < 1 << 32:
            raise LocalError("key ID must be a uint32")
        if not 0 < len(self.signature) <= MAX_SIGNATURE_BYTES - KEY_ID_LEN:
            raise LocalError("signature length out of range")

    def to_line(self) -> str:
        blob = self.key_id.to_bytes(KEY_ID_LEN, "big") + self.signature
        return f"{SIGNATURE_PREFIX}{self.name} {b64encode(blob)}\n"


@dataclass(frozen=True, slots=True)
class Note:
    """Note text and its signature lines, in order. The text is not trustworthy until verified."""

    text: str
    signatures: tuple[NoteSignature, ...] = ()

    def __post_init__(self) -> None:
        problem = _text_problem(self.text)
        if problem is not None:
            raise LocalError(problem)
        if len(self.signatures) > MAX_SIGNATURES:
            raise LocalError("too many signatures")

    def with_signatures(self, *signatures: NoteSignature) -> Note:
        """This note with ``signatures`` appended."""
        return Note(self.text, self.signatures + signatures)

    def to_bytes(self) -> bytes:
        """The signed-note encoding; a note needs at least one signature to be encoded."""
        if not self.signatures:
            raise LocalError("a signed note needs at least one signature")
        out = (self.text + "\n" + "".join(s.to_line() for s in self.signatures)).encode("utf-8")
        if len(out) > MAX_NOTE_BYTES:
            raise LocalError("note exceeds MAX_NOTE_BYTES")
        return out

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Parse a signed note strictly; :class:`DecodeError` on anything malformed."""
        if len(data) > MAX_NOTE_BYTES:
            raise DecodeError("note: larger than MAX_NOTE_BYTES")
        try:
            s = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise DecodeError("note: not UTF-8") from None
        if any(ch < " " and ch != "\n" for ch in s):
            raise DecodeError("note: control character")
        if not s.endswith("\n"):
            raise DecodeError("note: does not end with a newline")
        split = s.rfind("\n\n")
        if split < 0:
            raise DecodeError("note: no blank line before the signatures")
        text, block = s[: split + 1], s[split + 2 :]
        lines = block.split("\n")[:-1]  # block ends with "\n"
        if not lines:
            raise DecodeError("note: no signatures")
        if len(lines) > MAX_SIGNATURES:
            raise DecodeError("note: too many signatures")
        sigs = tuple(_parse_signature_line(line) for line in lines)
        return cls(text, sigs)


def parse_note(data: bytes) -> Note:
    """Parse a signed note strictly (see :meth:`Note.from_bytes`)."""
    return Note.from_bytes(data)


def _parse_signature_line(line: str) -> NoteSignature:
    if not line.startswith(SIGNATURE_PREFIX):
        raise DecodeError("note: signature line does not start with an em dash and a space")
    name, sep, b64 = line[len(SIGNATURE_PREFIX) :].partition(" ")
    if not sep or _name_problem(name) is not None:
        raise DecodeError("note: bad key name on a signature line")
    if len(b64) > 4 * ((MAX_SIGNATURE_BYTES + 2) // 3):
        raise DecodeError("note: signature too long")
    blob = b64decode_strict(b64, "note signature")
    if len(blob) <= KEY_ID_LEN:
        raise DecodeError("note: signature too short")
    return NoteSignature(name, int.from_bytes(blob[:KEY_ID_LEN], "big"), blob[KEY_ID_LEN:])


# ----------------------------------------------------------------------------- keys


@dataclass(frozen=True, slots=True)
class VerifierKey:
    """A trusted public key: name, signature type (0x01 or 0x04) and Ed25519 key."""

    name: str
    alg: int
    public_key: Ed25519PublicKey
    key_id: int = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        problem = _name_problem(self.name)
        if problem is not None:
            raise LocalError(problem)
        if self.alg not in SUPPORTED_ALGS:
            raise LocalError(f"unsupported signature type {self.alg:#04x}")
        object.__setattr__(self, "key_id", key_id(self.name, self.alg, self.public_key.raw))

    def to_text(self) -> str:
        """The verifier key string ``<name>+<hex key ID>+<base64(type ‖ key)>``."""
        material = bytes((self.alg,)) + self.public_key.raw
        return f"{self.name}+{self.key_id:08x}+{b64encode(material)}"

    @classmethod
    def from_text(cls, vkey: str) -> Self:
        """Parse a verifier key string; its key ID must be the one the key derives."""
        name, sep1, rest = vkey.partition("+")
        hex_id, sep2, b64 = rest.partition("+")
        if not (sep1 and sep2) or _name_problem(name) is not None:
            raise DecodeError("verifier key: bad name")
        if len(hex_id) != 2 * KEY_ID_LEN or any(c not in "0123456789abcdef" for c in hex_id):
            raise DecodeError("verifier key: key ID is not 8 lowercase hex digits")
        if len(b64) > 64:
            raise DecodeError("verifier key: key material too long")
        material = b64decode_strict(b64, "verifier key")
        if len(material) < 1 or material[0] not in SUPPORTED_ALGS:
            raise DecodeError("verifier key: unsupported signature type")
        key = cls(name, material[0], Ed25519PublicKey.from_bytes(material[1:]))
        if key.key_id != int(hex_id, 16):
            raise DecodeError("verifier key: key ID does not match the key")
        return key

    def _check(self, text: str, signature: bytes) -> int | None:
        """Verify ``signature`` over ``text``; the cosignature timestamp, or None for 0x01."""
        if self.alg == ALG_ED25519:
            self.public_key.verify(signature, text.encode("utf-8"))
            return None
        if len(signature) != COSIGNATURE_LEN:
            raise InvalidMessage()
        timestamp = int.from_bytes(signature[:TIMESTAMP_LEN], "big")
        if timestamp > MAX_TIMESTAMP:
            raise InvalidMessage()
        self.public_key.verify(signature[TIMESTAMP_LEN:], cosignature_message(text, timestamp))
        return timestamp


def parse_verifier_key(vkey: str) -> VerifierKey:
    """Parse a verifier key string (see :meth:`VerifierKey.from_text`)."""
    return VerifierKey.from_text(vkey)


@dataclass(frozen=True, slots=True, eq=False)
class NoteSigner:
    """Signs note text with Ed25519 (signature type 0x01) under ``name``."""

    name: str
    private_key: Ed25519PrivateKey

    def __post_init__(self) -> None:
        problem = _name_problem(self.name)
        if problem is not None:
            raise LocalError(problem)

    @property
    def verifier_key(self) -> VerifierKey:
        return VerifierKey(self.name, ALG_ED25519, self.private_key.public_key)

    def sign(self, text: str) -> NoteSignature:
        problem = _text_problem(text)
        if problem is not None:
            raise LocalError(problem)
        sig = self.private_key.sign(text.encode("utf-8"))
        return NoteSignature(self.name, self.verifier_key.key_id, sig)


@dataclass(frozen=True, slots=True, eq=False)
class CosignatureSigner:
    """Produces cosignature/v1 signatures (type 0x04) under ``name``; the time is passed in."""

    name: str
    private_key: Ed25519PrivateKey

    def __post_init__(self) -> None:
        problem = _name_problem(self.name)
        if problem is not None:
            raise LocalError(problem)

    @property
    def verifier_key(self) -> VerifierKey:
        return VerifierKey(self.name, ALG_COSIGNATURE_V1, self.private_key.public_key)

    def sign(self, text: str, timestamp: int) -> NoteSignature:
        problem = _text_problem(text)
        if problem is not None:
            raise LocalError(problem)
        if not 0 <= timestamp <= MAX_TIMESTAMP:
            raise LocalError("cosignature timestamp out of range")
        sig = self.private_key.sign(cosignature_message(text, timestamp))
        blob = timestamp.to_bytes(TIMESTAMP_LEN, "big") + sig
        return NoteSignature(self.name, self.verifier_key.key_id, blob)


def sign_note(text: str, signers: Iterable[NoteSigner]) -> Note:
    """A note with ``text`` signed by each of ``signers``, in order."""
    note = Note(text)
    return note.with_signatures(*(s.sign(text) for s in signers))


# ----------------------------------------------------------------------------- verification


@dataclass(frozen=True, slots=True)
class VerifiedSignature:
    """A signature that verified: the key, and the cosignature time (None for type 0x01)."""

    key: VerifierKey
    timestamp: int | None


def _index_keys(keys: Iterable[VerifierKey]) -> dict[tuple[str, int], VerifierKey]:
    index: dict[tuple[str, int], VerifierKey] = {}
    for k in keys:
        other = index.setdefault((k.name, k.key_id), k)
        if other != k:
            raise ConfigurationError(f"two trusted keys share name {k.name!r} and key ID")
    return index


def verify_signatures(note: Note, keys: Iterable[VerifierKey]) -> tuple[VerifiedSignature, ...]:
    """Check every signature line of ``note`` that names one of ``keys``.

    Lines whose (name, key ID) match no known key are ignored. A line that matches a known key
    and fails raises :class:`InvalidMessage`. Returns one :class:`VerifiedSignature` per known key
    that signed (the first line, if a key signed more than once), in line order; it may be empty.
    """
    known = _index_keys(keys)
    verified: dict[VerifierKey, VerifiedSignature] = {}
    for sig in note.signatures:
        key = known.get((sig.name, sig.key_id))
        if key is None:
            continue
        timestamp = key._check(note.text, sig.signature)
        verified.setdefault(key, VerifiedSignature(key, timestamp))
    return tuple(verified.values())


def open_note(note: Note, keys: Iterable[VerifierKey]) -> tuple[VerifiedSignature, ...]:
    """As :func:`verify_signatures`, but at least one known key must have signed."""
    verified = verify_signatures(note, keys)
    if not verified:
        raise InvalidMessage()
    return verified
