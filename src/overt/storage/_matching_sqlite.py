""":class:`~overt.storage.matching.MatchingStore` on SQLite, on the connection and worker thread
of :mod:`overt.storage.sqlite` (tables of ``_sqlite_schema._MATCHING``).

Every write is one ``BEGIN IMMEDIATE`` transaction: :meth:`SqliteMatchingStore.add_opened`
counts and inserts together, so the bound holds across processes sharing the file.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping
from typing import Any, Final, Protocol, TypeVar

from overt.storage import matching as mt
from overt.storage.errors import AlreadyExists
from overt.storage.matching import ListVersion, OpenedRecord

_T = TypeVar("_T")

_VERSION_COLUMNS: Final = "version, commitment, tbl, hashes, log_index, created_ms, delta"


class SqliteRunner(Protocol):
    """What this store needs of :class:`overt.storage.sqlite._Database`."""

    async def read(self, what: str, job: Callable[[sqlite3.Connection], _T]) -> _T: ...

    async def write(self, what: str, job: Callable[[sqlite3.Connection], _T]) -> _T: ...


def _version(row: Any) -> ListVersion:
    return ListVersion(
        int(row[0]), bytes(row[1]), bytes(row[2]), bytes(row[3]), int(row[4]), int(row[5]),
        None if row[6] is None else bytes(row[6]),
    )  # fmt: skip


class SqliteMatchingStore:
    """On tables ``matching_list`` and ``matching_opened``."""

    def __init__(self, db: SqliteRunner) -> None:
        self._db = db

    async def publish(self, version: ListVersion) -> None:
        mt.check_list_version(version)
        v = version

        def job(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(
                    f"INSERT INTO matching_list ({_VERSION_COLUMNS}) "  # noqa: S608
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (v.version, v.commitment, v.table, v.hashes, v.log_index, v.created_ms,
                     v.delta),
                )  # fmt: skip
            except sqlite3.IntegrityError:
                raise AlreadyExists(
                    "this list version or commitment is published already"
                ) from None

        await self._db.write("matching publish", job)

    async def _one(self, what: str, where: str, args: tuple[object, ...]) -> ListVersion | None:
        def job(conn: sqlite3.Connection) -> ListVersion | None:
            row = conn.execute(
                f"SELECT {_VERSION_COLUMNS} FROM matching_list {where}",  # noqa: S608
                args,
            ).fetchone()
            return None if row is None else _version(row)

        return await self._db.read(what, job)

    async def latest(self) -> ListVersion | None:
        return await self._one("matching latest", "ORDER BY version DESC LIMIT 1", ())

    async def version(self, number: int) -> ListVersion | None:
        mt.check_version_number(number)
        return await self._one("matching version", "WHERE version = ?", (number,))

    async def commitments(self) -> tuple[tuple[int, bytes], ...]:
        def job(conn: sqlite3.Connection) -> tuple[tuple[int, bytes], ...]:
            rows = conn.execute(
                "SELECT version, commitment FROM matching_list ORDER BY version"
            ).fetchall()
            return tuple((int(r[0]), bytes(r[1])) for r in rows)

        return await self._db.read("matching commitments", job)

    async def add_opened(self, subject: bytes, image_id: bytes, record: bytes, limit: int) -> bool:
        mt.check_opened(subject, image_id, record, limit)

        def job(conn: sqlite3.Connection) -> bool:
            (held,) = conn.execute(
                "SELECT count(*) FROM matching_opened WHERE subject = ?", (subject,)
            ).fetchone()
            if int(held) >= limit:
                return False
            cursor = conn.execute(
                "INSERT INTO matching_opened (subject, image_id, record) "
                "VALUES (?, ?, ?) ON CONFLICT (subject, image_id) DO NOTHING",
                (subject, image_id, record),
            )
            return cursor.rowcount == 1

        return await self._db.write("matching add opened", job)

    async def opened(self, subject: bytes) -> tuple[OpenedRecord, ...]:
        mt.check_subject(subject)

        def job(conn: sqlite3.Connection) -> tuple[OpenedRecord, ...]:
            rows = conn.execute(
                "SELECT image_id, record, revealed FROM matching_opened WHERE subject = ? "
                "ORDER BY seq",
                (subject,),
            ).fetchall()
            return tuple(
                OpenedRecord(bytes(r[0]), bytes(r[1]), None if r[2] is None else bytes(r[2]))
                for r in rows
            )

        return await self._db.read("matching opened", job)

    async def reveal(self, subject: bytes, payloads: Mapping[bytes, bytes]) -> None:
        mt.check_reveal(subject, payloads)
        rows = [(p, subject, i) for i, p in payloads.items()]

        def job(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "UPDATE matching_opened SET revealed = ? "
                "WHERE subject = ? AND image_id = ? AND revealed IS NULL",
                rows,
            )

        await self._db.write("matching reveal", job)
