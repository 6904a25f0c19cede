"""What custodians, their DKG driver, the provider and the LEA send one another: signed DKG
messages, shares sealed to a custodian, custodian identities, signed access receipts, the
epoch publication the provider logs, and the escrow-epoch calendar.

**Signed messages.** Every DKG message a custodian emits travels as a :class:`SignedMessage`:
the sender's index, a kind, the body (the :mod:`overt.access.dkg` encoding) and an Ed25519
signature by the sender's manifest key over ::

    "Overt_CustodianMessage_v1\\n" ‖ session_id[32] ‖ kind u8 ‖ sender u8 ‖ body<0..2^32-1>

so the driver that relays them cannot forge, alter or move one to another run or kind. The
broadcast messages (commitments, complaints, answers) go to everyone; the DKG's private shares
go as ``SHARE`` messages whose body is sealed to the recipient (:func:`seal_share`)::

    body = recipient u8 ‖ ephemeral X25519 key[32] ‖ seal(k, DealtShare, ad)
    k    = HKDF-SHA256(ikm = X25519(eph, recipient), salt = eph_pub ‖ recipient_pub,
                       info = "Overt_DKG_share_v1" ‖ session ‖ dealer u8 ‖ recipient u8)
    ad   = session ‖ dealer u8 ‖ recipient u8

One fresh ephemeral key per share, so every content key is used once (as
:func:`overt.crypto.seal` requires). A custodian's X25519 key is not in the manifest: it
publishes it in its :class:`CustodianIdentity`, signed by its manifest key.

**The epoch publication.** After finalizing, each custodian signs a ``CONFIRMATION`` whose
body is the SHA-256 of the transcript it computed. The driver sends the provider every
broadcast message and every confirmation; :func:`verify_publication` recomputes the transcript
from the broadcast messages alone (:func:`overt.access.dkg.transcript_from_messages`) and
accepts it only if *every* custodian of the manifest confirmed exactly that transcript — so
the key logged is one every custodian holds a valid share of (a DKG with a custodian down is
run again later; epoch keys are made ahead of time).

The check of the confirmations is :func:`overt.access.epoch.verify_confirmations`, the same
function every client runs on the confirmations the provider keeps with the epoch.

**The calendar.** Epoch ``E`` of a manifest with ``epoch_length_days = L`` and
``retention_days = R`` serves from ``E·L`` days after the Unix epoch until ``(E+1)·L`` days, and
its shares are destroyed ``R`` days after that (:func:`epoch_span`). Custodians, the provider
and clients compute it alike.

**Receipts.** A custodian signs ``"Overt_AccessReceipt_v1\\n" ‖ entry`` (the
:class:`~overt.transparency.entries.AccessReceipt` log entry) with its manifest key; the
provider checks it before logging.

This module is pure: no sockets, files or clocks.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Final, Self

from overt.access.dkg import (
    ComplaintAnswer,
    Complaints,
    DealerCommitment,
    DealtShare,
    DkgParameters,
    DkgTranscript,
    session_id,
    transcript_from_messages,
)
from overt.access.epoch import (
    CONFIRMATION_KIND,
    MESSAGE_CONTEXT,
    Confirmation,
    message_signed_part,
    verify_confirmations,
)
from overt.access.limits import DAY_SECONDS, MAX_CUSTODIANS
from overt.crypto import (
    ED25519_SIG_LEN,
    X25519_KEY_LEN,
    Ed25519PrivateKey,
    Ed25519PublicKey,
    Rng,
    X25519PrivateKey,
    X25519PublicKey,
    hkdf_sha256,
    open_sealed,
    seal,
    sha256,
)
from overt.errors import DecodeError, InvalidMessage, ProtocolViolation
from overt.transparency.entries import AccessReceipt, EpochKey, encode_entry
from overt.transparency.manifest import EscrowAccess, Manifest
from overt.wire.jcs import JsonValue

IDENTITY_CONTEXT: Final = b"Overt_CustodianIdentity_v1\n"
RECEIPT_CONTEXT: Final = b"Overt_AccessReceipt_v1\n"
SHARE_INFO: Final = b"Overt_DKG_share_v1"

MAX_MESSAGE_BODY_BYTES: Final = 4096
"""Largest body of one signed DKG message (a commitment of 32 points is about 1.1 KiB)."""

MAX_ATTEMPT: Final = 0xFFFF_FFFF
"""DKG attempts are u32 (a failed run is retried with the next attempt number)."""

_KEY_LEN: Final = 32


# ----------------------------------------------------------------------------- base64url


_B64: Final = re.compile(r"[A-Za-z0-9_-]*")


def b64e(data: bytes) -> str:
    """Base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64d(value: object, what: str, max_bytes: int | None = None) -> bytes:
    """Canonical base64url without padding, or :class:`DecodeError` naming ``what``."""
    if not isinstance(value, str) or not _B64.fullmatch(value) or len(value) % 4 == 1:
        raise DecodeError(f"{what} is not base64url")
    if max_bytes is not None and len(value) > (4 * max_bytes + 2) // 3:
        raise DecodeError(f"{what} is longer than {max_bytes} bytes")
    try:
        out = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raise DecodeError(f"{what} is not base64url") from None
    if b64e(out) != value:
        raise DecodeError(f"{what} is not canonical base64url")
    return out


