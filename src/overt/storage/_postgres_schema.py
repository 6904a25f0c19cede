"""The PostgreSQL schema as numbered migrations (the change log is ``docs/migrations.md``).

``MIGRATIONS[i]`` is the SQL script that takes a database from schema version ``i`` to
``i + 1``. Scripts are append-only: once released, a script is never edited; a change to the
schema is a new script at the end (and a new entry in ``docs/migrations.md``, beside the
SQLite script that makes the same change). :func:`overt.storage.postgres.apply_migrations`
runs the pending ones in order inside one transaction, after taking the transaction-level
advisory lock :data:`MIGRATION_LOCK`, and records each in ``schema_version``: several nodes
that start at once queue on the lock, the first migrates, the others find nothing to do.
PostgreSQL's DDL is transactional, so a failed script leaves no trace.

The tables live in the first schema of the connection's ``search_path`` (``public`` unless the
DSN says otherwise, e.g. ``?search_path=overt``), and so do the trigger functions; the
functions name tables unqualified and resolve them through the same ``search_path``.

Design of version 1, kept as close as possible to SQLite's version 1 (``_sqlite_schema.py``):

* Identifiers are the columns; everything a client uploaded is an opaque ``bytea``. Device and
  prekey ids are uint32, so they are ``bigint`` (``integer`` is signed 32-bit); serials, ids
  and times are ``bigint``.
* ``mail.id`` is the server message id. It is drawn from the sequence ``mail_id`` (``CACHE 1``)
  by ``mail_draw_ids`` while the enqueue transaction holds the transaction-level advisory lock
  :data:`MAIL_ID_LOCK`, which is released only after the COMMIT is visible; so enqueues draw
  ids one transaction at a time and ids increase in commit order across every node. Only lock
  holders draw, so a batch's ids are consecutive. Ids are never reused; a rolled-back enqueue
  may leave a gap. ``postgres.py`` explains why this and not a counter row.
* ``mailbox`` holds each device's depth (pending ``mail`` rows), kept by two *statement-level*
  triggers with transition tables, so an enqueue of a fan-out or an acknowledgement of a page
  updates each device's row once per statement, and the depth cannot drift from the rows
  whatever deletes them. A device with nothing pending has no ``mailbox`` row (the delete
  trigger decrements first and then removes rows that reached zero, which stays correct when
  two acknowledgements of one device race).
* One-time prekeys have a primary key that both refuses repeated ids and finds the lowest id to
  hand out; a take locks that row with ``FOR UPDATE SKIP LOCKED`` so concurrent takers on
  several nodes each get a different key without waiting for one another.
* Envelopes and attachments are ciphertext and do not compress: their columns use
  ``STORAGE EXTERNAL`` (out of line, no compression attempt).

Design of version 2 (the transparency log), as SQLite's version 2:

* ``log_leaf`` is keyed by the leaf index (``idx``, from 0), so the log's size is
  ``max(idx) + 1``, read off the end of the primary-key index.
* ``log_node`` holds the hash of every complete subtree of level >= 1 under ``(level, idx)``
  (level 0 is ``log_leaf.hash``); a proof reads O(log n) of them by primary key.
* ``log_checkpoint`` keeps every signed checkpoint under the tree size it commits to; the
  latest is the one with the largest size.
* The log is append-only: statement-level triggers refuse ``UPDATE``, ``DELETE`` and
  ``TRUNCATE`` on leaves and nodes, so a bug elsewhere cannot rewrite history in place.
  Appends and checkpoint writes are serialized across nodes by the advisory lock
  :data:`LOG_LOCK`, so the size check and the insert cannot interleave with another node's.

Design of version 3 (the key directory's records), as SQLite's version 3:

* ``kt_record`` keeps, per account and device-list serial, the log index of the entry that
  published it, the opening of that entry's commitment and the signed device list. Its
  primary key ``(account_id, serial)`` refuses a second record of one serial and finds an
  account's latest record from the end of its range.
* Records are never changed or deleted: a statement-level trigger refuses ``UPDATE``,
  ``DELETE`` and ``TRUNCATE``, as for the log.

Design of version 4 (lawful access), as SQLite's version 4:

* ``lawful_warrant``: each warrant served to the provider, with two partial indexes (live
  warrants by end; warrants due for unsealing by date).
* ``lawful_intercept``: envelopes copied under warrants; ``id`` is an identity column drawn
  while the insert holds the advisory lock :data:`INTERCEPT_ID_LOCK` until its commit, so ids
  increase in commit order across nodes (the same argument as ``mail_id``). Envelopes use
  ``STORAGE EXTERNAL``.
* ``lawful_epoch``: per escrow epoch in the log, its entry's index and the DKG transcript.

Design of version 5 (safety), as SQLite's version 5: ``safety_item`` (the moderation queue,
identity ids, an index in queue order), ``safety_report`` (evidence bundles, ``STORAGE
EXTERNAL``, NULL once purged), ``safety_replay`` (one row per reported message),
``safety_audit`` (append-only: a statement-level trigger refuses ``UPDATE``, ``DELETE`` and
``TRUNCATE``), ``safety_standing`` and ``safety_moderator``.

Design of version 6 (groups), as SQLite's version 6: ``mail.kind`` (added with a constant
default, so no rewrite; its ``CHECK`` is added ``NOT VALID``, as every existing row holds the
default, so no scan under the table lock), ``group_update`` (append-only: a statement-level
trigger refuses ``UPDATE``, ``DELETE`` and ``TRUNCATE``; ``data`` is stored as PostgreSQL
chooses, as updates are at most 256 KiB) and ``group_member``.

Design of version 7 (known-content matching), as SQLite's version 7: ``matching_list`` (list
versions, written once) and ``matching_opened`` (opened images per subject, an identity
``seq`` for arrival order); additions to one subject are serialized by an advisory lock.

Design of version 8 (group messages under a warrant), as SQLite's version 8:
``lawful_intercept.kind`` (a constant default, so no rewrite; its ``CHECK`` added ``NOT
VALID``, as for ``mail.kind``) and ``lawful_intercept.membership`` (nullable, no default).

Design of version 9 (the custodians' confirmations of each escrow epoch), as SQLite's version
9: ``lawful_epoch.confirmations`` (``bytea``, nullable, no default: no rewrite).

This module is SQL only: it knows nothing of the protocol or of the encodings stored.
"""

