"""RedisPubSub: wake-ups and presence shared by server nodes through a real Redis.

Each ``RedisPubSub`` plays one server node; the ``redis_server`` fixture (``tests/servers.py``)
starts a throwaway ``redis-server`` on loopback for each test and stops it afterwards. Waits for
something that happens in the background (a reconnection, a TTL lapsing) poll with a generous
deadline; no test asserts how long anything takes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
import redis.asyncio
import redis.exceptions

from overt.errors import ConfigurationError
from overt.storage import PubSub, StorageUnavailable
from overt.storage import redis_pubsub as module
from overt.storage.errors import InvalidArgument
from overt.storage.redis_pubsub import KEY_PREFIX, RedisPubSub
from servers import RedisServer

DEADLINE_S = 20.0


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll ``check`` until it holds; fail after :data:`DEADLINE_S` (a hang, not a timing)."""
    for _ in range(int(DEADLINE_S / 0.02)):
        if await check():
            return
        await asyncio.sleep(0.02)
    pytest.fail(f"never happened: {what}")


async def redis_subscribers(url: str, channel: str) -> int:
    """How many connections Redis itself has subscribed to ``channel``."""
    client = redis.asyncio.Redis.from_url(url)
    try:
        ((_, count),) = await client.pubsub_numsub(channel)
        return int(count)
    finally:
        await client.aclose()


def test_a_message_published_on_one_node_reaches_subscribers_on_every_node(
    redis_server: RedisServer,
) -> None:
    async def main() -> None:
        async with RedisPubSub(redis_server.url) as a, RedisPubSub(redis_server.url) as b:
            node_a: PubSub = a
            node_b: PubSub = b
            await node_a.publish("nobody-listens", b"lost")  # no subscriber: fine
            async with (
                node_b.subscribe("dev-1") as on_b,
                node_b.subscribe("dev-1") as also_on_b,
                node_a.subscribe("dev-1") as on_a,
                node_b.subscribe("dev-2") as other,
            ):
                for m in (b"1", b"2", b"3"):
                    await node_a.publish("dev-1", m)
                await node_b.publish("dev-2", b"x")
                assert [await on_b.get() for _ in range(3)] == [b"1", b"2", b"3"]
                assert [await also_on_b.get() for _ in range(3)] == [b"1", b"2", b"3"]
                assert [await on_a.get() for _ in range(3)] == [b"1", b"2", b"3"]
                assert await other.get() == b"x"
                assert on_b.channel == "dev-1"
                # One Redis subscription per node and channel, however many local subscribers.
                assert await redis_subscribers(redis_server.url, "dev-1") == 2
                assert b.subscriber_count("dev-1") == 2

    asyncio.run(main())


def test_a_subscriber_iterates_and_leaving_unsubscribes_from_redis(
    redis_server: RedisServer,
) -> None:
    async def main() -> None:
        async with RedisPubSub(redis_server.url) as a, RedisPubSub(redis_server.url) as b:
            received: list[bytes] = []
            subscribed = asyncio.Event()

            async def listener() -> None:
                async with b.subscribe("dev") as sub:
                    subscribed.set()
                    async for message in sub:
                        received.append(message)
                        if message == b"stop":
                            return

            task = asyncio.create_task(listener())
            await subscribed.wait()
            await a.publish("dev", b"wake")
            await a.publish("dev", b"stop")
            await task
            assert received == [b"wake", b"stop"]
            assert b.subscriber_count("dev") == 0

            async def unsubscribed() -> bool:
                return await redis_subscribers(redis_server.url, "dev") == 0

            await eventually(unsubscribed, "the node unsubscribes when its last subscriber leaves")
            async with b.subscribe("dev") as again:  # and subscribes again
                await a.publish("dev", b"fresh")
                assert await again.get() == b"fresh"

    asyncio.run(main())