def members(value: JsonValue, what: str, names: set[str]) -> Mapping[str, JsonValue]:
    """``value`` as an object with exactly ``names``, or :class:`DecodeError`."""
    if not isinstance(value, dict):
        raise DecodeError(f"{what} must be a JSON object")
    missing, unknown = names - value.keys(), value.keys() - names
    if missing or unknown:
        raise DecodeError(
            f"{what}: missing {sorted(missing)}, unknown {sorted(unknown)}"
            if missing and unknown
            else f"{what}: missing {sorted(missing)}"
            if missing
            else f"{what}: unknown members {sorted(unknown)}"
        )
    return value


def integer(value: JsonValue, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise DecodeError(f"{what} must be an integer in {low}..{high}")
    return value


def items(value: JsonValue, what: str, max_items: int) -> list[JsonValue]:
    if not isinstance(value, list) or len(value) > max_items:
        raise DecodeError(f"{what} must be a list of at most {max_items} items")
    return value


# ----------------------------------------------------------------------------- the calendar


def epoch_seconds(access: EscrowAccess) -> int:
    return access.epoch_length_days * DAY_SECONDS


def epoch_at(now: int, access: EscrowAccess) -> int:
    """The escrow epoch in force at ``now`` (Unix seconds)."""
    return max(0, now) // epoch_seconds(access)


def epoch_span(epoch: int, access: EscrowAccess) -> tuple[int, int]:
    """``(not_before, retain_until)`` of ``epoch``: when senders start using its key, and when
    custodians destroy their shares (the end of the epoch plus the retention window)."""
    length = epoch_seconds(access)
    return epoch * length, (epoch + 1) * length + access.retention_days * DAY_SECONDS


def escrow(manifest: Manifest) -> EscrowAccess:
    """The manifest's escrow policy; :class:`ProtocolViolation` if its policy is ``none``."""
    if not isinstance(manifest.access, EscrowAccess):
        raise ProtocolViolation("the deployment's access policy is none: it has no custodians")
    return manifest.access


def dkg_parameters(manifest: Manifest, epoch: int, attempt: int) -> DkgParameters:
    """The DKG run of ``epoch`` (attempt ``attempt``) among the manifest's custodians."""
    access = escrow(manifest)
    keys = [c.key.raw for c in access.custodians]
    sid = session_id(manifest.deployment, epoch, attempt, keys)
    return DkgParameters(sid, epoch, len(keys), access.threshold)


# ----------------------------------------------------------------------------- identities


@dataclass(frozen=True, slots=True)
class CustodianIdentity:
    """What a custodian publishes about itself: its manifest position and name, its Ed25519
    key (the manifest's) and the X25519 key its DKG shares are sealed to, signed by the
    Ed25519 key."""

    index: int
    name: str
    key: Ed25519PublicKey
    dh_key: X25519PublicKey
    signature: bytes

    @staticmethod
    def signed_part(index: int, key: Ed25519PublicKey, dh_key: X25519PublicKey) -> bytes:
        return IDENTITY_CONTEXT + bytes((index,)) + key.raw + dh_key.raw

    @classmethod
    def create(
        cls, index: int, name: str, sign_key: Ed25519PrivateKey, dh_key: X25519PublicKey
    ) -> CustodianIdentity:
        part = cls.signed_part(index, sign_key.public_key, dh_key)
        return cls(index, name, sign_key.public_key, dh_key, sign_key.sign(part))

    def verify(self, expected: Ed25519PublicKey, index: int) -> None:
        """:class:`InvalidMessage` unless this is custodian ``index`` with key ``expected``."""
        if self.index != index or self.key != expected:
            raise InvalidMessage()
        self.key.verify(self.signature, self.signed_part(self.index, self.key, self.dh_key))

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "dh_key": b64e(self.dh_key.raw),
            "index": self.index,
            "key": b64e(self.key.raw),
            "name": self.name,
            "signature": b64e(self.signature),
        }

    @classmethod
    def from_json(cls, value: JsonValue) -> Self:
        m = members(value, "custodian identity", {"dh_key", "index", "key", "name", "signature"})
        name = m["name"]
        if not isinstance(name, str) or not 0 < len(name) <= 128:
            raise DecodeError("custodian identity: name must be a string of 1..128 characters")
        signature = b64d(m["signature"], "identity signature", ED25519_SIG_LEN)
        if len(signature) != ED25519_SIG_LEN:
            raise DecodeError("identity signature is not 64 bytes")
        return cls(
            integer(m["index"], "custodian index", 1, MAX_CUSTODIANS),
            name,
            Ed25519PublicKey.from_bytes(b64d(m["key"], "custodian key", _KEY_LEN)),
            X25519PublicKey.from_bytes(b64d(m["dh_key"], "custodian DH key", X25519_KEY_LEN)),
            signature,
        )


