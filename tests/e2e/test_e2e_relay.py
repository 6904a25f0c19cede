"""End to end against a real server process on loopback: HTTP, WebSocket and SQLite.

The crash test kills the server with SIGKILL in the middle of a burst of sends and restarts
it on the same data directory: every message acknowledged to its sender must be delivered,
and none may be shown twice.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from overt import launch
from overt.client import Client, HttpTransport, ServerUnreachable
from overt.client.errors import BadResponse

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_conversation_over_a_real_server(tmp_path: Path) -> None:
    with launch.server(tmp_path / "server") as srv:
        transport = HttpTransport(srv.url)
        alice = await Client.open(tmp_path / "alice", transport)
        laptop = await Client.open(tmp_path / "alice2", transport)
        bob = await Client.open(tmp_path / "bob", transport)
        try:
            await alice.create_account("alice")
            await bob.create_account("bob")
            await laptop.link_device(alice)
            await alice.send("bob", "hello over the wire")

            async def first_pushed() -> str:
                async for m in bob.listen():
                    return m.text
                raise AssertionError("listen ended")

            assert await asyncio.wait_for(first_pushed(), 20) == "hello over the wire"
            await bob.send("alice", "hello back")
            assert [m.text for m in await alice.sync()] == ["hello back"]
            laptop_view = [(m.sender, m.text) for m in await laptop.sync()]
            assert laptop_view == [("alice", "hello over the wire"), ("bob", "hello back")]
            blob = bytes(range(256)) * 40
            await alice.send_attachment("bob", blob, file_name="b.bin")
            (att,) = [m for m in await bob.sync() if m.attachment is not None]
            assert await bob.fetch_attachment(att) == blob
        finally:
            for c in (alice, laptop, bob):
                await c.close()
            await transport.aclose()


async def test_sigkill_mid_burst_loses_no_acknowledged_message(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "server"
    srv = launch.server(data, port)
    srv.start()
    transport = HttpTransport(f"http://127.0.0.1:{port}")
    alice = await Client.open(tmp_path / "alice", transport)
    bob = await Client.open(tmp_path / "bob", transport)
    acknowledged: list[str] = []
    try:
        await alice.create_account("alice")
        await bob.create_account("bob")
        await alice.send("bob", "warm-up")  # sessions exist before the burst

        async def burst() -> None:
            for i in range(400):
                text = f"burst {i}"
                try:
                    await alice.send("bob", text)
                except (ServerUnreachable, BadResponse):
                    continue  # not acknowledged: the sender would retry it as a new message
                acknowledged.append(text)

        async def killer() -> None:
            while len(acknowledged) < 60:
                await asyncio.sleep(0.005)
            srv.kill()

        await asyncio.gather(burst(), killer())
        assert 60 <= len(acknowledged) < 400
        srv.start()  # same port, same data directory
        await alice.send("bob", "after the restart")
        acknowledged.append("after the restart")

        shown: list[str] = []
        for _ in range(20):
            batch = await bob.sync()
            shown.extend(m.text for m in batch)
            if not batch:
                break
        history = [m.text for m in await bob.history("alice", limit=10_000)]
        assert len(history) == len(set(history)), "a message was shown twice"
        assert len(shown) == len(set(shown))
        missing = [t for t in ["warm-up", *acknowledged] if t not in history]
        assert missing == [], f"acknowledged but lost: {missing[:5]}"
    finally:
        await alice.close()
        await bob.close()
        await transport.aclose()
        srv.stop()
