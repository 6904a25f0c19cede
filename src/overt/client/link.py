"""Linking a new device to an account: the two messages that pass between the devices.

1. The new device makes its identity keys and shows a :class:`LinkRequest` (in an app, as a QR
   code): the account it wants to join and its two public keys, signed with its new Ed25519
   key (proof that it holds it).
2. A device holding the account key checks the request, gives the new device the next free
   device id, signs the device list with it added, publishes that list (``PUT
   /v1/accounts/{account}/devices``) and hands back a :class:`LinkApproval`.
3. The new device checks that the approved list is signed by the account key and lists its own
   keys under the given id, pins the account key, then uploads its prekeys.

Both travel device to device, never through the server, so the server cannot link a device of
its own. Encodings are canonical (:mod:`overt.wire.codec`) and versioned::

    struct { uint8 version = 1; opaque account<1..64>; opaque ik_dh[32]; opaque ik_sig[32];
             opaque signature[64]; } LinkRequest;
    struct { uint8 version = 1; uint32 device; SignedDeviceList list; } LinkApproval;

This module never sees the network, storage or a clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

from overt.crypto import Ed25519PrivateKey, Ed25519PublicKey
from overt.wire import Reader, SignedDeviceList, Writer
from overt.wire.messages import MAX_ACCOUNT_ID_LEN

LINK_VERSION = 1
_REQUEST_LABEL = b"Overt_LinkRequest_v1"


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
class LinkApproval:
    """The primary device's answer: the new device's id and the list that includes it."""

    device: int
    signed_device_list: SignedDeviceList

    def encode(self) -> bytes:
        w = Writer().u8(LINK_VERSION).u32(self.device)
        return w.raw(self.signed_device_list.encode()).getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = Reader(data, "LinkApproval")
        r.version(LINK_VERSION)
        device = r.u32("device")
        rest = r.fixed(r.remaining(), "signed_device_list")
        return cls(device, SignedDeviceList.decode(rest))
