"""The curated public API of overt.access, pinned; and the layer rules it keeps."""

from __future__ import annotations

import ast
from pathlib import Path

import overt.access

EXPECTED = {
    "AccessContext", "AccessItem", "AccessRequest", "AccessTrust", "Approval", "Approved",
    "AuditFlag", "AuditReport", "Authorisation", "Combined", "ComplaintAnswer", "Complaints",
    "DealerCommitment", "DealtShare", "Decision", "Delivery", "DestroyedShare", "DirectContext",
    "DkgFailed", "DkgParameters", "DkgParticipant", "DkgState", "DkgStateError", "DkgTranscript",
    "EpochKeyShare", "EvidenceBatch", "EvidenceBundle", "EvidenceItem", "EvidenceRejected",
    "FlagKind", "GroupContext", "GroupMembers", "KeyContext", "ReceiptRecord", "Refusal",
    "Refused",
    "Revocation", "Round1Message", "SessionKeys", "ShareResponse", "Task", "ThresholdNotMet",
    "Timespan", "VerifiedEvidence", "Warrant", "WarrantTally", "audit", "collect", "combine",
    "contexts_hash", "court_key_id", "decide", "decode_context", "make_shares",
    "new_targets_salt", "new_warrant_id", "open_direct", "open_group", "read_opening",
    "session_id", "sign_revocation", "sign_warrant", "transcript_from_messages", "unsealing",
    "verify_evidence", "verify_revocation", "verify_shares", "verify_warrant",
    "warrant_commitment",
}  # fmt: skip


def test_exported_names() -> None:
    assert set(overt.access.__all__) == EXPECTED
    for name in EXPECTED:
        assert getattr(overt.access, name) is not None


def test_no_forbidden_imports() -> None:
    """No module of overt.access imports the server, client, CLI or storage packages itself
    (overt.transparency's package __init__ pulls storage in at run time; the static layer rule
    is import-linter's, which follows module imports)."""
    forbidden = {("overt", "server"), ("overt", "client"), ("overt", "cli"), ("overt", "storage")}
    bad = []
    for path in Path(overt.access.__path__[0]).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            bad += [f"{path.name}: {n}" for n in names if tuple(n.split(".")[:2]) in forbidden]
    assert bad == []
