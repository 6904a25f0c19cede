"""What only the SQLite backend promises: its file settings, its migrations, its error mapping,
correctness across connections and processes, and durability when the process is killed."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from overt.storage import (
    OneTimeKind,
    PrekeyRecord,
    Storage,
    StorageError,
    StorageUnavailable,
    open_sqlite,
)
from overt.storage.sqlite import BUSY_TIMEOUT_MS, MIGRATIONS, apply_migrations

from .support import mail, tag

T = TypeVar("T")


def run(
    path: Path, body: Callable[[Storage], Awaitable[T]], busy_timeout_ms: int = BUSY_TIMEOUT_MS
) -> T:
    async def main() -> T:
        storage = await open_sqlite(path, busy_timeout_ms=busy_timeout_ms)
        try:
            return await body(storage)
        finally:
            await storage.close()

    return asyncio.run(main())


def versions(path: Path) -> list[int]:
    with sqlite3.connect(path) as conn:
        return [v for (v,) in conn.execute("SELECT version FROM schema_version ORDER BY version")]


def tables(conn: sqlite3.Connection) -> set[str]:
    return {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


# ----------------------------------------------------------------------------- file and schema


def test_opening_an_empty_file_migrates_it_to_the_latest_version_in_wal_mode(
    tmp_path: Path,
) -> None:
    path = tmp_path / "new.db"

    async def nothing(s: Storage) -> None:
        return None

    run(path, nothing)
    assert versions(path) == list(range(1, len(MIGRATIONS) + 1))
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert {"account", "device", "mail", "attachment", "one_time_prekey"} <= tables(conn)
    run(path, nothing)  # reopening applies nothing twice
    assert versions(path) == list(range(1, len(MIGRATIONS) + 1))


def test_a_failing_migration_applies_nothing(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "m.db", isolation_level=None)
    broken = (*MIGRATIONS, "CREATE TABLE extra (a INTEGER); SELECT * FROM no_such_table;")
    with pytest.raises(StorageError) as caught:
        apply_migrations(conn, broken)
    assert isinstance(caught.value.__cause__, sqlite3.Error)
    assert tables(conn) == set()
    assert apply_migrations(conn) == len(MIGRATIONS)
    assert "extra" not in tables(conn)
    conn.close()


def test_only_pending_migrations_are_applied_in_order(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "m.db", isolation_level=None)
    first = ("CREATE TABLE t (a INTEGER); INSERT INTO t VALUES (1);",)
    assert apply_migrations(conn, first) == 1
    second = (*first, "INSERT INTO t VALUES (2); -- a comment; with a semicolon\n", "")
    assert apply_migrations(conn, second) == 3
    assert conn.execute("SELECT a FROM t ORDER BY a").fetchall() == [(1,), (2,)]
    assert [v for (v,) in conn.execute("SELECT version FROM schema_version")] == [1, 2, 3]
    conn.close()


def test_a_database_from_a_newer_build_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    conn = sqlite3.connect(path, isolation_level=None)
    apply_migrations(conn)
    conn.execute("INSERT INTO schema_version VALUES (?)", (len(MIGRATIONS) + 1,))
    conn.close()
    with pytest.raises(StorageError, match="newer"):
        asyncio.run(open_sqlite(path))


def test_a_file_that_is_not_a_database_is_a_storage_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not a database, it is junk" * 200)
    with pytest.raises(StorageError) as caught:
        asyncio.run(open_sqlite(path))
    assert not isinstance(caught.value, StorageUnavailable)
    assert isinstance(caught.value.__cause__, sqlite3.DatabaseError)


def test_a_file_locked_by_another_writer_is_unavailable_not_absent(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"

    async def body(s: Storage) -> None:
        locker = sqlite3.connect(path, isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(StorageUnavailable) as caught:
                await s.mailboxes.enqueue([mail()], 0, tag)
            assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
            assert caught.value.status_hint == 503
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        assert await s.mailboxes.depth(b"bob", 1) == 0
        await s.mailboxes.enqueue([mail()], 0, tag)  # usable again once the lock is gone

    run(path, body, busy_timeout_ms=0)


# ----------------------------------------------------------------------------- several connections


def _in_threads(count: int, work: Callable[[int], list[T]]) -> list[list[T]]:
    """Run ``work(i)`` in ``count`` threads released together; re-raise any failure."""
    barrier = threading.Barrier(count)
    results: list[list[T]] = [[] for _ in range(count)]
    errors: list[BaseException] = []

    def target(i: int) -> None:
        try:
            barrier.wait()
            results[i] = work(i)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def test_two_stores_on_one_file_never_hand_out_a_one_time_prekey_twice(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    kind = OneTimeKind.X25519
    stock = [PrekeyRecord(i, b"k%d" % i) for i in range(200)]

    async def fill(s: Storage) -> None:
        await s.prekeys.add_one_time(b"alice", 1, kind, stock)

    run(path, fill)

    def taker(_: int) -> list[PrekeyRecord]:
        async def body(s: Storage) -> list[PrekeyRecord]:
            taken = []
            while (key := await s.prekeys.take_one_time(b"alice", 1, kind)) is not None:
                taken.append(key)
            return taken

        return run(path, body)

    first, second = _in_threads(2, taker)
    assert not {k.id for k in first} & {k.id for k in second}
    assert sorted(first + second, key=lambda k: k.id) == stock


def test_two_stores_on_one_file_assign_unique_increasing_mail_ids(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"

    def sender(n: int) -> list[int]:
        async def body(s: Storage) -> list[int]:
            ids: list[int] = []
            for i in range(50):
                ids += await s.mailboxes.enqueue([mail(envelope=b"%d-%d" % (n, i))], i, tag)
            return ids

        return run(path, body)

    first, second = _in_threads(2, sender)
    assert first == sorted(first)
    assert second == sorted(second)
    assert len(set(first) | set(second)) == 100

    async def fetch_all(s: Storage) -> list[int]:
        return [m.id for m in await s.mailboxes.fetch(b"bob", 1, 0, 1000)]

    assert run(path, fetch_all) == sorted(first + second)


# ----------------------------------------------------------------------------- crash durability

_CHILD = """
import asyncio, sys
from overt.storage import NewMail, open_sqlite

