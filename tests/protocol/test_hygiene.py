"""No secret reaches a repr; the public API of the protocol and crypto packages is pinned."""

from __future__ import annotations

import overt.crypto
import overt.protocol
from overt.crypto import DeterministicRng
from overt.protocol import Device


def test_session_state_never_prints_secrets() -> None:
    a = Device.create(b"a", 1, rng=DeterministicRng(1))
    b = Device.create(b"b", 1, rng=DeterministicRng(2))
    a.start_session(b.prekey_bundle())
    got = b.decrypt(a.encrypt(b.address, b"secret body", now_ms=1))
    rec = a.sessions[b.address]
    s = rec.current
    assert s is not None
    secrets = [s.ratchet.rk, s.ratchet.dhs.export_secret(), s.ratchet.cks or b"", got.franking_key]
    texts = [repr(rec), str(rec), repr(a), repr(got), repr(a.identity), repr(a.prekeys)]
    for secret in secrets:
        for text in texts:
            assert secret.hex() not in text
    assert "secret body" not in repr(got)


def test_exported_names_are_pinned() -> None:
    assert sorted(overt.protocol.__all__) == [
        "AccessKind", "AccountIdentity", "Device", "DeviceIdentity", "EscrowPolicy", "Outgoing",
        "Received",
        "Session", "SessionRecord", "access", "decrypt", "direct_conversation_id", "encrypt",
        "format_safety_number", "franking", "groups", "safety_number", "verify_bundle",
        "verify_device_list",
    ]  # fmt: skip
    assert "Ed25519PrivateKey" in overt.crypto.__all__
    for name in overt.crypto.__all__ + overt.protocol.__all__:
        assert not name.startswith("_")
