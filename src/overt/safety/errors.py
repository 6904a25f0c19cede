"""The errors of :mod:`overt.safety`, grafted onto the one tree of :mod:`overt.errors`.

Where they hang::

    OvertError
    ├── LocalError
    │   ├── EscalationInvalid          Overt built a CyberTipline document its own XSD refuses,
    │   │                              or an escalation record is inconsistent            (500)
    │   └── SubmissionStateError       a step asked of a submission in the wrong state    (500)
    └── RemoteError
        ├── DecodeError                a report, bundle or API answer is not well formed  (400)
        ├── InvalidMessage
        │   └── InvalidReportedMessage one reported message failed a cryptographic check:
        │                              says WHICH message, never why                      (400)
        ├── ProtocolViolation
        │   ├── ReportRefused          well-formed and authentic but not acceptable: another
        │   │                          reporter, a message that reached someone else, a
        │   │                          message from the future, a reveal without pointer  (400)
        │   ├── DuplicateMessage
        │   │   └── AlreadyReported    a message this account has already reported        (409)
        │   └── LimitExceeded          a bound of overt.safety.limits                     (413)
        ├── BundleMismatch             an evidence bundle's report or recorded result was
        │                              altered (says which)                               (400)
        ├── CyberTipRejected           the CyberTipline API answered with a non-zero
        │                              responseCode (carries it)                          (502)
        └── CyberTipUnavailable        5xx answers or connection errors past every retry  (503)

Messages name the reported message by its 1-based position in the report, so a moderator or a
reporter's client can tell which one to look at; :class:`InvalidReportedMessage` says no more
than that (a failed commitment, tag, key commitment or attachment hash all read the same).
"""

from __future__ import annotations

from overt.errors import (
    DuplicateMessage,
    InvalidMessage,
    LocalError,
    ProtocolViolation,
    RemoteError,
)


class InvalidReportedMessage(InvalidMessage):
    """Reported message ``index`` (1-based) failed a cryptographic check, for no stated reason."""

    def __init__(self, index: int) -> None:
        RemoteError.__init__(self, f"reported message {index}: invalid message")
        self.index = index


class ReportRefused(ProtocolViolation):
    """A well-formed report that is not acceptable from this reporter (see the message)."""

    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(message if index is None else f"reported message {index}: {message}")
        self.index = index


class AlreadyReported(DuplicateMessage):
    """Reported message ``index`` was reported before by the same account (or twice in one
    report)."""

    def __init__(
        self, index: int, detail: str = "this account has already reported this message"
    ) -> None:
        super().__init__(f"reported message {index}: {detail}")
        self.index = index


class EscalationInvalid(LocalError):
    """An escalation record cannot be turned into a document Overt's XSD accepts."""


class SubmissionStateError(LocalError):
    """A CyberTipline step was asked of a submission that is not in a state allowing it."""


class CyberTipRejected(RemoteError):
    """The CyberTipline API refused a request (a non-zero ``responseCode``); not retried."""

    status_hint = 502

    def __init__(self, step: str, response_code: int, description: str) -> None:
        super().__init__(
            f"CyberTipline {step}: refused with responseCode {response_code} ({description})"
        )
        self.step = step
        self.response_code = response_code
        self.description = description


class CyberTipUnavailable(RemoteError):
    """The CyberTipline API kept failing (5xx or connection errors) past every retry."""

    status_hint = 503

    def __init__(self, step: str, attempts: int, last: str) -> None:
        super().__init__(
            f"CyberTipline {step}: still failing after {attempts} attempts (last: {last}); "
            "the submission state is kept, run it again to resume"
        )
        self.step = step
        self.attempts = attempts


class BundleMismatch(RemoteError):
    """An evidence bundle does not match itself: its report's hash or its recorded verification
    result differs from what re-verification finds (the bundle was altered or damaged)."""
