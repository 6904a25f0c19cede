"""The in-process pub/sub that wakes WebSocket connections when mail arrives."""

from __future__ import annotations

import asyncio

import pytest

from overt.errors import ConfigurationError
from overt.storage import InProcessPubSub, PubSub


def test_subscribers_of_a_channel_get_its_messages_in_order() -> None:
    async def main() -> None:
        hub: PubSub = InProcessPubSub()
        await hub.publish("nobody-listens", b"lost")  # no subscribers: fine, nothing kept
        async with (
            hub.subscribe("dev-1") as a,
            hub.subscribe("dev-1") as b,
            hub.subscribe("dev-2") as other,
        ):
            for m in (b"1", b"2", b"3"):
                await hub.publish("dev-1", m)
            await hub.publish("dev-2", b"x")
            assert [await a.get() for _ in range(3)] == [b"1", b"2", b"3"]
            assert [await b.get() for _ in range(3)] == [b"1", b"2", b"3"]
            assert await other.get() == b"x"
            assert a.channel == "dev-1"

    asyncio.run(main())


def test_a_subscriber_iterates_and_wakes_when_a_message_is_published() -> None:
    async def main() -> None:
        hub = InProcessPubSub()
        received: list[bytes] = []
        subscribed = asyncio.Event()

        async def listener() -> None:
            async with hub.subscribe("dev") as sub:
                subscribed.set()
                async for message in sub:
                    received.append(message)
                    if message == b"stop":
                        return

        task = asyncio.create_task(listener())
        await subscribed.wait()
        await hub.publish("dev", b"wake")
        await hub.publish("dev", b"stop")
        await task
        assert received == [b"wake", b"stop"]
        assert hub.subscriber_count("dev") == 0

    asyncio.run(main())


def test_leaving_the_subscription_stops_delivery() -> None:
    async def main() -> None:
        hub = InProcessPubSub()
        async with hub.subscribe("dev") as sub:
            assert hub.subscriber_count("dev") == 1
        await hub.publish("dev", b"late")
        assert hub.subscriber_count("dev") == 0
        async with hub.subscribe("dev") as again:
            await hub.publish("dev", b"fresh")
            assert await again.get() == b"fresh"
        assert sub.dropped == 0

    asyncio.run(main())


def test_a_slow_subscriber_loses_the_oldest_messages_and_counts_them() -> None:
    async def main() -> None:
        hub = InProcessPubSub(queue_max=2)
        async with hub.subscribe("dev") as sub:
            for m in (b"1", b"2", b"3", b"4"):
                await hub.publish("dev", m)
            assert sub.dropped == 2
            assert [await sub.get(), await sub.get()] == [b"3", b"4"]

    asyncio.run(main())


def test_a_queue_must_hold_at_least_one_message() -> None:
    with pytest.raises(ConfigurationError):
        InProcessPubSub(queue_max=0)
