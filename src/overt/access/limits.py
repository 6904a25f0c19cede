"""Every bound of :mod:`overt.access`, named in one place.

Warrants, DKG messages, share requests and evidence bundles come from other parties (courts,
custodians, a law-enforcement agency, the provider); each bound below is what stops a hostile or
broken one from making this process parse, compute or keep unbounded work.
"""

from __future__ import annotations

from typing import Final

DAY_SECONDS: Final = 86_400
"""Seconds in one UTC day: the granularity of the ``day`` an access context carries."""

# ----------------------------------------------------------------------------- warrants

MAX_WARRANT_BYTES: Final = 64 * 1024
"""Largest signed warrant (or revocation) document accepted, in bytes of canonical JSON."""

MAX_WARRANT_TEXT_BYTES: Final = 256
"""Longest free-text field of a warrant (references, legal basis, court, judge), UTF-8 bytes."""

MAX_TASKS: Final = 16
"""Most tasks (``LITaskObject``-like parts) in one warrant."""

MAX_TARGETS_PER_TASK: Final = 64
"""Most target identifiers in one task."""

MAX_TARGETS: Final = 128
"""Most target identifiers over all tasks of one warrant: bounds the unsealing opening (an
opening of 128 targets of 64 bytes stays under the log's 16 KiB bound)."""

MAX_MESSAGE_CAP: Final = 1_000_000
"""Largest per-warrant cap on messages a warrant may set."""

MAX_TIMESTAMP: Final = (1 << 53) - 1
"""Largest time (Unix seconds) a JSON document carries: the I-JSON safe-integer range."""

WARRANT_ID_LEN: Final = 32
"""A warrant id: 32 random bytes drawn by the court (ETSI's ``ObjectIdentifier``)."""

TARGETS_SALT_LEN: Final = 32
"""The random salt that hides a warrant's targets in its public commitment."""

# ----------------------------------------------------------------------------- DKG

MAX_CUSTODIANS: Final = 32
"""Most DKG participants (the manifest's bound on custodians)."""

MIN_THRESHOLD: Final = 2
"""No single custodian may decrypt (the manifest's bound)."""

SESSION_ID_LEN: Final = 32
"""A DKG session id: binds every DKG message to one run (deployment, epoch, attempt)."""

# ----------------------------------------------------------------------------- shares

MAX_SHARE_BATCH: Final = 4096
"""Most points one custodian answers for in one request (one batched DLEQ proof)."""

# ----------------------------------------------------------------------------- evidence, audit

MAX_EVIDENCE_BYTES: Final = 256 * 1024 * 1024
"""Largest evidence bundle read back (many envelopes of up to 1 MiB each)."""

MAX_EVIDENCE_BATCHES: Final = 1024
"""Most batches (one custodian request each) in one evidence bundle."""

MAX_RECEIPTS_PER_BATCH: Final = MAX_CUSTODIANS
"""Most access receipts recorded for one batch (one per custodian)."""
