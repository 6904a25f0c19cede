"""The custodian service in-process: five custodian apps and a provider app (the lawful-access
router over a real log, no witnesses) wired together by an httpx transport that routes by host.
The DKG runs over HTTP through :func:`run_dkg`; requests are decided, receipted and answered;
shares are destroyed when their retention ends (a fake clock); state survives a restart."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response

from overt.access import AccessRequest, SessionKeys, collect, open_direct
from overt.access.warrant import Delivery
from overt.crypto import DeterministicRng, Ed25519PrivateKey
from overt.errors import ConfigurationError, OvertError
from overt.protocol import Device, EscrowPolicy
from overt.server.errors import describe
from overt.server.lawful import LawfulAccess, lawful_router
from overt.services import court as court_tool
from overt.services.custodian import (
    ADMIN_TOKEN_FILE_NAME,
    KEY_FILE_NAME,
    STATE_FILE_NAME,
    STORAGE_KEY_FILE_NAME,
    CustodianKeys,
    CustodianService,
    CustodianState,
    DestroyedEpoch,
    HeldEpoch,
    StateFile,
    WarrantUse,
    create_app,
    load_or_create_keys,
    open_at_rest,
)
from overt.services.custodian_client import CustodianClient, ProviderClient, run_dkg
from overt.services.custodian_wire import b64e, epoch_at, epoch_span
from overt.services.lea import access_item, ask_custodians
from overt.storage import Storage, open_memory
from overt.transparency.entries import AccessReceipt, EpochKey, ManifestEntry, decode_entry
from overt.transparency.log import Log
from overt.transparency.manifest import (
    Custodian,
    EscrowAccess,
    LogInfo,
    Manifest,
    NamedKey,
    sign_manifest,
)
from overt.transparency.note import NoteSigner
from overt.wire import Envelope

DAY = 86_400
NOW = 1_750_000_000
MIDNIGHT = NOW - NOW % DAY + DAY
MSG_MS = (MIDNIGHT + 3600) * 1000
ORIGIN = "custodians.test/log"
PROVIDER = "https://provider.test"
PROVIDER_KEY = Ed25519PrivateKey.generate(DeterministicRng("provider"))
LOG_SIGNER = NoteSigner(ORIGIN, Ed25519PrivateKey.generate(DeterministicRng("log")))
COURT = court_tool.Court("District Court", Ed25519PrivateKey.generate(DeterministicRng("court")))


def custodian_url(j: int) -> str:
    return f"https://custodian{j}.test"


class Routes(httpx.AsyncBaseTransport):
    """Sends each request to the in-process app of its host; unknown hosts are unreachable."""

    def __init__(self) -> None:
        self.apps: dict[str, httpx.ASGITransport] = {}

    def add(self, url: str, app: Any) -> None:
        self.apps[httpx.URL(url).host] = httpx.ASGITransport(app=app)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        target = self.apps.get(request.url.host)
        if target is None:
            raise httpx.ConnectError("unreachable", request=request)
        return await target.handle_async_request(request)


class Clock:
    def __init__(self) -> None:
        self.s = NOW

    def seconds(self) -> float:
        return float(self.s)

    def ms(self) -> int:
        return self.s * 1000


@dataclass
class Source:
    manifest: Manifest

    async def ensure(self) -> Source:
        return self


def provider_app(log: Log, lawful: LawfulAccess, signed_manifest: bytes) -> FastAPI:
    """The provider's public log endpoints the parties use, and the lawful-access router."""
    app = FastAPI()
    app.include_router(lawful_router(lawful))

    async def error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, OvertError)
        answer = describe(exc)
        return JSONResponse(answer.body, status_code=answer.status)

    app.add_exception_handler(OvertError, error)

    @app.get("/v1/manifest")
    async def manifest() -> dict[str, Any]:
        return {"manifest": b64e(signed_manifest), "index": 0}

    @app.get("/v1/log/checkpoint")
    async def checkpoint() -> Response:
        return Response((await log.checkpoint()).to_bytes(), media_type="text/plain")

    @app.get("/v1/log/inclusion")
    async def inclusion(
        index: Annotated[int, Query()], size: Annotated[int, Query()]
    ) -> dict[str, Any]:
        return {"proof": [b64e(h) for h in await log.inclusion_proof(index, size)]}

    @app.get("/v1/log/entries")
    async def entries(
        start: Annotated[int, Query()], end: Annotated[int, Query()]
    ) -> dict[str, Any]:
        return {"entries": [b64e(e) for e in await log.entries(start, end)]}

    return app


