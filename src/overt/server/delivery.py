"""WebSocket delivery: challenge, authentication, then every pending and every new message.

The conversation (docs/api.md, ``GET /v1/ws``)::

    server → {"type": "challenge", "nonce": b64(32 random bytes)}
    client → {"type": "auth", "device", "timestamp", "signature"}
    server → {"type": "ready"}, then {"type": "mail", …Mail} for each pending message,
             {"type": "prekeys_low"} when the stock is low, then new mail as it arrives
    client → {"type": "ack", "ids": [...]} at any time

The connection subscribes to its device's PubSub channel *before* it reads the mailbox, so a
message stored meanwhile is either in the first read or announced by a wake-up. Within one
connection each message is sent once (reads continue after the last id sent); a message not
acknowledged is sent again on the next connection. A failure ends the connection with an
``{"type": "error", "error", "message"}`` frame and close code ``4000 + HTTP status`` (4400,
4401, 4413, 4429, …); an unexpected exception closes with 1011 and a log line.

Only one task sends on a socket: the delivery loop. The reader only receives and
acknowledges; its failures are reported by the handler after the delivery loop stopped.

This module knows Starlette's WebSocket and the services it is given; no SQL, no envelopes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any, Final

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from overt.crypto import Rng
from overt.errors import OvertError, ProtocolViolation
from overt.server import notify
from overt.server.auth import Authenticator, device_hash
from overt.server.codec import b64encode, format_address
from overt.server.errors import TooLarge, Unauthenticated, describe
from overt.server.limits import FETCH_PAGE_MAX, WS_AUTH_TIMEOUT_S, WS_MESSAGE_MAX, WS_NONCE_LEN
from overt.server.logs import describe_exception
from overt.server.messages import MessageService
from overt.server.metrics import Metrics
from overt.server.models import WsAck, WsAuth, parse_ws_frame
from overt.server.prekeys import PrekeyService
from overt.storage import Mail, PubSub, Subscription
from overt.wire import Address

_log = logging.getLogger("overt.server")

ROUTE: Final = "/v1/ws"
CLOSE_NORMAL: Final = 1000
CLOSE_UNEXPECTED: Final = 1011
CLOSE_TIMEOUT: Final = 4408


@dataclass
class _Session:
    """What the log line of one connection needs."""

    device: Address | None = None
    code: int = CLOSE_NORMAL


class _Closed(Exception):
    """The client went away."""


def mail_frame(mail: Mail) -> dict[str, Any]:
    """One stored message as the ``mail`` frame (the ``Mail`` object of docs/api.md)."""
    return {
        "type": "mail",
        "id": mail.id,
        "sender": format_address(Address(mail.sender_account, mail.sender_device)),
        "server_time": mail.server_time,
        "envelope": b64encode(mail.envelope),
        "reporting_tag": b64encode(mail.reporting_tag),
    }


class Delivery:
    """Serves WebSocket connections of devices."""

    def __init__(
        self,
        auth: Authenticator,
        messages: MessageService,
        prekeys: PrekeyService,
        pubsub: PubSub,
        rng: Rng,
        metrics: Metrics,
    ) -> None:
        self._auth = auth
        self._messages = messages
        self._prekeys = prekeys
        self._pubsub = pubsub
        self._rng = rng
        self._metrics = metrics

    async def serve(self, ws: WebSocket) -> None:
        """Run one connection to its end and log it in one line; never raises."""
        started = time.perf_counter()
        session = _Session()
        try:
            session.code = await self._guarded(ws, session)
        finally:
            fields: dict[str, Any] = {
                "route": ROUTE,
                "status": session.code,
                "duration_ms": round((time.perf_counter() - started) * 1000, 3),
            }
            if session.device is not None:
                fields["device"] = device_hash(session.device)
            _log.info("websocket", extra={"fields": fields})

    async def _guarded(self, ws: WebSocket, session: _Session) -> int:
        """The connection, with every failure turned into a close code."""
        try:
            await ws.accept()
            await self._serve(ws, session)
        except (_Closed, WebSocketDisconnect):
            return CLOSE_NORMAL
        except OvertError as e:
            answer = describe(e)
            if answer.internal:
                _log.error(
                    "websocket failed", extra={"fields": {"exception": describe_exception(e)}}
                )
            return await self._close(ws, 4000 + answer.status, {"type": "error", **answer.body})
        except TimeoutError:
            frame = {
                "type": "error",
                "error": "unauthenticated",
                "message": "the challenge was not answered in time: connect again and answer it",
            }
            return await self._close(ws, CLOSE_TIMEOUT, frame)
        except Exception as e:
            _log.error("websocket failed", extra={"fields": {"exception": describe_exception(e)}})
            return await self._close(ws, CLOSE_UNEXPECTED, None)
        return CLOSE_NORMAL

    @staticmethod
    async def _close(ws: WebSocket, code: int, frame: dict[str, Any] | None) -> int:
        if ws.application_state != WebSocketState.CONNECTED:
            return code
        with contextlib.suppress(Exception):
            if frame is not None:
                await ws.send_json(frame)
            await ws.close(code)
        return code

    @staticmethod
    async def _receive(ws: WebSocket) -> str | bytes:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            raise _Closed
        data: str | bytes | None = message.get("text")
        if data is None:
            data = message.get("bytes") or b""
        if len(data) > WS_MESSAGE_MAX:
            raise TooLarge(f"a WebSocket message is at most {WS_MESSAGE_MAX} bytes")
        return data

    async def _serve(self, ws: WebSocket, session: _Session) -> None:
        nonce = b64encode(self._rng.random_bytes(WS_NONCE_LEN))
        await ws.send_json({"type": "challenge", "nonce": nonce})
        async with asyncio.timeout(WS_AUTH_TIMEOUT_S):
            frame = parse_ws_frame(await self._receive(ws))
        if not isinstance(frame, WsAuth):
            raise Unauthenticated("answer the challenge with an 'auth' message first")
        device = await self._auth.authenticate_ws(
            frame.device, frame.timestamp, frame.signature, nonce
        )
        session.device = device
        async with self._pubsub.subscribe(notify.device_channel(device)) as subscription:
            await ws.send_json({"type": "ready"})
            self._metrics.websocket_connections.inc()
            try:
                await self._run(ws, device, subscription)
            finally:
                self._metrics.websocket_connections.dec()

    async def _run(self, ws: WebSocket, device: Address, subscription: Subscription) -> None:
        self._metrics.mailbox_depth.observe(await self._messages.depth(device))
        reader = asyncio.ensure_future(self._read(ws, device))
        writer = asyncio.ensure_future(self._deliver(ws, device, subscription))
        tasks = (reader, writer)
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            # asyncio.wait, not gather: if this task is being cancelled meanwhile, the
            # cancellation that reaches the caller must be its own (gather would raise a fresh
            # one for the tasks cancelled here, which the caller's cancel scope cannot claim).
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)
        failures = [t.exception() for t in tasks if not t.cancelled()]
        for failure in failures:
            if failure is not None:
                raise failure

    async def _read(self, ws: WebSocket, device: Address) -> None:
        while True:
            frame = parse_ws_frame(await self._receive(ws))
            if not isinstance(frame, WsAck):
                raise ProtocolViolation("this connection is already authenticated")
            self._auth.spend(device)
            removed = await self._messages.ack(device, frame.ids)
            self._metrics.acknowledged.inc(amount=removed)

    async def _push(self, ws: WebSocket, device: Address, after: int) -> int:
        while True:
            page = await self._messages.fetch(device, after, FETCH_PAGE_MAX)
            for mail in page.mail:
                await ws.send_json(mail_frame(mail))
                after = mail.id
            self._metrics.deliveries.inc("ws", amount=len(page.mail))
            if not page.more:
                return after

    async def _deliver(self, ws: WebSocket, device: Address, subscription: Subscription) -> None:
        last = await self._push(ws, device, 0)
        if (await self._prekeys.stock(device)).low:
            await ws.send_json({"type": "prekeys_low"})
        while True:
            hint = await subscription.get()
            if hint == notify.REVOKED:
                raise Unauthenticated("this device was removed from its account's device list")
            if hint == notify.PREKEYS_LOW:
                await ws.send_json({"type": "prekeys_low"})
            else:
                last = await self._push(ws, device, last)
