"""Group membership on the relay: ``PUT`` and ``GET /v1/groups/{id}`` with real signed updates
(``overt.protocol.groups``); every refusal stores nothing."""

from __future__ import annotations

import dataclasses
from typing import Any

from group_kit import Group, members_of, new_group, put, put_ok, view
from server_kit import Env, Party, b64, make_party, server_env, unb64

from overt.protocol.groups import Membership
from overt.wire.group_messages import MembershipUpdate


async def setup(env: Env, *names: str) -> list[Party]:
    parties = [make_party(name, seed=i + 1) for i, name in enumerate(names)]
    for p in parties:
        await env.register(p)
    return parties


def signed_by(party: Party, update: MembershipUpdate) -> MembershipUpdate:
    """``update`` as ``party``'s account key signs it (whatever the protocol allows)."""
    return update.with_signature(party.identity.key.sign(update.signed_part()))


async def history(env: Env, party: Party, group: Group) -> list[MembershipUpdate]:
    response = await view(env, party, group)
    assert response.status_code == 200, response.text
    return [MembershipUpdate.decode(unb64(u)) for u in response.json()["updates"]]


async def test_create_add_remove_rename() -> None:
    async with server_env() as env:
        alice, bob, carol = await setup(env, "alice", "bob", "carol")
        group = new_group(alice, members_of(alice, bob))
        first = await put_ok(env, alice, group.update)
        m1 = Membership.from_update(group.update)
        assert first == {
            "group_id": b64(group.id),
            "version": 1,
            "member_set_hash": b64(m1.member_set_hash),
        }
        sent = [group.update]
        for members, name in (
            (members_of(alice, bob, carol), None),  # add carol
            (members_of(alice, carol), None),  # remove bob
            (members_of(alice, carol), b"renamed"),  # rename
        ):
            update = group.next(members, name=name)
            answer = await put_ok(env, alice, update)
            assert answer["version"] == update.membership_version
            assert unb64(answer["member_set_hash"]) == (
                Membership.from_update(update).member_set_hash
            )
            group.update = update
            sent.append(update)
        response = await view(env, carol, group)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["version"] == 4
        assert body["more"] is False
        assert [MembershipUpdate.decode(unb64(u)) for u in body["updates"]] == sent
        assert body["member_set_hash"] == b64(Membership.from_update(sent[-1]).member_set_hash)
        assert sent[-1].name == b"renamed"
        assert set(body["devices"]) == {alice.b64, carol.b64}
        assert body["devices"][alice.b64]["devices"] == [1]
        assert body["devices"][alice.b64]["serial"] == 1
        assert unb64(body["devices"][alice.b64]["signed_device_list"]) == (
            alice.signed_list([alice.device], 1).encode()
        )
        assert body["devices_changed"] is False
        after = (await view(env, carol, group, after=2)).json()
        assert [MembershipUpdate.decode(unb64(u)) for u in after["updates"]] == sent[2:]


async def test_refused_updates_store_nothing() -> None:
    async with server_env() as env:
        alice, bob, carol = await setup(env, "alice", "bob", "carol")
        group = new_group(alice, members_of(alice, bob))
        await put_ok(env, alice, group.update)
        m1 = Membership.from_update(group.update)
        good = group.next(members_of(alice, bob, carol))
        forged_sig = bytearray(good.signature)
        forged_sig[0] ^= 1
        refusals: list[tuple[str, Party, MembershipUpdate, int, str]] = [
            # submitted by bob, signed by alice: only the signer's account may submit
            ("wrong signer", bob, good, 403, "forbidden"),
            # bob signs a change (naming himself admin): not an admin of the current view
            (
                "non-admin",
                bob,
                signed_by(bob, dataclasses.replace(good, signer=bob.account,
                                                   admins=(alice.account, bob.account))),
                403,
                "forbidden",
            ),
            ("forged signature", alice, good.with_signature(bytes(forged_sig)), 400, "invalid"),
            (
                "version gap",
                alice,
                signed_by(alice, dataclasses.replace(good, membership_version=3)),
                409,
                "stale_group",
            ),
            (
                "wrong parent",
                alice,
                signed_by(alice, dataclasses.replace(good, parent=b"\x07" * 32)),
                409,
                "stale_group",
            ),
            (
                "a repeat of version 1",
                alice,
                group.update,
                409,
                "stale_group",
            ),
        ]  # fmt: skip
        for what, who, update, status, code in refusals:
            response = await put(env, who, update)
            assert response.status_code == status, (what, response.text)
            assert response.json()["error"] == code, what
            if code == "stale_group":
                stale = response.json()["group"]
                assert stale["version"] == 1, what
                assert stale["member_set_hash"] == b64(m1.member_set_hash), what
                assert [unb64(u) for u in stale["updates"]] == [group.update.encode()], what
            assert await history(env, alice, group) == [group.update], what
        assert (await view(env, carol, group)).status_code == 404  # carol was never added
        # the good update still applies: nothing of the refusals was kept
        assert (await put_ok(env, alice, good))["version"] == 2


