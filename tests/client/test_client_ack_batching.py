"""``Client.listen`` acknowledges pushed mail in batches: one ``ack`` frame for the mail that
arrived together, at most ``ACK_BATCH_MAX`` ids per frame, and what is pending when the caller
stops listening.

The push channel is scripted (frames handed over by the test, frames sent recorded); requests
go to the real server in-process. Waiting for an acknowledgement is bounded by ``HANG``, a
safety net, not a timing assertion.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from overt.client import Client, PushChannel, Transport
from overt.client.limits import ACK_BATCH_MAX

from .support import World

HANG = 30.0


class ScriptedChannel:
    def __init__(self) -> None:
        self.login: list[Mapping[str, object]] = [{"type": "challenge", "nonce": "A" * 43}]
        self.incoming: asyncio.Queue[Mapping[str, object]] = asyncio.Queue()
        self.sent: list[Mapping[str, object]] = []

    async def send_json(self, message: Mapping[str, object]) -> None:
        self.sent.append(message)
        if message.get("type") == "auth":
            self.login.append({"type": "ready"})

    async def receive_json(self) -> object:
        if self.login:
            return self.login.pop(0)
        return await self.incoming.get()

    def acks(self) -> list[list[int]]:
        return [list(m["ids"]) for m in self.sent if m.get("type") == "ack"]  # type: ignore[call-overload]


class ScriptedPush:
    """The world's transport for requests, a :class:`ScriptedChannel` for push."""

    supports_push = True

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.request = inner.request
        self.channel = ScriptedChannel()

    def push(self, target: str) -> AbstractAsyncContextManager[PushChannel]:
        @asynccontextmanager
        async def opened() -> AsyncIterator[PushChannel]:
            yield self.channel

        return opened()

    async def aclose(self) -> None:
        return None


def garbage(mail_id: int) -> dict[str, object]:
    """A mail frame that cannot be decrypted: recorded as undecryptable, and acknowledged."""
    return {"type": "mail", "id": mail_id, "sender": "Ym9i:1", "server_time": 1,
            "envelope": "AAAA", "reporting_tag": "AAAA"}  # fmt: skip


async def acks_after(channel: ScriptedChannel, count: int) -> list[list[int]]:
    async with asyncio.timeout(HANG):
        while len(channel.acks()) < count:
            await asyncio.sleep(0.001)
    return channel.acks()


async def listening(world: World) -> tuple[Client, ScriptedPush]:
    push = ScriptedPush(world.transport)
    alice = await world.user("alice", "alice", push)
    return alice, push


async def test_mail_arriving_together_is_acknowledged_in_one_frame(world: World) -> None:
    alice, push = await listening(world)
    stream = alice.listen()
    waiting = asyncio.ensure_future(anext(stream))
    for i in (1, 2, 3):
        push.channel.incoming.put_nowait(garbage(i))
    assert await acks_after(push.channel, 1) == [[1, 2, 3]]
    push.channel.incoming.put_nowait(garbage(4))
    assert await acks_after(push.channel, 2) == [[1, 2, 3], [4]]
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    assert len(await alice.undecryptable()) == 4


async def test_a_batch_holds_at_most_ack_batch_max_ids(world: World) -> None:
    alice, push = await listening(world)
    stream = alice.listen()
    waiting = asyncio.ensure_future(anext(stream))
    for i in range(1, ACK_BATCH_MAX + 2):
        push.channel.incoming.put_nowait(garbage(i))
    acks = await acks_after(push.channel, 2)
    assert acks == [list(range(1, ACK_BATCH_MAX + 1)), [ACK_BATCH_MAX + 1]]
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)


async def test_what_is_pending_is_acknowledged_when_listening_stops(world: World) -> None:
    alice, push = await listening(world)
    bob = await world.user("bob", "bob")
    await bob.send("alice", "one")
    await bob.send("alice", "two")
    signer = alice._signer  # fetch the stored mail as the server would push it
    page = (await world.transport.request("GET", "/v1/messages", signer=signer)).json()
    frames = [{"type": "mail", **m} for m in page["messages"]]  # type: ignore[index]
    for frame in frames:
        push.channel.incoming.put_nowait(frame)
    stream = alice.listen()
    first = await asyncio.wait_for(anext(stream), HANG)
    assert first.text == "one"
    await stream.aclose()
    assert push.channel.acks() == [[frames[0]["id"]]]
