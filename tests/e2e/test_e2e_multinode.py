"""Two server nodes of one deployment, end to end: real processes, one PostgreSQL, one Redis.

Each test starts two ``overt server --storage postgres --pubsub redis`` processes on different
loopback ports, against a fresh schema of the session's PostgreSQL (``tests/servers.py``) and
the test's own Redis. Node A starts first and creates the keys; node B gets a data directory
of its own holding copies of A's key files (as docs/deploy.md tells an operator to do).
Clients are the real :class:`overt.client.Client` over :class:`~overt.client.HttpTransport`,
receiving through each node's WebSocket push:

* clients on different nodes converse, each message pushed by the other node (a device's
  WebSocket is marked present on its node in Redis before anything is sent to it, so what
  arrives came through the cross-node wake-up, not the first read of the mailbox);
* node A is SIGKILLed in the middle of a burst of sends through it; its clients move to
  node B (a new transport on the same profile) and every message A acknowledged arrives,
  none shown twice;
* Redis goes away and comes back while a WebSocket on node B stays open: the message sent
  meanwhile through node A still reaches it (the connection refetches after the
  interruption).

Waits have generous deadlines that only catch hangs; nothing asserts how long anything takes.
Without PostgreSQL or Redis installed the tests are skipped, saying what to install (they fail
instead under ``OVERT_REQUIRE_SERVICES=1``, as in CI).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Final

import pytest
import redis.asyncio

from overt import launch
from overt.client import Client, HttpTransport, ServerUnreachable
from overt.client.errors import BadResponse
from overt.client.model import Message
from overt.devservices import free_port
from servers import RedisServer, postgres_dsn, redis_server  # noqa: F401  (fixtures)
from storage.support import fresh_schema

pytestmark = pytest.mark.slow

HANG_GUARD_S: Final = 30.0
"""Deadline of every wait for something that happens in another process (a hang, not a
timing: it is never the point of a test)."""

BURST_MAX: Final = 300
"""Sends of the crash burst (node A is killed long before the last one)."""

KILL_AFTER: Final = 40
"""Sends node A acknowledges before it is killed."""

POLL_S: Final = 0.02

KEY_FILES: Final = ("franking.key", "provider.key", "log.key", "vrf.key", "deployment.json")
"""What every node of a deployment must hold identical copies of (docs/deploy.md)."""

PRESENCE_PATTERN: Final = "overt:presence:*"


@pytest.fixture
def database(postgres_dsn: str) -> Iterator[str]:  # noqa: F811 - the fixture, by name
    """A DSN on a fresh, empty schema; dropped after the test."""
    dsn, drop = fresh_schema(postgres_dsn)
    try:
        yield dsn
    finally:
        drop()


def node(name: str, data_dir: Path, port: int, dsn: str, redis_url: str) -> launch.Service:
    return launch.Service(
        f"node {name}",
        ["server", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir),
         "--storage", "postgres", "--database-url", dsn, "--pubsub", "redis",
         "--redis-url", redis_url, "--node-id", name, "--log-level", "warning"],
    )  # fmt: skip


@contextlib.contextmanager
def two_nodes(tmp_path: Path, dsn: str, redis_url: str) -> Iterator[tuple[launch.Service, ...]]:
    """Nodes ``a`` and ``b``: A creates the keys, B serves with copies of them. Both are
    stopped at the end (SIGTERM, SIGKILL if need be), also when a test killed one already."""
    a = node("a", tmp_path / "node-a", free_port(), dsn, redis_url)
    b = node("b", tmp_path / "node-b", free_port(), dsn, redis_url)
    try:
        a.start()
        (tmp_path / "node-b").mkdir(mode=0o700)
        for name in KEY_FILES:
            shutil.copy2(tmp_path / "node-a" / name, tmp_path / "node-b" / name)
        b.start()
        yield a, b
    finally:
        a.stop()
        b.stop()


class Inbox:
    """Everything one client's :meth:`Client.listen` shows, collected by a background task."""

    def __init__(self, client: Client, shown: list[str] | None = None) -> None:
        self.shown: list[str] = [] if shown is None else shown
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._run(client))

    async def _run(self, client: Client) -> None:
        async for message in client.listen():
            self._add(message)

    def _add(self, message: Message) -> None:
        self.shown.append(message.text)
        self._changed.set()

    async def wait_for(self, wanted: set[str]) -> None:
        """Return once every text of ``wanted`` has been shown (fail on a hang)."""
        async with asyncio.timeout(HANG_GUARD_S):
            while not wanted <= set(self.shown):
                if self._task.done():
                    self._task.result()  # raises what ended the listener
                    raise AssertionError("the listener ended")
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await self._changed.wait()

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def present_on(redis_url: str, node_id: str, count: int) -> None:
    """Wait until ``count`` devices are marked connected to ``node_id`` in Redis."""
    r = redis.asyncio.Redis.from_url(redis_url)
    try:
        async with asyncio.timeout(HANG_GUARD_S):
            while True:
                keys = await r.keys(PRESENCE_PATTERN)
                found = 0
                for key in keys:
                    members = await r.zrange(key, 0, -1)
                    found += node_id.encode() in members
                if found >= count:
                    return
                await asyncio.sleep(POLL_S)
    finally:
        await r.aclose()


