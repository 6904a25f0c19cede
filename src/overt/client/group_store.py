"""The client's group state in the profile's SQLite file (the tables of the groups migration in
:mod:`overt.client.store`).

Per group: the :class:`~overt.protocol.groups.GroupState` record (this device's verified view
and the other devices' sender keys), this device's own
:class:`~overt.protocol.groups.SenderKey` record and the devices it was given to, the signed
membership history, the messages a person sees, and an inbox of group input not processed yet.
Records are the protocol's versioned bytes, never pickle.

**Atomicity.** Every write is one transaction of the profile's store; :meth:`GroupStore.commit`
writes a new state, the sender key, history, a message or a failure and removes the inbox
item it came from, all or nothing, so a crash between the steps leaves the group as it was and
the item is processed again. Group input that arrives over a pairwise session is written by
:meth:`GroupStore.inbox_writer` inside the transaction that advances the session
(:meth:`Store.commit_received`), so it is never lost once the mail is acknowledged.

This module never sees the network or a clock: times come from the caller.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from overt.client.errors import StoreError
from overt.client.store import Direction, Failure, Store, _b, _guard, _i, _ob, _oi
from overt.errors import DecodeError
from overt.protocol.groups import GroupState, SenderKey
from overt.wire import Address


class GroupStatus(StrEnum):
    #: This device reads and sends in the group.
    MEMBER = "member"
    #: This account asked to leave; nothing is read or sent any more.
    LEFT = "left"
    #: An admin removed this device (or its account) from the group.
    REMOVED = "removed"


class InboxKind(StrEnum):
    UPDATE = "update"
    KEY = "key"
    LEAVE = "leave"
    MESSAGE = "message"


@dataclass(frozen=True, slots=True, eq=False)
class GroupRecord:
    """One row of ``groups``, decoded."""

    state: GroupState
    sender_key: SenderKey | None
    status: GroupStatus
    joined_ms: int
    last_ms: int

    @property
    def group_id(self) -> bytes:
        return self.state.group_id

    @property
    def active(self) -> bool:
        return self.status is GroupStatus.MEMBER and self.state.is_member


@dataclass(frozen=True, slots=True)
class InboxItem:
    """Group input waiting to be processed (``group_inbox``)."""

    seq: int
    server_id: int
    kind: InboxKind
    group_id: bytes
    sender: Address
    server_time_ms: int
    reporting_tag: bytes | None = field(repr=False)
    data: bytes = field(repr=False)
    received_ms: int

    def failure(self, reason: str, now_ms: int) -> Failure:
        return Failure(self.server_id, self.sender, self.server_time_ms, reason, now_ms)


@dataclass(frozen=True, slots=True)
class StoredGroupMessage:
    """One row of ``group_messages``."""

    group_id: bytes
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
    message: bytes = field(repr=False)
    """The :class:`~overt.wire.group_messages.GroupMessage` as sent (for reports)."""


@dataclass(frozen=True, slots=True)
class Commit:
    """What one step of group processing changes (see :meth:`GroupStore.commit`)."""

    group_id: bytes
    now_ms: int
    state: GroupState | None = None
    status: GroupStatus | None = None
    #: A new own sender key (``holders`` then lists who has it; None keeps the key).
    sender_key: SenderKey | None = None
    drop_sender_key: bool = False
    holders: Iterable[Address] | None = None
    add_holders: Iterable[Address] = ()
    updates: Iterable[tuple[int, bytes]] = ()
    message: StoredGroupMessage | None = None
    failure: Failure | None = None
    done: int | None = None
    """The inbox item (``seq``) this step finished."""
    new_group: bool = False


_MESSAGE_COLUMNS = (
    "group_id, message_id, sender_account, sender_device, direction, kind, body, text, "
    "attachment, sent_ms, stored_ms, server_id, server_time_ms, reporting_tag, franking_key, "
    "message"
)


def _message(row: tuple[object, ...]) -> StoredGroupMessage:
    (gid, mid, s_acc, s_dev, direction, kind, body, text, att, sent, stored, sid, stime, tag,
     fk, msg) = row  # fmt: skip
    return StoredGroupMessage(
        _b(gid),
        _b(mid),
        Address(_b(s_acc), _i(s_dev)),
        Direction(str(direction)),
        _i(kind),
        _b(body),
        str(text),
        _ob(att),
        _i(sent),
        _i(stored),
        _oi(sid),
        _oi(stime),
        _ob(tag),
        _b(fk),
        _b(msg),
    )


class GroupStore:
    """The group tables of one profile's :class:`Store` (see the module docstring)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    @property
    def _db(self) -> sqlite3.Connection:
        return self._store._db

    # -- groups ---------------------------------------------------------------------------

    def group(self, group_id: bytes) -> GroupRecord | None:
        with _guard("read a group"):
            row = self._db.execute(
                "SELECT state, sender_key, status, joined_ms, last_ms FROM groups "
                "WHERE group_id = ?",
                (group_id,),
            ).fetchone()
        return None if row is None else self._record(row)

    def groups(self) -> list[GroupRecord]:
        """Every group, most recently active first."""
        with _guard("read groups"):
            rows = self._db.execute(
                "SELECT state, sender_key, status, joined_ms, last_ms FROM groups "
                "ORDER BY last_ms DESC, group_id"
            ).fetchall()
        return [self._record(r) for r in rows]

    def _record(self, row: tuple[object, ...]) -> GroupRecord:
        state, key, status, joined, last = row
        try:
            return GroupRecord(
                GroupState.decode(_b(state)),
                None if key is None else SenderKey.decode(_b(key)),
                GroupStatus(str(status)),
                _i(joined),
                _i(last),
            )
        except (DecodeError, ValueError) as exc:
            raise StoreError(
                f"a group in {self._store.path} does not decode; the profile is damaged"
            ) from exc

    def holders(self, group_id: bytes) -> set[Address]:
        with _guard("read a group"):
            rows = self._db.execute(
                "SELECT account, device FROM group_key_holders WHERE group_id = ?", (group_id,)
            ).fetchall()
        return {Address(_b(a), _i(d)) for a, d in rows}

    def updates(self, group_id: bytes) -> list[tuple[int, bytes, int]]:
        """``(version, update bytes, recorded_ms)`` of every stored update, ascending."""
        with _guard("read a group's history"):
            rows = self._db.execute(
                "SELECT version, update_bytes, recorded_ms FROM group_updates "
                "WHERE group_id = ? ORDER BY version",
                (group_id,),
            ).fetchall()
        return [(_i(v), _b(u), _i(t)) for v, u, t in rows]

    def commit(self, c: Commit) -> bool:
        """Everything one step changes, in one transaction. Returns whether a new message row
        was stored (False if it was already there: a duplicate)."""
        with _guard("store a group's state"), self._store._tx() as db:
            if c.state is not None:
                if c.new_group:
                    db.execute(
                        "INSERT INTO groups (group_id, state, sender_key, status, joined_ms, "
                        "last_ms) VALUES (?, ?, NULL, ?, ?, ?) ON CONFLICT (group_id) DO "
                        "UPDATE SET state = excluded.state, status = excluded.status",
                        (
                            c.group_id,
                            c.state.encode(),
                            str(c.status or GroupStatus.MEMBER),
                            c.now_ms,
                            c.now_ms,
                        ),
                    )
                else:
                    db.execute(
                        "UPDATE groups SET state = ? WHERE group_id = ?",
                        (c.state.encode(), c.group_id),
                    )
            if c.status is not None and not c.new_group:
                db.execute(
                    "UPDATE groups SET status = ? WHERE group_id = ?", (str(c.status), c.group_id)
                )
            if c.drop_sender_key:
                db.execute("UPDATE groups SET sender_key = NULL WHERE group_id = ?", (c.group_id,))
                db.execute("DELETE FROM group_key_holders WHERE group_id = ?", (c.group_id,))
            if c.sender_key is not None:
                db.execute(
                    "UPDATE groups SET sender_key = ? WHERE group_id = ?",
                    (c.sender_key.encode(), c.group_id),
                )
            if c.holders is not None:
                db.execute("DELETE FROM group_key_holders WHERE group_id = ?", (c.group_id,))
            for a in [*(c.holders or ()), *c.add_holders]:
                db.execute(
                    "INSERT OR IGNORE INTO group_key_holders (group_id, account, device) "
                    "VALUES (?, ?, ?)",
                    (c.group_id, a.account, a.device),
                )
            for version, update in c.updates:
                db.execute(
                    "INSERT OR IGNORE INTO group_updates (group_id, version, update_bytes, "
                    "recorded_ms) VALUES (?, ?, ?, ?)",
                    (c.group_id, version, update, c.now_ms),
                )
            inserted = False
            if c.message is not None:
                inserted = _put_message(db, c.message)
                if inserted:
                    db.execute(
                        "UPDATE groups SET last_ms = max(last_ms, ?) WHERE group_id = ?",
                        (c.message.stored_ms, c.group_id),
                    )
            if c.failure is not None:
                f = c.failure
                db.execute(
                    "INSERT INTO undecryptable (server_id, sender_account, sender_device, "
                    "server_time_ms, reason, recorded_ms) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        f.server_id,
                        f.sender.account,
                        f.sender.device,
                        f.server_time_ms,
                        f.reason,
                        f.recorded_ms,
                    ),
                )
            if c.done is not None:
                db.execute("DELETE FROM group_inbox WHERE seq = ?", (c.done,))
            return inserted

    def save_sender_key(self, group_id: bytes, key: SenderKey) -> None:
        """Persist the advanced sender key (before its message goes out: a message key is
        never used for two ciphertexts)."""
        with _guard("store a sender key"), self._store._tx() as db:
            db.execute(
                "UPDATE groups SET sender_key = ? WHERE group_id = ?", (key.encode(), group_id)
            )

    # -- messages -------------------------------------------------------------------------

    def history(self, group_id: bytes, limit: int) -> list[StoredGroupMessage]:
        """The last ``limit`` messages of a group, oldest first."""
        with _guard("read group messages"):
            rows = self._db.execute(
                f"SELECT {_MESSAGE_COLUMNS} FROM group_messages "  # noqa: S608
                "WHERE group_id = ? ORDER BY seq DESC LIMIT ?",
                (group_id, max(0, limit)),
            ).fetchall()
        return [_message(r) for r in reversed(rows)]

    def message(
        self, group_id: bytes, sender_account: bytes, message_id: bytes
    ) -> StoredGroupMessage | None:
        with _guard("read group messages"):
            row = self._db.execute(
                f"SELECT {_MESSAGE_COLUMNS} FROM group_messages "  # noqa: S608
                "WHERE group_id = ? AND sender_account = ? AND message_id = ?",
                (group_id, sender_account, message_id),
            ).fetchone()
        return None if row is None else _message(row)

    def received(self, group_id: bytes, message_id: bytes) -> list[StoredGroupMessage]:
        """The messages of ``group_id`` with ``message_id`` that this device received (one,
        unless two senders chose the same id)."""
        with _guard("read group messages"):
            rows = self._db.execute(
                f"SELECT {_MESSAGE_COLUMNS} FROM group_messages "  # noqa: S608
                "WHERE group_id = ? AND message_id = ? AND direction = 'in' ORDER BY seq",
                (group_id, message_id),
            ).fetchall()
        return [_message(r) for r in rows]

    # -- inbox ----------------------------------------------------------------------------

    @staticmethod
    def inbox_writer(
        server_id: int,
        kind: InboxKind,
        group_id: bytes,
        sender: Address,
        server_time_ms: int,
        reporting_tag: bytes | None,
        data: bytes,
        now_ms: int,
    ) -> Callable[[sqlite3.Connection], object]:
        """A write of one inbox item, for the transaction of :meth:`Store.commit_received`."""

        def write(db: sqlite3.Connection) -> object:
            return db.execute(
                "INSERT OR IGNORE INTO group_inbox (server_id, kind, group_id, sender_account, "
                "sender_device, server_time_ms, reporting_tag, data, received_ms) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    server_id,
                    str(kind),
                    group_id,
                    sender.account,
                    sender.device,
                    server_time_ms,
                    reporting_tag,
                    data,
                    now_ms,
                ),
            )

        return write

    def inbox(self) -> list[InboxItem]:
        """Every waiting item, in arrival order."""
        with _guard("read group input"):
            rows = self._db.execute(
                "SELECT seq, server_id, kind, group_id, sender_account, sender_device, "
                "server_time_ms, reporting_tag, data, received_ms FROM group_inbox ORDER BY seq"
            ).fetchall()
        return [
            InboxItem(
                _i(seq),
                _i(sid),
                InboxKind(str(kind)),
                _b(gid),
                Address(_b(a), _i(d)),
                _i(t),
                _ob(tag),
                _b(data),
                _i(rec),
            )
            for seq, sid, kind, gid, a, d, t, tag, data, rec in rows
        ]

    def inbox_size(self) -> int:
        with _guard("read group input"):
            row = self._db.execute("SELECT count(*) FROM group_inbox").fetchone()
        return 0 if row is None else _i(row[0])


def _put_message(db: sqlite3.Connection, m: StoredGroupMessage) -> bool:
    cur = db.execute(
        "INSERT OR IGNORE INTO group_messages (group_id, message_id, sender_account, "
        "sender_device, direction, kind, body, text, attachment, sent_ms, stored_ms, server_id, "
        "server_time_ms, reporting_tag, franking_key, message) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            m.group_id,
            m.message_id,
            m.sender.account,
            m.sender.device,
            str(m.direction),
            m.kind,
            m.body,
            m.text,
            m.attachment,
            m.sent_ms,
            m.stored_ms,
            m.server_id,
            m.server_time_ms,
            m.reporting_tag,
            m.franking_key,
            m.message,
        ),
    )
    return cur.rowcount == 1


__all__ = [
    "Commit",
    "GroupRecord",
    "GroupStatus",
    "GroupStore",
    "InboxItem",
    "InboxKind",
    "StoredGroupMessage",
]
