"""Overt's hazmat layer: the only package that imports primitive libraries.

Everything cryptographic that the rest of Overt does goes through here — X25519, Ed25519,
ML-KEM-768, SHA-2, HMAC, HKDF, AES-256-GCM, key-committing content encryption and
ristretto255. Keys are frozen objects whose ``repr`` is redacted; raw secret bytes leave only
through ``export_secret()``. Every failed tag, signature, commitment or proof raises
:class:`overt.errors.InvalidMessage`, without a reason.

This package never sees sockets, databases or clocks, and draws randomness only from the
:class:`Rng` it is handed (ML-KEM encapsulation excepted; see :class:`MlKem768PublicKey`).
"""

from overt.crypto._aead import (
    COMMITMENT_LEN,
    CONTENT_KEY_LEN,
    SEAL_OVERHEAD,
    aes256gcm_decrypt,
    aes256gcm_encrypt,
    open_sealed,
    seal,
)
from overt.crypto._hash import (
    constant_time_eq,
    hkdf_expand,
    hkdf_extract,
    hkdf_sha256,
    hmac_sha256,
    sha256,
    sha512,
)
from overt.crypto._keys import (
    ED25519_KEY_LEN,
    ED25519_SIG_LEN,
    MLKEM768_CIPHERTEXT_LEN,
    MLKEM768_PUBLIC_LEN,
    X25519_KEY_LEN,
    Ed25519PrivateKey,
    Ed25519PublicKey,
    MlKem768PrivateKey,
    MlKem768PublicKey,
    X25519PrivateKey,
    X25519PublicKey,
)
from overt.crypto._ristretto import GROUP_ORDER, POINT_LEN, SCALAR_LEN, Point, Scalar
from overt.crypto._rng import DeterministicRng, Rng, SystemRng

__all__ = [
    "COMMITMENT_LEN",
    "CONTENT_KEY_LEN",
    "ED25519_KEY_LEN",
    "ED25519_SIG_LEN",
    "GROUP_ORDER",
    "MLKEM768_CIPHERTEXT_LEN",
    "MLKEM768_PUBLIC_LEN",
    "POINT_LEN",
    "SCALAR_LEN",
    "SEAL_OVERHEAD",
    "X25519_KEY_LEN",
    "DeterministicRng",
    "Ed25519PrivateKey",
    "Ed25519PublicKey",
    "MlKem768PrivateKey",
    "MlKem768PublicKey",
    "Point",
    "Rng",
    "Scalar",
    "SystemRng",
    "X25519PrivateKey",
    "X25519PublicKey",
    "aes256gcm_decrypt",
    "aes256gcm_encrypt",
    "constant_time_eq",
    "hkdf_expand",
    "hkdf_extract",
    "hkdf_sha256",
    "hmac_sha256",
    "open_sealed",
    "seal",
    "sha256",
    "sha512",
]
