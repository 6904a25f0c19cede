"""Linking a new device to an account: the two messages that pass between the devices.

1. The new device makes its identity keys and shows a :class:`LinkRequest` (in an app, as a QR
   code): the account it wants to join and its two public keys, signed with its new Ed25519
   key (proof that it holds it).
2. A device holding the account key checks the request, gives the new device the next free
   device id, signs the device list with it added, publishes that list (``PUT
   /v1/accounts/{account}/devices``) and hands back a :class:`LinkApproval`.
3. The new device checks that the approved list is signed by the account key and lists its own
   keys under the given id, opens the account secrets, pins the account key, then uploads its
   prekeys.

Both travel device to device, never through the server, so the server cannot link a device of
its own. Encodings are canonical (:mod:`overt.wire.codec`) and versioned::

    struct { uint8 version = 1; opaque account<1..64>; opaque ik_dh[32]; opaque ik_sig[32];
             opaque signature[64]; } LinkRequest;
    struct { uint8 version = 2; uint32 device; opaque ephemeral[32];
             opaque sealed_secrets<1..255>; SignedDeviceList list; } LinkApproval;
    struct { uint8 version = 1; opaque matching_seed<0..32>; uint16 matching_slot; }
        AccountSecrets;                                     (the plaintext of sealed_secrets)

**Account secrets** travel inside the approval, encrypted to the new device's X25519 identity
key from its request: an ephemeral key ``e``, ``key = HKDF-SHA256(X25519(e, ik_dh),
salt = "Overt_LinkSecrets_v1", info = e_pub ‖ ik_dh ‖ ik_sig ‖ account ‖ device)``, and
``sealed_secrets = seal(key, AccountSecrets, ad = "Overt_LinkApproval_v2" ‖ account ‖ device ‖
ik_dh ‖ ik_sig ‖ list)`` (key-committing, :func:`overt.crypto.seal`). They are today the
account's known-content matching seed and this device's *matching slot* (its place in the
share coordinates, docs/matching.md); an empty seed means the approving device had no slot left
to give (the new device then matches under a seed of its own). Only the new device can open
them; the server never sees the approval. Version 1 approvals (without secrets) are refused
(:class:`~overt.errors.DecodeError`), and a box that does not open is
:class:`~overt.errors.InvalidMessage`.

This module never sees the network, storage or a clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Self

from overt.crypto import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
    Rng,
    X25519PrivateKey,
    X25519PublicKey,
    hkdf_sha256,
    open_sealed,
    seal,
)
from overt.errors import DecodeError
from overt.wire import Reader, SignedDeviceList, Writer
from overt.wire.messages import MAX_ACCOUNT_ID_LEN

LINK_VERSION = 1
"""Version of :class:`LinkRequest`."""
APPROVAL_VERSION: Final = 2
"""Version of :class:`LinkApproval` (2: carries the sealed :class:`AccountSecrets`)."""
SECRETS_VERSION: Final = 1
MATCHING_SEED_LEN: Final = 32
MAX_SEALED_SECRETS: Final = 255
"""Longest ``sealed_secrets`` an approval may carry (today 35 bytes plus the seal's overhead)."""
_REQUEST_LABEL = b"Overt_LinkRequest_v1"
_SECRETS_LABEL: Final = b"Overt_LinkSecrets_v1"
_APPROVAL_AD_LABEL: Final = b"Overt_LinkApproval_v2"


@dataclass(frozen=True, slots=True)
class LinkRequest:
    """A new device's request to join ``account`` (see the module docstring)."""

    account: bytes
    identity_dh: bytes
    identity_sign: bytes
    signature: bytes

    @staticmethod
    def _signed_part(account: bytes, identity_dh: bytes, identity_sign: bytes) -> bytes:
        w = Writer().raw(_REQUEST_LABEL).vec(account, 1, MAX_ACCOUNT_ID_LEN)
        return w.fixed(identity_dh, 32).fixed(identity_sign, 32).getvalue()

    @classmethod
    def make(cls, account: bytes, identity_dh: bytes, signer: Ed25519PrivateKey) -> Self:
        sign_pub = signer.public_key.raw
        sig = signer.sign(cls._signed_part(account, identity_dh, sign_pub))
        return cls(account, identity_dh, sign_pub, sig)

    def verify(self) -> None:
        """:class:`overt.errors.InvalidMessage` unless signed by its own Ed25519 key."""
        key = Ed25519PublicKey.from_bytes(self.identity_sign)
        key.verify(
            self.signature, self._signed_part(self.account, self.identity_dh, self.identity_sign)
        )

    def encode(self) -> bytes:
        w = Writer().u8(LINK_VERSION).vec(self.account, 1, MAX_ACCOUNT_ID_LEN)
        w.fixed(self.identity_dh, 32).fixed(self.identity_sign, 32).fixed(self.signature, 64)
        return w.getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = Reader(data, "LinkRequest")
        r.version(LINK_VERSION)
        out = cls(
            r.vec(1, "account", MAX_ACCOUNT_ID_LEN, min_len=1),
            r.fixed(32, "identity_dh"),
            r.fixed(32, "identity_sign"),
            r.fixed(64, "signature"),
        )
        r.finish()
        return out


@dataclass(frozen=True, slots=True)
class AccountSecrets:
    """What an approval hands the new device privately (see the module docstring)."""

    matching_seed: bytes | None = field(repr=False)
    """The account's 32-byte known-content matching seed, or None if the approving device had
    no matching slot left to give."""
    matching_slot: int
    """This device's place in the matching share coordinates (0..65535; the matching core
    accepts 0..255)."""

    def __post_init__(self) -> None:
        if self.matching_seed is not None and len(self.matching_seed) != MATCHING_SEED_LEN:
            raise DecodeError("account secrets: a matching seed is 32 bytes")
        if not 0 <= self.matching_slot <= 0xFFFF:
            raise DecodeError("account secrets: matching slot out of range")

    def encode(self) -> bytes:
        w = Writer().u8(SECRETS_VERSION).vec(self.matching_seed or b"", 1, MATCHING_SEED_LEN)
        return w.u16(self.matching_slot).getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = Reader(data, "AccountSecrets")
        r.version(SECRETS_VERSION)
        seed = r.vec(1, "matching_seed", MATCHING_SEED_LEN)
        slot = r.u16("matching_slot")
        r.finish()
        if seed and len(seed) != MATCHING_SEED_LEN:
            raise DecodeError("AccountSecrets: a matching seed is empty or 32 bytes")
        return cls(seed or None, slot)


def _approval_ad(
    account: bytes, device: int, identity_dh: bytes, identity_sign: bytes, listed: bytes
) -> bytes:
    w = Writer().raw(_APPROVAL_AD_LABEL).vec(account, 1, MAX_ACCOUNT_ID_LEN).u32(device)
    return w.fixed(identity_dh, 32).fixed(identity_sign, 32).raw(listed).getvalue()


def _box_key(
    shared: bytes, ephemeral: bytes, account: bytes, device: int, dh: bytes, sign: bytes
) -> bytes:
    info = Writer().fixed(ephemeral, 32).fixed(dh, 32).fixed(sign, 32)
    info.vec(account, 1, MAX_ACCOUNT_ID_LEN).u32(device)
    return hkdf_sha256(shared, _SECRETS_LABEL, info.getvalue(), 32)


@dataclass(frozen=True, slots=True)
class LinkApproval:
    """The primary device's answer: the new device's id, the list that includes it, and the
    account secrets sealed to the new device (:meth:`make`, :meth:`open_secrets`)."""

    device: int
    signed_device_list: SignedDeviceList
    ephemeral: bytes = field(repr=False)
    sealed_secrets: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.ephemeral) != 32:
            raise DecodeError("LinkApproval: the ephemeral key is 32 bytes")
        if not 1 <= len(self.sealed_secrets) <= MAX_SEALED_SECRETS:
            raise DecodeError("LinkApproval: sealed secrets out of range")

    @classmethod
    def make(
        cls,
        request: LinkRequest,
        device: int,
        signed_device_list: SignedDeviceList,
        secrets: AccountSecrets,
        rng: Rng,
    ) -> Self:
        """Approve ``request`` as ``device``, sealing ``secrets`` to its X25519 key
        (:class:`~overt.errors.InvalidMessage` if that key is unusable)."""
        ephemeral = X25519PrivateKey.generate(rng)
        e_pub = ephemeral.public_key.raw
        shared = ephemeral.exchange(X25519PublicKey.from_bytes(request.identity_dh))
        key = _box_key(
            shared, e_pub, request.account, device, request.identity_dh, request.identity_sign
        )
        ad = _approval_ad(
            request.account, device, request.identity_dh, request.identity_sign,
            signed_device_list.encode(),
        )  # fmt: skip
        return cls(
            device, signed_device_list, e_pub, seal(key, secrets.encode(), ad, _SECRETS_LABEL)
        )

    def open_secrets(self, identity_dh: X25519PrivateKey, identity_sign: bytes) -> AccountSecrets:
        """The secrets sealed to this device (its identity keys); :class:`InvalidMessage` if
        the box does not open for them, :class:`DecodeError` if what it holds is malformed."""
        account = self.signed_device_list.device_list.account
        dh = identity_dh.public_key.raw
        shared = identity_dh.exchange(X25519PublicKey.from_bytes(self.ephemeral))
        key = _box_key(shared, self.ephemeral, account, self.device, dh, identity_sign)
        ad = _approval_ad(account, self.device, dh, identity_sign, self.signed_device_list.encode())
        return AccountSecrets.decode(open_sealed(key, self.sealed_secrets, ad, _SECRETS_LABEL))

    def encode(self) -> bytes:
        w = Writer().u8(APPROVAL_VERSION).u32(self.device).fixed(self.ephemeral, 32)
        w.vec(self.sealed_secrets, 1, MAX_SEALED_SECRETS)
        return w.raw(self.signed_device_list.encode()).getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = Reader(data, "LinkApproval")
        r.version(APPROVAL_VERSION)
        device = r.u32("device")
        ephemeral = r.fixed(32, "ephemeral")
        sealed = r.vec(1, "sealed_secrets", MAX_SEALED_SECRETS, min_len=1)
        rest = r.fixed(r.remaining(), "signed_device_list")
        return cls(device, SignedDeviceList.decode(rest), ephemeral, sealed)
