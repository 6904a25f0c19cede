"""A relay with report intake and the moderation console, plus the pieces the safety tests
share.

:func:`deployment` builds ``create_app`` over real storage (which mounts the report routes
behind the signed-request check and the :class:`SuspensionGate`) and mounts the console at
``/console`` with a CyberTipline stand-in reached in-process. Server and clients share a fake
clock.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from overt.client import AsgiTransport, Client, PushChannel, RequestSigner, Response, Transport
from overt.console import ConsoleConfig, ConsoleService, EscalationSettings, console_app
from overt.console.service import Role, create_moderator
from overt.crypto import DeterministicRng
from overt.protocol import AccountIdentity, Device
from overt.safety.cybertip import ContactPerson, CyberTipCredentials, ProviderProfile
from overt.safety.cybertip_standin import CyberTipStandin
from overt.safety.submission import MemorySubmissionStore
from overt.server import ServerConfig, ServerLimits, create_app
from overt.server.auth import request_message
from overt.server.reports import SuspensionGate
from overt.server.signals import SignalService
from overt.storage import InProcessPubSub, Storage, open_memory, open_sqlite

FRANKING_KEY = bytes(range(32))
START_MS = 1_760_000_000_000
STANDIN_USER = "overt-test"
STANDIN_PASSWORD = "stand-in password"
#: Test moderators hash with the cheapest scrypt cost the module allows.
TEST_LOG_N = 14
PASSWORD = "correct horse battery staple"

PROVIDER = ProviderProfile(
    reporting_person=ContactPerson("safety@overt.test", "Sam", "Safety", "+1 555 0100"),
    service_name="Overt",
    legal_url="https://overt.test/legal",
)


class FakeClock:
    """Milliseconds that move when told to (or when someone sleeps)."""

    def __init__(self, start_ms: int = START_MS) -> None:
        self.t = start_ms

    def __call__(self) -> int:
        return self.t

    def now_ms(self) -> int:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += int(seconds * 1000)
        await asyncio.sleep(0)

    def advance(self, ms: int = 1) -> int:
        self.t += ms
        return self.t


class Checkpointing:
    """A transport to the in-process server that runs its checkpointer before every read of
    the transparency log (in-process there is no lifespan to run it)."""

    def __init__(self, inner: Transport, app: FastAPI) -> None:
        self.inner = inner
        self.app = app

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
        if method == "GET" and target.startswith(("/v1/manifest", "/v1/log/", "/v1/kt/")):
            await self.app.state.checkpointer.run_once()
        return await self.inner.request(method, target, json=json, content=content, signer=signer)

    def push(self, target: str) -> AbstractAsyncContextManager[PushChannel]:
        return self.inner.push(target)

    async def aclose(self) -> None:
        await self.inner.aclose()


def build_app(
    storage: Storage,
    clock: Any,
    *,
    escalation: EscalationSettings | None,
    session_key: bytes = b"k" * 32,
    secure_cookies: bool | None = None,
) -> tuple[FastAPI, ConsoleService, SuspensionGate, SignalService]:
    """``create_app`` with a console of the test's own mounted next to it."""
    config = ServerConfig(FRANKING_KEY, ServerLimits(rate_burst=1_000_000))
    app = create_app(config, storage, InProcessPubSub(), clock=clock, rng=DeterministicRng("srv"))
    suspensions: SuspensionGate = app.state.suspensions  # the gate create_app checks
    service, console = console_app(
        ConsoleConfig(session_key, escalation, secure_cookies=secure_cookies),
        storage, config.franking_key, clock=clock, rng=DeterministicRng("console"),
        on_standing_change=suspensions.forget,
    )  # fmt: skip
    # create_app mounts a console only when given a ConsoleConfig (none here): this one is ours.
    app.mount("/console", console)
    return app, service, suspensions, SignalService(storage.reports)


def standin_settings(standin: CyberTipStandin) -> EscalationSettings:
    async def no_sleep(seconds: float) -> None:
        del seconds

    return EscalationSettings(
        base_url="http://cybertip.test/ispws",
        credentials=CyberTipCredentials(STANDIN_USER, STANDIN_PASSWORD),
        provider=PROVIDER,
        submissions=MemorySubmissionStore(),
        transport=httpx.ASGITransport(app=standin.app),
        sleep=no_sleep,
    )


