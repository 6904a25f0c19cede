"""Every single-byte change of every wire message is rejected with a typed error, and the
receiving device's state (session records and prekeys) is unchanged afterwards."""

from __future__ import annotations

import pytest

from overt.crypto import DeterministicRng
from overt.errors import (
    DecodeError,
    DuplicateMessage,
    InvalidMessage,
    PolicyViolation,
    ProtocolViolation,
    RemoteError,
    UnknownSession,
)
from overt.protocol import AccountIdentity, Device, verify_device_list
from overt.wire import Envelope, PreKeyBundle, SignedDeviceList

from .helpers import Pair, make_policy, prekey_snapshot, snapshot


# Flipping bits of a byte: one flip per position keeps the test fast; the XOR value varies
# with the position so that every bit is exercised across the message.
def _mutations(data: bytes) -> list[bytes]:
    out = []
    for i in range(len(data)):
        b = bytearray(data)
        b[i] ^= 1 << (i % 8)
        out.append(bytes(b))
    return out


def _assert_rejected_unchanged(receiver: Device, wire: bytes) -> None:
    before = snapshot(receiver), prekey_snapshot(receiver)
    for mutated in _mutations(wire):
        with pytest.raises(RemoteError) as info:
            receiver.decrypt(Envelope.decode(mutated))
        assert isinstance(
            info.value,
            DecodeError | InvalidMessage | UnknownSession | ProtocolViolation | PolicyViolation,
        )
        assert (snapshot(receiver), prekey_snapshot(receiver)) == before
    # …and the genuine message still decrypts afterwards.
    receiver.decrypt(Envelope.decode(wire))


@pytest.mark.parametrize("escrow", [False, True])
def test_every_byte_of_a_prekey_envelope(escrow: bool) -> None:
    pair = Pair.make(policy=make_policy()[0] if escrow else None)
    wire = pair.send(pair.alice, b"the first message").encode()
    _assert_rejected_unchanged(pair.bob, wire)


@pytest.mark.parametrize("escrow", [False, True])
def test_every_byte_of_a_ratchet_envelope(escrow: bool) -> None:
    pair = Pair.make(policy=make_policy()[0] if escrow else None)
    pair.bob.decrypt(pair.send(pair.alice, b"hello"))
    pair.alice.decrypt(pair.send(pair.bob, b"hello back"))
    wire = pair.send(pair.alice, b"an ordinary message").encode()
    _assert_rejected_unchanged(pair.bob, wire)


def test_truncations_and_extensions_are_decode_errors() -> None:
    pair = Pair.make()
    wire = pair.send(pair.alice, b"x").encode()
    for n in range(len(wire)):
        with pytest.raises(DecodeError):
            Envelope.decode(wire[:n])
    with pytest.raises(DecodeError):
        Envelope.decode(wire + b"\x00")


def test_every_byte_of_a_bundle_is_caught() -> None:
    """Signatures cover the prekeys; the device list covers identity keys; the one-time
    prekey is unsigned (as in Signal) and a substituted one makes the first message fail at
    the recipient; the address is what the client asked for."""
    bob = Device.create(b"bob", 1, rng=DeterministicRng(5))
    wire = bob.prekey_bundle().encode()
    for mutated in _mutations(wire):
        try:
            bundle = PreKeyBundle.decode(mutated)
        except DecodeError:
            continue
        if bundle.device != bob.address:
            continue  # the client checks the bundle is for the device it asked for
        alice = Device.create(b"alice", 1, rng=DeterministicRng(6))
        try:
            alice.start_session(bundle, expected=bob.entry())
        except InvalidMessage:
            continue
        env = alice.encrypt(bob.address, b"first", now_ms=1)
        before = snapshot(bob), prekey_snapshot(bob)
        with pytest.raises(RemoteError):
            bob.decrypt(env)
        assert (snapshot(bob), prekey_snapshot(bob)) == before


def test_bad_prekey_signature_refused() -> None:
    bob = Device.create(b"bob", 1, rng=DeterministicRng(5))
    alice = Device.create(b"alice", 1, rng=DeterministicRng(6))
    b = bob.prekey_bundle()
    forged_spk = type(b.signed_prekey)(
        b.signed_prekey.id, bytes(32 * [9]), b.signed_prekey.signature
    )
    forged = PreKeyBundle(b.device, b.identity_dh, b.identity_sign, forged_spk, b.kem_prekey, None)
    with pytest.raises(InvalidMessage):
        alice.start_session(forged)
    assert not alice.has_session(bob.address)


def test_device_list_signature() -> None:
    acct = AccountIdentity.generate(b"alice", DeterministicRng(1))
    dev = Device.create(b"alice", 1, rng=DeterministicRng(2))
    signed = acct.sign_device_list(1, [dev.entry()])
    wire = signed.encode()
    assert verify_device_list(SignedDeviceList.decode(wire), acct.public_key.raw).serial == 1
    for mutated in _mutations(wire):
        with pytest.raises(RemoteError):
            verify_device_list(SignedDeviceList.decode(mutated), acct.public_key.raw)


def test_replayed_initial_message() -> None:
    pair = Pair.make()
    first = pair.send(pair.alice, b"hello")
    pair.bob.decrypt(first)
    with pytest.raises(DuplicateMessage):
        pair.bob.decrypt(first)
    # Even if Bob lost the session, the one-time prekey is gone: the replay finds nothing.
    pair.bob.sessions.clear()
    with pytest.raises(UnknownSession):
        pair.bob.decrypt(first)


def test_replay_without_one_time_prekey_is_refused_by_the_session() -> None:
    bob = Device.create(
        b"bob", 1, rng=DeterministicRng(5), one_time_prekeys=0, kem_one_time_prekeys=0
    )
    alice = Device.create(b"alice", 1, rng=DeterministicRng(6))
    alice.start_session(bob.prekey_bundle())
    env = alice.encrypt(bob.address, b"last resort", now_ms=1)
    assert bob.decrypt(env).body == b"last resort"
    with pytest.raises(DuplicateMessage):
        bob.decrypt(env)


def test_envelope_for_another_device_refused() -> None:
    pair = Pair.make()
    carol = Device.create(b"carol", 1, rng=DeterministicRng(8))
    env = pair.send(pair.alice, b"not for carol")
    with pytest.raises(ProtocolViolation):
        carol.decrypt(env)
