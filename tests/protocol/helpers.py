"""Two devices over a fake wire, and a deliberately misbehaving sender for negative tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from overt.crypto import DeterministicRng, Point, Scalar, seal
from overt.protocol import Device, EscrowPolicy, Outgoing, SessionRecord, access, franking
from overt.protocol.ratchet import step_send
from overt.protocol.session import Session
from overt.wire import AccessField, Address, Content, Envelope, MessageType


def snapshot(dev: Device) -> dict[Address, bytes]:
    """Every session record of a device, as bytes (to compare state before and after)."""
    return {peer: rec.encode() for peer, rec in dev.sessions.items()}


def prekey_snapshot(dev: Device) -> tuple[frozenset[int], frozenset[int]]:
    return frozenset(dev.prekeys.one_time), frozenset(dev.prekeys.kem)


@dataclass
class Pair:
    alice: Device
    bob: Device

    @classmethod
    def make(cls, seed: int = 1, policy: EscrowPolicy | None = None) -> Pair:
        rng = DeterministicRng(seed)
        alice = Device.create(b"alice", 1, rng=DeterministicRng(seed * 7 + 1), policy=policy)
        bob = Device.create(b"bob", 1, rng=DeterministicRng(seed * 7 + 2), policy=policy)
        del rng
        alice.start_session(bob.prekey_bundle())
        return cls(alice, bob)

    def send(self, sender: Device, body: bytes, now_ms: int = 1_700_000_000_000) -> Envelope:
        receiver = self.bob if sender is self.alice else self.alice
        return sender.encrypt(receiver.address, body, now_ms=now_ms)

    def other(self, dev: Device) -> Device:
        return self.bob if dev is self.alice else self.alice


def make_policy(seed: int = 99) -> tuple[EscrowPolicy, Scalar]:
    x = Scalar.random(DeterministicRng(seed))
    return EscrowPolicy(7, Point.base_mul(x)), x


def evil_encrypt(
    sender: Device,
    recipient: Address,
    body: bytes,
    *,
    committed_body: bytes | None = None,
    access_field: AccessField | str | None = "honest",
    policy: EscrowPolicy | None = None,
    now_ms: int = 1_700_000_000_000,
    access_context: Callable[[int, Address, Address, bytes, bytes, int], bytes] = access.context,
) -> Envelope:
    """A modified sender: a valid ciphertext whose franking commitment or access field lies.

    ``committed_body`` commits to another body than the one encrypted; ``access_field`` is an
    explicit field (or None to omit it) instead of the honest one; ``access_context`` makes
    the "honest" field under another context than the content context.
    """
    rec = sender.sessions[recipient]
    session = rec.current
    assert session is not None
    ratchet, header, mk = step_send(session.ratchet)
    msg = sender.new_outgoing(body, now_ms, b"\x01" * 32)
    ctx = franking.context(sender.address, msg.conversation_id, msg.message_id, now_ms)
    commitment = franking.commit(msg.franking_key, ctx, committed_body or body)
    af: AccessField | None
    policy = policy or sender.policy
    if access_field == "honest" and policy is None:
        af = None
    elif access_field == "honest":
        assert policy is not None
        actx = access_context(
            policy.epoch, sender.address, recipient, msg.conversation_id, msg.message_id, now_ms
        )
        af = access.create(policy.epoch, policy.public_key, mk, actx)
    else:
        assert not isinstance(access_field, str)
        af = access_field
    env = Envelope(
        MessageType.PREKEY if session.pending_init else MessageType.MESSAGE,
        sender.address,
        recipient,
        now_ms,
        msg.message_id,
        msg.conversation_id,
        session.pending_init,
        header,
        commitment,
        af,
        b"",
    )
    ct = seal(mk, Content(msg.franking_key, body).encode(), session.ad + env.header_bytes())
    new = Session(
        session.ad,
        session.peer_identity_dh,
        session.peer_identity_sign,
        session.base_key,
        session.pending_init,
        ratchet,
    )
    sender.sessions[recipient] = SessionRecord(new, rec.archived)
    return Envelope.decode(
        Envelope(
            env.type,
            env.sender,
            env.recipient,
            env.timestamp_ms,
            env.message_id,
            env.conversation_id,
            env.init,
            env.header,
            env.franking_commitment,
            env.access,
            ct,
        ).encode()
    )


__all__ = ["Outgoing", "Pair", "evil_encrypt", "make_policy", "prekey_snapshot", "snapshot"]
