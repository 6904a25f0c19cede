"""Hypothesis: random interleavings of membership changes, device links and sends through the
relay; every accepted send reaches exactly the devices of the current view that are still
registered, but the sender, once each, with a tag each; a stale send is refused with the
current version; nothing reaches a removed member."""

from __future__ import annotations

import asyncio
from typing import Any

from group_kit import Members, new_group, put_ok, send
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_kit import Env, Party, b64, make_party, server_env, unb64

from overt.wire import Address

NAMES = ("alice", "bob", "carol", "dave")

Op = tuple[str, int]
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(1, 3)),
        st.tuples(st.just("remove"), st.integers(1, 3)),
        st.tuples(st.just("link"), st.integers(1, 3)),
        st.tuples(st.just("refresh"), st.just(0)),
        st.tuples(st.just("send"), st.integers(0, 3)),
        st.tuples(st.just("stale"), st.integers(0, 3)),
    ),
    min_size=1,
    max_size=10,
)


def listed(view: dict[bytes, list[int]]) -> dict[bytes, list[int]]:
    return {a: sorted(d) for a, d in view.items()}


async def run(ops: list[Op]) -> None:
    async with server_env() as env:
        parties = [make_party(n, i + 1) for i, n in enumerate(NAMES)]
        for p in parties:
            await env.register(p)
        alice = parties[0]
        devices: dict[bytes, list[Party]] = {p.account: [p] for p in parties}
        view = {alice.account: [1]}
        group = new_group(alice, listed(view))
        await put_ok(env, alice, group.update)
        crew = Members(group.update, {alice.account: alice.identity.public_key}, [alice])
        by_address = {p.address: p for p in parties}
        for kind, who in ops:
            party = parties[who]
            if kind in {"add", "remove", "refresh"}:
                new = dict(view)
                if kind == "add":
                    new[party.account] = [d.address.device for d in devices[party.account]]
                elif kind == "remove":
                    new.pop(party.account, None)
                else:
                    new = {a: [d.address.device for d in devices[a]] for a in view}
                update = group.next(listed(new))
                await put_ok(env, alice, update)
                joining = [
                    by_address[Address(a, d)]
                    for a, ds in new.items()
                    for d in ds
                    if Address(a, d) not in crew.members
                ]
                crew.apply(update, joining=joining)
                for address in [a for a, m in crew.members.items() if not m.state.is_member]:
                    del crew.members[address]
                group.update, view = update, new
                for address in crew.members:  # every remaining device rekeys
                    crew.rekey(address)
            elif kind == "link":
                owner = devices[party.account][0]
                n = len(devices[party.account]) + 1
                fresh = owner.sibling(n, seed=100 + who * 10 + n)
                await env.link(owner, fresh)
                devices[party.account].append(fresh)
                by_address[fresh.address] = fresh
                for d in devices[party.account]:
                    d.serial, d.devices = owner.serial, owner.devices
            elif kind in {"send", "stale"} and party.address in crew.members:
                message = crew.encrypt(party.address, f"{kind} {who}", env.clock.now)
                if kind == "stale":  # the view moves on before the message is posted
                    update = group.next(
                        listed(view), name=b"v%d" % (group.update.membership_version + 1)
                    )
                    await put_ok(env, alice, update)
                    crew.apply(update)
                    group.update = update
                    response = await send(env, party, group.id, message.encode())
                    assert response.status_code == 409
                    assert response.json()["group"]["version"] == update.membership_version
                    continue
                response = await send(env, party, group.id, message.encode())
                assert response.status_code == 200, response.text
                body: dict[str, Any] = response.json()
                expected = sorted(
                    (Address(a, d) for a, ds in view.items() for d in ds
                     if Address(a, d) != party.address),
                    key=lambda x: (x.account, x.device),
                )  # fmt: skip
                assert body["recipients"] == [f"{b64(a.account)}.{a.device}" for a in expected]
                for address, server_id in zip(expected, body["ids"], strict=True):
                    await read_one(env, by_address[address], server_id, crew)
        # nothing else reached anyone: not a removed member, not a device outside the view
        for d in by_address.values():
            response = await env.call(d, "GET", "/v1/messages")
            assert response.json()["messages"] == []


async def read_one(env: Env, device: Party, server_id: int, crew: Members) -> None:
    """``device`` has exactly the mail ``server_id``, reads it and acknowledges it."""
    response = await env.call(device, "GET", "/v1/messages")
    (mail,) = response.json()["messages"]
    assert (mail["id"], mail["kind"]) == (server_id, "group")
    crew.decrypt(device.address, unb64(mail["envelope"]))
    ack = await env.call(device, "POST", "/v1/messages/ack", json_body={"ids": [server_id]})
    assert ack.json() == {"removed": 1}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(OPS)
def test_random_interleavings_deliver_to_the_current_view(ops: list[Op]) -> None:
    asyncio.run(run(ops))
