"""The client's local state: one SQLite file per profile.

What is kept, and how (every record is versioned bytes from :mod:`overt.protocol` or plain
columns — never pickle):

* ``profile`` — this device: its account id, its state (``registering``, ``linking``,
  ``active``), the account identity key if this device holds it, the device identity
  (:func:`overt.protocol.device.encode_identity`) and the prekey stock
  (:meth:`PrekeyStock.encode`);
* ``sessions`` — one :class:`SessionRecord` per peer device address;
* ``contacts`` — per account (this one included): the account key pinned when first seen and
  the last verified signed device list;
* ``conversations`` and ``messages`` — what the person sees: message id unique per
  (conversation, sender account), so a message is stored — and shown — once; with the exact
  body bytes, the franking key and the server's reporting tag kept for abuse reports;
* ``undecryptable`` — mail that could not be shown, with a reason class (never its content);
* ``seen_mail`` — server ids of mail already processed, so that mail delivered again after a
  lost acknowledgement is acknowledged without being processed twice. (A set of ids rather
  than a ``last_acked`` high-water mark: with several server nodes on PostgreSQL, ids can
  become visible out of order, and a high-water mark would then skip mail.)
* groups (migration 4, :mod:`overt.client.group_store`): ``groups`` (each group's
  :class:`~overt.protocol.groups.GroupState` and this device's
  :class:`~overt.protocol.groups.SenderKey` records), ``group_key_holders``,
  ``group_updates`` (the signed membership history), ``group_messages`` and ``group_inbox``
  (group input not processed yet);
* key transparency (migration 2): ``kt_manifest`` (the pinned signed manifest and its log
  index), ``kt_checkpoint`` (the newest verified checkpoint, a signed note), ``kt_monitor``
  (how far this device read the log: size, the tree's right edge, this account's label),
  ``kt_own_lists`` (every device list of this account it signed or accepted), ``alarms``
  and ``kt_pending_gossip``; ``contacts.log_index`` says where a contact's list was proven
  to be in the log.
* lawful access (migration 3): ``escrow_epochs`` (escrow-epoch keys proven to be in the log),
  ``access_warrants`` (warrants still sealed, and unsealed ones naming this account: the
  notices) and ``access_watch`` (how far the log was read for them).

**Atomicity.** Each write method is one ``BEGIN IMMEDIATE`` transaction; a received message
is committed by :meth:`Store.commit_received` — new session record, the stock without the
consumed prekeys, the message row and the mail's id — all or nothing, so a crash between the
steps leaves the state as it was and the mail, not yet acknowledged, comes again.

**Durability.** WAL mode with ``synchronous=FULL``: a method that returned has committed to the
fsynced log. The file is created readable by its owner only.

**Why synchronous.** The methods are plain calls on the event loop's thread: one person's
local database answers in well under a millisecond, and a staged decrypt is committed without
an ``await`` in between, so no other task can touch the same session meanwhile.

**Schema.** :data:`MIGRATIONS` is append-only; entry ``i`` moves the schema from version ``i``
to ``i + 1``, applied in one transaction when the file is opened. A file written by a newer
client is refused with :class:`ProfileTooNew`.

Secrets (identity keys, prekeys, sessions) are stored as they are, protected by the file's
permissions; encryption at rest under an OS keystore is a later step.

This module never sees the network or a clock: times come from the caller.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

from overt.client.errors import ProfileTooNew, StoreError
from overt.crypto import Ed25519PrivateKey
from overt.errors import DecodeError
from overt.protocol import AccountIdentity, DeviceIdentity, SessionRecord
from overt.protocol.device import PrekeyStock, decode_identity, encode_identity
from overt.wire import Address, DeviceEntry, DeviceList, Reader, SignedDeviceList, Writer
from overt.wire.messages import MAX_ACCOUNT_ID_LEN

if TYPE_CHECKING:
    from overt.client.group_store import StoredGroupMessage

DB_FILE_NAME: Final = "overt.db"
ACCOUNT_IDENTITY_VERSION: Final = 1

#: Append-only: ``MIGRATIONS[i]`` moves the schema from version ``i`` to ``i + 1``.
MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        """CREATE TABLE profile (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            account BLOB NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('registering', 'linking', 'active')),
            account_identity BLOB,
            device_identity BLOB NOT NULL,
            prekeys BLOB NOT NULL,
            created_ms INTEGER NOT NULL
        )""",
        """CREATE TABLE sessions (
            account BLOB NOT NULL,
            device INTEGER NOT NULL,
            record BLOB NOT NULL,
            updated_ms INTEGER NOT NULL,
            PRIMARY KEY (account, device)
        ) WITHOUT ROWID""",
        """CREATE TABLE contacts (
            account BLOB PRIMARY KEY,
            account_key BLOB NOT NULL,
            device_list BLOB NOT NULL,
            serial INTEGER NOT NULL,
            first_seen_ms INTEGER NOT NULL,
            updated_ms INTEGER NOT NULL
        ) WITHOUT ROWID""",
        """CREATE TABLE conversations (
            conversation_id BLOB PRIMARY KEY,
            peer BLOB NOT NULL UNIQUE,
            created_ms INTEGER NOT NULL,
            last_ms INTEGER NOT NULL
        )""",
        """CREATE TABLE messages (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            conversation_id BLOB NOT NULL REFERENCES conversations (conversation_id),
            message_id BLOB NOT NULL,
            sender_account BLOB NOT NULL,
            sender_device INTEGER NOT NULL,
            direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
            kind INTEGER NOT NULL,
            body BLOB NOT NULL,
            text TEXT NOT NULL,
            attachment BLOB,
            sent_ms INTEGER NOT NULL,
            stored_ms INTEGER NOT NULL,
            server_id INTEGER,
            server_time_ms INTEGER,
            reporting_tag BLOB,
            franking_key BLOB NOT NULL,
            UNIQUE (conversation_id, sender_account, message_id)
        )""",
        "CREATE INDEX messages_by_conversation ON messages (conversation_id, seq)",
        """CREATE TABLE undecryptable (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            server_id INTEGER NOT NULL,
            sender_account BLOB NOT NULL,
            sender_device INTEGER NOT NULL,
            server_time_ms INTEGER NOT NULL,
            reason TEXT NOT NULL,
            recorded_ms INTEGER NOT NULL
        )""",
        """CREATE TABLE seen_mail (
            server_id INTEGER PRIMARY KEY,
            seen_ms INTEGER NOT NULL
        )""",
        "CREATE INDEX seen_mail_by_time ON seen_mail (seen_ms)",
    ),
    (
        # Key transparency (docs/transparency.md, "What clients verify").
        # The log index at which a contact's stored list was proven to be in the log (NULL:
        # trusted on first use, or signed by this device).
        "ALTER TABLE contacts ADD COLUMN log_index INTEGER",
        # The deployment manifest this profile follows: the first one seen (or the one whose
        # key the caller gave), then each successor proven to be in the log.
        """CREATE TABLE kt_manifest (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            manifest BLOB NOT NULL,
            log_index INTEGER NOT NULL,
            pinned_ms INTEGER NOT NULL
        )""",
        # The newest checkpoint this device verified (log signature, witness quorum) and
        # connected to the one before by a consistency proof.
        """CREATE TABLE kt_checkpoint (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            size INTEGER NOT NULL,
            note BLOB NOT NULL,
            updated_ms INTEGER NOT NULL
        )""",
        # Monitoring: how far the log was read and verified, the right edge of the tree there
        # (a CompactRange: one 32-byte hash per set bit of size), this account's label.
        """CREATE TABLE kt_monitor (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            size INTEGER NOT NULL,
            frontier BLOB NOT NULL,
            own_label BLOB,
            checked_ms INTEGER NOT NULL
        )""",
        # Every device list this device signed or accepted for its own account.
        """CREATE TABLE kt_own_lists (
            list_hash BLOB PRIMARY KEY,
            serial INTEGER NOT NULL,
            account_key BLOB NOT NULL,
            recorded_ms INTEGER NOT NULL
        ) WITHOUT ROWID""",
        """CREATE TABLE alarms (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            kind TEXT NOT NULL,
            entry_index INTEGER,
            detail TEXT NOT NULL,
            ours TEXT,
            theirs TEXT,
            fingerprint BLOB NOT NULL UNIQUE,
            detected_ms INTEGER NOT NULL,
            acknowledged_ms INTEGER
        )""",
        # Checkpoints peers gossiped that could not be checked yet (server unreachable).
        """CREATE TABLE kt_pending_gossip (
            origin TEXT NOT NULL,
            size INTEGER NOT NULL,
            root_hash BLOB NOT NULL,
            received_ms INTEGER NOT NULL,
            PRIMARY KEY (origin, size, root_hash)
        )""",
    ),
    (
        # Lawful access (docs/lawful-access.md, "What the client does"): escrow-epoch keys
        # proven to be in the log and made by the manifest's custodians' DKG.
        """CREATE TABLE escrow_epochs (
            epoch INTEGER PRIMARY KEY,
            public_key BLOB NOT NULL,
            transcript_hash BLOB NOT NULL,
            not_before INTEGER NOT NULL,
            retain_until INTEGER NOT NULL,
            log_index INTEGER NOT NULL,
            verified_ms INTEGER NOT NULL
        )""",
        # How far the log was read for warrants (size), so that reading it again after a
        # crash counts no receipt twice.
        """CREATE TABLE access_watch (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            size INTEGER NOT NULL
        )""",
        # Warrants still sealed (any target), and those unsealed naming this account (a
        # notice): the commitment entry, the receipts' counts per custodian, the unsealing.
        """CREATE TABLE access_warrants (
            warrant_id BLOB PRIMARY KEY,
            commitment_index INTEGER NOT NULL,
            commitment BLOB NOT NULL,
            receipts BLOB NOT NULL,
            unsealing_index INTEGER,
            opening BLOB,
            found_ms INTEGER,
            shown_ms INTEGER
        ) WITHOUT ROWID""",
    ),
    # Groups (overt.client.group_store; docs/client.md, "Groups").
    (
        # One row per group this device is or was in: its GroupState record, its own
        # SenderKey record (NULL until it sends, and again after a rekey), and whether it is
        # still a member ('member'; 'left' on its own wish; 'removed' by an admin).
        """CREATE TABLE groups (
            group_id BLOB PRIMARY KEY,
            state BLOB NOT NULL,
            sender_key BLOB,
            status TEXT NOT NULL CHECK (status IN ('member', 'left', 'removed')),
            joined_ms INTEGER NOT NULL,
            last_ms INTEGER NOT NULL
        ) WITHOUT ROWID""",
        # The devices this device's current sender key was given to.
        """CREATE TABLE group_key_holders (
            group_id BLOB NOT NULL,
            account BLOB NOT NULL,
            device INTEGER NOT NULL,
            PRIMARY KEY (group_id, account, device)
        ) WITHOUT ROWID""",
        # Every membership update known (the signed bytes), for "who is in it since when".
        """CREATE TABLE group_updates (
            group_id BLOB NOT NULL,
            version INTEGER NOT NULL,
            update_bytes BLOB NOT NULL,
            recorded_ms INTEGER NOT NULL,
            PRIMARY KEY (group_id, version)
        ) WITHOUT ROWID""",
        # What a person sees, once per (group, sender account, message id), with the group
        # message's bytes and the delivery record kept for reports.
        """CREATE TABLE group_messages (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            group_id BLOB NOT NULL,
            message_id BLOB NOT NULL,
            sender_account BLOB NOT NULL,
            sender_device INTEGER NOT NULL,
            direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
            kind INTEGER NOT NULL,
            body BLOB NOT NULL,
            text TEXT NOT NULL,
            attachment BLOB,
            sent_ms INTEGER NOT NULL,
            stored_ms INTEGER NOT NULL,
            server_id INTEGER,
            server_time_ms INTEGER,
            reporting_tag BLOB,
            franking_key BLOB NOT NULL,
            message BLOB NOT NULL,
            UNIQUE (group_id, sender_account, message_id)
        )""",
        "CREATE INDEX group_messages_by_group ON group_messages (group_id, seq)",
        # Group input not processed yet: updates, sender keys and leave requests that came
        # over pairwise sessions (already decrypted; the session advanced in the same
        # transaction), and group messages waiting for their sender key or view.
        """CREATE TABLE group_inbox (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            server_id INTEGER NOT NULL UNIQUE,
            kind TEXT NOT NULL CHECK (kind IN ('update', 'key', 'leave', 'message')),
            group_id BLOB NOT NULL,
            sender_account BLOB NOT NULL,
            sender_device INTEGER NOT NULL,
            server_time_ms INTEGER NOT NULL,
            reporting_tag BLOB,
            data BLOB NOT NULL,
            received_ms INTEGER NOT NULL
        )""",
    ),
)
SCHEMA_VERSION: Final = len(MIGRATIONS)


# ----------------------------------------------------------------------------- records


class ProfileState(StrEnum):
    #: Keys made and kept; ``POST /v1/accounts`` not yet confirmed.
    REGISTERING = "registering"
    #: A link request made; waiting for a primary device to approve it.
    LINKING = "linking"
    ACTIVE = "active"


class Direction(StrEnum):
    INCOMING = "in"
    OUTGOING = "out"


@dataclass(frozen=True, slots=True, eq=False)
class Profile:
    """This device: who it is, its keys and its state."""

    account: bytes
    state: ProfileState
    account_identity: AccountIdentity | None
    device: DeviceIdentity
    prekeys: PrekeyStock

    def __repr__(self) -> str:
        return f"Profile({self.device.address}, {self.state}, <keys redacted>)"


@dataclass(frozen=True, slots=True)
class Contact:
    """An account as this device trusts it: the pinned key and the last verified list."""

    account: bytes
    account_key: bytes
    signed_device_list: SignedDeviceList = field(repr=False)
    first_seen_ms: int
    log_index: int | None = None
    """Where this list was proven to be in the transparency log (None: not proven)."""

    @property
    def device_list(self) -> DeviceList:
        return self.signed_device_list.device_list

    @property
    def serial(self) -> int:
        return self.device_list.serial

    def entry(self, device: int) -> DeviceEntry | None:
        return self.device_list.device(device)

    def addresses(self) -> list[Address]:
        return [Address(self.account, d.device) for d in self.device_list.devices]


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """One row of ``messages`` (with its conversation's peer)."""

    conversation_id: bytes
    peer: bytes
    message_id: bytes
    sender: Address
    direction: Direction
    kind: int
    body: bytes = field(repr=False)
    text: str = field(repr=False)
    attachment: bytes | None = field(repr=False)
    sent_ms: int
    stored_ms: int
    server_id: int | None
    server_time_ms: int | None
    reporting_tag: bytes | None = field(repr=False)
    franking_key: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class MonitorState:
    """How far this device read and verified the log (``kt_monitor``)."""

    size: int
    frontier: tuple[bytes, ...] = field(repr=False)
    own_label: bytes | None = field(repr=False)
    checked_ms: int


@dataclass(frozen=True, slots=True)
class AlarmRecord:
    """One row of ``alarms``."""

    id: int
    kind: str
    entry_index: int | None
    detail: str
    ours: str | None = field(repr=False)
    theirs: str | None = field(repr=False)
    detected_ms: int
    acknowledged_ms: int | None


@dataclass(frozen=True, slots=True)
class NewAlarm:
    """An alarm to record; ``fingerprint`` makes the same finding count once."""

    kind: str
    entry_index: int | None
    detail: str
    ours: str | None = field(repr=False)
    theirs: str | None = field(repr=False)
    fingerprint: bytes


@dataclass(frozen=True, slots=True)
class PendingGossip:
    """A checkpoint a peer gossiped, not yet checked (``kt_pending_gossip``)."""

    origin: str
    size: int
    root_hash: bytes
    received_ms: int = 0


@dataclass(frozen=True, slots=True)
class StoredEpoch:
    """An escrow-epoch key proven to be in the log (``escrow_epochs``); times in Unix seconds."""

    epoch: int
    public_key: bytes
    transcript_hash: bytes
    not_before: int
    retain_until: int
    log_index: int


@dataclass(frozen=True, slots=True)
class TrackedWarrant:
    """One row of ``access_warrants``: a warrant seen in the log, still sealed or unsealed
    naming this account. ``commitment`` is its log entry's encoding, ``receipts`` the
    versioned per-custodian counts (:mod:`overt.client.notices` encodes both)."""

    warrant_id: bytes
    commitment_index: int
    commitment: bytes
    receipts: bytes
    unsealing_index: int | None = None
    opening: bytes | None = field(default=None, repr=False)
    found_ms: int | None = None
    shown_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Failure:
    """Mail that could not be shown, and why (a reason class, never content)."""

    server_id: int
    sender: Address
    server_time_ms: int
    reason: str
    recorded_ms: int


# ----------------------------------------------------------------------------- encodings


def encode_account_identity(ident: AccountIdentity) -> bytes:
    w = Writer().u8(ACCOUNT_IDENTITY_VERSION).vec(ident.account, 1, MAX_ACCOUNT_ID_LEN)
    return w.fixed(ident.key.export_secret(), 32).getvalue()


def decode_account_identity(data: bytes) -> AccountIdentity:
    r = Reader(data, "AccountIdentity")
    r.version(ACCOUNT_IDENTITY_VERSION)
    account = r.vec(1, "account", MAX_ACCOUNT_ID_LEN, min_len=1)
    key = Ed25519PrivateKey.from_secret_bytes(r.fixed(32, "key"))
    r.finish()
    return AccountIdentity(account, key)


# ----------------------------------------------------------------------------- the store

#: The columns ``messages`` and ``group_messages`` (:mod:`overt.client.group_store`) share, in
#: the order of the fields :class:`StoredMessage` and its group counterpart share.
_MESSAGE_FIELD_NAMES: Final = (
    "message_id", "sender_account", "sender_device", "direction", "kind", "body", "text",
    "attachment", "sent_ms", "stored_ms", "server_id", "server_time_ms", "reporting_tag",
    "franking_key",
)  # fmt: skip
_MESSAGE_FIELDS: Final = ", ".join(_MESSAGE_FIELD_NAMES)
_MESSAGE_PLACEHOLDERS: Final = ", ".join("?" for _ in _MESSAGE_FIELD_NAMES)

_MESSAGE_COLUMNS = f"m.conversation_id, c.peer, {_MESSAGE_FIELDS}"

_MessageFields = tuple[
    bytes, Address, Direction, int, bytes, str, bytes | None, int, int, int | None, int | None,
    bytes | None, bytes,
]  # fmt: skip
"""The shared fields of a stored message, from ``message_id`` to ``franking_key``."""


def _message_fields(row: Sequence[object]) -> _MessageFields:
    """The columns of ``_MESSAGE_FIELDS`` read back, typed."""
    mid, s_acc, s_dev, direction, kind, body, text, att, sent, stored, sid, stime, tag, fk = row
    return (
        _b(mid), Address(_b(s_acc), _i(s_dev)), Direction(str(direction)), _i(kind), _b(body),
        str(text), _ob(att), _i(sent), _i(stored), _oi(sid), _oi(stime), _ob(tag), _b(fk),
    )  # fmt: skip


def _message_values(m: StoredMessage | StoredGroupMessage) -> tuple[object, ...]:
    """The values of ``_MESSAGE_FIELDS`` for a message to store."""
    return (
        m.message_id, m.sender.account, m.sender.device, str(m.direction), m.kind, m.body,
        m.text, m.attachment, m.sent_ms, m.stored_ms, m.server_id, m.server_time_ms,
        m.reporting_tag, m.franking_key,
    )  # fmt: skip


def _message(row: tuple[object, ...]) -> StoredMessage:
    return StoredMessage(_b(row[0]), _b(row[1]), *_message_fields(row[2:]))


_T = TypeVar("_T")


def _checked(v: object, kind: type[_T]) -> _T:
    if not isinstance(v, kind):
        raise StoreError("the local database holds a value of the wrong type; it is damaged")
    return v


def _b(v: object) -> bytes:
    return _checked(v, bytes)


def _ob(v: object) -> bytes | None:
    return None if v is None else _b(v)


def _i(v: object) -> int:
    return _checked(v, int)


def _oi(v: object) -> int | None:
    return None if v is None else _i(v)


def _os(v: object) -> str | None:
    return None if v is None else _checked(v, str)


class Store:
    """The local state of one profile (see the module docstring)."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self._db = db
        self.path = path

    # -- lifecycle ------------------------------------------------------------------------

    @classmethod
    def open(cls, profile_dir: Path | str) -> Store:
        """Open (creating if needed) the profile in ``profile_dir`` and bring its schema up
        to date."""
        directory = Path(profile_dir)
        path = directory / DB_FILE_NAME
        with _guard("open the profile"):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not path.exists():
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
            db = sqlite3.connect(path, isolation_level=None)
        store = cls(db, path)
        try:
            with _guard("open the profile"):
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")
                db.execute("PRAGMA foreign_keys=ON")
                db.execute("PRAGMA busy_timeout=5000")
            store._migrate()
        except BaseException:
            db.close()
            raise
        return store

    def close(self) -> None:
        with _guard("close the profile"):
            self._db.close()

    def schema_version(self) -> int:
        with _guard("read the schema version"):
            return self._version()

    def _version(self) -> int:
        exists = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
        ).fetchone()
        if exists is None:
            return 0
        row = self._db.execute("SELECT max(version) FROM schema_version").fetchone()
        return 0 if row is None or row[0] is None else _i(row[0])

    def _migrate(self) -> None:
        with self._write("update the profile's schema") as db:
            db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY)")
            current = self._version()
            if current > SCHEMA_VERSION:
                raise ProfileTooNew(
                    f"the profile at {self.path.parent} was written by a newer Overt client "
                    f"(schema {current}, this one knows {SCHEMA_VERSION}); upgrade this client"
                )
            for version in range(current, SCHEMA_VERSION):
                for statement in MIGRATIONS[version]:
                    db.execute(statement)
                db.execute("INSERT INTO schema_version (version) VALUES (?)", (version + 1,))

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _all(self, operation: str, sql: str, args: Sequence[object] = ()) -> list[Any]:
        """The rows ``sql`` selects; errors mapped to :class:`StoreError` (``operation`` says
        what failed)."""
        with _guard(operation):
            return self._db.execute(sql, args).fetchall()

    def _one(self, operation: str, sql: str, args: Sequence[object] = ()) -> Any:
        """The first row ``sql`` selects, or None; errors mapped as by :meth:`_all`."""
        with _guard(operation):
            return self._db.execute(sql, args).fetchone()

    @contextmanager
    def _write(self, operation: str) -> Iterator[sqlite3.Connection]:
        """One write transaction, its errors mapped to :class:`StoreError` (``operation`` says
        what failed). :mod:`overt.client.group_store` writes its tables through it too."""
        with _guard(operation), self._tx() as db:
            yield db

    # -- profile --------------------------------------------------------------------------

    def profile(self) -> Profile | None:
        row = self._one(
            "read this device's keys",
            "SELECT account, state, account_identity, device_identity, prekeys "
            "FROM profile WHERE id = 1",
        )
        if row is None:
            return None
        account, state, account_identity, device, prekeys = row
        with _decoding(f"this device's keys in {self.path} do not decode"):
            return Profile(
                _b(account),
                ProfileState(str(state)),
                None if account_identity is None else decode_account_identity(_b(account_identity)),
                decode_identity(_b(device)),
                PrekeyStock.decode(_b(prekeys)),
            )

    def create_profile(self, profile: Profile, now_ms: int) -> None:
        """Store a new profile; :class:`StoreError` if the profile already holds one."""
        ai = profile.account_identity
        with self._write("store this device's keys") as db:
            db.execute(
                "INSERT INTO profile (id, account, state, account_identity, device_identity, "
                "prekeys, created_ms) VALUES (1, ?, ?, ?, ?, ?, ?)",
                (profile.account, str(profile.state),
                 None if ai is None else encode_account_identity(ai),
                 encode_identity(profile.device), profile.prekeys.encode(), now_ms),
            )  # fmt: skip

    def update_profile(
        self,
        *,
        state: ProfileState | None = None,
        device: DeviceIdentity | None = None,
        prekeys: PrekeyStock | None = None,
    ) -> None:
        """Change the given parts of the profile, in one transaction."""
        sets: list[str] = []
        args: list[object] = []
        if state is not None:
            sets.append("state = ?")
            args.append(str(state))
        if device is not None:
            sets.append("device_identity = ?")
            args.append(encode_identity(device))
        if prekeys is not None:
            sets.append("prekeys = ?")
            args.append(prekeys.encode())
        if not sets:
            return
        with self._write("update this device's keys") as db:
            db.execute(f"UPDATE profile SET {', '.join(sets)} WHERE id = 1", args)  # noqa: S608

    def delete_profile(self) -> None:
        """Forget this device's keys, sessions, contacts and what it knew of its own account
        (an abandoned registration). The pinned manifest and checkpoint stay: they are the
        server's, not the account's."""
        with self._write("reset the profile") as db:
            for table in ("profile", "sessions", "contacts", "kt_own_lists", "kt_monitor"):
                db.execute(f"DELETE FROM {table}")  # noqa: S608

    # -- sessions -------------------------------------------------------------------------

    def sessions(self, addresses: Iterable[Address]) -> dict[Address, SessionRecord]:
        out: dict[Address, SessionRecord] = {}
        with _guard("read sessions"):
            for addr in addresses:
                row = self._db.execute(
                    "SELECT record FROM sessions WHERE account = ? AND device = ?",
                    (addr.account, addr.device),
                ).fetchone()
                if row is not None:
                    out[addr] = self._record(row[0])
        return out

    def session(self, address: Address) -> SessionRecord | None:
        return self.sessions([address]).get(address)

    def session_addresses(self, account: bytes) -> list[Address]:
        rows = self._all(
            "read sessions",
            "SELECT device FROM sessions WHERE account = ? ORDER BY device",
            (account,),
        )
        return [Address(account, _i(r[0])) for r in rows]

    def _record(self, raw: object) -> SessionRecord:
        with _decoding(f"a session in {self.path} does not decode"):
            return SessionRecord.decode(_b(raw))

    def save_sessions(self, records: Mapping[Address, SessionRecord], now_ms: int) -> None:
        with self._write("store sessions") as db:
            for addr, rec in records.items():
                _put_session(db, addr, rec, now_ms)

    # -- contacts -------------------------------------------------------------------------

    def contact(self, account: bytes) -> Contact | None:
        row = self._one(
            "read a contact",
            "SELECT account_key, device_list, first_seen_ms, log_index FROM contacts "
            "WHERE account = ?",
            (account,),
        )
        if row is None:
            return None
        with _decoding(f"a contact in {self.path} does not decode"):
            signed = SignedDeviceList.decode(_b(row[1]))
        return Contact(account, _b(row[0]), signed, _i(row[2]), _oi(row[3]))

    def save_contact(
        self, contact: Contact, now_ms: int, drop_sessions: Iterable[Address] = ()
    ) -> None:
        """Store ``contact`` and delete the sessions of devices it no longer lists (or lists
        with other keys), in one transaction."""
        with self._write("store a contact") as db:
            db.execute(
                "INSERT INTO contacts (account, account_key, device_list, serial, "
                "first_seen_ms, updated_ms, log_index) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (account) DO UPDATE SET account_key = excluded.account_key, "
                "device_list = excluded.device_list, serial = excluded.serial, "
                "updated_ms = excluded.updated_ms, log_index = excluded.log_index",
                (contact.account, contact.account_key, contact.signed_device_list.encode(),
                 contact.serial, contact.first_seen_ms, now_ms, contact.log_index),
            )  # fmt: skip
            for addr in drop_sessions:
                db.execute(
                    "DELETE FROM sessions WHERE account = ? AND device = ?",
                    (addr.account, addr.device),
                )

    # -- key transparency -----------------------------------------------------------------

    def manifest(self) -> tuple[bytes, int] | None:
        """The pinned signed manifest and its log index, or None."""
        row = self._one(
            "read the pinned manifest", "SELECT manifest, log_index FROM kt_manifest WHERE id = 1"
        )
        return None if row is None else (_b(row[0]), _i(row[1]))

    def pin_manifest(self, manifest: bytes, log_index: int, now_ms: int) -> None:
        with self._write("pin the manifest") as db:
            _put_manifest(db, manifest, log_index, now_ms)

    def checkpoint(self) -> bytes | None:
        """The newest verified checkpoint (a signed note), or None."""
        row = self._one("read the newest checkpoint", "SELECT note FROM kt_checkpoint WHERE id = 1")
        return None if row is None else _b(row[0])

    def set_checkpoint(self, size: int, note: bytes, now_ms: int) -> None:
        """Record a newer verified checkpoint; an older one (smaller size) is ignored, so that
        concurrent tasks cannot move it backwards."""
        with self._write("store the newest checkpoint") as db:
            db.execute(
                "INSERT INTO kt_checkpoint (id, size, note, updated_ms) VALUES (1, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET size = excluded.size, note = excluded.note, "
                "updated_ms = excluded.updated_ms WHERE excluded.size >= kt_checkpoint.size",
                (size, note, now_ms),
            )

    def monitor(self) -> MonitorState | None:
        row = self._one(
            "read the log monitor's state",
            "SELECT size, frontier, own_label, checked_ms FROM kt_monitor WHERE id = 1",
        )
        if row is None:
            return None
        frontier = _b(row[1])
        if len(frontier) % 32:
            raise StoreError(f"the log monitor's state in {self.path} is damaged")
        hashes = tuple(frontier[i : i + 32] for i in range(0, len(frontier), 32))
        return MonitorState(_i(row[0]), hashes, _ob(row[2]), _i(row[3]))

    def save_monitor(
        self,
        state: MonitorState,
        *,
        alarms: Iterable[NewAlarm] = (),
        manifest: tuple[bytes, int] | None = None,
        now_ms: int,
    ) -> list[int]:
        """One monitoring step, all or nothing: the new state, the alarms it found and the
        manifest it adopted. Returns the ids of the alarms that were new."""
        with self._write("store the log monitor's state") as db:
            db.execute(
                "INSERT INTO kt_monitor (id, size, frontier, own_label, checked_ms) "
                "VALUES (1, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET size = excluded.size, "
                "frontier = excluded.frontier, own_label = excluded.own_label, "
                "checked_ms = excluded.checked_ms",
                (state.size, b"".join(state.frontier), state.own_label, state.checked_ms),
            )
            if manifest is not None:
                _put_manifest(db, manifest[0], manifest[1], now_ms)
            return [i for a in alarms if (i := _put_alarm(db, a, now_ms)) is not None]

    def own_lists(self) -> dict[bytes, tuple[int, bytes]]:
        """This account's known device lists: SHA-256 of each → (serial, account key)."""
        rows = self._all(
            "read this account's device lists",
            "SELECT list_hash, serial, account_key FROM kt_own_lists",
        )
        return {_b(h): (_i(serial), _b(key)) for h, serial, key in rows}

    def remember_own_list(
        self, list_hash: bytes, serial: int, account_key: bytes, now_ms: int
    ) -> None:
        with self._write("remember a device list of this account") as db:
            db.execute(
                "INSERT OR IGNORE INTO kt_own_lists (list_hash, serial, account_key, "
                "recorded_ms) VALUES (?, ?, ?, ?)",
                (list_hash, serial, account_key, now_ms),
            )

    def add_alarm(self, alarm: NewAlarm, now_ms: int) -> int | None:
        """Record ``alarm``; its id, or None if the same finding was already recorded."""
        with self._write("record an alarm") as db:
            return _put_alarm(db, alarm, now_ms)

    def alarms(self, *, include_acknowledged: bool = False) -> list[AlarmRecord]:
        where = "" if include_acknowledged else " WHERE acknowledged_ms IS NULL"
        rows = self._all(
            "read alarms",
            "SELECT id, kind, entry_index, detail, ours, theirs, detected_ms, "  # noqa: S608
            f"acknowledged_ms FROM alarms{where} ORDER BY id",
        )
        return [
            AlarmRecord(_i(i), str(k), _oi(e), str(d), _os(o), _os(t), _i(ms), _oi(ack))
            for i, k, e, d, o, t, ms, ack in rows
        ]

    def acknowledge_alarms(self, ids: Iterable[int] | None, now_ms: int) -> int:
        """Mark the given alarms (all, if None) acknowledged; how many were newly marked."""
        with self._write("acknowledge alarms") as db:
            if ids is None:
                return db.execute(
                    "UPDATE alarms SET acknowledged_ms = ? WHERE acknowledged_ms IS NULL",
                    (now_ms,),
                ).rowcount
            return sum(
                db.execute(
                    "UPDATE alarms SET acknowledged_ms = ? "
                    "WHERE id = ? AND acknowledged_ms IS NULL",
                    (now_ms, i),
                ).rowcount
                for i in ids
            )

    def add_pending_gossip(self, gossip: PendingGossip, bound: int) -> None:
        """Keep a peer's checkpoint to check later; at most ``bound`` are kept (oldest go)."""
        with self._write("keep a gossiped checkpoint") as db:
            db.execute(
                "INSERT OR IGNORE INTO kt_pending_gossip (origin, size, root_hash, "
                "received_ms) VALUES (?, ?, ?, ?)",
                (gossip.origin, gossip.size, gossip.root_hash, gossip.received_ms),
            )
            db.execute(
                "DELETE FROM kt_pending_gossip WHERE rowid IN (SELECT rowid FROM "
                "kt_pending_gossip ORDER BY received_ms DESC LIMIT -1 OFFSET ?)",
                (bound,),
            )

    def pending_gossip(self) -> list[PendingGossip]:
        rows = self._all(
            "read gossiped checkpoints",
            "SELECT origin, size, root_hash, received_ms FROM kt_pending_gossip "
            "ORDER BY received_ms",
        )
        return [PendingGossip(str(o), _i(n), _b(r), _i(ms)) for o, n, r, ms in rows]

    def drop_pending_gossip(self, gossip: PendingGossip) -> None:
        with self._write("drop a gossiped checkpoint") as db:
            db.execute(
                "DELETE FROM kt_pending_gossip WHERE origin = ? AND size = ? AND root_hash = ?",
                (gossip.origin, gossip.size, gossip.root_hash),
            )

    # -- lawful access (migration 3) ------------------------------------------------------

    def escrow_epochs(self) -> list[StoredEpoch]:
        """The verified escrow-epoch keys, oldest epoch first."""
        rows = self._all(
            "read the escrow epochs",
            "SELECT epoch, public_key, transcript_hash, not_before, retain_until, log_index "
            "FROM escrow_epochs ORDER BY epoch",
        )
        return [
            StoredEpoch(_i(e), _b(k), _b(h), _i(nb), _i(ru), _i(ix)) for e, k, h, nb, ru, ix in rows
        ]

    def add_escrow_epochs(self, epochs: Iterable[StoredEpoch], now_ms: int) -> None:
        """Keep verified epochs (an epoch already kept stays as it was)."""
        with self._write("store an escrow epoch") as db:
            for e in epochs:
                db.execute(
                    "INSERT OR IGNORE INTO escrow_epochs (epoch, public_key, transcript_hash, "
                    "not_before, retain_until, log_index, verified_ms) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (e.epoch, e.public_key, e.transcript_hash, e.not_before, e.retain_until,
                     e.log_index, now_ms),
                )  # fmt: skip

    def access_watch_size(self) -> int:
        """How far the log was read for warrants (0 if never)."""
        row = self._one("read the warrant watch", "SELECT size FROM access_watch WHERE id = 1")
        return 0 if row is None else _i(row[0])

    def access_warrants(self) -> list[TrackedWarrant]:
        """Every tracked warrant, in log order."""
        rows = self._all(
            "read the tracked warrants",
            "SELECT warrant_id, commitment_index, commitment, receipts, unsealing_index, "
            "opening, found_ms, shown_ms FROM access_warrants ORDER BY commitment_index",
        )
        return [
            TrackedWarrant(_b(w), _i(ci), _b(c), _b(r), _oi(ui), _ob(o), _oi(f), _oi(sh))
            for w, ci, c, r, ui, o, f, sh in rows
        ]

    def save_access_watch(
        self,
        size: int,
        *,
        put: Iterable[TrackedWarrant] = (),
        drop: Iterable[bytes] = (),
        alarms: Iterable[NewAlarm] = (),
        now_ms: int,
    ) -> list[int]:
        """One step of the warrant watch, all or nothing: how far the log was read, the
        warrants changed and dropped, and the alarms found (ids of the new ones returned)."""
        with self._write("store the warrant watch") as db:
            db.execute(
                "INSERT INTO access_watch (id, size) VALUES (1, ?) "
                "ON CONFLICT (id) DO UPDATE SET size = excluded.size",
                (size,),
            )
            for w in put:
                db.execute(
                    "INSERT OR REPLACE INTO access_warrants (warrant_id, commitment_index, "
                    "commitment, receipts, unsealing_index, opening, found_ms, shown_ms) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (w.warrant_id, w.commitment_index, w.commitment, w.receipts,
                     w.unsealing_index, w.opening, w.found_ms, w.shown_ms),
                )  # fmt: skip
            for warrant_id in drop:
                db.execute("DELETE FROM access_warrants WHERE warrant_id = ?", (warrant_id,))
            return [i for a in alarms if (i := _put_alarm(db, a, now_ms)) is not None]

    def mark_notices_shown(self, warrant_ids: Iterable[bytes], now_ms: int) -> int:
        """Record that these notices were shown to the person; how many were new."""
        with self._write("mark notices shown") as db:
            return sum(
                db.execute(
                    "UPDATE access_warrants SET shown_ms = ? WHERE warrant_id = ? "
                    "AND unsealing_index IS NOT NULL AND shown_ms IS NULL",
                    (now_ms, w),
                ).rowcount
                for w in warrant_ids
            )

    # -- messages -------------------------------------------------------------------------

    def add_message(self, message: StoredMessage) -> bool:
        """Store ``message``; False (and nothing changes) if its id is already stored."""
        with self._write("store a message") as db:
            return _put_message(db, message)

    def commit_received(
        self,
        *,
        mail_id: int,
        now_ms: int,
        session: tuple[Address, SessionRecord] | None = None,
        prekeys: PrekeyStock | None = None,
        message: StoredMessage | None = None,
        failure: Failure | None = None,
        extra: Callable[[sqlite3.Connection], object] | None = None,
    ) -> bool:
        """Everything one received mail changes, in one transaction: the new session record,
        the stock without consumed prekeys, the message (or the failure), what ``extra``
        writes (group input: :mod:`overt.client.group_store`) and the mail's id.
        Returns whether a new message row was stored."""
        with self._write("store a received message") as db:
            if extra is not None:
                extra(db)
            if session is not None:
                _put_session(db, session[0], session[1], now_ms)
            if prekeys is not None:
                db.execute("UPDATE profile SET prekeys = ? WHERE id = 1", (prekeys.encode(),))
            inserted = _put_message(db, message) if message is not None else False
            if failure is not None:
                _put_failure(db, failure)
            db.execute(
                "INSERT OR IGNORE INTO seen_mail (server_id, seen_ms) VALUES (?, ?)",
                (mail_id, now_ms),
            )
            return inserted

    def mail_seen(self, server_id: int) -> bool:
        row = self._one(
            "read delivered mail ids", "SELECT 1 FROM seen_mail WHERE server_id = ?", (server_id,)
        )
        return row is not None

    def forget_seen_mail(self, before_ms: int) -> int:
        with self._write("prune delivered mail ids") as db:
            return db.execute("DELETE FROM seen_mail WHERE seen_ms < ?", (before_ms,)).rowcount

    def history(self, conversation_id: bytes, limit: int) -> list[StoredMessage]:
        """The last ``limit`` messages of a conversation, oldest first."""
        rows = self._all(
            "read messages",
            f"SELECT {_MESSAGE_COLUMNS} FROM messages m "  # noqa: S608
            "JOIN conversations c USING (conversation_id) "
            "WHERE m.conversation_id = ? ORDER BY m.seq DESC LIMIT ?",
            (conversation_id, max(0, limit)),
        )
        return [_message(r) for r in reversed(rows)]

    def message(
        self, conversation_id: bytes, sender_account: bytes, message_id: bytes
    ) -> StoredMessage | None:
        """One stored message by its unique key, or None (abuse reports look messages up)."""
        row = self._one(
            "read messages",
            f"SELECT {_MESSAGE_COLUMNS} FROM messages m "  # noqa: S608
            "JOIN conversations c USING (conversation_id) "
            "WHERE m.conversation_id = ? AND m.sender_account = ? AND m.message_id = ?",
            (conversation_id, sender_account, message_id),
        )
        return None if row is None else _message(row)

    def conversations(self) -> list[tuple[bytes, bytes, int, StoredMessage | None]]:
        """``(conversation id, peer, last activity, last message)``, most recent first."""
        with _guard("read conversations"):
            rows = self._db.execute(
                "SELECT conversation_id, peer, last_ms FROM conversations "
                "ORDER BY last_ms DESC, conversation_id"
            ).fetchall()
            out = []
            for cid, peer, last_ms in rows:
                last = self.history(_b(cid), 1)
                out.append((_b(cid), _b(peer), _i(last_ms), last[0] if last else None))
        return out

    def message_count(self) -> int:
        row = self._one("read messages", "SELECT count(*) FROM messages")
        return 0 if row is None else _i(row[0])

    def failures(self, limit: int = 100) -> list[Failure]:
        rows = self._all(
            "read undecryptable mail",
            "SELECT server_id, sender_account, sender_device, server_time_ms, reason, "
            "recorded_ms FROM undecryptable ORDER BY seq DESC LIMIT ?",
            (max(0, limit),),
        )
        return [
            Failure(_i(s), Address(_b(a), _i(d)), _i(t), str(reason), _i(rec))
            for s, a, d, t, reason, rec in reversed(rows)
        ]


