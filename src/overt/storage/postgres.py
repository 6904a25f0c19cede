"""The PostgreSQL backend: the six stores over one database, shared by several server nodes.

Every node opens its own :func:`open_postgres` on the same database; the stores keep no state
in the process beyond the connection pool, so any node may serve any request. The semantics are
the SQLite backend's, checked by the same contract suite (``tests/storage/test_contract.py``),
and hold across nodes, not only across the tasks of one process.

**Connections.** One asyncpg pool per :class:`~overt.storage.interfaces.Storage`. A read or a
single-statement write runs on a pooled connection in autocommit (a statement is atomic); an
operation of several statements runs in one ``READ COMMITTED`` transaction that is committed,
or rolled back on any exception. The stores keep no session state (no ``SET``, ``LISTEN`` or
session-level advisory locks), so a connection goes back to the pool without asyncpg's reset
query (a round trip saved per operation); an open transaction is still rolled back. Sessions
start with ``lock_timeout`` (:data:`LOCK_TIMEOUT_MS`) and
``idle_in_transaction_session_timeout`` (:data:`IDLE_IN_TRANSACTION_TIMEOUT_MS`) unless the DSN
sets them (``?lock_timeout=...``): a write that waits too long for a lock fails with
``StorageUnavailable`` instead of queueing forever, and a node that stalls or is cut off in the
middle of a transaction loses its locks after that timeout instead of blocking every node.

**Server message ids in commit order.** The contract promises that ids increase in *commit*
order, so that a device that has seen id ``n`` misses nothing by fetching after ``n``. A
sequence alone does not give that: node A draws 5, node B draws 6, B commits first, the device
fetches 6 and then asks for mail after 6; A's 5 commits later and is never fetched. So an
enqueue starts with one call to the SQL function ``mail_draw_ids``, which takes the
transaction-level advisory lock ``MAIL_ID_LOCK``, checks the recipients' mailbox depths and
draws the batch's ids from the sequence ``mail_id``; the lock is held until the COMMIT.
PostgreSQL releases a transaction's locks only after its commit is visible to other snapshots,
so the next enqueue draws larger ids and can only commit later: a reader that sees id ``n``
sees every smaller id that will ever commit (``tests/storage/test_postgres_backend.py`` holds
one node inside its transaction and shows the other waiting). The alternative, a row lock on a
counter row (``UPDATE counter ... RETURNING``, as SQLite does), orders commits the same way but
writes a new version of that one row per enqueue; while a long transaction holds back cleanup
(``pg_dump`` runs in one) the row's version chain grows and every enqueue pays for it. A
sequence is updated in place and writes no dead tuples.

The cost: **enqueues are serialized across the whole deployment**, from the id draw to the end
of the COMMIT, which spans two round trips (the ``mail_draw_ids`` reply, the INSERT) plus the
COMMIT with its WAL flush. However many nodes there are, throughput is at most about
``1 / (2 RTT + COMMIT)`` enqueues a second, and group commit cannot merge the flushes of
serialized commits. A batch (one send fanned out to every device of every recipient) is one
enqueue, so what is serialized is sends, not envelopes. Measured on a 2-core VM with client and
server on one host, fsync on: about 1,000 single-envelope enqueues/s from one task, about 1,200/s
from 16 tasks on one to four pools, against about 3,000/s for the same code without the lock
(which would break the ordering); SQLite on the same disk does about 3,300/s. Everything else
(fetch, ack, prekeys, accounts, blobs, the log) runs in parallel; acks do not take the lock.
The same lock makes the mailbox-depth bound exact: ``mail_draw_ids`` is ``VOLATILE``, so its
depth query takes a fresh snapshot after the lock is granted and sees every enqueue committed
before it. To raise the ceiling later, ids could be ordered per recipient device (lock the
``mailbox`` rows of the batch in key order instead of one global lock), which is all a
device's ``fetch(after_id)`` needs, at the price of weakening the contract's global order.

**One-time prekeys** are taken by one ``DELETE ... WHERE key_id = (SELECT ... ORDER BY key_id
LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING``: each key goes to exactly one caller on any node,
and concurrent takers skip each other's row instead of waiting. Additions to one pool are
serialized by an advisory lock keyed on the pool, so two nodes cannot both pass the pool bound.
**Device lists** swap with ``UPDATE ... WHERE serial = expected`` (the row lock makes a racing
swap re-read the new serial and lose). **Mailbox depths** are kept by statement-level triggers,
as the ``mailbox`` table is in SQLite. The reporting-tag callback runs inside the enqueue
transaction, on the event loop, between the id draw and the insert (so it runs while the
deployment-wide lock is held: it must be quick); if it raises, nothing is stored and its
exception propagates unchanged.

**Schema.** :data:`MIGRATIONS` (``_postgres_schema.py``) is an append-only list of SQL scripts;
:func:`apply_migrations` runs the pending ones in one transaction under the advisory lock
``MIGRATION_LOCK`` when a pool is opened, so several nodes may start at once. A database whose
version is newer than this build knows is refused.

**Errors.** asyncpg and socket errors are mapped here with ``raise ... from``: connection
failures, the server shutting down, lock and statement timeouts, serialization failures and
deadlocks, read-only transactions (a standby), insufficient resources and I/O errors become
``StorageUnavailable`` (503); everything else ``StorageError`` (500). A connection that such an
error leaves broken is terminated rather than returned to the pool. Duplicate ids the contract
names become ``AlreadyExists`` without a server-side error (``ON CONFLICT DO NOTHING``).
Messages name the operation and the SQLSTATE, never stored bytes.

This module stores opaque bytes. It never imports the protocol, the server or the client, and
never reads a clock or draws randomness: times and ids come from its callers (the migration
log's ``applied_at`` is the database server's ``now()``).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Final, TypeAlias, TypeVar
from urllib.parse import parse_qsl, urlsplit

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from overt.errors import ConfigurationError, LimitExceeded
from overt.storage import _checks
from overt.storage._groups_postgres import PostgresGroupStore
from overt.storage._matching_postgres import PostgresMatchingStore
from overt.storage._moderation_postgres import (
    PostgresModeratorStore,
    PostgresReportStore,
    PostgresStandingStore,
)
from overt.storage._postgres_schema import (
    INTERCEPT_ID_LOCK,
    LOG_LOCK,
    MAIL_ID_LOCK,
    MIGRATION_LOCK,
    MIGRATIONS,
    PREKEY_POOL_LOCK_CLASS,
    SCHEMA_VERSION_TABLE,
)
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
    "ACQUIRE_TIMEOUT_S",
    "CLOSE_TIMEOUT_S",
    "CONNECT_TIMEOUT_S",
    "IDLE_IN_TRANSACTION_TIMEOUT_MS",
    "INSERT_CHUNK_BYTES",
    "LOCK_TIMEOUT_MS",
    "MIGRATIONS",
    "MIGRATION_LOCK_TIMEOUT_MS",
    "POOL_MAX_SIZE",
    "POOL_MIN_SIZE",
    "POSTGRES_MIN_VERSION",
    "apply_migrations",
    "open_postgres",
]

POOL_MIN_SIZE: Final = 1
"""Connections a pool keeps open when idle."""

POOL_MAX_SIZE: Final = 10
"""Connections a pool opens at most; size it so that nodes × max fits ``max_connections``."""

CONNECT_TIMEOUT_S: Final = 10.0
"""How long opening one connection may take before ``StorageUnavailable``."""

ACQUIRE_TIMEOUT_S: Final = 10.0
"""How long an operation waits for a free pooled connection before ``StorageUnavailable``."""

CLOSE_TIMEOUT_S: Final = 30.0
"""How long ``close`` waits for operations in flight before it terminates the connections."""

LOCK_TIMEOUT_MS: Final = 5000
"""Default ``lock_timeout``: the longest a statement waits for a lock (the enqueue lock, a row
lock) before ``StorageUnavailable``; the analogue of SQLite's busy timeout."""

