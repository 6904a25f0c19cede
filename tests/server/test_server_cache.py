"""The per-node account cache (``overt.server.cache``): what it answers from memory, when it
reads the store again, and that two nodes over one store never refuse from a stale record.

The cache's clock is a fake monotonic clock moved by hand; nothing here measures time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from server_kit import Env, Party, make_party, server_env
from test_server_messages import encrypt_for, fetch_bundles, send_body

from overt.protocol import direct_conversation_id
from overt.server.cache import DEVICE_CACHE_TTL_S, CachedAccountStore
from overt.storage import AccountRecord, AccountStore, DeviceAuth, open_memory
from overt.wire import Address


class Counting:
    """An AccountStore that counts the reads reaching it."""

    def __init__(self, inner: AccountStore) -> None:
        self.inner = inner
        self.reads = 0

    async def create(self, account: AccountRecord) -> None:
        await self.inner.create(account)

    async def get(self, account_id: bytes) -> AccountRecord | None:
        self.reads += 1
        return await self.inner.get(account_id)

    async def replace_device_list(self, account_id: bytes, **kwargs: Any) -> None:
        await self.inner.replace_device_list(account_id, **kwargs)

    async def device_auth_key(self, account_id: bytes, device: int) -> bytes | None:
        self.reads += 1
        return await self.inner.device_auth_key(account_id, device)

    async def list_devices(self, account_id: bytes) -> tuple[int, ...] | None:
        self.reads += 1
        return await self.inner.list_devices(account_id)


class Ticks:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def record(account: bytes, devices: Sequence[int], serial: int = 1) -> AccountRecord:
    return AccountRecord(
        account,
        b"I" * 32,
        b"list-%d" % serial,
        serial,
        tuple(DeviceAuth(d, bytes([d]) * 32) for d in devices),
    )


async def until(condition: Callable[[], bool]) -> None:
    """Let other tasks run until ``condition`` holds (a bounded number of turns)."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")


async def cached(**kwargs: Any) -> tuple[CachedAccountStore, Counting, Ticks]:
    storage = await open_memory()
    counting = Counting(storage.accounts)
    ticks = Ticks()
    return CachedAccountStore(counting, clock=ticks, **kwargs), counting, ticks


async def test_keys_and_device_sets_come_from_one_read_until_the_ttl_passes() -> None:
    cache, inner, ticks = await cached()
    await cache.create(record(b"alice", (1, 2)))
    assert await cache.device_auth_key(b"alice", 1) == b"\x01" * 32
    assert await cache.device_auth_key(b"alice", 2) == b"\x02" * 32
    assert await cache.list_devices(b"alice") == (1, 2)
    assert inner.reads == 1
    ticks.now += DEVICE_CACHE_TTL_S
    assert await cache.list_devices(b"alice") == (1, 2)
    assert inner.reads == 2


async def test_a_change_through_the_cache_is_seen_at_once() -> None:
    cache, _, _ = await cached()
    await cache.create(record(b"alice", (1, 2)))
    assert await cache.device_auth_key(b"alice", 2) is not None
    await cache.replace_device_list(
        b"alice", expected_serial=1, serial=2, device_list=b"list-2",
        devices=[DeviceAuth(1, b"\x01" * 32)],
    )  # fmt: skip
    assert await cache.device_auth_key(b"alice", 2) is None
    assert await cache.list_devices(b"alice") == (1,)


async def test_a_change_elsewhere_is_seen_after_the_ttl_and_a_new_device_at_once() -> None:
    cache, inner, ticks = await cached()
    await cache.create(record(b"alice", (1, 2)))
    assert await cache.list_devices(b"alice") == (1, 2)
    # Another node replaces the list: device 2 leaves, device 3 arrives.
    await inner.inner.replace_device_list(
        b"alice", expected_serial=1, serial=2, device_list=b"list-2",
        devices=[DeviceAuth(1, b"\x01" * 32), DeviceAuth(3, b"\x03" * 32)],
    )  # fmt: skip
    # A device the cached record lacks is looked up: never refused from the cache.
    assert await cache.device_auth_key(b"alice", 3) == b"\x03" * 32
    assert await cache.list_devices(b"alice") == (1, 3)  # that lookup refreshed it
    ticks.now += DEVICE_CACHE_TTL_S
    assert await cache.device_auth_key(b"alice", 2) is None


async def test_absent_accounts_are_not_cached_and_the_size_is_bounded() -> None:
    cache, inner, _ = await cached(max_accounts=2)
    assert await cache.list_devices(b"nobody") is None
    assert await cache.device_auth_key(b"nobody", 1) is None
    assert len(cache) == 0
    for name in (b"a", b"b", b"c"):
        await cache.create(record(name, (1,)))
        assert await cache.list_devices(name) == (1,)
    assert len(cache) == 2
    reads = inner.reads
    assert await cache.list_devices(b"c") == (1,)
    assert inner.reads == reads
    assert await cache.list_devices(b"a") == (1,)  # the oldest went first
    assert inner.reads == reads + 1


