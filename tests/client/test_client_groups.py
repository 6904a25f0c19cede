"""Group conversations through the client library, against the real server in-process."""

from __future__ import annotations

import sqlite3
from dataclasses import replace

import pytest

from overt.client import Client, FailureReason, Message, Response, ServerRefused
from overt.client.errors import ProfileStateError
from overt.client.reports import report_group
from overt.crypto import DeterministicRng, Point, Scalar, open_sealed
from overt.errors import LocalError
from overt.protocol import EscrowPolicy, access
from overt.safety import Report, ReportedMessage
from overt.wire import Address
from overt.wire.b64 import b64d, b64e
from overt.wire.group_messages import GroupMessage

from .support import Call, World, json_response


async def _trio(world: World) -> tuple[Client, Client, Client]:
    alice = await world.user("alice", "alice")
    bob = await world.user("bob", "bob")
    carol = await world.user("carol", "carol")
    return alice, bob, carol


def _texts(messages: list[Message]) -> list[str]:
    return [m.text for m in messages]


def _group_rows(client: Client) -> list[tuple[object, ...]]:
    """Every byte of the client's group state (for "nothing changed" checks)."""
    db = sqlite3.connect(client._store.path)
    try:
        return [
            *db.execute("SELECT group_id, state, sender_key, status FROM groups").fetchall(),
            *db.execute("SELECT * FROM group_messages").fetchall(),
        ]
    finally:
        db.close()


async def test_create_send_receive_in_a_group_of_three(world: World) -> None:
    alice, bob, carol = await _trio(world)
    info = await alice.create_group("lunch", ["bob", "carol"])
    assert info.name == "lunch" and info.version == 1
    assert set(info.members) == {"alice", "bob", "carol"} and info.admins == ("alice",)

    sent = await alice.send_group("lunch", "noon at the usual place?")
    assert sent.outgoing and sent.group_id == info.group_id and sent.peer == "lunch"

    got_bob = await bob.sync()
    assert _texts(got_bob) == ["noon at the usual place?"]
    assert got_bob[0].group_id == info.group_id and got_bob[0].sender == "alice"
    assert [g.name for g in await bob.groups()] == ["lunch"]

    await bob.send_group(info.ref, "yes")
    assert _texts(await carol.sync()) == ["noon at the usual place?", "yes"]
    assert _texts(await alice.sync()) == ["yes"]
    history = await carol.group_history("lunch")
    assert [(m.sender, m.text) for m in history] == [
        ("alice", "noon at the usual place?"),
        ("bob", "yes"),
    ]
    # Delivered again (a lost acknowledgement): shown once.
    assert await carol.sync() == []


async def test_removed_member_reads_nothing_sent_afterwards(world: World) -> None:
    alice, bob, carol = await _trio(world)
    await alice.create_group("team", ["bob", "carol"])
    await alice.send_group("team", "before")
    assert _texts(await carol.sync()) == ["before"]
    assert _texts(await bob.sync()) == ["before"]

    info = await alice.remove_members("team", ["carol"])
    assert set(info.members) == {"alice", "bob"} and info.version == 2
    await alice.send_group("team", "after carol left")
    await bob.send_group("team", "bob too")

    assert _texts(await carol.sync()) == []
    (carol_view,) = await carol.groups()
    assert carol_view.status == "removed"
    assert _texts(await carol.group_history("team")) == ["before"]
    with pytest.raises(LocalError, match="no longer in the group"):
        await carol.send_group("team", "hello?")
    # bob's send met the new view (409 stale_group): his client read its mail first.
    assert _texts(await bob.group_history("team")) == ["before", "after carol left", "bob too"]
    assert _texts(await alice.sync()) == ["bob too"]


async def test_add_rename_members_since_and_leave(world: World) -> None:
    alice, bob, carol = await _trio(world)
    await alice.create_group("book club", ["bob"])
    await alice.send_group("book club", "first")
    await bob.sync()
    await alice.add_members("book club", ["carol"])
    await alice.rename_group("book club", "reading")
    await alice.send_group("reading", "welcome carol")
    assert _texts(await carol.sync()) == ["welcome carol"]  # nothing from before she joined
    members = {m.name: m for m in await carol.group_members("reading")}
    assert members["alice"].admin and not members["bob"].admin
    assert members["alice"].since_version == 1 and members["carol"].since_version == 2
    # carol learned of alice's joining from the history: no time; of her own, when it happened.
    assert members["alice"].since_ms is None and members["carol"].since_ms is not None
    assert _texts(await bob.sync()) == ["welcome carol"]

    # bob is no admin: he asks the admins; alice's client removes him.
    left = await bob.leave_group("reading")
    assert left.status == "left"
    with pytest.raises(LocalError):
        await bob.send_group("reading", "still here?")
    await alice.sync()
    assert {m.name for m in await alice.group_members("reading")} == {"alice", "carol"}
    await carol.send_group("reading", "bye bob")
    assert _texts(await alice.sync()) == ["bye bob"]
    assert _texts(await bob.sync()) == []


