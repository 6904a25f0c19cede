"""WebSocket delivery end to end: two ``overt.protocol`` devices talk through the server; mail
arrives by wake-up, is acknowledged, and unacknowledged mail is sent again on reconnect.

Starlette's ``TestClient`` runs the app on one event loop for HTTP and WebSocket alike (inside
``with TestClient(app)``), so these tests are synchronous. Ordering without sleeps: the server
reads a connection's frames in order, so an acknowledgement followed by a frame the server
refuses is known to be processed once the refusal arrives.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from server_kit import (
    FRANKING_KEY,
    FakeClock,
    Party,
    b64,
    encode_json,
    make_party,
    prekey_upload,
    registration,
    unb64,
    ws_auth_frame,
)
from starlette.testclient import WebSocketTestSession
from starlette.websockets import WebSocketDisconnect

from overt.crypto import DeterministicRng
from overt.protocol import direct_conversation_id, verify_bundle, verify_device_list
from overt.protocol.franking import verify_reporting_tag
from overt.server import ServerConfig, create_app
from overt.server.limits import WS_MESSAGE_MAX
from overt.storage import InProcessPubSub, Storage, open_memory
from overt.wire import Envelope, PreKeyBundle, SignedDeviceList


@dataclass
class SyncEnv:
    app: FastAPI
    client: TestClient
    clock: FakeClock
    storage: Storage

    def call(self, party: Party, method: str, target: str, body: Any = None) -> Any:
        raw = b"" if body is None else encode_json(body)
        headers = party.headers(method, target, raw, self.clock.advance())
        if body is not None:
            headers["Content-Type"] = "application/json"
        return self.client.request(method, target, content=raw, headers=headers)

    def register(self, party: Party) -> None:
        response = self.call(party, "POST", "/v1/accounts", registration(party))
        assert response.status_code == 201, response.text
        party.devices = [party.device]

    @contextmanager
    def connect(self, party: Party) -> Iterator[WebSocketTestSession]:
        with self.client.websocket_connect("/v1/ws") as ws:
            challenge = ws.receive_json()
            assert challenge["type"] == "challenge"
            assert len(unb64(challenge["nonce"])) == 32
            ws.send_json(ws_auth_frame(party.device, challenge["nonce"], self.clock.advance()))
            assert ws.receive_json() == {"type": "ready"}
            yield ws

    def send(self, sender: Party, recipient: Party, text: bytes) -> list[int]:
        """Encrypt ``text`` for every device of ``recipient`` (fetching bundles as needed)."""
        bundles: dict[Any, PreKeyBundle] = {}
        listed = []
        response = self.call(sender, "GET", f"/v1/accounts/{recipient.b64}/bundles")
        assert response.status_code == 200, response.text
        body = response.json()
        dl = verify_device_list(
            SignedDeviceList.decode(unb64(body["signed_device_list"])),
            recipient.identity.public_key.raw,
        )
        for raw in body["bundles"]:
            bundle = PreKeyBundle.decode(unb64(raw))
            entry = dl.device(bundle.device.device)
            assert entry is not None
            verify_bundle(bundle, entry)
            bundles[bundle.device] = bundle
            listed.append(bundle.device)
        _, envelopes = sender.device.encrypt_fanout(
            listed,
            text,
            now_ms=self.clock.now,
            conversation_id=direct_conversation_id(sender.account, recipient.account),
            bundles=bundles,
        )
        send = {
            "recipients": {recipient.b64: [a.device for a in listed]},
            "envelopes": [b64(e.encode()) for e in envelopes],
        }
        response = self.call(sender, "POST", "/v1/messages", send)
        assert response.status_code == 200, response.text
        ids: list[int] = response.json()["ids"]
        return ids

    def pending(self, party: Party) -> list[int]:
        response = self.call(party, "GET", "/v1/messages")
        assert response.status_code == 200
        return [m["id"] for m in response.json()["messages"]]


@contextmanager
def ws_env() -> Iterator[SyncEnv]:
    storage = asyncio.run(open_memory())
    clock = FakeClock()
    app = create_app(
        ServerConfig(FRANKING_KEY),
        storage,
        InProcessPubSub(),
        clock=clock,
        rng=DeterministicRng(b"ws"),
    )
    with TestClient(app) as client:
        yield SyncEnv(app, client, clock, storage)
    asyncio.run(storage.close())


def ack_and_sync(ws: WebSocketTestSession, ids: list[int]) -> None:
    """Acknowledge, then make sure the server has processed it (see the module docstring)."""
    ws.send_json({"type": "ack", "ids": ids})
    ws.send_json({"type": "sync"})
    error = ws.receive_json()
    while error["type"] == "prekeys_low":
        error = ws.receive_json()
    assert error["type"] == "error"
    assert error["error"] == "malformed"
    with pytest.raises(WebSocketDisconnect) as closed:
        ws.receive_json()
    assert closed.value.code == 4400


def read_mail(ws: WebSocketTestSession) -> dict[str, Any]:
    frame: dict[str, Any] = ws.receive_json()
    while frame["type"] == "prekeys_low":
        frame = ws.receive_json()
    assert frame["type"] == "mail", frame
    return frame


def test_end_to_end_over_websocket() -> None:
    with ws_env() as env:
        alice, bob = make_party("alice", 1), make_party("bob", 2)
        env.register(alice)
        env.register(bob)

        with env.connect(bob) as ws:
            # Alice fetches bob's bundle (his stock drops below 10: a prekeys_low hint), then
            # sends; the wake-up brings the mail to bob's open connection.
            (sent_id,) = env.send(alice, bob, b"hello over the socket")
            assert ws.receive_json() == {"type": "prekeys_low"}
            mail = ws.receive_json()
            assert mail["type"] == "mail"
            assert mail["id"] == sent_id
            assert mail["sender"] == f"{alice.b64}:1"
            envelope = Envelope.decode(unb64(mail["envelope"]))
            received = bob.device.decrypt(envelope)
            assert received.body == b"hello over the socket"
            verify_reporting_tag(
                FRANKING_KEY,
                unb64(mail["reporting_tag"]),
                envelope.franking_commitment,
                envelope.sender,
                envelope.recipient,
                mail["id"],
                mail["server_time"],
            )
            ack_and_sync(ws, [mail["id"]])
        assert env.pending(bob) == []

        # Bob replies; alice is offline, so the mail waits and is pushed when she connects.
        reply = bob.device.encrypt(alice.address, b"hello back", now_ms=env.clock.now)
        response = env.call(
            bob,
            "POST",
            "/v1/messages",
            {"recipients": {alice.b64: [1]}, "envelopes": [b64(reply.encode())]},
        )
        assert response.status_code == 200
        with env.connect(alice) as ws:
            mail = read_mail(ws)
            assert alice.device.decrypt(Envelope.decode(unb64(mail["envelope"]))).body == (
                b"hello back"
            )
            ack_and_sync(ws, [mail["id"]])


def test_unacknowledged_mail_is_sent_again_on_reconnect() -> None:
    with ws_env() as env:
        alice, bob = make_party("alice", 1), make_party("bob", 2)
        env.register(alice)
        env.register(bob)
        first = env.send(alice, bob, b"one")
        second = env.send(alice, bob, b"two")

        with env.connect(bob) as ws:
            assert [read_mail(ws)["id"], read_mail(ws)["id"]] == first + second
            assert ws.receive_json() == {"type": "prekeys_low"}
        # Not acknowledged: both come again, in order.
        with env.connect(bob) as ws:
            again = [read_mail(ws), read_mail(ws)]
            assert [m["id"] for m in again] == first + second
            bodies = [bob.device.decrypt(Envelope.decode(unb64(m["envelope"]))).body for m in again]
            assert bodies == [b"one", b"two"]
            ack_and_sync(ws, first)
        with env.connect(bob) as ws:
            assert read_mail(ws)["id"] == second[0]
            ack_and_sync(ws, second)
        assert env.pending(bob) == []

        metrics = env.client.get("/metrics").text
        assert 'overt_deliveries_total{channel="ws"} 5' in metrics
        assert "overt_acknowledged_total 2" in metrics


def test_websocket_authentication_failures() -> None:
    with ws_env() as env:
        alice = make_party("alice", 1)
        env.register(alice)
        mallory = make_party("alice", 66)

        def refused(frame: Any, code: int) -> dict[str, Any]:
            with env.client.websocket_connect("/v1/ws") as ws:
                challenge = ws.receive_json()
                message = frame(challenge["nonce"]) if callable(frame) else frame
                if isinstance(message, str):
                    ws.send_text(message)
                else:
                    ws.send_json(message)
                error: dict[str, Any] = ws.receive_json()
                assert error["type"] == "error"
                with pytest.raises(WebSocketDisconnect) as closed:
                    ws.receive_json()
                assert closed.value.code == code
                return error

        now = env.clock.now
        # Signed by another key.
        assert refused(lambda n: ws_auth_frame(mallory.device, n, now), 4401)["error"] == (
            "unauthenticated"
        )
        # Signed over another nonce (a replayed handshake).
        refused(lambda n: ws_auth_frame(alice.device, b64(bytes(32)), now), 4401)
        # Out of the time window.
        refused(lambda n: ws_auth_frame(alice.device, n, now - 400_000), 4401)
        # Not an auth frame, not JSON, unknown fields, too large.
        refused({"type": "ack", "ids": [1]}, 4401)
        refused("not json", 4400)
        refused(lambda n: {**ws_auth_frame(alice.device, n, now), "x": 1}, 4400)
        assert refused("x" * (WS_MESSAGE_MAX + 1), 4413)["error"] == "too_large"


def test_a_removed_device_is_disconnected() -> None:
    with ws_env() as env:
        alice = make_party("alice", 1)
        env.register(alice)
        phone = alice.sibling(2, 5)
        devices = [alice.device, phone.device]
        body = {
            "signed_device_list": b64(alice.signed_list(devices, 2).encode()),
            "expected_serial": 1,
        }
        assert env.call(alice, "PUT", f"/v1/accounts/{alice.b64}/devices", body).status_code == 200
        upload = prekey_upload(phone.device)
        assert env.call(phone, "PUT", "/v1/devices/self/prekeys", upload).status_code == 200

        with env.connect(phone) as ws:
            body = {
                "signed_device_list": b64(alice.signed_list([alice.device], 3).encode()),
                "expected_serial": 2,
            }
            response = env.call(alice, "PUT", f"/v1/accounts/{alice.b64}/devices", body)
            assert response.status_code == 200
            error = ws.receive_json()
            assert (error["type"], error["error"]) == ("error", "unauthenticated")
            assert "removed" in error["message"]
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_json()
            assert closed.value.code == 4401
