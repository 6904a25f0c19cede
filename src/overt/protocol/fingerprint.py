"""Safety numbers: a 60-digit number two people compare to verify each other's account keys.

Built like Signal's numeric fingerprint, with Overt's own version: for each party,
``H = SHA-512`` iterated :data:`SAFETY_NUMBER_ITERATIONS` times over
``version(2) ‖ account key ‖ account id`` (each iteration hashing ``H ‖ account key``); the
first 30 bytes give six 5-digit groups (each 5-byte chunk mod 100000). The two 30-digit halves
are concatenated in sorted order, so both sides compute the same number.
"""

from __future__ import annotations

from overt.crypto import sha512
from overt.protocol.limits import SAFETY_NUMBER_ITERATIONS

FINGERPRINT_VERSION = 1


def _half(account: bytes, account_key: bytes, iterations: int) -> str:
    h = sha512(FINGERPRINT_VERSION.to_bytes(2, "big") + account_key + account)
    for _ in range(iterations - 1):
        h = sha512(h + account_key)
    return "".join(f"{int.from_bytes(h[i : i + 5], 'big') % 100000:05d}" for i in range(0, 30, 5))


def safety_number(
    account_a: bytes,
    key_a: bytes,
    account_b: bytes,
    key_b: bytes,
    iterations: int = SAFETY_NUMBER_ITERATIONS,
) -> str:
    """The 60-digit safety number of two accounts (same on both sides)."""
    halves = sorted((_half(account_a, key_a, iterations), _half(account_b, key_b, iterations)))
    return "".join(halves)


def format_safety_number(number: str) -> str:
    """Twelve groups of five digits, in three lines, as people read them aloud."""
    groups = [number[i : i + 5] for i in range(0, len(number), 5)]
    return "\n".join(" ".join(groups[i : i + 4]) for i in range(0, len(groups), 4))
