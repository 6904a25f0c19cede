"""The safety stores (:mod:`overt.storage.moderation`) on PostgreSQL, on the pool of
:mod:`overt.storage.postgres` (tables of ``_postgres_schema._SAFETY``).

Multi-statement operations run in one transaction. Conflicts the contract names are detected
without a server-side error (``ON CONFLICT DO NOTHING ... RETURNING``), so the transaction is
still usable and is rolled back by raising ``AlreadyExists``: a report whose id or replay key is
stored already leaves nothing behind, on any node. :meth:`PostgresReportStore.act` is a
compare-and-set on the item's state (``UPDATE ... WHERE state = expected``), so two
moderators acting at once on two nodes cannot both win.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from typing import Final, Protocol, TypeAlias, TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy

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
_Conn: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"


class PostgresRunner(Protocol):
    """What these stores need of :class:`overt.storage.postgres._Database`."""

    async def run(self, what: str, job: Callable[[_Conn], Awaitable[_T]]) -> _T: ...

    async def transaction(self, what: str, job: Callable[[_Conn], Awaitable[_T]]) -> _T: ...


_ITEM_COLUMNS: Final = (
    "id, kind, subject_account, label, severity, created_ms, state, updated_ms, resolution, "
    "report_id, detail"
)
_REPORT_COLUMNS: Final = (
    "report_id, bundle, reporter_account, subject_account, category, severity, received_ms, "
    "retain_until_ms, item_id"
)
_AUDIT_COLUMNS: Final = "id, at_ms, actor, action, item_id, subject_account, detail"
_STANDING_COLUMNS: Final = "account, warnings, suspended, reason, updated_ms"
_MODERATOR_COLUMNS: Final = "name, role, password_hash, created_ms, disabled"


def _opt_bytes(value: object) -> bytes | None:
    return None if value is None else bytes(value)  # type: ignore[call-overload]


def _item(row: asyncpg.Record) -> QueueItem:
    return QueueItem(
        int(row[0]), ItemKind(row[1]), bytes(row[2]), str(row[3]), int(row[4]), int(row[5]),
        ItemState(row[6]), int(row[7]), None if row[8] is None else str(row[8]),
        _opt_bytes(row[9]), bytes(row[10]),
    )  # fmt: skip


def _report(row: asyncpg.Record) -> StoredReport:
    return StoredReport(
        bytes(row[0]), _opt_bytes(row[1]), bytes(row[2]), bytes(row[3]), str(row[4]),
        int(row[5]), int(row[6]), int(row[7]), int(row[8]),
    )  # fmt: skip


def _audit(row: asyncpg.Record) -> AuditEntry:
    return AuditEntry(
        int(row[0]), int(row[1]), str(row[2]), str(row[3]),
        None if row[4] is None else int(row[4]), _opt_bytes(row[5]), str(row[6]),
    )  # fmt: skip


async def _insert_audit(conn: _Conn, e: NewAuditEntry) -> int:
    value = await conn.fetchval(
        "INSERT INTO safety_audit (at_ms, actor, action, item_id, subject_account, detail) "
        "VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        e.at_ms, e.actor, e.action, e.item_id, e.subject_account, e.detail,
    )  # fmt: skip
    return int(value)


class PostgresReportStore:
    """:class:`~overt.storage.moderation.ReportStore` on tables ``safety_report``,
    ``safety_replay``, ``safety_item`` and ``safety_audit``."""

    def __init__(self, db: PostgresRunner) -> None:
        self._db = db

    async def add(self, report: NewReport) -> int:
        mod.check_new_report(report)
        r = report

        async def job(conn: _Conn) -> int:
            stored = await conn.fetch(
                "INSERT INTO safety_replay (replay_key) SELECT unnest($1::bytea[]) "
                "ON CONFLICT DO NOTHING RETURNING replay_key",
                list(r.replay_keys),
            )
            if len(stored) != len(r.replay_keys):
                raise AlreadyExists("this report, or a message in it, is stored already")
            item_id = await conn.fetchval(
                "INSERT INTO safety_item (kind, subject_account, label, severity, created_ms, "
                "state, updated_ms, report_id, detail) "
                "VALUES ($1, $2, $3, $4, $5, $6, $5, $7, $8) RETURNING id",
                ItemKind.REPORT.value, r.subject_account, r.category, r.severity, r.received_ms,
                ItemState.OPEN.value, r.report_id, b"",
            )  # fmt: skip
            inserted = await conn.fetchval(
                f"INSERT INTO safety_report ({_REPORT_COLUMNS}) "  # noqa: S608
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
                "ON CONFLICT (report_id) DO NOTHING RETURNING true",
                r.report_id, r.bundle, r.reporter_account, r.subject_account, r.category,
                r.severity, r.received_ms, r.retain_until_ms, item_id,
            )  # fmt: skip
            if inserted is None:
                raise AlreadyExists("this report, or a message in it, is stored already")
            return int(item_id)

        return await self._db.transaction("report add", job)

    async def seen(self, replay_keys: Collection[bytes]) -> frozenset[bytes]:
        mod.check_replay_keys(replay_keys)
        keys = list(replay_keys)
        if not keys:
            return frozenset()

        async def job(conn: _Conn) -> frozenset[bytes]:
            rows = await conn.fetch(
                "SELECT replay_key FROM safety_replay WHERE replay_key = ANY($1::bytea[])", keys
            )
            return frozenset(bytes(row[0]) for row in rows)

        return await self._db.run("report seen", job)

    async def get(self, report_id: bytes) -> StoredReport | None:
        mod.check_report_id(report_id)

        async def job(conn: _Conn) -> StoredReport | None:
            row = await conn.fetchrow(
                f"SELECT {_REPORT_COLUMNS} FROM safety_report WHERE report_id = $1",  # noqa: S608
                report_id,
            )
            return None if row is None else _report(row)

        return await self._db.run("report get", job)

    async def flag(self, signal: NewSignal) -> int:
        mod.check_signal(signal)
        s = signal

        async def job(conn: _Conn) -> int:
            value = await conn.fetchval(
                "INSERT INTO safety_item (kind, subject_account, label, severity, created_ms, "
                "state, updated_ms, report_id, detail) "
                "VALUES ($1, $2, $3, $4, $5, $6, $5, NULL, $7) RETURNING id",
                ItemKind.SIGNAL.value, s.subject_account, s.rule, s.severity, s.created_ms,
                ItemState.OPEN.value, s.detail,
            )  # fmt: skip
            return int(value)

        return await self._db.run("queue flag", job)

    async def item(self, item_id: int) -> QueueItem | None:
        mod.check_id(item_id)

        async def job(conn: _Conn) -> QueueItem | None:
            row = await conn.fetchrow(
                f"SELECT {_ITEM_COLUMNS} FROM safety_item WHERE id = $1",  # noqa: S608
                item_id,
            )
            return None if row is None else _item(row)

        return await self._db.run("queue item", job)

    async def queue(self, states: Collection[ItemState], limit: int) -> tuple[QueueItem, ...]:
        wanted = [s.value for s in mod.check_states(states)]
        mod.check_queue_page(limit)

        async def job(conn: _Conn) -> tuple[QueueItem, ...]:
            rows = await conn.fetch(
                f"SELECT {_ITEM_COLUMNS} FROM safety_item WHERE state = ANY($1::text[]) "  # noqa: S608
                "ORDER BY severity DESC, created_ms, id LIMIT $2",
                wanted,
                limit,
            )
            return tuple(_item(r) for r in rows)

        return await self._db.run("queue", job)

    async def act(
        self, item_id: int, expected: ItemState, new: ItemState, entry: NewAuditEntry
    ) -> bool:
        mod.check_id(item_id)
        mod.check_entry(entry)
        old, nxt = ItemState(expected).value, ItemState(new).value

        async def job(conn: _Conn) -> bool:
            changed = await conn.fetchval(
                "UPDATE safety_item SET state = $1, updated_ms = $2, resolution = $3 "
                "WHERE id = $4 AND state = $5 RETURNING true",
                nxt, entry.at_ms, entry.action, item_id, old,
            )  # fmt: skip
            if changed is None:
                if await conn.fetchval("SELECT true FROM safety_item WHERE id = $1", item_id):
                    return False
                raise NotFound("no such queue item")
            await _insert_audit(conn, entry)
            return True

        return await self._db.transaction("queue act", job)

    async def record(self, entry: NewAuditEntry) -> int:
        mod.check_entry(entry)

        async def job(conn: _Conn) -> int:
            return await _insert_audit(conn, entry)

        return await self._db.run("audit record", job)

    async def audit(
        self, *, before_id: int | None = None, item_id: int | None = None, limit: int
    ) -> tuple[AuditEntry, ...]:
        mod.check_audit_page(before_id, item_id, limit)

        async def job(conn: _Conn) -> tuple[AuditEntry, ...]:
            rows = await conn.fetch(
                f"SELECT {_AUDIT_COLUMNS} FROM safety_audit "  # noqa: S608
                "WHERE ($1::bigint IS NULL OR id < $1) AND ($2::bigint IS NULL OR item_id = $2) "
                "ORDER BY id DESC LIMIT $3",
                before_id,
                item_id,
                limit,
            )
            return tuple(_audit(r) for r in rows)

        return await self._db.run("audit page", job)

    async def purge(self, now: int, limit: int) -> int:
        mod.check_purge(now, limit)

        async def job(conn: _Conn) -> int:
            rows = await conn.fetch(
                "UPDATE safety_report SET bundle = NULL WHERE report_id IN ("
                "SELECT report_id FROM safety_report WHERE bundle IS NOT NULL "
                "AND retain_until_ms <= $1 ORDER BY retain_until_ms, report_id LIMIT $2 "
                "FOR UPDATE SKIP LOCKED) RETURNING report_id",
                now,
                limit,
            )
            return len(rows)

        return await self._db.run("report purge", job)


def _standing(row: asyncpg.Record) -> Standing:
    return Standing(bytes(row[0]), int(row[1]), bool(row[2]), str(row[3]), int(row[4]))


class PostgresStandingStore:
    """:class:`~overt.storage.moderation.StandingStore` on table ``safety_standing``."""

    def __init__(self, db: PostgresRunner) -> None:
        self._db = db

    async def get(self, account: bytes) -> Standing | None:
        mod.check_account(account)

        async def job(conn: _Conn) -> Standing | None:
            row = await conn.fetchrow(
                f"SELECT {_STANDING_COLUMNS} FROM safety_standing WHERE account = $1",  # noqa: S608
                account,
            )
            return None if row is None else _standing(row)

        return await self._db.run("standing get", job)

    async def _upsert(self, what: str, sql: str, *args: object) -> Standing:
        async def job(conn: _Conn) -> Standing:
            row = await conn.fetchrow(sql + f" RETURNING {_STANDING_COLUMNS}", *args)
            assert row is not None
            return _standing(row)

        return await self._db.run(what, job)

    async def warn(self, account: bytes, reason: str, now: int) -> Standing:
        mod.check_standing_change(account, reason, now)
        return await self._upsert(
            "standing warn",
            "INSERT INTO safety_standing AS s (account, warnings, suspended, reason, updated_ms) "
            "VALUES ($1, 1, false, $2, $3) ON CONFLICT (account) DO UPDATE SET "
            "warnings = s.warnings + 1, reason = excluded.reason, "
            "updated_ms = excluded.updated_ms",
            account,
            reason,
            now,
        )

    async def set_suspended(
        self, account: bytes, suspended: bool, reason: str, now: int
    ) -> Standing:
        mod.check_standing_change(account, reason, now)
        return await self._upsert(
            "standing suspend",
            "INSERT INTO safety_standing AS s (account, warnings, suspended, reason, updated_ms) "
            "VALUES ($1, 0, $2, $3, $4) ON CONFLICT (account) DO UPDATE SET "
            "suspended = excluded.suspended, reason = excluded.reason, "
            "updated_ms = excluded.updated_ms",
            account,
            bool(suspended),
            reason,
            now,
        )


def _moderator(row: asyncpg.Record) -> ModeratorRecord:
    return ModeratorRecord(str(row[0]), str(row[1]), str(row[2]), int(row[3]), bool(row[4]))


class PostgresModeratorStore:
    """:class:`~overt.storage.moderation.ModeratorStore` on table ``safety_moderator``."""

    def __init__(self, db: PostgresRunner) -> None:
        self._db = db

    async def add(self, record: ModeratorRecord) -> None:
        mod.check_moderator(record)

        async def job(conn: _Conn) -> None:
            stored = await conn.fetchval(
                f"INSERT INTO safety_moderator ({_MODERATOR_COLUMNS}) "  # noqa: S608
                "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING RETURNING true",
                record.name, record.role, record.password_hash, record.created_ms,
                record.disabled,
            )  # fmt: skip
            if stored is None:
                raise AlreadyExists("a moderator of this name exists")

        await self._db.run("moderator add", job)

    async def get(self, name: str) -> ModeratorRecord | None:
        mod.check_moderator_name(name)

        async def job(conn: _Conn) -> ModeratorRecord | None:
            row = await conn.fetchrow(
                f"SELECT {_MODERATOR_COLUMNS} FROM safety_moderator WHERE name = $1",  # noqa: S608
                name,
            )
            return None if row is None else _moderator(row)

        return await self._db.run("moderator get", job)

    async def all(self) -> tuple[ModeratorRecord, ...]:
        async def job(conn: _Conn) -> tuple[ModeratorRecord, ...]:
            rows = await conn.fetch(
                f"SELECT {_MODERATOR_COLUMNS} FROM safety_moderator "  # noqa: S608
                "ORDER BY name LIMIT $1",
                MODERATORS_MAX,
            )
            return tuple(_moderator(r) for r in rows)

        return await self._db.run("moderator all", job)

    async def update(
        self, name: str, *, role: str | None = None, password_hash: str | None = None,
        disabled: bool | None = None,
    ) -> None:  # fmt: skip
        mod.check_moderator_name(name)
        if role is not None:
            mod.check_label(role, "a role")
        if password_hash is not None:
            mod.check_password_hash(password_hash)

        async def job(conn: _Conn) -> None:
            changed = await conn.fetchval(
                "UPDATE safety_moderator SET role = coalesce($1, role), "
                "password_hash = coalesce($2, password_hash), "
                "disabled = coalesce($3, disabled) WHERE name = $4 RETURNING true",
                role,
                password_hash,
                disabled,
                name,
            )
            if changed is None:
                raise NotFound("no such moderator")

        await self._db.run("moderator update", job)
