"""Verifiable abuse reports: their format, their verification and the evidence they leave.

A report is what a recipient chose to reveal of a conversation (DESIGN.md §5): for each
message it picked, the fields of the envelope the franking commitment and the reporting tag
cover, the server's delivery record (id, time, tag), the franking key and the exact body, and,
for an attachment, what it has of the attachment. Each message is revealed whole; which
messages to include is the reporter's choice. Canonical encoding (:mod:`overt.wire.codec`)::

    struct { opaque key[32];
             optional<opaque ciphertext<0..2^24*10>>;   /* 4-byte length, at most 10 MiB */
             optional<opaque plaintext<0..2^24*10-48>>; /* at least one of the two      */
           } RevealedAttachment;
    struct { Address sender; Address recipient; uint64 timestamp_ms;
             opaque message_id[16]; opaque conversation_id[32];
             opaque franking_commitment[32];
             uint64 server_id; uint64 server_time_ms; opaque reporting_tag[32];
             opaque franking_key[32]; opaque body<0..2^20-256>;
             optional<RevealedAttachment> attachment; } ReportedMessage;
    struct { uint8 version = 1; Address reporter; opaque comment<0..4096>;  /* UTF-8 */
             uint8 count; ReportedMessage messages[count];   /* 1..MAX_REPORTED_MESSAGES */
           } Report;

A report that reveals a **group message** is version 2, where each message is tagged with its
kind; a group message carries the whole :class:`~overt.wire.GroupMessage` as delivered
(``kind = group``) instead of the envelope fields, and sender, timestamp, message id,
conversation id (the group id) and franking commitment are read from it::

    struct { opaque group_message<1..2^20+4096>; Address recipient;
             uint64 server_id; uint64 server_time_ms; opaque reporting_tag[32];
             opaque franking_key[32]; opaque body<0..2^20-256>;
             optional<RevealedAttachment> attachment; } ReportedGroupMessage;
    struct { uint8 kind;                          /* 1: envelope, 2: group */
             select (kind) { case 1: ReportedMessage; case 2: ReportedGroupMessage; } m;
           } TaggedMessage;
    struct { uint8 version = 2; Address reporter; opaque comment<0..4096>;
             uint8 count; TaggedMessage messages[count]; } Report;

A report without group messages is always version 1, one with any is always version 2, so
every report still has exactly one encoding. A group message's reporting tag was computed by
the relay for the one member device it was delivered to, so the report verifies for that
member only.

:func:`verify_report` checks, for every message, in this order: that it reached the reporter's
account and was not sent by it; that its server time is not in the future; that the commitment
opens to the body under the franking key (:func:`overt.protocol.franking.verify`); that the
server's tag binds the commitment, the sender, the reporter's device as recipient, the server id
and time (:func:`~overt.protocol.franking.verify_reporting_tag`); that the body is a well-formed
body; that a revealed attachment is the one the body commits to (same key; the ciphertext hashes
to the committed hash and opens under that key with key-committing :func:`overt.crypto.
open_sealed`; the plaintext has the committed size and hash); and that this account has not
reported the message before. Any failure refuses the whole report with an error naming the
message (see :mod:`overt.safety.errors`).

The reporter's comment is authenticated only by the channel it was submitted on (and, once
stored, by the SHA-256 in the :class:`EvidenceBundle`): nothing the sender or the server made
covers it. Every other byte of a report is bound by a commitment, the tag or the body's hashes.

This module is pure: bytes and values in, values out. It never sees sockets, files, databases,
HTTP, clocks (``now_ms`` is passed in) or randomness, and does not import overt.server,
overt.client or overt.cli.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from dataclasses import dataclass, field
from typing import Final, Self

from overt.crypto import constant_time_eq, open_sealed, sha256
from overt.errors import ConfigurationError, DecodeError, InvalidMessage, LimitExceeded
from overt.protocol import franking
from overt.safety._b64 import b64d, b64e
from overt.safety.body import ATTACHMENT_AD, ATTACHMENT_LABEL, AttachmentRef, MessageBody
from overt.safety.errors import (
    AlreadyReported,
    BundleMismatch,
    InvalidReportedMessage,
    ReportRefused,
)
from overt.safety.limits import (
    EVIDENCE_RETENTION_MS,
    MAX_ATTACHMENT_CIPHERTEXT_BYTES,
    MAX_ATTACHMENT_PLAINTEXT_BYTES,
    MAX_CLOCK_SKEW_MS,
    MAX_REPORT_BYTES,
    MAX_REPORT_COMMENT_BYTES,
    MAX_REPORTED_MESSAGES,
)
from overt.wire import MAX_BODY_LEN, Address, Envelope, Reader, Writer
from overt.wire.group_messages import GroupMessage
from overt.wire.messages import CONVERSATION_ID_LEN, MAX_ACCOUNT_ID_LEN, MESSAGE_ID_LEN

REPORT_VERSION: Final = 1
REPORT_VERSION_GROUPS: Final = 2
"""The report version whose messages carry a kind (needed once any is a group message)."""
MAX_GROUP_MESSAGE_BYTES: Final = (1 << 20) + 4096
"""A revealed group message: the wire's ciphertext bound plus room for its header."""
_KIND_ENVELOPE: Final = 1
_KIND_GROUP: Final = 2
BUNDLE_VERSION: Final = 1
KEY_LEN: Final = 32
HASH_LEN: Final = 32
FRANKING_KEY_ID_LEN: Final = 8
_KEY_ID_LABEL: Final = b"Overt_FrankingKeyId_v1"
_REPLAY_LABEL: Final = b"Overt_ReportReplay_v1"

