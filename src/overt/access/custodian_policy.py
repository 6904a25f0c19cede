"""A custodian's independent decision on a request for decryption shares, as a pure function.

The custodian service gathers the inputs — the request, the warrant the LEA presents, the
revocations it has seen, the log proof of the warrant's commitment, the current time, which
epoch shares it still holds, how many messages it already released under this warrant — and
:func:`decide` returns either :class:`Approved`, with the
:class:`~overt.transparency.entries.AccessReceipt` to log *before* the shares leave, or
:class:`Refused` with one :class:`Refusal` reason and a sentence for the operator. Checks, in
order, each its own reason (DESIGN §6):

1. the request is well formed: 1..:data:`MAX_SHARE_BATCH` items, no context or point twice,
   every context of one escrow epoch (one request, one epoch key, one proof);
2. the warrant is well formed, names a court key the manifest lists (under its name) and its
   signature verifies; it is the warrant the request names; its sealing period is within the
   manifest's;
3. no valid revocation (signed by any listed court) names it;
4. ``now`` is inside the authorisation's timespan (not yet valid / expired);
5. the log proof holds a checkpoint signed by the log and cosigned by the witness quorum, and
   the entry it includes is exactly this warrant's
   :class:`~overt.transparency.entries.WarrantCommitment` (recomputed from the warrant);
6. every context decodes (:func:`~overt.access.context.decode_context`); none is a key context
   (key material — a sender-key distribution — is never released: ``key_material``); a group
   context comes
   with the member list whose hash it carries; it names a target of a ``content`` task — the
   sender or recipient account, or for a group the sender or any member account —; its
   *day* lies wholly inside that task's window (day granularity: the context carries no finer
   time); it was not released before under this warrant with another point; and its epoch's
   share is still held (not destroyed);
7. the warrant's cap is not exceeded by what this custodian released so far plus this request.

**A limit to know.** A custodian sees ``(ctx, R)`` pairs and cannot itself check that ``R``
belongs to the message ``ctx`` describes (``r`` is derived from the message key it does not
know). A requester holding envelopes outside the warrant could pair their ``R`` with a target's
context. Refusing a context already released with another point bounds that to one point per
genuine target message (which is then lost to the requester); the rest is outside this
function: the LEA obtains envelopes only from the provider's intercept store, and the evidence
bundle (:mod:`overt.access.evidence`) recomputes every context from the envelope itself. See
docs/lawful-access.md.

This module never sees sockets, files or clocks (``now`` is a parameter, Unix seconds).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Final, Self, TypeAlias

from overt.access.context import (
    AccessContext,
    GroupContext,
    KeyContext,
    decode_context,
)
from overt.access.limits import MAX_SHARE_BATCH
from overt.access.warrant import (
    Delivery,
    Warrant,
    verify_revocation,
    verify_warrant,
    warrant_commitment,
)
from overt.crypto import POINT_LEN, Ed25519PublicKey, Point, sha256
from overt.errors import (
    ConfigurationError,
    DecodeError,
    InvalidMessage,
    LocalError,
    ProtocolViolation,
    UntrustedIdentity,
)
from overt.protocol.groups import member_set_hash
from overt.protocol.limits import MAX_GROUP_MEMBERS
from overt.transparency.checkpoint import ProofBundle, verify_checkpoint
from overt.transparency.entries import AccessReceipt, WarrantCommitment, encode_entry
from overt.transparency.manifest import EscrowAccess, Manifest, NamedKey
from overt.transparency.merkle import hash_leaf, verify_inclusion
from overt.transparency.note import VerifierKey
from overt.wire import Reader, Writer
from overt.wire.group_messages import GroupMember

REQUEST_VERSION: Final = 1
REQUEST_KIND: Final = 9
"""Kind byte of an encoded :class:`AccessRequest` (after the DKG and share kinds)."""

CONTEXTS_HASH_LABEL: Final = b"Overt_AccessContexts_v1"
"""Label of :func:`contexts_hash`."""

_MAX_CONTEXT_LEN: Final = 1024

KEY_MATERIAL_REFUSED: Final = (
    "key material is never released: the context is a key context (a sender-key distribution, "
    "whose chain key would open the sender's later group messages uncounted)"
)
"""What a custodian (and the agency's tool, skipping such a message) says about a key context."""


# ----------------------------------------------------------------------------- trust


@dataclass(frozen=True, slots=True)
class AccessTrust:
    """What a custodian, an LEA or an auditor takes from the pinned manifest.

    Custodian index ``j`` (1-based, as in the DKG) is the ``j``-th custodian of the manifest;
    its id in access receipts is its Ed25519 key (:meth:`custodian_id`).
    """

    court_keys: tuple[NamedKey, ...]
    max_seal_days: int
    custodian_keys: tuple[Ed25519PublicKey, ...]
    threshold: int
    log_key: VerifierKey
    log_origin: str
    witness_keys: tuple[VerifierKey, ...]
    witness_quorum: int

    @classmethod
    def from_manifest(cls, manifest: Manifest) -> Self:
        access = manifest.access
        if not isinstance(access, EscrowAccess):
            raise ConfigurationError("the manifest's access policy is none: no lawful access")
        return cls(
            court_keys=access.court_keys,
            max_seal_days=access.max_seal_days,
            custodian_keys=tuple(c.key for c in access.custodians),
            threshold=access.threshold,
            log_key=manifest.log.vkey,
            log_origin=manifest.log.origin,
            witness_keys=manifest.witness_keys,
            witness_quorum=manifest.witness_quorum,
        )

    def custodian_id(self, index: int) -> bytes:
        """The 32-byte id of custodian ``index`` in access receipts: its manifest key."""
        if not 1 <= index <= len(self.custodian_keys):
            raise LocalError(f"custodian index must be in 1..{len(self.custodian_keys)}")
        return self.custodian_keys[index - 1].raw

    def custodian_index(self, custodian_id: bytes) -> int | None:
        for j, k in enumerate(self.custodian_keys, start=1):
            if k.raw == custodian_id:
                return j
        return None


# ----------------------------------------------------------------------------- requests


@dataclass(frozen=True, slots=True)
class GroupMembers:
    """The member list (and membership version) a group context's member-set hash commits
    to, supplied by the requester so the custodian can see who the message reached."""

    version: int
    members: tuple[GroupMember, ...]

    def hash_for(self, group_id: bytes) -> bytes:
        return member_set_hash(group_id, self.version, self.members)

    @property
    def accounts(self) -> frozenset[bytes]:
        return frozenset(m.account for m in self.members)

    def write(self, w: Writer) -> None:
        """``version u64 ‖ count u16 ‖ count × GroupMember``."""
        if not 0 < len(self.members) <= MAX_GROUP_MEMBERS:
            raise LocalError(f"a member list holds 1..{MAX_GROUP_MEMBERS} members")
        w.u64(self.version).u16(len(self.members))
        for m in self.members:
            m.write(w)

    @classmethod
    def read(cls, r: Reader) -> Self:
        version, n = r.u64("membership version"), r.u16("member count")
        if not 0 < n <= MAX_GROUP_MEMBERS:
            raise DecodeError(f"{r.what}: member count out of range")
        return cls(version, tuple(GroupMember.read(r) for _ in range(n)))


@dataclass(frozen=True, slots=True)
class AccessItem:
    """One message to open: its access context and the ``R`` of its access field."""

    context: bytes
    point: Point
    group_members: GroupMembers | None = None


@dataclass(frozen=True, slots=True)
class AccessRequest:
    """An LEA's request to one custodian under one warrant, for one epoch's messages."""

    warrant_id: bytes
    items: tuple[AccessItem, ...]

    @property
    def contexts(self) -> tuple[bytes, ...]:
        return tuple(i.context for i in self.items)

    @property
    def points(self) -> tuple[Point, ...]:
        return tuple(i.point for i in self.items)

    def encode(self) -> bytes:
        """``version ‖ kind ‖ warrant_id[32] ‖ count u16 ‖ items``, each item
        ``ctx<1..1024> ‖ R[32] ‖ optional<GroupMembers>``."""
        w = Writer().u8(REQUEST_VERSION).u8(REQUEST_KIND).fixed(self.warrant_id, 32)
        w.u16(len(self.items))
        for item in self.items:
            w.vec(item.context, 2, _MAX_CONTEXT_LEN).fixed(item.point.raw, POINT_LEN)
            w.boolean(item.group_members is not None)
            if item.group_members is not None:
                item.group_members.write(w)
        return w.getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = Reader(data, "AccessRequest")
        r.version(REQUEST_VERSION)
        if r.u8("kind") != REQUEST_KIND:
            raise DecodeError("AccessRequest: wrong kind")
        warrant_id = r.fixed(32, "warrant id")
        count = r.u16("count")
        if not 0 < count <= MAX_SHARE_BATCH:
            raise DecodeError("AccessRequest: item count out of range")
        items = []
        for _ in range(count):
            ctx = r.vec(2, "context", _MAX_CONTEXT_LEN, 1)
            point = Point.from_bytes(r.fixed(POINT_LEN, "point"))
            members = GroupMembers.read(r) if r.boolean("has members") else None
            items.append(AccessItem(ctx, point, members))
        r.finish()
        return cls(warrant_id, tuple(items))


def contexts_hash(contexts: Iterable[bytes]) -> bytes:
    """SHA-256 of the canonical context list: ``label ‖ count u32 ‖ count × ctx<0..2^16-1>``,
    in request order. What an access receipt records."""
    items = list(contexts)
    w = Writer().raw(CONTEXTS_HASH_LABEL).u32(len(items))
    for c in items:
        w.vec(c, 2)
    return sha256(w.getvalue())


# ----------------------------------------------------------------------------- decisions


class Refusal(Enum):
    """Why a custodian refused. The value is a stable code for logs and APIs."""

    MALFORMED_REQUEST = "malformed_request"
    MALFORMED_WARRANT = "malformed_warrant"
    UNKNOWN_COURT = "unknown_court"
    FORGED_SIGNATURE = "forged_signature"
    SEALED_TOO_LONG = "sealed_too_long"
    WRONG_WARRANT = "wrong_warrant"
    REVOKED = "revoked"
    NOT_YET_VALID = "not_yet_valid"
    EXPIRED = "expired"
    MALFORMED_LOG_PROOF = "malformed_log_proof"
    NOT_COSIGNED = "not_cosigned"
    NOT_IN_LOG = "not_in_log"
    MALFORMED_CONTEXT = "malformed_context"
    KEY_MATERIAL = "key_material"
    """A key context (a sender-key distribution): key material is never released."""
    GROUP_MEMBERS_MISMATCH = "group_members_mismatch"
    NOT_A_TARGET = "not_a_target"
    METADATA_ONLY = "metadata_only"
    OUTSIDE_WINDOW = "outside_window"
    EPOCH_UNAVAILABLE = "epoch_unavailable"
    CONTEXT_REUSED = "context_reused"
    CAP_EXCEEDED = "cap_exceeded"


@dataclass(frozen=True, slots=True)
class Approved:
    """Release shares for ``points`` under ``epoch``'s share, after logging ``receipt``."""

    warrant: Warrant
    receipt: AccessReceipt
    epoch: int
    points: tuple[Point, ...]
    contexts: tuple[AccessContext, ...]


@dataclass(frozen=True, slots=True)
class Refused:
    """Release nothing. ``item`` is the 0-based request item at fault, if one is."""

    reason: Refusal
    detail: str
    item: int | None = None


Decision: TypeAlias = Approved | Refused


class _Refuse(Exception):
    def __init__(self, reason: Refusal, detail: str, item: int | None = None) -> None:
        super().__init__(detail)
        self.refused = Refused(reason, detail, item)


def _covering_problem(
    warrant: Warrant, ctx: AccessContext, members: GroupMembers | None
) -> tuple[Refusal, str] | None:
    """Why ``ctx`` is outside ``warrant`` (None if a content task covers it)."""
    if isinstance(ctx, KeyContext):
        return Refusal.KEY_MATERIAL, KEY_MATERIAL_REFUSED
    if isinstance(ctx, GroupContext):
        if members is None:
            return Refusal.GROUP_MEMBERS_MISMATCH, "a group context needs its member list"
        if members.hash_for(ctx.group_id) != ctx.member_set_hash:
            return (
                Refusal.GROUP_MEMBERS_MISMATCH,
                "the member list does not hash to the context's member-set hash",
            )
        accounts = members.accounts | {ctx.sender.account}
    else:
        accounts = ctx.accounts
    named = [t for t in warrant.tasks if accounts & set(t.targets)]
    if not named:
        return Refusal.NOT_A_TARGET, "the message involves no target of the warrant"
    content = [t for t in named if t.delivery is Delivery.CONTENT]
    if not content:
        return Refusal.METADATA_ONLY, "the warrant authorises only metadata for these targets"
    if not any(t.timespan.covers_day(ctx.day) for t in content):
        return Refusal.OUTSIDE_WINDOW, f"day {ctx.day} is not wholly inside the task's window"
    return None


def check_covered(warrant: Warrant, ctx: AccessContext, members: GroupMembers | None) -> None:
    """:class:`ProtocolViolation` unless a ``content`` task of ``warrant`` names an account
    of ``ctx`` and its window wholly contains the context's day (never for a key context:
    key material is never released)."""
    problem = _covering_problem(warrant, ctx, members)
    if problem is not None:
        raise ProtocolViolation(problem[1])


def check_log_proof(
    trust: AccessTrust, proof: ProofBundle, expected: WarrantCommitment | AccessReceipt
) -> tuple[Refusal, str] | None:
    """Why ``proof`` does not show the entry ``expected`` in a checkpoint the log signed and
    the witness quorum cosigned, or None."""
    try:
        verified = verify_checkpoint(
            proof.checkpoint,
            trust.log_key,
            trust.witness_keys,
            trust.witness_quorum,
            origin=trust.log_origin,
        )
    except (InvalidMessage, DecodeError):
        return (
            Refusal.NOT_COSIGNED,
            f"the checkpoint is not signed by the log and cosigned by {trust.witness_quorum} "
            "of the manifest's witnesses",
        )
    cp = verified.checkpoint
    try:
        if proof.index >= cp.size:
            raise InvalidMessage()
        verify_inclusion(
            hash_leaf(encode_entry(expected)), proof.index, cp.size, proof.proof, cp.root_hash
        )
    except InvalidMessage:
        what = "warrant's commitment" if isinstance(expected, WarrantCommitment) else "receipt"
        return Refusal.NOT_IN_LOG, f"the log proof does not include this {what}"
    return None


def _check_request(request: AccessRequest) -> None:
    n = len(request.items)
    if not 0 < n <= MAX_SHARE_BATCH:
        raise _Refuse(Refusal.MALFORMED_REQUEST, f"a request holds 1..{MAX_SHARE_BATCH} items")
    if len(set(request.contexts)) != n:
        raise _Refuse(Refusal.MALFORMED_REQUEST, "a context appears twice")
    if len({p.raw for p in request.points}) != n:
        raise _Refuse(Refusal.MALFORMED_REQUEST, "a point appears twice")


def _check_warrant(trust: AccessTrust, request: AccessRequest, warrant_bytes: bytes) -> Warrant:
    try:
        warrant = verify_warrant(warrant_bytes, trust.court_keys, max_seal_days=None)
    except DecodeError as e:
        raise _Refuse(Refusal.MALFORMED_WARRANT, str(e)) from None
    except UntrustedIdentity as e:
        raise _Refuse(Refusal.UNKNOWN_COURT, str(e)) from None
    except InvalidMessage:
        raise _Refuse(Refusal.FORGED_SIGNATURE, "the court's signature does not verify") from None
    if warrant.warrant_id != request.warrant_id:
        raise _Refuse(Refusal.WRONG_WARRANT, "the request names another warrant")
    try:
        warrant.check_max_seal(trust.max_seal_days)
    except ProtocolViolation as e:
        raise _Refuse(Refusal.SEALED_TOO_LONG, str(e)) from None
    return warrant


def _check_revocations(trust: AccessTrust, warrant: Warrant, revocations: Iterable[bytes]) -> None:
    for doc in revocations:
        try:
            rev = verify_revocation(doc, trust.court_keys)
        except (DecodeError, InvalidMessage, UntrustedIdentity):
            continue  # a revocation that does not verify revokes nothing
        if rev.warrant_id == warrant.warrant_id:
            raise _Refuse(
                Refusal.REVOKED, f"revoked by {rev.court} at {rev.revoked_at}: {rev.reason}"
            )


def _check_contexts(
    request: AccessRequest,
    warrant: Warrant,
    epochs_alive: Mapping[int, bool],
    released: Mapping[bytes, bytes],
) -> tuple[int, tuple[AccessContext, ...]]:
    decoded: list[AccessContext] = []
    for i, item in enumerate(request.items):
        try:
            decoded.append(decode_context(item.context))
        except DecodeError as e:
            raise _Refuse(Refusal.MALFORMED_CONTEXT, str(e), i) from None
        if isinstance(decoded[-1], KeyContext):
            raise _Refuse(Refusal.KEY_MATERIAL, KEY_MATERIAL_REFUSED, i)
    epochs = {c.epoch for c in decoded}
    if len(epochs) != 1:
        raise _Refuse(Refusal.MALFORMED_REQUEST, "one request covers one escrow epoch")
    (epoch,) = epochs
    for i, (item, ctx) in enumerate(zip(request.items, decoded, strict=True)):
        if not isinstance(ctx, GroupContext) and item.group_members is not None:
            raise _Refuse(Refusal.MALFORMED_REQUEST, "a member list for a one-to-one context", i)
        problem = _covering_problem(warrant, ctx, item.group_members)
        if problem is not None:
            raise _Refuse(problem[0], problem[1], i)
        before = released.get(item.context)
        if before is not None and before != item.point.raw:
            raise _Refuse(
                Refusal.CONTEXT_REUSED,
                "this context was already released with another point",
                i,
            )
    if not epochs_alive.get(epoch, False):
        raise _Refuse(
            Refusal.EPOCH_UNAVAILABLE, f"no share of epoch {epoch} is held (destroyed or unknown)"
        )
    return epoch, tuple(decoded)


def decide(
    request: AccessRequest,
    *,
    trust: AccessTrust,
    custodian_index: int,
    warrant_bytes: bytes,
    revocations: Iterable[bytes],
    log_proof: bytes,
    now: int,
    epochs_alive: Mapping[int, bool],
    used_count_so_far: int,
    released: Mapping[bytes, bytes] | None = None,
) -> Decision:
    """Decide on ``request`` (see the module docstring for the checks and their order).

    ``trust`` comes from the pinned manifest (court keys, max seal, log key and origin,
    witnesses and quorum); ``custodian_index`` is this custodian's (1-based); ``log_proof`` a
    c2sp tlog-proof bundle of the warrant's commitment entry; ``epochs_alive`` maps an epoch to
    whether its share is still held; ``used_count_so_far`` is how many messages this custodian
    already released under this warrant; ``released`` maps each context it released under this
    warrant to the point ``R`` (raw bytes) it released it with — a context asked for again with
    another point is refused (the service records the pairs of every approval). Never raises
    for bad input: every problem is a :class:`Refused`.
    """
    custodian_id = trust.custodian_id(custodian_index)
    try:
        _check_request(request)
        warrant = _check_warrant(trust, request, warrant_bytes)
        _check_revocations(trust, warrant, revocations)
        if now < warrant.window.start:
            raise _Refuse(Refusal.NOT_YET_VALID, "the authorisation is not in force yet")
        if now >= warrant.window.end:
            raise _Refuse(Refusal.EXPIRED, "the authorisation has ended")
        try:
            bundle = ProofBundle.from_bytes(log_proof)
        except (DecodeError, LocalError) as e:
            raise _Refuse(Refusal.MALFORMED_LOG_PROOF, str(e)) from None
        entry, _ = warrant_commitment(warrant)
        problem = check_log_proof(trust, bundle, entry)
        if problem is not None:
            raise _Refuse(*problem)
        epoch, decoded = _check_contexts(request, warrant, epochs_alive, released or {})
        if used_count_so_far + len(request.items) > warrant.max_messages:
            raise _Refuse(
                Refusal.CAP_EXCEEDED,
                f"{used_count_so_far} released + {len(request.items)} requested exceeds the "
                f"warrant's cap of {warrant.max_messages}",
            )
    except _Refuse as r:
        return r.refused
    receipt = AccessReceipt(
        warrant_id=warrant.warrant_id,
        custodian_id=custodian_id,
        count=len(request.items),
        contexts_hash=contexts_hash(request.contexts),
    )
    return Approved(warrant, receipt, epoch, request.points, decoded)


__all__ = [
    "CONTEXTS_HASH_LABEL",
    "KEY_MATERIAL_REFUSED",
    "AccessItem",
    "AccessRequest",
    "AccessTrust",
    "Approved",
    "Decision",
    "GroupMembers",
    "Refusal",
    "Refused",
    "check_covered",
    "check_log_proof",
    "contexts_hash",
    "decide",
    "decode_context",
]