from __future__ import annotations

from typing import Final

LOCK_CLASS: Final = 0x4F56_5254
"""The first half of every two-int advisory lock key Overt takes (``'OVRT'``)."""

MIGRATION_LOCK: Final = (LOCK_CLASS, 1)
"""Transaction-level advisory lock that serializes migrations of one database."""

MAIL_ID_LOCK: Final = (LOCK_CLASS, 2)
"""Transaction-level advisory lock an enqueue holds from drawing its ids until its commit."""

LOG_LOCK: Final = (LOCK_CLASS, 3)
"""Transaction-level advisory lock held by a log append or checkpoint write until its commit."""

INTERCEPT_ID_LOCK: Final = (LOCK_CLASS, 4)
"""Transaction-level advisory lock an intercept insert holds from drawing its ids until its
commit, so that intercept ids increase in commit order (as mail ids do)."""

PREKEY_POOL_LOCK_CLASS: Final = 0x4F56_5250
"""First half of the advisory lock key (``'OVRP'``, hash of the pool) that serializes additions
to one device's one-time prekey pool, so that two nodes cannot both pass the pool bound."""

SCHEMA_VERSION_TABLE: Final = """
CREATE TABLE IF NOT EXISTS schema_version (
    version    integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);
"""

_V1: Final = """
CREATE TABLE account (
    account_id   bytea PRIMARY KEY,
    identity_key bytea NOT NULL,
    device_list  bytea NOT NULL,
    serial       bigint NOT NULL
);

CREATE TABLE device (
    account_id bytea NOT NULL REFERENCES account (account_id) ON DELETE CASCADE,
    device_id  bigint NOT NULL,
    auth_key   bytea NOT NULL,
    PRIMARY KEY (account_id, device_id)
);

CREATE TABLE device_prekey (
    account_id bytea NOT NULL,
    device_id  bigint NOT NULL,
    slot       text NOT NULL,          -- 'signed' or 'last_resort_kem'
    key_id     bigint NOT NULL,
    record     bytea NOT NULL,
    PRIMARY KEY (account_id, device_id, slot)
);

CREATE TABLE one_time_prekey (
    account_id bytea NOT NULL,
    device_id  bigint NOT NULL,
    kind       text NOT NULL,          -- an OneTimeKind value
    key_id     bigint NOT NULL,
    record     bytea NOT NULL,
    PRIMARY KEY (account_id, device_id, kind, key_id)
);

CREATE SEQUENCE mail_id AS bigint MINVALUE 1 CACHE 1 NO CYCLE;

CREATE TABLE mail (
    id                bigint PRIMARY KEY,
    recipient_account bytea NOT NULL,
    recipient_device  bigint NOT NULL,
    sender_account    bytea NOT NULL,
    sender_device     bigint NOT NULL,
    server_time       bigint NOT NULL,
    envelope          bytea NOT NULL,
    reporting_tag     bytea NOT NULL
);

ALTER TABLE mail ALTER COLUMN envelope SET STORAGE EXTERNAL;

CREATE INDEX mail_by_recipient ON mail (recipient_account, recipient_device, id);

-- The start of every enqueue, in one round trip: take the id lock (held to the end of the
-- transaction), check the recipients' depths (a VOLATILE function's queries each take a fresh
-- snapshot, so this sees every enqueue committed before the lock was granted), then draw
-- p_count consecutive ids. NULL if a mailbox would overflow; else the last id drawn.
CREATE FUNCTION mail_draw_ids(
    p_lock_class integer, p_lock_key integer,
    p_accounts bytea[], p_devices bigint[], p_arriving bigint[],
    p_depth_max bigint, p_count bigint
) RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(p_lock_class, p_lock_key);
    IF EXISTS (
        SELECT 1
        FROM mailbox AS m
        JOIN unnest(p_accounts, p_devices, p_arriving) AS a (account_id, device_id, arriving)
          ON m.recipient_account = a.account_id AND m.recipient_device = a.device_id
        WHERE m.depth + a.arriving > p_depth_max
    ) THEN
        RETURN NULL;
    END IF;
    RETURN setval('mail_id', nextval('mail_id') + p_count - 1);
END
$$;

CREATE TABLE mailbox (
    recipient_account bytea NOT NULL,
    recipient_device  bigint NOT NULL,
    depth             bigint NOT NULL CHECK (depth >= 0),
    PRIMARY KEY (recipient_account, recipient_device)
);

CREATE FUNCTION mail_counted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO mailbox (recipient_account, recipient_device, depth)
    SELECT recipient_account, recipient_device, count(*)
    FROM inserted
    GROUP BY recipient_account, recipient_device
    ORDER BY recipient_account, recipient_device
    ON CONFLICT (recipient_account, recipient_device)
    DO UPDATE SET depth = mailbox.depth + excluded.depth;
    RETURN NULL;
END
$$;

CREATE FUNCTION mail_uncounted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE mailbox AS m SET depth = m.depth - d.n
    FROM (
        SELECT recipient_account, recipient_device, count(*) AS n
        FROM deleted
        GROUP BY recipient_account, recipient_device
    ) AS d
    WHERE m.recipient_account = d.recipient_account
      AND m.recipient_device = d.recipient_device;
    DELETE FROM mailbox AS m
    USING (SELECT DISTINCT recipient_account, recipient_device FROM deleted) AS d
    WHERE m.recipient_account = d.recipient_account
      AND m.recipient_device = d.recipient_device
      AND m.depth = 0;
    RETURN NULL;
END
$$;

CREATE TRIGGER mail_counted AFTER INSERT ON mail
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION mail_counted();

CREATE TRIGGER mail_uncounted AFTER DELETE ON mail
    REFERENCING OLD TABLE AS deleted
    FOR EACH STATEMENT EXECUTE FUNCTION mail_uncounted();

CREATE TABLE attachment (
    blob_id bytea PRIMARY KEY,
    data    bytea NOT NULL
);

ALTER TABLE attachment ALTER COLUMN data SET STORAGE EXTERNAL;
"""

