"""Every bound the storage layer enforces, in one place.

Sizes are in bytes. Exceeding a *size or count* bound raises
:class:`overt.errors.LimitExceeded` (413) and stores nothing; a value outside a *range*
(device id, key id, serial, blob id length) raises :class:`overt.storage.errors.InvalidArgument`.
Three bounds that a deployment may want to tune are gathered in :class:`StorageLimits` and
passed to ``open_sqlite``/``open_memory``; the rest are fixed.

The ranges mirror the wire format (uint32 device and key ids, account ids of 1..64 bytes) but
this module does not import :mod:`overt.wire`: the storage schema is separate from the wire
schema, and a change to one should be a deliberate change to the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from overt.errors import ConfigurationError

# ----------------------------------------------------------------------------- ranges

ACCOUNT_ID_MAX_LEN: Final = 64
"""Account ids are 1..64 opaque bytes."""

DEVICE_ID_MAX: Final = 0xFFFF_FFFF
"""Device ids are uint32."""

KEY_ID_MAX: Final = 0xFFFF_FFFF
"""Prekey ids are uint32."""

INT64_MAX: Final = (1 << 63) - 1
"""Serials, server message ids and server times must fit a signed 64-bit column."""

BLOB_ID_LENS: Final = frozenset({16, 32})
"""Attachment ids are random 16- or 32-byte values chosen by the uploader."""

# ----------------------------------------------------------------------------- sizes and counts

PUBLIC_KEY_MAX_LEN: Final = 1024
"""An account identity key or a device's request-signing key (32 bytes today)."""

DEVICE_LIST_MAX_LEN: Final = 16 * 1024
"""A signed device list (64 devices of 68 bytes plus header and signature fit easily)."""

DEVICES_PER_ACCOUNT_MAX: Final = 64
"""Devices (and so request-signing keys) per account."""

PREKEY_RECORD_MAX_LEN: Final = 4096
"""One stored prekey record (an ML-KEM-768 key with its signature is about 1.3 KiB)."""

ONE_TIME_PREKEYS_MAX: Final = 1000
"""Default bound on stored one-time prekeys per device and kind."""

ENVELOPE_MAX_LEN: Final = (1 << 20) + 4096
"""One stored envelope: the wire's ciphertext bound (1 MiB) plus room for its other fields."""

ENQUEUE_BATCH_MAX: Final = 8192
"""Envelopes in one enqueue (one send fans out to every device of every recipient; a group
message to every other device of a group of at most 8192 devices)."""

MAILBOX_DEPTH_MAX: Final = 10_000
"""Default bound on pending envelopes per recipient device."""

FETCH_LIMIT_MAX: Final = 1000
"""Envelopes returned by one fetch."""

ACK_BATCH_MAX: Final = 1000
"""Server message ids in one acknowledgement."""

BLOB_SIZE_MAX: Final = 64 * 1024 * 1024
"""Default bound on one attachment blob."""

# ----------------------------------------------------------------------------- transparency log

LOG_ENTRY_MAX_LEN: Final = 64 * 1024
"""One log entry's data (a signed manifest is the largest kind, a few KiB)."""

LOG_HASH_MAX_LEN: Final = 64
"""One stored leaf or node hash (32 bytes for SHA-256; the store does not know which hash)."""

LOG_APPEND_BATCH_MAX: Final = 1 << 16
"""Leaves in one append (one transaction)."""

LOG_APPEND_BATCH_MAX_BYTES: Final = 64 * 1024 * 1024
"""Total leaf data in one append, so one transaction's memory stays bounded."""

LOG_PAGE_MAX: Final = 1000
"""Leaves returned by one ``leaves(start, end)``."""

LOG_HASHES_MAX: Final = 4096
"""Node hashes read by one ``hashes(keys)``; a proof over 2^63 leaves needs fewer than 130."""

LOG_LEVEL_MAX: Final = 63
"""Highest level of a complete subtree in a tree of at most ``INT64_MAX`` leaves."""

LOG_CHECKPOINT_MAX_LEN: Final = 1 << 18
"""One stored signed checkpoint (the transparency layer's largest note)."""

# ----------------------------------------------------------------------------- key directory

KT_OPENING_MAX_LEN: Final = 64
"""One key-directory commitment opening (Overt's are 32 random bytes)."""

# ----------------------------------------------------------------------------- lawful access

WARRANT_ID_LEN: Final = 32
"""A warrant id: 32 bytes the court drew."""