IDLE_IN_TRANSACTION_TIMEOUT_MS: Final = 10_000
"""Default ``idle_in_transaction_session_timeout``: a node that stops talking in the middle of
a transaction is disconnected after this long, releasing the locks it held."""

MIGRATION_LOCK_TIMEOUT_MS: Final = 300_000
"""``lock_timeout`` while migrating: a node waits this long for another node's migration."""

INSERT_CHUNK_BYTES: Final = 16 * 1024 * 1024
"""Envelope bytes sent in one INSERT of an enqueue (a batch may hold far more; the protocol
caps one message at 1 GiB)."""

POSTGRES_MIN_VERSION: Final = (11, 0)
"""Statement-level triggers with transition tables and ``EXECUTE FUNCTION`` need 11."""

_SLOT_SIGNED: Final = "signed"
_SLOT_LAST_RESORT: Final = "last_resort_kem"

_T = TypeVar("_T")
_Conn: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"
_Job: TypeAlias = Callable[[_Conn], Awaitable[_T]]

_FOREIGN: Final = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
)
"""What asyncpg and the socket layer raise; ``TimeoutError`` is an ``OSError``."""

_UNAVAILABLE_CLASSES: Final = frozenset({"08", "40", "53", "57", "58"})
"""SQLSTATE classes after which retrying may succeed: connection exception, transaction
rollback (serialization failure, deadlock), insufficient resources, operator intervention
(shutdown, query cancelled, statement timeout), system error (I/O)."""

_UNAVAILABLE_STATES: Final = frozenset({"55P03", "25006"})
"""``lock_not_available`` (``lock_timeout``) and ``read_only_sql_transaction`` (a standby)."""

_BROKEN_CLASSES: Final = frozenset({"08", "57"})
"""SQLSTATE classes after which the connection itself is gone (connection exception,
operator intervention such as ``admin_shutdown``)."""


def _connection_broken(error: BaseException) -> bool:
    """Whether ``error`` leaves the connection unusable, so it must not go back to the pool.

    Besides socket errors and the server's connection errors, asyncpg raises
    ``InternalClientError`` ("another operation is in progress") when the server ended the
    session while the connection sat idle in the pool (``pg_terminate_backend``, a restart).
    """
    if isinstance(error, asyncpg.PostgresError):
        return str(getattr(error, "sqlstate", "") or "")[:2] in _BROKEN_CLASSES
    return isinstance(error, OSError | asyncpg.InternalClientError)


def _mapped(
    error: BaseException, what: str, *, closed: bool = False, verbose: bool = False
) -> StorageError:
    """The Overt error for a foreign error raised during ``what``; raise it ``from error``.

    ``verbose`` adds the server's message, for errors at open and migration time where it says
    what to fix (a wrong password, a missing database) and can hold no stored bytes.
    """
    name = type(error).__name__
    detail = f": {error}" if verbose else ""
    if closed:
        return StorageUnavailable("storage is closed")
    if isinstance(error, asyncpg.PostgresError):
        state = str(getattr(error, "sqlstate", "") or "")
        label = f"{what}: PostgreSQL {state} {name}{detail}"
        if state[:2] in _UNAVAILABLE_CLASSES or state in _UNAVAILABLE_STATES:
            return StorageUnavailable(f"{label}; retry later")
        return StorageError(label)
    if _connection_broken(error) or isinstance(
        error, asyncpg.exceptions.TargetServerAttributeNotMatched
    ):
        # Refused, reset or timed-out connections, a session the server ended under asyncpg;
        # a standby where a primary was wanted.
        return StorageUnavailable(f"{what}: {name}{detail}; retry later")
    # Other interface errors are misuse of asyncpg (wrong arguments, a released connection).
    return StorageError(f"{what}: asyncpg {name}{detail}")


