"""Prekeys: what devices upload (checked against their signing keys) and the bundles others
fetch to start sessions with them.

Every signed prekey and ML-KEM prekey is verified under the uploading device's signing key
before it is stored, so the server never hands out a prekey its device did not sign. A bundle
hands out each one-time prekey (X25519 and ML-KEM) at most once — :meth:`PrekeyStore.take_one_time`
is atomic in every backend — and falls back to no X25519 one-time prekey and to the device's
last-resort ML-KEM prekey when a pool is empty.

This service knows the binary prekey structures of :mod:`overt.wire` and the signature checks
of :mod:`overt.crypto`; it knows no HTTP, no SQL and no clock. It is given only the account
store (to read device lists), the prekey store and the notifier.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from overt.crypto import Ed25519PublicKey
from overt.errors import DecodeError, ProtocolViolation
from overt.server import notify
from overt.server.limits import PREKEYS_LOW
from overt.server.notify import Notifier
from overt.storage import (
    AccountStore,
    NotFound,
    OneTimeKind,
    PrekeyRecord,
    PrekeyStore,
)
from overt.wire import (
    Address,
    DeviceEntry,
    KemPreKey,
    OneTimePreKey,
    PreKeyBundle,
    SignedDeviceList,
    SignedPreKey,
)


@dataclass(frozen=True, slots=True)
class VerifiedPrekeys:
    """An upload whose every signature verified under the device's key."""

    signed: SignedPreKey | None
    last_resort_kem: KemPreKey | None
    one_time: tuple[OneTimePreKey, ...]
    kem_one_time: tuple[KemPreKey, ...]


@dataclass(frozen=True, slots=True)
class Stock:
    """How many one-time prekeys of each kind a device has left."""

    one_time: int
    kem_one_time: int

    @property
    def low(self) -> bool:
        return self.one_time < PREKEYS_LOW or self.kem_one_time < PREKEYS_LOW


@dataclass(frozen=True, slots=True)
class Bundles:
    """An account's signed device list and one bundle per device that has prekeys."""

    serial: int
    signed_device_list: bytes
    bundles: tuple[bytes, ...]


def _no_repeats(ids: Sequence[int], what: str) -> None:
    if len(set(ids)) != len(ids):
        raise ProtocolViolation(f"{what} ids repeat within the upload: give each prekey its own id")


def verify_upload(
    signing_key: bytes,
    *,
    signed_prekey: bytes | None,
    last_resort_kem: bytes | None,
    one_time: Sequence[bytes],
    kem_one_time: Sequence[bytes],
) -> VerifiedPrekeys:
    """Decode an upload and check each signature under ``signing_key`` (the device's key).

    :class:`DecodeError` (400 malformed) for bytes that are not a prekey encoding,
    :class:`~overt.errors.InvalidMessage` (400 invalid) for a bad signature,
    :class:`ProtocolViolation` (400 invalid) for a wrong ``last_resort`` flag or repeated ids.
    """
    key = Ed25519PublicKey.from_bytes(signing_key)
    spk = None if signed_prekey is None else SignedPreKey.decode(signed_prekey)
    if spk is not None:
        key.verify(spk.signature, spk.signed_part())
    last_resort = None if last_resort_kem is None else KemPreKey.decode(last_resort_kem)
    if last_resort is not None:
        if not last_resort.last_resort:
            raise ProtocolViolation("last_resort_kem must be marked as a last-resort prekey")
        key.verify(last_resort.signature, last_resort.signed_part())
    otks = tuple(OneTimePreKey.decode(data) for data in one_time)
    kems = tuple(KemPreKey.decode(data) for data in kem_one_time)
    for kem in kems:
        if kem.last_resort:
            raise ProtocolViolation("kem_one_time prekeys must not be marked as last-resort")
        key.verify(kem.signature, kem.signed_part())
    _no_repeats([p.id for p in otks], "one_time")
    _no_repeats([p.id for p in kems], "kem_one_time")
    return VerifiedPrekeys(spk, last_resort, otks, kems)


