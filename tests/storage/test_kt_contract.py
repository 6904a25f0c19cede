"""The KtStore contract, written once and run on every backend (see ``support.BACKENDS``).

The key directory's records are opaque to the store: a serial, a log index, an opening and a
device list per account. A backend that has no key-directory store yet (``Storage.kt`` is
``None``) is skipped here; the relay server refuses to start on it.
"""

from __future__ import annotations

import pytest

from overt.errors import LimitExceeded
from overt.storage import AlreadyExists, InvalidArgument, KtRecord, KtStore, Storage
from overt.storage.limits import DEVICE_LIST_MAX_LEN, INT64_MAX, KT_OPENING_MAX_LEN

from .support import Backend


def kt(storage: Storage) -> KtStore:
    if storage.kt is None:
        pytest.skip("this backend has no key-directory store yet")
    return storage.kt


def record(serial: int, index: int = 0, opening: bytes = b"o" * 32) -> KtRecord:
    return KtRecord(serial, index, opening, b"signed device list %d" % serial)


def test_latest_is_the_largest_serial(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        store = kt(s)
        assert await store.latest(b"alice") is None
        await store.add(b"alice", record(2, index=7))
        await store.add(b"alice", record(1, index=9))  # an older serial logged later
        await store.add(b"bob", record(5, index=8))
        assert await store.latest(b"alice") == record(2, index=7)
        assert await store.latest(b"bob") == record(5, index=8)
        await store.add(b"alice", record(INT64_MAX, index=INT64_MAX))
        assert await store.latest(b"alice") == record(INT64_MAX, index=INT64_MAX)
        assert await store.latest(b"carol") is None

    backend.run(body)


def test_records_are_written_once(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        store = kt(s)
        await store.add(b"alice", record(1, index=3, opening=b"first"))
        with pytest.raises(AlreadyExists):
            await store.add(b"alice", record(1, index=4, opening=b"second"))
        assert await store.latest(b"alice") == record(1, index=3, opening=b"first")

    backend.run(body)


def test_records_survive_reopening(backend: Backend) -> None:
    if not backend.durable:
        pytest.skip("not a durable backend")

    async def write(s: Storage) -> None:
        await kt(s).add(b"alice", record(3, index=11))

    async def read(s: Storage) -> None:
        assert await kt(s).latest(b"alice") == record(3, index=11)

    backend.run(write)
    backend.run(read)


@pytest.mark.parametrize(
    ("account", "bad", "error"),
    [
        (b"", record(1), InvalidArgument),
        (b"a" * 65, record(1), InvalidArgument),
        (b"alice", record(-1), InvalidArgument),
        (b"alice", record(INT64_MAX + 1), InvalidArgument),
        (b"alice", KtRecord(1, -1, b"o", b"d"), InvalidArgument),
        (b"alice", KtRecord(1, True, b"o", b"d"), InvalidArgument),  # type: ignore[arg-type]
        (b"alice", KtRecord(1, 0, b"", b"d"), InvalidArgument),
        (b"alice", KtRecord(1, 0, b"o", b""), InvalidArgument),
        (b"alice", KtRecord(1, 0, b"o" * (KT_OPENING_MAX_LEN + 1), b"d"), LimitExceeded),
        (b"alice", KtRecord(1, 0, b"o", b"d" * (DEVICE_LIST_MAX_LEN + 1)), LimitExceeded),
    ],
)
def test_bounds(backend: Backend, account: bytes, bad: KtRecord, error: type[Exception]) -> None:
    async def body(s: Storage) -> None:
        store = kt(s)
        with pytest.raises(error):
            await store.add(account, bad)
        with pytest.raises(InvalidArgument):
            await store.latest(b"")
        assert await store.latest(b"alice") is None

    backend.run(body)


def test_repr_hides_the_opening() -> None:
    r = KtRecord(1, 2, b"secret-opening", b"device-list")
    assert "secret-opening" not in repr(r) and "device-list" not in repr(r)
