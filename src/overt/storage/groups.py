"""The group store: each group's append-only history of membership updates.

One small Protocol, :class:`GroupStore`, bundled in :class:`~overt.storage.interfaces.Storage`
as ``groups`` (``None`` on a backend without it). Per group id (32 opaque bytes) it keeps every
accepted update in version order — version 1 first, each next one exactly one higher — with
the 32-byte hash that names the member set of that version and the accounts the version
lists. The *current* view of a group is its highest version.

What the relay needs of it:

* :meth:`GroupStore.append` adds version ``v + 1`` on top of version ``v`` (or version 1 of a
  new group) and nothing else: a compare-and-append, so two admins racing to write the same
  version cannot both win, on any node. Updates are never changed or removed.
* :meth:`GroupStore.latest` and :meth:`GroupStore.updates` read the current view and the
  history after a version, a page at a time.
* :meth:`GroupStore.was_member` answers whether an account is named in any stored version (a
  removed member may still read the history that removed it).

Like every store here it keeps opaque values: the update bytes and the member-set hash are
never parsed; the caller (the relay's :mod:`overt.server.groups`) decodes and verifies updates
and passes in the accounts each one names. The conventions of
:mod:`overt.storage.interfaces` hold: every call is atomic, ``None`` means absent, an exception
means failure, records are frozen and their ``repr`` leaves out the update bytes.

This module knows no SQL and no protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Protocol

from overt.errors import LimitExceeded
from overt.storage._argcheck import fixed
from overt.storage.errors import InvalidArgument
from overt.storage.limits import (
    ACCOUNT_ID_MAX_LEN,
    GROUP_ACCOUNTS_MAX,
    GROUP_ID_LEN,
    GROUP_SET_HASH_LEN,
    GROUP_UPDATE_MAX_LEN,
    GROUP_UPDATES_PAGE_MAX,
    INT64_MAX,
)

# ----------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class NewGroupUpdate:
    """One update to append: its version, the hash of its member set, its bytes, and the
    accounts it lists (sorted, without repeats; they index :meth:`GroupStore.was_member`)."""

    group_id: bytes
    version: int
    member_set_hash: bytes
    update: bytes = field(repr=False)
    accounts: tuple[bytes, ...] = field(repr=False)


@dataclass(frozen=True, slots=True)
class GroupUpdate:
    """One stored update of a group."""

    group_id: bytes
    version: int
    member_set_hash: bytes
    update: bytes = field(repr=False)


# ----------------------------------------------------------------------------- the store


class GroupStore(Protocol):
    """Per group, the append-only history of its membership updates."""

    async def append(self, record: NewGroupUpdate) -> None:
        """Store ``record`` as the group's next version.

        Succeeds only if the group's highest stored version is ``record.version - 1`` (no
        version for ``record.version == 1``); otherwise raises ``StorageConflict`` and stores
        nothing (another writer appended first, or the version skips or repeats one).
        ``InvalidArgument`` / ``LimitExceeded`` for values out of bounds.
        """
        ...

    async def latest(self, group_id: bytes) -> GroupUpdate | None:
        """The group's update with the highest version, or ``None`` for an unknown group."""
        ...

    async def updates(
        self, group_id: bytes, after_version: int, limit: int
    ) -> tuple[GroupUpdate, ...]:
        """Up to ``limit`` (at most ``GROUP_UPDATES_PAGE_MAX``) updates with versions above
        ``after_version``, in ascending version order (empty for an unknown group)."""
        ...

    async def was_member(self, group_id: bytes, account: bytes) -> bool:
        """Whether any stored version of the group lists ``account``."""
        ...


# ----------------------------------------------------------------------------- argument checks
#
# Shared by every backend, so that all of them refuse the same inputs.


def _int(value: int, low: int, high: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidArgument(f"{what} must be an integer in {low}..{high}")


def check_group_id(group_id: bytes) -> None:
    fixed(group_id, GROUP_ID_LEN, "a group id")


def check_account(account: bytes) -> None:
    if not isinstance(account, bytes) or not 1 <= len(account) <= ACCOUNT_ID_MAX_LEN:
        raise InvalidArgument(f"an account id must be 1..{ACCOUNT_ID_MAX_LEN} bytes")


def check_new_update(record: NewGroupUpdate) -> None:
    if not isinstance(record, NewGroupUpdate):
        raise InvalidArgument("expected a NewGroupUpdate")
    check_group_id(record.group_id)
    _int(record.version, 1, INT64_MAX, "a group version")
    fixed(record.member_set_hash, GROUP_SET_HASH_LEN, "a member-set hash")
    if not isinstance(record.update, bytes) or not record.update:
        raise InvalidArgument("an update must be non-empty bytes")
    if len(record.update) > GROUP_UPDATE_MAX_LEN:
        raise LimitExceeded(f"a group update is longer than {GROUP_UPDATE_MAX_LEN} bytes")
    accounts: Sequence[bytes] = record.accounts
    if not isinstance(accounts, tuple) or not accounts:
        raise InvalidArgument("an update lists a non-empty tuple of accounts")
    if len(accounts) > GROUP_ACCOUNTS_MAX:
        raise LimitExceeded(f"a group update lists at most {GROUP_ACCOUNTS_MAX} accounts")
    for account in accounts:
        check_account(account)
    if any(a >= b for a, b in pairwise(accounts)):
        raise InvalidArgument("an update's accounts must be sorted without repeats")


def check_page(after_version: int, limit: int) -> None:
    _int(after_version, 0, INT64_MAX, "a group version")
    _int(limit, 1, GROUP_UPDATES_PAGE_MAX, "a page size of group updates")


__all__ = [
    "GroupStore",
    "GroupUpdate",
    "NewGroupUpdate",
    "check_account",
    "check_group_id",
    "check_new_update",
    "check_page",
]
