"""The relay server's errors, grafted onto the one tree of :mod:`overt.errors`, and the single
table that turns any Overt error into the documented ``{"error", "message"}`` answer.

Where the server's own classes hang (the storage layer's are drawn in
:mod:`overt.storage.errors`)::

    OvertError
    ├── LocalError                 a bug or misconfiguration here         (500 internal)
    │   └── StorageUnavailable     (storage) busy, locked, full           (503 unavailable)
    └── RemoteError                the request is at fault
        ├── DecodeError            JSON, base64, a binary structure       (400 malformed)
        │   └── Malformed          … as detected by the server
        ├── InvalidMessage         a signature or check failed            (400 invalid)
        ├── Unauthenticated        no, late, replayed or wrong signature  (401)
        ├── Forbidden              authenticated but not allowed          (403)
        ├── RateLimited            too fast; carries retry_after          (429)
        └── ProtocolViolation      well-formed but not acceptable         (400 invalid)
            ├── Mismatch           an envelope does not fit the request   (400 mismatch)
            ├── LimitExceeded      a named bound                          (413 too_large)
            │   └── TooLarge       … of overt.server.limits
            ├── NotFound           (storage) no such account, blob        (404 not_found)
            ├── NotYetPublished    not in a published checkpoint yet;     (404 not_found,
            │                      carries retry_after                     Retry-After)
            └── StorageConflict    (storage)                              (409)
                ├── AlreadyExists  (storage)                              (409 exists)
                ├── StaleSerial    (storage)                              (409 stale_serial)
                ├── StaleDevices   recipients are not the current set     (409 stale_devices)
                └── ConflictWithState  a conflict answered with the       (409, its code)
                                   current state (e.g. ``stale_group``)

The HTTP status is always the class's ``status_hint``; :func:`describe` picks the ``error``
code and the message. Messages of remote errors say what went wrong and what to do and never
carry keys, envelopes or signatures; local errors are answered with a generic message (the log
line has the detail).

This module knows no web framework, no storage backend and no protocol.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from overt.errors import (
    DecodeError,
    InvalidMessage,
    LimitExceeded,
    LocalError,
    OvertError,
    ProtocolViolation,
    RemoteError,
)
from overt.storage.errors import AlreadyExists, NotFound, StaleSerial, StorageConflict

JsonValue = None | bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"]


class Malformed(DecodeError):
    """A request whose JSON, base64, query or header syntax is wrong."""

    code = "malformed"


class Unauthenticated(RemoteError):
    """Missing, expired, replayed or wrong request signature, or an unknown device."""

    status_hint = 401
    code = "unauthenticated"


class Forbidden(RemoteError):
    """The authenticated device may not do this (e.g. change another account)."""

    status_hint = 403
    code = "forbidden"


class RateLimited(RemoteError):
    """The device exceeded its request rate; retry after ``retry_after`` seconds."""

    status_hint = 429
    code = "rate_limited"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)


class NotYetPublished(ProtocolViolation):
    """What was asked for is not (yet) covered by a published checkpoint: the log grew, or
    the witnesses have not cosigned yet. Retry after ``retry_after`` seconds."""

    status_hint = 404
    code = "not_found"

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)


class Mismatch(ProtocolViolation):
    """An envelope does not fit the request that carries it (sender, recipient, count)."""

    code = "mismatch"


class TooLarge(LimitExceeded):
    """A request breaches a bound of :mod:`overt.server.limits`."""

    code = "too_large"


@dataclass(frozen=True, slots=True)
class CurrentDevices:
    """An account's current device set, as returned in a ``stale_devices`` answer."""

    serial: int
    devices: tuple[int, ...]
    signed_device_list: str  # base64url, ready for the JSON body


class StaleDevices(StorageConflict):
    """The recipients of a send are not the accounts' current devices."""

    code = "stale_devices"

    def __init__(self, accounts: Mapping[str, CurrentDevices]) -> None:
        super().__init__(
            "the device set of some recipient account changed: start sessions with the devices "
            "listed in 'accounts' (and drop the others), then send again"
        )
        self.accounts = dict(accounts)


class ConflictWithState(StorageConflict):
    """A conflict whose answer carries the current state, so that the client can catch up
    without another request: ``details`` are added to the JSON body next to ``error`` and
    ``message`` (subclasses set ``code``)."""

    def __init__(self, message: str, details: Mapping[str, JsonValue]) -> None:
        super().__init__(message)
        self.details = dict(details)


_CODES: Final[tuple[tuple[type[OvertError], str], ...]] = (
    (StaleSerial, "stale_serial"),
    (AlreadyExists, "exists"),
    (LimitExceeded, "too_large"),
    (NotFound, "not_found"),
    (DecodeError, "malformed"),
)
"""Codes of classes from outside this module, most specific first."""

_BY_STATUS: Final[Mapping[int, str]] = {
    400: "invalid",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    413: "too_large",
    429: "rate_limited",
    503: "unavailable",
}

_INTERNAL_MESSAGE: Final = "the server failed to handle this request; try again later"
_INVALID_MESSAGE: Final = (
    "a signature or check did not verify: sign with the key the account's device list names"
)
_UNAVAILABLE_MESSAGE: Final = "the server's storage is busy; try again in a moment"


@dataclass(frozen=True, slots=True)
class ErrorAnswer:
    """What the edge sends for an error: status, JSON body and extra headers."""

    status: int
    body: dict[str, JsonValue]
    headers: dict[str, str]

    @property
    def internal(self) -> bool:
        """A 5xx that deserves a log line with the cause."""
        return self.status >= 500


def describe(exc: OvertError) -> ErrorAnswer:
    """The documented answer to ``exc``: status from ``status_hint``, a code, a message."""
    status = exc.status_hint
    if isinstance(exc, LocalError):
        if status == 503:
            return ErrorAnswer(
                503,
                {"error": "unavailable", "message": _UNAVAILABLE_MESSAGE},
                {"Retry-After": "1"},
            )
        return ErrorAnswer(500, {"error": "internal", "message": _INTERNAL_MESSAGE}, {})
    code: str | None = getattr(exc, "code", None)
    if code is None:
        code = next((c for cls, c in _CODES if isinstance(exc, cls)), None)
    if code is None:
        code = _BY_STATUS.get(status, "invalid")
    if isinstance(exc, InvalidMessage):
        message = _INVALID_MESSAGE
    else:
        message = str(exc) or "the request is not acceptable"
    body: dict[str, JsonValue] = {"error": code, "message": message}
    headers: dict[str, str] = {}
    if isinstance(exc, StaleDevices):
        body["accounts"] = {
            account: {
                "serial": current.serial,
                "devices": list(current.devices),
                "signed_device_list": current.signed_device_list,
            }
            for account, current in exc.accounts.items()
        }
    if isinstance(exc, ConflictWithState):
        body.update({k: v for k, v in exc.details.items() if k not in body})
    if isinstance(exc, RateLimited | NotYetPublished):
        headers["Retry-After"] = str(exc.retry_after)
    return ErrorAnswer(status, body, headers)


def internal_answer() -> ErrorAnswer:
    """The answer to an exception that is not an :class:`OvertError` (a bug)."""
    return ErrorAnswer(500, {"error": "internal", "message": _INTERNAL_MESSAGE}, {})


def plain_answer(status: int, code: str, message: str) -> ErrorAnswer:
    """An answer the framework itself produces (unknown route, wrong method)."""
    return ErrorAnswer(status, {"error": code, "message": message}, {})
