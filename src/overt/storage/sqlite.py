"""The SQLite backend, Overt's embedded default: one database file behind the six stores.

**Threading.** All five stores of one :class:`~overt.storage.interfaces.Storage` share one
connection that lives on one dedicated worker thread (a single-worker executor); every sqlite3
call, from opening the file to closing it, runs there and the event loop only awaits the
result. The choice over ``asyncio.to_thread`` with a connection per thread: SQLite admits one
writer at a time anyway, so one thread loses no write throughput, never contends for the lock
within a process, needs no ``check_same_thread=False``, and makes the order of operations in a
process the order of commits — which is what gives server message ids in commit order. Reads
wait behind writes; a pool of read-only connections can be added if profiles ever show it.
Several processes (or several ``Storage`` objects) may open the same file: every write runs in
``BEGIN IMMEDIATE``, so it takes the write lock before reading what it will change, and waits up
to ``busy_timeout_ms`` for it before failing with ``StorageUnavailable``.

**Durability.** The file is in WAL mode with ``synchronous=FULL``: when a write coroutine
returns, its transaction is in the fsynced WAL, so it survives the process being killed (and
power loss). A write whose awaiting task is cancelled still runs to its end on the worker
thread; it may or may not have committed, as with any lost reply.

**Schema.** :data:`MIGRATIONS` (from ``_sqlite_schema.py``, where the schema is described) is an
append-only list of SQL scripts; script ``i`` moves the schema from version ``i`` to ``i + 1``.
:func:`apply_migrations` runs when a file is opened: in one ``BEGIN IMMEDIATE`` transaction it
creates the ``schema_version`` table if needed, reads the highest version recorded there,
applies every later script in order and records each version. If anything fails, nothing is
applied. A file whose version is newer than this build knows is refused.

**Errors.** Every ``sqlite3.Error`` is mapped where it happens, with ``raise ... from``: busy,
locked, I/O, disk-full, read-only and cannot-open errors to ``StorageUnavailable`` (503), the
rest to ``StorageError`` (500); unique-key violations that the contract names become
``AlreadyExists``.

This module stores opaque bytes. It never imports the protocol, the server or the client, and
never reads a clock or draws randomness: times and ids come from its callers.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Final, TypeVar

from overt.errors import LimitExceeded
from overt.storage import _checks
from overt.storage._sqlite_schema import MIGRATIONS, SCHEMA_VERSION_TABLE
from overt.storage.errors import (
    AlreadyExists,
    InvalidArgument,
    NotFound,
    StaleSerial,
    StorageConflict,
    StorageError,
    StorageUnavailable,
)
from overt.storage.interfaces import (
    AccountRecord,
    DeviceAuth,
    KtRecord,
    LogLeaf,
    LogNode,
    Mail,
    NewMail,
    OneTimeKind,
    PrekeyRecord,
    ReportingTagger,
    Storage,
    StoredCheckpoint,
    check_log_append,
    check_log_checkpoint,
    check_log_index,
    check_log_keys,
    check_log_position,
    check_log_range,
)
from overt.storage.limits import StorageLimits

__all__ = [
    "BUSY_TIMEOUT_MS",
    "MIGRATIONS",
    "SQLITE_MIN_VERSION",
    "apply_migrations",
    "open_sqlite",
]

BUSY_TIMEOUT_MS: Final = 5000
"""How long a write waits for another connection's write lock before ``StorageUnavailable``."""

SQLITE_MIN_VERSION: Final = (3, 37, 0)
"""STRICT tables need 3.37; ``RETURNING`` needs 3.35."""

_T = TypeVar("_T")
_Job = Callable[[sqlite3.Connection], _T]

_UNAVAILABLE: Final = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_PROTOCOL,
        sqlite3.SQLITE_INTERRUPT,
    }
)

_SLOT_SIGNED: Final = "signed"
_SLOT_LAST_RESORT: Final = "last_resort_kem"


def _mapped(error: sqlite3.Error, what: str) -> StorageError:
    """The Overt error for a sqlite3 error raised during ``what``; raise it ``from error``."""
    code = getattr(error, "sqlite_errorcode", None)
    name = getattr(error, "sqlite_errorname", None) or type(error).__name__
    if isinstance(code, int) and code & 0xFF in _UNAVAILABLE:
        return StorageUnavailable(f"{what}: SQLite {name} ({error}); retry later")
    return StorageError(f"{what}: SQLite {name} ({error})")


