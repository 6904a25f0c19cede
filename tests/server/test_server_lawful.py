"""The provider's lawful-access router in-process: a FastAPI app built here from
:func:`overt.server.lawful.lawful_router` over a real :class:`~overt.transparency.log.Log` and
SQLite storage, with a fake clock. Warrants come from the court tool, DKG publications from
five in-process DKG participants signing with the custodians' keys."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from overt.access import AccessTrust, FlagKind, audit
from overt.access.custodian_policy import contexts_hash
from overt.access.epoch import decode_confirmations, verify_confirmations
from overt.access.warrant import Warrant, read_opening, warrant_commitment
from overt.crypto import DeterministicRng, Ed25519PrivateKey, sha256
from overt.errors import OvertError
from overt.server.errors import describe
from overt.server.lawful import INTERCEPT_SLACK_SECONDS, LawfulAccess, lawful_router
from overt.services import court as court_tool
from overt.services.custodian_wire import (
    EpochPublication,
    b64d,
    b64e,
    dkg_parameters,
    epoch_span,
    sign_receipt,
)
from overt.storage import NewMail, Storage, open_sqlite
from overt.transparency.entries import (
    AccessReceipt,
    EpochKey,
    WarrantCommitment,
    WarrantUnsealing,
    decode_entry,
)
from overt.transparency.log import Log
from overt.transparency.manifest import (
    EscrowAccess,
    LogInfo,
    Manifest,
    NamedKey,
    NoAccess,
)
from overt.transparency.note import NoteSigner

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the custodians' kit
from custodian_kit import CUSTODIANS, custodian_entries, signed_publication


def key(seed: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate(DeterministicRng(seed))


COURT = court_tool.Court("District Court", key("court"))
ROGUE = court_tool.Court("District Court", key("rogue"))
ORIGIN = "lawful.test/log"
LOG_SIGNER = NoteSigner(ORIGIN, key("log"))
DAY = 86_400
NOW = 1_750_000_000  # seconds; the fake clock starts here
MIDNIGHT = NOW - NOW % DAY + DAY  # the next UTC midnight
ESCROW = EscrowAccess(
    custodians=custodian_entries(),
    threshold=3,
    court_keys=(COURT.named_key,),
    epoch_length_days=30,
    retention_days=60,
    max_seal_days=180,
)


def manifest(access: EscrowAccess | NoAccess = ESCROW) -> Manifest:
    return Manifest(
        deployment="lawful.test",
        version=1,
        provider_key=key("provider").public_key,
        server_keys=(NamedKey("api", key("provider").public_key),),
        log=LogInfo(ORIGIN, LOG_SIGNER.verifier_key),
        witnesses=(),
        witness_quorum=0,
        access=access,
    )


@dataclass
class Source:
    """The ``ManifestSource`` the router needs (the server's publisher, in production)."""

    manifest: Manifest

    async def ensure(self) -> Source:
        return self


class Clock:
    def __init__(self, now_s: int) -> None:
        self.ms = now_s * 1000

    def __call__(self) -> int:
        return self.ms

    def set(self, now_s: int) -> None:
        self.ms = now_s * 1000


@dataclass
class World:
    http: httpx.AsyncClient
    lawful: LawfulAccess
    log: Log
    storage: Storage
    clock: Clock
    source: Source

    async def entry(self, index: int) -> Any:
        (data,) = await self.log.entries(index, index + 1)
        return decode_entry(data)

    async def entries(self) -> list[tuple[int, Any]]:
        size = await self.log.size()
        return [(i, decode_entry(d)) for i, d in enumerate(await self.log.entries(0, size))]


async def _error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OvertError)
    answer = describe(exc)
    return JSONResponse(answer.body, status_code=answer.status, headers=answer.headers)


async def _invalid(request: Request, exc: Exception) -> Response:
    """As the relay's edge answers a request FastAPI cannot parse: 400 malformed."""
    return JSONResponse({"error": "malformed", "message": str(exc)[:200]}, status_code=400)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    storage = await open_sqlite(tmp_path / "provider.db")
    clock = Clock(NOW)
    log = Log(storage.log, LOG_SIGNER, ORIGIN, clock)
    source = Source(manifest())
    assert storage.warrants and storage.intercepts and storage.epochs
    lawful = LawfulAccess(
        log, source, storage.warrants, storage.intercepts, storage.epochs,
        clock=clock, rng=DeterministicRng("tokens"),
    )  # fmt: skip
    app = FastAPI()
    app.include_router(lawful_router(lawful))
    app.add_exception_handler(OvertError, _error)
    app.add_exception_handler(RequestValidationError, _invalid)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://provider") as http:
        yield World(http, lawful, log, storage, clock, source)
    await storage.close()