async def main():
    storage = await open_sqlite(sys.argv[1])
    ids = await storage.mailboxes.enqueue(
        [NewMail(b"bob", d, b"alice", 1, b"envelope-%d" % d) for d in (1, 2, 3)],
        1234,
        lambda server_id, item: b"tag-%d" % server_id,
    )
    print(" ".join(map(str, ids)), flush=True)
    await asyncio.Event().wait()  # acknowledged; now wait to be killed

asyncio.run(main())
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_an_acknowledged_enqueue_survives_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL
    ids = [int(x) for x in line.split()]
    assert len(ids) == 3

    async def body(s: Storage) -> None:
        for d, server_id in zip((1, 2, 3), ids, strict=True):
            (m,) = await s.mailboxes.fetch(b"bob", d, 0, 10)
            assert (m.id, m.envelope, m.server_time) == (server_id, b"envelope-%d" % d, 1234)
            assert m.reporting_tag == b"tag-%d" % server_id

    run(path, body)


def test_the_depth_counters_match_the_stored_mail(tmp_path: Path) -> None:
    path = tmp_path / "depth.db"

    async def body(s: Storage) -> None:
        ids = await s.mailboxes.enqueue([mail(to=(b"bob", d % 3)) for d in range(12)], 0, tag)
        await s.mailboxes.ack(b"bob", 0, ids[:6])
        await s.mailboxes.ack(b"bob", 1, ids)

    run(path, body)
    with sqlite3.connect(path) as conn:
        counted = conn.execute(
            "SELECT recipient_account, recipient_device, count(*) FROM mail "
            "GROUP BY recipient_account, recipient_device ORDER BY recipient_device"
        ).fetchall()
        kept = conn.execute("SELECT * FROM mailbox ORDER BY recipient_device").fetchall()
    assert counted == kept == [(b"bob", 0, 2), (b"bob", 2, 4)]