@dataclass
class World:
    routes: Routes
    clock: Clock
    storage: Storage
    log: Log
    lawful: LawfulAccess
    keys: list[CustodianKeys]
    services: list[CustodianService]
    escrow: EscrowAccess
    tmp: Path

    @property
    def urls(self) -> list[str]:
        return [custodian_url(j) for j in range(1, 6)]

    async def entries(self) -> list[Any]:
        return [decode_entry(d) for d in await self.log.entries(0, await self.log.size())]

    def restart(self, j: int) -> CustodianService:
        """A new process for custodian ``j`` over the same files."""
        keys, created = load_or_create_keys(self.tmp / f"c{j}")
        assert not created
        service = CustodianService(
            keys, StateFile(self.tmp / f"c{j}" / STATE_FILE_NAME),
            ProviderClient(PROVIDER, transport=self.routes), index=j, name=f"Custodian {j}",
            clock=self.clock.seconds, rng=DeterministicRng(f"restart{j}"),
        )  # fmt: skip
        self.services[j - 1] = service
        self.routes.add(custodian_url(j), create_app(service))
        return service


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    routes, clock = Routes(), Clock()
    keys = [load_or_create_keys(tmp_path / f"c{j}")[0] for j in range(1, 6)]
    escrow = EscrowAccess(
        custodians=tuple(
            Custodian(f"Custodian {j}", custodian_url(j), k.sign.public_key)
            for j, k in enumerate(keys, start=1)
        ),
        threshold=3,
        court_keys=(COURT.named_key,),
        epoch_length_days=30,
        retention_days=30,
        max_seal_days=180,
    )
    manifest = Manifest(
        deployment="custodians.test", version=1, provider_key=PROVIDER_KEY.public_key,
        server_keys=(NamedKey("api", PROVIDER_KEY.public_key),),
        log=LogInfo(ORIGIN, LOG_SIGNER.verifier_key), witnesses=(), witness_quorum=0,
        access=escrow,
    )  # fmt: skip
    signed = sign_manifest(manifest, PROVIDER_KEY)
    storage = await open_memory()
    log = Log(storage.log, LOG_SIGNER, ORIGIN, clock.ms)
    await log.append([ManifestEntry(signed)])
    assert storage.warrants and storage.intercepts and storage.epochs
    lawful = LawfulAccess(
        log, Source(manifest), storage.warrants, storage.intercepts, storage.epochs,
        clock=clock.ms, rng=DeterministicRng("tokens"),
    )  # fmt: skip
    routes.add(PROVIDER, provider_app(log, lawful, signed))
    services = []
    for j, k in enumerate(keys, start=1):
        service = CustodianService(
            k, StateFile(tmp_path / f"c{j}" / STATE_FILE_NAME),
            ProviderClient(PROVIDER, transport=routes), index=j, name=f"Custodian {j}",
            clock=clock.seconds, rng=DeterministicRng(f"custodian{j}"),
        )  # fmt: skip
        services.append(service)
        routes.add(custodian_url(j), create_app(service))
    yield World(routes, clock, storage, log, lawful, keys, services, escrow, tmp_path)
    await storage.close()


async def dkg(world: World, epoch: int | None = None) -> tuple[int, EscrowPolicy]:
    epoch = epoch_at(NOW, world.escrow) if epoch is None else epoch
    result = await run_dkg(epoch, world.urls, PROVIDER, transport=world.routes)
    return epoch, EscrowPolicy(epoch, result.transcript.public_key())


@dataclass
class Traffic:
    targeted: list[tuple[Envelope, SessionKeys, bytes]]
    other: list[tuple[Envelope, SessionKeys, bytes]]