JsonValue = None | bool | int | str | list["JsonValue"] | dict[str, "JsonValue"]


# ----------------------------------------------------------------------------- JSON helpers


def _obj(value: object, what: str, keys: set[str]) -> dict[str, object]:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise DecodeError(f"{what} is not a JSON object")
    missing = keys - value.keys()
    unknown = value.keys() - keys
    if missing:
        raise DecodeError(f"{what} lacks {sorted(missing)}")
    if unknown:
        raise DecodeError(f"{what} has unknown fields {sorted(unknown)}")
    return value


def _int(value: object, what: str, bits: int = 64) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << bits:
        raise DecodeError(f"{what} is not an unsigned {bits}-bit integer")
    return value


def _str(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise DecodeError(f"{what} is not a string")
    return value


def _fixed(value: object, what: str, n: int) -> bytes:
    raw = b64d(value, what)
    if len(raw) != n:
        raise DecodeError(f"{what} must be {n} bytes")
    return raw


def _address_json(a: Address) -> str:
    return f"{b64e(a.account)}:{a.device}"


def _address_from_json(value: object, what: str) -> Address:
    text = _str(value, what)
    account_b64, sep, device = text.rpartition(":")
    if not sep or not device.isascii() or not device.isdigit() or device != str(int(device)):
        raise DecodeError(f"{what} is not '<base64url account>:<device>'")
    account = b64d(account_b64, what)
    if not 0 < len(account) <= MAX_ACCOUNT_ID_LEN:
        raise DecodeError(f"{what}: account must be 1..{MAX_ACCOUNT_ID_LEN} bytes")
    return Address(account, _int(int(device), what, 32))


def _opt_bytes(value: object, what: str, limit: int) -> bytes | None:
    if value is None:
        return None
    raw = b64d(value, what)
    if len(raw) > limit:
        raise DecodeError(f"{what} is over {limit} bytes")
    return raw


# ----------------------------------------------------------------------------- the format


@dataclass(frozen=True, slots=True)
class RevealedAttachment:
    """What the reporter has of one attachment: the key, and the ciphertext, the plaintext or
    both (the provider can also take the ciphertext from its blob store by the body's id)."""

    key: bytes = field(repr=False)
    ciphertext: bytes | None = field(default=None, repr=False)
    plaintext: bytes | None = field(default=None, repr=False)

    def write(self, w: Writer) -> None:
        if self.ciphertext is None and self.plaintext is None:
            raise ValueError("a revealed attachment carries its ciphertext, its plaintext or both")
        w.fixed(self.key, KEY_LEN).boolean(self.ciphertext is not None)
        if self.ciphertext is not None:
            w.vec(self.ciphertext, 4, MAX_ATTACHMENT_CIPHERTEXT_BYTES)
        w.boolean(self.plaintext is not None)
        if self.plaintext is not None:
            w.vec(self.plaintext, 4, MAX_ATTACHMENT_PLAINTEXT_BYTES)

    @classmethod
    def read(cls, r: Reader) -> Self:
        key = r.fixed(KEY_LEN, "attachment.key")
        ct = (
            r.vec(4, "attachment.ciphertext", MAX_ATTACHMENT_CIPHERTEXT_BYTES)
            if r.boolean("attachment.has_ciphertext")
            else None
        )
        pt = (
            r.vec(4, "attachment.plaintext", MAX_ATTACHMENT_PLAINTEXT_BYTES)
            if r.boolean("attachment.has_plaintext")
            else None
        )
        if ct is None and pt is None:
            raise DecodeError(f"{r.what}: a revealed attachment has neither ciphertext nor text")
        return cls(key, ct, pt)

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "key": b64e(self.key),
            "ciphertext": None if self.ciphertext is None else b64e(self.ciphertext),
            "plaintext": None if self.plaintext is None else b64e(self.plaintext),
        }

    @classmethod
    def from_json(cls, value: object, what: str) -> Self:
        o = _obj(value, what, {"key", "ciphertext", "plaintext"})
        ct = _opt_bytes(o["ciphertext"], f"{what}.ciphertext", MAX_ATTACHMENT_CIPHERTEXT_BYTES)
        pt = _opt_bytes(o["plaintext"], f"{what}.plaintext", MAX_ATTACHMENT_PLAINTEXT_BYTES)
        if ct is None and pt is None:
            raise DecodeError(f"{what} has neither ciphertext nor plaintext")
        return cls(_fixed(o["key"], f"{what}.key", KEY_LEN), ct, pt)


