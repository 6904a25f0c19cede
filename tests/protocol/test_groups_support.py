"""Helpers for the group tests (no tests here): a small group, a deliberately misbehaving
sender, and a simulated world of member devices over a fake wire.

The world stands in for the client and the server: membership updates, sender key
distributions (which really ride inside pairwise sessions, authenticated as coming from their
sender) and group messages land in per-device inboxes and are delivered in any order. A device
retries what it cannot process *yet* (an update after a gap, a message before its sender key, a
message from a newer view) and the world records what each device read and what it refused.
An update is dropped only once superseded: the inbox also stands in for the server's copy of
the views, which the client fetches on a gap (a device out of the group may be added back by
an earlier view and then need a later one that removes it again).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import pytest

from overt.crypto import DeterministicRng, Ed25519PrivateKey, Ed25519PublicKey, Rng, seal
from overt.errors import DuplicateMessage, LimitExceeded, ProtocolViolation, UnknownSession
from overt.protocol import EscrowPolicy, access, franking
from overt.protocol.groups import (
    _SEAL_LABEL,
    GroupState,
    MembershipUpdate,
    SenderKey,
    _kdf,
    added_devices,
    apply_membership,
    create_group,
    create_sender_key,
    group_decrypt,
    group_encrypt,
    join_group,
    needs_rekey,
    process_distribution,
    propose_membership,
)
from overt.protocol.identity import AccountIdentity
from overt.wire import AccessField, Address, Content
from overt.wire.group_messages import GroupMessage, SenderKeyDistribution

NOW = 1_700_000_000_000
ADMIN = b"admin"


# ----------------------------------------------------------------------------- small group


@dataclass
class Small:
    """Alice (admin, devices 1 and 2), Bob (1) and Carol (1), each with a sender key that every
    other device holds."""

    admin: AccountIdentity
    admin_keys: dict[bytes, Ed25519PublicKey]
    states: dict[Address, GroupState]
    keys: dict[Address, SenderKey]
    rng: Rng

    A1 = Address(b"alice", 1)
    A2 = Address(b"alice", 2)
    B = Address(b"bob", 1)
    C = Address(b"carol", 1)

    @classmethod
    def make(cls, seed: int = 1) -> Small:
        rng = DeterministicRng(seed)
        admin = AccountIdentity.generate(b"alice", rng)
        keys_ = {b"alice": admin.public_key}
        members = {b"alice": [1, 2], b"bob": [1], b"carol": [1]}
        first, update = create_group(admin, cls.A1, b"friends", members, rng)
        wire = MembershipUpdate.decode(update.encode())
        states = {cls.A1: first}
        for a in (cls.A2, cls.B, cls.C):
            states[a] = join_group(a, wire, keys_)
        small = cls(admin, keys_, states, {}, rng)
        for a in list(states):
            small.rekey(a)
        return small

    def rekey(self, sender: Address) -> SenderKeyDistribution:
        key, dist = create_sender_key(self.states[sender], self.rng)
        self.keys[sender] = key
        for target in self.states[sender].distribution_targets():
            if target in self.states:
                self.states[target] = process_distribution(self.states[target], sender, dist)
        return dist

    def send(
        self, sender: Address, body: bytes, policy: EscrowPolicy | None = None, now_ms: int = NOW
    ) -> bytes:
        msg, self.keys[sender] = group_encrypt(
            self.states[sender], self.keys[sender], body, now_ms, self.rng, policy
        )
        return msg.encode()

    def update(self, members: dict[bytes, list[int]]) -> MembershipUpdate:
        """The admin's next view, applied by every device still holding a state."""
        update = propose_membership(self.states[self.A1], self.admin, members)
        for a in list(self.states):
            self.states[a] = apply_membership(self.states[a], update, self.admin_keys)
        return update


