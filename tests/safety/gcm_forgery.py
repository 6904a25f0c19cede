"""A GCM ciphertext that authenticates under two keys, built from Overt's public AEAD API.

Plain AES-GCM is not key-committing (Len, Grubbs and Ristenpart, "Partitioning Oracle Attacks",
2021; the "invisible salamanders" of Dodis et al., 2018). Knowing two (key, nonce) pairs and the
associated data, one solves one linear equation in GF(2^128) for a ciphertext block so that the
tag is the same under both. tests/crypto/test_key_commitment.py does it with raw AES and no AD;
this version recovers the two values it needs per key, ``H = E_K(0^128)`` and ``E_K(J0)``, from
:func:`overt.crypto.aes256gcm_encrypt` itself (so it needs no primitive library) and handles AD:

* ``E_K(J0)`` is the tag of an empty message with empty AD (GHASH of a zero length block is 0);
* with one zero block of AD and no message, GHASH is ``L·H`` for the length block ``L``, so
  ``H = (tag ⊕ E_K(J0)) · L^-1``.
"""

from __future__ import annotations

from overt.crypto import aes256gcm_encrypt, hkdf_expand

_R = 0xE1000000000000000000000000000000
_BLOCK = 16


def gf_mul(x: int, y: int) -> int:
    z, v = 0, x
    for i in range(127, -1, -1):
        if (y >> i) & 1:
            z ^= v
        v = (v >> 1) ^ _R if v & 1 else v >> 1
    return z


def gf_pow(x: int, e: int) -> int:
    out = 1 << 127  # the multiplicative identity in GCM's bit order
    while e:
        if e & 1:
            out = gf_mul(out, x)
        x = gf_mul(x, x)
        e >>= 1
    return out


def gf_inv(x: int) -> int:
    return gf_pow(x, (1 << 128) - 2)


def _blocks(data: bytes) -> list[int]:
    padded = data + bytes(-len(data) % _BLOCK)
    return [int.from_bytes(padded[i : i + _BLOCK], "big") for i in range(0, len(padded), _BLOCK)]


def ghash(h: int, ad: bytes, ct: bytes) -> int:
    y = 0
    length = ((len(ad) * 8) << 64) | (len(ct) * 8)
    for block in [*_blocks(ad), *_blocks(ct), length]:
        y = gf_mul(y ^ block, h)
    return y


def gcm_secrets(key: bytes, nonce: bytes) -> tuple[int, int]:
    """``(H, E_K(J0))`` of one AES-256-GCM key and 12-byte nonce."""
    e0 = int.from_bytes(aes256gcm_encrypt(key, nonce, b"", b""), "big")
    tag = int.from_bytes(aes256gcm_encrypt(key, nonce, b"", bytes(_BLOCK)), "big")
    length = (_BLOCK * 8) << 64
    return gf_mul(tag ^ e0, gf_inv(length)), e0


def forge_two_key_gcm(k1: bytes, n1: bytes, k2: bytes, n2: bytes, ad: bytes) -> bytes:
    """Two ciphertext blocks and a tag that authenticate under (k1, n1) and (k2, n2) with ``ad``."""
    (h1, e1), (h2, e2) = gcm_secrets(k1, n1), gcm_secrets(k2, n2)
    c1 = b"first block, any"
    g1 = ghash(h1, ad, c1 + bytes(_BLOCK))
    g2 = ghash(h2, ad, c1 + bytes(_BLOCK))
    # The free block x enters GHASH as x·H^2; make both tags equal.
    x = gf_mul(e1 ^ e2 ^ g1 ^ g2, gf_inv(gf_pow(h1, 2) ^ gf_pow(h2, 2)))
    tag = e1 ^ g1 ^ gf_mul(x, gf_pow(h1, 2))
    return c1 + x.to_bytes(_BLOCK, "big") + tag.to_bytes(_BLOCK, "big")


def content_key_parts(content_key: bytes, label: bytes) -> tuple[bytes, bytes, bytes]:
    """AES key, nonce and key commitment that :func:`overt.crypto.seal` derives
    (docs/protocol.md, "Content encryption")."""
    okm = hkdf_expand(content_key, b"Overt_Content_v1" + label, 76)
    return okm[:32], okm[32:44], okm[44:76]
