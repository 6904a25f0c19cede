"""Metadata signals: abuse patterns the relay can see without reading a message.

The relay sees, per send, who sent, to which accounts, when, and how large each envelope is —
nothing else (docs/safety.md, "What the provider can and cannot see"). Two rules look at only
that and put an item in the moderation queue (:meth:`ReportStore.flag
<overt.storage.moderation.ReportStore.flag>`) when they fire, at most once per account and rule
per :attr:`SignalConfig.cooldown_ms`:

* ``unanswered_fanout`` — a **new account messaging many accounts that never answered**: an
  account first seen sending within :attr:`SignalConfig.new_account_ms` has contacted at least
  :attr:`SignalConfig.unanswered_accounts` accounts none of which ever sent it anything (the
  shape of spam and of cold outreach to strangers);
* ``size_burst`` — a **burst of identically sized ciphertexts to many recipients**: within
  :attr:`SignalConfig.burst_window_ms`, sends whose envelopes fall in one size bucket of
  :attr:`SignalConfig.size_bucket_bytes` reached at least
  :attr:`SignalConfig.burst_accounts` distinct accounts (one text pasted to many people).

A queue item carries the account, the rule and counts (accounts reached, window, account age,
size bucket) — never content, never who the recipients were. Both are heuristics a moderator
reviews: a group announcement trips ``size_burst``, a popular new account may trip
``unanswered_fanout``. What they cannot see: content (so not *what* was sent), and anything
outside one node's memory (the state is per node and per process lifetime: "new" means first
seen sending by this node since it started; with several nodes each sees its share).

:class:`SignalRules` is the sans-I/O part (values in, :class:`Signal` values out; time passed
in); :class:`SignalService` is the hook the message service calls after each accepted send,
and the only part that touches storage. A failure to queue a signal is logged and never fails
the send. Memory is bounded by :attr:`SignalConfig.tracked_accounts` (least recently active
forgotten) and the per-account bounds.
"""

from __future__ import annotations

import json
import logging
from collections import Counter, OrderedDict, deque
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from overt.errors import OvertError
from overt.storage.moderation import NewSignal, ReportStore
from overt.wire import Address

_log = logging.getLogger("overt.server.signals")

UNANSWERED_FANOUT: Final = "unanswered_fanout"
SIZE_BURST: Final = "size_burst"

SIGNAL_SEVERITY: Final[Mapping[str, int]] = {UNANSWERED_FANOUT: 4, SIZE_BURST: 3}
"""Queue severity per rule: below harassment reports (5), above plain spam reports (3) for a
new account cold-messaging strangers."""

DAY_MS: Final = 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class SignalConfig:
    """The rules' thresholds and the state's bounds (every one named, every one tunable)."""

    #: An account is "new" this long after this node first saw it send.
    new_account_ms: int = 7 * DAY_MS
    #: Distinct accounts a new account contacted without any answer before ``unanswered_fanout``.
    unanswered_accounts: int = 20
    #: The window of ``size_burst``.
    burst_window_ms: int = 10 * 60 * 1000
    #: Distinct accounts reached with one size bucket inside the window before ``size_burst``.
    burst_accounts: int = 20
    #: Width of a size bucket (envelopes of one text differ by the recipient's name length).
    size_bucket_bytes: int = 64
    #: After a rule fired for an account, it stays quiet for that account this long.
    cooldown_ms: int = DAY_MS
    #: Accounts whose sending is remembered (least recently active forgotten first).
    tracked_accounts: int = 100_000
    #: Per account: contacts remembered as unanswered, and as having answered.
    contacts_per_account: int = 1000
    #: Per account: sends remembered inside the burst window.
    sends_per_window: int = 1000

    def __post_init__(self) -> None:
        if min(
            self.new_account_ms, self.unanswered_accounts, self.burst_window_ms,
            self.burst_accounts, self.size_bucket_bytes, self.cooldown_ms, self.tracked_accounts,
            self.contacts_per_account, self.sends_per_window,
        ) < 1:  # fmt: skip
            raise ValueError("every signal threshold and bound is a positive integer")


@dataclass(frozen=True, slots=True)
class Signal:
    """One rule firing for one account: metadata only."""

    account: bytes
    rule: str
    at_ms: int
    detail: Mapping[str, int]

    @property
    def severity(self) -> int:
        return SIGNAL_SEVERITY[self.rule]

    def detail_bytes(self) -> bytes:
        return json.dumps({"rule": self.rule, **self.detail}, sort_keys=True).encode()


@dataclass(slots=True)
class _Account:
    first_seen_ms: int
    unanswered: OrderedDict[bytes, None] = field(default_factory=OrderedDict)
    answered_by: OrderedDict[bytes, None] = field(default_factory=OrderedDict)
    sends: deque[tuple[int, int, tuple[bytes, ...]]] = field(default_factory=deque)
    reached: dict[int, Counter[bytes]] = field(default_factory=dict)
    fired: dict[str, int] = field(default_factory=dict)


