"""The access field (DESIGN.md §6): a per-message escrow of the message key under the escrow
epoch's public key, which an honest recipient recomputes and enforces.

For message key ``k`` and context ``ctx``::

    r  = H_to_scalar(k, ctx) = SHA-512("Overt_AF_r_v1" ‖ k ‖ ctx) mod l
    R  = r·G
    C  = k ⊕ HKDF-SHA256(ikm = r·Y_epoch, salt = R, info = "Overt_AF_pad_v1" ‖ ctx, L = 32)

``ctx`` = ("Overt_AF_ctx_v1", epoch, sender address, recipient address, conversation id,
message id, day), canonically encoded. The field is in the envelope's associated data, so it
cannot be swapped in transit. Because ``r`` is derived from ``k``, the recipient, who knows
``k``, recomputes ``(R, C)`` exactly and rejects the message on any difference: a modified
sender cannot talk to honest clients without a field that really opens to ``k``. Two colluding
modified clients can still leave it out; see docs/lawful-access.md.

Whoever learns ``x·R`` for the epoch secret ``x`` (t custodians together) recovers ``k`` for
this one message, and checks it by recomputing ``R``.

**Three context kinds.** A one-to-one message's context is the *content* context above
(:func:`context`); a group message's is the group context (:func:`group_context`); and a
one-to-one message whose body is **key material** (a sender-key distribution, which carries a
group chain key) is sent under the *key* context (:func:`key_context`: the same fields under
the label "Overt_AF_keys_ctx_v1"). The sender chooses the kind (:class:`AccessKind`, a
parameter of the session's encrypt); the recipient learns which kind the field was made under
from :func:`check_direct` and checks that it fits the body it decrypted.

A key-context field is made with ``R = r·G_keys`` instead of ``r·G``, where ``G_keys`` is
hashed to the group (from "Overt_AF_keys_base_v1"; nobody knows its discrete log to ``G``),
while the pad still comes from ``r·Y_epoch``. A custodian's share ``x·R`` of such a field is
``r·x·G_keys``, not ``r·Y_epoch``, so **no share opens key material**, whatever context a
requester claims for the point: turning ``r·G_keys`` into ``r·G`` is a Diffie–Hellman
problem. The recipient, who knows ``k``, still recomputes the field exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from functools import cache

from overt.crypto import Point, Scalar, constant_time_eq, hkdf_sha256, sha512
from overt.errors import InvalidMessage, LocalError, PolicyViolation
from overt.wire import AccessField, Address, Writer

KEY_LEN = 32
DAY_MS = 86_400_000
_R_LABEL = b"Overt_AF_r_v1"
_PAD_LABEL = b"Overt_AF_pad_v1"
_CTX_LABEL = b"Overt_AF_ctx_v1"
_GROUP_CTX_LABEL = b"Overt_AF_group_ctx_v1"
_KEYS_CTX_LABEL = b"Overt_AF_keys_ctx_v1"
_KEYS_BASE_LABEL = b"Overt_AF_keys_base_v1"


class AccessKind(Enum):
    """Which context a one-to-one message's access field is made under."""

    CONTENT = "content"
    """What a person wrote (text, attachments, group updates, leave requests):
    :func:`context`, openable by ``t`` custodians under a warrant."""
    KEY_MATERIAL = "key_material"
    """A body carrying keys for other messages (a sender-key distribution):
    :func:`key_context`, which no custodian share opens."""


@dataclass(frozen=True, slots=True)
class EscrowPolicy:
    """Access policy ``escrow``: the current epoch and its public key.

    ``previous`` holds epoch keys still accepted from senders whose clock or manifest lags
    (messages near an epoch boundary).
    """

    epoch: int
    public_key: Point
    previous: Mapping[int, Point] = field(default_factory=dict)

    def key_for(self, epoch: int) -> Point | None:
        if epoch == self.epoch:
            return self.public_key
        return self.previous.get(epoch)


def context(
    epoch: int,
    sender: Address,
    recipient: Address,
    conversation_id: bytes,
    message_id: bytes,
    timestamp_ms: int,
) -> bytes:
    """The canonical access context ``ctx`` of one message copy."""
    return direct_context(AccessKind.CONTENT, epoch, sender, recipient, conversation_id,
                          message_id, timestamp_ms)  # fmt: skip


def key_context(
    epoch: int,
    sender: Address,
    recipient: Address,
    conversation_id: bytes,
    message_id: bytes,
    timestamp_ms: int,
) -> bytes:
    """The canonical access context of one copy of a one-to-one message that carries **key
    material**: the fields of :func:`context` under the label "Overt_AF_keys_ctx_v1", which
    differs from the content label at its tenth byte (and from the group label there too), so
    no key context equals a content or a group context."""
    return direct_context(AccessKind.KEY_MATERIAL, epoch, sender, recipient, conversation_id,
                          message_id, timestamp_ms)  # fmt: skip