_V2: Final = """
CREATE TABLE log_leaf (
    idx  bigint PRIMARY KEY CHECK (idx >= 0),
    hash bytea NOT NULL,
    data bytea NOT NULL
);

CREATE TABLE log_node (
    level integer NOT NULL CHECK (level > 0),
    idx   bigint NOT NULL CHECK (idx >= 0),
    hash  bytea NOT NULL,
    PRIMARY KEY (level, idx)
);

CREATE TABLE log_checkpoint (
    size       bigint PRIMARY KEY CHECK (size >= 0),
    checkpoint bytea NOT NULL
);

CREATE FUNCTION log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the log is append-only' USING ERRCODE = 'restrict_violation';
END
$$;

CREATE TRIGGER log_leaf_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON log_leaf
    FOR EACH STATEMENT EXECUTE FUNCTION log_append_only();

CREATE TRIGGER log_node_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON log_node
    FOR EACH STATEMENT EXECUTE FUNCTION log_append_only();
"""

_V3: Final = """
CREATE TABLE kt_record (
    account_id  bytea NOT NULL,
    serial      bigint NOT NULL CHECK (serial >= 0),
    idx         bigint NOT NULL CHECK (idx >= 0),
    opening     bytea NOT NULL,
    device_list bytea NOT NULL,
    PRIMARY KEY (account_id, serial)
);

CREATE FUNCTION kt_record_write_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'key-directory records are never changed or deleted'
        USING ERRCODE = 'restrict_violation';
END
$$;

CREATE TRIGGER kt_record_write_once BEFORE UPDATE OR DELETE OR TRUNCATE ON kt_record
    FOR EACH STATEMENT EXECUTE FUNCTION kt_record_write_once();
"""

