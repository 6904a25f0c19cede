"""Helpers for the group tests of the relay: real groups made with ``overt.protocol.groups``
(signed updates, sender keys, encrypted group messages) and the group routes called through
``server_kit.Env``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
from server_kit import Env, Party, b64, unb64

from overt.crypto import DeterministicRng
from overt.protocol.groups import (
    GroupState,
    Membership,
    SenderKey,
    apply_membership,
    create_group,
    create_sender_key,
    group_decrypt,
    group_encrypt,
    join_group,
    process_distribution,
    propose_membership,
)
from overt.safety.body import BodyKind, MessageBody
from overt.wire import Address
from overt.wire.group_messages import GroupMessage, MembershipUpdate


def members_of(*parties: Party) -> dict[bytes, list[int]]:
    """Each party's account with every device it has registered."""
    out: dict[bytes, list[int]] = {}
    for p in parties:
        out.setdefault(p.account, []).extend(d.address.device for d in p.devices)
    return {a: sorted(set(d)) for a, d in out.items()}


def text_body(text: str, peer: bytes = b"group") -> bytes:
    return MessageBody(BodyKind.TEXT, peer, text).encode()


@dataclass
class Member:
    """One member device's protocol state in one group."""

    party: Party
    state: GroupState
    key: SenderKey | None = None

    @property
    def address(self) -> Address:
        return self.party.address


@dataclass
class Group:
    """A group as its admin made it, and the latest update."""

    admin: Party
    update: MembershipUpdate
    rng: DeterministicRng = field(default_factory=lambda: DeterministicRng(b"group"))

    @property
    def id(self) -> bytes:
        return self.update.group_id

    @property
    def path(self) -> str:
        return f"/v1/groups/{b64(self.id)}"

    def next(
        self,
        members: dict[bytes, list[int]],
        *,
        signer: Party | None = None,
        name: bytes | None = None,
        admins: Iterable[bytes] | None = None,
    ) -> MembershipUpdate:
        """The next version signed by ``signer`` (the admin by default), not yet applied."""
        state = GroupState(self.admin.address, Membership.from_update(self.update))
        who = signer or self.admin
        return propose_membership(state, who.identity, members, name=name, admins=admins)


def new_group(
    admin: Party, members: dict[bytes, list[int]], *, name: bytes = b"friends", seed: int = 1
) -> Group:
    rng = DeterministicRng(b"group-%d" % seed)
    _, update = create_group(admin.identity, admin.address, name, members, rng)
    return Group(admin, update, rng)


async def put(
    env: Env, party: Party, update: MembershipUpdate, *, data: bytes | None = None
) -> httpx.Response:
    """PUT ``update`` (or ``data`` in its place, for tamper tests) to its group's path."""
    raw = update.encode() if data is None else data
    return await env.call(
        party, "PUT", f"/v1/groups/{b64(update.group_id)}", json_body={"membership": b64(raw)}
    )


async def put_ok(env: Env, party: Party, update: MembershipUpdate) -> dict[str, Any]:
    response = await put(env, party, update)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def view(env: Env, party: Party, group: Group, after: int = 0) -> httpx.Response:
    target = group.path + (f"?after={after}" if after else "")
    return await env.call(party, "GET", target)


async def send(env: Env, party: Party, group_id: bytes, message: bytes) -> httpx.Response:
    return await env.call(
        party,
        "POST",
        f"/v1/groups/{b64(group_id)}/messages",
        json_body={"message": b64(message)},
    )


class Members:
    """The protocol side of a group: every member device's state, sender keys handed out."""

    def __init__(self, first: MembershipUpdate, keys: dict[bytes, Any], parties: list[Party]):
        self.keys = keys
        self.members: dict[Address, Member] = {}
        self.rng = DeterministicRng(b"members")
        for p in parties:
            self.members[p.address] = Member(p, join_group(p.address, first, keys))

    def apply(self, update: MembershipUpdate, joining: Iterable[Party] = ()) -> None:
        for m in self.members.values():
            m.state = apply_membership(m.state, update, self.keys)
        for p in joining:
            self.members[p.address] = Member(p, join_group(p.address, update, self.keys))

    def rekey(self, address: Address) -> None:
        """A new sender key for ``address``, given to every other member device."""
        m = self.members[address]
        m.key, dist = create_sender_key(m.state, self.rng)
        for other in self.members.values():
            if other.address != address and other.state.is_member:
                other.state = process_distribution(other.state, address, dist)

    def encrypt(self, address: Address, text: str, now_ms: int) -> GroupMessage:
        m = self.members[address]
        if m.key is None:
            self.rekey(address)
        assert m.key is not None
        msg, m.key = group_encrypt(m.state, m.key, text_body(text), now_ms, self.rng, None)
        return msg

    def decrypt(self, address: Address, data: bytes) -> tuple[bytes, bytes]:
        """Body and franking key of ``data`` as ``address`` reads it."""
        m = self.members[address]
        received, m.state = group_decrypt(m.state, data, None)
        return received.body, received.franking_key


def mail_of(body: dict[str, Any]) -> list[tuple[int, str, bytes, str]]:
    """(id, sender, bytes, kind) of each mail of a fetch page."""
    return [(m["id"], m["sender"], unb64(m["envelope"]), m["kind"]) for m in body["messages"]]
