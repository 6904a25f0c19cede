"""The client's own encodings: message bodies, attachment pointers, link messages, base64url.
Round trips, and strict decoding (unknown versions, bad lengths, bad UTF-8, trailing bytes)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from overt.client import Body, BodyKind, LinkApproval, LinkRequest
from overt.client._b64 import b64d, b64e
from overt.client.body import AttachmentPointer
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
    ],
)
def test_body_decoding_is_strict(data: bytes) -> None:
    with pytest.raises(DecodeError):
        Body.decode(data)


def test_body_invariants_and_bounds() -> None:
    with pytest.raises(LocalError):
        Body(BodyKind.TEXT, b"bob", "x", POINTER)
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
    approval = LinkApproval(2, account.sign_device_list(2, [ident.entry()]))
    assert LinkApproval.decode(approval.encode()) == approval
    with pytest.raises(DecodeError):
        LinkApproval.decode(b"\x07" + approval.encode()[1:])


@given(st.binary(max_size=100))
def test_b64url_round_trip(data: bytes) -> None:
    text = b64e(data)
    assert "=" not in text and "+" not in text and "/" not in text
    assert b64d(text, "x") == data


@pytest.mark.parametrize("text", ["AAA=", "A", "AB+/", "AB==", "AF", " AAAA", 5])
def test_b64url_decoding_is_strict(text: object) -> None:
    with pytest.raises(DecodeError):
        b64d(text, "value")
