"""Publish/subscribe for wake-ups: "mail has arrived for this device, fetch it".

The server publishes on a channel per recipient device after an enqueue commits, and each
WebSocket connection subscribes to its device's channel. Messages are *hints*, not data: the
durable copy is in the :class:`~overt.storage.interfaces.MailboxStore`, so delivery here is
at most once and best effort. A subscriber that falls :data:`SUBSCRIBER_QUEUE_MAX` messages
behind loses the oldest ones (counted in ``dropped``); it should then simply fetch its mailbox.
To miss nothing, subscribe first, then fetch, then wait for wake-ups.

:class:`InProcessPubSub` serves one process on one event loop. A Redis implementation of the
same :class:`PubSub` Protocol lets several server nodes share wake-ups.

This module knows nothing of mailboxes, envelopes or the protocol: channels are strings and
messages are opaque bytes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Final, Protocol, Self

from overt.errors import ConfigurationError

SUBSCRIBER_QUEUE_MAX: Final = 256
"""Undelivered messages kept per subscription before the oldest is dropped."""


class Subscription(Protocol):
    """An active subscription to one channel: ``await get()`` or ``async for``."""

    @property
    def channel(self) -> str: ...

    @property
    def dropped(self) -> int:
        """Messages lost because this subscriber fell behind."""
        ...

    async def get(self) -> bytes:
        """The next message, waiting for one if needed."""
        ...

    def __aiter__(self) -> AsyncIterator[bytes]: ...


class PubSub(Protocol):
    """Channels of opaque messages. ``subscribe`` is used as ``async with``: the subscription is
    active once the ``async with`` body starts and is removed when it ends."""

    async def publish(self, channel: str, message: bytes) -> None:
        """Deliver ``message`` to every current subscriber of ``channel`` (if any)."""
        ...

    def subscribe(self, channel: str) -> AbstractAsyncContextManager[Subscription]: ...


class _InProcessSubscription:
    __slots__ = ("_channel", "_dropped", "_hub", "_queue")

    def __init__(self, hub: InProcessPubSub, channel: str, queue_max: int) -> None:
        self._hub = hub
        self._channel = channel
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(queue_max)
        self._dropped = 0

    @property
    def channel(self) -> str:
        return self._channel

    @property
    def dropped(self) -> int:
        return self._dropped

    def _deliver(self, message: bytes) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            self._dropped += 1
        self._queue.put_nowait(message)

    async def get(self) -> bytes:
        return await self._queue.get()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        return await self._queue.get()

    async def __aenter__(self) -> Self:
        self._hub._attach(self)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._hub._detach(self)


class InProcessPubSub:
    """:class:`PubSub` within one process and one event loop."""

    def __init__(self, queue_max: int = SUBSCRIBER_QUEUE_MAX) -> None:
        if queue_max < 1:
            raise ConfigurationError("a subscription queue holds at least one message")
        self._queue_max = queue_max
        self._channels: dict[str, set[_InProcessSubscription]] = {}

    async def publish(self, channel: str, message: bytes) -> None:
        for subscription in tuple(self._channels.get(channel, ())):
            subscription._deliver(message)

    def subscribe(self, channel: str) -> AbstractAsyncContextManager[Subscription]:
        return _InProcessSubscription(self, channel, self._queue_max)

    def subscriber_count(self, channel: str) -> int:
        """How many subscriptions are active on ``channel`` (for tests and metrics)."""
        return len(self._channels.get(channel, ()))

    def _attach(self, subscription: _InProcessSubscription) -> None:
        self._channels.setdefault(subscription.channel, set()).add(subscription)

    def _detach(self, subscription: _InProcessSubscription) -> None:
        subscribers = self._channels.get(subscription.channel)
        if subscribers is not None:
            subscribers.discard(subscription)
            if not subscribers:
                del self._channels[subscription.channel]