def _is_unique_violation(error: sqlite3.IntegrityError) -> bool:
    return getattr(error, "sqlite_errorcode", None) in {
        sqlite3.SQLITE_CONSTRAINT_UNIQUE,
        sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY,
    }


def _statements(script: str) -> list[str]:
    """Split a script into single statements (``sqlite3.complete_statement`` knows about
    strings, comments and trigger bodies, so a ``;`` inside them does not split)."""
    statements: list[str] = []
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \t\r\n;"):
                statements.append(pending.strip())
            pending = ""
    if pending.strip(" \t\r\n;"):
        raise StorageError("a migration script ends with an incomplete statement")
    return statements


def apply_migrations(conn: sqlite3.Connection, migrations: Sequence[str] = MIGRATIONS) -> int:
    """Bring the database on ``conn`` to version ``len(migrations)``; return that version.

    All pending scripts run in one ``BEGIN IMMEDIATE`` transaction; on any failure nothing is
    applied and ``StorageError`` (or ``StorageUnavailable``) is raised. A database already at a
    higher version than ``len(migrations)`` is refused.
    """
    target = len(migrations)
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(SCHEMA_VERSION_TABLE):
                conn.execute(statement)
            (current,) = conn.execute(
                "SELECT coalesce(max(version), 0) FROM schema_version"
            ).fetchone()
            if current > target:
                raise StorageError(
                    f"the database is at schema version {current}, newer than this build's "
                    f"{target}; upgrade Overt or open another file"
                )
            for version in range(current + 1, target + 1):
                for statement in _statements(migrations[version - 1]):
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    except sqlite3.Error as e:
        raise _mapped(e, "schema migration") from e
    return target