def warrant(
    court: court_tool.Court = COURT,
    *,
    targets: tuple[bytes, ...] = (b"alice",),
    days: int = 3,
    seal_days: int = 30,
    cap: int = 10,
    seed: str = "w",
    now: int = NOW,
) -> tuple[bytes, Warrant]:
    w = court_tool.make_warrant(
        court, targets=list(targets), start=MIDNIGHT, end=MIDNIGHT + days * DAY,
        seal_days=seal_days, cap=cap, reference="AUTH-1", legal_basis="s.15",
        judge_reference="J. Doe", now=now, rng=DeterministicRng(seed),
    )  # fmt: skip
    return court_tool.sign_warrant_file(court, w), w


async def serve(world: World, document: bytes) -> httpx.Response:
    return await world.http.post(
        "/v1/warrants", content=document, headers={"content-type": "application/json"}
    )


def mail(sender: bytes, recipient: bytes, envelope: bytes = b"envelope") -> NewMail:
    return NewMail(recipient, 2, sender, 1, envelope)


# ----------------------------------------------------------------------------- serving


async def test_a_served_warrant_is_logged_first_and_gets_a_token(world: World) -> None:
    document, w = warrant()
    r = await serve(world, document)
    assert r.status_code == 201, r.text
    body = r.json()
    assert b64d(body["warrant_id"], "id") == w.warrant_id
    entry = await world.entry(body["index"])
    assert entry == warrant_commitment(w)[0]
    assert isinstance(entry, WarrantCommitment)
    assert w.targets.isdisjoint({entry.targets_commitment})  # targets stay hidden
    record = await world.storage.warrants.get(w.warrant_id)  # type: ignore[union-attr]
    assert record is not None and record.index == body["index"]
    assert record.token_hash == sha256(b64d(body["token"], "token"))

    again = await serve(world, document)
    assert again.status_code == 409 and again.json()["error"] == "exists"
    assert await world.log.size() == 1  # no second commitment


@pytest.mark.parametrize(
    ("make", "status", "phrase"),
    [
        (lambda: warrant(ROGUE)[0], 403, "does not list"),
        (lambda: warrant()[0].replace(b'"signature":"', b'"signature":"A', 1)[:-1], 400, ""),
        (lambda: b'{"warrant": 1}', 400, ""),
        (lambda: warrant(seal_days=200)[0], 400, "sealed for"),
    ],
    ids=["unknown court", "mangled", "malformed", "sealed too long"],
)
async def test_bad_warrants_are_refused_and_nothing_is_logged(
    world: World, make: Any, status: int, phrase: str
) -> None:
    r = await serve(world, make())
    assert r.status_code == status, r.text
    assert phrase in r.json()["message"]
    assert await world.log.size() == 0


async def test_a_forged_signature_is_refused(world: World) -> None:
    document, _ = warrant()
    forged = document.replace(b'"judge_reference":"J. Doe"', b'"judge_reference":"J. Roe"')
    r = await serve(world, forged)
    assert r.status_code == 400 and "signature" in r.json()["message"]
    assert await world.log.size() == 0


async def test_an_ended_warrant_and_a_deployment_without_escrow_are_refused(world: World) -> None:
    document, _ = warrant(days=1)
    world.clock.set(MIDNIGHT + DAY)
    r = await serve(world, document)
    assert r.status_code == 400 and "ended" in r.json()["message"]
    world.source.manifest = manifest(NoAccess())
    world.clock.set(NOW)
    r = await serve(world, document)
    assert r.status_code == 403 and "policy is none" in r.json()["message"]


# ----------------------------------------------------------------------------- interception


