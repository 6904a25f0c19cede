"""The migration that keeps the custodians' confirmations with each escrow epoch
(docs/migrations.md, version 9), on both SQL backends: an epoch stored before it reads back
with no confirmations, and a new one keeps them."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from overt.storage import Storage, open_sqlite
from overt.storage import _postgres_schema as pg_schema
from overt.storage import _sqlite_schema as sqlite_schema
from overt.storage.interfaces import EpochRecord
from overt.storage.postgres import apply_migrations as apply_postgres
from overt.storage.postgres import open_postgres
from overt.storage.sqlite import apply_migrations as apply_sqlite

from .support import fresh_schema

OLD = EpochRecord(681, 4, b"old transcript", None)
NEW = EpochRecord(682, 9, b"new transcript", b"new confirmations")
INSERT = "INSERT INTO lawful_epoch (epoch, idx, transcript) VALUES "


def before(migrations: tuple[str, ...], script: str) -> tuple[str, ...]:
    """Every migration before ``script`` (found by identity, so later ones may follow)."""
    return migrations[: migrations.index(script)]


async def _after(storage: Storage) -> tuple[EpochRecord | None, EpochRecord | None]:
    try:
        assert storage.epochs is not None
        await storage.epochs.add(NEW)
        return await storage.epochs.get(OLD.epoch), await storage.epochs.get(NEW.epoch)
    finally:
        await storage.close()


def test_sqlite_epochs_from_before_have_no_confirmations(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    apply_sqlite(conn, before(sqlite_schema.MIGRATIONS, sqlite_schema._EPOCH_CONFIRMATIONS))
    conn.execute(INSERT + "(?, ?, ?)", (OLD.epoch, OLD.index, OLD.transcript))
    conn.close()

    async def main() -> tuple[EpochRecord | None, EpochRecord | None]:
        return await _after(await open_sqlite(path))  # migrates

    assert asyncio.run(main()) == (OLD, NEW)


@pytest.fixture
def dsn(postgres_dsn: str) -> Iterator[str]:
    scoped, drop = fresh_schema(postgres_dsn)
    try:
        yield scoped
    finally:
        drop()


def test_postgres_epochs_from_before_have_no_confirmations(dsn: str) -> None:
    async def main() -> tuple[EpochRecord | None, EpochRecord | None]:
        conn = await asyncpg.connect(dsn)
        try:
            await apply_postgres(conn, before(pg_schema.MIGRATIONS, pg_schema._EPOCH_CONFIRMATIONS))
            await conn.execute(INSERT + "($1, $2, $3)", OLD.epoch, OLD.index, OLD.transcript)
        finally:
            await conn.close()
        return await _after(await open_postgres(dsn))  # migrates

    assert asyncio.run(main()) == (OLD, NEW)
