"""`make demo`: Overt end to end on this machine, in plain words, without questions.

This first part runs the protocol core alone (no server): two users, one of them with two
devices, a conversation in both directions, a tampered message caught, and — under access
policy ``escrow`` — one message key opened with the epoch secret, as custodians would.
"""

from __future__ import annotations

import sys

from overt.crypto import Point, Scalar, SystemRng
from overt.errors import InvalidMessage
from overt.protocol import (
    Device,
    EscrowPolicy,
    access,
    direct_conversation_id,
    format_safety_number,
    safety_number,
)
from overt.protocol.identity import AccountIdentity
from overt.wire import Envelope


def say(text: str) -> None:
    print(text, flush=True)


def protocol_walkthrough() -> None:
    rng = SystemRng()
    now = 1_764_000_000_000
    say("== The protocol core, in memory ==")
    alice_acct = AccountIdentity.generate(b"alice", rng)
    bob_acct = AccountIdentity.generate(b"bob", rng)
    alice_phone = Device.create(b"alice", 1, rng=rng)
    alice_laptop = Device.create(b"alice", 2, rng=rng)
    bob_phone = Device.create(b"bob", 1, rng=rng)
    say("alice has a phone and a laptop; bob has a phone. Each device made its own keys.")

    cid = direct_conversation_id(b"alice", b"bob")
    _, envs = alice_phone.encrypt_fanout(
        [bob_phone.address, alice_laptop.address],
        b"Hi Bob! Lunch at noon?",
        now_ms=now,
        conversation_id=cid,
        bundles={
            bob_phone.address: bob_phone.prekey_bundle(),
            alice_laptop.address: alice_laptop.prekey_bundle(),
        },
    )
    say(f"alice's phone ran PQXDH with both devices and sent {len(envs)} copies "
        f"({len(envs[0].encode())} bytes each, post-quantum handshake included).")  # fmt: skip
    for dev, env in zip([bob_phone, alice_laptop], envs, strict=True):
        got = dev.decrypt(Envelope.decode(env.encode()))
        say(f"  {dev.address.account.decode()}'s device {dev.address.device} reads: "
            f"{got.body.decode()!r}")  # fmt: skip

    reply = bob_phone.encrypt(alice_phone.address, b"Noon works.", now_ms=now + 1000)
    say(f"bob answers: {alice_phone.decrypt(reply).body.decode()!r}")

    forged = bytearray(bob_phone.encrypt(alice_phone.address, b"See you", now_ms=now).encode())
    forged[-5] ^= 1
    try:
        alice_phone.decrypt(Envelope.decode(bytes(forged)))
    except InvalidMessage:
        say("a message changed in transit is refused, and alice's session state is untouched.")

    number = safety_number(b"alice", alice_acct.public_key.raw, b"bob", bob_acct.public_key.raw)
    say("their safety number, to compare in person:")
    say("  " + format_safety_number(number).replace("\n", "\n  "))

    say("\n== Access policy 'escrow' (the threshold machinery comes with custodians) ==")
    x = Scalar.random(rng)
    policy = EscrowPolicy(1, Point.base_mul(x))
    carol = Device.create(b"carol", 1, rng=rng, policy=policy)
    dave = Device.create(b"dave", 1, rng=rng, policy=policy)
    env = carol.encrypt(dave.address, b"evidence", now_ms=now, bundle=dave.prekey_bundle())
    dave.decrypt(env)
    say("dave's client checked the access field of carol's message before showing it.")
    assert env.access is not None
    ctx = access.context(env.access.epoch, env.sender, env.recipient, env.conversation_id,
                         env.message_id, env.timestamp_ms)  # fmt: skip
    key = access.recover(env.access, Point.from_bytes(env.access.r).mul(x), ctx)
    say(f"with the epoch secret, one message key (and only it) is recovered: {key.hex()[:16]}…")


def main() -> int:
    protocol_walkthrough()
    say("\nDemo finished.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
