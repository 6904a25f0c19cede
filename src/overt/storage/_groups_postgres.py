"""The group store (:mod:`overt.storage.groups`) on PostgreSQL, on the pool of
:mod:`overt.storage.postgres` (tables of ``_postgres_schema._GROUPS``).

An append is one transaction: an ``INSERT ... SELECT ... WHERE`` the group's highest version
is the one before, ``ON CONFLICT DO NOTHING``. Two nodes racing to append the same version
both pass the ``WHERE`` under ``READ COMMITTED``, but the primary key ``(group_id, version)``
lets only one row in: the other inserts nothing and gets ``StorageConflict``, without a
server-side error. The accounts the update lists are inserted in the same transaction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, TypeAlias, TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from overt.storage import groups as g
from overt.storage.errors import StorageConflict
from overt.storage.groups import GroupUpdate, NewGroupUpdate

_T = TypeVar("_T")
_Conn: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"


class PostgresRunner(Protocol):
    """What this store needs of :class:`overt.storage.postgres._Database`."""

    async def run(self, what: str, job: Callable[[_Conn], Awaitable[_T]]) -> _T: ...

    async def transaction(self, what: str, job: Callable[[_Conn], Awaitable[_T]]) -> _T: ...


class PostgresGroupStore:
    """:class:`~overt.storage.groups.GroupStore` on ``group_update`` and ``group_member``."""

    def __init__(self, db: PostgresRunner) -> None:
        self._db = db

    async def append(self, record: NewGroupUpdate) -> None:
        g.check_new_update(record)

        async def job(conn: _Conn) -> None:
            inserted = await conn.fetchval(
                "INSERT INTO group_update (group_id, version, member_set_hash, data) "
                "SELECT $1::bytea, $2::bigint, $3::bytea, $4::bytea "
                "WHERE (SELECT coalesce(max(version), 0) FROM group_update "
                "       WHERE group_id = $1::bytea) = $2::bigint - 1 "
                "ON CONFLICT DO NOTHING RETURNING 1",
                record.group_id,
                record.version,
                record.member_set_hash,
                record.update,
            )
            if inserted is None:
                raise StorageConflict(
                    "the group is not at the version this update follows: read it again"
                )
            await conn.execute(
                "INSERT INTO group_member (group_id, account) "
                "SELECT $1::bytea, a FROM unnest($2::bytea[]) AS a ON CONFLICT DO NOTHING",
                record.group_id,
                list(record.accounts),
            )

        await self._db.transaction("group append", job)

    async def latest(self, group_id: bytes) -> GroupUpdate | None:
        g.check_group_id(group_id)

        async def job(conn: _Conn) -> GroupUpdate | None:
            row = await conn.fetchrow(
                "SELECT version, member_set_hash, data FROM group_update WHERE group_id = $1 "
                "ORDER BY version DESC LIMIT 1",
                group_id,
            )
            if row is None:
                return None
            return GroupUpdate(group_id, int(row[0]), bytes(row[1]), bytes(row[2]))

        return await self._db.run("group latest", job)

    async def updates(
        self, group_id: bytes, after_version: int, limit: int
    ) -> tuple[GroupUpdate, ...]:
        g.check_group_id(group_id)
        g.check_page(after_version, limit)

        async def job(conn: _Conn) -> tuple[GroupUpdate, ...]:
            rows = await conn.fetch(
                "SELECT version, member_set_hash, data FROM group_update "
                "WHERE group_id = $1 AND version > $2 ORDER BY version LIMIT $3",
                group_id,
                after_version,
                limit,
            )
            return tuple(GroupUpdate(group_id, int(r[0]), bytes(r[1]), bytes(r[2])) for r in rows)

        return await self._db.run("group updates", job)

    async def was_member(self, group_id: bytes, account: bytes) -> bool:
        g.check_group_id(group_id)
        g.check_account(account)

        async def job(conn: _Conn) -> bool:
            found = await conn.fetchval(
                "SELECT 1 FROM group_member WHERE group_id = $1 AND account = $2",
                group_id,
                account,
            )
            return found is not None

        return await self._db.run("group membership", job)
