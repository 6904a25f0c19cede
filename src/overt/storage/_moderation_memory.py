"""The in-memory reference of the safety stores (:mod:`overt.storage.moderation`).

Plain dicts on one event loop, nothing durable; each call runs to its end without awaiting, so
it is atomic by construction. ``check_open`` is the owning :class:`Storage`'s lifetime check
(every call after close raises ``StorageUnavailable``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import replace

from overt.storage import moderation as mod
from overt.storage.errors import AlreadyExists, NotFound
from overt.storage.limits import MODERATORS_MAX
from overt.storage.moderation import (
    AuditEntry,
    ItemKind,
    ItemState,
    ModeratorRecord,
    NewAuditEntry,
    NewReport,
    NewSignal,
    QueueItem,
    Standing,
    StoredReport,
)


class MemoryReportStore:
    """:class:`~overt.storage.moderation.ReportStore` in dicts."""

    def __init__(self, check_open: Callable[[], None]) -> None:
        self._check = check_open
        self._reports: dict[bytes, StoredReport] = {}
        self._replay: set[bytes] = set()
        self._items: dict[int, QueueItem] = {}
        self._audit: list[AuditEntry] = []

    def _new_item_id(self) -> int:
        return len(self._items) + 1

    async def add(self, report: NewReport) -> int:
        self._check()
        mod.check_new_report(report)
        if report.report_id in self._reports or self._replay.intersection(report.replay_keys):
            raise AlreadyExists("this report, or a message in it, is stored already")
        item_id = self._new_item_id()
        self._items[item_id] = QueueItem(
            item_id, ItemKind.REPORT, report.subject_account, report.category, report.severity,
            report.received_ms, ItemState.OPEN, report.received_ms, None, report.report_id,
        )  # fmt: skip
        self._reports[report.report_id] = StoredReport(
            report.report_id, report.bundle, report.reporter_account, report.subject_account,
            report.category, report.severity, report.received_ms, report.retain_until_ms, item_id,
        )  # fmt: skip
        self._replay.update(report.replay_keys)
        return item_id

    async def seen(self, replay_keys: Collection[bytes]) -> frozenset[bytes]:
        self._check()
        mod.check_replay_keys(replay_keys)
        return frozenset(k for k in replay_keys if k in self._replay)

    async def get(self, report_id: bytes) -> StoredReport | None:
        self._check()
        mod.check_report_id(report_id)
        return self._reports.get(report_id)

    async def flag(self, signal: NewSignal) -> int:
        self._check()
        mod.check_signal(signal)
        item_id = self._new_item_id()
        self._items[item_id] = QueueItem(
            item_id, ItemKind.SIGNAL, signal.subject_account, signal.rule, signal.severity,
            signal.created_ms, ItemState.OPEN, signal.created_ms, None, None, signal.detail,
        )  # fmt: skip
        return item_id

    async def item(self, item_id: int) -> QueueItem | None:
        self._check()
        mod.check_id(item_id)
        return self._items.get(item_id)

    async def queue(self, states: Collection[ItemState], limit: int) -> tuple[QueueItem, ...]:
        self._check()
        wanted = set(mod.check_states(states))
        mod.check_queue_page(limit)
        found = [i for i in self._items.values() if i.state in wanted]
        found.sort(key=lambda i: (-i.severity, i.created_ms, i.id))
        return tuple(found[:limit])

    async def act(
        self, item_id: int, expected: ItemState, new: ItemState, entry: NewAuditEntry
    ) -> bool:
        self._check()
        mod.check_id(item_id)
        mod.check_entry(entry)
        current = self._items.get(item_id)
        if current is None:
            raise NotFound("no such queue item")
        if current.state is not ItemState(expected):
            return False
        self._items[item_id] = replace(
            current, state=ItemState(new), updated_ms=entry.at_ms, resolution=entry.action
        )
        self._append(entry)
        return True

    def _append(self, entry: NewAuditEntry) -> int:
        entry_id = len(self._audit) + 1
        e = entry
        self._audit.append(
            AuditEntry(entry_id, e.at_ms, e.actor, e.action, e.item_id, e.subject_account, e.detail)
        )
        return entry_id

    async def record(self, entry: NewAuditEntry) -> int:
        self._check()
        mod.check_entry(entry)
        return self._append(entry)

    async def audit(
        self, *, before_id: int | None = None, item_id: int | None = None, limit: int
    ) -> tuple[AuditEntry, ...]:
        self._check()
        mod.check_audit_page(before_id, item_id, limit)
        out = []
        for e in reversed(self._audit):
            if before_id is not None and e.id >= before_id:
                continue
            if item_id is not None and e.item_id != item_id:
                continue
            out.append(e)
            if len(out) == limit:
                break
        return tuple(out)

    async def purge(self, now: int, limit: int) -> int:
        self._check()
        mod.check_purge(now, limit)
        kept = (r for r in self._reports.values() if r.bundle is not None)
        due = sorted(
            (r for r in kept if r.retain_until_ms <= now),
            key=lambda r: (r.retain_until_ms, r.report_id),
        )[:limit]
        for r in due:
            self._reports[r.report_id] = replace(r, bundle=None)
        return len(due)


class MemoryStandingStore:
    """:class:`~overt.storage.moderation.StandingStore` in a dict."""

    def __init__(self, check_open: Callable[[], None]) -> None:
        self._check = check_open
        self._standing: dict[bytes, Standing] = {}

    async def get(self, account: bytes) -> Standing | None:
        self._check()
        mod.check_account(account)
        return self._standing.get(account)

    def _current(self, account: bytes) -> Standing:
        return self._standing.get(account) or Standing(account, 0, False, "", 0)

    async def warn(self, account: bytes, reason: str, now: int) -> Standing:
        self._check()
        mod.check_standing_change(account, reason, now)
        current = self._current(account)
        new = replace(current, warnings=current.warnings + 1, reason=reason, updated_ms=now)
        self._standing[account] = new
        return new

    async def set_suspended(
        self, account: bytes, suspended: bool, reason: str, now: int
    ) -> Standing:
        self._check()
        mod.check_standing_change(account, reason, now)
        new = replace(self._current(account), suspended=bool(suspended), reason=reason,
                      updated_ms=now)  # fmt: skip
        self._standing[account] = new
        return new


class MemoryModeratorStore:
    """:class:`~overt.storage.moderation.ModeratorStore` in a dict."""

    def __init__(self, check_open: Callable[[], None]) -> None:
        self._check = check_open
        self._moderators: dict[str, ModeratorRecord] = {}

    async def add(self, record: ModeratorRecord) -> None:
        self._check()
        mod.check_moderator(record)
        if record.name in self._moderators:
            raise AlreadyExists("a moderator of this name exists")
        self._moderators[record.name] = record

    async def get(self, name: str) -> ModeratorRecord | None:
        self._check()
        mod.check_moderator_name(name)
        return self._moderators.get(name)

    async def all(self) -> tuple[ModeratorRecord, ...]:
        self._check()
        return tuple(self._moderators[n] for n in sorted(self._moderators)[:MODERATORS_MAX])

    async def update(
        self, name: str, *, role: str | None = None, password_hash: str | None = None,
        disabled: bool | None = None,
    ) -> None:  # fmt: skip
        self._check()
        mod.check_moderator_name(name)
        current = self._moderators.get(name)
        if current is None:
            raise NotFound("no such moderator")
        new = replace(
            current,
            role=current.role if role is None else role,
            password_hash=current.password_hash if password_hash is None else password_hash,
            disabled=current.disabled if disabled is None else disabled,
        )
        mod.check_moderator(new)
        self._moderators[name] = new