async def _keep_session(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    """Pool reset hook: the stores leave no session state behind, so nothing to reset."""


def _server_settings(dsn: str, lock_timeout_ms: int) -> dict[str, str]:
    """Session defaults, except those the DSN's query string sets itself."""
    defaults = {
        "application_name": "overt",
        "lock_timeout": str(lock_timeout_ms),
        "idle_in_transaction_session_timeout": str(IDLE_IN_TRANSACTION_TIMEOUT_MS),
    }
    given = {key for key, _ in parse_qsl(urlsplit(dsn).query)}
    return {key: value for key, value in defaults.items() if key not in given}


async def apply_migrations(
    conn: asyncpg.Connection[asyncpg.Record] | _Conn, migrations: Sequence[str] = MIGRATIONS
) -> int:
    """Bring the database on ``conn`` to version ``len(migrations)``; return that version.

    Takes the advisory lock ``MIGRATION_LOCK`` and runs every pending script in one
    transaction, recording each version; on any failure nothing is applied and
    ``StorageError`` (or ``StorageUnavailable``) is raised. A database already at a higher
    version than ``len(migrations)`` is refused.
    """
    target = len(migrations)
    try:
        async with conn.transaction():
            await conn.execute(f"SET LOCAL lock_timeout = {int(MIGRATION_LOCK_TIMEOUT_MS)}")
            await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", *MIGRATION_LOCK)
            await conn.execute(SCHEMA_VERSION_TABLE)
            current = int(
                await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_version")
            )
            if current > target:
                raise StorageError(
                    f"the database is at schema version {current}, newer than this build's "
                    f"{target}; upgrade Overt or point it at another database"
                )
            for version in range(current + 1, target + 1):
                # One simple query: the script, then its version (which also keeps a script of
                # only comments from being an empty query).
                await conn.execute(
                    f"{migrations[version - 1]}\n;\n"
                    f"INSERT INTO schema_version (version) VALUES ({int(version)})"
                )
    except _FOREIGN as e:
        raise _mapped(e, "schema migration", verbose=True) from e
    return target


class _Database:
    """One asyncpg pool; runs jobs in autocommit or in a transaction, mapping errors."""

    def __init__(self, pool: asyncpg.Pool[asyncpg.Record]) -> None:
        self._pool = pool
        self._closed = False

    def check_open(self) -> None:
        if self._closed:
            raise StorageUnavailable("storage is closed")

    async def run(self, what: str, job: _Job[_T]) -> _T:
        """Run ``job`` on a pooled connection in autocommit (for a single statement)."""
        return await self._with_connection(what, job, transaction=False, passthrough=())

    async def transaction(
        self, what: str, job: _Job[_T], passthrough: Sequence[BaseException] = ()
    ) -> _T:
        """Run ``job`` in one transaction; commit, or roll back on any exception.

        ``passthrough`` holds exceptions raised by caller-supplied code inside the job (the
        reporting tagger); those propagate unchanged even if they look like foreign errors.
        """
        return await self._with_connection(what, job, transaction=True, passthrough=passthrough)

    async def _with_connection(
        self,
        what: str,
        job: _Job[_T],
        *,
        transaction: bool,
        passthrough: Sequence[BaseException],
    ) -> _T:
        self.check_open()
        try:
            async with self._pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
                try:
                    if not transaction:
                        return await job(conn)
                    async with conn.transaction():
                        return await job(conn)
                except _FOREIGN as e:
                    if _connection_broken(e) and not any(e is p for p in passthrough):
                        conn.terminate()  # the pool opens a fresh one for the next operation
                    raise
        except _FOREIGN as e:
            if any(e is p for p in passthrough):
                raise
            raise _mapped(e, what, closed=self._closed) from e

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await asyncio.wait_for(self._pool.close(), CLOSE_TIMEOUT_S)
        except TimeoutError:
            self._pool.terminate()


# ----------------------------------------------------------------------------- accounts


class PostgresAccountStore:
    """:class:`~overt.storage.interfaces.AccountStore` on tables ``account`` and ``device``."""

    def __init__(self, db: _Database) -> None:
        self._db = db

    async def create(self, account: AccountRecord) -> None:
        record = _checks.account(account)

        async def job(conn: _Conn) -> None:
            created = await conn.fetchval(
                "INSERT INTO account (account_id, identity_key, device_list, serial) "
                "VALUES ($1, $2, $3, $4) ON CONFLICT (account_id) DO NOTHING RETURNING true",
                record.account_id,
                record.identity_key,
                record.device_list,
                record.serial,
            )
            if created is None:
                raise AlreadyExists("an account with this id exists")
            await _insert_devices(conn, record.account_id, record.devices)

        await self._db.transaction("account create", job)

    async def get(self, account_id: bytes) -> AccountRecord | None:
        _checks.account_id(account_id)

        async def job(conn: _Conn) -> AccountRecord | None:
            row = await conn.fetchrow(
                "SELECT identity_key, device_list, serial, "
                "  ARRAY(SELECT device_id FROM device WHERE account_id = $1 ORDER BY device_id), "
                "  ARRAY(SELECT auth_key FROM device WHERE account_id = $1 ORDER BY device_id) "
                "FROM account WHERE account_id = $1",
                account_id,
            )
            if row is None:
                return None
            return AccountRecord(
                account_id,
                bytes(row[0]),
                bytes(row[1]),
                int(row[2]),
                tuple(DeviceAuth(int(d), bytes(k)) for d, k in zip(row[3], row[4], strict=True)),
            )

        return await self._db.run("account get", job)

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

        async def job(conn: _Conn) -> None:
            swapped = await conn.fetchval(
                "UPDATE account SET device_list = $4, serial = $3 "
                "WHERE account_id = $1 AND serial = $2 AND $3 > $2 RETURNING true",
                account_id,
                expected_serial,
                serial,
                device_list,
            )
            if swapped is None:
                if await conn.fetchval(
                    "SELECT true FROM account WHERE account_id = $1", account_id
                ):
                    raise StaleSerial(
                        "the device list changed since it was read, or the serial is old"
                    )
                raise NotFound("no account with this id")
            await conn.execute("DELETE FROM device WHERE account_id = $1", account_id)
            await _insert_devices(conn, account_id, ordered)

        await self._db.transaction("device list replace", job)

    async def device_auth_key(self, account_id: bytes, device: int) -> bytes | None:
        _checks.device(account_id, device)

        async def job(conn: _Conn) -> bytes | None:
            key = await conn.fetchval(
                "SELECT auth_key FROM device WHERE account_id = $1 AND device_id = $2",
                account_id,
                device,
            )
            return None if key is None else bytes(key)

        return await self._db.run("device auth key", job)

    async def list_devices(self, account_id: bytes) -> tuple[int, ...] | None:
        _checks.account_id(account_id)

        async def job(conn: _Conn) -> tuple[int, ...] | None:
            row = await conn.fetchrow(
                "SELECT ARRAY(SELECT device_id FROM device WHERE account_id = $1 "
                "ORDER BY device_id) FROM account WHERE account_id = $1",
                account_id,
            )
            return None if row is None else tuple(int(d) for d in row[0])

        return await self._db.run("device list", job)


async def _insert_devices(conn: _Conn, account_id: bytes, devices: Sequence[DeviceAuth]) -> None:
    if devices:
        await conn.execute(
            "INSERT INTO device (account_id, device_id, auth_key) "
            "SELECT $1, d, k FROM unnest($2::bigint[], $3::bytea[]) AS u (d, k)",
            account_id,
            [d.device for d in devices],
            [d.signing_key for d in devices],
        )


# ----------------------------------------------------------------------------- prekeys


class PostgresPrekeyStore:
    """:class:`~overt.storage.interfaces.PrekeyStore` on ``device_prekey`` (signed and
    last-resort slots) and ``one_time_prekey``."""

    def __init__(self, db: _Database, limits: StorageLimits) -> None:
        self._db = db
        self._limits = limits

    async def _set(self, slot: str, account_id: bytes, device: int, prekey: PrekeyRecord) -> None:
        _checks.device(account_id, device)
        _checks.prekey(prekey)

        async def job(conn: _Conn) -> None:
            await conn.execute(
                "INSERT INTO device_prekey (account_id, device_id, slot, key_id, record) "
                "VALUES ($1, $2, $3, $4, $5) "
                "ON CONFLICT (account_id, device_id, slot) "
                "DO UPDATE SET key_id = excluded.key_id, record = excluded.record",
                account_id,
                device,
                slot,
                prekey.id,
                prekey.data,
            )

        await self._db.run(f"{slot} prekey set", job)

    async def _get(self, slot: str, account_id: bytes, device: int) -> PrekeyRecord | None:
        _checks.device(account_id, device)

        async def job(conn: _Conn) -> PrekeyRecord | None:
            row = await conn.fetchrow(
                "SELECT key_id, record FROM device_prekey "
                "WHERE account_id = $1 AND device_id = $2 AND slot = $3",
                account_id,
                device,
                slot,
            )
            return None if row is None else PrekeyRecord(int(row[0]), bytes(row[1]))

        return await self._db.run(f"{slot} prekey get", job)

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
        ids = [p.id for p in prekeys]
        records = [p.data for p in prekeys]
        limit = self._limits.one_time_prekeys

        async def job(conn: _Conn) -> None:
            # Serialize additions to this pool (takes need not wait: they only shrink it).
            await conn.execute(
                "SELECT pg_advisory_xact_lock($1, "
                "hashtext(encode($2, 'hex') || '/' || $3::bigint || '/' || $4::text))",
                PREKEY_POOL_LOCK_CLASS,
                account_id,
                device,
                kind.value,
            )
            if await _one_time_count(conn, account_id, device, kind) + len(ids) > limit:
                raise LimitExceeded("too many one-time prekeys for this device")
            added = await conn.fetchval(
                "WITH added AS ("
                "  INSERT INTO one_time_prekey (account_id, device_id, kind, key_id, record) "
                "  SELECT $1, $2, $3, i, r FROM unnest($4::bigint[], $5::bytea[]) AS u (i, r) "
                "  ON CONFLICT DO NOTHING RETURNING 1"
                ") SELECT count(*) FROM added",
                account_id,
                device,
                kind.value,
                ids,
                records,
            )
            if added != len(ids):
                raise AlreadyExists("a one-time prekey id is already stored")

        if not prekeys:
            self._db.check_open()
            return
        await self._db.transaction("one-time prekey add", job)

    async def take_one_time(
        self, account_id: bytes, device: int, kind: OneTimeKind
    ) -> PrekeyRecord | None:
        _checks.device(account_id, device)
        _checks.kind(kind)

        async def job(conn: _Conn) -> PrekeyRecord | None:
            row = await conn.fetchrow(
                "DELETE FROM one_time_prekey "
                "WHERE account_id = $1 AND device_id = $2 AND kind = $3 AND key_id = ("
                "  SELECT key_id FROM one_time_prekey "
                "  WHERE account_id = $1 AND device_id = $2 AND kind = $3 "
                "  ORDER BY key_id LIMIT 1 FOR UPDATE SKIP LOCKED"
                ") RETURNING key_id, record",
                account_id,
                device,
                kind.value,
            )
            return None if row is None else PrekeyRecord(int(row[0]), bytes(row[1]))

        return await self._db.run("one-time prekey take", job)

    async def count_one_time(self, account_id: bytes, device: int, kind: OneTimeKind) -> int:
        _checks.device(account_id, device)
        _checks.kind(kind)

        async def job(conn: _Conn) -> int:
            return await _one_time_count(conn, account_id, device, kind)

        return await self._db.run("one-time prekey count", job)


async def _one_time_count(conn: _Conn, account_id: bytes, device: int, kind: OneTimeKind) -> int:
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM one_time_prekey "
            "WHERE account_id = $1 AND device_id = $2 AND kind = $3",
            account_id,
            device,
            kind.value,
        )
    )


