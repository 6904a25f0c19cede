"""The LEA's evidence bundle, and its offline re-check (what ``overt lea verify`` runs).

A bundle holds everything needed to show, to anyone holding only the pinned manifest and the
escrow-epoch public keys from the log, that each decrypted message is authentic and was opened
lawfully:

* the **signed warrant** and the **log proof** of its commitment (a C2SP tlog-proof bundle);
* one **batch** per custodian request (one escrow epoch each), holding
  - the epoch's public **DKG transcript** (every custodian's ``X_j``, and ``Y``),
  - the **messages**: for each, the envelope (or group message) bytes as intercepted, its access
    context, the session identity keys (below), the combined point ``x·R``, the recovered
    message key, and the plaintext :class:`~overt.wire.Content` (franking key and body),
  - each custodian's **share response** (its ``D_ij`` and batched DLEQ proof) over the batch,
  - each of those custodians' **access receipts** with their log proofs (the proof carries the
    receipt's log index).

:func:`verify_evidence` re-checks all of it and raises :class:`EvidenceRejected` naming the
first failed check: the court's signature and the manifest's listing of its key; the warrant's
commitment in a quorum-cosigned checkpoint; per batch, the transcript against the trusted epoch
key and the manifest's ``(n, t)``; per message, that the context recomputed *from the envelope
itself* equals the one recorded and lies inside the warrant (a target of a content task, the day
inside its window; never a key context: key material is never released); every share proof;
the Lagrange combination; the key recovery (which re-derives ``R``); the decryption; the
franking commitment; and, for every custodian whose share is used, a logged receipt for exactly
this batch (same warrant, count and hash of the context list), placed in the log after the
warrant's commitment.

**The session keys.** A one-to-one envelope's ciphertext is bound to associated data that
starts with the PQXDH session's AD: ``"Overt_PQXDH_AD_v1" ‖ initiator (X25519, Ed25519)
identity keys ‖ responder (X25519, Ed25519) identity keys``. So the bundle carries the sender's
and the recipient's device identity keys *as the key directory lists them* and which side
started the session. :func:`verify_evidence` takes an optional ``directory`` to compare them
with the devices' entries the verifier fetched from the (log-verified) key directory; a PREKEY
envelope names the initiator's keys itself and they must agree. Group messages' associated data
is their own header; their sender-key signature is not re-checked (the LEA does not hold the
sender's signature key, which travels only in its sender-key distribution, key material that
is never decrypted), the key-committing AEAD under the recovered key authenticates them.

Encodings are versioned binary (:mod:`overt.wire.codec`), bounded by
:data:`~overt.access.limits.MAX_EVIDENCE_BYTES`. This module never sees sockets, files or
clocks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Final, Self

from overt.access.context import KeyContext, decode_context
from overt.access.custodian_policy import (
    KEY_MATERIAL_REFUSED,
    AccessTrust,
    GroupMembers,
    check_covered,
    check_log_proof,
    contexts_hash,
)
from overt.access.dkg import DkgTranscript
from overt.access.errors import EvidenceRejected, ThresholdNotMet
from overt.access.limits import (
    MAX_EVIDENCE_BATCHES,
    MAX_EVIDENCE_BYTES,
    MAX_RECEIPTS_PER_BATCH,
    MAX_SHARE_BATCH,
    MAX_WARRANT_BYTES,
)
from overt.access.threshold import ShareResponse, combine, verify_shares
from overt.access.warrant import Warrant, verify_warrant, warrant_commitment
from overt.crypto import POINT_LEN, Point, constant_time_eq, open_sealed
from overt.errors import (
    DecodeError,
    InvalidMessage,
    LocalError,
    OvertError,
    ProtocolViolation,
    UntrustedIdentity,
)
from overt.protocol import access as af
from overt.protocol import franking, pqxdh
from overt.transparency.checkpoint import MAX_PROOF_BUNDLE_BYTES, ProofBundle
from overt.transparency.entries import AccessReceipt, decode_entry, encode_entry
from overt.wire import AccessField, Address, Content, DeviceEntry, Envelope, Reader, Writer
from overt.wire.group_messages import GroupMessage
from overt.wire.messages import MAX_CIPHERTEXT_LEN

EVIDENCE_VERSION: Final = 1
EVIDENCE_KIND: Final = 10
"""Kind byte of an encoded :class:`EvidenceBundle` (after the DKG, share and request kinds)."""

GROUP_SEAL_LABEL: Final = b"/group"
"""The :func:`~overt.crypto.seal` label of group content (as :mod:`overt.protocol.groups`
uses it; the group-evidence test pins the two together)."""

_KEY_LEN: Final = 32
_MAX_MESSAGE_BYTES: Final = MAX_CIPHERTEXT_LEN + 8192
_MAX_CONTENT_BYTES: Final = MAX_CIPHERTEXT_LEN


class ItemKind(IntEnum):
    DIRECT = 1
    GROUP = 2


@dataclass(frozen=True, slots=True)
class SessionKeys:
    """The identity keys of both devices of a one-to-one session, as the key directory lists
    them, and which one started the session (the PQXDH initiator)."""

    sender_dh: bytes
    sender_sign: bytes
    recipient_dh: bytes
    recipient_sign: bytes
    sender_initiated: bool

    def associated_data(self) -> bytes:
        """The PQXDH AD that prefixes every envelope's associated data in this session."""
        if self.sender_initiated:
            return pqxdh.associated_data(
                self.sender_dh, self.sender_sign, self.recipient_dh, self.recipient_sign
            )
        return pqxdh.associated_data(
            self.recipient_dh, self.recipient_sign, self.sender_dh, self.sender_sign
        )

    def write(self, w: Writer) -> None:
        for k in (self.sender_dh, self.sender_sign, self.recipient_dh, self.recipient_sign):
            w.fixed(k, _KEY_LEN)
        w.boolean(self.sender_initiated)

    @classmethod
    def read(cls, r: Reader) -> Self:
        keys = [r.fixed(_KEY_LEN, "identity key") for _ in range(4)]
        return cls(keys[0], keys[1], keys[2], keys[3], r.boolean("sender initiated"))