# ----------------------------------------------------------------------------- signed messages


class MessageKind(IntEnum):
    COMMITMENT = 1
    SHARE = 2
    COMPLAINTS = 3
    ANSWER = 4
    CONFIRMATION = CONFIRMATION_KIND


@dataclass(frozen=True, slots=True)
class SignedMessage:
    """One DKG message from custodian ``sender``, signed for one session."""

    sender: int
    kind: MessageKind
    body: bytes
    signature: bytes

    @staticmethod
    def signed_part(session: bytes, kind: MessageKind, sender: int, body: bytes) -> bytes:
        return message_signed_part(session, kind, sender, body)

    @classmethod
    def sign(
        cls, key: Ed25519PrivateKey, session: bytes, kind: MessageKind, sender: int, body: bytes
    ) -> SignedMessage:
        return cls(sender, kind, body, key.sign(cls.signed_part(session, kind, sender, body)))

    def verify(self, session: bytes, kind: MessageKind, keys: Sequence[Ed25519PublicKey]) -> None:
        """:class:`InvalidMessage` unless it is a ``kind`` message signed by the manifest key of
        its sender (``keys`` in manifest order) for ``session``."""
        if self.kind is not kind or not 1 <= self.sender <= len(keys):
            raise InvalidMessage()
        keys[self.sender - 1].verify(
            self.signature, self.signed_part(session, self.kind, self.sender, self.body)
        )

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "body": b64e(self.body),
            "kind": int(self.kind),
            "sender": self.sender,
            "signature": b64e(self.signature),
        }

    @classmethod
    def from_json(cls, value: JsonValue) -> Self:
        m = members(value, "signed DKG message", {"body", "kind", "sender", "signature"})
        code = integer(m["kind"], "message kind", 1, len(MessageKind))
        signature = b64d(m["signature"], "message signature", ED25519_SIG_LEN)
        if len(signature) != ED25519_SIG_LEN:
            raise DecodeError("message signature is not 64 bytes")
        return cls(
            integer(m["sender"], "sender", 1, MAX_CUSTODIANS),
            MessageKind(code),
            b64d(m["body"], "message body", MAX_MESSAGE_BODY_BYTES),
            signature,
        )


