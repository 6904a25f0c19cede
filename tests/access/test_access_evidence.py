"""The evidence bundle: verify passes on an honest bundle and fails on any tamper."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from overt.access import (
    AccessItem,
    AccessRequest,
    EvidenceBatch,
    EvidenceBundle,
    EvidenceItem,
    EvidenceRejected,
    GroupMembers,
    SessionKeys,
    ShareResponse,
    collect,
    open_group,
    verify_evidence,
    warrant_commitment,
)
from overt.access.evidence import ItemKind
from overt.crypto import DeterministicRng, Point, Scalar
from overt.errors import DecodeError, InvalidMessage
from overt.protocol import EscrowPolicy, access
from overt.protocol.groups import create_group, create_sender_key, group_encrypt
from overt.protocol.identity import AccountIdentity
from overt.wire import Address, Content

from .support import EPOCH, MSG_MS, TRUST, World

Tamper = Callable[[EvidenceBundle], EvidenceBundle]


@pytest.fixture(scope="module")
def world() -> World:
    return World.build()


@pytest.fixture(scope="module")
def bundle(world: World) -> EvidenceBundle:
    return world.evidence()


def _keys(world: World) -> dict[int, Point]:
    return {EPOCH: world.transcript.public_key()}


def test_honest_bundle_verifies(world: World, bundle: EvidenceBundle) -> None:
    data = bundle.encode()
    assert EvidenceBundle.decode(data) == bundle
    v = verify_evidence(data, TRUST, _keys(world))
    assert [m.body for m in v.messages] == [b for _, _, b in world.targeted]
    assert v.warrant == world.warrant
    assert v.messages[0].sender == world.alice.address
    directory = {d.address: d.entry() for d in (world.alice, world.bob)}
    verify_evidence(bundle, TRUST, _keys(world), directory=directory)


def _batch(b: EvidenceBundle, **kw: Any) -> EvidenceBundle:
    return replace(b, batches=(replace(b.batches[0], **kw),))


def _item(b: EvidenceBundle, k: int, **kw: Any) -> EvidenceBundle:
    items = list(b.batches[0].items)
    items[k] = replace(items[k], **kw)
    return _batch(b, items=tuple(items))


def _session(b: EvidenceBundle, k: int) -> SessionKeys:
    s = b.batches[0].items[k].session
    assert s is not None
    return s


def _flip(data: bytes, at: int = -1) -> bytes:
    out = bytearray(data)
    out[at] ^= 1
    return bytes(out)


def _other_bundle(world: World) -> EvidenceBundle:
    return world.evidence(custodians=(3, 4, 5))


TAMPERS: dict[str, Tamper] = {
    "warrant signature": lambda b: replace(
        b, warrant=b.warrant.replace(b'"max_messages":100', b'"max_messages":101')),
    "warrant proof": lambda b: replace(b, warrant_proof=b"c2sp.org/tlog-proof@v1\nindex 0\n\n"),
    "envelope ciphertext": lambda b: _item(b, 0, message=_flip(b.batches[0].items[0].message)),
    "envelope header": lambda b: _item(b, 0, message=_flip(b.batches[0].items[0].message, 40)),
    "recorded context": lambda b: _item(b, 0, context=b.batches[0].items[1].context),
    "combined point": lambda b: _item(b, 0, combined=b.batches[0].items[1].combined),
    "recovered key": lambda b: _item(b, 0, message_key=bytes(32)),
    "plaintext": lambda b: _item(b, 0, content=Content(bytes(32), b"forged").encode()),
    "session keys": lambda b: _item(b, 1, session=replace(_session(b, 1),
                                                          recipient_dh=bytes(32))),
    "initiator flag": lambda b: _item(b, 0, session=replace(_session(b, 0),
                                                            sender_initiated=False)),
    "share proof": lambda b: _batch(b, responses=(
        replace(b.batches[0].responses[0], proof=bytes(64)), *b.batches[0].responses[1:])),
    "share point": lambda b: _batch(b, responses=(
        replace(b.batches[0].responses[0], shares=(
            Point.base_mul(Scalar.from_int(2)), *b.batches[0].responses[0].shares[1:])),
        *b.batches[0].responses[1:])),
    "too few shares": lambda b: _batch(b, responses=b.batches[0].responses[:2]),
    "missing receipt": lambda b: _batch(b, receipts=b.batches[0].receipts[1:]),
    "receipt count": lambda b: _batch(b, receipts=(
        replace(b.batches[0].receipts[0], receipt=replace(b.batches[0].receipts[0].receipt,
                                                          count=99)),
        *b.batches[0].receipts[1:])),
    "receipt proof": lambda b: _batch(b, receipts=(
        replace(b.batches[0].receipts[0], proof=b.batches[0].receipts[1].proof),
        *b.batches[0].receipts[1:])),
    "dropped message": lambda b: _batch(b, items=b.batches[0].items[1:]),
    "duplicated batch": lambda b: replace(b, batches=(b.batches[0], b.batches[0])),
    "transcript": lambda b: _batch(b, transcript=b.batches[0].transcript[:-32] + Point.base_mul(
        Scalar.from_int(7)).raw),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(TAMPERS))
def test_any_tamper_fails(world: World, bundle: EvidenceBundle, name: str) -> None:
    bad = TAMPERS[name](bundle)
    with pytest.raises((EvidenceRejected, DecodeError)):
        verify_evidence(bad, TRUST, _keys(world))


def test_rejection_says_which_check(world: World, bundle: EvidenceBundle) -> None:
    with pytest.raises(EvidenceRejected, match="custodian 1's share proof") as info:
        verify_evidence(TAMPERS["share proof"](bundle), TRUST, _keys(world))
    assert isinstance(info.value, InvalidMessage)
    with pytest.raises(EvidenceRejected, match="no access receipt of custodian 1"):
        verify_evidence(TAMPERS["missing receipt"](bundle), TRUST, _keys(world))
    with pytest.raises(EvidenceRejected, match="not the trusted key"):
        verify_evidence(bundle, TRUST, {EPOCH: Point.base_mul(Scalar.from_int(5))})
    wrong_dir = {world.alice.address: world.carol.entry(), world.bob.address: world.bob.entry()}
    with pytest.raises(EvidenceRejected, match="differ from the directory"):
        verify_evidence(bundle, TRUST, _keys(world), directory=wrong_dir)


def test_receipt_logged_before_the_warrant_is_rejected(world: World) -> None:
    early = World.build()
    # Re-log the warrant commitment after the receipts, and point the bundle at that copy.
    b = early.evidence()
    late_index = early.log.append(warrant_commitment(early.warrant)[0])
    moved = replace(b, warrant_proof=early.log.proof(late_index))
    with pytest.raises(EvidenceRejected, match="precedes the warrant"):
        verify_evidence(moved, TRUST, {EPOCH: early.transcript.public_key()})


def test_group_message_evidence(world: World) -> None:
    rng = DeterministicRng(8)
    admin = AccountIdentity.generate(b"bob", rng)
    state, _ = create_group(admin, Address(b"bob", 1), b"g", {b"alice": [1], b"bob": [1]}, rng)
    key, _ = create_sender_key(state, rng)
    policy = EscrowPolicy(EPOCH, world.transcript.public_key())
    msg, _ = group_encrypt(state, key, b"group secret", MSG_MS, rng, policy)
    assert msg.access is not None
    members = GroupMembers(state.membership.version, state.membership.members)
    ctx = access.group_context(EPOCH, msg.sender, msg.group_id, msg.member_set_hash,
                               msg.message_id, msg.timestamp_ms)  # fmt: skip
    request = AccessRequest(
        world.warrant.warrant_id, (AccessItem(ctx, Point.from_bytes(msg.access.r), members),)
    )
    responses, receipts = world.release(request)
    combined = collect(world.transcript, request.points, responses)
    item = open_group(msg.encode(), members, combined.points[0])
    assert item.kind is ItemKind.GROUP and Content.decode(item.content).body == b"group secret"
    batch = EvidenceBatch(world.transcript.encode(), (item,), tuple(responses.values()),
                          tuple(receipts))  # fmt: skip
    b = EvidenceBundle(world.warrant_bytes, world.log.proof(world.commitment_index), (batch,))
    v = verify_evidence(EvidenceBundle.decode(b.encode()), TRUST, _keys(world))
    assert v.messages[0].group_id == msg.group_id and v.messages[0].body == b"group secret"
    with pytest.raises(InvalidMessage):
        open_group(msg.encode(), members, combined.points[0] + combined.points[0])
    stripped = replace(item, group_members=GroupMembers(members.version, members.members[1:]))
    b2 = EvidenceBundle(world.warrant_bytes, world.log.proof(world.commitment_index),
                (replace(batch, items=(stripped,)),))  # fmt: skip
    with pytest.raises(EvidenceRejected, match="outside the warrant"):
        verify_evidence(b2, TRUST, _keys(world))


def test_decode_is_strict(bundle: EvidenceBundle) -> None:
    data = bundle.encode()
    for bad in (data + b"\x00", data[:-1], b"\x02" + data[1:]):
        with pytest.raises(DecodeError):
            EvidenceBundle.decode(bad)
    assert ShareResponse.decode(bundle.batches[0].responses[0].encode())
    assert isinstance(bundle.batches[0].items[0], EvidenceItem)
