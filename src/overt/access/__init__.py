"""Accountable lawful access (DESIGN.md §6, policy ``escrow``): the sans-I/O core.

* :mod:`~overt.access.warrant` — court-signed warrants shaped after ETSI TS 103 120, their
  revocations, and their log entries (commitment hiding the targets, unsealing).
* :mod:`~overt.access.dkg` — Pedersen's DKG with Feldman commitments for escrow-epoch keys.
* :mod:`~overt.access.epoch` — the custodians' signed confirmations of an epoch's transcript,
  checked by the provider before logging the key and by every client before using it.
* :mod:`~overt.access.threshold` — custodians' decryption shares with batched DLEQ proofs, and
  the LEA's check and Lagrange combination.
* :mod:`~overt.access.context` — decoding the access context of an access field.
* :mod:`~overt.access.custodian_policy` — a custodian's independent decision on a request.
* :mod:`~overt.access.evidence` — the LEA's evidence bundle and its offline re-check.
* :mod:`~overt.access.audit` — recounting access from the public log.
* :mod:`~overt.access.limits` — every bound, named; :mod:`~overt.access.errors` — the errors.

This package never sees sockets, files, databases or clocks: times are parameters, randomness
comes through a passed :class:`~overt.crypto.Rng`, and it imports neither the server, the
client, the CLI nor storage (the services built on it do the I/O). Limits and guarantees:
docs/lawful-access.md.
"""

from overt.access.audit import AuditFlag, AuditReport, FlagKind, WarrantTally, audit
from overt.access.context import (
    AccessContext,
    DirectContext,
    GroupContext,
    KeyContext,
    decode_context,
)
from overt.access.custodian_policy import (
    AccessItem,
    AccessRequest,
    AccessTrust,
    Approved,
    Decision,
    GroupMembers,
    Refusal,
    Refused,
    contexts_hash,
    decide,
)
from overt.access.dkg import (
    ComplaintAnswer,
    Complaints,
    DealerCommitment,
    DealtShare,
    DestroyedShare,
    DkgParameters,
    DkgParticipant,
    DkgState,
    DkgTranscript,
    EpochKeyShare,
    Round1Message,
    session_id,
    transcript_from_messages,
)
from overt.access.errors import DkgFailed, DkgStateError, EvidenceRejected, ThresholdNotMet
from overt.access.evidence import (
    EvidenceBatch,
    EvidenceBundle,
    EvidenceItem,
    ReceiptRecord,
    SessionKeys,
    VerifiedEvidence,
    open_direct,
    open_group,
    verify_evidence,
)
from overt.access.threshold import (
    Combined,
    ShareResponse,
    collect,
    combine,
    make_shares,
    verify_shares,
)
from overt.access.warrant import (
    Approval,
    Authorisation,
    Delivery,
    Revocation,
    Task,
    Timespan,
    Warrant,
    court_key_id,
    new_targets_salt,
    new_warrant_id,
    read_opening,
    sign_revocation,
    sign_warrant,
    unsealing,
    verify_revocation,
    verify_warrant,
    warrant_commitment,
)

__all__ = [
    "AccessContext",
    "AccessItem",
    "AccessRequest",
    "AccessTrust",
    "Approval",
    "Approved",
    "AuditFlag",
    "AuditReport",
    "Authorisation",
    "Combined",
    "ComplaintAnswer",
    "Complaints",
    "DealerCommitment",
    "DealtShare",
    "Decision",
    "Delivery",
    "DestroyedShare",
    "DirectContext",
    "DkgFailed",
    "DkgParameters",
    "DkgParticipant",
    "DkgState",
    "DkgStateError",
    "DkgTranscript",
    "EpochKeyShare",
    "EvidenceBatch",
    "EvidenceBundle",
    "EvidenceItem",
    "EvidenceRejected",
    "FlagKind",
    "GroupContext",
    "GroupMembers",
    "KeyContext",
    "ReceiptRecord",
    "Refusal",
    "Refused",
    "Revocation",
    "Round1Message",
    "SessionKeys",
    "ShareResponse",
    "Task",
    "ThresholdNotMet",
    "Timespan",
    "VerifiedEvidence",
    "Warrant",
    "WarrantTally",
    "audit",
    "collect",
    "combine",
    "contexts_hash",
    "court_key_id",
    "decide",
    "decode_context",
    "make_shares",
    "new_targets_salt",
    "new_warrant_id",
    "open_direct",
    "open_group",
    "read_opening",
    "session_id",
    "sign_revocation",
    "sign_warrant",
    "transcript_from_messages",
    "unsealing",
    "verify_evidence",
    "verify_revocation",
    "verify_shares",
    "verify_warrant",
    "warrant_commitment",
]
