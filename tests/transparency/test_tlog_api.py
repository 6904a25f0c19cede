"""The public surface of overt.transparency, pinned so that changes to it are deliberate."""

from __future__ import annotations

import overt.transparency as tlog

EXPORTED = {
    "ALG_COSIGNATURE_V1", "ALG_ED25519", "EMPTY_ROOT", "HASH_LEN",
    "MAX_CONSISTENCY_PROOF_HASHES", "MAX_EXTENSION_LINES", "MAX_INCLUSION_PROOF_HASHES",
    "MAX_NOTE_BYTES", "MAX_ORIGIN_BYTES", "MAX_PROOF_BUNDLE_BYTES", "MAX_SIGNATURES",
    "MAX_TREE_SIZE",
    "Checkpoint", "CosignatureSigner", "MemoryTree", "NodeSource", "Note", "NoteSignature",
    "NoteSigner", "ProofBundle", "VerifiedCheckpoint", "VerifiedSignature", "VerifierKey",
    "consistency_proof", "cosign_checkpoint", "hash_leaf", "hash_node", "inclusion_proof", "mth",
    "open_note", "parse_checkpoint", "parse_note", "parse_proof_bundle", "parse_verifier_key",
    "root_at", "root_from_inclusion_proof", "root_from_leaf_hashes", "sign_checkpoint",
    "sign_note", "subtree_hash", "verify_checkpoint", "verify_checkpoint_consistency",
    "verify_consistency", "verify_inclusion", "verify_proof_bundle", "verify_signatures",
}  # fmt: skip


def test_exported_names() -> None:
    assert set(tlog.__all__) == EXPORTED
    for name in tlog.__all__:
        assert getattr(tlog, name) is not None


def test_limits_are_consistent() -> None:
    assert (tlog.MAX_TREE_SIZE - 1).bit_length() == tlog.MAX_INCLUSION_PROOF_HASHES
    assert tlog.MAX_CONSISTENCY_PROOF_HASHES == tlog.MAX_INCLUSION_PROOF_HASHES + 1
    assert tlog.MAX_SIGNATURES >= 16  # c2sp.org/signed-note: MUST accept at least 16
