"""PQXDH session setup, following the structure of Signal's PQXDH specification (rev. 3).

Parameters: curve X25519, hash SHA-256, KEM ML-KEM-768, and Overt's own info string
``Overt_PQXDH_CURVE25519_SHA-256_ML-KEM-768``. The key derivation is exactly the spec's::

    DH1 = DH(IK_A, SPK_B)   DH2 = DH(EK_A, IK_B)   DH3 = DH(EK_A, SPK_B)   DH4 = DH(EK_A, OPK_B)
    (CT, SS) = ML-KEM-768.Encaps(PQPK_B)
    SK = HKDF-SHA256(salt = 0x00×32, ikm = 0xFF×32 ‖ DH1 ‖ DH2 ‖ DH3 [‖ DH4] ‖ SS, info, L = 32)

The associated data binds both parties' identity keys (X25519 and Ed25519) under a label.
The initiator refuses a bundle whose prekey signatures fail; the responder refuses unknown
prekey ids. Consumed one-time prekeys are reported to the caller, which deletes them when it
commits the new session, so that a replayed initial message finds nothing to decrypt with.

Sans-I/O: prekey secrets come from a :class:`PrekeySource` the caller provides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from overt.crypto import (
    MlKem768PrivateKey,
    MlKem768PublicKey,
    Rng,
    X25519PrivateKey,
    X25519PublicKey,
    hkdf_sha256,
)
from overt.errors import UnknownSession
from overt.protocol.identity import DeviceIdentity, verify_bundle
from overt.wire import DeviceEntry, PqxdhInit, PreKeyBundle, Writer

INFO = b"Overt_PQXDH_CURVE25519_SHA-256_ML-KEM-768"
_F = b"\xff" * 32
_SALT = bytes(32)
_AD_LABEL = b"Overt_PQXDH_AD_v1"


class PrekeySource(Protocol):
    """The responder's private prekeys, looked up by id; ``None`` when absent."""

    def signed_prekey(self, prekey_id: int) -> X25519PrivateKey | None: ...

    def kem_prekey(self, prekey_id: int) -> tuple[MlKem768PrivateKey, bool] | None:
        """The KEM secret and whether it is a last-resort key (kept after use)."""
        ...

    def one_time_prekey(self, prekey_id: int) -> X25519PrivateKey | None: ...


@dataclass(frozen=True, slots=True)
class Handshake:
    """What PQXDH yields on either side."""

    shared_secret: bytes
    associated_data: bytes
    init: PqxdhInit
    #: One-time prekey ids to delete when the session is committed (responder side).
    consumed_one_time: int | None = None
    consumed_kem: int | None = None

    def __repr__(self) -> str:
        return "Handshake(<redacted>)"


def associated_data(
    initiator_dh: bytes, initiator_sign: bytes, responder_dh: bytes, responder_sign: bytes
) -> bytes:
    w = Writer().raw(_AD_LABEL)
    w.fixed(initiator_dh, 32).fixed(initiator_sign, 32)
    w.fixed(responder_dh, 32).fixed(responder_sign, 32)
    return w.getvalue()


def _kdf(km: bytes) -> bytes:
    return hkdf_sha256(_F + km, _SALT, INFO, 32)


def initiate(
    own: DeviceIdentity,
    bundle: PreKeyBundle,
    rng: Rng,
    expected: DeviceEntry | None = None,
) -> tuple[Handshake, X25519PrivateKey]:
    """Run PQXDH as the initiator; return the handshake and the ephemeral (base) key."""
    verify_bundle(bundle, expected)
    ik_b = X25519PublicKey.from_bytes(bundle.identity_dh)
    spk_b = X25519PublicKey.from_bytes(bundle.signed_prekey.key)
    pq_b = MlKem768PublicKey.from_bytes(bundle.kem_prekey.key)
    ek = X25519PrivateKey.generate(rng)
    km = own.dh.exchange(spk_b) + ek.exchange(ik_b) + ek.exchange(spk_b)
    opk_id: int | None = None
    if bundle.one_time_prekey is not None:
        km += ek.exchange(X25519PublicKey.from_bytes(bundle.one_time_prekey.key))
        opk_id = bundle.one_time_prekey.id
    ss, ct = pq_b.encapsulate()
    init = PqxdhInit(
        identity_dh=own.dh.public_key.raw,
        identity_sign=own.sign.public_key.raw,
        base_key=ek.public_key.raw,
        signed_prekey_id=bundle.signed_prekey.id,
        one_time_prekey_id=opk_id,
        kem_prekey_id=bundle.kem_prekey.id,
        kem_ciphertext=ct,
    )
    ad = associated_data(
        init.identity_dh, init.identity_sign, bundle.identity_dh, bundle.identity_sign
    )
    return Handshake(_kdf(km + ss), ad, init), ek


def respond(
    own: DeviceIdentity, prekeys: PrekeySource, init: PqxdhInit
) -> tuple[Handshake, X25519PrivateKey]:
    """Run PQXDH as the responder; return the handshake and the signed prekey used.

    Unknown prekey ids raise :class:`UnknownSession` (for instance a replay after the one-time
    prekey was consumed); a wrong KEM ciphertext yields a wrong secret, which the first
    message's authentication then rejects.
    """
    spk = prekeys.signed_prekey(init.signed_prekey_id)
    kem = prekeys.kem_prekey(init.kem_prekey_id)
    if spk is None or kem is None:
        raise UnknownSession("unknown prekey")
    ik_a = X25519PublicKey.from_bytes(init.identity_dh)
    ek_a = X25519PublicKey.from_bytes(init.base_key)
    km = spk.exchange(ik_a) + own.dh.exchange(ek_a) + spk.exchange(ek_a)
    if init.one_time_prekey_id is not None:
        opk = prekeys.one_time_prekey(init.one_time_prekey_id)
        if opk is None:
            raise UnknownSession("unknown or already used one-time prekey")
        km += opk.exchange(ek_a)
    kem_secret, last_resort = kem
    ss = kem_secret.decapsulate(init.kem_ciphertext)
    ad = associated_data(
        init.identity_dh, init.identity_sign, own.dh.public_key.raw, own.sign.public_key.raw
    )
    hs = Handshake(
        _kdf(km + ss),
        ad,
        init,
        consumed_one_time=init.one_time_prekey_id,
        consumed_kem=None if last_resort else init.kem_prekey_id,
    )
    return hs, spk
