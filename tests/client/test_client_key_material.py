"""Sender-key distributions under policy ``escrow``: sent with the access field under the key
context (which no custodian share opens), everything else under the content context; an
honest recipient refuses a body whose field was made under the other kind — a text dressed
up as key material to escape escrow, or a distribution under the content context — like a
forged field: nothing shown, the session untouched, the failure recorded as ``policy``."""

from __future__ import annotations

import types
from collections.abc import Sequence

import pytest

from overt.client import Client, FailureReason, Message, Response
from overt.client import client as client_module
from overt.client import groups as groups_module
from overt.client.body import BodyKind, access_kind
from overt.crypto import DeterministicRng, Point, Scalar
from overt.errors import InvalidMessage, LocalError
from overt.protocol import AccessKind, EscrowPolicy, access
from overt.wire import Address, Envelope
from overt.wire.b64 import b64d

from .support import Call, Interposer, World

SECRET = Scalar.random(DeterministicRng("key material epoch secret"))
POLICY = EscrowPolicy(3, Point.base_mul(SECRET))


async def _escrow_user(world: World, name: str, inter: Interposer | None = None) -> Client:
    c = await Client.open(world.tmp / name, inter or world.transport, clock=world.clock,
                          rng=DeterministicRng(f"key material {name}"), policy=POLICY)  # fmt: skip
    world.clients.append(c)
    await c.create_account(name)
    return c


def _texts(messages: Sequence[Message]) -> list[str]:
    return [m.text for m in messages]


def _capture(inter: Interposer) -> list[Envelope]:
    """Every one-to-one envelope the interposed client fetches from its mailbox."""
    seen: list[Envelope] = []

    async def hook(call: Call) -> Response | None:
        if call.method == "GET" and call.target.startswith("/v1/messages"):
            answer = await call.proceed()
            for m in answer.json()["messages"]:
                if m.get("kind", "envelope") == "envelope":
                    seen.append(Envelope.decode(b64d(m["envelope"], "envelope")))
            return answer
        return None

    inter.hooks.append(hook)
    return seen


def _opens_as_content(env: Envelope) -> bool:
    """Whether the epoch secret's holder opens ``env``'s field under the content context."""
    assert env.access is not None
    fields = (env.access.epoch, env.sender, env.recipient, env.conversation_id,
              env.message_id, env.timestamp_ms)  # fmt: skip
    shared = Point.from_bytes(env.access.r).mul(SECRET)
    with pytest.raises(LocalError, match="never released"):
        access.recover(env.access, shared, access.key_context(*fields))
    try:
        access.recover(env.access, shared, access.context(*fields))
    except InvalidMessage:
        return False
    return True


def test_only_a_sender_key_distribution_is_key_material() -> None:
    assert access_kind(BodyKind.GROUP_KEY) is AccessKind.KEY_MATERIAL
    for kind in set(BodyKind) - {BodyKind.GROUP_KEY}:
        assert access_kind(kind) is AccessKind.CONTENT


async def test_a_distribution_goes_under_the_key_context_and_no_share_opens_it(
    world: World,
) -> None:
    inter = world.interposer()
    alice = await _escrow_user(world, "alice")
    bob = await _escrow_user(world, "bob", inter)
    seen = _capture(inter)
    await alice.send("bob", "hello")
    info = await alice.create_group("g", ["bob"])
    await alice.send_group("g", "to the group")
    assert _texts(await bob.sync()) == ["hello", "to the group"]
    assert await bob.undecryptable() == []
    # The text and the membership update are content: the secret's holder opens them. The
    # distribution is not, under either context.
    in_group = [e for e in seen if e.conversation_id == info.group_id]
    assert len(in_group) == 2
    assert [_opens_as_content(e) for e in seen] == [True, True, False]


async def test_a_text_sent_as_key_material_is_refused_and_changes_nothing(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A modified sender calls a text key material, so that no custodian could open it."""
    alice = await _escrow_user(world, "alice")
    bob = await _escrow_user(world, "bob")
    await alice.send("bob", "first, honestly")
    assert _texts(await bob.sync()) == ["first, honestly"]
    peer = Address(b"alice", alice.device_id or 1)
    before = bob._store.session(peer)
    assert before is not None

    honest = Client._encrypt

    def escaping(self: Client, *args: object) -> object:
        return honest(self, *args[:6], AccessKind.KEY_MATERIAL)  # type: ignore[arg-type]

    monkeypatch.setattr(alice, "_encrypt", types.MethodType(escaping, alice))
    await alice.send("bob", "escrow cannot open this")
    assert await bob.sync() == []
    (failure,) = await bob.undecryptable()
    assert failure.reason == FailureReason.POLICY
    after = bob._store.session(peer)
    assert after is not None and after.encode() == before.encode()
    assert _texts(await bob.history("alice")) == ["first, honestly"]

    monkeypatch.undo()
    await alice.send("bob", "honest again")
    assert _texts(await bob.sync()) == ["honest again"]


async def test_a_distribution_under_the_content_context_is_refused(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A modified sender escrows its chain key where the custodians could open it."""
    alice = await _escrow_user(world, "alice")
    bob = await _escrow_user(world, "bob")
    await alice.send("bob", "hello")
    assert _texts(await bob.sync()) == ["hello"]
    # The sending side's choice only: the recipient's check reads its own binding.
    monkeypatch.setattr(groups_module, "access_kind", lambda kind: AccessKind.CONTENT)
    assert client_module.access_kind is access_kind
    await alice.create_group("g", ["bob"])
    await alice.send_group("g", "needs the refused key")
    assert await bob.sync() == []  # the update is taken, the message waits for its key
    reasons = [u.reason for u in await bob.undecryptable()]
    assert reasons == [FailureReason.POLICY]
    assert _texts(await bob.group_history("g")) == []