def forge(
    state: GroupState,
    key: SenderKey,
    body: bytes,
    *,
    committed_body: bytes | None = None,
    access_field: AccessField | str | None = "honest",
    policy: EscrowPolicy | None = None,
    access_hash: bytes | None = None,
    access_direct: bool = False,
    sender: Address | None = None,
    signing_key: Ed25519PrivateKey | None = None,
    member_set_hash: bytes | None = None,
    version: int | None = None,
    iteration: int | None = None,
    now_ms: int = NOW,
) -> bytes:
    """A modified sender: a group message whose parts may lie, built by hand.

    ``committed_body`` commits to another body than the one encrypted; ``access_field`` is an
    explicit field (or None) instead of the honest one; ``access_hash`` builds the honest
    field's context over another member-set hash, ``access_direct`` over the one-to-one
    context instead of the group one; ``sender``, ``member_set_hash``,
    ``version`` and ``iteration`` replace header fields before signing; ``signing_key`` signs
    instead of the sender key's own key.
    """
    m = state.membership
    it = key.iteration if iteration is None else iteration
    ck = key.chain_key
    if it - key.iteration > 100_000:
        mk = bytes(32)  # far beyond any bound: the receiver must refuse before deriving
    else:
        for _ in range(it - key.iteration):
            ck, _mk = _kdf(ck)
        _next, mk = _kdf(ck)
    who = sender or state.own
    mid = (it + 1).to_bytes(16, "big")
    fk = bytes([7]) * 32
    commitment = franking.commit(
        fk, franking.context(who, m.group_id, mid, now_ms), committed_body or body
    )
    af: AccessField | None
    if access_field == "honest":
        if policy is None:
            af = None
        else:
            actx = access.group_context(
                policy.epoch, who, m.group_id, access_hash or m.member_set_hash, mid, now_ms
            )
            if access_direct:
                actx = access.context(policy.epoch, who, who, m.group_id, mid, now_ms)
            af = access.create(policy.epoch, policy.public_key, mk, actx)
    else:
        assert not isinstance(access_field, str)
        af = access_field
    unsigned = GroupMessage(
        m.group_id,
        who,
        key.key_id,
        it,
        now_ms,
        mid,
        m.version if version is None else version,
        member_set_hash or m.member_set_hash,
        commitment,
        af,
    )
    header = unsigned.header_bytes()
    msg = unsigned.with_ciphertext(
        seal(mk, Content(fk, body).encode(), header, _SEAL_LABEL), header
    )
    signer = signing_key or key.signing_key
    return msg.with_signature(signer.sign(msg.signed_part())).encode()


# ----------------------------------------------------------------------------- the world


@dataclass
class Item:
    kind: str  # "update", "dist" or "msg"
    sender: Address
    payload: bytes


@dataclass
class Sent:
    sender: Address
    version: int
    recipients: frozenset[Address]
    body: bytes
    key_id: int
    iteration: int


@dataclass
class Dev:
    address: Address
    state: GroupState | None = None
    key: SenderKey | None = None
    inbox: list[Item] = field(default_factory=list)
    read: dict[bytes, bytes] = field(default_factory=dict)
    stale: set[bytes] = field(default_factory=set)
    #: (sender, key id) -> the first iteration this device could derive, for every sender key
    #: it ever stored.
    held: dict[tuple[Address, int], int] = field(default_factory=dict)


