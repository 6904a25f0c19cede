"""Message structures: everything Overt sends, signs or hashes, with its canonical encoding.

Each top-level structure begins with a one-byte version; decoders accept only the versions
they know, bound every length and refuse trailing bytes. Keys appear here as raw bytes of a
fixed length; :mod:`overt.protocol` turns them into key objects and checks signatures.

Presentation-language summary (lengths in bytes; ``<a..b>`` is a vector with a length prefix)::

    struct { opaque account<1..64>; uint32 device; } Address;
    struct { uint32 id; opaque key[32]; opaque sig[64]; } SignedPreKey;
    struct { uint32 id; opaque key[1184]; opaque sig[64]; bool last_resort; } KemPreKey;
    struct { uint32 id; opaque key[32]; } OneTimePreKey;
    struct { uint8 version = 1; Address device; opaque ik_dh[32]; opaque ik_sig[32];
             SignedPreKey spk; KemPreKey kem; optional<OneTimePreKey> opk; } PreKeyBundle;
    struct { opaque ik_dh[32]; opaque ik_sig[32]; opaque base_key[32]; uint32 spk_id;
             optional<uint32> opk_id; uint32 kem_id; opaque kem_ct[1088]; } PqxdhInit;
    struct { opaque dh[32]; uint32 pn; uint32 n; } RatchetHeader;
    struct { uint32 epoch; opaque r[32]; opaque c[32]; } AccessField;
    struct { uint8 version = 1; uint8 type; Address sender; Address recipient;
             uint64 timestamp_ms; opaque message_id[16]; opaque conversation_id[32];
             optional<PqxdhInit> init;         /* iff type == prekey */
             RatchetHeader header; opaque franking_commitment[32];
             optional<AccessField> access; opaque ciphertext<0..2^20>; } Envelope;
    struct { uint8 version = 1; opaque franking_key[32]; opaque body<0..2^20>; } Content;
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Self

from overt.errors import DecodeError
from overt.wire.codec import Reader, Writer

KEY_LEN = 32
SIG_LEN = 64
KEM_PUBLIC_LEN = 1184
KEM_CIPHERTEXT_LEN = 1088
MESSAGE_ID_LEN = 16
CONVERSATION_ID_LEN = 32
FRANKING_KEY_LEN = 32
COMMITMENT_LEN = 32
MAX_ACCOUNT_ID_LEN = 64
MAX_CIPHERTEXT_LEN = 1 << 20
MAX_BODY_LEN = MAX_CIPHERTEXT_LEN - 256
MAX_DEVICES = 64


@dataclass(frozen=True, slots=True, order=True)
class Address:
    """One device of one account."""

    account: bytes
    device: int

    def write(self, w: Writer) -> None:
        w.vec(self.account, 1, MAX_ACCOUNT_ID_LEN).u32(self.device)

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.vec(1, "account", MAX_ACCOUNT_ID_LEN, min_len=1), r.u32("device"))

    def encode(self) -> bytes:
        w = Writer()
        self.write(w)
        return w.getvalue()

    def __str__(self) -> str:
        return f"{self.account.hex()[:12]}.{self.device}"


# ----------------------------------------------------------------------------- prekeys


@dataclass(frozen=True, slots=True)
class SignedPreKey:
    id: int
    key: bytes
    signature: bytes

    def signed_part(self) -> bytes:
        return (
            Writer().raw(b"Overt_SignedPreKey_v1").u32(self.id).fixed(self.key, KEY_LEN).getvalue()
        )

    def write(self, w: Writer) -> None:
        w.u32(self.id).fixed(self.key, KEY_LEN).fixed(self.signature, SIG_LEN)

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.u32("spk.id"), r.fixed(KEY_LEN, "spk.key"), r.fixed(SIG_LEN, "spk.sig"))

    def encode(self) -> bytes:
        """Standalone encoding (as uploaded to the server)."""
        w = Writer()
        self.write(w)
        return w.getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = Reader(data, "SignedPreKey")
        out = cls.read(r)
        r.finish()
        return out


@dataclass(frozen=True, slots=True)
class KemPreKey:
    id: int
    key: bytes
    signature: bytes
    last_resort: bool

    def signed_part(self) -> bytes:
        w = Writer().raw(b"Overt_KemPreKey_v1").u32(self.id).fixed(self.key, KEM_PUBLIC_LEN)
        return w.boolean(self.last_resort).getvalue()

    def write(self, w: Writer) -> None:
        w.u32(self.id).fixed(self.key, KEM_PUBLIC_LEN).fixed(self.signature, SIG_LEN)
        w.boolean(self.last_resort)

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(
            r.u32("kem.id"),
            r.fixed(KEM_PUBLIC_LEN, "kem.key"),
            r.fixed(SIG_LEN, "kem.sig"),
            r.boolean("kem.last_resort"),
        )

    def encode(self) -> bytes:
        """Standalone encoding (as uploaded to the server)."""
        w = Writer()
        self.write(w)
        return w.getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = Reader(data, "KemPreKey")
        out = cls.read(r)
        r.finish()
        return out


@dataclass(frozen=True, slots=True)
class OneTimePreKey:
    id: int
    key: bytes

    def write(self, w: Writer) -> None:
        w.u32(self.id).fixed(self.key, KEY_LEN)

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.u32("opk.id"), r.fixed(KEY_LEN, "opk.key"))

    def encode(self) -> bytes:
        """Standalone encoding (as uploaded to the server)."""
        w = Writer()
        self.write(w)
        return w.getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = Reader(data, "OneTimePreKey")
        out = cls.read(r)
        r.finish()
        return out


@dataclass(frozen=True, slots=True)
class PreKeyBundle:
    """What a device publishes so that others can start sessions with it."""

    VERSION = 1

    device: Address
    identity_dh: bytes
    identity_sign: bytes
    signed_prekey: SignedPreKey
    kem_prekey: KemPreKey
    one_time_prekey: OneTimePreKey | None

    def encode(self) -> bytes:
        w = Writer().u8(self.VERSION)
        self.device.write(w)
        w.fixed(self.identity_dh, KEY_LEN).fixed(self.identity_sign, KEY_LEN)
        self.signed_prekey.write(w)
        self.kem_prekey.write(w)
        w.boolean(self.one_time_prekey is not None)
        if self.one_time_prekey is not None:
            self.one_time_prekey.write(w)
        return w.getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = Reader(data, "PreKeyBundle")
        r.version(cls.VERSION)
        out = cls(
            Address.read(r),
            r.fixed(KEY_LEN, "identity_dh"),
            r.fixed(KEY_LEN, "identity_sign"),
            SignedPreKey.read(r),
            KemPreKey.read(r),
            OneTimePreKey.read(r) if r.boolean("has_opk") else None,
        )
        r.finish()
        return out


# ----------------------------------------------------------------------------- devices


@dataclass(frozen=True, slots=True)
class DeviceEntry:
    device: int
    identity_dh: bytes
    identity_sign: bytes

    def write(self, w: Writer) -> None:
        w.u32(self.device).fixed(self.identity_dh, KEY_LEN).fixed(self.identity_sign, KEY_LEN)

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(
            r.u32("device"), r.fixed(KEY_LEN, "identity_dh"), r.fixed(KEY_LEN, "identity_sign")
        )


@dataclass(frozen=True, slots=True)
class DeviceList:
    """The devices of an account, as its account identity key signs them.

    ``serial`` increases with every change, so that an old list cannot be replayed as new.
    """

    VERSION = 1

    account: bytes
    account_key: bytes
    serial: int
    devices: tuple[DeviceEntry, ...]

    def encode(self) -> bytes:
        if len(self.devices) > MAX_DEVICES:
            raise ValueError("too many devices")
        ids = [d.device for d in self.devices]
        if ids != sorted(set(ids)):
            raise ValueError("devices must be sorted by id without repeats")
        w = Writer().u8(self.VERSION).vec(self.account, 1, MAX_ACCOUNT_ID_LEN)
        w.fixed(self.account_key, KEY_LEN).u64(self.serial).u8(len(self.devices))
        for d in self.devices:
            d.write(w)
        return w.getvalue()

    @classmethod
    def read(cls, r: Reader) -> Self:
        r.version(cls.VERSION)
        account = r.vec(1, "account", MAX_ACCOUNT_ID_LEN, min_len=1)
        key = r.fixed(KEY_LEN, "account_key")
        serial = r.u64("serial")
        n = r.u8("device_count")
        if n > MAX_DEVICES:
            raise DecodeError("DeviceList: too many devices")
        devices = tuple(DeviceEntry.read(r) for _ in range(n))
        ids = [d.device for d in devices]
        if ids != sorted(set(ids)):
            raise DecodeError("DeviceList: devices not sorted or repeated")
        return cls(account, key, serial, devices)

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = Reader(data, "DeviceList")
        out = cls.read(r)
        r.finish()
        return out

    def device(self, device_id: int) -> DeviceEntry | None:
        for d in self.devices:
            if d.device == device_id:
                return d
        return None


@dataclass(frozen=True, slots=True)
class SignedDeviceList:
    VERSION = 1

    device_list: DeviceList
    signature: bytes

    def signed_part(self) -> bytes:
        return b"Overt_DeviceList_v1" + self.device_list.encode()

    def encode(self) -> bytes:
        w = Writer().u8(self.VERSION).raw(self.device_list.encode())
        return w.fixed(self.signature, SIG_LEN).getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = Reader(data, "SignedDeviceList")
        r.version(cls.VERSION)
        out = cls(DeviceList.read(r), r.fixed(SIG_LEN, "signature"))
        r.finish()
        return out


# ----------------------------------------------------------------------------- envelope


class MessageType(IntEnum):
    PREKEY = 1
    MESSAGE = 2


@dataclass(frozen=True, slots=True)
class PqxdhInit:
    """The initiator's PQXDH values, carried by every message until the peer answers."""

    identity_dh: bytes
    identity_sign: bytes
    base_key: bytes
    signed_prekey_id: int
    one_time_prekey_id: int | None
    kem_prekey_id: int
    kem_ciphertext: bytes

    def encoded(self) -> bytes:
        """This structure's canonical bytes, computed once (it repeats in every message
        until the peer answers)."""
        cached = _INIT_CACHE.get(self)
        if cached is None:
            w = Writer()
            self.write(w)
            cached = w.getvalue()
            if len(_INIT_CACHE) >= _INIT_CACHE_MAX:
                _INIT_CACHE.clear()
            _INIT_CACHE[self] = cached
        return cached

    def write(self, w: Writer) -> None:
        w.fixed(self.identity_dh, KEY_LEN).fixed(self.identity_sign, KEY_LEN)
        w.fixed(self.base_key, KEY_LEN).u32(self.signed_prekey_id)
        w.boolean(self.one_time_prekey_id is not None)
        if self.one_time_prekey_id is not None:
            w.u32(self.one_time_prekey_id)
        w.u32(self.kem_prekey_id).fixed(self.kem_ciphertext, KEM_CIPHERTEXT_LEN)

    @classmethod
    def read(cls, r: Reader) -> Self:
        ik_dh = r.fixed(KEY_LEN, "init.identity_dh")
        ik_sig = r.fixed(KEY_LEN, "init.identity_sign")
        base = r.fixed(KEY_LEN, "init.base_key")
        spk = r.u32("init.spk_id")
        opk = r.u32("init.opk_id") if r.boolean("init.has_opk") else None
        return cls(
            ik_dh,
            ik_sig,
            base,
            spk,
            opk,
            r.u32("init.kem_id"),
            r.fixed(KEM_CIPHERTEXT_LEN, "init.kem_ct"),
        )