def traffic(policy: EscrowPolicy, n: int = 2, at_ms: int = MSG_MS) -> Traffic:
    alice = Device.create(b"alice", 1, rng=DeterministicRng(1), policy=policy)
    bob = Device.create(b"bob", 1, rng=DeterministicRng(2), policy=policy)
    carol = Device.create(b"carol", 1, rng=DeterministicRng(3), policy=policy)
    alice.start_session(bob.prekey_bundle())
    carol.start_session(bob.prekey_bundle())

    def keys(s: Device, r: Device, initiated: bool) -> SessionKeys:
        return SessionKeys(
            s.identity.dh.public_key.raw, s.identity.sign.public_key.raw,
            r.identity.dh.public_key.raw, r.identity.sign.public_key.raw, initiated,
        )  # fmt: skip

    t = Traffic([], [])
    for k in range(n):
        body = f"alice to bob {k}".encode()
        env = alice.encrypt(bob.address, body, now_ms=at_ms + k)
        bob.decrypt(env)
        t.targeted.append((env, keys(alice, bob, True), body))
        other = f"carol to bob {k}".encode()
        env = carol.encrypt(bob.address, other, now_ms=at_ms + k)
        bob.decrypt(env)
        t.other.append((env, keys(carol, bob, True), other))
    return t


async def served_warrant(world: World, *, cap: int = 100, seed: str = "w") -> tuple[bytes, bytes]:
    """A warrant on alice, served; the document and its log proof."""
    w = court_tool.make_warrant(
        COURT, targets=[b"alice"], start=MIDNIGHT, end=MIDNIGHT + 3 * DAY, seal_days=30,
        cap=cap, reference="AUTH-7", legal_basis="s.15", judge_reference="J. Doe", now=NOW,
        rng=DeterministicRng(seed), delivery=Delivery.CONTENT,
    )  # fmt: skip
    document = court_tool.sign_warrant_file(COURT, w)
    served = await world.lawful.serve(document)
    await world.log.checkpoint()
    return document, (await world.log.proof_bundle(served.index)).to_bytes()


def request_for(warrant: bytes, envelopes: list[Envelope]) -> AccessRequest:
    wid = court_tool.warrant_id_of(warrant)
    return AccessRequest(wid, tuple(access_item(e) for e in envelopes))


# ----------------------------------------------------------------------------- keys


def test_keys_are_created_private_and_reloaded(tmp_path: Path) -> None:
    keys, created = load_or_create_keys(tmp_path / "c")
    assert created
    for name in (KEY_FILE_NAME, STORAGE_KEY_FILE_NAME, ADMIN_TOKEN_FILE_NAME):
        assert stat.S_IMODE(os.stat(tmp_path / "c" / name).st_mode) == 0o600
    again, created = load_or_create_keys(tmp_path / "c")
    assert not created and again.sign.public_key == keys.sign.public_key
    assert again.storage_key == keys.storage_key and again.admin_token == keys.admin_token
    assert "redacted" in repr(keys.sign) and keys.admin_token not in repr(keys)
    os.chmod(tmp_path / "c" / KEY_FILE_NAME, 0o644)
    with pytest.raises(ConfigurationError, match="chmod 600"):
        load_or_create_keys(tmp_path / "c")


# ----------------------------------------------------------------------------- the DKG


async def test_the_dkg_runs_over_http_and_the_provider_logs_the_epoch_key(world: World) -> None:
    epoch, policy = await dkg(world)
    (entry,) = [e for e in await world.entries() if isinstance(e, EpochKey)]
    assert entry.epoch == epoch and entry.public_key == policy.public_key.raw
    assert (entry.not_before, entry.retain_until) == epoch_span(epoch, world.escrow)
    transcripts = set()
    for j, service in enumerate(world.services, start=1):
        share = service._share(epoch)
        share.check()  # x_j·G is the transcript's X_j
        transcripts.add(share.transcript.encode())
        state = (world.tmp / f"c{j}" / STATE_FILE_NAME).read_text()
        assert b64e(share.secret.export_secret()) not in state  # sealed at rest
        assert json.loads(state)["epochs"][str(epoch)]["status"] == "held"
    assert len(transcripts) == 1
    # A second DKG of the same epoch is refused by every custodian.
    with pytest.raises(OvertError, match="already made"):
        await run_dkg(epoch, world.urls, PROVIDER, transport=world.routes)
    # The share at rest needs the storage key.
    sealed = world.services[0].state.epochs[epoch].sealed_share  # type: ignore[union-attr]
    with pytest.raises(ConfigurationError, match=r"storage\.key"):
        open_at_rest(b"\x00" * 32, sealed, epoch, 1)