@dataclass
class Deployment:
    """One relay with intake and console, its clock, its stand-in, and the test's clients."""

    tmp: Path
    app: FastAPI
    storage: Storage
    clock: FakeClock
    console: ConsoleService
    gate: SuspensionGate
    signals: SignalService
    standin: CyberTipStandin
    transport: Transport
    http: httpx.AsyncClient
    clients: list[Client] = field(default_factory=list)

    async def user(self, name: str, profile: str | None = None) -> Client:
        c = await Client.open(
            self.tmp / (profile or name), self.transport, clock=self.clock,
            rng=DeterministicRng(f"client {profile or name}"),
        )  # fmt: skip
        self.clients.append(c)
        await c.create_account(name)
        return c

    async def linked(self, profile: str, primary: Client) -> Client:
        c = await Client.open(
            self.tmp / profile, self.transport, clock=self.clock,
            rng=DeterministicRng(f"client {profile}"),
        )  # fmt: skip
        self.clients.append(c)
        await c.link_device(primary)
        return c

    async def moderator(self, name: str, role: Role) -> None:
        assert self.storage.moderators is not None and self.storage.reports is not None
        await create_moderator(
            self.storage.moderators, self.storage.reports, name, role, PASSWORD,
            rng=DeterministicRng(name), now=self.clock(), log_n=TEST_LOG_N,
        )  # fmt: skip


@asynccontextmanager
async def deployment(tmp: Path, *, sqlite: bool = True) -> AsyncIterator[Deployment]:
    storage = await (open_sqlite(tmp / "server.db") if sqlite else open_memory())
    clock = FakeClock()
    standin = CyberTipStandin(username=STANDIN_USER, password=STANDIN_PASSWORD)
    app, service, gate, signals = build_app(storage, clock, escalation=standin_settings(standin))
    transport = Checkpointing(AsgiTransport(app), app)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://overt.test")
    d = Deployment(tmp, app, storage, clock, service, gate, signals, standin, transport, http)
    try:
        yield d
    finally:
        for c in d.clients:
            await c.close()
        await http.aclose()
        await transport.aclose()
        await app.state.background.wait()
        await storage.close()


def encode_json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


# ----------------------------------------------------------------------------- raw devices


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed_headers(
    device: Device, method: str, target: str, body: bytes, ts: int
) -> dict[str, str]:
    message = request_message(method, target.encode(), str(ts), body)
    return {
        "X-Overt-Device": f"{b64(device.address.account)}:{device.address.device}",
        "X-Overt-Timestamp": str(ts),
        "X-Overt-Signature": b64(device.identity.sign.sign(message)),
    }


async def call(
    d: Deployment, device: Device, method: str, target: str, body: object | bytes = b""
) -> httpx.Response:
    """A request signed by a protocol-level ``device`` (which must be registered)."""
    raw = body if isinstance(body, bytes) else encode_json(body)
    headers = signed_headers(device, method, target, raw, d.clock.advance())
    if not isinstance(body, bytes):
        headers["Content-Type"] = "application/json"
    return await d.http.request(method, target, content=raw, headers=headers)


async def register(d: Deployment, devices: list[Device], seed: int) -> AccountIdentity:
    """Register the account of ``devices`` (all of one account) with all of them listed."""
    first = devices[0]
    account = first.address.account
    identity = AccountIdentity.generate(account, DeterministicRng(seed))
    stock = first.prekeys
    body = {
        "account": b64(account),
        "signed_device_list": b64(identity.sign_device_list(1, [first.entry()]).encode()),
        "prekeys": {
            "signed_prekey": b64(stock.signed[stock.current_signed][1].encode()),
            "last_resort_kem": b64(stock.kem[stock.last_resort_kem][1].encode()),
        },
    }
    response = await call(d, first, "POST", "/v1/accounts", body)
    assert response.status_code == 201, response.text
    if len(devices) > 1:
        listed = identity.sign_device_list(2, [x.entry() for x in devices])
        body = {"signed_device_list": b64(listed.encode()), "expected_serial": 1}
        response = await call(d, first, "PUT", f"/v1/accounts/{b64(account)}/devices", body)
        assert response.status_code == 200, response.text
    return identity
