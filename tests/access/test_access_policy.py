"""The custodian's decision: every refusal of DESIGN §6, and approval."""

from __future__ import annotations

from dataclasses import replace

import pytest

from overt.access import (
    AccessItem,
    AccessRequest,
    Approved,
    Delivery,
    GroupMembers,
    Refusal,
    Refused,
    Revocation,
    contexts_hash,
    sign_revocation,
    sign_warrant,
    warrant_commitment,
)
from overt.access.custodian_policy import AccessTrust
from overt.access.limits import DAY_SECONDS
from overt.crypto import DeterministicRng, Point
from overt.errors import ConfigurationError
from overt.protocol import EscrowPolicy, access
from overt.protocol.groups import create_group, create_sender_key, group_encrypt
from overt.protocol.identity import AccountIdentity
from overt.transparency.manifest import NoAccess
from overt.wire import Address

from .support import (
    COURT,
    COURT_NAME,
    EPOCH,
    MSG_DAY,
    MSG_MS,
    NOW,
    ROGUE_COURT,
    T0,
    TRUST,
    World,
    make_warrant,
    manifest,
    signed,
)


@pytest.fixture(scope="module")
def world() -> World:
    return World.build()


def _targeted(world: World) -> AccessRequest:
    return world.request([env for env, _, _ in world.targeted])


def _refused(decision: object, reason: Refusal) -> Refused:
    assert isinstance(decision, Refused), decision
    assert decision.reason is reason, decision
    return decision


def test_approval_yields_the_receipt(world: World) -> None:
    request = _targeted(world)
    d = world.decide(request, custodian=4, used_count_so_far=3)
    assert isinstance(d, Approved)
    assert d.epoch == EPOCH and d.points == request.points
    r = d.receipt
    assert r.warrant_id == world.warrant.warrant_id
    assert r.custodian_id == TRUST.custodian_keys[3].raw == TRUST.custodian_id(4)
    assert r.count == len(request.items)
    assert r.contexts_hash == contexts_hash(request.contexts)
    assert AccessRequest.decode(request.encode()) == request


def test_forged_court_signature(world: World) -> None:
    data = bytearray(world.warrant_bytes)
    i = data.index(b'"signature":"') + 20
    data[i] = ord("A") if data[i] != ord("A") else ord("B")
    _refused(world.decide(_targeted(world), warrant_bytes=bytes(data)), Refusal.FORGED_SIGNATURE)


def test_unknown_court(world: World) -> None:
    rogue = replace(world.warrant, authorisation=replace(
        world.warrant.authorisation,
        approval=replace(world.warrant.authorisation.approval, court_key=ROGUE_COURT.public_key),
    ))  # fmt: skip
    d = world.decide(_targeted(world), warrant_bytes=sign_warrant(rogue, ROGUE_COURT))
    _refused(d, Refusal.UNKNOWN_COURT)


def test_malformed_warrant(world: World) -> None:
    _refused(world.decide(_targeted(world), warrant_bytes=b"{}"), Refusal.MALFORMED_WARRANT)


def test_request_for_another_warrant(world: World) -> None:
    request = replace(_targeted(world), warrant_id=bytes(32))
    _refused(world.decide(request), Refusal.WRONG_WARRANT)


def test_warrant_not_in_the_log(world: World) -> None:
    other = make_warrant(seed="w-unlogged")
    # The proof shows the logged warrant's commitment, not this one's.
    request = replace(_targeted(world), warrant_id=other.warrant_id)
    d = world.decide(request, warrant_bytes=signed(other))
    _refused(d, Refusal.NOT_IN_LOG)
    # A proof of some other entry (the key-directory update at index 0).
    _refused(world.decide(_targeted(world), log_proof=world.log.proof(0)), Refusal.NOT_IN_LOG)


def test_log_proof_below_quorum(world: World) -> None:
    proof = world.log.proof(world.commitment_index, cosigners=1)
    d = _refused(world.decide(_targeted(world), log_proof=proof), Refusal.NOT_COSIGNED)
    assert "cosigned by 2" in d.detail
    _refused(world.decide(_targeted(world), log_proof=b"garbage"), Refusal.MALFORMED_LOG_PROOF)


