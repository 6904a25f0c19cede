"""A verifiable random function: ECVRF-RISTRETTO255-SHA512, as C2SP ``vrf-r255`` defines it.

The construction is the ECVRF of RFC 9381 §5 (published as draft-irtf-cfrg-vrf-11 when C2SP
wrote ``vrf-r255``): ``ECVRF_prove``, ``ECVRF_verify`` with ``validate_key`` always on,
``ECVRF_proof_to_hash``, ``ECVRF_decode_proof`` and ``ECVRF_challenge_generation``. The
ciphersuite is c2sp.org/vrf-r255:

* ``suite_string = 0xFF || "c2sp.org/vrf-r255"``; the group is ristretto255 (RFC 9496), with
  little-endian scalars, ``cLen = 16``, ``ptLen = qLen = 32`` and Hash = SHA-512;
* the secret key *is* the scalar ``x`` (generated as 64 random bytes reduced modulo l);
* ``ECVRF_nonce_generation``: ``k = SHA-512(suite || 0x81 || x || h_string) mod l``;
* ``ECVRF_encode_to_curve``: ``H = one_way_map(SHA-512(suite || 0x82 || PK_string || alpha))``;
* ``ECVRF_validate_key`` rejects only the identity element.

A proof ``pi`` is ``Gamma || c || s`` (80 bytes); the output ``beta`` is 64 bytes. Every
verification failure raises the same :class:`overt.errors.InvalidMessage`, without a reason.

Overt uses it for the key directory's account labels: the directory holds the secret key, a
label is ``beta`` of the account identifier, and a lookup returns ``pi`` so that clients can
check the label without the directory revealing which accounts exist. This module knows nothing
of accounts, logs or encodings of identifiers: bytes in, bytes out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Self

from overt.crypto._hash import constant_time_eq, sha256, sha512
from overt.crypto._ristretto import POINT_LEN, SCALAR_LEN, Point, Scalar
from overt.crypto._rng import Rng
from overt.errors import DecodeError, InvalidMessage

#: c2sp.org/vrf-r255 ``suite_string``.
SUITE_STRING: Final = b"\xffc2sp.org/vrf-r255"
#: Length of the challenge ``c`` in a proof (``cLen``).
CHALLENGE_LEN: Final = 16
#: ``pi = point_to_string(Gamma) || int_to_string(c, cLen) || int_to_string(s, qLen)``.
PROOF_LEN: Final = POINT_LEN + CHALLENGE_LEN + SCALAR_LEN
#: ``beta``, one SHA-512 output.
OUTPUT_LEN: Final = 64
VRF_KEY_LEN: Final = 32

# Domain separators of RFC 9381 (front/back bytes) and of c2sp.org/vrf-r255 (0x81, 0x82).
_CHALLENGE_FRONT: Final = b"\x02"
_CHALLENGE_BACK: Final = b"\x00"
_PROOF_TO_HASH_FRONT: Final = b"\x03"
_PROOF_TO_HASH_BACK: Final = b"\x00"
_NONCE_GENERATION: Final = b"\x81"
_ENCODE_TO_CURVE: Final = b"\x82"

_IDENTITY: Final = bytes(POINT_LEN)


@dataclass(frozen=True, slots=True)
class VrfPublicKey:
    """A vrf-r255 public key ``Y = x·B``: any canonical ristretto255 element but the identity."""

    raw: bytes
    _point: Point = field(repr=False, compare=False, hash=False)

    @classmethod
    def from_bytes(cls, raw: bytes) -> Self:
        """Decode and validate (``ECVRF_validate_key``); failure is a :class:`DecodeError`."""
        point = Point.from_bytes(raw)
        if point.raw == _IDENTITY:
            raise DecodeError("a VRF public key cannot be the identity element")
        return cls(point.raw, point)

    def __bytes__(self) -> bytes:
        return self.raw

    def __repr__(self) -> str:
        return f"VrfPublicKey({sha256(self.raw)[:6].hex()})"


@dataclass(frozen=True, slots=True, eq=False)
class VrfSecretKey:
    """A vrf-r255 secret key: the scalar ``x`` itself. Never printed, never compared with ``==``."""

    _x: Scalar = field(repr=False)
    public_key: VrfPublicKey

    @classmethod
    def generate(cls, rng: Rng) -> Self:
        """64 random bytes reduced modulo l (non-zero), as c2sp.org/vrf-r255 suggests."""
        return cls._from_scalar(Scalar.random(rng))

    @classmethod
    def from_secret_bytes(cls, raw: bytes) -> Self:
        """Load a key saved with :meth:`export_secret`: a canonical, non-zero scalar."""
        x = Scalar.from_bytes(raw)
        if x.is_zero():
            raise DecodeError("a VRF secret key cannot be zero")
        return cls._from_scalar(x)

    @classmethod
    def _from_scalar(cls, x: Scalar) -> Self:
        y = Point.base_mul(x)
        return cls(x, VrfPublicKey(y.raw, y))

    def export_secret(self) -> bytes:
        """The 32-byte little-endian scalar ``x``, for encrypted-at-rest storage only."""
        return self._x.export_secret()

    def __repr__(self) -> str:
        return f"VrfSecretKey(<redacted>, public={self.public_key!r})"


def vrf_keygen(rng: Rng) -> tuple[VrfSecretKey, VrfPublicKey]:
    """A fresh key pair drawn through the RNG seam."""
    sk = VrfSecretKey.generate(rng)
    return sk, sk.public_key


def _encode_to_curve(salt: bytes, alpha: bytes) -> Point:
    return Point.from_uniform(sha512(SUITE_STRING + _ENCODE_TO_CURVE + salt + alpha))


def _nonce(x: Scalar, h_string: bytes) -> Scalar:
    return Scalar.from_wide(sha512(SUITE_STRING + _NONCE_GENERATION + x.raw + h_string))


def _challenge(y: Point, h: Point, gamma: Point, u: Point, v: Point) -> bytes:
    """``ECVRF_challenge_generation``: the first ``cLen`` bytes of the hash."""
    digest = sha512(
        SUITE_STRING
        + _CHALLENGE_FRONT
        + y.raw
        + h.raw
        + gamma.raw
        + u.raw
        + v.raw
        + _CHALLENGE_BACK
    )
    return digest[:CHALLENGE_LEN]


def _challenge_scalar(c: bytes) -> Scalar:
    # A 128-bit integer is always below l, so zero-padding it is its canonical encoding.
    return Scalar(c + bytes(SCALAR_LEN - CHALLENGE_LEN))


def _decode_proof(pi: bytes) -> tuple[Point, bytes, Scalar]:
    """``ECVRF_decode_proof``; any malformed proof is an :class:`InvalidMessage`."""
    if len(pi) != PROOF_LEN:
        raise InvalidMessage()
    try:
        gamma = Point.from_bytes(pi[:POINT_LEN])
        s = Scalar.from_bytes(pi[POINT_LEN + CHALLENGE_LEN :])
    except DecodeError:
        raise InvalidMessage() from None
    return gamma, pi[POINT_LEN : POINT_LEN + CHALLENGE_LEN], s


def _gamma_to_hash(gamma: Point) -> bytes:
    # The cofactor of ristretto255 is 1, so cofactor·Gamma is Gamma.
    return sha512(SUITE_STRING + _PROOF_TO_HASH_FRONT + gamma.raw + _PROOF_TO_HASH_BACK)


def prove(sk: VrfSecretKey, alpha: bytes) -> bytes:
    """``ECVRF_prove``: the 80-byte proof ``pi`` for input ``alpha``. Deterministic."""
    x = sk._x
    y = sk.public_key._point
    h = _encode_to_curve(y.raw, alpha)
    gamma = h.mul(x)
    k = _nonce(x, h.raw)
    c = _challenge(y, h, gamma, Point.base_mul(k), h.mul(k))
    s = k + _challenge_scalar(c) * x
    return gamma.raw + c + s.raw


def proof_to_hash(pi: bytes) -> bytes:
    """``ECVRF_proof_to_hash``: the 64-byte output ``beta`` named by ``pi``.

    It does not verify ``pi`` (a malformed one raises :class:`InvalidMessage`); use
    :func:`verify` on anything that came from elsewhere.
    """
    gamma, _, _ = _decode_proof(pi)
    return _gamma_to_hash(gamma)


def verify(pk: VrfPublicKey, alpha: bytes, pi: bytes) -> bytes:
    """``ECVRF_verify`` (``validate_key`` on): ``beta`` if ``pi`` is valid for ``alpha`` under
    ``pk``, else :class:`InvalidMessage`.

    A proof whose ``Gamma``, ``c`` or ``s`` is the identity or zero is refused; an honest prover
    makes one with negligible probability only.
    """
    gamma, c, s = _decode_proof(pi)
    y = pk._point
    h = _encode_to_curve(pk.raw, alpha)
    c_scalar = _challenge_scalar(c)
    u = Point.base_mul(s) - y.mul(c_scalar)
    v = h.mul(s) - gamma.mul(c_scalar)
    if not constant_time_eq(_challenge(y, h, gamma, u, v), c):
        raise InvalidMessage()
    return _gamma_to_hash(gamma)
