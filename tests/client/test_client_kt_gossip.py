"""Gossip: every message carries the sender's newest verified checkpoint, and the recipient
checks it against its own server with a consistency proof.

A server that shows two people two different trees (a split view) is caught as soon as one
writes to the other; the honest witness refuses to cosign the second tree, so the fork needs a
compromised witness to get a quorum at all. Consistent growth, in either direction, raises
nothing; a server that will not prove consistency is treated as a split view; a check the
server could not answer waits for the next one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from overt.client import AlarmKind, Body, Gossip, Response, ServerUnreachable
from overt.client.body import BODY_VERSION, BODY_VERSION_GOSSIP
from overt.client.limits import GOSSIP_AHEAD_GRACE_S
from overt.crypto import DeterministicRng, sha256
from overt.errors import DecodeError, LocalError
from overt.protocol import AccountIdentity, Device
from overt.transparency.checkpoint import Checkpoint, verify_checkpoint
from overt.transparency.merkle import EMPTY_ROOT
from overt.transparency.witness import CheckpointConflict, InconsistentCheckpoint

from .support import Call, Interposer
from .test_client_kt_support import ORIGIN, KtWorld, kt_world


@pytest.fixture
async def kt(tmp_path: Path) -> AsyncIterator[KtWorld]:
    async with kt_world(tmp_path) as world:
        yield world


# ----------------------------------------------------------------------------- the body field


@given(st.text(max_size=50), st.integers(min_value=1, max_value=(1 << 63) - 1), st.binary(
    min_size=32, max_size=32))  # fmt: skip
def test_gossip_round_trips_in_a_version_2_body(text: str, size: int, root: bytes) -> None:
    body = Body.of_text(b"bob", text).with_gossip(Gossip(ORIGIN, size, root))
    data = body.encode()
    assert data[0] == BODY_VERSION_GOSSIP
    assert Body.decode(data) == body


def test_a_body_without_gossip_is_still_version_1_and_old_bodies_decode() -> None:
    body = Body.of_text(b"bob", "hi")
    assert body.encode() == b"\x01\x01\x03bob\x00\x00\x00\x02hi"  # as before gossip existed
    assert body.encode()[0] == BODY_VERSION
    assert Body.decode(b"\x01\x01\x03bob\x00\x00\x00\x02hi") == body


@pytest.mark.parametrize(
    "tail",
    [
        b"",  # version 2 without its gossip
        b"\x00" + (1).to_bytes(8, "big") + bytes(32),  # empty origin
        b"\x01a" + (1 << 63).to_bytes(8, "big") + bytes(32),  # size out of range
        b"\x01a" + bytes(8) + bytes(32),  # size 0 with a root other than SHA-256("")
        b"\x01\n" + (1).to_bytes(8, "big") + bytes(32),  # a control character in the origin
        b"\x01a" + (1).to_bytes(8, "big") + bytes(31),  # a short root
        b"\x01a" + (1).to_bytes(8, "big") + bytes(33),  # a trailing byte
    ],
)
def test_gossip_decoding_is_strict(tail: bytes) -> None:
    with pytest.raises(DecodeError):
        Body.decode(b"\x02\x01\x03bob\x00\x00\x00\x00" + tail)


def test_gossip_must_be_a_checkpoint() -> None:
    assert Gossip(ORIGIN, 0, EMPTY_ROOT).checkpoint() == Checkpoint(ORIGIN, 0, EMPTY_ROOT)
    with pytest.raises(LocalError):
        Gossip(ORIGIN, 0, bytes(32))
    with pytest.raises(LocalError):
        Gossip("two\nlines", 1, bytes(32))


# ----------------------------------------------------------------------------- the checks


async def forge_carol(kt: KtWorld, view: str, seed: str) -> None:
    """An entry only ``view`` gets: a made-up key-directory update for 'carol'."""
    impostor = AccountIdentity.generate(b"carol", DeterministicRng(seed))
    device = Device.create(b"carol", 1, rng=DeterministicRng(seed + " device"))
    signed = impostor.sign_device_list(1, [device.entry()])
    await kt.deployment.log_list(b"carol", signed.encode(), views=[view])


async def test_consistent_growth_raises_nothing(kt: KtWorld) -> None:
    alice = await kt.user("alice")
    bob = await kt.user("bob")
    await alice.check_log()  # alice's head: before carol and dave
    await kt.user("carol")
    await kt.user("dave")
    await bob.check_log()  # bob's head: after them
    await alice.send("bob", "older checkpoint to a newer one")
    await bob.send("alice", "newer checkpoint to an older one")
    assert [m.text for m in await bob.sync()] == ["older checkpoint to a newer one"]
    assert [m.text for m in await alice.sync()] == ["newer checkpoint to an older one"]
    assert alice.alarms() == [] and bob.alarms() == []
    assert bob._store.pending_gossip() == [] and alice._store.pending_gossip() == []


@pytest.mark.parametrize("extra_for_b", [1, 2])
async def test_a_split_view_is_caught_by_gossip(kt: KtWorld, extra_for_b: int) -> None:
    """The server shows bob a tree with entries alice's tree does not have (same size, or
    larger): the honest witness refuses to cosign it, a compromised one does, and the first
    message between them raises a split-view alarm on both sides, with both checkpoints."""
    alice = await kt.user("alice")
    net_b = kt.transport()
    bob = await kt.user("bob", net_b)
    await kt.deployment.fork("b")
    net_b.view = "b"
    await forge_carol(kt, "a", "carol in a")
    for i in range(extra_for_b):
        await forge_carol(kt, "b", f"carol in b {i}")
    await alice.check_log()  # checkpoints tree a: both witnesses cosign
    await bob.check_log()  # checkpoints tree b: only the compromised witness cosigns
    [refusal] = kt.deployment.views["b"].refusals
    if extra_for_b == 1:
        assert isinstance(refusal, CheckpointConflict)  # same size, another root
    else:
        assert isinstance(refusal, InconsistentCheckpoint)
    assert alice.alarms() == [] and bob.alarms() == []  # each view is consistent in itself

    await alice.send("bob", "which log do you see?")
    assert [m.text for m in await bob.sync()] == ["which log do you see?"]  # still shown
    [alarm] = bob.alarms()
    assert alarm.kind is AlarmKind.SPLIT_VIEW
    assert alarm.ours is not None and alarm.theirs is not None
    theirs = Checkpoint.from_text(alarm.theirs)
    ours = Checkpoint.from_text(alarm.ours.split("\n\n")[0] + "\n")
    assert theirs.origin == ours.origin == ORIGIN and theirs.root_hash != ours.root_hash

    await bob.send("alice", "a different one, it seems")
    await alice.sync()
    if extra_for_b > 1:
        # Bob's tree is larger than any alice's server shows: a lagging server node looks
        # the same for a while, so this becomes an alarm only after a grace period.
        assert alice.alarms() == [] and len(alice._store.pending_gossip()) == 1
        kt.clock.advance(GOSSIP_AHEAD_GRACE_S * 1000)
        await alice.check_log()
    assert [a.kind for a in alice.alarms()] == [AlarmKind.SPLIT_VIEW]
    assert alice._store.pending_gossip() == []


async def test_a_peer_ahead_of_a_lagging_server_is_no_alarm(kt: KtWorld) -> None:
    alice = await kt.user("alice")
    net_b = kt.transport()
    bob = await kt.user("bob", net_b)
    await kt.deployment.fork("b")  # the same tree, published by another server node
    net_b.view = "b"
    await bob.check_log()
    kt.deployment.views["b"].auto_checkpoint = False  # this node falls a round behind
    await kt.user("carol")
    await alice.check_log()
    await alice.send("bob", "from a newer checkpoint")
    assert [m.text for m in await bob.sync()] == ["from a newer checkpoint"]
    assert bob.alarms() == [] and len(bob._store.pending_gossip()) == 1
    kt.deployment.views["b"].auto_checkpoint = True  # it catches up
    await bob.check_log()
    assert bob.alarms() == [] and bob._store.pending_gossip() == []


async def test_a_server_that_refuses_a_consistency_proof_is_a_split_view(kt: KtWorld) -> None:
    alice = await kt.user("alice")
    net_b = kt.transport()
    bob = await kt.user("bob", net_b)
    await alice.check_log()
    await kt.user("carol")
    await bob.check_log()
    net_b.refuse.add("/v1/log/consistency")
    await alice.send("bob", "prove it")
    assert [m.text for m in await bob.sync()] == ["prove it"]
    [alarm] = bob.alarms()
    assert alarm.kind is AlarmKind.SPLIT_VIEW
    assert "would not prove" in alarm.detail


async def test_a_gossip_check_the_server_could_not_answer_waits(kt: KtWorld) -> None:
    alice = await kt.user("alice")
    net = Interposer(kt.transport())
    bob = await kt.user("bob", net)
    await alice.check_log()
    await kt.user("carol")
    await bob.check_log()

    async def down(call: Call) -> Response | None:
        if call.target.startswith("/v1/log/consistency"):
            raise ServerUnreachable("the network is down")
        return None

    net.hooks.append(down)
    await alice.send("bob", "later")
    assert [m.text for m in await bob.sync()] == ["later"]
    assert len(bob._store.pending_gossip()) == 1
    net.hooks.remove(down)
    await bob.check_log()
    assert bob._store.pending_gossip() == []
    assert bob.alarms() == []


async def test_the_checkpoint_a_client_keeps_never_goes_back(kt: KtWorld) -> None:
    alice = await kt.user("alice")
    await kt.user("bob")
    await alice.check_log()
    head = alice._store.checkpoint()
    # An older (consistent) checkpoint seen later does not replace the newer one.
    older = await kt.deployment.views["a"].log.checkpoint_at(1)
    assert older is not None and head is not None
    manifest = kt.deployment.manifest
    verified = verify_checkpoint(older, manifest.log.vkey, manifest.witness_keys, 0)
    async with alice._kt._lock:
        await alice._kt._connect(verified)
    assert alice._store.checkpoint() == head
    assert alice.alarms() == []
    assert sha256(head) != sha256(older.to_bytes())
