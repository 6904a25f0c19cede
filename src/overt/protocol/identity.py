"""Identities and prekeys: who a device is, and what it publishes for others to reach it.

* An **account identity key** (Ed25519) signs the account's device list (:class:`DeviceList`,
  with a serial that only grows).
* Each **device** has an X25519 identity key (for PQXDH) and an Ed25519 key (which signs its
  prekeys and authenticates it to the server).
* A device publishes a **bundle**: a signed X25519 prekey, an ML-KEM-768 prekey (signed,
  one-time or last-resort) and, while it has any, a one-time X25519 prekey.

This module never sees storage or the network: it creates keys from an :class:`Rng` and checks
signatures over canonical encodings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

from overt.crypto import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
    MlKem768PrivateKey,
    Rng,
    X25519PrivateKey,
)
from overt.errors import InvalidMessage, ProtocolViolation
from overt.protocol.limits import MAX_DEVICES_PER_ACCOUNT
from overt.wire import (
    Address,
    DeviceEntry,
    DeviceList,
    KemPreKey,
    OneTimePreKey,
    PreKeyBundle,
    SignedDeviceList,
    SignedPreKey,
)


@dataclass(frozen=True, slots=True, eq=False)
class AccountIdentity:
    """The long-term key of an account; it alone vouches for the account's devices."""

    account: bytes
    key: Ed25519PrivateKey

    @classmethod
    def generate(cls, account: bytes, rng: Rng) -> Self:
        return cls(account, Ed25519PrivateKey.generate(rng))

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.key.public_key

    def sign_device_list(self, serial: int, devices: list[DeviceEntry]) -> SignedDeviceList:
        if len(devices) > MAX_DEVICES_PER_ACCOUNT:
            raise ProtocolViolation("too many devices for one account")
        dl = DeviceList(
            self.account,
            self.key.public_key.raw,
            serial,
            tuple(sorted(devices, key=lambda d: d.device)),
        )
        unsigned = SignedDeviceList(dl, bytes(64))
        return SignedDeviceList(dl, self.key.sign(unsigned.signed_part()))


def verify_device_list(signed: SignedDeviceList, account_key: bytes | None = None) -> DeviceList:
    """Check the account key's signature (and, if given, that it is the expected key)."""
    dl = signed.device_list
    if account_key is not None and dl.account_key != account_key:
        raise InvalidMessage()
    Ed25519PublicKey.from_bytes(dl.account_key).verify(signed.signature, signed.signed_part())
    return dl


@dataclass(frozen=True, slots=True, eq=False)
class DeviceIdentity:
    """One device's identity keys and address."""

    address: Address
    dh: X25519PrivateKey
    sign: Ed25519PrivateKey

    @classmethod
    def generate(cls, address: Address, rng: Rng) -> Self:
        return cls(address, X25519PrivateKey.generate(rng), Ed25519PrivateKey.generate(rng))

    def entry(self) -> DeviceEntry:
        """This device as it appears in the account's signed device list."""
        return DeviceEntry(self.address.device, self.dh.public_key.raw, self.sign.public_key.raw)

    def __repr__(self) -> str:
        return f"DeviceIdentity({self.address}, <keys redacted>)"


def make_signed_prekey(
    device: DeviceIdentity, prekey_id: int, rng: Rng
) -> tuple[X25519PrivateKey, SignedPreKey]:
    secret = X25519PrivateKey.generate(rng)
    unsigned = SignedPreKey(prekey_id, secret.public_key.raw, bytes(64))
    return secret, SignedPreKey(prekey_id, unsigned.key, device.sign.sign(unsigned.signed_part()))


def make_kem_prekey(
    device: DeviceIdentity, prekey_id: int, rng: Rng, *, last_resort: bool
) -> tuple[MlKem768PrivateKey, KemPreKey]:
    secret = MlKem768PrivateKey.generate(rng)
    unsigned = KemPreKey(prekey_id, secret.public_key.raw, bytes(64), last_resort)
    sig = device.sign.sign(unsigned.signed_part())
    return secret, KemPreKey(prekey_id, unsigned.key, sig, last_resort)


def make_one_time_prekey(prekey_id: int, rng: Rng) -> tuple[X25519PrivateKey, OneTimePreKey]:
    secret = X25519PrivateKey.generate(rng)
    return secret, OneTimePreKey(prekey_id, secret.public_key.raw)


def verify_bundle(bundle: PreKeyBundle, expected: DeviceEntry | None = None) -> None:
    """Check both prekey signatures under the bundle's device signing key.

    With ``expected`` (the device's entry in its account's verified device list), also check
    that the bundle's identity keys are the listed ones: a server cannot then substitute a
    device key of its own.
    """
    if expected is not None and (
        expected.device != bundle.device.device
        or expected.identity_dh != bundle.identity_dh
        or expected.identity_sign != bundle.identity_sign
    ):
        raise InvalidMessage()
    signer = Ed25519PublicKey.from_bytes(bundle.identity_sign)
    signer.verify(bundle.signed_prekey.signature, bundle.signed_prekey.signed_part())
    signer.verify(bundle.kem_prekey.signature, bundle.kem_prekey.signed_part())
