"""Wake-ups and presence shared by several server nodes, over Redis.

:class:`RedisPubSub` implements the :class:`~overt.storage.pubsub.PubSub` Protocol: a message
published on any node reaches the subscribers of that channel on every node, at once. Each node
(each ``RedisPubSub``) holds one Redis pub/sub connection for all its subscriptions: it sends
``SUBSCRIBE`` for a channel when the channel's first local subscriber arrives and
``UNSUBSCRIBE`` when its last one leaves, and one reader task hands each message to the local
subscribers' queues with the in-process rules (a subscriber
:data:`~overt.storage.pubsub.SUBSCRIBER_QUEUE_MAX` behind loses the oldest, counted in
``dropped``). Entering ``subscribe`` returns once Redis has confirmed the
subscription, so a message published anywhere after that is delivered; if Redis does not
confirm within :data:`SUBSCRIBE_TIMEOUT_S` it raises ``StorageUnavailable``.

**Connection loss.** The reader pings Redis when the connection has been quiet for
:data:`HEARTBEAT_S` and treats a second quiet period as a dead connection (a half-open TCP
connection sends no error). On any failure it reconnects with exponential backoff from
:data:`RECONNECT_DELAY_MIN_S` to :data:`RECONNECT_DELAY_MAX_S` (no jitter: this layer draws no
randomness) and subscribes again to every channel that has local subscribers. Messages published
while a node was disconnected are lost to it, as pub/sub hints may be; each subscription counts
the gaps in ``interruptions``, after which its owner should fetch what it may have missed.
``publish`` retries once on a fresh connection and then raises ``StorageUnavailable``.

**Presence.** :meth:`RedisPubSub.mark_connected` records that a device (any string key the
caller chooses) has a connection on a node, for ``ttl`` seconds; the caller refreshes it well
before it expires (every third of the TTL, say) while the connection lives, and
:meth:`RedisPubSub.mark_disconnected` removes it when the connection ends. A node that dies
stops refreshing and its entries lapse. Each device is one sorted set, member = node id,
score = expiry in Redis's own clock (``TIME`` inside a Lua script, so nodes' clocks do not
matter); the key itself expires with its last member.

Errors from redis-py and sockets are mapped at this edge with ``raise ... from``: connection,
timeout and loading errors become ``StorageUnavailable``, the rest ``StorageError``. After
:meth:`RedisPubSub.close`, every call raises ``StorageUnavailable`` and subscribers waiting in
``get`` are woken with it.

Like the rest of :mod:`overt.storage`, this module knows nothing of what the messages mean:
channels and keys are strings, messages are opaque bytes. One instance serves one event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self

from redis.asyncio import Redis
from redis.asyncio.client import PubSub as _RedisConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import BusyLoadingError, RedisError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from overt.errors import ConfigurationError
from overt.storage.errors import InvalidArgument, StorageError, StorageUnavailable
from overt.storage.pubsub import SUBSCRIBER_QUEUE_MAX, PubSub

__all__ = [
    "COMMAND_TIMEOUT_S",
    "CONNECT_TIMEOUT_S",
    "HEARTBEAT_S",
    "PRESENCE_TTL_MAX_S",
    "RECONNECT_DELAY_MAX_S",
    "RECONNECT_DELAY_MIN_S",
    "SUBSCRIBE_TIMEOUT_S",
    "RedisPubSub",
    "RedisSubscription",
]

CONNECT_TIMEOUT_S: Final = 5.0
"""How long opening a connection to Redis may take."""

COMMAND_TIMEOUT_S: Final = 5.0
"""How long a command (publish, presence) waits for its reply."""

SUBSCRIBE_TIMEOUT_S: Final = 5.0
"""How long entering ``subscribe`` waits for Redis to confirm the subscription."""

HEARTBEAT_S: Final = 5.0
"""Quiet time on the pub/sub connection after which the reader pings; twice this without any
reply and the connection is taken for dead."""

RECONNECT_DELAY_MIN_S: Final = 0.05
"""First wait before reconnecting; doubles after each failed attempt."""

RECONNECT_DELAY_MAX_S: Final = 2.0
"""Longest wait between reconnection attempts."""

PRESENCE_TTL_MAX_S: Final = 24 * 3600.0
"""Longest presence TTL accepted (a typo in seconds vs milliseconds should not stick a day)."""

KEY_PREFIX: Final = "overt:presence:"
"""Prefix of the presence keys (one sorted set per device key)."""

_REDIS_FAILURES: Final = (RedisError, OSError)
_UNAVAILABLE: Final = (RedisConnectionError, RedisTimeoutError, BusyLoadingError, OSError)

_MARK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], tonumber(last[2]))
return 1
"""

_LIVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
"""


def _mapped(error: BaseException, what: str) -> StorageError:
    """The Overt error for a redis-py or socket error during ``what``; raise it ``from``."""
    name = type(error).__name__
    if isinstance(error, _UNAVAILABLE):
        return StorageUnavailable(f"{what}: Redis {name}; retry later")
    return StorageError(f"{what}: Redis {name}")


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisSubscription:
    """A subscription to one channel through a :class:`RedisPubSub` (a
    :class:`~overt.storage.pubsub.Subscription`)."""

    __slots__ = ("_channel", "_dropped", "_hub", "_interruptions", "_queue")

    def __init__(self, hub: RedisPubSub, channel: str, queue_max: int) -> None:
        self._hub = hub
        self._channel = channel
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue(queue_max)
        self._dropped = 0
        self._interruptions = 0

    @property
    def channel(self) -> str:
        return self._channel

    @property
    def dropped(self) -> int:
        """Messages lost because this subscriber fell behind."""
        return self._dropped

    @property
    def interruptions(self) -> int:
        """Times the node lost its Redis connection while this subscription was active;
        messages published meanwhile were not delivered."""
        return self._interruptions

    def _put(self, item: bytes | None) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            self._dropped += 1
        self._queue.put_nowait(item)

    def _interrupted(self) -> None:
        self._interruptions += 1

    def _end(self) -> None:
        self._put(None)

    async def get(self) -> bytes:
        """The next message, waiting for one if needed; ``StorageUnavailable`` once the
        :class:`RedisPubSub` is closed."""
        item = await self._queue.get()
        if item is None:
            self._queue.put_nowait(None)  # every later get fails the same way
            raise StorageUnavailable("pub/sub is closed")
        return item

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        return await self.get()

    async def __aenter__(self) -> Self:
        await self._hub._attach(self)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._hub._detach(self)


class RedisPubSub:
    """:class:`~overt.storage.pubsub.PubSub` across nodes through the Redis at ``url``
    (``redis://host:port/db``, ``rediss://`` for TLS), plus device presence."""

    def __init__(self, url: str, *, queue_max: int = SUBSCRIBER_QUEUE_MAX) -> None:
        if queue_max < 1:
            raise ConfigurationError("a subscription queue holds at least one message")
        try:
            # Commands: one immediate retry on a fresh connection (a pooled one may have died
            # with a Redis restart), then the error.
            self._commands: Redis = Redis.from_url(
                url,
                socket_connect_timeout=CONNECT_TIMEOUT_S,
                socket_timeout=COMMAND_TIMEOUT_S,
                retry=Retry(NoBackoff(), 1),
            )
            # The pub/sub connection: no retries of its own; the reader reconnects.
            self._listener: Redis = Redis.from_url(
                url,
                socket_connect_timeout=CONNECT_TIMEOUT_S,
                socket_timeout=COMMAND_TIMEOUT_S,
                retry=Retry(NoBackoff(), 0, supported_errors=()),
            )
        except ValueError as e:
            raise ConfigurationError(f"not a Redis URL: {e}") from e
        self._mark = self._commands.register_script(_MARK)
        self._live = self._commands.register_script(_LIVE)
        self._queue_max = queue_max
        self._channels: dict[str, set[RedisSubscription]] = {}
        self._confirmed: dict[str, asyncio.Event] = {}
        self._pending: dict[str, int] = {}
        self._connection: _RedisConnection | None = None
        self._lock = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None
        self._reconnects = 0
        self._closed = False

    # ------------------------------------------------------------------------- PubSub

    async def publish(self, channel: str, message: bytes) -> None:
        """Deliver ``message`` to the subscribers of ``channel`` on every node.

        ``StorageUnavailable`` if Redis cannot be reached (the message is then lost; what it
        announces should already be durable elsewhere).
        """
        self._check_open()
        if not isinstance(message, bytes):
            raise InvalidArgument("a pub/sub message must be bytes")
        try:
            await self._commands.publish(channel, message)
        except _REDIS_FAILURES as e:
            raise _mapped(e, "publish") from e

    def subscribe(self, channel: str) -> RedisSubscription:
        """A subscription to ``channel``, active once its ``async with`` body starts."""
        return RedisSubscription(self, channel, self._queue_max)

    def subscriber_count(self, channel: str) -> int:
        """How many subscriptions of this node are active on ``channel``."""
        return len(self._channels.get(channel, ()))

    @property
    def reconnects(self) -> int:
        """How many times this node's pub/sub connection was lost and made again."""
        return self._reconnects

    async def close(self) -> None:
        """Stop the reader, wake every subscriber with ``StorageUnavailable`` and close the
        connections. Idempotent."""
        if self._closed:
            return
        self._closed = True
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        for event in self._confirmed.values():
            event.set()
        for subscriptions in self._channels.values():
            for subscription in subscriptions:
                subscription._end()
        with contextlib.suppress(*_REDIS_FAILURES):
            await self._commands.aclose()
        with contextlib.suppress(*_REDIS_FAILURES):
            await self._listener.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # ------------------------------------------------------------------------- presence

    async def mark_connected(self, device_key: str, node_id: str, ttl: float) -> None:
        """Record for ``ttl`` seconds (in Redis's clock) that ``device_key`` is connected to
        ``node_id``; calling again refreshes (or shortens) it."""
        self._check_open()
        _check_presence(device_key, node_id)
        if (
            isinstance(ttl, bool)
            or not isinstance(ttl, int | float)
            or not 0 < ttl <= PRESENCE_TTL_MAX_S
        ):
            raise InvalidArgument(f"a presence TTL is in (0, {PRESENCE_TTL_MAX_S}] seconds")
        ttl_ms = max(1, round(ttl * 1000))
        try:
            await self._mark(keys=[KEY_PREFIX + device_key], args=[node_id, ttl_ms])
        except _REDIS_FAILURES as e:
            raise _mapped(e, "presence mark") from e

    async def mark_disconnected(self, device_key: str, node_id: str) -> None:
        """Forget that ``device_key`` is connected to ``node_id`` (before its TTL lapses)."""
        self._check_open()
        _check_presence(device_key, node_id)
        try:
            await self._commands.zrem(KEY_PREFIX + device_key, node_id)
        except _REDIS_FAILURES as e:
            raise _mapped(e, "presence unmark") from e

    async def connected_nodes(self, device_key: str) -> frozenset[str]:
        """The nodes ``device_key`` is marked connected to whose TTL has not lapsed."""
        self._check_open()
        _check_device_key(device_key)
        try:
            found: Any = await self._live(keys=[KEY_PREFIX + device_key])
        except _REDIS_FAILURES as e:
            raise _mapped(e, "presence read") from e
        return frozenset(_text(node) for node in found)

    # ------------------------------------------------------------------------- internals

    def _check_open(self) -> None:
        if self._closed:
            raise StorageUnavailable("pub/sub is closed")

    async def _attach(self, subscription: RedisSubscription) -> None:
        self._check_open()
        if self._reader is None or self._reader.done():
            self._reader = asyncio.create_task(self._read_forever(), name="overt-redis-pubsub")
        channel = subscription.channel
        async with self._lock:
            subscriptions = self._channels.get(channel)
            if subscriptions is None:
                subscriptions = self._channels[channel] = set()
                self._confirmed[channel] = asyncio.Event()
                if self._connection is not None:
                    await self._send(self._connection, "SUBSCRIBE", channel)
                # else: the reader subscribes to every channel when it (re)connects.
            subscriptions.add(subscription)
            confirmed = self._confirmed[channel]
        try:
            async with asyncio.timeout(SUBSCRIBE_TIMEOUT_S):
                await confirmed.wait()
            self._check_open()
        except TimeoutError as e:
            await self._detach(subscription)
            raise StorageUnavailable("subscribe: Redis did not confirm; retry later") from e
        except BaseException:
            await self._detach(subscription)
            raise

    async def _detach(self, subscription: RedisSubscription) -> None:
        channel = subscription.channel
        async with self._lock:
            subscriptions = self._channels.get(channel)
            if subscriptions is None or subscription not in subscriptions:
                return
            subscriptions.discard(subscription)
            if subscriptions:
                return
            del self._channels[channel]
            del self._confirmed[channel]
            if self._connection is not None and not self._closed:
                await self._send(self._connection, "UNSUBSCRIBE", channel)

    async def _send(self, connection: _RedisConnection, command: str, *channels: str) -> None:
        """Send SUBSCRIBE or UNSUBSCRIBE; its replies arrive through the reader. Called with
        the lock held. A failure is left to the reader, which will reconnect."""
        for channel in channels:
            self._pending[channel] = self._pending.get(channel, 0) + 1
        with contextlib.suppress(*_REDIS_FAILURES):
            await connection.execute_command(command, *channels)

    def _replied(self, channel: str) -> None:
        """A (un)subscribe reply for ``channel``: once the last one sent is answered, the
        channel's current subscription is in force."""
        left = self._pending.get(channel, 0) - 1
        if left > 0:
            self._pending[channel] = left
            return
        self._pending.pop(channel, None)
        if channel in self._channels:
            self._confirmed[channel].set()

    async def _read_forever(self) -> None:
        delay = RECONNECT_DELAY_MIN_S
        while not self._closed:
            connection = self._listener.pubsub()
            established = False
            try:
                async with self._lock:
                    await connection.execute_command("PING")
                    self._pending = {}
                    if self._channels:
                        await self._send(connection, "SUBSCRIBE", *self._channels)
                    self._connection = connection
                established = True
                delay = RECONNECT_DELAY_MIN_S
                await self._pump(connection)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: S110  (any failure: reconnect; the next attempt reports)
                pass
            finally:
                if self._connection is connection:
                    self._connection = None
                for event in self._confirmed.values():
                    event.clear()
                with contextlib.suppress(Exception):
                    await connection.aclose()  # type: ignore[no-untyped-call]
            if established and not self._closed:
                self._reconnects += 1
                for subscriptions in self._channels.values():
                    for subscription in subscriptions:
                        subscription._interrupted()
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_DELAY_MAX_S)

    async def _pump(self, connection: _RedisConnection) -> None:
        """Hand every message to the local subscribers until the connection fails."""
        loop = asyncio.get_running_loop()
        heard = loop.time()
        while True:
            message: dict[str, Any] | None = await connection.get_message(timeout=HEARTBEAT_S)
            now = loop.time()
            if message is None:
                if now - heard >= 2 * HEARTBEAT_S:
                    raise RedisConnectionError("Redis did not answer a ping")
                if now - heard >= HEARTBEAT_S:
                    async with self._lock:
                        await connection.execute_command("PING")
                continue
            heard = now
            kind = _text(message.get("type"))
            if kind == "message":
                data = message.get("data")
                subscriptions = self._channels.get(_text(message.get("channel")), ())
                if isinstance(data, bytes):
                    for subscription in tuple(subscriptions):
                        subscription._put(data)
            elif kind in ("subscribe", "unsubscribe"):
                self._replied(_text(message.get("channel")))


def _check_device_key(device_key: str) -> None:
    if not isinstance(device_key, str) or not device_key:
        raise InvalidArgument("a presence device key is a non-empty string")


def _check_presence(device_key: str, node_id: str) -> None:
    _check_device_key(device_key)
    if not isinstance(node_id, str) or not node_id:
        raise InvalidArgument("a node id is a non-empty string")


if TYPE_CHECKING:

    def _is_a_pubsub(hub: RedisPubSub) -> PubSub:
        return hub  # mypy checks that RedisPubSub satisfies the PubSub Protocol
