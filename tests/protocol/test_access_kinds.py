"""The three access-context kinds: content (one-to-one), group, and key material (a one-to-one
message carrying a sender key). Their contexts never coincide; the recipient's check says
which of content and key material a field was made under, and is not weakened by trying two;
and no custodian share opens a key-material field, whatever context the requester claims."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from overt.crypto import DeterministicRng, Point, Scalar, hkdf_sha256
from overt.errors import InvalidMessage, LocalError, PolicyViolation
from overt.protocol import AccessKind, Device, EscrowPolicy, access
from overt.wire import Address

from .helpers import Pair, evil_encrypt, make_policy, prekey_snapshot, snapshot

addresses = st.builds(Address, st.binary(min_size=1, max_size=64),
                      st.integers(min_value=0, max_value=2**32 - 1))  # fmt: skip
epochs = st.integers(min_value=0, max_value=2**32 - 1)
ids32 = st.binary(min_size=32, max_size=32)
ids16 = st.binary(min_size=16, max_size=16)
times = st.integers(min_value=0, max_value=2**40)
keys = st.binary(min_size=32, max_size=32)

X = Scalar.from_int(0x5EC12E7)
POLICY = EscrowPolicy(7, Point.base_mul(X))


def _attacker_key(field_r: bytes, field_c: bytes, shared: Point, ctx: bytes) -> bytes:
    """What a holder of ``x·R`` computes as the message key under ``ctx`` (the published
    construction, without :func:`access.recover`'s check)."""
    pad = hkdf_sha256(shared.raw, field_r, b"Overt_AF_pad_v1" + ctx, 32)
    return bytes(a ^ b for a, b in zip(field_c, pad, strict=True))


@settings(max_examples=200)
@given(epochs, addresses, addresses, ids32, ids16, times, ids32)
def test_the_three_contexts_never_coincide(
    epoch: int, sender: Address, recipient: Address, cid: bytes, mid: bytes, t: int, msh: bytes
) -> None:
    content = access.context(epoch, sender, recipient, cid, mid, t)
    keys_ = access.key_context(epoch, sender, recipient, cid, mid, t)
    group = access.group_context(epoch, sender, cid, msh, mid, t)
    assert len({content, keys_, group}) == 3
    # The same fields, another label: the labels differ at their tenth byte.
    assert keys_.removeprefix(b"Overt_AF_keys_ctx_v1") == content.removeprefix(b"Overt_AF_ctx_v1")
    assert content[9:10] == b"c" and keys_[9:10] == b"k" and group[9:10] == b"g"
    assert access.is_key_context(keys_)
    assert not access.is_key_context(content) and not access.is_key_context(group)
    for kind, ctx in ((AccessKind.CONTENT, content), (AccessKind.KEY_MATERIAL, keys_)):
        assert access.direct_context(kind, epoch, sender, recipient, cid, mid, t) == ctx


@settings(max_examples=50)
@given(keys, addresses, addresses, ids32, ids16, times)
def test_the_check_says_which_kind_and_nothing_else_passes(
    mk: bytes, sender: Address, recipient: Address, cid: bytes, mid: bytes, t: int
) -> None:
    fields = (POLICY.epoch, sender, recipient, cid, mid, t)
    content, keys_ = access.context(*fields), access.key_context(*fields)
    as_content = access.create(POLICY.epoch, POLICY.public_key, mk, content)
    as_keys = access.create(POLICY.epoch, POLICY.public_key, mk, keys_)
    assert as_content != as_keys
    check = access.check_direct
    assert check(POLICY, as_content, mk, content, keys_) is AccessKind.CONTENT
    assert check(POLICY, as_keys, mk, content, keys_) is AccessKind.KEY_MATERIAL
    assert check(None, None, mk, content, keys_) is None
    group = access.group_context(POLICY.epoch, sender, cid, bytes(32), mid, t)
    other_mid = bytes(16) if mid != bytes(16) else b"\x01" * 16
    for wrong in (
        access.create(POLICY.epoch, POLICY.public_key, mk, group),  # a group message's field
        access.create(POLICY.epoch, POLICY.public_key, mk,
                      access.key_context(POLICY.epoch, sender, recipient, cid, other_mid, t)),
        access.create(POLICY.epoch, POLICY.public_key, bytes(a ^ 1 for a in mk), keys_),
        None,
    ):  # fmt: skip
        with pytest.raises(PolicyViolation):
            check(POLICY, wrong, mk, content, keys_)
    with pytest.raises(PolicyViolation):  # a field where the policy is none, of either kind
        check(None, as_keys, mk, content, keys_)


@settings(max_examples=30)
@given(keys, addresses, addresses, ids32, ids16, times)
def test_no_share_opens_key_material_under_any_claimed_context(
    mk: bytes, sender: Address, recipient: Address, cid: bytes, mid: bytes, t: int
) -> None:
    fields = (POLICY.epoch, sender, recipient, cid, mid, t)
    content, keys_ = access.context(*fields), access.key_context(*fields)
    # The attacker's computation is the right one: it opens a content field.
    f = access.create(POLICY.epoch, POLICY.public_key, mk, content)
    assert _attacker_key(f.r, f.c, Point.from_bytes(f.r).mul(X), content) == mk
    assert access.recover(f, Point.from_bytes(f.r).mul(X), content) == mk
    # x·R of a key-material field, under either label, gives no key.
    f = access.create(POLICY.epoch, POLICY.public_key, mk, keys_)
    shared = Point.from_bytes(f.r).mul(X)
    for ctx in (content, keys_):
        assert _attacker_key(f.r, f.c, shared, ctx) != mk
    with pytest.raises(InvalidMessage):
        access.recover(f, shared, content)
    with pytest.raises(LocalError, match="never released"):
        access.recover(f, shared, keys_)


def test_the_session_carries_the_kind_the_sender_chose() -> None:
    policy, _ = make_policy()
    pair = Pair.make(policy=policy)
    now = 1_700_000_000_000
    env = pair.alice.encrypt(pair.bob.address, b"a sender key", now_ms=now,
                             access_kind=AccessKind.KEY_MATERIAL)  # fmt: skip
    assert pair.bob.decrypt(env).access_kind is AccessKind.KEY_MATERIAL
    assert pair.bob.decrypt(pair.send(pair.alice, b"text")).access_kind is AccessKind.CONTENT
    assert pair.alice.decrypt(pair.send(pair.bob, b"reply")).access_kind is AccessKind.CONTENT

    plain = Pair.make(seed=2)
    env = plain.alice.encrypt(plain.bob.address, b"no policy", now_ms=now,
                              access_kind=AccessKind.KEY_MATERIAL)  # fmt: skip
    assert env.access is None and plain.bob.decrypt(env).access_kind is None


def test_every_fanout_copy_carries_the_kind() -> None:
    policy, _ = make_policy()
    rng = DeterministicRng("fanout kinds")
    alice = Device.create(b"alice", 1, rng=rng, policy=policy)
    bobs = [Device.create(b"bob", d, rng=rng, policy=policy) for d in (1, 2)]
    _, envs = alice.encrypt_fanout(
        [b.address for b in bobs], b"sender key", now_ms=1_700_000_000_000,
        conversation_id=bytes(32), bundles={b.address: b.prekey_bundle() for b in bobs},
        access_kind=AccessKind.KEY_MATERIAL,
    )  # fmt: skip
    for bob, env in zip(bobs, envs, strict=True):
        assert bob.decrypt(env).access_kind is AccessKind.KEY_MATERIAL


def _another_recipient(
    epoch: int, sender: Address, recipient: Address, cid: bytes, mid: bytes, t: int
) -> bytes:
    return access.key_context(epoch, sender, Address(recipient.account, 99), cid, mid, t)


def _a_group(
    epoch: int, sender: Address, recipient: Address, cid: bytes, mid: bytes, t: int
) -> bytes:
    return access.group_context(epoch, sender, cid, bytes(32), mid, t)


@pytest.mark.parametrize("wrong", [_another_recipient, _a_group])
def test_a_field_under_any_other_context_is_refused_and_changes_nothing(
    wrong: Callable[[int, Address, Address, bytes, bytes, int], bytes],
) -> None:
    policy, _ = make_policy()
    pair = Pair.make(policy=policy)
    env = evil_encrypt(pair.alice, pair.bob.address, b"elsewhere", access_context=wrong)
    before = snapshot(pair.bob), prekey_snapshot(pair.bob)
    with pytest.raises(PolicyViolation):
        pair.bob.decrypt(env)
    assert (snapshot(pair.bob), prekey_snapshot(pair.bob)) == before
    # The key context of the message itself passes the protocol (the client judges the body).
    env = evil_encrypt(pair.alice, pair.bob.address, b"keys", access_context=access.key_context)
    assert pair.bob.decrypt(env).access_kind is AccessKind.KEY_MATERIAL
