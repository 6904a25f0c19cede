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

**Group commit.** Write jobs are not each a transaction. A write queues its job and, if none is
queued yet, one *drain* on the worker thread; the drain takes every write queued at that moment
(up to :data:`GROUP_COMMIT_MAX_JOBS` per transaction, in arrival order) and runs them in one
``BEGIN IMMEDIATE`` … ``COMMIT``, each job between ``SAVEPOINT`` and ``RELEASE``. A job that
raises is undone alone with ``ROLLBACK TO`` (its caller gets its exception, sqlite3 errors
mapped as below) and the others commit; each job sees the effects of the jobs before it, so
bounds checked inside a job (mailbox depth, prekey pool) hold across the group, and ids taken
inside it still increase in commit order. If the transaction as a whole fails (``BEGIN`` or
``COMMIT``, or an error after which SQLite abandoned the transaction) every job of the group
fails with it and nothing of the group is stored. Writes arriving while a group commits queue
the next drain, behind any reads submitted before them. Under load this turns one fsync per
write into one per group, and the worker hands results back to the event loop once per group.

**Durability.** The file is in WAL mode with ``synchronous=FULL``: when a write coroutine
returns, the group commit that included it is in the fsynced WAL, so it survives the process
being killed (and power loss); no write returns before its group has committed. A write whose
awaiting task is cancelled still runs to its end on the worker thread; it may or may not have
committed, as with any lost reply.

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
import contextlib
import os
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, TypeVar

from overt.errors import LimitExceeded
from overt.storage import _checks
from overt.storage._groups_sqlite import SqliteGroupStore
from overt.storage._matching_sqlite import SqliteMatchingStore
from overt.storage._moderation_sqlite import (
    SqliteModeratorStore,
    SqliteReportStore,
    SqliteStandingStore,
)
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
    EpochRecord,
    Intercept,
    KtRecord,
    LogLeaf,
    LogNode,
    Mail,
    MailKind,
    NewIntercept,
    NewMail,
    OneTimeKind,
    PrekeyRecord,
    ReportingTagger,
    Storage,
    StoredCheckpoint,
    WarrantRecord,
    check_log_append,
    check_log_checkpoint,
    check_log_index,
    check_log_keys,
    check_log_position,
    check_log_range,
)
from overt.storage.limits import LIVE_WARRANTS_MAX, StorageLimits

__all__ = [
    "BUSY_TIMEOUT_MS",
    "GROUP_COMMIT_MAX_JOBS",
    "MIGRATIONS",
    "SQLITE_MIN_VERSION",
    "apply_migrations",
    "open_sqlite",
]

BUSY_TIMEOUT_MS: Final = 5000
"""How long a write waits for another connection's write lock before ``StorageUnavailable``."""

GROUP_COMMIT_MAX_JOBS: Final = 256
"""Write jobs committed together in one transaction at most; more wait for the next one."""

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


class _Write:
    """One write job waiting for the next group commit, and where its outcome goes."""

    __slots__ = ("future", "job", "loop", "what")

    def __init__(
        self,
        what: str,
        job: _Job[Any],
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[Any],
    ) -> None:
        self.what = what
        self.job = job
        self.loop = loop
        self.future = future


_Outcome = tuple[asyncio.Future[Any], BaseException | None, Any]
"""A write's future, and the exception it failed with or else its result."""


def _settle(outcomes: Sequence[_Outcome]) -> None:
    """Resolve writes' futures (on their event loop); those whose caller gave up are skipped."""
    for future, error, value in outcomes:
        if future.cancelled():
            continue
        if error is None:
            future.set_result(value)
        elif isinstance(error, StopIteration):  # a Future refuses it; as asyncio does for tasks
            future.set_exception(RuntimeError(f"a storage job raised {type(error).__name__}"))
        else:
            future.set_exception(error)


