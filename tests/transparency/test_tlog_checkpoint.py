"""C2SP checkpoints, witness quorums and tlog-proof bundles."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from overt.crypto import DeterministicRng, Ed25519PrivateKey
from overt.errors import ConfigurationError, DecodeError, InvalidMessage, LocalError
from overt.transparency.checkpoint import (
    MAX_EXTENSION_LINES,
    Checkpoint,
    ProofBundle,
    cosign_checkpoint,
    parse_checkpoint,
    parse_proof_bundle,
    sign_checkpoint,
    verify_checkpoint,
    verify_checkpoint_consistency,
    verify_proof_bundle,
)
from overt.transparency.merkle import (
    EMPTY_ROOT,
    MAX_TREE_SIZE,
    MemoryTree,
    hash_leaf,
)
from overt.transparency.note import (
    CosignatureSigner,
    Note,
    NoteSignature,
    NoteSigner,
    parse_note,
    parse_verifier_key,
    sign_note,
)

# A checkpoint of the public arche2025h1.staging.ct.transparency.dev log (a static-ct-api log
# run by Google), with its RFC 6962 tree-head signature (type 0x05, unknown here), its Ed25519
# note signature and cosignature/v1 lines of four public witnesses, whose verifier keys are the
# ones they publish. Interoperability check against independent implementations.
REAL_CHECKPOINT = """arche2025h1.staging.ct.transparency.dev
1432088532
U7WM79jrzyhGZ5/GUBTpM7NzwdyfFx61t3RovgcC4Ro=

