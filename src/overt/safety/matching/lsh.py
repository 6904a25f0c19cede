"""Locality-sensitive keys for PDQ: bit sampling with client-side multi-probing.

Private matching needs *exact* equality (a voucher opens only if its key is in the table), but
two copies of one picture have PDQ hashes a few bits apart. Bit sampling turns "close in Hamming
distance" into "equal somewhere":

* The parameters fix ``L`` keys of ``b`` public bit positions each, drawn without replacement
  from the 256 bits by a deterministic generator seeded with :attr:`LshParams.seed`. They are
  part of the table header, so the organisations sign them and the log fixes them.
* **List side.** A list hash ``x`` gives ``L`` keys ``key_i(x) = i ‖ x[P_i]`` (the index, then
  the ``b`` sampled bits packed). A copy at distance ``d`` agrees with ``key_i`` with probability
  ``C(256−d, b) / C(256, b)`` if its differing bits fell at random.
* **Client side, multi-probe.** The client also knows each bit's *margin* (how far its DCT
  coefficient was from the median, :class:`~overt.safety.matching.pdq.PdqDigest`). For each key
  it takes the ``m`` sampled positions of smallest margin — the bits a re-encoding most likely
  flipped — and sends all ``2^m`` variants of the key with those bits flipped. ``L·2^m`` vouchers
  per image, one of which matches ``key_i(x)`` whenever the sampled bits that differ are among
  the ``m`` weakest.

The default (``L = 16``, ``b = 40``, ``m = 2``: 64 vouchers) was chosen on the evaluation
corpus of ``bench/corpus.py`` with the ``matching`` bench group: recall within distance ≤ 31 of
0.958, against 0.968 for 64 plain 40-bit keys, with a quarter of the list keys — so the blinded
table is 0.60 GB instead of 2.4 GB for 10^6 hashes — at the same false-match rate (see
docs/matching.md).

This module knows no cryptography, table or network: hashes in, key bytes out.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Final, Self

import numpy as np
from numpy.typing import NDArray

from overt.crypto import sha256
from overt.errors import DecodeError, LocalError
from overt.safety.matching.limits import MAX_LIST_KEYS, MAX_PROBES_PER_KEY
from overt.safety.matching.pdq import PDQ_BITS, PdqDigest, PdqHash
from overt.wire import Reader, Writer

DEFAULT_LSH_SEED: Final = sha256(b"Overt PDQ bit-sampling positions v1")
"""The seed of the default bit positions (anyone can recompute them)."""

LSH_PARAMS_VERSION: Final = 1
MIN_BITS_PER_KEY: Final = 16
"""Fewer sampled bits would make random collisions common (2^-16 per list key)."""
MAX_FLIP_BITS: Final = MAX_PROBES_PER_KEY.bit_length() - 1
_POSITIONS_LABEL: Final = b"Overt_LSH_positions_v1"


@dataclass(frozen=True)
class LshParams:
    """Bit-sampling parameters: ``keys`` keys of ``bits_per_key`` positions, ``flip_bits``
    probed bits per key on the client (``keys·2^flip_bits`` vouchers per image)."""

    keys: int = 16
    bits_per_key: int = 40
    flip_bits: int = 2
    seed: bytes = DEFAULT_LSH_SEED

    def __post_init__(self) -> None:
        if not 1 <= self.keys <= MAX_LIST_KEYS:
            raise LocalError(f"LSH keys must be 1..{MAX_LIST_KEYS}")
        if not MIN_BITS_PER_KEY <= self.bits_per_key <= PDQ_BITS:
            raise LocalError(f"bits per key must be {MIN_BITS_PER_KEY}..{PDQ_BITS}")
        if not 0 <= self.flip_bits <= min(MAX_FLIP_BITS, self.bits_per_key):
            raise LocalError(f"flip bits must be 0..{MAX_FLIP_BITS}")
        if not isinstance(self.seed, bytes) or len(self.seed) != 32:
            raise LocalError("the LSH seed is 32 bytes")

    @property
    def probes(self) -> int:
        return 1 << self.flip_bits

    @property
    def vouchers(self) -> int:
        """Vouchers per image: one per (key, probe)."""
        return self.keys * self.probes

    @property
    def key_bytes(self) -> int:
        """Encoded length of one key: the index byte and the packed sampled bits."""
        return 1 + (self.bits_per_key + 7) // 8

    @cached_property
    def positions(self) -> tuple[tuple[int, ...], ...]:
        """The ``keys`` tuples of ``bits_per_key`` distinct bit positions (0 = first bit)."""
        return tuple(_sample_positions(self.seed, i, self.bits_per_key) for i in range(self.keys))

    @cached_property
    def _index(self) -> NDArray[np.intp]:
        return np.array(self.positions, dtype=np.intp)

    def encode(self) -> bytes:
        return (
            Writer()
            .u8(LSH_PARAMS_VERSION)
            .u8(self.keys)
            .u16(self.bits_per_key)
            .u8(self.flip_bits)
            .fixed(self.seed, 32)
            .getvalue()
        )

    @classmethod
    def read(cls, r: Reader) -> Self:
        r.version(LSH_PARAMS_VERSION)
        keys, bits, flips, seed = r.u8("keys"), r.u16("bits"), r.u8("flips"), r.fixed(32, "seed")
        try:
            return cls(keys, bits, flips, seed)
        except LocalError as e:
            raise DecodeError(f"LSH parameters: {e}") from None


def _sample_positions(seed: bytes, index: int, count: int) -> tuple[int, ...]:
    """Fisher–Yates over 0..255 driven by SHA-256 in counter mode (unbiased by rejection)."""
    pool = list(range(PDQ_BITS))
    stream = b""
    counter = 0

    def below(n: int) -> int:
        nonlocal stream, counter
        limit = (1 << 16) - ((1 << 16) % n)
        while True:
            if len(stream) < 2:
                stream += sha256(
                    _POSITIONS_LABEL + seed + index.to_bytes(2, "big") + counter.to_bytes(4, "big")
                )
                counter += 1
            value, stream = int.from_bytes(stream[:2], "big"), stream[2:]
            if value < limit:
                return value % n

    for i in range(count):
        j = i + below(PDQ_BITS - i)
        pool[i], pool[j] = pool[j], pool[i]
    return tuple(pool[:count])


def _encode(index: int, bits: NDArray[np.uint8]) -> bytes:
    return bytes((index,)) + np.packbits(bits.astype(np.uint8)).tobytes()


def list_keys(h: PdqHash, params: LshParams) -> list[bytes]:
    """The ``L`` keys of a list hash (what the provider's table holds)."""
    sampled = h.bits()[params._index]
    return [_encode(i, sampled[i]) for i in range(params.keys)]


def probe_keys(digest: PdqDigest, params: LshParams) -> list[bytes]:
    """The ``L·2^m`` keys a client sends for one image, key by key, exact variant first."""
    sampled = digest.hash.bits()[params._index]
    margins = digest.margins[params._index]
    out: list[bytes] = []
    m = params.flip_bits
    for i in range(params.keys):
        weakest = np.argsort(margins[i], kind="stable")[:m]
        for mask in range(params.probes):
            bits = sampled[i].copy()
            for q in range(m):
                if mask >> q & 1:
                    bits[weakest[q]] ^= 1
            out.append(_encode(i, bits))
    return out