async def test_only_targets_in_the_window_are_copied_and_only_after_serving(world: World) -> None:
    lawful = world.lawful
    t_ms = (MIDNIGHT + 3600) * 1000
    before = [mail(b"alice", b"bob"), mail(b"carol", b"dave")]
    assert await lawful.intercept(before, [1, 2], t_ms) == 0  # no warrant, no copy
    document, w = warrant(targets=(b"alice",))
    token = (await serve(world, document)).json()["token"]
    batch = [
        mail(b"alice", b"bob", b"a->b"),
        mail(b"bob", b"alice", b"b->a"),
        mail(b"carol", b"dave", b"c->d"),
    ]
    assert await lawful.intercept(batch, [3, 4, 5], t_ms) == 2
    # Outside the window (with its day of slack) and before the authorisation: nothing.
    late = (MIDNIGHT + 3 * DAY + INTERCEPT_SLACK_SECONDS) * 1000
    world.clock.ms = late
    assert await lawful.intercept([mail(b"alice", b"bob")], [6], late) == 0
    world.clock.set(NOW)
    assert await lawful.intercept([mail(b"alice", b"bob")], [7], (NOW - 10) * 1000) == 0

    wid = b64e(w.warrant_id)
    auth = {"authorization": f"Bearer {token}"}
    r = await world.http.get(f"/v1/warrants/{wid}/intercepts", headers=auth)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [b64d(i["envelope"], "e") for i in body["intercepts"]] == [b"a->b", b"b->a"]
    assert body["total"] == 2 and body["more"] is False
    first = body["intercepts"][0]
    assert first["mail_id"] == 3 and first["server_time"] == t_ms
    assert first["sender"] == f"{b64e(b'alice')}:1" and first["recipient"] == f"{b64e(b'bob')}:2"
    page = await world.http.get(
        f"/v1/warrants/{wid}/intercepts?after={first['id']}&limit=1", headers=auth
    )
    assert [i["mail_id"] for i in page.json()["intercepts"]] == [4]

    for headers in ({}, {"authorization": "Bearer " + "A" * 43}, {"authorization": "Basic x"}):
        r = await world.http.get(f"/v1/warrants/{wid}/intercepts", headers=headers)
        assert r.status_code == 401
    r = await world.http.get(f"/v1/warrants/{wid}/intercepts?limit=0", headers=auth)
    assert r.status_code == 400
    r = await world.http.get(f"/v1/warrants/{wid}/intercepts?after=01", headers=auth)
    assert r.status_code == 400


async def test_revocation_stops_interception_and_is_served_to_custodians(world: World) -> None:
    document, w = warrant()
    await serve(world, document)
    wid = b64e(w.warrant_id)
    assert (await world.http.get(f"/v1/warrants/{wid}/revocation")).status_code == 404
    t_ms = (MIDNIGHT + 60) * 1000
    assert await world.lawful.intercept([mail(b"alice", b"bob")], [1], t_ms) == 1

    rogue = court_tool.revoke(COURT, document, reason="quashed", now=NOW)
    other_doc, other = warrant(seed="other")
    wrong = court_tool.revoke(COURT, other_doc, reason="quashed", now=NOW)
    r = await world.http.post(f"/v1/warrants/{wid}/revoke", content=wrong)
    assert r.status_code == 400 and "another warrant" in r.json()["message"]
    forged = rogue.replace(b"quashed", b"QUASHED")
    assert (await world.http.post(f"/v1/warrants/{wid}/revoke", content=forged)).status_code == 400

    r = await world.http.post(f"/v1/warrants/{wid}/revoke", content=rogue)
    assert r.status_code == 200 and r.json() == {"warrant_id": wid, "revoked": True, "first": True}
    assert await world.lawful.intercept([mail(b"alice", b"bob")], [2], t_ms) == 0
    got = await world.http.get(f"/v1/warrants/{wid}/revocation")
    assert got.status_code == 200 and got.content == rogue
    r = await world.http.post(f"/v1/warrants/{b64e(other.warrant_id)}/revoke", content=wrong)
    assert r.status_code == 404  # never served


# ----------------------------------------------------------------------------- receipts


def receipt(warrant_id: bytes, custodian: int = 1, count: int = 2) -> AccessReceipt:
    return AccessReceipt(
        warrant_id, CUSTODIANS[custodian - 1].public_key.raw, count, contexts_hash([b"a", b"b"])
    )


async def post_receipt(world: World, r: AccessReceipt, signer: Ed25519PrivateKey) -> httpx.Response:
    body = {"receipt": b64e(r.encode()), "signature": b64e(sign_receipt(r, signer))}
    return await world.http.post("/v1/log/receipts", json=body)


async def test_receipts_are_logged_when_their_custodian_signed_them(world: World) -> None:
    document, w = warrant()
    await serve(world, document)
    r = await post_receipt(world, receipt(w.warrant_id, 2), CUSTODIANS[1])
    assert r.status_code == 201, r.text
    assert await world.entry(r.json()["index"]) == receipt(w.warrant_id, 2)

    wrong_signer = await post_receipt(world, receipt(w.warrant_id, 2), CUSTODIANS[0])
    assert wrong_signer.status_code == 400 and "signature" in wrong_signer.json()["message"]
    stranger = key("stranger")
    unknown = AccessReceipt(w.warrant_id, stranger.public_key.raw, 1, bytes(32))
    assert (await post_receipt(world, unknown, stranger)).status_code == 403
    bad = await world.http.post("/v1/log/receipts", json={"receipt": "AA", "signature": "AA"})
    assert bad.status_code == 400

    # A receipt without a warrant is logged all the same — and the audit flags it.
    orphan = await post_receipt(world, receipt(b"\x07" * 32, 3), CUSTODIANS[2])
    assert orphan.status_code == 201
    report = audit(
        await world.entries(), now=NOW, trust=AccessTrust.from_manifest(world.source.manifest)
    )
    flagged = report.flagged(FlagKind.RECEIPT_WITHOUT_WARRANT)
    assert [f.index for f in flagged] == [orphan.json()["index"]]
    assert report.released_per_warrant() == {w.warrant_id: 2}


