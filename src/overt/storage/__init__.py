"""The relay server's storage: small stores of opaque bytes behind narrow async interfaces.

One Protocol per kind of thing — :class:`AccountStore`, :class:`PrekeyStore`,
:class:`MailboxStore`, :class:`BlobStore` — bundled in a :class:`Storage` by a backend factory:
:func:`open_sqlite` (the embedded default) or :func:`open_memory` (the reference). Every backend
passes the same contract suite, ``tests/storage/test_contract.py``. :mod:`overt.storage.pubsub`
carries wake-ups between server tasks (and, later, nodes).

What this layer must not know: how anything it stores is encoded, signed or encrypted. It never
imports :mod:`overt.protocol`, :mod:`overt.server` or :mod:`overt.client`, never reads a clock
and never draws randomness; times and ids come from callers. ``None`` means absent, an
exception (from :mod:`overt.storage.errors`) means failure.
"""

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
    Mail,
    MailboxStore,
    NewMail,
    OneTimeKind,
    PrekeyRecord,
    PrekeyStore,
    ReportingTagger,
    Storage,
)
from overt.storage.limits import StorageLimits
from overt.storage.memory import open_memory
from overt.storage.pubsub import InProcessPubSub, PubSub, Subscription
from overt.storage.sqlite import open_sqlite

__all__ = [
    "AccountRecord",
    "AccountStore",
    "AlreadyExists",
    "BlobStore",
    "DeviceAuth",
    "InProcessPubSub",
    "InvalidArgument",
    "Mail",
    "MailboxStore",
    "NewMail",
    "NotFound",
    "OneTimeKind",
    "PrekeyRecord",
    "PrekeyStore",
    "PubSub",
    "ReportingTagger",
    "StaleSerial",
    "Storage",
    "StorageConflict",
    "StorageError",
    "StorageLimits",
    "StorageUnavailable",
    "Subscription",
    "open_memory",
    "open_sqlite",
]
