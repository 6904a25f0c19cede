"""The safety stores: verified reports and the moderation queue, account standing, moderators.

Three small Protocols, bundled in :class:`~overt.storage.interfaces.Storage` next to the relay's
stores (``reports``, ``standing``, ``moderators``; ``None`` on a backend without them):

* :class:`ReportStore` — what the report intake and the moderation console share, split along
  the transactions they need: an evidence bundle is stored together with its replay keys and
  its queue item (a report is never stored without being queued, nor queued twice); a
  moderator's action changes an item's state and writes its audit entry together. Metadata
  signals add queue items without evidence. The audit trail is append-only.
* :class:`StandingStore` — warnings and suspensions per account (the relay's authentication
  consults it).
* :class:`ModeratorStore` — the console's accounts: name, role, password hash.

Like every store here they keep opaque values: an evidence bundle, a signal's detail and
password hashes are bytes or text this layer never parses; categories, rules, roles, states
and actions are short labels it only compares. The conventions of
:mod:`overt.storage.interfaces` hold: every call is atomic, ``None`` means absent, an
exception means failure, times come from the caller, records are frozen and their ``repr``
leaves out evidence and hashes. Bounds are in :mod:`overt.storage.limits`; the argument checks
below are shared by every backend so that all refuse the same inputs.

This module knows no SQL, no protocol and no report format.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, Protocol

from overt.errors import LimitExceeded
from overt.storage.errors import InvalidArgument
from overt.storage.limits import (
    ACCOUNT_ID_MAX_LEN,
    AUDIT_PAGE_MAX,
    EVIDENCE_BUNDLE_MAX_LEN,
    INT64_MAX,
    MODERATOR_NAME_MAX_LEN,
    PASSWORD_HASH_MAX_LEN,
    PURGE_BATCH_MAX,
    QUEUE_PAGE_MAX,
    REPLAY_KEY_LEN,
    REPLAY_KEYS_PER_REPORT_MAX,
    REPORT_ID_LEN,
    SAFETY_LABEL_MAX_LEN,
    SAFETY_TEXT_MAX_LEN,
    SEVERITY_MAX,
)

# ----------------------------------------------------------------------------- records


class ItemKind(StrEnum):
    """Where a queue item came from."""

    REPORT = "report"
    SIGNAL = "signal"


class ItemState(StrEnum):
    """Where a queue item stands. ``needs_lead``: a moderator proposed an escalation that a
    lead must approve (or turn down)."""

    OPEN = "open"
    NEEDS_LEAD = "needs_lead"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class NewReport:
    """A verified report to keep: its evidence bundle (opaque), who reported whom, how it is
    classified, until when it is kept, and the replay keys of its messages."""

    report_id: bytes
    bundle: bytes = field(repr=False)
    reporter_account: bytes
    subject_account: bytes
    category: str
    severity: int
    received_ms: int
    retain_until_ms: int
    replay_keys: tuple[bytes, ...] = field(repr=False)


@dataclass(frozen=True, slots=True)
class StoredReport:
    """A stored report; ``bundle`` is ``None`` once purged at the end of retention."""

    report_id: bytes
    bundle: bytes | None = field(repr=False)
    reporter_account: bytes
    subject_account: bytes
    category: str
    severity: int
    received_ms: int
    retain_until_ms: int
    item_id: int


@dataclass(frozen=True, slots=True)
class NewSignal:
    """A metadata signal about an account: which rule fired, how urgent, and an opaque detail
    (counts and windows, never content)."""

    subject_account: bytes
    rule: str
    severity: int
    created_ms: int
    detail: bytes = b""


@dataclass(frozen=True, slots=True)
class QueueItem:
    """One item of the moderation queue. ``label`` is the report's category or the signal's
    rule; ``report_id`` is set for reports, ``detail`` for signals; ``resolution`` is the
    action that last changed the state."""

    id: int
    kind: ItemKind
    subject_account: bytes
    label: str
    severity: int
    created_ms: int
    state: ItemState
    updated_ms: int
    resolution: str | None = None
    report_id: bytes | None = None
    detail: bytes = field(default=b"", repr=False)


@dataclass(frozen=True, slots=True)
class NewAuditEntry:
    """Who did what, when, to which item or account."""

    at_ms: int
    actor: str
    action: str
    item_id: int | None = None
    subject_account: bytes | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at_ms: int
    actor: str
    action: str
    item_id: int | None
    subject_account: bytes | None
    detail: str


@dataclass(frozen=True, slots=True)
class Standing:
    """An account's record with the moderators: warnings so far and whether it is
    suspended, with the reason of the last change."""

    account: bytes
    warnings: int
    suspended: bool
    reason: str
    updated_ms: int


@dataclass(frozen=True, slots=True)
class ModeratorRecord:
    """A console account. ``role`` is a label the console interprets (``moderator``,
    ``lead``); ``password_hash`` is opaque here."""

    name: str
    role: str
    password_hash: str = field(repr=False)
    created_ms: int
    disabled: bool = False


# ----------------------------------------------------------------------------- protocols


class ReportStore(Protocol):
    """Verified reports, their replay keys, the moderation queue and its audit trail."""

    async def add(self, report: NewReport) -> int:
        """Store the report, its replay keys and a new OPEN queue item for it, all or nothing;
        return the item's id. ``AlreadyExists`` (nothing stored) if the report id or any of
        the replay keys is stored already."""
        ...

    async def seen(self, replay_keys: Collection[bytes]) -> frozenset[bytes]:
        """Which of ``replay_keys`` (at most ``REPLAY_KEYS_PER_REPORT_MAX``) are stored."""
        ...

    async def get(self, report_id: bytes) -> StoredReport | None:
        """The report, or ``None``."""
        ...

    async def flag(self, signal: NewSignal) -> int:
        """Add an OPEN queue item for a signal; return its id."""
        ...

    async def item(self, item_id: int) -> QueueItem | None:
        """The queue item, or ``None``."""
        ...

    async def queue(self, states: Collection[ItemState], limit: int) -> tuple[QueueItem, ...]:
        """Up to ``limit`` (at most ``QUEUE_PAGE_MAX``) items in one of ``states``: highest
        severity first, then oldest, then lowest id."""
        ...

    async def act(
        self, item_id: int, expected: ItemState, new: ItemState, entry: NewAuditEntry
    ) -> bool:
        """If the item is in state ``expected``: move it to ``new`` with ``entry.action`` as
        resolution and ``entry.at_ms`` as update time, and append ``entry``, together; return
        True. False (nothing changes) if it is in another state — someone acted first.
        ``NotFound`` if there is no such item."""
        ...

    async def record(self, entry: NewAuditEntry) -> int:
        """Append an audit entry that changes no item (a login, a lifted suspension)."""
        ...

    async def audit(
        self, *, before_id: int | None = None, item_id: int | None = None, limit: int
    ) -> tuple[AuditEntry, ...]:
        """Up to ``limit`` (at most ``AUDIT_PAGE_MAX``) entries, newest first: those with ids
        below ``before_id`` if given, of item ``item_id`` if given. Entries are never changed
        or deleted."""
        ...

    async def purge(self, now: int, limit: int) -> int:
        """Drop the evidence of up to ``limit`` (at most ``PURGE_BATCH_MAX``) reports whose
        ``retain_until_ms`` is at or before ``now``; return how many. The report's record,
        queue item, audit entries and replay keys stay."""
        ...


class StandingStore(Protocol):
    """Warnings and suspensions per account."""

    async def get(self, account: bytes) -> Standing | None:
        """The account's standing, or ``None`` if moderators never acted on it."""
        ...

    async def warn(self, account: bytes, reason: str, now: int) -> Standing:
        """Count one more warning; return the new standing."""
        ...

    async def set_suspended(
        self, account: bytes, suspended: bool, reason: str, now: int
    ) -> Standing:
        """Suspend the account (or lift its suspension); return the new standing."""
        ...


