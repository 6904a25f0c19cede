"""Share coordinates within one account (docs/matching.md §2, §7): every device of an account
matches under the account's seed, so no two of its images — whichever device sent them, and
across links and removals — may use the same ``(generation, x)``. Each device's coordinate is
its matching slot (handed out once by the device holding the account key, counting down from
255) and its own image counter; devices linked before slots existed use their device id."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from overt.client.matching import _Profile
from overt.errors import LocalError
from overt.safety.matching.limits import MAX_DEVICES
from overt.safety.matching.psi import PsiParams, share_coordinate

PRIMARY_SLOT = 1

_ops = st.lists(
    st.one_of(
        st.tuples(st.just("link"), st.just(0), st.just(0)),
        st.tuples(st.just("again"), st.integers(0, 63), st.just(0)),
        st.tuples(st.just("remove"), st.integers(0, 63), st.just(0)),
        st.tuples(st.just("send"), st.integers(0, 63), st.integers(1, 200)),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(legacy=st.integers(0, 6), ops=_ops, per_generation=st.sampled_from([1, 7, 64, 4096]))
def test_no_two_images_of_an_account_share_a_coordinate(
    legacy: int, ops: list[tuple[str, int, int]], per_generation: int
) -> None:
    params = PsiParams(threshold=3, generation_images=per_generation)
    with tempfile.TemporaryDirectory() as tmp:
        primary = _Profile(Path(tmp))
        try:
            # Device id -> (slot, identity key); the primary and devices linked before slots
            # existed use their device id. ``ever`` keeps removed devices: their images stay.
            listed: dict[int, tuple[int, bytes]] = {1: (PRIMARY_SLOT, b"primary")}
            listed.update({d: (d, b"legacy %d" % d) for d in range(2, 2 + legacy)})
            ever = {key: slot for slot, key in listed.values()}
            counters = dict.fromkeys(ever, 0)
            used: set[tuple[int, int]] = set()
            for n, (op, pick, count) in enumerate(ops):
                ids = sorted(listed)
                if op == "link":
                    new_id, key = max(ids) + 1, b"device %d" % n
                    slot = primary.allocate_slot(key, ids, PRIMARY_SLOT)
                    assert slot is not None and 0 <= slot < MAX_DEVICES
                    listed[new_id] = (slot, key)
                    ever[key], counters[key] = slot, 0
                elif op == "again":  # the same request approved again: the same slot
                    slot, key = listed[ids[pick % len(ids)]]
                    if key.startswith(b"device"):
                        assert primary.allocate_slot(key, ids, PRIMARY_SLOT) == slot
                elif op == "remove" and len(ids) > 1:
                    del listed[ids[1 + pick % (len(ids) - 1)]]
                elif op == "send":
                    slot, key = listed[ids[pick % len(ids)]]
                    for _ in range(count):
                        coordinate = share_coordinate(slot, counters[key], params)
                        counters[key] += 1
                        assert coordinate not in used
                        used.add(coordinate)
            assert len(set(ever.values())) == len(ever)  # every device its own slot
        finally:
            primary.close()


def test_slots_run_out_rather_than_reach_a_listed_device(tmp_path: Path) -> None:
    primary = _Profile(tmp_path)
    try:
        listed = list(range(1, 201))  # devices 2..200 linked before slots existed
        given_out = [primary.allocate_slot(b"%d" % i, listed, PRIMARY_SLOT) for i in range(60)]
        assert given_out[:55] == list(range(255, 200, -1))
        assert given_out[55:] == [None] * 5  # 200 is listed: its images use slot 200
        assert primary.allocate_slot(b"7", listed, PRIMARY_SLOT) == 248  # as handed out
    finally:
        primary.close()


def test_image_counter_is_stored_before_use(tmp_path: Path) -> None:
    profile = _Profile(tmp_path)
    try:
        assert [profile.next_sequence() for _ in range(3)] == [0, 1, 2]
    finally:
        profile.close()
    again = _Profile(tmp_path)  # a restart continues, never reuses a value
    try:
        assert again.next_sequence() == 3
    finally:
        again.close()


def test_coordinates_refuse_a_slot_outside_the_field() -> None:
    params = PsiParams(threshold=3)
    with pytest.raises(LocalError):
        share_coordinate(MAX_DEVICES, 0, params)
    assert share_coordinate(MAX_DEVICES - 1, 0, params) != share_coordinate(0, 0, params)
