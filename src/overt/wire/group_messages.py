"""Group structures (Sender Keys): what a group sends, signs or hashes, with its canonical encoding.

Each top-level structure begins with a one-byte version; decoders accept only the versions
they know, bound every length and count, insist on sorted lists without repeats (so there is
one encoding of every member set) and refuse trailing bytes. Keys appear as raw bytes of a fixed
length; :mod:`overt.protocol.groups` turns them into key objects and checks signatures.

Presentation-language summary (lengths in bytes; ``<a..b>`` is a vector with a length prefix)::

    struct { opaque account<1..64>; uint8 n; uint32 devices[n]; } GroupMember;
                                      /* 1..64 device ids, strictly increasing */
    struct { uint8 version = 1; opaque group_id[32]; uint32 key_id;
             uint64 membership_version; uint32 iteration; opaque chain_key[32];
             opaque signature_key[32]; } SenderKeyDistribution;
    struct { uint8 version = 1; opaque group_id[32]; uint64 membership_version;
             opaque parent[32];       /* member-set hash of the view it replaces; 0^32 first */
             opaque name<0..255>;     /* UTF-8 */
             opaque signer<1..64>;
             uint16 n_admins; opaque admins<1..64>[n_admins];   /* strictly increasing */
             uint16 n_members; GroupMember members[n_members];  /* by account, increasing */
             opaque signature[64]; } MembershipUpdate;
    struct { uint8 version = 1; opaque group_id[32]; Address sender; uint32 key_id;
             uint32 iteration; uint64 timestamp_ms; opaque message_id[16];
             uint64 membership_version; opaque member_set_hash[32];
             opaque franking_commitment[32]; optional<AccessField> access;
             opaque ciphertext<0..2^20>; opaque signature[64]; } GroupMessage;

This module never sees keys in use, sockets or storage: bytes in, values out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Self, TypeVar

from overt.errors import DecodeError
from overt.wire.codec import Reader, Writer
from overt.wire.messages import (
    COMMITMENT_LEN,
    KEY_LEN,
    MAX_ACCOUNT_ID_LEN,
    MAX_CIPHERTEXT_LEN,
    MAX_DEVICES,
    MESSAGE_ID_LEN,
    SIG_LEN,
    AccessField,
    Address,
)

GROUP_ID_LEN = 32
CHAIN_KEY_LEN = 32
MEMBER_SET_HASH_LEN = 32
#: Encoding bounds; :mod:`overt.protocol.limits` names the same values as protocol bounds.
MAX_GROUP_MEMBERS = 1024
MAX_GROUP_DEVICES = 8192
MAX_GROUP_NAME_LEN = 255


_T = TypeVar("_T", bytes, int)


def _increasing(items: Sequence[_T]) -> bool:
    """Strictly increasing: sorted and without repeats."""
    return all(a < b for a, b in pairwise(items))


def _account(r: Reader, what: str) -> bytes:
    return r.vec(1, what, MAX_ACCOUNT_ID_LEN, min_len=1)


# ----------------------------------------------------------------------------- members


@dataclass(frozen=True, slots=True)
class GroupMember:
    """One account in a group and the device ids of it that read the group."""

    account: bytes
    devices: tuple[int, ...]

    def check(self) -> None:
        if not 0 < len(self.account) <= MAX_ACCOUNT_ID_LEN:
            raise ValueError("account id must be 1..64 bytes")
        if not 0 < len(self.devices) <= MAX_DEVICES:
            raise ValueError("a group member lists 1..64 devices")
        if not _increasing(self.devices):
            raise ValueError("device ids must be strictly increasing")

    def write(self, w: Writer) -> None:
        self.check()
        w.vec(self.account, 1, MAX_ACCOUNT_ID_LEN).u8(len(self.devices))
        for d in self.devices:
            w.u32(d)

    @classmethod
    def read(cls, r: Reader) -> Self:
        account = _account(r, "member.account")
        n = r.u8("member.device_count")
        if not 0 < n <= MAX_DEVICES:
            raise DecodeError(f"{r.what}: a member lists 1..{MAX_DEVICES} devices")
        devices = tuple(r.u32("member.device") for _ in range(n))
        if not _increasing(devices):
            raise DecodeError(f"{r.what}: device ids not strictly increasing")
        return cls(account, devices)

    def addresses(self) -> tuple[Address, ...]:
        return tuple(Address(self.account, d) for d in self.devices)


def check_member_list(members: tuple[GroupMember, ...], admins: tuple[bytes, ...]) -> None:
    """Raise :class:`ValueError` unless the lists are canonical (sorted, no repeats, bounded)
    and every admin is a member."""
    if not 0 < len(members) <= MAX_GROUP_MEMBERS:
        raise ValueError(f"a group has 1..{MAX_GROUP_MEMBERS} members")
    for m in members:
        m.check()
    accounts = [m.account for m in members]
    if not _increasing(accounts):
        raise ValueError("members must be sorted by account without repeats")
    if sum(len(m.devices) for m in members) > MAX_GROUP_DEVICES:
        raise ValueError(f"a group has at most {MAX_GROUP_DEVICES} devices")
    if not admins or not _increasing(admins):
        raise ValueError("admins must be non-empty, sorted and without repeats")
    if not set(admins) <= set(accounts):
        raise ValueError("every admin must be a member")


# ----------------------------------------------------------------------------- distribution


@dataclass(frozen=True, slots=True)
class SenderKeyDistribution:
    """A sender's chain key at ``iteration`` and its signature public key, for one key id.

    It travels as the body of an ordinary one-to-one message over the pairwise session with
    each member device, so it is confidential and authenticated as coming from that session's
    peer. ``membership_version`` is the group view the key was created for: a receiver tells a
    key made before the last rekey from a new one whatever the order of arrival.
    """

    VERSION = 1

    group_id: bytes
    key_id: int
    membership_version: int
    iteration: int
    chain_key: bytes = field(repr=False)
    signature_key: bytes

    def encode(self) -> bytes:
        w = Writer().u8(self.VERSION).fixed(self.group_id, GROUP_ID_LEN).u32(self.key_id)
        w.u64(self.membership_version).u32(self.iteration)
        w.fixed(self.chain_key, CHAIN_KEY_LEN).fixed(self.signature_key, KEY_LEN)
        return w.getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = Reader(data, "SenderKeyDistribution")
        r.version(cls.VERSION)
        out = cls(
            r.fixed(GROUP_ID_LEN, "group_id"),
            r.u32("key_id"),
            r.u64("membership_version"),
            r.u32("iteration"),
            r.fixed(CHAIN_KEY_LEN, "chain_key"),
            r.fixed(KEY_LEN, "signature_key"),
        )
        r.finish()
        return out

    def __repr__(self) -> str:
        return (
            f"SenderKeyDistribution(key_id={self.key_id}, v={self.membership_version}, "
            f"iteration={self.iteration}, <chain key redacted>)"
        )


# ----------------------------------------------------------------------------- membership


@dataclass(frozen=True, slots=True)
class MembershipUpdate:
    """A new view of a group (version + 1), signed by an admin's account identity key.

    ``parent`` is the member-set hash of the view it replaces (zero bytes for the first), so an
    update applies only on top of the exact view its signer saw: two admins racing to make
    version v + 1 cannot leave members silently on different views with the same version.
    """

    VERSION = 1
    SIGNATURE_LABEL = b"Overt_GroupMembership_v1"

    group_id: bytes
    membership_version: int
    parent: bytes
    name: bytes
    signer: bytes
    admins: tuple[bytes, ...]
    members: tuple[GroupMember, ...]
    signature: bytes = bytes(SIG_LEN)

    def _write_body(self, w: Writer) -> None:
        check_member_list(self.members, self.admins)
        if len(self.name) > MAX_GROUP_NAME_LEN:
            raise ValueError("group name too long")
        self.name.decode("utf-8")  # UnicodeDecodeError is a ValueError
        w.u8(self.VERSION).fixed(self.group_id, GROUP_ID_LEN).u64(self.membership_version)
        w.fixed(self.parent, MEMBER_SET_HASH_LEN).vec(self.name, 1, MAX_GROUP_NAME_LEN)
        w.vec(self.signer, 1, MAX_ACCOUNT_ID_LEN).u16(len(self.admins))
        for a in self.admins:
            w.vec(a, 1, MAX_ACCOUNT_ID_LEN)
        w.u16(len(self.members))
        for m in self.members:
            m.write(w)

    def signed_part(self) -> bytes:
        """What the admin signs: a label and every field but the signature."""
        w = Writer().raw(self.SIGNATURE_LABEL)
        self._write_body(w)
        return w.getvalue()

    def encode(self) -> bytes:
        w = Writer()
        self._write_body(w)
        return w.fixed(self.signature, SIG_LEN).getvalue()

    def with_signature(self, signature: bytes) -> MembershipUpdate:
        return MembershipUpdate(
            self.group_id, self.membership_version, self.parent, self.name, self.signer,
            self.admins, self.members, signature,
        )  # fmt: skip

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = Reader(data, "MembershipUpdate")
        r.version(cls.VERSION)
        group_id = r.fixed(GROUP_ID_LEN, "group_id")
        version = r.u64("membership_version")
        parent = r.fixed(MEMBER_SET_HASH_LEN, "parent")
        name = r.vec(1, "name", MAX_GROUP_NAME_LEN)
        try:
            name.decode("utf-8")
        except UnicodeDecodeError:
            raise DecodeError("MembershipUpdate: name is not UTF-8") from None
        signer = _account(r, "signer")
        n_admins = r.u16("admin_count")
        if n_admins > MAX_GROUP_MEMBERS:
            raise DecodeError("MembershipUpdate: too many admins")
        admins = tuple(_account(r, "admin") for _ in range(n_admins))
        n_members = r.u16("member_count")
        if n_members > MAX_GROUP_MEMBERS:
            raise DecodeError("MembershipUpdate: too many members")
        members: list[GroupMember] = []
        total = 0
        for _ in range(n_members):
            m = GroupMember.read(r)
            total += len(m.devices)
            if total > MAX_GROUP_DEVICES:
                raise DecodeError("MembershipUpdate: too many devices")
            members.append(m)
        signature = r.fixed(SIG_LEN, "signature")
        r.finish()
        try:
            check_member_list(tuple(members), admins)
        except ValueError as exc:
            raise DecodeError(f"MembershipUpdate: {exc}") from None
        return cls(group_id, version, parent, name, signer, admins, tuple(members), signature)


# ----------------------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True)
class GroupMessage:
    """One encrypted group message: a single ciphertext that every member device reads.

    The header (every field but ciphertext and signature) is the AEAD's associated data; the
    sender's group signature key signs ``label ‖ header ‖ ciphertext``.
    """

    VERSION = 1
    SIGNATURE_LABEL = b"Overt_GroupMessage_v1"

    group_id: bytes
    sender: Address
    key_id: int
    iteration: int
    timestamp_ms: int
    message_id: bytes
    membership_version: int
    member_set_hash: bytes
    franking_commitment: bytes
    access: AccessField | None
    ciphertext: bytes = b""
    signature: bytes = bytes(SIG_LEN)
    #: The canonical header bytes, kept by :meth:`decode` so that the AD and the signed part
    #: are not re-encoded on the receiving path (decoding is strict, so they are canonical).
    header_cache: bytes | None = field(default=None, compare=False, repr=False)

    def header_bytes(self) -> bytes:
        """The canonical encoding of every field but the ciphertext and the signature."""
        if self.header_cache is not None:
            return self.header_cache
        if (
            len(self.group_id) != GROUP_ID_LEN
            or len(self.message_id) != MESSAGE_ID_LEN
            or len(self.member_set_hash) != MEMBER_SET_HASH_LEN
            or len(self.franking_commitment) != COMMITMENT_LEN
        ):
            raise ValueError("group message field of the wrong length")
        w = Writer().u8(self.VERSION).fixed(self.group_id, GROUP_ID_LEN)
        self.sender.write(w)
        w.u32(self.key_id).u32(self.iteration).u64(self.timestamp_ms)
        w.fixed(self.message_id, MESSAGE_ID_LEN).u64(self.membership_version)
        w.fixed(self.member_set_hash, MEMBER_SET_HASH_LEN)
        w.fixed(self.franking_commitment, COMMITMENT_LEN).boolean(self.access is not None)
        if self.access is not None:
            self.access.write(w)
        return w.getvalue()

    def _body(self) -> bytes:
        return (
            Writer().raw(self.header_bytes()).vec(self.ciphertext, 4, MAX_CIPHERTEXT_LEN).getvalue()
        )

    def signed_part(self) -> bytes:
        """What the sender's group signature key signs: a label, the header, the ciphertext."""
        return self.SIGNATURE_LABEL + self._body()

    def encode(self) -> bytes:
        return self._body() + _sig(self.signature)

    def with_ciphertext(self, ciphertext: bytes, header: bytes) -> GroupMessage:
        """The same message with ``ciphertext``; ``header`` is its canonical header."""
        return GroupMessage(
            self.group_id, self.sender, self.key_id, self.iteration, self.timestamp_ms,
            self.message_id, self.membership_version, self.member_set_hash,
            self.franking_commitment, self.access, ciphertext, self.signature, header,
        )  # fmt: skip

    def with_signature(self, signature: bytes) -> GroupMessage:
        return GroupMessage(
            self.group_id, self.sender, self.key_id, self.iteration, self.timestamp_ms,
            self.message_id, self.membership_version, self.member_set_hash,
            self.franking_commitment, self.access, self.ciphertext, signature, self.header_cache,
        )  # fmt: skip

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = Reader(data, "GroupMessage")
        r.version(cls.VERSION)
        group_id = r.fixed(GROUP_ID_LEN, "group_id")
        sender = Address.read(r)
        key_id = r.u32("key_id")
        iteration = r.u32("iteration")
        ts = r.u64("timestamp_ms")
        mid = r.fixed(MESSAGE_ID_LEN, "message_id")
        version = r.u64("membership_version")
        msh = r.fixed(MEMBER_SET_HASH_LEN, "member_set_hash")
        commitment = r.fixed(COMMITMENT_LEN, "franking_commitment")
        access = AccessField.read(r) if r.boolean("has_access") else None
        header_end = r.position
        ct = r.vec(4, "ciphertext", MAX_CIPHERTEXT_LEN)
        sig = r.fixed(SIG_LEN, "signature")
        r.finish()
        return cls(
            group_id, sender, key_id, iteration, ts, mid, version, msh, commitment, access, ct,
            sig, bytes(data[:header_end]),
        )  # fmt: skip

    def __repr__(self) -> str:
        return (
            f"GroupMessage(from={self.sender}, key_id={self.key_id}, it={self.iteration}, "
            f"id={self.message_id.hex()}, <{len(self.ciphertext)} bytes>)"
        )


def _sig(signature: bytes) -> bytes:
    if len(signature) != SIG_LEN:
        raise ValueError("signature must be 64 bytes")
    return signature


__all__ = [
    "CHAIN_KEY_LEN",
    "GROUP_ID_LEN",
    "MAX_GROUP_DEVICES",
    "MAX_GROUP_MEMBERS",
    "MAX_GROUP_NAME_LEN",
    "MEMBER_SET_HASH_LEN",
    "GroupMember",
    "GroupMessage",
    "MembershipUpdate",
    "SenderKeyDistribution",
    "check_member_list",
]
