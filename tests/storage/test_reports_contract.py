"""The safety stores' contract (overt.storage.moderation), written once and run on every
backend: reports with their replay keys and queue items, the queue order, compare-and-set
actions with their audit entries, the append-only audit trail, retention, standing and
moderators."""

from __future__ import annotations

import asyncio

import pytest

from overt.errors import LimitExceeded
from overt.storage import AlreadyExists, InvalidArgument, NotFound, Storage
from overt.storage.limits import (
    EVIDENCE_BUNDLE_MAX_LEN,
    QUEUE_PAGE_MAX,
    REPLAY_KEYS_PER_REPORT_MAX,
    SAFETY_TEXT_MAX_LEN,
)
from overt.storage.moderation import (
    ItemKind,
    ItemState,
    ModeratorRecord,
    ModeratorStore,
    NewAuditEntry,
    NewReport,
    NewSignal,
    ReportStore,
    StandingStore,
)

from .support import Backend

OPEN = {ItemState.OPEN}


def reports(s: Storage) -> ReportStore:
    if s.reports is None:
        pytest.skip("this backend has no safety stores")
    return s.reports


def standing(s: Storage) -> StandingStore:
    if s.standing is None:
        pytest.skip("this backend has no safety stores")
    return s.standing


def moderators(s: Storage) -> ModeratorStore:
    if s.moderators is None:
        pytest.skip("this backend has no safety stores")
    return s.moderators


def new_report(
    n: int,
    *,
    keys: tuple[bytes, ...] | None = None,
    severity: int = 2,
    received: int = 1000,
    retain: int = 5000,
    bundle: bytes | None = None,
) -> NewReport:
    return NewReport(
        report_id=bytes([n]) * 16,
        bundle=bundle if bundle is not None else b"bundle %d" % n,
        reporter_account=b"bob",
        subject_account=b"alice",
        category="harassment",
        severity=severity,
        received_ms=received,
        retain_until_ms=retain,
        replay_keys=keys if keys is not None else (bytes([n]) * 32,),
    )


def entry(action: str, item_id: int | None = None, at: int = 2000) -> NewAuditEntry:
    return NewAuditEntry(at, "mia", action, item_id, b"alice" if item_id else None, "why")


