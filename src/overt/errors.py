"""The one exception tree of Overt.

Every error Overt raises is an :class:`OvertError`. The tree separates *who* is at fault,
as h11 does: a :class:`LocalError` means this process misused an API (a programming or
configuration error); a :class:`RemoteError` means bytes that came from elsewhere are
unacceptable. Each class carries an HTTP status hint so that the server can map it at the
edge without a table of its own::

    OvertError
    ├── LocalError                    misuse of the API by the caller             (500)
    │   └── ConfigurationError        bad settings, missing keys, unknown policy  (500)
    └── RemoteError                   the peer or the input is at fault           (400)
        ├── DecodeError               bytes that are not a canonical encoding     (400)
        ├── InvalidMessage            a ciphertext, tag, signature or proof failed (400)
        │                             — always without a reason, on purpose
        ├── ProtocolViolation         well-formed but not acceptable now          (400)
        │   ├── DuplicateMessage      a message or PQXDH initial message seen before (409)
        │   ├── LimitExceeded         a named bound of overt.protocol.limits      (413)
        │   ├── UnknownSession        no session and no prekey matches            (404)
        │   └── UntrustedIdentity     a peer's identity key differs from the pinned one (409)
        └── PolicyViolation           the access policy is not met (missing or wrong
                                      access field)                               (400)

Foreign exceptions (``cryptography``'s ``InvalidTag``, ``InvalidSignature``, ``ValueError`` from
key parsing, ``sqlite3`` errors, ``httpx`` errors) are mapped at the edge where they occur with
``raise ... from``; they never escape a public Overt API.

:class:`InvalidMessage` is deliberately uninformative: whether a tag, a signature, a key
commitment, a franking commitment or a DLEQ proof failed, the caller learns only that the input
is invalid. That keeps decryption and verification free of oracles.
"""

from __future__ import annotations


class OvertError(Exception):
    """Base of every error Overt raises."""

    status_hint: int = 500


class LocalError(OvertError):
    """The caller misused an API: a bug or a misconfiguration on this side."""

    status_hint = 500


class ConfigurationError(LocalError):
    """Settings, keys or policy are missing or inconsistent."""


class RemoteError(OvertError):
    """Input that came from elsewhere (a peer, a server, a file) is unacceptable."""

    status_hint = 400


class DecodeError(RemoteError):
    """Bytes are not a canonical, well-formed encoding of the expected structure."""


class InvalidMessage(RemoteError):
    """A ciphertext, tag, signature, commitment or proof did not verify.

    Raised without a reason string, whatever the cause, on purpose.
    """

    def __init__(self) -> None:
        super().__init__("invalid message")


class ProtocolViolation(RemoteError):
    """A well-formed input that the protocol does not accept in the current state."""


class DuplicateMessage(ProtocolViolation):
    """A message (or PQXDH initial message) that was already processed."""

    status_hint = 409


class LimitExceeded(ProtocolViolation):
    """An input that would exceed one of the named bounds."""

    status_hint = 413


class UnknownSession(ProtocolViolation):
    """No session, prekey or chain matches the input."""

    status_hint = 404


class UntrustedIdentity(ProtocolViolation):
    """A peer presented an identity key different from the one already trusted."""

    status_hint = 409


class PolicyViolation(RemoteError):
    """The deployment's access policy is not met by a message (missing or wrong access field)."""
