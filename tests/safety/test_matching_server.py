"""Known-content matching on the relay, in process: a list published by the operator path
(prepare → organisations check and sign → log entry type 8 → stored), its table served,
bundles taken from a signed device, and the threshold: t − 1 matching images open nothing, the
t-th puts exactly those images' re-checked payloads into the moderation queue as
``known_content_match`` items. Bundles are made by the sans-I/O client core against the table
the server serves (verified against the logged entry)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

from server_kit import (
    FRANKING_KEY,
    FakeClock,
    Party,
    make_party,
    registration,
    signed_headers,
)

from overt.crypto import DeterministicRng
from overt.errors import ConfigurationError
from overt.safety.matching import (
    BlindedTable,
    MatchingSecret,
    ProviderKey,
    hash_rgb,
    make_bundle,
    make_payload,
    verify_table,
)
from overt.safety.matching.deployment import psi_params
from overt.safety.matching.payload import MatchPayload
from overt.server import ServerConfig, create_app
from overt.server.config import TransparencyConfig, TransparencyKeys
from overt.server.deployment import Deployment
from overt.server.matching import BUNDLES_PER_WINDOW, MATCH_RULE, publish_version
from overt.storage import InProcessPubSub, Storage, open_memory
from overt.storage.moderation import ItemKind, ItemState
from overt.transparency.entries import MatchingListCommitment, decode_entry

from . import matching_kit as kit


@dataclass
class MatchEnv:
    http: httpx.AsyncClient
    clock: FakeClock
    storage: Storage
    key: ProviderKey
    orgs: kit.Orgs
    app: object

    async def call(self, party: Party | None, method: str, target: str, body: bytes = b"",
                   json: object = None) -> httpx.Response:  # fmt: skip
        headers: dict[str, str] = {}
        if json is not None:
            import json as _json  # noqa: PLC0415

            body = _json.dumps(json, separators=(",", ":")).encode()
            headers["Content-Type"] = "application/json"
        if party is not None:
            headers.update(signed_headers(party.device, method, target, body,
                                          self.clock.advance()))  # fmt: skip
        return await self.http.request(method, target, content=body, headers=headers)


@asynccontextmanager
async def matching_env(threshold: int = kit.THRESHOLD) -> AsyncIterator[MatchEnv]:
    storage = await open_memory()
    o = kit.orgs()
    rng = DeterministicRng(b"matching server")
    key = ProviderKey.generate(rng)
    deployment = Deployment(safety=o.safety(threshold))
    clock = FakeClock()
    app = create_app(
        ServerConfig(
            FRANKING_KEY,
            transparency=TransparencyConfig(TransparencyKeys.generate(rng), deployment),
            matching_key=key.export_secret(),
        ),
        storage,
        InProcessPubSub(),
        clock=clock,
        rng=rng,
    )
    await app.state.publisher.ensure()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://overt.test"
        ) as http:
            yield MatchEnv(http, clock, storage, key, o, app)
    finally:
        await storage.close()


async def publish(env: MatchEnv, signers: int = 2) -> MatchingListCommitment:
    package, entry = kit.signed_version(env.orgs, env.key, signers=signers)
    assert env.storage.matching is not None
    await publish_version(
        store=env.storage.matching, log=env.app.state.log,  # type: ignore[attr-defined]
        policy=env.orgs.policy(), package=package, entry=entry, now_ms=env.clock(),
    )  # fmt: skip
    return entry


class Sender:
    """The client core against the served table, as the client library does it."""

    def __init__(self, env: MatchEnv, entry: MatchingListCommitment, table: bytes) -> None:
        self.params = psi_params(env.orgs.policy())
        self.verified = verify_table(
            BlindedTable.decode(table), entry, env.orgs.policy(), lsh=self.params.lsh
        )
        self.secret = MatchingSecret.generate(DeterministicRng(b"seed"))
        self.rng = DeterministicRng(b"sender")  # no synthetic bundle among the first images
        self.sequence = 0

    def bundle(self, rgb: object) -> tuple[bytes, bytes]:
        import numpy as np  # noqa: PLC0415

        assert isinstance(rgb, np.ndarray)
        digest = hash_rgb(rgb)
        b = make_bundle(
            table=self.verified, secret=self.secret, device=1, sequence=self.sequence,
            digest=digest, payload=make_payload(rgb, digest), params=self.params, rng=self.rng,
        )  # fmt: skip
        self.sequence += 1
        return b.image_id, b.encode()


async def setup(env: MatchEnv) -> tuple[Party, Sender]:
    entry = await publish(env)
    info = (await env.call(None, "GET", "/v1/matching/list")).json()
    assert info["version"] == 1
    table = await env.call(None, "GET", "/v1/matching/table")
    assert table.status_code == 200
    # The logged entry at the advertised index is the one the organisations signed.
    (data,) = await env.app.state.log.entries(info["log_index"], info["log_index"] + 1)  # type: ignore[attr-defined]
    assert decode_entry(data) == entry
    party = make_party("alice", 7)
    r = await env.call(party, "POST", "/v1/accounts", json=registration(party))
    assert r.status_code == 201, r.text
    return party, Sender(env, entry, table.content)


async def match_items(env: MatchEnv) -> list[dict[str, object]]:
    import json  # noqa: PLC0415

    assert env.storage.reports is not None
    items = await env.storage.reports.queue({ItemState.OPEN}, 100)
    out = []
    for item in items:
        assert item.kind is ItemKind.SIGNAL and item.label == MATCH_RULE
        assert item.subject_account == b"alice"
        out.append(json.loads(item.detail))
    return out


async def test_t_minus_one_matches_open_nothing_and_t_queue_exactly_those() -> None:
    async with matching_env() as env:
        party, sender = await setup(env)
        sent: list[bytes] = []
        for i in range(kit.THRESHOLD):
            # An unrelated image between matching ones: it never opens, never reaches the queue.
            _, other = sender.bundle(kit.unrelated_image(i))
            r = await env.call(party, "POST", "/v1/matching/bundles", other)
            assert r.status_code == 202 and r.json() == {"status": "accepted"}
            image_id, data = sender.bundle(kit.near_duplicate(i))
            sent.append(image_id)
            r = await env.call(party, "POST", "/v1/matching/bundles", data)
            assert r.status_code == 202 and r.json() == {"status": "accepted"}  # same answer
            if i < kit.THRESHOLD - 1:
                assert await match_items(env) == []
                assert env.storage.matching is not None
                held = await env.storage.matching.opened(b"alice")
                assert all(r.revealed is None for r in held)
        items = await match_items(env)
        from overt.wire.b64 import b64d  # noqa: PLC0415

        assert sorted(b64d(i["image"], "id") for i in items) == sorted(sent)
        for item in items:
            assert isinstance(item["distance"], int) and item["distance"] <= 31
            assert item["list_version"] == 1
            assert item["device"] == 1 and item["subject"] == "YWxpY2U"  # the account
        # The payload kept for the console is the client's visual derivative of a list image.
        assert env.storage.matching is not None
        held = await env.storage.matching.opened(b"alice")
        revealed = [r for r in held if r.revealed is not None]
        assert len(revealed) == kit.THRESHOLD
        assert all(len(MatchPayload.decode(r.revealed or b"").derivative) == 4096
                   for r in revealed)  # fmt: skip
        # A further match of the same account is queued on its own; nothing is queued twice.
        image_id, data = sender.bundle(kit.near_duplicate(kit.THRESHOLD))
        await env.call(party, "POST", "/v1/matching/bundles", data)
        items = await match_items(env)
        assert len(items) == kit.THRESHOLD + 1
        assert image_id in {b64d(i["image"], "id") for i in items}


async def test_unrelated_images_never_reach_the_queue() -> None:
    async with matching_env() as env:
        party, sender = await setup(env)
        for i in range(kit.THRESHOLD + 1):
            _, data = sender.bundle(kit.unrelated_image(i))
            assert (await env.call(party, "POST", "/v1/matching/bundles", data)).status_code == 202
        assert await match_items(env) == []
        assert env.storage.matching is not None
        assert await env.storage.matching.opened(b"alice") == ()


async def test_bad_bundles_are_refused_and_store_nothing() -> None:
    async with matching_env() as env:
        party, sender = await setup(env)
        _, good = sender.bundle(kit.near_duplicate(0))
        r = await env.call(party, "POST", "/v1/matching/bundles", b"not a bundle")
        assert r.status_code == 400
        forged = good[:1] + b"\x00" * 32 + good[33:]  # another table commitment
        r = await env.call(party, "POST", "/v1/matching/bundles", forged)
        assert r.status_code == 409 and r.json()["error"] == "unknown_list_version"
        r = await env.call(None, "POST", "/v1/matching/bundles", good)  # unsigned
        assert r.status_code == 401
        r = await env.call(party, "POST", "/v1/matching/bundles", good + b"\x00" * 300_000)
        assert r.status_code == 413
        assert env.storage.matching is not None
        assert await env.storage.matching.opened(b"alice") == ()


async def test_bundles_are_rate_limited_per_device() -> None:
    async with matching_env() as env:
        party, sender = await setup(env)
        _, data = sender.bundle(kit.unrelated_image(0))
        for _ in range(BUNDLES_PER_WINDOW):
            assert (await env.call(party, "POST", "/v1/matching/bundles", data)).status_code == 202
        r = await env.call(party, "POST", "/v1/matching/bundles", data)
        assert r.status_code == 429


async def test_publishing_needs_the_quorum_and_the_chain() -> None:
    async with matching_env() as env:
        package, entry = kit.signed_version(env.orgs, env.key, signers=1)
        assert env.storage.matching is not None
        with pytest.raises(ConfigurationError, match="organisations required"):
            await publish_version(
                store=env.storage.matching, log=env.app.state.log,  # type: ignore[attr-defined]
                policy=env.orgs.policy(), package=package, entry=entry, now_ms=1,
            )  # fmt: skip
        size = await env.app.state.log.size()  # type: ignore[attr-defined]
        assert size == 1  # the manifest only: nothing was logged
        assert (await env.call(None, "GET", "/v1/matching/list")).status_code == 404
        await publish(env)
        with pytest.raises(ConfigurationError, match="does not follow"):
            await publish(env)  # version 1 again


async def test_routes_are_absent_when_matching_is_off() -> None:
    storage = await open_memory()
    try:
        app = create_app(ServerConfig(FRANKING_KEY), storage, InProcessPubSub(),
                         rng=DeterministicRng(1))  # fmt: skip
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://overt.test"
        ) as http:
            assert (await http.get("/v1/matching/list")).status_code == 404
            assert (await http.post("/v1/matching/bundles", content=b"x")).status_code == 404
    finally:
        await storage.close()


async def test_a_lead_sees_the_derivative_and_escalates_a_match(tmp_path: Path) -> None:
    import io  # noqa: PLC0415

    from PIL import Image  # noqa: PLC0415

    from overt.console.service import ConsoleService, EscalationSettings, Moderator, Role  # noqa: PLC0415
    from overt.safety.cybertip import (  # noqa: PLC0415
        ContactPerson,
        CyberTipCredentials,
        IncidentType,
        ProviderProfile,
        validate_xml,
    )
    from overt.safety.cybertip_standin import CyberTipStandin  # noqa: PLC0415
    from overt.safety.submission import DirectorySubmissionStore  # noqa: PLC0415

    async with matching_env() as env:
        party, sender = await setup(env)
        for i in range(kit.THRESHOLD):
            _, data = sender.bundle(kit.near_duplicate(i))
            await env.call(party, "POST", "/v1/matching/bundles", data)
        standin = CyberTipStandin(username="u", password="p")
        console = ConsoleService(
            franking_key=FRANKING_KEY, reports=env.storage.reports, standing=env.storage.standing,
            moderators=env.storage.moderators, matching=env.storage.matching,
            escalation=EscalationSettings(
                base_url="http://cybertip.invalid/ispws",
                credentials=CyberTipCredentials("u", "p"),
                provider=ProviderProfile(ContactPerson("safety@overt.invalid")),
                submissions=DirectorySubmissionStore(tmp_path / "cybertip"),
                transport=httpx.ASGITransport(app=standin.app),
            ),
            clock=env.clock, rng=DeterministicRng(3),
        )  # fmt: skip
        lead, mod = Moderator("lea", Role.LEAD), Moderator("mo", Role.MODERATOR)
        queue = await console.queue()
        assert len(queue) == kit.THRESHOLD
        view = await console.view(mod, queue[0].id)
        assert view.match is not None and view.problem is None
        assert view.match.distance <= 31
        png = (await console.derivative(mod, queue[0].id)).content
        assert Image.open(io.BytesIO(png)).size == (64, 64)
        from overt.console.pages import Context, item_page  # noqa: PLC0415

        html = item_page(Context("/console", lead, "csrf", env.clock()), view, True)
        assert "Known-content match" in html
        assert f'src="/console/items/{queue[0].id}/derivative.png"' in html
        assert "Escalate to the CyberTipline" in html and "Propose escalation" in html
        await console.propose(mod, queue[0].id, "matches a listed image")
        state = await console.escalate(
            lead, queue[0].id, incident_type=IncidentType.CHILD_PORNOGRAPHY,
            notes="The derivative shows the listed image.",
        )  # fmt: skip
        assert state.report_id is not None
        submitted = standin.reports[state.report_id]
        validate_xml(submitted.document, "report", "the escalated report")
        assert b"visual derivative" in submitted.document
        assert submitted.finished
        item = await console.view(lead, queue[0].id)
        assert item.item.state is ItemState.CLOSED
