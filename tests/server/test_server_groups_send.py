"""Group messages on the relay: one ``POST /v1/groups/{id}/messages`` fans one ciphertext out to
every other device of the current view, durably, as mail of kind ``group`` with a reporting tag
per recipient. Messages are made with ``overt.protocol.groups`` and read back by the members."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from group_kit import Members, members_of, new_group, put_ok, send, text_body
from server_kit import FRANKING_KEY, Env, Party, b64, make_party, server_env, unb64
from test_server_ws import ack_and_sync, ws_env

from overt.protocol.franking import verify_reporting_tag
from overt.protocol.groups import (
    GroupState,
    Membership,
    create_sender_key,
    group_encrypt,
)
from overt.server import groups as groups_module
from overt.server.codec import format_address
from overt.server.limits import MAX_GROUP_MESSAGE_LEN
from overt.storage import NewMail, open_sqlite
from overt.wire.group_messages import GroupMember


async def setup(env: Env, *names: str) -> list[Party]:
    parties = [make_party(name, seed=i + 1) for i, name in enumerate(names)]
    for p in parties:
        await env.register(p)
    return parties


async def fetch(env: Env, party: Party) -> list[dict[str, Any]]:
    response = await env.call(party, "GET", "/v1/messages")
    assert response.status_code == 200, response.text
    messages: list[dict[str, Any]] = response.json()["messages"]
    return messages


async def test_fan_out_to_every_other_device_with_a_tag_each() -> None:
    async with server_env() as env:
        alice, bob, carol = await setup(env, "alice", "bob", "carol")
        alice2 = alice.sibling(2, seed=12)
        await env.link(alice, alice2)
        group = new_group(alice, members_of(alice, bob, carol))
        await put_ok(env, alice, group.update)
        keys = {alice.account: alice.identity.public_key}
        crew = Members(group.update, keys, [alice, alice2, bob, carol])
        message = crew.encrypt(alice.address, "hello group", env.clock.now)
        response = await send(env, alice, group.id, message.encode())
        assert response.status_code == 200, response.text
        body = response.json()
        expected = sorted([alice2.address, bob.address, carol.address],
                          key=lambda a: (a.account, a.device))  # fmt: skip
        assert body["recipients"] == [f"{b64(a.account)}.{a.device}" for a in expected]
        assert len(body["ids"]) == 3 and len(set(body["ids"])) == 3
        assert body["devices_changed"] is False
        tags = set()
        for party, server_id in zip(
            [{a: p for p in (alice2, bob, carol) for a in [p.address]}[a] for a in expected],
            body["ids"],
            strict=True,
        ):
            (mail,) = await fetch(env, party)
            assert mail["id"] == server_id
            assert mail["kind"] == "group"
            assert mail["sender"] == format_address(alice.address)
            assert mail["server_time"] == body["server_time"]
            assert unb64(mail["envelope"]) == message.encode()
            tag = unb64(mail["reporting_tag"])
            verify_reporting_tag(
                FRANKING_KEY, tag, message.franking_commitment, alice.address, party.address,
                server_id, body["server_time"],
            )  # fmt: skip
            tags.add(tag)
            text, _ = crew.decrypt(party.address, unb64(mail["envelope"]))
            assert text == text_body("hello group")
            ack = await env.call(party, "POST", "/v1/messages/ack", json_body={"ids": [server_id]})
            assert ack.json() == {"removed": 1}
            assert await fetch(env, party) == []
        assert len(tags) == 3  # every recipient its own tag
        assert await fetch(env, alice) == []  # never to the sending device


async def test_group_mail_is_durable(tmp_path: Path) -> None:
    path = tmp_path / "server.db"
    alice, bob = make_party("alice", 1), make_party("bob", 2)
    async with server_env(await open_sqlite(path)) as env:
        for p in (alice, bob):
            await env.register(p)
        group = new_group(alice, members_of(alice, bob))
        await put_ok(env, alice, group.update)
        crew = Members(group.update, {alice.account: alice.identity.public_key}, [alice, bob])
        message = crew.encrypt(alice.address, "kept", env.clock.now)
        response = await send(env, alice, group.id, message.encode())
        assert response.status_code == 200
        ids = response.json()["ids"]
    async with server_env(await open_sqlite(path)) as env:  # a restarted server
        (mail,) = await fetch(env, bob)
        assert (mail["id"], mail["kind"]) == (ids[0], "group")
        assert crew.decrypt(bob.address, unb64(mail["envelope"]))[0] == text_body("kept")


def test_websocket_push_carries_the_kind() -> None:
    with ws_env() as env:
        alice, bob = make_party("alice", 1), make_party("bob", 2)
        env.register(alice)
        env.register(bob)
        group = new_group(alice, members_of(alice, bob))
        put = env.call(alice, "PUT", f"/v1/groups/{b64(group.id)}",
                       {"membership": b64(group.update.encode())})  # fmt: skip
        assert put.status_code == 200, put.text
        crew = Members(group.update, {alice.account: alice.identity.public_key}, [alice, bob])
        message = crew.encrypt(alice.address, "pushed", env.clock.now)
        with env.connect(bob) as ws:
            response = env.call(alice, "POST", f"/v1/groups/{b64(group.id)}/messages",
                                {"message": b64(message.encode())})  # fmt: skip
            assert response.status_code == 200, response.text
            frame = ws.receive_json()
            while frame["type"] == "prekeys_low":
                frame = ws.receive_json()
            assert frame["type"] == "mail"
            assert frame["kind"] == "group"
            assert frame["id"] == response.json()["ids"][0]
            assert unb64(frame["envelope"]) == message.encode()
            ack_and_sync(ws, [frame["id"]])
        assert env.pending(bob) == []


async def test_one_to_one_mail_says_envelope() -> None:
    async with server_env() as env:
        alice, bob = await setup(env, "alice", "bob")
        group = new_group(alice, members_of(alice, bob))
        await put_ok(env, alice, group.update)
        crew = Members(group.update, {alice.account: alice.identity.public_key}, [alice, bob])
        await send(env, alice, group.id, crew.encrypt(alice.address, "g", env.clock.now).encode())
        # a one-to-one mail through the same mailbox (any bytes: the fetch does not parse them)
        await env.storage.mailboxes.enqueue(
            [NewMail(bob.account, 1, alice.account, 1, b"envelope bytes")], 1, lambda i, m: b"t"
        )
        kinds = [m["kind"] for m in await fetch(env, bob)]
        assert kinds == ["group", "envelope"]


async def test_a_stale_send_is_refused_with_the_current_view() -> None:
    async with server_env() as env:
        alice, bob, carol = await setup(env, "alice", "bob", "carol")
        group = new_group(alice, members_of(alice, bob))
        await put_ok(env, alice, group.update)
        keys = {alice.account: alice.identity.public_key}
        crew = Members(group.update, keys, [alice, bob])
        old = crew.encrypt(alice.address, "under version 1", env.clock.now)
        added = group.next(members_of(alice, bob, carol))
        await put_ok(env, alice, added)
        response = await send(env, alice, group.id, old.encode())
        assert response.status_code == 409, response.text
        body = response.json()
        assert body["error"] == "stale_group"
        assert body["group"]["version"] == 2
        assert [unb64(u) for u in body["group"]["updates"]] == [added.encode()]  # after v1
        assert set(body["group"]["devices"]) == {alice.b64, bob.b64, carol.b64}
        assert await fetch(env, bob) == []
        # the same version with another member-set hash (a forked view) is stale too
        fork = Membership.build(
            group.id, 2, b"fork", (alice.account,), (GroupMember(alice.account, (1,)),
                                                     GroupMember(bob.account, (1,)))
        )  # fmt: skip
        state = GroupState(alice.address, fork)
        key, _ = create_sender_key(state, crew.rng)
        forked, _ = group_encrypt(state, key, text_body("fork"), env.clock.now, crew.rng, None)
        response = await send(env, alice, group.id, forked.encode())
        assert response.status_code == 409
        assert response.json()["group"]["version"] == 2
        # after catching up, the send goes through
        crew.apply(added, joining=[carol])
        crew.rekey(alice.address)
        fresh = crew.encrypt(alice.address, "under version 2", env.clock.now)
        response = await send(env, alice, group.id, fresh.encode())
        assert response.status_code == 200, response.text
        assert len(response.json()["ids"]) == 2


async def test_senders_must_be_devices_of_the_current_view() -> None:
    async with server_env() as env:
        alice, bob, dave = await setup(env, "alice", "bob", "dave")
        group = new_group(alice, members_of(alice, bob))
        await put_ok(env, alice, group.update)
        keys = {alice.account: alice.identity.public_key}
        crew = Members(group.update, keys, [alice, bob])
        # dave, never a member, claims the group under a view of his own: no such group
        own = Membership.build(group.id, 1, b"", (dave.account,),
                               (GroupMember(dave.account, (1,)),))  # fmt: skip
        state = GroupState(dave.address, own)
        key, _ = create_sender_key(state, crew.rng)
        intruder, _ = group_encrypt(state, key, text_body("hi"), env.clock.now, crew.rng, None)
        response = await send(env, dave, group.id, intruder.encode())
        assert response.status_code == 404
        assert "group" not in response.json()
        # bob, removed, still holds the old view and key: refused (he is a former member)
        before = crew.encrypt(bob.address, "still here?", env.clock.now)
        removal = group.next(members_of(alice))
        await put_ok(env, alice, removal)
        response = await send(env, bob, group.id, before.encode())
        assert response.status_code == 403
        assert response.json()["error"] == "forbidden"
        # alice's message posted by bob, and a message for another group: mismatch
        mine = crew.encrypt(alice.address, "mine", env.clock.now)
        response = await send(env, bob, group.id, mine.encode())
        assert response.status_code == 400
        assert response.json()["error"] == "mismatch"
        response = await send(env, alice, bytes(32), mine.encode())
        assert response.status_code == 400
        assert response.json()["error"] == "mismatch"
        # bytes that are not a group message
        response = await send(env, alice, group.id, mine.encode() + b"\x00")
        assert response.status_code == 400
        assert response.json()["error"] == "malformed"
        assert await fetch(env, alice) == []


async def test_a_replayed_send_is_refused_and_delivered_once() -> None:
    async with server_env() as env:
        alice, bob = await setup(env, "alice", "bob")
        group = new_group(alice, members_of(alice, bob))
        await put_ok(env, alice, group.update)
        crew = Members(group.update, {alice.account: alice.identity.public_key}, [alice, bob])
        message = crew.encrypt(alice.address, "once", env.clock.now)
        target = f"/v1/groups/{b64(group.id)}/messages"
        body = {"message": b64(message.encode())}
        timestamp = env.clock.advance()
        first = await env.call(alice, "POST", target, json_body=body, timestamp=timestamp)
        assert first.status_code == 200
        again = await env.call(alice, "POST", target, json_body=body, timestamp=timestamp)
        assert again.status_code == 401
        assert len(await fetch(env, bob)) == 1


async def test_device_changes_are_reported_and_unregistered_devices_skipped() -> None:
    async with server_env() as env:
        alice, bob, carol = await setup(env, "alice", "bob", "carol")
        group = new_group(alice, members_of(alice, bob, carol))
        await put_ok(env, alice, group.update)
        crew = Members(group.update, {alice.account: alice.identity.public_key},
                       [alice, bob, carol])  # fmt: skip
        # bob links a second device; carol replaces hers with a new one
        await env.link(bob, bob.sibling(2, seed=22))
        carol2 = carol.sibling(2, seed=32)
        await env.link(carol, carol2)
        only_new = {
            "signed_device_list": b64(carol.signed_list([carol2.device], 3).encode()),
            "expected_serial": 2,
        }
        response = await env.call(
            carol2, "PUT", f"/v1/accounts/{carol.b64}/devices", json_body=only_new
        )
        assert response.status_code == 200, response.text
        message = crew.encrypt(alice.address, "who gets this?", env.clock.now)
        response = await send(env, alice, group.id, message.encode())
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["devices_changed"] is True
        # the view lists bob.1 and carol.1: bob.2 is not in it, carol.1 is gone
        assert body["recipients"] == [f"{bob.b64}.1"]


async def test_size_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    async with server_env() as env:
        alice, bob, carol = await setup(env, "alice", "bob", "carol")
        group = new_group(alice, members_of(alice, bob, carol))
        await put_ok(env, alice, group.update)
        crew = Members(group.update, {alice.account: alice.identity.public_key},
                       [alice, bob, carol])  # fmt: skip
        message = crew.encrypt(alice.address, "x" * 1000, env.clock.now).encode()
        # the bytes one send stores in all: message size times recipients
        monkeypatch.setattr(groups_module, "MAX_GROUP_FANOUT_BYTES", 2 * len(message) - 1)
        response = await send(env, alice, group.id, message)
        assert response.status_code == 413, response.text
        assert response.json()["error"] == "too_large"
        assert await fetch(env, bob) == []
        monkeypatch.setattr(groups_module, "MAX_GROUP_FANOUT_BYTES", 2 * len(message))
        assert (await send(env, alice, group.id, message)).status_code == 200
        # one group message is at most MAX_GROUP_MESSAGE_LEN bytes
        response = await env.call(
            alice, "POST", f"/v1/groups/{b64(group.id)}/messages",
            json_body={"message": b64(b"\x01" * (MAX_GROUP_MESSAGE_LEN + 1))},
        )  # fmt: skip
        assert response.status_code == 413
