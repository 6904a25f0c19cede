"""The agency's handling of intercepted group messages (``overt.services.lea``): the member
list comes from the signed membership update the provider copied with the message and must be
the view the message names; the access item carries it to the custodians; the selection keeps
covered group messages once and skips, with a reason, those it cannot open or the warrant
does not cover. And the intercept's JSON form, old lines included."""

from __future__ import annotations

from dataclasses import replace

import pytest

from overt.access import AccessRequest
from overt.access.context import GroupContext, decode_context
from overt.access.custodian_policy import GroupMembers
from overt.crypto import DeterministicRng, Point, Scalar
from overt.errors import DecodeError
from overt.protocol import EscrowPolicy
from overt.protocol.groups import (
    GroupState,
    Membership,
    create_group,
    create_sender_key,
    group_encrypt,
    propose_membership,
)
from overt.protocol.identity import AccountIdentity
from overt.services import lea
from overt.services.custodian_client import InterceptedEnvelope
from overt.wire import Address
from overt.wire.group_messages import GroupMessage, MembershipUpdate
from overt.wire.jcs import canonicalize, parse_strict

from .support import EPOCH, MSG_MS, make_warrant

POLICY = EscrowPolicy(EPOCH, Point.base_mul(Scalar.from_int(7)))


def group(
    members: dict[bytes, list[int]], *, seed: int = 1, text: bytes = b"to the group"
) -> tuple[GroupMessage, MembershipUpdate, GroupState]:
    """A group bob (device 1) made, and one message of his."""
    rng = DeterministicRng(seed)
    admin = AccountIdentity.generate(b"bob", rng)
    state, update = create_group(admin, Address(b"bob", 1), b"g", members, rng)
    key, _ = create_sender_key(state, rng)
    msg, _ = group_encrypt(state, key, text, MSG_MS, rng, POLICY)
    return msg, update, state


def intercept(n: int, msg: GroupMessage, update: bytes | None) -> InterceptedEnvelope:
    return InterceptedEnvelope(
        n, 100 + n, MSG_MS, "Ym9i:1", "YWxpY2U:1", msg.encode(), "group", update
    )


def test_the_member_list_is_the_view_the_message_names() -> None:
    msg, update, state = group({b"alice": [1], b"bob": [1]})
    members = lea.group_members(msg, update.encode())
    assert members == GroupMembers(state.membership.version, state.membership.members)
    item = lea.group_access_item(msg, members)
    ctx = decode_context(item.context)
    assert isinstance(ctx, GroupContext) and ctx.member_set_hash == msg.member_set_hash
    assert item.group_members == members
    request = AccessRequest(b"w" * 32, (item,))
    assert AccessRequest.decode(request.encode()) == request  # it reaches the custodians

    _, other_update, _ = group({b"alice": [1], b"bob": [1]}, seed=2)
    with pytest.raises(DecodeError, match="another group"):
        lea.group_members(msg, other_update.encode())
    rng = DeterministicRng(1)
    admin = AccountIdentity.generate(b"bob", rng)  # the same admin key as group(seed=1)
    v2 = propose_membership(
        GroupState(Address(b"bob", 1), Membership.from_update(update)), admin,
        {b"alice": [1], b"bob": [1], b"carol": [1]},
    )  # fmt: skip
    with pytest.raises(DecodeError, match="another version"):
        lea.group_members(msg, v2.encode())
    forged = replace(msg, member_set_hash=bytes(32))
    with pytest.raises(DecodeError, match="do not hash"):
        lea.group_members(forged, update.encode())
    with pytest.raises(DecodeError):
        lea.group_members(msg, b"not an update")
    with pytest.raises(DecodeError, match="no access field"):
        lea.group_access_item(replace(msg, access=None), members)


def test_selection_keeps_covered_group_messages_once_and_says_why_it_skips_others() -> None:
    warrant = make_warrant((b"alice",))
    covered, covered_update, _ = group({b"alice": [1], b"bob": [1]})
    untargeted, untargeted_update, _ = group({b"bob": [1], b"dave": [1]}, seed=3)
    mismatched, _, _ = group({b"alice": [1], b"bob": [1]}, seed=4)
    intercepts = [
        intercept(1, covered, covered_update.encode()),
        intercept(2, covered, covered_update.encode()),  # the same message again
        intercept(3, untargeted, untargeted_update.encode()),
        intercept(4, mismatched, covered_update.encode()),  # another group's update
    ]
    report = lea.DecryptReport()
    selected = lea._select(intercepts, warrant, report)
    (messages,) = selected.values()
    (only,) = messages
    assert only.envelope is None and only.raw == covered.encode()
    assert only.item.group_members is not None
    assert {m.account for m in only.item.group_members.members} == {b"alice", b"bob"}
    assert list(selected) == [EPOCH]
    assert len(report.skipped) == 3
    assert report.skipped[0].startswith("intercept 2: the same message twice")
    assert report.skipped[1].startswith("intercept 3: outside the warrant")
    assert report.skipped[2].startswith("intercept 4: cannot be opened")


def test_intercept_json_carries_the_kind_and_reads_old_lines() -> None:
    msg, update, _ = group({b"alice": [1], b"bob": [1]})
    item = intercept(5, msg, update.encode())
    assert InterceptedEnvelope.from_json(parse_strict(canonicalize(item.to_json()))) == item
    old = {
        "envelope": "ZQ",
        "id": 1,
        "mail_id": 2,
        "recipient": "YQ:1",
        "sender": "Yg:1",
        "server_time": 3,
    }
    read = InterceptedEnvelope.from_json(old)
    assert (read.kind, read.membership, read.envelope) == ("envelope", None, b"e")
    assert InterceptedEnvelope.from_json(read.to_json()) == read
    for bad in (
        {**old, "kind": "group", "membership": None},
        {**old, "kind": "envelope", "membership": "dQ"},
        {**old, "kind": "broadcast", "membership": None},
        {**old, "kind": "group"},
        {**old, "membership": "dQ"},
    ):
        with pytest.raises(DecodeError):
            InterceptedEnvelope.from_json(bad)
