"""Implementations under test, behind one small shape shared by Overt and its peers.

Every adapter runs *one session*: a fresh pair of parties, a timed handshake (the initiator
processes the responder's published bundle and sends a first message, the responder derives the
session from it and decrypts that message), then ``messages`` timed encrypt+decrypt round trips
in a traffic :data:`PATTERNS` pattern. Key generation and bundle publication are setup and are
not timed. Each decrypted plaintext is compared with what was sent, inside the timed loop for
every implementation alike. As in :mod:`timeit`, the cyclic garbage collector is run before and
paused during each timed section (:func:`paused_gc`), for every implementation alike.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final

PATTERNS: Final = ("one-way", "flip-10", "ping-pong")
"""``one-way``: A sends every message. ``flip-10``: the direction flips every 10 messages.
``ping-pong``: strict alternation. Every pattern starts with A (who also sent the handshake
message), so ``one-way`` never gets an answer and ``ping-pong`` answers every message."""

MESSAGE_LEN: Final = 100


@contextmanager
def paused_gc() -> Iterator[None]:
    """Collect, then keep the cyclic GC off for the block (reference counting still runs)."""
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def a_sends(pattern: str, messages: int) -> list[bool]:
    """For each message of ``pattern``, whether A (the initiator) sends it."""
    if pattern == "one-way":
        return [True] * messages
    if pattern == "flip-10":
        return [(i // 10) % 2 == 0 for i in range(messages)]
    if pattern == "ping-pong":
        return [i % 2 == 0 for i in range(messages)]
    raise ValueError(f"unknown pattern {pattern!r}; known: {', '.join(PATTERNS)}")


def bodies(messages: int, length: int = MESSAGE_LEN) -> list[bytes]:
    """``messages`` distinct plaintexts of exactly ``length`` bytes (so a mix-up is caught)."""
    out = []
    for i in range(messages):
        stamp = f"msg {i:08d} ".encode()
        out.append((stamp + b"x" * length)[:length])
    return out


@dataclass(frozen=True, slots=True)
class SessionRun:
    """What one adapter run measured."""

    impl: str
    pattern: str
    messages: int
    handshake_s: float
    """Wall time of the handshake including the first message's encrypt+decrypt."""
    elapsed_s: float
    """Wall time of the ``messages`` encrypt+decrypt round trips after the handshake."""
    verified: int
    """How many of the ``messages`` decrypted to exactly what was sent."""
    handshake_verified: bool
    wire_bytes: int | None = None
    """Total encoded size of the ``messages`` envelopes, when the implementation has a wire
    format (measured outside the timed loop)."""

    @property
    def messages_per_s(self) -> float:
        return self.messages / self.elapsed_s

    @property
    def all_verified(self) -> bool:
        return self.handshake_verified and self.verified == self.messages