async def test_only_an_admin_holding_the_account_key_changes_a_group(world: World) -> None:
    alice, bob, _ = await _trio(world)
    laptop = await world.linked("alice-laptop", alice)
    await alice.create_group("g", ["bob"])
    await bob.sync()
    with pytest.raises(LocalError, match="only an admin"):
        await bob.add_members("g", ["carol"])
    await laptop.sync()
    with pytest.raises(ProfileStateError, match="account key"):
        await laptop.add_members("g", ["carol"])
    # The laptop is a member device all the same, and reads what alice's phone sends.
    await alice.send_group("g", "to every device")
    assert _texts(await laptop.sync()) == ["to every device"]
    assert (await laptop.group_history("g"))[0].outgoing


async def test_forged_replayed_and_non_member_messages_change_nothing(world: World) -> None:
    """What a misbehaving server (or a non-member) could slip into a member's mailbox: a
    replayed message under a fresh server id, a forged signature, a message from a device that
    is not in the group. Each is refused and the group state stays byte for byte the same."""
    inter = world.interposer()
    alice = await world.user("alice", "alice")
    bob = await world.user("bob", "bob", inter)
    carol = await world.user("carol", "carol")
    await alice.create_group("g", ["bob"])
    await alice.send_group("g", "genuine")
    seen: list[dict[str, object]] = []

    async def capture(call: Call) -> Response | None:
        if call.method == "GET" and call.target.startswith("/v1/messages"):
            answer = await call.proceed()
            seen.extend(m for m in answer.json()["messages"] if m.get("kind") == "group")
            return answer
        return None

    inter.hooks.append(capture)
    assert _texts(await bob.sync()) == ["genuine"]
    inter.hooks.clear()
    (mail,) = seen
    before = _group_rows(bob)
    genuine = GroupMessage.decode(b64d(mail["envelope"], "envelope"))

    forged_sig = genuine.with_signature(bytes(64))
    intruder = replace(genuine, sender=Address(b"carol", carol.device_id or 1), header_cache=None)
    intruder = intruder.with_signature(bytes(64))
    injected = [
        dict(mail, id=10_001),  # the same message again, under another server id
        dict(mail, id=10_002, envelope=b64e(forged_sig.encode())),
        dict(mail, id=10_003, envelope=b64e(intruder.encode()), sender=f"{b64e(b'carol')}:1"),
    ]

    async def inject(call: Call) -> Response | None:
        if call.method == "GET" and call.target.startswith("/v1/messages"):
            return json_response({"messages": injected, "more": False})
        return None

    inter.hooks.append(inject)
    assert await bob.sync() == []
    inter.hooks.clear()
    assert _group_rows(bob) == before
    reasons = {u.server_id: u.reason for u in await bob.undecryptable()}
    assert reasons == {10_002: FailureReason.INVALID, 10_003: FailureReason.PROTOCOL}
    assert _texts(await bob.group_history("g")) == ["genuine"]
    # And the group still works.
    await alice.send_group("g", "still fine")
    assert _texts(await bob.sync()) == ["still fine"]


async def test_a_member_reports_a_group_message_and_it_verifies_for_that_member_only(
    world: World,
) -> None:
    alice, bob, carol = await _trio(world)
    await alice.create_group("g", ["bob", "carol"])
    sent = await alice.send_group("g", "something abusive")
    await bob.sync()
    await carol.sync()

    report_id = await report_group(bob, "g", [sent.message_id], category="harassment")
    assert report_id

    # carol presents bob's delivery record (server id, time, tag) as hers: refused, with the
    # same answer as any forged report.
    gid = (await carol.group_info("g")).group_id
    (bobs,) = bob._groups.store.received(gid, sent.message_id)
    (hers,) = carol._groups.store.received(gid, sent.message_id)
    assert bobs.reporting_tag != hers.reporting_tag
    me = Address(b"carol", carol.device_id or 0)
    borrowed = ReportedMessage.from_group_delivery(
        hers.message, recipient=me, franking_key=hers.franking_key, body=hers.body,
        server_id=bobs.server_id or 0, server_time_ms=bobs.server_time_ms or 0,
        reporting_tag=bobs.reporting_tag or b"",
    )  # fmt: skip
    body = {"category": "spam", "report": Report(me, (borrowed,), "").to_json()}
    with pytest.raises(ServerRefused) as refused:
        await carol._request("POST", "/v1/reports", json=body)
    assert (refused.value.status, refused.value.code) == (400, "invalid_report")

    # Her own delivery record verifies.
    assert await report_group(carol, "g", [sent.message_id], category="spam")
    # Her own messages, or ones she did not receive, cannot be reported.
    mine = await carol.send_group("g", "mine")
    with pytest.raises(LocalError, match="received"):
        await report_group(carol, "g", [mine.message_id], category="spam")


