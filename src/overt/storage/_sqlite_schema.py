"""The SQLite schema as numbered migrations.

``MIGRATIONS[i]`` is the SQL script that takes a database from schema version ``i`` to
``i + 1``. Scripts are append-only: once released, a script is never edited; a change to the
schema is a new script at the end. :func:`overt.storage.sqlite.apply_migrations` runs the
pending ones in order inside one ``BEGIN IMMEDIATE`` transaction and records each in
``schema_version``, so a database is always at exactly one version and two processes opening
the same new file cannot both migrate it.

Design of version 1:

* Identifiers are the columns; everything a client uploaded is an opaque ``BLOB``.
* Device and prekey ids are uint32 and serials, ids and times fit int64, so every ``INTEGER``
  column fits SQLite's signed 64-bit integer.
* ``mail.id`` is the server message id. It is taken from the ``counter`` row named ``mail``
  inside the enqueue transaction, so ids are never reused (even after the newest rows are
  acknowledged) and increase in commit order (SQLite has one writer at a time).
* ``mailbox`` holds each device's depth (pending ``mail`` rows), kept by two triggers on
  ``mail`` so that it cannot drift from the rows whatever deletes them; the enqueue bound check
  reads one row instead of counting up to ``mailbox_depth`` index entries per recipient. A
  device with nothing pending has no ``mailbox`` row.
* One-time prekeys live in a rowid table (ML-KEM records are ~1.3 KiB, too large for a
  ``WITHOUT ROWID`` row) with a unique index that both refuses repeated ids and finds the
  lowest id to hand out.
* Blobs live in a rowid table so that large values do not bloat an index b-tree.

Design of version 2 (the transparency log):

* ``log_leaf`` is a rowid table keyed by the leaf index (``idx``, from 0), so the log's size is
  ``max(idx) + 1``, read off the end of the b-tree. The hash column comes before the data so
  that reading a leaf hash never touches the overflow pages of a large entry.
* ``log_node`` holds the hash of every complete subtree of level >= 1 under ``(level, idx)``
  (level 0 is ``log_leaf.hash``), in a ``WITHOUT ROWID`` table: about one row per leaf, each a
  few dozen bytes, and a proof reads O(log n) of them by primary key.
* ``log_checkpoint`` keeps every signed checkpoint under the tree size it commits to; the
  latest is the one with the largest size.
* The log is append-only: triggers refuse ``UPDATE`` and ``DELETE`` on leaves and nodes, so a
  bug elsewhere cannot rewrite history in place.

Design of version 3 (the key directory's server-side records):

* ``kt_record`` keeps, per account and device-list serial, the log index of the key-directory
  entry, the secret opening of its commitment and the signed device list it hashes. A rowid
  table (device lists reach 16 KiB) whose primary key ``(account_id, serial)`` refuses a second
  record of one serial and finds an account's latest record from the end of its range.
* Records are never changed or deleted: triggers refuse both, as for the log.

Design of version 4 (lawful access, DESIGN §6):

* ``lawful_warrant`` keeps each warrant served to the provider under its 32-byte id: the log
  index of its commitment, the hash of its access token, the signed document, when its
  authorisation ends (``not_after``) and its sealing date; a revocation and the index of its
  unsealing are filled in once, later. Two partial indexes find the live warrants (not
  revoked, by end) and the ones due for unsealing (not unsealed, by date).
* ``lawful_intercept`` holds the envelopes copied under a warrant, with the relay's record of
  each (mail id, server time, sender and recipient). ``id`` is ``AUTOINCREMENT``: never
  reused, and increasing in commit order (one writer), so an agency paging after the last id
  it saw misses nothing. A rowid table, as envelopes reach 1 MiB.
* ``lawful_epoch`` keeps, per escrow epoch whose key the log holds, the index of its
  ``EpochKey`` entry and the public DKG transcript.

Design of version 5 (safety: reports, the moderation queue, standing, moderators; DESIGN §5):

* ``safety_item`` is the moderation queue: one row per verified report or metadata signal,
  ``AUTOINCREMENT`` ids, an index on ``(state, severity DESC, created_ms, id)`` that serves
  the queue in the order moderators work it.
* ``safety_report`` keeps each report's evidence bundle (opaque; set to NULL once purged at the
  end of retention, the row itself stays) under its 16-byte id, with its item's id.
  ``safety_replay`` holds the 32-byte replay key of every reported message (never purged: a
  message stays "already reported"). A report, its keys and its item are inserted in one
  transaction.
* ``safety_audit`` is the moderators' audit trail; triggers refuse ``UPDATE`` and ``DELETE``.
* ``safety_standing`` (warnings, suspension per account) and ``safety_moderator`` (console
  accounts, password hashes) are small keyed tables.

Design of version 6 (groups):

* ``mail.kind`` labels each stored mail ``'envelope'`` (one-to-one; every row before version
  6) or ``'group'`` (one group message fanned out to a member device).
* ``group_update`` keeps every accepted membership update of a group under
  ``(group_id, version)``, with the member-set hash of that version. A rowid table (updates
  reach 256 KiB); the primary key refuses a second update of one version, and an append checks
  in its transaction that the stored maximum is the version before. Triggers refuse ``UPDATE``
  and ``DELETE``: the history is append-only.
* ``group_member`` holds each (group, account) that any version listed, never removed: who may
  read a group's history.

Design of version 7 (known-content matching):

* ``matching_list`` keeps each published list version under its number, with its table
  commitment (unique), the blinded table, the plaintext list, the delta from the previous
  version and the log index of its commitment entry. Written once.
* ``matching_opened`` keeps the opened images of each subject (the account id) under
  ``(subject, image_id)``, in arrival order (``seq``), with the revealed payload once the
  threshold was crossed.

Design of version 8 (group messages under a warrant):

* ``lawful_intercept.kind`` labels each copy as ``mail.kind`` does (``'envelope'`` for every
  row before version 8); ``lawful_intercept.membership`` holds, for a group message, the
  signed membership update of the view it names (NULL for an envelope).

Design of version 9 (the custodians' confirmations of each escrow epoch):

* ``lawful_epoch.confirmations`` holds the custodians' signed confirmations of the epoch's
  DKG transcript, opaque, so that clients can check them; NULL for an epoch stored before.

This module is SQL only: it knows nothing of the protocol or of the encodings stored.
"""

