"""Backends for the storage contract suite, and small builders shared by its tests.

The contract tests in ``test_contract.py`` take the ``backend`` fixture (``conftest.py``) and run
once per entry of :data:`BACKENDS`. A new backend (PostgreSQL) joins the suite by adding an entry
here whose ``open`` gives each test a fresh, empty store (and the same store again when called
again within that test, if the backend is durable).

There is no asyncio plugin in the test environment: a test body is a coroutine handed to
``backend.run``, which opens a store, runs the body under ``asyncio.run`` and closes the store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from overt.storage import (
    AccountRecord,
    DeviceAuth,
    NewMail,
    Storage,
    StorageLimits,
    open_memory,
    open_sqlite,
)

Opener = Callable[[StorageLimits | None], Awaitable[Storage]]
Body = Callable[[Storage], Awaitable[None]]


@dataclass(frozen=True)
class Backend:
    name: str
    open: Opener
    durable: bool

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


BACKENDS: dict[str, Callable[[Path], Backend]] = {"memory": _memory, "sqlite": _sqlite}


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
