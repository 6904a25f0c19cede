"""RFC 9497 end to end for ristretto255-SHA512: every vector of modes 0, 1 and 2.

DeriveKeyPair, Blind (with the vector's blinds), BlindEvaluate (with the vector's proof
randomness), Finalize and the server's direct Evaluate must all reproduce the published bytes.
This exercises overt.crypto.h2c and overt.crypto.dleq through overt.crypto.oprf.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from overt.crypto import DeterministicRng, Point, Scalar
from overt.crypto.oprf import (
    OUTPUT_LEN,
    Mode,
    blind,
    blind_evaluate,
    blind_evaluate_partial,
    blind_evaluate_verifiable,
    blind_partial,
    derive_key_pair,
    evaluate,
    finalize,
    finalize_partial,
    finalize_verifiable,
    generate_key_pair,
)
from overt.errors import InvalidMessage

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "oprf" / "ristretto255-sha512.json"
OPRF: list[dict[str, Any]] = json.loads(VECTORS.read_text())


class ScalarQueueRng:
    """Hands out given scalars, in order, through ``Scalar.random`` (64 bytes each)."""

    def __init__(self, scalars_hex: list[str]) -> None:
        self._queue = [bytes.fromhex(h) + bytes(32) for h in scalars_hex]

    def random_bytes(self, n: int) -> bytes:
        assert n == 64 and self._queue, "more randomness drawn than the vector provides"
        return self._queue.pop(0)

    def drained(self) -> bool:
        return not self._queue


def _split(field: str) -> list[bytes]:
    return [bytes.fromhex(h) for h in field.split(",")]


def _cases(mode: int) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [(e, v) for e in OPRF if e["mode"] == mode for v in e["vectors"]]


def _key(entry: dict[str, Any]) -> tuple[Scalar, Point]:
    sk, pk = derive_key_pair(
        bytes.fromhex(entry["seed"]), bytes.fromhex(entry["keyInfo"]), Mode(entry["mode"])
    )
    assert sk.raw.hex() == entry["skSm"]
    if "pkSm" in entry:
        assert pk.raw.hex() == entry["pkSm"]
    return sk, pk


def test_vector_counts() -> None:
    assert [len(_cases(m)) for m in (0, 1, 2)] == [2, 3, 3]


@pytest.mark.parametrize(("entry", "vector"), _cases(0))
def test_oprf_mode0(entry: dict[str, Any], vector: dict[str, Any]) -> None:
    sk, _ = _key(entry)
    x = bytes.fromhex(vector["Input"])
    rng = ScalarQueueRng([vector["Blind"]])
    r, blinded = blind(x, rng, Mode.OPRF)
    assert blinded.raw.hex() == vector["BlindedElement"]
    evaluated = blind_evaluate(sk, blinded)
    assert evaluated.raw.hex() == vector["EvaluationElement"]
    out = finalize(x, r, evaluated)
    assert out.hex() == vector["Output"]
    assert evaluate(sk, x, Mode.OPRF) == out


@pytest.mark.parametrize(("entry", "vector"), _cases(1))
def test_voprf_mode1(entry: dict[str, Any], vector: dict[str, Any]) -> None:
    sk, pk = _key(entry)
    inputs = _split(vector["Input"])
    blind_rng = ScalarQueueRng(vector["Blind"].split(","))
    blinds, blinded = zip(*(blind(x, blind_rng, Mode.VOPRF) for x in inputs), strict=True)
    assert blind_rng.drained()
    assert [b.raw for b in blinded] == _split(vector["BlindedElement"])
    proof_rng = ScalarQueueRng([vector["Proof"]["r"]])
    evaluated, proof = blind_evaluate_verifiable(sk, pk, list(blinded), proof_rng)
    assert [e.raw for e in evaluated] == _split(vector["EvaluationElement"])
    assert proof.hex() == vector["Proof"]["proof"]
    outputs = finalize_verifiable(inputs, blinds, evaluated, blinded, pk, proof)
    assert outputs == _split(vector["Output"])
    assert [evaluate(sk, x, Mode.VOPRF) for x in inputs] == outputs


@pytest.mark.parametrize(("entry", "vector"), _cases(2))
def test_poprf_mode2(entry: dict[str, Any], vector: dict[str, Any]) -> None:
    sk, pk = _key(entry)
    info = bytes.fromhex(vector["Info"])
    inputs = _split(vector["Input"])
    blind_rng = ScalarQueueRng(vector["Blind"].split(","))
    blinded_triples = [blind_partial(x, info, pk, blind_rng) for x in inputs]
    blinds = [t[0] for t in blinded_triples]
    blinded = [t[1] for t in blinded_triples]
    tweaked_key = blinded_triples[0][2]
    assert [b.raw for b in blinded] == _split(vector["BlindedElement"])
    proof_rng = ScalarQueueRng([vector["Proof"]["r"]])
    evaluated, proof = blind_evaluate_partial(sk, blinded, info, proof_rng)
    assert [e.raw for e in evaluated] == _split(vector["EvaluationElement"])
    assert proof.hex() == vector["Proof"]["proof"]
    outputs = finalize_partial(inputs, blinds, evaluated, blinded, proof, info, tweaked_key)
    assert outputs == _split(vector["Output"])
    assert [evaluate(sk, x, Mode.POPRF, info) for x in inputs] == outputs


def test_verifiable_finalize_rejects_a_dishonest_server() -> None:
    rng = DeterministicRng("voprf")
    sk, pk = generate_key_pair(rng)
    other, _ = generate_key_pair(rng)
    inputs = [b"alice", b"bob"]
    blinds, blinded = zip(*(blind(x, rng, Mode.VOPRF) for x in inputs), strict=True)
    evaluated, proof = blind_evaluate_verifiable(sk, pk, list(blinded), rng)
    outputs = finalize_verifiable(inputs, blinds, evaluated, blinded, pk, proof)
    assert all(len(o) == OUTPUT_LEN for o in outputs)
    # A server evaluating one element under another key is caught by the proof.
    forged = [evaluated[0], blinded[1].mul(other)]
    with pytest.raises(InvalidMessage):
        finalize_verifiable(inputs, blinds, forged, blinded, pk, proof)
    tampered = proof[:-1] + bytes((proof[-1] ^ 1,))
    with pytest.raises(InvalidMessage):
        finalize_verifiable(inputs, blinds, evaluated, blinded, pk, tampered)
    with pytest.raises(InvalidMessage):
        finalize_verifiable(inputs[:1], blinds, evaluated, blinded, pk, proof)
