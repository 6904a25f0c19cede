"""The randomness seam.

Protocol code never calls ``os.urandom``: it takes an :class:`Rng`. Production passes
:class:`SystemRng`; tests and benchmarks pass :class:`DeterministicRng` so that runs repeat
byte for byte.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Protocol, runtime_checkable


@runtime_checkable
class Rng(Protocol):
    """A source of uniformly random bytes."""

    def random_bytes(self, n: int) -> bytes:
        """Return ``n`` fresh random bytes."""
        ...


class SystemRng:
    """The operating system's CSPRNG. The only RNG for production use."""

    __slots__ = ()

    def random_bytes(self, n: int) -> bytes:
        return os.urandom(n)

    def __repr__(self) -> str:
        return "SystemRng()"


class DeterministicRng:
    """A seeded HMAC-SHA256 counter-mode generator, for tests and benchmarks only.

    Never use it for real keys: anyone who knows the seed knows every output.
    """

    __slots__ = ("_counter", "_key")

    def __init__(self, seed: bytes | str | int) -> None:
        if isinstance(seed, int):
            seed = seed.to_bytes(16, "big", signed=False)
        elif isinstance(seed, str):
            seed = seed.encode()
        self._key = hashlib.sha256(b"overt deterministic rng" + seed).digest()
        self._counter = 0

    def random_bytes(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            self._counter += 1
            out += hmac.digest(self._key, self._counter.to_bytes(8, "big"), "sha256")
        return bytes(out[:n])

    def __repr__(self) -> str:
        return "DeterministicRng(<seeded>)"