from __future__ import annotations

from typing import Final

SCHEMA_VERSION_TABLE: Final = """
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY
) STRICT;
"""

_V1: Final = """
CREATE TABLE account (
    account_id   BLOB PRIMARY KEY,
    identity_key BLOB NOT NULL,
    device_list  BLOB NOT NULL,
    serial       INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE device (
    account_id BLOB NOT NULL REFERENCES account (account_id) ON DELETE CASCADE,
    device_id  INTEGER NOT NULL,
    auth_key   BLOB NOT NULL,
    PRIMARY KEY (account_id, device_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE device_prekey (
    account_id BLOB NOT NULL,
    device_id  INTEGER NOT NULL,
    slot       TEXT NOT NULL,          -- 'signed' or 'last_resort_kem'
    key_id     INTEGER NOT NULL,
    record     BLOB NOT NULL,
    PRIMARY KEY (account_id, device_id, slot)
) STRICT;

CREATE TABLE one_time_prekey (
    account_id BLOB NOT NULL,
    device_id  INTEGER NOT NULL,
    kind       TEXT NOT NULL,          -- an OneTimeKind value
    key_id     INTEGER NOT NULL,
    record     BLOB NOT NULL,
    UNIQUE (account_id, device_id, kind, key_id)
) STRICT;

CREATE TABLE counter (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

INSERT INTO counter (name, value) VALUES ('mail', 0);

CREATE TABLE mail (
    id                INTEGER PRIMARY KEY,
    recipient_account BLOB NOT NULL,
    recipient_device  INTEGER NOT NULL,
    sender_account    BLOB NOT NULL,
    sender_device     INTEGER NOT NULL,
    server_time       INTEGER NOT NULL,
    envelope          BLOB NOT NULL,
    reporting_tag     BLOB NOT NULL
) STRICT;

CREATE INDEX mail_by_recipient ON mail (recipient_account, recipient_device, id);

CREATE TABLE mailbox (
    recipient_account BLOB NOT NULL,
    recipient_device  INTEGER NOT NULL,
    depth             INTEGER NOT NULL CHECK (depth > 0),
    PRIMARY KEY (recipient_account, recipient_device)
) STRICT, WITHOUT ROWID;

CREATE TRIGGER mail_counted AFTER INSERT ON mail BEGIN
    INSERT INTO mailbox (recipient_account, recipient_device, depth)
    VALUES (new.recipient_account, new.recipient_device, 1)
    ON CONFLICT (recipient_account, recipient_device) DO UPDATE SET depth = depth + 1;
END;

CREATE TRIGGER mail_uncounted AFTER DELETE ON mail BEGIN
    DELETE FROM mailbox
    WHERE recipient_account = old.recipient_account AND recipient_device = old.recipient_device
      AND depth = 1;
    UPDATE mailbox SET depth = depth - 1
    WHERE recipient_account = old.recipient_account AND recipient_device = old.recipient_device;
END;

CREATE TABLE attachment (
    blob_id BLOB NOT NULL UNIQUE,
    data    BLOB NOT NULL
) STRICT;
"""

