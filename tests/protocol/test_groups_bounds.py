"""The named group bounds hold: a far jump along a sender chain is refused before any key is
derived, skipped keys per chain never exceed their cap (oldest first out), and decoders refuse
member lists beyond the limits."""

from __future__ import annotations

import tracemalloc

import pytest

from overt.errors import DecodeError, DuplicateMessage, LimitExceeded, LocalError
from overt.protocol.groups import group_decrypt, propose_membership
from overt.protocol.limits import MAX_GROUP_FORWARD_JUMP, MAX_GROUP_MEMBERS, MAX_GROUP_SKIPPED_KEYS
from overt.wire import Writer
from overt.wire.group_messages import GroupMember, MembershipUpdate

from .test_groups_support import Small, forge

A1, B = Small.A1, Small.B


@pytest.mark.parametrize("iteration", [MAX_GROUP_FORWARD_JUMP + 1, 2**32 - 1])
def test_far_jump_refused_without_deriving(iteration: int) -> None:
    g = Small.make()
    wire = forge(g.states[A1], g.keys[A1], b"far ahead", iteration=iteration)
    before = g.states[B].encode()
    tracemalloc.start()
    with pytest.raises(LimitExceeded):
        group_decrypt(g.states[B], wire, None)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 1_000_000  # nothing proportional to the jump was allocated
    assert g.states[B].encode() == before


@pytest.mark.parametrize("lost", [MAX_GROUP_FORWARD_JUMP, MAX_GROUP_FORWARD_JUMP + 1])
def test_real_gap_at_and_past_the_bound(lost: int) -> None:
    g = Small.make()
    wire = forge(g.states[A1], g.keys[A1], b"after the gap", iteration=lost)
    if lost <= MAX_GROUP_FORWARD_JUMP:
        got, state = group_decrypt(g.states[B], wire, None)
        assert got.body == b"after the gap"
        assert len(state.receiver_keys(A1)[0].skipped) == lost
    else:
        with pytest.raises(LimitExceeded):
            group_decrypt(g.states[B], wire, None)


def test_skipped_keys_are_capped_and_oldest_go_first() -> None:
    g = Small.make()
    key = g.keys[A1]
    step = MAX_GROUP_FORWARD_JUMP
    state = g.states[B]
    first_lost = forge(g.states[A1], key, b"lost early", iteration=0)
    for round_ in range(1, 4):
        wire = forge(g.states[A1], key, b"kept", iteration=round_ * step)
        state = group_decrypt(state, wire, None)[1]
        assert len(state.receiver_keys(A1)[0].skipped) <= MAX_GROUP_SKIPPED_KEYS
    with pytest.raises(DuplicateMessage):  # its key was evicted first
        group_decrypt(state, first_lost, None)
    late = forge(g.states[A1], key, b"late but kept", iteration=3 * step - 1)
    assert group_decrypt(state, late, None)[0].body == b"late but kept"


def test_member_lists_beyond_the_limits_are_refused() -> None:
    g = Small.make()
    too_many = {f"m{i:05}".encode(): [1] for i in range(MAX_GROUP_MEMBERS)}
    with pytest.raises(LocalError):
        propose_membership(g.states[A1], g.admin, {**too_many, b"alice": [1]})
    real = propose_membership(g.states[A1], g.admin, {b"alice": [1], b"bob": [1]})
    # Hand-encode an update with one member too many: the decoder stops at the count.
    w = Writer().u8(1).fixed(real.group_id, 32).u64(2).fixed(real.parent, 32).vec(b"", 1)
    w.vec(b"alice", 1).u16(1).vec(b"alice", 1).u16(MAX_GROUP_MEMBERS + 1)
    with pytest.raises(DecodeError):
        MembershipUpdate.decode(w.getvalue())
    # …and a member listing its devices out of order, or none.
    for devices in [(2, 1), (1, 1), ()]:
        w = Writer().u8(1).fixed(real.group_id, 32).u64(2).fixed(real.parent, 32).vec(b"", 1)
        w.vec(b"alice", 1).u16(1).vec(b"alice", 1).u16(1).vec(b"alice", 1).u8(len(devices))
        for d in devices:
            w.u32(d)
        with pytest.raises(DecodeError):
            MembershipUpdate.decode(w.fixed(bytes(64), 64).getvalue())
    with pytest.raises(ValueError):
        GroupMember(b"alice", (2, 1)).check()
