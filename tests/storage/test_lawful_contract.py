"""The lawful-access stores' contract — WarrantStore, InterceptStore, EpochStore — written once
and run on every backend (see ``support.BACKENDS``). Everything they keep is opaque to them:
signed warrants and revocations, token hashes, envelopes, DKG transcripts."""

from __future__ import annotations

import pytest

from overt.errors import LimitExceeded
from overt.storage import (
    AlreadyExists,
    InvalidArgument,
    MailKind,
    NotFound,
    Storage,
    StorageConflict,
)
from overt.storage.interfaces import (
    EpochRecord,
    EpochStore,
    Intercept,
    InterceptStore,
    NewIntercept,
    WarrantRecord,
    WarrantStore,
)
from overt.storage.limits import (
    EPOCH_CONFIRMATIONS_MAX_LEN,
    EPOCH_MAX,
    EPOCH_PAGE_MAX,
    EPOCH_TRANSCRIPT_MAX_LEN,
    GROUP_UPDATE_MAX_LEN,
    INT64_MAX,
    INTERCEPT_BATCH_MAX,
    INTERCEPT_PAGE_MAX,
    LIVE_WARRANTS_MAX,
    WARRANT_DOCUMENT_MAX_LEN,
    WARRANT_PAGE_MAX,
)

from .support import Backend

W1, W2, W3 = b"\x01" * 32, b"\x02" * 32, b"\x03" * 32


def warrants(storage: Storage) -> WarrantStore:
    if storage.warrants is None:
        pytest.skip("this backend has no warrant store")
    return storage.warrants


def intercepts(storage: Storage) -> InterceptStore:
    if storage.intercepts is None:
        pytest.skip("this backend has no intercept store")
    return storage.intercepts


def epochs(storage: Storage) -> EpochStore:
    if storage.epochs is None:
        pytest.skip("this backend has no epoch store")
    return storage.epochs


def warrant(
    warrant_id: bytes = W1, *, index: int = 5, not_after: int = 2000, sealed_until: int = 3000
) -> WarrantRecord:
    return WarrantRecord(
        warrant_id, index, b"H" * 32, b'{"signature":"...","warrant":{}}', not_after, sealed_until
    )


def copy(warrant_id: bytes = W1, mail_id: int = 1, envelope: bytes = b"ciphertext") -> NewIntercept:
    return NewIntercept(warrant_id, mail_id, 1_000 + mail_id, b"alice", 1, b"bob", 2, envelope)


# ----------------------------------------------------------------------------- warrants


