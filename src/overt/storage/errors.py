"""The storage layer's errors, grafted onto the one tree of :mod:`overt.errors`.

"None means absent, an exception means failure": a lookup that finds nothing returns ``None``;
everything below is raised. Where each class hangs, with its HTTP status hint::

    OvertError
    ├── LocalError
    │   ├── StorageError              the store failed (SQLite error, corrupt file,
    │   │   │                         schema newer than this build)                (500)
    │   │   └── StorageUnavailable    busy, locked, disk full, I/O error, closed;
    │   │                             retrying later may succeed                   (503)
    │   └── InvalidArgument           a value the storage contract forbids (device id out
    │                                 of range, blob id of the wrong length, limit < 1);
    │                                 the caller should have validated it          (500)
    └── RemoteError
        └── ProtocolViolation
            ├── LimitExceeded         (from overt.errors) a named bound of
            │                         overt.storage.limits; nothing was stored     (413)
            ├── StorageConflict       the request conflicts with what is stored    (409)
            │   ├── AlreadyExists     account id, prekey id or blob id taken
            │   └── StaleSerial       device-list compare-and-swap lost
            └── NotFound              a mutation names an account that does not exist (404)

Foreign exceptions (``sqlite3.Error`` and, later, ``asyncpg`` and ``redis`` errors) are mapped
to :class:`StorageError` or :class:`StorageUnavailable` at the backend's edge with
``raise ... from``; they never escape a store. Messages name the operation and never carry
stored bytes, keys or account ids.

This module knows nothing of SQL, envelopes or the protocol.
"""

from __future__ import annotations

from overt.errors import LocalError, ProtocolViolation


class StorageError(LocalError):
    """The store could not do what was asked: a failure on this side, not the caller's input."""

    status_hint = 500


class StorageUnavailable(StorageError):
    """The store is busy, locked, full, failing I/O or closed; retrying later may succeed."""

    status_hint = 503


class InvalidArgument(LocalError):
    """A value outside the storage contract (ranges, id lengths); the caller should validate."""

    status_hint = 500


class StorageConflict(ProtocolViolation):
    """The request conflicts with the stored state; nothing was changed."""

    status_hint = 409


class AlreadyExists(StorageConflict):
    """An account id, prekey id or blob id that is already stored."""


class StaleSerial(StorageConflict):
    """A device-list compare-and-swap whose expected serial is not the stored one, or whose
    new serial does not advance it."""


class NotFound(ProtocolViolation):
    """A mutation names something that does not exist (lookups return ``None`` instead)."""

    status_hint = 404