async def test_a_read_overtaken_by_an_invalidation_is_not_kept() -> None:
    class Slow(Counting):
        def __init__(self, inner: AccountStore) -> None:
            super().__init__(inner)
            self.gate = asyncio.Event()

        async def get(self, account_id: bytes) -> AccountRecord | None:
            self.reads += 1
            answer = await self.inner.get(account_id)
            await self.gate.wait()
            return answer

    storage = await open_memory()
    slow = Slow(storage.accounts)
    cache = CachedAccountStore(slow, clock=Ticks())
    await cache.create(record(b"alice", (1, 2)))
    reading = asyncio.ensure_future(cache.list_devices(b"alice"))
    await until(lambda: slow.reads > 0)  # the read has begun
    await cache.replace_device_list(
        b"alice", expected_serial=1, serial=2, device_list=b"list-2",
        devices=[DeviceAuth(1, b"\x01" * 32)],
    )  # fmt: skip
    slow.gate.set()
    assert await reading == (1, 2)  # answered with what it read...
    assert len(cache) == 0  # ...but not kept
    assert await cache.list_devices(b"alice") == (1,)


# ----------------------------------------------------------------------------- two nodes, one store


async def send(env: Env, sender: Party, to: list[Address], bundles: Any, text: bytes) -> Any:
    conversation = direct_conversation_id(sender.account, to[0].account)
    envelopes = encrypt_for(env, sender, to, text, bundles, conversation)
    return await env.call(sender, "POST", "/v1/messages", json_body=send_body(envelopes))


async def test_a_device_list_change_on_this_node_is_enforced_at_once() -> None:
    async with server_env() as env:
        alice, bob = make_party("alice", 1), make_party("bob", 2)
        await env.register(alice)
        await env.register(bob)
        bundles = await fetch_bundles(env, alice, bob)
        response = await send(env, alice, list(bundles), bundles, b"one")
        assert response.status_code == 200, response.text  # bob's devices now cached
        await env.link(bob, bob.sibling(2, 21))
        response = await send(env, alice, list(bundles), bundles, b"two")
        assert response.status_code == 409
        assert response.json()["accounts"][bob.b64]["devices"] == [1, 2]


async def test_another_node_never_refuses_from_a_stale_record() -> None:
    async with server_env() as a, server_env(a.storage) as b:
        alice, bob = make_party("alice", 1), make_party("bob", 2)
        await a.register(alice)
        await a.register(bob)
        bundles = await fetch_bundles(b, alice, bob)
        response = await send(b, alice, list(bundles), bundles, b"one")
        assert response.status_code == 200, response.text  # node b cached bob: [1]

        phone = bob.sibling(2, 21)
        await a.link(bob, phone)  # through node a; node b still holds bob: [1]
        fresh = await fetch_bundles(a, alice, bob)
        # A send to the new set is accepted on node b (checked again against the store) ...
        response = await send(b, alice, sorted(fresh), fresh, b"two")
        assert response.status_code == 200, response.text
        assert len(response.json()["ids"]) == 2
        # ... and so is a request of the new device (a key the record lacks is looked up).
        response = await b.call(phone, "GET", "/v1/devices/self/prekeys")
        assert response.status_code == 200, response.text


async def test_a_zero_ttl_reads_every_time() -> None:
    cache, inner, _ = await cached(ttl_s=0.0)
    await cache.create(record(b"alice", (1,)))
    for _ in range(3):
        assert await cache.device_auth_key(b"alice", 1) is not None
    assert inner.reads == 3


async def test_lookups_that_miss_together_share_one_read() -> None:
    cache, inner, _ = await cached()
    await cache.create(record(b"alice", (1, 2)))
    reads = inner.reads
    keys = await asyncio.gather(*(cache.device_auth_key(b"alice", d % 2 + 1) for d in range(20)))
    assert set(keys) == {b"\x01" * 32, b"\x02" * 32}
    assert inner.reads == reads + 1


async def test_a_lookup_after_an_invalidation_does_not_share_the_older_read() -> None:
    class Gated(Counting):
        def __init__(self, inner: AccountStore) -> None:
            super().__init__(inner)
            self.gate = asyncio.Event()

        async def get(self, account_id: bytes) -> AccountRecord | None:
            self.reads += 1
            answer = await self.inner.get(account_id)
            await self.gate.wait()
            return answer

    storage = await open_memory()
    gated = Gated(storage.accounts)
    cache = CachedAccountStore(gated, clock=Ticks())
    await cache.create(record(b"alice", (1, 2)))
    early = asyncio.ensure_future(cache.device_auth_key(b"alice", 2))
    await until(lambda: gated.reads > 0)  # the read has begun
    await cache.replace_device_list(
        b"alice", expected_serial=1, serial=2, device_list=b"list-2",
        devices=[DeviceAuth(1, b"\x01" * 32)],
    )  # fmt: skip
    late = asyncio.ensure_future(cache.device_auth_key(b"alice", 2))
    await asyncio.sleep(0)
    gated.gate.set()
    assert await early == b"\x02" * 32  # read before the change
    assert await late is None  # its own read, after it
    assert gated.reads == 2


async def test_a_waiter_that_gives_up_leaves_the_shared_read_to_the_others() -> None:
    cache, _, _ = await cached()
    await cache.create(record(b"alice", (1,)))
    first = asyncio.ensure_future(cache.device_auth_key(b"alice", 1))
    second = asyncio.ensure_future(cache.device_auth_key(b"alice", 1))
    await asyncio.sleep(0)
    first.cancel()
    assert await second == b"\x01" * 32
    assert first.cancelled()
