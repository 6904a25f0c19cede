"""What only the PostgreSQL backend promises: its migrations, its error mapping, and the
contract's guarantees across several nodes (several pools on one database) rather than within
one process.

Each test works in a schema of its own (``support.fresh_schema``) on the server of the
``postgres_dsn`` fixture. Where a test needs two operations to overlap, it makes them overlap
with events and waits for PostgreSQL to report the wait (``pg_locks``), never with sleeps.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from overt.errors import LimitExceeded
from overt.storage import (
    DeviceAuth,
    NewMail,
    OneTimeKind,
    PrekeyRecord,
    StaleSerial,
    Storage,
    StorageError,
    StorageLimits,
    StorageUnavailable,
)
from overt.storage._postgres_schema import MAIL_ID_LOCK
from overt.storage.postgres import MIGRATIONS, apply_migrations, open_postgres
from servers import REQUIRE_SERVICES_ENV, service_missing

from .support import account, fresh_schema, mail, tag

T = TypeVar("T")
DEADLINE_S = 30.0


@pytest.fixture
def dsn(postgres_dsn: str) -> Iterator[str]:
    """A DSN whose connections work in a fresh schema, dropped after the test."""
    scoped, drop = fresh_schema(postgres_dsn)
    try:
        yield scoped
    finally:
        drop()


def run(dsn: str, body: Callable[[Storage], Awaitable[T]], **options: Any) -> T:
    async def main() -> T:
        storage = await open_postgres(dsn, **options)
        try:
            return await body(storage)
        finally:
            await storage.close()

    return asyncio.run(main())


async def sql(dsn: str, query: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


def versions(dsn: str) -> list[int]:
    rows = asyncio.run(sql(dsn, "SELECT version FROM schema_version ORDER BY version"))
    return [r[0] for r in rows]


def tables(dsn: str) -> set[str]:
    rows = asyncio.run(
        sql(dsn, "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
    )
    return {r[0] for r in rows}


async def nothing(s: Storage) -> None:
    return None


# ============================================================================= schema


def test_opening_an_empty_database_migrates_it_once(dsn: str) -> None:
    run(dsn, nothing)
    assert versions(dsn) == list(range(1, len(MIGRATIONS) + 1))
    assert {"account", "device", "mail", "mailbox", "attachment", "one_time_prekey"} <= tables(dsn)
    assert {"log_leaf", "log_node", "log_checkpoint", "kt_record"} <= tables(dsn)
    run(dsn, nothing)  # reopening applies nothing twice
    assert versions(dsn) == list(range(1, len(MIGRATIONS) + 1))


def test_nodes_starting_at_once_migrate_exactly_once(dsn: str) -> None:
    async def main() -> None:
        nodes = await asyncio.gather(*(open_postgres(dsn, min_size=1) for _ in range(6)))
        for node in nodes:
            await node.close()

    asyncio.run(main())
    assert versions(dsn) == list(range(1, len(MIGRATIONS) + 1))


def test_a_failing_migration_applies_nothing(dsn: str) -> None:
    broken = (*MIGRATIONS, "CREATE TABLE extra (a integer); SELECT * FROM no_such_table;")

    async def main() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            with pytest.raises(StorageError) as caught:
                await apply_migrations(conn, broken)
            assert isinstance(caught.value.__cause__, asyncpg.UndefinedTableError)
            assert await apply_migrations(conn) == len(MIGRATIONS)
        finally:
            await conn.close()

    asyncio.run(main())
    assert "extra" not in tables(dsn)
    assert versions(dsn) == list(range(1, len(MIGRATIONS) + 1))


def test_only_pending_migrations_are_applied_in_order(dsn: str) -> None:
    first = ("CREATE TABLE t (a integer); INSERT INTO t VALUES (1);",)
    second = (*first, "INSERT INTO t VALUES (2); -- a comment; with a semicolon\n", "")

    async def main() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            assert await apply_migrations(conn, first) == 1
            assert await apply_migrations(conn, second) == 3
            assert [r[0] for r in await conn.fetch("SELECT a FROM t ORDER BY a")] == [1, 2]
        finally:
            await conn.close()

    asyncio.run(main())
    assert versions(dsn) == [1, 2, 3]


def test_a_database_from_a_newer_build_is_refused(dsn: str) -> None:
    run(dsn, nothing)
    asyncio.run(sql(dsn, "INSERT INTO schema_version (version) VALUES ($1)", len(MIGRATIONS) + 1))
    with pytest.raises(StorageError, match="newer"):
        run(dsn, nothing)


def test_the_log_and_key_directory_tables_refuse_rewrites(dsn: str) -> None:
    run(dsn, nothing)
    asyncio.run(sql(dsn, "INSERT INTO log_leaf (idx, hash, data) VALUES (0, 'h', 'd')"))
    asyncio.run(sql(dsn, "INSERT INTO kt_record VALUES ('alice', 1, 0, 'o', 'd')"))
    for statement in (
        "UPDATE log_leaf SET data = 'x'",
        "DELETE FROM log_leaf",
        "TRUNCATE log_node",
        "UPDATE kt_record SET opening = 'x'",
        "DELETE FROM kt_record",
        "TRUNCATE kt_record",
    ):
        with pytest.raises(asyncpg.RestrictViolationError):
            asyncio.run(sql(dsn, statement))


# ============================================================================= errors


def test_an_unreachable_server_is_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens once the socket is closed
    with pytest.raises(StorageUnavailable) as caught:
        run(f"postgresql://postgres@127.0.0.1:{port}/postgres", nothing)
    assert isinstance(caught.value.__cause__, OSError)


def test_a_missing_database_is_a_storage_error_not_unavailable(postgres_dsn: str) -> None:
    missing = urlunsplit(urlsplit(postgres_dsn)._replace(path="/no_such_database"))
    with pytest.raises(StorageError) as caught:
        run(missing, nothing)
    assert not isinstance(caught.value, StorageUnavailable)
    assert isinstance(caught.value.__cause__, asyncpg.InvalidCatalogNameError)


def test_a_write_that_waits_too_long_for_the_enqueue_lock_is_unavailable(dsn: str) -> None:
    async def body(s: Storage) -> None:
        holder = await asyncpg.connect(dsn)
        try:
            async with holder.transaction():
                await holder.execute("SELECT pg_advisory_xact_lock($1, $2)", *MAIL_ID_LOCK)
                with pytest.raises(StorageUnavailable) as caught:
                    await s.mailboxes.enqueue([mail()], 0, tag)
                assert isinstance(caught.value.__cause__, asyncpg.LockNotAvailableError)
                assert caught.value.status_hint == 503
        finally:
            await holder.close()
        assert await s.mailboxes.depth(b"bob", 1) == 0
        await s.mailboxes.enqueue([mail()], 0, tag)  # usable again once the lock is gone

    run(dsn, body, lock_timeout_ms=50)


def test_settings_in_the_dsn_win_over_the_defaults(dsn: str) -> None:
    async def body(s: Storage) -> None:
        holder = await asyncpg.connect(dsn)
        try:
            async with holder.transaction():
                await holder.execute("SELECT pg_advisory_xact_lock($1, $2)", *MAIL_ID_LOCK)
                with pytest.raises(StorageUnavailable):
                    await s.mailboxes.enqueue([mail()], 0, tag)
        finally:
            await holder.close()

    # The keyword says 10 minutes; the DSN's 50 ms is what applies.
    run(dsn + "&lock_timeout=50", body, lock_timeout_ms=600_000)


def test_a_node_whose_connections_are_cut_reports_unavailable_then_recovers(dsn: str) -> None:
    """A server restart or failover cuts every connection: operations then either succeed on
    a fresh connection or fail with StorageUnavailable, never another error, and the node
    recovers by itself."""
    name = f"overt-test-{uuid.uuid4().hex[:12]}"

    async def body(s: Storage) -> None:
        await s.mailboxes.enqueue([mail()], 0, tag)
        outcomes: list[str] = []
        for _ in range(3):
            await sql(
                dsn,
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = $1",
                name,
            )
            try:
                await s.mailboxes.enqueue([mail()], 0, tag)
                outcomes.append("ok")
            except StorageUnavailable:
                outcomes.append("unavailable")
        await s.mailboxes.enqueue([mail()], 0, tag)  # recovered
        assert await s.mailboxes.depth(b"bob", 1) == 2 + outcomes.count("ok")

    run(f"{dsn}&application_name={name}", body, max_size=1)


def test_missing_services_skip_unless_ci_requires_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(REQUIRE_SERVICES_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception):
        service_missing("no server here")
    monkeypatch.setenv(REQUIRE_SERVICES_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="no server here"):
        service_missing("no server here")


# ============================================================================= several nodes


def two_nodes(
    dsn: str, body: Callable[[Storage, Storage], Awaitable[T]], limits: StorageLimits | None = None
) -> T:
    """Run ``body`` with two Storage objects (two pools, as on two server nodes)."""

    async def main() -> T:
        a = await open_postgres(dsn, limits=limits, max_size=6)
        b = await open_postgres(dsn, limits=limits, max_size=6)
        try:
            return await body(a, b)
        finally:
            await a.close()
            await b.close()

    return asyncio.run(main())


def test_two_nodes_never_hand_out_a_one_time_prekey_twice(dsn: str) -> None:
    kind = OneTimeKind.X25519
    stock = [PrekeyRecord(i, b"k%d" % i) for i in range(300)]

    async def body(a: Storage, b: Storage) -> None:
        await a.prekeys.add_one_time(b"alice", 1, kind, stock)

        async def drain(s: Storage) -> list[PrekeyRecord]:
            taken = []
            while (key := await s.prekeys.take_one_time(b"alice", 1, kind)) is not None:
                taken.append(key)
            return taken

        batches = await asyncio.gather(*(drain(s) for s in (a, b, a, b, a, b)))
        every = [k for batch in batches for k in batch]
        assert sorted(every, key=lambda k: k.id) == stock  # each key exactly once
        assert all(batch == sorted(batch, key=lambda k: k.id) for batch in batches)
        assert await b.prekeys.count_one_time(b"alice", 1, kind) == 0

    two_nodes(dsn, body)


def test_two_nodes_adding_prekeys_cannot_both_pass_the_pool_bound(dsn: str) -> None:
    kind = OneTimeKind.ML_KEM_768

    async def body(a: Storage, b: Storage) -> None:
        results = await asyncio.gather(
            *(
                s.prekeys.add_one_time(
                    b"alice", 1, kind, [PrekeyRecord(100 * i + j, b"k") for j in range(4)]
                )
                for i, s in enumerate((a, b, a, b))
            ),
            return_exceptions=True,
        )
        assert sum(r is None for r in results) == 2
        assert all(isinstance(r, LimitExceeded) for r in results if r is not None)
        assert await a.prekeys.count_one_time(b"alice", 1, kind) == 8

    two_nodes(dsn, body, StorageLimits(one_time_prekeys=10))


def test_two_nodes_swapping_a_device_list_have_exactly_one_winner(dsn: str) -> None:
    async def body(a: Storage, b: Storage) -> None:
        await a.accounts.create(account())
        results = await asyncio.gather(
            *(
                s.accounts.replace_device_list(
                    b"alice",
                    expected_serial=1,
                    serial=2,
                    device_list=b"from-%d" % i,
                    devices=[DeviceAuth(i, b"k")],
                )
                for i, s in enumerate((a, b) * 5)
            ),
            return_exceptions=True,
        )
        winners = [i for i, r in enumerate(results) if r is None]
        assert len(winners) == 1
        assert all(isinstance(r, StaleSerial) for r in results if r is not None)
        assert await b.accounts.list_devices(b"alice") == (winners[0],)

    two_nodes(dsn, body)


def test_two_nodes_cannot_both_pass_the_mailbox_bound(dsn: str) -> None:
    async def body(a: Storage, b: Storage) -> None:
        results = await asyncio.gather(
            *(s.mailboxes.enqueue([mail()] * 3, 0, tag) for s in (a, b, a, b)),
            return_exceptions=True,
        )
        assert sum(isinstance(r, tuple) for r in results) == 1
        assert all(isinstance(r, LimitExceeded) for r in results if not isinstance(r, tuple))
        assert await b.mailboxes.depth(b"bob", 1) == 3

    two_nodes(dsn, body, StorageLimits(mailbox_depth=5))


def test_two_nodes_assign_unique_ids_that_fetch_returns_in_order(dsn: str) -> None:
    async def body(a: Storage, b: Storage) -> None:
        async def sender(s: Storage, n: int) -> list[int]:
            ids: list[int] = []
            for i in range(25):
                ids += await s.mailboxes.enqueue(
                    [mail(envelope=b"%d-%d" % (n, i)), mail(to=(b"bob", 2))], i, tag
                )
            return ids

        sent = await asyncio.gather(*(sender(s, n) for n, s in enumerate((a, b, a, b))))
        every = [i for ids in sent for i in ids]
        assert len(set(every)) == 200
        assert all(ids == sorted(ids) for ids in sent)
        fetched = await a.mailboxes.fetch(b"bob", 1, 0, 1000)
        assert [m.id for m in fetched] == sorted(ids for s in sent for ids in s[::2])

    two_nodes(dsn, body)


Outcome = tuple[int, ...] | BaseException


def behind_a_held_enqueue(
    dsn: str, first: list[NewMail], second: list[NewMail], limits: StorageLimits | None = None
) -> tuple[Outcome, Outcome]:
    """Node A enqueues ``first`` and is held inside its transaction (in its tagger, after it
    drew its ids); node B then enqueues ``second``, which must wait for A's lock. Once
    PostgreSQL shows B waiting, check that nothing is visible yet, release A, and return what
    each node's enqueue returned or raised."""
    inside_a = threading.Event()
    release_a = threading.Event()
    results: dict[str, Outcome] = {}

    def held_tag(server_id: int, item: NewMail) -> bytes:
        inside_a.set()
        release_a.wait(DEADLINE_S)
        return tag(server_id, item)

    def node(name: str, batch: list[NewMail], tagger: Callable[[int, NewMail], bytes]) -> None:
        async def body(s: Storage) -> tuple[int, ...]:
            return await s.mailboxes.enqueue(batch, 0, tagger)

        try:
            results[name] = run(dsn, body, limits=limits)
        except BaseException as e:
            results[name] = e

    async def b_waits_for_the_lock() -> None:
        for _ in range(int(DEADLINE_S / 0.01)):
            rows = await sql(
                dsn, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            )
            if rows[0][0] >= 1:
                return
            await asyncio.sleep(0.01)
        pytest.fail("node B never waited for node A's lock")

    async def visible(s: Storage) -> int:
        return await s.mailboxes.depth(b"bob", 1)

    run(dsn, nothing)  # migrate first, so that the nodes only race on the enqueue
    a = threading.Thread(target=node, args=("a", first, held_tag))
    b = threading.Thread(target=node, args=("b", second, tag))
    a.start()
    try:
        assert inside_a.wait(DEADLINE_S)
        b.start()
        asyncio.run(b_waits_for_the_lock())
        assert run(dsn, visible) == 0  # neither is visible while A holds the lock
    finally:
        release_a.set()
        a.join(DEADLINE_S)
        if b.ident is not None:
            b.join(DEADLINE_S)
    return results["a"], results["b"]


