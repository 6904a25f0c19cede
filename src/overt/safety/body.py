"""The message body as a moderator reads it: what the person wrote and the attachment pointer.

A report reveals the exact body bytes the franking commitment covers; this module interprets
them. The format is the client's (:mod:`overt.client.body`, canonical encoding of
:mod:`overt.wire.codec`), re-read here because :mod:`overt.safety` must not import the client;
``tests/safety`` checks both read and write the same bytes::

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

In a group message ``peer`` is the group's 32-byte id. Kinds 3 and 4 (a membership update, a
sender key) travel only over pairwise sessions and are never shown to a person; they are read
here so that both decoders accept exactly the same bytes.

Gossip is the transparency-log checkpoint the sender's client had verified (origin, size, root
hash); a moderator has no use for it, but it is part of the committed bytes, so it is read and
kept (opaque here) and written back unchanged.

An attachment is ``seal(key, plaintext, ATTACHMENT_AD, ATTACHMENT_LABEL)`` (key-committing, see
:func:`overt.crypto.seal`) with the client's label and AD, repeated below.

Decoding is strict; :class:`overt.errors.DecodeError` is its only failure. This module never
sees sockets, storage or clocks, and uses no key: it only carries the attachment key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Final, Self

from overt.errors import DecodeError
from overt.safety.limits import (
    MAX_BLOB_ID_BYTES,
    MAX_CONTENT_TYPE_BYTES,
    MAX_FILE_NAME_BYTES,
    MAX_GOSSIP_ORIGIN_BYTES,
    MAX_GROUP_DATA_BYTES,
    MAX_TEXT_BYTES,
)
from overt.wire import Reader, Writer
from overt.wire.messages import MAX_ACCOUNT_ID_LEN

BODY_VERSION: Final = 1
BODY_VERSION_GOSSIP: Final = 2
ATTACHMENT_KEY_LEN: Final = 32
SHA256_LEN: Final = 32

#: Domain separation of attachment encryption, as the client seals (label and AD of
#: :func:`overt.crypto.seal`).
ATTACHMENT_LABEL: Final = b"Attachment"
ATTACHMENT_AD: Final = b"Overt_Attachment_v1"


class BodyKind(IntEnum):
    TEXT = 1
    ATTACHMENT = 2
    GROUP_UPDATE = 3
    GROUP_KEY = 4
    GROUP_LEAVE = 5


_GROUP_CONTROL_KINDS: Final = frozenset({BodyKind.GROUP_UPDATE, BodyKind.GROUP_KEY})


def _utf8(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DecodeError(f"Body: {what} is not UTF-8") from None


@dataclass(frozen=True, slots=True)
class AttachmentRef:
    """Where an encrypted attachment is, the key that opens it, and what it must hash to."""

    blob_id: bytes
    key: bytes = field(repr=False)
    size: int
    plaintext_sha256: bytes
    ciphertext_sha256: bytes
    content_type: str
    file_name: str

    def write(self, w: Writer) -> None:
        w.vec(self.blob_id, 1, MAX_BLOB_ID_BYTES).fixed(self.key, ATTACHMENT_KEY_LEN)
        w.u64(self.size).fixed(self.plaintext_sha256, SHA256_LEN)
        w.fixed(self.ciphertext_sha256, SHA256_LEN)
        w.vec(self.content_type.encode(), 1, MAX_CONTENT_TYPE_BYTES)
        w.vec(self.file_name.encode(), 1, MAX_FILE_NAME_BYTES)

    @classmethod
    def read(cls, r: Reader) -> Self:
        blob_id = r.vec(1, "blob_id", MAX_BLOB_ID_BYTES, min_len=1)
        key = r.fixed(ATTACHMENT_KEY_LEN, "key")
        size = r.u64("size")
        plain, cipher = r.fixed(SHA256_LEN, "plaintext_sha256"), r.fixed(SHA256_LEN, "ct_sha256")
        content_type = _utf8(r.vec(1, "content_type", MAX_CONTENT_TYPE_BYTES), "content type")
        file_name = _utf8(r.vec(1, "file_name", MAX_FILE_NAME_BYTES), "file name")
        return cls(blob_id, key, size, plain, cipher, content_type, file_name)


@dataclass(frozen=True, slots=True)
class GossipRef:
    """The log checkpoint a sender's client gossiped in the body (kept, not interpreted)."""

    origin: str
    size: int
    root_hash: bytes

    def write(self, w: Writer) -> None:
        w.vec(self.origin.encode(), 1, MAX_GOSSIP_ORIGIN_BYTES).u64(self.size)
        w.fixed(self.root_hash, SHA256_LEN)

    @classmethod
    def read(cls, r: Reader) -> Self:
        origin = _utf8(r.vec(1, "gossip origin", MAX_GOSSIP_ORIGIN_BYTES, min_len=1), "origin")
        return cls(origin, r.u64("gossip size"), r.fixed(SHA256_LEN, "gossip root hash"))


@dataclass(frozen=True, slots=True)
class MessageBody:
    """One message as its sender committed to it (see the module docstring)."""

    kind: BodyKind
    peer: bytes
    text: str = field(default="", repr=False)
    attachment: AttachmentRef | None = field(default=None, repr=False)
    gossip: GossipRef | None = field(default=None, repr=False)
    group_data: bytes | None = field(default=None, repr=False)

    def encode(self) -> bytes:
        """The canonical bytes (tests and tools build bodies with it; the client has its own)."""
        if (self.kind is BodyKind.ATTACHMENT) != (self.attachment is not None):
            raise ValueError("an attachment body carries a pointer, and only it does")
        if (self.kind in _GROUP_CONTROL_KINDS) != (self.group_data is not None):
            raise ValueError("a group update or key body carries group data, and only it does")
        version = BODY_VERSION if self.gossip is None else BODY_VERSION_GOSSIP
        w = Writer().u8(version).u8(self.kind)
        w.vec(self.peer, 1, MAX_ACCOUNT_ID_LEN).vec(self.text.encode(), 4, MAX_TEXT_BYTES)
        if self.attachment is not None:
            self.attachment.write(w)
        if self.group_data is not None:
            if not self.group_data:
                raise ValueError("group data must not be empty")
            w.vec(self.group_data, 4, MAX_GROUP_DATA_BYTES)
        if self.gossip is not None:
            self.gossip.write(w)
        return w.getvalue()

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
        pointer = AttachmentRef.read(r) if kind is BodyKind.ATTACHMENT else None
        group_data = None
        if kind in _GROUP_CONTROL_KINDS:
            group_data = r.vec(4, "group_data", MAX_GROUP_DATA_BYTES, min_len=1)
        gossip = GossipRef.read(r) if version == BODY_VERSION_GOSSIP else None
        r.finish()
        return cls(kind, peer, text, pointer, gossip, group_data)