def direct_context(
    kind: AccessKind,
    epoch: int,
    sender: Address,
    recipient: Address,
    conversation_id: bytes,
    message_id: bytes,
    timestamp_ms: int,
) -> bytes:
    """:func:`context` or :func:`key_context`, as ``kind`` says (the two differ in their
    label only)."""
    label = _KEYS_CTX_LABEL if kind is AccessKind.KEY_MATERIAL else _CTX_LABEL
    w = Writer().raw(label).u32(epoch)
    sender.write(w)
    recipient.write(w)
    w.fixed(conversation_id, 32).fixed(message_id, 16).u32(timestamp_ms // DAY_MS)
    return w.getvalue()


def is_key_context(ctx: bytes) -> bool:
    """Whether ``ctx`` is a key context (:func:`key_context`)."""
    return ctx.startswith(_KEYS_CTX_LABEL)


def group_context(
    epoch: int,
    sender: Address,
    group_id: bytes,
    member_set_hash: bytes,
    message_id: bytes,
    timestamp_ms: int,
) -> bytes:
    """The canonical access context ``ctx`` of one group message.

    ``ctx`` = ("Overt_AF_group_ctx_v1", epoch, sender address, group id, member-set hash,
    message id, day). One ciphertext reaches every member, so the field names the group and the
    exact member set (its hash, which commits to the sorted member devices and the membership
    version) instead of a recipient. The label differs from the one-to-one context at its
    tenth byte, so no group context equals a one-to-one context.
    """
    w = Writer().raw(_GROUP_CTX_LABEL).u32(epoch)
    sender.write(w)
    w.fixed(group_id, 32).fixed(member_set_hash, 32).fixed(message_id, 16)
    w.u32(timestamp_ms // DAY_MS)
    return w.getvalue()


def _r(key: bytes, ctx: bytes) -> Scalar:
    return Scalar.from_wide(sha512(_R_LABEL + key + ctx))


@cache
def _keys_base() -> Point:
    return Point.from_uniform(sha512(_KEYS_BASE_LABEL))


def _big_r(r: Scalar, ctx: bytes) -> Point:
    """``R``: ``r·G``, or ``r·G_keys`` for a key context (see the module docstring)."""
    return _keys_base().mul(r) if is_key_context(ctx) else Point.base_mul(r)


def _pad(shared: Point, big_r: bytes, ctx: bytes) -> bytes:
    return hkdf_sha256(shared.raw, big_r, _PAD_LABEL + ctx, KEY_LEN)


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(KEY_LEN, "big")


def create(epoch: int, epoch_key: Point, message_key: bytes, ctx: bytes) -> AccessField:
    """The sender's side: build the field for ``message_key`` under ``epoch_key``."""
    if len(message_key) != KEY_LEN:
        raise InvalidMessage()
    r = _r(message_key, ctx)
    big_r = _big_r(r, ctx)
    c = _xor(message_key, _pad(epoch_key.mul(r), big_r.raw, ctx))
    return AccessField(epoch, big_r.raw, c)


def check(
    policy: EscrowPolicy | None, found: AccessField | None, message_key: bytes, ctx_of: bytes
) -> None:
    """The recipient's side: enforce the deployment's policy on one message.

    ``ctx_of`` is the context computed for the epoch the field claims (or the current one if
    the field is missing). Raises :class:`PolicyViolation` for a missing field under
    ``escrow``, a field under ``none``, an unknown epoch, or a field that does not open to
    ``message_key``.
    """
    key = _epoch_key(policy, found)
    if key is None:
        return
    assert found is not None
    if not _opens(found, key, message_key, ctx_of):
        raise PolicyViolation("access field does not match the message")


def check_direct(
    policy: EscrowPolicy | None,
    found: AccessField | None,
    message_key: bytes,
    content_ctx: bytes,
    key_ctx: bytes,
) -> AccessKind | None:
    """:func:`check` for a one-to-one message, which may have been sent under either kind:
    returns the kind whose context the field matches exactly (the content context is tried
    first, then the key context), or None under policy ``none`` (no field). Raises
    :class:`PolicyViolation` exactly when :func:`check` would for both contexts. The caller
    must check that the kind fits the body it decrypted: that is what stops a sender from
    escaping escrow by calling what a person wrote key material.
    """
    key = _epoch_key(policy, found)
    if key is None:
        return None
    assert found is not None
    if _opens(found, key, message_key, content_ctx):
        return AccessKind.CONTENT
    if _opens(found, key, message_key, key_ctx):
        return AccessKind.KEY_MATERIAL
    raise PolicyViolation("access field does not match the message")


def _epoch_key(policy: EscrowPolicy | None, found: AccessField | None) -> Point | None:
    """The epoch key ``found`` must open under (None under policy ``none`` and no field)."""
    if policy is None:
        if found is not None:
            raise PolicyViolation("access field present but the deployment's policy is none")
        return None
    if found is None:
        raise PolicyViolation("access field missing under policy escrow")
    key = policy.key_for(found.epoch)
    if key is None:
        raise PolicyViolation("access field for an epoch this client does not accept")
    return key


def _opens(found: AccessField, key: Point, message_key: bytes, ctx: bytes) -> bool:
    expected = create(found.epoch, key, message_key, ctx)
    return constant_time_eq(expected.r, found.r) & constant_time_eq(expected.c, found.c)


def recover(field_: AccessField, shared: Point, ctx: bytes) -> bytes:
    """Given ``x·R`` (combined from custodian shares), return the message key ``k``.

    Checks that ``R`` re-derives from the recovered key, so a wrong share or context is an
    :class:`InvalidMessage`, never a wrong key. A key context is a :class:`LocalError`: key
    material is never released, and no share could open it (see the module docstring).
    """
    if is_key_context(ctx):
        raise LocalError("key material is never released: no share opens a key-context field")
    key = _xor(field_.c, _pad(shared, field_.r, ctx))
    if not constant_time_eq(Point.base_mul(_r(key, ctx)).raw, field_.r):
        raise InvalidMessage()
    return key