# ----------------------------------------------------------------------------- mailboxes

_DRAW_MAIL_IDS: Final = "SELECT mail_draw_ids($1, $2, $3, $4, $5, $6, $7)"
"""Takes ``MAIL_ID_LOCK``, checks the depths, draws the ids (see ``_postgres_schema.py``)."""

_INSERT_MAIL: Final = (
    "INSERT INTO mail (id, recipient_account, recipient_device, sender_account, sender_device, "
    "  server_time, envelope, reporting_tag, kind) "
    "SELECT u.id, u.ra, u.rd, u.sa, u.sd, $6, u.e, u.t, u.k FROM unnest("
    "  $1::bigint[], $2::bytea[], $3::bigint[], $4::bytea[], $5::bigint[], $7::bytea[], "
    "  $8::bytea[], $9::text[]) AS u (id, ra, rd, sa, sd, e, t, k)"
)


class PostgresMailboxStore:
    """:class:`~overt.storage.interfaces.MailboxStore` on ``mail``, ``mailbox`` (depths) and
    the sequence ``mail_id``."""

    def __init__(self, db: _Database, limits: StorageLimits) -> None:
        self._db = db
        self._limits = limits

    async def enqueue(
        self, batch: Sequence[NewMail], server_time: int, tag: ReportingTagger
    ) -> tuple[int, ...]:
        _checks.mail_batch(batch, server_time)
        self._db.check_open()
        if not batch:
            return ()
        items = tuple(batch)
        arriving = Counter((m.recipient_account, m.recipient_device) for m in items)
        depth_max = self._limits.mailbox_depth
        if max(arriving.values()) > depth_max:
            raise LimitExceeded("a recipient device's mailbox is full")
        recipients = list(arriving)
        failures: list[BaseException] = []

        async def job(conn: _Conn) -> tuple[int, ...]:
            last = await conn.fetchval(
                _DRAW_MAIL_IDS,
                *MAIL_ID_LOCK,
                [a for a, _ in recipients],
                [d for _, d in recipients],
                [arriving[r] for r in recipients],
                depth_max,
                len(items),
            )
            if last is None:
                raise LimitExceeded("a recipient device's mailbox is full")
            first = int(last) - len(items) + 1
            tags: list[bytes] = []
            for server_id, m in enumerate(items, start=first):
                try:
                    reporting_tag = tag(server_id, m)
                except BaseException as e:
                    failures.append(e)
                    raise
                _checks.reporting_tag(reporting_tag)
                tags.append(reporting_tag)
            for start, stop in _chunks([len(m.envelope) for m in items], INSERT_CHUNK_BYTES):
                part = items[start:stop]
                await conn.execute(
                    _INSERT_MAIL,
                    list(range(first + start, first + stop)),
                    [m.recipient_account for m in part],
                    [m.recipient_device for m in part],
                    [m.sender_account for m in part],
                    [m.sender_device for m in part],
                    server_time,
                    [m.envelope for m in part],
                    tags[start:stop],
                    [m.kind.value for m in part],
                )
            return tuple(range(first, first + len(items)))

        return await self._db.transaction("mailbox enqueue", job, passthrough=failures)

    async def fetch(
        self, account_id: bytes, device: int, after_id: int, limit: int
    ) -> tuple[Mail, ...]:
        _checks.device(account_id, device)
        _checks.fetch(after_id, limit)

        async def job(conn: _Conn) -> tuple[Mail, ...]:
            rows = await conn.fetch(
                "SELECT id, sender_account, sender_device, server_time, envelope, reporting_tag, "
                "kind FROM mail WHERE recipient_account = $1 AND recipient_device = $2 "
                "AND id > $3 ORDER BY id LIMIT $4",
                account_id,
                device,
                after_id,
                limit,
            )
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

        return await self._db.run("mailbox fetch", job)

    async def ack(self, account_id: bytes, device: int, ids: Collection[int]) -> int:
        _checks.device(account_id, device)
        wanted = _checks.ack_ids(ids)
        self._db.check_open()
        if not wanted:
            return 0

        async def job(conn: _Conn) -> int:
            # Lock the rows in id order first, so two acknowledgements of overlapping pages
            # cannot deadlock; the delete trigger then updates the device's depth once.
            removed = await conn.fetchval(
                "WITH gone AS ("
                "  DELETE FROM mail WHERE id IN ("
                "    SELECT id FROM mail "
                "    WHERE recipient_account = $1 AND recipient_device = $2 "
                "      AND id = ANY($3::bigint[]) "
                "    ORDER BY id FOR UPDATE"
                "  ) RETURNING 1"
                ") SELECT count(*) FROM gone",
                account_id,
                device,
                sorted(wanted),
            )
            return int(removed)

        return await self._db.run("mailbox ack", job)

    async def depth(self, account_id: bytes, device: int) -> int:
        _checks.device(account_id, device)

        async def job(conn: _Conn) -> int:
            depth = await conn.fetchval(
                "SELECT depth FROM mailbox WHERE recipient_account = $1 AND recipient_device = $2",
                account_id,
                device,
            )
            return 0 if depth is None else int(depth)

        return await self._db.run("mailbox depth", job)


