"""Key transparency against the real relay in-process (:func:`overt.server.create_app` with its
own log, key directory and checkpointer), not the fake of test_client_kt_support: the same
contract from the other side. The server here has no witnesses (quorum 0); witnesses, split
views and refusals are covered against the fake."""

from __future__ import annotations

import io

import pytest

from overt.cli.audit import audit
from overt.client import AlarmKind, Body, Client, NotInLog
from overt.client._b64 import b64d
from overt.client.kt import LogReader
from overt.crypto import DeterministicRng, Ed25519PrivateKey
from overt.errors import UntrustedIdentity
from overt.transparency.manifest import verify_manifest

from .support import Interposer, World
from .test_client_kt import forged_alice, serve_forged_account


async def test_a_conversation_is_proven_monitored_and_gossiped(world: World) -> None:
    alice = await world.user("alice", "alice")
    laptop = await world.linked("alice-laptop", alice)
    bob = await world.user("bob", "bob")
    await alice.send("bob", "hello")
    await bob.send("alice", "hello back")
    assert [m.text for m in await bob.sync()] == ["hello"]
    assert [m.text for m in await alice.sync()] == ["hello back"]
    assert [m.text for m in await laptop.sync()] == ["hello", "hello back"]
    contact = alice._store.contact(b"bob")
    assert contact is not None and contact.log_index is not None
    [(cid, _, _, _)] = bob._store.conversations()
    [row] = bob._store.history(cid, 1)
    assert Body.decode(row.body).gossip is not None
    for c in (alice, laptop, bob):
        assert await c.check_log() == []
        assert c.alarms() == []
    assert await alice.policy_description() == "no exceptional access (end-to-end encryption only)"


async def test_the_provider_key_can_be_given_instead_of_trusted_on_first_use(world: World) -> None:
    answer = await world.transport.request("GET", "/v1/manifest")
    data = answer.json()
    assert isinstance(data, dict)
    provider = verify_manifest(b64d(data["manifest"], "manifest")).provider_key
    other = Ed25519PrivateKey.generate(DeterministicRng("not the provider")).public_key
    for name, key, ok in (("carol", provider, True), ("dave", other, False)):
        c = await Client.open(world.tmp / name, world.transport, clock=world.clock,
                              rng=DeterministicRng(name), provider_key=key)  # fmt: skip
        world.clients.append(c)
        if ok:
            await c.create_account(name)
        else:
            with pytest.raises(UntrustedIdentity):
                await c.create_account(name)


async def test_key_substitution_against_the_real_server(world: World) -> None:
    alice = await world.user("alice", "alice")
    await alice.check_log()
    net = Interposer(world.transport)
    bob = await world.user("bob", "bob", net)
    impostor, rogue, forged = forged_alice()
    serve_forged_account(net, forged, rogue)
    # (a) Not in the log: refused, nothing sent.
    with pytest.raises(NotInLog):
        await bob.send("alice", "hi?")
    assert ("POST", "/v1/messages") not in net.log
    # (b) The server logs it too: bob cannot tell, alice's monitoring can.
    directory = world.app.state.key_directory  # type: ignore[attr-defined]
    await directory.publish(b"alice", impostor.public_key.raw, 7, forged.encode())
    await bob.send("alice", "hi?")
    [alarm] = await alice.check_log()
    assert alarm.kind is AlarmKind.UNKNOWN_ACCOUNT_KEY


async def test_the_auditor_passes_on_the_real_log(world: World) -> None:
    alice = await world.user("alice", "alice")
    await world.linked("alice-laptop", alice)
    await world.user("bob", "bob")
    out, err = io.StringIO(), io.StringIO()
    assert await audit(LogReader(world.transport), out=out, err=err) == 0, out.getvalue()
    text = out.getvalue()
    assert "  manifest               1" in text
    assert "  key_directory_update   3" in text
    assert "OK: the log verifies" in text
