"""Message franking: verifiable abuse reports without the server reading messages.

Per message the sender draws a 32-byte franking key ``fk`` and commits to the body::

    context = "Overt_Franking_v1" ‖ Address(sender) ‖ conversation_id ‖ message_id ‖ uint64 time
    c       = HMAC-SHA256(fk, context ‖ body)

``c`` travels outside the ciphertext (bound into its associated data), ``fk`` inside it. On
relay the server attaches a **reporting tag** ``HMAC-SHA256(K_server, "Overt_ReportingTag_v1" ‖
c ‖ Address(sender) ‖ Address(recipient) ‖ uint64 server_id ‖ uint64 server_time)``. The
recipient drops any message whose commitment does not verify, so what it can later report is
exactly what it was shown. A report reveals body, ``fk``, context fields and the tag; the
server recomputes ``c`` and the tag and so learns that the claimed sender really sent this
body to this reporter.

The context does not name the recipient, so one commitment serves every device a message fans
out to (and every member of a group); the tag, computed per delivery, names the recipient.
"""

from __future__ import annotations

import struct

from overt.crypto import constant_time_eq, hmac_sha256
from overt.errors import InvalidMessage
from overt.wire import Address, Writer

FRANKING_KEY_LEN = 32
COMMITMENT_LEN = 32
TAG_LEN = 32
_CONTEXT_LABEL = b"Overt_Franking_v1"
_TAG_LABEL = b"Overt_ReportingTag_v1"
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")


def context(sender: Address, conversation_id: bytes, message_id: bytes, timestamp_ms: int) -> bytes:
    """The canonical franking context of one message (computed twice per message: by hand)."""
    if len(conversation_id) != 32 or len(message_id) != 16 or not 0 < len(sender.account) <= 64:
        raise ValueError("franking context field of the wrong length")
    return b"".join((
        _CONTEXT_LABEL, bytes((len(sender.account),)), sender.account,
        _U32.pack(sender.device), conversation_id, message_id, _U64.pack(timestamp_ms),
    ))  # fmt: skip


def commit(franking_key: bytes, ctx: bytes, body: bytes) -> bytes:
    """``HMAC-SHA256(fk, context ‖ body)``; the context is self-delimiting."""
    if len(franking_key) != FRANKING_KEY_LEN:
        raise InvalidMessage()
    return hmac_sha256(franking_key, ctx + body)


def verify(commitment: bytes, franking_key: bytes, ctx: bytes, body: bytes) -> None:
    """Raise :class:`InvalidMessage` unless ``commitment`` opens to ``body`` under ``fk``."""
    if not constant_time_eq(commit(franking_key, ctx, body), commitment):
        raise InvalidMessage()


def _tag_input(
    commitment: bytes, sender: Address, recipient: Address, server_id: int, server_time_ms: int
) -> bytes:
    w = Writer().raw(_TAG_LABEL).fixed(commitment, COMMITMENT_LEN)
    sender.write(w)
    recipient.write(w)
    return w.u64(server_id).u64(server_time_ms).getvalue()


def reporting_tag(
    server_key: bytes,
    commitment: bytes,
    sender: Address,
    recipient: Address,
    server_id: int,
    server_time_ms: int,
) -> bytes:
    """The tag the server attaches to one delivery (server side)."""
    return hmac_sha256(
        server_key, _tag_input(commitment, sender, recipient, server_id, server_time_ms)
    )


def verify_reporting_tag(
    server_key: bytes,
    tag: bytes,
    commitment: bytes,
    sender: Address,
    recipient: Address,
    server_id: int,
    server_time_ms: int,
) -> None:
    expected = reporting_tag(server_key, commitment, sender, recipient, server_id, server_time_ms)
    if not constant_time_eq(expected, tag):
        raise InvalidMessage()
