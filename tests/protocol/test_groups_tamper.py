"""Every way a group message can be wrong is refused with its typed error, and the receiving
device's group state is byte-for-byte unchanged afterwards: tampered bytes, forged signatures,
replays, non-members, lying franking commitments, missing or wrong access fields, and a
ciphertext built to be valid under two keys."""

from __future__ import annotations

import pytest

from overt.crypto import (
    DeterministicRng,
    Ed25519PrivateKey,
    Point,
    Scalar,
    aes256gcm_decrypt,
    aes256gcm_encrypt,
    open_sealed,
)
from overt.crypto._aead import _derive
from overt.errors import (
    DecodeError,
    DuplicateMessage,
    InvalidMessage,
    PolicyViolation,
    ProtocolViolation,
    RemoteError,
    UnknownSession,
)
from overt.protocol import EscrowPolicy, access, franking
from overt.protocol.groups import (
    _SEAL_LABEL,
    GroupState,
    MembershipUpdate,
    SenderKey,
    _kdf,
    apply_membership,
    group_decrypt,
    process_distribution,
    propose_membership,
)
from overt.wire import AccessField, Address, Content
from overt.wire.group_messages import GroupMessage, SenderKeyDistribution

from .helpers import make_policy
from .test_groups_support import Small, forge

A1, A2, B, C = Small.A1, Small.A2, Small.B, Small.C


def _mutations(data: bytes) -> list[bytes]:
    out = []
    for i in range(len(data)):
        b = bytearray(data)
        b[i] ^= 1 << (i % 8)
        out.append(bytes(b))
    return out


def _refused(
    state: GroupState, wire: bytes, policy: EscrowPolicy | None, error: type[RemoteError]
) -> None:
    """``wire`` is refused with exactly ``error`` and ``state`` does not change."""
    before = state.encode()
    with pytest.raises(RemoteError) as info:
        group_decrypt(state, wire, policy)
    assert type(info.value) is error, info.value
    if error is InvalidMessage:
        assert str(info.value) == "invalid message"
    assert state.encode() == before


@pytest.mark.parametrize("escrow", [False, True])
def test_every_byte_of_a_group_message(escrow: bool) -> None:
    policy = make_policy()[0] if escrow else None
    g = Small.make()
    g.states[C] = group_decrypt(g.states[C], g.send(A1, b"first", policy), policy)[1]
    wire = g.send(A1, b"an ordinary group message", policy)
    state = g.states[C]
    before = state.encode()
    for mutated in _mutations(wire):
        with pytest.raises(RemoteError) as info:
            group_decrypt(state, mutated, policy)
        assert isinstance(
            info.value,
            DecodeError | InvalidMessage | UnknownSession | ProtocolViolation | PolicyViolation,
        )
        assert state.encode() == before
    # …and the genuine message still decrypts afterwards.
    assert group_decrypt(state, wire, policy)[0].body == b"an ordinary group message"


def test_truncations_and_extensions_are_decode_errors() -> None:
    g = Small.make()
    wire = g.send(A1, b"x")
    for n in range(len(wire)):
        with pytest.raises(DecodeError):
            GroupMessage.decode(wire[:n])
    with pytest.raises(DecodeError):
        GroupMessage.decode(wire + b"\x00")
    dist = g.keys[B].distribution().encode()
    for n in range(len(dist)):
        with pytest.raises(DecodeError):
            SenderKeyDistribution.decode(dist[:n])
    with pytest.raises(DecodeError):
        SenderKeyDistribution.decode(b"\x02" + dist[1:])


def test_every_byte_of_a_membership_update() -> None:
    g = Small.make()
    update = propose_membership(g.states[A1], g.admin, {b"alice": [1, 2], b"bob": [1]})
    wire = update.encode()
    state = g.states[B]
    before = state.encode()
    for mutated in _mutations(wire):
        with pytest.raises(RemoteError):
            apply_membership(state, MembershipUpdate.decode(mutated), g.admin_keys)
        assert state.encode() == before
    assert apply_membership(state, MembershipUpdate.decode(wire), g.admin_keys).version == 2


def test_forged_signature() -> None:
    g = Small.make()
    rogue = Ed25519PrivateKey.generate(DeterministicRng(9))
    _refused(g.states[B], forge(g.states[A1], g.keys[A1], b"hi", signing_key=rogue), None,
             InvalidMessage)  # fmt: skip
    # Bob cannot speak as Alice: under her key id his signature fails, under his she has none.
    as_alice = forge(
        g.states[B], g.keys[A1], b"from alice?", sender=A1, signing_key=g.keys[B].signing_key
    )
    _refused(g.states[C], as_alice, None, InvalidMessage)
    bobs_key = forge(g.states[B], g.keys[B], b"from alice?", sender=A1)
    _refused(g.states[C], bobs_key, None, UnknownSession)


