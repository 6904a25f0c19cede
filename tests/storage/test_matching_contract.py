"""The matching store's contract (overt.storage.matching), run on every backend: list versions
published once and read back, opened images kept per subject under a bound, queued marks."""

from __future__ import annotations

import asyncio

import pytest

from overt.errors import LimitExceeded
from overt.storage import AlreadyExists, InvalidArgument, Storage
from overt.storage.matching import OPENED_PER_SUBJECT_MAX, ListVersion, MatchingStore

from .support import Backend


def matching(s: Storage) -> MatchingStore:
    if s.matching is None:
        pytest.skip("this backend has no matching store")
    return s.matching


def version(n: int, *, commitment: bytes | None = None, delta: bytes | None = None) -> ListVersion:
    return ListVersion(
        n, commitment or bytes([n]) * 32, b"table %d" % n, b"h" * 32 * n, 10 + n, 1000 + n, delta
    )


def test_versions_are_published_once_and_read_back(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        store = matching(s)
        assert await store.latest() is None
        assert await store.commitments() == ()
        await store.publish(version(1))
        await store.publish(version(2, delta=b"delta 2"))
        latest = await store.latest()
        assert latest == version(2, delta=b"delta 2")
        assert await store.version(1) == version(1)
        assert await store.version(3) is None
        assert await store.commitments() == ((1, bytes([1]) * 32), (2, bytes([2]) * 32))
        with pytest.raises(AlreadyExists):
            await store.publish(version(2, commitment=b"x" * 32))
        with pytest.raises(AlreadyExists):  # the same commitment under another number
            await store.publish(version(3, commitment=bytes([1]) * 32))
        assert await store.version(3) is None

    backend.run(body)


def test_opened_images_are_kept_per_subject_under_the_bound(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        store = matching(s)
        a, b = b"alice", b"bob"  # the relay's subjects are account ids
        assert await store.add_opened(a, b"1" * 16, b"r1", 2)
        assert not await store.add_opened(a, b"1" * 16, b"other", 2)  # same image id
        assert await store.add_opened(b, b"1" * 16, b"rb", 2)  # another subject
        assert await store.add_opened(a, b"2" * 16, b"r2", 2)
        assert not await store.add_opened(a, b"3" * 16, b"r3", 2)  # the bound
        held = await store.opened(a)
        assert [(r.image_id, r.record, r.revealed) for r in held] == [
            (b"1" * 16, b"r1", None),
            (b"2" * 16, b"r2", None),
        ]
        await store.reveal(a, {b"2" * 16: b"payload", b"9" * 16: b"ignored"})
        await store.reveal(a, {b"2" * 16: b"not kept"})  # a revealed payload stays
        assert [r.revealed for r in await store.opened(a)] == [None, b"payload"]
        assert [r.revealed for r in await store.opened(b)] == [None]
        assert await store.opened(b"nobody") == ()
        assert await store.opened(b"alice\x00\x00\x00\x01") == ()  # a subject is exact bytes

    backend.run(body)


def test_concurrent_additions_respect_the_bound(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        store = matching(s)
        results = await asyncio.gather(
            *(store.add_opened(b"s", bytes([n]) * 16, b"r", 3) for n in range(8))
        )
        assert sum(results) == 3
        assert len(await store.opened(b"s")) == 3

    backend.run(body)


def test_bad_arguments_are_refused(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        store = matching(s)
        with pytest.raises(InvalidArgument):
            await store.add_opened(b"s", b"short", b"r", 1)
        with pytest.raises(InvalidArgument):
            await store.add_opened(b"", b"1" * 16, b"r", 1)
        with pytest.raises(InvalidArgument):
            await store.add_opened(b"s", b"1" * 16, b"", 1)
        with pytest.raises(LimitExceeded):
            await store.add_opened(b"s", b"1" * 16, b"r", OPENED_PER_SUBJECT_MAX + 1)
        with pytest.raises(InvalidArgument):
            await store.publish(version(1, commitment=b"short"))
        with pytest.raises(InvalidArgument):
            await store.version(-1)
        assert await store.opened(b"s") == ()

    backend.run(body)
