"""The migration that gives intercepts their kind (docs/migrations.md, version 8), on both SQL
backends: a database with intercepts from before it is migrated in place, its copies read back
as one-to-one envelopes without a membership update, and the new column refuses an unknown
kind."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from overt.storage import MailKind, open_sqlite
from overt.storage import _postgres_schema as pg_schema
from overt.storage import _sqlite_schema as sqlite_schema
from overt.storage.interfaces import Intercept
from overt.storage.postgres import apply_migrations as apply_postgres
from overt.storage.postgres import open_postgres
from overt.storage.sqlite import apply_migrations as apply_sqlite

from .support import fresh_schema

W = b"\x07" * 32
ROW = (W, 5, 1_000, b"alice", 1, b"bob", 2, b"old envelope")
INSERT = (
    "INSERT INTO lawful_intercept (warrant_id, mail_id, server_time, sender_account, "
    "sender_device, recipient_account, recipient_device, envelope) VALUES "
)


def before(migrations: tuple[str, ...], script: str) -> tuple[str, ...]:
    """Every migration before ``script`` (found by identity, so later ones may follow)."""
    return migrations[: migrations.index(script)]


def test_sqlite_intercepts_from_before_read_as_envelopes(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    apply_sqlite(conn, before(sqlite_schema.MIGRATIONS, sqlite_schema._INTERCEPT_KIND))
    conn.execute(INSERT + "(?, ?, ?, ?, ?, ?, ?, ?)", ROW)
    conn.close()

    async def main() -> tuple[Intercept, ...]:
        storage = await open_sqlite(path)  # migrates
        try:
            assert storage.intercepts is not None
            return await storage.intercepts.page(W, 0, 10)
        finally:
            await storage.close()

    (old,) = asyncio.run(main())
    assert (old.kind, old.membership, old.envelope) == (MailKind.ENVELOPE, None, b"old envelope")
    conn = sqlite3.connect(path, isolation_level=None)
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("UPDATE lawful_intercept SET kind = 'broadcast' WHERE warrant_id = ?", (W,))
    conn.close()


@pytest.fixture
def dsn(postgres_dsn: str) -> Iterator[str]:
    scoped, drop = fresh_schema(postgres_dsn)
    try:
        yield scoped
    finally:
        drop()


def test_postgres_intercepts_from_before_read_as_envelopes(dsn: str) -> None:
    async def main() -> tuple[Intercept, ...]:
        conn = await asyncpg.connect(dsn)
        try:
            await apply_postgres(conn, before(pg_schema.MIGRATIONS, pg_schema._INTERCEPT_KIND))
            await conn.execute(INSERT + "($1, $2, $3, $4, $5, $6, $7, $8)", *ROW)
        finally:
            await conn.close()
        storage = await open_postgres(dsn)  # migrates
        try:
            assert storage.intercepts is not None
            page = await storage.intercepts.page(W, 0, 10)
        finally:
            await storage.close()
        conn = await asyncpg.connect(dsn)
        try:
            with pytest.raises(asyncpg.CheckViolationError):
                await conn.execute("UPDATE lawful_intercept SET kind = 'broadcast'")
        finally:
            await conn.close()
        return page

    (old,) = asyncio.run(main())
    assert (old.kind, old.membership, old.envelope) == (MailKind.ENVELOPE, None, b"old envelope")