def _remember(d: OrderedDict[bytes, None], key: bytes, bound: int) -> None:
    d[key] = None
    d.move_to_end(key)
    while len(d) > bound:
        d.popitem(last=False)


class SignalRules:
    """The rules over the sends one node observes (see the module docstring). No I/O."""

    def __init__(self, config: SignalConfig | None = None) -> None:
        self.config = config if config is not None else SignalConfig()
        self._accounts: OrderedDict[bytes, _Account] = OrderedDict()

    def __len__(self) -> int:
        return len(self._accounts)

    def _state(self, account: bytes, now_ms: int) -> _Account:
        state = self._accounts.pop(account, None)
        if state is None:
            state = _Account(now_ms)
        self._accounts[account] = state
        while len(self._accounts) > self.config.tracked_accounts:
            self._accounts.popitem(last=False)
        return state

    def observe_send(
        self, sender: bytes, recipients: Collection[bytes], sizes: Sequence[int], now_ms: int
    ) -> list[Signal]:
        """Account for one accepted send of ``sender`` to ``recipients`` (accounts; the
        sender's own is ignored) with envelopes of ``sizes`` bytes; the signals that fire."""
        others = sorted({r for r in recipients if r != sender})
        if not others:
            return []
        cfg = self.config
        for r in others:  # the recipients' view: the sender answered them
            known = self._accounts.get(r)
            if known is not None:
                known.unanswered.pop(sender, None)
                _remember(known.answered_by, sender, cfg.contacts_per_account)
        state = self._state(sender, now_ms)
        fired: list[Signal] = []
        for r in others:
            if r not in state.answered_by:
                _remember(state.unanswered, r, cfg.contacts_per_account)
        age = now_ms - state.first_seen_ms
        if age <= cfg.new_account_ms and len(state.unanswered) >= cfg.unanswered_accounts:
            signal = self._fire(state, sender, UNANSWERED_FANOUT, now_ms, {
                "accounts_unanswered": len(state.unanswered), "account_age_s": age // 1000,
            })  # fmt: skip
            if signal is not None:
                fired.append(signal)
        if sizes:
            bucket = min(sizes) // cfg.size_bucket_bytes
            reached = self._burst(state, bucket, tuple(others), now_ms)
            if reached >= cfg.burst_accounts:
                signal = self._fire(state, sender, SIZE_BURST, now_ms, {
                    "accounts_reached": reached, "window_s": cfg.burst_window_ms // 1000,
                    "size_bucket_bytes": bucket * cfg.size_bucket_bytes,
                })  # fmt: skip
                if signal is not None:
                    fired.append(signal)
        return fired

    def _burst(self, state: _Account, bucket: int, accounts: tuple[bytes, ...], now: int) -> int:
        cfg = self.config
        while state.sends and (
            state.sends[0][0] <= now - cfg.burst_window_ms
            or len(state.sends) >= cfg.sends_per_window
        ):
            _, old_bucket, old_accounts = state.sends.popleft()
            counter = state.reached[old_bucket]
            counter.subtract(old_accounts)
            for a in old_accounts:
                if counter[a] <= 0:
                    del counter[a]
            if not counter:
                del state.reached[old_bucket]
        state.sends.append((now, bucket, accounts))
        counter = state.reached.setdefault(bucket, Counter())
        counter.update(accounts)
        return len(counter)

    def _fire(
        self, state: _Account, account: bytes, rule: str, now: int, detail: Mapping[str, int]
    ) -> Signal | None:
        last = state.fired.get(rule)
        if last is not None and now - last < self.config.cooldown_ms:
            return None
        state.fired[rule] = now
        return Signal(account, rule, now, dict(detail))


class SignalService:
    """The message service's hook: evaluate the rules on each send, queue what fires."""

    def __init__(self, reports: ReportStore | None, rules: SignalRules | None = None) -> None:
        self._reports = reports
        self.rules = rules if rules is not None else SignalRules()

    async def observe_send(
        self,
        sender: Address,
        recipients: Mapping[bytes, Sequence[int]],
        sizes: Sequence[int],
        now: int,
    ) -> list[Signal]:
        """Account for one accepted send (``recipients`` as the send request names them:
        account → device ids; ``sizes``: the envelopes' lengths) and queue every signal that
        fires. Never raises for a storage failure: a signal is not worth a failed send."""
        fired = self.rules.observe_send(sender.account, recipients.keys(), sizes, now)
        if self._reports is None:
            return fired
        for signal in fired:
            try:
                item = NewSignal(
                    signal.account, signal.rule, signal.severity, signal.at_ms,
                    signal.detail_bytes(),
                )  # fmt: skip
                await self._reports.flag(item)
            except OvertError as exc:
                _log.warning(
                    "a metadata signal could not be queued",
                    extra={"fields": {"rule": signal.rule, "error": type(exc).__name__}},
                )
        return fired


__all__ = [
    "SIGNAL_SEVERITY",
    "SIZE_BURST",
    "UNANSWERED_FANOUT",
    "Signal",
    "SignalConfig",
    "SignalRules",
    "SignalService",
]
