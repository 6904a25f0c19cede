"""Sending (stale device sets, envelope checks, reporting tags), fetching and acknowledging,
with real ``overt.protocol`` devices at both ends."""

from __future__ import annotations

import dataclasses
from typing import Any

from server_kit import FRANKING_KEY, Env, Party, b64, make_party, server_env, unb64

from overt.protocol import direct_conversation_id, verify_bundle, verify_device_list
from overt.protocol.franking import verify_reporting_tag
from overt.server.codec import parse_address
from overt.server.limits import MAX_ENVELOPES_PER_SEND
from overt.storage import StorageLimits
from overt.wire import Address, Envelope, PreKeyBundle, SignedDeviceList


async def fetch_bundles(env: Env, sender: Party, recipient: Party) -> dict[Address, PreKeyBundle]:
    response = await env.call(sender, "GET", f"/v1/accounts/{recipient.b64}/bundles")
    assert response.status_code == 200, response.text
    body = response.json()
    dl = verify_device_list(
        SignedDeviceList.decode(unb64(body["signed_device_list"])),
        recipient.identity.public_key.raw,
    )
    out: dict[Address, PreKeyBundle] = {}
    for raw in body["bundles"]:
        bundle = PreKeyBundle.decode(unb64(raw))
        entry = dl.device(bundle.device.device)
        assert entry is not None
        verify_bundle(bundle, entry)
        out[bundle.device] = bundle
    return out


def encrypt_for(
    env: Env,
    sender: Party,
    to: list[Address],
    body: bytes,
    bundles: dict[Address, PreKeyBundle],
    conversation: bytes,
) -> list[Envelope]:
    _, envelopes = sender.device.encrypt_fanout(
        to, body, now_ms=env.clock.now, conversation_id=conversation, bundles=bundles
    )
    return envelopes


def send_body(envelopes: list[Envelope]) -> dict[str, Any]:
    recipients: dict[str, list[int]] = {}
    for e in envelopes:
        recipients.setdefault(b64(e.recipient.account), []).append(e.recipient.device)
    return {"recipients": recipients, "envelopes": [b64(e.encode()) for e in envelopes]}


async def test_a_message_from_alice_to_bob_over_http() -> None:
    async with server_env() as env:
        alice, bob = make_party("alice", 1), make_party("bob", 2)
        await env.register(alice)
        await env.register(bob)

        bundles = await fetch_bundles(env, alice, bob)
        conversation = direct_conversation_id(alice.account, bob.account)
        envelopes = encrypt_for(env, alice, list(bundles), b"hello bob", bundles, conversation)
        response = await env.call(alice, "POST", "/v1/messages", json_body=send_body(envelopes))
        assert response.status_code == 200, response.text
        sent = response.json()
        assert len(sent["ids"]) == 1
        assert sent["server_time"] == env.clock.now

        response = await env.call(bob, "GET", "/v1/messages")
        assert response.status_code == 200
        page = response.json()
        assert page["more"] is False
        (mail,) = page["messages"]
        assert mail["id"] == sent["ids"][0]
        assert mail["sender"] == f"{alice.b64}:1"
        assert parse_address(mail["sender"]) == alice.address
        envelope = Envelope.decode(unb64(mail["envelope"]))
        received = bob.device.decrypt(envelope)
        assert received.body == b"hello bob"
        verify_reporting_tag(
            FRANKING_KEY,
            unb64(mail["reporting_tag"]),
            envelope.franking_commitment,
            envelope.sender,
            envelope.recipient,
            mail["id"],
            mail["server_time"],
        )

        # Bob answers on the session alice started.
        reply = bob.device.encrypt(alice.address, b"hi alice", now_ms=env.clock.now)
        response = await env.call(bob, "POST", "/v1/messages", json_body=send_body([reply]))
        assert response.status_code == 200
        (back,) = (await env.call(alice, "GET", "/v1/messages")).json()["messages"]
        assert alice.device.decrypt(Envelope.decode(unb64(back["envelope"]))).body == b"hi alice"

        # Acknowledged mail leaves the mailbox; unknown ids are ignored.
        response = await env.call(
            bob, "POST", "/v1/messages/ack", json_body={"ids": [mail["id"], 999]}
        )
        assert response.json() == {"removed": 1}
        assert (await env.call(bob, "GET", "/v1/messages")).json()["messages"] == []


