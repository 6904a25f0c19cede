"""The client's own encodings: message bodies, attachment pointers, link messages, base64url.
Round trips, and strict decoding (unknown versions, bad lengths, bad UTF-8, trailing bytes)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from overt.client import Body, BodyKind, LinkApproval, LinkRequest
from overt.client._b64 import b64d, b64e
from overt.client.body import AttachmentPointer
from overt.client.link import AccountSecrets
from overt.crypto import DeterministicRng, Ed25519PrivateKey
from overt.errors import DecodeError, InvalidMessage, LocalError
from overt.protocol import AccountIdentity, DeviceIdentity
from overt.wire import Address

POINTER = AttachmentPointer(
    b"\x01" * 16, b"\x02" * 32, 1234, b"\x03" * 32, b"\x04" * 32, "image/png", "café.png"
)


@given(st.text(max_size=200), st.binary(min_size=1, max_size=64))
def test_text_body_round_trip(text: str, peer: bytes) -> None:
    body = Body.of_text(peer, text)
    assert Body.decode(body.encode()) == body


@given(
    st.sampled_from([BodyKind.GROUP_UPDATE, BodyKind.GROUP_KEY]),
    st.binary(min_size=32, max_size=32),
    st.binary(min_size=1, max_size=300),
)
def test_group_body_round_trip(kind: BodyKind, group_id: bytes, data: bytes) -> None:
    body = Body.of_group(kind, group_id, data)
    assert Body.decode(body.encode()) == body
    assert "group_data" not in repr(body)  # keys and updates stay out of logs
    leave = Body.of_group(BodyKind.GROUP_LEAVE, group_id)
    assert Body.decode(leave.encode()) == leave


def test_attachment_body_round_trip_and_repr_hides_content() -> None:
    body = Body.of_attachment(b"bob", POINTER, "a caption")
    assert Body.decode(body.encode()) == body
    assert AttachmentPointer.decode(POINTER.encode()) == POINTER
    shown = repr(body) + repr(POINTER)
    assert "caption" not in shown and "\\x02" not in shown and "02020202" not in shown


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x03\x01\x03bob\x00\x00\x00\x00",  # unknown version
        b"\x02\x01\x03bob\x00\x00\x00\x00",  # version 2 without its gossip
        b"\x01\x09\x03bob\x00\x00\x00\x00",  # unknown kind
        b"\x01\x01\x00\x00\x00\x00\x00",  # empty peer
        b"\x01\x01\x03bob\x00\x00\x00\x02\xff\xfe",  # text not UTF-8
        b"\x01\x01\x03bob\x00\x00\x00\x00\x00",  # trailing byte
        b"\x01\x01\x03bob\x00\x01\x00\x01",  # text longer than the bound
        b"\x01\x02\x03bob\x00\x00\x00\x00",  # attachment kind without pointer
        b"\x01\x03\x03bob\x00\x00\x00\x00",  # group update without its data
        b"\x01\x04\x03bob\x00\x00\x00\x00\x00\x00\x00\x00",  # group key, empty data
        b"\x01\x05\x03bob\x00\x00\x00\x00\x00\x00\x00\x01x",  # leave with data
    ],
)
def test_body_decoding_is_strict(data: bytes) -> None:
    with pytest.raises(DecodeError):
        Body.decode(data)


def test_body_invariants_and_bounds() -> None:
    with pytest.raises(LocalError):
        Body(BodyKind.TEXT, b"bob", "x", POINTER)
    with pytest.raises(LocalError):
        Body(BodyKind.GROUP_KEY, b"g" * 32)  # a sender key body carries the key
    with pytest.raises(LocalError):
        Body(BodyKind.TEXT, b"bob", "x", group_data=b"data")
    with pytest.raises(LocalError):
        Body.of_text(b"bob", "x" * 70_000).encode()


def test_link_messages_round_trip_and_verify() -> None:
    rng = DeterministicRng("link")
    ident = DeviceIdentity.generate(Address(b"alice", 0), rng)
    req = LinkRequest.make(b"alice", ident.dh.public_key.raw, ident.sign)
    again = LinkRequest.decode(req.encode())
    assert again == req
    again.verify()
    other = Ed25519PrivateKey.generate(rng)
    forged = LinkRequest(b"alice", req.identity_dh, other.public_key.raw, req.signature)
    with pytest.raises(InvalidMessage):
        forged.verify()
    with pytest.raises(DecodeError):
        LinkRequest.decode(req.encode() + b"\x00")

    account = AccountIdentity.generate(b"alice", rng)
    listed = account.sign_device_list(2, [ident.entry()])
    secrets = AccountSecrets(b"\x05" * 32, 2)
    approval = LinkApproval.make(req, 2, listed, secrets, rng)
    assert LinkApproval.decode(approval.encode()) == approval
    with pytest.raises(DecodeError):
        LinkApproval.decode(b"\x07" + approval.encode()[1:])


def test_link_approval_seals_the_account_secrets_to_the_new_device() -> None:
    rng = DeterministicRng("link secrets")
    ident = DeviceIdentity.generate(Address(b"alice", 0), rng)
    req = LinkRequest.make(b"alice", ident.dh.public_key.raw, ident.sign)
    listed = AccountIdentity.generate(b"alice", rng).sign_device_list(2, [ident.entry()])
    seed = bytes(range(32))
    approval = LinkApproval.decode(
        LinkApproval.make(req, 2, listed, AccountSecrets(seed, 2), rng).encode()
    )
    opened = approval.open_secrets(ident.dh, ident.sign.public_key.raw)
    assert opened == AccountSecrets(seed, 2)
    assert seed.hex() not in repr(opened) and seed.hex() not in repr(approval)
    assert seed not in approval.encode()  # sealed, not carried in the clear
    # Only the requesting device opens it, and only for the id and list it was sealed with.
    other = DeviceIdentity.generate(Address(b"alice", 0), rng)
    with pytest.raises(InvalidMessage):
        approval.open_secrets(other.dh, ident.sign.public_key.raw)
    with pytest.raises(InvalidMessage):
        approval.open_secrets(ident.dh, other.sign.public_key.raw)
    moved = LinkApproval(3, listed, approval.ephemeral, approval.sealed_secrets)
    with pytest.raises(InvalidMessage):
        moved.open_secrets(ident.dh, ident.sign.public_key.raw)
    flipped = bytearray(approval.sealed_secrets)
    flipped[-1] ^= 1
    garbled = LinkApproval(2, listed, approval.ephemeral, bytes(flipped))
    with pytest.raises(InvalidMessage):
        garbled.open_secrets(ident.dh, ident.sign.public_key.raw)
    # An approval of version 1 (no secrets: the format before seeds were shared) is refused.
    v1 = b"\x01" + (2).to_bytes(4, "big") + listed.encode()
    with pytest.raises(DecodeError):
        LinkApproval.decode(v1)
    # Without a slot left to give, the secrets carry no seed.
    empty = LinkApproval.make(req, 2, listed, AccountSecrets(None, 0), rng)
    assert empty.open_secrets(ident.dh, ident.sign.public_key.raw).matching_seed is None


@given(st.binary(max_size=40), st.integers(0, 0xFFFF))
def test_account_secrets_decode_strictly(seed: bytes, slot: int) -> None:
    raw = b"\x01" + bytes([len(seed)]) + seed + slot.to_bytes(2, "big")
    if len(seed) in (0, 32):
        got = AccountSecrets.decode(raw)
        assert got == AccountSecrets(seed or None, slot)
        assert AccountSecrets.decode(got.encode()) == got
    else:
        with pytest.raises(DecodeError):
            AccountSecrets.decode(raw)
    with pytest.raises(DecodeError):
        AccountSecrets.decode(raw + b"\x00")


@given(st.binary(max_size=100))
def test_b64url_round_trip(data: bytes) -> None:
    text = b64e(data)
    assert "=" not in text and "+" not in text and "/" not in text
    assert b64d(text, "x") == data


@pytest.mark.parametrize("text", ["AAA=", "A", "AB+/", "AB==", "AF", " AAAA", 5])
def test_b64url_decoding_is_strict(text: object) -> None:
    with pytest.raises(DecodeError):
        b64d(text, "value")
