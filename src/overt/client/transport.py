"""How the client reaches the relay server: signed HTTP requests and a push channel.

:class:`Transport` is the seam. :class:`HttpTransport` speaks to a server at a URL (httpx for
requests, ``websockets`` for ``/v1/ws``); :class:`AsgiTransport` calls an ASGI app in the same
process (httpx's ``ASGITransport``), for tests and the demo. ``ASGITransport`` carries no
WebSocket, so an in-process transport has no push channel (``supports_push`` is False) and
:meth:`overt.client.Client.listen` falls back to polling ``GET /v1/messages``.

Requests are signed as docs/api.md says, by :class:`RequestSigner` with the device's Ed25519
key::

    "Overt_Request_v1\\n" METHOD "\\n" PATH_AND_QUERY "\\n" TIMESTAMP "\\n" hex(SHA-256(body))

``PATH_AND_QUERY`` is taken from the request as it goes on the wire, so it is what the server
sees. The server refuses a signature it has seen within its window, and Ed25519 signatures are
deterministic, so the signer never reuses a timestamp: each is strictly larger than the last.

Errors: an error answer becomes the :class:`~overt.client.errors.ServerRefused` subclass of its
``error`` code, carrying the server's ``message``; no answer at all becomes
:class:`~overt.client.errors.ServerUnreachable`. Foreign exceptions never escape. Nothing here
logs or puts in an error a body, a key or a signature.
"""

from __future__ import annotations

import json as jsonlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import httpx
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect

from overt.client._api import address_text
from overt.client._b64 import b64e
from overt.client.clock import Clock
from overt.client.errors import (
    BY_CODE,
    BY_STATUS,
    STATUS_OF_CODE,
    BadResponse,
    ServerRefused,
    ServerUnreachable,
)
from overt.client.limits import MAX_PUSH_FRAME_BYTES, REQUEST_TIMEOUT_S
from overt.crypto import Ed25519PrivateKey, sha256
from overt.errors import LocalError
from overt.wire import Address

REQUEST_LABEL = "Overt_Request_v1"
WS_LABEL = "Overt_WS_v1"


@dataclass(frozen=True, slots=True)
class Response:
    """A successful (2xx) answer."""

    status: int
    headers: Mapping[str, str]
    content: bytes = field(repr=False)

    def json(self) -> object:
        try:
            return jsonlib.loads(self.content)
        except (ValueError, UnicodeDecodeError):
            raise BadResponse("the server's answer is not JSON") from None


class RequestSigner:
    """Signs one device's requests and WebSocket logins (docs/api.md, "Authentication")."""

    def __init__(self, address: Address, key: Ed25519PrivateKey, clock: Clock) -> None:
        self.address = address
        self._key = key
        self._clock = clock
        self._last_ms = 0

    def _timestamp(self) -> int:
        self._last_ms = max(self._clock.now_ms(), self._last_ms + 1)
        return self._last_ms

    def headers(self, method: str, target: str, body: bytes) -> dict[str, str]:
        ts = str(self._timestamp())
        signed = "\n".join((REQUEST_LABEL, method.upper(), target, ts, sha256(body).hex()))
        return {
            "X-Overt-Device": address_text(self.address),
            "X-Overt-Timestamp": ts,
            "X-Overt-Signature": b64e(self._key.sign(signed.encode())),
        }

    def ws_auth(self, nonce_b64: str) -> dict[str, object]:
        ts = self._timestamp()
        signed = f"{WS_LABEL}\n{nonce_b64}\n{ts}".encode()
        return {
            "type": "auth",
            "device": address_text(self.address),
            "timestamp": ts,
            "signature": b64e(self._key.sign(signed)),
        }

    def __repr__(self) -> str:
        return f"RequestSigner({self.address}, <key redacted>)"


@runtime_checkable
class PushChannel(Protocol):
    """An open push connection: JSON objects both ways."""

    async def send_json(self, message: Mapping[str, object]) -> None: ...

    async def receive_json(self) -> object:
        """The next message; :class:`ServerUnreachable` once the connection is closed."""
        ...


@runtime_checkable
class Transport(Protocol):
    """What the client needs from the network."""

    @property
    def supports_push(self) -> bool:
        """Whether :meth:`push` works (else the client polls)."""
        ...

    async def request(
        self,
        method: str,
        target: str,
        *,
        json: object | None = None,
        content: bytes | None = None,
        signer: RequestSigner | None = None,
    ) -> Response:
        """Send one request (``target`` is the path and query); return a 2xx answer or raise
        :class:`ServerRefused` / :class:`ServerUnreachable`."""
        ...

    def push(self, target: str) -> AbstractAsyncContextManager[PushChannel]:
        """Open the push channel at ``target`` (``/v1/ws``)."""
        ...

    async def aclose(self) -> None: ...


def refusal(status: int, content: bytes, headers: Mapping[str, str]) -> ServerRefused:
    """The typed exception for an error answer."""
    try:
        data = jsonlib.loads(content)
    except (ValueError, UnicodeDecodeError):
        data = None
    retry_after: float | None = None
    raw_retry = headers.get("retry-after")
    if raw_retry is not None:
        try:
            retry_after = max(0.0, float(raw_retry))
        except ValueError:
            retry_after = None
    return error_of(status, data, retry_after)