class _Database:
    """One connection on one worker thread; runs jobs as read transactions, and write jobs in
    group commits (see the module's docstring)."""

    def __init__(self, path: str, busy_timeout_ms: int) -> None:
        self._path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="overt-sqlite")
        self._conn: sqlite3.Connection | None = None
        self._closed = False
        self._writes_lock = threading.Lock()
        self._writes: list[_Write] = []
        """Write jobs not yet taken by the worker, in arrival order (under the lock)."""
        self._drain_queued = False
        """Whether a :meth:`_drain` is queued on the worker that has not yet taken the jobs."""

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
            # Every write accepted before this point has a drain queued ahead of _close.
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
        """Run ``job`` in the next group commit, inside its own savepoint: its changes are
        committed (and fsynced) when this returns, and none of them if it raised."""
        if self._closed:
            raise StorageUnavailable("storage is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_T] = loop.create_future()
        with self._writes_lock:
            self._writes.append(_Write(what, job, loop, future))
            queue_drain = not self._drain_queued
            self._drain_queued = True
        if queue_drain:
            self._executor.submit(self._drain)
        return await future

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

    def _drain(self) -> None:
        """On the worker: commit every write queued now, :data:`GROUP_COMMIT_MAX_JOBS` per
        transaction. Writes that arrive meanwhile queue another drain, behind any reads that
        arrived before them."""
        with self._writes_lock:
            writes, self._writes = self._writes, []
            self._drain_queued = False
        for start in range(0, len(writes), GROUP_COMMIT_MAX_JOBS):
            batch = writes[start : start + GROUP_COMMIT_MAX_JOBS]
            try:
                outcomes = self._group_commit(batch)
            except BaseException as e:  # a bug here must not leave a caller waiting forever
                outcomes = [(w.future, e, None) for w in batch]
            by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
            for w, outcome in zip(batch, outcomes, strict=True):
                by_loop.setdefault(w.loop, []).append(outcome)
            for loop, settled in by_loop.items():
                with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
                    loop.call_soon_threadsafe(_settle, settled)

    def _group_commit(self, batch: Sequence[_Write]) -> list[_Outcome]:
        """Run ``batch`` in one ``BEGIN IMMEDIATE`` transaction, each job between ``SAVEPOINT``
        and ``RELEASE`` (``ROLLBACK TO`` if it raised), then one ``COMMIT``. If the transaction
        itself fails (``BEGIN``, ``COMMIT``, a savepoint statement, or a job error after which
        SQLite rolled the whole transaction back), every job of the batch fails with it."""
        conn = self._conn
        if conn is None:
            closed = StorageUnavailable("storage is closed")
            return [(w.future, closed, None) for w in batch]
        outcomes: list[_Outcome] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for w in batch:
                    conn.execute("SAVEPOINT job")
                    try:
                        value = w.job(conn)
                    except BaseException as e:
                        if not conn.in_transaction:
                            raise  # SQLite gave up the whole transaction (I/O, full, busy)
                        conn.execute("ROLLBACK TO job")
                        conn.execute("RELEASE job")
                        outcomes.append((w.future, _job_error(e, w.what), None))
                    else:
                        conn.execute("RELEASE job")
                        outcomes.append((w.future, None, value))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except BaseException as e:
            return [(w.future, _job_error(e, w.what), None) for w in batch]
        return outcomes


def _job_error(error: BaseException, what: str) -> BaseException:
    """What the caller of a write job gets: sqlite3 errors mapped, anything else as raised."""
    if isinstance(error, sqlite3.Error):
        mapped = _mapped(error, what)
        mapped.__cause__ = error
        return mapped
    return error


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
                        m.kind.value,
                    )
                )
            conn.executemany(
                "INSERT INTO mail (id, recipient_account, recipient_device, sender_account, "
                "sender_device, server_time, envelope, reporting_tag, kind) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            return tuple(range(first, first + len(items)))

        return await self._db.write("mailbox enqueue", job)

    async def fetch(
        self, account_id: bytes, device: int, after_id: int, limit: int
    ) -> tuple[Mail, ...]:
        _checks.device(account_id, device)
        _checks.fetch(after_id, limit)

        def job(conn: sqlite3.Connection) -> tuple[Mail, ...]:
            rows = conn.execute(
                "SELECT id, sender_account, sender_device, server_time, envelope, reporting_tag, "
                "kind FROM mail WHERE recipient_account = ? AND recipient_device = ? AND id > ? "
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
                    MailKind(r[6]),
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


# ----------------------------------------------------------------------------- lawful access

_SELECT_WARRANT: Final = (
    "SELECT warrant_id, idx, token_hash, document, not_after, sealed_until, revocation, "
    "unsealed_idx FROM lawful_warrant "
)


def _warrant(row: Any) -> WarrantRecord:
    revocation, unsealed = row[6], row[7]
    return WarrantRecord(
        warrant_id=bytes(row[0]),
        index=int(row[1]),
        token_hash=bytes(row[2]),
        document=bytes(row[3]),
        not_after=int(row[4]),
        sealed_until=int(row[5]),
        revocation=None if revocation is None else bytes(revocation),
        unsealed_index=None if unsealed is None else int(unsealed),
    )


class SqliteWarrantStore:
    """:class:`~overt.storage.interfaces.WarrantStore` on table ``lawful_warrant``."""

    def __init__(self, db: _Database) -> None:
        self._db = db

    async def add(self, record: WarrantRecord) -> None:
        _checks.warrant_record(record)
        row = (
            record.warrant_id, record.index, record.token_hash, record.document,
            record.not_after, record.sealed_until, record.revocation, record.unsealed_index,
        )  # fmt: skip

        def job(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(
                    "INSERT INTO lawful_warrant (warrant_id, idx, token_hash, document, "
                    "not_after, sealed_until, revocation, unsealed_idx) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    row,
                )
            except sqlite3.IntegrityError as e:
                if _is_unique_violation(e):
                    raise AlreadyExists("a warrant with this id exists") from e
                raise

        await self._db.write("warrant add", job)

    async def get(self, warrant_id: bytes) -> WarrantRecord | None:
        _checks.warrant_id(warrant_id)

        def job(conn: sqlite3.Connection) -> WarrantRecord | None:
            row = conn.execute(
                _SELECT_WARRANT + "WHERE warrant_id = ?",
                (warrant_id,),
            ).fetchone()
            return None if row is None else _warrant(row)

        return await self._db.read("warrant get", job)

    async def live(self, now: int) -> tuple[WarrantRecord, ...]:
        _checks.time_value(now)

        def job(conn: sqlite3.Connection) -> tuple[WarrantRecord, ...]:
            rows = conn.execute(
                _SELECT_WARRANT + "WHERE revocation IS NULL AND not_after > ? ORDER BY idx LIMIT ?",
                (now, LIVE_WARRANTS_MAX),
            ).fetchall()
            return tuple(_warrant(r) for r in rows)

        return await self._db.read("warrant live", job)

    async def revoke(self, warrant_id: bytes, revocation: bytes) -> bool:
        _checks.warrant_id(warrant_id)
        _checks.revocation(revocation)

        def job(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "SELECT revocation FROM lawful_warrant WHERE warrant_id = ?", (warrant_id,)
            ).fetchone()
            if row is None:
                raise NotFound("no such warrant")
            if row[0] is not None:
                return False
            conn.execute(
                "UPDATE lawful_warrant SET revocation = ? WHERE warrant_id = ?",
                (revocation, warrant_id),
            )
            return True

        return await self._db.write("warrant revoke", job)

    async def due_for_unsealing(self, now: int, limit: int) -> tuple[WarrantRecord, ...]:
        _checks.time_value(now)
        _checks.warrant_page(limit)

        def job(conn: sqlite3.Connection) -> tuple[WarrantRecord, ...]:
            rows = conn.execute(
                _SELECT_WARRANT + "WHERE unsealed_idx IS NULL AND sealed_until <= ? "
                "ORDER BY sealed_until, warrant_id LIMIT ?",
                (now, limit),
            ).fetchall()
            return tuple(_warrant(r) for r in rows)

        return await self._db.read("warrant due", job)

    async def set_unsealed(self, warrant_id: bytes, index: int) -> None:
        _checks.warrant_id(warrant_id)
        _checks.log_index(index)

        def job(conn: sqlite3.Connection) -> None:
            row = conn.execute(
                "SELECT unsealed_idx FROM lawful_warrant WHERE warrant_id = ?", (warrant_id,)
            ).fetchone()
            if row is None:
                raise NotFound("no such warrant")
            if row[0] is not None:
                if int(row[0]) != index:
                    raise StorageConflict("the warrant's unsealing was recorded at another index")
                return
            conn.execute(
                "UPDATE lawful_warrant SET unsealed_idx = ? WHERE warrant_id = ?",
                (index, warrant_id),
            )

        await self._db.write("warrant unsealed", job)


def _intercept(row: Any) -> Intercept:
    return Intercept(
        int(row[0]), bytes(row[1]), int(row[2]), int(row[3]), bytes(row[4]), int(row[5]),
        bytes(row[6]), int(row[7]), bytes(row[8]), MailKind(row[9]),
        None if row[10] is None else bytes(row[10]),
    )  # fmt: skip


class SqliteInterceptStore:
    """:class:`~overt.storage.interfaces.InterceptStore` on table ``lawful_intercept``."""

    def __init__(self, db: _Database) -> None:
        self._db = db

    async def add(self, batch: Sequence[NewIntercept]) -> tuple[int, ...]:
        _checks.intercept_batch(batch)
        rows = [
            (i.warrant_id, i.mail_id, i.server_time, i.sender_account, i.sender_device,
             i.recipient_account, i.recipient_device, i.envelope, i.kind.value, i.membership)
            for i in batch
        ]  # fmt: skip
        if not rows:
            return ()

        def job(conn: sqlite3.Connection) -> tuple[int, ...]:
            ids = []
            for row in rows:
                cursor = conn.execute(
                    "INSERT INTO lawful_intercept (warrant_id, mail_id, server_time, "
                    "sender_account, sender_device, recipient_account, recipient_device, "
                    "envelope, kind, membership) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    row,
                )
                assert cursor.lastrowid is not None
                ids.append(int(cursor.lastrowid))
            return tuple(ids)

        return await self._db.write("intercept add", job)

    async def page(self, warrant_id: bytes, after_id: int, limit: int) -> tuple[Intercept, ...]:
        _checks.intercept_page(warrant_id, after_id, limit)

        def job(conn: sqlite3.Connection) -> tuple[Intercept, ...]:
            rows = conn.execute(
                "SELECT id, warrant_id, mail_id, server_time, sender_account, sender_device, "
                "recipient_account, recipient_device, envelope, kind, membership "
                "FROM lawful_intercept WHERE warrant_id = ? AND id > ? ORDER BY id LIMIT ?",
                (warrant_id, after_id, limit),
            ).fetchall()
            return tuple(_intercept(r) for r in rows)

        return await self._db.read("intercept page", job)

    async def count(self, warrant_id: bytes) -> int:
        _checks.warrant_id(warrant_id)

        def job(conn: sqlite3.Connection) -> int:
            (n,) = conn.execute(
                "SELECT count(*) FROM lawful_intercept WHERE warrant_id = ?", (warrant_id,)
            ).fetchone()
            return int(n)

        return await self._db.read("intercept count", job)


class SqliteEpochStore:
    """:class:`~overt.storage.interfaces.EpochStore` on table ``lawful_epoch``."""

    def __init__(self, db: _Database) -> None:
        self._db = db

    async def add(self, record: EpochRecord) -> None:
        _checks.epoch_record(record)
        row = (record.epoch, record.index, record.transcript, record.confirmations)

        def job(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(
                    "INSERT INTO lawful_epoch (epoch, idx, transcript, confirmations) "
                    "VALUES (?, ?, ?, ?)",
                    row,
                )
            except sqlite3.IntegrityError as e:
                if _is_unique_violation(e):
                    raise AlreadyExists("this epoch has a record") from e
                raise

        await self._db.write("epoch add", job)

    async def get(self, epoch: int) -> EpochRecord | None:
        _checks.epoch(epoch)

        def job(conn: sqlite3.Connection) -> EpochRecord | None:
            row = conn.execute(
                "SELECT epoch, idx, transcript, confirmations FROM lawful_epoch WHERE epoch = ?",
                (epoch,),
            ).fetchone()
            return None if row is None else _epoch_record(row)

        return await self._db.read("epoch get", job)

    async def latest(self, limit: int) -> tuple[EpochRecord, ...]:
        _checks.epoch_page(limit)

        def job(conn: sqlite3.Connection) -> tuple[EpochRecord, ...]:
            rows = conn.execute(
                "SELECT epoch, idx, transcript, confirmations FROM lawful_epoch "
                "ORDER BY epoch DESC LIMIT ?",
                (limit,),
            ).fetchall()
            return tuple(_epoch_record(r) for r in rows)

        return await self._db.read("epoch latest", job)


def _epoch_record(row: Any) -> EpochRecord:
    confirmations = None if row[3] is None else bytes(row[3])
    return EpochRecord(int(row[0]), int(row[1]), bytes(row[2]), confirmations)


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
        warrants=SqliteWarrantStore(db),
        intercepts=SqliteInterceptStore(db),
        epochs=SqliteEpochStore(db),
        reports=SqliteReportStore(db),
        standing=SqliteStandingStore(db),
        moderators=SqliteModeratorStore(db),
        groups=SqliteGroupStore(db),
        matching=SqliteMatchingStore(db),
    )