def test_a_slow_subscriber_loses_the_oldest_messages_and_counts_them(
    redis_server: RedisServer,
) -> None:
    async def main() -> None:
        async with (
            RedisPubSub(redis_server.url) as a,
            RedisPubSub(redis_server.url, queue_max=2) as b,
            b.subscribe("dev") as slow,
            b.subscribe("marker") as marker,
        ):
            for m in (b"1", b"2", b"3", b"4"):
                await a.publish("dev", m)
            # Redis delivers to a node in publish order, across channels: once the marker is
            # in, all four reached the node.
            await a.publish("marker", b"done")
            assert await marker.get() == b"done"
            assert slow.dropped == 2
            assert [await slow.get(), await slow.get()] == [b"3", b"4"]

    asyncio.run(main())


def test_subscribers_get_messages_again_after_redis_restarts(redis_server: RedisServer) -> None:
    async def main() -> None:
        async with (
            RedisPubSub(redis_server.url) as a,
            RedisPubSub(redis_server.url) as b,
            b.subscribe("dev") as sub,
        ):
            await a.publish("dev", b"before")
            assert await sub.get() == b"before"

            redis_server.stop()
            with pytest.raises(StorageUnavailable) as caught:
                await a.publish("dev", b"while down")
            assert isinstance(caught.value.__cause__, redis.exceptions.ConnectionError)
            redis_server.start()

            async def resubscribed() -> bool:
                return await redis_subscribers(redis_server.url, "dev") == 1

            await eventually(resubscribed, "the node subscribes again after reconnecting")
            await a.publish("dev", b"after")
            assert await sub.get() == b"after"
            assert sub.interruptions == 1
            assert b.reconnects == 1
            assert sub.dropped == 0

    asyncio.run(main())


