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

MIGRATIONS: Final[tuple[str, ...]] = (_V1, _V2, _V3)
"""Append-only; ``len(MIGRATIONS)`` is the schema version this build writes."""
