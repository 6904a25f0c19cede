"""The edge: malformed and oversized requests, framework errors, attachments, operations
endpoints, and what reaches the logs."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import pytest
from server_kit import (
    b64,
    encode_json,
    make_party,
    registration,
    server_env,
    signed_headers,
    unb64,
)

from overt.protocol import direct_conversation_id
from overt.server.limits import MAX_ATTACHMENT_SIZE, MAX_REQUEST_BODY
from overt.server.logs import JsonFormatter
from overt.wire import PreKeyBundle


async def test_malformed_bodies_are_400() -> None:
    async with server_env() as env:
        alice = make_party("alice", 1)
        await env.register(alice)
        cases: list[tuple[bytes, str]] = [
            (b"{", "malformed"),
            (b"", "malformed"),
            (b"[]", "malformed"),
            (b'{"ids": "1"}', "malformed"),
            (b'{"ids": ["1"]}', "malformed"),  # strict: no coercion
            (b'{"ids": [1.0]}', "malformed"),
            (b'{"ids": [1], "extra": true}', "malformed"),
            (b'{"ids": [-1]}', "malformed"),
            (b'{"ids": [9223372036854775808]}', "malformed"),
            ('{"ids": [1]}\u00ff'.encode("latin-1"), "malformed"),
        ]
        for body, code in cases:
            headers = signed_headers(
                alice.device, "POST", "/v1/messages/ack", body, env.clock.advance()
            )
            response = await env.http.post("/v1/messages/ack", headers=headers, content=body)
            assert response.status_code == 400, body
            assert response.json()["error"] == code, body
            assert response.json()["message"]

        for envelope in ("AAEC=", "AA+/", "AA EC", "AB", "", "A"):
            body = {"recipients": {alice.b64: [2]}, "envelopes": [envelope]}
            response = await env.call(alice, "POST", "/v1/messages", json_body=body)
            assert response.status_code == 400, envelope
            assert response.json()["error"] == "malformed"

        bad_account = registration(alice) | {"account": "YWxpY2U="}
        response = await env.call(alice, "POST", "/v1/accounts", json_body=bad_account)
        assert response.status_code == 400
        assert response.json()["error"] == "malformed"


async def test_oversized_bodies_are_413() -> None:
    async with server_env() as env:
        alice = make_party("alice", 1)
        await env.register(alice)

        # Declared too large: refused before it is read.
        big = b"x" * (MAX_REQUEST_BODY + 1)
        headers = signed_headers(alice.device, "POST", "/v1/messages", big, env.clock.advance())
        response = await env.http.post("/v1/messages", headers=headers, content=big)
        assert response.status_code == 413
        assert response.json()["error"] == "too_large"

        # Streamed without a length: cut off at the bound.
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(5):
                yield b"y" * (1024 * 1024)

        headers = signed_headers(alice.device, "POST", "/v1/messages", b"", env.clock.advance())
        response = await env.http.post("/v1/messages", headers=headers, content=chunks())
        assert response.status_code == 413

        # A lying Content-Length smaller than the body does not help either.
        response = await env.http.post(
            "/v1/messages/ack",
            headers={**headers, "Content-Length": "5"},
            content=b"z" * (MAX_REQUEST_BODY + 10),
        )
        assert response.status_code in (400, 401, 413)


async def test_framework_errors_are_json() -> None:
    async with server_env() as env:
        response = await env.http.get("/v2/nothing")
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"
        response = await env.http.delete("/v1/messages")
        assert response.status_code == 405
        assert response.json()["error"] == "method_not_allowed"
        response = await env.http.get("/v1/ws")
        assert response.status_code == 404


async def test_attachments() -> None:
    async with server_env() as env:
        alice, bob = make_party("alice", 1), make_party("bob", 2)
        await env.register(alice)
        await env.register(bob)
        blob = bytes(range(256)) * 1000
        response = await env.call(
            alice,
            "POST",
            "/v1/attachments",
            content=blob,
            headers={"Content-Type": "application/octet-stream"},
        )
        assert response.status_code == 201
        blob_id = response.json()["id"]
        assert len(blob_id) == 22

        response = await env.call(bob, "GET", f"/v1/attachments/{blob_id}")
        assert response.status_code == 200
        assert response.content == blob
        assert response.headers["content-type"] == "application/octet-stream"

        response = await env.call(bob, "GET", f"/v1/attachments/{b64(bytes(16))}")
        assert response.status_code == 404
        response = await env.call(bob, "GET", "/v1/attachments/short")
        assert response.status_code == 400
        response = await env.call(bob, "GET", "/v1/attachments/AAAAAAAAAAAAAAAAAAAAAB")
        assert response.status_code == 400  # nonzero trailing bits
        response = await env.http.get(f"/v1/attachments/{blob_id}")
        assert response.status_code == 401

        too_big = b"\x00" * (MAX_ATTACHMENT_SIZE + 1)
        response = await env.call(alice, "POST", "/v1/attachments", content=too_big)
        assert response.status_code == 413
        assert response.json()["error"] == "too_large"
        exactly = b"\x00" * MAX_ATTACHMENT_SIZE
        response = await env.call(alice, "POST", "/v1/attachments", content=exactly)
        assert response.status_code == 201


async def test_health_metrics_and_openapi() -> None:
    async with server_env() as env:
        response = await env.http.get("/healthz")
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}

        alice = make_party("alice", 1)
        await env.register(alice)
        await env.call(alice, "GET", "/v1/messages")

        response = await env.http.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        text = response.text
        assert "# TYPE overt_http_requests_total counter" in text
        assert (
            'overt_http_requests_total{method="POST",route="/v1/accounts",status="201"} 1' in text
        )
        assert 'overt_http_requests_total{method="GET",route="/v1/messages",status="200"} 1' in text
        assert "overt_messages_relayed_total 0" in text
        assert "overt_websocket_connections 0" in text
        assert "overt_http_request_duration_seconds_bucket" in text
        assert alice.b64 not in text

        schema = (await env.http.get("/openapi.json")).json()
        paths = schema["paths"]
        for path in (
            "/v1/accounts",
            "/v1/accounts/{account}",
            "/v1/accounts/{account}/devices",
            "/v1/devices/self/prekeys",
            "/v1/accounts/{account}/bundles",
            "/v1/messages",
            "/v1/messages/ack",
            "/v1/attachments",
            "/v1/attachments/{blob_id}",
            "/healthz",
            "/metrics",
        ):
            assert path in paths, path
        send = paths["/v1/messages"]["post"]
        ref = send["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        assert ref == "#/components/schemas/SendRequest"
        assert "SendRequest" in schema["components"]["schemas"]
        assert {p["name"] for p in send["parameters"]} >= {
            "X-Overt-Device",
            "X-Overt-Timestamp",
            "X-Overt-Signature",
        }


async def test_logs_are_json_and_hold_no_secrets(caplog: pytest.LogCaptureFixture) -> None:
    async with server_env() as env:
        alice, bob = make_party("alice", 1), make_party("bob", 2)
        with caplog.at_level(logging.INFO, logger="overt.server"):
            await env.register(alice)
            await env.register(bob)
            response = await env.call(alice, "GET", f"/v1/accounts/{bob.b64}/bundles")
            bundles = response.json()["bundles"]
            bundle = PreKeyBundle.decode(unb64(bundles[0]))
            _, (envelope,) = alice.device.encrypt_fanout(
                [bob.address],
                b"secret body",
                now_ms=env.clock.now,
                conversation_id=direct_conversation_id(alice.account, bob.account),
                bundles={bob.address: bundle},
            )
            send = {"recipients": {bob.b64: [1]}, "envelopes": [b64(envelope.encode())]}
            body = encode_json(send)
            headers = signed_headers(
                alice.device, "POST", "/v1/messages", body, env.clock.advance()
            )
            response = await env.http.post("/v1/messages", headers=headers, content=body)
            assert response.status_code == 200
            await env.call(alice, "POST", "/v1/messages", content=b"{broken")

        formatter = JsonFormatter()
        lines = [formatter.format(r) for r in caplog.records if r.name == "overt.server"]
        assert lines
        requests = [json.loads(line) for line in lines]
        assert any(
            r.get("route") == "/v1/messages" and r.get("status") == 200 and r.get("device")
            for r in requests
        )
        assert any(r.get("route") == "/v1/accounts/{account}/bundles" for r in requests)
        everything = "\n".join(lines)
        for secret in (
            b64(envelope.encode())[:40],
            headers["X-Overt-Signature"],
            bob.b64,
            alice.b64,
            bundles[0][:40],
            "secret body",
        ):
            assert secret not in everything


async def test_storage_unavailable_is_503_and_a_bug_is_a_bare_500(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with server_env() as env:

        async def broken(account_id: bytes) -> None:
            raise RuntimeError("secret detail 0xdeadbeef")

        monkeypatch.setattr(env.storage.accounts, "get", broken)
        with caplog.at_level(logging.INFO, logger="overt.server"):
            response = await env.http.get(f"/v1/accounts/{b64(b'alice')}")
        assert response.status_code == 500
        assert response.json() == {
            "error": "internal",
            "message": "the server failed to handle this request; try again later",
        }
        formatter = JsonFormatter()
        lines = [formatter.format(r) for r in caplog.records if r.name == "overt.server"]
        assert any("RuntimeError" in line for line in lines)
        assert not any("deadbeef" in line for line in lines)
        monkeypatch.undo()

        await env.storage.close()
        response = await env.http.get(f"/v1/accounts/{b64(b'alice')}")
        assert response.status_code == 503
        assert response.json()["error"] == "unavailable"
        assert response.headers["Retry-After"] == "1"