def test_an_enqueue_waits_for_the_one_that_drew_ids_before_it_to_commit(dsn: str) -> None:
    """Commit order: while node A has drawn its id and not committed, node B's enqueue waits
    for A's commit and gets a larger id, so no reader can see B's id while A's smaller one is
    still to come."""
    ids_a, ids_b = behind_a_held_enqueue(dsn, [mail(envelope=b"a")], [mail(envelope=b"b")])
    assert isinstance(ids_a, tuple), ids_a
    assert isinstance(ids_b, tuple), ids_b
    assert ids_b[0] > ids_a[0]

    async def everything(s: Storage) -> list[tuple[int, bytes]]:
        return [(m.id, m.envelope) for m in await s.mailboxes.fetch(b"bob", 1, 0, 10)]

    assert run(dsn, everything) == [(ids_a[0], b"a"), (ids_b[0], b"b")]


def test_an_enqueue_behind_another_checks_the_depth_that_one_committed(dsn: str) -> None:
    """The depth check runs after the lock is granted, on a fresh snapshot: B sees the mail A
    committed while B waited, and the bound holds."""
    limits = StorageLimits(mailbox_depth=2)
    ids_a, refused = behind_a_held_enqueue(dsn, [mail(), mail()], [mail()], limits)
    assert isinstance(ids_a, tuple), ids_a
    assert isinstance(refused, LimitExceeded), refused

    async def depth(s: Storage) -> int:
        return await s.mailboxes.depth(b"bob", 1)

    assert run(dsn, depth) == 2


def test_the_depth_counters_match_the_stored_mail(dsn: str) -> None:
    async def body(s: Storage) -> None:
        ids = await s.mailboxes.enqueue([mail(to=(b"bob", d % 3)) for d in range(12)], 0, tag)
        await asyncio.gather(
            s.mailboxes.ack(b"bob", 0, ids[:3]),
            s.mailboxes.ack(b"bob", 0, ids[3:6]),
            s.mailboxes.ack(b"bob", 1, ids),
            s.mailboxes.ack(b"bob", 1, ids[:6]),
        )

    run(dsn, body)
    counted = asyncio.run(
        sql(
            dsn,
            "SELECT recipient_account, recipient_device, count(*) FROM mail "
            "GROUP BY recipient_account, recipient_device ORDER BY recipient_device",
        )
    )
    kept = asyncio.run(sql(dsn, "SELECT * FROM mailbox ORDER BY recipient_device"))
    assert (
        [tuple(r) for r in counted] == [tuple(r) for r in kept] == [(b"bob", 0, 2), (b"bob", 2, 4)]
    )
