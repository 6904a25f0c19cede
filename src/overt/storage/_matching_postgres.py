""":class:`~overt.storage.matching.MatchingStore` on PostgreSQL, on the pool of
:mod:`overt.storage.postgres` (tables of ``_postgres_schema._MATCHING``).

:meth:`PostgresMatchingStore.add_opened` takes a transaction-scoped advisory lock on the subject
(:data:`OPENED_LOCK_CLASS`) before counting, so two nodes cannot both insert past the bound.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Final, Protocol, TypeAlias, TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from overt.storage import matching as mt
from overt.storage.errors import AlreadyExists
from overt.storage.matching import ListVersion, OpenedRecord

_T = TypeVar("_T")
_Conn: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"

_VERSION_COLUMNS: Final = "version, commitment, tbl, hashes, log_index, created_ms, delta"

OPENED_LOCK_CLASS: Final = 1331057233
"""First key of the advisory lock ``(OPENED_LOCK_CLASS, hashtext(subject))`` that serializes
additions to one subject's opened images (docs/migrations.md, "Advisory lock keys")."""


class PostgresRunner(Protocol):
    """What this store needs of :class:`overt.storage.postgres._Database`."""

    async def run(self, what: str, job: Callable[[_Conn], Awaitable[_T]]) -> _T: ...

    async def transaction(self, what: str, job: Callable[[_Conn], Awaitable[_T]]) -> _T: ...


def _version(row: asyncpg.Record) -> ListVersion:
    return ListVersion(
        int(row[0]), bytes(row[1]), bytes(row[2]), bytes(row[3]), int(row[4]), int(row[5]),
        None if row[6] is None else bytes(row[6]),
    )  # fmt: skip


class PostgresMatchingStore:
    """On tables ``matching_list`` and ``matching_opened``."""

    def __init__(self, db: PostgresRunner) -> None:
        self._db = db

    async def publish(self, version: ListVersion) -> None:
        mt.check_list_version(version)
        v = version

        async def job(conn: _Conn) -> None:
            stored = await conn.fetchval(
                f"INSERT INTO matching_list ({_VERSION_COLUMNS}) "  # noqa: S608
                "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING true",
                v.version, v.commitment, v.table, v.hashes, v.log_index, v.created_ms, v.delta,
            )  # fmt: skip
            if stored is None:
                raise AlreadyExists("this list version or commitment is published already")

        await self._db.run("matching publish", job)

    async def _one(self, what: str, where: str, *args: object) -> ListVersion | None:
        async def job(conn: _Conn) -> ListVersion | None:
            row = await conn.fetchrow(
                f"SELECT {_VERSION_COLUMNS} FROM matching_list {where}",  # noqa: S608
                *args,
            )
            return None if row is None else _version(row)

        return await self._db.run(what, job)

    async def latest(self) -> ListVersion | None:
        return await self._one("matching latest", "ORDER BY version DESC LIMIT 1")

    async def version(self, number: int) -> ListVersion | None:
        mt.check_version_number(number)
        return await self._one("matching version", "WHERE version = $1", number)

    async def commitments(self) -> tuple[tuple[int, bytes], ...]:
        async def job(conn: _Conn) -> tuple[tuple[int, bytes], ...]:
            rows = await conn.fetch(
                "SELECT version, commitment FROM matching_list ORDER BY version"
            )
            return tuple((int(r[0]), bytes(r[1])) for r in rows)

        return await self._db.run("matching commitments", job)

    async def add_opened(self, subject: bytes, image_id: bytes, record: bytes, limit: int) -> bool:
        mt.check_opened(subject, image_id, record, limit)

        async def job(conn: _Conn) -> bool:
            await conn.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext(encode($2::bytea, 'hex')))",
                OPENED_LOCK_CLASS, subject,
            )  # fmt: skip
            held = await conn.fetchval(
                "SELECT count(*) FROM matching_opened WHERE subject = $1", subject
            )
            if int(held) >= limit:
                return False
            inserted = await conn.fetchval(
                "INSERT INTO matching_opened (subject, image_id, record) "
                "VALUES ($1, $2, $3) ON CONFLICT (subject, image_id) DO NOTHING "
                "RETURNING true",
                subject, image_id, record,
            )  # fmt: skip
            return inserted is not None

        return await self._db.transaction("matching add opened", job)

    async def opened(self, subject: bytes) -> tuple[OpenedRecord, ...]:
        mt.check_subject(subject)

        async def job(conn: _Conn) -> tuple[OpenedRecord, ...]:
            rows = await conn.fetch(
                "SELECT image_id, record, revealed FROM matching_opened WHERE subject = $1 "
                "ORDER BY seq",
                subject,
            )
            return tuple(
                OpenedRecord(bytes(r[0]), bytes(r[1]), None if r[2] is None else bytes(r[2]))
                for r in rows
            )

        return await self._db.run("matching opened", job)

    async def reveal(self, subject: bytes, payloads: Mapping[bytes, bytes]) -> None:
        mt.check_reveal(subject, payloads)
        rows = [(p, subject, i) for i, p in payloads.items()]

        async def job(conn: _Conn) -> None:
            await conn.executemany(
                "UPDATE matching_opened SET revealed = $1 "
                "WHERE subject = $2 AND image_id = $3 AND revealed IS NULL",
                rows,
            )

        await self._db.transaction("matching reveal", job)
