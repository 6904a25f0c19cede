"""Report intake end to end with real clients: the in-process relay (SQLite storage) with
``POST /v1/reports`` and the console wired in, clients that send, receive and report.

A valid report reaches the moderation queue with exactly what the reporter revealed; a message
whose franking commitment does not verify is dropped by the recipient's client, never shown,
and cannot be reported; a message is reported once per account; a suspension made in the
console closes the account's requests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from console.kit import FRANKING_KEY, Deployment, deployment
from overt.client import FailureReason, ServerRefused
from overt.client import body as client_body
from overt.client.reports import REPORT_CATEGORIES, report
from overt.console.service import Moderator, Role
from overt.errors import LocalError
from overt.protocol import franking
from overt.safety import EvidenceBundle, Report, reverify_bundle
from overt.safety.body import MessageBody
from overt.safety.limits import MAX_GOSSIP_ORIGIN_BYTES
from overt.server.reports import CATEGORY_SEVERITY, Category, Suspended
from overt.storage.moderation import ItemKind, ItemState
from overt.transparency.checkpoint import MAX_ORIGIN_BYTES

OPEN = {ItemState.OPEN, ItemState.NEEDS_LEAD}
MIA = Moderator("mia", Role.MODERATOR)


@pytest.fixture
async def d(tmp_path: Path) -> AsyncIterator[Deployment]:
    async with deployment(tmp_path) as dep:
        yield dep


async def _queue(d: Deployment) -> list[object]:
    assert d.storage.reports is not None
    return list(await d.storage.reports.queue(OPEN, 100))


async def test_a_valid_report_reaches_the_queue_with_exactly_what_was_revealed(
    d: Deployment,
) -> None:
    alice, bob = await d.user("alice"), await d.user("bob")
    await alice.send("bob", "hi, we met at the conference")
    slides = b"%PDF-1.4 something vile\n" * 40
    await alice.send_attachment(
        "bob", slides, content_type="application/pdf", file_name="x.pdf", caption="look"
    )
    await alice.send("bob", "you will regret ignoring me")
    await bob.send("alice", "please stop")
    got = await bob.sync()
    assert [m.text for m in got] == [
        "hi, we met at the conference",
        "look",
        "you will regret ignoring me",
    ]
    threat, attachment = got[2], got[1]

    report_id = await report(
        bob, "alice", [threat.message_id, attachment.message_id],
        category="harassment", comment="she keeps writing",
    )  # fmt: skip
    assert isinstance(report_id, str) and len(report_id) == 22

    (item,) = await _queue(d)
    assert (item.kind, item.label, item.subject_account) == (  # type: ignore[attr-defined]
        ItemKind.REPORT,
        "harassment",
        b"alice",
    )
    assert item.severity == CATEGORY_SEVERITY[Category.HARASSMENT]  # type: ignore[attr-defined]

    # The stored evidence is the report as received, verifiable offline with the franking key.
    assert d.storage.reports is not None
    stored = await d.storage.reports.get(item.report_id)  # type: ignore[attr-defined]
    assert stored is not None and stored.bundle is not None
    bundle = EvidenceBundle.decode(stored.bundle)
    assert bundle.retain_until_ms - bundle.received_ms == 365 * 24 * 3600 * 1000
    verified = reverify_bundle(bundle, FRANKING_KEY)
    revealed = Report.decode(bundle.report)
    assert revealed.comment == "she keeps writing"
    assert [m.message_id for m in revealed.messages] == [threat.message_id, attachment.message_id]

    # The console shows exactly that: two messages, their text, the attachment; nothing of the
    # first message or of bob's answer.
    view = await d.console.view(MIA, item.id)  # type: ignore[attr-defined]
    assert view.problem is None and view.comment == "she keeps writing"
    assert [m.text for m in view.messages] == ["you will regret ignoring me", "look"]
    assert view.messages[1].attachment is not None and view.messages[1].attachment.revealed
    download = await d.console.attachment(MIA, item.id, 2)  # type: ignore[attr-defined]
    assert (download.content, download.file_name) == (slides, "x.pdf")
    assert len(verified.messages) == 2
    assert b"conference" not in bundle.report and b"please stop" not in bundle.report


async def test_a_message_whose_commitment_does_not_verify_is_never_shown_nor_reportable(
    d: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob = await d.user("alice"), await d.user("bob")
    await alice.send("bob", "an honest first message")
    await bob.sync()
    real = franking.commit
    with monkeypatch.context() as m:
        # alice's client commits to other bytes than it encrypts (a lying sender).
        m.setattr(franking, "commit", lambda fk, ctx, body: real(fk, ctx, body + b"!"))
        lie = await alice.send("bob", "something the sender wants to deny later")
    assert await bob.sync() == []  # dropped: never shown
    (failure,) = await bob.undecryptable()
    assert failure.reason is FailureReason.INVALID
    assert [m.text for m in await bob.history("alice")] == ["an honest first message"]
    with pytest.raises(LocalError, match="only messages this device received and showed"):
        await report(bob, "alice", [lie.message_id], category="harassment")
    assert await _queue(d) == []


async def test_a_message_is_reported_once_per_account(d: Deployment) -> None:
    alice, bob = await d.user("alice"), await d.user("bob")
    bob_laptop = await d.linked("bob-laptop", bob)
    await alice.send("bob", "buy cheap pills")
    (on_phone,) = await bob.sync()
    (on_laptop,) = await bob_laptop.sync()
    await report(bob, "alice", [on_phone.message_id], category="spam")
    with pytest.raises(ServerRefused) as replay:
        await report(bob, "alice", [on_phone.message_id], category="spam")
    assert (replay.value.status, replay.value.code) == (409, "already_reported")
    # The laptop's copy has its own tag, but it is the same message of the same account.
    with pytest.raises(ServerRefused) as again:
        await report(bob_laptop, "alice", [on_laptop.message_id], category="other")
    assert again.value.code == "already_reported"
    assert len(await _queue(d)) == 1


async def test_own_messages_and_unknown_ids_are_refused_locally(d: Deployment) -> None:
    alice, bob = await d.user("alice"), await d.user("bob")
    sent = await bob.send("alice", "my own words")
    await alice.sync()
    with pytest.raises(LocalError):
        await report(bob, "alice", [sent.message_id], category="spam")
    with pytest.raises(LocalError):
        await report(bob, "alice", [b"\x00" * 16], category="spam")
    with pytest.raises(LocalError, match="category"):
        await report(bob, "alice", [b"\x00" * 16], category="rude")
    assert set(REPORT_CATEGORIES) == {c.value for c in Category}


async def test_suspension_from_the_console_closes_the_account(d: Deployment) -> None:
    alice, bob = await d.user("alice"), await d.user("bob")
    await alice.send("bob", "first insult")
    await alice.send("bob", "second insult")
    first, second = await bob.sync()
    await report(bob, "alice", [first.message_id], category="harassment")
    (item,) = await _queue(d)
    standing = await d.console.warn(MIA, item.id, "first warning")  # type: ignore[attr-defined]
    assert (standing.warnings, standing.suspended) == (1, False)
    answer = await alice._request("GET", "/v1/reports/standing")
    assert answer.json() == {"warnings": 1, "suspended": False, "reason": "first warning"}

    await report(bob, "alice", [second.message_id], category="harassment")
    (item2,) = await _queue(d)
    await d.console.suspend(MIA, item2.id, "repeated harassment")  # type: ignore[attr-defined]
    with pytest.raises(Suspended):
        await d.gate.check(alice._active().device.address)
    with pytest.raises(ServerRefused) as refused:
        await alice._request("GET", "/v1/reports/standing")
    assert (refused.value.status, refused.value.code) == (403, "suspended")
    assert "repeated harassment" in str(refused.value)
    # Lifting (a lead) opens it again at once on this node.
    await d.console.lift(Moderator("lee", Role.LEAD), b"alice", "appeal upheld")
    await d.gate.check(alice._active().device.address)


def test_bodies_with_gossip_are_read_as_the_client_writes_them() -> None:
    """Clients that follow a transparency log put a checkpoint in every body (version 2); a
    report of such a message must verify, so the safety core reads both versions."""
    assert MAX_GOSSIP_ORIGIN_BYTES == MAX_ORIGIN_BYTES
    gossip = client_body.Gossip("overt.test/log", 42, bytes(range(32)))
    for body in (
        client_body.Body.of_text(b"bob", "hello").with_gossip(gossip),
        client_body.Body.of_text(b"bob", "hello"),
    ):
        ours = MessageBody.decode(body.encode())
        assert ours.encode() == body.encode() and ours.text == "hello"