async def test_stale_device_set_then_retry() -> None:
    async with server_env() as env:
        alice, bob = make_party("alice", 1), make_party("bob", 2)
        await env.register(alice)
        await env.register(bob)
        conversation = direct_conversation_id(alice.account, bob.account)
        bundles = await fetch_bundles(env, alice, bob)
        # Bob links a second device, and alice links one too, behind each other's back.
        bob_phone = bob.sibling(2, 21)
        await env.link(bob, bob_phone)
        alice_phone = alice.sibling(2, 22)
        await env.link(alice, alice_phone)

        envelopes = encrypt_for(env, alice, list(bundles), b"one", bundles, conversation)
        response = await env.call(alice, "POST", "/v1/messages", json_body=send_body(envelopes))
        assert response.status_code == 409
        body = response.json()
        assert body["error"] == "stale_devices"
        assert set(body["accounts"]) == {alice.b64, bob.b64}
        current = body["accounts"][bob.b64]
        assert current["serial"] == 2
        assert current["devices"] == [1, 2]
        dl = verify_device_list(
            SignedDeviceList.decode(unb64(current["signed_device_list"])),
            bob.identity.public_key.raw,
        )
        assert [d.device for d in dl.devices] == [1, 2]
        assert body["accounts"][alice.b64]["devices"] == [1, 2]

        # Refresh: sessions with the new devices, then one message to the three other devices.
        fresh = await fetch_bundles(env, alice, bob)
        own = await fetch_bundles(env, alice, alice)
        assert list(own) == [alice_phone.address]  # never the requesting device itself
        fresh.update(own)
        targets = sorted(fresh)
        envelopes = encrypt_for(env, alice, targets, b"two", fresh, conversation)
        response = await env.call(alice, "POST", "/v1/messages", json_body=send_body(envelopes))
        assert response.status_code == 200, response.text
        assert len(response.json()["ids"]) == 3

        for reader in (bob, bob_phone, alice_phone):
            mails = (await env.call(reader, "GET", "/v1/messages")).json()["messages"]
            assert len(mails) == 1
            envelope = Envelope.decode(unb64(mails[0]["envelope"]))
            assert reader.device.decrypt(envelope).body == b"two"


async def test_envelopes_must_fit_the_request() -> None:
    async with server_env() as env:
        alice, bob, carol = make_party("alice", 1), make_party("bob", 2), make_party("carol", 3)
        for p in (alice, bob, carol):
            await env.register(p)
        conversation = direct_conversation_id(alice.account, bob.account)
        bundles = await fetch_bundles(env, alice, bob)
        (to_bob,) = encrypt_for(env, alice, list(bundles), b"x", bundles, conversation)

        # Carol relays alice's envelope as her own: its sender is not the signing device.
        response = await env.call(carol, "POST", "/v1/messages", json_body=send_body([to_bob]))
        assert response.status_code == 400
        assert response.json()["error"] == "mismatch"

        # The envelope's recipient is not listed.
        body = send_body([to_bob])
        body["recipients"] = {carol.b64: [1]}
        response = await env.call(alice, "POST", "/v1/messages", json_body=body)
        assert response.status_code == 400
        assert response.json()["error"] == "mismatch"

        # A listed device without an envelope.
        body = send_body([to_bob])
        body["recipients"][carol.b64] = [1]
        response = await env.call(alice, "POST", "/v1/messages", json_body=body)
        assert response.status_code == 400
        assert response.json()["error"] == "mismatch"

        # Two envelopes for one device.
        body = send_body([to_bob])
        body["envelopes"].append(body["envelopes"][0])
        response = await env.call(alice, "POST", "/v1/messages", json_body=body)
        assert response.status_code == 400

        # Not an envelope at all.
        body = send_body([to_bob])
        body["envelopes"] = [b64(b"\x01\x02\x03")]
        response = await env.call(alice, "POST", "/v1/messages", json_body=body)
        assert response.status_code == 400
        assert response.json()["error"] == "malformed"

        # An unknown recipient account.
        ghost = Address(b"ghost", 1)
        forged = dataclasses.replace(to_bob, recipient=ghost, header_cache=None)
        body = {"recipients": {b64(b"ghost"): [1]}, "envelopes": [b64(forged.encode())]}
        response = await env.call(alice, "POST", "/v1/messages", json_body=body)
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"

        # And the honest request still goes through.
        response = await env.call(alice, "POST", "/v1/messages", json_body=send_body([to_bob]))
        assert response.status_code == 200


