"""The SQLite backend's group commit: write jobs queued together run in one transaction, each in
its own savepoint, so one job's failure undoes only that job.

To queue writes deterministically, a read job holds the worker thread on a ``threading.Event``
while the writes are submitted; releasing it lets one drain take them all. No timing is
asserted: the statements SQLite executed are traced instead.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from overt.errors import LimitExceeded
from overt.storage import StorageError, StorageLimits, StorageUnavailable, open_sqlite
from overt.storage.sqlite import GROUP_COMMIT_MAX_JOBS, _Database

from .support import mail, tag

T = TypeVar("T")

#: A safety net against a hung test, not a timing assertion.
HANG_S = 30.0


class Boom(Exception):
    pass


def run(body: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(body())


async def opened(path: Path) -> _Database:
    db = _Database(str(path), 5000)
    await db.open()
    await db.write(
        "setup", lambda conn: conn.execute("CREATE TABLE item (n INTEGER PRIMARY KEY) STRICT")
    )
    return db


async def traced(db: _Database) -> list[str]:
    """Every statement the worker's connection runs from now on."""
    statements: list[str] = []
    await db.read("trace", lambda conn: conn.set_trace_callback(statements.append))
    return statements


async def held(db: _Database, writes: list[Awaitable[Any]], queued: int) -> list[Any]:
    """Submit ``writes`` while the worker is held, then release it; their outcomes in order."""
    gate = threading.Event()
    blocker = asyncio.ensure_future(db.read("hold", lambda conn: gate.wait(HANG_S)))
    tasks = [asyncio.ensure_future(w) for w in writes]
    for _ in range(1000):
        if len(db._writes) >= queued:
            break
        await asyncio.sleep(0)
    assert len(db._writes) == queued
    gate.set()
    await blocker
    return list(await asyncio.gather(*tasks, return_exceptions=True))


def insert(n: int) -> Callable[[sqlite3.Connection], int]:
    def job(conn: sqlite3.Connection) -> int:
        conn.execute("INSERT INTO item (n) VALUES (?)", (n,))
        return n

    return job


def insert_then_fail(n: int) -> Callable[[sqlite3.Connection], int]:
    def job(conn: sqlite3.Connection) -> int:
        conn.execute("INSERT INTO item (n) VALUES (?)", (n,))
        raise Boom

    return job


async def stored(db: _Database) -> list[int]:
    rows = await db.read("items", lambda c: c.execute("SELECT n FROM item ORDER BY n").fetchall())
    return [n for (n,) in rows]


def test_writes_queued_together_share_one_transaction_and_one_commit(tmp_path: Path) -> None:
    async def body() -> None:
        db = await opened(tmp_path / "g.db")
        try:
            statements = await traced(db)
            results = await held(db, [db.write("w", insert(n)) for n in range(10)], 10)
            assert results == list(range(10))
            group = statements[statements.index("BEGIN IMMEDIATE") :]
            assert group.count("BEGIN IMMEDIATE") == 1
            assert group.count("COMMIT") == 1 and group[-1] == "COMMIT"
            assert group.count("SAVEPOINT job") == 10
            assert await stored(db) == list(range(10))
        finally:
            await db.close()

    run(body)


def test_a_failing_job_rolls_back_alone_and_its_caller_gets_its_exception(
    tmp_path: Path,
) -> None:
    async def body() -> None:
        db = await opened(tmp_path / "g.db")
        try:
            statements = await traced(db)
            writes = [
                db.write("w", insert(1)),
                db.write("w", insert_then_fail(2)),
                db.write("w", insert(3)),
            ]
            first, second, third = await held(db, writes, 3)
            assert (first, third) == (1, 3)
            assert isinstance(second, Boom)
            assert await stored(db) == [1, 3]
            assert statements.count("BEGIN IMMEDIATE") == 1
        finally:
            await db.close()

    run(body)


def test_a_job_sqlite_error_is_mapped_and_undoes_only_that_job(tmp_path: Path) -> None:
    async def body() -> None:
        db = await opened(tmp_path / "g.db")
        try:
            await db.write("w", insert(7))
            writes = [
                db.write("w", insert(1)),
                db.write("dup", insert(7)),
                db.write("w", insert(2)),
            ]
            first, duplicate, third = await held(db, writes, 3)
            assert (first, third) == (1, 2)
            assert isinstance(duplicate, StorageError)
            assert not isinstance(duplicate, StorageUnavailable)
            assert isinstance(duplicate.__cause__, sqlite3.IntegrityError)
            assert "dup" in str(duplicate)
            assert await stored(db) == [1, 2, 7]
        finally:
            await db.close()

    run(body)


