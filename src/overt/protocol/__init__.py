"""The sans-I/O protocol core of Overt.

Bytes, state, ``now`` and an RNG go in; bytes, events and new state come out. This package
never sees sockets, databases, clocks or ``os.urandom``; it imports only :mod:`overt.crypto`,
:mod:`overt.wire` and :mod:`overt.errors` (checked by import-linter).

* :mod:`~overt.protocol.identity` — account and device identities, prekeys, bundles.
* :mod:`~overt.protocol.pqxdh` — PQXDH session setup.
* :mod:`~overt.protocol.ratchet` — the Double Ratchet over immutable state.
* :mod:`~overt.protocol.session` — sessions, envelopes, encrypt/decrypt, records.
* :mod:`~overt.protocol.franking` — franking commitments and reporting tags.
* :mod:`~overt.protocol.access` — the access field of policy ``escrow``.
* :mod:`~overt.protocol.fingerprint` — safety numbers.
* :mod:`~overt.protocol.device` — an in-memory device tying it together, with fan-out.
* :mod:`~overt.protocol.groups` — group conversations with Sender Keys.
* :mod:`~overt.protocol.limits` — every bound, named.
"""

from overt.protocol import access, franking, groups
from overt.protocol.access import AccessKind, EscrowPolicy
from overt.protocol.device import Device, direct_conversation_id
from overt.protocol.fingerprint import format_safety_number, safety_number
from overt.protocol.identity import (
    AccountIdentity,
    DeviceIdentity,
    verify_bundle,
    verify_device_list,
)
from overt.protocol.session import Outgoing, Received, Session, SessionRecord, decrypt, encrypt

__all__ = [
    "AccessKind",
    "AccountIdentity",
    "Device",
    "DeviceIdentity",
    "EscrowPolicy",
    "Outgoing",
    "Received",
    "Session",
    "SessionRecord",
    "access",
    "decrypt",
    "direct_conversation_id",
    "encrypt",
    "format_safety_number",
    "franking",
    "groups",
    "safety_number",
    "verify_bundle",
    "verify_device_list",
]
