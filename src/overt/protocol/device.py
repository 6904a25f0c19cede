"""An in-memory device: identity, prekeys and sessions behind one small object.

:class:`Device` ties the pure functions of :mod:`overt.protocol.session` to in-memory state,
for tests, benchmarks and as the engine of the client library (which persists what it holds
as versioned bytes). It still does no I/O: the caller passes envelopes in and out, supplies
``now_ms`` and (once, at creation) the RNG.

Multi-device fan-out: :meth:`Device.encrypt_fanout` encrypts one plaintext to every device of
the recipient and to the sender's own other devices, with one message id and one franking
key, so that every copy carries the same franking commitment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from overt.crypto import (
    Ed25519PrivateKey,
    MlKem768PrivateKey,
    Rng,
    X25519PrivateKey,
    sha256,
)
from overt.errors import DecodeError, LocalError
from overt.protocol import identity, session
from overt.protocol.access import AccessKind, EscrowPolicy
from overt.protocol.identity import DeviceIdentity
from overt.protocol.limits import MAX_DEVICES_PER_ACCOUNT, MAX_ONE_TIME_PREKEYS
from overt.protocol.session import Outgoing, Received, SessionRecord
from overt.wire import (
    Address,
    DeviceEntry,
    Envelope,
    KemPreKey,
    OneTimePreKey,
    PreKeyBundle,
    Reader,
    SignedPreKey,
    Writer,
)

STATE_VERSION = 1

_CONVERSATION_LABEL = b"Overt_Conversation_v1"


def direct_conversation_id(a: bytes, b: bytes) -> bytes:
    """The conversation id of the one-to-one conversation between accounts ``a`` and ``b``."""
    w = Writer().raw(_CONVERSATION_LABEL)
    for account in sorted((a, b)):
        w.vec(account, 1)
    return sha256(w.getvalue())


@dataclass(eq=False)
class PrekeyStock:
    """A device's private prekeys and their public halves, by id."""

    signed: dict[int, tuple[X25519PrivateKey, SignedPreKey]] = field(default_factory=dict)
    current_signed: int = 0
    kem: dict[int, tuple[MlKem768PrivateKey, KemPreKey]] = field(default_factory=dict)
    last_resort_kem: int = 0
    one_time: dict[int, tuple[X25519PrivateKey, OneTimePreKey]] = field(default_factory=dict)
    next_id: int = 1
    handed_out: set[int] = field(default_factory=set)

    # PrekeySource
    def signed_prekey(self, prekey_id: int) -> X25519PrivateKey | None:
        found = self.signed.get(prekey_id)
        return None if found is None else found[0]

    def kem_prekey(self, prekey_id: int) -> tuple[MlKem768PrivateKey, bool] | None:
        found = self.kem.get(prekey_id)
        return None if found is None else (found[0], found[1].last_resort)

    def one_time_prekey(self, prekey_id: int) -> X25519PrivateKey | None:
        found = self.one_time.get(prekey_id)
        return None if found is None else found[0]

    def take_id(self) -> int:
        i = self.next_id
        self.next_id += 1
        return i

    def __repr__(self) -> str:
        return f"PrekeyStock(one_time={len(self.one_time)}, kem={len(self.kem)})"

    # -- persistence (versioned bytes; holds secrets: store it encrypted at rest) ---------

    def encode(self) -> bytes:
        w = Writer().u8(STATE_VERSION).u32(self.next_id).u32(self.current_signed)
        w.u32(self.last_resort_kem).u16(len(self.signed))
        for secret, spk in self.signed.values():
            w.fixed(secret.export_secret(), 32)
            spk.write(w)
        w.u16(len(self.kem))
        for ksecret, kpk in self.kem.values():
            w.fixed(ksecret.export_secret(), 64)
            kpk.write(w)
        w.u16(len(self.one_time))
        for osecret, opk in self.one_time.values():
            w.fixed(osecret.export_secret(), 32)
            opk.write(w)
        w.u16(len(self.handed_out))
        for i in sorted(self.handed_out):
            w.u32(i)
        return w.getvalue()

    @classmethod
    def decode(cls, data: bytes) -> PrekeyStock:
        r = Reader(data, "PrekeyStock")
        r.version(STATE_VERSION)
        stock = cls(next_id=r.u32("next_id"), current_signed=r.u32("current_signed"),
                    last_resort_kem=r.u32("last_resort_kem"))  # fmt: skip
        limit = 2 * MAX_ONE_TIME_PREKEYS + 64
        n = r.u16("signed_count")
        if n > limit:
            raise DecodeError("PrekeyStock: too many signed prekeys")
        for _ in range(n):
            secret = X25519PrivateKey.from_secret_bytes(r.fixed(32, "spk_secret"))
            spk = SignedPreKey.read(r)
            stock.signed[spk.id] = (secret, spk)
        n = r.u16("kem_count")
        if n > limit:
            raise DecodeError("PrekeyStock: too many KEM prekeys")
        for _ in range(n):
            ksecret = MlKem768PrivateKey.from_seed(r.fixed(64, "kem_seed"))
            kpk = KemPreKey.read(r)
            stock.kem[kpk.id] = (ksecret, kpk)
        n = r.u16("one_time_count")
        if n > limit:
            raise DecodeError("PrekeyStock: too many one-time prekeys")
        for _ in range(n):
            osecret = X25519PrivateKey.from_secret_bytes(r.fixed(32, "otk_secret"))
            opk = OneTimePreKey.read(r)
            stock.one_time[opk.id] = (osecret, opk)
        n = r.u16("handed_out_count")
        if n > limit:
            raise DecodeError("PrekeyStock: too many handed-out ids")
        stock.handed_out = {r.u32("handed_out") for _ in range(n)}
        r.finish()
        return stock


