"""The in-memory reference of the group store (:mod:`overt.storage.groups`).

Plain dicts on one event loop, nothing durable; each call runs to its end without awaiting, so
it is atomic by construction. ``check_open`` is the owning :class:`Storage`'s lifetime check
(every call after close raises ``StorageUnavailable``).
"""

from __future__ import annotations

from collections.abc import Callable

from overt.storage import groups as g
from overt.storage.errors import StorageConflict
from overt.storage.groups import GroupUpdate, NewGroupUpdate


class MemoryGroupStore:
    """:class:`~overt.storage.groups.GroupStore` in dicts."""

    def __init__(self, check_open: Callable[[], None]) -> None:
        self._check = check_open
        self._history: dict[bytes, list[GroupUpdate]] = {}
        self._members: dict[bytes, set[bytes]] = {}

    async def append(self, record: NewGroupUpdate) -> None:
        self._check()
        g.check_new_update(record)
        history = self._history.get(record.group_id, [])
        if len(history) != record.version - 1:
            raise StorageConflict(
                "the group is not at the version this update follows: read it again"
            )
        stored = GroupUpdate(record.group_id, record.version, record.member_set_hash, record.update)
        self._history.setdefault(record.group_id, history).append(stored)
        self._members.setdefault(record.group_id, set()).update(record.accounts)

    async def latest(self, group_id: bytes) -> GroupUpdate | None:
        self._check()
        g.check_group_id(group_id)
        history = self._history.get(group_id)
        return history[-1] if history else None

    async def updates(
        self, group_id: bytes, after_version: int, limit: int
    ) -> tuple[GroupUpdate, ...]:
        self._check()
        g.check_group_id(group_id)
        g.check_page(after_version, limit)
        history = self._history.get(group_id, [])
        return tuple(history[after_version : after_version + limit])

    async def was_member(self, group_id: bytes, account: bytes) -> bool:
        self._check()
        g.check_group_id(group_id)
        g.check_account(account)
        return account in self._members.get(group_id, ())
