"""The group store (:mod:`overt.storage.groups`) on SQLite, on the connection and worker thread
of :mod:`overt.storage.sqlite` (tables of ``_sqlite_schema._GROUPS``).

An append runs in the group commit's ``BEGIN IMMEDIATE`` transaction (its own savepoint): it
reads the group's highest version and inserts the next one with the accounts it lists, so two
writers, in one process or several sharing the file, cannot both append the same version.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Protocol, TypeVar

from overt.storage import groups as g
from overt.storage.errors import StorageConflict
from overt.storage.groups import GroupUpdate, NewGroupUpdate

_T = TypeVar("_T")


class SqliteRunner(Protocol):
    """What this store needs of :class:`overt.storage.sqlite._Database`."""

    async def read(self, what: str, job: Callable[[sqlite3.Connection], _T]) -> _T: ...

    async def write(self, what: str, job: Callable[[sqlite3.Connection], _T]) -> _T: ...


class SqliteGroupStore:
    """:class:`~overt.storage.groups.GroupStore` on ``group_update`` and ``group_member``."""

    def __init__(self, db: SqliteRunner) -> None:
        self._db = db

    async def append(self, record: NewGroupUpdate) -> None:
        g.check_new_update(record)

        def job(conn: sqlite3.Connection) -> None:
            (current,) = conn.execute(
                "SELECT coalesce(max(version), 0) FROM group_update WHERE group_id = ?",
                (record.group_id,),
            ).fetchone()
            if int(current) != record.version - 1:
                raise StorageConflict(
                    "the group is not at the version this update follows: read it again"
                )
            conn.execute(
                "INSERT INTO group_update (group_id, version, member_set_hash, data) "
                "VALUES (?, ?, ?, ?)",
                (record.group_id, record.version, record.member_set_hash, record.update),
            )
            conn.executemany(
                "INSERT OR IGNORE INTO group_member (group_id, account) VALUES (?, ?)",
                [(record.group_id, a) for a in record.accounts],
            )

        await self._db.write("group append", job)

    async def latest(self, group_id: bytes) -> GroupUpdate | None:
        g.check_group_id(group_id)

        def job(conn: sqlite3.Connection) -> GroupUpdate | None:
            row = conn.execute(
                "SELECT version, member_set_hash, data FROM group_update WHERE group_id = ? "
                "ORDER BY version DESC LIMIT 1",
                (group_id,),
            ).fetchone()
            if row is None:
                return None
            return GroupUpdate(group_id, int(row[0]), bytes(row[1]), bytes(row[2]))

        return await self._db.read("group latest", job)

    async def updates(
        self, group_id: bytes, after_version: int, limit: int
    ) -> tuple[GroupUpdate, ...]:
        g.check_group_id(group_id)
        g.check_page(after_version, limit)

        def job(conn: sqlite3.Connection) -> tuple[GroupUpdate, ...]:
            rows = conn.execute(
                "SELECT version, member_set_hash, data FROM group_update "
                "WHERE group_id = ? AND version > ? ORDER BY version LIMIT ?",
                (group_id, after_version, limit),
            ).fetchall()
            return tuple(GroupUpdate(group_id, int(r[0]), bytes(r[1]), bytes(r[2])) for r in rows)

        return await self._db.read("group updates", job)

    async def was_member(self, group_id: bytes, account: bytes) -> bool:
        g.check_group_id(group_id)
        g.check_account(account)

        def job(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "SELECT 1 FROM group_member WHERE group_id = ? AND account = ?",
                (group_id, account),
            ).fetchone()
            return row is not None

        return await self._db.read("group membership", job)