def _chunks(sizes: Sequence[int], budget: int) -> list[tuple[int, int]]:
    """Split ``range(len(sizes))`` into consecutive ``(start, stop)`` runs whose sizes add up
    to at most ``budget`` (a single larger item is a run of its own)."""
    runs: list[tuple[int, int]] = []
    start, total = 0, 0
    for i, size in enumerate(sizes):
        if i > start and total + size > budget:
            runs.append((start, i))
            start, total = i, 0
        total += size
    runs.append((start, len(sizes)))
    return runs


# ----------------------------------------------------------------------------- blobs


class PostgresBlobStore:
    """:class:`~overt.storage.interfaces.BlobStore` on table ``attachment``."""

    def __init__(self, db: _Database, limits: StorageLimits) -> None:
        self._db = db
        self._limits = limits

    async def put(self, blob_id: bytes, data: bytes) -> None:
        _checks.blob(blob_id, data, self._limits.blob_size)

        async def job(conn: _Conn) -> None:
            stored = await conn.fetchval(
                "INSERT INTO attachment (blob_id, data) VALUES ($1, $2) "
                "ON CONFLICT (blob_id) DO NOTHING RETURNING true",
                blob_id,
                data,
            )
            if stored is None:
                raise AlreadyExists("a blob with this id exists")

        await self._db.run("blob put", job)

    async def get(self, blob_id: bytes) -> bytes | None:
        _checks.blob(blob_id)

        async def job(conn: _Conn) -> bytes | None:
            data = await conn.fetchval("SELECT data FROM attachment WHERE blob_id = $1", blob_id)
            return None if data is None else bytes(data)

        return await self._db.run("blob get", job)

    async def delete(self, blob_id: bytes) -> bool:
        _checks.blob(blob_id)

        async def job(conn: _Conn) -> bool:
            gone = await conn.fetchval(
                "DELETE FROM attachment WHERE blob_id = $1 RETURNING true", blob_id
            )
            return gone is not None

        return await self._db.run("blob delete", job)


