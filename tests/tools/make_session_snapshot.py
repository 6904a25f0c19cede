"""Regenerate tests/vectors/session-record-v1.json (run by hand, never by the tests).

It records Bob's session record with Alice as stored by record version 1, Bob's identity
secrets, and one more envelope from Alice that the stored record must still decrypt. Commit
the output once per record version; later versions must keep loading it.

    .venv/bin/python tests/tools/make_session_snapshot.py > tests/vectors/session-record-v1.json
"""

from __future__ import annotations

import json

from overt.crypto import DeterministicRng
from overt.protocol import Device


def main() -> None:
    alice = Device.create(b"alice", 1, rng=DeterministicRng(101))
    bob = Device.create(b"bob", 2, rng=DeterministicRng(202))
    alice.start_session(bob.prekey_bundle())
    t = 1_764_000_000_000
    for i in range(3):
        bob.decrypt(alice.encrypt(bob.address, f"a{i}".encode(), now_ms=t + i))
    alice.decrypt(bob.encrypt(alice.address, b"b0", now_ms=t + 10))
    late = alice.encrypt(bob.address, b"late one", now_ms=t + 11)  # held back: a skipped key
    bob.decrypt(alice.encrypt(bob.address, b"a4", now_ms=t + 12))
    record = bob.sessions[alice.address].encode()
    nxt = alice.encrypt(bob.address, b"after reload", now_ms=t + 13)
    out = {
        "description": "Bob's SessionRecord (version 1) with Alice, holding one skipped key",
        "bob_account": "626f62",
        "bob_device": 2,
        "bob_identity_dh_secret": bob.identity.dh.export_secret().hex(),
        "bob_identity_sign_secret": bob.identity.sign.export_secret().hex(),
        "record": record.hex(),
        "envelopes": [
            {"wire": late.encode().hex(), "body": "late one"},
            {"wire": nxt.encode().hex(), "body": "after reload"},
        ],
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
