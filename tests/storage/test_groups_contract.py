"""The GroupStore contract and the mail kind, written once and run on every backend (see
``support.BACKENDS``).

The store keeps each group's membership updates as opaque bytes in version order; it never
parses them. A backend without a group store (``Storage.groups`` is ``None``) is skipped.
"""

from __future__ import annotations

import asyncio

import pytest

from overt.errors import LimitExceeded
from overt.storage import InvalidArgument, MailKind, NewMail, Storage, StorageConflict
from overt.storage.groups import GroupStore, GroupUpdate, NewGroupUpdate
from overt.storage.limits import (
    GROUP_ACCOUNTS_MAX,
    GROUP_UPDATE_MAX_LEN,
    GROUP_UPDATES_PAGE_MAX,
    INT64_MAX,
)

from .support import Backend, mail, tag

G1 = b"\x01" * 32
G2 = b"\x02" * 32


def groups(storage: Storage) -> GroupStore:
    if storage.groups is None:
        pytest.skip("this backend has no group store")
    return storage.groups


def update(
    version: int, group_id: bytes = G1, accounts: tuple[bytes, ...] = (b"alice", b"bob")
) -> NewGroupUpdate:
    return NewGroupUpdate(
        group_id, version, bytes([version % 256]) * 32, b"update %d" % version, accounts
    )


def stored(record: NewGroupUpdate) -> GroupUpdate:
    return GroupUpdate(record.group_id, record.version, record.member_set_hash, record.update)