async def test_under_escrow_each_group_message_escrows_its_key_with_the_group_context(
    world: World,
) -> None:
    secret = Scalar.random(DeterministicRng("epoch secret"))
    policy = EscrowPolicy(3, Point.base_mul(secret))
    clients = []
    for name in ("alice", "bob"):
        c = await Client.open(world.tmp / name, world.transport, clock=world.clock,
                              rng=DeterministicRng(f"escrow {name}"), policy=policy)  # fmt: skip
        world.clients.append(c)
        await c.create_account(name)
        clients.append(c)
    alice, bob = clients
    info = await alice.create_group("g", ["bob"])
    await alice.send_group("g", "escrowed")
    assert _texts(await bob.sync()) == ["escrowed"]
    (stored,) = bob._groups.store.history(info.group_id, 10)
    msg = GroupMessage.decode(stored.message)
    assert msg.access is not None and msg.access.epoch == 3
    ctx = access.group_context(
        3, msg.sender, msg.group_id, msg.member_set_hash, msg.message_id, msg.timestamp_ms
    )
    key = access.recover(msg.access, Point.from_bytes(msg.access.r).mul(secret), ctx)
    content = open_sealed(key, msg.ciphertext, msg.header_bytes(), b"/group")
    assert b"escrowed" in content


async def test_a_new_device_of_a_member_is_added_by_the_admins_client(world: World) -> None:
    """The server fans out to the view's devices only and says ``devices_changed``; the
    admin's client then signs a view with the member's current devices."""
    alice, bob, _ = await _trio(world)
    await alice.create_group("g", ["bob"])
    laptop = await world.linked("bob-laptop", bob)
    await alice.send_group("g", "before the laptop is in the view")
    info = await alice.group_info("g")
    assert info.version == 2
    assert {m.name: m.devices for m in await alice.group_members("g")}["bob"] == (1, 2)
    await alice.send_group("g", "to both of bob's devices")
    assert _texts(await laptop.sync()) == ["to both of bob's devices"]
    assert _texts(await bob.sync()) == [
        "before the laptop is in the view",
        "to both of bob's devices",
    ]
    await laptop.send_group("g", "from the laptop")
    assert _texts(await alice.sync()) == ["from the laptop"]
    assert _texts(await bob.sync()) == ["from the laptop"]
    assert (await bob.group_history("g"))[-1].outgoing


async def test_a_message_that_arrives_before_its_sender_key_waits_for_it(world: World) -> None:
    inter = world.interposer()
    alice = await world.user("alice", "alice")
    bob = await world.user("bob", "bob", inter)
    await alice.create_group("g", ["bob"])
    assert await bob.sync() == []  # joins
    await alice.send_group("g", "early")
    await alice.send_group("g", "and another")

    async def hold_back_pairwise(call: Call) -> Response | None:
        if call.method == "GET" and call.target.startswith("/v1/messages"):
            page = (await call.proceed()).json()
            page["messages"] = [m for m in page["messages"] if m.get("kind") == "group"]
            return json_response(page)
        return None

    inter.hooks.append(hold_back_pairwise)
    assert await bob.sync() == []  # both wait in the group inbox (acknowledged, kept)
    assert bob._groups.store.inbox_size() == 2
    inter.hooks.clear()
    assert _texts(await bob.sync()) == ["early", "and another"]
    assert bob._groups.store.inbox_size() == 0
    assert await bob.undecryptable() == []


async def test_an_admin_leaves_and_hands_the_group_on(world: World) -> None:
    alice, bob, carol = await _trio(world)
    await alice.create_group("g", ["bob", "carol"])
    await bob.sync()
    await carol.sync()
    left = await alice.leave_group("g")
    assert left.status == "left"
    info = await bob.group_info("g")  # not yet synced: still the old view here
    assert info.version == 1
    await bob.sync()
    info = await bob.group_info("g")
    assert set(info.members) == {"bob", "carol"} and info.admins == ("bob",)
    await bob.send_group("g", "just us now")
    assert _texts(await carol.sync()) == ["just us now"]
    assert _texts(await alice.sync()) == []


async def test_a_removed_member_that_missed_the_news_learns_it_when_sending(world: World) -> None:
    inter = world.interposer()
    alice = await world.user("alice", "alice")
    bob = await world.user("bob", "bob", inter)
    await alice.create_group("g", ["bob"])
    await bob.sync()
    await alice.remove_members("g", ["bob"])

    async def no_mail(call: Call) -> Response | None:  # the update never reaches bob
        if call.method == "GET" and call.target.startswith("/v1/messages"):
            return json_response({"messages": [], "more": False})
        return None

    inter.hooks.append(no_mail)
    with pytest.raises(LocalError, match="no longer in the group"):
        await bob.send_group("g", "anyone?")
    assert (await bob.group_info("g")).status == "removed"


async def test_a_removed_member_added_back_reads_only_what_follows(world: World) -> None:
    alice, bob, carol = await _trio(world)
    await alice.create_group("g", ["bob", "carol"])
    await carol.sync()
    await alice.remove_members("g", ["carol"])
    await alice.send_group("g", "while carol is out")
    await alice.add_members("g", ["carol"])
    await alice.send_group("g", "welcome back")
    assert _texts(await carol.sync()) == ["welcome back"]
    assert (await carol.group_info("g")).status == "member"
    await carol.send_group("g", "glad to be back")
    assert _texts(await bob.sync()) == ["while carol is out", "welcome back", "glad to be back"]
