"""The client library's errors, grafted onto the one tree of :mod:`overt.errors`.

Every message says what went wrong and what to do. Where each class hangs::

    OvertError
    ├── LocalError
    │   ├── StoreError                the local database failed (disk full, permissions,
    │   │                             a corrupt file)                                  (500)
    │   ├── ConfigurationError
    │   │   ├── ProfileTooNew         the profile was written by a newer client       (500)
    │   │   └── PolicyUnavailable     the manifest's access policy needs keys this
    │   │                             client does not have (escrow epoch key)         (500)
    │   └── ProfileStateError         the call does not fit this profile's state: no account
    │                                 yet, already registered, no account key here     (500)
    └── RemoteError
        ├── ServerUnreachable         no answer: refused, reset, timed out             (503)
        ├── ServerRefused             the server answered an error: ``status``, ``code``
        │   │                         and its ``message`` (what to do)            (its status)
        │   ├── Unauthenticated       401 unauthenticated
        │   ├── Forbidden             403 forbidden
        │   ├── NotFound              404 not_found
        │   │   └── UnknownAccount    no account of that name
        │   ├── Conflict              409
        │   │   ├── AccountExists     exists
        │   │   ├── StaleDevices      stale_devices (``details`` holds the fresh lists)
    │   │   ├── StaleGroup        stale_group (``details`` holds the group's current view)
        │   │   └── StaleSerial       stale_serial
        │   ├── TooLarge              413 too_large
        │   └── RateLimited           429 rate_limited (``retry_after`` seconds)
        ├── DecodeError
        │   └── BadResponse           an answer that does not fit docs/api.md          (502)
        ├── InvalidMessage
        │   └── AttachmentRejected    a downloaded attachment is not what was sent
        └── ProtocolViolation
            ├── UntrustedIdentity     (from overt.errors) a peer's account key changed
            │   └── NotInLog          a device list the server gave is not provably in the
            │       │                 transparency log: the peer is refused            (409)
            │       ├── SplitView     the log's checkpoints do not extend each other (a fork,
            │       │                 or a server that refuses to prove they do); an alarm is
            │       │                 recorded                                         (409)
            │       └── EpochNotInLog an escrow-epoch key the server gave is not provably the
            │                         logged key of the manifest's custodians           (409)
            └── TransparencyUnavailable  the server stopped publishing the manifest or log
                                      this profile follows                             (502)

Foreign exceptions (``httpx``, ``websockets``, ``sqlite3``) are mapped where they occur, with
``raise ... from``. No message carries a body, a key or a ciphertext.
"""

from __future__ import annotations

from collections.abc import Mapping

from overt.errors import (
    ConfigurationError,
    DecodeError,
    InvalidMessage,
    LocalError,
    ProtocolViolation,
    RemoteError,
    UntrustedIdentity,
)


class StoreError(LocalError):
    """The local database could not be read or written."""


class ProfileTooNew(ConfigurationError):
    """The profile's schema is newer than this client knows."""


class ProfileStateError(LocalError):
    """The call does not fit the profile's state (e.g. sending before creating an account)."""


class ServerUnreachable(RemoteError):
    """The server could not be reached or stopped answering."""

    status_hint = 503


class ServerRefused(RemoteError):
    """The server answered with an error.

    ``message`` is the server's explanation of what went wrong and what to do; ``code`` its
    machine-readable ``error`` field; ``details`` the whole JSON error body.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: Mapping[str, object] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{message} (server answered {status} {code})")
        self.status = status
        self.status_hint = status
        self.code = code
        self.message = message
        self.details: Mapping[str, object] = details or {}
        self.retry_after = retry_after


class Unauthenticated(ServerRefused):
    """401: the request signature was missing, expired, replayed or wrong."""


class Forbidden(ServerRefused):
    """403: authenticated, but not allowed."""


class NotFound(ServerRefused):
    """404: no such account, device or attachment."""


class UnknownAccount(NotFound):
    """No account of the given name exists on this server."""


class Conflict(ServerRefused):
    """409: the request conflicts with the server's state."""


class AccountExists(Conflict):
    """409 exists: the account name is taken."""


