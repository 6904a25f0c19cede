"""Two endpoints over an in-memory wire, driven by Hypothesis through reordering, drops,
duplicates and direction changes. Every delivered plaintext must match what was sent, every
duplicate must be refused as such, and nothing else may fail."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from overt.errors import DuplicateMessage
from overt.protocol import Device
from overt.wire import Envelope, MessageType

from .helpers import Pair, make_policy

# One step of a schedule: (actor, action, argument)
#   ("send", who)           — who encrypts a fresh message into the wire
#   ("deliver", index)      — deliver the in-flight message at index (mod len) to its receiver
#   ("duplicate", index)    — deliver an already-delivered message again
#   ("drop", index)         — lose an in-flight message forever
steps = st.lists(
    st.one_of(
        st.tuples(st.just("send"), st.sampled_from(["alice", "bob"])),
        st.tuples(st.just("deliver"), st.integers(0, 1000)),
        st.tuples(st.just("duplicate"), st.integers(0, 1000)),
        st.tuples(st.just("drop"), st.integers(0, 1000)),
    ),
    min_size=1,
    max_size=60,
)


def _run(schedule: list[tuple[str, object]], escrow: bool) -> None:
    policy = make_policy()[0] if escrow else None
    pair = Pair.make(seed=3, policy=policy)
    devices = {"alice": pair.alice, "bob": pair.bob}
    in_flight: list[tuple[Device, Envelope, bytes]] = []
    delivered: list[tuple[Device, Envelope]] = []
    bob_has_received = False
    counter = 0
    for action, arg in schedule:
        if action == "send":
            sender = devices[str(arg)]
            if sender is pair.bob and not bob_has_received:
                continue  # the responder cannot send before the first message arrives
            counter += 1
            body = f"message {counter} from {arg}".encode()
            in_flight.append((pair.other(sender), pair.send(sender, body), body))
        elif action == "deliver" and in_flight:
            receiver, env, body = in_flight.pop(int(str(arg)) % len(in_flight))
            got = receiver.decrypt(Envelope.decode(env.encode()))
            assert got.body == body
            assert got.message_id == env.message_id
            delivered.append((receiver, env))
            if receiver is pair.bob:
                bob_has_received = True
        elif action == "duplicate" and delivered:
            receiver, env = delivered[int(str(arg)) % len(delivered)]
            with pytest.raises(DuplicateMessage):
                receiver.decrypt(env)
        elif action == "drop" and in_flight:
            in_flight.pop(int(str(arg)) % len(in_flight))
    # Whatever is still in flight arrives at the end, in reverse order.
    for receiver, env, body in reversed(in_flight):
        assert receiver.decrypt(env).body == body


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_any_schedule_delivers_exactly_what_was_sent(schedule: list[tuple[str, object]]) -> None:
    _run(schedule, escrow=False)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_any_schedule_under_escrow_policy(schedule: list[tuple[str, object]]) -> None:
    _run(schedule, escrow=True)


def test_prekey_messages_until_first_reply() -> None:
    pair = Pair.make()
    first = pair.send(pair.alice, b"one")
    second = pair.send(pair.alice, b"two")
    assert first.type is MessageType.PREKEY and second.type is MessageType.PREKEY
    # Second arrives first: it carries the same PQXDH values and starts the session itself.
    assert pair.bob.decrypt(second).body == b"two"
    assert pair.bob.decrypt(first).body == b"one"
    reply = pair.send(pair.bob, b"three")
    assert reply.type is MessageType.MESSAGE
    assert pair.alice.decrypt(reply).body == b"three"
    assert pair.send(pair.alice, b"four").type is MessageType.MESSAGE


def test_simultaneous_initiation_converges() -> None:
    pair = Pair.make()
    a, b = pair.alice, pair.bob
    b.start_session(a.prekey_bundle())
    from_a = pair.send(a, b"hello from a")
    from_b = pair.send(b, b"hello from b")
    assert b.decrypt(from_a).body == b"hello from a"
    assert a.decrypt(from_b).body == b"hello from b"
    for i in range(6):
        sender = a if i % 2 else b
        env = pair.send(sender, f"after {i}".encode())
        assert pair.other(sender).decrypt(env).body == f"after {i}".encode()


def test_lost_messages_do_not_block_later_ones() -> None:
    pair = Pair.make()
    pair.bob.decrypt(pair.send(pair.alice, b"hi"))
    for _ in range(50):
        pair.send(pair.alice, b"lost")
    assert pair.bob.decrypt(pair.send(pair.alice, b"kept")).body == b"kept"
