"""RFC 9497 oblivious pseudorandom functions, ciphersuite ristretto255-SHA512.

All three modes of RFC 9497 §3: OPRF (mode 0, §3.3.1), VOPRF (mode 1, §3.3.2, with batched
proofs) and POPRF (mode 2, §3.3.3, with public ``info``), plus ``DeriveKeyPair`` (§3.2.1) and the
server-side ``Evaluate``. Hash-to-group and hash-to-scalar are :mod:`overt.crypto.h2c`; proofs are
:mod:`overt.crypto.dleq` under RFC 9497's own context string
``"OPRFV1-" || I2OSP(mode, 1) || "-" || identifier``. The ``identifier`` is a parameter (default
``ristretto255-SHA512``) so that an Overt protocol built on these blindings can take its own
domain; with the default the outputs are those of RFC 9497's test vectors.

Randomness (blinds, proof nonces) comes only from the :class:`overt.crypto.Rng` handed in. A
proof that does not verify, and an ``info`` that makes the POPRF key non-invertible, raise
:class:`overt.errors.InvalidMessage`; inputs too long to frame are a :class:`ValueError`.

This module knows no set, list, provider or wire format: bytes and group elements in and out.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum
from typing import Final

from overt.crypto._hash import sha512
from overt.crypto._ristretto import Point, Scalar
from overt.crypto._rng import Rng
from overt.crypto.dleq import generate_proof, verify_proof
from overt.crypto.h2c import hash_to_group, hash_to_scalar
from overt.errors import InvalidMessage


class Mode(IntEnum):
    """RFC 9497 §3.1 protocol modes."""

    OPRF = 0
    VOPRF = 1
    POPRF = 2


#: RFC 9497 §4.1 ciphersuite identifier.
SUITE_ID: Final = b"ristretto255-SHA512"
CONTEXT_PREFIX: Final = b"OPRFV1-"
HASH_TO_GROUP_DST_PREFIX: Final = b"HashToGroup-"
HASH_TO_SCALAR_DST_PREFIX: Final = b"HashToScalar-"
DERIVE_KEY_PAIR_DST_PREFIX: Final = b"DeriveKeyPair"
INFO_LABEL: Final = b"Info"
FINALIZE_LABEL: Final = b"Finalize"
#: ``Finalize`` output length (``Nh`` of SHA-512).
OUTPUT_LEN: Final = 64
#: ``DeriveKeyPair`` tries counters 0..255 before giving up.
MAX_DERIVE_COUNTER: Final = 255
#: Inputs and ``info`` are framed with a two-byte length.
MAX_FRAMED_LEN: Final = 0xFFFF

_GENERATOR: Final = Point.base_mul(Scalar.from_int(1))


def context_string(mode: Mode, identifier: bytes = SUITE_ID) -> bytes:
    """``"OPRFV1-" || I2OSP(mode, 1) || "-" || identifier`` (RFC 9497 §3.1)."""
    return CONTEXT_PREFIX + bytes((mode,)) + b"-" + identifier


def _framed(data: bytes) -> bytes:
    if len(data) > MAX_FRAMED_LEN:
        raise ValueError("an OPRF input or info is at most 65535 bytes")
    return len(data).to_bytes(2, "big") + data


def _hash_to_group(data: bytes, context: bytes) -> Point:
    return hash_to_group(data, HASH_TO_GROUP_DST_PREFIX + context)


def _hash_to_scalar(data: bytes, context: bytes) -> Scalar:
    return hash_to_scalar(data, HASH_TO_SCALAR_DST_PREFIX + context)


def derive_key_pair(
    seed: bytes, info: bytes, mode: Mode, identifier: bytes = SUITE_ID
) -> tuple[Scalar, Point]:
    """RFC 9497 §3.2.1 ``DeriveKeyPair``: a server key pair from a 32-byte seed and ``info``."""
    context = context_string(mode, identifier)
    derive_input = seed + _framed(info)
    for counter in range(MAX_DERIVE_COUNTER + 1):
        sk = hash_to_scalar(derive_input + bytes((counter,)), DERIVE_KEY_PAIR_DST_PREFIX + context)
        if not sk.is_zero():
            return sk, Point.base_mul(sk)
    raise ValueError("DeriveKeyPair found no non-zero scalar")  # pragma: no cover


def generate_key_pair(rng: Rng) -> tuple[Scalar, Point]:
    """A fresh uniform server key pair."""
    sk = Scalar.random(rng)
    return sk, Point.base_mul(sk)


def blind(
    input_: bytes, rng: Rng, mode: Mode, identifier: bytes = SUITE_ID
) -> tuple[Scalar, Point]:
    """``Blind`` (OPRF and VOPRF): ``(blind, blind·HashToGroup(input))``."""
    r = Scalar.random(rng)
    return r, _hash_to_group(input_, context_string(mode, identifier)).mul(r)


def blind_evaluate(sk: Scalar, blinded: Point) -> Point:
    """OPRF ``BlindEvaluate``: ``sk·blinded``."""
    return blinded.mul(sk)


def blind_evaluate_verifiable(
    sk: Scalar,
    pk: Point,
    blinded: Sequence[Point],
    rng: Rng,
    identifier: bytes = SUITE_ID,
) -> tuple[list[Point], bytes]:
    """VOPRF batched ``BlindEvaluate``: the evaluations and one proof over all of them."""
    evaluated = [b.mul(sk) for b in blinded]
    context = context_string(Mode.VOPRF, identifier)
    proof = generate_proof(sk, _GENERATOR, pk, blinded, evaluated, rng=rng, context=context)
    return evaluated, proof


def _finalize_hash(input_: bytes, info: bytes | None, unblinded: Point) -> bytes:
    info_part = b"" if info is None else _framed(info)
    return sha512(_framed(input_) + info_part + _framed(unblinded.raw) + FINALIZE_LABEL)


def finalize(input_: bytes, blind_: Scalar, evaluated: Point) -> bytes:
    """OPRF ``Finalize``: unblind and hash."""
    return _finalize_hash(input_, None, evaluated.mul(blind_.invert()))


def finalize_verifiable(
    inputs: Sequence[bytes],
    blinds: Sequence[Scalar],
    evaluated: Sequence[Point],
    blinded: Sequence[Point],
    pk: Point,
    proof: bytes,
    identifier: bytes = SUITE_ID,
) -> list[bytes]:
    """VOPRF batched ``Finalize``: verify the proof, then unblind and hash each output."""
    if not len(inputs) == len(blinds) == len(evaluated) == len(blinded):
        raise InvalidMessage()
    context = context_string(Mode.VOPRF, identifier)
    verify_proof(_GENERATOR, pk, blinded, evaluated, proof, context=context)
    return [
        _finalize_hash(x, None, e.mul(b.invert()))
        for x, b, e in zip(inputs, blinds, evaluated, strict=True)
    ]


def _info_tweak(info: bytes, context: bytes) -> Scalar:
    return _hash_to_scalar(INFO_LABEL + _framed(info), context)


def blind_partial(
    input_: bytes, info: bytes, pk: Point, rng: Rng, identifier: bytes = SUITE_ID
) -> tuple[Scalar, Point, Point]:
    """POPRF ``Blind``: ``(blind, blinded element, tweaked key)``."""
    context = context_string(Mode.POPRF, identifier)
    tweaked_key = Point.base_mul(_info_tweak(info, context)) + pk
    r = Scalar.random(rng)
    return r, _hash_to_group(input_, context).mul(r), tweaked_key


def blind_evaluate_partial(
    sk: Scalar,
    blinded: Sequence[Point],
    info: bytes,
    rng: Rng,
    identifier: bytes = SUITE_ID,
) -> tuple[list[Point], bytes]:
    """POPRF batched ``BlindEvaluate``: evaluations under ``(sk + m)^-1`` and one proof."""
    context = context_string(Mode.POPRF, identifier)
    t = sk + _info_tweak(info, context)
    t_inv = t.invert()
    evaluated = [b.mul(t_inv) for b in blinded]
    tweaked_key = Point.base_mul(t)
    proof = generate_proof(t, _GENERATOR, tweaked_key, evaluated, blinded, rng=rng, context=context)
    return evaluated, proof


def finalize_partial(
    inputs: Sequence[bytes],
    blinds: Sequence[Scalar],
    evaluated: Sequence[Point],
    blinded: Sequence[Point],
    proof: bytes,
    info: bytes,
    tweaked_key: Point,
    identifier: bytes = SUITE_ID,
) -> list[bytes]:
    """POPRF batched ``Finalize``: verify the proof, then unblind and hash with ``info``."""
    if not len(inputs) == len(blinds) == len(evaluated) == len(blinded):
        raise InvalidMessage()
    context = context_string(Mode.POPRF, identifier)
    verify_proof(_GENERATOR, tweaked_key, evaluated, blinded, proof, context=context)
    return [
        _finalize_hash(x, info, e.mul(b.invert()))
        for x, b, e in zip(inputs, blinds, evaluated, strict=True)
    ]


def evaluate(
    sk: Scalar, input_: bytes, mode: Mode, info: bytes = b"", identifier: bytes = SUITE_ID
) -> bytes:
    """The server's direct ``Evaluate`` (no blinding), equal to the client's ``Finalize``."""
    context = context_string(mode, identifier)
    element = _hash_to_group(input_, context)
    if mode is Mode.POPRF:
        t = sk + _info_tweak(info, context)
        return _finalize_hash(input_, info, element.mul(t.invert()))
    return _finalize_hash(input_, None, element.mul(sk))
