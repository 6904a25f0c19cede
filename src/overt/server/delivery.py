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
acknowledged is sent again on the next connection.

A wake-up that carries its mail (:func:`overt.server.notify.mail_hint`, what every send
publishes) is passed on as it is, without reading the mailbox; the connection remembers the ids
it sent that way (at most :data:`WS_PUSHED_MAX`) and skips them when it next reads. It reads
its mailbox — after the last id read, and then forgets those ids — on a wake-up without data,
when its subscription dropped wake-ups (``dropped`` moved), or when it remembers
:data:`WS_PUSHED_MAX` ids. Ids increase in commit order and a wake-up is published after its
commit, so a read returns everything between the last read and the largest id pushed that was
not acknowledged meanwhile. A failure ends the connection with an
``{"type": "error", "error", "message"}`` frame and close code ``4000 + HTTP status`` (4400,
4401, 4413, 4429, …); an unexpected exception closes with 1011 and a log line.

Only one task sends on a socket: the delivery loop. The reader only receives and
acknowledges; its failures are reported by the handler after the delivery loop stopped.

Across several nodes (Redis pub/sub) the same loop is correct: a send through any node
publishes the wake-up after its commit, and mail ids increase in commit order, so reading
after the last id pushed misses nothing. Two more things happen there. The connection marks its
device as present on this node (:class:`Presence`, refreshed every :data:`PRESENCE_REFRESH_S`
with a TTL of :data:`PRESENCE_TTL_S`, removed when the last local connection of the device
ends). And a subscription that counts ``interruptions`` (the node lost Redis, so wake-ups
published meanwhile are gone) is checked every :data:`RESYNC_CHECK_S`: after an interruption
the loop waits until this node's subscription to the channel is confirmed again (reading the
mailbox every :data:`RESYNC_RETRY_S` while Redis stays away), then reads after the last id
pushed.

This module knows Starlette's WebSocket and the services it is given; no SQL, no envelopes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, runtime_checkable

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from overt.crypto import Rng
from overt.errors import OvertError, ProtocolViolation
from overt.server import notify
from overt.server.auth import Authenticator, device_hash
from overt.server.codec import b64encode
from overt.server.errors import TooLarge, Unauthenticated, describe
from overt.server.limits import FETCH_PAGE_MAX, WS_AUTH_TIMEOUT_S, WS_MESSAGE_MAX, WS_NONCE_LEN
from overt.server.logs import describe_exception
from overt.server.messages import MessageService
from overt.server.metrics import Metrics
from overt.server.models import WsAck, WsAuth, parse_ws_frame
from overt.server.prekeys import PrekeyService
from overt.storage import Mail, PubSub, StorageUnavailable, Subscription
from overt.wire import Address

_log = logging.getLogger("overt.server")

ROUTE: Final = "/v1/ws"
CLOSE_NORMAL: Final = 1000
CLOSE_UNEXPECTED: Final = 1011
CLOSE_TIMEOUT: Final = 4408

WS_PUSHED_MAX: Final = 1024
"""Mail ids a connection remembers having sent from hints; when it holds this many it reads its
mailbox instead of the next hint, which lets it forget them."""
_HINTED_SCOPE_KEY: Final = "overt.hinted"

DEFAULT_NODE_ID: Final = "node"
PRESENCE_TTL_S: Final = 60.0
"""How long a presence entry lives in Redis unless refreshed (a dead node's entries lapse)."""
PRESENCE_REFRESH_S: Final = 20.0
"""How often a live connection refreshes its presence entry (a third of the TTL)."""
PRESENCE_UNMARK_TIMEOUT_S: Final = 1.0
"""How long removing a presence entry may delay the end of a connection."""
RESYNC_CHECK_S: Final = 1.0
"""How often a connection whose wake-ups can be interrupted checks whether they were."""
RESYNC_RETRY_S: Final = 1.0
"""While the subscription is not confirmed again: wait between mailbox reads."""


@runtime_checkable
class Presence(Protocol):
    """Device presence per node (``RedisPubSub`` has it; the in-process PubSub does not)."""

    async def mark_connected(self, device_key: str, node_id: str, ttl: float) -> None: ...

    async def mark_disconnected(self, device_key: str, node_id: str) -> None: ...


@dataclass
class _Session:
    """What the log line of one connection needs."""

    device: Address | None = None
    code: int = CLOSE_NORMAL


class _Closed(Exception):
    """The client went away."""


@dataclass
class _Hinted:
    """What one connection sent from mail hints since it last read its mailbox."""

    pushed: set[int] = field(default_factory=set)
    """Ids sent from hints, all above the id the next read starts after."""
    dropped: int = 0
    """The subscription's ``dropped`` count when last looked at."""

    @property
    def full(self) -> bool:
        return len(self.pushed) >= WS_PUSHED_MAX


def _hinted(ws: WebSocket) -> _Hinted:
    """The connection's :class:`_Hinted` (kept in its ASGI scope, so it ends with it)."""
    state = ws.scope.get(_HINTED_SCOPE_KEY)
    if not isinstance(state, _Hinted):
        state = ws.scope[_HINTED_SCOPE_KEY] = _Hinted()
    return state


