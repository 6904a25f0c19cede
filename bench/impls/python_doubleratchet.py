"""The peer: X3DH from the ``x3dh`` package plus the Double Ratchet from ``doubleratchet``.

Configuration, as close to Signal's published recommendations as the packages allow:

* X3DH (``x3dh.State``): Curve25519 identity keys (XEdDSA signatures on the signed prekey),
  SHA-256 HKDF, one-time prekeys required, the package's default pool of 100 one-time prekeys.
  ``Encode(PK)`` is Signal's: the byte ``0x05`` followed by the 32-byte X25519 public key.
* Double Ratchet (``doubleratchet.recommended``): X25519 DH ratchet; root chain HKDF-SHA-256;
  message chains with separate HMAC-SHA-256 calls (chain key = HMAC(ck, 0x02), message key =
  HMAC(ck, 0x01), i.e. constant ``b"\\x02\\x01"``); AEAD = AES-256-CBC + HMAC-SHA-256 with keys
  from HKDF-SHA-256 (80 bytes).
* Integration as in the Double Ratchet spec §7.1 / X3DH §3.3: the X3DH shared secret ``SK`` is
  the initial root key, the responder's signed prekey is its initial ratchet key pair, and the
  X3DH associated data ``AD = Encode(IK_A) || Encode(IK_B)`` is the ratchet's associated data;
  each message's AD is ``AD || ratchet_pub || pn (u32) || n (u32)``.

The packages are async: each session runs inside one ``asyncio.run`` and only the work inside
the coroutine is timed, never the event loop's start-up. The packages draw randomness from
``secrets``, so unlike Overt this side cannot be seeded.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Final

import doubleratchet
import x3dh
from doubleratchet.recommended import (
    HashFunction,
    aead_aes_hmac,
    diffie_hellman_ratchet_curve25519,
    kdf_hkdf,
    kdf_separate_hmacs,
)

from bench.impls import SessionRun, a_sends, bodies, paused_gc

NAME: Final = "python-doubleratchet"
"""The ``impl`` name of this peer's rows."""

_X3DH_INFO: Final = b"OvertBench X3DH"
_CURVE25519_TYPE: Final = b"\x05"  # Signal's key-type byte for Encode(PK)


class _X3DHState(x3dh.State):
    def _publish_bundle(self, bundle: x3dh.Bundle) -> None:
        # Publication is a hand-over in memory here (the bundle is read from .bundle).
        return None

    @staticmethod
    def _encode_public_key(key_format: x3dh.IdentityKeyFormat, pub: bytes) -> bytes:
        return _CURVE25519_TYPE + pub


class _DoubleRatchet(doubleratchet.DoubleRatchet):
    @staticmethod
    def _build_associated_data(associated_data: bytes, header: doubleratchet.Header) -> bytes:
        return (
            associated_data
            + header.ratchet_pub
            + header.previous_sending_chain_length.to_bytes(4, "big")
            + header.sending_chain_length.to_bytes(4, "big")
        )


class _DiffieHellmanRatchet(diffie_hellman_ratchet_curve25519.DiffieHellmanRatchet):
    pass


class _AEAD(aead_aes_hmac.AEAD):
    @staticmethod
    def _get_hash_function() -> HashFunction:
        return HashFunction.SHA_256

    @staticmethod
    def _get_info() -> bytes:
        return b"OvertBench Message Keys"


class _RootChainKDF(kdf_hkdf.KDF):
    @staticmethod
    def _get_hash_function() -> HashFunction:
        return HashFunction.SHA_256

    @staticmethod
    def _get_info() -> bytes:
        return b"OvertBench Root Chain"


class _MessageChainKDF(kdf_separate_hmacs.KDF):
    @staticmethod
    def _get_hash_function() -> HashFunction:
        return HashFunction.SHA_256


DR_CONFIG: Final[dict[str, Any]] = {
    "diffie_hellman_ratchet_class": _DiffieHellmanRatchet,
    "root_chain_kdf": _RootChainKDF,
    "message_chain_kdf": _MessageChainKDF,
    "message_chain_constant": b"\x02\x01",
    "dos_protection_threshold": 1000,
    "max_num_skipped_message_keys": 1000,
    "aead": _AEAD,
}


DEFAULT_PREKEYS: Final = 100
"""The package's default one-time prekey pool (refill threshold 99, target 100)."""


def _new_party(prekeys: int) -> _X3DHState:
    return _X3DHState.create(
        identity_key_format=x3dh.IdentityKeyFormat.CURVE_25519,
        hash_function=x3dh.HashFunction.SHA_256,
        info=_X3DH_INFO,
        pre_key_refill_threshold=max(prekeys - 1, 1),
        pre_key_refill_target=prekeys,
    )


async def _session(pattern: str, messages: int, prekeys: int) -> SessionRun:
    plaintexts = bodies(messages + 1)
    first, rest = plaintexts[0], plaintexts[1:]
    senders = a_sends(pattern, messages)

    # Setup (untimed): both parties generate their keys; Bob publishes his bundle.
    alice_x3dh = _new_party(prekeys)
    bob_x3dh = _new_party(prekeys)
    bob_bundle = bob_x3dh.bundle

    # Handshake: Alice runs X3DH against Bob's bundle and sends the first message; Bob runs
    # the passive half and decrypts it.
    with paused_gc():
        start = time.perf_counter()
        shared, ad_a, header = await alice_x3dh.get_shared_secret_active(bob_bundle)
        alice, initial = await _DoubleRatchet.encrypt_initial_message(
            shared_secret=shared,
            recipient_ratchet_pub=bob_bundle.signed_pre_key,
            message=first,
            associated_data=ad_a,
            **DR_CONFIG,
        )
        shared_b, ad_b, spk = await bob_x3dh.get_shared_secret_passive(header)
        bob, got = await _DoubleRatchet.decrypt_initial_message(
            shared_secret=shared_b,
            own_ratchet_priv=spk.priv,
            message=initial,
            associated_data=ad_b,
            **DR_CONFIG,
        )
        handshake_s = time.perf_counter() - start
    handshake_ok = got == first and ad_a == ad_b

    verified = 0
    with paused_gc():
        start = time.perf_counter()
        for body, from_a in zip(rest, senders, strict=True):
            if from_a:
                message = await alice.encrypt_message(body, ad_a)
                out = await bob.decrypt_message(message, ad_b)
            else:
                message = await bob.encrypt_message(body, ad_b)
                out = await alice.decrypt_message(message, ad_a)
            verified += out == body
        elapsed_s = time.perf_counter() - start

    return SessionRun(
        impl=NAME,
        pattern=pattern,
        messages=messages,
        handshake_s=handshake_s,
        elapsed_s=elapsed_s,
        verified=verified,
        handshake_verified=handshake_ok,
    )


def run_session(pattern: str, messages: int, *, prekeys: int = DEFAULT_PREKEYS) -> SessionRun:
    """One fresh session in its own event loop (loop start-up is outside the timings).

    ``prekeys`` sizes the one-time prekey pool. The package's ``State`` recomputes the public
    key of every pooled prekey whenever its ``bundle`` is read, which the X3DH calls do
    (twice on each side), so the pool size shows in the handshake time.
    """
    return asyncio.run(_session(pattern, messages, prekeys))