_V2: Final = """
CREATE TABLE log_leaf (
    idx  INTEGER PRIMARY KEY CHECK (idx >= 0),
    hash BLOB NOT NULL,
    data BLOB NOT NULL
) STRICT;

CREATE TABLE log_node (
    level INTEGER NOT NULL CHECK (level > 0),
    idx   INTEGER NOT NULL CHECK (idx >= 0),
    hash  BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) STRICT, WITHOUT ROWID;

CREATE TABLE log_checkpoint (
    size       INTEGER PRIMARY KEY CHECK (size >= 0),
    checkpoint BLOB NOT NULL
) STRICT;

CREATE TRIGGER log_leaf_no_update BEFORE UPDATE ON log_leaf BEGIN
    SELECT RAISE(ABORT, 'the log is append-only');
END;

CREATE TRIGGER log_leaf_no_delete BEFORE DELETE ON log_leaf BEGIN
    SELECT RAISE(ABORT, 'the log is append-only');
END;

CREATE TRIGGER log_node_no_update BEFORE UPDATE ON log_node BEGIN
    SELECT RAISE(ABORT, 'the log is append-only');
END;

CREATE TRIGGER log_node_no_delete BEFORE DELETE ON log_node BEGIN
    SELECT RAISE(ABORT, 'the log is append-only');
END;
"""

_V3: Final = """
CREATE TABLE kt_record (
    account_id  BLOB NOT NULL,
    serial      INTEGER NOT NULL CHECK (serial >= 0),
    idx         INTEGER NOT NULL CHECK (idx >= 0),
    opening     BLOB NOT NULL,
    device_list BLOB NOT NULL,
    PRIMARY KEY (account_id, serial)
) STRICT;

CREATE TRIGGER kt_record_no_update BEFORE UPDATE ON kt_record BEGIN
    SELECT RAISE(ABORT, 'key-directory records are never changed');
END;

CREATE TRIGGER kt_record_no_delete BEFORE DELETE ON kt_record BEGIN
    SELECT RAISE(ABORT, 'key-directory records are never deleted');
END;
"""

_V4: Final = """
CREATE TABLE lawful_warrant (
    warrant_id   BLOB PRIMARY KEY,
    idx          INTEGER NOT NULL CHECK (idx >= 0),
    token_hash   BLOB NOT NULL,
    document     BLOB NOT NULL,
    not_after    INTEGER NOT NULL,
    sealed_until INTEGER NOT NULL,
    revocation   BLOB,
    unsealed_idx INTEGER CHECK (unsealed_idx >= 0)
) STRICT;

CREATE INDEX lawful_warrant_live ON lawful_warrant (not_after) WHERE revocation IS NULL;

CREATE INDEX lawful_warrant_sealed ON lawful_warrant (sealed_until, warrant_id)
    WHERE unsealed_idx IS NULL;

CREATE TABLE lawful_intercept (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    warrant_id        BLOB NOT NULL,
    mail_id           INTEGER NOT NULL,
    server_time       INTEGER NOT NULL,
    sender_account    BLOB NOT NULL,
    sender_device     INTEGER NOT NULL,
    recipient_account BLOB NOT NULL,
    recipient_device  INTEGER NOT NULL,
    envelope          BLOB NOT NULL
) STRICT;

CREATE INDEX lawful_intercept_by_warrant ON lawful_intercept (warrant_id, id);

CREATE TABLE lawful_epoch (
    epoch      INTEGER PRIMARY KEY CHECK (epoch >= 0),
    idx        INTEGER NOT NULL CHECK (idx >= 0),
    transcript BLOB NOT NULL
) STRICT;
"""

