"""Groups on the relay: membership updates, group views and the fan-out of group messages.

The server keeps, per group, the append-only history of its signed membership updates
(:class:`~overt.storage.groups.GroupStore`) and relays each group message — one ciphertext for
every member device — into every member device's mailbox. It reads no content: it checks
what is public (DESIGN.md §3; docs/protocol.md, "Groups"):

* ``PUT /v1/groups/{group_id}`` — an update signed by an admin's account key. A new group
  starts at version 1 (parent ``0^32``, signer among the admins); a known group takes exactly
  version ``current + 1`` made on top of the current member-set hash, signed by an admin of the
  *current* view. The checks are the protocol's own (:func:`overt.protocol.groups.join_group`,
  :func:`~overt.protocol.groups.apply_membership`) with the signer's account identity key from
  the account store. Every member account must exist and every device it lists must be
  registered. The store's compare-and-append makes two admins racing for one version end in
  one winner and one ``409 stale_group``.
* ``GET /v1/groups/{group_id}?after=N`` — the current view, the updates after version ``N``
  (a page of :data:`~overt.server.limits.GROUP_VIEW_UPDATES_MAX`), the current signed device
  list of every member account and whether some member's devices differ from the view's.
  Only accounts that are or were members see it; to anyone else the group does not exist.
* ``POST /v1/groups/{group_id}/messages`` — one :class:`~overt.wire.GroupMessage` from a
  device of the current view, under the current view (else ``409 stale_group`` with the view),
  stored for every other device of the view that is still registered, in one enqueue, as mail
  of kind ``group``. Each copy has its own reporting tag
  (:func:`overt.protocol.franking.reporting_tag` over the message's franking commitment, the
  sender, *that* recipient device, its server id and the server time), so a report verifies for
  the member it was delivered to only. Then, as for one-to-one mail (the same
  :mod:`overt.server.fanout`): one wake-up per recipient carrying the mail, the metadata
  signals, and the lawful-interception hook — which copies the message once (not once per
  delivery), with the signed update of its view, if a live warrant targets its sender or a
  member (:meth:`overt.server.lawful.LawfulAccess.intercept_group`).

The server never rewrites a view: after a member links or removes a device it fans out to the
view's registered devices and says ``devices_changed``; an admin's client then proposes the next
version.

Every refusal is a typed error answered at the server's one error edge (docs/api.md,
"Groups"). This module knows HTTP only in :func:`groups_router`; no SQL; time comes only from
the injected clock.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Final

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field

from overt.crypto import Ed25519PublicKey
from overt.errors import ProtocolViolation
from overt.protocol.groups import GroupState, Membership, apply_membership, join_group
from overt.server.auth import Clock
from overt.server.codec import B64_PATTERN, b64_chars, b64decode, b64encode
from overt.server.errors import (
    ConflictWithState,
    CurrentDevices,
    Forbidden,
    JsonValue,
    Mismatch,
    StaleDevices,
    TooLarge,
)
from overt.server.fanout import notify_stored, store_tagged
from overt.server.limits import (
    GROUP_VIEW_CACHE_ENTRIES,
    GROUP_VIEW_UPDATES_MAX,
    INT64_MAX,
    MAX_GROUP_FANOUT_BYTES,
    MAX_GROUP_MESSAGE_LEN,
    MAX_GROUP_UPDATE_LEN,
    MAX_REQUEST_BODY,
)
from overt.server.models import _B64, _Out, _Strict, parse_json, signed_header_parameters
from overt.server.models import error_responses as _errors
from overt.server.notify import Notifier
from overt.server.signals import SignalService
from overt.storage import AccountStore, MailboxStore, MailKind, NewMail, NotFound
from overt.storage.errors import StorageConflict
from overt.storage.groups import GroupStore, GroupUpdate, NewGroupUpdate
from overt.wire import Address
from overt.wire.group_messages import GROUP_ID_LEN, GroupMessage, MembershipUpdate

if TYPE_CHECKING:
    from overt.server.lawful import LawfulAccess
    from overt.server.metrics import Metrics

_log = logging.getLogger("overt.server.groups")

_NO_PARENT: Final = bytes(32)


# ----------------------------------------------------------------------------- errors


class StaleGroup(ConflictWithState):
    """The request was made for another view of the group than the current one; the answer
    carries the current view (``group``)."""

    code = "stale_group"


class UnknownGroup(NotFound):
    """No such group, or one the requesting account never belonged to (the same answer, so
    that a group's existence is not revealed)."""


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class Accepted:
    """A stored membership update."""

    group_id: bytes
    version: int
    member_set_hash: bytes


@dataclass(frozen=True, slots=True)
class GroupSent:
    """Where one group message went: ``ids`` aligned with ``recipients``."""

    ids: tuple[int, ...]
    recipients: tuple[Address, ...]
    server_time: int
    devices_changed: bool


# ----------------------------------------------------------------------------- the service


class GroupService:
    """Verify and store membership updates, answer views, fan group messages out.

    Given the account store (read only), the group store, the mailbox store, the notifier, the
    franking key and the clock; optionally the metadata signals and the lawful-access hook.
    """

    def __init__(
        self,
        accounts: AccountStore,
        groups: GroupStore,
        mailboxes: MailboxStore,
        notifier: Notifier,
        franking_key: bytes,
        clock: Clock,
        *,
        signals: SignalService | None = None,
        lawful: LawfulAccess | None = None,
    ) -> None:
        self._accounts = accounts
        self._groups = groups
        self._mailboxes = mailboxes
        self._notifier = notifier
        self._franking_key = franking_key
        self._clock = clock
        self._signals = signals
        self._lawful = lawful
        self._views: OrderedDict[tuple[bytes, int, bytes], Membership] = OrderedDict()

    # -- views ------------------------------------------------------------------------------

    def _membership(self, stored: GroupUpdate) -> Membership:
        """The parsed view of a stored update (kept for the next request)."""
        key = (stored.group_id, stored.version, stored.member_set_hash)
        found = self._views.pop(key, None)
        if found is None:
            update = MembershipUpdate.decode(stored.update)  # it verified when stored
            found = Membership.from_update(update)
        self._views[key] = found
        while len(self._views) > GROUP_VIEW_CACHE_ENTRIES:
            self._views.popitem(last=False)
        return found

    async def _current(self, group_id: bytes) -> tuple[GroupUpdate, Membership] | None:
        stored = await self._groups.latest(group_id)
        if stored is None:
            return None
        return stored, self._membership(stored)

    async def view(self, requester: Address, group_id: bytes, after: int) -> dict[str, JsonValue]:
        """The GroupView of docs/api.md for a device whose account is or was a member."""
        if not await self._groups.was_member(group_id, requester.account):
            raise UnknownGroup("no such group (or this account was never a member of it)")
        return await self._view(group_id, after)

    async def _view(self, group_id: bytes, after: int) -> dict[str, JsonValue]:
        current = await self._current(group_id)
        if current is None:
            raise UnknownGroup("no such group (or this account was never a member of it)")
        stored, membership = current
        page = await self._groups.updates(group_id, after, GROUP_VIEW_UPDATES_MAX)
        devices: dict[str, JsonValue] = {}
        changed = False
        for member in membership.members:
            record = await self._accounts.get(member.account)
            if record is None:  # pragma: no cover - accounts are never deleted today
                changed = True
                continue
            now = tuple(d.device for d in record.devices)
            changed = changed or now != member.devices
            devices[b64encode(member.account)] = {
                "serial": record.serial,
                "devices": list(now),
                "signed_device_list": b64encode(record.device_list),
            }
        return {
            "group_id": b64encode(group_id),
            "version": stored.version,
            "member_set_hash": b64encode(stored.member_set_hash),
            "updates": [b64encode(u.update) for u in page],
            "more": bool(page) and page[-1].version < stored.version,
            "devices": devices,
            "devices_changed": changed,
        }

    async def _stale(self, group_id: bytes, after: int, message: str) -> StaleGroup:
        return StaleGroup(message, {"group": await self._view(group_id, after)})

    # -- membership updates -----------------------------------------------------------------

    async def _account_key(self, account: bytes) -> Ed25519PublicKey:
        record = await self._accounts.get(account)
        if record is None:  # the signer is the requesting account, so this is a race at most
            raise NotFound("the account that signed the update does not exist")
        return Ed25519PublicKey.from_bytes(record.identity_key)

    async def put(self, requester: Address, group_id: bytes, data: bytes) -> Accepted:
        """Verify ``data`` (a MembershipUpdate) as the group's next version and store it."""
        update = MembershipUpdate.decode(data)
        if update.group_id != group_id:
            raise Mismatch("the update is for another group than the one the path names")
        if update.signer != requester.account:
            raise Forbidden("submit an update from a device of the account that signed it")
        keys = {update.signer: await self._account_key(update.signer)}
        current = await self._current(group_id)
        if current is None:
            if update.membership_version != 1 or update.parent != _NO_PARENT:
                if update.membership_version == 1:
                    raise ProtocolViolation("the first version of a group has parent 0^32")
                raise UnknownGroup(
                    "no such group: a new group starts at version 1 (or this account was "
                    "never a member of it)"
                )
            first = update.members[0]
            new = join_group(Address(first.account, first.devices[0]), update, keys).membership
        else:
            stored, membership = current
            if not await self._groups.was_member(group_id, requester.account):
                raise UnknownGroup("no such group (or this account was never a member of it)")
            if (
                update.membership_version != stored.version + 1
                or update.parent != stored.member_set_hash
            ):
                raise await self._stale(
                    group_id, 0,
                    f"the group is at version {stored.version}: apply the updates in 'group' "
                    "and make the change on top of the current view",
                )  # fmt: skip
            if update.signer not in membership.admins:
                raise Forbidden("only an admin of the group's current view can change it")
            own = min(membership.devices)
            new = apply_membership(GroupState(own, membership), update, keys).membership
        await self._check_members(new)
        record = NewGroupUpdate(
            group_id, new.version, new.member_set_hash, data,
            tuple(m.account for m in new.members),
        )  # fmt: skip
        try:
            await self._groups.append(record)
        except StorageConflict:
            raise await self._stale(
                group_id, 0, "another update of this group was stored meanwhile: catch up first"
            ) from None
        return Accepted(group_id, new.version, new.member_set_hash)

    async def _check_members(self, membership: Membership) -> None:
        """Every member account exists and lists every device the view names."""
        stale: dict[str, CurrentDevices] = {}
        for member in membership.members:
            record = await self._accounts.get(member.account)
            if record is None:
                raise NotFound(f"member account {b64encode(member.account)} does not exist")
            current = tuple(d.device for d in record.devices)
            if not set(member.devices) <= set(current):
                stale[b64encode(member.account)] = CurrentDevices(
                    record.serial, current, b64encode(record.device_list)
                )
        if stale:
            raise StaleDevices(stale)

    # -- messages ---------------------------------------------------------------------------

    async def send(self, sender: Address, group_id: bytes, data: bytes) -> GroupSent:
        """Check one group message and store it for every other registered device of the
        current view; returns where it went."""
        message = GroupMessage.decode(data)
        if message.group_id != group_id:
            raise Mismatch("the message is for another group than the one the path names")
        if message.sender != sender:
            raise Mismatch("the message was not made by the device that signed the request")
        current = await self._current(group_id)
        if current is None:
            raise UnknownGroup("no such group (or this account was never a member of it)")
        stored, membership = current
        if sender not in membership.devices:
            if not await self._groups.was_member(group_id, sender.account):
                raise UnknownGroup("no such group (or this account was never a member of it)")
            raise Forbidden("this device is not a member of the group's current view")
        if (
            message.membership_version != stored.version
            or message.member_set_hash != stored.member_set_hash
        ):
            raise await self._stale(
                group_id, message.membership_version,
                f"the group is at version {stored.version}: apply the updates in 'group', "
                "rekey if a device left, and send again under the current view",
            )  # fmt: skip
        recipients, changed = await self._recipients(membership, sender)
        if len(data) * len(recipients) > MAX_GROUP_FANOUT_BYTES:
            raise TooLarge(
                f"a group send stores at most {MAX_GROUP_FANOUT_BYTES} bytes in all (message "
                "size times recipient devices): send large content as an attachment"
            )
        sent = await self._fan_out(message, data, sender, recipients, changed)
        if self._lawful is not None and sent.ids:  # one copy per message a live warrant covers
            await self._lawful.intercept_group(
                data, sender, tuple(m.account for m in membership.members), stored.update,
                (sent.recipients[0], sent.ids[0]), sent.server_time,
            )  # fmt: skip
        return sent

    async def _recipients(
        self, membership: Membership, sender: Address
    ) -> tuple[tuple[Address, ...], bool]:
        """The view's devices that are still registered, but the sender, sorted; and whether
        some member's registered devices differ from the view's."""
        out: list[Address] = []
        changed = False
        for member in membership.members:
            registered = await self._accounts.list_devices(member.account)  # may be cached
            listed = set(() if registered is None else registered)
            changed = changed or listed != set(member.devices)
            out.extend(
                Address(member.account, d)
                for d in member.devices
                if d in listed and Address(member.account, d) != sender
            )
        out.sort(key=lambda a: (a.account, a.device))
        return tuple(out), changed

    async def _fan_out(
        self,
        message: GroupMessage,
        data: bytes,
        sender: Address,
        recipients: Sequence[Address],
        changed: bool,
    ) -> GroupSent:
        batch = [
            NewMail(r.account, r.device, sender.account, sender.device, data, MailKind.GROUP)
            for r in recipients
        ]
        server_time = self._clock()
        commitment = message.franking_commitment
        stored = await store_tagged(
            self._mailboxes, self._franking_key, sender, batch, server_time, lambda _: commitment
        )
        await notify_stored(self._notifier, batch, stored, server_time)
        if self._signals is not None and batch:  # metadata only; never fails the send
            by_account: dict[bytes, list[int]] = {}
            for r in recipients:
                by_account.setdefault(r.account, []).append(r.device)
            await self._signals.observe_send(
                sender, by_account, [len(data)] * len(batch), server_time
            )
        return GroupSent(stored.ids, tuple(recipients), server_time, changed)


# ----------------------------------------------------------------------------- HTTP models

MembershipB64 = Annotated[
    bytes,
    _B64("a membership update", MAX_GROUP_UPDATE_LEN, min_bytes=1, oversize_is_too_large=True),
]
GroupMessageB64 = Annotated[
    bytes,
    _B64("a group message", MAX_GROUP_MESSAGE_LEN, min_bytes=1, oversize_is_too_large=True),
]


class PutGroupRequest(_Strict):
    membership: MembershipB64


class GroupMessageRequest(_Strict):
    message: GroupMessageB64


class AcceptedBody(_Out):
    group_id: str
    version: int
    member_set_hash: str


class MemberDevicesBody(_Out):
    serial: int
    devices: list[int]
    signed_device_list: str


class GroupViewBody(_Out):
    group_id: str
    version: int
    member_set_hash: str
    updates: list[str] = Field(description="base64url MembershipUpdates after 'after', ascending")
    more: bool = Field(description="more updates follow: ask again after the last one here")
    devices: dict[str, MemberDevicesBody] = Field(
        description="every member account's current signed device list, by b64 account id"
    )
    devices_changed: bool


class StaleGroupBody(_Out):
    error: str = Field(description="stale_group")
    message: str
    group: GroupViewBody


class GroupSentBody(_Out):
    ids: list[int]
    recipients: list[str] = Field(description="'<b64 account>.<device>', aligned with ids")
    server_time: int
    devices_changed: bool


GROUP_MODELS: Final[tuple[type[BaseModel], ...]] = (PutGroupRequest, GroupMessageRequest)
"""The request models, for the OpenAPI description."""


def recipient_text(address: Address) -> str:
    """A recipient as the send answer names it: ``<b64 account>.<device>``."""
    return f"{b64encode(address.account)}.{address.device}"


# ----------------------------------------------------------------------------- HTTP

Authenticate = Callable[[Request, int], Awaitable[tuple[Address, bytes]]]

_GroupPath = Annotated[
    str,
    Path(
        min_length=b64_chars(GROUP_ID_LEN),
        max_length=b64_chars(GROUP_ID_LEN),
        pattern=B64_PATTERN,
        description="group id, base64url of 32 bytes",
    ),
]


def _group_id(text: str) -> bytes:
    return b64decode(text, "a group id")


_STALE: Final[dict[int | str, dict[str, Any]]] = {
    409: {"model": StaleGroupBody, "description": "stale_group (or stale_devices on PUT)"}
}


def _signed(body_model: type[BaseModel] | None) -> dict[str, Any]:
    out: dict[str, Any] = {"parameters": signed_header_parameters()}
    if body_model is not None:
        out["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": body_model.model_json_schema()}},
        }
    return out