def test_a_report_is_stored_with_its_keys_and_queued(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        store = reports(s)
        keys = (b"k" * 32, b"l" * 32)
        item_id = await store.add(new_report(1, keys=keys))
        stored = await store.get(bytes([1]) * 16)
        assert stored is not None
        assert (stored.bundle, stored.item_id, stored.category) == (
            b"bundle 1",
            item_id,
            "harassment",
        )
        assert (stored.reporter_account, stored.subject_account) == (b"bob", b"alice")
        assert await store.seen([b"k" * 32, b"x" * 32, b"l" * 32]) == frozenset(keys)
        assert await store.seen([]) == frozenset()
        item = await store.item(item_id)
        assert item is not None
        assert (item.kind, item.state, item.report_id, item.label) == (
            ItemKind.REPORT,
            ItemState.OPEN,
            bytes([1]) * 16,
            "harassment",
        )
        assert await store.get(bytes([9]) * 16) is None
        assert await store.item(item_id + 100) is None

    backend.run(body)


def test_a_replayed_key_or_id_stores_nothing(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        store = reports(s)
        await store.add(new_report(1, keys=(b"k" * 32,)))
        # A second report sharing one key: refused whole; its other key is not kept.
        with pytest.raises(AlreadyExists):
            await store.add(new_report(2, keys=(b"m" * 32, b"k" * 32)))
        assert await store.get(bytes([2]) * 16) is None
        assert await store.seen([b"m" * 32]) == frozenset()
        # The same report id with fresh keys: refused too.
        with pytest.raises(AlreadyExists):
            await store.add(new_report(1, keys=(b"n" * 32,)))
        assert await store.seen([b"n" * 32]) == frozenset()
        assert len(await store.queue(OPEN, 10)) == 1

    backend.run(body)


def test_concurrent_reports_of_one_message_store_one(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        store = reports(s)
        results = await asyncio.gather(
            *(store.add(new_report(n, keys=(b"same" * 8,))) for n in range(1, 6)),
            return_exceptions=True,
        )
        assert sum(isinstance(r, int) for r in results) == 1
        assert all(isinstance(r, int | AlreadyExists) for r in results)
        assert len(await store.queue(OPEN, 10)) == 1

    backend.run(body)


def test_queue_order_is_severity_then_age(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        store = reports(s)
        low_old = await store.add(new_report(1, severity=1, received=100))
        high_new = await store.add(new_report(2, severity=4, received=300))
        high_old = await store.add(new_report(3, severity=4, received=200))
        signal = await store.flag(NewSignal(b"eve", "size_burst", 2, 150, b'{"n":3}'))
        same_time = await store.flag(NewSignal(b"eve", "size_burst", 2, 150))
        order = [i.id for i in await store.queue(OPEN, 10)]
        assert order == [high_old, high_new, signal, same_time, low_old]
        assert [i.id for i in await store.queue(OPEN, 2)] == [high_old, high_new]
        item = await store.item(signal)
        assert item is not None
        assert (item.kind, item.label, item.detail, item.report_id) == (
            ItemKind.SIGNAL,
            "size_burst",
            b'{"n":3}',
            None,
        )

    backend.run(body)


def test_act_is_a_compare_and_set_with_its_audit_entry(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        store = reports(s)
        item_id = await store.add(new_report(1))
        assert await store.act(
            item_id, ItemState.OPEN, ItemState.NEEDS_LEAD, entry("propose", item_id)
        )
        # Someone else acted first: nothing changes, no entry.
        assert not await store.act(
            item_id, ItemState.OPEN, ItemState.CLOSED, entry("dismiss", item_id)
        )
        assert await store.queue(OPEN, 10) == ()
        (waiting,) = await store.queue({ItemState.NEEDS_LEAD}, 10)
        assert (waiting.id, waiting.resolution, waiting.updated_ms) == (item_id, "propose", 2000)
        assert await store.act(
            item_id, ItemState.NEEDS_LEAD, ItemState.CLOSED, entry("escalate", item_id, at=3000)
        )
        trail = await store.audit(item_id=item_id, limit=10)
        assert [e.action for e in trail] == ["escalate", "propose"]
        assert trail[0].actor == "mia" and trail[0].subject_account == b"alice"
        with pytest.raises(NotFound):
            await store.act(item_id + 50, ItemState.OPEN, ItemState.CLOSED, entry("dismiss"))

    backend.run(body)


def test_concurrent_actions_on_one_item_one_wins(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        store = reports(s)
        item_id = await store.add(new_report(1))
        won = await asyncio.gather(
            *(
                store.act(item_id, ItemState.OPEN, ItemState.CLOSED, entry(a, item_id))
                for a in ("dismiss", "warn", "suspend", "dismiss")
            )
        )
        assert sorted(won) == [False, False, False, True]
        assert len(await store.audit(item_id=item_id, limit=10)) == 1

    backend.run(body)


def test_audit_pages_newest_first(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        store = reports(s)
        ids = [await store.record(entry("login", at=t)) for t in range(10)]
        page = await store.audit(limit=4)
        assert [e.id for e in page] == ids[::-1][:4]
        older = await store.audit(before_id=page[-1].id, limit=100)
        assert [e.id for e in older] == ids[::-1][4:]
        assert page[0].item_id is None and page[0].subject_account is None
        assert page[0].detail == "why"

    backend.run(body)


def test_purge_drops_evidence_past_retention_only(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        store = reports(s)
        await store.add(new_report(1, retain=100))
        await store.add(new_report(2, retain=200))
        await store.add(new_report(3, retain=300))
        assert await store.purge(200, 1) == 1
        assert await store.purge(200, 10) == 1
        assert await store.purge(200, 10) == 0
        gone, kept = await store.get(bytes([2]) * 16), await store.get(bytes([3]) * 16)
        assert gone is not None and gone.bundle is None
        assert kept is not None and kept.bundle == b"bundle 3"
        # Its replay keys stay: the message remains "already reported".
        assert await store.seen([bytes([1]) * 32]) == frozenset({bytes([1]) * 32})

    backend.run(body)


def test_reports_survive_reopening(backend: Backend) -> None:
    if not backend.durable:
        pytest.skip("not a durable backend")

    async def write(s: Storage) -> None:
        item_id = await reports(s).add(new_report(7))
        await reports(s).act(item_id, ItemState.OPEN, ItemState.CLOSED, entry("warn", item_id))
        await standing(s).set_suspended(b"alice", True, "spam", 5)
        await moderators(s).add(ModeratorRecord("mia", "lead", "$hash", 1))

    async def read(s: Storage) -> None:
        stored = await reports(s).get(bytes([7]) * 16)
        assert stored is not None and stored.bundle == b"bundle 7"
        assert [e.action for e in await reports(s).audit(limit=5)] == ["warn"]
        st = await standing(s).get(b"alice")
        assert st is not None and st.suspended
        assert await moderators(s).get("mia") == ModeratorRecord("mia", "lead", "$hash", 1)

    backend.run(write)
    backend.run(read)


def test_report_arguments_are_checked(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        store = reports(s)
        bad = [
            (new_report(1, keys=()), InvalidArgument),
            (new_report(1, keys=(b"short",)), InvalidArgument),
            (new_report(1, keys=(b"k" * 32, b"k" * 32)), InvalidArgument),
            (new_report(1, keys=tuple(bytes([i]) * 32 for i in range(101))), LimitExceeded),
            (new_report(1, severity=10), InvalidArgument),
            (new_report(1, bundle=b""), InvalidArgument),
            (new_report(1, bundle=bytes(EVIDENCE_BUNDLE_MAX_LEN + 1)), LimitExceeded),
            (new_report(1, received=-1), InvalidArgument),
        ]
        for report, error in bad:
            with pytest.raises(error):
                await store.add(report)
        with pytest.raises(InvalidArgument):
            await store.flag(NewSignal(b"eve", "Not A Label", 1, 1))
        with pytest.raises(LimitExceeded):
            await store.flag(NewSignal(b"eve", "rule", 1, 1, bytes(SAFETY_TEXT_MAX_LEN + 1)))
        with pytest.raises(InvalidArgument):
            await store.queue(OPEN, QUEUE_PAGE_MAX + 1)
        with pytest.raises(InvalidArgument):
            await store.queue(set(), 10)
        with pytest.raises(LimitExceeded):
            await store.seen([b"k" * 32] * (REPLAY_KEYS_PER_REPORT_MAX + 1))
        with pytest.raises(InvalidArgument):
            await store.record(NewAuditEntry(1, "Not A Name", "login"))
        with pytest.raises(InvalidArgument):
            await store.get(b"short")
        assert await store.queue(OPEN, 10) == ()

    backend.run(body)


def test_standing_counts_warnings_and_suspensions(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        store = standing(s)
        assert await store.get(b"alice") is None
        first = await store.warn(b"alice", "rude", 10)
        assert (first.warnings, first.suspended, first.reason) == (1, False, "rude")
        await store.warn(b"alice", "rude again", 11)
        suspended = await store.set_suspended(b"alice", True, "spam", 12)
        assert (suspended.warnings, suspended.suspended, suspended.updated_ms) == (2, True, 12)
        lifted = await store.set_suspended(b"alice", False, "appeal upheld", 13)
        assert (lifted.warnings, lifted.suspended, lifted.reason) == (2, False, "appeal upheld")
        assert await store.get(b"alice") == lifted
        fresh = await store.set_suspended(b"bob", True, "", 14)
        assert (fresh.warnings, fresh.suspended) == (0, True)
        with pytest.raises(InvalidArgument):
            await store.warn(b"", "x", 1)
        with pytest.raises(LimitExceeded):
            await store.warn(b"alice", "x" * (SAFETY_TEXT_MAX_LEN + 1), 1)

    backend.run(body)


def test_moderators_are_unique_and_updatable(backend: Backend) -> None:
    async def body(s: Storage) -> None:
        store = moderators(s)
        await store.add(ModeratorRecord("mia", "moderator", "$h1", 1))
        await store.add(ModeratorRecord("lee", "lead", "$h2", 2))
        with pytest.raises(AlreadyExists):
            await store.add(ModeratorRecord("mia", "lead", "$h3", 3))
        await store.update("mia", role="lead", password_hash="$h4")
        await store.update("lee", disabled=True)
        assert await store.get("mia") == ModeratorRecord("mia", "lead", "$h4", 1)
        assert [m.name for m in await store.all()] == ["lee", "mia"]
        lee = await store.get("lee")
        assert lee is not None and lee.disabled
        assert await store.get("zed") is None
        with pytest.raises(NotFound):
            await store.update("zed", role="lead")
        with pytest.raises(InvalidArgument):
            await store.add(ModeratorRecord("Mia!", "lead", "$h", 1))
        with pytest.raises(InvalidArgument):
            await store.add(ModeratorRecord("kim", "lead", "", 1))
        assert "$h4" not in repr(await store.get("mia"))

    backend.run(body)