_V4: Final = """
CREATE TABLE lawful_warrant (
    warrant_id   bytea PRIMARY KEY,
    idx          bigint NOT NULL CHECK (idx >= 0),
    token_hash   bytea NOT NULL,
    document     bytea NOT NULL,
    not_after    bigint NOT NULL,
    sealed_until bigint NOT NULL,
    revocation   bytea,
    unsealed_idx bigint CHECK (unsealed_idx >= 0)
);

CREATE INDEX lawful_warrant_live ON lawful_warrant (not_after) WHERE revocation IS NULL;

CREATE INDEX lawful_warrant_sealed ON lawful_warrant (sealed_until, warrant_id)
    WHERE unsealed_idx IS NULL;

CREATE TABLE lawful_intercept (
    id                bigint GENERATED ALWAYS AS IDENTITY (CACHE 1) PRIMARY KEY,
    warrant_id        bytea NOT NULL,
    mail_id           bigint NOT NULL,
    server_time       bigint NOT NULL,
    sender_account    bytea NOT NULL,
    sender_device     bigint NOT NULL,
    recipient_account bytea NOT NULL,
    recipient_device  bigint NOT NULL,
    envelope          bytea NOT NULL
);

ALTER TABLE lawful_intercept ALTER COLUMN envelope SET STORAGE EXTERNAL;

CREATE INDEX lawful_intercept_by_warrant ON lawful_intercept (warrant_id, id);

CREATE TABLE lawful_epoch (
    epoch      bigint PRIMARY KEY CHECK (epoch >= 0),
    idx        bigint NOT NULL CHECK (idx >= 0),
    transcript bytea NOT NULL
);
"""