_INIT_CACHE: dict[PqxdhInit, bytes] = {}
_INIT_CACHE_MAX = 1024


@dataclass(frozen=True, slots=True)
class RatchetHeader:
    dh: bytes
    pn: int
    n: int

    def write(self, w: Writer) -> None:
        w.fixed(self.dh, KEY_LEN).u32(self.pn).u32(self.n)

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.fixed(KEY_LEN, "header.dh"), r.u32("header.pn"), r.u32("header.n"))


@dataclass(frozen=True, slots=True)
class AccessField:
    """DESIGN.md §6: ``R = r·G`` and ``C = k ⊕ KDF(r·Y_epoch, R, ctx)``."""

    epoch: int
    r: bytes
    c: bytes

    SIZE = 4 + KEY_LEN + KEY_LEN

    def write(self, w: Writer) -> None:
        w.u32(self.epoch).fixed(self.r, KEY_LEN).fixed(self.c, KEY_LEN)

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(
            r.u32("access.epoch"), r.fixed(KEY_LEN, "access.r"), r.fixed(KEY_LEN, "access.c")
        )


@dataclass(frozen=True, slots=True)
class Envelope:
    """One encrypted message for one recipient device.

    Every field but ``ciphertext`` is bound into the ciphertext's associated data through
    :meth:`header_bytes`, so none of them can be changed in transit.
    """

    VERSION = 1

    type: MessageType
    sender: Address
    recipient: Address
    timestamp_ms: int
    message_id: bytes
    conversation_id: bytes
    init: PqxdhInit | None
    header: RatchetHeader
    franking_commitment: bytes
    access: AccessField | None
    ciphertext: bytes
    #: The canonical header bytes, kept by :meth:`decode` and :meth:`with_ciphertext` so the
    #: AD is not re-encoded on the hot path (decoding is strict, so they are canonical).
    header_cache: bytes | None = field(default=None, compare=False, repr=False)

    def header_bytes(self) -> bytes:
        """The canonical encoding of everything outside the ciphertext (the AD)."""
        if self.header_cache is not None:
            return self.header_cache
        return encode_envelope_header(
            self.type, self.sender, self.recipient, self.timestamp_ms, self.message_id,
            self.conversation_id, self.init, self.header, self.franking_commitment, self.access,
        )  # fmt: skip

    def encode(self) -> bytes:
        w = Writer().raw(self.header_bytes())
        w.vec(self.ciphertext, 4, MAX_CIPHERTEXT_LEN)
        return w.getvalue()

    def with_ciphertext(self, ciphertext: bytes, header: bytes | None = None) -> Envelope:
        """The same envelope with ``ciphertext`` (``header``: its header bytes, if known)."""
        return Envelope(
            self.type, self.sender, self.recipient, self.timestamp_ms, self.message_id,
            self.conversation_id, self.init, self.header, self.franking_commitment, self.access,
            ciphertext, header if header is not None else self.header_cache,
        )  # fmt: skip

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = Reader(data, "Envelope")
        r.version(cls.VERSION)
        t = r.u8("type")
        try:
            mtype = MessageType(t)
        except ValueError:
            raise DecodeError(f"Envelope: unknown message type {t}") from None
        sender = Address.read(r)
        recipient = Address.read(r)
        ts = r.u64("timestamp_ms")
        mid = r.fixed(MESSAGE_ID_LEN, "message_id")
        cid = r.fixed(CONVERSATION_ID_LEN, "conversation_id")
        init = PqxdhInit.read(r) if mtype is MessageType.PREKEY else None
        header = RatchetHeader.read(r)
        commitment = r.fixed(COMMITMENT_LEN, "franking_commitment")
        access = AccessField.read(r) if r.boolean("has_access") else None
        header_end = r.position
        ct = r.vec(4, "ciphertext", MAX_CIPHERTEXT_LEN)
        r.finish()
        return cls(
            mtype, sender, recipient, ts, mid, cid, init, header, commitment, access, ct,
            bytes(data[:header_end]),
        )  # fmt: skip