class _Database:
    """One connection on one worker thread; runs jobs as read or write transactions."""

    def __init__(self, path: str, busy_timeout_ms: int) -> None:
        self._path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="overt-sqlite")
        self._conn: sqlite3.Connection | None = None
        self._closed = False

    async def _submit(self, job: Callable[[], _T]) -> _T:
        if self._closed:
            raise StorageUnavailable("storage is closed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, job)

    async def open(self) -> None:
        try:
            await self._submit(self._open)
        except BaseException:
            self._closed = True
            self._executor.shutdown(wait=False)
            raise

    def _open(self) -> None:
        if sqlite3.sqlite_version_info < SQLITE_MIN_VERSION:
            raise StorageError(
                f"SQLite {sqlite3.sqlite_version} is too old; Overt needs "
                f"{'.'.join(map(str, SQLITE_MIN_VERSION))} or later"
            )
        try:
            conn = sqlite3.connect(
                self._path, timeout=self._busy_timeout_ms / 1000, isolation_level=None
            )
        except sqlite3.Error as e:
            raise _mapped(e, "open") from e
        try:
            try:
                (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
                conn.execute("PRAGMA synchronous = FULL")
                conn.execute("PRAGMA foreign_keys = ON")
            except sqlite3.Error as e:
                raise _mapped(e, "open") from e
            if str(mode).lower() != "wal":
                raise StorageError(f"the database could not be put in WAL mode (got {mode})")
            apply_migrations(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._close)
        finally:
            self._executor.shutdown(wait=False)

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except sqlite3.Error as e:
                raise _mapped(e, "close") from e

    async def read(self, what: str, job: _Job[_T]) -> _T:
        """Run ``job`` in a deferred (read) transaction on the worker thread."""
        return await self._submit(lambda: self._transaction(what, "BEGIN", job))

    async def write(self, what: str, job: _Job[_T]) -> _T:
        """Run ``job`` in a ``BEGIN IMMEDIATE`` transaction; commit, or roll back on any error."""
        return await self._submit(lambda: self._transaction(what, "BEGIN IMMEDIATE", job))

    def _transaction(self, what: str, begin: str, job: _Job[_T]) -> _T:
        conn = self._conn
        if conn is None:
            raise StorageUnavailable("storage is closed")
        try:
            conn.execute(begin)
            try:
                result = job(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as e:
            raise _mapped(e, what) from e
        return result


# ----------------------------------------------------------------------------- accounts


class SqliteAccountStore:
    """:class:`~overt.storage.interfaces.AccountStore` on tables ``account`` and ``device``."""

    def __init__(self, db: _Database) -> None:
        self._db = db

    async def create(self, account: AccountRecord) -> None:
        record = _checks.account(account)

        def job(conn: sqlite3.Connection) -> None:
            if conn.execute(
                "SELECT 1 FROM account WHERE account_id = ?", (record.account_id,)
            ).fetchone():
                raise AlreadyExists("an account with this id exists")
            conn.execute(
                "INSERT INTO account (account_id, identity_key, device_list, serial) "
                "VALUES (?, ?, ?, ?)",
                (record.account_id, record.identity_key, record.device_list, record.serial),
            )
            _insert_devices(conn, record.account_id, record.devices)

        await self._db.write("account create", job)

    async def get(self, account_id: bytes) -> AccountRecord | None:
        _checks.account_id(account_id)

        def job(conn: sqlite3.Connection) -> AccountRecord | None:
            row = conn.execute(
                "SELECT identity_key, device_list, serial FROM account WHERE account_id = ?",
                (account_id,),
            ).fetchone()
            if row is None:
                return None
            devices = conn.execute(
                "SELECT device_id, auth_key FROM device WHERE account_id = ? ORDER BY device_id",
                (account_id,),
            ).fetchall()
            return AccountRecord(
                account_id,
                bytes(row[0]),
                bytes(row[1]),
                int(row[2]),
                tuple(DeviceAuth(int(d), bytes(k)) for d, k in devices),
            )

        return await self._db.read("account get", job)

    async def replace_device_list(
        self,
        account_id: bytes,
        *,
        expected_serial: int,
        serial: int,
        device_list: bytes,
        devices: Sequence[DeviceAuth],
    ) -> None:
        _checks.account_id(account_id)
        _checks.serial(expected_serial)
        _checks.serial(serial)
        _checks.device_list(device_list)
        ordered = _checks.devices(devices)

        def job(conn: sqlite3.Connection) -> None:
            row = conn.execute(
                "SELECT serial FROM account WHERE account_id = ?", (account_id,)
            ).fetchone()
            if row is None:
                raise NotFound("no account with this id")
            if row[0] != expected_serial or serial <= expected_serial:
                raise StaleSerial("the device list changed since it was read, or the serial is old")
            conn.execute(
                "UPDATE account SET device_list = ?, serial = ? WHERE account_id = ?",
                (device_list, serial, account_id),
            )
            conn.execute("DELETE FROM device WHERE account_id = ?", (account_id,))
            _insert_devices(conn, account_id, ordered)

        await self._db.write("device list replace", job)

    async def device_auth_key(self, account_id: bytes, device: int) -> bytes | None:
        _checks.device(account_id, device)

        def job(conn: sqlite3.Connection) -> bytes | None:
            row = conn.execute(
                "SELECT auth_key FROM device WHERE account_id = ? AND device_id = ?",
                (account_id, device),
            ).fetchone()
            return None if row is None else bytes(row[0])

        return await self._db.read("device auth key", job)

    async def list_devices(self, account_id: bytes) -> tuple[int, ...] | None:
        _checks.account_id(account_id)

        def job(conn: sqlite3.Connection) -> tuple[int, ...] | None:
            if not conn.execute(
                "SELECT 1 FROM account WHERE account_id = ?", (account_id,)
            ).fetchone():
                return None
            rows = conn.execute(
                "SELECT device_id FROM device WHERE account_id = ? ORDER BY device_id",
                (account_id,),
            ).fetchall()
            return tuple(int(r[0]) for r in rows)

        return await self._db.read("device list", job)


def _insert_devices(
    conn: sqlite3.Connection, account_id: bytes, devices: Sequence[DeviceAuth]
) -> None:
    conn.executemany(
        "INSERT INTO device (account_id, device_id, auth_key) VALUES (?, ?, ?)",
        [(account_id, d.device, d.signing_key) for d in devices],
    )


# ----------------------------------------------------------------------------- prekeys


class SqlitePrekeyStore:
    """:class:`~overt.storage.interfaces.PrekeyStore` on ``device_prekey`` and
    ``one_time_prekey``."""

    def __init__(self, db: _Database, limits: StorageLimits) -> None:
        self._db = db
        self._limits = limits

    async def _set(self, slot: str, account_id: bytes, device: int, prekey: PrekeyRecord) -> None:
        _checks.device(account_id, device)
        _checks.prekey(prekey)

        def job(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO device_prekey (account_id, device_id, slot, key_id, record) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (account_id, device_id, slot) "
                "DO UPDATE SET key_id = excluded.key_id, record = excluded.record",
                (account_id, device, slot, prekey.id, prekey.data),
            )

        await self._db.write(f"{slot} prekey set", job)

    async def _get(self, slot: str, account_id: bytes, device: int) -> PrekeyRecord | None:
        _checks.device(account_id, device)

        def job(conn: sqlite3.Connection) -> PrekeyRecord | None:
            row = conn.execute(
                "SELECT key_id, record FROM device_prekey "
                "WHERE account_id = ? AND device_id = ? AND slot = ?",
                (account_id, device, slot),
            ).fetchone()
            return None if row is None else PrekeyRecord(int(row[0]), bytes(row[1]))

        return await self._db.read(f"{slot} prekey get", job)

    async def set_signed_prekey(self, account_id: bytes, device: int, prekey: PrekeyRecord) -> None:
        await self._set(_SLOT_SIGNED, account_id, device, prekey)

    async def get_signed_prekey(self, account_id: bytes, device: int) -> PrekeyRecord | None:
        return await self._get(_SLOT_SIGNED, account_id, device)

    async def set_last_resort_kem(
        self, account_id: bytes, device: int, prekey: PrekeyRecord
    ) -> None:
        await self._set(_SLOT_LAST_RESORT, account_id, device, prekey)

    async def get_last_resort_kem(self, account_id: bytes, device: int) -> PrekeyRecord | None:
        return await self._get(_SLOT_LAST_RESORT, account_id, device)

    async def add_one_time(
        self, account_id: bytes, device: int, kind: OneTimeKind, prekeys: Sequence[PrekeyRecord]
    ) -> None:
        _checks.device(account_id, device)
        _checks.kind(kind)
        _checks.one_time_batch(prekeys)
        rows = [(account_id, device, kind.value, p.id, p.data) for p in prekeys]
        limit = self._limits.one_time_prekeys

        def job(conn: sqlite3.Connection) -> None:
            if _one_time_count(conn, account_id, device, kind) + len(rows) > limit:
                raise LimitExceeded("too many one-time prekeys for this device")
            try:
                conn.executemany(
                    "INSERT INTO one_time_prekey (account_id, device_id, kind, key_id, record) "
                    "VALUES (?, ?, ?, ?, ?)",
                    rows,
                )
            except sqlite3.IntegrityError as e:
                if _is_unique_violation(e):
                    raise AlreadyExists("a one-time prekey id is already stored") from e
                raise

        await self._db.write("one-time prekey add", job)

    async def take_one_time(
        self, account_id: bytes, device: int, kind: OneTimeKind
    ) -> PrekeyRecord | None:
        _checks.device(account_id, device)
        _checks.kind(kind)
        key = (account_id, device, kind.value)

        def job(conn: sqlite3.Connection) -> PrekeyRecord | None:
            rows = conn.execute(
                "DELETE FROM one_time_prekey "
                "WHERE account_id = ? AND device_id = ? AND kind = ? AND key_id = ("
                "  SELECT min(key_id) FROM one_time_prekey "
                "  WHERE account_id = ? AND device_id = ? AND kind = ?"
                ") RETURNING key_id, record",
                key + key,
            ).fetchall()
            return None if not rows else PrekeyRecord(int(rows[0][0]), bytes(rows[0][1]))

        return await self._db.write("one-time prekey take", job)

    async def count_one_time(self, account_id: bytes, device: int, kind: OneTimeKind) -> int:
        _checks.device(account_id, device)
        _checks.kind(kind)

        return await self._db.read(
            "one-time prekey count", lambda c: _one_time_count(c, account_id, device, kind)
        )


def _one_time_count(
    conn: sqlite3.Connection, account_id: bytes, device: int, kind: OneTimeKind
) -> int:
    (n,) = conn.execute(
        "SELECT count(*) FROM one_time_prekey WHERE account_id = ? AND device_id = ? AND kind = ?",
        (account_id, device, kind.value),
    ).fetchone()
    return int(n)


# ----------------------------------------------------------------------------- mailboxes


class SqliteMailboxStore:
    """:class:`~overt.storage.interfaces.MailboxStore` on ``mail``, ``mailbox`` (depths) and
    the ``mail`` counter."""

    def __init__(self, db: _Database, limits: StorageLimits) -> None:
        self._db = db
        self._limits = limits

    async def enqueue(
        self, batch: Sequence[NewMail], server_time: int, tag: ReportingTagger
    ) -> tuple[int, ...]:
        _checks.mail_batch(batch, server_time)
        if not batch:
            return ()
        items = tuple(batch)
        arriving = Counter((m.recipient_account, m.recipient_device) for m in items)
        depth_max = self._limits.mailbox_depth

        def job(conn: sqlite3.Connection) -> tuple[int, ...]:
            for (account_id, device), n in arriving.items():
                if _depth(conn, account_id, device) + n > depth_max:
                    raise LimitExceeded("a recipient device's mailbox is full")
            ((last,),) = conn.execute(
                "UPDATE counter SET value = value + ? WHERE name = 'mail' RETURNING value",
                (len(items),),
            ).fetchall()
            first = int(last) - len(items) + 1
            rows = []
            for server_id, m in enumerate(items, start=first):
                reporting_tag = tag(server_id, m)
                _checks.reporting_tag(reporting_tag)
                rows.append(
                    (
                        server_id,
                        m.recipient_account,
                        m.recipient_device,
                        m.sender_account,
                        m.sender_device,
                        server_time,
                        m.envelope,
                        reporting_tag,
                    )
                )
            conn.executemany("INSERT INTO mail VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
            return tuple(range(first, first + len(items)))

        return await self._db.write("mailbox enqueue", job)

    async def fetch(
        self, account_id: bytes, device: int, after_id: int, limit: int
    ) -> tuple[Mail, ...]:
        _checks.device(account_id, device)
        _checks.fetch(after_id, limit)

        def job(conn: sqlite3.Connection) -> tuple[Mail, ...]:
            rows = conn.execute(
                "SELECT id, sender_account, sender_device, server_time, envelope, reporting_tag "
                "FROM mail WHERE recipient_account = ? AND recipient_device = ? AND id > ? "
                "ORDER BY id LIMIT ?",
                (account_id, device, after_id, limit),
            ).fetchall()
            return tuple(
                Mail(
                    int(r[0]),
                    account_id,
                    device,
                    bytes(r[1]),
                    int(r[2]),
                    int(r[3]),
                    bytes(r[4]),
                    bytes(r[5]),
                )
                for r in rows
            )

        return await self._db.read("mailbox fetch", job)

    async def ack(self, account_id: bytes, device: int, ids: Collection[int]) -> int:
        _checks.device(account_id, device)
        wanted = _checks.ack_ids(ids)
        if not wanted:
            return 0

        def job(conn: sqlite3.Connection) -> int:
            cursor = conn.executemany(
                "DELETE FROM mail WHERE id = ? AND recipient_account = ? AND recipient_device = ?",
                [(i, account_id, device) for i in sorted(wanted)],
            )
            return cursor.rowcount

        return await self._db.write("mailbox ack", job)

    async def depth(self, account_id: bytes, device: int) -> int:
        _checks.device(account_id, device)

        return await self._db.read("mailbox depth", lambda c: _depth(c, account_id, device))


def _depth(conn: sqlite3.Connection, account_id: bytes, device: int) -> int:
    row = conn.execute(
        "SELECT depth FROM mailbox WHERE recipient_account = ? AND recipient_device = ?",
        (account_id, device),
    ).fetchone()
    return 0 if row is None else int(row[0])


# ----------------------------------------------------------------------------- blobs


class SqliteBlobStore:
    """:class:`~overt.storage.interfaces.BlobStore` on table ``attachment``."""

    def __init__(self, db: _Database, limits: StorageLimits) -> None:
        self._db = db
        self._limits = limits

    async def put(self, blob_id: bytes, data: bytes) -> None:
        _checks.blob(blob_id, data, self._limits.blob_size)

        def job(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(
                    "INSERT INTO attachment (blob_id, data) VALUES (?, ?)", (blob_id, data)
                )
            except sqlite3.IntegrityError as e:
                if _is_unique_violation(e):
                    raise AlreadyExists("a blob with this id exists") from e
                raise

        await self._db.write("blob put", job)

    async def get(self, blob_id: bytes) -> bytes | None:
        _checks.blob(blob_id)

        def job(conn: sqlite3.Connection) -> bytes | None:
            row = conn.execute(
                "SELECT data FROM attachment WHERE blob_id = ?", (blob_id,)
            ).fetchone()
            return None if row is None else bytes(row[0])

        return await self._db.read("blob get", job)

    async def delete(self, blob_id: bytes) -> bool:
        _checks.blob(blob_id)

        def job(conn: sqlite3.Connection) -> bool:
            return conn.execute("DELETE FROM attachment WHERE blob_id = ?", (blob_id,)).rowcount > 0

        return await self._db.write("blob delete", job)


# ----------------------------------------------------------------------------- log


class SqliteLogStore:
    """:class:`~overt.storage.interfaces.LogStore` on ``log_leaf``, ``log_node`` and
    ``log_checkpoint``. An append is one ``BEGIN IMMEDIATE`` transaction with two
    ``executemany`` calls, so its cost is one commit (one WAL fsync) plus the rows."""

    def __init__(self, db: _Database) -> None:
        self._db = db

    async def append(
        self, expected_size: int, leaves: Sequence[LogLeaf], nodes: Collection[LogNode]
    ) -> int:
        new_size = check_log_append(expected_size, leaves, nodes)
        leaf_rows = [(expected_size + i, leaf.hash, leaf.data) for i, leaf in enumerate(leaves)]
        node_rows = [(node.level, node.index, node.hash) for node in nodes]

        def job(conn: sqlite3.Connection) -> int:
            if _log_size(conn) != expected_size:
                raise StorageConflict("the log grew since its size was read")
            conn.executemany("INSERT INTO log_leaf (idx, hash, data) VALUES (?, ?, ?)", leaf_rows)
            conn.executemany("INSERT INTO log_node (level, idx, hash) VALUES (?, ?, ?)", node_rows)
            return new_size

        return await self._db.write("log append", job)

    async def size(self) -> int:
        return await self._db.read("log size", _log_size)

    async def hash_at(self, level: int, index: int) -> bytes | None:
        check_log_position(level, index)
        return await self._db.read("log hash", lambda c: _log_hash(c, level, index))

    async def hashes(self, keys: Sequence[tuple[int, int]]) -> tuple[bytes | None, ...]:
        check_log_keys(keys)
        wanted = tuple(keys)

        def job(conn: sqlite3.Connection) -> tuple[bytes | None, ...]:
            found: dict[int, bytes] = {}
            for start in range(0, len(wanted), _UNION_TERMS_MAX):
                chunk = wanted[start : start + _UNION_TERMS_MAX]
                sql, args = _hashes_query(start, chunk)
                found.update((int(pos), bytes(h)) for pos, h in conn.execute(sql, args))
            return tuple(found.get(pos) for pos in range(len(wanted)))

        return await self._db.read("log hashes", job)

    async def leaf(self, index: int) -> bytes | None:
        check_log_index(index)

        def job(conn: sqlite3.Connection) -> bytes | None:
            row = conn.execute("SELECT data FROM log_leaf WHERE idx = ?", (index,)).fetchone()
            return None if row is None else bytes(row[0])

        return await self._db.read("log leaf", job)

    async def leaves(self, start: int, end: int) -> tuple[bytes, ...]:
        check_log_range(start, end)

        def job(conn: sqlite3.Connection) -> tuple[bytes, ...]:
            rows = conn.execute(
                "SELECT data FROM log_leaf WHERE idx >= ? AND idx < ? ORDER BY idx", (start, end)
            ).fetchall()
            return tuple(bytes(r[0]) for r in rows)

        return await self._db.read("log leaves", job)

    async def set_checkpoint(self, size: int, checkpoint: bytes) -> None:
        check_log_checkpoint(size, checkpoint)

        def job(conn: sqlite3.Connection) -> None:
            if size > _log_size(conn):
                raise InvalidArgument("a checkpoint cannot cover leaves the log does not hold")
            (latest,) = conn.execute("SELECT max(size) FROM log_checkpoint").fetchone()
            if latest is not None and size < latest:
                stored = conn.execute(
                    "SELECT 1 FROM log_checkpoint WHERE size = ?", (size,)
                ).fetchone()
                if stored is None:
                    raise StorageConflict("a checkpoint of a larger tree is stored already")
            conn.execute(
                "INSERT INTO log_checkpoint (size, checkpoint) VALUES (?, ?) "
                "ON CONFLICT (size) DO UPDATE SET checkpoint = excluded.checkpoint",
                (size, checkpoint),
            )

        await self._db.write("log checkpoint set", job)

    async def get_checkpoint(self) -> StoredCheckpoint | None:
        def job(conn: sqlite3.Connection) -> StoredCheckpoint | None:
            row = conn.execute(
                "SELECT size, checkpoint FROM log_checkpoint ORDER BY size DESC LIMIT 1"
            ).fetchone()
            return None if row is None else StoredCheckpoint(int(row[0]), bytes(row[1]))

        return await self._db.read("log checkpoint get", job)

    async def checkpoint_at(self, size: int) -> bytes | None:
        check_log_checkpoint(size)

        def job(conn: sqlite3.Connection) -> bytes | None:
            row = conn.execute(
                "SELECT checkpoint FROM log_checkpoint WHERE size = ?", (size,)
            ).fetchone()
            return None if row is None else bytes(row[0])

        return await self._db.read("log checkpoint at", job)


def _log_size(conn: sqlite3.Connection) -> int:
    (last,) = conn.execute("SELECT max(idx) FROM log_leaf").fetchone()
    return 0 if last is None else int(last) + 1


_UNION_TERMS_MAX: Final = 250
"""Lookups per ``UNION ALL`` statement (SQLite allows 500 compound terms by default)."""


def _hashes_query(first: int, keys: Sequence[tuple[int, int]]) -> tuple[str, list[int]]:
    """One statement of primary-key lookups, each tagged with its position in the request:
    a proof's ~40 lookups cost one statement instead of ~40 round trips through sqlite3."""
    terms: list[str] = []
    args: list[int] = []
    for pos, (level, index) in enumerate(keys, start=first):
        if level == 0:
            terms.append("SELECT ?, hash FROM log_leaf WHERE idx = ?")
            args += (pos, index)
        else:
            terms.append("SELECT ?, hash FROM log_node WHERE level = ? AND idx = ?")
            args += (pos, level, index)
    return " UNION ALL ".join(terms), args


def _log_hash(conn: sqlite3.Connection, level: int, index: int) -> bytes | None:
    if level == 0:
        row = conn.execute("SELECT hash FROM log_leaf WHERE idx = ?", (index,)).fetchone()
    else:
        row = conn.execute(
            "SELECT hash FROM log_node WHERE level = ? AND idx = ?", (level, index)
        ).fetchone()
    return None if row is None else bytes(row[0])


# ----------------------------------------------------------------------------- key directory


class SqliteKtStore:
    """:class:`~overt.storage.interfaces.KtStore` on table ``kt_record``."""

    def __init__(self, db: _Database) -> None:
        self._db = db

    async def add(self, account_id: bytes, record: KtRecord) -> None:
        _checks.kt_record(account_id, record)
        row = (account_id, record.serial, record.index, record.opening, record.device_list)

        def job(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(
                    "INSERT INTO kt_record (account_id, serial, idx, opening, device_list) "
                    "VALUES (?, ?, ?, ?, ?)",
                    row,
                )
            except sqlite3.IntegrityError as e:
                if _is_unique_violation(e):
                    raise AlreadyExists("a key-directory record of this serial exists") from e
                raise

        await self._db.write("kt add", job)

    async def latest(self, account_id: bytes) -> KtRecord | None:
        _checks.account_id(account_id)

        def job(conn: sqlite3.Connection) -> KtRecord | None:
            row = conn.execute(
                "SELECT serial, idx, opening, device_list FROM kt_record "
                "WHERE account_id = ? ORDER BY serial DESC LIMIT 1",
                (account_id,),
            ).fetchone()
            if row is None:
                return None
            return KtRecord(int(row[0]), int(row[1]), bytes(row[2]), bytes(row[3]))

        return await self._db.read("kt latest", job)


# ----------------------------------------------------------------------------- factory


async def open_sqlite(
    path: str | os.PathLike[str],
    *,
    limits: StorageLimits | None = None,
    busy_timeout_ms: int = BUSY_TIMEOUT_MS,
) -> Storage:
    """Open (creating and migrating if needed) the database file at ``path``.

    Raises ``StorageError`` if the file is not a usable Overt database (corrupt, newer schema,
    SQLite too old) and ``StorageUnavailable`` if it cannot be opened or locked in time.
    """
    limits = StorageLimits() if limits is None else limits
    db = _Database(os.fspath(path), busy_timeout_ms)
    await db.open()
    return Storage(
        accounts=SqliteAccountStore(db),
        prekeys=SqlitePrekeyStore(db, limits),
        mailboxes=SqliteMailboxStore(db, limits),
        blobs=SqliteBlobStore(db, limits),
        log=SqliteLogStore(db),
        _close=db.close,
        kt=SqliteKtStore(db),
    )
