"""A device removed and added back while it missed the update that removed it: it catches up
from the server's view, leaves, and joins again at the view that adds it back, reading what
was sent there (the semantics of tests/protocol/test_groups.py's world) — also when the update
that adds it back, the new sender keys and the messages under the new view are all processed
in one pass of the group inbox, in whatever order they arrived."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, cast

import pytest

from overt.client import Client, FailureReason, Message, Response, ServerUnreachable
from overt.client.group_store import GroupStore, InboxKind
from overt.protocol.groups import apply_membership, create_sender_key, propose_membership

from .support import Call, Interposer, World, json_response


def _texts(messages: list[Message]) -> list[str]:
    return [m.text for m in messages]


async def _removal_missed(
    world: World,
) -> tuple[Client, Client, Client, Interposer, set[int]]:
    """alice (admin), bob and carol in a group at version 3; version 4 removes carol, and its
    update (the mail ids returned) never reaches her (the server's view still has it)."""
    inter = world.interposer()
    alice = await world.user("alice", "alice")
    bob = await world.user("bob", "bob")
    carol = await world.user("carol", "carol", inter)
    await alice.create_group("g", ["bob", "carol"])
    await alice.remove_members("g", ["carol"])  # v2
    await alice.add_members("g", ["carol"])  # v3
    assert await carol.sync() == []
    assert (await carol.group_info("g")).version == 3
    await alice.remove_members("g", ["carol"])  # v4: its update never reaches carol
    hidden: set[int] = set()

    async def hide_pending_pairwise(call: Call) -> Response | None:
        if call.method == "GET" and call.target.startswith("/v1/messages"):
            page = cast(dict[str, Any], (await call.proceed()).json())
            if not hidden:
                hidden.update(m["id"] for m in page["messages"] if m.get("kind") != "group")
                hidden.add(-1)
            page["messages"] = [m for m in page["messages"] if m["id"] not in hidden]
            return json_response(page)
        return None

    inter.hooks.append(hide_pending_pairwise)
    assert await carol.sync() == []
    assert len(hidden) == 2  # the update of v4, and only it
    return alice, bob, carol, inter, hidden


async def test_a_member_that_missed_its_removal_catches_up_and_joins_again(world: World) -> None:
    alice, bob, carol, inter, _ = await _removal_missed(world)
    await alice.add_members("g", ["carol"])  # v5
    await alice.send_group("g", "welcome back again")
    await bob.sync()
    await bob.send_group("g", "hi carol")
    got = _texts(await carol.sync())
    got += _texts(await carol.sync())
    info = await carol.group_info("g")
    assert (info.version, info.status) == (5, "member")
    assert ("GET", f"/v1/groups/{info.ref}?after=3") in inter.log  # v4 came from the server
    assert got == ["welcome back again", "hi carol"]
    assert await carol.undecryptable() == []


@pytest.mark.parametrize("order", ["as sent", "update last"])
async def test_rejoining_in_one_pass_loses_nothing(world: World, order: str) -> None:
    """The update of v5 (adding carol back), alice's and bob's new sender keys and their
    messages under v5 all wait in carol's group inbox, because the catch-up they trigger
    fails while her mail is read; once it answers, one pass applies her removal (v4) and
    meets the rest either in the order they were sent (the update first: it must join at
    once rather than wait for the next pass) or with the update last (the messages and keys
    before it must wait for it, not be dropped because carol is, for now, out of the group)."""
    alice, bob, carol, inter, hidden = await _removal_missed(world)
    await alice.add_members("g", ["carol"])  # v5
    await alice.send_group("g", "welcome back again")
    await bob.sync()
    await bob.send_group("g", "hi carol")
    ref = (await carol.group_info("g")).ref
    acked: list[object] = []
    delivered: list[str] = []
    refused: list[str] = []

    async def adverse(call: Call) -> Response | None:
        if call.method == "GET" and call.target == f"/v1/groups/{ref}?after=3" and not acked:
            refused.append(call.target)
            raise ServerUnreachable("the catch-up does not get through while mail is read")
        if call.method == "POST" and call.target == "/v1/messages/ack":
            acked.append(call.json)
        if call.method == "GET" and call.target.startswith("/v1/messages") and not delivered:
            page = cast(dict[str, Any], (await call.proceed()).json())
            mails = [m for m in page["messages"] if m["id"] not in hidden]
            delivered.extend(str(m.get("kind")) for m in mails)
            if order == "update last":  # group mail, then the keys, then the update
                group = [m for m in mails if m.get("kind") == "group"]
                mails = group + [m for m in reversed(mails) if m not in group]
            page["messages"] = mails
            return json_response(page)
        return None

    inter.hooks.insert(0, adverse)
    got = _texts(await carol.sync())
    # The update, alice's key, her message, bob's key, his message: one page, one pass.
    assert len(delivered) == 5 and delivered.count("group") == 2
    assert len(refused) == 5  # each mail's own drain stopped at the catch-up: all five waited
    assert acked
    info = await carol.group_info("g")
    assert (info.version, info.status) == (5, "member")
    assert sorted(got) == ["hi carol", "welcome back again"]
    assert await carol.sync() == []
    assert await carol.undecryptable() == []
    history = _texts(await carol.group_history("g", 2))
    assert sorted(history) == ["hi carol", "welcome back again"]


async def test_a_refused_update_that_would_add_a_removed_device_back_holds_nothing(
    world: World,
) -> None:
    """A key under a newer view waits for an update in the inbox that lists the removed device,
    but only while that update is there: once it is refused (a bad signature), the key is
    dropped in the same drain, and the device stays out of the group."""
    alice = await world.user("alice", "alice")
    carol = await world.user("carol", "carol")
    info = await alice.create_group("g", ["carol"])
    assert await carol.sync() == []
    await alice.remove_members("g", ["carol"])  # v2
    assert await carol.sync() == []
    assert (await carol.group_info("g")).status == "removed"
    gid = info.group_id
    admin = alice._active().account_identity
    assert admin is not None
    before = alice._groups.store.group(gid)
    assert before is not None
    update = propose_membership(before.state, admin, {b"alice": [1], b"carol": [1]})  # v3
    v3 = apply_membership(before.state, update, {b"alice": admin.public_key})
    _, dist = create_sender_key(v3, alice._rng)
    forged = replace(update, signature=bytes(len(update.signature)))
    sender = alice._active().device.address
    now = world.clock.now_ms()
    for mail_id, kind, data in (
        (900_001, InboxKind.KEY, dist.encode()),  # before the update that would add carol
        (900_002, InboxKind.UPDATE, forged.encode()),
    ):
        writer = GroupStore.inbox_writer(mail_id, kind, gid, sender, now, None, data, now)
        carol._store.commit_received(mail_id=mail_id, now_ms=now, extra=writer)
    assert carol._groups.store.inbox_size() == 2
    assert await carol._groups.drain() == []
    assert carol._groups.store.inbox_size() == 0
    after = await carol.group_info("g")
    assert (after.version, after.status) == (2, "removed")
    assert [(u.server_id, u.reason) for u in await carol.undecryptable()] == [
        (900_002, FailureReason.INVALID)
    ]