# ----------------------------------------------------------------------------- log

_LOG_SIZE: Final = "SELECT coalesce(max(idx) + 1, 0) FROM log_leaf"


class PostgresLogStore:
    """:class:`~overt.storage.interfaces.LogStore` on ``log_leaf``, ``log_node`` and
    ``log_checkpoint``. Appends and checkpoint writes take the advisory lock ``LOG_LOCK``, so
    the size they check is the size they write at, whichever node they run on; an append is
    one transaction of two multi-row INSERTs (one commit)."""

    def __init__(self, db: _Database) -> None:
        self._db = db

    async def append(
        self, expected_size: int, leaves: Sequence[LogLeaf], nodes: Collection[LogNode]
    ) -> int:
        new_size = check_log_append(expected_size, leaves, nodes)
        node_list = list(nodes)

        async def job(conn: _Conn) -> int:
            await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", *LOG_LOCK)
            if await conn.fetchval(_LOG_SIZE) != expected_size:
                raise StorageConflict("the log grew since its size was read")
            if leaves:
                await conn.execute(
                    "INSERT INTO log_leaf (idx, hash, data) "
                    "SELECT $1::bigint + o - 1, h, d "
                    "FROM unnest($2::bytea[], $3::bytea[]) WITH ORDINALITY AS u (h, d, o)",
                    expected_size,
                    [leaf.hash for leaf in leaves],
                    [leaf.data for leaf in leaves],
                )
            if node_list:
                await conn.execute(
                    "INSERT INTO log_node (level, idx, hash) "
                    "SELECT * FROM unnest($1::integer[], $2::bigint[], $3::bytea[])",
                    [n.level for n in node_list],
                    [n.index for n in node_list],
                    [n.hash for n in node_list],
                )
            return new_size

        return await self._db.transaction("log append", job)

    async def size(self) -> int:
        async def job(conn: _Conn) -> int:
            return int(await conn.fetchval(_LOG_SIZE))

        return await self._db.run("log size", job)

    async def hash_at(self, level: int, index: int) -> bytes | None:
        check_log_position(level, index)
        (found,) = await self._hashes("log hash", [(level, index)])
        return found

    async def hashes(self, keys: Sequence[tuple[int, int]]) -> tuple[bytes | None, ...]:
        check_log_keys(keys)
        if not keys:
            self._db.check_open()
            return ()
        return await self._hashes("log hashes", keys)

    async def _hashes(self, what: str, keys: Sequence[tuple[int, int]]) -> tuple[bytes | None, ...]:
        async def job(conn: _Conn) -> tuple[bytes | None, ...]:
            # One statement, so one snapshot: every hash is read from the same tree size.
            rows = await conn.fetch(
                "SELECT CASE WHEN k.level = 0 THEN l.hash ELSE n.hash END "
                "FROM unnest($1::integer[], $2::bigint[]) WITH ORDINALITY AS k (level, idx, o) "
                "LEFT JOIN log_leaf AS l ON k.level = 0 AND l.idx = k.idx "
                "LEFT JOIN log_node AS n ON k.level > 0 AND n.level = k.level AND n.idx = k.idx "
                "ORDER BY k.o",
                [level for level, _ in keys],
                [index for _, index in keys],
            )
            return tuple(None if r[0] is None else bytes(r[0]) for r in rows)

        return await self._db.run(what, job)

    async def leaf(self, index: int) -> bytes | None:
        check_log_index(index)

        async def job(conn: _Conn) -> bytes | None:
            data = await conn.fetchval("SELECT data FROM log_leaf WHERE idx = $1", index)
            return None if data is None else bytes(data)

        return await self._db.run("log leaf", job)

    async def leaves(self, start: int, end: int) -> tuple[bytes, ...]:
        check_log_range(start, end)

        async def job(conn: _Conn) -> tuple[bytes, ...]:
            rows = await conn.fetch(
                "SELECT data FROM log_leaf WHERE idx >= $1 AND idx < $2 ORDER BY idx", start, end
            )
            return tuple(bytes(r[0]) for r in rows)

        return await self._db.run("log leaves", job)

    async def set_checkpoint(self, size: int, checkpoint: bytes) -> None:
        check_log_checkpoint(size, checkpoint)

        async def job(conn: _Conn) -> None:
            await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", *LOG_LOCK)
            if size > await conn.fetchval(_LOG_SIZE):
                raise InvalidArgument("a checkpoint cannot cover leaves the log does not hold")
            row = await conn.fetchrow(
                "SELECT max(size), bool_or(size = $1) FROM log_checkpoint", size
            )
            latest, stored = (None, None) if row is None else (row[0], row[1])
            if latest is not None and size < latest and not stored:
                raise StorageConflict("a checkpoint of a larger tree is stored already")
            await conn.execute(
                "INSERT INTO log_checkpoint (size, checkpoint) VALUES ($1, $2) "
                "ON CONFLICT (size) DO UPDATE SET checkpoint = excluded.checkpoint",
                size,
                checkpoint,
            )

        await self._db.transaction("log checkpoint set", job)

    async def get_checkpoint(self) -> StoredCheckpoint | None:
        async def job(conn: _Conn) -> StoredCheckpoint | None:
            row = await conn.fetchrow(
                "SELECT size, checkpoint FROM log_checkpoint ORDER BY size DESC LIMIT 1"
            )
            return None if row is None else StoredCheckpoint(int(row[0]), bytes(row[1]))

        return await self._db.run("log checkpoint get", job)

    async def checkpoint_at(self, size: int) -> bytes | None:
        check_log_checkpoint(size)

        async def job(conn: _Conn) -> bytes | None:
            data = await conn.fetchval(
                "SELECT checkpoint FROM log_checkpoint WHERE size = $1", size
            )
            return None if data is None else bytes(data)

        return await self._db.run("log checkpoint at", job)


# ----------------------------------------------------------------------------- key directory


