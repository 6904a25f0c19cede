"""Keys are frozen, never print, never compare by value; public keys are plain values."""

from __future__ import annotations

import dataclasses

import pytest

from overt.crypto import (
    DeterministicRng,
    Ed25519PrivateKey,
    MlKem768PrivateKey,
    Point,
    Scalar,
    X25519PrivateKey,
)
from overt.errors import DecodeError, InvalidMessage


@pytest.mark.parametrize("cls", [X25519PrivateKey, Ed25519PrivateKey, MlKem768PrivateKey])
def test_private_keys_are_redacted_frozen_and_identity_compared(cls: type) -> None:
    k1 = cls.generate(DeterministicRng(1))
    k2 = cls.generate(DeterministicRng(1))
    secret = k1.export_secret()
    assert "redacted" in repr(k1)
    assert secret.hex() not in repr(k1) and secret.hex() not in str(k1)
    assert k1 != k2  # same bytes, but secrets do not compare by value
    assert k1.public_key == k2.public_key
    with pytest.raises(dataclasses.FrozenInstanceError):
        k1.public_key = k2.public_key


def test_scalars_are_redacted() -> None:
    s = Scalar.random(DeterministicRng(3))
    assert s.raw.hex() not in repr(s)


def test_point_and_scalar_decoding_is_strict() -> None:
    with pytest.raises(DecodeError):
        Point.from_bytes(b"\xff" * 32)
    with pytest.raises(DecodeError):
        Scalar.from_bytes(b"\xff" * 32)
    with pytest.raises(InvalidMessage):
        Point.base_mul(Scalar.from_int(0))


def test_deterministic_rng_repeats() -> None:
    assert DeterministicRng(5).random_bytes(100) == DeterministicRng(5).random_bytes(100)
    assert DeterministicRng(5).random_bytes(32) != DeterministicRng(6).random_bytes(32)
