"""Group conversations on the client: Sender Keys (:mod:`overt.protocol.groups`) over the
server's group routes (docs/api.md, "Groups") and the pairwise sessions.

What goes where:

* **Membership** is a signed, versioned view. An admin's device that holds the account key
  signs each change (:func:`~overt.protocol.groups.create_group`,
  :func:`~overt.protocol.groups.propose_membership`), stores it on the server
  (``PUT /v1/groups/{id}``), applies it itself and sends it to every member account — and to
  removed ones, so that they learn it — as a :attr:`~overt.client.body.BodyKind.GROUP_UPDATE`
  body over the pairwise sessions. Every change lists each member's devices as its verified
  (key-transparency) device list has them now. A device that misses an update catches up with
  ``GET /v1/groups/{id}?after=N`` and checks every update it applies (signature by an admin of
  the view before it, parent hash, version).
* **Sender keys** are made lazily: before its first message under a view, and again after a
  change that removed a device (:func:`~overt.protocol.groups.needs_rekey`), a device makes a
  new sender key and gives it to every member device (a
  :attr:`~overt.client.body.BodyKind.GROUP_KEY` body); devices added later get the current key
  at its current iteration before the next message. The advanced key is stored *before* the
  message goes out, so a message key is never used twice.
* **Messages** are one ciphertext (:func:`~overt.protocol.groups.group_encrypt`, with the access
  field under policy ``escrow``) that the server fans out as mail of kind ``group``, each copy
  with its recipient's own reporting tag. ``409 stale_group`` means the view moved: the client
  applies the server's view and tries once more.
* **Receiving.** Group input (updates, keys and leave requests from the pairwise sessions, and
  group mail) is first written to the profile's group inbox in the transaction that
  acknowledges the mail, then processed in order: each step stages the new
  :class:`~overt.protocol.groups.GroupState` and commits it with what it produced, so a failed
  decrypt changes nothing. A message under a view newer than this device's triggers a catch-up;
  one whose sender key has not arrived yet waits (at most :data:`GROUP_INBOX_WAIT_MS`). A
  device removed from the group stops reading and marks it; a device whose account leaves
  asks the admins to remove it (a :attr:`~overt.client.body.BodyKind.GROUP_LEAVE` body) and
  stops at once. A device added back joins afresh from the update that lists it, right after
  the catch-up that applied its removal; while such an update waits in the inbox, keys and
  messages under newer views wait for it too instead of being dropped.

Logs name group ids (a prefix), versions and reason classes; never bodies or keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from typing import TYPE_CHECKING, Final

from overt.client import _api
from overt.client._b64 import b64e
from overt.client.body import GROUP_BODY_KINDS, AttachmentPointer, Body, BodyKind, access_kind
from overt.client.errors import (
    BadResponse,
    Forbidden,
    NotFound,
    NotInLog,
    ProfileStateError,
    RateLimited,
    ServerUnreachable,
    StaleDevices,
    StaleGroup,
    UnknownAccount,
)
from overt.client.group_store import (
    Commit,
    GroupRecord,
    GroupStatus,
    GroupStore,
    InboxItem,
    InboxKind,
    StoredGroupMessage,
)
from overt.client.limits import (
    GROUP_INBOX_WAIT_MS,
    MAX_GROUP_INBOX,
    MAX_GROUP_VIEW_PAGES,
    MAX_PAIRWISE_ENVELOPES,
    MAX_SEND_ATTEMPTS,
)
from overt.client.model import (
    FailureReason,
    GroupInfo,
    GroupMemberInfo,
    Message,
    account_of,
    name_of,
)
from overt.client.store import Direction, Failure
from overt.crypto import Ed25519PublicKey
from overt.errors import (
    DecodeError,
    DuplicateMessage,
    InvalidMessage,
    LimitExceeded,
    LocalError,
    PolicyViolation,
    ProtocolViolation,
    UnknownSession,
    UntrustedIdentity,
)
from overt.protocol.access import AccessKind
from overt.protocol.groups import (
    GroupState,
    Membership,
    MembershipUpdate,
    SenderKey,
    SenderKeyDistribution,
    apply_membership,
    create_group,
    create_sender_key,
    group_decrypt,
    group_encrypt,
    join_group,
    needs_rekey,
    process_distribution,
    propose_membership,
)
from overt.protocol.identity import AccountIdentity
from overt.protocol.limits import MAX_GROUP_MEMBERS
from overt.wire import MESSAGE_ID_LEN, Address
from overt.wire.group_messages import MAX_GROUP_NAME_LEN, GroupMessage

if TYPE_CHECKING:
    from overt.client.client import Client
    from overt.client.store import Profile

log = logging.getLogger("overt.client.groups")

#: How many times one :meth:`Groups.drain` goes over the inbox while items keep making
#: progress (a key that arrives lets a waiting message through on the next pass).
_DRAIN_PASSES: Final = 4
#: Shortest id prefix accepted as a group reference.
_MIN_REF_CHARS: Final = 4


class _Outcome(Enum):
    DONE = "done"  # finished (stored, dropped or recorded as a failure)
    WAIT = "wait"  # cannot be processed yet; stays in the inbox


# ----------------------------------------------------------------------------- API views


@dataclass(frozen=True, slots=True)
class GroupView:
    """The server's ``GroupView`` (docs/api.md)."""

    group_id: bytes
    version: int
    member_set_hash: bytes
    updates: tuple[bytes, ...]
    devices_changed: bool
    #: More updates follow this page (ask again after the last one).
    more: bool = False


def parse_group_view(value: object) -> GroupView:
    what = "group view"
    o = _api.obj(value, what)
    updates = tuple(_api.b64_value(u, f"{what}: update") for u in _api.array(o, "updates", what))
    return GroupView(
        _api.binary(o, "group_id", what),
        _api.integer(o, "version", what),
        _api.binary(o, "member_set_hash", what),
        updates,
        _api.boolean(o, "devices_changed", what),
        bool(o.get("more", False)),
    )


@dataclass(frozen=True, slots=True)
class GroupSent:
    """``POST /v1/groups/{id}/messages``: ids, recipients, server time, devices changed."""

    ids: tuple[int, ...]
    recipients: tuple[str, ...]
    server_time_ms: int
    devices_changed: bool


