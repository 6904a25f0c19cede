"""Overt's side of the protocol group: :class:`overt.protocol.Device` sessions.

Same shape as the peer (see :mod:`bench.impls`): setup (``Device.create`` for both parties and
Bob's ``prekey_bundle()``) is untimed; the handshake is Alice's first ``encrypt`` with Bob's
bundle plus Bob's ``decrypt`` of it (PQXDH on both sides, so it includes ML-KEM-768); then
the pattern's messages. Envelopes are handed over as objects, as the peer hands over its
``EncryptedMessage`` tuples; their encoded sizes are taken after the timed loop.

Keys are made from one ``DeterministicRng(seed)`` per session (untimed setup), so every
repetition starts from the same state; the timed part then draws its randomness (ratchet keys,
message ids, franking keys) from ``SystemRng``, the production source, as the peer draws from
the OS (ML-KEM encapsulation draws its own randomness inside ``overt.crypto`` in any case).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

from bench.core import BenchError
from bench.impls import SessionRun, a_sends, bodies, paused_gc
from overt.crypto import DeterministicRng, Point, Rng, Scalar, SystemRng, constant_time_eq
from overt.protocol import Device, EscrowPolicy, Received, franking
from overt.wire import Address, Envelope

NAME: Final = "overt"
POLICIES: Final = ("none", "escrow")
DEFAULT_SEED: Final = 1
ESCROW_EPOCH: Final = 1


def check_api() -> None:
    """Raise :class:`BenchError` naming what is missing from the API this adapter uses."""
    missing = [
        f"Device.{name}"
        for name in ("create", "prekey_bundle", "encrypt", "decrypt", "address")
        if not hasattr(Device, name)
    ]
    missing += [f"franking.{name}" for name in ("commit", "context") if not hasattr(franking, name)]
    if missing:
        raise BenchError("overt.protocol lacks " + ", ".join(missing))


def _make_parties(seed: int, policy: str) -> tuple[Rng, Device, Device]:
    if policy not in POLICIES:
        raise BenchError(f"unknown access policy {policy!r}; known: {', '.join(POLICIES)}")
    rng = DeterministicRng(seed)
    escrow = None
    if policy == "escrow":
        escrow = EscrowPolicy(epoch=ESCROW_EPOCH, public_key=Point.base_mul(Scalar.random(rng)))
    alice = Device.create(b"alice", 1, rng=rng, now_ms=0, policy=escrow)
    bob = Device.create(b"bob", 1, rng=rng, now_ms=0, policy=escrow)
    return rng, alice, bob


def run_session(
    pattern: str, messages: int, *, policy: str = "none", seed: int = DEFAULT_SEED
) -> SessionRun:
    """One fresh Alice/Bob session: timed handshake, then ``messages`` timed round trips."""
    _, alice, bob = _make_parties(seed, policy)
    rng: Rng = SystemRng()
    alice.rng = bob.rng = rng
    plaintexts = bodies(messages + 1)
    first, rest = plaintexts[0], plaintexts[1:]
    senders = a_sends(pattern, messages)
    bob_bundle = bob.prekey_bundle()
    a_addr, b_addr = alice.address, bob.address
    a_encrypt: Callable[..., Envelope] = alice.encrypt
    b_encrypt: Callable[..., Envelope] = bob.encrypt
    a_decrypt: Callable[..., Received] = alice.decrypt
    b_decrypt: Callable[..., Received] = bob.decrypt

    now = 1
    with paused_gc():
        start = time.perf_counter()
        env = a_encrypt(b_addr, first, now_ms=now, rng=rng, bundle=bob_bundle)
        got = b_decrypt(env, now_ms=now + 1)
        handshake_s = time.perf_counter() - start
    handshake_ok = got.body == first

    envelopes: list[Envelope] = []
    keep = envelopes.append
    verified = 0
    with paused_gc():
        start = time.perf_counter()
        for body, from_a in zip(rest, senders, strict=True):
            now += 2
            if from_a:
                env = a_encrypt(b_addr, body, now_ms=now, rng=rng)
                out = b_decrypt(env, now_ms=now + 1)
            else:
                env = b_encrypt(a_addr, body, now_ms=now, rng=rng)
                out = a_decrypt(env, now_ms=now + 1)
            keep(env)
            verified += out.body == body
        elapsed_s = time.perf_counter() - start

    wire_bytes = sum(len(e.encode()) for e in envelopes)
    return SessionRun(
        impl=NAME,
        pattern=pattern,
        messages=messages,
        handshake_s=handshake_s,
        elapsed_s=elapsed_s,
        verified=verified,
        handshake_verified=handshake_ok,
        wire_bytes=wire_bytes,
    )


# ----------------------------------------------------------------------------- per-feature


def sample_envelope(policy: str, seed: int = DEFAULT_SEED) -> tuple[Envelope, Received]:
    """A steady-state envelope A->B (after B has answered once) and what B decrypted from it.

    Used for byte accounting: a ``MESSAGE`` envelope carries no PQXDH values, so the
    difference between two policies is exactly the access field.
    """
    rng, alice, bob = _make_parties(seed, policy)
    body = bodies(1)[0]
    env = alice.encrypt(bob.address, body, now_ms=1, rng=rng, bundle=bob.prekey_bundle())
    bob.decrypt(env, now_ms=2)
    alice.decrypt(bob.encrypt(alice.address, body, now_ms=3, rng=rng), now_ms=4)
    env = alice.encrypt(bob.address, body, now_ms=5, rng=rng)
    got = bob.decrypt(env, now_ms=6)
    if got.body != body:
        raise BenchError("overt: sample envelope did not decrypt to what was sent")
    return env, got


def franking_cost(iterations: int, seed: int = DEFAULT_SEED) -> tuple[float, bool]:
    """Seconds for ``iterations`` x (sender's ``commit`` + recipient's check) on 100 bytes.

    The recipient's check is a second ``commit`` compared in constant time with the first,
    which is what ``overt.protocol.franking.verify`` does. Building the per-message context
    (once per side in the protocol) and drawing the franking key are outside the loop. Returns
    the time and whether every check passed.
    """
    rng = DeterministicRng(seed)
    body = bodies(1)[0]
    key = rng.random_bytes(32)
    ctx = franking.context(Address(b"alice", 1), rng.random_bytes(32), rng.random_bytes(16), 1)
    commit = franking.commit
    ok = True
    with paused_gc():
        start = time.perf_counter()
        for _ in range(iterations):
            ok &= constant_time_eq(commit(key, ctx, body), commit(key, ctx, body))
        elapsed = time.perf_counter() - start
    return elapsed, ok
