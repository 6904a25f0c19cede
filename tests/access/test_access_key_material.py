"""Key material under a warrant: a key context decodes and is refused by every custodian
(``key_material``), counting and releasing nothing; a request that relabels a distribution's
point as content is approved (the custodian cannot tell) but its shares open nothing; the
evidence never holds a key context; the agency's tool never asks for a message that may be key
material; and it says that group messages' sender-key signatures are not checked."""

from __future__ import annotations

from dataclasses import replace

import pytest

from overt.access import (
    AccessItem,
    AccessRequest,
    Approved,
    DirectContext,
    EvidenceBatch,
    EvidenceBundle,
    EvidenceItem,
    EvidenceRejected,
    GroupMembers,
    KeyContext,
    Refusal,
    Refused,
    collect,
    decode_context,
    open_direct,
    verify_evidence,
)
from overt.access.custodian_policy import KEY_MATERIAL_REFUSED, check_covered
from overt.access.evidence import ItemKind
from overt.crypto import DeterministicRng, Point, Scalar
from overt.errors import DecodeError, InvalidMessage, ProtocolViolation
from overt.protocol import AccessKind, Device, EscrowPolicy, access, direct_conversation_id
from overt.protocol.groups import create_group, create_sender_key, group_encrypt
from overt.protocol.identity import AccountIdentity
from overt.services import lea
from overt.services.custodian_client import InterceptedEnvelope
from overt.wire import Address, Content, Envelope

from .support import EPOCH, MSG_DAY, MSG_MS, TRUST, World, make_warrant, session_keys


@pytest.fixture(scope="module")
def world() -> World:
    return World.build()


def _key_context(env: Envelope) -> bytes:
    assert env.access is not None
    return access.key_context(env.access.epoch, env.sender, env.recipient, env.conversation_id,
                              env.message_id, env.timestamp_ms)  # fmt: skip


def _distribution(world: World, body: bytes = b"a sender key") -> Envelope:
    """alice's key-material message to bob (the session of the world's messages)."""
    env = world.alice.encrypt(world.bob.address, body, now_ms=MSG_MS + 50,
                              access_kind=AccessKind.KEY_MATERIAL)  # fmt: skip
    assert world.bob.decrypt(env).access_kind is AccessKind.KEY_MATERIAL
    return env


def test_a_key_context_decodes_to_its_own_kind() -> None:
    a, b = Address(b"alice", 1), Address(b"bob", 2)
    fields = (EPOCH, a, b, bytes(range(32)), bytes(16), MSG_MS)
    ctx = decode_context(access.key_context(*fields))
    assert ctx == KeyContext(EPOCH, a, b, bytes(range(32)), bytes(16), MSG_DAY)
    assert ctx.encode() == access.key_context(*fields)
    assert isinstance(decode_context(access.context(*fields)), DirectContext)
    for bad in (access.key_context(*fields) + b"\x00", access.key_context(*fields)[:-1]):
        with pytest.raises(DecodeError):
            decode_context(bad)
    with pytest.raises(ProtocolViolation, match="never released"):
        check_covered(make_warrant((b"alice",)), ctx, None)


def test_every_custodian_refuses_key_material_and_releases_nothing(world: World) -> None:
    env = _distribution(world)
    assert env.access is not None
    key_item = AccessItem(_key_context(env), Point.from_bytes(env.access.r))
    content = world.request([world.targeted[0][0]]).items[0]
    for items, at in (((key_item,), 0), ((content, key_item), 1)):
        request = AccessRequest(world.warrant.warrant_id, items)
        for custodian in range(1, 6):
            d = world.decide(request, custodian)
            assert isinstance(d, Refused), d
            assert (d.reason, d.item, d.detail) == (Refusal.KEY_MATERIAL, at, KEY_MATERIAL_REFUSED)
            assert Refusal(d.reason.value) is Refusal.KEY_MATERIAL  # the code the API sends
    # With a group member list, too (it does not turn key material into a group message).
    members = GroupMembers(1, ())
    d = world.decide(AccessRequest(world.warrant.warrant_id, (replace(key_item,
                     group_members=members),)))  # fmt: skip
    assert isinstance(d, Refused) and d.reason is Refusal.KEY_MATERIAL


