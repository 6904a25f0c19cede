"""Helpers for the relay server tests: real device keys from ``overt.protocol``, signed requests,
and the app in-process (``httpx.ASGITransport`` for HTTP, Starlette's ``TestClient`` for
WebSocket). Time is a :class:`FakeClock` shared by the server and the signer; every signed
request advances it by 1 ms so that two identical requests never share a signature.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI

from overt.crypto import DeterministicRng, sha256
from overt.protocol import AccountIdentity, Device
from overt.server import ServerConfig, ServerLimits, create_app
from overt.server.auth import request_message, ws_message
from overt.server.codec import b64decode, b64encode, format_address
from overt.storage import InProcessPubSub, Storage, StorageLimits, open_memory
from overt.wire import Address, SignedDeviceList

FRANKING_KEY = sha256(b"test franking key")
START_MS = 1_700_000_000_000


class FakeClock:
    """Milliseconds, moved by hand."""

    def __init__(self, now: int = START_MS) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int = 1) -> int:
        self.now += ms
        return self.now


@dataclass
class Party:
    """One device of one account, with the account key (tests let every device hold it)."""

    identity: AccountIdentity
    device: Device
    serial: int = 1
    devices: list[Device] = field(default_factory=list)

    @property
    def account(self) -> bytes:
        return self.identity.account

    @property
    def address(self) -> Address:
        return self.device.address

    @property
    def b64(self) -> str:
        return b64encode(self.account)

    def signed_list(self, devices: list[Device], serial: int) -> SignedDeviceList:
        return self.identity.sign_device_list(serial, [d.entry() for d in devices])

    def headers(self, method: str, target: str, body: bytes, timestamp: int) -> dict[str, str]:
        return signed_headers(self.device, method, target, body, timestamp)

    def sibling(self, device_id: int, seed: int) -> Party:
        """Another device of the same account (not yet listed)."""
        return Party(self.identity, make_device(self.account, device_id, seed), self.serial)


def make_device(account: bytes, device_id: int, seed: int, *, one_time: int = 10) -> Device:
    return Device.create(
        account,
        device_id,
        rng=DeterministicRng(seed),
        one_time_prekeys=one_time,
        kem_one_time_prekeys=one_time,
    )


def make_party(name: str, seed: int, *, device_id: int = 1, one_time: int = 10) -> Party:
    account = name.encode()
    identity = AccountIdentity.generate(account, DeterministicRng(seed * 1000))
    return Party(identity, make_device(account, device_id, seed, one_time=one_time))


def signed_headers(
    device: Device, method: str, target: str, body: bytes, timestamp: int
) -> dict[str, str]:
    message = request_message(method, target.encode(), str(timestamp), body)
    return {
        "X-Overt-Device": format_address(device.address),
        "X-Overt-Timestamp": str(timestamp),
        "X-Overt-Signature": b64encode(device.identity.sign.sign(message)),
    }


def ws_auth_frame(device: Device, nonce: str, timestamp: int) -> dict[str, Any]:
    return {
        "type": "auth",
        "device": format_address(device.address),
        "timestamp": timestamp,
        "signature": b64encode(device.identity.sign.sign(ws_message(nonce, timestamp))),
    }


def prekey_upload(device: Device, *, one_time: bool = True) -> dict[str, Any]:
    """Everything ``device`` holds, as the PrekeyUpload JSON."""
    stock = device.prekeys
    out: dict[str, Any] = {
        "signed_prekey": b64encode(stock.signed[stock.current_signed][1].encode()),
        "last_resort_kem": b64encode(stock.kem[stock.last_resort_kem][1].encode()),
    }
    if one_time:
        out["one_time"] = [b64encode(p.encode()) for _, p in stock.one_time.values()]
        out["kem_one_time"] = [
            b64encode(k.encode()) for _, k in stock.kem.values() if not k.last_resort
        ]
    return out


def registration(party: Party) -> dict[str, Any]:
    return {
        "account": party.b64,
        "signed_device_list": b64encode(party.signed_list([party.device], party.serial).encode()),
        "prekeys": prekey_upload(party.device),
    }


def encode_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


@dataclass
class Env:
    """The app over a store, an HTTP client to it, the shared clock."""

    app: FastAPI
    http: httpx.AsyncClient
    clock: FakeClock
    storage: Storage
    pubsub: InProcessPubSub

    async def call(
        self,
        party: Party | None,
        method: str,
        target: str,
        *,
        json_body: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timestamp: int | None = None,
    ) -> httpx.Response:
        body = content if content is not None else b""
        extra: dict[str, str] = {}
        if json_body is not None:
            body = encode_json(json_body)
            extra["Content-Type"] = "application/json"
        if party is not None:
            ts = timestamp if timestamp is not None else self.clock.advance()
            extra.update(party.headers(method, target, body, ts))
        extra.update(headers or {})
        return await self.http.request(method, target, content=body, headers=extra)

    async def register(self, party: Party) -> None:
        response = await self.call(party, "POST", "/v1/accounts", json_body=registration(party))
        assert response.status_code == 201, response.text
        party.devices = [party.device]

    async def link(self, owner: Party, new: Party) -> None:
        """List ``new`` on ``owner``'s account and upload its prekeys."""
        devices = [*owner.devices, new.device]
        body = {
            "signed_device_list": b64encode(owner.signed_list(devices, owner.serial + 1).encode()),
            "expected_serial": owner.serial,
        }
        response = await self.call(
            owner, "PUT", f"/v1/accounts/{owner.b64}/devices", json_body=body
        )
        assert response.status_code == 200, response.text
        owner.serial += 1
        owner.devices = devices
        new.serial = owner.serial
        new.devices = devices
        response = await self.call(
            new, "PUT", "/v1/devices/self/prekeys", json_body=prekey_upload(new.device)
        )
        assert response.status_code == 200, response.text


@asynccontextmanager
async def server_env(
    storage: Storage | None = None,
    *,
    limits: ServerLimits | None = None,
    storage_limits: StorageLimits | None = None,
) -> AsyncIterator[Env]:
    store = storage if storage is not None else await open_memory(storage_limits)
    pubsub = InProcessPubSub()
    clock = FakeClock()
    app = create_app(
        ServerConfig(FRANKING_KEY, limits or ServerLimits()),
        store,
        pubsub,
        clock=clock,
        rng=DeterministicRng(b"server"),
    )
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://overt.test") as http:
            yield Env(app, http, clock, store, pubsub)
        await app.state.background.wait()
    finally:
        await store.close()


def b64(data: bytes) -> str:
    return b64encode(data)


def unb64(text: str) -> bytes:
    return b64decode(text)
