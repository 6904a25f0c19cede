"""Shared pieces of the client tests: a fake clock, the real server in-process, and a transport
wrapper that lets a test play a lossy network or a misbehaving server.

The server is :func:`overt.server.create_app` over in-memory storage, reached through
:class:`overt.client.AsgiTransport` (with :class:`Checkpointing` in front, standing in for the
server's checkpointer); server and clients share one :class:`FakeClock`, whose ``sleep``
advances time instead of waiting (no test depends on real time).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from overt.client import AsgiTransport, Client, PushChannel, RequestSigner, Response, Transport
from overt.crypto import DeterministicRng, Rng
from overt.server import ServerConfig, ServerLimits, create_app
from overt.storage import InProcessPubSub, Storage, open_memory

START_MS = 1_760_000_000_000


class FakeClock:
    """Time that moves only when told to (or when someone sleeps)."""

    def __init__(self, start_ms: int = START_MS) -> None:
        self.t = start_ms
        self.sleeps: list[float] = []

    def now_ms(self) -> int:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += int(seconds * 1000)
        await asyncio.sleep(0)

    def advance(self, ms: int) -> None:
        self.t += ms


@dataclass
class Call:
    """One request passing through an :class:`Interposer`."""

    method: str
    target: str
    json: object | None
    content: bytes | None
    signer: RequestSigner | None
    inner: Transport

    async def proceed(self) -> Response:
        return await self.inner.request(
            self.method, self.target, json=self.json, content=self.content, signer=self.signer
        )


Hook = Callable[[Call], Awaitable[Response | None]]


class Interposer:
    """A :class:`Transport` in front of another: each hook sees every request and may answer
    it (after or instead of passing it on); the first that answers wins."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.hooks: list[Hook] = []
        self.log: list[tuple[str, str]] = []

    @property
    def supports_push(self) -> bool:
        return self.inner.supports_push

    async def request(
        self,
        method: str,
        target: str,
        *,
        json: object | None = None,
        content: bytes | None = None,
        signer: RequestSigner | None = None,
    ) -> Response:
        self.log.append((method, target))
        call = Call(method, target, json, content, signer, self.inner)
        for hook in list(self.hooks):
            answer = await hook(call)
            if answer is not None:
                return answer
        return await call.proceed()

    def push(self, target: str) -> AbstractAsyncContextManager[PushChannel]:
        return self.inner.push(target)

    async def aclose(self) -> None:
        await self.inner.aclose()


#: The public read endpoints of the transparency log (docs/api.md).
LOG_PATHS = ("/v1/manifest", "/v1/log/", "/v1/kt/")


class Checkpointing:
    """A :class:`Transport` to the in-process server that runs its checkpointer before every
    read of the transparency log, as if the server had just signed (and, with witnesses, had
    cosigned) a checkpoint. In-process there is no lifespan, so nothing else runs it; a
    deployment with key transparency makes clients wait for a checkpoint before they trust a
    new device list (docs/api.md)."""

    def __init__(self, inner: Transport, app: object) -> None:
        self.inner = inner
        self.app = app

    @property
    def supports_push(self) -> bool:
        return self.inner.supports_push

    async def checkpoint(self) -> None:
        state = getattr(self.app, "state", None)
        checkpointer = getattr(state, "checkpointer", None)
        if checkpointer is not None:
            await checkpointer.run_once()

    async def request(
        self,
        method: str,
        target: str,
        *,
        json: object | None = None,
        content: bytes | None = None,
        signer: RequestSigner | None = None,
    ) -> Response:
        if method == "GET" and target.startswith(LOG_PATHS):
            await self.checkpoint()
        return await self.inner.request(method, target, json=json, content=content, signer=signer)

    def push(self, target: str) -> AbstractAsyncContextManager[PushChannel]:
        return self.inner.push(target)

    async def aclose(self) -> None:
        await self.inner.aclose()


def json_response(data: object, status: int = 200) -> Response:
    return Response(status, {"content-type": "application/json"}, json.dumps(data).encode())


@dataclass
class World:
    """One server, one clock, and the clients of a test."""

    tmp: Path
    clock: FakeClock
    app: object
    transport: Transport
    clients: list[Client] = field(default_factory=list)
    transports: list[Transport] = field(default_factory=list)

    async def client(self, profile: str, transport: Transport | None = None) -> Client:
        c = await Client.open(
            self.tmp / profile,
            transport or self.transport,
            clock=self.clock,
            rng=DeterministicRng(f"client {profile}"),
        )
        self.clients.append(c)
        return c

    async def user(self, profile: str, name: str, transport: Transport | None = None) -> Client:
        c = await self.client(profile, transport)
        await c.create_account(name)
        return c

    async def linked(
        self, profile: str, primary: Client, transport: Transport | None = None
    ) -> Client:
        c = await self.client(profile, transport)
        await c.link_device(primary)
        return c

    def interposer(self) -> Interposer:
        return Interposer(self.transport)


W = TypeVar("W", bound=World)


def server_config(**changes: Any) -> ServerConfig:
    """The relay's configuration in these tests (``changes`` added). The fake clock does not
    refill rate buckets, and the limiter is not under test here."""
    return ServerConfig(
        franking_key=bytes(range(32)), limits=ServerLimits(rate_burst=1_000_000), **changes
    )


@asynccontextmanager
async def running(
    tmp: Path,
    config: ServerConfig | None = None,
    *,
    rng: Rng | None = None,
    make: Callable[[Path, FakeClock, Any, Transport], W] = World,  # type: ignore[assignment]
    wrap: Callable[[Transport, Any], Transport] = Checkpointing,
) -> AsyncIterator[tuple[W, Storage]]:
    """The real relay in process over in-memory storage, and a world (``make``) whose clients
    reach it through ``wrap`` around :class:`AsgiTransport`; every client, the transport and
    the storage are closed afterwards."""
    clock = FakeClock()
    storage = await open_memory()
    try:
        app = create_app(
            config or server_config(), storage, InProcessPubSub(), clock=clock.now_ms,
            rng=rng or DeterministicRng("server"),
        )  # fmt: skip
        transport = wrap(AsgiTransport(app), app)
        world = make(tmp, clock, app, transport)
        try:
            yield world, storage
        finally:
            for c in world.clients:
                await c.close()
            await transport.aclose()
    finally:
        await storage.close()