# ----------------------------------------------------------------------------- epochs


def publication(
    epoch: int, *, drop: int | None = None, confirm_other: int | None = None
) -> tuple[EpochPublication, bytes]:
    """Five in-process participants run the DKG; every message signed as its custodian, but
    ``drop`` confirms nothing and ``confirm_other`` confirms another transcript."""

    def confirm(j: int, transcript: bytes) -> bytes | None:
        return None if j == drop else sha256(b"other" if j == confirm_other else transcript)

    params = dkg_parameters(manifest(), epoch, 0)
    pub, transcript = signed_publication(params, CUSTODIANS, lambda i: f"dkg{i}", confirm=confirm)
    return pub, transcript.encode()


async def test_an_epoch_confirmed_by_every_custodian_is_logged_once(world: World) -> None:
    pub, transcript = publication(677)
    r = await world.http.post("/v1/epochs", json=pub.to_json())
    assert r.status_code == 201, r.text
    body = r.json()
    entry = await world.entry(body["index"])
    assert isinstance(entry, EpochKey)
    assert (entry.epoch, entry.transcript_hash) == (677, sha256(transcript))
    assert (entry.not_before, entry.retain_until) == epoch_span(677, ESCROW)
    assert b64d(body["public_key"], "key") == entry.public_key
    assert b64d(body["transcript"], "t") == transcript
    # the custodians' confirmations are kept and served, for clients to check again
    confirmations = decode_confirmations(b64d(body["confirmations"], "c"))
    assert [c.custodian for c in confirmations] == [1, 2, 3, 4, 5]
    verify_confirmations(
        confirmations,
        dkg_parameters(manifest(), 677, 0).session_id,
        sha256(transcript),
        [k.public_key for k in CUSTODIANS],
    )
    assert (await world.http.get("/v1/epochs/677")).json() == body
    assert (await world.http.get("/v1/epochs")).json() == {"epochs": [body]}
    assert (await world.http.get("/v1/epochs/678")).status_code == 404
    again = await world.http.post("/v1/epochs", json=pub.to_json())
    assert again.status_code == 409
    assert await world.log.size() == 1


@pytest.mark.parametrize(
    ("make", "phrase"),
    [
        (lambda: publication(5, drop=4)[0], "custodian 4 did not confirm"),
        (lambda: publication(5, confirm_other=2)[0], "custodian 2 confirmed another"),
    ],
)
async def test_an_epoch_without_every_confirmation_is_refused(
    world: World, make: Any, phrase: str
) -> None:
    r = await world.http.post("/v1/epochs", json=make().to_json())
    assert r.status_code == 400 and phrase in r.json()["message"]
    assert await world.log.size() == 0


async def test_an_epoch_message_not_signed_by_its_custodian_is_refused(world: World) -> None:
    pub, _ = publication(5)
    doc: Any = pub.to_json()
    doc["commitments"][0]["signature"] = doc["commitments"][1]["signature"]
    r = await world.http.post("/v1/epochs", json=doc)
    assert r.status_code == 400 and "not signed" in r.json()["message"]
    r = await world.http.post("/v1/epochs", json={"epoch": 5})
    assert r.status_code == 400


# ----------------------------------------------------------------------------- unsealing


async def test_warrants_are_unsealed_after_their_notification_date(world: World) -> None:
    document, w = warrant(seal_days=10)
    await serve(world, document)
    assert await world.lawful.unseal_due(NOW + 9 * DAY) == []
    (index,) = await world.lawful.unseal_due(w.sealed_until)
    entry = await world.entry(index)
    assert isinstance(entry, WarrantUnsealing)
    entry.check_opens(warrant_commitment(w)[0])
    assert read_opening(entry.opening)[0].targets == (b"alice",)
    assert await world.lawful.unseal_due(w.sealed_until + DAY) == []
    report = audit(await world.entries(), now=w.sealed_until + DAY)
    assert report.flags == ()
    assert report.warrants[w.warrant_id].unsealed_at == index