def test_a_relabelled_distribution_is_counted_but_its_shares_open_nothing(world: World) -> None:
    """A requester who claims the content context for a distribution's point: the custodians
    cannot tell and approve (and count) it, but ``x·R`` of a key-material field is no key."""
    env = _distribution(world, b"the chain key")
    request = world.request([env])  # the content context, with the distribution's R
    assert isinstance(world.decide(request), Approved)
    responses, _ = world.release(request)
    (point,) = collect(world.transcript, request.points, responses).points
    with pytest.raises(InvalidMessage):
        open_direct(env.encode(), session_keys(world.alice, world.bob, True), point)
    assert env.access is not None
    with pytest.raises(InvalidMessage):
        access.recover(env.access, point, request.items[0].context)


def test_evidence_never_holds_a_key_context(world: World) -> None:
    bundle = world.evidence()
    batch = bundle.batches[0]
    first = batch.items[0]
    env = Envelope.decode(first.message)
    relabelled = replace(first, context=_key_context(env))
    bad = replace(bundle, batches=(replace(batch, items=(relabelled, *batch.items[1:])),))
    with pytest.raises(EvidenceRejected, match="key material is never released"):
        verify_evidence(bad, TRUST, {EPOCH: world.transcript.public_key()})


def _intercept(n: int, env: Envelope) -> InterceptedEnvelope:
    return InterceptedEnvelope(n, 100 + n, MSG_MS, "s", "r", env.encode())


def test_the_tool_never_asks_for_what_may_be_key_material() -> None:
    policy = EscrowPolicy(EPOCH, Point.base_mul(Scalar.from_int(1234)))
    rng = DeterministicRng("tool selection")
    alice = Device.create(b"alice", 1, rng=rng, policy=policy)
    alice2 = Device.create(b"alice", 2, rng=rng, policy=policy)
    bob = Device.create(b"bob", 1, rng=rng, policy=policy)
    for peer in (alice2, bob):
        alice.start_session(peer.prekey_bundle())
    direct = direct_conversation_id(b"alice", b"bob")
    group_id = bytes(range(32))
    envs = [
        alice.encrypt(bob.address, b"text", now_ms=MSG_MS, conversation_id=direct),
        # a distribution (or an update: the envelope does not say) in the group's conversation
        alice.encrypt(bob.address, b"key", now_ms=MSG_MS, conversation_id=group_id,
                      access_kind=AccessKind.KEY_MATERIAL),
        # the sync copy of the text to alice's other device: its peer (bob) is in the case
        alice.encrypt(alice2.address, b"text", now_ms=MSG_MS, conversation_id=direct),
        # a sync copy of a conversation with someone the case never saw
        alice.encrypt(alice2.address, b"?", now_ms=MSG_MS,
                      conversation_id=direct_conversation_id(b"alice", b"zed")),
    ]  # fmt: skip
    report = lea.DecryptReport()
    selected = lea._select(
        [_intercept(n, e) for n, e in enumerate(envs, 1)], make_warrant((b"alice",)), report
    )
    kept = [m.envelope for m in selected[EPOCH]]
    assert kept == [envs[0], envs[2]]
    assert [s.split(":")[0] for s in report.skipped] == ["intercept 2", "intercept 4"]
    for line in report.skipped:
        assert "possibly a sender-key distribution" in line and KEY_MATERIAL_REFUSED in line
    assert lea.names_conversation(envs[0], ()) and not lea.names_conversation(envs[1], ())


def test_the_tool_says_group_signatures_are_not_checked() -> None:
    rng = DeterministicRng("signature notes")
    admin = AccountIdentity.generate(b"bob", rng)
    state, _ = create_group(admin, Address(b"bob", 1), b"g", {b"alice": [1], b"bob": [1]}, rng)
    key, _ = create_sender_key(state, rng)
    policy = EscrowPolicy(EPOCH, Point.base_mul(Scalar.from_int(1234)))
    msg, _ = group_encrypt(state, key, b"hi", MSG_MS, rng, policy)
    content = Content(bytes(32), b"").encode()
    group_item = EvidenceItem(ItemKind.GROUP, msg.encode(), b"ctx", policy.public_key,
                              bytes(32), content, None, GroupMembers(1, ()))  # fmt: skip
    bundle = EvidenceBundle(b"w", b"p", (EvidenceBatch(b"t", (group_item,), (), ()),))
    (note,) = lea.signature_notes(bundle)
    assert note.startswith(f"group message {msg.message_id.hex()} from {msg.sender}: ")
    assert "not checked: the sender's distribution is key material and is never decrypted" in note
    assert lea.signature_notes(replace(bundle, batches=())) == []