def _address(a: Address) -> bytes:
    n = len(a.account)
    if not 0 < n <= MAX_ACCOUNT_ID_LEN:
        raise ValueError("account id must be 1..64 bytes")
    return _U8[n] + a.account + _U32.pack(a.device)


def encode_envelope_header(
    mtype: MessageType,
    sender: Address,
    recipient: Address,
    timestamp_ms: int,
    message_id: bytes,
    conversation_id: bytes,
    init: PqxdhInit | None,
    header: RatchetHeader,
    franking_commitment: bytes,
    access: AccessField | None,
) -> bytes:
    """The canonical header of an :class:`Envelope` (everything but the ciphertext).

    Written out by hand rather than through :class:`Writer` because it runs for every message
    sent and received; ``tests/wire`` checks that the strict decoder reads back exactly it.
    """
    if (mtype is MessageType.PREKEY) != (init is not None):
        raise ValueError("a PREKEY envelope carries PQXDH values, and only it does")
    if (
        len(message_id) != MESSAGE_ID_LEN
        or len(conversation_id) != CONVERSATION_ID_LEN
        or len(header.dh) != KEY_LEN
        or len(franking_commitment) != COMMITMENT_LEN
    ):
        raise ValueError("envelope field of the wrong length")
    parts = [
        _U8[Envelope.VERSION] + _U8[mtype],
        _address(sender),
        _address(recipient),
        _U64.pack(timestamp_ms),
        message_id,
        conversation_id,
    ]
    if init is not None:
        parts.append(init.encoded())
    parts.append(header.dh + _U32U32.pack(header.pn, header.n))
    parts.append(franking_commitment)
    if access is None:
        parts.append(b"\x00")
    else:
        if len(access.r) != KEY_LEN or len(access.c) != KEY_LEN:
            raise ValueError("access field of the wrong length")
        parts.append(b"\x01" + _U32.pack(access.epoch) + access.r + access.c)
    return b"".join(parts)