def test_expired_and_not_yet_valid(world: World) -> None:
    end = world.warrant.window.end
    _refused(world.decide(_targeted(world), now=end), Refusal.EXPIRED)
    assert isinstance(world.decide(_targeted(world), now=end - 1), Approved)
    _refused(world.decide(_targeted(world), now=T0 - 1), Refusal.NOT_YET_VALID)


def test_revoked(world: World) -> None:
    rev = Revocation(world.warrant.warrant_id, COURT_NAME, COURT.public_key, NOW, "case closed")
    d = world.decide(_targeted(world), revocations=[sign_revocation(rev, COURT)])
    assert "case closed" in _refused(d, Refusal.REVOKED).detail
    # Forged, unlisted or unrelated revocations revoke nothing.
    rogue = Revocation(world.warrant.warrant_id, COURT_NAME, ROGUE_COURT.public_key, NOW, "x")
    unrelated = replace(rev, warrant_id=bytes(32))
    docs = [b"junk", sign_revocation(rogue, ROGUE_COURT), sign_revocation(unrelated, COURT)]
    assert isinstance(world.decide(_targeted(world), revocations=docs), Approved)


def test_context_naming_no_target(world: World) -> None:
    request = world.request([world.targeted[0][0], world.untargeted[0][0]])
    d = _refused(world.decide(request), Refusal.NOT_A_TARGET)
    assert d.item == 1


def test_context_outside_the_window(world: World) -> None:
    late = make_warrant(seed="w-late")  # a task window that ends before the messages' day
    task = replace(
        late.tasks[0], timespan=replace(late.tasks[0].timespan, end=MSG_DAY * DAY_SECONDS)
    )
    late = replace(late, tasks=(task,))
    log_index = world.log.append(warrant_commitment(late)[0])
    request = replace(_targeted(world), warrant_id=late.warrant_id)
    d = world.decide(request, warrant_bytes=signed(late), log_proof=world.log.proof(log_index))
    _refused(d, Refusal.OUTSIDE_WINDOW)
    # One second short of the whole day: still outside (day granularity, conservative).
    task = replace(task, timespan=replace(task.timespan, end=(MSG_DAY + 1) * DAY_SECONDS - 1))
    edge = replace(late, tasks=(task,))
    log_index = world.log.append(warrant_commitment(edge)[0])
    d = world.decide(request, warrant_bytes=signed(edge), log_proof=world.log.proof(log_index))
    _refused(d, Refusal.OUTSIDE_WINDOW)


def test_metadata_only_warrant(world: World) -> None:
    meta = make_warrant(seed="w-meta", delivery=Delivery.METADATA)
    log_index = world.log.append(warrant_commitment(meta)[0])
    request = replace(_targeted(world), warrant_id=meta.warrant_id)
    d = world.decide(request, warrant_bytes=signed(meta), log_proof=world.log.proof(log_index))
    _refused(d, Refusal.METADATA_ONLY)


def test_cap_exceeded(world: World) -> None:
    request = _targeted(world)
    n = len(request.items)
    assert isinstance(world.decide(request, used_count_so_far=100 - n), Approved)
    d = _refused(world.decide(request, used_count_so_far=100 - n + 1), Refusal.CAP_EXCEEDED)
    assert "cap of 100" in d.detail


def test_destroyed_epoch(world: World) -> None:
    _refused(world.decide(_targeted(world), epochs_alive={EPOCH: False}), Refusal.EPOCH_UNAVAILABLE)
    _refused(world.decide(_targeted(world), epochs_alive={}), Refusal.EPOCH_UNAVAILABLE)