WARRANT_DOCUMENT_MAX_LEN: Final = 64 * 1024
"""One stored signed warrant or revocation (the access core's ``MAX_WARRANT_BYTES``)."""

WARRANT_TOKEN_HASH_MAX_LEN: Final = 64
"""The stored hash of a warrant's access token (32 bytes for SHA-256)."""

LIVE_WARRANTS_MAX: Final = 1000
"""Live warrants one ``live(now)`` returns: the interception hook's working set."""

WARRANT_PAGE_MAX: Final = 1000
"""Warrants one ``due_for_unsealing`` returns."""

INTERCEPT_BATCH_MAX: Final = ENQUEUE_BATCH_MAX
"""Intercepted envelopes stored in one call (one enqueue's worth)."""

INTERCEPT_PAGE_MAX: Final = 1000
"""Intercepted envelopes one page returns."""

EPOCH_MAX: Final = 0xFFFF_FFFF
"""Escrow epochs are uint32."""

EPOCH_TRANSCRIPT_MAX_LEN: Final = 8 * 1024
"""One stored DKG transcript (32 custodians, threshold 32: about 1.1 KiB)."""

EPOCH_CONFIRMATIONS_MAX_LEN: Final = 8 * 1024
"""The custodians' signed confirmations of one epoch (32 custodians: about 3.2 KiB)."""

EPOCH_PAGE_MAX: Final = 100
"""Epoch records one ``latest`` returns."""

# ----------------------------------------------------------------------------- safety (reports)

REPORT_ID_LEN: Final = 16
"""A report id: the first 16 bytes of the SHA-256 of the report, chosen by the intake."""

REPLAY_KEY_LEN: Final = 32
"""A replay key: a 32-byte hash naming (reporter account, reported message)."""

REPLAY_KEYS_PER_REPORT_MAX: Final = 100
"""Replay keys one report stores or one ``seen`` asks about (the messages of one report)."""

EVIDENCE_BUNDLE_MAX_LEN: Final = 65 * 1024 * 1024
"""One stored evidence bundle: a report of at most 64 MiB plus its verification record."""

SAFETY_LABEL_MAX_LEN: Final = 32
"""A report category, a signal rule, a queue resolution or an audit action (ASCII words)."""

SAFETY_TEXT_MAX_LEN: Final = 4096
"""A signal's detail, an audit entry's detail or a suspension reason (bytes)."""

SEVERITY_MAX: Final = 9
"""Queue severities are 0..9, higher first."""

QUEUE_PAGE_MAX: Final = 500
"""Queue items one ``queue`` call returns."""

AUDIT_PAGE_MAX: Final = 500
"""Audit entries one ``audit`` call returns."""

PURGE_BATCH_MAX: Final = 1000
"""Evidence bundles one ``purge`` call deletes."""

MODERATOR_NAME_MAX_LEN: Final = 64
"""A moderator's login name (characters of ``[a-z0-9_.-]``)."""

PASSWORD_HASH_MAX_LEN: Final = 256
"""One stored password hash line (scrypt, PHC style: about 100 characters)."""

MODERATORS_MAX: Final = 1000
"""Moderator accounts one ``all`` returns."""

# ----------------------------------------------------------------------------- groups

GROUP_ID_LEN: Final = 32
"""Group ids are 32 opaque bytes (drawn at random by the group's creator)."""

GROUP_SET_HASH_LEN: Final = 32
"""The hash naming the member set of one version of a group (opaque here)."""

GROUP_UPDATE_MAX_LEN: Final = 256 * 1024
"""One stored membership update (1024 accounts and 8192 devices encode to about 170 KiB)."""

GROUP_ACCOUNTS_MAX: Final = 1024
"""Accounts one version of a group lists."""

GROUP_UPDATES_PAGE_MAX: Final = 1000
"""Updates one ``updates`` call returns."""


@dataclass(frozen=True, slots=True)
class StorageLimits:
    """The bounds a deployment may tune (tests shrink them to reach them cheaply)."""

    mailbox_depth: int = MAILBOX_DEPTH_MAX
    blob_size: int = BLOB_SIZE_MAX
    one_time_prekeys: int = ONE_TIME_PREKEYS_MAX

    def __post_init__(self) -> None:
        if self.mailbox_depth < 1 or self.blob_size < 1 or self.one_time_prekeys < 1:
            raise ConfigurationError("storage limits must be positive")