def test_a_warrant_is_added_once_and_read_back(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        store = warrants(s)
        assert await store.get(W1) is None
        await store.add(warrant(W1))
        assert await store.get(W1) == warrant(W1)
        with pytest.raises(AlreadyExists):
            await store.add(warrant(W1, index=9))
        assert await store.get(W1) == warrant(W1)
        assert await store.get(W2) is None

    backend.run(body)


def test_live_warrants_are_unrevoked_and_not_ended_in_log_order(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        store = warrants(s)
        await store.add(warrant(W1, index=9, not_after=2000))
        await store.add(warrant(W2, index=4, not_after=1000))
        await store.add(warrant(W3, index=7, not_after=INT64_MAX))
        assert [w.warrant_id for w in await store.live(500)] == [W2, W3, W1]
        assert [w.warrant_id for w in await store.live(1000)] == [W3, W1]  # ends are exclusive
        assert await store.revoke(W3, b"revoked by the court")
        assert [w.warrant_id for w in await store.live(1000)] == [W1]
        assert await store.live(INT64_MAX) == ()

    backend.run(body)


def test_the_first_revocation_is_kept(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        store = warrants(s)
        with pytest.raises(NotFound):
            await store.revoke(W1, b"first")
        await store.add(warrant(W1))
        assert await store.revoke(W1, b"first") is True
        assert await store.revoke(W1, b"second") is False
        found = await store.get(W1)
        assert found is not None and found.revocation == b"first"

    backend.run(body)


def test_unsealing_is_due_after_the_date_and_recorded_once(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        store = warrants(s)
        await store.add(warrant(W1, sealed_until=300))
        await store.add(warrant(W2, sealed_until=100))
        await store.add(warrant(W3, sealed_until=900))
        assert await store.due_for_unsealing(50, 10) == ()
        assert [w.warrant_id for w in await store.due_for_unsealing(300, 10)] == [W2, W1]
        assert [w.warrant_id for w in await store.due_for_unsealing(300, 1)] == [W2]
        await store.set_unsealed(W2, 17)
        await store.set_unsealed(W2, 17)  # the same again: nothing to do
        with pytest.raises(StorageConflict):
            await store.set_unsealed(W2, 18)
        with pytest.raises(NotFound):
            await store.set_unsealed(b"\x09" * 32, 18)
        found = await store.get(W2)
        assert found is not None and found.unsealed_index == 17
        assert [w.warrant_id for w in await store.due_for_unsealing(1000, 10)] == [W1, W3]

    backend.run(body)


def test_warrants_survive_reopening(backend: Backend) -> None:
    if not backend.durable:
        pytest.skip("not a durable backend")

    async def write(s: Storage) -> None:
        await warrants(s).add(warrant(W1))
        await warrants(s).revoke(W1, b"revocation")
        await warrants(s).set_unsealed(W1, 3)

    async def read(s: Storage) -> None:
        found = await warrants(s).get(W1)
        assert found is not None
        assert (found.revocation, found.unsealed_index) == (b"revocation", 3)

    backend.run(write)
    backend.run(read)


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (WarrantRecord(b"\x01" * 31, 1, b"H", b"doc", 1, 1), InvalidArgument),
        (WarrantRecord(W1, -1, b"H", b"doc", 1, 1), InvalidArgument),
        (WarrantRecord(W1, 1, b"", b"doc", 1, 1), InvalidArgument),
        (WarrantRecord(W1, 1, b"H", b"", 1, 1), InvalidArgument),
        (WarrantRecord(W1, 1, b"H", b"d" * (WARRANT_DOCUMENT_MAX_LEN + 1), 1, 1), LimitExceeded),
        (WarrantRecord(W1, 1, b"H", b"doc", INT64_MAX + 1, 1), InvalidArgument),
        (WarrantRecord(W1, 1, b"H", b"doc", 1, -1), InvalidArgument),
    ],
)
def test_warrant_bounds(backend: Backend, bad: WarrantRecord, error: type[Exception]) -> None:
    async def body(s: Storage) -> None:
        store = warrants(s)
        with pytest.raises(error):
            await store.add(bad)
        with pytest.raises(InvalidArgument):
            await store.get(b"short")
        with pytest.raises(InvalidArgument):
            await store.due_for_unsealing(1, WARRANT_PAGE_MAX + 1)
        with pytest.raises(InvalidArgument):
            await store.live(-1)
        await store.add(warrant(W1))
        with pytest.raises(LimitExceeded):
            await store.revoke(W1, b"r" * (WARRANT_DOCUMENT_MAX_LEN + 1))
        assert len(await store.live(0)) == 1 <= LIVE_WARRANTS_MAX

    backend.run(body)


# ----------------------------------------------------------------------------- intercepts


def test_intercepts_page_in_id_order_per_warrant(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        store = intercepts(s)
        assert await store.add([]) == ()
        first = await store.add([copy(W1, 1), copy(W2, 2), copy(W1, 3)])
        second = await store.add([copy(W1, 4, b"x" * 70_000)])
        ids = [*first, *second]
        assert ids == sorted(ids) and len(set(ids)) == 4
        page = await store.page(W1, 0, 10)
        assert [i.mail_id for i in page] == [1, 3, 4]
        assert page[0] == Intercept(first[0], W1, 1, 1001, b"alice", 1, b"bob", 2, b"ciphertext")
        assert page[2].envelope == b"x" * 70_000
        assert [i.mail_id for i in await store.page(W1, page[0].id, 1)] == [3]
        assert await store.page(W1, page[-1].id, 10) == ()
        assert [i.mail_id for i in await store.page(W2, 0, 10)] == [2]
        assert await store.page(W3, 0, 10) == ()
        assert (await store.count(W1), await store.count(W2), await store.count(W3)) == (3, 1, 0)

    backend.run(body)


def test_intercepts_survive_reopening(backend: Backend) -> None:
    if not backend.durable:
        pytest.skip("not a durable backend")
    seen: list[int] = []

    async def write(s: Storage) -> None:
        seen.extend(await intercepts(s).add([copy(W1, 1)]))

    async def read(s: Storage) -> None:
        later = await intercepts(s).add([copy(W1, 2)])
        assert later[0] > seen[0]  # never reused, still increasing
        assert [i.mail_id for i in await intercepts(s).page(W1, 0, 10)] == [1, 2]

    backend.run(write)
    backend.run(read)


def group_copy(mail_id: int, membership: bytes | None = b"signed update v3") -> NewIntercept:
    return NewIntercept(
        W1, mail_id, 1_000 + mail_id, b"alice", 1, b"bob", 2, b"group message",
        MailKind.GROUP, membership,
    )  # fmt: skip


def test_intercepts_keep_their_kind_and_the_group_membership(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        store = intercepts(s)
        (direct,) = await store.add([copy(W1, 1)])
        big = b"u" * GROUP_UPDATE_MAX_LEN
        ids = await store.add([group_copy(2), group_copy(3, big)])
        page = await store.page(W1, 0, 10)
        assert [(i.kind, i.membership) for i in page] == [
            (MailKind.ENVELOPE, None),
            (MailKind.GROUP, b"signed update v3"),
            (MailKind.GROUP, big),
        ]
        assert page[0].id == direct and [i.id for i in page[1:]] == list(ids)
        assert page[1] == Intercept(
            ids[0], W1, 2, 1002, b"alice", 1, b"bob", 2, b"group message",
            MailKind.GROUP, b"signed update v3",
        )  # fmt: skip
        assert "signed update" not in repr(page[1])

    backend.run(body)


def test_a_group_intercept_needs_its_membership_and_only_it_has_one(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        store = intercepts(s)
        for bad in (
            group_copy(1, None),
            group_copy(1, b""),
            NewIntercept(W1, 1, 1, b"alice", 1, b"bob", 1, b"e", MailKind.ENVELOPE, b"update"),
            NewIntercept(W1, 1, 1, b"alice", 1, b"bob", 1, b"e", "group", b"u"),  # type: ignore[arg-type]
        ):
            with pytest.raises(InvalidArgument):
                await store.add([copy(W1, 9), bad])
        with pytest.raises(LimitExceeded):
            await store.add([group_copy(1, b"u" * (GROUP_UPDATE_MAX_LEN + 1))])
        assert await store.count(W1) == 0  # nothing of a refused batch was stored

    backend.run(body)


def test_intercept_bounds(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        store = intercepts(s)
        with pytest.raises(LimitExceeded):
            await store.add([copy(W1, i) for i in range(INTERCEPT_BATCH_MAX + 1)])
        with pytest.raises(InvalidArgument):
            await store.add([copy(b"short", 1)])
        with pytest.raises(InvalidArgument):
            await store.add([NewIntercept(W1, 1, 1, b"", 1, b"bob", 1, b"e")])
        with pytest.raises(InvalidArgument):
            await store.page(W1, 0, 0)
        with pytest.raises(InvalidArgument):
            await store.page(W1, 0, INTERCEPT_PAGE_MAX + 1)
        with pytest.raises(InvalidArgument):
            await store.page(W1, -1, 1)
        assert await store.count(W1) == 0  # nothing of a refused batch was stored

    backend.run(body)


# ----------------------------------------------------------------------------- epochs


def test_epochs_are_added_once_and_listed_newest_first(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        store = epochs(s)
        assert await store.get(7) is None
        assert await store.latest(10) == ()
        await store.add(EpochRecord(7, 3, b"transcript 7", b"confirmations 7"))
        await store.add(EpochRecord(EPOCH_MAX, 9, b"transcript max", b"confirmations max"))
        await store.add(EpochRecord(8, 5, b"transcript 8"))  # as if logged before version 9
        with pytest.raises(AlreadyExists):
            await store.add(EpochRecord(7, 11, b"another", b"other confirmations"))
        assert await store.get(7) == EpochRecord(7, 3, b"transcript 7", b"confirmations 7")
        assert await store.get(8) == EpochRecord(8, 5, b"transcript 8", None)
        assert await store.latest(10) == (
            EpochRecord(EPOCH_MAX, 9, b"transcript max", b"confirmations max"),
            EpochRecord(8, 5, b"transcript 8", None),
            EpochRecord(7, 3, b"transcript 7", b"confirmations 7"),
        )
        assert [e.epoch for e in await store.latest(1)] == [EPOCH_MAX]

    backend.run(body)


def test_epoch_bounds(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        store = epochs(s)
        for bad, error in (
            (EpochRecord(-1, 1, b"t"), InvalidArgument),
            (EpochRecord(EPOCH_MAX + 1, 1, b"t"), InvalidArgument),
            (EpochRecord(1, -1, b"t"), InvalidArgument),
            (EpochRecord(1, 1, b""), InvalidArgument),
            (EpochRecord(1, 1, b"t" * (EPOCH_TRANSCRIPT_MAX_LEN + 1)), LimitExceeded),
            (EpochRecord(1, 1, b"t", b""), InvalidArgument),
            (EpochRecord(1, 1, b"t", b"c" * (EPOCH_CONFIRMATIONS_MAX_LEN + 1)), LimitExceeded),
        ):
            with pytest.raises(error):
                await store.add(bad)
        with pytest.raises(InvalidArgument):
            await store.latest(EPOCH_PAGE_MAX + 1)
        with pytest.raises(InvalidArgument):
            await store.get(-1)
        assert await store.latest(EPOCH_PAGE_MAX) == ()

    backend.run(body)


def test_repr_hides_documents_tokens_and_envelopes() -> None:
    text = repr(WarrantRecord(W1, 1, b"token-hash", b"warrant-doc", 1, 2, b"revocation-doc"))
    text += repr(copy(envelope=b"secret-envelope"))
    text += repr(Intercept(1, W1, 1, 1, b"a", 1, b"b", 1, b"secret-envelope"))
    for secret in ("token-hash", "warrant-doc", "revocation-doc", "secret-envelope"):
        assert secret not in text
