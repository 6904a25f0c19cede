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

from overt.client.store import (
    _MESSAGE_FIELDS,
    _MESSAGE_PLACEHOLDERS,
    Direction,
    Failure,
    Store,
    _b,
    _decoding,
    _i,
    _message_fields,
    _message_values,
    _ob,
    _put_failure,
)
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


_MESSAGE_COLUMNS = f"group_id, {_MESSAGE_FIELDS}, message"


def _message(row: tuple[object, ...]) -> StoredGroupMessage:
    return StoredGroupMessage(_b(row[0]), *_message_fields(row[1:-1]), _b(row[-1]))


class GroupStore:
    """The group tables of one profile's :class:`Store` (see the module docstring)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    # -- groups ---------------------------------------------------------------------------

    def group(self, group_id: bytes) -> GroupRecord | None:
        row = self._store._one(
            "read a group",
            "SELECT state, sender_key, status, joined_ms, last_ms FROM groups WHERE group_id = ?",
            (group_id,),
        )
        return None if row is None else self._record(row)

    def groups(self) -> list[GroupRecord]:
        """Every group, most recently active first."""
        rows = self._store._all(
            "read groups",
            "SELECT state, sender_key, status, joined_ms, last_ms FROM groups "
            "ORDER BY last_ms DESC, group_id",
        )
        return [self._record(r) for r in rows]

    def _record(self, row: tuple[object, ...]) -> GroupRecord:
        state, key, status, joined, last = row
        with _decoding(f"a group in {self._store.path} does not decode"):
            return GroupRecord(
                GroupState.decode(_b(state)),
                None if key is None else SenderKey.decode(_b(key)),
                GroupStatus(str(status)),
                _i(joined),
                _i(last),
            )

    def holders(self, group_id: bytes) -> set[Address]:
        rows = self._store._all(
            "read a group",
            "SELECT account, device FROM group_key_holders WHERE group_id = ?",
            (group_id,),
        )
        return {Address(_b(a), _i(d)) for a, d in rows}

    def updates(self, group_id: bytes) -> list[tuple[int, bytes, int]]:
        """``(version, update bytes, recorded_ms)`` of every stored update, ascending."""
        rows = self._store._all(
            "read a group's history",
            "SELECT version, update_bytes, recorded_ms FROM group_updates "
            "WHERE group_id = ? ORDER BY version",
            (group_id,),
        )
        return [(_i(v), _b(u), _i(t)) for v, u, t in rows]

    def commit(self, c: Commit) -> bool:
        """Everything one step changes, in one transaction. Returns whether a new message row
        was stored (False if it was already there: a duplicate)."""
        with self._store._write("store a group's state") as db:
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
                _put_failure(db, c.failure)
            if c.done is not None:
                db.execute("DELETE FROM group_inbox WHERE seq = ?", (c.done,))
            return inserted

    def save_sender_key(self, group_id: bytes, key: SenderKey) -> None:
        """Persist the advanced sender key (before its message goes out: a message key is
        never used for two ciphertexts)."""
        with self._store._write("store a sender key") as db:
            db.execute(
                "UPDATE groups SET sender_key = ? WHERE group_id = ?", (key.encode(), group_id)
            )

    # -- messages -------------------------------------------------------------------------

    def history(self, group_id: bytes, limit: int) -> list[StoredGroupMessage]:
        """The last ``limit`` messages of a group, oldest first."""
        rows = self._store._all(
            "read group messages",
            f"SELECT {_MESSAGE_COLUMNS} FROM group_messages "  # noqa: S608
            "WHERE group_id = ? ORDER BY seq DESC LIMIT ?",
            (group_id, max(0, limit)),
        )
        return [_message(r) for r in reversed(rows)]

    def message(
        self, group_id: bytes, sender_account: bytes, message_id: bytes
    ) -> StoredGroupMessage | None:
        row = self._store._one(
            "read group messages",
            f"SELECT {_MESSAGE_COLUMNS} FROM group_messages "  # noqa: S608
            "WHERE group_id = ? AND sender_account = ? AND message_id = ?",
            (group_id, sender_account, message_id),
        )
        return None if row is None else _message(row)

    def received(self, group_id: bytes, message_id: bytes) -> list[StoredGroupMessage]:
        """The messages of ``group_id`` with ``message_id`` that this device received (one,
        unless two senders chose the same id)."""
        rows = self._store._all(
            "read group messages",
            f"SELECT {_MESSAGE_COLUMNS} FROM group_messages "  # noqa: S608
            "WHERE group_id = ? AND message_id = ? AND direction = 'in' ORDER BY seq",
            (group_id, message_id),
        )
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
        rows = self._store._all(
            "read group input",
            "SELECT seq, server_id, kind, group_id, sender_account, sender_device, "
            "server_time_ms, reporting_tag, data, received_ms FROM group_inbox ORDER BY seq",
        )
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
        row = self._store._one("read group input", "SELECT count(*) FROM group_inbox")
        return 0 if row is None else _i(row[0])


def _put_message(db: sqlite3.Connection, m: StoredGroupMessage) -> bool:
    cur = db.execute(
        f"INSERT OR IGNORE INTO group_messages ({_MESSAGE_COLUMNS}) "  # noqa: S608
        f"VALUES (?, {_MESSAGE_PLACEHOLDERS}, ?)",
        (m.group_id, *_message_values(m), m.message),
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
