"""Helpers for the transparency tests of the relay server (no tests here).

:func:`kt_env` builds the real application (:func:`overt.server.create_app`) with fixed
transparency keys and a deployment, and in-process witnesses: each witness is the real
witness service (:func:`overt.services.witness.create_app`) reached through
:class:`WitnessNet`, one ``httpx`` transport that routes by host name and can play a witness
that is down or never answers. Nothing listens on a socket. Checkpointing rounds are run by
hand (``env.checkpointer.run_once()``): without a lifespan, nothing runs them in the
background.

:func:`check_lookup` verifies a ``GET /v1/kt/{account}`` answer the way a client must: the
manifest's VRF key, the opening, the device list's signature and the inclusion proof under the
manifest's log key and witness quorum.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from server_kit import FRANKING_KEY, Env, FakeClock

from overt.crypto import DeterministicRng, Ed25519PrivateKey, sha256
from overt.crypto import vrf as vrf_mod
from overt.protocol import verify_device_list
from overt.server import ServerConfig, ServerLimits, create_app
from overt.server.checkpointer import Checkpointer
from overt.server.codec import b64decode
from overt.server.config import TransparencyConfig, TransparencyKeys
from overt.server.deployment import Deployment, WitnessEndpoint
from overt.services.witness import MemoryStore
from overt.services.witness import create_app as witness_app
from overt.storage import InProcessPubSub, Storage, open_memory
from overt.transparency.checkpoint import (
    VerifiedCheckpoint,
    parse_proof_bundle,
    verify_proof_bundle,
)
from overt.transparency.entries import KeyDirectoryUpdate, kt_commitment, kt_label
from overt.transparency.log import Log
from overt.transparency.manifest import Manifest, verify_manifest
from overt.transparency.note import CosignatureSigner
from overt.transparency.witness import Witness, WitnessedLog
from overt.wire import SignedDeviceList

ORIGIN = "kt.test/log"
KEYS = TransparencyKeys.generate(DeterministicRng("kt test keys"), ORIGIN)
WITNESS_TIME = 1_750_000_000
DEPLOYMENT_NAME = "Overt test deployment"


def witness_signer(i: int) -> CosignatureSigner:
    return CosignatureSigner(
        f"w{i}.witness.test", Ed25519PrivateKey.generate(DeterministicRng(f"witness {i}"))
    )


def witness_url(i: int) -> str:
    return f"http://w{i}.witness.test"


class WitnessNet(httpx.AsyncBaseTransport):
    """Routes each request to the in-process witness named by its host; hosts in ``down``
    refuse connections, hosts in ``silent`` never answer."""

    def __init__(self) -> None:
        self.witnesses: dict[str, Witness] = {}
        self.transports: dict[str, httpx.ASGITransport] = {}
        self.down: set[str] = set()
        self.silent: set[str] = set()
        self.requests = 0

    def add(self, i: int, log_key: Any) -> WitnessEndpoint:
        """Witness ``i`` for the log of ``log_key``; the one already on this net, if any
        (a witness outlives a server restart, with what it cosigned)."""
        signer = witness_signer(i)
        host = httpx.URL(witness_url(i)).host
        if host not in self.witnesses:
            witness = Witness(signer, [WitnessedLog.from_vkey(log_key)])
            self.witnesses[host] = witness
            app = witness_app(witness, MemoryStore(), clock=lambda: WITNESS_TIME)
            self.transports[host] = httpx.ASGITransport(app=app)
        return WitnessEndpoint(f"Witness {i}", witness_url(i), signer.verifier_key)

    def witness(self, i: int) -> Witness:
        return self.witnesses[httpx.URL(witness_url(i)).host]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        host = request.url.host
        if host in self.down:
            raise httpx.ConnectError("connection refused", request=request)
        if host in self.silent:
            await asyncio.Event().wait()
        return await self.transports[host].handle_async_request(request)


@dataclass
class KtEnv(Env):
    net: WitnessNet
    deployment: Deployment

    @property
    def checkpointer(self) -> Checkpointer:
        checkpointer: Checkpointer = self.app.state.checkpointer
        return checkpointer

    @property
    def log(self) -> Log:
        log: Log = self.app.state.log
        return log

    async def manifest(self) -> tuple[Manifest, int]:
        response = await self.call(None, "GET", "/v1/manifest")
        assert response.status_code == 200, response.text
        body = response.json()
        return verify_manifest(b64decode(body["manifest"])), body["index"]

    async def entries(self) -> list[bytes]:
        """Every entry of the published tree, through the API."""
        published = self.checkpointer.published
        assert published is not None
        response = await self.call(None, "GET", f"/v1/log/entries?start=0&end={published.size}")
        assert response.status_code == 200, response.text
        return [b64decode(e) for e in response.json()["entries"]]


@asynccontextmanager
async def kt_env(
    *,
    witnesses: int = 0,
    quorum: int = 0,
    storage: Storage | None = None,
    keys: TransparencyKeys = KEYS,
    name: str = DEPLOYMENT_NAME,
    timeout_ms: int = 5000,
    net: WitnessNet | None = None,
    close_storage: bool = True,
) -> AsyncIterator[KtEnv]:
    net = WitnessNet() if net is None else net
    endpoints = tuple(net.add(i, keys.log.verifier_key) for i in range(witnesses))
    deployment = Deployment(name, endpoints, quorum)
    store = storage if storage is not None else await open_memory()
    clock = FakeClock()
    pubsub = InProcessPubSub()
    app = create_app(
        ServerConfig(
            FRANKING_KEY,
            ServerLimits(rate_burst=1_000_000),
            TransparencyConfig(keys, deployment, witness_timeout_ms=timeout_ms),
        ),
        store,
        pubsub,
        clock=clock,
        rng=DeterministicRng(b"kt server"),
        witness_transport=net,
    )
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://overt.test") as http:
            yield KtEnv(app, http, clock, store, pubsub, net, deployment)
        await app.state.background.wait()
        await app.state.checkpointer.aclose()
    finally:
        if close_storage:
            await store.close()


def check_lookup(body: dict[str, Any], account: bytes, manifest: Manifest) -> VerifiedCheckpoint:
    """Verify a lookup answer as a client must; the verified checkpoint it is proven under."""
    assert manifest.vrf_key is not None
    beta = vrf_mod.verify(manifest.vrf_key, account, b64decode(body["vrf_proof"]))
    opening = b64decode(body["opening"])
    signed = b64decode(body["signed_device_list"])
    device_list = verify_device_list(SignedDeviceList.decode(signed))
    assert device_list.account == account
    entry = KeyDirectoryUpdate(
        label=kt_label(beta),
        account_key=device_list.account_key,
        serial=device_list.serial,
        device_list_hash=sha256(signed),
        commitment=kt_commitment(opening, account),
    )
    bundle = parse_proof_bundle(body["proof"].encode())
    assert bundle.index == body["index"]
    return verify_proof_bundle(
        bundle,
        leaf_data=entry.encode(),
        log_key=manifest.log.vkey,
        witnesses=manifest.witness_keys,
        quorum=manifest.witness_quorum,
        origin=manifest.log.origin,
    )