def error_of(status: int | None, data: object, retry_after: float | None = None) -> ServerRefused:
    """The typed exception for an error body ``{"error", "message", …}`` (``status`` None: an
    error frame of the push channel, whose status follows from its code)."""
    code, message = "unknown", ""
    details: Mapping[str, object] = {}
    if isinstance(data, dict):
        details = data
        if isinstance(data.get("error"), str):
            code = data["error"]
        if isinstance(data.get("message"), str):
            message = data["message"]
    if status is None:
        status = STATUS_OF_CODE.get(code, 400)
    if not message:
        message = (
            f"the server answered {status} without an explanation; try again later, "
            "and tell the server's operator if it persists"
        )
    cls = BY_CODE.get(code) or BY_STATUS.get(status) or ServerRefused
    return cls(status, code, message, details=details, retry_after=retry_after)


class _HttpxTransport:
    """Requests through an ``httpx.AsyncClient`` (shared by both transports)."""

    def __init__(self, http: httpx.AsyncClient, where: str) -> None:
        self._http = http
        self._where = where

    async def request(
        self,
        method: str,
        target: str,
        *,
        json: object | None = None,
        content: bytes | None = None,
        signer: RequestSigner | None = None,
    ) -> Response:
        if json is not None and content is not None:
            raise LocalError("a request has a JSON body or a byte body, not both")
        headers: dict[str, str] = {}
        body = b""
        if json is not None:
            body = jsonlib.dumps(json, separators=(",", ":")).encode()
            headers["Content-Type"] = "application/json"
        elif content is not None:
            body = content
            headers["Content-Type"] = "application/octet-stream"
        request = self._http.build_request(method, target, content=body or None, headers=headers)
        if signer is not None:
            raw_target = request.url.raw_path.decode("ascii")
            request.headers.update(signer.headers(method, raw_target, body))
        try:
            answer = await self._http.send(request)
        except httpx.TimeoutException as exc:
            raise ServerUnreachable(
                f"{self._where} did not answer {method} {request.url.path} in time; check your "
                "connection and try again"
            ) from exc
        except httpx.HTTPError as exc:
            raise ServerUnreachable(
                f"could not reach {self._where} ({type(exc).__name__}); check the server "
                "address and your connection, then try again"
            ) from exc
        headers_out = {k.lower(): v for k, v in answer.headers.items()}
        if answer.status_code >= 400:
            raise refusal(answer.status_code, answer.content, headers_out)
        return Response(answer.status_code, headers_out, answer.content)

    async def aclose(self) -> None:
        await self._http.aclose()


class HttpTransport(_HttpxTransport):
    """A server at ``base_url`` (``http://`` or ``https://``), with WebSocket push."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = REQUEST_TIMEOUT_S,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        base = base_url.rstrip("/")
        if not base.startswith(("http://", "https://")):
            raise LocalError(f"server address {base_url!r} must start with http:// or https://")
        super().__init__(
            http or httpx.AsyncClient(base_url=base, timeout=timeout), f"the server at {base}"
        )
        self._ws_base = "ws" + base[len("http") :]
        self._timeout = timeout

    @property
    def supports_push(self) -> bool:
        return True

    def push(self, target: str) -> AbstractAsyncContextManager[PushChannel]:
        return self._push(target)

    @asynccontextmanager
    async def _push(self, target: str) -> AsyncIterator[PushChannel]:
        try:
            conn = await ws_connect(
                self._ws_base + target, max_size=MAX_PUSH_FRAME_BYTES, open_timeout=self._timeout
            )
        except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as exc:
            raise ServerUnreachable(
                f"could not open the push connection to {self._where} ({type(exc).__name__}); "
                "will retry"
            ) from exc
        try:
            yield _WebSocketChannel(conn, self._where)
        finally:
            await conn.close()

    def __repr__(self) -> str:
        return f"HttpTransport({self._where})"


class _WebSocketChannel:
    def __init__(self, conn: ClientConnection, where: str) -> None:
        self._conn = conn
        self._where = where

    async def send_json(self, message: Mapping[str, object]) -> None:
        try:
            await self._conn.send(jsonlib.dumps(message, separators=(",", ":")))
        except (OSError, websockets.exceptions.WebSocketException) as exc:
            raise ServerUnreachable(f"the push connection to {self._where} closed") from exc

    async def receive_json(self) -> object:
        try:
            raw = await self._conn.recv()
        except (OSError, websockets.exceptions.WebSocketException) as exc:
            raise ServerUnreachable(f"the push connection to {self._where} closed") from exc
        try:
            return jsonlib.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise BadResponse("the server sent a push message that is not JSON") from None


class AsgiTransport(_HttpxTransport):
    """An ASGI app in this process (no network). No push: the client polls instead."""

    def __init__(
        self, app: Callable[..., Awaitable[None]], *, base_url: str = "http://overt.invalid"
    ) -> None:
        asgi = httpx.ASGITransport(app=app)
        super().__init__(
            httpx.AsyncClient(transport=asgi, base_url=base_url), "the in-process server"
        )

    @property
    def supports_push(self) -> bool:
        return False

    def push(self, target: str) -> AbstractAsyncContextManager[PushChannel]:
        raise LocalError(
            "the in-process transport has no push channel; poll GET /v1/messages instead"
        )

    def __repr__(self) -> str:
        return "AsgiTransport(<in-process>)"