def _missed(ws: WebSocket, subscription: Subscription) -> bool:
    """Whether ``subscription`` dropped hints since this was last asked (a hint dropped may
    have carried mail: then the connection reads its mailbox)."""
    state = _hinted(ws)
    dropped, state.dropped = state.dropped, subscription.dropped
    return dropped != subscription.dropped


def mail_frame(mail: Mail) -> dict[str, Any]:
    """One stored message as the ``mail`` frame (the ``Mail`` object of docs/api.md)."""
    return notify.mail_frame(mail)


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
        *,
        node_id: str = DEFAULT_NODE_ID,
    ) -> None:
        self._auth = auth
        self._messages = messages
        self._prekeys = prekeys
        self._pubsub = pubsub
        self._rng = rng
        self._metrics = metrics
        self._node_id = node_id
        self._presence = pubsub if isinstance(pubsub, Presence) else None
        self._present: dict[str, int] = {}
        """Live connections on this node per device channel (presence is per node)."""

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
        tasks: tuple[asyncio.Future[None], ...] = (reader, writer)
        if self._presence is not None:
            tasks += (asyncio.ensure_future(self._mark_present(self._presence, device)),)
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
        """Send the mail stored after id ``after`` (except what this connection already sent
        from mail hints); returns the id the next read starts after."""
        pushed = _hinted(ws).pushed
        while True:
            page = await self._messages.fetch(device, after, FETCH_PAGE_MAX)
            sent = 0
            for mail in page.mail:
                after = mail.id
                if mail.id not in pushed:
                    await ws.send_json(mail_frame(mail))
                    sent += 1
            self._metrics.deliveries.inc("ws", amount=sent)
            if not page.more:
                # Every id pushed from a hint was committed before this read began, and so was
                # every smaller id: what the read did not return was acknowledged already.
                after = max(after, *pushed) if pushed else after
                pushed.clear()
                return after

    async def _push_hint(self, ws: WebSocket, mail_id: int, frame: str, after: int) -> None:
        """Send the mail a hint carried, unless this connection sent it already."""
        pushed = _hinted(ws).pushed
        if mail_id > after and mail_id not in pushed:
            await ws.send_text(frame)
            pushed.add(mail_id)
            self._metrics.deliveries.inc("ws")

    async def _mark_present(self, presence: Presence, device: Address) -> None:
        """Keep ``device`` marked present on this node until cancelled; never raises."""
        key = notify.device_channel(device)
        self._present[key] = self._present.get(key, 0) + 1
        try:
            while True:
                try:
                    await presence.mark_connected(key, self._node_id, PRESENCE_TTL_S)
                except Exception as e:
                    _log.warning(
                        "presence not recorded", extra={"fields": {"cause": type(e).__name__}}
                    )
                await asyncio.sleep(PRESENCE_REFRESH_S)
        finally:
            left = self._present.pop(key, 1) - 1
            if left:
                self._present[key] = left
            else:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(PRESENCE_UNMARK_TIMEOUT_S):
                        await presence.mark_disconnected(key, self._node_id)

    async def _resync(self, ws: WebSocket, device: Address, last: int) -> int:
        """After an interruption of wake-ups: wait until this node's subscription to the
        device's channel is confirmed again (a probe subscription returns once it is), reading
        the mailbox meanwhile, then read what was missed. Returns the last id pushed."""
        channel = notify.device_channel(device)
        while True:
            try:
                async with self._pubsub.subscribe(channel):
                    pass
            except StorageUnavailable:
                last = await self._push(ws, device, last)
                await asyncio.sleep(RESYNC_RETRY_S)
                continue
            return await self._push(ws, device, last)

    @staticmethod
    async def _next_hint(subscription: Subscription, *, poll: bool) -> bytes | None:
        """The next wake-up; with ``poll``, ``None`` after :data:`RESYNC_CHECK_S` without."""
        if not poll:
            return await subscription.get()
        try:
            async with asyncio.timeout(RESYNC_CHECK_S):
                return await subscription.get()
        except TimeoutError:
            return None

    async def _deliver(self, ws: WebSocket, device: Address, subscription: Subscription) -> None:
        last = await self._push(ws, device, 0)
        if (await self._prekeys.stock(device)).low:
            await ws.send_json({"type": "prekeys_low"})
        seen: int | None = getattr(subscription, "interruptions", None)
        while True:
            hint = await self._next_hint(subscription, poll=seen is not None)
            if seen is not None:
                interruptions: int = getattr(subscription, "interruptions", seen)
                if interruptions != seen:
                    seen = interruptions
                    last = await self._resync(ws, device, last)
            if hint is None:
                continue
            if hint == notify.REVOKED:
                raise Unauthenticated("this device was removed from its account's device list")
            if hint == notify.PREKEYS_LOW:
                await ws.send_json({"type": "prekeys_low"})
                continue
            carried = notify.parse_mail_hint(hint)
            if carried is None or _missed(ws, subscription) or _hinted(ws).full:
                last = await self._push(ws, device, last)
            else:
                await self._push_hint(ws, *carried, last)