async def test_a_share_altered_in_transit_draws_a_complaint_and_the_dkg_still_agrees(
    world: World,
) -> None:
    class Tamper(httpx.AsyncBaseTransport):
        """Corrupts the share custodian 1 deals to custodian 2 (the relay is untrusted)."""

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            response = await world.routes.handle_async_request(request)
            if request.url.host != "custodian1.test" or not request.url.path.endswith("round1"):
                return response
            doc = json.loads(await response.aread())
            for share in doc["shares"]:
                if share["body"].startswith("Ag"):  # recipient byte 2
                    share["body"] = share["body"][:-4] + "AAAA"
            return httpx.Response(200, json=doc)

    epoch = epoch_at(NOW, world.escrow)
    result = await run_dkg(epoch, world.urls, PROVIDER, transport=Tamper())
    assert result.transcript.qualified == (1, 2, 3, 4, 5)  # dealer 1 answered the complaint
    for service in world.services:
        service._share(epoch).check()


# ----------------------------------------------------------------------------- decisions


async def test_a_lawful_request_is_receipted_before_the_shares_are_answered(world: World) -> None:
    epoch, policy = await dkg(world)
    t = traffic(policy)
    document, proof = await served_warrant(world)
    request = request_for(document, [e for e, _, _ in t.targeted])
    asked = await ask_custodians(world.urls, document, proof, request, transport=world.routes)
    assert sorted(asked.answers) == [1, 2, 3, 4, 5] and not asked.refused, (
        asked.refused,
        asked.failed,
    )
    entries = await world.entries()
    for j, answer in asked.answers.items():
        logged = entries[answer.receipt_index]
        assert isinstance(logged, AccessReceipt) and logged == answer.receipt
        assert logged.count == 2 and logged.custodian_id == world.keys[j - 1].sign.public_key.raw
    transcript = world.services[0]._share(epoch).transcript
    combined = collect(
        transcript, request.points, {j: a.response for j, a in asked.answers.items()}
    )
    for (env, keys, body), point in zip(t.targeted, combined.points, strict=True):
        item = open_direct(env.encode(), keys, point)
        assert item.content.endswith(body)
    status = await CustodianClient(custodian_url(2), transport=world.routes).status()
    assert status["warrants"][0]["released"] == 2  # type: ignore[index,call-overload]
    # Asking again for the same messages with the same points is allowed (and counted).
    again = await ask_custodians(world.urls[:3], document, proof, request, transport=world.routes)
    assert sorted(again.answers) == [1, 2, 3]


async def refusals(world: World, document: bytes, proof: bytes, envs: list[Envelope]) -> set[str]:
    asked = await ask_custodians(
        world.urls, document, proof, request_for(document, envs), transport=world.routes
    )
    assert not asked.answers, "nothing may be released"
    return {r.refusal for r in asked.refused.values()}


async def test_refusals_say_why_and_release_nothing(world: World) -> None:
    _, policy = await dkg(world)
    t = traffic(policy, n=3)
    document, proof = await served_warrant(world, cap=2)
    size = await world.log.size()
    assert await refusals(world, document, proof, [t.other[0][0]]) == {"not_a_target"}
    targeted = [e for e, _, _ in t.targeted]
    assert await refusals(world, document, proof, targeted) == {"cap_exceeded"}
    stripped = proof.rsplit(b"\n\n", 1)[0] + b"\n\n"
    assert await refusals(world, document, stripped, targeted[:1]) == {"malformed_log_proof"}
    assert await world.log.size() == size  # no receipt was logged

    client = CustodianClient(custodian_url(4), transport=world.routes)
    wid = court_tool.warrant_id_of(document)
    with pytest.raises(OvertError, match="401"):
        await client.veto(wid, "not the token")
    await client.veto(wid, world.keys[3].admin_token)
    asked = await ask_custodians(
        world.urls, document, proof, request_for(document, targeted[:1]), transport=world.routes
    )
    assert sorted(asked.answers) == [1, 2, 3, 5]
    assert asked.refused[custodian_url(4)].refusal == "vetoed"

    revocation = court_tool.revoke(COURT, document, reason="quashed", now=NOW)
    await world.lawful.revoke(wid, revocation)
    assert await refusals(world, document, proof, targeted[1:2]) == {"revoked", "vetoed"}


