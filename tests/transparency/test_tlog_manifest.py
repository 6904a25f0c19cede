"""The deployment manifest: validation, signing, verification, succession and display."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from overt.crypto import DeterministicRng, Ed25519PrivateKey, Ed25519PublicKey
from overt.crypto.vrf import VrfSecretKey
from overt.errors import (
    ConfigurationError,
    DecodeError,
    InvalidMessage,
    LocalError,
    ProtocolViolation,
    UntrustedIdentity,
)
from overt.transparency.checkpoint import (
    Checkpoint,
    cosign_checkpoint,
    sign_checkpoint,
    verify_checkpoint,
)
from overt.transparency.entries import MAX_MANIFEST_BYTES as ENTRY_MANIFEST_LIMIT
from overt.transparency.manifest import (
    MANIFEST_SIGNING_CONTEXT,
    MAX_MANIFEST_BYTES,
    Custodian,
    EscrowAccess,
    LogInfo,
    Manifest,
    MatchingPolicy,
    NamedKey,
    NoAccess,
    SafetyPolicy,
    WitnessInfo,
    access_policy_from_json,
    check_successor,
    describe_policy,
    describe_safety,
    safety_policy_from_json,
    sign_manifest,
    verify_manifest,
    verify_successor,
)
from overt.transparency.merkle import MemoryTree
from overt.transparency.note import CosignatureSigner, NoteSigner
from overt.wire.jcs import canonicalize, parse_strict


def key(seed: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate(DeterministicRng(seed))


def pub(seed: str) -> Ed25519PublicKey:
    return key(seed).public_key


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


PROVIDER = key("provider")
VRF = VrfSecretKey.generate(DeterministicRng("vrf"))
NEXT_PROVIDER = key("provider-2")
ORIGIN = "log.overt.example/v1"
LOG = NoteSigner(ORIGIN, key("log"))
WITNESSES = [CosignatureSigner(f"witness{i}.example", key(f"witness{i}")) for i in range(3)]


def custodians(n: int) -> tuple[Custodian, ...]:
    return tuple(
        Custodian(f"Custodian {i}", f"https://custodian{i}.example/api", pub(f"custodian{i}"))
        for i in range(n)
    )


def escrow(n: int = 5, t: int = 3, **kw: Any) -> EscrowAccess:
    fields: dict[str, Any] = {
        "custodians": custodians(n),
        "threshold": t,
        "court_keys": (NamedKey("District Court", pub("court")),),
        "epoch_length_days": 30,
        "retention_days": 365,
        "max_seal_days": 180,
    }
    fields.update(kw)
    return EscrowAccess(**fields)


def manifest(**kw: Any) -> Manifest:
    fields: dict[str, Any] = {
        "deployment": "overt.example",
        "version": 1,
        "provider_key": PROVIDER.public_key,
        "server_keys": (NamedKey("api-2025", pub("server")),),
        "log": LogInfo(ORIGIN, LOG.verifier_key),
        "witnesses": tuple(WitnessInfo(f"W{i}", w.verifier_key) for i, w in enumerate(WITNESSES)),
        "witness_quorum": 2,
        "access": escrow(),
    }
    fields.update(kw)
    return Manifest(**fields)


def resign(doc: dict[str, Any], signer: Ed25519PrivateKey = PROVIDER) -> bytes:
    """Sign an arbitrary manifest object the way a (possibly malicious) provider could."""
    sig = signer.sign(MANIFEST_SIGNING_CONTEXT + canonicalize(doc))
    return canonicalize({"manifest": doc, "signature": b64url(sig)})


def manifest_json(m: Manifest | None = None) -> dict[str, Any]:
    obj = json.loads(sign_manifest(m or manifest(), PROVIDER))
    assert isinstance(obj["manifest"], dict)
    return obj["manifest"]


# ----------------------------------------------------------------------------- round trip


@pytest.mark.parametrize(
    "m",
    [
        manifest(),
        manifest(access=NoAccess()),
        manifest(next_provider_key=NEXT_PROVIDER.public_key, version=7),
        manifest(vrf_key=VRF.public_key),
        manifest(witnesses=(), witness_quorum=0),  # unwitnessed: the log's signature alone
        manifest(
            safety=SafetyPolicy(
                matching=MatchingPolicy(
                    enabled=True,
                    threshold=5,
                    list_signers=(NamedKey("NCMEC", pub("ncmec")), NamedKey("IWF", pub("iwf"))),
                    list_signer_quorum=2,
                )
            )
        ),
    ],
)
def test_sign_and_verify_round_trip(m: Manifest) -> None:
    signed = sign_manifest(m, PROVIDER)
    assert verify_manifest(signed) == m
    assert verify_manifest(signed, PROVIDER.public_key) == m
    assert canonicalize(parse_strict(signed)) == signed  # the envelope is canonical JSON
    assert len(signed) < MAX_MANIFEST_BYTES


def test_signature_is_over_context_and_canonical_manifest() -> None:
    """Checked independently of verify_manifest: Ed25519 over the context ‖ JCS(manifest)."""
    m = manifest()
    envelope = json.loads(sign_manifest(m, PROVIDER))
    assert set(envelope) == {"manifest", "signature"}
    signature = base64.urlsafe_b64decode(envelope["signature"] + "==")
    message = b"Overt_Manifest_v1\n" + canonicalize(envelope["manifest"])
    PROVIDER.public_key.verify(signature, message)
    assert message == MANIFEST_SIGNING_CONTEXT + m.canonical_bytes()


def test_json_shape() -> None:
    doc = manifest_json()
    assert set(doc) == {
        "access", "deployment", "log", "provider_key", "safety", "server_keys", "version",
        "witnesses",
    }  # fmt: skip
    assert doc["access"]["mode"] == "escrow"
    assert doc["access"]["custodians"][0] == {
        "key": b64url(pub("custodian0").raw),
        "name": "Custodian 0",
        "url": "https://custodian0.example/api",
    }
    assert doc["log"] == {"origin": ORIGIN, "vkey": LOG.verifier_key.to_text()}
    assert doc["witnesses"]["quorum"] == 2
    assert doc["witnesses"]["members"][0]["vkey"] == WITNESSES[0].verifier_key.to_text()
    assert doc["safety"] == {"franking": True, "matching": {"enabled": False}}
    assert manifest_json(manifest(access=NoAccess()))["access"] == {"mode": "none"}
    assert manifest_json(manifest(vrf_key=VRF.public_key))["vrf_key"] == b64url(VRF.public_key.raw)
    assert manifest_json(manifest(witnesses=(), witness_quorum=0))["witnesses"] == {
        "members": [],
        "quorum": 0,
    }


def test_policies_read_from_json_as_in_the_manifest() -> None:
    doc = manifest_json()
    assert access_policy_from_json(doc["access"]) == escrow()
    assert access_policy_from_json({"mode": "none"}) == NoAccess()
    assert safety_policy_from_json(doc["safety"]) == SafetyPolicy()
    for bad in ({"mode": "backdoor"}, {"mode": "none", "threshold": 1}, [], None):
        with pytest.raises(DecodeError):
            access_policy_from_json(bad)
    for bad_safety in ({"franking": False, "matching": {"enabled": False}}, {"franking": True}):
        with pytest.raises(DecodeError):
            safety_policy_from_json(bad_safety)


def test_manifest_keys_check_witnessed_checkpoints() -> None:
    """The keys a client pins from the manifest are the ones checkpoints verify under."""
    m = verify_manifest(sign_manifest(manifest(), PROVIDER))
    tree = MemoryTree([])
    tree.append(sign_manifest(m, PROVIDER))
    note = sign_checkpoint(Checkpoint(ORIGIN, 1, tree.root()), LOG)
    for w in WITNESSES[:2]:
        note = cosign_checkpoint(note, w, 1_750_000_000)
    verified = verify_checkpoint(
        note, m.log.vkey, m.witness_keys, m.witness_quorum, origin=m.log.origin
    )
    assert verified.checkpoint.size == 1


# ----------------------------------------------------------------------------- what users see


def test_describe_policy() -> None:
    assert describe_policy(manifest()) == (
        "exceptional access: 3 of 5 custodians, notice within 180 days"
    )
    assert describe_policy(manifest(access=NoAccess())) == (
        "no exceptional access (end-to-end encryption only)"
    )
    assert describe_policy(manifest(access=escrow(2, 2, max_seal_days=1))) == (
        "exceptional access: 2 of 2 custodians, notice within 1 day"
    )
    assert describe_policy(manifest(access=escrow(max_seal_days=0))) == (
        "exceptional access: 3 of 5 custodians, immediate notice"
    )


def test_describe_safety() -> None:
    assert "matching off" in describe_safety(manifest())
    on = SafetyPolicy(
        matching=MatchingPolicy(True, 3, (NamedKey("NCMEC", pub("ncmec")),), 1),
    )
    assert "matching on (threshold 3, list signed by 1 of 1 organisations)" in describe_safety(
        manifest(safety=on)
    )


# ----------------------------------------------------------------------------- local validation


@pytest.mark.parametrize(
    "build",
    [
        lambda: escrow(5, 6),  # threshold above the custodians
        lambda: escrow(5, 1),  # a single custodian could decrypt
        lambda: escrow(1, 1),
        lambda: escrow(5, 0),
        lambda: escrow(court_keys=()),
        lambda: escrow(custodians=custodians(2) + custodians(1)),  # duplicate custodian
        lambda: escrow(epoch_length_days=0),
        lambda: escrow(retention_days=10_000),
        lambda: escrow(max_seal_days=-1),
        lambda: escrow(threshold=True),
        lambda: Custodian("c", "http://custodian.example", pub("c")),  # plain http, not loopback
        lambda: Custodian("c", "https://user:pw@custodian.example", pub("c")),
        lambda: Custodian("c", "ftp://custodian.example", pub("c")),
        lambda: Custodian("c", "https://custodian.example/?q=1", pub("c")),
        lambda: Custodian("c", "https://", pub("c")),
        lambda: Custodian("", "https://custodian.example", pub("c")),
        lambda: Custodian(" c", "https://custodian.example", pub("c")),
        lambda: Custodian("c\n", "https://custodian.example", pub("c")),
        lambda: Custodian("c" * 200, "https://custodian.example", pub("c")),
        lambda: manifest(witness_quorum=4),  # quorum above the witnesses
        lambda: manifest(witness_quorum=0),  # listed witnesses must be required
        lambda: manifest(witnesses=()),  # a quorum without witnesses
        lambda: manifest(witnesses=(), witness_quorum=1),
        lambda: manifest(vrf_key=VRF.public_key.raw),
        lambda: manifest(witnesses=(WitnessInfo("a", WITNESSES[0].verifier_key),) * 2),
        lambda: manifest(server_keys=()),
        lambda: manifest(version=0),
        lambda: manifest(version=1 << 53),
        lambda: manifest(deployment=""),
        lambda: manifest(next_provider_key=PROVIDER.public_key),
        lambda: manifest(access="none"),
        lambda: LogInfo(ORIGIN, WITNESSES[0].verifier_key),  # a cosignature key as log key
        lambda: LogInfo("", LOG.verifier_key),
        lambda: WitnessInfo("w", LOG.verifier_key),  # a note key as witness key
        lambda: manifest(  # the log witnessing itself
            witnesses=(
                WitnessInfo("self", CosignatureSigner("self", LOG.private_key).verifier_key),
            ),
            witness_quorum=1,
        ),
        lambda: SafetyPolicy(franking=False),
        lambda: MatchingPolicy(enabled=True, threshold=3),  # no list signers
        lambda: MatchingPolicy(True, 3, (NamedKey("NCMEC", pub("ncmec")),), 2),
        lambda: MatchingPolicy(enabled=False, threshold=3),
    ],
)
def test_invalid_manifests_cannot_be_built(build: Any) -> None:
    with pytest.raises(ConfigurationError):
        build()


def test_loopback_http_custodians_allowed_for_local_deployments() -> None:
    for url in ("http://127.0.0.1:8001", "http://localhost:8002/", "http://[::1]:8003"):
        assert Custodian("c", url, pub("c")).url == url


def test_signing_with_another_key_is_refused() -> None:
    with pytest.raises(LocalError):
        sign_manifest(manifest(), NEXT_PROVIDER)


# ----------------------------------------------------------------------------- remote input


def test_wrong_pinned_key_refused() -> None:
    with pytest.raises(UntrustedIdentity):
        verify_manifest(sign_manifest(manifest(), PROVIDER), NEXT_PROVIDER.public_key)


def test_forged_signature_refused() -> None:
    doc = manifest_json()
    # Signed by someone else while naming the provider's key.
    with pytest.raises(InvalidMessage):
        verify_manifest(resign(doc, NEXT_PROVIDER))
    # A tampered policy under the original signature.
    envelope = json.loads(sign_manifest(manifest(), PROVIDER))
    envelope["manifest"]["access"]["threshold"] = 2
    with pytest.raises(InvalidMessage):
        verify_manifest(canonicalize(envelope))


def test_every_signature_bit_matters() -> None:
    signed = sign_manifest(manifest(access=NoAccess()), PROVIDER)
    envelope = json.loads(signed)
    raw = bytearray(base64.urlsafe_b64decode(envelope["signature"] + "=="))
    for i in range(0, len(raw) * 8, 37):
        flipped = bytearray(raw)
        flipped[i // 8] ^= 1 << (i % 8)
        envelope["signature"] = b64url(bytes(flipped))
        with pytest.raises(InvalidMessage):
            verify_manifest(canonicalize(envelope))


def test_non_canonical_envelopes_refused() -> None:
    signed = sign_manifest(manifest(), PROVIDER)
    pretty = json.dumps(json.loads(signed), indent=1).encode()
    with pytest.raises(DecodeError, match="canonical"):
        verify_manifest(pretty)
    envelope = json.loads(signed)
    reordered = (
        b'{"signature":'
        + json.dumps(envelope["signature"]).encode()
        + b',"manifest":'
        + canonicalize(envelope["manifest"])
        + b"}"
    )
    assert json.loads(reordered) == envelope
    with pytest.raises(DecodeError, match="canonical"):
        verify_manifest(reordered)


def _mutations() -> list[tuple[str, Any]]:
    def set_path(path: str, value: Any) -> Any:
        def mutate(doc: dict[str, Any]) -> None:
            *parents, last = path.split(".")
            target: Any = doc
            for p in parents:
                target = target[int(p)] if p.isdigit() else target[p]
            if value is _DELETE:
                del target[last]
            else:
                target[int(last) if last.isdigit() else last] = value

        return mutate

    return [
        ("threshold above custodians", set_path("access.threshold", 6)),
        ("threshold of one", set_path("access.threshold", 1)),
        ("quorum above witnesses", set_path("witnesses.quorum", 4)),
        ("unknown member", set_path("extra", 1)),
        ("unknown access member", set_path("access.note", "x")),
        ("missing member", set_path("safety", _DELETE)),
        ("missing access member", set_path("access.court_keys", _DELETE)),
        ("unknown mode", set_path("access.mode", "backdoor")),
        ("none with escrow fields", lambda d: d.update(access={"mode": "none", "threshold": 3})),
        ("franking off", set_path("safety.franking", False)),
        ("matching extra", set_path("safety.matching.threshold", 3)),
        ("version as string", set_path("version", "2")),
        ("version as bool", set_path("version", True)),
        ("bad key", set_path("provider_key", "AAAA")),
        ("padded key", set_path("server_keys.0.key", b64url(pub("server").raw) + "=")),
        ("bad vkey", set_path("log.vkey", "log+00000000+AQ")),
        ("witness with a note key", set_path("witnesses.members.0.vkey", LOG_VKEY_TEXT)),
        ("null next key", set_path("next_provider_key", None)),
        ("custodian over http", set_path("access.custodians.0.url", "http://evil.example")),
        ("custodians not a list", set_path("access.custodians", {})),
        ("vrf key not a point", set_path("vrf_key", b64url(b"\xff" * 32))),
        ("vrf key identity", set_path("vrf_key", b64url(bytes(32)))),
        ("vrf key short", set_path("vrf_key", b64url(b"\x01" * 31))),
        ("vrf key null", set_path("vrf_key", None)),
        ("no witnesses but a quorum", set_path("witnesses.members", [])),
    ]


_DELETE = object()
LOG_VKEY_TEXT = LOG.verifier_key.to_text()


@pytest.mark.parametrize(("what", "mutate"), _mutations(), ids=[m[0] for m in _mutations()])
def test_invalid_signed_manifests_refused(what: str, mutate: Any) -> None:
    """Even correctly signed, a manifest that breaks a rule is refused as malformed."""
    doc = manifest_json()
    mutate(doc)
    with pytest.raises(DecodeError):
        verify_manifest(resign(doc))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"[]",
        b'{"manifest":{},"signature":""}',
        b'{"manifest":1,"signature":"x"}',
        b'{"signature":"x"}',
        b"\xff",
        b'{"a":1.5}',
        b"{" + b" " * MAX_MANIFEST_BYTES + b"}",
    ],
)
def test_garbage_refused(data: bytes) -> None:
    with pytest.raises(DecodeError):
        verify_manifest(data)


def test_duplicate_members_refused() -> None:
    signed = sign_manifest(manifest(), PROVIDER)
    doubled = signed.replace(b'"version":1', b'"version":1,"version":1')
    with pytest.raises(DecodeError):
        verify_manifest(doubled)


# ----------------------------------------------------------------------------- succession


def test_successor_rules() -> None:
    v1 = manifest()
    v2 = manifest(version=2, access=NoAccess())
    check_successor(v1, v2)
    with pytest.raises(ProtocolViolation):
        check_successor(v2, v1)  # a rollback
    with pytest.raises(ProtocolViolation):
        check_successor(v1, manifest(version=1, witness_quorum=3))  # same version, new content
    with pytest.raises(ProtocolViolation):
        check_successor(v1, manifest(version=2, deployment="other.example"))
    with pytest.raises(UntrustedIdentity):
        check_successor(v1, manifest(version=2, provider_key=NEXT_PROVIDER.public_key))


def test_key_rotation_announced_in_the_pinned_manifest() -> None:
    v1 = manifest(next_provider_key=NEXT_PROVIDER.public_key)
    v2 = manifest(version=2, provider_key=NEXT_PROVIDER.public_key)
    pinned = verify_manifest(sign_manifest(v1, PROVIDER))
    assert verify_successor(pinned, sign_manifest(v2, NEXT_PROVIDER)) == v2
    # The old key may still sign the next version (the rotation is optional) ...
    assert verify_successor(pinned, sign_manifest(manifest(version=2), PROVIDER)).version == 2
    # ... but once rotated, the old key is no longer trusted unless v2 announced it back.
    with pytest.raises(UntrustedIdentity):
        verify_successor(v2, sign_manifest(manifest(version=3), PROVIDER))


def test_verify_successor_checks_the_signature() -> None:
    pinned = manifest()
    doc = manifest_json(manifest(version=2))
    with pytest.raises(InvalidMessage):
        verify_successor(pinned, resign(doc, NEXT_PROVIDER))


# ----------------------------------------------------------------------------- properties


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(2, 8),
    data=st.data(),
    days=st.tuples(st.integers(1, 3660), st.integers(1, 3660), st.integers(0, 3660)),
    version=st.integers(1, (1 << 53) - 1),
    quorum=st.integers(1, 3),
)
def test_valid_manifests_round_trip(
    n: int, data: st.DataObject, days: tuple[int, int, int], version: int, quorum: int
) -> None:
    t = data.draw(st.integers(2, n))
    m = manifest(
        version=version,
        witness_quorum=quorum,
        access=escrow(
            n, t, epoch_length_days=days[0], retention_days=days[1], max_seal_days=days[2]
        ),
    )
    assert verify_manifest(sign_manifest(m, PROVIDER), PROVIDER.public_key) == m
    assert describe_policy(m).startswith(f"exceptional access: {t} of {n} custodians, ")
    assert replace(m, version=version) == m


def test_a_signed_manifest_always_fits_a_log_entry() -> None:
    assert MAX_MANIFEST_BYTES <= ENTRY_MANIFEST_LIMIT
    long_urls = tuple(
        Custodian(f"c{i}", f"https://c{i}.example/" + "p" * 2000, pub(f"c{i}")) for i in range(32)
    )
    with pytest.raises(ConfigurationError, match="MAX_MANIFEST_BYTES"):
        sign_manifest(manifest(access=escrow(custodians=long_urls)), PROVIDER)


def test_matching_parameters_round_trip_and_old_manifests_parse() -> None:
    from overt.transparency.manifest import (  # noqa: PLC0415
        DEFAULT_LSH_SEED,
        MatchingParameters,
        safety_policy_from_json,
    )
    from overt.wire.jcs import canonicalize  # noqa: PLC0415

    signers = (NamedKey("NCMEC", pub("ncmec")), NamedKey("IWF", pub("iwf")))
    params = MatchingParameters(lsh_keys=20, lsh_bits_per_key=44, lsh_seed=b"\x05" * 32)
    on = SafetyPolicy(matching=MatchingPolicy(True, 10, signers, 2, params))
    doc = on.to_json()
    assert doc["matching"]["parameters"]["lsh_keys"] == 20  # type: ignore[call-overload,index]
    assert safety_policy_from_json(doc) == on
    signed = sign_manifest(manifest(safety=on), PROVIDER)
    assert verify_manifest(signed).safety == on
    # A manifest written before the parameters existed: they are the defaults.
    old = {
        "franking": True,
        "matching": {"enabled": True, "list_signer_quorum": 2, "threshold": 10,
                     "list_signers": [s.to_json() for s in signers]},
    }  # fmt: skip
    parsed = safety_policy_from_json(old).matching
    assert parsed.parameters is None
    assert parsed.effective_parameters == MatchingParameters()
    assert parsed.effective_parameters.lsh_seed == DEFAULT_LSH_SEED
    assert canonicalize(safety_policy_from_json(old).to_json()) == canonicalize(old)
    assert "16 keys of 40 bits" in describe_safety(manifest(safety=SafetyPolicy(matching=parsed)))


@pytest.mark.parametrize(
    ("member", "value"),
    [
        ("lsh_keys", 0),
        ("lsh_keys", 65),
        ("lsh_bits_per_key", 8),
        ("lsh_flip_bits", 5),
        ("lsh_seed", "AAAA"),
        ("signal_type", "md5"),
        ("detection_width", 0),
        ("synthetic_one_in", 0),
        ("generation_images", 0),
    ],
)
def test_bad_matching_parameters_are_refused(member: str, value: object) -> None:
    from overt.errors import DecodeError  # noqa: PLC0415
    from overt.transparency.manifest import MatchingParameters, safety_policy_from_json  # noqa: PLC0415

    signers = (NamedKey("NCMEC", pub("ncmec")),)
    doc = SafetyPolicy(matching=MatchingPolicy(True, 3, signers, 1, MatchingParameters())).to_json()
    doc["matching"]["parameters"][member] = value  # type: ignore[call-overload,index]
    with pytest.raises(DecodeError):
        safety_policy_from_json(doc)


def test_matching_default_seed_is_the_lsh_modules() -> None:
    from overt.safety.matching.lsh import DEFAULT_LSH_SEED as CORE_SEED  # noqa: PLC0415
    from overt.transparency.manifest import DEFAULT_LSH_SEED  # noqa: PLC0415

    assert DEFAULT_LSH_SEED == CORE_SEED
