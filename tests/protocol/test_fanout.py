"""Multi-device: one plaintext to every device of the recipient and the sender's own other
devices, with one message id and one franking commitment across copies."""

from __future__ import annotations

from overt.crypto import DeterministicRng
from overt.protocol import Device, direct_conversation_id, safety_number
from overt.protocol.fingerprint import format_safety_number


def test_fanout_to_recipient_devices_and_own_devices() -> None:
    rng = DeterministicRng
    alice1 = Device.create(b"alice", 1, rng=rng(1))
    alice2 = Device.create(b"alice", 2, rng=rng(2))
    bob1 = Device.create(b"bob", 1, rng=rng(3))
    bob2 = Device.create(b"bob", 2, rng=rng(4))
    targets = [bob1, bob2, alice2]
    bundles = {d.address: d.prekey_bundle() for d in targets}
    cid = direct_conversation_id(b"alice", b"bob")
    msg, envs = alice1.encrypt_fanout(
        [d.address for d in targets], b"to everyone", now_ms=5, conversation_id=cid,
        bundles=bundles,
    )  # fmt: skip
    assert len(envs) == 3
    assert len({e.message_id for e in envs}) == 1
    assert len({e.franking_commitment for e in envs}) == 1
    for dev, env in zip(targets, envs, strict=True):
        assert env.recipient == dev.address
        got = dev.decrypt(env)
        assert got.body == b"to everyone" and got.franking_key == msg.franking_key
    # Replies from each device reach alice1 over their own sessions.
    for dev in targets:
        reply = dev.encrypt(alice1.address, b"reply from " + str(dev.address).encode(), now_ms=6)
        assert alice1.decrypt(reply).body.startswith(b"reply from")


def test_safety_number_is_symmetric_and_key_bound() -> None:
    ka, kb, kc = b"\x01" * 32, b"\x02" * 32, b"\x03" * 32
    n1 = safety_number(b"alice", ka, b"bob", kb)
    assert n1 == safety_number(b"bob", kb, b"alice", ka)
    assert len(n1) == 60 and n1.isdigit()
    assert n1 != safety_number(b"alice", ka, b"bob", kc)
    assert format_safety_number(n1).count("\n") == 2
