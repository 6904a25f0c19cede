"""overt.client — the client library: one device of one account, behind one async facade.

:class:`Client` does everything a messaging app needs — register or link a device, send and
receive text and attachments across every device of both parties, keep conversations, verify
safety numbers — over a :class:`Transport` to the relay server (:class:`HttpTransport` over
the network, :class:`AsgiTransport` in-process) and a local SQLite profile. See docs/client.md.

Layers, and what each must not know:

* :mod:`~overt.client.body`, :mod:`~overt.client.link` — versioned encodings; no I/O.
* :mod:`~overt.client.store` — local state in SQLite; no network, no clock of its own.
* :mod:`~overt.client.transport` — HTTP, WebSocket and request signing; no protocol state.
* :mod:`~overt.client.client` — the facade tying them to :mod:`overt.protocol`.

This package never imports :mod:`overt.server` or :mod:`overt.storage` (checked by
``tests/client/test_client_exports.py``): it knows the server only through docs/api.md.
"""

from overt.client.body import AttachmentPointer, Body, BodyKind
from overt.client.client import Client
from overt.client.clock import Clock, SystemClock
from overt.client.errors import (
    AccountExists,
    AttachmentRejected,
    BadResponse,
    Conflict,
    Forbidden,
    NotFound,
    ProfileStateError,
    ProfileTooNew,
    RateLimited,
    ServerRefused,
    ServerUnreachable,
    StaleDevices,
    StaleSerial,
    StoreError,
    TooLarge,
    Unauthenticated,
    UnknownAccount,
)
from overt.client.link import LinkApproval, LinkRequest
from overt.client.model import Conversation, Direction, FailureReason, Message, Undecryptable
from overt.client.transport import (
    AsgiTransport,
    HttpTransport,
    PushChannel,
    RequestSigner,
    Response,
    Transport,
)

__all__ = [
    "AccountExists",
    "AsgiTransport",
    "AttachmentPointer",
    "AttachmentRejected",
    "BadResponse",
    "Body",
    "BodyKind",
    "Client",
    "Clock",
    "Conflict",
    "Conversation",
    "Direction",
    "FailureReason",
    "Forbidden",
    "HttpTransport",
    "LinkApproval",
    "LinkRequest",
    "Message",
    "NotFound",
    "ProfileStateError",
    "ProfileTooNew",
    "PushChannel",
    "RateLimited",
    "RequestSigner",
    "Response",
    "ServerRefused",
    "ServerUnreachable",
    "StaleDevices",
    "StaleSerial",
    "StoreError",
    "SystemClock",
    "TooLarge",
    "Transport",
    "Unauthenticated",
    "Undecryptable",
    "UnknownAccount",
]