class PostgresKtStore:
    """:class:`~overt.storage.interfaces.KtStore` on table ``kt_record`` (write-once rows)."""

    def __init__(self, db: _Database) -> None:
        self._db = db

    async def add(self, account_id: bytes, record: KtRecord) -> None:
        _checks.kt_record(account_id, record)

        async def job(conn: _Conn) -> None:
            stored = await conn.fetchval(
                "INSERT INTO kt_record (account_id, serial, idx, opening, device_list) "
                "VALUES ($1, $2, $3, $4, $5) "
                "ON CONFLICT (account_id, serial) DO NOTHING RETURNING true",
                account_id,
                record.serial,
                record.index,
                record.opening,
                record.device_list,
            )
            if stored is None:
                raise AlreadyExists("a key-directory record of this serial exists")

        await self._db.run("kt add", job)

    async def latest(self, account_id: bytes) -> KtRecord | None:
        _checks.account_id(account_id)

        async def job(conn: _Conn) -> KtRecord | None:
            row = await conn.fetchrow(
                "SELECT serial, idx, opening, device_list FROM kt_record "
                "WHERE account_id = $1 ORDER BY serial DESC LIMIT 1",
                account_id,
            )
            if row is None:
                return None
            return KtRecord(int(row[0]), int(row[1]), bytes(row[2]), bytes(row[3]))

        return await self._db.run("kt latest", job)


# ----------------------------------------------------------------------------- lawful access

_SELECT_WARRANT: Final = (
    "SELECT warrant_id, idx, token_hash, document, not_after, sealed_until, revocation, "
    "unsealed_idx FROM lawful_warrant "
)


def _warrant(row: asyncpg.Record) -> WarrantRecord:
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


class PostgresWarrantStore:
    """:class:`~overt.storage.interfaces.WarrantStore` on table ``lawful_warrant``."""

    def __init__(self, db: _Database) -> None:
        self._db = db

    async def add(self, record: WarrantRecord) -> None:
        _checks.warrant_record(record)

        async def job(conn: _Conn) -> None:
            stored = await conn.fetchval(
                "INSERT INTO lawful_warrant (warrant_id, idx, token_hash, document, not_after, "
                "sealed_until, revocation, unsealed_idx) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
                "ON CONFLICT (warrant_id) DO NOTHING RETURNING true",
                record.warrant_id, record.index, record.token_hash, record.document,
                record.not_after, record.sealed_until, record.revocation, record.unsealed_index,
            )  # fmt: skip
            if stored is None:
                raise AlreadyExists("a warrant with this id exists")

        await self._db.run("warrant add", job)

    async def get(self, warrant_id: bytes) -> WarrantRecord | None:
        _checks.warrant_id(warrant_id)

        async def job(conn: _Conn) -> WarrantRecord | None:
            row = await conn.fetchrow(_SELECT_WARRANT + "WHERE warrant_id = $1", warrant_id)
            return None if row is None else _warrant(row)

        return await self._db.run("warrant get", job)

    async def live(self, now: int) -> tuple[WarrantRecord, ...]:
        _checks.time_value(now)

        async def job(conn: _Conn) -> tuple[WarrantRecord, ...]:
            rows = await conn.fetch(
                _SELECT_WARRANT + "WHERE revocation IS NULL AND not_after > $1 "
                "ORDER BY idx LIMIT $2",
                now,
                LIVE_WARRANTS_MAX,
            )
            return tuple(_warrant(r) for r in rows)

        return await self._db.run("warrant live", job)

    async def revoke(self, warrant_id: bytes, revocation: bytes) -> bool:
        _checks.warrant_id(warrant_id)
        _checks.revocation(revocation)

        async def job(conn: _Conn) -> bool:
            done = await conn.fetchval(
                "UPDATE lawful_warrant SET revocation = $2 "
                "WHERE warrant_id = $1 AND revocation IS NULL RETURNING true",
                warrant_id,
                revocation,
            )
            if done is not None:
                return True
            if await conn.fetchval(
                "SELECT true FROM lawful_warrant WHERE warrant_id = $1", warrant_id
            ):
                return False
            raise NotFound("no such warrant")

        return await self._db.transaction("warrant revoke", job)

    async def due_for_unsealing(self, now: int, limit: int) -> tuple[WarrantRecord, ...]:
        _checks.time_value(now)
        _checks.warrant_page(limit)

        async def job(conn: _Conn) -> tuple[WarrantRecord, ...]:
            rows = await conn.fetch(
                _SELECT_WARRANT + "WHERE unsealed_idx IS NULL AND sealed_until <= $1 "
                "ORDER BY sealed_until, warrant_id LIMIT $2",
                now,
                limit,
            )
            return tuple(_warrant(r) for r in rows)

        return await self._db.run("warrant due", job)

    async def set_unsealed(self, warrant_id: bytes, index: int) -> None:
        _checks.warrant_id(warrant_id)
        _checks.log_index(index)

        async def job(conn: _Conn) -> None:
            done = await conn.fetchval(
                "UPDATE lawful_warrant SET unsealed_idx = $2 "
                "WHERE warrant_id = $1 AND unsealed_idx IS NULL RETURNING true",
                warrant_id,
                index,
            )
            if done is not None:
                return
            row = await conn.fetchrow(
                "SELECT unsealed_idx FROM lawful_warrant WHERE warrant_id = $1", warrant_id
            )
            if row is None:
                raise NotFound("no such warrant")
            if int(row[0]) != index:
                raise StorageConflict("the warrant's unsealing was recorded at another index")

        await self._db.transaction("warrant unsealed", job)


def _intercept(row: asyncpg.Record) -> Intercept:
    return Intercept(
        int(row[0]), bytes(row[1]), int(row[2]), int(row[3]), bytes(row[4]), int(row[5]),
        bytes(row[6]), int(row[7]), bytes(row[8]), MailKind(row[9]),
        None if row[10] is None else bytes(row[10]),
    )  # fmt: skip