async def test_send_limits() -> None:
    async with server_env(storage_limits=StorageLimits(mailbox_depth=2)) as env:
        alice, bob = make_party("alice", 1), make_party("bob", 2)
        await env.register(alice)
        await env.register(bob)
        conversation = direct_conversation_id(alice.account, bob.account)
        bundles = await fetch_bundles(env, alice, bob)
        (env1,) = encrypt_for(env, alice, list(bundles), b"1", bundles, conversation)

        too_many = {
            "recipients": {bob.b64: [1]},
            "envelopes": [b64(env1.encode())] * (MAX_ENVELOPES_PER_SEND + 1),
        }
        response = await env.call(alice, "POST", "/v1/messages", json_body=too_many)
        assert response.status_code == 413
        assert response.json()["error"] == "too_large"

        huge = {"recipients": {bob.b64: [1]}, "envelopes": [b64(b"\x01" * (300 * 1024))]}
        response = await env.call(alice, "POST", "/v1/messages", json_body=huge)
        assert response.status_code == 413

        for body in (b"1", b"2"):
            (e,) = encrypt_for(env, alice, [bob.address], body, {}, conversation)
            response = await env.call(alice, "POST", "/v1/messages", json_body=send_body([e]))
            assert response.status_code == 200
        (e,) = encrypt_for(env, alice, [bob.address], b"3", {}, conversation)
        response = await env.call(alice, "POST", "/v1/messages", json_body=send_body([e]))
        assert response.status_code == 413
        assert response.json()["error"] == "too_large"


async def test_fetch_pages() -> None:
    async with server_env() as env:
        alice, bob = make_party("alice", 1), make_party("bob", 2)
        await env.register(alice)
        await env.register(bob)
        conversation = direct_conversation_id(alice.account, bob.account)
        bundles = await fetch_bundles(env, alice, bob)
        ids = []
        for i in range(5):
            (e,) = encrypt_for(env, alice, [bob.address], b"m%d" % i, bundles, conversation)
            ids += (await env.call(alice, "POST", "/v1/messages", json_body=send_body([e]))).json()[
                "ids"
            ]
        page = (await env.call(bob, "GET", "/v1/messages?limit=2")).json()
        assert [m["id"] for m in page["messages"]] == ids[:2]
        assert page["more"] is True
        page = (await env.call(bob, "GET", f"/v1/messages?after={ids[1]}&limit=3")).json()
        assert [m["id"] for m in page["messages"]] == ids[2:]
        assert page["more"] is False
        for query in ("limit=0", "limit=100000", "after=-1", "after=x"):
            response = await env.call(bob, "GET", f"/v1/messages?{query}")
            assert response.status_code == 400, query
            assert response.json()["error"] == "malformed"
        response = await env.call(bob, "POST", "/v1/messages/ack", json_body={"ids": [0]})
        assert response.status_code == 400
        response = await env.call(
            bob, "POST", "/v1/messages/ack", json_body={"ids": list(range(1, 1002))}
        )
        assert response.status_code == 413
