"""ECVRF-RISTRETTO255-SHA512 (c2sp.org/vrf-r255).

Known answer: the one published test vector of c2sp.org/vrf-r255, checked end to end (pi, beta)
and at each intermediate value the spec lists. Properties (Hypothesis): determinism,
verification, rejection of every single-byte tamper of pi and of alpha, and of a wrong key.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from overt.crypto import DeterministicRng, Point, Scalar, constant_time_eq, sha512
from overt.crypto._ristretto import GROUP_ORDER
from overt.crypto.vrf import (
    OUTPUT_LEN,
    PROOF_LEN,
    SUITE_STRING,
    VrfPublicKey,
    VrfSecretKey,
    proof_to_hash,
    prove,
    verify,
    vrf_keygen,
)
from overt.errors import DecodeError, InvalidMessage

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "vrf" / "vrf-r255.json"
VRF: dict[str, Any] = json.loads(VECTORS.read_text())
TV: dict[str, str] = VRF["vectors"][0]


def _h(name: str) -> bytes:
    return bytes.fromhex(TV[name])


def _assert_invalid(pk: VrfPublicKey, alpha: bytes, pi: bytes) -> None:
    with pytest.raises(InvalidMessage) as excinfo:
        verify(pk, alpha, pi)
    assert excinfo.type is InvalidMessage
    assert str(excinfo.value) == "invalid message"


@pytest.fixture(scope="module")
def tv_key() -> VrfSecretKey:
    return VrfSecretKey.from_secret_bytes(_h("SK"))


# ------------------------------------------------------------------- c2sp.org/vrf-r255 vector


def test_suite_string() -> None:
    assert bytes.fromhex(VRF["suite_string"]) == SUITE_STRING
    assert len(VRF["vectors"]) == 1


def test_vector_keys(tv_key: VrfSecretKey) -> None:
    assert tv_key.public_key.raw == _h("PK")
    assert VrfPublicKey.from_bytes(_h("PK")) == tv_key.public_key


def test_vector_proof_and_output(tv_key: VrfSecretKey) -> None:
    pi = prove(tv_key, _h("alpha"))
    assert pi == _h("pi")
    assert proof_to_hash(pi) == _h("beta")
    assert verify(VrfPublicKey.from_bytes(_h("PK")), _h("alpha"), _h("pi")) == _h("beta")


def test_vector_intermediate_values(tv_key: VrfSecretKey) -> None:
    """Recompute the spec's listed intermediates from their definitions."""
    x = Scalar.from_bytes(_h("SK"))
    hash_string = sha512(SUITE_STRING + b"\x82" + _h("PK") + _h("alpha"))
    assert hash_string == _h("hash_string")
    h = Point.from_uniform(hash_string)
    assert h.raw == _h("H")
    k_string = sha512(SUITE_STRING + b"\x81" + x.raw + h.raw)
    assert k_string == _h("k_string")
    k = Scalar.from_wide(k_string)
    assert k.raw == _h("k")
    assert h.mul(x).raw == _h("Gamma")
    assert Point.base_mul(k).raw == _h("U")
    assert h.mul(k).raw == _h("V")
    c_string = sha512(
        SUITE_STRING + b"\x02" + _h("PK") + _h("H") + _h("Gamma") + _h("U") + _h("V") + b"\x00"
    )
    assert c_string == _h("c_string")
    assert c_string[:16] == _h("c")
    assert _h("pi") == _h("Gamma") + _h("c") + _h("s")
    assert sha512(SUITE_STRING + b"\x03" + _h("Gamma") + b"\x00") == _h("beta")


def test_vector_every_single_byte_tamper_fails(tv_key: VrfSecretKey) -> None:
    pi = _h("pi")
    alpha = _h("alpha")
    for i in range(PROOF_LEN):
        for mask in (0x01, 0x80, 0xFF):
            tampered = bytearray(pi)
            tampered[i] ^= mask
            _assert_invalid(tv_key.public_key, alpha, bytes(tampered))
    for i in range(len(alpha)):
        tampered = bytearray(alpha)
        tampered[i] ^= 0x01
        _assert_invalid(tv_key.public_key, bytes(tampered), pi)


# ------------------------------------------------------------------- malformed inputs