async def test_a_custodian_fails_closed_when_the_provider_is_unreachable(world: World) -> None:
    _, policy = await dkg(world)
    t = traffic(policy, n=1)
    document, proof = await served_warrant(world)
    del world.routes.apps["provider.test"]
    world.services[0]._manifest = None  # force a fresh read
    asked = await ask_custodians(
        world.urls[:1], document, proof, request_for(document, [t.targeted[0][0]]),
        transport=world.routes,
    )  # fmt: skip
    assert not asked.answers and "503" in asked.failed[custodian_url(1)]


# ----------------------------------------------------------------------------- destruction


async def test_shares_are_destroyed_when_retention_ends_and_on_request(world: World) -> None:
    epoch, policy = await dkg(world)
    t = traffic(policy, n=1)
    document, proof = await served_warrant(world)
    client = CustodianClient(custodian_url(1), transport=world.routes)
    with pytest.raises(OvertError, match="401"):
        await client.destroy(epoch, "wrong")
    await client.destroy(epoch, world.keys[0].admin_token)
    state = json.loads((world.tmp / "c1" / STATE_FILE_NAME).read_text())
    assert state["epochs"][str(epoch)]["status"] == "destroyed"
    assert "sealed_share" not in state["epochs"][str(epoch)]
    assert (await client.transcript(epoch)).epoch == epoch  # the public part remains
    asked = await ask_custodians(
        world.urls[:2], document, proof, request_for(document, [t.targeted[0][0]]),
        transport=world.routes,
    )  # fmt: skip
    assert sorted(asked.answers) == [2]
    assert asked.refused[custodian_url(1)].refusal == "epoch_unavailable"

    _, retain_until = epoch_span(epoch, world.escrow)
    world.clock.s = retain_until  # every other custodian destroys on its next request
    for client_url in world.urls[1:]:
        await CustodianClient(client_url, transport=world.routes).status()
    for service in world.services:
        assert service.state.epochs[epoch].__class__.__name__ == "DestroyedEpoch"


async def test_state_survives_a_restart(world: World) -> None:
    epoch, policy = await dkg(world)
    t = traffic(policy, n=1)
    document, proof = await served_warrant(world)
    request = request_for(document, [t.targeted[0][0]])
    await ask_custodians(world.urls[:1], document, proof, request, transport=world.routes)
    restarted = world.restart(1)
    restarted._share(epoch).check()
    wid = court_tool.warrant_id_of(document)
    assert restarted.state.warrants[wid].used == 1
    with pytest.raises(ConfigurationError, match="belongs to custodian"):
        CustodianService(
            world.keys[0], StateFile(world.tmp / "c1" / STATE_FILE_NAME),
            ProviderClient(PROVIDER), index=2, name="Custodian 2",
        )  # fmt: skip


async def test_a_dkg_is_refused_for_past_or_far_future_epochs(world: World) -> None:
    current = epoch_at(NOW, world.escrow)
    for epoch in (0, current + 13):
        with pytest.raises(OvertError, match="no key is made for it"):
            await run_dkg(epoch, world.urls, PROVIDER, transport=world.routes)
    assert not [e for e in await world.entries() if isinstance(e, EpochKey)]


def test_the_state_round_trips_with_every_kind_of_record() -> None:
    state = CustodianState(
        index=3,
        name="Custodian 3",
        manifest=b"signed manifest",
        epochs={7: HeldEpoch(b"sealed", b"transcript", 1, 2), 8: DestroyedEpoch(b"t", 3, 4)},
        warrants={b"W" * 32: WarrantUse(2, {b"H" * 32: b"R" * 32}, (10, 11))},
        revocations=(b"revocation",),
        vetoes=frozenset({b"V" * 32}),
    )
    assert CustodianState.from_bytes(state.to_bytes()) == state
    with pytest.raises(OvertError):
        CustodianState.from_bytes(state.to_bytes().replace(b'"version":1', b'"version":2'))
