"""Metadata signals: the two rules over what the relay sees of each send, their thresholds,
windows, cooldowns and bounds, and the queue items they produce (counts, never content or
recipients)."""

from __future__ import annotations

import json
from pathlib import Path

from overt.server.signals import (
    SIZE_BURST,
    UNANSWERED_FANOUT,
    SignalConfig,
    SignalRules,
    SignalService,
)
from overt.storage import open_sqlite
from overt.storage.moderation import ItemKind, ItemState
from overt.wire import Address

T0 = 1_760_000_000_000
MIN = 60_000
DAY = 24 * 60 * MIN


def names(n: int, prefix: str = "user") -> list[bytes]:
    return [f"{prefix}{i:03d}".encode() for i in range(n)]


def test_a_new_account_messaging_strangers_who_never_answer_fires_once() -> None:
    rules = SignalRules(SignalConfig(unanswered_accounts=5, burst_accounts=1000))
    fired = []
    for i, r in enumerate(names(6)):
        fired += rules.observe_send(b"spammer", [r, b"spammer"], [300 + 7 * i], T0 + i * MIN)
    assert [s.rule for s in fired] == [UNANSWERED_FANOUT]
    (signal,) = fired
    assert signal.account == b"spammer" and signal.detail["accounts_unanswered"] == 5
    assert signal.detail["account_age_s"] == 4 * 60
    # Cooldown: more strangers the same day add nothing; the next day it fires again.
    assert rules.observe_send(b"spammer", [b"another"], [300], T0 + 10 * MIN) == []
    later = rules.observe_send(b"spammer", [b"yet-another"], [300], T0 + DAY + 6 * MIN)
    assert [s.rule for s in later] == [UNANSWERED_FANOUT]


def test_answers_and_age_keep_the_fanout_rule_quiet() -> None:
    cfg = SignalConfig(unanswered_accounts=5, burst_accounts=1000, new_account_ms=7 * DAY)
    rules = SignalRules(cfg)
    friends = names(8, "friend")
    for i, r in enumerate(friends):
        assert rules.observe_send(b"newbie", [r], [200], T0 + i) == []
        assert rules.observe_send(r, [b"newbie"], [200], T0 + i) == []  # they answer
    # An account first seen long ago is not new, however many strangers it writes to.
    old = SignalRules(cfg)
    old.observe_send(b"veteran", [b"x"], [200], T0)
    fired = [
        s
        for i, r in enumerate(names(10))
        for s in old.observe_send(b"veteran", [r], [200], T0 + 8 * DAY + i)
    ]
    assert fired == []


def test_a_burst_of_one_size_to_many_accounts_fires() -> None:
    cfg = SignalConfig(burst_accounts=10, burst_window_ms=10 * MIN, unanswered_accounts=1000)
    rules = SignalRules(cfg)
    fired = []
    for i, r in enumerate(names(10)):
        # Same text: sizes differ by the recipient's name length, inside one 64-byte bucket.
        fired += rules.observe_send(b"bulk", [r], [1130 + i % 3], T0 + i * 1000)
    assert [s.rule for s in fired] == [SIZE_BURST]
    assert fired[0].detail == {
        "accounts_reached": 10,
        "window_s": 600,
        "size_bucket_bytes": 1088,
    }


def test_sends_outside_the_window_or_of_other_sizes_do_not_add_up() -> None:
    cfg = SignalConfig(burst_accounts=5, burst_window_ms=10 * MIN, unanswered_accounts=1000)
    rules = SignalRules(cfg)
    fired = []
    for i, r in enumerate(names(12)):
        fired += rules.observe_send(b"chatty", [r], [500], T0 + i * 3 * MIN)  # 4 per window
    for i, r in enumerate(names(12, "other")):
        fired += rules.observe_send(b"varied", [r], [200 + 100 * i], T0 + i)  # all sizes differ
    assert fired == []
    # Repeated sends to the same few accounts are conversation, not a burst.
    for i in range(50):
        fired += rules.observe_send(b"friendly", [b"a", b"b"], [500], T0 + i)
    assert fired == []


def test_state_is_bounded() -> None:
    cfg = SignalConfig(tracked_accounts=50, contacts_per_account=10, sends_per_window=20)
    rules = SignalRules(cfg)
    for i, sender in enumerate(names(200, "sender")):
        for r in names(30):
            rules.observe_send(sender, [r], [100], T0 + i)
    assert len(rules) == 50
    state = rules._accounts[b"sender199"]
    assert len(state.unanswered) <= 10 and len(state.sends) <= 20


async def test_signals_reach_the_queue_without_content(tmp_path: Path) -> None:
    storage = await open_sqlite(tmp_path / "server.db")
    try:
        service = SignalService(
            storage.reports, SignalRules(SignalConfig(unanswered_accounts=3, burst_accounts=3))
        )
        sender = Address(b"mallory", 1)
        for i, r in enumerate(names(3)):
            await service.observe_send(
                sender, {r: [1, 2], b"mallory": [2]}, [900, 901, 905], T0 + i
            )
        assert storage.reports is not None
        items = await storage.reports.queue({ItemState.OPEN}, 10)
        assert sorted(i.label for i in items) == [SIZE_BURST, UNANSWERED_FANOUT]
        for item in items:
            assert item.kind is ItemKind.SIGNAL and item.subject_account == b"mallory"
            assert item.report_id is None
            detail = json.loads(item.detail)
            assert set(detail) <= {
                "rule", "accounts_unanswered", "account_age_s", "accounts_reached", "window_s",
                "size_bucket_bytes",
            }  # fmt: skip
            assert b"user000" not in item.detail  # no recipient is named
        # A signal never fails a send: with the store closed, it is only logged.
        await storage.close()
        fired = await service.observe_send(sender, {b"zed": [1]}, [900], T0 + 2 * DAY)
        assert [s.rule for s in fired] == [UNANSWERED_FANOUT]
    finally:
        await storage.close()
