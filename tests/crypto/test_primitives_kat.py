"""Known-answer tests for the primitives behind overt.crypto, from the published vector sets
shipped in the ``cryptography-vectors`` package (same version as ``cryptography``):
RFC 5869 (HKDF-SHA256), RFC 7748 §5.2 (X25519), RFC 8032 (Ed25519, the sign.input set) and
the FIPS 203 ML-KEM-768 known-answer file."""

from __future__ import annotations

import importlib.resources
from collections.abc import Iterator

import pytest

from overt.crypto import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
    MlKem768PrivateKey,
    X25519PrivateKey,
    X25519PublicKey,
    hkdf_expand,
    hkdf_extract,
    hkdf_sha256,
)
from overt.errors import InvalidMessage

VECTORS = importlib.resources.files("cryptography_vectors")


def _records(path: str) -> Iterator[dict[str, str]]:
    """``key = value`` records, one per ``COUNT``/``count`` line."""
    rec: dict[str, str] = {}
    for raw in (VECTORS / path).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        k, v = (x.strip() for x in line.split("=", 1))
        if k.lower() == "count" and rec:
            yield rec
            rec = {}
        rec[k] = v
    if rec:
        yield rec


def test_hkdf_rfc5869() -> None:
    cases = [r for r in _records("KDF/rfc-5869-HKDF-SHA256.txt") if "OKM" in r]
    assert len(cases) == 3
    for r in cases:
        ikm, salt, info = (bytes.fromhex(r[k]) for k in ("IKM", "salt", "info"))
        assert hkdf_extract(salt, ikm).hex() == r["PRK"]
        assert hkdf_expand(bytes.fromhex(r["PRK"]), info, int(r["L"])).hex() == r["OKM"]
        assert hkdf_sha256(ikm, salt, info, int(r["L"])).hex() == r["OKM"]


def test_x25519_rfc7748() -> None:
    cases = [r for r in _records("asymmetric/X25519/rfc7748.txt") if "OUTPUT_U" in r]
    assert len(cases) >= 2
    for r in cases:
        k = X25519PrivateKey.from_secret_bytes(bytes.fromhex(r["INPUT_SCALAR"]))
        u = X25519PublicKey.from_bytes(bytes.fromhex(r["INPUT_U"]))
        assert k.exchange(u).hex() == r["OUTPUT_U"]


def test_x25519_low_order_point_is_invalid() -> None:
    k = X25519PrivateKey.from_secret_bytes(bytes(range(32)))
    with pytest.raises(InvalidMessage):
        k.exchange(X25519PublicKey.from_bytes(bytes(32)))


def test_ed25519_rfc8032_sign_input() -> None:
    lines = (VECTORS / "asymmetric/Ed25519/sign.input").read_text().splitlines()
    assert len(lines) == 1024
    for line in lines[:: 1024 // 64]:
        sk_pk, pk, msg, sig_msg, _ = line.split(":")
        key = Ed25519PrivateKey.from_secret_bytes(bytes.fromhex(sk_pk[:64]))
        assert key.public_key.raw.hex() == pk
        m = bytes.fromhex(msg)
        assert key.sign(m).hex() == sig_msg[:128]
        Ed25519PublicKey.from_bytes(bytes.fromhex(pk)).verify(bytes.fromhex(sig_msg[:128]), m)


def test_mlkem768_fips203_kat() -> None:
    cases = [r for r in _records("asymmetric/MLKEM/kat_MLKEM_768.rsp") if "ss" in r]
    assert len(cases) >= 10
    for r in cases[:25]:
        key = MlKem768PrivateKey.from_seed(bytes.fromhex(r["d"] + r["z"]))
        assert key.public_key.raw.hex() == r["pk"]
        assert key.decapsulate(bytes.fromhex(r["ct"])).hex() == r["ss"]
        # Implicit rejection: the spec's "ct_n" decapsulates to the pseudo-random "ss_n".
        assert key.decapsulate(bytes.fromhex(r["ct_n"])).hex() == r["ss_n"]
