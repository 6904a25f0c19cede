"""The public surface of overt.transparency, pinned so that changes to it are deliberate."""

from __future__ import annotations

import overt.transparency as tlog
from overt.storage.limits import LOG_APPEND_BATCH_MAX, LOG_ENTRY_MAX_LEN, LOG_PAGE_MAX

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
    # entries
    "ENTRY_VERSION", "MAX_ENTRY_BYTES", "AccessReceipt", "AggregateStatistics", "Entry",
    "EntryType", "EpochKey", "KeyDirectoryUpdate", "ManifestEntry", "WarrantCommitment",
    "WarrantUnsealing",
    "decode_entry", "encode_entry", "kt_commitment", "kt_label", "warrant_targets_commitment",
    # the log service
    "APPEND_BATCH_MAX", "APPEND_WINDOW_MS", "ENTRIES_PAGE_MAX", "Appender", "Log",
    "NotYetCheckpointed", "StoreNodeSource",
}  # fmt: skip


def test_exported_names() -> None:
    assert set(tlog.__all__) == EXPORTED
    for name in tlog.__all__:
        assert getattr(tlog, name) is not None


def test_limits_are_consistent() -> None:
    assert (tlog.MAX_TREE_SIZE - 1).bit_length() == tlog.MAX_INCLUSION_PROOF_HASHES
    assert tlog.MAX_CONSISTENCY_PROOF_HASHES == tlog.MAX_INCLUSION_PROOF_HASHES + 1
    assert tlog.MAX_SIGNATURES >= 16  # c2sp.org/signed-note: MUST accept at least 16
    # Every entry fits one stored leaf, and a page of entries is one page of leaves.
    assert tlog.MAX_ENTRY_BYTES == LOG_ENTRY_MAX_LEN
    assert tlog.ENTRIES_PAGE_MAX <= LOG_PAGE_MAX
    assert tlog.APPEND_BATCH_MAX <= LOG_APPEND_BATCH_MAX
