"""One asyncio lock per key (:class:`overt.server.keyed_locks.KeyedLocks`): holders of one key
go one at a time, other keys do not wait, and nothing is kept once nobody holds or waits."""

from __future__ import annotations

import asyncio

import pytest

from overt.server.keyed_locks import KeyedLocks


async def _spin(rounds: int = 20) -> None:
    """Let every ready task run (no clock involved)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


async def test_holders_of_one_key_go_one_at_a_time_and_other_keys_do_not_wait() -> None:
    locks = KeyedLocks()
    order: list[str] = []
    release = asyncio.Event()

    async def first() -> None:
        async with locks.hold(b"alice"):
            order.append("first in")
            await release.wait()
            order.append("first out")

    async def second() -> None:
        async with locks.hold(b"alice"):
            order.append("second in")

    async def other() -> None:
        async with locks.hold(b"bob"):
            order.append("other in")

    tasks = [asyncio.create_task(first())]
    await _spin()
    tasks += [asyncio.create_task(second()), asyncio.create_task(other())]
    await _spin()
    assert order == ["first in", "other in"]  # the second holder of b"alice" waits
    release.set()
    await asyncio.gather(*tasks)
    assert order == ["first in", "other in", "first out", "second in"]
    assert locks._locks == {}  # forgotten once nobody holds or waits


async def test_a_failing_holder_releases_and_is_forgotten() -> None:
    locks = KeyedLocks()
    with pytest.raises(RuntimeError):
        async with locks.hold(b"alice"):
            raise RuntimeError("the work failed")
    assert locks._locks == {}
    async with locks.hold(b"alice"):  # not left locked
        pass
