"""The checkpointer with real witness services in-process: quorums, witnesses that are down,
silent or ahead, and what is published meanwhile."""

from __future__ import annotations

import asyncio
import logging

import pytest
from server_kit import make_party
from test_server_kt_support import KEYS, ORIGIN, KtEnv, WitnessNet, kt_env

from overt.crypto import sha256
from overt.storage import open_memory
from overt.transparency.checkpoint import Checkpoint, sign_checkpoint, verify_checkpoint
from overt.transparency.note import Note


def cosigners(env: KtEnv) -> set[str]:
    published = env.checkpointer.published
    assert published is not None
    return {c.key.name for c in published.cosignatures}


async def served_checkpoint(env: KtEnv) -> Note:
    response = await env.call(None, "GET", "/v1/log/checkpoint")
    assert response.status_code == 200, response.text
    return Note.from_bytes(response.content)


async def test_with_quorum_0_every_checkpoint_is_published_at_once() -> None:
    async with kt_env() as env:
        assert env.checkpointer.published is None
        await env.register(make_party("alice", 1))
        published = await env.checkpointer.run_once()
        assert published is not None and published.size == 2
        assert published.cosignatures == ()
        assert (await served_checkpoint(env)).to_bytes() == published.note.to_bytes()
        assert env.net.requests == 0


async def test_a_quorum_of_witnesses_is_collected_concurrently() -> None:
    async with kt_env(witnesses=3, quorum=2) as env:
        await env.register(make_party("alice", 1))
        published = await env.checkpointer.run_once()
        assert published is not None and published.size == 2
        assert cosigners(env) == {"w0.witness.test", "w1.witness.test", "w2.witness.test"}
        note = await served_checkpoint(env)
        manifest, _ = await env.manifest()
        verified = verify_checkpoint(
            note, manifest.log.vkey, manifest.witness_keys, 3, origin=manifest.log.origin
        )
        assert verified.checkpoint.size == 2
        # Each witness keeps what it cosigned: the log's tree at size 2.
        assert env.net.witness(0).state.size_of(manifest.log.origin) == 2
        # Nothing grew: a round asks nobody again.
        before = env.net.requests
        await env.checkpointer.run_once()
        assert env.net.requests == before


async def test_a_witness_that_is_down_is_asked_again_next_round(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="overt.server")
    async with kt_env(witnesses=3, quorum=2) as env:
        env.net.down.add("w1.witness.test")
        await env.register(make_party("alice", 1))
        published = await env.checkpointer.run_once()
        assert published is not None and published.size == 2
        assert cosigners(env) == {"w0.witness.test", "w2.witness.test"}
        assert any("did not cosign" in r.getMessage() for r in caplog.records)
        # The witness comes back: the next round completes the stored checkpoint.
        env.net.down.clear()
        await env.checkpointer.run_once()
        assert len(cosigners(env)) == 3
        assert len((await served_checkpoint(env)).signatures) == 4


async def test_without_a_quorum_nothing_new_is_published() -> None:
    async with kt_env(witnesses=3, quorum=2) as env:
        alice = make_party("alice", 1)
        await env.register(alice)
        await env.checkpointer.run_once()
        first = env.checkpointer.published
        assert first is not None and first.size == 2
        env.net.down.update({"w0.witness.test", "w1.witness.test"})
        await env.register(make_party("bob", 2))
        await env.checkpointer.run_once()
        assert env.checkpointer.published == first  # signed at size 3, but not published
        assert (await env.log.latest_checkpoint()) is not None
        response = await env.call(None, "GET", "/v1/log/entries?start=0&end=3")
        assert response.status_code == 404 and response.headers["retry-after"] == "1"
        assert (await served_checkpoint(env)).to_bytes() == first.note.to_bytes()
        # Bob's entry is not served before a quorum has seen it.
        assert (
            await env.call(None, "GET", f"/v1/kt/{make_party('bob', 2).b64}")
        ).status_code == 404
        env.net.down.clear()
        published = await env.checkpointer.run_once()
        assert published is not None and published.size == 3


async def test_a_silent_witness_does_not_hold_up_the_round() -> None:
    """The round ends when the silent witness's time bound does (the other witness answers in
    far less than a second, however loaded the machine: the bound is a hang guard, not a
    timing this test measures)."""
    async with kt_env(witnesses=2, quorum=1, timeout_ms=1000) as env:
        env.net.silent.add("w0.witness.test")
        await env.register(make_party("alice", 1))
        published = await asyncio.wait_for(env.checkpointer.run_once(), timeout=30)
        assert published is not None and published.size == 2
        assert cosigners(env) == {"w1.witness.test"}


async def test_after_a_restart_a_witness_is_proven_consistent_from_its_own_size() -> None:
    """A restarted server does not know what each witness last cosigned: it sends from 0, the
    witness answers 409 with its size, and the server proves consistency from there."""
    storage = await open_memory()
    net = WitnessNet()  # the witness outlives the server's restart
    async with kt_env(witnesses=1, quorum=1, storage=storage, net=net, close_storage=False) as env:
        await env.register(make_party("alice", 1))
        await env.checkpointer.run_once()
        origin = env.log.origin
    assert net.witness(0).state.size_of(origin) == 2
    async with kt_env(witnesses=1, quorum=1, storage=storage, net=net) as env:
        assert await env.checkpointer.load() is not None
        await env.register(make_party("bob", 2))
        before = net.requests
        published = await env.checkpointer.run_once()
        assert published is not None and published.size == 3
        assert net.requests - before == 2  # refused from 0, then accepted from 2
        assert net.witness(0).state.size_of(origin) == 3
        # The server remembers: the next growth is sent from 3 at once.
        await env.register(make_party("carol", 3))
        before = net.requests
        await env.checkpointer.run_once()
        assert net.requests - before == 1


async def test_a_restart_serves_the_published_checkpoint_at_once() -> None:
    storage = await open_memory()
    net = WitnessNet()
    async with kt_env(witnesses=2, quorum=2, storage=storage, net=net, close_storage=False) as env:
        await env.register(make_party("alice", 1))
        published = await env.checkpointer.run_once()
        assert published is not None
    async with kt_env(witnesses=2, quorum=2, storage=storage, net=net) as env:
        assert await env.checkpointer.load() is not None
        assert (await served_checkpoint(env)).to_bytes() == published.note.to_bytes()


async def test_a_split_view_refusal_is_an_error_and_never_published(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A witness that cosigned another tree of the same size (someone holding the log key
    forked it) refuses this server's checkpoint; that is logged as an error, not retried
    around, and the checkpoint is not published without the quorum."""
    caplog.set_level(logging.WARNING, logger="overt.server")
    net = WitnessNet()
    net.add(0, KEYS.log.verifier_key)
    fork = sign_checkpoint(Checkpoint(ORIGIN, 2, sha256(b"another tree")), KEYS.log)
    net.witness(0).add_checkpoint(0, [], fork, 1_700_000_000)
    async with kt_env(witnesses=1, quorum=1, net=net) as env:
        await env.register(make_party("alice", 1))
        assert await env.checkpointer.run_once() is None
        assert any("split view" in r.getMessage() for r in caplog.records)
        assert len(net.witness(0).state.evidence) == 1  # the witness kept the evidence
        response = await env.call(None, "GET", "/v1/log/checkpoint")
        assert response.status_code == 404
