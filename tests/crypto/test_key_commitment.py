"""Key commitment of Overt's content encryption.

Plain AES-GCM is not key-committing: knowing two keys, one can build a single ciphertext that
authenticates under both (Len, Grubbs and Ristenpart, "Partitioning Oracle Attacks", 2021).
The test builds such a ciphertext with GF(2^128) algebra, shows that raw GCM accepts it under
both keys, and that Overt's sealed format (commitment ‖ GCM) rejects it under the second."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from overt.crypto import aes256gcm_decrypt, open_sealed, seal
from overt.crypto._aead import _derive
from overt.errors import InvalidMessage

_R = 0xE1000000000000000000000000000000


def _gf_mul(x: int, y: int) -> int:
    z, v = 0, x
    for i in range(127, -1, -1):
        if (y >> i) & 1:
            z ^= v
        v = (v >> 1) ^ _R if v & 1 else v >> 1
    return z


def _gf_pow(x: int, e: int) -> int:
    out = 1 << 127  # the multiplicative identity in GCM's bit order
    while e:
        if e & 1:
            out = _gf_mul(out, x)
        x = _gf_mul(x, x)
        e >>= 1
    return out


def _gf_inv(x: int) -> int:
    return _gf_pow(x, (1 << 128) - 2)


def _aes_block(key: bytes, block: bytes) -> int:
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return int.from_bytes(enc.update(block) + enc.finalize(), "big")


def _ctr_keystream(key: bytes, nonce: bytes, n: int) -> bytes:
    enc = Cipher(algorithms.AES(key), modes.CTR(nonce + (2).to_bytes(4, "big"))).encryptor()
    return enc.update(bytes(n)) + enc.finalize()


def forge_two_key_gcm(k1: bytes, n1: bytes, k2: bytes, n2: bytes, ad: bytes) -> bytes:
    """A 32-byte GCM ciphertext plus tag that authenticates under (k1, n1) and (k2, n2)."""
    assert len(ad) == 0
    h1, h2 = _aes_block(k1, bytes(16)), _aes_block(k2, bytes(16))
    e1 = _aes_block(k1, n1 + (1).to_bytes(4, "big"))
    e2 = _aes_block(k2, n2 + (1).to_bytes(4, "big"))
    c1 = int.from_bytes(b"first block, any", "big")
    length = 32 * 8  # len(A) = 0 bits ‖ len(C) = 256 bits
    # GHASH(C) = c1·H^3 ⊕ X·H^2 ⊕ L·H ; solve for the free block X.
    rhs = e1 ^ e2 ^ _gf_mul(c1, _gf_pow(h1, 3) ^ _gf_pow(h2, 3)) ^ _gf_mul(length, h1 ^ h2)
    x = _gf_mul(rhs, _gf_inv(_gf_pow(h1, 2) ^ _gf_pow(h2, 2)))
    tag = e1 ^ _gf_mul(c1, _gf_pow(h1, 3)) ^ _gf_mul(x, _gf_pow(h1, 2)) ^ _gf_mul(length, h1)
    return c1.to_bytes(16, "big") + x.to_bytes(16, "big") + tag.to_bytes(16, "big")


def test_gf_arithmetic() -> None:
    one = 1 << 127
    for x in (3, 1 << 100, 0xDEADBEEF << 64):
        assert _gf_mul(x, _gf_inv(x)) == one


def test_two_key_ciphertext_is_rejected_by_sealed_format() -> None:
    key1, key2 = b"\x01" * 32, b"\x02" * 32
    aes1, nonce1, commitment1 = _derive(key1, b"")
    aes2, nonce2, _ = _derive(key2, b"")
    gcm = forge_two_key_gcm(aes1, nonce1, aes2, nonce2, b"")
    # The forgery is real: plain GCM accepts it under both keys (with different plaintexts).
    p1 = aes256gcm_decrypt(aes1, nonce1, gcm, b"")
    p2 = aes256gcm_decrypt(aes2, nonce2, gcm, b"")
    assert p1 != p2
    # Overt's sealed format opens under the committed key only.
    sealed = commitment1 + gcm
    assert open_sealed(key1, sealed, b"") == p1
    with pytest.raises(InvalidMessage):
        open_sealed(key2, sealed, b"")


def test_seal_round_trip_and_uniform_failures() -> None:
    key = b"\x07" * 32
    ct = seal(key, b"plaintext", b"ad")
    assert open_sealed(key, ct, b"ad") == b"plaintext"
    bad = [
        (b"\x08" * 32, ct, b"ad"),
        (key, ct, b"other ad"),
        (key, ct[:-1], b"ad"),
        (key, ct[:10], b"ad"),
        (key, bytes([ct[0] ^ 1]) + ct[1:], b"ad"),
        (key, ct[:40] + bytes([ct[40] ^ 1]) + ct[41:], b"ad"),
        (b"short", ct, b"ad"),
    ]
    for k, c, ad in bad:
        with pytest.raises(InvalidMessage) as info:
            open_sealed(k, c, ad)
        assert str(info.value) == "invalid message"