@dataclass(frozen=True, slots=True)
class EvidenceItem:
    """One decrypted message with everything needed to re-check it."""

    kind: ItemKind
    message: bytes
    """The intercepted :class:`~overt.wire.Envelope` or group message, encoded."""
    context: bytes
    combined: Point
    """``x·R``, combined from the custodians' shares."""
    message_key: bytes = field(repr=False)
    content: bytes = field(repr=False)
    """The plaintext :class:`~overt.wire.Content` (franking key and body), encoded."""
    session: SessionKeys | None = None
    """For a one-to-one message: the session's identity keys."""
    group_members: GroupMembers | None = None
    """For a group message: the member list its member-set hash commits to."""

    def write(self, w: Writer) -> None:
        w.u8(self.kind).vec(self.message, 4, _MAX_MESSAGE_BYTES).vec(self.context, 2)
        w.fixed(self.combined.raw, POINT_LEN).fixed(self.message_key, _KEY_LEN)
        w.vec(self.content, 4, _MAX_CONTENT_BYTES)
        if self.kind is ItemKind.DIRECT:
            if self.session is None or self.group_members is not None:
                raise LocalError("a one-to-one evidence item carries session keys only")
            self.session.write(w)
        else:
            if self.group_members is None or self.session is not None:
                raise LocalError("a group evidence item carries a member list only")
            self.group_members.write(w)

    @classmethod
    def read(cls, r: Reader) -> Self:
        code = r.u8("item kind")
        try:
            kind = ItemKind(code)
        except ValueError:
            raise DecodeError(f"{r.what}: unknown item kind {code}") from None
        message = r.vec(4, "message", _MAX_MESSAGE_BYTES, 1)
        context = r.vec(2, "context", None, 1)
        combined = Point.from_bytes(r.fixed(POINT_LEN, "combined point"))
        key = r.fixed(_KEY_LEN, "message key")
        content = r.vec(4, "content", _MAX_CONTENT_BYTES)
        if kind is ItemKind.DIRECT:
            return cls(kind, message, context, combined, key, content, SessionKeys.read(r))
        return cls(kind, message, context, combined, key, content, None, GroupMembers.read(r))