def parse_group_sent(value: object) -> GroupSent:
    what = "group send answer"
    o = _api.obj(value, what)
    recipients = _api.array(o, "recipients", what)
    if not all(isinstance(r, str) for r in recipients):
        raise BadResponse(f"{what}: 'recipients' is not a list of strings")
    ids = _api.int_list(o, "ids", what)
    if len(ids) != len(recipients):
        raise BadResponse(f"{what}: 'ids' and 'recipients' differ in length")
    return GroupSent(
        tuple(ids),
        tuple(str(r) for r in recipients),
        _api.integer(o, "server_time", what),
        _api.boolean(o, "devices_changed", what),
    )


def group_ref(group_id: bytes) -> str:
    """A group's id as text (base64url), as the CLI shows and accepts it."""
    return b64e(group_id)


def _path(group_id: bytes) -> str:
    return f"/v1/groups/{b64e(group_id)}"


# ----------------------------------------------------------------------------- the service

#: What an admin's change computes from the current view: the member devices, and optionally
#: a new name and admin list; None when there is nothing to change.
_Wanted = tuple[dict[bytes, list[int]], bytes | None, list[bytes] | None]


class Groups:
    """The group part of one :class:`~overt.client.Client` (see the module docstring).

    It uses the client's store, requests, verified contacts and pairwise encryption (the
    same package; nothing here widens the client's public API beyond its group methods).
    """

    def __init__(self, client: Client) -> None:
        self._c = client
        self.store = GroupStore(client._store)
        self._lock = asyncio.Lock()
        self._owner: asyncio.Task[object] | None = None
        #: One drain at a time (a listening task and a send's sync may both run one).
        self._drain_lock = asyncio.Lock()
        #: Group messages a drain let through beyond the one its mail returns (a waiting
        #: message whose key arrived): handed out by :meth:`take_extra`.
        self._extra: list[Message] = []
        #: The updates in the inbox that list this device, by inbox ``seq``: (group id,
        #: version). Read at most once per drain (None: read again), kept as items leave.
        self._listing: dict[int, tuple[bytes, int]] | None = None

    @contextlib.asynccontextmanager
    async def _locked(self) -> AsyncIterator[None]:
        """One group operation at a time on this device; re-entered by the task that holds
        it (a send that syncs the mailbox may process a leave request that changes the
        group)."""
        task = asyncio.current_task()
        if task is not None and self._owner is task:
            yield
            return
        async with self._lock:
            self._owner = task
            try:
                yield
            finally:
                self._owner = None

    # ------------------------------------------------------------------ looking up

    def resolve(self, ref: str) -> GroupRecord:
        """The group ``ref`` names: its id (base64url, or a prefix of at least four
        characters) or its name, if that is unambiguous among this device's groups."""
        self._c._active()
        records = self.store.groups()
        by_id = [r for r in records if group_ref(r.group_id) == ref]
        if by_id:
            return by_id[0]
        by_name = [r for r in records if _name(r.state) == ref]
        if len(ref) >= _MIN_REF_CHARS:
            by_prefix = [r for r in records if group_ref(r.group_id).startswith(ref)]
        else:
            by_prefix = []
        for found in (by_name, by_prefix):
            active = [r for r in found if r.active] or found
            if len(active) == 1:
                return active[0]
            if len(active) > 1:
                raise LocalError(
                    f"{ref!r} names several groups; use the group's id (overt group list)"
                )
        raise LocalError(f"no group {ref!r} on this device; `overt group list` shows them")

    def _member_record(self, ref: str) -> GroupRecord:
        rec = self.resolve(ref)
        if not rec.active:
            raise LocalError(
                f"you are no longer in the group {_name(rec.state)!r} ({rec.status}); "
                "nothing can be sent there"
            )
        return rec

    def all(self) -> list[GroupInfo]:
        self._c._active()
        return [self._info(r) for r in self.store.groups()]

    def info(self, ref: str) -> GroupInfo:
        return self._info(self.resolve(ref))

    def _info(self, r: GroupRecord) -> GroupInfo:
        m = r.state.membership
        return GroupInfo(
            r.group_id,
            group_ref(r.group_id),
            _name(r.state),
            m.version,
            tuple(name_of(x.account) for x in m.members),
            tuple(name_of(a) for a in m.admins),
            str(r.status),
            r.last_ms,
        )

    def members(self, ref: str) -> list[GroupMemberInfo]:
        """Who is in the group now, with their devices and since which version (and when
        this device learned it)."""
        rec = self.resolve(ref)
        since: dict[bytes, tuple[int, int | None]] = {}
        previous: set[bytes] = set()
        last_version = 0
        own = rec.state.own  # a time is given only for versions this device was in
        for version, raw, recorded_ms in self.store.updates(rec.group_id):
            try:
                update = MembershipUpdate.decode(raw)
            except DecodeError:
                continue
            accounts = {m.account for m in update.members}
            if version != last_version + 1:
                previous = set()  # a gap in what this device knows: start again
            here = any(own in m.addresses() for m in update.members)
            for a in accounts - previous:
                since[a] = (version, recorded_ms if here else None)
            for a in previous - accounts:
                since.pop(a, None)
            previous, last_version = accounts, version
        m = rec.state.membership
        return [
            GroupMemberInfo(
                name_of(x.account),
                x.devices,
                x.account in m.admins,
                *since.get(x.account, (m.version, None)),
            )
            for x in m.members
        ]

    def history(self, ref: str, limit: int) -> list[Message]:
        rec = self.resolve(ref)
        return [self._message(m, rec.state) for m in self.store.history(rec.group_id, limit)]

    def _message(self, m: StoredGroupMessage, state: GroupState) -> Message:
        pointer = None
        if m.attachment is not None and m.kind == BodyKind.ATTACHMENT:
            pointer = AttachmentPointer.decode(m.attachment)
        return Message(
            _name(state),
            name_of(m.sender.account),
            m.sender.device,
            m.direction,
            m.message_id,
            m.text,
            pointer,
            m.sent_ms,
            m.stored_ms,
            m.server_time_ms,
            m.group_id,
        )

    # ------------------------------------------------------------------ administering

    def _signer(self, rec: GroupRecord | None = None) -> AccountIdentity:
        p = self._c._active()
        ai = p.account_identity
        if ai is None:
            raise ProfileStateError(
                "only the device that holds the account key (where the account was created) "
                "can create or change a group"
            )
        if rec is not None:
            if not rec.active:
                raise LocalError(f"you are no longer in the group {_name(rec.state)!r}")
            if p.account not in rec.state.membership.admins:
                admins = ", ".join(name_of(a) for a in rec.state.membership.admins)
                raise LocalError(
                    f"only an admin of {_name(rec.state)!r} can change it (admins: {admins})"
                )
        return ai

    async def create(self, name: str, members: Sequence[str]) -> GroupInfo:
        """A new group named ``name`` with this account (as admin) and ``members``; every
        member device receives the signed first view."""
        p = self._c._active()
        ai = self._signer()
        name_bytes = _group_name(name)
        accounts = sorted({account_of(m) for m in members} | {p.account})
        if len(accounts) > MAX_GROUP_MEMBERS:
            raise LocalError(f"a group has at most {MAX_GROUP_MEMBERS} members")
        async with self._locked():
            for _ in range(MAX_SEND_ATTEMPTS):
                devices = await self._devices_now(accounts)
                state, update = create_group(
                    ai, p.device.address, name_bytes, devices, self._c._rng
                )
                try:
                    await self._put(update)
                except StaleDevices as exc:
                    await self._c._apply_stale(exc)
                    continue
                now = self._c._clock.now_ms()
                self.store.commit(
                    Commit(
                        state.group_id,
                        now,
                        state=state,
                        status=GroupStatus.MEMBER,
                        updates=[(1, update.encode())],
                        new_group=True,
                    )
                )
                log.info("created group %s with %d members", _short(state.group_id), len(accounts))
                await self._announce(update, accounts)
                rec = self.store.group(state.group_id)
                assert rec is not None
                return self._info(rec)
        raise StaleDevices(
            409,
            "stale_devices",
            "the members' devices kept changing while creating the group; try again",
        )

    async def add(self, ref: str, names: Sequence[str]) -> GroupInfo:
        adding = {account_of(n) for n in names}
        if not adding:
            raise LocalError("name at least one account to add")

        async def wanted(state: GroupState) -> _Wanted | None:
            current = {m.account for m in state.membership.members}
            if adding <= current:
                return None
            return await self._devices_now(sorted(current | adding)), None, None

        return await self._change(ref, wanted)

    async def remove(self, ref: str, names: Sequence[str]) -> GroupInfo:
        p = self._c._active()
        removing = {account_of(n) for n in names}
        if p.account in removing:
            raise LocalError("to remove yourself, leave the group (overt group leave)")
        if not removing:
            raise LocalError("name at least one account to remove")
        rec = self.resolve(ref)
        unknown = removing - {m.account for m in rec.state.membership.members}
        if unknown:
            who = ", ".join(sorted(name_of(a) for a in unknown))
            raise LocalError(f"not in the group {_name(rec.state)!r}: {who}")

        async def wanted(state: GroupState) -> _Wanted | None:
            m = state.membership
            current = {x.account for x in m.members}
            if not removing & current:
                return None
            keep = sorted(current - removing)
            return await self._devices_now(keep), None, [a for a in m.admins if a in keep]

        return await self._change(ref, wanted)

    async def rename(self, ref: str, name: str) -> GroupInfo:
        new_name = _group_name(name)

        async def wanted(state: GroupState) -> _Wanted | None:
            if state.membership.name == new_name:
                return None
            accounts = [m.account for m in state.membership.members]
            return await self._devices_now(accounts), new_name, None

        return await self._change(ref, wanted)

    async def leave(self, ref: str) -> GroupInfo:
        """Leave the group: this device (and, through the update, every device of this
        account) stops reading it. An admin holding the account key signs its own removal
        (handing the admin role to another member if it was the only admin); any other
        device asks the group's admins to remove this account."""
        p = self._c._active()
        rec = self._member_record(ref)
        gid = rec.group_id
        m = rec.state.membership
        others = [x.account for x in m.members if x.account != p.account]
        if p.account_identity is not None and p.account in m.admins and others:

            async def wanted(state: GroupState) -> _Wanted | None:
                ms = state.membership
                keep = sorted(x.account for x in ms.members if x.account != p.account)
                if len(keep) == len(ms.members):
                    return None
                admins = [a for a in ms.admins if a != p.account] or keep[:1]
                return await self._devices_now(keep), None, admins

            await self._change(ref, wanted, status=GroupStatus.LEFT)
        elif others:
            async with self._locked():
                await self._send_pairwise(list(m.admins), Body.of_group(BodyKind.GROUP_LEAVE, gid))
        now = self._c._clock.now_ms()
        self.store.commit(Commit(gid, now, status=GroupStatus.LEFT, drop_sender_key=True))
        log.info("left group %s", _short(gid))
        out = self.store.group(gid)
        assert out is not None
        return self._info(out)

    async def _change(
        self,
        ref: str,
        wanted: Callable[[GroupState], Awaitable[_Wanted | None]],
        *,
        status: GroupStatus | None = None,
    ) -> GroupInfo:
        async with self._locked():
            return await self._change_locked(self.resolve(ref).group_id, wanted, status=status)

    async def _change_locked(
        self,
        gid: bytes,
        wanted: Callable[[GroupState], Awaitable[_Wanted | None]],
        *,
        status: GroupStatus | None = None,
    ) -> GroupInfo:
        for _ in range(MAX_SEND_ATTEMPTS):
            rec = self.store.group(gid)
            assert rec is not None
            ai = self._signer(rec)
            change = await wanted(rec.state)
            if change is None:
                return self._info(rec)
            devices, name, admins = change
            update = propose_membership(rec.state, ai, devices, name=name, admins=admins)
            try:
                await self._put(update)
            except StaleGroup as exc:
                await self._apply_view(gid, _view_of(exc))
                continue
            except StaleDevices as exc:
                await self._c._apply_stale(exc)
                continue
            rec = self.store.group(gid)  # a catch-up may have run while the request was out
            assert rec is not None
            if rec.state.version < update.membership_version:
                new = apply_membership(rec.state, update, {ai.account: ai.public_key})
                self._commit_applied(rec, new, [update], status=status)
            old_accounts = {x.account for x in rec.state.membership.members}
            new_accounts = {x.account for x in update.members}
            log.info("group %s is now at version %d", _short(gid), update.membership_version)
            await self._announce(update, sorted(old_accounts | new_accounts))
            out = self.store.group(gid)
            assert out is not None
            return self._info(out)
        raise StaleGroup(409, "stale_group", "the group kept changing while changing it; try again")

    async def _put(self, update: MembershipUpdate) -> None:
        answer = await self._c._request(
            "PUT", _path(update.group_id), json={"membership": b64e(update.encode())}
        )
        what = "group update answer"
        o = _api.obj(answer.json(), what)
        if _api.integer(o, "version", what) != update.membership_version:
            raise BadResponse(f"{what}: the server stored another version")

    async def _devices_now(
        self, accounts: Iterable[bytes], *, refresh: bool = False
    ) -> dict[bytes, list[int]]:
        """Each account's devices from its verified device list."""
        out: dict[bytes, list[int]] = {}
        for a in accounts:
            contact = await self._c._contact(a, refresh=refresh)
            out[a] = sorted(d.device for d in contact.device_list.devices)
        return out

    async def _announce(self, update: MembershipUpdate, accounts: Sequence[bytes]) -> None:
        """Send ``update`` to every device of ``accounts`` (and this account's others)."""
        body = Body.of_group(BodyKind.GROUP_UPDATE, update.group_id, update.encode())
        await self._send_pairwise(accounts, body)

    def _commit_applied(
        self,
        rec: GroupRecord,
        new: GroupState,
        updates: Sequence[MembershipUpdate],
        *,
        status: GroupStatus | None = None,
        done: int | None = None,
    ) -> None:
        now = self._c._clock.now_ms()
        member = new.is_member
        if not member and status is None:
            status = GroupStatus.LEFT if rec.status is GroupStatus.LEFT else GroupStatus.REMOVED
        self.store.commit(
            Commit(
                rec.group_id,
                now,
                state=new,
                status=status,
                drop_sender_key=not member or needs_rekey(rec.state, new),
                updates=[(u.membership_version, u.encode()) for u in updates],
                done=done,
            )
        )
        if not member:
            log.info("this device is no longer in group %s", _short(rec.group_id))

    # ------------------------------------------------------------------ catching up

    async def catch_up(self, gid: bytes) -> None:
        """Ask the server for the updates after this device's view and apply them."""
        rec = self.store.group(gid)
        view = await self._get_view(gid, 0 if rec is None else rec.state.version)
        await self._apply_view(gid, view)

    async def _get_view(self, gid: bytes, after: int) -> GroupView | None:
        """``GET /v1/groups/{id}?after=N``, following its pages (None: no such group)."""
        updates: list[bytes] = []
        view: GroupView | None = None
        for _ in range(MAX_GROUP_VIEW_PAGES):
            try:
                answer = await self._c._request("GET", f"{_path(gid)}?after={after}")
            except NotFound:
                return None
            page = parse_group_view(answer.json())
            updates.extend(page.updates)
            view = replace(page, updates=tuple(updates))
            if not page.more or not page.updates:
                break
            try:
                after = MembershipUpdate.decode(page.updates[-1]).membership_version
            except DecodeError as exc:
                raise BadResponse("a group update from the server does not decode") from exc
        return view

    async def _apply_view(self, gid: bytes, view: GroupView | None, *, newer: bool = True) -> None:
        """Apply, in order, the updates of ``view`` newer than this device's (unless not
        ``newer``), each checked against the view before it; keep older ones as history when
        they chain to ours."""
        rec = self.store.group(gid)
        if view is None or rec is None or view.group_id != gid:
            return
        updates: list[MembershipUpdate] = []
        for raw in view.updates:
            try:
                updates.append(MembershipUpdate.decode(raw))
            except DecodeError:
                log.warning(
                    "the server's view of group %s holds an update that does not decode",
                    _short(gid),
                )
                return
        self._keep_history(rec, [u for u in updates if u.membership_version < rec.state.version])
        if not newer:
            return
        pending = sorted(
            (u for u in updates if u.membership_version > rec.state.version),
            key=lambda u: u.membership_version,
        )
        keys: dict[bytes, Ed25519PublicKey] = {}
        for signer in dict.fromkeys(u.signer for u in pending):
            # Without a verified key its update is refused below (UntrustedIdentity).
            with contextlib.suppress(UnknownAccount, UntrustedIdentity):
                keys.update(await self._admin_keys([signer]))
        rec = self.store.group(gid)  # read again after the awaits; no await from here on
        if rec is None:
            return
        state = rec.state
        applied: list[MembershipUpdate] = []
        for u in pending:
            if u.membership_version <= state.version:
                continue
            try:
                state = apply_membership(state, u, keys)
            except (ProtocolViolation, InvalidMessage, DecodeError) as exc:
                log.warning(
                    "an update of group %s from the server was refused (%s)",
                    _short(gid),
                    type(exc).__name__,
                )
                break
            applied.append(u)
            if not state.is_member:
                break
        if applied:
            self._commit_applied(rec, state, applied)

    def _keep_history(self, rec: GroupRecord, older: Sequence[MembershipUpdate]) -> None:
        """Store updates from before this device joined, as far as each one's member-set hash
        is the parent of the next one this device has (what "members since" reads)."""
        known = {v: raw for v, raw, _ in self.store.updates(rec.group_id)}
        if not known or not older:
            return
        by_version = {u.membership_version: u for u in older}
        version = min(known)
        try:
            parent = MembershipUpdate.decode(known[version]).parent
        except DecodeError:
            return
        keep: list[tuple[int, bytes]] = []
        while version - 1 in by_version:
            u = by_version[version - 1]
            try:
                if Membership.from_update(u).member_set_hash != parent:
                    break
            except ProtocolViolation:
                break
            keep.append((u.membership_version, u.encode()))
            version, parent = u.membership_version, u.parent
        if keep:
            self.store.commit(Commit(rec.group_id, self._c._clock.now_ms(), updates=keep))

    async def _admin_keys(self, accounts: Iterable[bytes]) -> dict[bytes, Ed25519PublicKey]:
        """Verified account keys (pinned, key transparency) of ``accounts``."""
        out: dict[bytes, Ed25519PublicKey] = {}
        for a in accounts:
            contact = await self._c._contact(a)
            out[a] = Ed25519PublicKey.from_bytes(contact.account_key)
        return out

    # ------------------------------------------------------------------ sending

    async def send(self, ref: str, text: str) -> Message:
        """Send ``text`` to every member device of the group (one ciphertext)."""
        return await self._send(ref, lambda gid: Body.of_text(gid, text))

    async def send_attachment(
        self, ref: str, pointer: AttachmentPointer, caption: str = ""
    ) -> Message:
        """Send the pointer of an uploaded attachment (its key and hashes) with ``caption`` to
        every member device of the group: one ciphertext, as a text message; members open it
        with :meth:`~overt.client.Client.fetch_attachment`."""
        return await self._send(ref, lambda gid: Body.of_attachment(gid, pointer, caption))

    def resolve_member(self, ref: str) -> GroupRecord:
        """The group ``ref`` names (:meth:`resolve`); :class:`LocalError` unless this device
        is still a member (nothing can be sent there)."""
        return self._member_record(ref)

    async def _send(self, ref: str, make_body: Callable[[bytes], Body]) -> Message:
        """Send the body ``make_body`` makes for the group's id to every member device."""
        self._c._active()
        if self._c._policy is None:
            await self._c._escrow.ensure_live()  # the escrow epoch, from the log
        policy = self._c._access_policy()  # refuse before anything goes out if unmet
        rec = self._member_record(ref)
        gid = rec.group_id
        body = make_body(gid)
        body_bytes = body.encode()
        message_id = self._c._rng.random_bytes(MESSAGE_ID_LEN)
        async with self._locked():
            for attempt in range(2):
                key = await self._ready_key(gid)
                rec = self._member_record(group_ref(gid))
                sent_ms = self._c._clock.now_ms()
                # No await between reading the key and storing the advanced one.
                msg, new_key = group_encrypt(
                    rec.state,
                    key,
                    body_bytes,
                    sent_ms,
                    self._c._rng,
                    policy,
                    message_id=message_id,
                )
                self.store.save_sender_key(gid, new_key)
                encoded = msg.encode()
                try:
                    answer = await self._c._request(
                        "POST", f"{_path(gid)}/messages", json={"message": b64e(encoded)}
                    )
                except Forbidden:
                    # Not in the server's view: this device was removed and missed the news.
                    await self.catch_up(gid)
                    self._member_record(group_ref(gid))  # raises if so
                    raise
                except StaleGroup as exc:
                    if attempt:
                        raise
                    # Mail first (messages sent under the old view are read under it, and
                    # updates arrive in order), then whatever the mailbox did not bring.
                    self._extra.extend(await self._c.sync())  # shown by the next sync/listen
                    await self._apply_view(gid, _view_of(exc))
                    await self.catch_up(gid)
                    continue
                sent = parse_group_sent(answer.json())
                now = self._c._clock.now_ms()
                stored = StoredGroupMessage(
                    gid,
                    message_id,
                    rec.state.own,
                    Direction.OUTGOING,
                    body.kind,
                    body_bytes,
                    body.text,
                    None if body.attachment is None else body.attachment.encode(),
                    sent_ms,
                    now,
                    None,
                    sent.server_time_ms,
                    None,
                    b"",
                    encoded,
                )
                self.store.commit(Commit(gid, now, message=stored))
                log.info("sent a group message to %d device(s)", len(sent.ids))
                if sent.devices_changed:
                    await self._devices_changed(gid)
                return self._message(stored, rec.state)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _devices_changed(self, gid: bytes) -> None:
        """The server says a member's devices differ from the view: an admin that can sign
        refreshes the view; others leave it to the admins."""
        rec = self.store.group(gid)
        p = self._c._active()
        if rec is None or p.account_identity is None:
            return
        if p.account not in rec.state.membership.admins:
            return
        try:
            await self._change_locked(gid, self._refresh_wanted)
        except (ServerUnreachable, RateLimited, StaleGroup, StaleDevices) as exc:
            log.info(
                "refreshing group %s's devices failed (%s); will retry",
                _short(gid),
                type(exc).__name__,
            )

    async def _refresh_wanted(self, state: GroupState) -> _Wanted | None:
        accounts = [m.account for m in state.membership.members]
        devices = await self._devices_now(accounts, refresh=True)
        listed = {m.account: list(m.devices) for m in state.membership.members}
        return None if devices == listed else (devices, None, None)

    async def _ready_key(self, gid: bytes) -> SenderKey:
        """This device's sender key for the current view, made if needed, given to every
        member device that does not have it yet."""
        rec = self.store.group(gid)
        assert rec is not None
        key = rec.sender_key
        now = self._c._clock.now_ms()
        if key is None or key.membership_version < rec.state.rekey_version:
            key, _ = create_sender_key(rec.state, self._c._rng)
            self.store.commit(Commit(gid, now, sender_key=key, holders=[]))
            log.info("made a new sender key for group %s (view %d)", _short(gid), rec.state.version)
        holders = self.store.holders(gid)
        missing = [a for a in rec.state.distribution_targets() if a not in holders]
        if missing:
            own = rec.state.own.account
            accounts = sorted({a.account for a in missing} - {own})
            body = Body.of_group(BodyKind.GROUP_KEY, gid, key.distribution().encode())
            await self._send_pairwise(accounts, body)
            self.store.commit(Commit(gid, self._c._clock.now_ms(), add_holders=missing))
        return key

    async def _send_pairwise(self, accounts: Sequence[bytes], body: Body) -> None:
        """One body to every device of ``accounts`` and this account's other devices, over
        the pairwise sessions, in as many requests as the server's bound needs."""
        c = self._c
        p = c._active()
        body_bytes = body.encode()
        cid = body.peer
        message_id = c._rng.random_bytes(MESSAGE_ID_LEN)
        others = [a for a in accounts if a != p.account]
        async with c._send_lock:
            own = await c._contact(p.account)
            room = max(1, MAX_PAIRWISE_ENVELOPES - len(own.addresses()))
            batches: list[list[bytes]] = [[]]
            size = 0
            for a in others:
                n = len((await c._contact(a)).addresses())
                if batches[-1] and size + n > room:
                    batches.append([])
                    size = 0
                batches[-1].append(a)
                size += n
            for batch in batches:
                await self._send_batch(
                    p, batch, body_bytes, cid, message_id, access_kind(body.kind)
                )

    async def _send_batch(
        self,
        p: Profile,
        accounts: Sequence[bytes],
        body: bytes,
        cid: bytes,
        message_id: bytes,
        kind: AccessKind,
    ) -> None:
        c = self._c
        for _ in range(MAX_SEND_ATTEMPTS):
            own = await c._contact(p.account)
            if own.entry(p.device.address.device) is None:
                raise ProfileStateError(
                    "this device is no longer in its account's device list; link it again"
                )
            targets = [a for a in own.addresses() if a != p.device.address]
            for account in accounts:
                targets.extend((await c._contact(account)).addresses())
            if not targets:
                return
            bundles = await c._bundles_for(p, targets)
            encrypted = c._encrypt(targets, bundles, body, c._clock.now_ms(), cid, message_id, kind)
            if encrypted is None:
                continue
            try:
                await c._request(
                    "POST", "/v1/messages", json=_api.send_request(targets, encrypted[1])
                )
            except StaleDevices as exc:
                await c._apply_stale(exc)
                continue
            return
        raise StaleDevices(
            409,
            "stale_devices",
            "the members' devices kept changing while sending to the group; try again",
        )

    # ------------------------------------------------------------------ receiving

    def control_writer(
        self, mail: _api.Mail, sender: Address, body: Body, now_ms: int
    ) -> Callable[..., object] | None:
        """For a group body that arrived over a pairwise session: the inbox write to commit
        with the session (None if the inbox is full: the mail is then a failure)."""
        if self.store.inbox_size() >= MAX_GROUP_INBOX:
            return None
        kind = {
            BodyKind.GROUP_UPDATE: InboxKind.UPDATE,
            BodyKind.GROUP_KEY: InboxKind.KEY,
            BodyKind.GROUP_LEAVE: InboxKind.LEAVE,
        }[body.kind]
        if kind is InboxKind.UPDATE:
            self._listing = None  # a drain under way reads the waiting updates again
        return self.store.inbox_writer(
            mail.id,
            kind,
            body.peer,
            sender,
            mail.server_time_ms,
            None,
            body.group_data or b"",
            now_ms,
        )

    def first_of(self, shown: list[Message]) -> Message | None:
        """The first of ``shown`` (what one mail returns); the rest wait in :meth:`take_extra`."""
        self._extra.extend(shown[1:])
        del self._extra[:-MAX_GROUP_INBOX]
        return shown[0] if shown else None

    def take_extra(self) -> list[Message]:
        out, self._extra = self._extra, []
        return out

    async def receive_mail(self, mail: _api.Mail) -> Message | None:
        """Mail of kind ``group``: checked, put in the inbox with the mail's id in one
        transaction, then processed."""
        c = self._c
        now = c._clock.now_ms()

        def fail(reason: FailureReason) -> None:
            failure = Failure(mail.id, mail.sender, mail.server_time_ms, str(reason), now)
            c._store.commit_received(mail_id=mail.id, now_ms=now, failure=failure)
            log.warning("group mail %d from %s not shown: %s", mail.id, mail.sender, reason)

        try:
            msg = GroupMessage.decode(mail.envelope)
        except DecodeError:
            fail(FailureReason.MALFORMED)
            return None
        if msg.sender != mail.sender:
            fail(FailureReason.MISMATCH)
            return None
        if self.store.inbox_size() >= MAX_GROUP_INBOX:
            fail(FailureReason.LIMIT)
            return None
        writer = self.store.inbox_writer(
            mail.id,
            InboxKind.MESSAGE,
            msg.group_id,
            mail.sender,
            mail.server_time_ms,
            mail.reporting_tag,
            mail.envelope,
            now,
        )
        c._store.commit_received(mail_id=mail.id, now_ms=now, extra=writer)
        return self.first_of(await self.drain())

    async def drain_waiting(self) -> list[Message]:
        """:meth:`drain`, if anything waits (what a sync does once its mail is processed)."""
        if not self.store.inbox_size():
            return self.take_extra()
        return [*self.take_extra(), *await self.drain()]

    async def drain(self) -> list[Message]:
        """Process the group inbox in order; return the messages newly stored. Items that
        cannot be processed yet stay; a network failure stops here (they are tried again)."""
        async with self._drain_lock:
            return await self._drain()

    async def _drain(self) -> list[Message]:
        shown: list[Message] = []
        self._listing = None
        for _ in range(_DRAIN_PASSES):
            progressed = False
            for item in self.store.inbox():
                try:
                    outcome, message = await self._handle(item)
                except (ServerUnreachable, RateLimited) as exc:
                    log.info(
                        "group input waits: the server did not answer (%s)", type(exc).__name__
                    )
                    return shown
                if message is not None:
                    shown.append(message)
                if outcome is _Outcome.DONE:
                    progressed = True
                    if self._listing is not None:
                        self._listing.pop(item.seq, None)
            if not progressed:
                break
        return shown

    def _finish(
        self, item: InboxItem, reason: FailureReason | None, state: GroupState | None = None
    ) -> tuple[_Outcome, None]:
        now = self._c._clock.now_ms()
        failure = None if reason is None else item.failure(str(reason), now)
        self.store.commit(Commit(item.group_id, now, state=state, failure=failure, done=item.seq))
        if reason is not None:
            log.warning("group input %d from %s refused: %s", item.server_id, item.sender, reason)
        return _Outcome.DONE, None

    def _wait(self, item: InboxItem) -> tuple[_Outcome, None]:
        if self._c._clock.now_ms() - item.received_ms > GROUP_INBOX_WAIT_MS:
            return self._finish(item, FailureReason.NO_SESSION)
        return _Outcome.WAIT, None

    def _out_of_group(
        self, item: InboxItem, rec: GroupRecord, view: int, reason: FailureReason | None
    ) -> tuple[_Outcome, None]:
        """A key or message (made under ``view``) for a group this device is not active in:
        it waits (as :meth:`_wait`) while an update in the inbox is about to add this device
        back at a view it may belong to; otherwise it is finished with ``reason``."""
        if self._rejoin_pending(rec, view):
            return self._wait(item)
        return self._finish(item, reason)

    def _rejoin_pending(self, rec: GroupRecord, view: int) -> bool:
        """Whether input made under ``view`` may be for this device once an update waiting
        in the inbox adds it back: the device is out of the group's current view (removed,
        not merely left and still listed), ``view`` is newer than that, and a waiting update
        for the group newer than it lists the device (:meth:`_handle_update` joins from it)."""
        state = rec.state
        if state.is_member or view <= state.version:
            return False
        if self._listing is None:  # once per drain: once per item would be quadratic
            self._listing = {}
            for waiting in self.store.inbox():
                if waiting.kind is not InboxKind.UPDATE:
                    continue
                try:
                    update = MembershipUpdate.decode(waiting.data)
                except DecodeError:
                    continue
                if update.group_id == waiting.group_id and _lists(update, state.own):
                    self._listing[waiting.seq] = (update.group_id, update.membership_version)
        return any(
            gid == rec.group_id and version > state.version
            for gid, version in self._listing.values()
        )

    async def _handle(self, item: InboxItem) -> tuple[_Outcome, Message | None]:
        try:
            if item.kind is InboxKind.UPDATE:
                return await self._handle_update(item)
            if item.kind is InboxKind.KEY:
                return await self._handle_key(item)
            if item.kind is InboxKind.LEAVE:
                return await self._handle_leave(item)
            return await self._handle_message(item)
        except NotInLog:
            return self._finish(item, FailureReason.NOT_IN_LOG)
        except UntrustedIdentity:
            return self._finish(item, FailureReason.UNTRUSTED_IDENTITY)
        except UnknownAccount:
            return self._finish(item, FailureReason.UNKNOWN_DEVICE)

    async def _handle_update(
        self, item: InboxItem, *, caught_up: bool = False
    ) -> tuple[_Outcome, Message | None]:
        try:
            update = MembershipUpdate.decode(item.data)
        except DecodeError:
            return self._finish(item, FailureReason.MALFORMED)
        if update.group_id != item.group_id:
            return self._finish(item, FailureReason.MISMATCH)
        gid = update.group_id
        rec = self.store.group(gid)
        own = self._c._active().device.address
        listed = _lists(update, own)
        rejoin = (  # added back after a removal (or after leaving and being removed)
            rec is not None
            and not rec.state.is_member
            and listed
            and update.membership_version > rec.state.version
        )
        if rec is None or rejoin:  # a first view, or one that adds this device back
            if not listed:
                return self._finish(item, None)  # about a group this device is not in
            keys = await self._admin_keys([update.signer])
            try:
                state = join_group(own, update, keys)
            except (ProtocolViolation, DecodeError):
                return self._finish(item, FailureReason.PROTOCOL)
            except InvalidMessage:
                return self._finish(item, FailureReason.INVALID)
            now = self._c._clock.now_ms()
            self.store.commit(
                Commit(
                    gid,
                    now,
                    state=state,
                    status=GroupStatus.MEMBER,
                    updates=[(update.membership_version, update.encode())],
                    done=item.seq,
                    new_group=True,
                    drop_sender_key=True,
                )
            )
            log.info("joined group %s at version %d", _short(gid), update.membership_version)
            try:
                await self._fetch_history(gid)
            except (ServerUnreachable, RateLimited, BadResponse) as exc:
                log.info("group %s's history waits (%s)", _short(gid), type(exc).__name__)
            return _Outcome.DONE, None
        assert rec is not None
        # A device whose account left keeps following the views (status stays 'left') until
        # one removes it; only one that adds it back afterwards makes it a member again.
        if not rec.state.is_member or update.membership_version <= rec.state.version:
            return self._finish(item, None)  # superseded, or no longer ours to follow
        if update.membership_version > rec.state.version + 1:
            if caught_up:
                return self._wait(item)
            await self.catch_up(gid)
            # Once more from the top, on what the catch-up left: this update applied or
            # superseded, or the view just before it, or this device's removal applied, which
            # this update, if it lists the device, undoes at once (joined as above). Waiting
            # for the next pass instead would drop the keys and messages under this view that
            # come before it in the inbox.
            return await self._handle_update(item, caught_up=True)
        keys = await self._admin_keys([update.signer])
        rec = self.store.group(gid)  # read again after the await; no await from here on
        if rec is None or not rec.state.is_member:
            return self._finish(item, None)
        try:
            new = apply_membership(rec.state, update, keys)
        except DuplicateMessage:
            return self._finish(item, None)
        except (ProtocolViolation, DecodeError):
            return self._finish(item, FailureReason.PROTOCOL)
        except InvalidMessage:
            return self._finish(item, FailureReason.INVALID)
        self._commit_applied(rec, new, [update], done=item.seq)
        return _Outcome.DONE, None

    async def _fetch_history(self, gid: bytes) -> None:
        """After joining: the updates from before this device's first view (for "members
        since"). Newer ones are left to the mailbox, which brings them in order with the
        messages sent under each view."""
        await self._apply_view(gid, await self._get_view(gid, 0), newer=False)

    async def _handle_key(self, item: InboxItem) -> tuple[_Outcome, Message | None]:
        try:
            dist = SenderKeyDistribution.decode(item.data)
        except DecodeError:
            return self._finish(item, FailureReason.MALFORMED)
        if dist.group_id != item.group_id:
            return self._finish(item, FailureReason.MISMATCH)
        rec = self.store.group(dist.group_id)
        if rec is None:
            return self._wait(item)  # the update that adds this device may come later
        if not rec.active:
            return self._out_of_group(item, rec, dist.membership_version, None)
        if dist.membership_version > rec.state.version:
            await self.catch_up(dist.group_id)
            rec = self.store.group(dist.group_id)
            if rec is None or dist.membership_version > rec.state.version:
                return self._wait(item)
        try:
            new = process_distribution(rec.state, item.sender, dist)
        except (ProtocolViolation, DecodeError):
            return self._finish(item, FailureReason.PROTOCOL)
        return self._finish(item, None, new)

    async def _handle_leave(self, item: InboxItem) -> tuple[_Outcome, Message | None]:
        rec = self.store.group(item.group_id)
        if rec is None or not rec.active:
            return self._finish(item, None)
        p = self._c._active()
        leaver = item.sender.account
        m = rec.state.membership
        can_sign = p.account_identity is not None and p.account in m.admins
        if can_sign and m.member(leaver) is not None and len(m.members) > 1:

            async def wanted(state: GroupState) -> _Wanted | None:
                ms = state.membership
                keep = sorted(x.account for x in ms.members if x.account != leaver)
                if len(keep) == len(ms.members):
                    return None
                admins = [a for a in ms.admins if a != leaver] or keep[:1]
                return await self._devices_now(keep), None, admins

            status = GroupStatus.LEFT if leaver == p.account else None
            if self._lock.locked() and self._owner is not asyncio.current_task():
                return _Outcome.WAIT, None  # another task changes the group: next drain
            async with self._locked():
                await self._change_locked(item.group_id, wanted, status=status)
        elif leaver == p.account:
            now = self._c._clock.now_ms()
            self.store.commit(
                Commit(item.group_id, now, status=GroupStatus.LEFT, drop_sender_key=True)
            )
        return self._finish(item, None)

    async def _handle_message(self, item: InboxItem) -> tuple[_Outcome, Message | None]:
        rec = self.store.group(item.group_id)
        if rec is None:
            return self._wait(item)
        try:
            header = GroupMessage.decode(item.data)
        except DecodeError:
            return self._finish(item, FailureReason.MALFORMED if rec.active else _not_read(rec))
        view = header.membership_version
        if not rec.active:
            return self._out_of_group(item, rec, view, _not_read(rec))
        if view > rec.state.version:
            await self.catch_up(item.group_id)
            rec = self.store.group(item.group_id)
            if rec is None or view > rec.state.version:
                return self._wait(item)
            if not rec.active:
                return self._out_of_group(item, rec, view, FailureReason.PROTOCOL)
        try:  # the epochs it accepts, as for one-to-one mail (the message's own, from the log)
            policy = self._c._policy
            if policy is None:
                policy = await self._c._escrow.for_receiving(header.access)
        except PolicyViolation:
            return self._finish(item, FailureReason.POLICY)
        rec = self.store.group(item.group_id)  # read again after the awaits
        if rec is None:
            return self._wait(item)
        if not rec.active:
            return self._out_of_group(item, rec, view, FailureReason.PROTOCOL)
        # Stage, then commit: no await from here on; nothing is stored unless all checks pass.
        try:
            received, new_state = group_decrypt(rec.state, item.data, policy)
        except UnknownSession:
            return self._wait(item)
        except DuplicateMessage:
            return self._finish(item, None)
        except InvalidMessage:
            return self._finish(item, FailureReason.INVALID)
        except LimitExceeded:
            return self._finish(item, FailureReason.LIMIT)
        except PolicyViolation:
            return self._finish(item, FailureReason.POLICY)
        except ProtocolViolation:
            return self._finish(item, FailureReason.PROTOCOL)
        except DecodeError:
            return self._finish(item, FailureReason.MALFORMED)
        try:
            body = Body.decode(received.body)
        except DecodeError:
            return self._finish(item, FailureReason.UNSUPPORTED_BODY, new_state)
        if body.kind in GROUP_BODY_KINDS or body.peer != item.group_id:
            return self._finish(item, FailureReason.MISMATCH, new_state)
        own = rec.state.own.account
        now = self._c._clock.now_ms()
        stored = StoredGroupMessage(
            item.group_id,
            received.message_id,
            received.sender,
            Direction.OUTGOING if received.sender.account == own else Direction.INCOMING,
            body.kind,
            received.body,
            body.text,
            None if body.attachment is None else body.attachment.encode(),
            received.timestamp_ms,
            now,
            item.server_id,
            item.server_time_ms,
            item.reporting_tag,
            received.franking_key,
            item.data,
        )
        inserted = self.store.commit(
            Commit(item.group_id, now, state=new_state, message=stored, done=item.seq)
        )
        if not inserted:
            return _Outcome.DONE, None
        return _Outcome.DONE, self._message(stored, new_state)


# ----------------------------------------------------------------------------- helpers


def _view_of(exc: StaleGroup) -> GroupView | None:
    group = exc.details.get("group")
    if group is None:
        return None
    return parse_group_view(group)


def _lists(update: MembershipUpdate, device: Address) -> bool:
    """Whether ``update``'s view lists ``device`` as a member device."""
    return any(device in m.addresses() for m in update.members)


def _not_read(rec: GroupRecord) -> FailureReason | None:
    """How a message for an inactive group ends: silently once this account left (nothing
    more is read), as a failure when this device was removed."""
    return None if rec.status is GroupStatus.LEFT else FailureReason.PROTOCOL


def _name(state: GroupState) -> str:
    return state.membership.name.decode("utf-8", errors="replace")


def _short(group_id: bytes) -> str:
    return b64e(group_id)[:8]


def _group_name(name: str) -> bytes:
    raw = name.encode("utf-8")
    if not raw.strip() or len(raw) > MAX_GROUP_NAME_LEN:
        raise LocalError(f"a group name is 1 to {MAX_GROUP_NAME_LEN} bytes of text")
    return raw


__all__ = ["GroupSent", "GroupView", "Groups", "group_ref", "parse_group_sent", "parse_group_view"]