_SAFETY: Final = """
CREATE TABLE safety_item (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    kind            TEXT NOT NULL CHECK (kind IN ('report', 'signal')),
    subject_account BLOB NOT NULL,
    label           TEXT NOT NULL,
    severity        INTEGER NOT NULL,
    created_ms      INTEGER NOT NULL,
    state           TEXT NOT NULL,
    updated_ms      INTEGER NOT NULL,
    resolution      TEXT,
    report_id       BLOB,
    detail          BLOB NOT NULL
) STRICT;

CREATE INDEX safety_item_queue ON safety_item (state, severity DESC, created_ms, id);

CREATE TABLE safety_report (
    report_id        BLOB PRIMARY KEY,
    bundle           BLOB,
    reporter_account BLOB NOT NULL,
    subject_account  BLOB NOT NULL,
    category         TEXT NOT NULL,
    severity         INTEGER NOT NULL,
    received_ms      INTEGER NOT NULL,
    retain_until_ms  INTEGER NOT NULL,
    item_id          INTEGER NOT NULL UNIQUE REFERENCES safety_item (id)
) STRICT;

CREATE INDEX safety_report_retention ON safety_report (retain_until_ms, report_id)
    WHERE bundle IS NOT NULL;

CREATE TABLE safety_replay (
    replay_key BLOB PRIMARY KEY
) STRICT, WITHOUT ROWID;

CREATE TABLE safety_audit (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms           INTEGER NOT NULL,
    actor           TEXT NOT NULL,
    action          TEXT NOT NULL,
    item_id         INTEGER,
    subject_account BLOB,
    detail          TEXT NOT NULL
) STRICT;

CREATE INDEX safety_audit_by_item ON safety_audit (item_id, id) WHERE item_id IS NOT NULL;

CREATE TRIGGER safety_audit_no_update BEFORE UPDATE ON safety_audit BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only');
END;

CREATE TRIGGER safety_audit_no_delete BEFORE DELETE ON safety_audit BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only');
END;

CREATE TABLE safety_standing (
    account    BLOB PRIMARY KEY,
    warnings   INTEGER NOT NULL CHECK (warnings >= 0),
    suspended  INTEGER NOT NULL CHECK (suspended IN (0, 1)),
    reason     TEXT NOT NULL,
    updated_ms INTEGER NOT NULL
) STRICT;

CREATE TABLE safety_moderator (
    name          TEXT PRIMARY KEY,
    role          TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_ms    INTEGER NOT NULL,
    disabled      INTEGER NOT NULL CHECK (disabled IN (0, 1))
) STRICT;
"""

_GROUPS: Final = """
ALTER TABLE mail ADD COLUMN kind TEXT NOT NULL DEFAULT 'envelope'
    CHECK (kind IN ('envelope', 'group'));

CREATE TABLE group_update (
    group_id        BLOB NOT NULL CHECK (length(group_id) = 32),
    version         INTEGER NOT NULL CHECK (version >= 1),
    member_set_hash BLOB NOT NULL,
    data            BLOB NOT NULL,
    PRIMARY KEY (group_id, version)
) STRICT;

CREATE TRIGGER group_update_no_update BEFORE UPDATE ON group_update BEGIN
    SELECT RAISE(ABORT, 'group histories are append-only');
END;

CREATE TRIGGER group_update_no_delete BEFORE DELETE ON group_update BEGIN
    SELECT RAISE(ABORT, 'group histories are append-only');
END;

CREATE TABLE group_member (
    group_id BLOB NOT NULL,
    account  BLOB NOT NULL,
    PRIMARY KEY (group_id, account)
) STRICT, WITHOUT ROWID;
"""

_MATCHING: Final = """
CREATE TABLE matching_list (
    version    INTEGER PRIMARY KEY CHECK (version >= 0),
    commitment BLOB NOT NULL UNIQUE CHECK (length(commitment) = 32),
    tbl        BLOB NOT NULL,
    hashes     BLOB NOT NULL,
    log_index  INTEGER NOT NULL CHECK (log_index >= 0),
    created_ms INTEGER NOT NULL,
    delta      BLOB
) STRICT;

CREATE TABLE matching_opened (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    subject  BLOB NOT NULL,
    image_id BLOB NOT NULL CHECK (length(image_id) = 16),
    record   BLOB NOT NULL,
    revealed BLOB,
    UNIQUE (subject, image_id)
) STRICT;
"""

_INTERCEPT_KIND: Final = """
ALTER TABLE lawful_intercept ADD COLUMN kind TEXT NOT NULL DEFAULT 'envelope'
    CHECK (kind IN ('envelope', 'group'));

ALTER TABLE lawful_intercept ADD COLUMN membership BLOB;
"""

_EPOCH_CONFIRMATIONS: Final = """
ALTER TABLE lawful_epoch ADD COLUMN confirmations BLOB;
"""

MIGRATIONS: Final[tuple[str, ...]] = (
    _V1, _V2, _V3, _V4, _SAFETY, _GROUPS, _MATCHING, _INTERCEPT_KIND, _EPOCH_CONFIRMATIONS,
)  # fmt: skip
"""Append-only; ``len(MIGRATIONS)`` is the schema version this build writes."""