def message_list(value: JsonValue, what: str) -> list[SignedMessage]:
    return [SignedMessage.from_json(v) for v in items(value, what, MAX_CUSTODIANS * MAX_CUSTODIANS)]


# ----------------------------------------------------------------------------- sealed shares


def _share_key(
    dh: bytes, eph: bytes, recipient_pub: bytes, session: bytes, d: int, r: int
) -> bytes:
    info = SHARE_INFO + session + bytes((d, r))
    return hkdf_sha256(dh, eph + recipient_pub, info, 32)


def seal_share(share: DealtShare, recipient_key: X25519PublicKey, rng: Rng) -> bytes:
    """The ``SHARE`` body carrying ``share`` to its recipient (see the module docstring)."""
    eph = X25519PrivateKey.generate(rng)
    pub = eph.public_key.raw
    d, r, sid = share.dealer, share.recipient, share.session_id
    key = _share_key(eph.exchange(recipient_key), pub, recipient_key.raw, sid, d, r)
    ciphertext = seal(key, share.encode(), sid + bytes((d, r)))
    return bytes((r,)) + pub + ciphertext


def open_share(
    body: bytes, own: X25519PrivateKey, session: bytes, dealer: int, recipient: int
) -> DealtShare:
    """The share in a ``SHARE`` body from ``dealer`` to us (``recipient``); :class:`InvalidMessage`
    if it is not one sealed to us for this session, or does not decrypt."""
    if len(body) < 1 + X25519_KEY_LEN or body[0] != recipient:
        raise InvalidMessage()
    eph = X25519PublicKey.from_bytes(body[1 : 1 + X25519_KEY_LEN])
    dh = own.exchange(eph)
    key = _share_key(dh, eph.raw, own.public_key.raw, session, dealer, recipient)
    plain = open_sealed(key, body[1 + X25519_KEY_LEN :], session + bytes((dealer, recipient)))
    try:
        share = DealtShare.decode(plain)
    except DecodeError:
        raise InvalidMessage() from None
    if share.session_id != session or share.dealer != dealer or share.recipient != recipient:
        raise InvalidMessage()
    return share


def share_recipient(body: bytes) -> int:
    """Whom a ``SHARE`` body is for (0 if it is too short to say)."""
    return body[0] if body else 0


# ----------------------------------------------------------------------------- receipts


def receipt_signing_message(receipt: AccessReceipt) -> bytes:
    return RECEIPT_CONTEXT + encode_entry(receipt)


def sign_receipt(receipt: AccessReceipt, key: Ed25519PrivateKey) -> bytes:
    return key.sign(receipt_signing_message(receipt))


def verify_receipt(receipt: AccessReceipt, signature: bytes, key: Ed25519PublicKey) -> None:
    """:class:`InvalidMessage` unless ``key`` signed ``receipt``."""
    key.verify(signature, receipt_signing_message(receipt))


# ----------------------------------------------------------------------------- publication


@dataclass(frozen=True, slots=True)
class EpochPublication:
    """What the DKG driver sends the provider: the run and every message of it."""

    epoch: int
    attempt: int
    commitments: tuple[SignedMessage, ...]
    complaints: tuple[SignedMessage, ...]
    answers: tuple[SignedMessage, ...]
    confirmations: tuple[SignedMessage, ...]

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "answers": [m.to_json() for m in self.answers],
            "attempt": self.attempt,
            "commitments": [m.to_json() for m in self.commitments],
            "complaints": [m.to_json() for m in self.complaints],
            "confirmations": [m.to_json() for m in self.confirmations],
            "epoch": self.epoch,
        }

    @classmethod
    def from_json(cls, value: JsonValue) -> Self:
        m = members(
            value,
            "epoch publication",
            {"answers", "attempt", "commitments", "complaints", "confirmations", "epoch"},
        )
        return cls(
            integer(m["epoch"], "epoch", 0, 0xFFFF_FFFF),
            integer(m["attempt"], "attempt", 0, MAX_ATTEMPT),
            tuple(message_list(m["commitments"], "commitments")),
            tuple(message_list(m["complaints"], "complaints")),
            tuple(message_list(m["answers"], "answers")),
            tuple(message_list(m["confirmations"], "confirmations")),
        )


