"""The custodians' confirmations of an escrow epoch: what makes a logged epoch key theirs.

After a DKG run each custodian signs a ``CONFIRMATION`` whose body is the SHA-256 of the
transcript it computed (:class:`~overt.access.dkg.DkgTranscript`), as a custodian message
signed with its manifest key over ::

    "Overt_CustodianMessage_v1\\n" ‖ session_id[32] ‖ kind u8 (5) ‖ custodian u8 ‖ body<0..2^32-1>

(:func:`message_signed_part`, the input of every signed DKG message of
:mod:`overt.services.custodian_wire`). An epoch key is the custodians' only if **every**
custodian of the manifest confirmed exactly its transcript for exactly its session
(:func:`verify_confirmations`): the provider checks it before logging the ``EpochKey``, keeps
the confirmations with the transcript, and every client checks them again before escrowing to
the key — so a provider that made up a transcript (with a key it knows the secret of) for the
right session cannot get an honest client to use it.

**Encoding** of the kept confirmations (:func:`encode_confirmations`), versioned binary::

    version u8 (1) ‖ count u8 ‖ count × (custodian u8 ‖ body<0..255> ‖ signature[64])

in custodian order, each custodian at most once; decoding is strict.

This module is pure: no sockets, files or clocks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from overt.access.limits import MAX_CUSTODIANS, SESSION_ID_LEN
from overt.crypto import ED25519_SIG_LEN, Ed25519PublicKey, constant_time_eq
from overt.errors import DecodeError, ProtocolViolation
from overt.wire import Reader, Writer

MESSAGE_CONTEXT: Final = b"Overt_CustodianMessage_v1\n"
"""Domain separation of every signed custodian (DKG) message."""

CONFIRMATION_KIND: Final = 5
"""The message kind of a confirmation (``MessageKind.CONFIRMATION``)."""

CONFIRMATIONS_VERSION: Final = 1
"""The encoding version of the kept confirmations."""

MAX_CONFIRMATION_BODY: Final = 64
"""Longest confirmation body decoded (an honest one is a 32-byte SHA-256)."""


def message_signed_part(session: bytes, kind: int, sender: int, body: bytes) -> bytes:
    """What custodian ``sender`` signs for a ``kind`` message of ``session`` with ``body``."""
    w = Writer().raw(MESSAGE_CONTEXT).fixed(session, SESSION_ID_LEN).u8(kind).u8(sender)
    return w.vec(body, 4).getvalue()


@dataclass(frozen=True, slots=True)
class Confirmation:
    """Custodian ``custodian`` (1-based, manifest order) confirming transcript digest ``body``."""

    custodian: int
    body: bytes
    signature: bytes = field(repr=False)


def encode_confirmations(confirmations: Sequence[Confirmation]) -> bytes:
    """The kept form of ``confirmations`` (see the module docstring)."""
    w = Writer().u8(CONFIRMATIONS_VERSION).u8(len(confirmations))
    for c in sorted(confirmations, key=lambda c: c.custodian):
        w.u8(c.custodian).vec(c.body, 1).fixed(c.signature, ED25519_SIG_LEN)
    return w.getvalue()


def decode_confirmations(data: bytes) -> tuple[Confirmation, ...]:
    """Strict inverse of :func:`encode_confirmations`; :class:`DecodeError` otherwise (also
    for a custodian named twice or out of order)."""
    r = Reader(data, "epoch confirmations")
    r.version(CONFIRMATIONS_VERSION)
    count = r.u8("count")
    if count > MAX_CUSTODIANS:
        raise DecodeError(f"epoch confirmations: more than {MAX_CUSTODIANS}")
    out: list[Confirmation] = []
    for _ in range(count):
        custodian = r.u8("custodian")
        if not 1 <= custodian <= MAX_CUSTODIANS or (out and custodian <= out[-1].custodian):
            raise DecodeError("epoch confirmations: custodians out of order or repeated")
        body = r.vec(1, "body", MAX_CONFIRMATION_BODY)
        out.append(Confirmation(custodian, body, r.fixed(ED25519_SIG_LEN, "signature")))
    r.finish()
    return tuple(out)


def verify_confirmations(
    confirmations: Sequence[Confirmation],
    session: bytes,
    digest: bytes,
    keys: Sequence[Ed25519PublicKey],
) -> None:
    """Check that every custodian (``keys``: the manifest's, in order) signed a confirmation
    of exactly ``digest`` (the SHA-256 of the transcript) for ``session``.

    :class:`InvalidMessage` (no reason) if a signature does not verify under the key of the
    custodian it names; :class:`ProtocolViolation` naming the custodian for one outside the
    manifest, one named twice, one missing, or one that confirmed another digest.
    """
    by: dict[int, bytes] = {}
    for c in confirmations:
        if not 1 <= c.custodian <= len(keys):
            raise ProtocolViolation(f"a confirmation names custodian {c.custodian}, not listed")
        keys[c.custodian - 1].verify(
            c.signature, message_signed_part(session, CONFIRMATION_KIND, c.custodian, c.body)
        )
        if c.custodian in by:
            raise ProtocolViolation(f"custodian {c.custodian} sent two confirmation messages")
        by[c.custodian] = c.body
    for j in range(1, len(keys) + 1):
        body = by.get(j)
        if body is None:
            raise ProtocolViolation(f"custodian {j} did not confirm the transcript")
        if not constant_time_eq(body, digest):
            raise ProtocolViolation(f"custodian {j} confirmed another transcript")


__all__ = [
    "CONFIRMATIONS_VERSION",
    "CONFIRMATION_KIND",
    "MESSAGE_CONTEXT",
    "Confirmation",
    "decode_confirmations",
    "encode_confirmations",
    "message_signed_part",
    "verify_confirmations",
]