def test_malformed_requests(world: World) -> None:
    req = _targeted(world)
    twice = replace(req, items=(req.items[0], req.items[0]))
    _refused(world.decide(twice), Refusal.MALFORMED_REQUEST)
    same_point = replace(req, items=(req.items[0], replace(req.items[1], point=req.items[0].point)))
    _refused(world.decide(same_point), Refusal.MALFORMED_REQUEST)
    _refused(world.decide(replace(req, items=())), Refusal.MALFORMED_REQUEST)
    junk = replace(req, items=(AccessItem(b"junk", req.items[0].point),))
    _refused(world.decide(junk), Refusal.MALFORMED_CONTEXT)
    ctx = access.context(EPOCH + 1, Address(b"alice", 1), Address(b"bob", 1), bytes(32),
                         bytes(16), MSG_MS)  # fmt: skip
    other_epoch = AccessItem(ctx, req.items[0].point)
    mixed = replace(req, items=(req.items[1], other_epoch))
    _refused(world.decide(mixed), Refusal.MALFORMED_REQUEST)


def test_sealed_too_long(world: World) -> None:
    long = make_warrant(seed="w-long", seal_days=200)
    log_index = world.log.append(warrant_commitment(long)[0])
    request = replace(_targeted(world), warrant_id=long.warrant_id)
    d = world.decide(request, warrant_bytes=sign_warrant(long, COURT),
                     log_proof=world.log.proof(log_index))  # fmt: skip
    _refused(d, Refusal.SEALED_TOO_LONG)


def test_group_context_needs_matching_member_list(world: World) -> None:
    rng = DeterministicRng(5)
    admin = AccountIdentity.generate(b"bob", rng)
    members = {b"alice": [1], b"bob": [1], b"dave": [1]}
    state, _ = create_group(admin, Address(b"bob", 1), b"g", members, rng)
    key, _ = create_sender_key(state, rng)
    policy = EscrowPolicy(EPOCH, world.transcript.public_key())
    msg, _ = group_encrypt(state, key, b"to the group", MSG_MS, rng, policy)
    assert msg.access is not None
    ctx = access.group_context(EPOCH, msg.sender, msg.group_id, msg.member_set_hash,
                               msg.message_id, msg.timestamp_ms)  # fmt: skip
    m = state.membership
    point = Point.from_bytes(msg.access.r)
    good = GroupMembers(m.version, m.members)
    req = AccessRequest(world.warrant.warrant_id, (AccessItem(ctx, point, good),))
    assert isinstance(world.decide(req), Approved)  # alice is a member
    assert AccessRequest.decode(req.encode()) == req
    wrong = GroupMembers(m.version, tuple(x for x in m.members if x.account != b"alice"))
    d = world.decide(replace(req, items=(AccessItem(ctx, point, wrong),)))
    _refused(d, Refusal.GROUP_MEMBERS_MISMATCH)
    d = world.decide(replace(req, items=(AccessItem(ctx, point, None),)))
    _refused(d, Refusal.GROUP_MEMBERS_MISMATCH)
    # A group without any target.
    state2, _ = create_group(admin, Address(b"bob", 1), b"g2", {b"bob": [1], b"dave": [1]}, rng)
    key2, _ = create_sender_key(state2, rng)
    msg2, _ = group_encrypt(state2, key2, b"no target here", MSG_MS, rng, policy)
    assert msg2.access is not None
    ctx2 = access.group_context(EPOCH, msg2.sender, msg2.group_id, msg2.member_set_hash,
                                msg2.message_id, msg2.timestamp_ms)  # fmt: skip
    m2 = state2.membership
    item = AccessItem(ctx2, Point.from_bytes(msg2.access.r), GroupMembers(m2.version, m2.members))
    _refused(world.decide(replace(req, items=(item,))), Refusal.NOT_A_TARGET)


def test_trust_needs_escrow() -> None:
    with pytest.raises(ConfigurationError):
        AccessTrust.from_manifest(replace(manifest(), access=NoAccess()))


def test_context_released_before_with_another_point(world: World) -> None:
    """The oracle bound: a target's context cannot be paired with a second point."""
    request = _targeted(world)
    first, second = request.items[0], request.items[1]
    same = {first.context: first.point.raw}
    assert isinstance(world.decide(request, released=same), Approved)
    swapped = {first.context: second.point.raw}
    d = _refused(world.decide(request, released=swapped), Refusal.CONTEXT_REUSED)
    assert d.item == 0
