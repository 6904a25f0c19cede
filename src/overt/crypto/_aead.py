"""AES-256-GCM and Overt's key-committing content encryption.

``seal``/``open_sealed`` derive the AES key, the nonce and a 32-byte key commitment from one
32-byte content key with HKDF-SHA256, and prefix the commitment to the GCM ciphertext::

    okm        = HKDF-Expand-SHA256(PRK=key, info="Overt_Content_v1" ‖ label, L=76)
    aes_key    = okm[0:32]     nonce = okm[32:44]     commitment = okm[44:76]
    ciphertext = commitment ‖ AES-256-GCM(aes_key, nonce, plaintext, ad)

Every content key is a uniformly random single-use 32-byte key (a ratchet message key, a
fresh attachment key, a sender-key message key), so HKDF-Extract is skipped as RFC 5869 §3.3
allows, and the derived nonce is never reused under one AES key. Opening recomputes the
commitment and compares it in constant time before GCM runs. Plain GCM is not
key-committing (one ciphertext can be made to decrypt under two chosen keys); with the prefix,
a second key would need an HKDF output collision on 256 bits. Every failure raises the same
:class:`InvalidMessage`.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from overt.crypto._hash import constant_time_eq, hkdf_expand
from overt.errors import InvalidMessage

AES_KEY_LEN = 32
GCM_NONCE_LEN = 12
GCM_TAG_LEN = 16
COMMITMENT_LEN = 32
CONTENT_KEY_LEN = 32
SEAL_OVERHEAD = COMMITMENT_LEN + GCM_TAG_LEN
_INFO = b"Overt_Content_v1"
_OKM_LEN = AES_KEY_LEN + GCM_NONCE_LEN + COMMITMENT_LEN


def aes256gcm_encrypt(key: bytes, nonce: bytes, plaintext: bytes, ad: bytes) -> bytes:
    return AESGCM(key).encrypt(nonce, plaintext, ad)


def aes256gcm_decrypt(key: bytes, nonce: bytes, ciphertext: bytes, ad: bytes) -> bytes:
    if len(key) != AES_KEY_LEN or len(nonce) != GCM_NONCE_LEN or len(ciphertext) < GCM_TAG_LEN:
        raise InvalidMessage()
    try:
        return AESGCM(key).decrypt(nonce, ciphertext, ad)
    except InvalidTag:
        raise InvalidMessage() from None


def _derive(key: bytes, label: bytes) -> tuple[bytes, bytes, bytes]:
    if len(key) != CONTENT_KEY_LEN:
        raise InvalidMessage()
    okm = hkdf_expand(key, _INFO + label, _OKM_LEN)
    return okm[:32], okm[32:44], okm[44:76]


def seal(key: bytes, plaintext: bytes, ad: bytes, label: bytes = b"") -> bytes:
    """Key-committing encryption of ``plaintext`` under a 32-byte content key."""
    aes_key, nonce, commitment = _derive(key, label)
    return commitment + AESGCM(aes_key).encrypt(nonce, plaintext, ad)


def open_sealed(key: bytes, ciphertext: bytes, ad: bytes, label: bytes = b"") -> bytes:
    """Open what :func:`seal` produced; :class:`InvalidMessage` on any failure."""
    if len(ciphertext) < SEAL_OVERHEAD:
        raise InvalidMessage()
    aes_key, nonce, commitment = _derive(key, label)
    if not constant_time_eq(commitment, ciphertext[:COMMITMENT_LEN]):
        raise InvalidMessage()
    try:
        return AESGCM(aes_key).decrypt(nonce, ciphertext[COMMITMENT_LEN:], ad)
    except InvalidTag:
        raise InvalidMessage() from None
