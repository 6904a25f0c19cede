"""overt.client — the client library: one device of one account, behind one async facade.

:class:`Client` does everything a messaging app needs — register or link a device, send and
receive text and attachments across every device of both parties, keep conversations, verify
safety numbers — over a :class:`Transport` to the relay server (:class:`HttpTransport` over
the network, :class:`AsgiTransport` in-process) and a local SQLite profile. See docs/client.md.

Layers, and what each must not know:

* :mod:`~overt.client.body`, :mod:`~overt.client.link` — versioned encodings; no I/O.
* :mod:`~overt.client.store` — local state in SQLite; no network, no clock of its own.
* :mod:`~overt.client.transport` — HTTP, WebSocket and request signing; no protocol state.
* :mod:`~overt.client.kt` — key transparency: the manifest, checkpoints, log proofs of device
  lists, gossip and monitoring, over the public log endpoints.
* :mod:`~overt.client.escrow`, :mod:`~overt.client.notices` — lawful access: escrow-epoch keys
  proven from the log, and the notice a target gets when a warrant naming it is unsealed.
* :mod:`~overt.client.groups`, :mod:`~overt.client.group_store` — group conversations (Sender
  Keys) over the server's group routes and the pairwise sessions, and their local state.
* :mod:`~overt.client.client` — the facade tying them to :mod:`overt.protocol`.

This package never imports :mod:`overt.server` or :mod:`overt.storage` (checked by
``tests/client/test_client_exports.py``): it knows the server only through docs/api.md.
"""

from overt.client.body import AttachmentPointer, Body, BodyKind, Gossip
from overt.client.client import Client
from overt.client.clock import Clock, SystemClock
from overt.client.errors import (
    AccountExists,
    AttachmentRejected,
    BadResponse,
    Conflict,
    EpochNotInLog,
    Forbidden,
    NotFound,
    NotInLog,
    PolicyUnavailable,
    ProfileStateError,
    ProfileTooNew,
    RateLimited,
    ServerRefused,
    ServerUnreachable,
    SplitView,
    StaleDevices,
    StaleGroup,
    StaleSerial,
    StoreError,
    TooLarge,
    TransparencyUnavailable,
    Unauthenticated,
    UnknownAccount,
)
from overt.client.link import LinkApproval, LinkRequest
from overt.client.model import (
    Alarm,
    AlarmKind,
    Conversation,
    Direction,
    FailureReason,
    GroupInfo,
    GroupMemberInfo,
    Message,
    Undecryptable,
)
from overt.client.notices import Notice
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
    "Alarm",
    "AlarmKind",
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
    "EpochNotInLog",
    "FailureReason",
    "Forbidden",
    "Gossip",
    "GroupInfo",
    "GroupMemberInfo",
    "HttpTransport",
    "LinkApproval",
    "LinkRequest",
    "Message",
    "NotFound",
    "NotInLog",
    "Notice",
    "PolicyUnavailable",
    "ProfileStateError",
    "ProfileTooNew",
    "PushChannel",
    "RateLimited",
    "RequestSigner",
    "Response",
    "ServerRefused",
    "ServerUnreachable",
    "SplitView",
    "StaleDevices",
    "StaleGroup",
    "StaleSerial",
    "StoreError",
    "SystemClock",
    "TooLarge",
    "TransparencyUnavailable",
    "Transport",
    "Unauthenticated",
    "Undecryptable",
    "UnknownAccount",
]
