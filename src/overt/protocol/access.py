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
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from overt.crypto import Point, Scalar, constant_time_eq, hkdf_sha256, sha512
from overt.errors import InvalidMessage, PolicyViolation
from overt.wire import AccessField, Address, Writer

KEY_LEN = 32
DAY_MS = 86_400_000
_R_LABEL = b"Overt_AF_r_v1"
_PAD_LABEL = b"Overt_AF_pad_v1"
_CTX_LABEL = b"Overt_AF_ctx_v1"
_GROUP_CTX_LABEL = b"Overt_AF_group_ctx_v1"


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
    w = Writer().raw(_CTX_LABEL).u32(epoch)
    sender.write(w)
    recipient.write(w)
    w.fixed(conversation_id, 32).fixed(message_id, 16).u32(timestamp_ms // DAY_MS)
    return w.getvalue()


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


def _pad(shared: Point, big_r: bytes, ctx: bytes) -> bytes:
    return hkdf_sha256(shared.raw, big_r, _PAD_LABEL + ctx, KEY_LEN)


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(KEY_LEN, "big")


def create(epoch: int, epoch_key: Point, message_key: bytes, ctx: bytes) -> AccessField:
    """The sender's side: build the field for ``message_key`` under ``epoch_key``."""
    if len(message_key) != KEY_LEN:
        raise InvalidMessage()
    r = _r(message_key, ctx)
    big_r = Point.base_mul(r)
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
    if policy is None:
        if found is not None:
            raise PolicyViolation("access field present but the deployment's policy is none")
        return
    if found is None:
        raise PolicyViolation("access field missing under policy escrow")
    key = policy.key_for(found.epoch)
    if key is None:
        raise PolicyViolation("access field for an epoch this client does not accept")
    expected = create(found.epoch, key, message_key, ctx_of)
    if not (constant_time_eq(expected.r, found.r) & constant_time_eq(expected.c, found.c)):
        raise PolicyViolation("access field does not match the message")


def recover(field_: AccessField, shared: Point, ctx: bytes) -> bytes:
    """Given ``x·R`` (combined from custodian shares), return the message key ``k``.

    Checks that ``R`` re-derives from the recovered key, so a wrong share or context is an
    :class:`InvalidMessage`, never a wrong key.
    """
    key = _xor(field_.c, _pad(shared, field_.r, ctx))
    if not constant_time_eq(Point.base_mul(_r(key, ctx)).raw, field_.r):
        raise InvalidMessage()
    return key