def encode_identity(ident: DeviceIdentity) -> bytes:
    """A device identity as versioned bytes (secrets: store encrypted at rest)."""
    w = Writer().u8(STATE_VERSION)
    ident.address.write(w)
    return w.fixed(ident.dh.export_secret(), 32).fixed(ident.sign.export_secret(), 32).getvalue()


def decode_identity(data: bytes) -> DeviceIdentity:
    r = Reader(data, "DeviceIdentity")
    r.version(STATE_VERSION)
    address = Address.read(r)
    dh = X25519PrivateKey.from_secret_bytes(r.fixed(32, "dh"))
    sign = Ed25519PrivateKey.from_secret_bytes(r.fixed(32, "sign"))
    r.finish()
    return DeviceIdentity(address, dh, sign)


class Device:
    """One device of one account, holding its keys and its sessions in memory."""

    def __init__(
        self,
        ident: DeviceIdentity,
        rng: Rng,
        policy: EscrowPolicy | None = None,
        prekeys: PrekeyStock | None = None,
    ) -> None:
        self.identity = ident
        self.rng = rng
        self.policy = policy
        self.prekeys = prekeys or PrekeyStock()
        self.sessions: dict[Address, SessionRecord] = {}
        self._conversation_ids: dict[bytes, bytes] = {}

    @classmethod
    def create(
        cls,
        account: bytes,
        device_id: int,
        *,
        rng: Rng,
        now_ms: int = 0,
        policy: EscrowPolicy | None = None,
        one_time_prekeys: int = 10,
        kem_one_time_prekeys: int = 10,
    ) -> Device:
        del now_ms  # reserved: prekey rotation dates
        dev = cls(DeviceIdentity.generate(Address(account, device_id), rng), rng, policy)
        dev.rotate_signed_prekey()
        dev.add_one_time_prekeys(one_time_prekeys, kem_one_time_prekeys)
        return dev

    # ------------------------------------------------------------------ prekeys

    @property
    def address(self) -> Address:
        return self.identity.address

    def entry(self) -> DeviceEntry:
        return self.identity.entry()

    def rotate_signed_prekey(self) -> SignedPreKey:
        """A new signed prekey (old ones stay until their sessions no longer need them) and
        a new last-resort ML-KEM prekey."""
        stock = self.prekeys
        spk_id = stock.take_id()
        stock.signed[spk_id] = identity.make_signed_prekey(self.identity, spk_id, self.rng)
        stock.current_signed = spk_id
        kem_id = stock.take_id()
        stock.kem[kem_id] = identity.make_kem_prekey(
            self.identity, kem_id, self.rng, last_resort=True
        )
        stock.last_resort_kem = kem_id
        return stock.signed[spk_id][1]

    def add_one_time_prekeys(
        self, classical: int, kem: int
    ) -> tuple[list[OneTimePreKey], list[KemPreKey]]:
        stock = self.prekeys
        kem_count = sum(1 for _, k in stock.kem.values() if not k.last_resort)
        if len(stock.one_time) + classical > MAX_ONE_TIME_PREKEYS or (
            kem_count + kem > MAX_ONE_TIME_PREKEYS
        ):
            raise LocalError("too many one-time prekeys")
        new_otk: list[OneTimePreKey] = []
        new_kem: list[KemPreKey] = []
        for _ in range(classical):
            i = stock.take_id()
            stock.one_time[i] = identity.make_one_time_prekey(i, self.rng)
            new_otk.append(stock.one_time[i][1])
        for _ in range(kem):
            i = stock.take_id()
            stock.kem[i] = identity.make_kem_prekey(self.identity, i, self.rng, last_resort=False)
            new_kem.append(stock.kem[i][1])
        return new_otk, new_kem

    def prekey_bundle(self, *, with_one_time: bool = True) -> PreKeyBundle:
        """A bundle for one initiator: each one-time prekey is handed out once.

        (In a deployment the server hands them out; this serves tests and local use.)
        """
        stock = self.prekeys
        otk = None
        if with_one_time:
            for i, (_, pub) in stock.one_time.items():
                if i not in stock.handed_out:
                    stock.handed_out.add(i)
                    otk = pub
                    break
        kem = stock.kem[stock.last_resort_kem][1]
        for i, (_, kpub) in stock.kem.items():
            if not kpub.last_resort and i not in stock.handed_out:
                stock.handed_out.add(i)
                kem = kpub
                break
        return PreKeyBundle(
            self.address,
            self.identity.dh.public_key.raw,
            self.identity.sign.public_key.raw,
            stock.signed[stock.current_signed][1],
            kem,
            otk,
        )

    # ------------------------------------------------------------------ messages

    def has_session(self, peer: Address) -> bool:
        rec = self.sessions.get(peer)
        return rec is not None and rec.current is not None

    def start_session(self, bundle: PreKeyBundle, expected: DeviceEntry | None = None) -> None:
        rec = session.start(self.sessions.get(bundle.device), self.identity, bundle, self.rng,
                            expected)  # fmt: skip
        self.sessions[bundle.device] = rec

    def new_outgoing(
        self,
        body: bytes,
        now_ms: int,
        conversation_id: bytes,
        message_id: bytes | None = None,
        franking_key: bytes | None = None,
        *,
        access_kind: AccessKind = AccessKind.CONTENT,
    ) -> Outgoing:
        if message_id is None or franking_key is None:
            fresh = self.rng.random_bytes(48)
            message_id = message_id if message_id is not None else fresh[:16]
            franking_key = franking_key if franking_key is not None else fresh[16:]
        return Outgoing(conversation_id, message_id, now_ms, franking_key, body, access_kind)

    def encrypt_outgoing(self, recipient: Address, msg: Outgoing) -> Envelope:
        rec = self.sessions.get(recipient)
        if rec is None:
            raise LocalError(f"no session with {recipient}: fetch its prekey bundle first")
        env, new = session.encrypt(rec, self.address, recipient, msg, self.policy)
        self.sessions[recipient] = new
        return env

    def encrypt(
        self,
        recipient: Address,
        body: bytes,
        *,
        now_ms: int,
        rng: Rng | None = None,
        bundle: PreKeyBundle | None = None,
        conversation_id: bytes | None = None,
        message_id: bytes | None = None,
        access_kind: AccessKind = AccessKind.CONTENT,
    ) -> Envelope:
        """Encrypt ``body`` for one device, starting a session from ``bundle`` if needed
        (``access_kind``: see :class:`~overt.protocol.session.Outgoing`)."""
        if rng is not None:
            self.rng = rng
        if bundle is not None and not self.has_session(recipient):
            self.start_session(bundle)
        cid = conversation_id or self._conversation_ids.get(recipient.account)
        if cid is None:
            cid = direct_conversation_id(self.address.account, recipient.account)
            self._conversation_ids[recipient.account] = cid
        msg = self.new_outgoing(body, now_ms, cid, message_id, access_kind=access_kind)
        return self.encrypt_outgoing(recipient, msg)

    def encrypt_fanout(
        self,
        recipients: Sequence[Address],
        body: bytes,
        *,
        now_ms: int,
        conversation_id: bytes,
        bundles: Mapping[Address, PreKeyBundle] | None = None,
        message_id: bytes | None = None,
        access_kind: AccessKind = AccessKind.CONTENT,
    ) -> tuple[Outgoing, list[Envelope]]:
        """One plaintext to many devices (a recipient's and our own other devices), every
        copy's access field under ``access_kind`` (key material: a body of keys)."""
        if len(recipients) > 2 * MAX_DEVICES_PER_ACCOUNT:
            raise LocalError("too many recipient devices")
        bundles = bundles or {}
        for r in recipients:
            if not self.has_session(r):
                b = bundles.get(r)
                if b is None:
                    raise LocalError(f"no session with {r} and no bundle for it")
                self.start_session(b)
        msg = self.new_outgoing(body, now_ms, conversation_id, message_id, access_kind=access_kind)
        return msg, [self.encrypt_outgoing(r, msg) for r in recipients if r != self.address]

    def decrypt(self, envelope: Envelope, now_ms: int | None = None) -> Received:
        """Check and decrypt one envelope; state changes only if every check passes."""
        del now_ms  # reserved: message expiry
        rec = self.sessions.get(envelope.sender)
        received, new = session.decrypt(
            rec, self.identity, self.prekeys, envelope, self.rng, self.policy
        )
        self.sessions[envelope.sender] = new
        if received.consumed_one_time is not None:
            self.prekeys.one_time.pop(received.consumed_one_time, None)
        if received.consumed_kem is not None:
            self.prekeys.kem.pop(received.consumed_kem, None)
        return received

    def __repr__(self) -> str:
        return f"Device({self.address}, sessions={len(self.sessions)})"