@dataclass(frozen=True, slots=True)
class ReceiptRecord:
    """A custodian's access receipt and the log proof that it is in the log."""

    receipt: AccessReceipt
    proof: bytes
    """A c2sp tlog-proof bundle of the receipt entry (its index is the receipt's log index)."""

    def write(self, w: Writer) -> None:
        w.vec(encode_entry(self.receipt), 2).vec(self.proof, 4, MAX_PROOF_BUNDLE_BYTES)

    @classmethod
    def read(cls, r: Reader) -> Self:
        entry = decode_entry(r.vec(2, "receipt"))
        if not isinstance(entry, AccessReceipt):
            raise DecodeError(f"{r.what}: a receipt record holds an access receipt")
        return cls(entry, r.vec(4, "receipt proof", MAX_PROOF_BUNDLE_BYTES, 1))


@dataclass(frozen=True, slots=True)
class EvidenceBatch:
    """The messages of one custodian request (one epoch), the shares and the receipts."""

    transcript: bytes
    items: tuple[EvidenceItem, ...]
    responses: tuple[ShareResponse, ...]
    receipts: tuple[ReceiptRecord, ...]

    def write(self, w: Writer) -> None:
        w.vec(self.transcript, 2).u16(len(self.items))
        for item in self.items:
            item.write(w)
        w.u8(len(self.responses))
        for resp in self.responses:
            w.vec(resp.encode(), 4)
        w.u8(len(self.receipts))
        for rec in self.receipts:
            rec.write(w)

    @classmethod
    def read(cls, r: Reader) -> Self:
        transcript = r.vec(2, "transcript", None, 1)
        n = r.u16("item count")
        if not 0 < n <= MAX_SHARE_BATCH:
            raise DecodeError(f"{r.what}: item count out of range")
        items = tuple(EvidenceItem.read(r) for _ in range(n))
        n_resp = r.u8("response count")
        if n_resp > MAX_RECEIPTS_PER_BATCH:
            raise DecodeError(f"{r.what}: too many share responses")
        responses = tuple(ShareResponse.decode(r.vec(4, "share response")) for _ in range(n_resp))
        n_rec = r.u8("receipt count")
        if n_rec > MAX_RECEIPTS_PER_BATCH:
            raise DecodeError(f"{r.what}: too many receipts")
        receipts = tuple(ReceiptRecord.read(r) for _ in range(n_rec))
        return cls(transcript, items, responses, receipts)


