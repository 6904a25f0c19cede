"""The storage contract, written once and run on every backend (see ``support.BACKENDS``).

Each test states one promise of :mod:`overt.storage.interfaces`; a backend is correct when all of
them hold. Conventions checked throughout: ``None`` means absent and an exception means failure;
a refused write leaves nothing behind.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from overt.errors import LimitExceeded, OvertError, ProtocolViolation
from overt.storage import (
    AccountRecord,
    AlreadyExists,
    DeviceAuth,
    InvalidArgument,
    NewMail,
    NotFound,
    OneTimeKind,
    PrekeyRecord,
    StaleSerial,
    Storage,
    StorageConflict,
    StorageLimits,
    StorageUnavailable,
)
from overt.storage.limits import ACK_BATCH_MAX, ENQUEUE_BATCH_MAX, ENVELOPE_MAX_LEN, FETCH_LIMIT_MAX

from .support import Backend, account, mail, tag

X = OneTimeKind.X25519
KEM = OneTimeKind.ML_KEM_768
BLOB_ID = bytes(range(16))
BLOB_ID_32 = bytes(range(32))


def prekeys(*ids: int, prefix: bytes = b"pk") -> list[PrekeyRecord]:
    return [PrekeyRecord(i, prefix + i.to_bytes(4, "big")) for i in ids]


# ============================================================================= accounts


def test_account_create_then_get_returns_it_with_devices_sorted(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        created = account(devices=(7, 2, 5))
        await s.accounts.create(created)
        got = await s.accounts.get(b"alice")
        assert got is not None
        assert got.account_id == b"alice"
        assert got.identity_key == created.identity_key
        assert got.device_list == created.device_list
        assert got.serial == 1
        assert [d.device for d in got.devices] == [2, 5, 7]
        assert await s.accounts.list_devices(b"alice") == (2, 5, 7)
        assert await s.accounts.device_auth_key(b"alice", 5) == bytes([5]) * 32

    backend.run(body)


def test_account_lookups_of_absent_things_return_none(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        assert await s.accounts.get(b"nobody") is None
        assert await s.accounts.list_devices(b"nobody") is None
        assert await s.accounts.device_auth_key(b"nobody", 1) is None
        await s.accounts.create(account())
        assert await s.accounts.device_auth_key(b"alice", 2) is None

    backend.run(body)


def test_account_with_no_devices_lists_an_empty_tuple(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        await s.accounts.create(account(devices=()))
        assert await s.accounts.list_devices(b"alice") == ()

    backend.run(body)


def test_creating_an_existing_account_is_a_conflict_and_changes_nothing(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        await s.accounts.create(account())
        with pytest.raises(AlreadyExists) as caught:
            await s.accounts.create(account(devices=(9,), serial=5))
        assert isinstance(caught.value, StorageConflict)
        assert isinstance(caught.value, ProtocolViolation)
        assert caught.value.status_hint == 409
        got = await s.accounts.get(b"alice")
        assert got is not None
        assert got.serial == 1
        assert await s.accounts.list_devices(b"alice") == (1,)

    backend.run(body)


def test_replace_device_list_swaps_list_serial_and_auth_keys(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        await s.accounts.create(account(devices=(1, 2)))
        await s.accounts.replace_device_list(
            b"alice",
            expected_serial=1,
            serial=2,
            device_list=b"list-2",
            devices=[DeviceAuth(3, b"k3"), DeviceAuth(1, b"k1-new")],
        )
        got = await s.accounts.get(b"alice")
        assert got is not None
        assert (got.serial, got.device_list) == (2, b"list-2")
        assert got.identity_key == b"I" * 32
        assert got.devices == (DeviceAuth(1, b"k1-new"), DeviceAuth(3, b"k3"))
        assert await s.accounts.device_auth_key(b"alice", 2) is None
        assert await s.accounts.device_auth_key(b"alice", 1) == b"k1-new"

    backend.run(body)


@pytest.mark.parametrize(
    ("expected_serial", "serial"),
    [(0, 2), (2, 3), (1, 1), (1, 0)],
    ids=["expected-too-old", "expected-too-new", "serial-not-advanced", "serial-goes-back"],
)
def test_stale_or_non_advancing_serial_is_refused_and_changes_nothing(
    backend: Backend, expected_serial: int, serial: int
) -> None:
    async def body(s: Storage) -> None:
        before = account(devices=(1, 2))
        await s.accounts.create(before)
        with pytest.raises(StaleSerial) as caught:
            await s.accounts.replace_device_list(
                b"alice",
                expected_serial=expected_serial,
                serial=serial,
                device_list=b"other",
                devices=[DeviceAuth(3, b"k3")],
            )
        assert caught.value.status_hint == 409
        assert await s.accounts.get(b"alice") == before

    backend.run(body)


def test_replace_device_list_of_unknown_account_is_not_found(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        with pytest.raises(NotFound) as caught:
            await s.accounts.replace_device_list(
                b"nobody", expected_serial=1, serial=2, device_list=b"l", devices=[]
            )
        assert caught.value.status_hint == 404
        assert await s.accounts.get(b"nobody") is None

    backend.run(body)


def test_concurrent_device_list_swaps_from_one_serial_have_exactly_one_winner(
    backend: Backend,
) -> None:
    async def body(s: Storage) -> None:
        await s.accounts.create(account())
        results = await asyncio.gather(
            *(
                s.accounts.replace_device_list(
                    b"alice",
                    expected_serial=1,
                    serial=2,
                    device_list=b"list-from-%d" % i,
                    devices=[DeviceAuth(i, b"k")],
                )
                for i in range(10)
            ),
            return_exceptions=True,
        )
        winners = [i for i, r in enumerate(results) if r is None]
        assert len(winners) == 1
        assert all(isinstance(r, StaleSerial) for r in results if r is not None)
        got = await s.accounts.get(b"alice")
        assert got is not None
        assert got.device_list == b"list-from-%d" % winners[0]
        assert await s.accounts.list_devices(b"alice") == (winners[0],)

    backend.run(body)


def test_account_arguments_outside_the_contract_are_refused(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        with pytest.raises(LimitExceeded):
            await s.accounts.create(account(devices=tuple(range(65))))
        with pytest.raises(InvalidArgument):
            await s.accounts.create(account(account_id=b""))
        with pytest.raises(InvalidArgument):
            await s.accounts.create(account(account_id=b"x" * 65))
        with pytest.raises(InvalidArgument):
            await s.accounts.create(account(devices=(1 << 32,)))
        with pytest.raises(InvalidArgument):
            await s.accounts.create(account(serial=-1))
        repeated = AccountRecord(
            b"alice", b"k", b"l", 1, (DeviceAuth(1, b"a"), DeviceAuth(1, b"b"))
        )
        with pytest.raises(InvalidArgument):
            await s.accounts.create(repeated)
        assert await s.accounts.get(b"alice") is None
        with pytest.raises(InvalidArgument):
            await s.accounts.device_auth_key(b"alice", -1)

    backend.run(body)


# ============================================================================= prekeys


def test_signed_and_last_resort_prekeys_are_set_replaced_and_kept_apart(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        assert await s.prekeys.get_signed_prekey(b"alice", 1) is None
        assert await s.prekeys.get_last_resort_kem(b"alice", 1) is None
        await s.prekeys.set_signed_prekey(b"alice", 1, PrekeyRecord(10, b"spk-10"))
        await s.prekeys.set_last_resort_kem(b"alice", 1, PrekeyRecord(20, b"kem-20"))
        await s.prekeys.set_signed_prekey(b"alice", 2, PrekeyRecord(30, b"spk-30"))
        assert await s.prekeys.get_signed_prekey(b"alice", 1) == PrekeyRecord(10, b"spk-10")
        assert await s.prekeys.get_last_resort_kem(b"alice", 1) == PrekeyRecord(20, b"kem-20")
        assert await s.prekeys.get_last_resort_kem(b"alice", 2) is None
        await s.prekeys.set_signed_prekey(b"alice", 1, PrekeyRecord(11, b"spk-11"))
        assert await s.prekeys.get_signed_prekey(b"alice", 1) == PrekeyRecord(11, b"spk-11")
        assert await s.prekeys.get_signed_prekey(b"alice", 2) == PrekeyRecord(30, b"spk-30")
        assert await s.prekeys.get_last_resort_kem(b"alice", 1) == PrekeyRecord(20, b"kem-20")

    backend.run(body)


def test_one_time_prekeys_are_taken_lowest_id_first_per_kind_until_empty(
    backend: Backend,
) -> None:
    async def body(s: Storage) -> None:
        assert await s.prekeys.take_one_time(b"alice", 1, X) is None
        await s.prekeys.add_one_time(b"alice", 1, X, prekeys(5, 3, 9, prefix=b"x"))
        await s.prekeys.add_one_time(b"alice", 1, KEM, prekeys(3, 4, prefix=b"kem"))
        await s.prekeys.add_one_time(b"alice", 1, X, prekeys(1, prefix=b"x"))
        assert await s.prekeys.count_one_time(b"alice", 1, X) == 4
        assert await s.prekeys.count_one_time(b"alice", 1, KEM) == 2
        assert await s.prekeys.count_one_time(b"alice", 2, X) == 0
        taken = [await s.prekeys.take_one_time(b"alice", 1, X) for _ in range(5)]
        assert taken == [*prekeys(1, 3, 5, 9, prefix=b"x"), None]
        assert await s.prekeys.count_one_time(b"alice", 1, X) == 0
        assert await s.prekeys.count_one_time(b"alice", 1, KEM) == 2
        assert await s.prekeys.take_one_time(b"alice", 1, KEM) == prekeys(3, prefix=b"kem")[0]
        assert await s.prekeys.take_one_time(b"alice", 2, KEM) is None

    backend.run(body)


def test_a_taken_id_may_be_added_again(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        await s.prekeys.add_one_time(b"alice", 1, X, prekeys(1))
        assert await s.prekeys.take_one_time(b"alice", 1, X) is not None
        await s.prekeys.add_one_time(b"alice", 1, X, prekeys(1))
        assert await s.prekeys.count_one_time(b"alice", 1, X) == 1

    backend.run(body)


@pytest.mark.parametrize("batch", [[1, 7], [7, 8, 7]], ids=["id-in-pool", "id-repeats-in-batch"])
def test_repeated_one_time_prekey_id_is_a_conflict_and_stores_nothing(
    backend: Backend, batch: list[int]
) -> None:
    async def body(s: Storage) -> None:
        await s.prekeys.add_one_time(b"alice", 1, X, prekeys(1, 2))
        with pytest.raises(AlreadyExists):
            await s.prekeys.add_one_time(b"alice", 1, X, prekeys(*batch))
        assert await s.prekeys.count_one_time(b"alice", 1, X) == 2
        # The same ids are fine in the other kind's pool and for another device.
        await s.prekeys.add_one_time(b"alice", 1, KEM, prekeys(1, 2))
        await s.prekeys.add_one_time(b"alice", 2, X, prekeys(1, 2))

    backend.run(body)


def test_one_time_pool_bound_refuses_the_whole_batch(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        await s.prekeys.add_one_time(b"alice", 1, X, prekeys(*range(3)))
        with pytest.raises(LimitExceeded) as caught:
            await s.prekeys.add_one_time(b"alice", 1, X, prekeys(*range(10, 13)))
        assert caught.value.status_hint == 413
        assert await s.prekeys.count_one_time(b"alice", 1, X) == 3
        await s.prekeys.add_one_time(b"alice", 1, X, prekeys(10, 11))
        assert await s.prekeys.count_one_time(b"alice", 1, X) == 5
        await s.prekeys.add_one_time(b"alice", 1, KEM, prekeys(*range(5)))

    backend.run(body, StorageLimits(one_time_prekeys=5))


def test_concurrent_takes_hand_out_each_one_time_prekey_exactly_once(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        await s.prekeys.add_one_time(b"alice", 1, KEM, prekeys(*range(100, 120)))
        results = await asyncio.gather(
            *(s.prekeys.take_one_time(b"alice", 1, KEM) for _ in range(50))
        )
        got = [r for r in results if r is not None]
        assert len(got) == 20
        assert len({r.id for r in got}) == 20
        assert {r.id for r in got} == set(range(100, 120))
        assert results.count(None) == 30
        assert await s.prekeys.count_one_time(b"alice", 1, KEM) == 0

    backend.run(body)


def test_prekey_arguments_outside_the_contract_are_refused(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        with pytest.raises(InvalidArgument):
            await s.prekeys.set_signed_prekey(b"alice", 1, PrekeyRecord(1 << 32, b"k"))
        with pytest.raises(LimitExceeded):
            await s.prekeys.set_last_resort_kem(b"alice", 1, PrekeyRecord(1, b"k" * 4097))
        with pytest.raises(InvalidArgument):
            await s.prekeys.take_one_time(b"alice", 1, "x25519")  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument):
            await s.prekeys.add_one_time(b"alice", 1, X, [PrekeyRecord(-1, b"k")])
        assert await s.prekeys.get_signed_prekey(b"alice", 1) is None
        assert await s.prekeys.count_one_time(b"alice", 1, X) == 0

    backend.run(body)


# ============================================================================= mailboxes


def test_enqueue_assigns_increasing_ids_and_stores_every_field(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        batch = [
            mail(to=(b"bob", 1), envelope=b"e1"),
            mail(to=(b"bob", 2), envelope=b"e2"),
            mail(to=(b"alice", 2), sender=(b"alice", 1), envelope=b"e3"),
        ]
        ids = await s.mailboxes.enqueue(batch, 1_700_000_000_000, tag)
        assert len(ids) == 3
        assert list(ids) == sorted(set(ids))
        later = await s.mailboxes.enqueue([mail()], 1_700_000_000_001, tag)
        assert later[0] > ids[-1]
        (m,) = await s.mailboxes.fetch(b"bob", 2, 0, 10)
        assert (m.id, m.recipient_account, m.recipient_device) == (ids[1], b"bob", 2)
        assert (m.sender_account, m.sender_device) == (b"alice", 1)
        assert m.server_time == 1_700_000_000_000
        assert m.envelope == b"e2"
        assert m.reporting_tag == tag(ids[1], batch[1])
        (own,) = await s.mailboxes.fetch(b"alice", 2, 0, 10)
        assert own.envelope == b"e3"
        assert await s.mailboxes.depth(b"bob", 1) == 2
        assert await s.mailboxes.depth(b"alice", 1) == 0

    backend.run(body)


def test_empty_enqueue_stores_nothing(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        assert await s.mailboxes.enqueue([], 1, tag) == ()
        assert await s.mailboxes.fetch(b"bob", 1, 0, 10) == ()

    backend.run(body)


def test_fetch_returns_pending_mail_in_id_order_in_pages(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        for i in range(7):
            await s.mailboxes.enqueue([mail(envelope=b"m%d" % i)], i, tag)
        pages: list[list[bytes]] = []
        after = 0
        while page := await s.mailboxes.fetch(b"bob", 1, after, 3):
            pages.append([m.envelope for m in page])
            assert [m.id for m in page] == sorted(m.id for m in page)
            assert all(m.id > after for m in page)
            after = page[-1].id
        assert pages == [[b"m0", b"m1", b"m2"], [b"m3", b"m4", b"m5"], [b"m6"]]
        # Fetching does not consume: a fresh fetch sees everything again.
        assert len(await s.mailboxes.fetch(b"bob", 1, 0, FETCH_LIMIT_MAX)) == 7
        assert await s.mailboxes.fetch(b"bob", 1, after, 3) == ()

    backend.run(body)


def test_a_device_fetches_only_its_own_mail(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        await s.mailboxes.enqueue(
            [mail(to=(b"bob", 1), envelope=b"one"), mail(to=(b"bob", 2), envelope=b"two")],
            0,
            tag,
        )
        assert [m.envelope for m in await s.mailboxes.fetch(b"bob", 1, 0, 10)] == [b"one"]
        assert [m.envelope for m in await s.mailboxes.fetch(b"bob", 2, 0, 10)] == [b"two"]
        assert await s.mailboxes.fetch(b"bobby", 1, 0, 10) == ()

    backend.run(body)


def test_ack_removes_is_idempotent_and_ignores_unknown_and_foreign_ids(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        ids = await s.mailboxes.enqueue(
            [mail(envelope=b"a"), mail(envelope=b"b"), mail(to=(b"carol", 1))], 0, tag
        )
        assert await s.mailboxes.ack(b"bob", 1, [ids[0]]) == 1
        assert await s.mailboxes.ack(b"bob", 1, [ids[0]]) == 0
        assert await s.mailboxes.ack(b"bob", 1, [ids[2], 999_999]) == 0  # carol's, unknown
        assert await s.mailboxes.ack(b"bob", 1, []) == 0
        assert [m.envelope for m in await s.mailboxes.fetch(b"bob", 1, 0, 10)] == [b"b"]
        assert await s.mailboxes.depth(b"carol", 1) == 1
        assert await s.mailboxes.ack(b"bob", 1, {ids[1], ids[0]}) == 1
        assert await s.mailboxes.depth(b"bob", 1) == 0

    backend.run(body)


def test_server_ids_are_never_reused_after_the_newest_is_acknowledged(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        (first,) = await s.mailboxes.enqueue([mail()], 0, tag)
        await s.mailboxes.ack(b"bob", 1, [first])
        (second,) = await s.mailboxes.enqueue([mail()], 0, tag)
        assert second > first

    backend.run(body)


def test_full_mailbox_refuses_the_whole_send_and_stores_nothing(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        await s.mailboxes.enqueue([mail(to=(b"bob", 1))] * 2, 0, tag)
        fan_out = [mail(to=(b"carol", 1)), mail(to=(b"bob", 1)), mail(to=(b"bob", 1))]
        with pytest.raises(LimitExceeded) as caught:
            await s.mailboxes.enqueue(fan_out, 0, tag)
        assert caught.value.status_hint == 413
        assert await s.mailboxes.depth(b"carol", 1) == 0
        assert await s.mailboxes.depth(b"bob", 1) == 2
        # Exactly at the bound is fine.
        await s.mailboxes.enqueue([mail(to=(b"bob", 1)), mail(to=(b"carol", 1))], 0, tag)
        assert await s.mailboxes.depth(b"bob", 1) == 3
        with pytest.raises(LimitExceeded):
            await s.mailboxes.enqueue([mail(to=(b"bob", 1))], 0, tag)
        # Acknowledging makes room again.
        (oldest, *_) = await s.mailboxes.fetch(b"bob", 1, 0, 1)
        await s.mailboxes.ack(b"bob", 1, [oldest.id])
        await s.mailboxes.enqueue([mail(to=(b"bob", 1))], 0, tag)

    backend.run(body, StorageLimits(mailbox_depth=3))


def test_multi_device_enqueue_is_all_or_nothing(backend: Backend) -> None:
    class Boom(Exception):
        pass

    def failing_tag(server_id: int, item: NewMail) -> bytes:
        if item.recipient_device == 3:
            raise Boom
        return tag(server_id, item)

    async def body(s: Storage) -> None:
        (before,) = await s.mailboxes.enqueue([mail(to=(b"bob", 9))], 0, tag)
        fan_out = [mail(to=(b"bob", d)) for d in (1, 2, 3, 4)]
        with pytest.raises(Boom):
            await s.mailboxes.enqueue(fan_out, 0, failing_tag)
        for d in (1, 2, 3, 4):
            assert await s.mailboxes.depth(b"bob", d) == 0
        ids = await s.mailboxes.enqueue(fan_out, 0, tag)
        assert min(ids) > before
        for d in (1, 2, 3, 4):
            assert await s.mailboxes.depth(b"bob", d) == 1

    backend.run(body)


def test_concurrent_enqueues_get_unique_ids_and_fetch_sees_them_in_id_order(
    backend: Backend,
) -> None:
    async def body(s: Storage) -> None:
        sends = [
            s.mailboxes.enqueue(
                [mail(to=(b"bob", 1), envelope=b"%d" % i), mail(to=(b"bob", 2))], i, tag
            )
            for i in range(40)
        ]
        results = await asyncio.gather(*sends)
        every_id = [i for ids in results for i in ids]
        assert len(set(every_id)) == 80
        fetched = await s.mailboxes.fetch(b"bob", 1, 0, 100)
        assert [m.id for m in fetched] == sorted(ids[0] for ids in results)
        by_id = {ids[0]: b"%d" % i for i, ids in enumerate(results)}
        assert all(m.envelope == by_id[m.id] for m in fetched)

    backend.run(body)


def test_mailbox_arguments_outside_the_contract_are_refused(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        with pytest.raises(LimitExceeded):
            await s.mailboxes.enqueue([mail(envelope=b"x" * (ENVELOPE_MAX_LEN + 1))], 0, tag)
        with pytest.raises(LimitExceeded):
            await s.mailboxes.enqueue([mail()] * (ENQUEUE_BATCH_MAX + 1), 0, tag)
        with pytest.raises(InvalidArgument):
            await s.mailboxes.enqueue([mail()], -1, tag)
        with pytest.raises(InvalidArgument):
            await s.mailboxes.enqueue([mail()], 0, lambda i, m: "not bytes")  # type: ignore[arg-type,return-value]
        assert await s.mailboxes.depth(b"bob", 1) == 0
        for bad_limit in (0, FETCH_LIMIT_MAX + 1):
            with pytest.raises(InvalidArgument):
                await s.mailboxes.fetch(b"bob", 1, 0, bad_limit)
        with pytest.raises(InvalidArgument):
            await s.mailboxes.fetch(b"bob", 1, -1, 10)
        with pytest.raises(LimitExceeded):
            await s.mailboxes.ack(b"bob", 1, list(range(ACK_BATCH_MAX + 1)))

    backend.run(body)


# ============================================================================= blobs


def test_blob_put_get_delete(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        assert await s.blobs.get(BLOB_ID) is None
        assert await s.blobs.delete(BLOB_ID) is False
        await s.blobs.put(BLOB_ID, b"encrypted attachment")
        await s.blobs.put(BLOB_ID_32, b"")
        assert await s.blobs.get(BLOB_ID) == b"encrypted attachment"
        assert await s.blobs.get(BLOB_ID_32) == b""
        assert await s.blobs.delete(BLOB_ID) is True
        assert await s.blobs.get(BLOB_ID) is None
        assert await s.blobs.delete(BLOB_ID) is False
        assert await s.blobs.get(BLOB_ID_32) == b""

    backend.run(body)


def test_blob_put_of_an_existing_id_is_a_conflict_and_keeps_the_first(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        await s.blobs.put(BLOB_ID, b"first")
        with pytest.raises(AlreadyExists):
            await s.blobs.put(BLOB_ID, b"second")
        assert await s.blobs.get(BLOB_ID) == b"first"

    backend.run(body)


def test_blob_size_bound_and_id_lengths(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        await s.blobs.put(BLOB_ID, b"x" * 64)
        with pytest.raises(LimitExceeded):
            await s.blobs.put(BLOB_ID_32, b"x" * 65)
        assert await s.blobs.get(BLOB_ID_32) is None
        for bad in (b"", bytes(15), bytes(17), bytes(31), bytes(33)):
            with pytest.raises(InvalidArgument):
                await s.blobs.put(bad, b"x")
            with pytest.raises(InvalidArgument):
                await s.blobs.get(bad)

    backend.run(body, StorageLimits(blob_size=64))


# ============================================================================= failure vs absence

Operation = Callable[[Storage], Awaitable[object]]
OPERATIONS: dict[str, Operation] = {
    "accounts.create": lambda s: s.accounts.create(account(b"zed")),
    "accounts.get": lambda s: s.accounts.get(b"alice"),
    "accounts.replace_device_list": lambda s: s.accounts.replace_device_list(
        b"alice", expected_serial=1, serial=2, device_list=b"l", devices=[]
    ),
    "accounts.device_auth_key": lambda s: s.accounts.device_auth_key(b"alice", 1),
    "accounts.list_devices": lambda s: s.accounts.list_devices(b"alice"),
    "prekeys.set_signed_prekey": lambda s: s.prekeys.set_signed_prekey(
        b"alice", 1, PrekeyRecord(1, b"k")
    ),
    "prekeys.get_signed_prekey": lambda s: s.prekeys.get_signed_prekey(b"alice", 1),
    "prekeys.set_last_resort_kem": lambda s: s.prekeys.set_last_resort_kem(
        b"alice", 1, PrekeyRecord(1, b"k")
    ),
    "prekeys.get_last_resort_kem": lambda s: s.prekeys.get_last_resort_kem(b"alice", 1),
    "prekeys.add_one_time": lambda s: s.prekeys.add_one_time(b"alice", 1, X, prekeys(50)),
    "prekeys.take_one_time": lambda s: s.prekeys.take_one_time(b"alice", 1, X),
    "prekeys.count_one_time": lambda s: s.prekeys.count_one_time(b"alice", 1, X),
    "mailboxes.enqueue": lambda s: s.mailboxes.enqueue([mail()], 0, tag),
    "mailboxes.fetch": lambda s: s.mailboxes.fetch(b"bob", 1, 0, 10),
    "mailboxes.ack": lambda s: s.mailboxes.ack(b"bob", 1, [1]),
    "mailboxes.depth": lambda s: s.mailboxes.depth(b"bob", 1),
    "blobs.put": lambda s: s.blobs.put(BLOB_ID_32, b"x"),
    "blobs.get": lambda s: s.blobs.get(BLOB_ID),
    "blobs.delete": lambda s: s.blobs.delete(BLOB_ID),
}


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_a_closed_store_raises_instead_of_answering_absent(
    backend: Backend, operation: str
) -> None:
    async def body(s: Storage) -> None:
        await s.accounts.create(account())
        await s.prekeys.add_one_time(b"alice", 1, X, prekeys(1))
        await s.mailboxes.enqueue([mail()], 0, tag)
        await s.blobs.put(BLOB_ID, b"x")
        await OPERATIONS[operation](s)  # works while open
        await s.close()
        with pytest.raises(StorageUnavailable) as caught:
            await OPERATIONS[operation](s)
        assert isinstance(caught.value, OvertError)
        assert caught.value.status_hint == 503
        await s.close()  # idempotent

    backend.run(body)


# ============================================================================= durability


def test_everything_survives_closing_and_reopening(backend: Backend) -> None:
    if not backend.durable:
        pytest.skip(f"the {backend.name} backend is not durable")
    state: dict[str, object] = {}

    async def write(s: Storage) -> None:
        await s.accounts.create(account(devices=(1, 2)))
        await s.accounts.replace_device_list(
            b"alice", expected_serial=1, serial=2, device_list=b"l2", devices=[DeviceAuth(2, b"k")]
        )
        await s.prekeys.set_signed_prekey(b"alice", 2, PrekeyRecord(1, b"spk"))
        await s.prekeys.set_last_resort_kem(b"alice", 2, PrekeyRecord(2, b"kem"))
        await s.prekeys.add_one_time(b"alice", 2, X, prekeys(1, 2, 3))
        await s.prekeys.take_one_time(b"alice", 2, X)
        state["ids"] = await s.mailboxes.enqueue([mail(), mail(to=(b"bob", 2))], 42, tag)
        await s.blobs.put(BLOB_ID, b"attachment")

    async def read(s: Storage) -> None:
        got = await s.accounts.get(b"alice")
        assert got is not None
        assert (got.serial, got.device_list, got.devices) == (2, b"l2", (DeviceAuth(2, b"k"),))
        assert await s.prekeys.get_signed_prekey(b"alice", 2) == PrekeyRecord(1, b"spk")
        assert await s.prekeys.get_last_resort_kem(b"alice", 2) == PrekeyRecord(2, b"kem")
        assert await s.prekeys.take_one_time(b"alice", 2, X) == prekeys(2)[0]
        ids = state["ids"]
        assert isinstance(ids, tuple)
        (m,) = await s.mailboxes.fetch(b"bob", 1, 0, 10)
        assert (m.id, m.server_time, m.reporting_tag) == (ids[0], 42, tag(ids[0], mail()))
        (later,) = await s.mailboxes.enqueue([mail()], 43, tag)
        assert later > max(ids)
        assert await s.blobs.get(BLOB_ID) == b"attachment"

    backend.run(write)
    backend.run(read)
