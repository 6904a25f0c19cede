"""Hashes, MACs, HKDF and constant-time comparison.

HKDF (RFC 5869) and HMAC are built on the standard library's C implementations: they sit on
the per-message hot path, and one-shot ``hmac.digest`` calls cost far less than building
key-derivation objects for every message.
"""

from __future__ import annotations

import _hashlib
import hashlib
import hmac
from collections.abc import Callable

# The C function behind ``hmac.digest`` (CPython with OpenSSL, which pyca requires anyway);
# calling it directly saves a Python frame on every MAC of the hot path.
_hmac_digest: Callable[[bytes, bytes, str], bytes] = _hashlib.hmac_digest

HASH_LEN = 32
_MAX_HKDF_OUTPUT = 255 * HASH_LEN


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def sha512(data: bytes) -> bytes:
    return hashlib.sha512(data).digest()


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    return _hmac_digest(key, data, "sha256")


def hkdf_extract(salt: bytes, ikm: bytes) -> bytes:
    """RFC 5869 HKDF-Extract with SHA-256; an empty salt means HashLen zero bytes."""
    return _hmac_digest(salt or bytes(HASH_LEN), ikm, "sha256")


def hkdf_expand(prk: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 HKDF-Expand with SHA-256."""
    if not 0 < length <= _MAX_HKDF_OUTPUT:
        raise ValueError("HKDF output length out of range")
    blocks = []
    block = b""
    for counter in range(1, (length + HASH_LEN - 1) // HASH_LEN + 1):
        block = _hmac_digest(prk, block + info + _COUNTER[counter], "sha256")
        blocks.append(block)
    return b"".join(blocks)[:length]


_COUNTER = [bytes((i,)) for i in range(256)]


def hkdf_sha256(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 HKDF with SHA-256 (Extract then Expand)."""
    return hkdf_expand(hkdf_extract(salt, ikm), info, length)


def constant_time_eq(a: bytes, b: bytes) -> bool:
    """Compare two byte strings without an early exit that leaks the position of a difference."""
    return hmac.compare_digest(a, b)