def test_replayed_message() -> None:
    g = Small.make()
    wire = g.send(A1, b"once")
    got, g.states[B] = group_decrypt(g.states[B], wire, None)
    assert got.body == b"once"
    _refused(g.states[B], wire, None, DuplicateMessage)


def test_message_from_a_non_member() -> None:
    g = Small.make()
    view = g.states[A1]
    mallory = Address(b"mallory", 1)
    key = SenderKey(view.group_id, 5, 1, 0, bytes(32), Ed25519PrivateKey.generate(g.rng))
    _refused(g.states[B], forge(view, key, b"let me in", sender=mallory), None, ProtocolViolation)
    # A removed member keeps its sender key and knows the new member set: still refused.
    carol_key = g.keys[C]
    g.update({b"alice": [1, 2], b"bob": [1]})
    new_view = g.states[A1]
    wire = forge(new_view, carol_key, b"still here", sender=C)
    _refused(g.states[B], wire, None, ProtocolViolation)


def test_message_for_another_group_or_view() -> None:
    g, other = Small.make(), Small.make(seed=2)
    _refused(other.states[B], g.send(A1, b"wrong group"), None, ProtocolViolation)
    wire = forge(g.states[A1], g.keys[A1], b"forked view", member_set_hash=bytes(32))
    _refused(g.states[B], wire, None, ProtocolViolation)


def test_lying_franking_commitment() -> None:
    g = Small.make()
    wire = forge(g.states[A1], g.keys[A1], b"abuse", committed_body=b"innocent")
    _refused(g.states[B], wire, None, InvalidMessage)


def test_honest_group_franking_opens_for_a_report() -> None:
    g = Small.make()
    wire = g.send(A1, b"report me")
    got, _ = group_decrypt(g.states[B], wire, None)
    msg = got.message
    ctx = franking.context(msg.sender, msg.group_id, msg.message_id, msg.timestamp_ms)
    franking.verify(msg.franking_commitment, got.franking_key, ctx, got.body)
    # One commitment, whoever reads it: every member's copy verifies the same way.
    assert group_decrypt(g.states[C], wire, None)[0].franking_key == got.franking_key


@pytest.mark.parametrize(
    "lie",
    ["missing", "under none", "rogue key", "junk", "other member set", "direct context",
     "unknown epoch"],
)  # fmt: skip
def test_access_field_enforced(lie: str) -> None:
    policy, _ = make_policy()
    g = Small.make()
    view, key = g.states[A1], g.keys[A1]
    receiver_policy: EscrowPolicy | None = policy
    if lie == "missing":
        wire = forge(view, key, b"x", access_field=None, policy=policy)
    elif lie == "under none":
        wire, receiver_policy = forge(view, key, b"x", policy=policy), None
    elif lie == "rogue key":
        rogue = EscrowPolicy(policy.epoch, Point.base_mul(Scalar.random(DeterministicRng(3))))
        wire = forge(view, key, b"x", policy=rogue)
    elif lie == "junk":
        junk = AccessField(policy.epoch, Point.base_mul(Scalar.from_int(5)).raw, bytes(32))
        wire = forge(view, key, b"x", access_field=junk, policy=policy)
    elif lie == "other member set":
        wire = forge(view, key, b"x", policy=policy, access_hash=b"\x01" * 32)
    elif lie == "direct context":
        wire = forge(view, key, b"x", policy=policy, access_direct=True)
    else:
        wire = forge(view, key, b"x", policy=EscrowPolicy(policy.epoch + 1, policy.public_key))
    _refused(g.states[B], wire, receiver_policy, PolicyViolation)
    honest = forge(view, key, b"x", policy=policy)
    assert group_decrypt(g.states[B], honest, policy)[0].body == b"x"


def test_escrow_recovers_exactly_one_group_message_key() -> None:
    policy, x = make_policy()
    g = Small.make()
    wire = g.send(A1, b"evidence", policy)
    msg = GroupMessage.decode(wire)
    assert msg.access is not None
    ctx = access.group_context(msg.access.epoch, msg.sender, msg.group_id, msg.member_set_hash,
                               msg.message_id, msg.timestamp_ms)  # fmt: skip
    mk = access.recover(msg.access, Point.from_bytes(msg.access.r).mul(x), ctx)
    content = Content.decode(open_sealed(mk, msg.ciphertext, msg.header_bytes(), _SEAL_LABEL))
    assert content.body == b"evidence"
    # The next message of the same chain is not opened by this key.
    nxt = GroupMessage.decode(g.send(A1, b"not covered", policy))
    with pytest.raises(InvalidMessage):
        open_sealed(mk, nxt.ciphertext, nxt.header_bytes(), _SEAL_LABEL)


# ----------------------------------------------------------------------------- key commitment

_R = 0xE1000000000000000000000000000000
_ONE = 1 << 127  # the multiplicative identity in GCM's bit order


def _gf_mul(x: int, y: int) -> int:
    z, v = 0, x
    for i in range(127, -1, -1):
        if (y >> i) & 1:
            z ^= v
        v = (v >> 1) ^ _R if v & 1 else v >> 1
    return z


