"""C2SP signed notes and cosignature/v1: known answers, round trips, strict parsing, rejection."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from overt.crypto import DeterministicRng, Ed25519PrivateKey, sha256
from overt.errors import ConfigurationError, DecodeError, InvalidMessage, LocalError
from overt.transparency.note import (
    ALG_COSIGNATURE_V1,
    ALG_ED25519,
    MAX_NOTE_BYTES,
    MAX_SIGNATURES,
    MAX_TIMESTAMP,
    CosignatureSigner,
    Note,
    NoteSignature,
    NoteSigner,
    VerifierKey,
    cosignature_message,
    key_id,
    open_note,
    parse_note,
    parse_verifier_key,
    sign_note,
    verify_signatures,
)

# Known answers of golang.org/x/mod/sumdb/note (note_test.go and the package example), the
# reference implementation of signed-note: the signer key string holds type 0x01 and the seed.
GO_SKEY_B64 = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT + "\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFY"
    "C2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
).encode()
# The example verifier key of c2sp.org/signed-note, whose key ID is 0x530d903a.
EXAMPLE_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"


def go_signer() -> NoteSigner:
    seed = base64.b64decode(GO_SKEY_B64)
    assert seed[0] == ALG_ED25519
    return NoteSigner("PeterNeumann", Ed25519PrivateKey.from_secret_bytes(seed[1:]))


def ed_key(seed: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate(DeterministicRng(seed))


ALICE = NoteSigner("example.com/alice", ed_key("alice"))
BOB = NoteSigner("example.com/bob", ed_key("bob"))
WITNESS = CosignatureSigner("witness.example/w1", ed_key("w1"))
TEXT = "example.com/log\n5\nAAAA\n"


# ----------------------------------------------------------------------------- known answers


def test_go_known_answer_sign() -> None:
    signer = go_signer()
    assert signer.verifier_key.to_text() == GO_VKEY
    assert sign_note(GO_TEXT, [signer]).to_bytes() == GO_NOTE


def test_go_known_answer_verify() -> None:
    key = parse_verifier_key(GO_VKEY)
    assert key.key_id == 0xC74F20A3
    note = parse_note(GO_NOTE)
    assert note.text == GO_TEXT
    [verified] = open_note(note, [key])
    assert verified.key == key
    assert verified.timestamp is None
    assert note.to_bytes() == GO_NOTE


def test_signed_note_example_key_id() -> None:
    key = parse_verifier_key(EXAMPLE_VKEY)
    assert key.name == "example.com/foo"
    assert key.alg == ALG_ED25519
    assert key.key_id == 0x530D903A
    assert key.to_text() == EXAMPLE_VKEY


def test_key_id_derivation() -> None:
    pub = ALICE.private_key.public_key.raw
    want = sha256(b"example.com/alice\n\x01" + pub)[:4]
    assert key_id("example.com/alice", ALG_ED25519, pub) == int.from_bytes(want, "big")
    cos = sha256(b"witness.example/w1\n\x04" + WITNESS.private_key.public_key.raw)[:4]
    assert WITNESS.verifier_key.key_id == int.from_bytes(cos, "big")
    assert WITNESS.verifier_key.alg == ALG_COSIGNATURE_V1


# ----------------------------------------------------------------------------- round trips


def test_round_trip_several_signers() -> None:
    note = sign_note(TEXT, [ALICE, BOB])
    data = note.to_bytes()
    assert data.startswith(TEXT.encode() + "\n\u2014 example.com/alice ".encode())
    parsed = parse_note(data)
    assert parsed == note
    verified = open_note(parsed, [BOB.verifier_key, ALICE.verifier_key])
    assert [v.key.name for v in verified] == ["example.com/alice", "example.com/bob"]


note_text = st.lists(
    st.text(st.characters(min_codepoint=0x20, exclude_categories=("Cs",)), max_size=40),
    min_size=1,
    max_size=6,
).map(lambda lines: "\n".join(lines) + "\n")


@settings(max_examples=100, deadline=None)
@given(note_text)
def test_round_trip_any_text(text: str) -> None:
    note = sign_note(text, [ALICE])
    parsed = parse_note(note.to_bytes())
    assert parsed.text == text
    open_note(parsed, [ALICE.verifier_key])


def test_text_may_contain_blank_lines_and_dash_lines() -> None:
    text = "a\n\n\u2014 not a signature\n\n"
    note = sign_note(text, [ALICE])
    parsed = parse_note(note.to_bytes())
    assert parsed.text == text
    open_note(parsed, [ALICE.verifier_key])


def test_verifier_key_round_trip() -> None:
    for key in [ALICE.verifier_key, WITNESS.verifier_key]:
        assert parse_verifier_key(key.to_text()) == key


# ----------------------------------------------------------------------------- verification rules


def test_unknown_signer_is_kept_but_ignored() -> None:
    note = sign_note(TEXT, [ALICE, BOB])
    parsed = parse_note(note.to_bytes())
    assert len(parsed.signatures) == 2
    [only] = open_note(parsed, [BOB.verifier_key])
    assert only.key == BOB.verifier_key
    with pytest.raises(InvalidMessage):
        open_note(parsed, [go_signer().verifier_key])
    assert verify_signatures(parsed, []) == ()


def test_same_name_other_key_is_ignored() -> None:
    # Same name as a trusted key but a different key ID: not that key, so ignored.
    impostor = NoteSigner("example.com/alice", ed_key("mallory"))
    note = sign_note(TEXT, [impostor, BOB])
    [only] = open_note(note, [ALICE.verifier_key, BOB.verifier_key])
    assert only.key == BOB.verifier_key
    with pytest.raises(InvalidMessage):
        open_note(sign_note(TEXT, [impostor]), [ALICE.verifier_key])


def test_failing_signature_of_known_key_rejects_the_note() -> None:
    good = sign_note(TEXT, [ALICE, BOB])
    a, b = good.signatures
    forged = NoteSignature(b.name, b.key_id, bytes([b.signature[0] ^ 1]) + b.signature[1:])
    note = Note(TEXT, (a, forged))
    with pytest.raises(InvalidMessage):
        open_note(note, [ALICE.verifier_key, BOB.verifier_key])
    # Ignoring the failing key is the only way to accept the rest.
    open_note(note, [ALICE.verifier_key])
    # Bytes of the wrong length for the key's type fail the same way.
    short = NoteSignature(b.name, b.key_id, b.signature[:10])
    with pytest.raises(InvalidMessage):
        open_note(Note(TEXT, (short,)), [BOB.verifier_key])


def test_signature_over_other_text_fails() -> None:
    sig = ALICE.sign(TEXT)
    with pytest.raises(InvalidMessage):
        open_note(Note("example.com/log\n6\nAAAA\n", (sig,)), [ALICE.verifier_key])


def test_duplicate_lines_count_once() -> None:
    sig = ALICE.sign(TEXT)
    note = Note(TEXT, (sig, sig))
    assert len(open_note(parse_note(note.to_bytes()), [ALICE.verifier_key])) == 1


def test_ambiguous_trusted_keys_are_a_configuration_error() -> None:
    k = ALICE.verifier_key
    other = VerifierKey(k.name, k.alg, BOB.private_key.public_key)
    object.__setattr__(other, "key_id", k.key_id)  # a forced collision of (name, key ID)
    with pytest.raises(ConfigurationError):
        verify_signatures(sign_note(TEXT, [ALICE]), [k, other])


# ----------------------------------------------------------------------------- cosignatures


def test_cosignature_round_trip_and_format() -> None:
    note = sign_note(TEXT, [ALICE]).with_signatures(WITNESS.sign(TEXT, 1679315147))
    parsed = parse_note(note.to_bytes())
    cos = parsed.signatures[1]
    assert len(cos.signature) == 8 + 64
    assert cos.signature[:8] == (1679315147).to_bytes(8, "big")
    msg = b"cosignature/v1\ntime 1679315147\n" + TEXT.encode()
    assert cosignature_message(TEXT, 1679315147) == msg
    WITNESS.private_key.public_key.verify(cos.signature[8:], msg)
    verified = open_note(parsed, [WITNESS.verifier_key])
    assert [(v.key, v.timestamp) for v in verified] == [(WITNESS.verifier_key, 1679315147)]


def test_cosignature_is_not_a_plain_signature() -> None:
    # The same Ed25519 key as a 0x01 key has another key ID; the line is not its signature.
    plain = VerifierKey(WITNESS.name, ALG_ED25519, WITNESS.private_key.public_key)
    note = Note(TEXT, (WITNESS.sign(TEXT, 5),))
    with pytest.raises(InvalidMessage):
        open_note(note, [plain])
    # And a 0x01 signature does not verify as a cosignature even if relabelled.
    sig = NoteSigner(WITNESS.name, WITNESS.private_key).sign(TEXT)
    relabelled = NoteSignature(sig.name, WITNESS.verifier_key.key_id, bytes(8) + sig.signature)
    with pytest.raises(InvalidMessage):
        open_note(Note(TEXT, (relabelled,)), [WITNESS.verifier_key])


def test_cosignature_tampering() -> None:
    cos = WITNESS.sign(TEXT, 1000)
    for blob in [
        (1001).to_bytes(8, "big") + cos.signature[8:],  # another time
        cos.signature[:-1],
        cos.signature + b"\x00",
        (MAX_TIMESTAMP + 1).to_bytes(8, "big") + cos.signature[8:],
    ]:
        with pytest.raises(InvalidMessage):
            open_note(
                Note(TEXT, (NoteSignature(cos.name, cos.key_id, blob),)), [WITNESS.verifier_key]
            )


def test_cosignature_timestamp_bounds() -> None:
    WITNESS.sign(TEXT, 0)
    WITNESS.sign(TEXT, MAX_TIMESTAMP)
    for bad in [-1, MAX_TIMESTAMP + 1]:
        with pytest.raises(LocalError):
            WITNESS.sign(TEXT, bad)


# ----------------------------------------------------------------------------- strict parsing

VALID = sign_note(TEXT, [ALICE]).to_bytes()
SIG_LINE = VALID[len(TEXT) + 1 :]


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(TEXT.encode(), id="no-signatures"),
        pytest.param(TEXT.encode() + b"\n", id="blank-line-only"),
        pytest.param(VALID[:-1], id="no-final-newline"),
        pytest.param(TEXT.encode() + SIG_LINE, id="no-blank-line"),
        pytest.param(VALID.replace(b"\n\n", b"\n\r\n"), id="carriage-return"),
        pytest.param(VALID.replace(b"log", b"l\togs"), id="tab-in-text"),
        pytest.param(VALID.replace(b"example.com/log", b"\xff"), id="not-utf8"),
        pytest.param(VALID.replace("\u2014 ".encode(), b"- "), id="hyphen-not-em-dash"),
        pytest.param(VALID.replace("\u2014 ".encode(), "\u2014".encode()), id="no-space"),
        pytest.param(VALID.replace(b"alice ", b"alice  "), id="double-space"),
        pytest.param(VALID.replace(b"alice ", b"al+ice "), id="plus-in-name"),
        pytest.param(VALID.replace(b"example.com/alice", b""), id="empty-name"),
        pytest.param(VALID.replace(b"alice ", "alice\u00a0".encode()), id="nbsp-in-name"),
        pytest.param(VALID[:-2] + b"\n", id="truncated-base64"),
        pytest.param(VALID[:-2] + b"!\n", id="bad-base64-char"),
        pytest.param(VALID + b"\n", id="trailing-blank-line"),
        pytest.param(VALID + b"trailing garbage\n", id="garbage-line"),
        pytest.param(TEXT.encode() + "\n\u2014 a AAAA\n".encode(), id="key-id-only"),
        pytest.param(TEXT.encode() + "\n\u2014 a AAAAAAAAAB==\n".encode(), id="non-canonical-pad"),
        pytest.param(TEXT.encode() + "\n\u2014 a AAAAAAAAAA\n".encode(), id="missing-padding"),
    ],
)
def test_parse_rejects_malformed(data: bytes) -> None:
    with pytest.raises(DecodeError):
        parse_note(data)


def test_parse_limits() -> None:
    sig = ALICE.sign(TEXT)
    many = Note(TEXT, (sig,) * MAX_SIGNATURES)
    assert len(parse_note(many.to_bytes()).signatures) == MAX_SIGNATURES
    too_many = many.to_bytes() + sig.to_line().encode()
    with pytest.raises(DecodeError):
        parse_note(too_many)
    with pytest.raises(DecodeError):
        parse_note(b"x" * (MAX_NOTE_BYTES + 1))
    with pytest.raises(LocalError):
        Note(TEXT, (sig,) * (MAX_SIGNATURES + 1))


def test_at_least_sixteen_large_unknown_signatures_are_accepted() -> None:
    # Post-quantum signatures of other signers (~2.4 kB for ML-DSA-44 cosignatures) are kept.
    big = NoteSignature("pq.example/w", 7, bytes(2420 + 8))
    note = Note(TEXT, (ALICE.sign(TEXT),) + (big,) * 16)
    parsed = parse_note(note.to_bytes())
    assert len(parsed.signatures) == 17
    open_note(parsed, [ALICE.verifier_key])


@pytest.mark.parametrize(
    "vkey",
    [
        "example.com/foo",
        "example.com/foo+530d903a",
        "example.com/foo+530D903A+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
        "example.com/foo+530d903+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
        "example.com/foo+530d903b+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",  # wrong ID
        "example.com/bar+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",  # wrong name
        "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2",
        "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k!",
        "example.com/foo+530d903a+AukyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",  # type 0x02
        "+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
        "a b+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
        "a+00000000+",
    ],
)
def test_verifier_key_parse_rejects(vkey: str) -> None:
    with pytest.raises(DecodeError):
        parse_verifier_key(vkey)


# ----------------------------------------------------------------------------- misuse


def test_constructors_refuse_invalid_input() -> None:
    for text in ["no newline", "tab\there\n", "", "bad \udc80\n"]:
        with pytest.raises(LocalError):
            Note(text)
        with pytest.raises(LocalError):
            ALICE.sign(text)
    for name in ["", "a b", "a+b", "a\nb", "x" * 256]:
        with pytest.raises(LocalError):
            NoteSigner(name, ALICE.private_key)
        with pytest.raises(LocalError):
            NoteSignature(name, 1, b"sig")
    with pytest.raises(LocalError):
        Note(TEXT).to_bytes()  # a signed note needs a signature
    with pytest.raises(LocalError):
        VerifierKey("a", 0x02, ALICE.private_key.public_key)


def test_private_keys_do_not_leak_through_repr() -> None:
    seed = ALICE.private_key.export_secret()
    assert seed.hex() not in repr(ALICE)
    assert base64.b64encode(seed).decode() not in repr(ALICE)
