"""The custodians' confirmations of an escrow epoch (overt.access.epoch): their kept encoding
round-trips and decodes strictly, and the one check the provider and every client run accepts
exactly "every custodian of the manifest signed this digest for this session"."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from overt.access.epoch import (
    CONFIRMATION_KIND,
    Confirmation,
    decode_confirmations,
    encode_confirmations,
    message_signed_part,
    verify_confirmations,
)
from overt.access.limits import MAX_CUSTODIANS
from overt.crypto import DeterministicRng, Ed25519PrivateKey, sha256
from overt.errors import DecodeError, InvalidMessage, ProtocolViolation

KEYS = tuple(Ed25519PrivateKey.generate(DeterministicRng(f"custodian {i}")) for i in range(1, 4))
PUBLIC = [k.public_key for k in KEYS]
SESSION = sha256(b"session")
DIGEST = sha256(b"transcript")


def confirm(key: Ed25519PrivateKey, custodian: int, digest: bytes = DIGEST,
            session: bytes = SESSION) -> Confirmation:  # fmt: skip
    signed = message_signed_part(session, CONFIRMATION_KIND, custodian, digest)
    return Confirmation(custodian, digest, key.sign(signed))


HONEST = [confirm(k, i) for i, k in enumerate(KEYS, start=1)]


@given(
    st.lists(
        st.tuples(st.binary(max_size=64), st.binary(min_size=64, max_size=64)),
        max_size=MAX_CUSTODIANS,
    )
)
def test_the_kept_encoding_round_trips(items: list[tuple[bytes, bytes]]) -> None:
    confirmations = tuple(Confirmation(i, b, s) for i, (b, s) in enumerate(items, start=1))
    assert decode_confirmations(encode_confirmations(confirmations)) == confirmations
    assert decode_confirmations(encode_confirmations(confirmations[::-1])) == confirmations


def test_decoding_is_strict() -> None:
    good = encode_confirmations(HONEST)
    for bad in (
        b"",
        b"\x02" + good[1:],  # unknown version
        good + b"\x00",  # trailing bytes
        good[:-1],  # truncated
        b"\x01\x02" + encode_confirmations(HONEST[:1])[2:] * 2,  # custodian 1 twice
        b"\x01" + bytes((MAX_CUSTODIANS + 1,)),  # more than any manifest lists
        b"\x01\x01\x00" + b"\x00" + bytes(64),  # custodian 0
    ):
        with pytest.raises(DecodeError):
            decode_confirmations(bad)


def test_every_custodian_confirming_this_digest_and_session_passes() -> None:
    verify_confirmations(HONEST, SESSION, DIGEST, PUBLIC)
    verify_confirmations(HONEST[::-1], SESSION, DIGEST, PUBLIC)  # order does not matter


@pytest.mark.parametrize(
    ("confirmations", "error", "says"),
    [
        (HONEST[:2], ProtocolViolation, "custodian 3 did not confirm"),
        ([], ProtocolViolation, "custodian 1 did not confirm"),
        ([*HONEST, HONEST[0]], ProtocolViolation, "custodian 1 sent two"),
        ([*HONEST[:2], confirm(KEYS[2], 3, sha256(b"other"))], ProtocolViolation,
         "custodian 3 confirmed another transcript"),
        ([*HONEST, confirm(KEYS[0], 4)], ProtocolViolation, "custodian 4, not listed"),
        ([*HONEST[:2], confirm(KEYS[2], 3, session=sha256(b"other run"))], InvalidMessage, None),
        ([*HONEST[:2], confirm(KEYS[1], 3)], InvalidMessage, None),  # another custodian's key
        ([*HONEST[:2], confirm(Ed25519PrivateKey.generate(DeterministicRng("x")), 3)],
         InvalidMessage, None),
    ],
)  # fmt: skip
def test_anything_else_is_refused(
    confirmations: list[Confirmation], error: type[Exception], says: str | None
) -> None:
    with pytest.raises(error, match=says):
        verify_confirmations(confirmations, SESSION, DIGEST, PUBLIC)


def test_a_signature_over_another_kind_of_message_is_no_confirmation() -> None:
    signed = message_signed_part(SESSION, CONFIRMATION_KIND - 1, 3, DIGEST)  # an ANSWER
    forged = Confirmation(3, DIGEST, KEYS[2].sign(signed))
    with pytest.raises(InvalidMessage):
        verify_confirmations([*HONEST[:2], forged], SESSION, DIGEST, PUBLIC)
