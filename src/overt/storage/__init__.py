"""The relay server's storage: small stores of opaque bytes behind narrow async interfaces.

One Protocol per kind of thing — :class:`AccountStore`, :class:`PrekeyStore`,
:class:`MailboxStore`, :class:`BlobStore`, :class:`LogStore` (the transparency log's leaves,
subtree hashes and checkpoints), :class:`KtStore` (the key directory's records) — bundled in a
:class:`Storage` by a backend factory: :func:`open_sqlite` (the embedded default) or
:func:`open_memory` (the reference). Every backend passes the same contract suite,
``tests/storage/test_contract.py``. :mod:`overt.storage.pubsub` carries wake-ups between server
tasks (and, later, nodes).

What this layer must not know: how anything it stores is encoded, signed, hashed or encrypted.
It never imports :mod:`overt.protocol`, :mod:`overt.transparency`, :mod:`overt.server` or
:mod:`overt.client`, never reads a clock and never draws randomness; times and ids come from
callers. ``None`` means absent, an exception (from :mod:`overt.storage.errors`) means failure.
"""

from importlib import import_module
from typing import TYPE_CHECKING

from overt.storage.errors import (
    AlreadyExists,
    InvalidArgument,
    NotFound,
    StaleSerial,
    StorageConflict,
    StorageError,
    StorageUnavailable,
)
from overt.storage.interfaces import (
    AccountRecord,
    AccountStore,
    BlobStore,
    DeviceAuth,
    KtRecord,
    KtStore,
    LogLeaf,
    LogNode,
    LogStore,
    Mail,
    MailboxStore,
    MailKind,
    NewMail,
    OneTimeKind,
    PrekeyRecord,
    PrekeyStore,
    ReportingTagger,
    Storage,
    StoredCheckpoint,
)
from overt.storage.limits import StorageLimits
from overt.storage.memory import open_memory
from overt.storage.pubsub import InProcessPubSub, PubSub, Subscription
from overt.storage.sqlite import open_sqlite

if TYPE_CHECKING:
    from overt.storage.postgres import open_postgres
    from overt.storage.redis_pubsub import RedisPubSub

__all__ = [
    "AccountRecord",
    "AccountStore",
    "AlreadyExists",
    "BlobStore",
    "DeviceAuth",
    "InProcessPubSub",
    "InvalidArgument",
    "KtRecord",
    "KtStore",
    "LogLeaf",
    "LogNode",
    "LogStore",
    "Mail",
    "MailKind",
    "MailboxStore",
    "NewMail",
    "NotFound",
    "OneTimeKind",
    "PrekeyRecord",
    "PrekeyStore",
    "PubSub",
    "RedisPubSub",
    "ReportingTagger",
    "StaleSerial",
    "Storage",
    "StorageConflict",
    "StorageError",
    "StorageLimits",
    "StorageUnavailable",
    "StoredCheckpoint",
    "Subscription",
    "open_memory",
    "open_postgres",
    "open_sqlite",
]

# The multi-node backends load asyncpg and redis (about 0.15 s) only when first named, so that
# importing overt.storage stays cheap for the client, the CLI and single-node servers.
_LAZY = {"open_postgres": "overt.storage.postgres", "RedisPubSub": "overt.storage.redis_pubsub"}


def __getattr__(name: str) -> object:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
