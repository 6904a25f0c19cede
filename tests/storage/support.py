"""Backends for the storage contract suite, and small builders shared by its tests.

The contract tests in ``test_contract.py`` take the ``backend`` fixture (``conftest.py``) and run
once per entry of :data:`BACKENDS`. A backend joins the suite by adding an entry here whose
``open`` gives each test a fresh, empty store (and the same store again when called again within
that test, if the backend is durable).

The ``postgres`` entry needs a server: the ``backend`` fixture passes it the DSN of
``OVERT_TEST_POSTGRES_DSN`` if that is set, or else of a throwaway cluster that
``tests/servers.py`` starts once per session (and skips, or with ``OVERT_REQUIRE_SERVICES=1``
fails, when PostgreSQL is not installed). Each test gets a schema of its own in that database,
dropped when the test ends, so the suite leaves nothing behind in a database it is pointed at.

There is no asyncio plugin in the test environment: a test body is a coroutine handed to
``backend.run``, which opens a store, runs the body under ``asyncio.run`` and closes the store.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from overt.storage import (
    AccountRecord,
    DeviceAuth,
    NewMail,
    Storage,
    StorageLimits,
    open_memory,
    open_sqlite,
)
from overt.storage.postgres import open_postgres

Opener = Callable[[StorageLimits | None], Awaitable[Storage]]
Body = Callable[[Storage], Awaitable[None]]


@dataclass(frozen=True)
class Backend:
    name: str
    open: Opener
    durable: bool
    cleanup: Callable[[], None] | None = None
    """Called by the fixture after the test (drops a PostgreSQL test schema)."""

    def run(self, body: Body, limits: StorageLimits | None = None) -> None:
        """Open the store, run ``body`` on it, close it."""

        async def main() -> None:
            storage = await self.open(limits)
            try:
                await body(storage)
            finally:
                await storage.close()

        asyncio.run(main())


def _memory(tmp_path: Path) -> Backend:
    return Backend("memory", open_memory, durable=False)


def _sqlite(tmp_path: Path) -> Backend:
    path = tmp_path / "overt.db"
    return Backend("sqlite", lambda limits: open_sqlite(path, limits=limits), durable=True)


def with_search_path(dsn: str, schema: str) -> str:
    """``dsn`` with ``search_path`` set to ``schema`` (asyncpg passes unknown query parameters
    to the server as session settings)."""
    parts = urlsplit(dsn)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "search_path"]
    query.append(("search_path", schema))
    return urlunsplit(parts._replace(query=urlencode(query)))


async def _admin(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def fresh_schema(dsn: str) -> tuple[str, Callable[[], None]]:
    """Create an empty schema in the database at ``dsn``; return a DSN whose connections use
    it and a function that drops it again."""
    schema = f"overt_test_{uuid.uuid4().hex[:16]}"
    asyncio.run(_admin(dsn, f'CREATE SCHEMA "{schema}"'))

    def drop() -> None:
        asyncio.run(_admin(dsn, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))

    return with_search_path(dsn, schema), drop


def postgres_backend(dsn: str) -> Backend:
    """A PostgreSQL backend on a fresh schema of the database at ``dsn``."""
    scoped, drop = fresh_schema(dsn)
    return Backend(
        "postgres",
        lambda limits: open_postgres(scoped, limits=limits, min_size=1, max_size=8),
        durable=True,
        cleanup=drop,
    )


BACKENDS: dict[str, Callable[[Path], Backend]] = {"memory": _memory, "sqlite": _sqlite}
"""Backends that need nothing but a temporary directory."""

SERVER_BACKENDS: dict[str, Callable[[str], Backend]] = {"postgres": postgres_backend}
"""Backends that need a server; the ``backend`` fixture passes them its DSN."""


# ----------------------------------------------------------------------------- builders


def account(
    account_id: bytes = b"alice", devices: tuple[int, ...] = (1,), serial: int = 1
) -> AccountRecord:
    return AccountRecord(
        account_id=account_id,
        identity_key=b"I" * 32,
        device_list=b"device-list-" + account_id + b"-%d" % serial,
        serial=serial,
        devices=tuple(DeviceAuth(d, bytes([d % 256]) * 32) for d in devices),
    )


def mail(
    to: tuple[bytes, int] = (b"bob", 1),
    sender: tuple[bytes, int] = (b"alice", 1),
    envelope: bytes = b"ciphertext",
) -> NewMail:
    return NewMail(to[0], to[1], sender[0], sender[1], envelope)


def tag(server_id: int, item: NewMail) -> bytes:
    """A reporting tag that visibly binds the server id and the envelope."""
    return b"tag:" + server_id.to_bytes(8, "big") + item.envelope
