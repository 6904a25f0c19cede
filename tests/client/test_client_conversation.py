"""The facade against the real relay server, in-process: accounts, linked devices,
conversations both ways, sync copies, catching up, prekeys, safety numbers."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from overt.client import (
    AccountExists,
    Direction,
    LinkRequest,
    ProfileStateError,
    Response,
    ServerUnreachable,
    StaleDevices,
    UnknownAccount,
)
from overt.client import client as client_module
from overt.client._b64 import b64e
from overt.client.limits import MAX_SEND_ATTEMPTS
from overt.client.transport import refusal
from overt.errors import ProtocolViolation

from .support import Call, World, json_response


def texts(messages: list) -> list[str]:  # type: ignore[type-arg]
    return [m.text for m in messages]


async def test_two_users_one_with_two_devices_talk_both_ways(world: World) -> None:
    alice1 = await world.user("alice1", "alice")
    alice2 = await world.linked("alice2", alice1)
    bob = await world.user("bob", "bob")
    assert (alice1.device_id, alice2.device_id, bob.device_id) == (1, 2, 1)
    assert await alice2.devices() == [1, 2]

    sent = await alice1.send("bob", "hello bob")
    assert sent.outgoing and sent.peer == "bob" and sent.sender == "alice"

    got = await bob.sync()
    assert texts(got) == ["hello bob"]
    assert got[0].peer == "alice" and got[0].sender == "alice" and got[0].sender_device == 1
    assert got[0].direction is Direction.INCOMING
    assert got[0].message_id == sent.message_id

    # alice's second device gets a sync copy, as outgoing, in the conversation with bob.
    copy = await alice2.sync()
    assert texts(copy) == ["hello bob"]
    assert copy[0].direction is Direction.OUTGOING and copy[0].peer == "bob"

    await bob.send("alice", "hi alice, to both your devices")
    for dev in (alice1, alice2):
        got = await dev.sync()
        assert texts(got) == ["hi alice, to both your devices"]
        assert got[0].peer == "bob" and got[0].direction is Direction.INCOMING

    # alice replies from her second device; bob and alice's first device see it.
    await alice2.send("bob", "from my laptop")
    assert texts(await bob.sync()) == ["from my laptop"]
    mine = await alice1.sync()
    assert texts(mine) == ["from my laptop"] and mine[0].outgoing and mine[0].sender_device == 2

    expected = ["hello bob", "hi alice, to both your devices", "from my laptop"]
    for dev, peer in ((alice1, "bob"), (alice2, "bob"), (bob, "alice")):
        assert texts(await dev.history(peer)) == expected
    convs = await bob.conversations()
    assert [c.peer for c in convs] == ["alice"]
    assert convs[0].last_message is not None and convs[0].last_message.text == "from my laptop"
    # Nothing is left in any mailbox.
    for dev in (alice1, alice2, bob):
        assert await dev.sync() == []


async def test_device_lists_that_changed_are_refreshed(world: World) -> None:
    alice1 = await world.user("alice1", "alice")
    net = world.interposer()
    bob = await world.user("bob", "bob", net)
    await bob.send("alice", "one")  # bob now knows alice with one device
    assert texts(await alice1.sync()) == ["one"]

    # Mail from a device bob's copy of the list does not have: he refreshes it, then shows it.
    alice2 = await world.linked("alice2", alice1)
    await alice2.send("bob", "from a new device")
    assert texts(await bob.sync()) == ["from a new device"]

    # Sending with a list the server knows is stale: 409, refresh, retry, every device gets it.
    alice3 = await world.linked("alice3", alice1)
    assert texts(await alice3.sync()) == []
    await bob.send("alice", "two")
    # "one", then "two" twice: refused as stale once, then accepted.
    assert net.log.count(("POST", "/v1/messages")) == 3
    for dev in (alice1, alice2, alice3):
        assert texts(await dev.sync())[-1] == "two"
    assert await alice3.devices() == [1, 2, 3]


async def test_device_offline_catches_up_in_order(world: World) -> None:
    alice1 = await world.user("alice1", "alice")
    alice2 = await world.linked("alice2", alice1)
    bob = await world.user("bob", "bob")
    carol = await world.user("carol", "carol")

    for i in range(4):
        await alice1.send("bob", f"a{i}")
        await bob.sync()
        await bob.send("alice", f"b{i}")
        await alice1.sync()
    await carol.send("alice", "hi from carol")

    # alice2 was offline throughout: everything arrives, in order, in the right conversations.
    got = await alice2.sync()
    assert texts(got) == [*[x for i in range(4) for x in (f"a{i}", f"b{i}")], "hi from carol"]
    assert [m.direction for m in got[:2]] == [Direction.OUTGOING, Direction.INCOMING]
    history = await alice2.history("bob")
    assert texts(history) == [x for i in range(4) for x in (f"a{i}", f"b{i}")]
    assert texts(await alice2.history("carol")) == ["hi from carol"]
    assert [c.peer for c in await alice2.conversations()] == ["carol", "bob"]


async def test_duplicate_delivery_is_shown_once(world: World) -> None:
    alice = await world.user("alice", "alice")
    net = world.interposer()
    bob = await world.user("bob", "bob", net)
    await alice.send("bob", "once")

    # The first acknowledgement is lost: the mail is stored, and delivered again.
    lost = {"done": False}

    async def lose_first_ack(call: Call) -> Response | None:
        if call.target == "/v1/messages/ack" and not lost["done"]:
            lost["done"] = True
            raise ServerUnreachable("the connection dropped")
        return None

    net.hooks.append(lose_first_ack)
    assert texts(await bob.sync()) == ["once"]
    assert lost["done"]
    # Delivered again (same server id), and again as a copy under another server id.
    page = None

    async def duplicate_mail(call: Call) -> Response | None:
        nonlocal page
        if call.target.startswith("/v1/messages?"):
            answer = await call.proceed()
            data = answer.json()
            assert isinstance(data, dict)
            if data["messages"]:
                page = data
            if page is not None:
                copy = dict(page["messages"][0])
                copy["id"] = copy["id"] + 1000
                data = {"messages": [*page["messages"], copy], "more": False}
            return json_response(data)
        return None

    net.hooks.append(duplicate_mail)
    assert await bob.sync() == []
    assert page is not None and len(page["messages"]) == 1
    assert texts(await bob.history("alice")) == ["once"]
    assert await bob.undecryptable() == []


async def test_account_name_taken_and_unknown_peer(world: World) -> None:
    await world.user("alice", "alice")
    other = await world.client("other")
    with pytest.raises(AccountExists):
        await other.create_account("alice")
    # The profile is free again for another name.
    await other.create_account("alicia")
    with pytest.raises(UnknownAccount):
        await other.send("nobody", "hello?")
    with pytest.raises(ProfileStateError):
        await other.create_account("again")
    fresh = await world.client("fresh")
    with pytest.raises(ProfileStateError):
        await fresh.send("alice", "no account yet")


async def test_registration_finishes_after_a_lost_answer(world: World) -> None:
    net = world.interposer()

    async def lose_answer(call: Call) -> Response | None:
        if call.target == "/v1/accounts" and call.method == "POST":
            net.hooks.remove(lose_answer)
            await call.proceed()
            raise ServerUnreachable("the answer was lost")
        return None

    net.hooks.append(lose_answer)
    alice = await world.client("alice", net)
    with pytest.raises(ServerUnreachable):
        await alice.create_account("alice")
    assert not alice.is_active
    await alice.create_account("alice")  # 409 exists, with our own key: registered
    assert alice.is_active
    bob = await world.user("bob", "bob")
    await bob.send("alice", "welcome")
    assert texts(await alice.sync()) == ["welcome"]


async def test_profile_survives_reopening(world: World) -> None:
    alice = await world.user("alice", "alice")
    bob = await world.user("bob", "bob")
    await alice.send("bob", "before")
    await bob.sync()
    await bob.close()
    world.clients.remove(bob)
    bob = await world.client("bob")
    assert bob.account_name == "bob" and bob.device_id == 1
    assert texts(await bob.history("alice")) == ["before"]
    await bob.send("alice", "after reopening")
    assert texts(await alice.sync()) == ["after reopening"]


async def test_safety_numbers_match_on_both_sides(world: World) -> None:
    alice = await world.user("alice", "alice")
    bob = await world.user("bob", "bob")
    n1 = await alice.safety_number("bob")
    n2 = await bob.safety_number("alice")
    assert n1 == n2 and len(n1) == 60 and n1.isdigit()
    carol = await world.user("carol", "carol")
    assert await alice.safety_number("carol") != n1
    assert await carol.offered_safety_number("alice") == await carol.safety_number("alice")


async def test_prekeys_are_refilled_when_low(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module, "ONE_TIME_PREKEY_BATCH", 12)
    monkeypatch.setattr(client_module, "KEM_ONE_TIME_PREKEY_BATCH", 12)
    net = world.interposer()
    bob = await world.user("bob", "bob", net)
    assert await bob.refill_prekeys() is False  # 12 left: not low
    for i in range(3):  # each first contact takes one of each kind
        sender = await world.user(f"s{i}", f"sender{i}")
        await sender.send("bob", f"hello {i}")
    assert texts(await bob.sync()) == ["hello 0", "hello 1", "hello 2"]
    # 9 left is low (docs/api.md: below 10): sync uploaded 3 + 3 new ones.
    uploads = [c for c in net.log if c == ("PUT", "/v1/devices/self/prekeys")]
    assert len(uploads) == 1
    assert await bob.refill_prekeys() is False
    late = await world.user("late", "latecomer")
    await late.send("bob", "still reachable")
    assert texts(await bob.sync()) == ["still reachable"]


async def test_linking_in_two_steps_with_encoded_messages(world: World) -> None:
    alice1 = await world.user("alice1", "alice")
    alice2 = await world.client("alice2")
    request = await alice2.request_link("alice")
    assert await alice2.request_link("alice") == request  # asked again: the same request
    wire = request.encode()  # what a QR code would carry
    approval = await alice1.approve_link(wire)
    assert (await alice1.approve_link(wire)).device == approval.device == 2  # idempotent
    await alice2.finish_link(approval.encode())
    assert alice2.is_active and not alice2.holds_account_key and alice1.holds_account_key
    assert await alice1.devices() == [1, 2]

    # A linked device cannot approve; a request must be for this account and self-signed.
    alice3 = await world.client("alice3")
    with pytest.raises(ProfileStateError):
        await alice2.approve_link(await alice3.request_link("alice"))
    bob = await world.user("bob", "bob")
    with pytest.raises(ProtocolViolation):
        await bob.approve_link(await alice3.request_link("alice"))
    forged = LinkRequest(b"alice", request.identity_dh, request.identity_sign, bytes(64))
    with pytest.raises(ProtocolViolation):
        await alice1.approve_link(forged)
    # An approval for some other device's keys is refused by the new device.
    with pytest.raises(ProtocolViolation):
        await alice3.finish_link(approval)
    assert not alice3.is_active


async def test_sending_while_listening(world: World) -> None:
    alice = await world.user("alice", "alice")
    bob = await world.user("bob", "bob")
    received: list[str] = []

    async def listener() -> None:
        async for message in alice.listen(poll_interval=1):
            received.append(message.text)
            if len(received) == 5:
                return

    async def conversation() -> None:
        for i in range(5):
            await alice.send("bob", f"a{i}")
            assert texts(await bob.sync()) == [f"a{i}"]
            await bob.send("alice", f"b{i}")

    await asyncio.wait_for(asyncio.gather(listener(), conversation()), 60)
    assert received == [f"b{i}" for i in range(5)]
    # History is in the order each device stored messages (arrival, not the sender's clock):
    # bob saw each reply only after its question; alice may have read replies later.
    expected = [x for i in range(5) for x in (f"a{i}", f"b{i}")]
    assert texts(await bob.history("alice")) == expected
    alice_side = texts(await alice.history("bob"))
    assert sorted(alice_side) == sorted(expected)
    assert [t for t in alice_side if t[0] == "b"] == [f"b{i}" for i in range(5)]
    assert await alice.undecryptable() == [] and await bob.undecryptable() == []


async def test_a_send_the_server_keeps_calling_stale_gives_up(world: World) -> None:
    await world.user("alice", "alice")
    net = world.interposer()
    bob = await world.user("bob", "bob", net)

    async def always_stale(call: Call) -> Response | None:
        if call.target != "/v1/messages":
            return None
        record = (await call.inner.request("GET", f"/v1/accounts/{b64e(b'alice')}")).json()
        assert isinstance(record, dict)
        entry = {k: record[k] for k in ("serial", "devices", "signed_device_list")}
        body = {
            "error": "stale_devices",
            "message": "refresh",
            "accounts": {record["account"]: entry},
        }
        raise refusal(409, json.dumps(body).encode(), {})

    net.hooks.append(always_stale)
    with pytest.raises(StaleDevices, match="kept changing"):
        await bob.send("alice", "never sent")
    assert net.log.count(("POST", "/v1/messages")) == MAX_SEND_ATTEMPTS
    assert await bob.history("alice") == []


async def test_logs_hold_no_content_or_keys(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    alice = await world.user("alice", "alice")
    bob = await world.user("bob", "bob")
    await alice.send("bob", "secret words")
    await alice.send_attachment("bob", b"secret file", caption="secret caption")
    got = await bob.sync()
    pointer = got[1].attachment
    assert pointer is not None
    await bob.fetch_attachment(got[1])
    text = "\n".join(r.getMessage() for r in caplog.records) + repr(got) + repr(bob)
    assert caplog.records  # something was logged
    for secret in ("secret", pointer.key.hex(), b64e(pointer.key), repr(pointer.key)):
        assert secret not in text
