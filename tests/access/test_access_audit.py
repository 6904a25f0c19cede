"""Recounting from the log: tallies and every flag."""

from __future__ import annotations

from overt.access import FlagKind, audit, unsealing, warrant_commitment
from overt.access.limits import DAY_SECONDS
from overt.transparency.entries import AccessReceipt, AggregateStatistics, WarrantUnsealing

from .support import COURT, ROGUE_COURT, T0, TRUST, FakeLog, World, make_warrant

AFTER_SEAL = T0 + 200 * DAY_SECONDS


def test_tally_of_an_honest_log() -> None:
    world = World.build(messages=1)
    world.evidence(custodians=(1, 2, 3))
    world.evidence(custodians=(1, 4, 5))
    _, opening = warrant_commitment(world.warrant)
    world.log.append(unsealing(world.warrant, opening))
    report = audit(world.log.indexed(), now=AFTER_SEAL, trust=TRUST)
    wid = world.warrant.warrant_id
    assert report.flags == ()
    assert report.warrants_per_court == {COURT.public_key.raw: 1}
    assert report.receipts_per_warrant() == {wid: 6}
    assert report.released_per_warrant() == {wid: 6 * 2}
    tally = report.warrants[wid]
    assert tally.per_custodian[TRUST.custodian_id(1)] == 4
    assert tally.messages_bound(3) == 2  # each batch of 2 messages released by 3 custodians
    assert tally.targets is not None and tally.targets[0].targets == (b"alice",)


def test_receipt_without_warrant_is_flagged() -> None:
    log = FakeLog()
    w = make_warrant()
    orphan = AccessReceipt(bytes(32), TRUST.custodian_id(1), 3, bytes(32))
    early = AccessReceipt(w.warrant_id, TRUST.custodian_id(2), 1, bytes(32))
    log.append(orphan)
    log.append(early)  # before its warrant's commitment
    log.append(warrant_commitment(w)[0])
    report = audit(log.indexed(), now=T0)
    flags = report.flagged(FlagKind.RECEIPT_WITHOUT_WARRANT)
    assert [(f.index, f.warrant_id) for f in flags] == [(0, bytes(32)), (1, w.warrant_id)]
    assert report.receipts_per_warrant() == {w.warrant_id: 0}


def test_unsealing_flags_and_overdue() -> None:
    log = FakeLog()
    a, b, c = (make_warrant(seed=s) for s in ("a", "b", "c"))
    log.append(AggregateStatistics(0, 1, ()))
    for w in (a, b, c):
        log.append(warrant_commitment(w)[0])
    log.append(WarrantUnsealing(bytes(32), b"x"))  # no commitment
    log.append(WarrantUnsealing(b.warrant_id, warrant_commitment(a)[1]))  # wrong opening
    log.append(unsealing(c, warrant_commitment(c)[1]))
    log.append(warrant_commitment(a)[0])  # duplicate
    log.append(AccessReceipt(a.warrant_id, bytes(32), 1, bytes(32)))  # unknown custodian
    before = audit(log.indexed(), now=T0 + DAY_SECONDS, trust=TRUST)
    assert {f.kind for f in before.flags} == {
        FlagKind.UNSEALING_WITHOUT_COMMITMENT, FlagKind.UNSEALING_MISMATCH,
        FlagKind.DUPLICATE_COMMITMENT, FlagKind.UNKNOWN_CUSTODIAN,
    }  # fmt: skip
    after = audit(log.indexed(), now=AFTER_SEAL, trust=TRUST)
    overdue = after.flagged(FlagKind.OVERDUE_UNSEALING)
    assert {f.warrant_id for f in overdue} == {a.warrant_id, b.warrant_id}
    assert after.warrants[c.warrant_id].unsealed_at is not None


def test_unknown_court_flagged() -> None:
    log = FakeLog()
    log.append(warrant_commitment(make_warrant(court=ROGUE_COURT))[0])
    report = audit(log.indexed(), now=T0, trust=TRUST)
    assert [f.kind for f in report.flags] == [FlagKind.UNKNOWN_COURT]
