"""A session record stored by an earlier version still loads and keeps working.

The committed snapshot (tests/vectors/session-record-v1.json, made by
tests/tools/make_session_snapshot.py) holds a version-1 record with a skipped key; it must
decode, re-encode to the same bytes, and decrypt the two envelopes stored with it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from overt.crypto import DeterministicRng, Ed25519PrivateKey, X25519PrivateKey
from overt.errors import DecodeError
from overt.protocol import Device, DeviceIdentity, SessionRecord, decrypt
from overt.protocol.device import PrekeyStock, decode_identity, encode_identity
from overt.wire import Address, Envelope

SNAPSHOT = Path(__file__).parent.parent / "vectors" / "session-record-v1.json"


def test_version_1_record_loads_and_decrypts() -> None:
    data = json.loads(SNAPSHOT.read_text())
    raw = bytes.fromhex(data["record"])
    record = SessionRecord.decode(raw)
    assert record.encode() == raw
    bob = DeviceIdentity(
        Address(bytes.fromhex(data["bob_account"]), data["bob_device"]),
        X25519PrivateKey.from_secret_bytes(bytes.fromhex(data["bob_identity_dh_secret"])),
        Ed25519PrivateKey.from_secret_bytes(bytes.fromhex(data["bob_identity_sign_secret"])),
    )
    rng = DeterministicRng(0)
    for item in data["envelopes"]:
        env = Envelope.decode(bytes.fromhex(item["wire"]))
        got, record = decrypt(record, bob, PrekeyStock(), env, rng, None)
        assert got.body == item["body"].encode()


def test_unknown_record_version_and_trailing_bytes_refused() -> None:
    raw = bytes.fromhex(json.loads(SNAPSHOT.read_text())["record"])
    with pytest.raises(DecodeError):
        SessionRecord.decode(b"\x02" + raw[1:])
    with pytest.raises(DecodeError):
        SessionRecord.decode(raw + b"\x00")


def test_device_state_round_trips() -> None:
    dev = Device.create(b"carol", 3, rng=DeterministicRng(9), one_time_prekeys=3)
    dev.prekey_bundle()
    stock = PrekeyStock.decode(dev.prekeys.encode())
    assert stock.encode() == dev.prekeys.encode()
    assert stock.handed_out == dev.prekeys.handed_out
    ident = decode_identity(encode_identity(dev.identity))
    assert ident.entry() == dev.identity.entry()
    restored = Device(ident, DeterministicRng(10), None, stock)
    other = Device.create(b"dave", 1, rng=DeterministicRng(11))
    other.start_session(restored.prekey_bundle())
    assert restored.decrypt(other.encrypt(restored.address, b"hi", now_ms=1)).body == b"hi"
