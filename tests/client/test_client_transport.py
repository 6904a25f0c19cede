"""The transport: request signing exactly as docs/api.md says, and every way a server can say
no mapped to a typed error with the server's message."""

from __future__ import annotations

import json

import httpx
import pytest

from overt.client import (
    AsgiTransport,
    BadResponse,
    HttpTransport,
    NotFound,
    RateLimited,
    RequestSigner,
    ServerRefused,
    ServerUnreachable,
    StaleDevices,
    Unauthenticated,
)
from overt.client._b64 import b64d, b64e
from overt.crypto import DeterministicRng, Ed25519PrivateKey, sha256
from overt.errors import LocalError, RemoteError
from overt.wire import Address

from .support import FakeClock


def transport_with(handler: httpx.MockTransport) -> HttpTransport:
    return HttpTransport(
        "http://server.test",
        http=httpx.AsyncClient(transport=handler, base_url="http://server.test"),
    )


async def test_requests_are_signed_as_documented() -> None:
    key = Ed25519PrivateKey.generate(DeterministicRng("device"))
    clock = FakeClock()
    signer = RequestSigner(Address(b"alice", 2), key, clock)
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True})

    net = transport_with(httpx.MockTransport(handler))
    await net.request("GET", "/v1/messages?after=12&limit=100", signer=signer)
    await net.request("POST", "/v1/messages/ack", json={"ids": [1, 2]}, signer=signer)
    await net.request("POST", "/v1/attachments", content=b"\x00blob", signer=signer)
    await net.aclose()

    stamps = []
    for request, body in zip(seen, [b"", b'{"ids":[1,2]}', b"\x00blob"], strict=True):
        assert request.content == body
        assert request.headers["X-Overt-Device"] == f"{b64e(b'alice')}:2"
        ts = request.headers["X-Overt-Timestamp"]
        stamps.append(int(ts))
        target = request.url.raw_path.decode()
        signed = f"Overt_Request_v1\n{request.method}\n{target}\n{ts}\n{sha256(body).hex()}"
        key.public_key.verify(b64d(request.headers["X-Overt-Signature"], "sig"), signed.encode())
    assert seen[0].url.raw_path == b"/v1/messages?after=12&limit=100"
    assert seen[1].headers["content-type"] == "application/json"
    # The clock did not move, yet no two requests share a timestamp (no replay refusals).
    assert stamps == sorted(set(stamps)) and stamps[0] == clock.now_ms()

    auth = signer.ws_auth("bm9uY2U")
    ws_signed = f"Overt_WS_v1\nbm9uY2U\n{auth['timestamp']}".encode()
    key.public_key.verify(b64d(auth["signature"], "sig"), ws_signed)
    assert "redacted" in repr(signer)


def err(code: str, message: str, **extra: object) -> dict[str, object]:
    return {"error": code, "message": message, **extra}


@pytest.mark.parametrize(
    ("status", "body", "headers", "cls", "code"),
    [
        (401, err("unauthenticated", "sign it"), {}, Unauthenticated, "unauthenticated"),
        (404, err("not_found", "no such thing"), {}, NotFound, "not_found"),
        (429, err("rate_limited", "slow down"), {"Retry-After": "3"}, RateLimited, "rate_limited"),
        (409, err("stale_devices", "refresh", accounts={}), {}, StaleDevices, "stale_devices"),
        (400, err("mismatch", "one envelope per device"), {}, ServerRefused, "mismatch"),
        (502, None, {}, ServerRefused, "unknown"),
    ],
)
async def test_error_answers_map_to_typed_errors(
    status: int, body: object, headers: dict[str, str], cls: type[ServerRefused], code: str
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        content = b"<html>bad gateway</html>" if body is None else json.dumps(body).encode()
        return httpx.Response(status, content=content, headers=headers)

    net = transport_with(httpx.MockTransport(handler))
    with pytest.raises(cls) as info:
        await net.request("GET", "/v1/anything")
    await net.aclose()
    err = info.value
    assert type(err) is cls and isinstance(err, RemoteError)
    assert (err.status, err.code, err.status_hint) == (status, code, status)
    if isinstance(body, dict):
        assert err.message == body["message"] and body["message"] in str(err)
        assert err.details == body
    else:
        assert "without an explanation" in err.message
    if cls is RateLimited:
        assert err.retry_after == 3.0


async def test_no_answer_is_server_unreachable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    net = transport_with(httpx.MockTransport(handler))
    with pytest.raises(ServerUnreachable, match="check the server address"):
        await net.request("GET", "/healthz")
    await net.aclose()

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out")

    net = transport_with(httpx.MockTransport(slow))
    with pytest.raises(ServerUnreachable, match="in time"):
        await net.request("GET", "/healthz")
    await net.aclose()


async def test_answers_that_are_not_json_are_bad_responses() -> None:
    net = transport_with(httpx.MockTransport(lambda r: httpx.Response(200, content=b"<html>")))
    answer = await net.request("GET", "/healthz")
    with pytest.raises(BadResponse):
        answer.json()
    await net.aclose()


async def test_misuse_is_a_local_error() -> None:
    with pytest.raises(LocalError):
        HttpTransport("server.test:8080")

    async def app(scope: object, receive: object, send: object) -> None:
        raise AssertionError("not called")

    net = AsgiTransport(app)
    assert not net.supports_push
    with pytest.raises(LocalError, match="poll"):
        net.push("/v1/ws")
    with pytest.raises(LocalError):
        await net.request("POST", "/x", json={}, content=b"")
    await net.aclose()
