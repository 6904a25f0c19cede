"""Groups with Sender Keys, as WhatsApp and Messenger deploy them, as pure functions.

Each member device has, per group, a **sender key**: a chain key stepped with HMAC-SHA256
(``MK = HMAC(CK, 0x01)``, ``CK' = HMAC(CK, 0x02)``), an iteration counter and an Ed25519
signature key pair. It hands the chain key (at its current iteration) and the signature public
key to every other member device in a :class:`SenderKeyDistribution`, the body of an ordinary
one-to-one message over the pairwise session. A group message is then one ciphertext for every
member: key-committing :func:`overt.crypto.seal` under the message key with the header as
associated data, signed by the sender key's signature key; the server fans it out.

Membership is a signed, versioned view (:class:`MembershipUpdate`, signed by an admin's account
key). Every message names the view it was sent under (version and member-set hash) and is
refused by a receiver whose view differs. When a change removes a device (a member, or one of a
member's devices), every remaining device makes a new sender key and distributes it to the new
member set only, and receivers refuse messages under keys made before that change: a removed
device reads nothing sent afterwards.

Every function takes immutable state and returns new state; :func:`group_decrypt` builds the
new :class:`GroupState` only after the signature, key commitment, franking commitment and access
field have all passed, so a failed decrypt changes nothing. Records serialize to versioned bytes
(:meth:`GroupState.encode`, :meth:`SenderKey.encode`), never pickle. Randomness comes only from
the :class:`Rng` passed in, time only as ``now_ms``; this module never sees sockets, storage or
clocks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from overt.crypto import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
    Rng,
    hmac_sha256,
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
    ProtocolViolation,
    UnknownSession,
    UntrustedIdentity,
)
from overt.protocol import access, franking
from overt.protocol.access import EscrowPolicy
from overt.protocol.identity import AccountIdentity
from overt.protocol.limits import (
    MAX_GROUP_DEVICES,
    MAX_GROUP_FORWARD_JUMP,
    MAX_GROUP_MEMBERS,
    MAX_GROUP_SKIPPED_KEYS,
    MAX_SENDER_KEY_STATES,
)
from overt.wire import Address, Content, Reader, Writer
from overt.wire.group_messages import (
    CHAIN_KEY_LEN,
    GROUP_ID_LEN,
    MAX_GROUP_NAME_LEN,
    GroupMember,
    GroupMessage,
    MembershipUpdate,
    SenderKeyDistribution,
    check_member_list,
)
from overt.wire.messages import MAX_ACCOUNT_ID_LEN, MAX_BODY_LEN, MESSAGE_ID_LEN

RECORD_VERSION = 1
_MK_BYTE = b"\x01"
_CK_BYTE = b"\x02"
#: Domain separation of group content keys from one-to-one ones inside :func:`seal`.
_SEAL_LABEL = b"/group"
_MEMBER_SET_LABEL = b"Overt_GroupMembers_v1"
_NO_PARENT = bytes(32)
_MAX_ITERATION = 2**32 - 1
_KEY_ID_LEN = 4


def _kdf(ck: bytes) -> tuple[bytes, bytes]:
    """Return ``(next chain key, message key)``."""
    return hmac_sha256(ck, _CK_BYTE), hmac_sha256(ck, _MK_BYTE)


# ----------------------------------------------------------------------------- membership


def member_set_hash(group_id: bytes, version: int, members: Iterable[GroupMember]) -> bytes:
    """SHA-256 over a label, the group id, the membership version and the member devices.

    The devices are listed as canonical :class:`Address` encodings sorted by (account, device),
    which is the order of a canonical member list.
    """
    addresses = [a for m in members for a in m.addresses()]
    w = Writer().raw(_MEMBER_SET_LABEL).fixed(group_id, GROUP_ID_LEN).u64(version)
    w.u32(len(addresses))
    for a in addresses:
        a.write(w)
    return sha256(w.getvalue())


@dataclass(frozen=True, slots=True)
class Membership:
    """One verified view of a group: who is in it, who administers it, under which version."""

    group_id: bytes
    version: int
    name: bytes
    admins: tuple[bytes, ...]
    members: tuple[GroupMember, ...]
    member_set_hash: bytes
    devices: frozenset[Address] = field(repr=False)

    @classmethod
    def build(
        cls,
        group_id: bytes,
        version: int,
        name: bytes,
        admins: tuple[bytes, ...],
        members: tuple[GroupMember, ...],
    ) -> Membership:
        """Validate (raising :class:`ValueError`) and compute the member-set hash."""
        if len(group_id) != GROUP_ID_LEN:
            raise ValueError("group id must be 32 bytes")
        if len(name) > MAX_GROUP_NAME_LEN:
            raise ValueError("group name too long")
        if not 0 < version < 2**64:
            raise ValueError("membership version out of range")
        check_member_list(members, admins)
        if len(members) > MAX_GROUP_MEMBERS:
            raise ValueError("too many members")
        devices = frozenset(a for m in members for a in m.addresses())
        if len(devices) > MAX_GROUP_DEVICES:
            raise ValueError("too many devices")
        msh = member_set_hash(group_id, version, members)
        return cls(group_id, version, name, admins, members, msh, devices)

    @classmethod
    def from_update(cls, update: MembershipUpdate) -> Membership:
        try:
            return cls.build(
                update.group_id,
                update.membership_version,
                update.name,
                update.admins,
                update.members,
            )
        except ValueError as exc:
            raise ProtocolViolation(f"membership update is not acceptable: {exc}") from None

    def member(self, account: bytes) -> GroupMember | None:
        for m in self.members:
            if m.account == account:
                return m
        return None

    def write(self, w: Writer) -> None:
        w.fixed(self.group_id, GROUP_ID_LEN).u64(self.version).vec(self.name, 1)
        w.u16(len(self.admins))
        for a in self.admins:
            w.vec(a, 1, MAX_ACCOUNT_ID_LEN)
        w.u16(len(self.members))
        for m in self.members:
            m.write(w)

    @classmethod
    def read(cls, r: Reader) -> Membership:
        group_id = r.fixed(GROUP_ID_LEN, "group_id")
        version = r.u64("membership_version")
        name = r.vec(1, "name", MAX_GROUP_NAME_LEN)
        n = r.u16("admin_count")
        if n > MAX_GROUP_MEMBERS:
            raise DecodeError(f"{r.what}: too many admins")
        admins = tuple(r.vec(1, "admin", MAX_ACCOUNT_ID_LEN, min_len=1) for _ in range(n))
        n = r.u16("member_count")
        if n > MAX_GROUP_MEMBERS:
            raise DecodeError(f"{r.what}: too many members")
        members = tuple(GroupMember.read(r) for _ in range(n))
        try:
            return cls.build(group_id, version, name, admins, members)
        except ValueError as exc:
            raise DecodeError(f"{r.what}: {exc}") from None


def _devices(view: GroupState | Membership | MembershipUpdate) -> frozenset[Address]:
    if isinstance(view, GroupState):
        return view.membership.devices
    if isinstance(view, Membership):
        return view.devices
    return frozenset(a for m in view.members for a in m.addresses())


def needs_rekey(
    old: GroupState | Membership | MembershipUpdate, new: GroupState | Membership | MembershipUpdate
) -> bool:
    """Whether going from ``old`` to ``new`` requires every remaining device to make and
    distribute a new sender key: true when any device leaves (a member is removed, or a
    member's device is removed or replaced by a new one).

    Additions alone do not: a new device receives each sender's chain key at its current
    iteration and cannot step it backwards, so it reads nothing sent before it joined.
    """
    return not _devices(old) <= _devices(new)


def added_devices(
    old: GroupState | Membership | MembershipUpdate, new: GroupState | Membership | MembershipUpdate
) -> tuple[Address, ...]:
    """Devices in ``new`` but not in ``old`` (sorted): where a still valid sender key goes,
    as :meth:`SenderKey.distribution` at its current iteration."""
    return tuple(sorted(_devices(new) - _devices(old)))


def _members_from(members: Mapping[bytes, Iterable[int]]) -> tuple[GroupMember, ...]:
    return tuple(
        GroupMember(account, tuple(sorted(set(devices))))
        for account, devices in sorted(members.items())
    )


def _verify_update(update: MembershipUpdate, admin_keys: Mapping[bytes, Ed25519PublicKey]) -> None:
    key = admin_keys.get(update.signer)
    if key is None:
        raise UntrustedIdentity("no verified account key for the admin who signed the update")
    try:
        signed = update.signed_part()
    except ValueError:
        raise ProtocolViolation("membership update is not canonical") from None
    key.verify(update.signature, signed)


def _sign_update(admin: AccountIdentity, update: MembershipUpdate) -> MembershipUpdate:
    try:
        signed = update.signed_part()
    except ValueError as exc:
        raise LocalError(f"membership update is not acceptable: {exc}") from None
    return update.with_signature(admin.key.sign(signed))


# ----------------------------------------------------------------------------- sender keys


@dataclass(frozen=True, slots=True, eq=False)
class SenderKey:
    """This device's own sender key in one group: what it encrypts and signs with.

    ``membership_version`` is the view it was made for; after a change that requires a rekey
    it can no longer be used (:func:`group_encrypt` refuses it).
    """

    group_id: bytes
    key_id: int
    membership_version: int
    iteration: int
    chain_key: bytes
    signing_key: Ed25519PrivateKey

    def distribution(self) -> SenderKeyDistribution:
        """The distribution message for this key at its current iteration (for every member
        device when the key is new, and for devices added later)."""
        if self.iteration > _MAX_ITERATION:
            raise LocalError("sender key exhausted: create a new one")
        return SenderKeyDistribution(
            self.group_id, self.key_id, self.membership_version, self.iteration,
            self.chain_key, self.signing_key.public_key.raw,
        )  # fmt: skip

    def encode(self) -> bytes:
        """Versioned bytes (secrets: store encrypted at rest)."""
        w = Writer().u8(RECORD_VERSION).fixed(self.group_id, GROUP_ID_LEN).u32(self.key_id)
        w.u64(self.membership_version).u64(self.iteration).fixed(self.chain_key, CHAIN_KEY_LEN)
        return w.fixed(self.signing_key.export_secret(), 32).getvalue()

    @classmethod
    def decode(cls, data: bytes) -> SenderKey:
        r = Reader(data, "SenderKey")
        r.version(RECORD_VERSION)
        group_id = r.fixed(GROUP_ID_LEN, "group_id")
        key_id, version, iteration = r.u32("key_id"), r.u64("version"), r.u64("iteration")
        if iteration > _MAX_ITERATION + 1:
            raise DecodeError("SenderKey: iteration out of range")
        ck = r.fixed(CHAIN_KEY_LEN, "chain_key")
        signing = Ed25519PrivateKey.from_secret_bytes(r.fixed(32, "signing_key"))
        r.finish()
        return cls(group_id, key_id, version, iteration, ck, signing)

    def __repr__(self) -> str:
        return (
            f"SenderKey(key_id={self.key_id}, v={self.membership_version}, "
            f"iteration={self.iteration}, <keys redacted>)"
        )


class ReceiverKey(NamedTuple):
    """Another device's sender key as this device holds it: the chain at ``iteration`` (the
    next one expected) and keys skipped on the way. ``skipped`` is never mutated in place and
    keeps ascending iteration order (so the first entry is the oldest)."""

    key_id: int
    membership_version: int
    signature_key: Ed25519PublicKey
    iteration: int
    chain_key: bytes
    skipped: Mapping[int, bytes]

    def __repr__(self) -> str:
        return (
            f"ReceiverKey(key_id={self.key_id}, v={self.membership_version}, "
            f"iteration={self.iteration}, skipped={len(self.skipped)}, <keys redacted>)"
        )


def _step_receiver(rk: ReceiverKey, iteration: int) -> tuple[ReceiverKey, bytes]:
    """The message key for ``iteration`` and the state after using it, or raise.

    A jump beyond :data:`MAX_GROUP_FORWARD_JUMP` is refused before any key is derived.
    """
    if iteration < rk.iteration:
        mk = rk.skipped.get(iteration)
        if mk is None:
            raise DuplicateMessage("message already received")
        skipped = dict(rk.skipped)
        del skipped[iteration]
        return rk._replace(skipped=skipped), mk
    if iteration - rk.iteration > MAX_GROUP_FORWARD_JUMP:
        raise LimitExceeded("sender key iteration jumps too far ahead")
    ck = rk.chain_key
    new_skipped = rk.skipped
    if iteration > rk.iteration:
        skipped = dict(rk.skipped)
        for i in range(rk.iteration, iteration):
            ck, skipped[i] = _kdf(ck)
        if len(skipped) > MAX_GROUP_SKIPPED_KEYS:  # the oldest go first
            skipped = dict(list(skipped.items())[-MAX_GROUP_SKIPPED_KEYS:])
        new_skipped = skipped
    ck, mk = _kdf(ck)
    return rk._replace(iteration=iteration + 1, chain_key=ck, skipped=new_skipped), mk


# ----------------------------------------------------------------------------- group state


@dataclass(frozen=True, slots=True, eq=False)
class GroupState:
    """One device's state in one group: its verified view and the other devices' sender keys.

    ``rekey_version`` is the membership version of the last change that required a rekey;
    sender keys made for an earlier view are refused. ``receivers`` is never mutated in place.
    """

    own: Address
    membership: Membership
    rekey_version: int = 0
    receivers: Mapping[Address, tuple[ReceiverKey, ...]] = field(default_factory=dict)

    @property
    def group_id(self) -> bytes:
        return self.membership.group_id

    @property
    def version(self) -> int:
        return self.membership.version

    @property
    def member_set_hash(self) -> bytes:
        return self.membership.member_set_hash

    @property
    def is_member(self) -> bool:
        return self.own in self.membership.devices

    def distribution_targets(self) -> tuple[Address, ...]:
        """Every member device but this one: where a new sender key must go (sorted)."""
        return tuple(sorted(a for a in self.membership.devices if a != self.own))

    def receiver_keys(self, sender: Address) -> tuple[ReceiverKey, ...]:
        return self.receivers.get(sender, ())

    def _with(
        self, receivers: Mapping[Address, tuple[ReceiverKey, ...]] | None = None
    ) -> GroupState:
        return GroupState(
            self.own,
            self.membership,
            self.rekey_version,
            self.receivers if receivers is None else receivers,
        )

    # -- persistence (versioned bytes; holds secrets: store it encrypted at rest) ---------

    def encode(self) -> bytes:
        w = Writer().u8(RECORD_VERSION)
        self.own.write(w)
        w.u64(self.rekey_version)
        self.membership.write(w)
        w.u16(len(self.receivers))
        for sender in sorted(self.receivers):
            sender.write(w)
            states = self.receivers[sender]
            w.u8(len(states))
            for rk in states:
                w.u32(rk.key_id).u64(rk.membership_version).fixed(rk.signature_key.raw, 32)
                w.u64(rk.iteration).fixed(rk.chain_key, CHAIN_KEY_LEN).u16(len(rk.skipped))
                for i, mk in rk.skipped.items():
                    w.u32(i).fixed(mk, 32)
        return w.getvalue()

    @classmethod
    def decode(cls, data: bytes) -> GroupState:
        r = Reader(data, "GroupState")
        r.version(RECORD_VERSION)
        own = Address.read(r)
        rekey_version = r.u64("rekey_version")
        membership = Membership.read(r)
        n = r.u16("receiver_count")
        if n > MAX_GROUP_DEVICES:
            raise DecodeError("GroupState: too many receivers")
        receivers: dict[Address, tuple[ReceiverKey, ...]] = {}
        previous: Address | None = None
        for _ in range(n):
            sender = Address.read(r)
            if (previous is not None and sender <= previous) or sender == own:
                raise DecodeError("GroupState: receivers not sorted, repeated or own")
            if sender not in membership.devices:
                raise DecodeError("GroupState: sender key of a non-member")
            previous = sender
            m = r.u8("state_count")
            if not 0 < m <= MAX_SENDER_KEY_STATES:
                raise DecodeError("GroupState: sender key state count out of bounds")
            receivers[sender] = tuple(_read_receiver_key(r) for _ in range(m))
        r.finish()
        return cls(own, membership, rekey_version, receivers)

    def __repr__(self) -> str:
        return (
            f"GroupState({self.own}, group={self.group_id[:4].hex()}, v={self.version}, "
            f"devices={len(self.membership.devices)}, <keys redacted>)"
        )


def _read_receiver_key(r: Reader) -> ReceiverKey:
    key_id, version = r.u32("key_id"), r.u64("membership_version")
    sig = Ed25519PublicKey.from_bytes(r.fixed(32, "signature_key"))
    iteration = r.u64("iteration")
    if iteration > _MAX_ITERATION + 1:
        raise DecodeError("GroupState: iteration out of range")
    ck = r.fixed(CHAIN_KEY_LEN, "chain_key")
    n = r.u16("skipped_count")
    if n > MAX_GROUP_SKIPPED_KEYS:
        raise DecodeError("GroupState: too many skipped keys")
    skipped: dict[int, bytes] = {}
    last = -1
    for _ in range(n):
        i = r.u32("skipped.iteration")
        if not last < i < iteration:
            raise DecodeError("GroupState: skipped keys out of order")
        skipped[i] = r.fixed(32, "skipped.key")
        last = i
    return ReceiverKey(key_id, version, sig, iteration, ck, skipped)


# ----------------------------------------------------------------------------- lifecycle


def create_group(
    creator: AccountIdentity,
    own: Address,
    name: bytes,
    members: Mapping[bytes, Iterable[int]],
    rng: Rng,
    admins: Iterable[bytes] | None = None,
) -> tuple[GroupState, MembershipUpdate]:
    """A new group (version 1, random id) and its first update, signed by ``creator``.

    The update goes to every member device (over the pairwise sessions); each joins with
    :func:`join_group`. ``admins`` defaults to the creator alone.
    """
    if own.account != creator.account:
        raise LocalError("the creating device must belong to the creator's account")
    admin_list = tuple(sorted(set(admins if admins is not None else (creator.account,))))
    if creator.account not in admin_list:
        raise LocalError("the creator must be an admin of the group it creates")
    update = MembershipUpdate(
        rng.random_bytes(GROUP_ID_LEN), 1, _NO_PARENT, name, creator.account, admin_list,
        _members_from(members),
    )  # fmt: skip
    update = _sign_update(creator, update)
    return join_group(own, update, {creator.account: creator.public_key}), update


def propose_membership(
    state: GroupState,
    admin: AccountIdentity,
    members: Mapping[bytes, Iterable[int]],
    *,
    name: bytes | None = None,
    admins: Iterable[bytes] | None = None,
) -> MembershipUpdate:
    """The next view (version + 1) on top of ``state``, signed by ``admin``.

    Every device applies it with :func:`apply_membership`, the signer's own included.
    """
    m = state.membership
    if admin.account not in m.admins:
        raise LocalError("only an admin of the group can change its membership")
    update = MembershipUpdate(
        m.group_id, m.version + 1, m.member_set_hash, m.name if name is None else name,
        admin.account, m.admins if admins is None else tuple(sorted(set(admins))),
        _members_from(members),
    )  # fmt: skip
    return _sign_update(admin, update)


def join_group(
    own: Address, update: MembershipUpdate, admin_keys: Mapping[bytes, Ed25519PublicKey]
) -> GroupState:
    """Enter a group from the update that created it or added this device.

    ``admin_keys`` maps account ids to account identity keys the caller has verified (key
    transparency). A joining device has no history to check the update against, so it trusts
    that the signer, an admin of the new view, may add it; its view must then equal the other
    members' (same member-set hash) for any message to pass.
    """
    if update.membership_version == 0 or (
        update.membership_version == 1 and update.parent != _NO_PARENT
    ):
        raise ProtocolViolation("membership update with an invalid version or parent")
    if update.signer not in update.admins:
        raise ProtocolViolation("membership update signed by an account that is not an admin")
    _verify_update(update, admin_keys)
    membership = Membership.from_update(update)
    if own not in membership.devices:
        raise ProtocolViolation("this device is not a member of the group")
    return GroupState(own, membership, 0, {})


def apply_membership(
    state: GroupState, update: MembershipUpdate, admin_keys: Mapping[bytes, Ed25519PublicKey]
) -> GroupState:
    """Verify ``update`` against the current view and return the state under the new one.

    Refuses (typed errors, state unchanged) an update for another group, an old version
    (:class:`DuplicateMessage`), a version gap or one made on another view
    (:class:`ProtocolViolation`), a signer who is not an admin of the current view, an unknown
    signer key (:class:`UntrustedIdentity`) and a bad signature (:class:`InvalidMessage`).

    When the change removes a device, ``rekey_version`` becomes the new version: the caller must
    then make a new sender key (:func:`create_sender_key`) and send it to
    :meth:`GroupState.distribution_targets`. Sender keys of departed devices, and those made
    before the rekey, are dropped.
    """
    m = state.membership
    if update.group_id != m.group_id:
        raise ProtocolViolation("membership update for another group")
    if update.membership_version <= m.version:
        raise DuplicateMessage("membership update already applied or superseded")
    if update.membership_version != m.version + 1:
        raise ProtocolViolation("membership update skips a version: apply the missing ones first")
    if update.parent != m.member_set_hash:
        raise ProtocolViolation("membership update was made for another view of the group")
    if update.signer not in m.admins:
        raise ProtocolViolation("membership update signed by an account that is not an admin")
    _verify_update(update, admin_keys)
    new = Membership.from_update(update)
    rekey_version = new.version if needs_rekey(m, new) else state.rekey_version
    receivers: dict[Address, tuple[ReceiverKey, ...]] = {}
    if state.own in new.devices:
        for sender, states in state.receivers.items():
            if sender in new.devices:
                kept = tuple(rk for rk in states if rk.membership_version >= rekey_version)
                if kept:
                    receivers[sender] = kept
    return GroupState(state.own, new, rekey_version, receivers)


def create_sender_key(group: GroupState, rng: Rng) -> tuple[SenderKey, SenderKeyDistribution]:
    """A fresh sender key for this device in ``group`` (random chain key, signature key and key
    id) and its distribution message, for :meth:`GroupState.distribution_targets`."""
    if not group.is_member:
        raise LocalError("this device is not a member of the group")
    key_id = int.from_bytes(rng.random_bytes(_KEY_ID_LEN), "big")
    chain_key = rng.random_bytes(CHAIN_KEY_LEN)
    key = SenderKey(
        group.group_id, key_id, group.version, 0, chain_key, Ed25519PrivateKey.generate(rng)
    )
    return key, key.distribution()


def process_distribution(
    state: GroupState, sender: Address, msg: SenderKeyDistribution | bytes
) -> GroupState:
    """Store another device's sender key.

    ``sender`` must be the authenticated peer of the pairwise session the distribution arrived
    on (:attr:`overt.protocol.Received.sender`), never a value read from the distribution: only
    then can no member install a key under another member's name.

    Like a message, a key made for a newer view than ours waits (the caller retries after
    applying the pending membership update), and one made before the last rekey is refused.
    The newest key goes first; at most :data:`MAX_SENDER_KEY_STATES` are kept per device. A key
    id already held with the same signature key is a no-op (the chain held may be further
    along); with another signature key it is refused.
    """
    dist = msg if isinstance(msg, SenderKeyDistribution) else SenderKeyDistribution.decode(msg)
    m = state.membership
    if dist.group_id != m.group_id:
        raise ProtocolViolation("sender key for another group")
    if not state.is_member:
        raise ProtocolViolation("this device is not a member of the group")
    if sender == state.own:
        raise ProtocolViolation("a device does not receive its own sender key")
    if dist.membership_version > m.version:
        raise ProtocolViolation(
            "sender key made for a newer view of the group: apply the pending update first"
        )
    if sender not in m.devices:
        raise ProtocolViolation("sender key from a device that is not a member in this view")
    if dist.membership_version < state.rekey_version:
        raise ProtocolViolation("sender key made before the last rekey")
    signature_key = Ed25519PublicKey.from_bytes(dist.signature_key)
    existing = state.receivers.get(sender, ())
    for rk in existing:
        if rk.key_id == dist.key_id:
            if rk.signature_key.raw != dist.signature_key:
                raise ProtocolViolation("another sender key under a key id already in use")
            return state
    fresh = ReceiverKey(
        dist.key_id, dist.membership_version, signature_key, dist.iteration, dist.chain_key, {}
    )
    receivers = dict(state.receivers)
    receivers[sender] = (fresh, *existing)[:MAX_SENDER_KEY_STATES]
    return state._with(receivers)


# ----------------------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True)
class GroupReceived:
    """A group message that passed every check."""

    message: GroupMessage
    body: bytes
    franking_key: bytes

    @property
    def sender(self) -> Address:
        return self.message.sender

    @property
    def message_id(self) -> bytes:
        return self.message.message_id

    @property
    def group_id(self) -> bytes:
        return self.message.group_id

    @property
    def timestamp_ms(self) -> int:
        return self.message.timestamp_ms

    def __repr__(self) -> str:
        return (
            f"GroupReceived(from={self.sender}, id={self.message_id.hex()}, "
            f"<{len(self.body)} bytes>)"
        )


def _access_context(msg: GroupMessage, epoch: int) -> bytes:
    return access.group_context(
        epoch, msg.sender, msg.group_id, msg.member_set_hash, msg.message_id, msg.timestamp_ms
    )


def group_encrypt(
    state: GroupState,
    sender_key: SenderKey,
    body: bytes,
    now_ms: int,
    rng: Rng,
    policy: EscrowPolicy | None,
    *,
    message_id: bytes | None = None,
) -> tuple[GroupMessage, SenderKey]:
    """Encrypt ``body`` once for every member device; return the message and the new key.

    The message names this device's current view (version and member-set hash), carries the
    franking commitment (context: sender, group id, message id, time) and, under policy
    ``escrow``, the access field for the message key; the header is the AEAD's associated data
    and the sender key's signature key signs header and ciphertext.
    """
    m = state.membership
    if not state.is_member:
        raise LocalError("this device is not a member of the group")
    if sender_key.group_id != m.group_id:
        raise LocalError("sender key of another group")
    if sender_key.membership_version < state.rekey_version:
        raise LocalError("membership changed: create and distribute a new sender key first")
    if sender_key.iteration > _MAX_ITERATION:
        raise LocalError("sender key exhausted: create a new one")
    if len(body) > MAX_BODY_LEN:
        raise LocalError("message body too long")
    fresh = rng.random_bytes(MESSAGE_ID_LEN + franking.FRANKING_KEY_LEN)
    mid = message_id if message_id is not None else fresh[:MESSAGE_ID_LEN]
    if len(mid) != MESSAGE_ID_LEN:
        raise LocalError("message id must be 16 bytes")
    fk = fresh[MESSAGE_ID_LEN:]
    next_ck, mk = _kdf(sender_key.chain_key)
    fctx = franking.context(state.own, m.group_id, mid, now_ms)
    af = None
    if policy is not None:
        actx = access.group_context(
            policy.epoch, state.own, m.group_id, m.member_set_hash, mid, now_ms
        )
        af = access.create(policy.epoch, policy.public_key, mk, actx)
    unsigned = GroupMessage(
        m.group_id, state.own, sender_key.key_id, sender_key.iteration, now_ms, mid, m.version,
        m.member_set_hash, franking.commit(fk, fctx, body), af,
    )  # fmt: skip
    header = unsigned.header_bytes()
    ct = seal(mk, Content(fk, body).encode(), header, _SEAL_LABEL)
    msg = unsigned.with_ciphertext(ct, header)
    msg = msg.with_signature(sender_key.signing_key.sign(msg.signed_part()))
    new_key = SenderKey(
        sender_key.group_id, sender_key.key_id, sender_key.membership_version,
        sender_key.iteration + 1, next_ck, sender_key.signing_key,
    )  # fmt: skip
    return msg, new_key


def group_decrypt(
    state: GroupState, data: bytes, policy: EscrowPolicy | None
) -> tuple[GroupReceived, GroupState]:
    """Check and decrypt one group message; return it and the state to store.

    In order: :class:`DecodeError` for bytes that are not a canonical message;
    :class:`ProtocolViolation` for another group, a view that differs from ours (newer: apply
    the pending membership update and retry; older or forked: a stale send) or a sender that is
    not a member device; :class:`UnknownSession` for a key id not (yet) distributed to us;
    :class:`InvalidMessage` for a bad signature; :class:`ProtocolViolation` for a key made
    before the last rekey; :class:`DuplicateMessage` for a message already read;
    :class:`LimitExceeded` for a jump beyond the bound; :class:`InvalidMessage` for anything
    that fails to open (key commitment, AEAD, content, franking commitment); and
    :class:`PolicyViolation` for an access field that breaks the policy. Nothing changes on
    any failure.
    """
    msg = GroupMessage.decode(data)
    m = state.membership
    if msg.group_id != m.group_id:
        raise ProtocolViolation("message for another group")
    if not state.is_member:
        raise ProtocolViolation("this device is not a member of the group")
    if msg.membership_version > m.version:
        raise ProtocolViolation(
            "message sent under a newer view of the group: apply the pending update first"
        )
    if msg.membership_version < m.version or msg.member_set_hash != m.member_set_hash:
        raise ProtocolViolation("message sent under a stale view of the group")
    if msg.sender not in m.devices:
        raise ProtocolViolation("message from a device that is not a member of the group")
    if msg.sender == state.own:
        raise ProtocolViolation("a device does not receive its own group messages")
    states = state.receivers.get(msg.sender, ())
    index = next((i for i, rk in enumerate(states) if rk.key_id == msg.key_id), None)
    if index is None:
        raise UnknownSession("no sender key with this id from this device")
    rk = states[index]
    rk.signature_key.verify(msg.signature, msg.signed_part())
    if rk.membership_version < state.rekey_version:
        raise ProtocolViolation("message under a sender key made before the last rekey")
    new_rk, mk = _step_receiver(rk, msg.iteration)
    plaintext = open_sealed(mk, msg.ciphertext, msg.header_bytes(), _SEAL_LABEL)
    try:
        content = Content.decode(plaintext)
    except DecodeError:
        raise InvalidMessage() from None
    fctx = franking.context(msg.sender, msg.group_id, msg.message_id, msg.timestamp_ms)
    franking.verify(msg.franking_commitment, content.franking_key, fctx, content.body)
    if policy is not None or msg.access is not None:
        epoch = msg.access.epoch if msg.access is not None else (policy.epoch if policy else 0)
        access.check(policy, msg.access, mk, _access_context(msg, epoch))
    receivers = dict(state.receivers)
    receivers[msg.sender] = (*states[:index], new_rk, *states[index + 1 :])
    return GroupReceived(msg, content.body, content.franking_key), state._with(receivers)


__all__ = [
    "GroupMember",
    "GroupMessage",
    "GroupReceived",
    "GroupState",
    "Membership",
    "MembershipUpdate",
    "ReceiverKey",
    "SenderKey",
    "SenderKeyDistribution",
    "added_devices",
    "apply_membership",
    "create_group",
    "create_sender_key",
    "group_decrypt",
    "group_encrypt",
    "join_group",
    "member_set_hash",
    "needs_rekey",
    "process_distribution",
    "propose_membership",
]