@dataclass(frozen=True, slots=True)
class VerifiedEpoch:
    transcript: DkgTranscript
    entry: EpochKey
    confirmations: tuple[Confirmation, ...]
    """Every custodian's signed confirmation of the transcript: what the provider keeps for
    clients to check again (:func:`overt.access.epoch.verify_confirmations`)."""


def _by_sender(
    messages: Sequence[SignedMessage],
    kind: MessageKind,
    session: bytes,
    keys: Sequence[Ed25519PublicKey],
) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    for msg in messages:
        msg.verify(session, kind, keys)
        if msg.sender in out:
            raise ProtocolViolation(f"custodian {msg.sender} sent two {kind.name.lower()} messages")
        out[msg.sender] = msg.body
    return out


def verify_publication(publication: EpochPublication, manifest: Manifest) -> VerifiedEpoch:
    """Recompute the epoch's transcript from the signed broadcast messages and check that every
    custodian of ``manifest`` confirmed it; return it and the :class:`EpochKey` to log.

    :class:`InvalidMessage` for a signature that does not verify, :class:`DecodeError` for a
    message that does not decode, :class:`ProtocolViolation` for messages that contradict one
    another or a missing or differing confirmation,
    :class:`~overt.access.errors.DkgFailed` if too few dealers qualified.
    """
    access = escrow(manifest)
    keys = [c.key for c in access.custodians]
    params = dkg_parameters(manifest, publication.epoch, publication.attempt)
    sid = params.session_id
    commitments: dict[int, DealerCommitment] = {}
    for sender, body in _by_sender(
        publication.commitments, MessageKind.COMMITMENT, sid, keys
    ).items():
        c = DealerCommitment.decode(body)
        if c.dealer != sender:
            raise ProtocolViolation(f"custodian {sender} sent dealer {c.dealer}'s commitment")
        commitments[sender] = c
    complaints: dict[int, Complaints] = {}
    for sender, body in _by_sender(
        publication.complaints, MessageKind.COMPLAINTS, sid, keys
    ).items():
        comp = Complaints.decode(body)
        if comp.accuser != sender or comp.session_id != sid:
            raise ProtocolViolation(f"custodian {sender} sent someone else's complaints")
        complaints[sender] = comp
    answers: dict[int, ComplaintAnswer] = {}
    for sender, body in _by_sender(publication.answers, MessageKind.ANSWER, sid, keys).items():
        answer = ComplaintAnswer.decode(body)
        if answer.dealer != sender or answer.session_id != sid:
            raise ProtocolViolation(f"custodian {sender} sent someone else's answer")
        answers[sender] = answer
    transcript = transcript_from_messages(params, commitments, complaints, answers)
    digest = sha256(transcript.encode())
    confirmations = confirmations_of(publication)
    verify_confirmations(confirmations, sid, digest, keys)
    not_before, retain_until = epoch_span(publication.epoch, access)
    entry = EpochKey(
        publication.epoch, transcript.public_key().raw, digest, not_before, retain_until
    )
    return VerifiedEpoch(transcript, entry, confirmations)


def confirmations_of(publication: EpochPublication) -> tuple[Confirmation, ...]:
    """The publication's ``CONFIRMATION`` messages as :class:`~overt.access.epoch.Confirmation`
    s (:class:`InvalidMessage` for a message of another kind among them)."""
    out: list[Confirmation] = []
    for msg in publication.confirmations:
        if msg.kind is not MessageKind.CONFIRMATION:
            raise InvalidMessage()
        out.append(Confirmation(msg.sender, msg.body, msg.signature))
    return tuple(out)


__all__ = [
    "IDENTITY_CONTEXT",
    "MAX_ATTEMPT",
    "MESSAGE_CONTEXT",
    "RECEIPT_CONTEXT",
    "CustodianIdentity",
    "EpochPublication",
    "MessageKind",
    "SignedMessage",
    "VerifiedEpoch",
    "b64d",
    "b64e",
    "confirmations_of",
    "dkg_parameters",
    "epoch_at",
    "epoch_span",
    "escrow",
    "open_share",
    "seal_share",
    "sign_receipt",
    "verify_publication",
    "verify_receipt",
]