def _gf_inv(x: int) -> int:
    out, e = _ONE, (1 << 128) - 2
    while e:
        if e & 1:
            out = _gf_mul(out, x)
        x = _gf_mul(x, x)
        e >>= 1
    return out


def _block(b: bytes) -> int:
    return int.from_bytes(b, "big")


def _gcm_secrets(key: bytes, nonce: bytes) -> tuple[int, int]:
    """``(H, E_K(J0))`` of one AES-GCM key and nonce, learnt through the AEAD itself: the tag
    of an empty message is E_K(J0), and one zero block of AD adds L·H to it."""
    e_j0 = _block(aes256gcm_encrypt(key, nonce, b"", b""))
    t = _block(aes256gcm_encrypt(key, nonce, b"", bytes(16)))
    length = _block((128).to_bytes(8, "big") + bytes(8))
    return _gf_mul(t ^ e_j0, _gf_inv(length)), e_j0


def _ghash(h: int, ad: bytes, ct: bytes) -> int:
    def blocks(data: bytes) -> list[int]:
        padded = data + bytes(-len(data) % 16)
        return [_block(padded[i : i + 16]) for i in range(0, len(padded), 16)]

    y = 0
    length = _block((8 * len(ad)).to_bytes(8, "big") + (8 * len(ct)).to_bytes(8, "big"))
    for b in [*blocks(ad), *blocks(ct), length]:
        y = _gf_mul(y ^ b, h)
    return y


def forge_two_key_gcm(k1: bytes, n1: bytes, k2: bytes, n2: bytes, ad: bytes) -> bytes:
    """Two GCM blocks and a tag that authenticate under (k1, n1) and under (k2, n2), with AD."""
    h1, e1 = _gcm_secrets(k1, n1)
    h2, e2 = _gcm_secrets(k2, n2)
    c1 = b"any first block!"
    # The free second block X enters GHASH as X·H²: solve tag(k1) = tag(k2) for it.
    g1, g2 = _ghash(h1, ad, c1 + bytes(16)), _ghash(h2, ad, c1 + bytes(16))
    h1sq, h2sq = _gf_mul(h1, h1), _gf_mul(h2, h2)
    x = _gf_mul(e1 ^ e2 ^ g1 ^ g2, _gf_inv(h1sq ^ h2sq))
    tag = e1 ^ g1 ^ _gf_mul(x, h1sq)
    return c1 + x.to_bytes(16, "big") + tag.to_bytes(16, "big")


def test_a_ciphertext_valid_under_two_keys_is_rejected() -> None:
    """A malicious sender hands Bob and Carol different chain keys under one key id and sends
    one ciphertext built to authenticate under both message keys (plain GCM is not
    key-committing). The key commitment makes it open under at most one key, so no two members
    can be shown different contents for one message."""
    g = Small.make()
    view, alice = g.states[A1], g.keys[A1]
    ck_bob, ck_carol = b"\x0b" * 32, b"\x0c" * 32
    for reader, ck in [(B, ck_bob), (C, ck_carol)]:
        dist = SenderKeyDistribution(view.group_id, 77, 1, 0, ck, alice.signing_key.public_key.raw)
        g.states[reader] = process_distribution(g.states[reader], A1, dist)
    mk_bob, mk_carol = _kdf(ck_bob)[1], _kdf(ck_carol)[1]
    aes_b, nonce_b, commitment_b = _derive(mk_bob, _SEAL_LABEL)
    aes_c, nonce_c, _ = _derive(mk_carol, _SEAL_LABEL)
    real = GroupMessage.decode(forge(view, alice, b"template"))
    unsigned = GroupMessage(
        real.group_id, A1, 77, 0, real.timestamp_ms, real.message_id, real.membership_version,
        real.member_set_hash, real.franking_commitment, None,
    )  # fmt: skip
    header = unsigned.header_bytes()
    gcm = forge_two_key_gcm(aes_b, nonce_b, aes_c, nonce_c, header)
    # The forgery is real: plain GCM accepts it under both keys, with different plaintexts.
    assert aes256gcm_decrypt(aes_b, nonce_b, gcm, header) != aes256gcm_decrypt(
        aes_c, nonce_c, gcm, header
    )
    msg = unsigned.with_ciphertext(commitment_b + gcm, header)
    wire = msg.with_signature(alice.signing_key.sign(msg.signed_part())).encode()
    # The sealed format opens under the committed key only…
    open_sealed(mk_bob, msg.ciphertext, header, _SEAL_LABEL)
    with pytest.raises(InvalidMessage):
        open_sealed(mk_carol, msg.ciphertext, header, _SEAL_LABEL)
    # …so Carol refuses the message (and Bob too: what he opens is no valid content).
    _refused(g.states[C], wire, None, InvalidMessage)
    _refused(g.states[B], wire, None, InvalidMessage)