def _put_manifest(db: sqlite3.Connection, manifest: bytes, log_index: int, now_ms: int) -> None:
    db.execute(
        "INSERT INTO kt_manifest (id, manifest, log_index, pinned_ms) VALUES (1, ?, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET manifest = excluded.manifest, "
        "log_index = excluded.log_index, pinned_ms = excluded.pinned_ms",
        (manifest, log_index, now_ms),
    )


def _put_alarm(db: sqlite3.Connection, a: NewAlarm, now_ms: int) -> int | None:
    cur = db.execute(
        "INSERT OR IGNORE INTO alarms (kind, entry_index, detail, ours, theirs, fingerprint, "
        "detected_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (a.kind, a.entry_index, a.detail, a.ours, a.theirs, a.fingerprint, now_ms),
    )
    return cur.lastrowid if cur.rowcount == 1 else None


def _put_session(db: sqlite3.Connection, addr: Address, rec: SessionRecord, now_ms: int) -> None:
    db.execute(
        "INSERT INTO sessions (account, device, record, updated_ms) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (account, device) DO UPDATE SET record = excluded.record, "
        "updated_ms = excluded.updated_ms",
        (addr.account, addr.device, rec.encode(), now_ms),
    )


def _put_failure(db: sqlite3.Connection, f: Failure) -> None:
    db.execute(
        "INSERT INTO undecryptable (server_id, sender_account, sender_device, server_time_ms, "
        "reason, recorded_ms) VALUES (?, ?, ?, ?, ?, ?)",
        (f.server_id, f.sender.account, f.sender.device, f.server_time_ms, f.reason,
         f.recorded_ms),
    )  # fmt: skip