_SAFETY: Final = """
CREATE TABLE safety_item (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ('report', 'signal')),
    subject_account bytea NOT NULL,
    label           text NOT NULL,
    severity        integer NOT NULL,
    created_ms      bigint NOT NULL,
    state           text NOT NULL,
    updated_ms      bigint NOT NULL,
    resolution      text,
    report_id       bytea,
    detail          bytea NOT NULL
);

CREATE INDEX safety_item_queue ON safety_item (state, severity DESC, created_ms, id);

CREATE TABLE safety_report (
    report_id        bytea PRIMARY KEY,
    bundle           bytea,
    reporter_account bytea NOT NULL,
    subject_account  bytea NOT NULL,
    category         text NOT NULL,
    severity         integer NOT NULL,
    received_ms      bigint NOT NULL,
    retain_until_ms  bigint NOT NULL,
    item_id          bigint NOT NULL UNIQUE REFERENCES safety_item (id)
);

ALTER TABLE safety_report ALTER COLUMN bundle SET STORAGE EXTERNAL;

CREATE INDEX safety_report_retention ON safety_report (retain_until_ms, report_id)
    WHERE bundle IS NOT NULL;

CREATE TABLE safety_replay (
    replay_key bytea PRIMARY KEY
);

CREATE TABLE safety_audit (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at_ms           bigint NOT NULL,
    actor           text NOT NULL,
    action          text NOT NULL,
    item_id         bigint,
    subject_account bytea,
    detail          text NOT NULL
);

CREATE INDEX safety_audit_by_item ON safety_audit (item_id, id) WHERE item_id IS NOT NULL;

CREATE FUNCTION safety_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit trail is append-only' USING ERRCODE = 'restrict_violation';
END
$$;

CREATE TRIGGER safety_audit_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON safety_audit
    FOR EACH STATEMENT EXECUTE FUNCTION safety_audit_append_only();

CREATE TABLE safety_standing (
    account    bytea PRIMARY KEY,
    warnings   bigint NOT NULL CHECK (warnings >= 0),
    suspended  boolean NOT NULL,
    reason     text NOT NULL,
    updated_ms bigint NOT NULL
);

CREATE TABLE safety_moderator (
    name          text PRIMARY KEY,
    role          text NOT NULL,
    password_hash text NOT NULL,
    created_ms    bigint NOT NULL,
    disabled      boolean NOT NULL
);
"""

_GROUPS: Final = """
ALTER TABLE mail ADD COLUMN kind text NOT NULL DEFAULT 'envelope';

ALTER TABLE mail ADD CONSTRAINT mail_kind CHECK (kind IN ('envelope', 'group')) NOT VALID;

CREATE TABLE group_update (
    group_id        bytea NOT NULL CHECK (length(group_id) = 32),
    version         bigint NOT NULL CHECK (version >= 1),
    member_set_hash bytea NOT NULL,
    data            bytea NOT NULL,
    PRIMARY KEY (group_id, version)
);

CREATE FUNCTION group_update_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'group histories are append-only'
        USING ERRCODE = 'restrict_violation';
END
$$;

CREATE TRIGGER group_update_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON group_update
    FOR EACH STATEMENT EXECUTE FUNCTION group_update_append_only();

CREATE TABLE group_member (
    group_id bytea NOT NULL,
    account  bytea NOT NULL,
    PRIMARY KEY (group_id, account)
);
"""

_MATCHING: Final = """
CREATE TABLE matching_list (
    version    bigint PRIMARY KEY CHECK (version >= 0),
    commitment bytea NOT NULL UNIQUE CHECK (length(commitment) = 32),
    tbl        bytea NOT NULL,
    hashes     bytea NOT NULL,
    log_index  bigint NOT NULL CHECK (log_index >= 0),
    created_ms bigint NOT NULL,
    delta      bytea
);

CREATE TABLE matching_opened (
    seq      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subject  bytea NOT NULL,
    image_id bytea NOT NULL CHECK (length(image_id) = 16),
    record   bytea NOT NULL,
    revealed bytea,
    UNIQUE (subject, image_id)
);
"""

_INTERCEPT_KIND: Final = """
ALTER TABLE lawful_intercept ADD COLUMN kind text NOT NULL DEFAULT 'envelope';

ALTER TABLE lawful_intercept ADD CONSTRAINT lawful_intercept_kind
    CHECK (kind IN ('envelope', 'group')) NOT VALID;

ALTER TABLE lawful_intercept ADD COLUMN membership bytea;
"""

_EPOCH_CONFIRMATIONS: Final = """
ALTER TABLE lawful_epoch ADD COLUMN confirmations bytea;
"""

MIGRATIONS: Final[tuple[str, ...]] = (
    _V1, _V2, _V3, _V4, _SAFETY, _GROUPS, _MATCHING, _INTERCEPT_KIND, _EPOCH_CONFIRMATIONS,
)  # fmt: skip
"""Append-only; ``len(MIGRATIONS)`` is the schema version this build writes."""
