"""Every refusal of ``POST /v1/reports``, over HTTP against the in-process relay with real
storage: the answer names the message and the kind of failure, and nothing is stored or
queued. Reports are built with protocol-level devices and real reporting tags (the relay's
franking key), so each lie can be crafted exactly."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from console.kit import FRANKING_KEY, Deployment, call, deployment, register
from overt.console.service import Moderator, Role
from overt.crypto import aes256gcm_decrypt, sha256
from overt.protocol import Device
from overt.safety import (
    ATTACHMENT_AD,
    ATTACHMENT_LABEL,
    AttachmentRef,
    BodyKind,
    MessageBody,
    ReplayKey,
    Report,
    ReportedMessage,
    RevealedAttachment,
)
from overt.server.reports import REPORT_REQUEST_MAX_BYTES
from overt.storage.moderation import ItemState

from .gcm_forgery import content_key_parts, forge_two_key_gcm
from .support import World, report

ALL = {ItemState.OPEN, ItemState.NEEDS_LEAD, ItemState.CLOSED}


@pytest.fixture
async def d(tmp_path: Path) -> AsyncIterator[Deployment]:
    async with deployment(tmp_path) as dep:
        yield dep


@pytest.fixture
async def world(d: Deployment) -> World:
    w = World.make()
    w.server_key = FRANKING_KEY  # the relay's key: the tags are real
    await register(d, [w.alice], 1)
    await register(d, [w.bob, w.bob2], 2)
    await register(d, [w.carol], 3)
    return w


async def submit(
    d: Deployment, reporter: Device, rep: Report, category: str = "spam"
) -> httpx.Response:
    body = {"category": category, "report": rep.to_json()}
    return await call(d, reporter, "POST", "/v1/reports", body)


async def assert_nothing_stored(d: Deployment, rep: Report) -> None:
    assert d.storage.reports is not None
    assert await d.storage.reports.queue(ALL, 100) == ()
    keys = [ReplayKey(rep.reporter.account, m.franking_commitment).encode() for m in rep.messages]
    assert await d.storage.reports.seen(keys) == frozenset()


async def refused(
    d: Deployment, reporter: Device, rep: Report, status: int, code: str, text: str = ""
) -> None:
    response = await submit(d, reporter, rep)
    assert (response.status_code, response.json()["error"]) == (status, code), response.text
    assert text in response.json()["message"]
    await assert_nothing_stored(d, rep)


async def test_the_honest_report_is_accepted(d: Deployment, world: World) -> None:
    m = world.text(world.alice, world.bob, "honest")
    response = await submit(d, world.bob, report(world.bob, m), "violence")
    assert response.status_code == 201, response.text
    receipt = response.json()
    assert set(receipt) == {"id", "sha256", "received_ms", "retain_until_ms", "messages"}
    assert receipt["messages"] == 1 and receipt["sha256"] == report(world.bob, m).sha256().hex()
    assert d.storage.reports is not None
    (item,) = await d.storage.reports.queue(ALL, 10)
    assert (item.label, item.severity, item.subject_account) == ("violence", 7, b"alice")


async def test_an_altered_body_is_refused(d: Deployment, world: World) -> None:
    m = world.text(world.alice, world.bob, "see you tomorrow")
    worse = MessageBody(BodyKind.TEXT, b"bob", "something much worse").encode()
    rep = report(world.bob, dataclasses.replace(m, body=worse))
    await refused(d, world.bob, rep, 400, "invalid_report", "reported message 1")


async def test_a_forged_tag_is_refused(d: Deployment, world: World) -> None:
    m = world.text(world.alice, world.bob, "hello")
    rep = report(world.bob, dataclasses.replace(m, reporting_tag=bytes(32)))
    await refused(d, world.bob, rep, 400, "invalid_report")
    # A tag under another key (a different deployment's) is just as forged.
    rep2 = report(world.bob, dataclasses.replace(m, reporting_tag=sha256(m.reporting_tag)))
    await refused(d, world.bob, rep2, 400, "invalid_report")


async def test_a_commitment_that_does_not_open_is_refused(d: Deployment, world: World) -> None:
    m = world.text(world.alice, world.bob, "hello")
    rep = report(world.bob, dataclasses.replace(m, franking_key=bytes(32)))
    await refused(d, world.bob, rep, 400, "invalid_report")


async def test_a_message_that_reached_someone_else_is_refused(d: Deployment, world: World) -> None:
    to_bob = world.text(world.alice, world.bob, "for bob only")
    # carol got hold of bob's copy: honestly labelled, it is not hers to report...
    await refused(d, world.carol, report(world.carol, to_bob), 400, "refused",
                  "delivered to another account")  # fmt: skip
    # ...and relabelled as delivered to her, the relay's tag gives it away.
    relabelled = dataclasses.replace(to_bob, recipient=world.carol.address)
    await refused(d, world.carol, report(world.carol, relabelled), 400, "invalid_report")


async def test_a_group_member_cannot_report_a_copy_sent_to_another_device(
    d: Deployment, world: World
) -> None:
    to_bob, to_carol = world.deliver_fanout(
        world.alice, [world.bob, world.carol],
        MessageBody(BodyKind.TEXT, b"group", "to the whole group").encode(),
    )  # fmt: skip
    assert to_bob.franking_commitment == to_carol.franking_commitment  # one message
    # carol presents bob's delivery (its tag names bob's device) as her own.
    stolen = dataclasses.replace(to_bob, recipient=world.carol.address)
    await refused(d, world.carol, report(world.carol, stolen), 400, "invalid_report")
    # bob's second device presents the copy delivered to his first device as its own.
    other_device = dataclasses.replace(to_bob, recipient=world.bob2.address)
    await refused(d, world.bob2, report(world.bob2, other_device), 400, "invalid_report")
    # Each member may report their own copy, once: the same message, two reporters.
    assert (await submit(d, world.carol, report(world.carol, to_carol))).status_code == 201
    assert (await submit(d, world.bob, report(world.bob, to_bob))).status_code == 201
    again = await submit(d, world.bob, report(world.bob, to_bob))
    assert (again.status_code, again.json()["error"]) == (409, "already_reported")


async def test_reporting_in_another_devices_name_is_refused(d: Deployment, world: World) -> None:
    m = world.text(world.alice, world.bob, "hello")
    # Signed by bob's second device, but the report names the first as reporter.
    await refused(d, world.bob2, report(world.bob, m), 400, "refused", "reporter")


async def test_one_bad_message_refuses_the_whole_report(d: Deployment, world: World) -> None:
    good = world.text(world.alice, world.bob, "good")
    bad = dataclasses.replace(world.text(world.alice, world.bob, "bad"), reporting_tag=bytes(32))
    await refused(d, world.bob, report(world.bob, good, bad), 400, "invalid_report",
                  "reported message 2")  # fmt: skip


async def test_a_replayed_report_is_refused(d: Deployment, world: World) -> None:
    m = world.text(world.alice, world.bob, "replay me")
    rep = report(world.bob, m)
    assert (await submit(d, world.bob, rep)).status_code == 201
    again = await submit(d, world.bob, rep)
    assert (again.status_code, again.json()["error"]) == (409, "already_reported")
    # With a comment it is another report, of the same message: still refused.
    commented = dataclasses.replace(rep, comment="please look again")
    third = await submit(d, world.bob, commented)
    assert third.status_code == 409
    assert d.storage.reports is not None
    assert len(await d.storage.reports.queue(ALL, 10)) == 1


async def test_an_attachment_ciphertext_under_two_keys_is_refused(
    d: Deployment, world: World
) -> None:
    key1, key2 = b"\x01" * 32, b"\x02" * 32
    aes1, nonce1, commitment1 = content_key_parts(key1, ATTACHMENT_LABEL)
    aes2, nonce2, _ = content_key_parts(key2, ATTACHMENT_LABEL)
    gcm = forge_two_key_gcm(aes1, nonce1, aes2, nonce2, ATTACHMENT_AD)
    p1 = aes256gcm_decrypt(aes1, nonce1, gcm, ATTACHMENT_AD)
    p2 = aes256gcm_decrypt(aes2, nonce2, gcm, ATTACHMENT_AD)
    blob = commitment1 + gcm

    def message(key: bytes, plaintext: bytes) -> ReportedMessage:
        ref = AttachmentRef(
            b"blob", key, len(plaintext), sha256(plaintext), sha256(blob), "image/jpeg", "a.jpg"
        )
        body = MessageBody(BodyKind.ATTACHMENT, b"bob", "", ref).encode()
        msg = world.deliver(world.alice, world.bob, body)
        return dataclasses.replace(msg, attachment=RevealedAttachment(key, blob, None))

    # The sender committed to key2 and p2's hashes; the blob opens under key1 only.
    await refused(d, world.bob, report(world.bob, message(key2, p2)), 400, "invalid_report")
    # Committed to key1, the same blob is accepted — and the moderator sees p1, what it is.
    ok = await submit(d, world.bob, report(world.bob, message(key1, p1)))
    assert ok.status_code == 201, ok.text
    assert d.storage.reports is not None
    (item,) = await d.storage.reports.queue(ALL, 10)
    download = await d.console.attachment(Moderator("mia", Role.MODERATOR), item.id, 1)
    assert download.content == p1


async def test_malformed_and_oversized_requests(d: Deployment, world: World) -> None:
    m = world.text(world.alice, world.bob, "hello")
    good = report(world.bob, m).to_json()
    cases: list[tuple[object, int, str]] = [
        (b"not json", 400, "malformed"),
        ({"category": "spam"}, 400, "malformed"),
        ({"category": "rude", "report": good}, 400, "malformed"),
        ({"category": "spam", "report": good, "extra": 1}, 400, "malformed"),
        ({"category": "spam", "report": {**good, "version": 2}}, 400, "malformed"),
        ({"category": "spam", "report": {**good, "messages": []}}, 400, "malformed"),
    ]
    for body, status, code in cases:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        response = await call(d, world.bob, "POST", "/v1/reports", raw)
        assert (response.status_code, response.json()["error"]) == (status, code), body
    huge = b"x" * (REPORT_REQUEST_MAX_BYTES + 1)
    response = await call(d, world.bob, "POST", "/v1/reports", huge)
    assert (response.status_code, response.json()["error"]) == (413, "too_large")
    unsigned = await d.http.post("/v1/reports", json={"category": "spam", "report": good})
    assert unsigned.status_code == 401
    await assert_nothing_stored(d, report(world.bob, m))
