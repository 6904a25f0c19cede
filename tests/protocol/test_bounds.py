"""The named bounds hold: a far jump is refused before any key is derived, stored skipped
keys never exceed their cap, and forgotten chains are dropped with their keys."""

from __future__ import annotations

import tracemalloc

import pytest

from overt.errors import LimitExceeded
from overt.protocol import SessionRecord
from overt.protocol.limits import MAX_RECEIVER_CHAINS, MAX_SKIP_PER_CHAIN, MAX_SKIPPED_KEYS
from overt.protocol.ratchet import RatchetState
from overt.protocol.session import Session

from .helpers import Pair, snapshot


def _jump_sender(pair: Pair, ns: int) -> None:
    rec = pair.alice.sessions[pair.bob.address]
    s = rec.current
    assert s is not None
    r = s.ratchet
    jumped = RatchetState(
        r.dhs, r.dhr, r.rk, r.cks, r.ckr, ns, r.nr, r.pn, r.prev_chains, r.skipped
    )
    pair.alice.sessions[pair.bob.address] = SessionRecord(
        Session(s.ad, s.peer_identity_dh, s.peer_identity_sign, s.base_key, s.pending_init, jumped),
        rec.archived,
    )


@pytest.mark.parametrize("ns", [MAX_SKIP_PER_CHAIN + 2, 2**32 - 1])
def test_far_jump_refused_without_deriving(ns: int) -> None:
    pair = Pair.make()
    pair.bob.decrypt(pair.send(pair.alice, b"first"))
    _jump_sender(pair, ns)
    env = pair.send(pair.alice, b"far ahead")
    before = snapshot(pair.bob)
    tracemalloc.start()
    with pytest.raises(LimitExceeded):
        pair.bob.decrypt(env)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 1_000_000  # nothing proportional to the jump was allocated
    assert snapshot(pair.bob) == before


@pytest.mark.parametrize("lost", [MAX_SKIP_PER_CHAIN, MAX_SKIP_PER_CHAIN + 1])
def test_real_gap_at_and_past_the_bound(lost: int) -> None:
    pair = Pair.make()
    pair.bob.decrypt(pair.send(pair.alice, b"first"))
    for _ in range(lost):
        pair.send(pair.alice, b"lost")
    env = pair.send(pair.alice, b"after the gap")
    if lost <= MAX_SKIP_PER_CHAIN:
        assert pair.bob.decrypt(env).body == b"after the gap"
    else:
        with pytest.raises(LimitExceeded):
            pair.bob.decrypt(env)


def test_skipped_keys_are_capped_and_oldest_go_first() -> None:
    pair = Pair.make()
    a, b = pair.alice, pair.bob
    b.decrypt(pair.send(a, b"start"))
    early = None
    for round_ in range(4):
        lost = [pair.send(a, b"lost") for _ in range(MAX_SKIP_PER_CHAIN - 1)]
        if early is None:
            early = lost[0]
        b.decrypt(pair.send(a, b"kept"))
        a.decrypt(pair.send(b, f"ack {round_}".encode()))  # new chain each round
        current = b.sessions[a.address].current
        assert current is not None
        assert len(current.ratchet.skipped) <= MAX_SKIPPED_KEYS
        assert len(current.ratchet.prev_chains) <= MAX_RECEIVER_CHAINS - 1
    assert early is not None
    # The oldest skipped key was evicted: the late message can no longer be read.
    with pytest.raises(Exception) as info:
        b.decrypt(early)
    assert type(info.value).__name__ in {"DuplicateMessage", "InvalidMessage"}