async def test_tampered_update_bytes_are_malformed() -> None:
    async with server_env() as env:
        alice, bob = await setup(env, "alice", "bob")
        group = new_group(alice, members_of(alice, bob))
        response = await put(env, alice, group.update, data=group.update.encode() + b"\x00")
        assert response.status_code == 400
        assert response.json()["error"] == "malformed"
        other = new_group(alice, members_of(alice, bob), seed=2)
        response = await env.call(
            alice, "PUT", group.path, json_body={"membership": b64(other.update.encode())}
        )
        assert response.status_code == 400
        assert response.json()["error"] == "mismatch"
        assert (await view(env, alice, group)).status_code == 404


async def test_members_must_exist_with_registered_devices() -> None:
    async with server_env() as env:
        alice, bob = await setup(env, "alice", "bob")
        ghost = new_group(alice, {alice.account: [1], b"nobody": [1]})
        response = await put(env, alice, ghost.update)
        assert response.status_code == 404, response.text
        assert response.json()["error"] == "not_found"
        extra = new_group(alice, {alice.account: [1], bob.account: [1, 7]})
        response = await put(env, alice, extra.update)
        assert response.status_code == 409, response.text
        body = response.json()
        assert body["error"] == "stale_devices"
        assert body["accounts"] == {
            bob.b64: {
                "serial": 1,
                "devices": [1],
                "signed_device_list": b64(bob.signed_list([bob.device], 1).encode()),
            }
        }
        for group in (ghost, extra):
            assert (await view(env, alice, group)).status_code == 404


async def test_an_unknown_group_starts_at_version_one() -> None:
    async with server_env() as env:
        alice, bob = await setup(env, "alice", "bob")
        group = new_group(alice, members_of(alice, bob))
        later = group.next(members_of(alice))  # version 2 of a group the server never saw
        response = await put(env, alice, later)
        assert response.status_code == 404
        assert (await view(env, alice, group)).status_code == 404


async def test_who_may_read_a_group() -> None:
    async with server_env() as env:
        alice, bob, carol, dave = await setup(env, "alice", "bob", "carol", "dave")
        group = new_group(alice, members_of(alice, bob, carol))
        await put_ok(env, alice, group.update)
        removal = group.next(members_of(alice, carol))
        await put_ok(env, alice, removal)
        group.update = removal
        for member in (alice, carol):
            assert (await view(env, member, group)).status_code == 200
        # bob was removed, and learns it
        response = await view(env, bob, group)
        assert response.status_code == 200
        latest = MembershipUpdate.decode(unb64(response.json()["updates"][-1]))
        assert bob.account not in [m.account for m in latest.members]
        # dave never belonged: the group does not exist for him, exactly like an unknown one
        stranger = await view(env, dave, group)
        unknown = await env.call(dave, "GET", "/v1/groups/" + b64(bytes(32)))
        assert stranger.status_code == unknown.status_code == 404
        assert stranger.json()["error"] == unknown.json()["error"] == "not_found"
        # and he cannot probe it with an update either
        probe = new_group(dave, members_of(dave))
        probe_update = dataclasses.replace(probe.update, group_id=group.id)
        response = await put(env, dave, signed_by(dave, probe_update))
        assert response.status_code == 404
        assert "group" not in response.json()


async def test_a_replayed_request_is_refused() -> None:
    async with server_env() as env:
        alice, bob = await setup(env, "alice", "bob")
        group = new_group(alice, members_of(alice, bob))
        body: dict[str, Any] = {"membership": b64(group.update.encode())}
        timestamp = env.clock.advance()
        first = await env.call(alice, "PUT", group.path, json_body=body, timestamp=timestamp)
        assert first.status_code == 200
        again = await env.call(alice, "PUT", group.path, json_body=body, timestamp=timestamp)
        assert again.status_code == 401
        assert again.json()["error"] == "unauthenticated"


async def test_devices_changed_after_a_member_links_a_device() -> None:
    async with server_env() as env:
        alice, bob = await setup(env, "alice", "bob")
        group = new_group(alice, members_of(alice, bob))
        await put_ok(env, alice, group.update)
        assert (await view(env, alice, group)).json()["devices_changed"] is False
        await env.link(bob, bob.sibling(2, seed=22))
        body = (await view(env, alice, group)).json()
        assert body["devices_changed"] is True
        assert body["devices"][bob.b64]["devices"] == [1, 2]
        assert body["devices"][bob.b64]["serial"] == 2
        # the admin refreshes the view with bob's current devices
        refresh = group.next(members_of(alice, bob))
        assert refresh.members[1].devices == (1, 2)
        await put_ok(env, alice, refresh)
        group.update = refresh
        assert (await view(env, alice, group)).json()["devices_changed"] is False