@pytest.mark.parametrize("length", [0, PROOF_LEN - 1, PROOF_LEN + 1])
def test_wrong_lengths(tv_key: VrfSecretKey, length: int) -> None:
    pi = (_h("pi") * 2)[:length]
    _assert_invalid(tv_key.public_key, _h("alpha"), pi)
    with pytest.raises(InvalidMessage):
        proof_to_hash(pi)


def test_non_canonical_s_and_gamma(tv_key: VrfSecretKey) -> None:
    pi = _h("pi")
    s_plus_l = (int.from_bytes(pi[48:], "little") + GROUP_ORDER).to_bytes(32, "little")
    bad_s = pi[:48] + s_plus_l
    bad_gamma = b"\xff" * 32 + pi[32:]
    for bad in (bad_s, bad_gamma):
        _assert_invalid(tv_key.public_key, _h("alpha"), bad)
        with pytest.raises(InvalidMessage):
            proof_to_hash(bad)


def test_identity_gamma_is_refused(tv_key: VrfSecretKey) -> None:
    _assert_invalid(tv_key.public_key, _h("alpha"), bytes(32) + _h("pi")[32:])


def test_public_key_validation() -> None:
    with pytest.raises(DecodeError):
        VrfPublicKey.from_bytes(bytes(32))  # the identity (ECVRF_validate_key)
    with pytest.raises(DecodeError):
        VrfPublicKey.from_bytes(b"\xff" * 32)  # not canonical
    with pytest.raises(DecodeError):
        VrfPublicKey.from_bytes(_h("PK")[:31])


def test_secret_key_validation_and_export(tv_key: VrfSecretKey) -> None:
    with pytest.raises(DecodeError):
        VrfSecretKey.from_secret_bytes(bytes(32))
    with pytest.raises(DecodeError):
        VrfSecretKey.from_secret_bytes(GROUP_ORDER.to_bytes(32, "little"))
    assert constant_time_eq(tv_key.export_secret(), _h("SK"))
    again = VrfSecretKey.from_secret_bytes(tv_key.export_secret())
    assert again.public_key == tv_key.public_key
    assert again != tv_key  # secret keys compare by identity only
    assert "redacted" in repr(tv_key)
    assert TV["SK"] not in repr(tv_key)
    assert TV["SK"][:12] not in repr(tv_key)
    with pytest.raises(dataclasses.FrozenInstanceError):
        tv_key.public_key = again.public_key  # type: ignore[misc]


# ------------------------------------------------------------------- properties


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**64), alpha=st.binary(max_size=64))
def test_prove_verify_properties(seed: int, alpha: bytes) -> None:
    sk, pk = vrf_keygen(DeterministicRng(seed))
    pi = prove(sk, alpha)
    assert len(pi) == PROOF_LEN
    assert prove(sk, alpha) == pi  # deterministic
    beta = verify(pk, alpha, pi)
    assert len(beta) == OUTPUT_LEN
    assert beta == proof_to_hash(pi)
    # Every single-byte tamper of pi fails.
    for i in range(PROOF_LEN):
        tampered = bytearray(pi)
        tampered[i] ^= 0x01 << (seed + i) % 8
        _assert_invalid(pk, alpha, bytes(tampered))
    # Every single-byte tamper of alpha fails, as do an extension and a truncation.
    for i in range(len(alpha)):
        tampered = bytearray(alpha)
        tampered[i] ^= 0x01 << (seed + i) % 8
        _assert_invalid(pk, bytes(tampered), pi)
    _assert_invalid(pk, alpha + b"\x00", pi)
    if alpha:
        _assert_invalid(pk, alpha[:-1], pi)
    # Another key rejects it.
    _, other = vrf_keygen(DeterministicRng(seed + 1))
    _assert_invalid(other, alpha, pi)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**64), a=st.binary(max_size=32), b=st.binary(max_size=32))
def test_outputs_are_unique_per_input_and_key(seed: int, a: bytes, b: bytes) -> None:
    sk, pk = vrf_keygen(DeterministicRng(seed))
    sk2, _ = vrf_keygen(DeterministicRng(seed + 1))
    beta_a = verify(pk, a, prove(sk, a))
    assert (beta_a == verify(pk, b, prove(sk, b))) == (a == b)
    assert proof_to_hash(prove(sk2, a)) != beta_a