class PrekeyService:
    """Uploads, stock and bundles."""

    def __init__(self, accounts: AccountStore, prekeys: PrekeyStore, notifier: Notifier) -> None:
        self._accounts = accounts
        self._prekeys = prekeys
        self._notifier = notifier

    async def store(self, device: Address, verified: VerifiedPrekeys) -> Stock:
        """Store a verified upload; returns the stock after it.

        Pools are filled first (they are the parts that can be refused: ``AlreadyExists`` for
        an id already in the pool, ``LimitExceeded`` for a full pool), then the signed and
        last-resort prekeys are replaced. Each pool is all or nothing; the upload as a whole
        is not atomic across pools.
        """
        account, dev = device.account, device.device
        if verified.kem_one_time:
            await self._prekeys.add_one_time(
                account,
                dev,
                OneTimeKind.ML_KEM_768,
                [PrekeyRecord(p.id, p.encode()) for p in verified.kem_one_time],
            )
        if verified.one_time:
            await self._prekeys.add_one_time(
                account,
                dev,
                OneTimeKind.X25519,
                [PrekeyRecord(p.id, p.encode()) for p in verified.one_time],
            )
        if verified.signed is not None:
            spk = verified.signed
            await self._prekeys.set_signed_prekey(account, dev, PrekeyRecord(spk.id, spk.encode()))
        if verified.last_resort_kem is not None:
            lr = verified.last_resort_kem
            await self._prekeys.set_last_resort_kem(account, dev, PrekeyRecord(lr.id, lr.encode()))
        return await self.stock(device)

    async def upload(
        self,
        device: Address,
        *,
        signed_prekey: bytes | None,
        last_resort_kem: bytes | None,
        one_time: Sequence[bytes],
        kem_one_time: Sequence[bytes],
    ) -> Stock:
        """Verify an upload under the device's stored key, then store it."""
        key = await self._accounts.device_auth_key(device.account, device.device)
        if key is None:
            raise NotFound("this device is no longer listed by its account")
        verified = verify_upload(
            key,
            signed_prekey=signed_prekey,
            last_resort_kem=last_resort_kem,
            one_time=one_time,
            kem_one_time=kem_one_time,
        )
        return await self.store(device, verified)

    async def stock(self, device: Address) -> Stock:
        return Stock(
            await self._prekeys.count_one_time(device.account, device.device, OneTimeKind.X25519),
            await self._prekeys.count_one_time(
                device.account, device.device, OneTimeKind.ML_KEM_768
            ),
        )

    async def bundles(self, requester: Address, account: bytes, device: int | None) -> Bundles:
        """One bundle per listed device that has uploaded prekeys (or only ``device``), except
        the requesting device itself (it never starts a session with itself, and a bundle
        would spend one of its one-time prekeys).

        ``NotFound`` for an unknown account, or for an asked-for device that is not listed or
        has no prekeys yet.
        """
        record = await self._accounts.get(account)
        if record is None:
            raise NotFound("no account with this id")
        try:
            listed = SignedDeviceList.decode(record.device_list).device_list.devices
        except DecodeError:  # stored only after verification; a corrupt store is not a 400
            raise NotFound("this account has no readable device list") from None
        if device is not None:
            listed = tuple(e for e in listed if e.device == device)
            if not listed:
                raise NotFound("the account does not list this device")
        else:
            listed = tuple(e for e in listed if Address(account, e.device) != requester)
        out: list[bytes] = []
        for entry in listed:
            bundle = await self._bundle(account, entry)
            if bundle is not None:
                out.append(bundle.encode())
            elif device is not None:
                raise NotFound("this device has not uploaded prekeys yet: try again later")
        return Bundles(record.serial, record.device_list, tuple(out))

    async def _bundle(self, account: bytes, entry: DeviceEntry) -> PreKeyBundle | None:
        dev = entry.device
        spk = await self._prekeys.get_signed_prekey(account, dev)
        last_resort = await self._prekeys.get_last_resort_kem(account, dev)
        if spk is None or last_resort is None:
            return None
        otk = await self._prekeys.take_one_time(account, dev, OneTimeKind.X25519)
        kem = await self._prekeys.take_one_time(account, dev, OneTimeKind.ML_KEM_768)
        address = Address(account, dev)
        if (otk is not None or kem is not None) and (await self.stock(address)).low:
            await self._notifier.notify(address, notify.PREKEYS_LOW)
        return PreKeyBundle(
            address,
            entry.identity_dh,
            entry.identity_sign,
            SignedPreKey.decode(spk.data),
            KemPreKey.decode((kem or last_resort).data),
            None if otk is None else OneTimePreKey.decode(otk.data),
        )
