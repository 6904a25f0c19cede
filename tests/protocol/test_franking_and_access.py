"""A modified sender: forged franking commitments and missing, wrong or unexpected access
fields are each refused by an honest recipient, and nothing of its state changes."""

from __future__ import annotations

import pytest

from overt.crypto import DeterministicRng, Point, Scalar, open_sealed
from overt.errors import InvalidMessage, PolicyViolation
from overt.protocol import EscrowPolicy, access, franking
from overt.wire import AccessField, Address, Content

from .helpers import Pair, evil_encrypt, make_policy, prekey_snapshot, snapshot


def _state(pair: Pair) -> object:
    return snapshot(pair.bob), prekey_snapshot(pair.bob)


def test_forged_franking_commitment_is_dropped() -> None:
    pair = Pair.make()
    env = evil_encrypt(pair.alice, pair.bob.address, b"abuse", committed_body=b"innocent")
    before = _state(pair)
    with pytest.raises(InvalidMessage):
        pair.bob.decrypt(env)
    assert _state(pair) == before


def test_honest_franking_opens_and_verifies() -> None:
    pair = Pair.make()
    env = pair.send(pair.alice, b"report me")
    got = pair.bob.decrypt(env)
    ctx = franking.context(env.sender, env.conversation_id, env.message_id, env.timestamp_ms)
    franking.verify(env.franking_commitment, got.franking_key, ctx, got.body)
    with pytest.raises(InvalidMessage):
        franking.verify(env.franking_commitment, got.franking_key, ctx, b"report me!")


def test_reporting_tag_binds_every_field() -> None:
    key = b"k" * 32
    c = b"c" * 32
    a, b = Address(b"alice", 1), Address(b"bob", 2)
    tag = franking.reporting_tag(key, c, a, b, 41, 1000)
    franking.verify_reporting_tag(key, tag, c, a, b, 41, 1000)
    for args in [
        (b"x" * 32, tag, c, a, b, 41, 1000),
        (key, tag, b"d" * 32, a, b, 41, 1000),
        (key, tag, c, b, a, 41, 1000),
        (key, tag, c, a, Address(b"bob", 3), 41, 1000),
        (key, tag, c, a, b, 42, 1000),
        (key, tag, c, a, b, 41, 1001),
    ]:
        with pytest.raises(InvalidMessage):
            franking.verify_reporting_tag(*args)  # type: ignore[arg-type]


def test_missing_access_field_refused_under_escrow() -> None:
    policy, _ = make_policy()
    pair = Pair.make(policy=policy)
    env = evil_encrypt(pair.alice, pair.bob.address, b"no field", access_field=None)
    before = _state(pair)
    with pytest.raises(PolicyViolation):
        pair.bob.decrypt(env)
    assert _state(pair) == before


def test_access_field_under_another_key_refused() -> None:
    policy, _ = make_policy()
    pair = Pair.make(policy=policy)
    rogue = EscrowPolicy(policy.epoch, Point.base_mul(Scalar.random(DeterministicRng(1234))))
    env = evil_encrypt(pair.alice, pair.bob.address, b"rogue key", policy=rogue)
    with pytest.raises(PolicyViolation):
        pair.bob.decrypt(env)


def test_random_access_field_refused() -> None:
    policy, _ = make_policy()
    pair = Pair.make(policy=policy)
    junk = AccessField(policy.epoch, Point.base_mul(Scalar.from_int(5)).raw, b"\x00" * 32)
    env = evil_encrypt(pair.alice, pair.bob.address, b"junk field", access_field=junk)
    with pytest.raises(PolicyViolation):
        pair.bob.decrypt(env)


def test_unknown_epoch_refused() -> None:
    policy, _ = make_policy()
    pair = Pair.make(policy=policy)
    other = EscrowPolicy(policy.epoch + 5, policy.public_key)
    env = evil_encrypt(pair.alice, pair.bob.address, b"future epoch", policy=other)
    with pytest.raises(PolicyViolation):
        pair.bob.decrypt(env)


def test_access_field_refused_when_policy_is_none() -> None:
    policy, _ = make_policy()
    pair = Pair.make()
    env = evil_encrypt(pair.alice, pair.bob.address, b"secret escrow", policy=policy)
    with pytest.raises(PolicyViolation):
        pair.bob.decrypt(env)


def test_previous_epoch_still_accepted() -> None:
    policy, _ = make_policy()
    pair = Pair.make(policy=policy)
    newer = EscrowPolicy(policy.epoch + 1, Point.base_mul(Scalar.from_int(77)),
                         {policy.epoch: policy.public_key})  # fmt: skip
    pair.bob.policy = newer
    assert pair.bob.decrypt(pair.send(pair.alice, b"old epoch")).body == b"old epoch"


def test_holder_of_epoch_secret_recovers_exactly_one_message_key() -> None:
    """The escrow path end to end at protocol level: x·R opens the key of one message."""
    policy, x = make_policy()
    pair = Pair.make(policy=policy)
    env = pair.send(pair.alice, b"evidence")
    assert env.access is not None
    ctx = access.context(env.access.epoch, env.sender, env.recipient, env.conversation_id,
                         env.message_id, env.timestamp_ms)  # fmt: skip
    key = access.recover(env.access, Point.from_bytes(env.access.r).mul(x), ctx)
    session = pair.alice.sessions[pair.bob.address].current
    assert session is not None
    content = Content.decode(open_sealed(key, env.ciphertext, session.ad + env.header_bytes()))
    assert content.body == b"evidence"
    # A wrong share, or the right share with another message's context, is caught.
    with pytest.raises(InvalidMessage):
        access.recover(env.access, Point.from_bytes(env.access.r).mul(Scalar.from_int(3)), ctx)
    with pytest.raises(InvalidMessage):
        access.recover(env.access, Point.from_bytes(env.access.r).mul(x), ctx[:-1] + b"\x00")