class ModeratorStore(Protocol):
    """The moderation console's accounts."""

    async def add(self, record: ModeratorRecord) -> None:
        """Store a new moderator. ``AlreadyExists`` if the name is taken."""
        ...

    async def get(self, name: str) -> ModeratorRecord | None:
        """The moderator, or ``None``."""
        ...

    async def all(self) -> tuple[ModeratorRecord, ...]:
        """Every moderator by name (at most ``MODERATORS_MAX``)."""
        ...

    async def update(
        self, name: str, *, role: str | None = None, password_hash: str | None = None,
        disabled: bool | None = None,
    ) -> None:  # fmt: skip
        """Change what is given. ``NotFound`` if there is no such moderator."""
        ...


# ----------------------------------------------------------------------------- checks

_LABEL: Final = re.compile(r"[a-z][a-z0-9_]*")
MODERATOR_NAME: Final = re.compile(r"[a-z0-9_.-]+")


def _int(value: int, high: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
        raise InvalidArgument(f"{what} must be an integer in 0..{high}")


def _bytes(value: bytes, n: int, what: str) -> None:
    if not isinstance(value, bytes) or len(value) != n:
        raise InvalidArgument(f"{what} must be {n} bytes")


def check_account(value: bytes) -> None:
    if not isinstance(value, bytes) or not 1 <= len(value) <= ACCOUNT_ID_MAX_LEN:
        raise InvalidArgument(f"an account id must be 1..{ACCOUNT_ID_MAX_LEN} bytes")


def check_label(value: str, what: str) -> None:
    if not isinstance(value, str) or not _LABEL.fullmatch(value):
        raise InvalidArgument(f"{what} must be a lower-case word")
    if len(value) > SAFETY_LABEL_MAX_LEN:
        raise InvalidArgument(f"{what} is longer than {SAFETY_LABEL_MAX_LEN} characters")


def check_text(value: str, what: str) -> None:
    if not isinstance(value, str):
        raise InvalidArgument(f"{what} must be text")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidArgument(f"{what} must be valid Unicode text") from None
    if size > SAFETY_TEXT_MAX_LEN:
        raise LimitExceeded(f"{what} is longer than {SAFETY_TEXT_MAX_LEN} bytes")


def check_time(value: int, what: str = "a time") -> None:
    _int(value, INT64_MAX, what)


def check_id(value: int, what: str = "an item id") -> None:
    _int(value, INT64_MAX, what)


def check_report_id(value: bytes) -> None:
    _bytes(value, REPORT_ID_LEN, "a report id")


def check_replay_keys(keys: Collection[bytes]) -> None:
    if len(keys) > REPLAY_KEYS_PER_REPORT_MAX:
        raise LimitExceeded(f"at most {REPLAY_KEYS_PER_REPORT_MAX} replay keys per call")
    for key in keys:
        _bytes(key, REPLAY_KEY_LEN, "a replay key")


def check_new_report(report: NewReport) -> None:
    if not isinstance(report, NewReport):
        raise InvalidArgument("expected a NewReport")
    check_report_id(report.report_id)
    if not isinstance(report.bundle, bytes) or not report.bundle:
        raise InvalidArgument("an evidence bundle must be non-empty bytes")
    if len(report.bundle) > EVIDENCE_BUNDLE_MAX_LEN:
        raise LimitExceeded(f"an evidence bundle is longer than {EVIDENCE_BUNDLE_MAX_LEN} bytes")
    check_account(report.reporter_account)
    check_account(report.subject_account)
    check_label(report.category, "a category")
    _int(report.severity, SEVERITY_MAX, "a severity")
    check_time(report.received_ms)
    check_time(report.retain_until_ms)
    if not report.replay_keys:
        raise InvalidArgument("a report has at least one replay key")
    check_replay_keys(report.replay_keys)
    if len(set(report.replay_keys)) != len(report.replay_keys):
        raise InvalidArgument("a report names each replay key once")


def check_signal(signal: NewSignal) -> None:
    if not isinstance(signal, NewSignal):
        raise InvalidArgument("expected a NewSignal")
    check_account(signal.subject_account)
    check_label(signal.rule, "a signal rule")
    _int(signal.severity, SEVERITY_MAX, "a severity")
    check_time(signal.created_ms)
    if not isinstance(signal.detail, bytes):
        raise InvalidArgument("a signal's detail must be bytes")
    if len(signal.detail) > SAFETY_TEXT_MAX_LEN:
        raise LimitExceeded(f"a signal's detail is longer than {SAFETY_TEXT_MAX_LEN} bytes")


def check_states(states: Collection[ItemState]) -> tuple[ItemState, ...]:
    out = tuple(sorted({ItemState(s) for s in states}))
    if not out:
        raise InvalidArgument("name at least one queue state")
    return out


def check_page(limit: int, high: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= high:
        raise InvalidArgument(f"a page limit must be an integer in 1..{high}")


def check_queue_page(limit: int) -> None:
    check_page(limit, QUEUE_PAGE_MAX)


def check_audit_page(before_id: int | None, item_id: int | None, limit: int) -> None:
    if before_id is not None:
        check_id(before_id, "an audit id")
    if item_id is not None:
        check_id(item_id)
    check_page(limit, AUDIT_PAGE_MAX)


def check_purge(now: int, limit: int) -> None:
    check_time(now)
    check_page(limit, PURGE_BATCH_MAX)


def check_entry(entry: NewAuditEntry) -> None:
    if not isinstance(entry, NewAuditEntry):
        raise InvalidArgument("expected a NewAuditEntry")
    check_time(entry.at_ms)
    check_moderator_name(entry.actor)
    check_label(entry.action, "an audit action")
    if entry.item_id is not None:
        check_id(entry.item_id)
    if entry.subject_account is not None:
        check_account(entry.subject_account)
    check_text(entry.detail, "an audit detail")


def check_moderator_name(name: str) -> None:
    if (
        not isinstance(name, str)
        or not 1 <= len(name) <= MODERATOR_NAME_MAX_LEN
        or not MODERATOR_NAME.fullmatch(name)
    ):
        raise InvalidArgument(
            f"a moderator name is 1..{MODERATOR_NAME_MAX_LEN} characters of a-z 0-9 _ . -"
        )


def check_password_hash(value: str) -> None:
    if not isinstance(value, str) or not value or not value.isascii():
        raise InvalidArgument("a password hash must be non-empty ASCII text")
    if len(value) > PASSWORD_HASH_MAX_LEN:
        raise LimitExceeded(f"a password hash is longer than {PASSWORD_HASH_MAX_LEN} characters")


def check_moderator(record: ModeratorRecord) -> None:
    if not isinstance(record, ModeratorRecord):
        raise InvalidArgument("expected a ModeratorRecord")
    check_moderator_name(record.name)
    check_label(record.role, "a role")
    check_password_hash(record.password_hash)
    check_time(record.created_ms)
    if not isinstance(record.disabled, bool):
        raise InvalidArgument("'disabled' must be a bool")


def check_standing_change(account: bytes, reason: str, now: int) -> None:
    check_account(account)
    check_text(reason, "a reason")
    check_time(now)


__all__ = [
    "AuditEntry",
    "ItemKind",
    "ItemState",
    "ModeratorRecord",
    "ModeratorStore",
    "NewAuditEntry",
    "NewReport",
    "NewSignal",
    "QueueItem",
    "ReportStore",
    "Standing",
    "StandingStore",
    "StoredReport",
]