def test_a_lost_transaction_fails_every_job_of_the_group_and_commits_nothing(
    tmp_path: Path,
) -> None:
    def breaks_the_transaction(conn: sqlite3.Connection) -> None:
        conn.execute("ROLLBACK")  # a bug: the group's transaction is gone

    async def body() -> None:
        db = await opened(tmp_path / "g.db")
        try:
            writes = [
                db.write("w", insert(1)),
                db.write("bad", breaks_the_transaction),
                db.write("w", insert(3)),
            ]
            outcomes = await held(db, writes, 3)
            assert all(isinstance(o, StorageError) for o in outcomes)
            assert await stored(db) == []
            # The next group works again.
            assert await db.write("w", insert(4)) == 4
            assert await stored(db) == [4]
        finally:
            await db.close()

    run(body)


def test_a_group_larger_than_the_bound_is_split_in_arrival_order(tmp_path: Path) -> None:
    n = GROUP_COMMIT_MAX_JOBS + 5

    async def body() -> None:
        db = await opened(tmp_path / "g.db")
        try:
            statements = await traced(db)
            results = await held(db, [db.write("w", insert(i)) for i in range(n)], n)
            assert results == list(range(n))
            assert statements.count("BEGIN IMMEDIATE") == 2
            assert await stored(db) == list(range(n))
        finally:
            await db.close()

    run(body)


def test_a_cancelled_caller_does_not_stop_its_job_from_committing(tmp_path: Path) -> None:
    async def body() -> None:
        db = await opened(tmp_path / "g.db")
        try:
            gate = threading.Event()
            blocker = asyncio.ensure_future(db.read("hold", lambda conn: gate.wait(HANG_S)))
            write = asyncio.ensure_future(db.write("w", insert(5)))
            await asyncio.sleep(0)
            write.cancel()
            gate.set()
            await blocker
            with pytest.raises(asyncio.CancelledError):
                await write
            assert await db.write("w", insert(6)) == 6  # after the cancelled one's group
            assert await stored(db) == [5, 6]
        finally:
            await db.close()

    run(body)


def test_writes_after_close_are_refused(tmp_path: Path) -> None:
    async def body() -> None:
        db = await opened(tmp_path / "g.db")
        await db.close()
        with pytest.raises(StorageUnavailable):
            await db.write("w", insert(1))

    run(body)


# ----------------------------------------------------------------------------- the mailbox contract


def test_enqueues_in_one_group_get_ids_in_submission_order_and_a_failed_tagger_stores_nothing(
    tmp_path: Path,
) -> None:
    def failing_tag(server_id: int, item: Any) -> bytes:
        raise Boom

    async def body() -> None:
        storage = await open_sqlite(tmp_path / "m.db")
        try:
            db = storage.mailboxes._db  # type: ignore[attr-defined]
            statements = await traced(db)
            sends = [
                storage.mailboxes.enqueue([mail(envelope=b"one")], 1, tag),
                storage.mailboxes.enqueue([mail(envelope=b"bad")], 2, failing_tag),
                storage.mailboxes.enqueue([mail(envelope=b"two"), mail(to=(b"bob", 2))], 3, tag),
                storage.mailboxes.enqueue([mail(envelope=b"three")], 4, tag),
            ]
            one, bad, two, three = await held(db, sends, 4)
            assert statements.count("BEGIN IMMEDIATE") == 1
            assert isinstance(bad, Boom)
            assert one == (1,) and two == (2, 3) and three == (4,)  # no id lost to the failure
            fetched = await storage.mailboxes.fetch(b"bob", 1, 0, 10)
            assert [(m.id, m.envelope) for m in fetched] == [
                (1, b"one"), (2, b"two"), (4, b"three")
            ]  # fmt: skip
            assert await storage.mailboxes.depth(b"bob", 1) == 3
        finally:
            await storage.close()

    run(body)


def test_the_depth_bound_holds_across_enqueues_of_one_group(tmp_path: Path) -> None:
    async def body() -> None:
        storage = await open_sqlite(tmp_path / "m.db", limits=StorageLimits(mailbox_depth=2))
        try:
            db = storage.mailboxes._db  # type: ignore[attr-defined]
            sends = [storage.mailboxes.enqueue([mail()], i, tag) for i in range(3)]
            first, second, third = await held(db, sends, 3)
            assert (first, second) == ((1,), (2,))
            assert isinstance(third, LimitExceeded)
            assert await storage.mailboxes.depth(b"bob", 1) == 2
            # Acknowledgements share groups with enqueues, in arrival order.
            ops = [
                storage.mailboxes.ack(b"bob", 1, [1]),
                storage.mailboxes.enqueue([mail()], 9, tag),
            ]
            removed, ids = await held(db, ops, 2)
            assert (removed, ids) == (1, (3,))
        finally:
            await storage.close()

    run(body)
