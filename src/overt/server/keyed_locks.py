"""One asyncio lock per key, for services that serialise work per account or subject.

The key directory serialises the updates of one account, the matching intake the evaluation
of one subject; both use :class:`KeyedLocks`, which keeps a lock only while somebody holds or
waits for it, so that the table never grows with the number of keys ever seen. The locks are
per process (per node): what must hold across nodes is the storage's job.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class KeyedLocks:
    """One asyncio lock per key, forgotten when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[bytes, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: bytes) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


__all__ = ["KeyedLocks"]
