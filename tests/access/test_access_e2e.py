"""End to end at protocol level: devices under the DKG's epoch key, custodians' shares, the
access field and the session's AEAD open exactly the targeted messages."""

from __future__ import annotations

import pytest

from overt.access import Approved, Refusal, Refused, ThresholdNotMet, collect, make_shares
from overt.crypto import DeterministicRng, open_sealed
from overt.errors import InvalidMessage
from overt.protocol import access
from overt.wire import Content

from .support import World, envelope_context


def test_t_custodians_decrypt_exactly_the_targeted_messages() -> None:
    world = World.build(messages=3)
    y = world.transcript.public_key()
    assert world.alice.policy is not None and world.alice.policy.public_key == y
    envs = [env for env, _, _ in world.targeted]
    request = world.request(envs)
    responses, _ = world.release(request, custodians=(2, 4, 5))
    combined = collect(world.transcript, request.points, responses)
    for (env, keys, body), point in zip(world.targeted, combined.points, strict=True):
        assert env.access is not None
        ctx = envelope_context(env)
        key = access.recover(env.access, point, ctx)
        plaintext = open_sealed(key, env.ciphertext, keys.associated_data() + env.header_bytes())
        assert Content.decode(plaintext).body == body
    # The same points opened against another message's context or field do not.
    env0, env1 = envs[0], envs[1]
    assert env0.access is not None and env1.access is not None
    with pytest.raises(InvalidMessage):
        access.recover(env0.access, combined.points[1], envelope_context(env0))
    with pytest.raises(InvalidMessage):
        access.recover(env1.access, combined.points[1], envelope_context(env0))


def test_untargeted_messages_are_refused_by_every_custodian() -> None:
    world = World.build(messages=1)
    request = world.request([env for env, _, _ in world.untargeted])
    for j in range(1, 6):
        d = world.decide(request, j)
        assert isinstance(d, Refused) and d.reason is Refusal.NOT_A_TARGET


def test_two_custodians_are_not_enough() -> None:
    world = World.build(messages=1)
    request = world.request([env for env, _, _ in world.targeted])
    d = world.decide(request, 1)
    assert isinstance(d, Approved)
    responses = {j: make_shares(world.shares[j], d.points, DeterministicRng(j)) for j in (1, 2)}
    with pytest.raises(ThresholdNotMet):
        collect(world.transcript, request.points, responses)
