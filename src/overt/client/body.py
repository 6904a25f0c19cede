"""The application body inside every message: what the person wrote, and for whom.

The body is the ``body`` of :class:`overt.wire.Content`, the exact bytes the franking
commitment covers, so it is kept verbatim for reports. It names the conversation's **peer** as
the sender sees it (the account the message is addressed to): a recipient checks that it names
itself, and the sender's own other devices, which receive a sync copy, learn from it which
conversation the copy belongs to.

A body may also carry **gossip**: the newest transparency-log checkpoint the sender verified
(origin, size, root hash), so that the recipient can check that both were shown the same log
(DESIGN §4; see docs/transparency.md, "What clients verify").

**Groups.** Inside a :class:`overt.wire.group_messages.GroupMessage` the body is a text or
attachment body whose ``peer`` is the group's 32-byte id (the conversation it belongs to; a
receiver checks it is the message's group). Two more kinds travel over the pairwise sessions,
to every device of every member account (and the sender's other devices), with the group id as
``peer`` and the group's structure as ``group_data``: a signed
:class:`~overt.wire.group_messages.MembershipUpdate` (kind 3) and this device's
:class:`~overt.wire.group_messages.SenderKeyDistribution` (kind 4); and a member's request to
leave (kind 5, no data), to the admins, who alone can sign the update that removes it.

**Key material.** A sender-key distribution (kind 4, :data:`KEY_MATERIAL_KINDS`) is sent with
its access field under the key context (:func:`access_kind`), every other body under the
content context; a recipient refuses a body whose field matched the other kind.

Canonical encoding (:mod:`overt.wire.codec`)::

    struct { opaque blob_id<1..64>; opaque key[32]; uint64 size;
             opaque plaintext_sha256[32]; opaque ciphertext_sha256[32];
             opaque content_type<0..127>; opaque file_name<0..255>; } AttachmentPointer;
    struct { opaque origin<1..255>; uint64 size; opaque root_hash[32]; } Gossip;
    struct { uint8 version;                         /* 1: no gossip, 2: with gossip */
             uint8 kind;        /* 1 text, 2 attachment, 3 group update,
                                   4 group key, 5 group leave */
             opaque peer<1..64>; opaque text<0..2^32-1>;   /* at most MAX_TEXT_BYTES */
             AttachmentPointer attachment;          /* iff kind == attachment */
             opaque group_data<1..2^32-1>;          /* iff kind is 3 or 4; at most
                                                       MAX_GROUP_DATA_BYTES */
             Gossip gossip;                         /* iff version == 2 */ } Body;

A body without gossip is written as version 1, exactly as before version 2 existed, so one body
has one encoding and clients that predate gossip still read it; version 1 is always accepted.
Text, content type, file name and origin are UTF-8 (the origin a valid checkpoint origin line).
Decoding is strict (known version and kind, bounded lengths, valid UTF-8, no trailing bytes);
:class:`overt.errors.DecodeError` is its only failure. This module never sees keys in use,
sockets or storage.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import IntEnum
from typing import Self

from overt.client.limits import (
    MAX_CONTENT_TYPE_BYTES,
    MAX_FILE_NAME_BYTES,
    MAX_GROUP_DATA_BYTES,
    MAX_TEXT_BYTES,
)
from overt.errors import DecodeError, LocalError
from overt.protocol.access import AccessKind
from overt.transparency.checkpoint import MAX_ORIGIN_BYTES, Checkpoint
from overt.transparency.merkle import HASH_LEN, MAX_TREE_SIZE
from overt.wire import Reader, Writer
from overt.wire.messages import MAX_ACCOUNT_ID_LEN

BODY_VERSION = 1
"""A body without gossip (the only version before gossip existed)."""
BODY_VERSION_GOSSIP = 2
"""A body with a :class:`Gossip` checkpoint."""
POINTER_VERSION = 1
ATTACHMENT_KEY_LEN = 32
SHA256_LEN = 32
MAX_BLOB_ID_LEN = 64


class BodyKind(IntEnum):
    TEXT = 1
    ATTACHMENT = 2
    #: A signed membership update of a group (``group_data``), over a pairwise session.
    GROUP_UPDATE = 3
    #: A sender key of a group (``group_data``), over a pairwise session.
    GROUP_KEY = 4
    #: "This account leaves the group" (no data), to the group's admins over pairwise sessions.
    GROUP_LEAVE = 5


#: The kinds that carry ``group_data``.
GROUP_CONTROL_KINDS = frozenset({BodyKind.GROUP_UPDATE, BodyKind.GROUP_KEY})
#: The kinds :mod:`overt.client.groups` handles (never shown to a person as messages).
GROUP_BODY_KINDS = frozenset({BodyKind.GROUP_UPDATE, BodyKind.GROUP_KEY, BodyKind.GROUP_LEAVE})
#: The kinds that carry keys for other messages (a sender key's chain key): sent with the
#: access field under the key context, which no custodian opens (docs/lawful-access.md). A
#: membership update or a leave request carries no secret and is content.
KEY_MATERIAL_KINDS = frozenset({BodyKind.GROUP_KEY})


def access_kind(kind: BodyKind) -> AccessKind:
    """The access-field context a body of ``kind`` is sent under, and must have come under."""
    return AccessKind.KEY_MATERIAL if kind in KEY_MATERIAL_KINDS else AccessKind.CONTENT


def _utf8(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DecodeError(f"Body: {what} is not UTF-8") from None


@dataclass(frozen=True, slots=True)
class AttachmentPointer:
    """Where an encrypted attachment is, the key that opens it, and what it must hash to."""

    blob_id: bytes
    key: bytes = field(repr=False)
    size: int
    plaintext_sha256: bytes
    ciphertext_sha256: bytes
    content_type: str
    file_name: str

    def write(self, w: Writer) -> None:
        w.vec(self.blob_id, 1, MAX_BLOB_ID_LEN).fixed(self.key, ATTACHMENT_KEY_LEN)
        w.u64(self.size).fixed(self.plaintext_sha256, SHA256_LEN)
        w.fixed(self.ciphertext_sha256, SHA256_LEN)
        w.vec(self.content_type.encode(), 1, MAX_CONTENT_TYPE_BYTES)
        w.vec(self.file_name.encode(), 1, MAX_FILE_NAME_BYTES)

    @classmethod
    def read(cls, r: Reader) -> Self:
        blob_id = r.vec(1, "blob_id", MAX_BLOB_ID_LEN, min_len=1)
        key = r.fixed(ATTACHMENT_KEY_LEN, "key")
        size = r.u64("size")
        plain, cipher = r.fixed(SHA256_LEN, "plaintext_sha256"), r.fixed(SHA256_LEN, "ct_sha256")
        content_type = _utf8(r.vec(1, "content_type", MAX_CONTENT_TYPE_BYTES), "content type")
        file_name = _utf8(r.vec(1, "file_name", MAX_FILE_NAME_BYTES), "file name")
        return cls(blob_id, key, size, plain, cipher, content_type, file_name)

    def encode(self) -> bytes:
        """Standalone, versioned (as the local store keeps it)."""
        w = Writer().u8(POINTER_VERSION)
        self.write(w)
        return w.getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = Reader(data, "AttachmentPointer")
        r.version(POINTER_VERSION)
        out = cls.read(r)
        r.finish()
        return out


@dataclass(frozen=True, slots=True)
class Gossip:
    """A transparency-log checkpoint as one client tells another: origin, size, root hash.

    Unsigned on purpose (small, and the recipient checks it against its own server with a
    consistency proof); it is evidence of what the sender was shown, not of what the log signed.
    """

    origin: str
    size: int
    root_hash: bytes

    def __post_init__(self) -> None:
        try:
            Checkpoint(self.origin, self.size, self.root_hash)
        except LocalError as exc:
            raise LocalError(f"not a checkpoint to gossip: {exc}") from None

    @classmethod
    def of(cls, checkpoint: Checkpoint) -> Self:
        return cls(checkpoint.origin, checkpoint.size, checkpoint.root_hash)

    def checkpoint(self) -> Checkpoint:
        """As an (unsigned) checkpoint body."""
        return Checkpoint(self.origin, self.size, self.root_hash)

    def write(self, w: Writer) -> None:
        w.vec(self.origin.encode(), 1, MAX_ORIGIN_BYTES).u64(self.size)
        w.fixed(self.root_hash, HASH_LEN)

    @classmethod
    def read(cls, r: Reader) -> Self:
        origin = _utf8(r.vec(1, "gossip origin", MAX_ORIGIN_BYTES, min_len=1), "gossip origin")
        size = r.u64("gossip size")
        root = r.fixed(HASH_LEN, "gossip root hash")
        if size > MAX_TREE_SIZE:
            raise DecodeError("Body: gossip tree size out of range")
        try:
            return cls(origin, size, root)
        except LocalError:
            raise DecodeError("Body: gossip is not a valid checkpoint") from None


@dataclass(frozen=True, slots=True)
class Body:
    """One message as the application sees it (see the module docstring)."""

    kind: BodyKind
    peer: bytes
    text: str = field(default="", repr=False)
    attachment: AttachmentPointer | None = field(default=None, repr=False)
    gossip: Gossip | None = None
    """The sender's newest verified log checkpoint, when it follows a transparency log."""
    group_data: bytes | None = field(default=None, repr=False)
    """A group update or sender key (kinds 3 and 4 only)."""

    def __post_init__(self) -> None:
        if (self.kind is BodyKind.ATTACHMENT) != (self.attachment is not None):
            raise LocalError("an attachment body carries a pointer, and only it does")
        if (self.kind in GROUP_CONTROL_KINDS) != (self.group_data is not None):
            raise LocalError("a group update or key body carries group data, and only it does")

    @classmethod
    def of_text(cls, peer: bytes, text: str) -> Self:
        return cls(BodyKind.TEXT, peer, text)

    @classmethod
    def of_attachment(cls, peer: bytes, pointer: AttachmentPointer, caption: str = "") -> Self:
        return cls(BodyKind.ATTACHMENT, peer, caption, pointer)

    @classmethod
    def of_group(cls, kind: BodyKind, group_id: bytes, data: bytes | None = None) -> Self:
        """A group update or sender key (``data``), or a leave request, for ``group_id``."""
        return cls(kind, group_id, group_data=data)

    def encode(self) -> bytes:
        text = self.text.encode()
        if len(text) > MAX_TEXT_BYTES:
            raise LocalError(f"message text is over {MAX_TEXT_BYTES} bytes; shorten it")
        version = BODY_VERSION if self.gossip is None else BODY_VERSION_GOSSIP
        w = Writer().u8(version).u8(self.kind)
        try:
            w.vec(self.peer, 1, MAX_ACCOUNT_ID_LEN).vec(text, 4, MAX_TEXT_BYTES)
            if self.attachment is not None:
                self.attachment.write(w)
            if self.group_data is not None:
                if not self.group_data:
                    raise ValueError("group data must not be empty")
                w.vec(self.group_data, 4, MAX_GROUP_DATA_BYTES)
            if self.gossip is not None:
                self.gossip.write(w)
        except ValueError as exc:  # a field over its bound
            raise LocalError(f"message does not fit its encoding: {exc}") from exc
        return w.getvalue()

    def with_gossip(self, gossip: Gossip | None) -> Self:
        return replace(self, gossip=gossip)

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = Reader(data, "Body")
        version = r.version((BODY_VERSION, BODY_VERSION_GOSSIP))
        raw_kind = r.u8("kind")
        try:
            kind = BodyKind(raw_kind)
        except ValueError:
            raise DecodeError(f"Body: unknown kind {raw_kind}") from None
        peer = r.vec(1, "peer", MAX_ACCOUNT_ID_LEN, min_len=1)
        text = _utf8(r.vec(4, "text", MAX_TEXT_BYTES), "text")
        pointer = AttachmentPointer.read(r) if kind is BodyKind.ATTACHMENT else None
        group_data = None
        if kind in GROUP_CONTROL_KINDS:
            group_data = r.vec(4, "group_data", MAX_GROUP_DATA_BYTES, min_len=1)
        gossip = Gossip.read(r) if version == BODY_VERSION_GOSSIP else None
        r.finish()
        return cls(kind, peer, text, pointer, gossip, group_data)