def test_an_unknown_group_has_nothing(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        store = groups(s)
        assert await store.latest(G1) is None
        assert await store.updates(G1, 0, 10) == ()
        assert not await store.was_member(G1, b"alice")

    backend.run(body)


def test_history_is_kept_in_version_order_and_paged(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        store = groups(s)
        records = [update(v) for v in range(1, 6)]
        for r in records:
            await store.append(r)
        await store.append(update(1, group_id=G2, accounts=(b"carol",)))
        assert await store.latest(G1) == stored(records[-1])
        assert await store.updates(G1, 0, 10) == tuple(stored(r) for r in records)
        assert await store.updates(G1, 2, 2) == (stored(records[2]), stored(records[3]))
        assert await store.updates(G1, 5, 10) == ()
        assert await store.updates(G1, INT64_MAX, 10) == ()
        assert await store.latest(G2) == stored(update(1, group_id=G2, accounts=(b"carol",)))

    backend.run(body)


def test_append_takes_only_the_next_version(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        store = groups(s)
        with pytest.raises(StorageConflict):
            await store.append(update(2))  # a new group starts at version 1
        await store.append(update(1))
        for bad in (1, 3):  # a repeat, a gap
            with pytest.raises(StorageConflict):
                await store.append(update(bad, accounts=(b"mallory",)))
        assert await store.updates(G1, 0, 10) == (stored(update(1)),)
        assert not await store.was_member(G1, b"mallory")  # nothing of a refusal is kept

    backend.run(body)


def test_racing_appends_of_one_version_let_exactly_one_in(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        store = groups(s)
        await store.append(update(1))
        contenders = [
            NewGroupUpdate(G1, 2, bytes([i]) * 32, b"contender %d" % i, (b"alice", b"x%d" % i))
            for i in range(8)
        ]
        results = await asyncio.gather(
            *(store.append(c) for c in contenders), return_exceptions=True
        )
        winners = [c for c, r in zip(contenders, results, strict=True) if r is None]
        assert len(winners) == 1
        assert all(isinstance(r, StorageConflict) for r in results if r is not None)
        assert await store.latest(G1) == stored(winners[0])
        members = [await store.was_member(G1, b"x%d" % i) for i in range(8)]
        assert members == [c is winners[0] for c in contenders]

    backend.run(body)


def test_former_members_stay_members_of_the_history(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        store = groups(s)
        await store.append(update(1, accounts=(b"alice", b"bob")))
        await store.append(update(2, accounts=(b"alice", b"carol")))
        assert await store.was_member(G1, b"alice")
        assert await store.was_member(G1, b"bob")  # removed in version 2
        assert await store.was_member(G1, b"carol")
        assert not await store.was_member(G1, b"dave")
        assert not await store.was_member(G2, b"alice")

    backend.run(body)


def test_history_survives_reopening(backend: Backend) -> None:
    if not backend.durable:
        pytest.skip("not a durable backend")

    async def write(s: Storage) -> None:
        await groups(s).append(update(1))
        await groups(s).append(update(2))

    async def read(s: Storage) -> None:
        assert await groups(s).latest(G1) == stored(update(2))
        assert await groups(s).was_member(G1, b"bob")

    backend.run(write)
    backend.run(read)


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (NewGroupUpdate(b"short", 1, b"h" * 32, b"u", (b"a",)), InvalidArgument),
        (NewGroupUpdate(G1, 0, b"h" * 32, b"u", (b"a",)), InvalidArgument),
        (NewGroupUpdate(G1, INT64_MAX + 1, b"h" * 32, b"u", (b"a",)), InvalidArgument),
        (NewGroupUpdate(G1, True, b"h" * 32, b"u", (b"a",)), InvalidArgument),  # type: ignore[arg-type]
        (NewGroupUpdate(G1, 1, b"h" * 31, b"u", (b"a",)), InvalidArgument),
        (NewGroupUpdate(G1, 1, b"h" * 32, b"", (b"a",)), InvalidArgument),
        (
            NewGroupUpdate(G1, 1, b"h" * 32, b"u" * (GROUP_UPDATE_MAX_LEN + 1), (b"a",)),
            LimitExceeded,
        ),
        (NewGroupUpdate(G1, 1, b"h" * 32, b"u", ()), InvalidArgument),
        (NewGroupUpdate(G1, 1, b"h" * 32, b"u", (b"b", b"a")), InvalidArgument),
        (NewGroupUpdate(G1, 1, b"h" * 32, b"u", (b"a", b"a")), InvalidArgument),
        (NewGroupUpdate(G1, 1, b"h" * 32, b"u", (b"",)), InvalidArgument),
        (
            NewGroupUpdate(
                G1, 1, b"h" * 32, b"u", tuple(b"%05d" % i for i in range(GROUP_ACCOUNTS_MAX + 1))
            ),
            LimitExceeded,
        ),
    ],
)
def test_arguments_outside_the_contract_are_refused(
    backend: Backend, bad: NewGroupUpdate, error: type[Exception]
) -> None:
    async def body(s: Storage) -> None:
        store = groups(s)
        with pytest.raises(error):
            await store.append(bad)
        assert await store.latest(G1) is None
        with pytest.raises(InvalidArgument):
            await store.updates(G1, 0, GROUP_UPDATES_PAGE_MAX + 1)
        with pytest.raises(InvalidArgument):
            await store.updates(G1, -1, 1)
        with pytest.raises(InvalidArgument):
            await store.latest(b"short")
        with pytest.raises(InvalidArgument):
            await store.was_member(G1, b"")

    backend.run(body)


# ----------------------------------------------------------------------------- mail kind


def test_mail_keeps_its_kind(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        one = mail(envelope=b"one-to-one")
        group = NewMail(b"bob", 1, b"alice", 1, b"group message", MailKind.GROUP)
        ids = await s.mailboxes.enqueue([one, group], 7, tag)
        fetched = await s.mailboxes.fetch(b"bob", 1, 0, 10)
        assert [(m.id, m.kind, m.envelope) for m in fetched] == [
            (ids[0], MailKind.ENVELOPE, b"one-to-one"),
            (ids[1], MailKind.GROUP, b"group message"),
        ]
        assert all(isinstance(m.kind, MailKind) for m in fetched)

    backend.run(body)


def test_an_unknown_mail_kind_is_refused(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        bad = mail()
        object.__setattr__(bad, "kind", "broadcast")
        with pytest.raises(InvalidArgument):
            await s.mailboxes.enqueue([bad], 0, tag)
        assert await s.mailboxes.depth(b"bob", 1) == 0

    backend.run(body)
