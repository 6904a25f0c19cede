"""The client library's one facade: :class:`Client`.

A :class:`Client` is one device of one account. It keeps its state in a profile directory
(:mod:`overt.client.store`), reaches the relay server through a
:class:`~overt.client.transport.Transport`, and does the protocol with
:mod:`overt.protocol`. Time comes from an injected :class:`~overt.client.clock.Clock`,
randomness from an injected :class:`~overt.crypto.Rng`.

Trust. Every device list is checked against the account key that signs it; the first key seen
for an account is pinned, and a different key later is refused with
:class:`~overt.errors.UntrustedIdentity` until the person compares safety numbers and accepts
the new key (:meth:`Client.accept_new_identity`). A prekey bundle is used only if its identity
keys are those of the device's entry in the verified list, and mail is shown only if the
sending device is in its account's verified list with the keys its session was made with. The
server therefore cannot add a device to anyone's conversation.

Key transparency (:mod:`overt.client.kt`). When the server publishes a deployment manifest,
the client pins it on first contact and from then on uses a device list only once the server
has proven it is the account's entry in the transparency log under a checkpoint the manifest's
witnesses cosigned (:class:`~overt.client.errors.NotInLog` otherwise), keeps every checkpoint
it sees consistent with the last, tells peers its newest checkpoint in every message (gossip)
and checks theirs, and monitors the log for entries of its own account that none of its
devices made. What it finds is recorded as an :class:`~overt.client.model.Alarm`.

Sending encrypts one message to every device of the recipient and to this account's other
devices (sync copies), persisting the advanced sessions *before* the request goes out: a
ciphertext the server has seen is never followed by another one under the same message key.
A ``409 stale_devices`` answer refreshes the named device lists and tries again, a bounded
number of times.

Receiving stages each decryption, checks the sender, and commits the new session record, the
consumed prekeys, the message and the mail's id in one transaction; only then is the mail
acknowledged. Mail that cannot be shown is recorded as undecryptable with a reason class and
acknowledged; it never becomes text. A message is stored — and shown — once per
(conversation, sender, message id), however often it is delivered.

Logs name addresses, server ids and reason classes; never bodies, keys or ciphertexts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from overt.client import _api
from overt.client._b64 import b64e
from overt.client.body import GROUP_BODY_KINDS, AttachmentPointer, Body, BodyKind, access_kind
from overt.client.clock import Clock, SystemClock
from overt.client.errors import (
    AccountExists,
    AttachmentRejected,
    BadResponse,
    NotFound,
    NotInLog,
    ProfileStateError,
    RateLimited,
    ServerRefused,
    ServerUnreachable,
    StaleDevices,
    StaleSerial,
    TransparencyUnavailable,
    UnknownAccount,
)
from overt.client.escrow import EscrowEpochs, escrow_of, newest_live
from overt.client.groups import Groups
from overt.client.kt import KeyTransparency, LogReader, OwnAccount, Progress, device_list_hash
from overt.client.limits import (
    ACK_BATCH_MAX,
    ACK_DELAY_S,
    BACKOFF_FACTOR,
    BACKOFF_INITIAL_S,
    BACKOFF_MAX_S,
    FETCH_PAGE_SIZE,
    KEM_ONE_TIME_PREKEY_BATCH,
    LOG_CHECK_INTERVAL_S,
    MAX_ATTACHMENT_BYTES,
    MAX_CONTENT_TYPE_BYTES,
    MAX_FILE_NAME_BYTES,
    MAX_SEND_ATTEMPTS,
    MAX_SYNC_PAGES,
    ONE_TIME_PREKEY_BATCH,
    POLL_INTERVAL_S,
    SEEN_MAIL_RETENTION_MS,
)
from overt.client.link import LinkApproval, LinkRequest
from overt.client.matching import ClientMatching, MatchingStatus
from overt.client.model import (
    Alarm,
    AlarmKind,
    Conversation,
    FailureReason,
    GroupInfo,
    GroupMemberInfo,
    Message,
    Undecryptable,
    account_of,
    name_of,
)
from overt.client.notices import Notice, WarrantWatch, notice_of
from overt.client.store import (
    AlarmRecord,
    Contact,
    Direction,
    Failure,
    Profile,
    ProfileState,
    Store,
    StoredEpoch,
    StoredMessage,
)
from overt.client.transport import PushChannel, RequestSigner, Response, Transport, error_of
from overt.crypto import (
    Ed25519PublicKey,
    Rng,
    SystemRng,
    constant_time_eq,
    open_sealed,
    seal,
    sha256,
)
from overt.errors import (
    DecodeError,
    DuplicateMessage,
    InvalidMessage,
    LimitExceeded,
    LocalError,
    PolicyViolation,
    ProtocolViolation,
    RemoteError,
    UnknownSession,
    UntrustedIdentity,
)
from overt.protocol import (
    AccessKind,
    AccountIdentity,
    Device,
    DeviceIdentity,
    EscrowPolicy,
    SessionRecord,
    direct_conversation_id,
    safety_number,
    verify_bundle,
    verify_device_list,
)
from overt.protocol.device import PrekeyStock
from overt.protocol.limits import MAX_ONE_TIME_PREKEYS
from overt.protocol.session import decrypt as decrypt_envelope
from overt.protocol.session import start as start_session
from overt.transparency.manifest import describe_policy
from overt.wire import (
    MESSAGE_ID_LEN,
    Address,
    DeviceEntry,
    Envelope,
    PreKeyBundle,
    SignedDeviceList,
)

log = logging.getLogger("overt.client")

#: Verified bundles (with the device-list entry they were checked against), by device.
_Bundles = dict[Address, tuple[PreKeyBundle, DeviceEntry]]

#: Domain separation of attachment encryption (``overt.crypto.seal`` label and AD).
ATTACHMENT_LABEL: Final = b"Attachment"
ATTACHMENT_AD: Final = b"Overt_Attachment_v1"

#: The device id a linking device uses until the primary assigns one.
_UNASSIGNED_DEVICE: Final = 0


def _copy_stock(stock: PrekeyStock) -> PrekeyStock:
    return PrekeyStock(
        signed=dict(stock.signed),
        current_signed=stock.current_signed,
        kem=dict(stock.kem),
        last_resort_kem=stock.last_resort_kem,
        one_time=dict(stock.one_time),
        next_id=stock.next_id,
        handed_out=set(stock.handed_out),
    )


def _public_prekeys(stock: PrekeyStock) -> dict[str, object]:
    """Everything a device publishes: signed, last-resort and every one-time prekey."""
    return _api.prekey_upload(
        stock.signed[stock.current_signed][1],
        stock.kem[stock.last_resort_kem][1],
        [pub for _, pub in stock.one_time.values()],
        [pub for _, pub in stock.kem.values() if not pub.last_resort],
    )


class Client:
    """One device of one account (see the module docstring). Open with :meth:`open`."""

    def __init__(
        self,
        store: Store,
        transport: Transport,
        *,
        clock: Clock,
        rng: Rng,
        policy: EscrowPolicy | None = None,
        provider_key: Ed25519PublicKey | None = None,
    ) -> None:
        self._store = store
        self._transport = transport
        self._clock = clock
        self._rng = rng
        self._policy = policy
        self._kt = KeyTransparency(store, transport, clock, provider_key)
        self._matching = ClientMatching(
            store.path.parent, self._kt, LogReader(transport), self._request, clock, rng,
            holds_account_key=lambda: self.holds_account_key,
        )  # fmt: skip
        self._escrow = EscrowEpochs(store, transport, clock, self._kt)
        self._kt.watch(WarrantWatch(store, clock, self._escrow))
        self._last_log_check_ms: int | None = None
        self._profile: Profile | None = store.profile()
        self._signer: RequestSigner | None = None
        self._send_lock = asyncio.Lock()
        self._groups = Groups(self)  # group conversations (overt.client.groups)
        self._refill_lock = asyncio.Lock()
        self._prekeys_checked = False
        self._set_profile(self._profile)

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    async def open(
        cls,
        profile_dir: Path | str,
        transport: Transport,
        *,
        clock: Clock | None = None,
        rng: Rng | None = None,
        policy: EscrowPolicy | None = None,
        provider_key: Ed25519PublicKey | None = None,
    ) -> Client:
        """Open the profile in ``profile_dir`` (created if needed).

        ``transport`` stays the caller's: :meth:`close` does not close it, so one transport
        can serve several clients. The access policy in force comes from the deployment
        manifest; ``policy``, if given, overrides it (tests, or an escrow deployment's epoch
        key until the log publishes it). ``provider_key`` is the provider's Ed25519 key if
        known out of band: the manifest must then be signed by it (instead of being trusted on
        first use), and a server without a manifest is refused.
        """
        clock = clock or SystemClock()
        store = Store.open(profile_dir)
        try:
            store.forget_seen_mail(clock.now_ms() - SEEN_MAIL_RETENTION_MS)
            return cls(
                store,
                transport,
                clock=clock,
                rng=rng or SystemRng(),
                policy=policy,
                provider_key=provider_key,
            )
        except BaseException:
            store.close()
            raise

    async def close(self) -> None:
        self._matching.close()
        self._store.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        p = self._profile
        return "Client(<no account>)" if p is None else f"Client({p.device.address}, {p.state})"

    # ------------------------------------------------------------------ who am I

    @property
    def account_name(self) -> str | None:
        """This profile's account name, or None before :meth:`create_account` or linking."""
        return None if self._profile is None else name_of(self._profile.account)

    @property
    def device_id(self) -> int | None:
        """This device's id, once registered or linked."""
        p = self._profile
        if p is None or p.device.address.device == _UNASSIGNED_DEVICE:
            return None
        return p.device.address.device

    @property
    def is_active(self) -> bool:
        return self._profile is not None and self._profile.state is ProfileState.ACTIVE

    @property
    def holds_account_key(self) -> bool:
        return self._profile is not None and self._profile.account_identity is not None

    def _set_profile(self, profile: Profile | None) -> None:
        self._profile = profile
        if profile is None or profile.device.address.device == _UNASSIGNED_DEVICE:
            self._signer = None
        elif self._signer is None or self._signer.address != profile.device.address:
            self._signer = RequestSigner(profile.device.address, profile.device.sign, self._clock)

    def _active(self) -> Profile:
        p = self._profile
        if p is None or p.state is not ProfileState.ACTIVE:
            raise ProfileStateError(
                "this profile has no account yet: create one with create_account(name), or "
                "link this device to an existing account"
            )
        return p

    # ------------------------------------------------------------------ requests

    async def _request(
        self,
        method: str,
        target: str,
        *,
        json: object | None = None,
        content: bytes | None = None,
        signed: bool = True,
    ) -> Response:
        signer = None
        if signed:
            if self._signer is None:
                raise ProfileStateError("this device has no identity on the server yet")
            signer = self._signer
        return await self._transport.request(
            method, target, json=json, content=content, signer=signer
        )

    # ------------------------------------------------------------------ registration

    async def create_account(self, name: str) -> None:
        """Register ``name``: a new account key, this device as device 1, a signed device
        list, and prekeys (:data:`ONE_TIME_PREKEY_BATCH` one-time X25519 and
        :data:`KEM_ONE_TIME_PREKEY_BATCH` one-time ML-KEM).

        If the answer is lost (:class:`ServerUnreachable`), calling again with the same name
        finishes the registration. :class:`AccountExists` if the name is taken.
        """
        account = account_of(name)
        now = self._clock.now_ms()
        p = self._profile
        if p is not None and (p.state is not ProfileState.REGISTERING or p.account != account):
            raise ProfileStateError(
                f"this profile already belongs to {name_of(p.account)!r} ({p.state}); "
                "use another profile directory for another account"
            )
        if p is None:
            new_key = AccountIdentity.generate(account, self._rng)
            dev = Device.create(
                account, 1, rng=self._rng, policy=self._policy,
                one_time_prekeys=ONE_TIME_PREKEY_BATCH,
                kem_one_time_prekeys=KEM_ONE_TIME_PREKEY_BATCH,
            )  # fmt: skip
            p = Profile(account, ProfileState.REGISTERING, new_key, dev.identity, dev.prekeys)
            self._store.create_profile(p, now)
            self._set_profile(p)
        ai = p.account_identity
        if ai is None:  # pragma: no cover - a registering profile always holds the key
            raise ProfileStateError("this profile lost its account key; start a new profile")
        await self._kt.manifest()  # first contact: pin the deployment's manifest
        signed = ai.sign_device_list(1, [p.device.entry()])
        payload = {
            "account": b64e(account),
            "signed_device_list": b64e(signed.encode()),
            "prekeys": _public_prekeys(p.prekeys),
        }
        try:
            await self._request("POST", "/v1/accounts", json=payload)
        except AccountExists:
            # Ours already, from an attempt whose answer was lost?
            view = await self._fetch_account(account)
            if not constant_time_eq(view.identity_key, ai.public_key.raw):
                self._abandon_registration()
                raise
        except RateLimited:
            raise  # transient: keep the keys, call again later
        except ServerRefused:
            self._abandon_registration()
            raise
        self._remember_own_list(signed)
        self._store.save_contact(Contact(account, ai.public_key.raw, signed, now), now)
        self._matching.create_account_seed(1)  # the account's matching seed (client/matching.py)
        self._store.update_profile(state=ProfileState.ACTIVE)
        self._set_profile(replace(p, state=ProfileState.ACTIVE))
        log.info("registered %s", p.device.address)

    def _abandon_registration(self) -> None:
        self._store.delete_profile()
        self._set_profile(None)

    # ------------------------------------------------------------------ linking

    async def request_link(self, name: str) -> LinkRequest:
        """Step 1 on a new device: make its keys and a request to join account ``name``.

        Hand the request (``encode()``) to a device that holds the account key.
        """
        account = account_of(name)
        p = self._profile
        if p is None:
            await self._kt.manifest()  # first contact: pin the deployment's manifest
            ident = DeviceIdentity.generate(Address(account, _UNASSIGNED_DEVICE), self._rng)
            p = Profile(account, ProfileState.LINKING, None, ident, PrekeyStock())
            self._store.create_profile(p, self._clock.now_ms())
            self._set_profile(p)
        elif p.state is not ProfileState.LINKING or p.account != account:
            raise ProfileStateError(
                f"this profile already belongs to {name_of(p.account)!r} ({p.state}); "
                "link with a new profile directory"
            )
        return LinkRequest.make(account, p.device.dh.public_key.raw, p.device.sign)

    async def approve_link(self, request: LinkRequest | bytes) -> LinkApproval:
        """Step 2 on a device holding the account key: add the requesting device to the
        account's signed device list and publish it. Hand the approval back to the new
        device. Compare, before approving, that the request is the one the new device shows.
        """
        p = self._active()
        ai = p.account_identity
        if ai is None:
            raise ProfileStateError(
                "this device does not hold the account key; approve the link on the device "
                "where the account was created"
            )
        req = LinkRequest.decode(request) if isinstance(request, bytes) else request
        if req.account != p.account:
            raise ProtocolViolation(
                f"the link request is for account {name_of(req.account)!r}, not this one"
            )
        try:
            req.verify()
        except InvalidMessage:
            raise ProtocolViolation(
                "the link request is not signed by the key it names; make a new request on "
                "the new device"
            ) from None
        async with self._send_lock:
            for _ in range(MAX_SEND_ATTEMPTS):
                own = await self._contact(p.account, refresh=True)
                for entry in own.device_list.devices:
                    if (entry.identity_dh, entry.identity_sign) == (
                        req.identity_dh,
                        req.identity_sign,
                    ):
                        return self._approval(req, entry.device, own.signed_device_list)
                new_id = max(d.device for d in own.device_list.devices) + 1
                entries = [*own.device_list.devices]
                entries.append(DeviceEntry(new_id, req.identity_dh, req.identity_sign))
                signed = ai.sign_device_list(own.serial + 1, entries)
                try:
                    await self._request(
                        "PUT",
                        f"/v1/accounts/{_api.account_path(p.account)}/devices",
                        json={
                            "signed_device_list": b64e(signed.encode()),
                            "expected_serial": own.serial,
                        },
                    )
                except StaleSerial:
                    continue
                self._remember_own_list(signed)
                await self._accept_device_list(p.account, signed)
                log.info("linked device %d to %s", new_id, p.device.address)
                return self._approval(req, new_id, signed)
        raise StaleSerial(
            409,
            "stale_serial",
            "the account's device list kept changing while linking; try again",
        )

    def _approval(self, req: LinkRequest, device: int, signed: SignedDeviceList) -> LinkApproval:
        """The approval of ``req`` as ``device``, with the account secrets (the matching seed
        and the device's matching slot, client/matching.py) sealed to the new device."""
        listed = [d.device for d in signed.device_list.devices if d.device != device]
        own = self._active().device.address.device
        secrets = self._matching.link_secrets(req.identity_sign, listed, own)
        try:
            return LinkApproval.make(req, device, signed, secrets, self._rng)
        except InvalidMessage:
            raise ProtocolViolation(
                "the link request's X25519 key cannot be used; make a new request on the new device"
            ) from None

    async def finish_link(self, approval: LinkApproval | bytes) -> None:
        """Step 3 on the new device: check the approval, take the assigned device id, pin the
        account key and upload prekeys. Safe to call again after a lost answer."""
        p = self._profile
        if p is None or p.state is not ProfileState.LINKING:
            raise ProfileStateError("this profile is not waiting for a link approval")
        appr = LinkApproval.decode(approval) if isinstance(approval, bytes) else approval
        signed = appr.signed_device_list
        dl = signed.device_list
        entry = dl.device(appr.device)
        if (
            dl.account != p.account
            or entry is None
            or (entry.identity_dh, entry.identity_sign) != (
                p.device.dh.public_key.raw, p.device.sign.public_key.raw)
        ):  # fmt: skip
            raise ProtocolViolation(
                "the link approval does not list this device; make a new request and approve it"
            )
        try:
            verify_device_list(signed)
        except InvalidMessage:
            raise ProtocolViolation(
                "the link approval is not signed by the account key; approve the request again "
                "on a device that holds the account key"
            ) from None
        try:
            secrets = appr.open_secrets(p.device.dh, p.device.sign.public_key.raw)
            self._matching.check_secrets(secrets)
        except (InvalidMessage, DecodeError):
            raise ProtocolViolation(
                "the link approval's account secrets do not open for this device; approve the "
                "request again"
            ) from None
        now = self._clock.now_ms()
        if p.device.address.device == _UNASSIGNED_DEVICE:
            ident = DeviceIdentity(Address(p.account, appr.device), p.device.dh, p.device.sign)
            dev = Device(ident, self._rng, self._policy)
            dev.rotate_signed_prekey()
            dev.add_one_time_prekeys(ONE_TIME_PREKEY_BATCH, KEM_ONE_TIME_PREKEY_BATCH)
            # Secrets first: a published prekey must never lack its private half here.
            self._store.update_profile(device=ident, prekeys=dev.prekeys)
            p = replace(p, device=ident, prekeys=dev.prekeys)
            self._set_profile(p)
        elif p.device.address.device != appr.device:
            raise ProtocolViolation("the link approval is for another device id")
        self._remember_own_list(signed)
        self._store.save_contact(Contact(p.account, dl.account_key, signed, now), now)
        self._matching.adopt(secrets)  # the account's matching seed (client/matching.py)
        await self._request("PUT", "/v1/devices/self/prekeys", json=_public_prekeys(p.prekeys))
        self._store.update_profile(state=ProfileState.ACTIVE)
        self._set_profile(replace(p, state=ProfileState.ACTIVE))
        self._prekeys_checked = True
        log.info("linked as %s", p.device.address)

    async def link_device(self, primary: Client) -> None:
        """All three steps when both devices are at hand (tests, the demo, one machine)."""
        name = primary.account_name
        if name is None:
            raise ProfileStateError("the primary device has no account")
        request = await self.request_link(name)
        approval = await primary.approve_link(request.encode())
        await self.finish_link(approval.encode())

    async def devices(self) -> list[int]:
        """The device ids of this account, as its verified device list has them."""
        p = self._active()
        own = await self._contact(p.account, refresh=True)
        return [d.device for d in own.device_list.devices]

    # ------------------------------------------------------------------ trust

    async def _fetch_account(self, account: bytes) -> _api.AccountView:
        try:
            answer = await self._request(
                "GET", f"/v1/accounts/{_api.account_path(account)}", signed=False
            )
        except NotFound as exc:
            raise UnknownAccount(
                exc.status,
                exc.code,
                f"there is no account named {name_of(account)!r} on this server; check the name",
            ) from exc
        view = _api.parse_account(answer.json())
        if view.account != account:
            raise BadResponse("the server answered with another account's record")
        return view

    async def _contact(self, account: bytes, *, refresh: bool = False) -> Contact:
        """The verified contact for ``account`` (fetched and pinned on first use; fetched again
        if its stored list still lacks the log proof that key transparency requires)."""
        await self._kt.manifest()  # a profile from before the server's log pins it now
        if not refresh:
            known = self._store.contact(account)
            if known is not None and not self._needs_log_proof(known):
                return known
        view = await self._fetch_account(account)
        return await self._accept_device_list(account, view.signed_device_list)

    def _needs_log_proof(self, contact: Contact) -> bool:
        """Whether ``contact``'s list must still be proven to be in the log before use: the
        pinned manifest names a key directory, and the list was neither proven nor made or
        accepted here."""
        if contact.log_index is not None or not self._kt.enforced():
            return False
        return not self._own_known(contact.account, contact.signed_device_list)

    def _own_known(self, account: bytes, signed: SignedDeviceList) -> bool:
        """Whether ``signed`` is a list of this account that this device signed or accepted."""
        p = self._profile
        if p is None or account != p.account:
            return False
        return device_list_hash(signed) in self._store.own_lists()

    def _remember_own_list(self, signed: SignedDeviceList) -> None:
        dl = signed.device_list
        self._store.remember_own_list(
            device_list_hash(signed), dl.serial, dl.account_key, self._clock.now_ms()
        )

    def _verified_list(self, account: bytes, data: bytes | SignedDeviceList) -> SignedDeviceList:
        """Decode ``data`` and check it is ``account``'s, under the pinned key, validly
        signed."""
        who = name_of(account)
        try:
            signed = data if isinstance(data, SignedDeviceList) else SignedDeviceList.decode(data)
        except DecodeError as exc:
            raise BadResponse(
                f"the device list the server gave for {who!r} does not decode"
            ) from exc
        dl = signed.device_list
        if dl.account != account:
            raise ProtocolViolation(
                f"the server gave another account's device list for {who!r}; not trusting it"
            )
        known = self._store.contact(account)
        if known is not None and not constant_time_eq(dl.account_key, known.account_key):
            raise UntrustedIdentity(self._changed_key_message(account))
        try:
            verify_device_list(signed, known.account_key if known is not None else None)
        except InvalidMessage:
            raise ProtocolViolation(
                f"the device list the server gave for {who!r} is not signed by its account key; "
                "not trusting it (if this persists, the server is misbehaving)"
            ) from None
        return signed

    async def _accept_device_list(self, account: bytes, data: bytes | SignedDeviceList) -> Contact:
        """Check a device list from the server against the pinned key and, when the server
        keeps a transparency log, against the log; store it if newer."""
        who = name_of(account)
        signed = self._verified_list(account, data)
        known = self._store.contact(account)
        same = known is not None and signed.encode() == known.signed_device_list.encode()
        if known is not None and (same or signed.device_list.serial < known.serial):
            if signed.device_list.serial < known.serial:
                log.warning("ignored an older device list for an account (serial %d < %d)",
                            signed.device_list.serial, known.serial)  # fmt: skip
            if not self._needs_log_proof(known):
                return known
            signed = known.signed_device_list  # prove the list in use instead
        log_index: int | None = None
        if await self._kt.directory() is not None and not self._own_known(account, signed):
            listing = await self._kt.listing(account, signed, who)
            if listing.signed.encode() != signed.encode():
                signed = self._verified_list(account, listing.signed)  # a newer logged list
            log_index = listing.index
        dl = signed.device_list
        now = self._clock.now_ms()
        known = self._store.contact(account)  # the lookup awaited: read it again
        if known is not None:
            if dl.serial < known.serial:
                return known
            if dl.serial == known.serial and signed.encode() != known.signed_device_list.encode():
                raise ProtocolViolation(
                    f"the server gave two different device lists of {who!r} with the same "
                    "serial; not trusting either (the server may be misbehaving)"
                )
        contact = Contact(
            account, dl.account_key, signed, known.first_seen_ms if known else now, log_index
        )
        self._store.save_contact(contact, now, self._stale_sessions(contact))
        p = self._profile
        if p is not None and account == p.account:
            self._remember_own_list(signed)  # accepted for this account
        return contact

    def _stale_sessions(self, contact: Contact) -> list[Address]:
        """Sessions with devices the list no longer has, or has with other keys."""
        addresses = self._store.session_addresses(contact.account)
        out = []
        for addr, rec in self._store.sessions(addresses).items():
            entry = contact.entry(addr.device)
            cur = rec.current
            if entry is None or (
                cur is not None
                and (cur.peer_identity_dh, cur.peer_identity_sign)
                != (entry.identity_dh, entry.identity_sign)
            ):
                out.append(addr)
        return out

    def _changed_key_message(self, account: bytes) -> str:
        who = name_of(account)
        p = self._profile
        if p is not None and account == p.account:
            return (
                "your own account key has changed on the server, so this device no longer "
                "trusts the account's device list; if you did not do this, your account may "
                "be taken over — contact the provider"
            )
        return (
            f"the account key of {who!r} has changed since you first talked. Compare safety "
            f"numbers with {who!r} in person (offered_safety_number), then accept the new "
            f"key (accept_new_identity); until then nothing is sent to or shown from {who!r}"
        )

    async def safety_number(self, peer: str) -> str:
        """The 60-digit safety number of this account and ``peer``, over the pinned keys.

        Compare it with the peer's (e.g. read aloud, with
        :func:`overt.protocol.format_safety_number`).
        """
        p = self._active()
        other = account_of(peer)
        own = await self._contact(p.account)
        them = await self._contact(other)
        return safety_number(p.account, own.account_key, other, them.account_key)

    async def _offered(self, account: bytes) -> tuple[SignedDeviceList, str, int | None]:
        """The list the server now offers for ``account`` (proven to be in the log when there
        is one, with its index), and the safety number over its key."""
        p = self._active()
        view = await self._fetch_account(account)
        log_index: int | None = None
        try:
            signed = SignedDeviceList.decode(view.signed_device_list)
            if signed.device_list.account != account:
                raise BadResponse("the server gave another account's device list")
            verify_device_list(signed)
            if await self._kt.directory() is not None:
                listing = await self._kt.listing(account, signed, name_of(account))
                signed = listing.signed
                log_index = listing.index
                verify_device_list(signed)
        except (DecodeError, InvalidMessage) as exc:
            raise ProtocolViolation(
                f"the device list the server gives for {name_of(account)!r} is not validly "
                "signed; try again later"
            ) from exc
        own = await self._contact(p.account)
        number = safety_number(p.account, own.account_key, account, signed.device_list.account_key)
        return signed, number, log_index

    async def offered_safety_number(self, peer: str) -> str:
        """The safety number with the key the server *now* offers for ``peer`` (not pinned):
        what to compare in person after an :class:`UntrustedIdentity`."""
        return (await self._offered(account_of(peer)))[1]

    async def accept_new_identity(self, peer: str, safety_number: str) -> None:
        """Pin the account key the server now offers for ``peer``, after the person compared
        ``safety_number`` (from :meth:`offered_safety_number`) with the peer's. Sessions with
        the peer's devices are dropped; new ones start from fresh prekeys."""
        p = self._active()
        account = account_of(peer)
        if account == p.account:
            raise ProfileStateError(
                "this device cannot accept a new key for its own account; link it again"
            )
        signed, number, log_index = await self._offered(account)
        if not constant_time_eq(number.encode(), safety_number.encode()):
            raise ProtocolViolation(
                f"the safety number does not match the key now offered for {peer!r}; compare "
                "again with offered_safety_number()"
            )
        known = self._store.contact(account)
        now = self._clock.now_ms()
        contact = Contact(account, signed.device_list.account_key, signed,
                          known.first_seen_ms if known else now, log_index)  # fmt: skip
        self._store.save_contact(contact, now, self._store.session_addresses(account))
        log.info("accepted a new account key for a contact")

    # ------------------------------------------------------------------ sending

    async def send(self, to: str, text: str) -> Message:
        """Send ``text`` to account ``to`` (every device of it, and this account's other
        devices); return it as stored in the conversation."""
        return await self._send_body(Body.of_text(account_of(to), text))

    async def send_attachment(
        self,
        to: str,
        data: bytes | Path,
        *,
        content_type: str = "application/octet-stream",
        file_name: str | None = None,
        caption: str = "",
    ) -> Message:
        """Encrypt ``data`` (bytes, or a file's path) under a fresh key, upload it, and send
        the pointer (key and hashes) inside a message to ``to``."""
        peer = account_of(to)
        data, pointer = await self._upload_attachment(data, content_type, file_name)
        message = await self._send_body(Body.of_attachment(peer, pointer, caption))
        await self._after_attachment(data, content_type)
        return message

    async def _upload_attachment(
        self, data: bytes | Path, content_type: str, file_name: str | None
    ) -> tuple[bytes, AttachmentPointer]:
        """Read (a path), check the named limits, encrypt under a fresh key (key-committing)
        and upload ``data`` once; return the plaintext and the pointer a message carries."""
        if isinstance(data, Path):
            if file_name is None:
                file_name = data.name
            try:
                data = data.read_bytes()
            except OSError as exc:
                raise LocalError(f"could not read {str(data)!r}: {exc.strerror}") from exc
        file_name = file_name or ""
        if len(data) > MAX_ATTACHMENT_BYTES:
            raise LocalError(f"the attachment is over {MAX_ATTACHMENT_BYTES} bytes; send less")
        if len(file_name.encode()) > MAX_FILE_NAME_BYTES:
            raise LocalError(f"the file name is over {MAX_FILE_NAME_BYTES} bytes; shorten it")
        if len(content_type.encode()) > MAX_CONTENT_TYPE_BYTES:
            raise LocalError(f"the content type is over {MAX_CONTENT_TYPE_BYTES} bytes")
        self._active()
        key = self._rng.random_bytes(32)
        ciphertext = seal(key, data, ATTACHMENT_AD, ATTACHMENT_LABEL)
        answer = await self._request("POST", "/v1/attachments", content=ciphertext)
        o = _api.obj(answer.json(), "attachment upload answer")
        blob_id = _api.binary(o, "id", "attachment upload answer")
        pointer = AttachmentPointer(
            blob_id, key, len(data), sha256(data), sha256(ciphertext), content_type, file_name
        )
        return data, pointer

    async def _after_attachment(self, data: bytes, content_type: str) -> None:
        """Known-content matching (when the manifest turns it on) for an attachment that went
        out: once per attachment, whatever the number of recipients; after the message, so
        that it never waits for or fails because of matching (client/matching.py)."""
        await self._matching.after_send(data, content_type, self._active().device.address.device)

    async def fetch_attachment(self, message: Message) -> bytes:
        """Download, check and decrypt the attachment of ``message``.

        :class:`AttachmentRejected` if the bytes are not exactly what the sender sent.
        """
        pointer = message.attachment
        if pointer is None:
            raise LocalError("this message has no attachment")
        answer = await self._request("GET", f"/v1/attachments/{b64e(pointer.blob_id)}")
        ciphertext = answer.content
        if not constant_time_eq(sha256(ciphertext), pointer.ciphertext_sha256):
            raise AttachmentRejected()
        try:
            plaintext = open_sealed(pointer.key, ciphertext, ATTACHMENT_AD, ATTACHMENT_LABEL)
        except InvalidMessage:
            raise AttachmentRejected() from None
        if len(plaintext) != pointer.size or not constant_time_eq(
            sha256(plaintext), pointer.plaintext_sha256
        ):
            raise AttachmentRejected()
        return plaintext

    async def _send_body(self, body: Body) -> Message:
        p = self._active()
        if self._policy is None:
            await self._escrow.ensure_live()  # the escrow epoch, from the log
        self._access_policy()  # refuse before anything goes out if the policy cannot be met
        body = body.with_gossip(self._kt.gossip())
        peer = body.peer
        body_bytes = body.encode()
        cid = direct_conversation_id(p.account, peer)
        message_id = self._rng.random_bytes(MESSAGE_ID_LEN)
        sent_ms = self._clock.now_ms()
        last: StaleDevices | None = None
        async with self._send_lock:
            for _ in range(MAX_SEND_ATTEMPTS):
                targets = await self._targets(p, peer)
                bundles = await self._bundles_for(p, targets)
                encrypted = self._encrypt(targets, bundles, body_bytes, sent_ms, cid, message_id)
                if encrypted is None:
                    continue  # a device list changed while fetching bundles: start over
                franking_key, envelopes = encrypted
                server_time: int | None = None
                if targets:
                    try:
                        answer = await self._request(
                            "POST", "/v1/messages", json=_api.send_request(targets, envelopes)
                        )
                    except StaleDevices as exc:
                        last = exc
                        await self._apply_stale(exc)
                        continue
                    server_time = _api.parse_sent(answer.json())[1]
                stored = StoredMessage(
                    cid, peer, message_id, p.device.address, Direction.OUTGOING, body.kind,
                    body_bytes, body.text,
                    None if body.attachment is None else body.attachment.encode(),
                    sent_ms, self._clock.now_ms(), None, server_time, None, franking_key,
                )  # fmt: skip
                self._store.add_message(stored)
                log.info("sent a message to %d device(s)", len(targets))
                return self._message(stored)
        raise StaleDevices(
            409,
            "stale_devices",
            f"the devices of {name_of(peer)!r} kept changing while sending; the message was "
            "not sent — try again",
        ) from last

    async def _targets(self, p: Profile, peer: bytes) -> list[Address]:
        """Every device of ``peer`` and this account's other devices, from verified lists."""
        own = await self._contact(p.account)
        if own.entry(p.device.address.device) is None:
            raise ProfileStateError(
                "this device is no longer in its account's device list; link it again"
            )
        them = await self._contact(peer)
        targets: list[Address] = []
        for addr in [*them.addresses(), *own.addresses()]:
            if addr != p.device.address and addr not in targets:
                targets.append(addr)
        return targets

    async def _bundles_for(self, p: Profile, targets: Sequence[Address]) -> _Bundles:
        """Verified prekey bundles for the targets that have no session yet."""
        stored = self._store.sessions(targets)
        missing = [t for t in targets if t not in stored or stored[t].current is None]
        bundles: _Bundles = {}
        for account in dict.fromkeys(a.account for a in missing):
            wanted = [a for a in missing if a.account == account]
            known = await self._contact(account)
            if account != p.account and 1 < len(wanted) == len(known.device_list.devices):
                await self._fetch_bundles(account, None, wanted, bundles)
            for addr in wanted:
                if addr not in bundles:
                    await self._fetch_bundles(account, addr.device, wanted, bundles)
        return bundles

    async def _fetch_bundles(
        self, account: bytes, device: int | None, wanted: Sequence[Address], out: _Bundles
    ) -> None:
        query = "" if device is None else f"?device={device}"
        try:
            answer = await self._request(
                "GET", f"/v1/accounts/{_api.account_path(account)}/bundles{query}"
            )
        except NotFound:
            # The device may have left the list since we last looked; then it is no target.
            latest = await self._contact(account, refresh=True)
            if device is not None and latest.entry(device) is None:
                return
            raise
        view = _api.parse_bundles(answer.json())
        contact = await self._accept_device_list(account, view.signed_device_list)
        for raw in view.bundles:
            try:
                bundle = PreKeyBundle.decode(raw)
            except DecodeError as exc:
                raise BadResponse("a prekey bundle from the server does not decode") from exc
            addr = bundle.device
            entry = contact.entry(addr.device)
            if addr not in wanted or entry is None:
                continue
            try:
                verify_bundle(bundle, expected=entry)
            except InvalidMessage:
                raise ProtocolViolation(
                    f"the server's prekeys for device {addr.device} of "
                    f"{name_of(addr.account)!r} are not signed by that device's listed key; "
                    "not sending (if this persists, the server is misbehaving)"
                ) from None
            out[addr] = (bundle, entry)

    def _encrypt(
        self,
        targets: Sequence[Address],
        bundles: _Bundles,
        body: bytes,
        sent_ms: int,
        cid: bytes,
        message_id: bytes,
        kind: AccessKind = AccessKind.CONTENT,
    ) -> tuple[bytes, list[Envelope]] | None:
        """Encrypt to every target and persist the advanced sessions before anything is sent,
        so that no message key is ever used for two ciphertexts the server sees. None if a
        target has neither a session nor a bundle (its list changed meanwhile). ``kind`` is
        the access field's context (key material: a sender-key distribution).

        No ``await`` here: sessions are read, advanced and written back without another task
        (a receive committing a newer record) getting in between.
        """
        p = self._active()
        stored = self._store.sessions(targets)
        records: dict[Address, SessionRecord] = {}
        for t in targets:
            rec = stored.get(t)
            if rec is not None and rec.current is not None:
                records[t] = rec
            elif t in bundles:
                bundle, entry = bundles[t]
                records[t] = start_session(rec, p.device, bundle, self._rng, entry)
            else:
                return None
        dev = Device(p.device, self._rng, self._access_policy(), p.prekeys)
        dev.sessions = records
        out, envelopes = dev.encrypt_fanout(
            targets, body, now_ms=sent_ms, conversation_id=cid, message_id=message_id,
            access_kind=kind,
        )  # fmt: skip
        self._store.save_sessions({t: dev.sessions[t] for t in targets}, self._clock.now_ms())
        return out.franking_key, envelopes

    async def _apply_stale(self, exc: StaleDevices) -> None:
        try:
            stale = _api.parse_stale(exc.details)
        except BadResponse as bad:
            raise bad from exc
        for entry in stale:
            await self._accept_device_list(entry.account, entry.signed_device_list)

    # ------------------------------------------------------------------ groups

    async def create_group(self, name: str, members: Sequence[str]) -> GroupInfo:
        """A new group named ``name`` of this account (its admin) and the accounts
        ``members``, with every device of each; only the device holding the account key can
        do this (it signs the membership). See :mod:`overt.client.groups`."""
        return await self._groups.create(name, members)

    async def add_members(self, group: str, members: Sequence[str]) -> GroupInfo:
        """(Admin) add accounts to ``group`` (its id, an id prefix or its name)."""
        return await self._groups.add(group, members)

    async def remove_members(self, group: str, members: Sequence[str]) -> GroupInfo:
        """(Admin) remove accounts from ``group``: every remaining device rekeys, so they
        read nothing sent afterwards."""
        return await self._groups.remove(group, members)

    async def rename_group(self, group: str, name: str) -> GroupInfo:
        """(Admin) give ``group`` a new name."""
        return await self._groups.rename(group, name)

    async def leave_group(self, group: str) -> GroupInfo:
        """Leave ``group``; this device stops reading and sending there at once."""
        return await self._groups.leave(group)

    async def send_group(self, group: str, text: str) -> Message:
        """Send ``text`` to every member device of ``group`` (one ciphertext, fanned out by
        the server); return it as stored in the group's history."""
        return await self._groups.send(group, text)

    async def send_group_attachment(
        self,
        group: str,
        data: bytes | Path,
        *,
        content_type: str = "application/octet-stream",
        file_name: str | None = None,
        caption: str = "",
    ) -> Message:
        """Encrypt ``data`` (bytes, or a file's path) once under a fresh key, upload it once,
        and send the pointer (key and hashes) in one group message to every member device of
        ``group``; members open it with :meth:`fetch_attachment`. An image is hashed for
        known-content matching once (one bundle), as :meth:`send_attachment` does."""
        self._groups.resolve_member(group)  # refuse before anything is uploaded
        data, pointer = await self._upload_attachment(data, content_type, file_name)
        message = await self._groups.send_attachment(group, pointer, caption)
        await self._after_attachment(data, content_type)
        return message

    async def groups(self) -> list[GroupInfo]:
        """Every group this device is or was in, most recently active first. Local."""
        return self._groups.all()

    async def group_info(self, group: str) -> GroupInfo:
        """``group`` (its id, an id prefix of four characters or more, or its name). Local."""
        return self._groups.info(group)

    async def group_members(self, group: str) -> list[GroupMemberInfo]:
        """Who is in ``group`` now (devices, admin or not) and since which version. Local."""
        return self._groups.members(group)

    async def group_history(self, group: str, limit: int = 50) -> list[Message]:
        """The last ``limit`` messages of ``group``, oldest first. Local."""
        return self._groups.history(group, limit)

    # ------------------------------------------------------------------ receiving

    async def sync(self) -> list[Message]:
        """Fetch pending mail, decrypt, store and acknowledge it; return the messages that are
        new to this device (sync copies of this account's own messages included, as
        outgoing), in the order received. Refills prekeys when the server says they run low.

        If the server stops answering midway, the messages already stored are returned (the
        rest waits in the mailbox); :class:`ServerUnreachable` only if none were.
        """
        self._active()
        shown: list[Message] = []
        consumed = False
        after = 0
        try:
            for _ in range(MAX_SYNC_PAGES):
                answer = await self._request(
                    "GET", f"/v1/messages?after={after}&limit={FETCH_PAGE_SIZE}"
                )
                mails, more = _api.parse_mail_page(answer.json())
                if not mails:
                    break
                for mail in mails:
                    message, used_prekey = await self._process(mail)
                    consumed = consumed or used_prekey
                    if message is not None:
                        shown.append(message)
                    shown.extend(self._groups.take_extra())  # group messages let through
                await self._request("POST", "/v1/messages/ack", json={"ids": [m.id for m in mails]})
                if not more:
                    break
                after = mails[-1].id
            shown.extend(await self._groups.drain_waiting())  # group input left from before
            if consumed or not self._prekeys_checked:
                await self.refill_prekeys()
        except ServerUnreachable:
            if not shown:
                raise
            # What was stored is returned; unacknowledged mail comes again and is recognised.
            log.info("sync ended early: the server stopped answering")
            return shown
        await self._monitor_if_due()
        await self._matching.flush()  # bundles that could not be uploaded before
        return shown

    async def _monitor_if_due(self) -> None:
        """:meth:`check_log` when the last one is :data:`LOG_CHECK_INTERVAL_S` old (what it
        finds is recorded as alarms; a failure is logged and tried again next time)."""
        state = self._store.monitor()
        # The last attempt (this process) or success (any process on this profile).
        last = max(self._last_log_check_ms or 0, 0 if state is None else state.checked_ms)
        if last and self._clock.now_ms() - last < LOG_CHECK_INTERVAL_S * 1000:
            return
        try:
            if await self._kt.manifest() is None:
                return
            await self.check_log()
        except RemoteError as exc:
            log.warning("monitoring the transparency log failed (%s); will retry",
                        type(exc).__name__)  # fmt: skip

    async def receive(self) -> list[Message]:
        """The same as :meth:`sync`."""
        return await self.sync()

    async def listen(
        self, *, poll_interval: float = POLL_INTERVAL_S
    ) -> AsyncGenerator[Message, None]:
        """New messages as they arrive, forever (stop by leaving the ``async for``).

        Over a transport with push (WebSocket ``/v1/ws``) each mail is processed and stored as
        it comes and acknowledged in batches: one ``ack`` frame once :data:`ACK_BATCH_MAX` ids
        wait, or when no further mail arrived :data:`ACK_DELAY_S` after this generator was
        asked for the next message, and when listening stops (mail not acknowledged comes
        again and is recognised); over one without (in-process) this polls :meth:`sync`
        every ``poll_interval`` seconds. A lost connection is retried with exponential
        backoff and jitter (:data:`BACKOFF_INITIAL_S` … :data:`BACKOFF_MAX_S`).
        """
        self._active()
        delay = BACKOFF_INITIAL_S
        while True:
            at_least = 0.0
            try:
                if self._transport.supports_push:
                    async with self._transport.push("/v1/ws") as channel:
                        await self._ws_login(channel)
                        delay = BACKOFF_INITIAL_S
                        acks: list[int] = []
                        try:
                            while True:
                                message = await self._ws_next(channel, acks)
                                if message is not None:
                                    yield message
                                for message in self._groups.take_extra():
                                    yield message
                                await self._monitor_if_due()
                        except GeneratorExit:  # the caller stopped listening
                            with contextlib.suppress(ServerUnreachable, BadResponse):
                                await _send_acks(channel, acks)
                            raise
                else:
                    for message in await self.sync():
                        yield message
                    delay = BACKOFF_INITIAL_S
                    await self._clock.sleep(poll_interval)
                    continue
            except (ServerUnreachable, BadResponse) as exc:
                log.info("connection to the server lost (%s); retrying", type(exc).__name__)
            except RateLimited as exc:
                log.info("the server asked to slow down; retrying")
                at_least = exc.retry_after or 0.0
            jitter = 0.5 + 0.5 * int.from_bytes(self._rng.random_bytes(2)) / 0xFFFF
            await self._clock.sleep(max(at_least, delay * jitter))
            delay = min(delay * BACKOFF_FACTOR, BACKOFF_MAX_S)

    async def _ws_login(self, channel: PushChannel) -> None:
        if self._signer is None:  # pragma: no cover - an active profile has a signer
            raise ProfileStateError("this device has no identity on the server yet")
        challenge = await _push_frame(channel, "push challenge")
        if challenge.get("type") != "challenge":
            raise BadResponse("the server's push channel did not start with a challenge")
        nonce = _api.binary(challenge, "nonce", "push challenge")
        await channel.send_json(self._signer.ws_auth(b64e(nonce)))
        ready = await _push_frame(channel, "push login answer")
        if ready.get("type") != "ready":
            raise BadResponse("the server's push channel did not answer the login")

    async def _ws_next(self, channel: PushChannel, acks: list[int]) -> Message | None:
        """Process the next push frame; ``acks`` holds the ids stored but not acknowledged."""
        event = await _next_push_frame(channel, acks)
        kind = event.get("type")
        if kind == "mail":
            mail = _api.parse_mail(event)
            message, used_prekey = await self._process(mail)
            acks.append(mail.id)
            if len(acks) >= ACK_BATCH_MAX:
                await _send_acks(channel, acks)
            if used_prekey:
                await self.refill_prekeys()
            return message
        if kind == "prekeys_low":
            await self.refill_prekeys()
        else:
            log.debug("ignored a push message of type %r", kind)
        return None

    async def _process(self, mail: _api.Mail) -> tuple[Message | None, bool]:
        """Process one mail: returns the message to show (None if nothing new) and whether a
        one-time prekey was consumed. Raises only for transient failures (the network), in
        which case nothing was stored and the mail is not acknowledged."""
        p = self._active()
        if self._store.mail_seen(mail.id):
            return None, False
        if mail.kind == _api.MAIL_GROUP:
            return await self._groups.receive_mail(mail), False
        now = self._clock.now_ms()

        def fail(reason: FailureReason, staged: tuple[Address, SessionRecord] | None = None,
                 prekeys: PrekeyStock | None = None) -> tuple[None, bool]:  # fmt: skip
            failure = Failure(mail.id, mail.sender, mail.server_time_ms, str(reason), now)
            self._store.commit_received(
                mail_id=mail.id, now_ms=now, session=staged, prekeys=prekeys, failure=failure
            )
            if prekeys is not None:
                self._set_profile(replace(self._active(), prekeys=prekeys))
            log.warning("mail %d from %s not shown: %s", mail.id, mail.sender, reason)
            return None, prekeys is not None

        try:
            env = Envelope.decode(mail.envelope)
        except DecodeError:
            return fail(FailureReason.MALFORMED)
        if env.sender != mail.sender or env.recipient != p.device.address:
            return fail(FailureReason.MISMATCH)
        try:
            entry = await self._sender_entry(env)
        except TransparencyUnavailable:
            raise  # the server's fault, not the mail's: it stays in the mailbox
        except NotInLog:
            return fail(FailureReason.NOT_IN_LOG)
        except UntrustedIdentity:
            return fail(FailureReason.UNTRUSTED_IDENTITY)
        except (UnknownAccount, ProtocolViolation):
            return fail(FailureReason.UNKNOWN_DEVICE)
        if entry is None:
            return fail(FailureReason.UNKNOWN_DEVICE)
        try:  # the epochs it accepts, from the log (the message's own, fetched if new)
            policy = self._policy
            if policy is None:
                policy = await self._escrow.for_receiving(env.access)
        except PolicyViolation:
            return fail(FailureReason.POLICY)
        # Another task may have processed this mail or changed the prekeys meanwhile.
        if self._store.mail_seen(mail.id):
            return None, False
        p = self._active()

        # Stage, then commit: no await from here on, and nothing is stored before
        # commit_received.
        try:
            received, record = decrypt_envelope(
                self._store.session(env.sender), p.device, p.prekeys, env, self._rng, policy
            )
        except DuplicateMessage:
            self._store.commit_received(mail_id=mail.id, now_ms=now)
            log.info("mail %d from %s was a duplicate", mail.id, mail.sender)
            return None, False
        except InvalidMessage:
            return fail(FailureReason.INVALID)
        except UnknownSession:
            return fail(FailureReason.NO_SESSION)
        except LimitExceeded:
            return fail(FailureReason.LIMIT)
        except ProtocolViolation:
            return fail(FailureReason.PROTOCOL)
        except PolicyViolation:
            return fail(FailureReason.POLICY)
        except DecodeError:
            return fail(FailureReason.MALFORMED)
        if (received.peer_identity_dh, received.peer_identity_sign) != (
            entry.identity_dh,
            entry.identity_sign,
        ):
            return fail(FailureReason.UNKNOWN_DEVICE)

        prekeys: PrekeyStock | None = None
        if received.consumed_one_time is not None or received.consumed_kem is not None:
            prekeys = _copy_stock(p.prekeys)
            if received.consumed_one_time is not None:
                prekeys.one_time.pop(received.consumed_one_time, None)
            if received.consumed_kem is not None:
                prekeys.kem.pop(received.consumed_kem, None)
        staged = (env.sender, record)
        try:
            body = Body.decode(received.body)
        except DecodeError:
            return fail(FailureReason.UNSUPPORTED_BODY, staged, prekeys)
        if received.access_kind not in (None, access_kind(body.kind)):
            # Key material under the content context, or content dressed up as key material
            # to escape escrow: refused like a forged field, nothing stored but the failure.
            return fail(FailureReason.POLICY)
        if body.kind in GROUP_BODY_KINDS:  # group input: committed with the session, then run
            writer = self._groups.control_writer(mail, env.sender, body, now)
            if env.conversation_id != body.peer or writer is None:
                reason = FailureReason.MISMATCH if writer else FailureReason.LIMIT
                return fail(reason, staged, prekeys)
            self._store.commit_received(
                mail_id=mail.id, now_ms=now, session=staged, prekeys=prekeys, extra=writer
            )
            if prekeys is not None:
                self._set_profile(replace(p, prekeys=prekeys))
            return self._groups.first_of(await self._groups.drain()), prekeys is not None
        from_self = env.sender.account == p.account
        if from_self:
            peer = body.peer
        elif body.peer == p.account:
            peer = env.sender.account
        else:
            return fail(FailureReason.MISMATCH, staged, prekeys)
        if env.conversation_id != direct_conversation_id(p.account, peer):
            return fail(FailureReason.MISMATCH, staged, prekeys)

        stored = StoredMessage(
            env.conversation_id, peer, env.message_id, env.sender,
            Direction.OUTGOING if from_self else Direction.INCOMING, body.kind, received.body,
            body.text, None if body.attachment is None else body.attachment.encode(),
            env.timestamp_ms, now, mail.id, mail.server_time_ms, mail.reporting_tag,
            received.franking_key,
        )  # fmt: skip
        inserted = self._store.commit_received(
            mail_id=mail.id, now_ms=now, session=staged, prekeys=prekeys, message=stored
        )
        if prekeys is not None:
            self._set_profile(replace(p, prekeys=prekeys))
        if not inserted:
            log.info("mail %d from %s repeated a message already shown", mail.id, mail.sender)
            return None, prekeys is not None
        if body.gossip is not None:
            await self._check_gossip(body)
        return self._message(stored), prekeys is not None

    async def _check_gossip(self, body: Body) -> None:
        """Check the checkpoint a peer gossiped (after its message is stored: a failure here
        never costs the message). Kept for later if the server cannot be asked now."""
        if body.gossip is None:
            return
        try:
            await self._kt.receive_gossip(body.gossip)
        except (ServerUnreachable, RateLimited):
            log.info("a gossiped checkpoint waits until the server answers")
        except RemoteError as exc:
            log.warning("a gossiped checkpoint could not be checked (%s)", type(exc).__name__)

    async def _sender_entry(self, env: Envelope) -> DeviceEntry | None:
        """The sending device's entry in its account's verified list (refreshed once if the
        device is unknown or, for a session-starting message, listed with other keys)."""
        account = env.sender.account
        contact = await self._contact(account)
        entry = contact.entry(env.sender.device)
        if _entry_fits(entry, env):
            return entry
        contact = await self._contact(account, refresh=True)
        entry = contact.entry(env.sender.device)
        return entry if _entry_fits(entry, env) else None

    # ------------------------------------------------------------------ prekeys

    async def refill_prekeys(self) -> bool:
        """Ask the server for this device's prekey stock; if it says ``low``, make and upload
        one-time prekeys up to the batch sizes. Returns whether it uploaded."""
        self._active()
        async with self._refill_lock:
            answer = await self._request("GET", "/v1/devices/self/prekeys")
            counts = _api.parse_prekey_counts(answer.json())
            self._prekeys_checked = True
            if not counts.low:
                return False
            return await self._upload_prekeys(counts)

    async def _upload_prekeys(self, counts: _api.PrekeyCounts) -> bool:
        p = self._active()  # read after the await: a receive may have consumed prekeys
        classical = max(0, ONE_TIME_PREKEY_BATCH - counts.one_time)
        kem = max(0, KEM_ONE_TIME_PREKEY_BATCH - counts.kem_one_time)
        stock = _copy_stock(p.prekeys)
        _make_room(stock, classical, kem)
        dev = Device(p.device, self._rng, self._policy, stock)
        new_otk, new_kem = dev.add_one_time_prekeys(classical, kem)
        # Secrets first: a published prekey must never lack its private half here.
        self._store.update_profile(prekeys=stock)
        self._set_profile(replace(p, prekeys=stock))
        await self._request(
            "PUT", "/v1/devices/self/prekeys", json=_api.prekey_upload(None, None, new_otk, new_kem)
        )
        log.info("uploaded %d + %d one-time prekeys", len(new_otk), len(new_kem))
        return True

    # ------------------------------------------------------------------ transparency

    def matching_status(self) -> MatchingStatus:
        """Whether this client matches the images it sends against the deployment's list, and
        if not, why (no network; :meth:`refresh_matching` asks the server)."""
        return self._matching.status()

    async def refresh_matching(self) -> MatchingStatus:
        """Fetch and verify the current matching list (docs/matching.md); a list that does not
        verify is refused — nothing is scanned — and the status says why."""
        return await self._matching.refresh()

    async def policy_description(self) -> str:
        """The one line to show about exceptional access, from the pinned deployment manifest
        (e.g. ``"exceptional access: 3 of 5 custodians, notice within 180 days"``)."""
        manifest = await self._kt.manifest()
        if manifest is None:
            return "unknown: this server publishes no deployment manifest"
        return describe_policy(manifest)

    def _access_policy(self) -> EscrowPolicy | None:
        """The access policy a message sent now uses: the override given to :meth:`open`,
        else the pinned manifest's (``none`` → None) with the newest live escrow epoch this
        profile verified in the log (:class:`PolicyUnavailable` if it knows none)."""
        if self._policy is not None:
            return self._policy
        return self._escrow.current()

    async def access_epoch(self) -> StoredEpoch | None:
        """The escrow epoch a message sent now is escrowed under (learnt from the log, asked
        for if none is known yet): its number, key, span and log index. None under access
        policy ``none``, or when the log holds no live epoch yet."""
        self._active()
        if self._policy is not None:
            return StoredEpoch(self._policy.epoch, self._policy.public_key.raw, b"", 0, 0, -1)
        await self._escrow.ensure_live()
        if escrow_of(self._kt.pinned()) is None:
            return None
        return newest_live(self._escrow.known(), self._clock.now_ms() // 1000)

    def notices(self, *, new_only: bool = False) -> list[Notice]:
        """Warrants naming this account that were unsealed in the transparency log (found by
        :meth:`check_log`), oldest first; ``new_only``: those not yet marked shown. Local: no
        network. Show new ones prominently, then :meth:`mark_notices_shown`."""
        p = self._active()
        manifest = self._kt.pinned()
        unsealed = [w for w in self._store.access_warrants() if w.unsealing_index is not None]
        notices = [notice_of(w, manifest, p.account) for w in unsealed]
        return [n for n in notices if n.new or not new_only]

    def mark_notices_shown(self, notices: Sequence[Notice] | None = None) -> int:
        """Record that these notices (all new ones if None) were shown; how many were new."""
        chosen = self.notices(new_only=True) if notices is None else notices
        ids = [n.warrant_id for n in chosen]
        return self._store.mark_notices_shown(ids, self._clock.now_ms())

    async def check_log(self, *, progress: Progress | None = None) -> list[Alarm]:
        """Monitor this account in the transparency log now: read the log from where this
        device stopped to the latest cosigned checkpoint, check the entries are exactly its
        leaves, and check every entry of this account is a device list one of its devices
        signed or accepted (and every new manifest a valid successor). Also checks the
        checkpoints peers gossiped that are still waiting. Returns the new alarms (also in
        :meth:`alarms`). :meth:`sync` does this by itself every
        :data:`LOG_CHECK_INTERVAL_S` seconds. ``progress(done, total)`` is called per page."""
        p = self._active()
        self._last_log_check_ms = self._clock.now_ms()
        own = await self._contact(p.account)

        async def refresh() -> object:
            return await self._contact(p.account, refresh=True)

        me = OwnAccount(p.account, own.account_key, p.account_identity is not None, refresh)
        ids = await self._kt.check_log(me, progress)
        await self._kt.check_pending_gossip()
        return [a for a in self.alarms() if a.id in set(ids)]

    def alarms(self, *, include_acknowledged: bool = False) -> list[Alarm]:
        """What the transparency checks found (unacknowledged only, unless asked), oldest
        first. Local: no network."""
        return [_alarm(r) for r in self._store.alarms(include_acknowledged=include_acknowledged)]

    def acknowledge_alarms(self, ids: Sequence[int] | None = None) -> int:
        """Mark alarms as seen by a person (all of them if ``ids`` is None); how many were."""
        return self._store.acknowledge_alarms(ids, self._clock.now_ms())

    # ------------------------------------------------------------------ reading

    async def conversations(self) -> list[Conversation]:
        """Every conversation, most recently active first."""
        self._active()
        return [
            Conversation(name_of(peer), last_ms, None if last is None else self._message(last))
            for _, peer, last_ms, last in self._store.conversations()
        ]

    async def history(self, peer: str, limit: int = 50) -> list[Message]:
        """The last ``limit`` messages with ``peer``, oldest first."""
        p = self._active()
        cid = direct_conversation_id(p.account, account_of(peer))
        return [self._message(m) for m in self._store.history(cid, limit)]

    async def undecryptable(self, limit: int = 100) -> list[Undecryptable]:
        """The most recent mail that could not be shown, and why."""
        self._active()
        return [
            Undecryptable(
                f.server_id,
                name_of(f.sender.account),
                f.sender.device,
                f.server_time_ms,
                FailureReason(f.reason),
                f.recorded_ms,
            )
            for f in self._store.failures(limit)
        ]

    def _message(self, m: StoredMessage) -> Message:
        pointer = None
        if m.attachment is not None and m.kind == BodyKind.ATTACHMENT:
            pointer = AttachmentPointer.decode(m.attachment)
        return Message(
            name_of(m.peer), name_of(m.sender.account), m.sender.device, m.direction,
            m.message_id, m.text, pointer, m.sent_ms, m.stored_ms, m.server_time_ms,
        )  # fmt: skip


async def _send_acks(channel: PushChannel, acks: list[int]) -> None:
    """Acknowledge every id in ``acks`` in one frame, and empty it."""
    if acks:
        ids = acks.copy()
        acks.clear()
        await channel.send_json({"type": "ack", "ids": ids})


async def _next_push_frame(channel: PushChannel, acks: list[int]) -> Mapping[str, object]:
    """The next push frame; if acknowledgements wait and none arrives within
    :data:`ACK_DELAY_S`, they are sent while the frame is still awaited."""
    if not acks:
        return await _push_frame(channel, "push message")
    receiving = asyncio.ensure_future(_push_frame(channel, "push message"))
    try:
        done, _ = await asyncio.wait({receiving}, timeout=ACK_DELAY_S)
        if not done:
            await _send_acks(channel, acks)
        return await receiving
    finally:
        if not receiving.done():
            receiving.cancel()
        elif not receiving.cancelled():
            receiving.exception()  # retrieved: the caller has the error that ended the wait


async def _push_frame(channel: PushChannel, what: str) -> Mapping[str, object]:
    """The next frame of the push channel; an ``error`` frame raises its typed exception."""
    frame = _api.obj(await channel.receive_json(), what)
    if frame.get("type") == "error":
        raise error_of(None, dict(frame))
    return frame


def _alarm(r: AlarmRecord) -> Alarm:
    try:
        kind = AlarmKind(r.kind)
    except ValueError:
        kind = AlarmKind.INVALID_LOG  # written by a newer client: shown, not dropped
    return Alarm(r.id, kind, r.entry_index, r.detected_ms, r.detail, r.ours, r.theirs,
                 r.acknowledged_ms)  # fmt: skip


def _entry_fits(entry: DeviceEntry | None, env: Envelope) -> bool:
    if entry is None:
        return False
    if env.init is None:
        return True  # checked after decryption, against the session's keys
    return (env.init.identity_dh, env.init.identity_sign) == (
        entry.identity_dh,
        entry.identity_sign,
    )


def _make_room(stock: PrekeyStock, classical: int, kem: int) -> None:
    """Drop the oldest unused one-time prekeys so that ``classical`` and ``kem`` more fit
    under :data:`MAX_ONE_TIME_PREKEYS`. Old ones were most likely handed out to someone who
    never wrote; a message that still uses one falls back to failing as ``no_session``."""
    excess = len(stock.one_time) + classical - MAX_ONE_TIME_PREKEYS
    for i in sorted(stock.one_time)[: max(0, excess)]:
        del stock.one_time[i]
    kem_ids = sorted(i for i, (_, pub) in stock.kem.items() if not pub.last_resort)
    excess = len(kem_ids) + kem - MAX_ONE_TIME_PREKEYS
    for i in kem_ids[: max(0, excess)]:
        del stock.kem[i]


__all__ = ["Client"]
