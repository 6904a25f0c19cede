"""Group messages under a warrant, at the relay: ``POST /v1/groups/{id}/messages`` through the
app, then the intercept store and ``GET /v1/warrants/{id}/intercepts``. A group message is
copied once per message (not per delivery), with the signed membership update of the view it
names, if a live warrant targets its sender or a member; otherwise it is not copied at all."""

from __future__ import annotations

from typing import Any

from group_kit import Members, members_of, new_group, put_ok, send
from server_kit import Env, Party, make_party, server_env, unb64
from test_server_lawful import COURT

from overt.crypto import DeterministicRng, sha256
from overt.protocol.groups import member_set_hash
from overt.server.codec import b64encode, format_address
from overt.services import court as court_tool
from overt.storage import MailKind, NewMail
from overt.storage.interfaces import Intercept, WarrantRecord
from overt.wire.group_messages import MembershipUpdate

DAY = 86_400


async def setup(env: Env, *names: str) -> list[Party]:
    parties = [make_party(name, seed=i + 1) for i, name in enumerate(names)]
    for p in parties:
        await env.register(p)
    return parties


async def live_warrant(env: Env, *targets: bytes, seed: str = "w") -> bytes:
    """A content warrant on ``targets`` whose window holds the env's clock, stored as served
    (the live set reads the store; serving itself is tested in test_server_lawful)."""
    now = env.clock.now // 1000
    start = now - now % DAY
    w = court_tool.make_warrant(
        COURT, targets=list(targets), start=start, end=start + 3 * DAY, seal_days=30, cap=10,
        reference="AUTH-G", legal_basis="s.15", judge_reference="J. Doe", now=start,
        rng=DeterministicRng(seed),
    )  # fmt: skip
    document = court_tool.sign_warrant_file(COURT, w)
    assert env.storage.warrants is not None
    await env.storage.warrants.add(
        WarrantRecord(w.warrant_id, 1, sha256(b"token"), document, w.window.end, w.sealed_until)
    )
    return w.warrant_id


async def copies(env: Env, warrant_id: bytes) -> tuple[Intercept, ...]:
    assert env.storage.intercepts is not None
    return await env.storage.intercepts.page(warrant_id, 0, 100)


async def group_send(env: Env, crew: Members, sender: Party, group_id: bytes, text: str) -> Any:
    message = crew.encrypt(sender.address, text, env.clock.now)
    response = await send(env, sender, group_id, message.encode())
    assert response.status_code == 200, response.text
    return message, response.json()


async def test_a_group_message_of_a_target_is_copied_once_with_its_membership() -> None:
    async with server_env() as env:
        alice, bob, carol, dave = await setup(env, "alice", "bob", "carol", "dave")
        alice2 = alice.sibling(2, seed=12)
        await env.link(alice, alice2)
        wid = await live_warrant(env, bob.account)  # bob is a member, not the sender
        group = new_group(alice, members_of(alice, bob, carol))
        await put_ok(env, alice, group.update)
        crew = Members(group.update, {alice.account: alice.identity.public_key},
                       [alice, alice2, bob, carol])  # fmt: skip
        message, sent = await group_send(env, crew, alice, group.id, "to three devices")
        assert len(sent["ids"]) == 3  # alice2, bob, carol

        (copy,) = await copies(env, wid)  # one message, one copy
        assert copy.kind is MailKind.GROUP
        assert copy.envelope == message.encode()
        assert copy.membership == group.update.encode()
        update = MembershipUpdate.decode(copy.membership)
        assert member_set_hash(group.id, update.membership_version, update.members) == (
            message.member_set_hash
        )
        assert (copy.sender_account, copy.sender_device) == (alice.account, 1)
        assert copy.mail_id == sent["ids"][0] and copy.server_time == sent["server_time"]

        # A group none of whose members is a target: nothing is copied.
        other = new_group(carol, members_of(carol, dave), seed=2)
        await put_ok(env, carol, other.update)
        others = Members(other.update, {carol.account: carol.identity.public_key}, [carol, dave])
        await group_send(env, others, carol, other.id, "not for the warrant")
        assert len(await copies(env, wid)) == 1


async def test_the_intercepts_route_says_the_kind_and_gives_the_membership() -> None:
    async with server_env() as env:
        alice, bob = await setup(env, "alice", "bob")
        wid = await live_warrant(env, alice.account)
        group = new_group(alice, members_of(alice, bob))
        await put_ok(env, alice, group.update)
        crew = Members(group.update, {alice.account: alice.identity.public_key}, [alice, bob])
        message, _ = await group_send(env, crew, bob, group.id, "from bob to alice's group")
        lawful = env.app.state.lawful
        page, more, total = await lawful.intercepted(wid, b"token", 0, 10)
        assert (len(page), more, total) == (1, False, 1)
        assert page[0].kind is MailKind.GROUP

        # Through HTTP: the body names the kind and carries the membership update.
        r = await env.http.get(
            f"/v1/warrants/{b64encode(wid)}/intercepts",
            headers={"authorization": f"Bearer {b64encode(b'token')}"},
        )
        assert r.status_code == 200, r.text
        (item,) = r.json()["intercepts"]
        assert item["kind"] == "group"
        assert unb64(item["envelope"]) == message.encode()
        assert unb64(item["membership"]) == group.update.encode()
        assert item["sender"] == format_address(bob.address)
        assert item["recipient"] == format_address(alice.address)


async def test_one_to_one_intercepts_say_envelope_and_carry_no_membership() -> None:
    async with server_env() as env:
        alice, bob = await setup(env, "alice", "bob")
        wid = await live_warrant(env, alice.account)
        lawful = env.app.state.lawful
        batch = [NewMail(bob.account, 1, alice.account, 1, b"envelope bytes")]
        assert await lawful.intercept(batch, [7], env.clock.now) == 1
        # A group item in the one-to-one hook is left to intercept_group, never copied bare.
        group_item = NewMail(bob.account, 1, alice.account, 1, b"group bytes", MailKind.GROUP)
        assert await lawful.intercept([group_item], [8], env.clock.now) == 0
        (copy,) = await copies(env, wid)
        assert (copy.kind, copy.membership, copy.mail_id) == (MailKind.ENVELOPE, None, 7)
