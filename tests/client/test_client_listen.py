"""``Client.listen``: polling over the in-process transport, WebSocket push over a real
loopback server (uvicorn), acknowledgement, and reconnection with backoff."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest
import uvicorn

from overt.client import (
    Client,
    HttpTransport,
    Message,
    PushChannel,
    ServerUnreachable,
    Transport,
)
from overt.crypto import DeterministicRng
from overt.server import ServerConfig, ServerLimits, create_app
from overt.storage import InProcessPubSub, open_memory

from .support import Checkpointing, FakeClock, World

#: A safety net against a hung test, not a timing assertion.
HANG = 30.0


async def test_listen_polls_over_the_in_process_transport(world: World) -> None:
    alice = await world.user("alice", "alice")
    bob = await world.user("bob", "bob")
    stream = alice.listen(poll_interval=5)
    waiting = asyncio.ensure_future(anext(stream))
    await bob.send("alice", "one")
    await bob.send("alice", "two")
    first = await asyncio.wait_for(waiting, HANG)
    second = await asyncio.wait_for(anext(stream), HANG)
    assert [first.text, second.text] == ["one", "two"]
    third = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0)
    await bob.send("alice", "three")
    assert (await asyncio.wait_for(third, HANG)).text == "three"
    assert 5 in world.clock.sleeps  # it polled at the interval
    await stream.aclose()


@asynccontextmanager
async def loopback_server(clock: FakeClock) -> AsyncIterator[tuple[str, object]]:
    storage = await open_memory()
    app = create_app(
        ServerConfig(franking_key=bytes(32), limits=ServerLimits(rate_burst=1_000_000)),
        storage,
        InProcessPubSub(),
        clock=clock.now_ms,
        rng=DeterministicRng("server"),
    )
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    )
    task = asyncio.ensure_future(server.serve())
    try:
        async with asyncio.timeout(HANG):
            while not server.started:
                await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        await task
        await storage.close()


class FlakyPush:
    """An HttpTransport whose push channel fails to open the first ``failures`` times."""

    def __init__(self, inner: Transport, failures: int) -> None:
        self.inner = inner
        self.failures = failures
        self.supports_push = True
        self.request = inner.request

    def push(self, target: str) -> AbstractAsyncContextManager[PushChannel]:
        if self.failures > 0:
            self.failures -= 1
            raise ServerUnreachable("connection refused")
        return self.inner.push(target)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_listen_over_websocket_push_with_reconnect(tmp_path: Path) -> None:
    clock = FakeClock()
    async with loopback_server(clock) as (url, app):
        # The server's checkpointer runs on real time; the clients' on the fake clock.
        net_a = Checkpointing(HttpTransport(url), app)
        net_b = Checkpointing(HttpTransport(url), app)
        flaky = FlakyPush(net_a, failures=3)
        alice = await Client.open(tmp_path / "a", flaky, clock=clock, rng=DeterministicRng(1))
        bob = await Client.open(tmp_path / "b", net_b, clock=clock, rng=DeterministicRng(2))
        try:
            await alice.create_account("alice")
            await bob.create_account("bob")
            await bob.send("alice", "waiting for you")  # pending before alice connects

            stream = alice.listen()
            got: list[Message] = [await asyncio.wait_for(anext(stream), HANG)]
            # Three failed connects, backed off with growing delays (jittered).
            assert len(clock.sleeps) == 3
            assert clock.sleeps[0] <= 0.5 and clock.sleeps[2] > clock.sleeps[0]
            nxt = asyncio.ensure_future(anext(stream))
            await bob.send("alice", "pushed live")
            got.append(await asyncio.wait_for(nxt, HANG))
            assert [m.text for m in got] == ["waiting for you", "pushed live"]
            await stream.aclose()

            # Everything was acknowledged over the socket: nothing is pending any more.
            assert await alice.sync() == []
            assert [m.text for m in await alice.history("bob")] == [m.text for m in got]
            # And the other way, over plain HTTP.
            await alice.send("bob", "got them")
            assert [m.text for m in await bob.sync()] == ["got them"]
        finally:
            await alice.close()
            await bob.close()
            await net_a.aclose()
            await net_b.aclose()


async def test_unreachable_server_is_a_plain_error(tmp_path: Path) -> None:
    net = HttpTransport("http://127.0.0.1:9")  # discard port: nothing listens
    client = await Client.open(tmp_path / "a", net, clock=FakeClock(), rng=DeterministicRng(1))
    try:
        with pytest.raises(ServerUnreachable) as info:
            await client.create_account("alice")
        assert "check the server address" in str(info.value)
        assert not client.is_active  # kept for a retry
        assert client.account_name == "alice"
    finally:
        await client.close()
        await net.aclose()