def test_a_connection_that_stops_answering_is_replaced(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(module, "HEARTBEAT_S", 0.1)

    async def main() -> None:
        admin = redis.asyncio.Redis.from_url(redis_server.url)
        async with (
            RedisPubSub(redis_server.url) as a,
            RedisPubSub(redis_server.url) as b,
            b.subscribe("dev") as sub,
        ):
            # Redis stays connected but answers nobody for a while: a half-open link.
            await admin.client_pause(1000, all=True)

            async def replaced() -> bool:
                return b.reconnects >= 1

            await eventually(replaced, "the silent connection is taken for dead")

            async def resubscribed() -> bool:
                return await redis_subscribers(redis_server.url, "dev") == 1

            await eventually(resubscribed, "the node subscribes again once Redis answers")
            await a.publish("dev", b"after")
            assert await sub.get() == b"after"
            assert sub.interruptions >= 1
        await admin.aclose()

    asyncio.run(main())


def test_subscribing_while_redis_is_down_fails_instead_of_hanging(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(module, "SUBSCRIBE_TIMEOUT_S", 0.3)

    async def main() -> None:
        async with RedisPubSub(redis_server.url) as b:
            redis_server.stop()
            with pytest.raises(StorageUnavailable) as caught:
                async with b.subscribe("dev"):
                    pytest.fail("a subscription Redis never confirmed must not start")
            assert caught.value.status_hint == 503
            assert b.subscriber_count("dev") == 0
            redis_server.start()
            async with RedisPubSub(redis_server.url) as a, b.subscribe("dev") as sub:
                await a.publish("dev", b"back")
                assert await sub.get() == b"back"

    asyncio.run(main())


def test_closing_wakes_subscribers_and_refuses_further_calls(redis_server: RedisServer) -> None:
    async def main() -> None:
        hub = RedisPubSub(redis_server.url)
        async with hub.subscribe("dev") as sub:
            waiting = asyncio.create_task(sub.get())
            await asyncio.sleep(0)
            await hub.close()
            with pytest.raises(StorageUnavailable):
                await waiting
            with pytest.raises(StorageUnavailable):
                await sub.get()
        for call in (
            hub.publish("dev", b"x"),
            hub.mark_connected("dev", "node", 10),
            hub.connected_nodes("dev"),
        ):
            with pytest.raises(StorageUnavailable):
                await call
        with pytest.raises(StorageUnavailable):
            async with hub.subscribe("dev"):
                pass
        await hub.close()  # idempotent

    asyncio.run(main())


# ============================================================================= presence


def test_presence_is_seen_from_every_node_and_can_be_withdrawn(redis_server: RedisServer) -> None:
    async def main() -> None:
        async with RedisPubSub(redis_server.url) as a, RedisPubSub(redis_server.url) as b:
            assert await b.connected_nodes("dev-1") == frozenset()
            await a.mark_connected("dev-1", "node-a", 60)
            await b.mark_connected("dev-1", "node-b", 60)
            await b.mark_connected("dev-2", "node-b", 60)
            assert await b.connected_nodes("dev-1") == {"node-a", "node-b"}
            assert await a.connected_nodes("dev-2") == {"node-b"}
            await a.mark_disconnected("dev-1", "node-a")
            assert await b.connected_nodes("dev-1") == {"node-b"}
            await b.mark_disconnected("dev-1", "node-b")
            assert await a.connected_nodes("dev-1") == frozenset()

    asyncio.run(main())


def test_presence_keys_carry_a_ttl_that_refreshing_extends_and_that_lapses(
    redis_server: RedisServer,
) -> None:
    async def main() -> None:
        admin = redis.asyncio.Redis.from_url(redis_server.url)
        key = KEY_PREFIX + "dev"
        async with RedisPubSub(redis_server.url) as a:
            await a.mark_connected("dev", "node-a", 30)
            assert 0 < await admin.pttl(key) <= 30_000
            await a.mark_connected("dev", "node-a", 600)  # a refresh moves the expiry
            assert 30_000 < await admin.pttl(key) <= 600_000
            # A short-lived entry of another node lapses on its own; the key lives on for
            # as long as its longest-lived entry.
            await a.mark_connected("dev", "node-b", 0.05)

            async def lapsed() -> bool:
                return await a.connected_nodes("dev") == {"node-a"}

            await eventually(lapsed, "node-b's presence lapses")
            await a.mark_connected("dev", "node-a", 0.05)

            async def gone() -> bool:
                return await admin.exists(key) == 0

            await eventually(gone, "the presence key expires with its last entry")
            assert await a.connected_nodes("dev") == frozenset()
        await admin.aclose()

    asyncio.run(main())


def test_presence_and_construction_arguments_are_checked(redis_server: RedisServer) -> None:
    async def main() -> None:
        async with RedisPubSub(redis_server.url) as a:
            for ttl in (0, -1, module.PRESENCE_TTL_MAX_S + 1, True):
                with pytest.raises(InvalidArgument):
                    await a.mark_connected("dev", "node", ttl)
            with pytest.raises(InvalidArgument):
                await a.mark_connected("", "node", 1)
            with pytest.raises(InvalidArgument):
                await a.mark_connected("dev", "", 1)
            with pytest.raises(InvalidArgument):
                await a.publish("dev", "text")  # type: ignore[arg-type]

    asyncio.run(main())
    with pytest.raises(ConfigurationError):
        RedisPubSub(redis_server.url, queue_max=0)
    with pytest.raises(ConfigurationError):
        RedisPubSub("http://not-redis")


def test_an_unreachable_redis_is_unavailable(redis_server: RedisServer) -> None:
    url = redis_server.url
    redis_server.stop()

    async def main() -> None:
        async with RedisPubSub(url) as a:
            for call in (
                a.publish("dev", b"x"),
                a.mark_connected("dev", "node", 1),
                a.connected_nodes("dev"),
            ):
                with pytest.raises(StorageUnavailable) as caught:
                    await call
                assert isinstance(caught.value.__cause__, redis.exceptions.ConnectionError)

    asyncio.run(main())
