"""The errors of :mod:`overt.safety.matching`, on the one tree of :mod:`overt.errors`::

    OvertError
    └── RemoteError
        ├── DecodeError
        │   └── ListImportError   a list file line is malformed (says which line)      (400)
        ├── InvalidMessage         a voucher, table slot, proof or payload did not open —
        │                          without a reason, as everywhere                      (400)
        └── ProtocolViolation
            └── ListRefused        a table or list commitment the client will not use;
                                   carries a RefusalReason and a sentence for the user (400)

Bad parameters passed by the caller are :class:`overt.errors.LocalError`.
"""

from __future__ import annotations

from enum import StrEnum

from overt.errors import DecodeError, ProtocolViolation


class RefusalReason(StrEnum):
    """Why a client refuses to match against a list (it then does not scan at all)."""

    MATCHING_OFF = "matching-off"
    TOO_FEW_SIGNERS = "too-few-signers"
    TABLE_MISMATCH = "table-mismatch"
    PARAMETERS = "parameters"
    ROLLBACK = "rollback"
    INVALID_TABLE = "invalid-table"


class ListRefused(ProtocolViolation):
    """The client will not scan against this list; ``reason`` and the message say why."""

    def __init__(self, reason: RefusalReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class ListImportError(DecodeError):
    """Line ``line`` (1-based) of a list file is not in the expected format."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"list line {line}: {message}")
        self.line = line