_U8 = [bytes((i,)) for i in range(256)]
_U32 = struct.Struct(">I")
_U32U32 = struct.Struct(">II")
_U64 = struct.Struct(">Q")


@dataclass(frozen=True, slots=True)
class Content:
    """The plaintext inside an envelope: the franking key and the application body."""

    VERSION = 1

    franking_key: bytes
    body: bytes

    def encode(self) -> bytes:
        if len(self.franking_key) != FRANKING_KEY_LEN or len(self.body) > MAX_BODY_LEN:
            raise ValueError("content field of the wrong length")
        return _U8[self.VERSION] + self.franking_key + _U32.pack(len(self.body)) + self.body

    @classmethod
    def decode(cls, data: bytes) -> Self:
        head = 1 + FRANKING_KEY_LEN + 4
        if len(data) < head:
            raise DecodeError("Content: truncated")
        if data[0] != cls.VERSION:
            raise DecodeError(f"Content: unknown version {data[0]}")
        (n,) = _U32.unpack_from(data, 1 + FRANKING_KEY_LEN)
        if n > MAX_BODY_LEN:
            raise DecodeError("Content: body length outside bounds")
        if len(data) != head + n:
            raise DecodeError("Content: truncated" if len(data) < head + n else
                              "Content: trailing bytes")  # fmt: skip
        return cls(bytes(data[1:33]), bytes(data[head:]))