class World:
    """Member devices of one group, an admin who changes it, and a fake wire between them."""

    ADMIN_DEVICE = Address(ADMIN, 1)

    def __init__(
        self, members: dict[bytes, list[int]], seed: int = 1, policy: EscrowPolicy | None = None
    ) -> None:
        self.rng = DeterministicRng(seed)
        self.policy = policy
        self.admin = AccountIdentity.generate(ADMIN, self.rng)
        self.admin_keys = {ADMIN: self.admin.public_key}
        self.members = {ADMIN: [1], **members}
        self.next_device = {a: max(ds) + 1 for a, ds in self.members.items()}
        self.devices: dict[Address, Dev] = {}
        self.sent: dict[bytes, Sent] = {}
        self.counter = 0
        state, update = create_group(self.admin, self.ADMIN_DEVICE, b"g", self.members, self.rng)
        self.devices[self.ADMIN_DEVICE] = Dev(self.ADMIN_DEVICE, state)
        for a in sorted(self._addresses(self.members) - {self.ADMIN_DEVICE}):
            self.devices[a] = Dev(a, join_group(a, update, self.admin_keys))

    @staticmethod
    def _addresses(members: dict[bytes, list[int]]) -> set[Address]:
        return {Address(acct, d) for acct, ds in members.items() for d in ds}

    def member_devices(self) -> list[Address]:
        return sorted(self._addresses(self.members))

    # -- changes (made by the admin, whose device applies them at once) ---------------------

    def change(self, new_members: dict[bytes, list[int]]) -> None:
        new_members = {a: sorted(ds) for a, ds in new_members.items() if ds}
        admin = self.devices[self.ADMIN_DEVICE]
        assert admin.state is not None
        update = propose_membership(admin.state, self.admin, new_members)
        old_targets = self._addresses(self.members)
        self.members = new_members
        for a in old_targets | self._addresses(new_members):
            if a == self.ADMIN_DEVICE:
                continue
            dev = self.devices.setdefault(a, Dev(a))
            dev.inbox.append(Item("update", self.ADMIN_DEVICE, update.encode()))
        old = admin.state
        admin.state = apply_membership(admin.state, update, self.admin_keys)
        self._after_apply(admin, old)

    def add_account(self, account: bytes, n_devices: int) -> None:
        first = self.next_device.get(account, 1)
        ids = list(range(first, first + n_devices))
        self.next_device[account] = first + n_devices
        self.change({**self.members, account: ids})

    def remove_account(self, account: bytes) -> None:
        self.change({a: ds for a, ds in self.members.items() if a != account})

    def change_devices(self, account: bytes, kind: str) -> None:
        devices = list(self.members[account])
        if kind in ("add", "replace"):
            devices.append(self.next_device[account])
            self.next_device[account] += 1
        if kind in ("remove", "replace") and len(devices) > 1:
            devices.pop(0)
        self.change({**self.members, account: devices})

    def total_devices(self) -> int:
        return sum(len(ds) for ds in self.members.values())

    # -- sending ---------------------------------------------------------------------------

    def _distribute(self, dev: Dev, targets: Iterable[Address]) -> None:
        assert dev.key is not None
        payload = dev.key.distribution().encode()
        for t in targets:
            if t != dev.address:
                self.devices.setdefault(t, Dev(t)).inbox.append(Item("dist", dev.address, payload))

    def _after_apply(self, dev: Dev, old: GroupState | None) -> None:
        """After a new view: a still valid key goes to the added devices; an invalid one is
        dropped (a new one is made and sent to the whole new view at the next send)."""
        state = dev.state
        assert state is not None
        if not state.is_member:
            dev.key = None
            return
        if dev.key is not None and dev.key.membership_version < state.rekey_version:
            assert old is None or needs_rekey(old, state)
            dev.key = None
        if dev.key is not None and old is not None:
            self._distribute(dev, added_devices(old, state))

    def send(self, address: Address) -> bytes | None:
        dev = self.devices[address]
        if dev.state is None or not dev.state.is_member:
            return None
        if dev.key is None:
            dev.key, _ = create_sender_key(dev.state, self.rng)
            self._distribute(dev, dev.state.distribution_targets())
        self.counter += 1
        body = f"message {self.counter} from {address}".encode()
        msg, dev.key = group_encrypt(dev.state, dev.key, body, NOW, self.rng, self.policy)
        self.sent[msg.message_id] = Sent(
            address, dev.state.version, frozenset(dev.state.distribution_targets()), body,
            msg.key_id, msg.iteration,
        )  # fmt: skip
        payload = msg.encode()
        # The server fans out to the sender's view; a malicious one sends it to everybody.
        for other in self.devices.values():
            if other.address != address:
                other.inbox.append(Item("msg", address, payload))
        return payload

    # -- receiving -------------------------------------------------------------------------

    def process(self, dev: Dev, item: Item) -> bool:
        """Process one item; False if it must wait (it stays in the inbox)."""
        if item.kind == "update":
            return self._update(dev, MembershipUpdate.decode(item.payload))
        if dev.state is None:
            return False
        if item.kind == "dist":
            return self._dist(dev, item)
        return self._message(dev, item)

    def _update(self, dev: Dev, update: MembershipUpdate) -> bool:
        if dev.state is None or not dev.state.is_member:
            if dev.state is not None and update.membership_version <= dev.state.version:
                return True  # superseded
            if dev.address not in self._addresses(
                {m.account: list(m.devices) for m in update.members}
            ):
                # A newer view without this device is not news to drop: an earlier one that
                # adds it back may still be on its way, and once back it must apply this one
                # before any later view (the client fetches it from the server on the gap).
                return False
            dev.state, dev.key = join_group(dev.address, update, self.admin_keys), None
            return True
        old = dev.state
        try:
            dev.state = apply_membership(dev.state, update, self.admin_keys)
        except DuplicateMessage:
            return True
        except ProtocolViolation:
            assert update.membership_version > old.version + 1  # a gap: wait for the rest
            return False
        self._after_apply(dev, old)
        return True

    def _dist(self, dev: Dev, item: Item) -> bool:
        assert dev.state is not None
        dist = SenderKeyDistribution.decode(item.payload)
        try:
            new = process_distribution(dev.state, item.sender, dist)
        except ProtocolViolation:
            return False  # not in this device's view (yet), or already superseded
        if new is not dev.state:
            held = dev.held.get((item.sender, dist.key_id))
            dev.held[(item.sender, dist.key_id)] = (
                dist.iteration if held is None else min(held, dist.iteration)
            )
        dev.state = new
        return True

    def _message(self, dev: Dev, item: Item) -> bool:
        state = dev.state
        assert state is not None
        msg = GroupMessage.decode(item.payload)
        sent = self.sent[msg.message_id]
        if msg.membership_version > state.version:
            with pytest.raises(ProtocolViolation):
                group_decrypt(state, item.payload, self.policy)
            return False  # this device is behind: apply the pending update first
        before = state.encode()
        try:
            got, dev.state = group_decrypt(state, item.payload, self.policy)
        except (UnknownSession, LimitExceeded) as exc:
            assert not isinstance(exc, LimitExceeded)
            assert state.encode() == before
            return False  # its sender key has not arrived yet
        except DuplicateMessage:
            assert state.encode() == before
            assert msg.message_id in dev.read or dev.address not in sent.recipients
            return True
        except ProtocolViolation:
            assert state.encode() == before
            if dev.address in sent.recipients:
                assert state.version > sent.version  # a stale send: refused for good
                dev.stale.add(msg.message_id)
            return True
        assert dev.address in sent.recipients, "a device outside the sender's view read it"
        assert state.version == sent.version
        assert msg.message_id not in dev.read
        assert got.body == sent.body and got.sender == sent.sender
        dev.read[msg.message_id] = got.body
        return True

    def deliver(self, device_index: int, item_index: int) -> None:
        busy = [d for d in self.devices.values() if d.inbox]
        if not busy:
            return
        dev = busy[device_index % len(busy)]
        item = dev.inbox.pop(item_index % len(dev.inbox))
        if not self.process(dev, item):
            dev.inbox.append(item)

    def flush(self, *, newest_first: bool = False) -> None:
        """Deliver everything that can be delivered (oldest or newest first per device)."""
        progress = True
        while progress:
            progress = False
            for dev in list(self.devices.values()):
                for item in list(reversed(dev.inbox) if newest_first else dev.inbox):
                    if self.process(dev, item):
                        dev.inbox.remove(item)
                        progress = True

    # -- the oracle ------------------------------------------------------------------------

    def check(self) -> None:
        """After a flush: every recipient read each message once or refused it as stale, and
        no device outside a message's view ever held a key that derives its message key."""
        for mid, sent in self.sent.items():
            for address, dev in self.devices.items():
                if address in sent.recipients:
                    assert (mid in dev.read) != (mid in dev.stale), (address, sent)
                else:
                    assert mid not in dev.read
                    start = dev.held.get((sent.sender, sent.key_id))
                    assert start is None or start > sent.iteration, (address, sent)