@contextlib.asynccontextmanager
async def clients(tmp_path: Path, *where: tuple[str, HttpTransport]) -> AsyncIterator[list[Client]]:
    opened: list[Client] = []
    try:
        for name, transport in where:
            opened.append(await Client.open(tmp_path / name, transport))
        yield opened
    finally:
        for c in opened:
            await c.close()


async def test_clients_on_different_nodes_converse(
    tmp_path: Path,
    database: str,
    redis_server: RedisServer,  # noqa: F811 - the fixture, by name
) -> None:
    with two_nodes(tmp_path, database, redis_server.url) as (a, b):
        to_a, to_b = HttpTransport(a.url), HttpTransport(b.url)
        try:
            async with clients(tmp_path, ("alice", to_a), ("bob", to_b)) as (alice, bob):
                await alice.create_account("alice")
                await bob.create_account("bob")
                bob_inbox, alice_inbox = Inbox(bob), Inbox(alice)
                try:
                    await present_on(redis_server.url, "a", 1)
                    await present_on(redis_server.url, "b", 1)
                    # Both WebSockets are open: what they show now was pushed on a wake-up
                    # published by the other node.
                    await alice.send("bob", "hello from node A")
                    await bob_inbox.wait_for({"hello from node A"})
                    await bob.send("alice", "hello back from node B")
                    await alice_inbox.wait_for({"hello back from node B"})
                    for i in range(5):
                        await alice.send("bob", f"a{i}")
                        await bob.send("alice", f"b{i}")
                    await bob_inbox.wait_for({f"a{i}" for i in range(5)})
                    await alice_inbox.wait_for({f"b{i}" for i in range(5)})
                finally:
                    await bob_inbox.stop()
                    await alice_inbox.stop()
                assert bob_inbox.shown == ["hello from node A", *(f"a{i}" for i in range(5))]
                assert alice_inbox.shown == ["hello back from node B", *(f"b{i}" for i in range(5))]
                history = [m.text for m in await bob.history("alice", limit=100)]
                assert len(history) == len(set(history)) == 12
        finally:
            await to_a.aclose()
            await to_b.aclose()