def _read_delivery(
    r: Reader,
) -> tuple[int, int, bytes, bytes, bytes, RevealedAttachment | None]:
    """What both reported layouts end with: server id, server time, reporting tag, franking
    key, body and the revealed attachment (see :meth:`ReportedMessage._write_delivery`)."""
    server_id, server_time = r.u64("server_id"), r.u64("server_time_ms")
    tag = r.fixed(franking.TAG_LEN, "reporting_tag")
    fk = r.fixed(franking.FRANKING_KEY_LEN, "franking_key")
    body = r.vec(4, "body", MAX_BODY_LEN)
    att = RevealedAttachment.read(r) if r.boolean("has_attachment") else None
    return server_id, server_time, tag, fk, body, att


@dataclass(frozen=True, slots=True)
class ReportedMessage:
    """One message as the reporter received it, revealed whole."""

    sender: Address
    recipient: Address
    timestamp_ms: int
    message_id: bytes
    conversation_id: bytes
    franking_commitment: bytes
    server_id: int
    server_time_ms: int
    reporting_tag: bytes
    franking_key: bytes = field(repr=False)
    body: bytes = field(repr=False)
    attachment: RevealedAttachment | None = field(default=None, repr=False)
    #: The whole GroupMessage as delivered, for a group message (whose other header fields
    #: above are read from it); ``None`` for a one-to-one message.
    group_message: bytes | None = field(default=None, repr=False)

    @classmethod
    def from_group_delivery(
        cls,
        group_message: bytes,
        *,
        recipient: Address,
        franking_key: bytes,
        body: bytes,
        server_id: int,
        server_time_ms: int,
        reporting_tag: bytes,
        attachment: RevealedAttachment | None = None,
    ) -> Self:
        """The reported form of a delivered group message (the ``envelope`` of a ``group``
        mail), its decrypted content and its mail record; ``recipient`` is the device it was
        delivered to. :class:`DecodeError` if ``group_message`` is not one."""
        if len(group_message) > MAX_GROUP_MESSAGE_BYTES:
            raise DecodeError(f"a group message is at most {MAX_GROUP_MESSAGE_BYTES} bytes")
        msg = GroupMessage.decode(group_message)
        return cls(
            msg.sender, recipient, msg.timestamp_ms, msg.message_id, msg.group_id,
            msg.franking_commitment, server_id, server_time_ms, reporting_tag, franking_key,
            body, attachment, bytes(group_message),
        )  # fmt: skip

    @classmethod
    def from_delivery(
        cls,
        envelope: Envelope,
        *,
        franking_key: bytes,
        body: bytes,
        server_id: int,
        server_time_ms: int,
        reporting_tag: bytes,
        attachment: RevealedAttachment | None = None,
    ) -> Self:
        """The reported form of a delivered envelope, its decrypted content and its mail record
        (``id``, ``server_time``, ``reporting_tag`` of docs/api.md)."""
        return cls(
            envelope.sender, envelope.recipient, envelope.timestamp_ms, envelope.message_id,
            envelope.conversation_id, envelope.franking_commitment, server_id, server_time_ms,
            reporting_tag, franking_key, body, attachment,
        )  # fmt: skip

    def _write_delivery(self, w: Writer) -> None:
        """What both layouts end with: the mail record and what the reporter reveals."""
        w.u64(self.server_id).u64(self.server_time_ms).fixed(self.reporting_tag, franking.TAG_LEN)
        w.fixed(self.franking_key, franking.FRANKING_KEY_LEN).vec(self.body, 4, MAX_BODY_LEN)
        w.boolean(self.attachment is not None)
        if self.attachment is not None:
            self.attachment.write(w)

    def write_group(self, w: Writer) -> None:
        """The ``ReportedGroupMessage`` layout (see the module docstring)."""
        if self.group_message is None:
            raise ValueError("not a group message")
        w.vec(self.group_message, 4, MAX_GROUP_MESSAGE_BYTES)
        self.recipient.write(w)
        self._write_delivery(w)

    @classmethod
    def read_group(cls, r: Reader) -> Self:
        data = r.vec(4, "group_message", MAX_GROUP_MESSAGE_BYTES, min_len=1)
        recipient = Address.read(r)
        server_id, server_time, tag, fk, body, att = _read_delivery(r)
        return cls.from_group_delivery(
            data, recipient=recipient, franking_key=fk, body=body, server_id=server_id,
            server_time_ms=server_time, reporting_tag=tag, attachment=att,
        )  # fmt: skip

    def write(self, w: Writer) -> None:
        self.sender.write(w)
        self.recipient.write(w)
        w.u64(self.timestamp_ms).fixed(self.message_id, MESSAGE_ID_LEN)
        w.fixed(self.conversation_id, CONVERSATION_ID_LEN)
        w.fixed(self.franking_commitment, franking.COMMITMENT_LEN)
        self._write_delivery(w)

    @classmethod
    def read(cls, r: Reader) -> Self:
        sender = Address.read(r)
        recipient = Address.read(r)
        ts = r.u64("timestamp_ms")
        mid = r.fixed(MESSAGE_ID_LEN, "message_id")
        cid = r.fixed(CONVERSATION_ID_LEN, "conversation_id")
        commitment = r.fixed(franking.COMMITMENT_LEN, "franking_commitment")
        server_id, server_time, tag, fk, body, att = _read_delivery(r)
        return cls(sender, recipient, ts, mid, cid, commitment, server_id, server_time, tag, fk,
                   body, att)  # fmt: skip

    def to_json(self) -> dict[str, JsonValue]:
        if self.group_message is not None:
            return {
                "group_message": b64e(self.group_message),
                "recipient": _address_json(self.recipient),
                "server_id": self.server_id,
                "server_time_ms": self.server_time_ms,
                "reporting_tag": b64e(self.reporting_tag),
                "franking_key": b64e(self.franking_key),
                "body": b64e(self.body),
                "attachment": None if self.attachment is None else self.attachment.to_json(),
            }
        return {
            "sender": _address_json(self.sender),
            "recipient": _address_json(self.recipient),
            "timestamp_ms": self.timestamp_ms,
            "message_id": b64e(self.message_id),
            "conversation_id": b64e(self.conversation_id),
            "franking_commitment": b64e(self.franking_commitment),
            "server_id": self.server_id,
            "server_time_ms": self.server_time_ms,
            "reporting_tag": b64e(self.reporting_tag),
            "franking_key": b64e(self.franking_key),
            "body": b64e(self.body),
            "attachment": None if self.attachment is None else self.attachment.to_json(),
        }

    @classmethod
    def from_json(cls, value: object, what: str) -> Self:
        if isinstance(value, dict) and "group_message" in value:
            return cls._group_from_json(value, what)
        o = _obj(value, what, set(_MESSAGE_FIELDS))
        body = b64d(o["body"], f"{what}.body")
        if len(body) > MAX_BODY_LEN:
            raise DecodeError(f"{what}.body is over {MAX_BODY_LEN} bytes")
        att = o["attachment"]
        return cls(
            _address_from_json(o["sender"], f"{what}.sender"),
            _address_from_json(o["recipient"], f"{what}.recipient"),
            _int(o["timestamp_ms"], f"{what}.timestamp_ms"),
            _fixed(o["message_id"], f"{what}.message_id", MESSAGE_ID_LEN),
            _fixed(o["conversation_id"], f"{what}.conversation_id", CONVERSATION_ID_LEN),
            _fixed(o["franking_commitment"], f"{what}.franking_commitment",
                   franking.COMMITMENT_LEN),
            _int(o["server_id"], f"{what}.server_id"),
            _int(o["server_time_ms"], f"{what}.server_time_ms"),
            _fixed(o["reporting_tag"], f"{what}.reporting_tag", franking.TAG_LEN),
            _fixed(o["franking_key"], f"{what}.franking_key", franking.FRANKING_KEY_LEN),
            body,
            None if att is None else RevealedAttachment.from_json(att, f"{what}.attachment"),
        )  # fmt: skip

    @classmethod
    def _group_from_json(cls, value: object, what: str) -> Self:
        o = _obj(value, what, set(_GROUP_MESSAGE_FIELDS))
        data = b64d(o["group_message"], f"{what}.group_message")
        body = b64d(o["body"], f"{what}.body")
        if len(body) > MAX_BODY_LEN:
            raise DecodeError(f"{what}.body is over {MAX_BODY_LEN} bytes")
        att = o["attachment"]
        try:
            return cls.from_group_delivery(
                data,
                recipient=_address_from_json(o["recipient"], f"{what}.recipient"),
                franking_key=_fixed(o["franking_key"], f"{what}.franking_key",
                                    franking.FRANKING_KEY_LEN),
                body=body,
                server_id=_int(o["server_id"], f"{what}.server_id"),
                server_time_ms=_int(o["server_time_ms"], f"{what}.server_time_ms"),
                reporting_tag=_fixed(o["reporting_tag"], f"{what}.reporting_tag",
                                     franking.TAG_LEN),
                attachment=None if att is None else RevealedAttachment.from_json(
                    att, f"{what}.attachment"),
            )  # fmt: skip
        except DecodeError as exc:
            raise DecodeError(f"{what}.group_message: {exc}") from None