@dataclass(frozen=True, slots=True)
class EvidenceBundle:
    """Everything :func:`verify_evidence` needs besides the manifest and the epoch keys."""

    warrant: bytes
    warrant_proof: bytes
    batches: tuple[EvidenceBatch, ...]

    def encode(self) -> bytes:
        w = Writer().u8(EVIDENCE_VERSION).u8(EVIDENCE_KIND)
        w.vec(self.warrant, 4, MAX_WARRANT_BYTES).vec(self.warrant_proof, 4, MAX_PROOF_BUNDLE_BYTES)
        w.u16(len(self.batches))
        for b in self.batches:
            b.write(w)
        out = w.getvalue()
        if len(out) > MAX_EVIDENCE_BYTES:
            raise LocalError("the evidence bundle exceeds MAX_EVIDENCE_BYTES: split it")
        return out

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Read a bundle strictly; :class:`DecodeError` if it is not one."""
        if len(data) > MAX_EVIDENCE_BYTES:
            raise DecodeError("evidence bundle: larger than MAX_EVIDENCE_BYTES")
        r = Reader(data, "EvidenceBundle")
        r.version(EVIDENCE_VERSION)
        if r.u8("kind") != EVIDENCE_KIND:
            raise DecodeError("EvidenceBundle: wrong kind")
        warrant = r.vec(4, "warrant", MAX_WARRANT_BYTES, 1)
        proof = r.vec(4, "warrant proof", MAX_PROOF_BUNDLE_BYTES, 1)
        n = r.u16("batch count")
        if not 0 < n <= MAX_EVIDENCE_BATCHES:
            raise DecodeError("EvidenceBundle: batch count out of range")
        batches = tuple(EvidenceBatch.read(r) for _ in range(n))
        r.finish()
        return cls(warrant, proof, batches)


# ----------------------------------------------------------------------------- opening


@dataclass(frozen=True, slots=True)
class _Parsed:
    sender: Address
    recipient: Address | None
    group_id: bytes | None
    timestamp_ms: int
    message_id: bytes
    conversation_id: bytes
    franking_commitment: bytes
    access: AccessField
    context: bytes
    ciphertext: bytes
    ad: bytes
    label: bytes
    initiator_keys: tuple[bytes, bytes] | None


def _parse(item: EvidenceItem) -> _Parsed:
    """Decode the message and recompute its context and associated data from it."""
    if item.kind is ItemKind.DIRECT:
        env = Envelope.decode(item.message)
        if env.access is None or item.session is None:
            raise DecodeError("envelope without an access field")
        ctx = af.context(
            env.access.epoch, env.sender, env.recipient, env.conversation_id, env.message_id,
            env.timestamp_ms,
        )  # fmt: skip
        init = (env.init.identity_dh, env.init.identity_sign) if env.init is not None else None
        return _Parsed(
            env.sender, env.recipient, None, env.timestamp_ms, env.message_id,
            env.conversation_id, env.franking_commitment, env.access, ctx, env.ciphertext,
            item.session.associated_data() + env.header_bytes(), b"", init,
        )  # fmt: skip
    msg = GroupMessage.decode(item.message)
    if msg.access is None:
        raise DecodeError("group message without an access field")
    ctx = af.group_context(
        msg.access.epoch, msg.sender, msg.group_id, msg.member_set_hash, msg.message_id,
        msg.timestamp_ms,
    )  # fmt: skip
    return _Parsed(
        msg.sender, None, msg.group_id, msg.timestamp_ms, msg.message_id, msg.group_id,
        msg.franking_commitment, msg.access, ctx, msg.ciphertext, msg.header_bytes(),
        GROUP_SEAL_LABEL, None,
    )  # fmt: skip


def _open(p: _Parsed, combined: Point) -> tuple[bytes, Content]:
    """Recover the key from ``x·R``, decrypt, check the franking commitment."""
    key = af.recover(p.access, combined, p.context)
    plaintext = open_sealed(key, p.ciphertext, p.ad, p.label)
    try:
        content = Content.decode(plaintext)
    except DecodeError:
        raise InvalidMessage() from None
    fctx = franking.context(p.sender, p.conversation_id, p.message_id, p.timestamp_ms)
    franking.verify(p.franking_commitment, content.franking_key, fctx, content.body)
    return key, content


def open_direct(envelope: bytes, session: SessionKeys, combined: Point) -> EvidenceItem:
    """The LEA's step after combining: recover, decrypt and check one envelope, and return the
    evidence item. :class:`InvalidMessage` if anything fails (wrong point, keys, tampering)."""
    item = EvidenceItem(ItemKind.DIRECT, envelope, b"", combined, bytes(32), b"", session)
    p = _parse(item)
    key, content = _open(p, combined)
    return EvidenceItem(
        ItemKind.DIRECT, envelope, p.context, combined, key, content.encode(), session
    )


def open_group(message: bytes, members: GroupMembers, combined: Point) -> EvidenceItem:
    """As :func:`open_direct`, for a group message and the member list of its view."""
    item = EvidenceItem(ItemKind.GROUP, message, b"", combined, bytes(32), b"", None, members)
    p = _parse(item)
    key, content = _open(p, combined)
    return EvidenceItem(
        ItemKind.GROUP, message, p.context, combined, key, content.encode(), None, members
    )


# ----------------------------------------------------------------------------- verification


@dataclass(frozen=True, slots=True)
class VerifiedMessage:
    """One message the evidence shows: who sent it to whom, when, and what it said."""

    sender: Address
    recipient: Address | None
    group_id: bytes | None
    timestamp_ms: int
    message_id: bytes
    body: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class VerifiedEvidence:
    warrant: Warrant
    messages: tuple[VerifiedMessage, ...]


def _reject(problem: str) -> EvidenceRejected:
    return EvidenceRejected(problem)


def _verify_item(
    k: int,
    item: EvidenceItem,
    warrant: Warrant,
    epoch: int,
    directory: Mapping[Address, DeviceEntry] | None,
) -> tuple[_Parsed, Point]:
    where = f"message {k}"
    try:
        p = _parse(item)
        ctx = decode_context(item.context)
    except DecodeError as e:
        raise _reject(f"{where}: malformed ({e})") from None
    if isinstance(ctx, KeyContext):
        raise _reject(f"{where}: {KEY_MATERIAL_REFUSED}")
    if item.context != p.context:
        raise _reject(f"{where}: the recorded context is not the envelope's")
    if p.access.epoch != epoch:
        raise _reject(f"{where}: access field of epoch {p.access.epoch}, batch of {epoch}")
    try:
        check_covered(warrant, ctx, item.group_members)
    except ProtocolViolation as e:
        raise _reject(f"{where}: outside the warrant ({e})") from None
    s = item.session
    if s is not None:
        if p.initiator_keys is not None and (
            not s.sender_initiated or p.initiator_keys != (s.sender_dh, s.sender_sign)
        ):
            raise _reject(f"{where}: session keys differ from the envelope's PQXDH values")
        if directory is not None:
            assert p.recipient is not None
            for addr, dh, sign in (
                (p.sender, s.sender_dh, s.sender_sign),
                (p.recipient, s.recipient_dh, s.recipient_sign),
            ):
                entry = directory.get(addr)
                if entry is None or (entry.identity_dh, entry.identity_sign) != (dh, sign):
                    raise _reject(f"{where}: identity keys of {addr} differ from the directory")
    try:
        point = Point.from_bytes(p.access.r)
    except DecodeError:
        raise _reject(f"{where}: access field point is not a group element") from None
    return p, point


def _verify_receipts(
    b: int,
    batch: EvidenceBatch,
    trust: AccessTrust,
    warrant: Warrant,
    used: Sequence[int],
    commitment_index: int,
) -> None:
    expected_hash = contexts_hash(item.context for item in batch.items)
    by_custodian: dict[int, ReceiptRecord] = {}
    for rec in batch.receipts:
        j = trust.custodian_index(rec.receipt.custodian_id)
        if j is None:
            raise _reject(f"batch {b}: a receipt of a custodian the manifest does not list")
        by_custodian[j] = rec
    for j in used:
        found = by_custodian.get(j)
        if found is None:
            raise _reject(f"batch {b}: no access receipt of custodian {j}")
        r = found.receipt
        if (
            r.warrant_id != warrant.warrant_id
            or r.count != len(batch.items)
            or not constant_time_eq(r.contexts_hash, expected_hash)
        ):
            raise _reject(f"batch {b}: custodian {j}'s receipt is not for this batch")
        try:
            proof = ProofBundle.from_bytes(found.proof)
        except (DecodeError, LocalError):
            raise _reject(f"batch {b}: custodian {j}'s receipt proof is malformed") from None
        problem = check_log_proof(trust, proof, r)
        if problem is not None:
            raise _reject(f"batch {b}: custodian {j}'s receipt: {problem[1]}")
        if proof.index <= commitment_index:
            raise _reject(f"batch {b}: custodian {j}'s receipt precedes the warrant's commitment")


def _verify_batch(
    b: int,
    batch: EvidenceBatch,
    trust: AccessTrust,
    warrant: Warrant,
    epoch_keys: Mapping[int, Point],
    directory: Mapping[Address, DeviceEntry] | None,
    commitment_index: int,
) -> list[VerifiedMessage]:
    try:
        transcript = DkgTranscript.decode(batch.transcript)
    except DecodeError as e:
        raise _reject(f"batch {b}: malformed transcript ({e})") from None
    epoch = transcript.epoch
    trusted = epoch_keys.get(epoch)
    if trusted is None or trusted != transcript.public_key():
        raise _reject(f"batch {b}: the transcript's key is not the trusted key of epoch {epoch}")
    if (transcript.params.n, transcript.threshold) != (len(trust.custodian_keys), trust.threshold):
        raise _reject(f"batch {b}: the transcript's custodians differ from the manifest's")
    parsed = [
        _verify_item(k, item, warrant, epoch, directory)
        for k, item in enumerate(batch.items, start=1)
    ]
    points = [pt for _, pt in parsed]
    responses: dict[int, ShareResponse] = {}
    for resp in batch.responses:
        j = resp.index
        if j in responses or not 1 <= j <= transcript.params.n or resp.epoch != epoch:
            raise _reject(f"batch {b}: share response of custodian {j} does not fit the batch")
        try:
            verify_shares(transcript.verification_key(j), points, resp)
        except InvalidMessage:
            raise _reject(f"batch {b}: custodian {j}'s share proof does not verify") from None
        responses[j] = resp
    try:
        combined = combine(responses, transcript.threshold)
    except ThresholdNotMet as e:
        raise _reject(f"batch {b}: {e}") from None
    used = sorted(responses)
    _verify_receipts(b, batch, trust, warrant, used, commitment_index)
    out = []
    for k, (item, (p, _), point) in enumerate(zip(batch.items, parsed, combined, strict=True), 1):
        where = f"batch {b}, message {k}"
        if item.combined != point:
            raise _reject(f"{where}: the recorded point is not the shares' combination")
        try:
            key, content = _open(p, point)
        except InvalidMessage:
            raise _reject(f"{where}: recovery, decryption or franking check failed") from None
        if not constant_time_eq(key, item.message_key):
            raise _reject(f"{where}: the recorded key is not the recovered one")
        if content.encode() != item.content:
            raise _reject(f"{where}: the recorded plaintext is not the decrypted one")
        out.append(
            VerifiedMessage(
                p.sender, p.recipient, p.group_id, p.timestamp_ms, p.message_id, content.body
            )
        )
    return out


def verify_evidence(
    bundle: EvidenceBundle | bytes,
    trust: AccessTrust,
    epoch_keys: Mapping[int, Point],
    *,
    directory: Mapping[Address, DeviceEntry] | None = None,
) -> VerifiedEvidence:
    """Re-check a bundle offline (see the module docstring); return what it shows.

    ``trust`` comes from the pinned manifest; ``epoch_keys`` are the escrow-epoch public keys
    the verifier trusts (from the log); ``directory``, if given, the device entries of the key
    directory to compare the session keys with. Raises :class:`EvidenceRejected` naming the
    failed check (or :class:`DecodeError` for bytes that are not a bundle).
    """
    if not isinstance(bundle, EvidenceBundle):
        bundle = EvidenceBundle.decode(bundle)
    try:
        warrant = verify_warrant(
            bundle.warrant, trust.court_keys, max_seal_days=trust.max_seal_days
        )
    except InvalidMessage:
        raise _reject("the warrant's court signature does not verify") from None
    except (DecodeError, UntrustedIdentity, ProtocolViolation) as e:
        raise _reject(f"warrant: {e}") from None
    try:
        proof = ProofBundle.from_bytes(bundle.warrant_proof)
    except (DecodeError, LocalError):
        raise _reject("the warrant's log proof is malformed") from None
    commitment, _ = warrant_commitment(warrant)
    problem = check_log_proof(trust, proof, commitment)
    if problem is not None:
        raise _reject(f"warrant commitment: {problem[1]}")
    seen = [item.context for batch in bundle.batches for item in batch.items]
    if len(set(seen)) != len(seen):
        raise _reject("a message appears twice")
    messages: list[VerifiedMessage] = []
    for b, batch in enumerate(bundle.batches, start=1):
        try:
            messages.extend(
                _verify_batch(b, batch, trust, warrant, epoch_keys, directory, proof.index)
            )
        except EvidenceRejected:
            raise
        except OvertError as e:  # defence in depth: nothing else may escape as a pass
            raise _reject(f"batch {b}: {e}") from None
    if len(messages) > warrant.max_messages:
        raise _reject("more messages than the warrant's cap")
    return VerifiedEvidence(warrant, tuple(messages))


__all__ = [
    "EvidenceBatch",
    "EvidenceBundle",
    "EvidenceItem",
    "ItemKind",
    "ReceiptRecord",
    "SessionKeys",
    "VerifiedEvidence",
    "VerifiedMessage",
    "open_direct",
    "open_group",
    "verify_evidence",
]