async def test_node_killed_mid_burst_loses_nothing_acknowledged(
    tmp_path: Path,
    database: str,
    redis_server: RedisServer,  # noqa: F811 - the fixture, by name
) -> None:
    with two_nodes(tmp_path, database, redis_server.url) as (a, b):
        to_a, to_b = HttpTransport(a.url), HttpTransport(b.url)
        acknowledged: dict[str, list[str]] = {"bob": [], "carol": []}
        bob_shown: list[str] = []
        carol = await Client.open(tmp_path / "carol", to_b)  # on node B throughout
        carol_inbox: Inbox | None = None
        try:
            async with clients(tmp_path, ("alice", to_a), ("bob", to_a)) as (alice, bob):
                for c, name in ((alice, "alice"), (bob, "bob"), (carol, "carol")):
                    await c.create_account(name)
                await alice.send("bob", "warm-up")
                await alice.send("carol", "warm-up")
                bob_inbox, carol_inbox = Inbox(bob, bob_shown), Inbox(carol)
                try:
                    await bob_inbox.wait_for({"warm-up"})
                    await carol_inbox.wait_for({"warm-up"})

                    async def burst() -> None:
                        for i in range(BURST_MAX):
                            to = "bob" if i % 2 else "carol"
                            text = f"burst {i}"
                            try:
                                await alice.send(to, text)
                            except (ServerUnreachable, BadResponse):
                                continue  # not acknowledged: a sender would retry it anew
                            acknowledged[to].append(text)

                    async def killer() -> None:
                        async with asyncio.timeout(HANG_GUARD_S):
                            while sum(map(len, acknowledged.values())) < KILL_AFTER:
                                await asyncio.sleep(0.005)
                        a.kill()

                    await asyncio.gather(burst(), killer())
                    assert not a.running()
                    total = sum(map(len, acknowledged.values()))
                    assert KILL_AFTER <= total < BURST_MAX
                finally:
                    await bob_inbox.stop()  # its node is gone; it moves to node B below
            # The same profiles, now through node B.
            async with clients(tmp_path, ("alice", to_b), ("bob", to_b)) as (alice, bob):
                bob_inbox = Inbox(bob, bob_shown)
                try:
                    await alice.send("bob", "after the failover")
                    await alice.send("carol", "after the failover")
                    wanted_bob = {"warm-up", *acknowledged["bob"], "after the failover"}
                    wanted_carol = {"warm-up", *acknowledged["carol"], "after the failover"}
                    await bob_inbox.wait_for(wanted_bob)
                    await carol_inbox.wait_for(wanted_carol)
                finally:
                    await bob_inbox.stop()
                    await carol_inbox.stop()
                for c, shown in ((bob, bob_inbox.shown), (carol, carol_inbox.shown)):
                    assert len(shown) == len(set(shown)), "a message was shown twice"
                    history = [m.text for m in await c.history("alice", limit=10_000)]
                    assert len(history) == len(set(history)), "a message was stored twice"
                missing = wanted_bob - set(bob_inbox.shown)
                missing |= wanted_carol - set(carol_inbox.shown)
                assert missing == set(), f"acknowledged but lost: {sorted(missing)[:5]}"
        finally:
            if carol_inbox is not None:
                await carol_inbox.stop()
            await carol.close()
            await to_a.aclose()
            await to_b.aclose()


async def test_websocket_refetches_after_a_redis_outage(
    tmp_path: Path,
    database: str,
    redis_server: RedisServer,  # noqa: F811 - the fixture, by name
) -> None:
    with two_nodes(tmp_path, database, redis_server.url) as (a, b):
        to_a, to_b = HttpTransport(a.url), HttpTransport(b.url)
        try:
            async with clients(tmp_path, ("alice", to_a), ("bob", to_b)) as (alice, bob):
                await alice.create_account("alice")
                await bob.create_account("bob")
                await alice.send("bob", "before")
                bob_inbox = Inbox(bob)
                try:
                    await bob_inbox.wait_for({"before"})
                    await present_on(redis_server.url, "b", 1)
                    redis_server.stop()
                    # Stored through node A; its wake-up is lost with Redis.
                    await alice.send("bob", "during the outage")
                    redis_server.start()  # same port: both nodes reconnect by themselves
                    await bob_inbox.wait_for({"during the outage"})
                    await alice.send("bob", "after")
                    await bob_inbox.wait_for({"after"})
                finally:
                    await bob_inbox.stop()
                assert bob_inbox.shown == ["before", "during the outage", "after"]
        finally:
            await to_a.aclose()
            await to_b.aclose()