_GROUP_MESSAGE_FIELDS: Final = (
    "group_message", "recipient", "server_id", "server_time_ms", "reporting_tag",
    "franking_key", "body", "attachment",
)  # fmt: skip

_MESSAGE_FIELDS: Final = (
    "sender", "recipient", "timestamp_ms", "message_id", "conversation_id",
    "franking_commitment", "server_id", "server_time_ms", "reporting_tag", "franking_key",
    "body", "attachment",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Report:
    """A reporter's device, an optional comment, and the messages it chose to reveal."""

    VERSION = REPORT_VERSION

    reporter: Address
    messages: tuple[ReportedMessage, ...]
    comment: str = ""

    @property
    def version(self) -> int:
        """1, or 2 when some message is a group message (see the module docstring)."""
        if any(m.group_message is not None for m in self.messages):
            return REPORT_VERSION_GROUPS
        return self.VERSION

    def encode(self) -> bytes:
        """The canonical bytes; :class:`ValueError` if a field is outside its bound."""
        if not 1 <= len(self.messages) <= MAX_REPORTED_MESSAGES:
            raise ValueError(f"a report carries 1..{MAX_REPORTED_MESSAGES} messages")
        version = self.version
        w = Writer().u8(version)
        self.reporter.write(w)
        w.vec(self.comment.encode(), 2, MAX_REPORT_COMMENT_BYTES).u8(len(self.messages))
        for m in self.messages:
            if version == REPORT_VERSION:
                m.write(w)
            elif m.group_message is None:
                m.write(w.u8(_KIND_ENVELOPE))
            else:
                m.write_group(w.u8(_KIND_GROUP))
        out = w.getvalue()
        if len(out) > MAX_REPORT_BYTES:
            raise ValueError(f"a report is at most {MAX_REPORT_BYTES} bytes")
        return out

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Strict decoding: :class:`DecodeError` unless ``data`` is exactly one canonical report
        (:class:`LimitExceeded` if it is over the size bound)."""
        if len(data) > MAX_REPORT_BYTES:
            raise LimitExceeded(f"a report is at most {MAX_REPORT_BYTES} bytes")
        r = Reader(data, "Report")
        version = r.version((cls.VERSION, REPORT_VERSION_GROUPS))
        reporter = Address.read(r)
        raw_comment = r.vec(2, "comment", MAX_REPORT_COMMENT_BYTES)
        try:
            comment = raw_comment.decode("utf-8")
        except UnicodeDecodeError:
            raise DecodeError("Report: comment is not UTF-8") from None
        n = r.u8("count")
        if not 1 <= n <= MAX_REPORTED_MESSAGES:
            raise DecodeError(f"Report: {n} messages, not 1..{MAX_REPORTED_MESSAGES}")
        messages = []
        for i in range(n):
            r.what = f"Report message {i + 1}"
            if version == cls.VERSION:
                messages.append(ReportedMessage.read(r))
                continue
            kind = r.u8("kind")
            if kind == _KIND_ENVELOPE:
                messages.append(ReportedMessage.read(r))
            elif kind == _KIND_GROUP:
                messages.append(ReportedMessage.read_group(r))
            else:
                raise DecodeError(f"{r.what}: unknown message kind {kind}")
        r.what = "Report"
        r.finish()
        report = cls(reporter, tuple(messages), comment)
        if report.version != version:
            raise DecodeError("Report: version 2 is only for reports with group messages")
        return report

    def sha256(self) -> bytes:
        """SHA-256 of the canonical encoding: names this report in evidence and logs."""
        return sha256(self.encode())

    def to_json(self) -> dict[str, JsonValue]:
        """The JSON view: binary values in base64url without padding, addresses as
        ``"<base64url account>:<device>"`` (as docs/api.md writes them)."""
        return {
            "version": self.version,
            "reporter": _address_json(self.reporter),
            "comment": self.comment,
            "messages": [m.to_json() for m in self.messages],
        }

    @classmethod
    def from_json(cls, value: object) -> Self:
        """Strict: unknown or missing fields, wrong types and non-canonical base64url are each
        a :class:`DecodeError` naming the field."""
        o = _obj(value, "report", {"version", "reporter", "comment", "messages"})
        version = o["version"]
        if version not in (cls.VERSION, REPORT_VERSION_GROUPS) or isinstance(version, bool):
            raise DecodeError(f"report: unknown version {version!r}")
        comment = _str(o["comment"], "report.comment")
        try:
            if len(comment.encode()) > MAX_REPORT_COMMENT_BYTES:
                raise DecodeError(f"report.comment is over {MAX_REPORT_COMMENT_BYTES} bytes")
        except UnicodeEncodeError:
            raise DecodeError("report.comment is not valid Unicode text") from None
        raw_messages = o["messages"]
        if not isinstance(raw_messages, list) or not 1 <= len(raw_messages) <= (
            MAX_REPORTED_MESSAGES
        ):
            raise DecodeError(f"report.messages is not a list of 1..{MAX_REPORTED_MESSAGES}")
        messages = tuple(
            ReportedMessage.from_json(m, f"report.messages[{i}]")
            for i, m in enumerate(raw_messages)
        )
        report = cls(_address_from_json(o["reporter"], "report.reporter"), messages, comment)
        if report.version != version:
            raise DecodeError(
                "report: version 2 is for reports with group messages, 1 for the others"
            )
        return report


# ----------------------------------------------------------------------------- verification


@dataclass(frozen=True, slots=True)
class ReplayKey:
    """What makes a reported message "already reported": the reporting **account** and the
    message's franking commitment. A commitment names one message (its franking key is fresh)
    across every device copy, so one person cannot report one message once per device, while
    two people who both received it can each report it."""

    reporter_account: bytes
    franking_commitment: bytes

    def encode(self) -> bytes:
        """A fixed-length 32-byte key for storage (a hash, so the store sees no account id)."""
        w = Writer().raw(_REPLAY_LABEL).vec(self.reporter_account, 1, MAX_ACCOUNT_ID_LEN)
        return sha256(w.fixed(self.franking_commitment, franking.COMMITMENT_LEN).getvalue())


@dataclass(frozen=True, slots=True)
class VerifiedAttachment:
    """An attachment whose pointer the sender committed to; ``plaintext`` is set when the
    reporter revealed it (directly or as ciphertext that opened under the committed key)."""

    pointer: AttachmentRef
    plaintext: bytes | None = field(repr=False)
    ciphertext_opened: bool


@dataclass(frozen=True, slots=True)
class VerifiedMessage:
    """One reported message that passed every check: exactly what the reporter revealed."""

    index: int
    sender: Address
    recipient: Address
    conversation_id: bytes
    message_id: bytes
    sent_ms: int
    server_id: int
    server_time_ms: int
    body_bytes: bytes = field(repr=False)
    body: MessageBody = field(repr=False)
    attachment: VerifiedAttachment | None = field(repr=False)


@dataclass(frozen=True, slots=True)
class VerifiedReport:
    """A report that verified, with what the caller must remember to refuse its replay."""

    report: Report = field(repr=False)
    report_bytes: bytes = field(repr=False)
    report_sha256: bytes
    franking_key_id: bytes
    verified_ms: int
    messages: tuple[VerifiedMessage, ...]
    #: Add these to the ``seen`` set once the report is stored (stage, then commit).
    replay_keys: frozenset[ReplayKey]

    @property
    def reporter(self) -> Address:
        return self.report.reporter

    @property
    def comment(self) -> str:
        return self.report.comment


def franking_key_id(server_franking_key: bytes) -> bytes:
    """A short public name of a franking key, recorded in evidence so that a later check knows
    which key (of a rotated series) to use. Reveals nothing useful about a 32-byte random key."""
    return sha256(_KEY_ID_LABEL + server_franking_key)[:FRANKING_KEY_ID_LEN]


def verify_report(
    report: Report | bytes,
    server_franking_key: bytes,
    *,
    reporter_address: Address,
    now_ms: int,
    seen: Container[ReplayKey],
) -> VerifiedReport:
    """Check every message of ``report`` (see the module docstring) for the authenticated
    ``reporter_address``; nothing is changed, the caller adds ``replay_keys`` to ``seen``.

    Raises :class:`DecodeError` / :class:`LimitExceeded` for bytes that are not a report,
    :class:`ReportRefused`, :class:`InvalidReportedMessage` or :class:`AlreadyReported` naming
    the first message that fails.
    """
    if len(server_franking_key) != KEY_LEN:
        raise ConfigurationError("the server franking key must be 32 bytes")
    if isinstance(report, bytes | bytearray | memoryview):
        report_bytes = bytes(report)
        parsed = Report.decode(report_bytes)
    else:
        parsed = report
        try:
            report_bytes = parsed.encode()
        except ValueError as exc:
            raise LimitExceeded(f"report does not fit its encoding: {exc}") from exc
    if parsed.reporter != reporter_address:
        raise ReportRefused(
            f"the report names {parsed.reporter} as reporter, but was submitted by "
            f"{reporter_address}"
        )
    verified: list[VerifiedMessage] = []
    keys: dict[ReplayKey, int] = {}
    for i, m in enumerate(parsed.messages, start=1):
        verified.append(_verify_one(i, m, server_franking_key, reporter_address, now_ms))
        key = ReplayKey(reporter_address.account, m.franking_commitment)
        if key in keys:
            raise AlreadyReported(i, f"is the same message as reported message {keys[key]}")
        if key in seen:
            raise AlreadyReported(i)
        keys[key] = i
    return VerifiedReport(
        parsed, report_bytes, sha256(report_bytes), franking_key_id(server_franking_key),
        now_ms, tuple(verified), frozenset(keys),
    )  # fmt: skip


def _verify_one(
    i: int, m: ReportedMessage, key: bytes, reporter: Address, now_ms: int
) -> VerifiedMessage:
    if m.recipient.account != reporter.account:
        raise ReportRefused("was delivered to another account, not to the reporter", i)
    if m.sender.account == reporter.account:
        raise ReportRefused("was sent by the reporter's own account", i)
    if m.server_time_ms > now_ms + MAX_CLOCK_SKEW_MS:
        raise ReportRefused("has a server time in the future", i)
    try:
        ctx = franking.context(m.sender, m.conversation_id, m.message_id, m.timestamp_ms)
        franking.verify(m.franking_commitment, m.franking_key, ctx, m.body)
        franking.verify_reporting_tag(
            key, m.reporting_tag, m.franking_commitment, m.sender, m.recipient, m.server_id,
            m.server_time_ms,
        )  # fmt: skip
    except InvalidMessage:
        raise InvalidReportedMessage(i) from None
    try:
        body = MessageBody.decode(m.body)
    except DecodeError as exc:
        raise DecodeError(f"reported message {i}: {exc}") from None
    return VerifiedMessage(
        i, m.sender, m.recipient, m.conversation_id, m.message_id, m.timestamp_ms, m.server_id,
        m.server_time_ms, m.body, body, _verify_attachment(i, body, m.attachment),
    )  # fmt: skip


def _verify_attachment(
    i: int, body: MessageBody, revealed: RevealedAttachment | None
) -> VerifiedAttachment | None:
    pointer = body.attachment
    if pointer is None:
        if revealed is not None:
            raise ReportRefused("reveals an attachment, but its body has none", i)
        return None
    if revealed is None:
        return VerifiedAttachment(pointer, None, ciphertext_opened=False)
    if not constant_time_eq(revealed.key, pointer.key):
        raise InvalidReportedMessage(i)
    plaintext = revealed.plaintext
    if revealed.ciphertext is not None:
        if not constant_time_eq(sha256(revealed.ciphertext), pointer.ciphertext_sha256):
            raise InvalidReportedMessage(i)
        try:
            opened = open_sealed(pointer.key, revealed.ciphertext, ATTACHMENT_AD, ATTACHMENT_LABEL)
        except InvalidMessage:
            raise InvalidReportedMessage(i) from None
        if plaintext is not None and not constant_time_eq(opened, plaintext):
            raise InvalidReportedMessage(i)
        plaintext = opened
    assert plaintext is not None  # decoding guarantees ciphertext or plaintext
    if len(plaintext) != pointer.size or not constant_time_eq(
        sha256(plaintext), pointer.plaintext_sha256
    ):
        raise InvalidReportedMessage(i)
    return VerifiedAttachment(pointer, plaintext, revealed.ciphertext is not None)


# ----------------------------------------------------------------------------- evidence


@dataclass(frozen=True, slots=True)
class VerificationEntry:
    """What verification established about one message, as recorded in a bundle."""

    server_id: int
    sender: Address
    recipient: Address
    server_time_ms: int
    body_sha256: bytes
    #: 0: no attachment; 1: attachment, hashes only; 2: plaintext checked; 3: ciphertext opened.
    attachment: int

    def write(self, w: Writer) -> None:
        w.u64(self.server_id)
        self.sender.write(w)
        self.recipient.write(w)
        w.u64(self.server_time_ms).fixed(self.body_sha256, HASH_LEN).u8(self.attachment)

    @classmethod
    def read(cls, r: Reader) -> Self:
        sid = r.u64("server_id")
        sender, recipient = Address.read(r), Address.read(r)
        t, h, a = r.u64("server_time_ms"), r.fixed(HASH_LEN, "body_sha256"), r.u8("attachment")
        if a > _ATTACHMENT_OPENED:
            raise DecodeError(f"{r.what}: unknown attachment state {a}")
        return cls(sid, sender, recipient, t, h, a)

    @classmethod
    def of(cls, m: VerifiedMessage) -> Self:
        if m.attachment is None:
            state = 0
        elif m.attachment.ciphertext_opened:
            state = _ATTACHMENT_OPENED
        else:
            state = 2 if m.attachment.plaintext is not None else 1
        return cls(m.server_id, m.sender, m.recipient, m.server_time_ms, sha256(m.body_bytes),
                   state)  # fmt: skip


_ATTACHMENT_OPENED: Final = 3


@dataclass(frozen=True, slots=True)
class EvidenceBundle:
    """A verified report kept as evidence: the exact report bytes, their SHA-256, the id of the
    franking key that verified them, when they were received, until when they are kept, and
    what verification established. Canonical encoding::

        struct { uint64 server_id; Address sender; Address recipient; uint64 server_time_ms;
                 opaque body_sha256[32]; uint8 attachment; } VerificationEntry;
        struct { uint8 version = 1; opaque report<0..2^26>; opaque report_sha256[32];
                 opaque franking_key_id[8]; uint64 received_ms; uint64 retain_until_ms;
                 uint8 count; VerificationEntry entries[count]; } EvidenceBundle;

    Re-checking it (:func:`reverify_bundle`) needs the server franking key, because reporting
    tags are HMACs: see docs/safety.md for this limit and the signature-based alternative.
    """

    VERSION = BUNDLE_VERSION

    report: bytes = field(repr=False)
    report_sha256: bytes
    franking_key_id: bytes
    received_ms: int
    retain_until_ms: int
    entries: tuple[VerificationEntry, ...]

    @classmethod
    def of(cls, verified: VerifiedReport, *, received_ms: int | None = None) -> Self:
        """The bundle of a report that just verified; kept :data:`EVIDENCE_RETENTION_MS`."""
        received = verified.verified_ms if received_ms is None else received_ms
        return cls(
            verified.report_bytes, verified.report_sha256, verified.franking_key_id, received,
            received + EVIDENCE_RETENTION_MS,
            tuple(VerificationEntry.of(m) for m in verified.messages),
        )  # fmt: skip

    def encode(self) -> bytes:
        w = Writer().u8(self.VERSION).vec(self.report, 4, MAX_REPORT_BYTES)
        w.fixed(self.report_sha256, HASH_LEN).fixed(self.franking_key_id, FRANKING_KEY_ID_LEN)
        w.u64(self.received_ms).u64(self.retain_until_ms).u8(len(self.entries))
        for e in self.entries:
            e.write(w)
        return w.getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        if len(data) > MAX_BUNDLE_BYTES:
            raise LimitExceeded(f"an evidence bundle is at most {MAX_BUNDLE_BYTES} bytes")
        r = Reader(data, "EvidenceBundle")
        r.version(cls.VERSION)
        report = r.vec(4, "report", MAX_REPORT_BYTES)
        digest = r.fixed(HASH_LEN, "report_sha256")
        key_id = r.fixed(FRANKING_KEY_ID_LEN, "franking_key_id")
        received, retain = r.u64("received_ms"), r.u64("retain_until_ms")
        n = r.u8("count")
        if not 1 <= n <= MAX_REPORTED_MESSAGES:
            raise DecodeError(f"EvidenceBundle: {n} entries, not 1..{MAX_REPORTED_MESSAGES}")
        entries = tuple(VerificationEntry.read(r) for _ in range(n))
        r.finish()
        return cls(report, digest, key_id, received, retain, entries)

    def summary(self) -> Mapping[str, JsonValue]:
        """A JSON summary for the console and logs: no content, no keys."""
        return {
            "report_sha256": self.report_sha256.hex(),
            "franking_key_id": self.franking_key_id.hex(),
            "received_ms": self.received_ms,
            "retain_until_ms": self.retain_until_ms,
            "messages": [
                {"server_id": e.server_id, "sender": _address_json(e.sender),
                 "server_time_ms": e.server_time_ms, "attachment": e.attachment}
                for e in self.entries
            ],
        }  # fmt: skip


#: A bundle is its report plus a small fixed part per message.
MAX_BUNDLE_BYTES: Final = MAX_REPORT_BYTES + 4096 + MAX_REPORTED_MESSAGES * 512


def reverify_bundle(bundle: EvidenceBundle, server_franking_key: bytes) -> VerifiedReport:
    """Check a stored bundle again, offline, with the franking key it was verified under.

    :class:`ConfigurationError` if the key is not the bundle's; :class:`BundleMismatch` if the
    report bytes no longer hash to the recorded SHA-256 or verification no longer finds what
    was recorded; otherwise the errors of :func:`verify_report`. Replay is not checked again.
    """
    if franking_key_id(server_franking_key) != bundle.franking_key_id:
        raise ConfigurationError(
            f"this bundle was verified under franking key {bundle.franking_key_id.hex()}, "
            f"not {franking_key_id(server_franking_key).hex()}: pass that key"
        )
    if not constant_time_eq(sha256(bundle.report), bundle.report_sha256):
        raise BundleMismatch("the bundle's report does not match its recorded SHA-256")
    report = Report.decode(bundle.report)
    verified = verify_report(
        bundle.report, server_franking_key, reporter_address=report.reporter,
        now_ms=bundle.received_ms, seen=(),
    )  # fmt: skip
    if tuple(VerificationEntry.of(m) for m in verified.messages) != bundle.entries:
        raise BundleMismatch("the bundle's recorded verification result differs from the report")
    return verified