class PostgresInterceptStore:
    """:class:`~overt.storage.interfaces.InterceptStore` on table ``lawful_intercept``; ids
    are drawn under :data:`INTERCEPT_ID_LOCK`, so they increase in commit order."""

    def __init__(self, db: _Database) -> None:
        self._db = db

    async def add(self, batch: Sequence[NewIntercept]) -> tuple[int, ...]:
        _checks.intercept_batch(batch)
        if not batch:
            return ()

        async def job(conn: _Conn) -> tuple[int, ...]:
            await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", *INTERCEPT_ID_LOCK)
            ids = []
            for i in batch:
                new_id = await conn.fetchval(
                    "INSERT INTO lawful_intercept (warrant_id, mail_id, server_time, "
                    "sender_account, sender_device, recipient_account, recipient_device, "
                    "envelope, kind, membership) "
                    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
                    i.warrant_id, i.mail_id, i.server_time, i.sender_account, i.sender_device,
                    i.recipient_account, i.recipient_device, i.envelope, i.kind.value,
                    i.membership,
                )  # fmt: skip
                ids.append(int(new_id))
            return tuple(ids)

        return await self._db.transaction("intercept add", job)

    async def page(self, warrant_id: bytes, after_id: int, limit: int) -> tuple[Intercept, ...]:
        _checks.intercept_page(warrant_id, after_id, limit)

        async def job(conn: _Conn) -> tuple[Intercept, ...]:
            rows = await conn.fetch(
                "SELECT id, warrant_id, mail_id, server_time, sender_account, sender_device, "
                "recipient_account, recipient_device, envelope, kind, membership "
                "FROM lawful_intercept WHERE warrant_id = $1 AND id > $2 ORDER BY id LIMIT $3",
                warrant_id,
                after_id,
                limit,
            )
            return tuple(_intercept(r) for r in rows)

        return await self._db.run("intercept page", job)

    async def count(self, warrant_id: bytes) -> int:
        _checks.warrant_id(warrant_id)

        async def job(conn: _Conn) -> int:
            n = await conn.fetchval(
                "SELECT count(*) FROM lawful_intercept WHERE warrant_id = $1", warrant_id
            )
            return int(n)

        return await self._db.run("intercept count", job)


class PostgresEpochStore:
    """:class:`~overt.storage.interfaces.EpochStore` on table ``lawful_epoch``."""

    def __init__(self, db: _Database) -> None:
        self._db = db

    async def add(self, record: EpochRecord) -> None:
        _checks.epoch_record(record)

        async def job(conn: _Conn) -> None:
            stored = await conn.fetchval(
                "INSERT INTO lawful_epoch (epoch, idx, transcript, confirmations) "
                "VALUES ($1, $2, $3, $4) ON CONFLICT (epoch) DO NOTHING RETURNING true",
                record.epoch,
                record.index,
                record.transcript,
                record.confirmations,
            )
            if stored is None:
                raise AlreadyExists("this epoch has a record")

        await self._db.run("epoch add", job)

    async def get(self, epoch: int) -> EpochRecord | None:
        _checks.epoch(epoch)

        async def job(conn: _Conn) -> EpochRecord | None:
            row = await conn.fetchrow(
                "SELECT epoch, idx, transcript, confirmations FROM lawful_epoch WHERE epoch = $1",
                epoch,
            )
            return None if row is None else _epoch_record(row)

        return await self._db.run("epoch get", job)

    async def latest(self, limit: int) -> tuple[EpochRecord, ...]:
        _checks.epoch_page(limit)

        async def job(conn: _Conn) -> tuple[EpochRecord, ...]:
            rows = await conn.fetch(
                "SELECT epoch, idx, transcript, confirmations FROM lawful_epoch "
                "ORDER BY epoch DESC LIMIT $1",
                limit,
            )
            return tuple(_epoch_record(r) for r in rows)

        return await self._db.run("epoch latest", job)


def _epoch_record(row: asyncpg.Record) -> EpochRecord:
    confirmations = None if row[3] is None else bytes(row[3])
    return EpochRecord(int(row[0]), int(row[1]), bytes(row[2]), confirmations)


# ----------------------------------------------------------------------------- factory


async def open_postgres(
    dsn: str,
    *,
    limits: StorageLimits | None = None,
    min_size: int = POOL_MIN_SIZE,
    max_size: int = POOL_MAX_SIZE,
    lock_timeout_ms: int = LOCK_TIMEOUT_MS,
) -> Storage:
    """Connect a pool to the database at ``dsn`` (``postgresql://user@host:port/db``, query
    parameters become session settings, e.g. ``?search_path=overt``) and migrate it if needed.

    Raises ``ConfigurationError`` for bad pool sizes, ``StorageUnavailable`` if the server
    cannot be reached (or another node's migration does not finish in time) and
    ``StorageError`` if the database is not usable (authentication refused, no such database,
    schema newer than this build, server too old).
    """
    limits = StorageLimits() if limits is None else limits
    if not 0 <= min_size <= max_size or max_size < 1 or lock_timeout_ms < 0:
        raise ConfigurationError("pool sizes need 0 <= min_size <= max_size, max_size >= 1")
    try:
        pool: asyncpg.Pool[asyncpg.Record] = await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            timeout=CONNECT_TIMEOUT_S,
            reset=_keep_session,
            server_settings=_server_settings(dsn, lock_timeout_ms),
        )
    except _FOREIGN as e:
        raise _mapped(e, "open", verbose=True) from e
    try:
        try:
            async with pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
                version = conn.get_server_version()
                if (version.major, version.minor) < POSTGRES_MIN_VERSION:
                    raise StorageError(
                        f"PostgreSQL {version.major}.{version.minor} is too old; Overt needs "
                        f"{'.'.join(map(str, POSTGRES_MIN_VERSION))} or later"
                    )
                await apply_migrations(conn)
        except _FOREIGN as e:
            raise _mapped(e, "open", verbose=True) from e
    except BaseException:
        pool.terminate()
        raise
    db = _Database(pool)
    return Storage(
        accounts=PostgresAccountStore(db),
        prekeys=PostgresPrekeyStore(db, limits),
        mailboxes=PostgresMailboxStore(db, limits),
        blobs=PostgresBlobStore(db, limits),
        log=PostgresLogStore(db),
        kt=PostgresKtStore(db),
        warrants=PostgresWarrantStore(db),
        intercepts=PostgresInterceptStore(db),
        epochs=PostgresEpochStore(db),
        reports=PostgresReportStore(db),
        standing=PostgresStandingStore(db),
        moderators=PostgresModeratorStore(db),
        groups=PostgresGroupStore(db),
        matching=PostgresMatchingStore(db),
        _close=db.close,
    )
