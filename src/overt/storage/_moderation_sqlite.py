"""The safety stores (:mod:`overt.storage.moderation`) on SQLite, on the connection and worker
thread of :mod:`overt.storage.sqlite` (tables of ``_sqlite_schema._SAFETY``).

Every write runs in one ``BEGIN IMMEDIATE`` transaction, so :meth:`SqliteReportStore.add`
(report, replay keys, queue item) and :meth:`SqliteReportStore.act` (compare-and-set of the
item's state, audit entry) are all or nothing across processes sharing the file.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection
from typing import Any, Final, Protocol, TypeVar

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

_T = TypeVar("_T")


class SqliteRunner(Protocol):
    """What these stores need of :class:`overt.storage.sqlite._Database`."""

    async def read(self, what: str, job: Callable[[sqlite3.Connection], _T]) -> _T: ...

    async def write(self, what: str, job: Callable[[sqlite3.Connection], _T]) -> _T: ...


def _unique(error: sqlite3.IntegrityError) -> bool:
    return getattr(error, "sqlite_errorcode", None) in {
        sqlite3.SQLITE_CONSTRAINT_UNIQUE,
        sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY,
    }


_ITEM_COLUMNS: Final = (
    "id, kind, subject_account, label, severity, created_ms, state, updated_ms, resolution, "
    "report_id, detail"
)
_REPORT_COLUMNS: Final = (
    "report_id, bundle, reporter_account, subject_account, category, severity, received_ms, "
    "retain_until_ms, item_id"
)
_AUDIT_COLUMNS: Final = "id, at_ms, actor, action, item_id, subject_account, detail"


def _item(row: Any) -> QueueItem:
    return QueueItem(
        int(row[0]), ItemKind(row[1]), bytes(row[2]), str(row[3]), int(row[4]), int(row[5]),
        ItemState(row[6]), int(row[7]), None if row[8] is None else str(row[8]),
        None if row[9] is None else bytes(row[9]), bytes(row[10]),
    )  # fmt: skip


def _report(row: Any) -> StoredReport:
    return StoredReport(
        bytes(row[0]), None if row[1] is None else bytes(row[1]), bytes(row[2]), bytes(row[3]),
        str(row[4]), int(row[5]), int(row[6]), int(row[7]), int(row[8]),
    )  # fmt: skip


def _audit(row: Any) -> AuditEntry:
    return AuditEntry(
        int(row[0]), int(row[1]), str(row[2]), str(row[3]),
        None if row[4] is None else int(row[4]), None if row[5] is None else bytes(row[5]),
        str(row[6]),
    )  # fmt: skip


def _insert_audit(conn: sqlite3.Connection, e: NewAuditEntry) -> int:
    cursor = conn.execute(
        "INSERT INTO safety_audit (at_ms, actor, action, item_id, subject_account, detail) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (e.at_ms, e.actor, e.action, e.item_id, e.subject_account, e.detail),
    )
    assert cursor.lastrowid is not None
    return int(cursor.lastrowid)


class SqliteReportStore:
    """:class:`~overt.storage.moderation.ReportStore` on tables ``safety_report``,
    ``safety_replay``, ``safety_item`` and ``safety_audit``."""

    def __init__(self, db: SqliteRunner) -> None:
        self._db = db

    async def add(self, report: NewReport) -> int:
        mod.check_new_report(report)
        r = report

        def job(conn: sqlite3.Connection) -> int:
            try:
                conn.executemany(
                    "INSERT INTO safety_replay (replay_key) VALUES (?)",
                    [(k,) for k in r.replay_keys],
                )
                cursor = conn.execute(
                    "INSERT INTO safety_item (kind, subject_account, label, severity, created_ms, "
                    "state, updated_ms, report_id, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (ItemKind.REPORT.value, r.subject_account, r.category, r.severity,
                     r.received_ms, ItemState.OPEN.value, r.received_ms, r.report_id, b""),
                )  # fmt: skip
                assert cursor.lastrowid is not None
                item_id = int(cursor.lastrowid)
                conn.execute(
                    f"INSERT INTO safety_report ({_REPORT_COLUMNS}) "  # noqa: S608
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (r.report_id, r.bundle, r.reporter_account, r.subject_account, r.category,
                     r.severity, r.received_ms, r.retain_until_ms, item_id),
                )  # fmt: skip
            except sqlite3.IntegrityError as e:
                if _unique(e):
                    raise AlreadyExists("this report, or a message in it, is stored already") from e
                raise
            return item_id

        return await self._db.write("report add", job)

    async def seen(self, replay_keys: Collection[bytes]) -> frozenset[bytes]:
        mod.check_replay_keys(replay_keys)
        keys = list(replay_keys)
        if not keys:
            return frozenset()

        def job(conn: sqlite3.Connection) -> frozenset[bytes]:
            marks = ", ".join("?" * len(keys))
            rows = conn.execute(
                f"SELECT replay_key FROM safety_replay WHERE replay_key IN ({marks})",  # noqa: S608
                keys,
            ).fetchall()
            return frozenset(bytes(row[0]) for row in rows)

        return await self._db.read("report seen", job)

    async def get(self, report_id: bytes) -> StoredReport | None:
        mod.check_report_id(report_id)

        def job(conn: sqlite3.Connection) -> StoredReport | None:
            row = conn.execute(
                f"SELECT {_REPORT_COLUMNS} FROM safety_report WHERE report_id = ?",  # noqa: S608
                (report_id,),
            ).fetchone()
            return None if row is None else _report(row)

        return await self._db.read("report get", job)

    async def flag(self, signal: NewSignal) -> int:
        mod.check_signal(signal)
        s = signal

        def job(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(
                "INSERT INTO safety_item (kind, subject_account, label, severity, created_ms, "
                "state, updated_ms, report_id, detail) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?)",
                (ItemKind.SIGNAL.value, s.subject_account, s.rule, s.severity, s.created_ms,
                 ItemState.OPEN.value, s.created_ms, s.detail),
            )  # fmt: skip
            assert cursor.lastrowid is not None
            return int(cursor.lastrowid)

        return await self._db.write("queue flag", job)

    async def item(self, item_id: int) -> QueueItem | None:
        mod.check_id(item_id)

        def job(conn: sqlite3.Connection) -> QueueItem | None:
            row = conn.execute(
                f"SELECT {_ITEM_COLUMNS} FROM safety_item WHERE id = ?",  # noqa: S608
                (item_id,),
            ).fetchone()
            return None if row is None else _item(row)

        return await self._db.read("queue item", job)

    async def queue(self, states: Collection[ItemState], limit: int) -> tuple[QueueItem, ...]:
        wanted = [s.value for s in mod.check_states(states)]
        mod.check_queue_page(limit)

        def job(conn: sqlite3.Connection) -> tuple[QueueItem, ...]:
            marks = ", ".join("?" * len(wanted))
            rows = conn.execute(
                f"SELECT {_ITEM_COLUMNS} FROM safety_item WHERE state IN ({marks}) "  # noqa: S608
                "ORDER BY severity DESC, created_ms, id LIMIT ?",
                (*wanted, limit),
            ).fetchall()
            return tuple(_item(r) for r in rows)

        return await self._db.read("queue", job)

    async def act(
        self, item_id: int, expected: ItemState, new: ItemState, entry: NewAuditEntry
    ) -> bool:
        mod.check_id(item_id)
        mod.check_entry(entry)
        old, nxt = ItemState(expected).value, ItemState(new).value

        def job(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "UPDATE safety_item SET state = ?, updated_ms = ?, resolution = ? "
                "WHERE id = ? AND state = ?",
                (nxt, entry.at_ms, entry.action, item_id, old),
            )
            if cursor.rowcount != 1:
                if conn.execute("SELECT 1 FROM safety_item WHERE id = ?", (item_id,)).fetchone():
                    return False
                raise NotFound("no such queue item")
            _insert_audit(conn, entry)
            return True

        return await self._db.write("queue act", job)

    async def record(self, entry: NewAuditEntry) -> int:
        mod.check_entry(entry)
        return await self._db.write("audit record", lambda conn: _insert_audit(conn, entry))

    async def audit(
        self, *, before_id: int | None = None, item_id: int | None = None, limit: int
    ) -> tuple[AuditEntry, ...]:
        mod.check_audit_page(before_id, item_id, limit)
        where, args = ["1 = 1"], []
        if before_id is not None:
            where.append("id < ?")
            args.append(before_id)
        if item_id is not None:
            where.append("item_id = ?")
            args.append(item_id)

        def job(conn: sqlite3.Connection) -> tuple[AuditEntry, ...]:
            rows = conn.execute(
                f"SELECT {_AUDIT_COLUMNS} FROM safety_audit WHERE "  # noqa: S608
                + " AND ".join(where)
                + " ORDER BY id DESC LIMIT ?",
                (*args, limit),
            ).fetchall()
            return tuple(_audit(r) for r in rows)

        return await self._db.read("audit page", job)

    async def purge(self, now: int, limit: int) -> int:
        mod.check_purge(now, limit)

        def job(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(
                "UPDATE safety_report SET bundle = NULL WHERE report_id IN ("
                "SELECT report_id FROM safety_report WHERE bundle IS NOT NULL "
                "AND retain_until_ms <= ? ORDER BY retain_until_ms, report_id LIMIT ?)",
                (now, limit),
            )
            return int(cursor.rowcount)

        return await self._db.write("report purge", job)


def _standing(row: Any) -> Standing:
    return Standing(bytes(row[0]), int(row[1]), bool(row[2]), str(row[3]), int(row[4]))


_STANDING_COLUMNS: Final = "account, warnings, suspended, reason, updated_ms"


class SqliteStandingStore:
    """:class:`~overt.storage.moderation.StandingStore` on table ``safety_standing``."""

    def __init__(self, db: SqliteRunner) -> None:
        self._db = db

    async def get(self, account: bytes) -> Standing | None:
        mod.check_account(account)

        def job(conn: sqlite3.Connection) -> Standing | None:
            row = conn.execute(
                f"SELECT {_STANDING_COLUMNS} FROM safety_standing WHERE account = ?",  # noqa: S608
                (account,),
            ).fetchone()
            return None if row is None else _standing(row)

        return await self._db.read("standing get", job)

    async def _upsert(self, what: str, sql: str, args: tuple[object, ...]) -> Standing:
        def job(conn: sqlite3.Connection) -> Standing:
            row = conn.execute(sql + f" RETURNING {_STANDING_COLUMNS}", args).fetchone()
            return _standing(row)

        return await self._db.write(what, job)

    async def warn(self, account: bytes, reason: str, now: int) -> Standing:
        mod.check_standing_change(account, reason, now)
        return await self._upsert(
            "standing warn",
            "INSERT INTO safety_standing (account, warnings, suspended, reason, updated_ms) "
            "VALUES (?, 1, 0, ?, ?) ON CONFLICT (account) DO UPDATE SET "
            "warnings = warnings + 1, reason = excluded.reason, updated_ms = excluded.updated_ms",
            (account, reason, now),
        )

    async def set_suspended(
        self, account: bytes, suspended: bool, reason: str, now: int
    ) -> Standing:
        mod.check_standing_change(account, reason, now)
        return await self._upsert(
            "standing suspend",
            "INSERT INTO safety_standing (account, warnings, suspended, reason, updated_ms) "
            "VALUES (?, 0, ?, ?, ?) ON CONFLICT (account) DO UPDATE SET "
            "suspended = excluded.suspended, reason = excluded.reason, "
            "updated_ms = excluded.updated_ms",
            (account, int(bool(suspended)), reason, now),
        )


def _moderator(row: Any) -> ModeratorRecord:
    return ModeratorRecord(str(row[0]), str(row[1]), str(row[2]), int(row[3]), bool(row[4]))


_MODERATOR_COLUMNS: Final = "name, role, password_hash, created_ms, disabled"


class SqliteModeratorStore:
    """:class:`~overt.storage.moderation.ModeratorStore` on table ``safety_moderator``."""

    def __init__(self, db: SqliteRunner) -> None:
        self._db = db

    async def add(self, record: ModeratorRecord) -> None:
        mod.check_moderator(record)

        def job(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(
                    f"INSERT INTO safety_moderator ({_MODERATOR_COLUMNS}) "  # noqa: S608
                    "VALUES (?, ?, ?, ?, ?)",
                    (record.name, record.role, record.password_hash, record.created_ms,
                     int(record.disabled)),
                )  # fmt: skip
            except sqlite3.IntegrityError as e:
                if _unique(e):
                    raise AlreadyExists("a moderator of this name exists") from e
                raise

        await self._db.write("moderator add", job)

    async def get(self, name: str) -> ModeratorRecord | None:
        mod.check_moderator_name(name)

        def job(conn: sqlite3.Connection) -> ModeratorRecord | None:
            row = conn.execute(
                f"SELECT {_MODERATOR_COLUMNS} FROM safety_moderator WHERE name = ?",  # noqa: S608
                (name,),
            ).fetchone()
            return None if row is None else _moderator(row)

        return await self._db.read("moderator get", job)

    async def all(self) -> tuple[ModeratorRecord, ...]:
        def job(conn: sqlite3.Connection) -> tuple[ModeratorRecord, ...]:
            rows = conn.execute(
                f"SELECT {_MODERATOR_COLUMNS} FROM safety_moderator "  # noqa: S608
                "ORDER BY name LIMIT ?",
                (MODERATORS_MAX,),
            ).fetchall()
            return tuple(_moderator(r) for r in rows)

        return await self._db.read("moderator all", job)

    async def update(
        self, name: str, *, role: str | None = None, password_hash: str | None = None,
        disabled: bool | None = None,
    ) -> None:  # fmt: skip
        mod.check_moderator_name(name)
        if role is not None:
            mod.check_label(role, "a role")
        if password_hash is not None:
            mod.check_password_hash(password_hash)

        def job(conn: sqlite3.Connection) -> None:
            cursor = conn.execute(
                "UPDATE safety_moderator SET role = coalesce(?, role), "
                "password_hash = coalesce(?, password_hash), disabled = coalesce(?, disabled) "
                "WHERE name = ?",
                (role, password_hash, None if disabled is None else int(disabled), name),
            )
            if cursor.rowcount != 1:
                raise NotFound("no such moderator")

        await self._db.write("moderator update", job)
