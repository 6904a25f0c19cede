"""Frozen key objects for X25519, Ed25519 and ML-KEM-768.

Private keys never print (``repr`` is redacted), never compare with ``==`` (identity only),
and give up their raw bytes only through the named call :meth:`export_secret`. Public keys are
plain values: they compare by bytes and print a short fingerprint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Self

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519, mlkem, x25519

from overt.crypto._hash import sha256
from overt.crypto._rng import Rng
from overt.errors import DecodeError, InvalidMessage

X25519_KEY_LEN = 32
ED25519_KEY_LEN = 32
ED25519_SIG_LEN = 64
MLKEM768_PUBLIC_LEN = 1184
MLKEM768_CIPHERTEXT_LEN = 1088
MLKEM768_SEED_LEN = 64
MLKEM768_SHARED_LEN = 32


def _fingerprint(kind: str, raw: bytes) -> str:
    return f"{kind}({sha256(raw)[:6].hex()})"


def _check_len(raw: bytes, n: int, what: str) -> bytes:
    if not isinstance(raw, bytes | bytearray) or len(raw) != n:
        raise DecodeError(f"{what} must be {n} bytes")
    return bytes(raw)


# ----------------------------------------------------------------------------- X25519


@dataclass(frozen=True, slots=True)
class X25519PublicKey:
    raw: bytes
    _obj: x25519.X25519PublicKey = field(repr=False, compare=False, hash=False)

    @classmethod
    def from_bytes(cls, raw: bytes) -> Self:
        raw = _check_len(raw, X25519_KEY_LEN, "X25519 public key")
        return cls(raw, x25519.X25519PublicKey.from_public_bytes(raw))

    def __bytes__(self) -> bytes:
        return self.raw

    def __repr__(self) -> str:
        return _fingerprint("X25519PublicKey", self.raw)


@dataclass(frozen=True, slots=True, eq=False)
class X25519PrivateKey:
    _obj: x25519.X25519PrivateKey = field(repr=False)
    public_key: X25519PublicKey

    @classmethod
    def generate(cls, rng: Rng) -> Self:
        return cls.from_secret_bytes(rng.random_bytes(X25519_KEY_LEN))

    @classmethod
    def from_secret_bytes(cls, raw: bytes) -> Self:
        raw = _check_len(raw, X25519_KEY_LEN, "X25519 private key")
        obj = x25519.X25519PrivateKey.from_private_bytes(raw)
        pub = obj.public_key()
        return cls(obj, X25519PublicKey(pub.public_bytes_raw(), pub))

    def exchange(self, peer: X25519PublicKey) -> bytes:
        """X25519 agreement; a low-order peer key (all-zero output) is an invalid message."""
        try:
            return self._obj.exchange(peer._obj)
        except ValueError:
            raise InvalidMessage() from None

    def export_secret(self) -> bytes:
        """The raw private scalar, for encrypted-at-rest storage only."""
        return self._obj.private_bytes_raw()

    def __repr__(self) -> str:
        return f"X25519PrivateKey(<redacted>, public={self.public_key!r})"


# ----------------------------------------------------------------------------- Ed25519


@dataclass(frozen=True, slots=True)
class Ed25519PublicKey:
    raw: bytes
    _obj: ed25519.Ed25519PublicKey = field(repr=False, compare=False, hash=False)

    @classmethod
    def from_bytes(cls, raw: bytes) -> Self:
        raw = _check_len(raw, ED25519_KEY_LEN, "Ed25519 public key")
        try:
            obj = ed25519.Ed25519PublicKey.from_public_bytes(raw)
        except ValueError:
            raise DecodeError("not an Ed25519 public key") from None
        return cls(raw, obj)

    def verify(self, signature: bytes, message: bytes) -> None:
        """Raise :class:`InvalidMessage` unless ``signature`` is valid over ``message``."""
        if len(signature) != ED25519_SIG_LEN:
            raise InvalidMessage()
        try:
            self._obj.verify(signature, message)
        except InvalidSignature:
            raise InvalidMessage() from None

    def __bytes__(self) -> bytes:
        return self.raw

    def __repr__(self) -> str:
        return _fingerprint("Ed25519PublicKey", self.raw)


@dataclass(frozen=True, slots=True, eq=False)
class Ed25519PrivateKey:
    _obj: ed25519.Ed25519PrivateKey = field(repr=False)
    public_key: Ed25519PublicKey

    @classmethod
    def generate(cls, rng: Rng) -> Self:
        return cls.from_secret_bytes(rng.random_bytes(ED25519_KEY_LEN))

    @classmethod
    def from_secret_bytes(cls, raw: bytes) -> Self:
        raw = _check_len(raw, ED25519_KEY_LEN, "Ed25519 private key")
        obj = ed25519.Ed25519PrivateKey.from_private_bytes(raw)
        pub = obj.public_key()
        return cls(obj, Ed25519PublicKey(pub.public_bytes_raw(), pub))

    def sign(self, message: bytes) -> bytes:
        return self._obj.sign(message)

    def export_secret(self) -> bytes:
        """The raw 32-byte seed, for encrypted-at-rest storage only."""
        return self._obj.private_bytes_raw()

    def __repr__(self) -> str:
        return f"Ed25519PrivateKey(<redacted>, public={self.public_key!r})"


# ----------------------------------------------------------------------------- ML-KEM-768


@dataclass(frozen=True, slots=True)
class MlKem768PublicKey:
    """An ML-KEM-768 (FIPS 203) encapsulation key."""

    raw: bytes
    _obj: mlkem.MLKEM768PublicKey = field(repr=False, compare=False, hash=False)

    @classmethod
    def from_bytes(cls, raw: bytes) -> Self:
        raw = _check_len(raw, MLKEM768_PUBLIC_LEN, "ML-KEM-768 public key")
        try:
            obj = mlkem.MLKEM768PublicKey.from_public_bytes(raw)
        except ValueError:
            raise DecodeError("not an ML-KEM-768 encapsulation key") from None
        return cls(raw, obj)

    def encapsulate(self) -> tuple[bytes, bytes]:
        """Return ``(shared_secret, ciphertext)``.

        The encapsulation randomness is drawn inside the primitive from the OS CSPRNG, as
        FIPS 203 requires of an approved implementation; it is the one draw of randomness in
        the protocol core that does not go through the :class:`Rng` seam.
        """
        shared, ct = self._obj.encapsulate()
        return shared, ct

    def __bytes__(self) -> bytes:
        return self.raw

    def __repr__(self) -> str:
        return _fingerprint("MlKem768PublicKey", self.raw)


@dataclass(frozen=True, slots=True, eq=False)
class MlKem768PrivateKey:
    _obj: mlkem.MLKEM768PrivateKey = field(repr=False)
    public_key: MlKem768PublicKey

    @classmethod
    def generate(cls, rng: Rng) -> Self:
        return cls.from_seed(rng.random_bytes(MLKEM768_SEED_LEN))

    @classmethod
    def from_seed(cls, seed: bytes) -> Self:
        seed = _check_len(seed, MLKEM768_SEED_LEN, "ML-KEM-768 seed")
        obj = mlkem.MLKEM768PrivateKey.from_seed_bytes(seed)
        pub = obj.public_key()
        return cls(obj, MlKem768PublicKey(pub.public_bytes_raw(), pub))

    def decapsulate(self, ciphertext: bytes) -> bytes:
        if len(ciphertext) != MLKEM768_CIPHERTEXT_LEN:
            raise InvalidMessage()
        try:
            return self._obj.decapsulate(ciphertext)
        except ValueError:
            raise InvalidMessage() from None

    def export_secret(self) -> bytes:
        """The 64-byte seed (d ‖ z), for encrypted-at-rest storage only."""
        return self._obj.private_bytes_raw()

    def __repr__(self) -> str:
        return f"MlKem768PrivateKey(<redacted>, public={self.public_key!r})"
