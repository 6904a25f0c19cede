"""The time seam: the client reads time and sleeps only through a :class:`Clock` it is given.

Production passes :class:`SystemClock`; tests pass a fake whose ``sleep`` advances its own
time, so that backoff and polling run without real waiting and without timing assertions.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """Wall-clock milliseconds and an awaitable pause."""

    def now_ms(self) -> int:
        """Milliseconds since the Unix epoch."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Pause the calling task for ``seconds``."""
        ...


class SystemClock:
    """The real clock."""

    __slots__ = ()

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def __repr__(self) -> str:
        return "SystemClock()"
