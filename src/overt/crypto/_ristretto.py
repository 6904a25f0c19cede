"""The ristretto255 group (RFC 9496) over libsodium, through ``rbcl``.

Scalars are secrets by default (redacted ``repr``, no ``==``; compare with
:func:`overt.crypto.constant_time_eq` on their bytes if you must). Points are public values.
Decoding rejects non-canonical encodings; multiplication that would yield the identity is an
invalid input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

import rbcl

from overt.crypto._rng import Rng
from overt.errors import DecodeError, InvalidMessage

SCALAR_LEN = 32
POINT_LEN = 32
WIDE_LEN = 64
# The group order l = 2^252 + 27742317777372353535851937790883648493.
GROUP_ORDER = 2**252 + 27742317777372353535851937790883648493


@dataclass(frozen=True, slots=True, eq=False)
class Scalar:
    """An integer modulo the group order, canonically encoded little-endian in 32 bytes."""

    raw: bytes

    @classmethod
    def random(cls, rng: Rng) -> Self:
        """A uniform non-zero scalar drawn through the RNG seam."""
        while True:
            s = rbcl.crypto_core_ristretto255_scalar_reduce(rng.random_bytes(WIDE_LEN))
            if s != bytes(SCALAR_LEN):
                return cls(s)

    @classmethod
    def from_wide(cls, wide: bytes) -> Self:
        """Reduce 64 uniformly random bytes modulo the group order."""
        if len(wide) != WIDE_LEN:
            raise ValueError("from_wide takes 64 bytes")
        return cls(rbcl.crypto_core_ristretto255_scalar_reduce(wide))

    @classmethod
    def from_int(cls, value: int) -> Self:
        return cls((value % GROUP_ORDER).to_bytes(SCALAR_LEN, "little"))

    @classmethod
    def from_bytes(cls, raw: bytes) -> Self:
        """Decode a canonical scalar; anything not reduced modulo l is a decode error."""
        if len(raw) != SCALAR_LEN or int.from_bytes(raw, "little") >= GROUP_ORDER:
            raise DecodeError("not a canonical ristretto255 scalar")
        return cls(bytes(raw))

    def to_int(self) -> int:
        return int.from_bytes(self.raw, "little")

    def is_zero(self) -> bool:
        return self.raw == bytes(SCALAR_LEN)

    def __add__(self, other: Scalar) -> Scalar:
        return Scalar(rbcl.crypto_core_ristretto255_scalar_add(self.raw, other.raw))

    def __sub__(self, other: Scalar) -> Scalar:
        return Scalar(rbcl.crypto_core_ristretto255_scalar_sub(self.raw, other.raw))

    def __mul__(self, other: Scalar) -> Scalar:
        return Scalar(rbcl.crypto_core_ristretto255_scalar_mul(self.raw, other.raw))

    def __neg__(self) -> Scalar:
        return Scalar(rbcl.crypto_core_ristretto255_scalar_negate(self.raw))

    def invert(self) -> Scalar:
        if self.is_zero():
            raise InvalidMessage()
        return Scalar(rbcl.crypto_core_ristretto255_scalar_invert(self.raw))

    def export_secret(self) -> bytes:
        return self.raw

    def __repr__(self) -> str:
        return "Scalar(<redacted>)"


@dataclass(frozen=True, slots=True)
class Point:
    """A ristretto255 group element in its canonical 32-byte encoding."""

    raw: bytes

    @classmethod
    def from_bytes(cls, raw: bytes) -> Self:
        if len(raw) != POINT_LEN or not rbcl.crypto_core_ristretto255_is_valid_point(raw):
            raise DecodeError("not a canonical ristretto255 point")
        return cls(bytes(raw))

    @classmethod
    def from_uniform(cls, wide: bytes) -> Self:
        """The RFC 9496 one-way map of 64 uniform bytes (the core of hash-to-group)."""
        if len(wide) != WIDE_LEN:
            raise ValueError("from_uniform takes 64 bytes")
        return cls(rbcl.crypto_core_ristretto255_from_hash(wide))

    @classmethod
    def base_mul(cls, s: Scalar) -> Self:
        """``s·G``; a zero scalar is invalid."""
        try:
            return cls(rbcl.crypto_scalarmult_ristretto255_base(s.raw))
        except RuntimeError:
            raise InvalidMessage() from None

    def mul(self, s: Scalar) -> Point:
        """``s·P``; a result at the identity is invalid."""
        try:
            return Point(rbcl.crypto_scalarmult_ristretto255(s.raw, self.raw))
        except RuntimeError:
            raise InvalidMessage() from None

    def __add__(self, other: Point) -> Point:
        return Point(rbcl.crypto_core_ristretto255_add(self.raw, other.raw))

    def __sub__(self, other: Point) -> Point:
        return Point(rbcl.crypto_core_ristretto255_sub(self.raw, other.raw))

    def __bytes__(self) -> bytes:
        return self.raw

    def __repr__(self) -> str:
        return f"Point({self.raw[:6].hex()}…)"