def _put_message(db: sqlite3.Connection, m: StoredMessage) -> bool:
    when = m.stored_ms
    db.execute(
        "INSERT INTO conversations (conversation_id, peer, created_ms, last_ms) "
        "VALUES (?, ?, ?, ?) ON CONFLICT (conversation_id) DO NOTHING",
        (m.conversation_id, m.peer, when, when),
    )
    cur = db.execute(
        f"INSERT OR IGNORE INTO messages (conversation_id, {_MESSAGE_FIELDS}) "  # noqa: S608
        f"VALUES (?, {_MESSAGE_PLACEHOLDERS})",
        (m.conversation_id, *_message_values(m)),
    )
    if cur.rowcount != 1:
        return False
    db.execute(
        "UPDATE conversations SET last_ms = max(last_ms, ?) WHERE conversation_id = ?",
        (when, m.conversation_id),
    )
    return True


@contextmanager
def _decoding(what: str) -> Iterator[None]:
    """Map a stored record that does not decode to :class:`StoreError` (``what`` says which
    and where): the profile is damaged."""
    try:
        yield
    except (DecodeError, ValueError) as exc:
        raise StoreError(f"{what}; the profile is damaged") from exc


@contextmanager
def _guard(operation: str) -> Iterator[None]:
    """Map ``sqlite3`` and file-system errors to :class:`StoreError` at this edge."""
    try:
        yield
    except sqlite3.Error as exc:
        kind = getattr(exc, "sqlite_errorname", type(exc).__name__)
        raise StoreError(
            f"could not {operation} in the local database ({kind}); check free disk space "
            "and that the profile directory is writable and not used by another program"
        ) from exc
    except OSError as exc:
        raise StoreError(
            f"could not {operation}: {exc.strerror or exc}; check the profile directory"
        ) from exc
