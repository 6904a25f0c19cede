"""Reading the access context ``ctx`` of :mod:`overt.protocol.access` back into its fields.

A custodian must know whom a message concerns before it releases a share for it, and the
access field names that only through ``ctx``, the canonical bytes the sender hashed into ``r``
and the key-derivation pad. :func:`decode_context` is the inverse of
:func:`overt.protocol.access.context` (one-to-one messages),
:func:`overt.protocol.access.group_context` (group messages) and
:func:`overt.protocol.access.key_context` (one-to-one messages carrying key material)::

    "Overt_AF_ctx_v1"       ‖ epoch u32 ‖ Address sender ‖ Address recipient ‖
                              conversation_id[32] ‖ message_id[16] ‖ day u32
    "Overt_AF_group_ctx_v1" ‖ epoch u32 ‖ Address sender ‖ group_id[32] ‖
                              member_set_hash[32] ‖ message_id[16] ‖ day u32
    "Overt_AF_keys_ctx_v1"  ‖ (the fields of a one-to-one context)

where ``Address`` is ``account<1..64> ‖ device u32`` and ``day`` is the sender's timestamp in
whole UTC days since the Unix epoch. Decoding is strict, and to stay exactly in step with the
protocol code (which owns the format) every decoded context is re-encoded through those
functions and must come out byte for byte identical; anything else is a
:class:`overt.errors.DecodeError`.

A key context decodes to a :class:`KeyContext` only so that it can be named and refused: key
material (a sender-key distribution) is never released (``key_material`` in
:mod:`overt.access.custodian_policy`), and no custodian share would open it anyway.

The context carries the *day*, not the time: a custodian's window check is therefore at day
granularity (see :func:`overt.access.warrant.Task.covers_day`).

This module never sees keys, sockets or clocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Final, TypeAlias

from overt.errors import DecodeError
from overt.protocol import access as af
from overt.wire import Address, Reader
from overt.wire.messages import CONVERSATION_ID_LEN, MESSAGE_ID_LEN

DIRECT_LABEL: Final = b"Overt_AF_ctx_v1"
"""The label a one-to-one context starts with (:func:`overt.protocol.access.context`)."""

GROUP_LABEL: Final = b"Overt_AF_group_ctx_v1"
"""The label a group context starts with (:func:`overt.protocol.access.group_context`)."""

KEYS_LABEL: Final = b"Overt_AF_keys_ctx_v1"
"""The label a key-material context starts with (:func:`overt.protocol.access.key_context`)."""

GROUP_ID_LEN: Final = 32
MEMBER_SET_HASH_LEN: Final = 32
DAY_MS: Final = af.DAY_MS

MAX_CONTEXT_BYTES: Final = len(GROUP_LABEL) + 4 + 2 * (1 + 64 + 4) + 32 + 32 + 16 + 4
"""Longest well-formed context (a group label and two 64-byte account ids bound it above)."""


@dataclass(frozen=True, slots=True)
class _OneToOne:
    """The fields of a one-to-one context (one recipient device), of either kind."""

    KIND: ClassVar[af.AccessKind]

    epoch: int
    sender: Address
    recipient: Address
    conversation_id: bytes
    message_id: bytes
    day: int

    def encode(self) -> bytes:
        return af.direct_context(
            self.KIND, self.epoch, self.sender, self.recipient, self.conversation_id,
            self.message_id, self.day * DAY_MS,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class DirectContext(_OneToOne):
    """The context of one copy of a one-to-one message (one recipient device)."""

    KIND: ClassVar[af.AccessKind] = af.AccessKind.CONTENT

    @property
    def accounts(self) -> frozenset[bytes]:
        """The accounts this message concerns: its sender and its recipient."""
        return frozenset((self.sender.account, self.recipient.account))


@dataclass(frozen=True, slots=True)
class GroupContext:
    """The context of one group message (one ciphertext for the whole member set)."""

    epoch: int
    sender: Address
    group_id: bytes
    member_set_hash: bytes
    message_id: bytes
    day: int

    def encode(self) -> bytes:
        return af.group_context(
            self.epoch, self.sender, self.group_id, self.member_set_hash, self.message_id,
            self.day * DAY_MS,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class KeyContext(_OneToOne):
    """The context of one copy of a one-to-one message that carries key material (a
    sender-key distribution): never released."""

    KIND: ClassVar[af.AccessKind] = af.AccessKind.KEY_MATERIAL


AccessContext: TypeAlias = DirectContext | GroupContext | KeyContext
"""A decoded access context."""


def decode_context(ctx: bytes) -> AccessContext:
    """Decode a canonical access context; :class:`DecodeError` for anything else."""
    if not isinstance(ctx, bytes | bytearray) or len(ctx) > MAX_CONTEXT_BYTES:
        raise DecodeError("access context: not bytes of a plausible length")
    ctx = bytes(ctx)
    out: AccessContext
    if ctx.startswith(GROUP_LABEL):
        r = Reader(ctx[len(GROUP_LABEL) :], "group access context")
        out = GroupContext(
            epoch=r.u32("epoch"),
            sender=Address.read(r),
            group_id=r.fixed(GROUP_ID_LEN, "group id"),
            member_set_hash=r.fixed(MEMBER_SET_HASH_LEN, "member-set hash"),
            message_id=r.fixed(MESSAGE_ID_LEN, "message id"),
            day=r.u32("day"),
        )
    elif ctx.startswith(DIRECT_LABEL) or ctx.startswith(KEYS_LABEL):
        keys = ctx.startswith(KEYS_LABEL)
        label = KEYS_LABEL if keys else DIRECT_LABEL
        r = Reader(ctx[len(label) :], "key access context" if keys else "access context")
        fields = (
            r.u32("epoch"),
            Address.read(r),
            Address.read(r),
            r.fixed(CONVERSATION_ID_LEN, "conversation id"),
            r.fixed(MESSAGE_ID_LEN, "message id"),
            r.u32("day"),
        )
        out = KeyContext(*fields) if keys else DirectContext(*fields)
    else:
        raise DecodeError("access context: unknown label")
    r.finish()
    if out.encode() != ctx:  # the protocol module owns the format: agree with it exactly
        raise DecodeError("access context: not the canonical encoding")
    return out