\u2014 arche2025h1.staging.ct.transparency.dev zTM8sQAAAZ5W0WdjBAMARjBEAiBjW5IQf9pvsYLfQFX6hoGREPMHbdQ3urbllzalApkptQIgIpwtEroeW2BXaHAI4kJXFbon5Ch9MNL5zRNZ55lvGt0=
\u2014 arche2025h1.staging.ct.transparency.dev ui8GwCF1+kWqZrxGdhj4aX3gcw7XUlXQQabg/27lefwhUkzbC3NygNI75MdhL1bfTW9g8Ei59RA23oHP7Ry1k3ZFWwQ=
\u2014 transparency.dev/DEV:witness-little-garden 2AQqhwAAAABqEiEgzgFIqqhbUoDwjMWE6UP8nd8/KYTzwZ2rhIgcqoXHAwVkjZr4AscylP3v7sEodkRAErumC2q44vdgJY096st5BQ==
\u2014 witness1.smartit.nu/witness1 pIyCDwAAAABqEiEghIp82KWebrw7/oHQwlTAm3g2RKS4+eebl8eO0WH+/iEcxZ75W3u5hNI7TOQtmJbqmNWVuE0tgh0XwzdZsDsUAQ==
\u2014 remora.n621.de 2net5wAAAABqEiEgPlfF3V06o0Y+fHM+J5J9s27wgxxcOVSpZ/2g/KSiXCg9DEZI+aVCIobWX9sXTynk5XeU/zZ0WBxtqB0DrAWfBw==
\u2014 witness.stagemole.eu Z/euoAAAAABqEiEgw0i+7g2ENfDAWHmtRzCfKTHSDwYDJA2NmKeGi9Y8FtEyOUvVr+AJmIY/2TUFucgKi7lI7cUiOvKFYe/TmN9DAg==
""".encode()  # noqa: E501
REAL_LOG_VKEY = (
    "arche2025h1.staging.ct.transparency.dev+ba2f06c0+AU0vHmlGCS/PdN8b2OaGmKprLI8HKM+dJ472xgFYh15f"
)
REAL_WITNESS_VKEYS = [
    "transparency.dev/DEV:witness-little-garden+d8042a87+BCtusOxINQNUTN5Oj8HObRkh2yHf/MwYaGX4CPdiVEPM",
    "witness1.smartit.nu/witness1+a48c820f+BPSFWg9G6KPiO7QPryYO5Xq4oYJJ+kAvLKLSimDhoxMO",
    "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2",
    "witness.stagemole.eu+67f7aea0+BEqSG3yu9YrmcM3BHvQYTxwFj3uSWakQepafafpUqklv",
]


def ed_key(seed: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate(DeterministicRng(seed))


ORIGIN = "log.overt.example/v1"
LOG = NoteSigner(ORIGIN, ed_key("log"))
WITNESSES = [CosignatureSigner(f"witness{i}.example", ed_key(f"witness{i}")) for i in range(5)]
WKEYS = [w.verifier_key for w in WITNESSES]
NOW = 1_750_000_000

ENTRIES = [f"entry {i}".encode() for i in range(21)]
TREE = MemoryTree()
for _e in ENTRIES:
    TREE.append(_e)
CP = Checkpoint(ORIGIN, TREE.size, TREE.root())


def cosigned(cp: Checkpoint, witnesses: list[CosignatureSigner], now: int = NOW) -> Note:
    note = sign_checkpoint(cp, LOG)
    for w in witnesses:
        note = cosign_checkpoint(note, w, now)
    return note


# ----------------------------------------------------------------------------- real-world data


def test_real_checkpoint_with_four_witnesses() -> None:
    note = parse_note(REAL_CHECKPOINT)
    assert note.to_bytes() == REAL_CHECKPOINT
    log = parse_verifier_key(REAL_LOG_VKEY)
    witnesses = [parse_verifier_key(k) for k in REAL_WITNESS_VKEYS]
    verified = verify_checkpoint(note, log, witnesses, 4)
    assert verified.checkpoint.size == 1432088532
    assert verified.checkpoint.root_hash == base64.b64decode(
        "U7WM79jrzyhGZ5/GUBTpM7NzwdyfFx61t3RovgcC4Ro="
    )
    assert {c.key.name for c in verified.cosignatures} == {w.name for w in witnesses}
    assert {c.timestamp for c in verified.cosignatures} == {0x6A122120}
    # Tampering with the body breaks the log signature and every cosignature.
    forged = Note(note.text.replace("1432088532", "1432088533"), note.signatures)
    with pytest.raises(InvalidMessage):
        verify_checkpoint(forged, log, witnesses, 4)
    with pytest.raises(InvalidMessage):
        verify_checkpoint(forged, log)


# ----------------------------------------------------------------------------- body format


def test_body_format() -> None:
    cp = Checkpoint("example.com/behind-the-sofa", 20852163, base64.b64decode(
        "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="))  # fmt: skip
    text = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    assert cp.to_text() == text
    assert parse_checkpoint(text) == cp
    ext = Checkpoint(cp.origin, cp.size, cp.root_hash, ("ext one", "\u00e9xt two"))
    assert parse_checkpoint(ext.to_text()) == ext
    assert ext.to_text().endswith("ext one\n\u00e9xt two\n")
    empty = Checkpoint(ORIGIN, 0, EMPTY_ROOT)
    assert parse_checkpoint(empty.to_text()) == empty


@settings(max_examples=100, deadline=None)
@given(
    origin=st.text(st.characters(min_codepoint=0x20, exclude_categories=("Cs",)), min_size=1,
                   max_size=60),
    size=st.integers(1, MAX_TREE_SIZE),
    root=st.binary(min_size=32, max_size=32),
    ext=st.lists(st.text(st.characters(min_codepoint=0x20, exclude_categories=("Cs",)),
                         min_size=1, max_size=20), max_size=MAX_EXTENSION_LINES),
)  # fmt: skip
def test_body_round_trip(origin: str, size: int, root: bytes, ext: list[str]) -> None:
    cp = Checkpoint(origin, size, root, tuple(ext))
    assert parse_checkpoint(cp.to_text()) == cp


ROOT_B64 = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param(f"o\n5\n{ROOT_B64}", id="no-final-newline"),
        pytest.param("o\n5\n", id="two-lines"),
        pytest.param(f"\n5\n{ROOT_B64}\n", id="empty-origin"),
        pytest.param(f"o\n\n{ROOT_B64}\n", id="empty-size"),
        pytest.param(f"o\n05\n{ROOT_B64}\n", id="leading-zero"),
        pytest.param(f"o\n00\n{ROOT_B64}\n", id="double-zero"),
        pytest.param(f"o\n-5\n{ROOT_B64}\n", id="negative"),
        pytest.param(f"o\n+5\n{ROOT_B64}\n", id="plus-sign"),
        pytest.param(f"o\n 5\n{ROOT_B64}\n", id="space-before-size"),
        pytest.param(f"o\n5_0\n{ROOT_B64}\n", id="underscore"),
        pytest.param(f"o\n\u0665\n{ROOT_B64}\n", id="non-ascii-digit"),
        pytest.param(f"o\n0x5\n{ROOT_B64}\n", id="hex-size"),
        pytest.param(f"o\n{MAX_TREE_SIZE + 1}\n{ROOT_B64}\n", id="size-too-large"),
        pytest.param(f"o\n{'9' * 40}\n{ROOT_B64}\n", id="size-huge"),
        pytest.param("o\n5\n\n", id="empty-root"),
        pytest.param(f"o\n5\n{ROOT_B64[:-4]}\n", id="short-root"),
        pytest.param(f"o\n5\n{ROOT_B64}AAAA\n", id="long-root"),
        pytest.param(f"o\n5\n{ROOT_B64[:-1]}\n", id="unpadded-root"),
        pytest.param(f"o\n5\n{ROOT_B64[:-2]}J=\n", id="non-canonical-root"),
        pytest.param(f"o\n5\n{ROOT_B64.replace('/', '_')}\n", id="url-safe-root"),
        pytest.param(f"o\n5\n{ROOT_B64}\n\n", id="empty-extension-line"),
        pytest.param(f"o\n5\n{ROOT_B64}\next\n\n", id="trailing-blank-line"),
        pytest.param(f"o\n5\n{ROOT_B64}\n" + "e\n" * (MAX_EXTENSION_LINES + 1), id="too-many-ext"),
        pytest.param(f"o\n0\n{ROOT_B64}\n", id="empty-tree-wrong-root"),
        pytest.param(f"o\tx\n5\n{ROOT_B64}\n", id="control-char"),
        pytest.param(f"{'o' * 256}\n5\n{ROOT_B64}\n", id="origin-too-long"),
    ],
)
def test_body_parse_rejects_malformed(text: str) -> None:
    with pytest.raises(DecodeError):
        parse_checkpoint(text)


def test_body_constructor_refuses_invalid() -> None:
    for args in [
        ("", 1, EMPTY_ROOT),
        ("a\nb", 1, EMPTY_ROOT),
        (ORIGIN, -1, EMPTY_ROOT),
        (ORIGIN, MAX_TREE_SIZE + 1, EMPTY_ROOT),
        (ORIGIN, 1, b"short"),
        (ORIGIN, 0, bytes(32)),
    ]:
        with pytest.raises(LocalError):
            Checkpoint(*args)  # type: ignore[arg-type]
    with pytest.raises(LocalError):
        Checkpoint(ORIGIN, 1, EMPTY_ROOT, ("",))


# ----------------------------------------------------------------------------- signatures, quorum


def test_sign_and_verify_without_witnesses() -> None:
    note = sign_checkpoint(CP, LOG)
    parsed = parse_note(note.to_bytes())
    verified = verify_checkpoint(parsed, LOG.verifier_key)
    assert verified.checkpoint == CP
    assert verified.cosignatures == ()


def test_log_signature_is_required() -> None:
    other_log = NoteSigner(ORIGIN, ed_key("other log"))
    note = Note(CP.to_text(), (other_log.sign(CP.to_text()),))
    with pytest.raises(InvalidMessage):
        verify_checkpoint(note, LOG.verifier_key)
    # Witness cosignatures alone do not make up for a missing log signature.
    only_witnesses = Note(CP.to_text(), tuple(w.sign(CP.to_text(), NOW) for w in WITNESSES))
    with pytest.raises(InvalidMessage):
        verify_checkpoint(only_witnesses, LOG.verifier_key, WKEYS, 1)


def test_origin_must_match() -> None:
    signer = NoteSigner(ORIGIN, LOG.private_key)
    cp = Checkpoint("another.example/log", CP.size, CP.root_hash)
    note = sign_checkpoint(cp, signer)
    with pytest.raises(InvalidMessage):
        verify_checkpoint(note, LOG.verifier_key)
    assert verify_checkpoint(note, LOG.verifier_key, origin="another.example/log").checkpoint == cp


def test_signed_text_that_is_not_a_checkpoint() -> None:
    note = sign_note("hello\n", [LOG])
    with pytest.raises(DecodeError):
        verify_checkpoint(note, LOG.verifier_key)


@pytest.mark.parametrize("signed", range(6))
@pytest.mark.parametrize("quorum", range(6))
def test_quorum(signed: int, quorum: int) -> None:
    note = parse_note(cosigned(CP, WITNESSES[:signed]).to_bytes())
    if signed >= quorum:
        verified = verify_checkpoint(note, LOG.verifier_key, WKEYS, quorum)
        assert len(verified.cosignatures) == signed
        assert all(c.timestamp == NOW for c in verified.cosignatures)
    else:
        with pytest.raises(InvalidMessage):
            verify_checkpoint(note, LOG.verifier_key, WKEYS, quorum)


def test_quorum_counts_distinct_trusted_witnesses_only() -> None:
    w0, w1 = WITNESSES[:2]
    stranger = CosignatureSigner("stranger.example", ed_key("stranger"))
    note = cosigned(CP, [w0, w0, stranger])
    note = cosign_checkpoint(note, w0, NOW + 1)  # a second cosignature by w0
    verified = verify_checkpoint(note, LOG.verifier_key, WKEYS, 1)
    assert [c.key for c in verified.cosignatures] == [w0.verifier_key]
    with pytest.raises(InvalidMessage):
        verify_checkpoint(note, LOG.verifier_key, WKEYS, 2)
    note = cosign_checkpoint(note, w1, NOW)
    assert len(verify_checkpoint(note, LOG.verifier_key, WKEYS, 2).cosignatures) == 2


def test_failing_cosignature_of_a_trusted_witness_rejects() -> None:
    note = cosigned(CP, WITNESSES[:3])
    last = note.signatures[-1]
    bad = NoteSignature(last.name, last.key_id, last.signature[:8] + bytes(64))
    tampered = Note(note.text, (*note.signatures[:-1], bad))
    with pytest.raises(InvalidMessage):
        verify_checkpoint(tampered, LOG.verifier_key, WKEYS, 1)
    # A witness we do not trust is ignored, even if its line is garbage.
    verify_checkpoint(tampered, LOG.verifier_key, WKEYS[:2], 2)


def test_cosignature_over_another_checkpoint_does_not_count() -> None:
    older = Checkpoint(ORIGIN, 20, TREE.root(20))
    stale = cosigned(older, WITNESSES[:1]).signatures[-1]
    note = sign_checkpoint(CP, LOG).with_signatures(stale)
    with pytest.raises(InvalidMessage):
        verify_checkpoint(note, LOG.verifier_key, WKEYS, 1)


def test_policy_errors() -> None:
    note = cosigned(CP, WITNESSES)
    with pytest.raises(ConfigurationError):
        verify_checkpoint(note, LOG.verifier_key, WKEYS, 6)  # never satisfiable
    with pytest.raises(ConfigurationError):
        verify_checkpoint(note, LOG.verifier_key, WKEYS, -1)
    with pytest.raises(ConfigurationError):
        verify_checkpoint(note, WKEYS[0], WKEYS[1:], 1)  # a cosignature key as log key
    with pytest.raises(ConfigurationError):
        verify_checkpoint(note, LOG.verifier_key, [LOG.verifier_key], 1)  # wrong type
    twin = CosignatureSigner("twin.example", WITNESSES[0].private_key).verifier_key
    with pytest.raises(ConfigurationError):
        verify_checkpoint(note, LOG.verifier_key, [*WKEYS, twin], 2)  # one key, two names
    self_witness = CosignatureSigner("self.example", LOG.private_key).verifier_key
    with pytest.raises(ConfigurationError):
        verify_checkpoint(note, LOG.verifier_key, [self_witness], 1)


def test_cosign_requires_a_checkpoint() -> None:
    with pytest.raises(DecodeError):
        cosign_checkpoint(sign_note("hello\n", [LOG]), WITNESSES[0], NOW)


# ----------------------------------------------------------------------------- consistency


def test_checkpoint_consistency() -> None:
    cps = [Checkpoint(ORIGIN, n, TREE.root(n)) for n in range(TREE.size + 1)]
    for old in cps:
        for new in cps[old.size :]:
            proof = TREE.consistency_proof(old.size, new.size) if old.size else []
            verify_checkpoint_consistency(old, new, proof)
            if old.size < new.size:
                with pytest.raises(InvalidMessage):
                    verify_checkpoint_consistency(new, old, proof)
    fork = Checkpoint(ORIGIN, 21, bytes(32))
    with pytest.raises(InvalidMessage):
        verify_checkpoint_consistency(cps[5], fork, TREE.consistency_proof(5, 21))
    with pytest.raises(InvalidMessage):
        verify_checkpoint_consistency(cps[21], fork, [])  # same size, different root
    other_log = Checkpoint("other.example", 21, TREE.root())
    with pytest.raises(InvalidMessage):
        verify_checkpoint_consistency(cps[5], other_log, TREE.consistency_proof(5, 21))
    with pytest.raises(InvalidMessage):
        verify_checkpoint_consistency(cps[0], cps[3], [bytes(32)])


# ----------------------------------------------------------------------------- proof bundles


def bundle_for(index: int, extra: bytes | None = None, quorum_signers: int = 3) -> ProofBundle:
    note = cosigned(CP, WITNESSES[:quorum_signers])
    return ProofBundle(index, tuple(TREE.inclusion_proof(index)), note, extra)


def test_bundle_format() -> None:
    bundle = bundle_for(7, extra=b"vrf proof")
    data = bundle.to_bytes()
    lines = data.decode().split("\n")
    assert lines[0] == "c2sp.org/tlog-proof@v1"
    assert lines[1] == "extra " + base64.b64encode(b"vrf proof").decode()
    assert lines[2] == "index 7"
    proof_lines = lines[3 : 3 + len(bundle.proof)]
    assert [base64.b64decode(p) for p in proof_lines] == list(bundle.proof)
    assert lines[3 + len(bundle.proof)] == ""
    assert data.endswith(b"\n\n" + bundle.checkpoint.to_bytes()) or data.endswith(
        b"\n" + bundle.checkpoint.to_bytes()
    )
    assert data.split(b"\n\n", 1)[1] == bundle.checkpoint.to_bytes()
    assert not bundle_for(7).to_bytes().split(b"\n")[1].startswith(b"extra")


@pytest.mark.parametrize("index", [0, 1, 7, 15, 16, 20])
@pytest.mark.parametrize("extra", [None, b"", b"\x00\xff context"])
def test_bundle_round_trip_and_verify(index: int, extra: bytes | None) -> None:
    bundle = bundle_for(index, extra)
    parsed = parse_proof_bundle(bundle.to_bytes())
    assert parsed == bundle
    verified = verify_proof_bundle(
        parsed, leaf_data=ENTRIES[index], log_key=LOG.verifier_key, witnesses=WKEYS, quorum=3
    )
    assert verified.checkpoint == CP
    verify_proof_bundle(
        parsed,
        leaf_hash=hash_leaf(ENTRIES[index]),
        log_key=LOG.verifier_key,
        witnesses=WKEYS,
        quorum=3,
    )


def _verify(bundle: ProofBundle, leaf: bytes, quorum: int = 3) -> None:
    verify_proof_bundle(
        bundle, leaf_data=leaf, log_key=LOG.verifier_key, witnesses=WKEYS, quorum=quorum
    )


def test_bundle_tampering_is_rejected() -> None:
    bundle = bundle_for(9)
    _verify(bundle, ENTRIES[9])
    with pytest.raises(InvalidMessage):
        _verify(bundle, ENTRIES[8])  # another entry
    with pytest.raises(InvalidMessage):
        _verify(ProofBundle(8, bundle.proof, bundle.checkpoint), ENTRIES[8])  # another index
    with pytest.raises(InvalidMessage):
        _verify(ProofBundle(10, bundle.proof, bundle.checkpoint), ENTRIES[9])
    with pytest.raises(InvalidMessage):
        _verify(ProofBundle(21, bundle.proof, bundle.checkpoint), ENTRIES[9])  # beyond size
    for i in range(len(bundle.proof)):
        proof = list(bundle.proof)
        proof[i] = bytes([proof[i][0] ^ 0x80]) + proof[i][1:]
        with pytest.raises(InvalidMessage):
            _verify(ProofBundle(9, tuple(proof), bundle.checkpoint), ENTRIES[9])
    with pytest.raises(InvalidMessage):
        _verify(ProofBundle(9, bundle.proof[:-1], bundle.checkpoint), ENTRIES[9])
    with pytest.raises(InvalidMessage):
        _verify(ProofBundle(9, (*bundle.proof, bytes(32)), bundle.checkpoint), ENTRIES[9])
    # A checkpoint the log signed but too few witnesses cosigned.
    with pytest.raises(InvalidMessage):
        _verify(bundle_for(9, quorum_signers=2), ENTRIES[9])
    # A checkpoint body altered after signing (a different size).
    text = bundle.checkpoint.text.replace("\n21\n", "\n22\n")
    with pytest.raises(InvalidMessage):
        _verify(ProofBundle(9, bundle.proof, Note(text, bundle.checkpoint.signatures)), ENTRIES[9])
    # Byte-level tampering of the encoding: every change is refused one way or another.
    data = bytearray(bundle.to_bytes())
    for pos in range(0, len(data), 7):
        mutated = bytearray(data)
        mutated[pos] ^= 0x01
        with pytest.raises((DecodeError, InvalidMessage)):
            _verify(parse_proof_bundle(bytes(mutated)), ENTRIES[9])


def test_bundle_extra_is_not_authenticated() -> None:
    # By the tlog-proof spec, extra data carries no authentication; applications must not
    # trust it. Changing it does not change the verdict.
    bundle = bundle_for(4, extra=b"one")
    _verify(ProofBundle(4, bundle.proof, bundle.checkpoint, b"two"), ENTRIES[4])


def test_bundle_leaf_argument_misuse() -> None:
    bundle = bundle_for(0)
    with pytest.raises(LocalError):
        verify_proof_bundle(bundle, log_key=LOG.verifier_key)
    with pytest.raises(LocalError):
        verify_proof_bundle(
            bundle, leaf_data=ENTRIES[0], leaf_hash=hash_leaf(ENTRIES[0]), log_key=LOG.verifier_key
        )


def test_single_entry_tree_bundle() -> None:
    tree = MemoryTree()
    tree.append(b"only")
    note = sign_checkpoint(Checkpoint(ORIGIN, 1, tree.root()), LOG)
    bundle = parse_proof_bundle(ProofBundle(0, (), note).to_bytes())
    assert bundle.proof == ()
    verify_proof_bundle(bundle, leaf_data=b"only", log_key=LOG.verifier_key)


GOOD = bundle_for(3, extra=b"x").to_bytes()
HEAD, NOTE_BYTES = GOOD.split(b"\n\n", 1)
HEAD_LINES = HEAD.split(b"\n")


def _bundle(lines: list[bytes], note: bytes = NOTE_BYTES) -> bytes:
    return b"\n".join(lines) + b"\n\n" + note


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(GOOD[: len(HEAD)], id="truncated-head"),
        pytest.param(_bundle([b"c2sp.org/tlog-proof@v2", *HEAD_LINES[1:]]), id="wrong-header"),
        pytest.param(_bundle([b"c2sp.org/tlog-proof@v1 ", *HEAD_LINES[1:]]), id="header-space"),
        pytest.param(_bundle([HEAD_LINES[0], b"extra !!", *HEAD_LINES[2:]]), id="bad-extra"),
        pytest.param(_bundle([HEAD_LINES[0], b"extra eA", *HEAD_LINES[2:]]), id="unpadded-extra"),
        pytest.param(_bundle([*HEAD_LINES[:2], b"index 03", *HEAD_LINES[3:]]), id="leading-zero"),
        pytest.param(_bundle([*HEAD_LINES[:2], b"index -3", *HEAD_LINES[3:]]), id="negative"),
        pytest.param(_bundle([*HEAD_LINES[:2], b"index  3", *HEAD_LINES[3:]]), id="double-space"),
        pytest.param(_bundle([*HEAD_LINES[:2], b"Index 3", *HEAD_LINES[3:]]), id="capital"),
        pytest.param(_bundle([*HEAD_LINES[:2], *HEAD_LINES[3:]]), id="no-index"),
        pytest.param(_bundle([*HEAD_LINES[:3], b"AAAA", *HEAD_LINES[4:]]), id="short-hash"),
        pytest.param(_bundle([*HEAD_LINES, b"A" * 42 + b"B="]), id="non-canonical-hash"),
        pytest.param(_bundle([*HEAD_LINES, b"A" * 43 + b"B"]), id="33-byte-hash"),
        pytest.param(_bundle([*HEAD_LINES, b"A" * 43 + b"=" * 1] * 64), id="too-many-hashes"),
        pytest.param(_bundle(HEAD_LINES, b"not a note\n"), id="bad-note"),
        pytest.param(_bundle(HEAD_LINES, sign_note("hi\n", [LOG]).to_bytes()), id="not-checkpoint"),
        pytest.param(_bundle(HEAD_LINES, b""), id="no-note"),
        pytest.param(HEAD + b"\n" + NOTE_BYTES, id="no-blank-line"),
    ],
)
def test_bundle_parse_rejects_malformed(data: bytes) -> None:
    with pytest.raises(DecodeError):
        parse_proof_bundle(data)