class StaleDevices(Conflict):
    """409 stale_devices: the device lists used for a send are out of date."""


class StaleGroup(Conflict):
    """409 stale_group: a group change or message was made on an old view of the group;
    ``details["group"]`` is the server's current view."""


class StaleSerial(Conflict):
    """409 stale_serial: the account's device list changed meanwhile."""


class TooLarge(ServerRefused):
    """413: a body, attachment or mailbox is over the server's bound."""


class RateLimited(ServerRefused):
    """429: too many requests; ``retry_after`` says how many seconds to wait."""


class BadResponse(DecodeError):
    """The server's answer does not fit the API contract (docs/api.md)."""

    status_hint = 502


class AttachmentRejected(InvalidMessage):
    """A downloaded attachment does not match the pointer in its message.

    Which check failed (ciphertext hash, key commitment, tag, plaintext hash or size) is not
    said, on purpose.
    """

    def __init__(self) -> None:
        RemoteError.__init__(
            self,
            "the attachment does not match what the sender sent (altered or damaged in "
            "transit or storage); ask the sender to send it again",
        )


class NotInLog(UntrustedIdentity):
    """The server could not prove that a device list is in the transparency log: no
    key-directory entry for it under a checkpoint the witnesses cosigned, or a proof that does
    not verify. Nothing is encrypted to, or shown from, devices of that list."""


class SplitView(NotInLog):
    """Two checkpoints of the log cannot both be true: a checkpoint the server shows does not
    extend the one this device saw before (or one a peer saw), or the server will not prove
    that it does. The server may be showing different people different logs; an alarm with
    both checkpoints is recorded (:meth:`overt.client.Client.alarms`)."""


class EpochNotInLog(NotInLog):
    """The server could not prove that an escrow-epoch key is in the transparency log (no
    inclusion proof under a cosigned checkpoint, or one that does not verify), or the logged
    key is not the one the manifest's custodians made together (its DKG transcript does not
    match). Nothing is encrypted to it, and no message naming it is shown."""


class TransparencyUnavailable(ProtocolViolation):
    """The server does not publish the deployment manifest or the transparency log that this
    profile follows (or that the caller required with a provider key)."""

    status_hint = 502


class PolicyUnavailable(ConfigurationError):
    """The manifest's access policy needs what this client does not have (escrow: a live
    epoch key, which the transparency log does not hold yet)."""


#: ``error`` codes of docs/api.md and the class each maps to; unknown codes fall back on the
#: class of their status, then on :class:`ServerRefused`.
BY_CODE: Mapping[str, type[ServerRefused]] = {
    "unauthenticated": Unauthenticated,
    "forbidden": Forbidden,
    "not_found": NotFound,
    "exists": AccountExists,
    "stale_devices": StaleDevices,
    "stale_group": StaleGroup,
    "stale_serial": StaleSerial,
    "too_large": TooLarge,
    "rate_limited": RateLimited,
}

#: The HTTP status of each ``error`` code (for errors that arrive without one: push frames).
STATUS_OF_CODE: Mapping[str, int] = {
    "malformed": 400,
    "invalid": 400,
    "mismatch": 400,
    "unauthenticated": 401,
    "forbidden": 403,
    "not_found": 404,
    "exists": 409,
    "stale_devices": 409,
    "stale_group": 409,
    "stale_serial": 409,
    "too_large": 413,
    "rate_limited": 429,
}

BY_STATUS: Mapping[int, type[ServerRefused]] = {
    401: Unauthenticated,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: TooLarge,
    429: RateLimited,
}

__all__ = [
    "AccountExists",
    "AttachmentRejected",
    "BadResponse",
    "Conflict",
    "EpochNotInLog",
    "Forbidden",
    "NotFound",
    "NotInLog",
    "PolicyUnavailable",
    "ProfileStateError",
    "ProfileTooNew",
    "RateLimited",
    "ServerRefused",
    "ServerUnreachable",
    "SplitView",
    "StaleDevices",
    "StaleGroup",
    "StaleSerial",
    "StoreError",
    "TooLarge",
    "TransparencyUnavailable",
    "Unauthenticated",
    "UnknownAccount",
]
