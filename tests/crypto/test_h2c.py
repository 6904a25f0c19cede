"""RFC 9380 expand_message_xmd(SHA-512) and ristretto255 hash-to-group / hash-to-scalar.

Known answers: RFC 9380 Appendix K.3 for the expander; RFC 9497's ristretto255-SHA512 vectors
for HashToGroup (BlindedElement = Blind·HashToGroup(Input)) and HashToScalar (DeriveKeyPair).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from overt.crypto import Point, Scalar, sha512
from overt.crypto.h2c import (
    MAX_DST_LEN,
    OVERSIZE_DST_PREFIX,
    expand_message_xmd,
    hash_to_group,
    hash_to_scalar,
)

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "oprf"
XMD = json.loads((VECTORS / "rfc9380-expand-message-xmd-sha512.json").read_text())
OPRF: list[dict[str, Any]] = json.loads((VECTORS / "ristretto255-sha512.json").read_text())


def _context(mode: int) -> bytes:
    return b"OPRFV1-" + bytes((mode,)) + b"-ristretto255-SHA512"


def _single_vectors() -> list[tuple[int, dict[str, str]]]:
    return [(e["mode"], v) for e in OPRF for v in e["vectors"] if v["Batch"] == 1]


# ------------------------------------------------------------------- RFC 9380 K.3


def test_xmd_vector_file_is_the_sha512_one() -> None:
    assert XMD["hash"] == "SHA512"
    assert XMD["name"] == "expand_message_xmd"
    assert len(XMD["tests"]) == 10


@pytest.mark.parametrize("case", XMD["tests"], ids=lambda c: f"{c['msg'][:8]}-{c['len_in_bytes']}")
def test_expand_message_xmd_rfc9380_k3(case: dict[str, str]) -> None:
    out = expand_message_xmd(
        case["msg"].encode(), XMD["DST"].encode(), int(case["len_in_bytes"], 16)
    )
    assert out.hex() == case["uniform_bytes"]


@pytest.mark.parametrize("length", [0, -1, 0xFFFF + 1, 255 * 64 + 1])
def test_expand_message_xmd_rejects_lengths_out_of_range(length: int) -> None:
    with pytest.raises(ValueError):
        expand_message_xmd(b"msg", b"DST", length)


def test_expand_message_xmd_largest_output() -> None:
    assert len(expand_message_xmd(b"msg", b"DST", 255 * 64)) == 255 * 64


def test_oversize_dst_is_hashed_down_as_rfc9380_5_3_3_says() -> None:
    long_dst = b"D" * (MAX_DST_LEN + 1)
    short_dst = sha512(OVERSIZE_DST_PREFIX + long_dst)
    assert expand_message_xmd(b"abc", long_dst, 64) == expand_message_xmd(b"abc", short_dst, 64)
    # A tag of exactly 255 bytes is still used as is.
    edge = b"E" * MAX_DST_LEN
    assert expand_message_xmd(b"abc", edge, 64) != expand_message_xmd(
        b"abc", sha512(OVERSIZE_DST_PREFIX + edge), 64
    )


# ------------------------------------------------------------------- RFC 9497 ristretto255


def test_oprf_vector_file_holds_the_three_ristretto_modes() -> None:
    assert sorted(e["mode"] for e in OPRF) == [0, 1, 2]
    for e in OPRF:
        assert e["identifier"] == "ristretto255-SHA512"
        assert bytes.fromhex(e["groupDST"]) == b"HashToGroup-" + _context(e["mode"])


@pytest.mark.parametrize(("mode", "vector"), _single_vectors())
def test_hash_to_group_matches_rfc9497_blinded_elements(mode: int, vector: dict[str, str]) -> None:
    element = hash_to_group(bytes.fromhex(vector["Input"]), b"HashToGroup-" + _context(mode))
    blind = Scalar.from_bytes(bytes.fromhex(vector["Blind"]))
    assert element.mul(blind).raw.hex() == vector["BlindedElement"]


@pytest.mark.parametrize("entry", OPRF, ids=lambda e: f"mode{e['mode']}")
def test_hash_to_scalar_matches_rfc9497_derive_key_pair(entry: dict[str, Any]) -> None:
    seed = bytes.fromhex(entry["seed"])
    info = bytes.fromhex(entry["keyInfo"])
    derive_input = seed + len(info).to_bytes(2, "big") + info + b"\x00"  # counter 0 suffices
    sk = hash_to_scalar(derive_input, b"DeriveKeyPair" + _context(entry["mode"]))
    assert sk.raw.hex() == entry["skSm"]
    if "pkSm" in entry:
        assert Point.base_mul(sk).raw.hex() == entry["pkSm"]


# ------------------------------------------------------------------- properties


@given(st.binary(max_size=300), st.binary(min_size=1, max_size=300))
def test_hash_to_group_is_a_canonical_element(msg: bytes, dst: bytes) -> None:
    p = hash_to_group(msg, dst)
    assert Point.from_bytes(p.raw) == p
    assert hash_to_group(msg, dst) == p


@given(st.binary(max_size=300), st.binary(min_size=1, max_size=64))
def test_hash_to_scalar_is_canonical_and_deterministic(msg: bytes, dst: bytes) -> None:
    s = hash_to_scalar(msg, dst)
    assert Scalar.from_bytes(s.raw).raw == s.raw
    assert hash_to_scalar(msg, dst).raw == s.raw


@given(st.binary(max_size=64), st.binary(min_size=1, max_size=64), st.integers(16, 600))
def test_expand_message_xmd_length_and_domain_separation(msg: bytes, dst: bytes, n: int) -> None:
    out = expand_message_xmd(msg, dst, n)
    assert len(out) == n
    assert expand_message_xmd(msg, dst + b"!", n) != out