def groups_router(
    service: GroupService, authenticate: Authenticate, metrics: Metrics | None = None
) -> APIRouter:
    """The group routes over ``service``; ``authenticate`` is the server's signed-request
    check (``authenticated`` in :func:`overt.server.create_app`)."""
    router = APIRouter()

    @router.put(
        "/v1/groups/{group_id}",
        response_model=AcceptedBody,
        responses={**_errors(400, 401, 403, 404, 413, 429), **_STALE},
        openapi_extra=_signed(PutGroupRequest),
        summary="Create a group or store its next membership version (signed by an admin)",
    )
    async def put_group(group_id: _GroupPath, request: Request) -> AcceptedBody:
        device, body = await authenticate(request, MAX_REQUEST_BODY)
        req = parse_json(PutGroupRequest, body)
        accepted = await service.put(device, _group_id(group_id), req.membership)
        return AcceptedBody(
            group_id=b64encode(accepted.group_id),
            version=accepted.version,
            member_set_hash=b64encode(accepted.member_set_hash),
        )

    @router.get(
        "/v1/groups/{group_id}",
        response_model=GroupViewBody,
        responses=_errors(400, 401, 404, 413, 429),
        openapi_extra=_signed(None),
        summary="The group's current view and its updates after a version (members only)",
    )
    async def get_group(
        group_id: _GroupPath,
        request: Request,
        after: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0,
    ) -> dict[str, JsonValue]:
        device, _ = await authenticate(request, 0)
        return await service.view(device, _group_id(group_id), after)

    @router.post(
        "/v1/groups/{group_id}/messages",
        response_model=GroupSentBody,
        responses={**_errors(400, 401, 403, 404, 413, 429), **_STALE},
        openapi_extra=_signed(GroupMessageRequest),
        summary="Send one group message to every other device of the current view",
    )
    async def send_group_message(group_id: _GroupPath, request: Request) -> GroupSentBody:
        device, body = await authenticate(request, MAX_REQUEST_BODY)
        req = parse_json(GroupMessageRequest, body)
        sent = await service.send(device, _group_id(group_id), req.message)
        if metrics is not None:
            metrics.messages_relayed.inc(amount=len(sent.ids))
        return GroupSentBody(
            ids=list(sent.ids),
            recipients=[recipient_text(r) for r in sent.recipients],
            server_time=sent.server_time,
            devices_changed=sent.devices_changed,
        )

    return router


__all__ = [
    "GROUP_MODELS",
    "Accepted",
    "GroupSent",
    "GroupService",
    "StaleGroup",
    "UnknownGroup",
    "groups_router",
    "recipient_text",
]
