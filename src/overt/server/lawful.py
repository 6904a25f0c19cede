"""Lawful access at the provider (DESIGN §6): serving warrants, copying the targets' envelopes,
revocation, unsealing, the custodians' access receipts and the escrow-epoch keys.

:class:`LawfulAccess` is the service; :func:`lawful_router` its routes (a FastAPI
``APIRouter``: mount it with ``app.include_router``). Errors are :class:`~overt.errors.OvertError`
subclasses answered by the application's error edge (:func:`overt.server.errors.describe`).

=========================================  =================================================
``POST /v1/warrants``                      a court-signed warrant (the court's JSON file as
                                           the body): verified against the manifest's court
                                           keys and sealing bound, its commitment **appended
                                           to the log first**, then stored and live. ``201
                                           {"warrant_id", "index", "token"}``; the token
                                           (random, stored only as its SHA-256) is the one
                                           credential for the intercepts; a warrant is served
                                           once (``409`` after).
``GET /v1/warrants/{id}/intercepts``       ``Authorization: Bearer <token>``;
``?after=&limit=``                         ``{"intercepts": [...], "more", "total"}`` in id
                                           order.
``POST /v1/warrants/{id}/revoke``          a court-signed revocation: interception stops.
``GET /v1/warrants/{id}/revocation``       the revocation (``404`` if none) — custodians ask.
``POST /v1/log/receipts``                  ``{"receipt", "signature"}``: an access receipt
                                           signed by the custodian it names; logged, ``201
                                           {"index"}``.
``POST /v1/epochs``                        a DKG publication
                                           (:class:`~overt.services.custodian_wire.EpochPublication`):
                                           the transcript is recomputed from the signed
                                           messages and must be confirmed by every custodian;
                                           its ``EpochKey`` is logged. ``201``.
``GET /v1/epochs``, ``GET /v1/epochs/{e}``  the logged epochs with their transcripts and
                                           the custodians' signed confirmations of them.
=========================================  =================================================

**Interception.** :meth:`LawfulAccess.intercept` is the hook the message service calls after
every enqueue (:meth:`LawfulAccess.intercept_group` the group service's, after a group
message's fan-out: one copy per message, with the signed membership update of the view it
names; the covered accounts are its sender and that view's members). It copies an envelope
only if its sender or recipient account is a target of a
*live* warrant (served, not revoked, its authorisation in force at the server time) in a
``content`` task whose window, widened by :data:`INTERCEPT_SLACK_SECONDS` on each side (the
access context carries the *sender's* day, which may differ from the server's clock),
contains the server time. Nothing else is ever copied: the relay's retention of ciphertext
stays zero without a warrant. The live set is cached and re-read from the store at least every
:data:`LIVE_REFRESH_MS` (at once after a serve or revocation on this node; other nodes see it
within that time). A failure to copy is logged, never raised into the send.

**Unsealing.** :meth:`LawfulAccess.unseal_due` (run periodically) appends the
``WarrantUnsealing`` of every warrant past its notification date — revoked ones too.

**Receipts.** A correctly signed receipt of a listed custodian is logged even if the provider
holds no such warrant: the log records what custodians did, and the audit flags a receipt
without a warrant. A retried post may log a receipt twice (an over-count, never an
under-count).

What this module must not know: SQL (only the stores' protocols) and the client. It reads
time only through ``clock`` and draws randomness only from ``rng``.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Final, Protocol

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import ClientDisconnect

from overt.access.epoch import encode_confirmations
from overt.access.errors import DkgFailed
from overt.access.limits import MAX_WARRANT_BYTES
from overt.access.warrant import (
    Delivery,
    Warrant,
    unsealing,
    verify_revocation,
    verify_warrant,
    warrant_commitment,
    warrant_opening,
)
from overt.crypto import Rng, constant_time_eq, sha256
from overt.errors import (
    DecodeError,
    InvalidMessage,
    OvertError,
    ProtocolViolation,
    UntrustedIdentity,
)
from overt.server.codec import B64_PATTERN, b64_chars, b64decode, b64encode, format_address
from overt.server.errors import Forbidden, Malformed, TooLarge, Unauthenticated
from overt.services.custodian_wire import EpochPublication, verify_publication, verify_receipt
from overt.storage import AlreadyExists, MailKind, NewMail, NotFound, StorageError
from overt.storage.interfaces import (
    EpochRecord,
    EpochStore,
    Intercept,
    InterceptStore,
    NewIntercept,
    WarrantRecord,
    WarrantStore,
)
from overt.storage.limits import EPOCH_PAGE_MAX, INTERCEPT_PAGE_MAX, WARRANT_PAGE_MAX
from overt.transparency.entries import AccessReceipt, EpochKey, decode_entry
from overt.transparency.log import Log
from overt.transparency.manifest import EscrowAccess, Manifest
from overt.wire import Address
from overt.wire.jcs import JsonValue, parse_strict

_log = logging.getLogger("overt.server")

INTERCEPT_SLACK_SECONDS: Final = 86_400
"""How far outside a task's window (by the server's clock) an envelope is still copied: the
custodians judge the window by the sender's day, which may be a day off the server's."""

LIVE_REFRESH_MS: Final = 1000
"""Longest time the interception hook uses its cached live warrants before re-reading them."""

TOKEN_LEN: Final = 32
"""Random bytes of a warrant's access token."""

MAX_RECEIPT_BODY: Final = 4096
MAX_EPOCH_BODY: Final = 1024 * 1024
INTERCEPT_PAGE_DEFAULT: Final = 100

_DECIMAL: Final = re.compile(r"0|[1-9][0-9]{0,18}")
_WARRANT_ID_B64: Final = b64_chars(32)

_WarrantPath = Annotated[
    str,
    Path(
        min_length=_WARRANT_ID_B64,
        max_length=_WARRANT_ID_B64,
        pattern=B64_PATTERN,
        description="the warrant id, base64url without padding",
    ),
]


def _body_doc(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    content = {"application/json": {"schema": schema or {"type": "object"}}}
    return {"requestBody": {"required": True, "description": description, "content": content}}


_B64_STRING: Final[dict[str, Any]] = {"type": "string", "pattern": B64_PATTERN}
_SIGNED_MESSAGES: Final[dict[str, Any]] = {"type": "array", "items": {"type": "object"}}


class WarrantRefused(ProtocolViolation):
    """A warrant, revocation, receipt or epoch publication that does not verify, said why."""

    code = "invalid"


# ----------------------------------------------------------------------------- the service


class _InForce(Protocol):
    @property
    def manifest(self) -> Manifest: ...


class ManifestSource(Protocol):
    """Where the manifest in force comes from (the server's ``ManifestPublisher``)."""

    async def ensure(self) -> _InForce: ...


@dataclass(frozen=True, slots=True)
class ServedWarrant:
    warrant_id: bytes
    index: int
    token: bytes


@dataclass(frozen=True, slots=True)
class _Window:
    targets: frozenset[bytes]
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class _Live:
    warrant_id: bytes
    start: int
    end: int
    windows: tuple[_Window, ...]

    def covers(self, accounts: Collection[bytes], t: int) -> bool:
        if not self.start <= t < self.end:
            return False
        return any(
            w.start - INTERCEPT_SLACK_SECONDS <= t < w.end + INTERCEPT_SLACK_SECONDS
            and not w.targets.isdisjoint(accounts)
            for w in self.windows
        )


def _group_copy(
    warrant_id: bytes,
    first: tuple[Address, int],
    server_time: int,
    sender: Address,
    message: bytes,
    membership: bytes,
) -> NewIntercept:
    recipient, mail_id = first
    return NewIntercept(
        warrant_id, mail_id, server_time, sender.account, sender.device, recipient.account,
        recipient.device, message, MailKind.GROUP, membership,
    )  # fmt: skip


def parse_stored_warrant(document: bytes) -> Warrant:
    """The warrant of a signed document that was verified when it was served."""
    doc = parse_strict(document, max_bytes=MAX_WARRANT_BYTES)
    if not isinstance(doc, dict):
        raise DecodeError("a stored warrant is a JSON object")
    return Warrant.from_json(doc.get("warrant"))


def _live(record: WarrantRecord) -> _Live:
    warrant = parse_stored_warrant(record.document)
    windows = tuple(
        _Window(frozenset(t.targets), t.timespan.start, t.timespan.end)
        for t in warrant.tasks
        if t.delivery is Delivery.CONTENT
    )
    return _Live(record.warrant_id, warrant.window.start, warrant.window.end, windows)


class LawfulAccess:
    """The provider's side of lawful access over the log and the lawful-access stores.

    ``manifests`` gives the manifest in force (its court keys, custodians and escrow policy);
    ``clock`` returns milliseconds (the relay's clock); ``rng`` draws access tokens.
    """

    def __init__(
        self,
        log: Log,
        manifests: ManifestSource,
        warrants: WarrantStore,
        intercepts: InterceptStore,
        epochs: EpochStore,
        *,
        clock: Callable[[], int],
        rng: Rng,
    ) -> None:
        self._log = log
        self._manifests = manifests
        self._warrants = warrants
        self._intercepts = intercepts
        self._epochs = epochs
        self._clock = clock
        self._rng = rng
        self._lock = asyncio.Lock()
        self._live: tuple[_Live, ...] = ()
        self._live_read_ms: int | None = None

    def _now(self) -> int:
        return self._clock() // 1000

    async def require_escrow(self) -> None:
        """:class:`Forbidden` unless the deployment's access policy is ``escrow``."""
        await self._escrow()

    async def _escrow(self) -> EscrowAccess:
        access = (await self._manifests.ensure()).manifest.access
        if not isinstance(access, EscrowAccess):
            raise Forbidden("this deployment's access policy is none: it accepts no warrants")
        return access

    # -- warrants -------------------------------------------------------------------------

    async def serve(self, document: bytes) -> ServedWarrant:
        """Verify a court-signed warrant, log its commitment, store it; return its token."""
        access = await self._escrow()
        try:
            warrant = verify_warrant(
                document, access.court_keys, max_seal_days=access.max_seal_days
            )
        except UntrustedIdentity as e:
            raise Forbidden(f"{e}: only the courts the manifest lists can sign warrants") from None
        except InvalidMessage:
            raise WarrantRefused("the court's signature on the warrant does not verify") from None
        except DecodeError as e:
            raise Malformed(str(e)) from None
        except ProtocolViolation as e:
            raise WarrantRefused(str(e)) from None
        if self._now() >= warrant.window.end:
            raise WarrantRefused("the warrant's authorisation has already ended")
        async with self._lock:
            if await self._warrants.get(warrant.warrant_id) is not None:
                raise AlreadyExists("this warrant was served already; its token went to its server")
            entry, _ = warrant_commitment(warrant)
            (index,) = await self._log.append([entry])
            token = self._rng.random_bytes(TOKEN_LEN)
            await self._warrants.add(
                WarrantRecord(
                    warrant.warrant_id, index, sha256(token), document,
                    warrant.window.end, warrant.sealed_until,
                )
            )  # fmt: skip
            self._live_read_ms = None
        _log.info("warrant served", extra={"fields": {"index": index}})
        return ServedWarrant(warrant.warrant_id, index, token)

    async def _authorised(self, warrant_id: bytes, token: bytes) -> WarrantRecord:
        record = await self._warrants.get(warrant_id)
        if record is None or not constant_time_eq(sha256(token), record.token_hash):
            raise Unauthenticated("unknown warrant or wrong access token")
        return record

    async def intercepted(
        self, warrant_id: bytes, token: bytes, after: int, limit: int
    ) -> tuple[tuple[Intercept, ...], bool, int]:
        """A page of the warrant's intercepts, whether more follow, and how many there are."""
        await self._authorised(warrant_id, token)
        page = await self._intercepts.page(warrant_id, after, limit + 1)
        total = await self._intercepts.count(warrant_id)
        return page[:limit], len(page) > limit, total

    async def revoke(self, warrant_id: bytes, document: bytes) -> bool:
        """Record a court-signed revocation of ``warrant_id``; True if it is the first."""
        access = await self._escrow()
        try:
            revocation = verify_revocation(document, access.court_keys)
        except UntrustedIdentity as e:
            raise Forbidden(f"{e}: only the courts the manifest lists can revoke") from None
        except InvalidMessage:
            raise WarrantRefused(
                "the court's signature on the revocation does not verify"
            ) from None
        except DecodeError as e:
            raise Malformed(str(e)) from None
        if revocation.warrant_id != warrant_id:
            raise WarrantRefused("the revocation names another warrant")
        first = await self._warrants.revoke(warrant_id, document)
        self._live_read_ms = None
        _log.info("warrant revoked", extra={"fields": {"first": first}})
        return first

    async def revocation(self, warrant_id: bytes) -> bytes:
        record = await self._warrants.get(warrant_id)
        if record is None or record.revocation is None:
            raise NotFound("the provider holds no revocation of this warrant")
        return record.revocation

    # -- interception ---------------------------------------------------------------------

    async def _live_warrants(self) -> tuple[_Live, ...]:
        now_ms = self._clock()
        if self._live_read_ms is None or now_ms - self._live_read_ms >= LIVE_REFRESH_MS:
            live = []
            for record in await self._warrants.live(now_ms // 1000):
                try:
                    live.append(_live(record))
                except DecodeError:  # pragma: no cover - it verified when served
                    _log.error("a stored warrant does not parse")
            self._live, self._live_read_ms = tuple(live), now_ms
        return self._live

    async def intercept(
        self, batch: Sequence[NewMail], ids: Sequence[int], server_time: int
    ) -> int:
        """The message service's hook, after every enqueue: copy the envelopes a live warrant
        covers (``ids`` are the server ids the store gave ``batch``, ``server_time`` the
        relay's milliseconds). Returns how many copies were stored; never raises for a
        storage failure (it is logged)."""
        try:
            live = await self._live_warrants()
            if not live:
                return 0
            t = server_time // 1000
            copies = [
                NewIntercept(
                    w.warrant_id,
                    mail_id,
                    server_time,
                    m.sender_account,
                    m.sender_device,
                    m.recipient_account,
                    m.recipient_device,
                    m.envelope,
                )
                for m, mail_id in zip(batch, ids, strict=True)
                if m.kind is MailKind.ENVELOPE  # group messages: intercept_group
                for w in live
                if w.covers((m.sender_account, m.recipient_account), t)
            ]
            if copies:
                await self._intercepts.add(copies)
            return len(copies)
        except (StorageError, OvertError):
            _log.exception("interception failed: envelopes a warrant covers were not copied")
            return 0

    async def intercept_group(
        self,
        message: bytes,
        sender: Address,
        members: Collection[bytes],
        membership: bytes,
        first: tuple[Address, int],
        server_time: int,
    ) -> int:
        """The group service's hook, after a group message's fan-out: copy the message
        **once** (not once per delivery) under each live warrant that covers its sender or a
        member account of the view it names (``members``; ``membership`` is that view's signed
        update, kept with the copy for the custodians). ``first`` is the first delivery (its
        recipient and server id), recorded as the copy's mail id and recipient. One message,
        one copy, one access context: the warrant's cap counts it once. Returns how many
        copies were stored; never raises for a storage failure (it is logged)."""
        try:
            live = await self._live_warrants()
            if not live:
                return 0
            accounts = {sender.account, *members}
            t = server_time // 1000
            copies = [
                _group_copy(w.warrant_id, first, server_time, sender, message, membership)
                for w in live
                if w.covers(accounts, t)
            ]
            if copies:
                await self._intercepts.add(copies)
            return len(copies)
        except (StorageError, OvertError):
            _log.exception("interception failed: a group message a warrant covers was not copied")
            return 0

    # -- receipts and epochs --------------------------------------------------------------

    async def log_receipt(self, receipt: bytes, signature: bytes) -> int:
        """Log a custodian-signed access receipt; its log index."""
        try:
            entry = decode_entry(receipt)
        except DecodeError as e:
            raise Malformed(str(e)) from None
        if not isinstance(entry, AccessReceipt):
            raise Malformed("the receipt is not an access receipt entry")
        access = await self._escrow()
        key = next((c.key for c in access.custodians if c.key.raw == entry.custodian_id), None)
        if key is None:
            raise Forbidden("the receipt names a custodian the manifest does not list")
        try:
            verify_receipt(entry, signature, key)
        except InvalidMessage:
            raise WarrantRefused(
                "the custodian's signature on the receipt does not verify"
            ) from None
        (index,) = await self._log.append([entry])
        _log.info("access receipt logged", extra={"fields": {"index": index, "count": entry.count}})
        return index

    async def publish_epoch(self, publication: EpochPublication) -> tuple[EpochRecord, EpochKey]:
        """Verify a DKG publication, log its ``EpochKey``, keep its transcript and the
        custodians' signed confirmations of it (which clients check again)."""
        manifest = (await self._manifests.ensure()).manifest
        await self._escrow()
        try:
            verified = verify_publication(publication, manifest)
        except InvalidMessage:
            raise WarrantRefused("a DKG message is not signed by its custodian") from None
        except DecodeError as e:
            raise Malformed(str(e)) from None
        except (ProtocolViolation, DkgFailed) as e:
            raise WarrantRefused(f"the DKG publication does not verify: {e}") from None
        async with self._lock:
            if await self._epochs.get(publication.epoch) is not None:
                raise AlreadyExists(f"epoch {publication.epoch} has a key in the log already")
            (index,) = await self._log.append([verified.entry])
            record = EpochRecord(
                publication.epoch,
                index,
                verified.transcript.encode(),
                encode_confirmations(verified.confirmations),
            )
            await self._epochs.add(record)
        _log.info(
            "epoch key logged", extra={"fields": {"epoch": publication.epoch, "index": index}}
        )
        return record, verified.entry

    async def epoch(self, epoch: int) -> tuple[EpochRecord, EpochKey]:
        record = await self._epochs.get(epoch)
        if record is None:
            raise NotFound(f"no key of epoch {epoch} is in the log")
        return record, await self._entry(record)

    async def epochs(self) -> list[tuple[EpochRecord, EpochKey]]:
        return [(r, await self._entry(r)) for r in await self._epochs.latest(EPOCH_PAGE_MAX)]

    async def _entry(self, record: EpochRecord) -> EpochKey:
        (data,) = await self._log.entries(record.index, record.index + 1)
        entry = decode_entry(data)
        if not isinstance(entry, EpochKey):  # pragma: no cover - the store and log disagree
            raise StorageError("the epoch record points at another kind of log entry")
        return entry

    # -- unsealing ------------------------------------------------------------------------

    async def unseal_due(self, now: int | None = None) -> list[int]:
        """Log the unsealing of every warrant past its notification date (``now``: Unix
        seconds, default the clock's); the log indices appended."""
        now = self._now() if now is None else now
        appended = []
        for record in await self._warrants.due_for_unsealing(now, WARRANT_PAGE_MAX):
            warrant = parse_stored_warrant(record.document)
            entry = unsealing(warrant, warrant_opening(warrant))
            (index,) = await self._log.append([entry])
            await self._warrants.set_unsealed(record.warrant_id, index)
            appended.append(index)
        if appended:
            _log.info("warrants unsealed", extra={"fields": {"count": len(appended)}})
        return appended


# ----------------------------------------------------------------------------- HTTP


class ServedWarrantBody(BaseModel):
    model_config = ConfigDict(frozen=True)
    warrant_id: str = Field(description="base64url of the warrant id")
    index: int = Field(description="the log index of the warrant's commitment")
    token: str = Field(description="base64url access token for the intercepts (keep it secret)")


class InterceptBody(BaseModel):
    model_config = ConfigDict(frozen=True)
    id: int
    mail_id: int
    server_time: int = Field(description="the relay's time, milliseconds")
    sender: str = Field(description="<b64 account>:<device>")
    recipient: str = Field(
        description="<b64 account>:<device> (a group message: its first delivery's)"
    )
    kind: str = Field(description="'envelope' (one-to-one) or 'group' (one group message)")
    envelope: str = Field(description="base64url of the envelope or group message, as relayed")
    membership: str | None = Field(
        description="a group message: base64url of the signed membership update of the view "
        "it names; null for an envelope"
    )


class InterceptsBody(BaseModel):
    model_config = ConfigDict(frozen=True)
    intercepts: list[InterceptBody]
    more: bool
    total: int


class RevokedBody(BaseModel):
    model_config = ConfigDict(frozen=True)
    warrant_id: str
    revoked: bool
    first: bool


class IndexBody(BaseModel):
    model_config = ConfigDict(frozen=True)
    index: int


class EpochBody(BaseModel):
    model_config = ConfigDict(frozen=True)
    epoch: int
    index: int = Field(description="the log index of the epoch's EpochKey entry")
    public_key: str = Field(description="base64url of the epoch key Y (ristretto255)")
    not_before: int
    retain_until: int
    transcript: str = Field(description="base64url of the DKG transcript")
    confirmations: str | None = Field(
        description="base64url of every custodian's signed confirmation of the transcript "
        "(overt.access.epoch); null for an epoch logged before the provider kept them"
    )


class EpochsBody(BaseModel):
    model_config = ConfigDict(frozen=True)
    epochs: list[EpochBody]


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"the request body is larger than {limit} bytes")
    chunks, total = [], 0
    try:
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                raise TooLarge(f"the request body is larger than {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        raise Malformed("the request body was cut off") from None
    return b"".join(chunks)


async def _json(request: Request, limit: int) -> JsonValue:
    try:
        return parse_strict(await _body(request, limit), max_bytes=limit)
    except DecodeError as e:
        raise Malformed(f"the body is not strict JSON: {e}") from None


def _query(request: Request, allowed: dict[str, int]) -> dict[str, int]:
    """Canonical decimal query parameters, each at most once, only those ``allowed`` (with
    their defaults)."""
    out = dict(allowed)
    seen: set[str] = set()
    for name, value in request.query_params.multi_items():
        if name not in allowed or name in seen:
            raise Malformed(f"this endpoint takes only {', '.join(sorted(allowed))}, once each")
        if not _DECIMAL.fullmatch(value) or int(value) > (1 << 63) - 1:
            raise Malformed(f"{name} must be a decimal integer")
        seen.add(name)
        out[name] = int(value)
    return out


def _warrant_id(text: str) -> bytes:
    raw = b64decode(text, "a warrant id")
    if len(raw) != 32:
        raise Malformed("a warrant id is 32 bytes")
    return raw


def _epoch_body(record: EpochRecord, entry: EpochKey) -> EpochBody:
    return EpochBody(
        epoch=record.epoch,
        index=record.index,
        public_key=b64encode(entry.public_key),
        not_before=entry.not_before,
        retain_until=entry.retain_until,
        transcript=b64encode(record.transcript),
        confirmations=None if record.confirmations is None else b64encode(record.confirmations),
    )


def lawful_router(service: LawfulAccess) -> APIRouter:
    """The lawful-access routes over ``service`` (see the module docstring)."""
    router = APIRouter(tags=["lawful access"])
    errors: dict[int | str, dict[str, Any]] = {
        status: {"description": "error"} for status in (400, 401, 403, 404, 409, 413)
    }

    @router.post(
        "/v1/warrants",
        status_code=201,
        response_model=ServedWarrantBody,
        responses=errors,
        summary="Serve a court-signed warrant (logged before it is used)",
        openapi_extra=_body_doc("the court's signed warrant (canonical JSON), as it signed it"),
    )
    async def serve(request: Request) -> ServedWarrantBody:
        await service.require_escrow()
        served = await service.serve(await _body(request, MAX_WARRANT_BYTES))
        return ServedWarrantBody(
            warrant_id=b64encode(served.warrant_id),
            index=served.index,
            token=b64encode(served.token),
        )

    @router.get(
        "/v1/warrants/{warrant_id}/intercepts",
        response_model=InterceptsBody,
        responses=errors,
        summary="The envelopes copied under a warrant (Bearer: its access token)",
    )
    async def intercepts(
        warrant_id: _WarrantPath,
        request: Request,
        after: Annotated[int, Query(ge=0, le=(1 << 63) - 1, description="last id seen")] = 0,
        limit: Annotated[
            int, Query(ge=1, le=INTERCEPT_PAGE_MAX - 1, description="page size")
        ] = INTERCEPT_PAGE_DEFAULT,
    ) -> InterceptsBody:
        # FastAPI parsed after/limit (for the description); the raw text is checked strictly.
        q = _query(request, {"after": after, "limit": limit})
        if not 1 <= q["limit"] <= INTERCEPT_PAGE_MAX - 1:
            raise Malformed(f"limit must be in 1..{INTERCEPT_PAGE_MAX - 1}")
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer "):
            raise Unauthenticated("send the warrant's access token: Authorization: Bearer <token>")
        try:
            token = b64decode(header.removeprefix("Bearer ").strip(), "a token")
        except Malformed:
            raise Unauthenticated("unknown warrant or wrong access token") from None
        page, more, total = await service.intercepted(
            _warrant_id(warrant_id), token, q["after"], q["limit"]
        )
        return InterceptsBody(
            intercepts=[
                InterceptBody(
                    id=i.id,
                    mail_id=i.mail_id,
                    server_time=i.server_time,
                    sender=format_address_of(i.sender_account, i.sender_device),
                    recipient=format_address_of(i.recipient_account, i.recipient_device),
                    kind=i.kind.value,
                    envelope=b64encode(i.envelope),
                    membership=None if i.membership is None else b64encode(i.membership),
                )
                for i in page
            ],
            more=more,
            total=total,
        )

    @router.post(
        "/v1/warrants/{warrant_id}/revoke",
        response_model=RevokedBody,
        responses=errors,
        summary="Revoke a warrant (court-signed): interception stops",
        openapi_extra=_body_doc("the court's signed revocation (canonical JSON)"),
    )
    async def revoke(warrant_id: _WarrantPath, request: Request) -> RevokedBody:
        await service.require_escrow()
        wid = _warrant_id(warrant_id)
        first = await service.revoke(wid, await _body(request, MAX_WARRANT_BYTES))
        return RevokedBody(warrant_id=warrant_id, revoked=True, first=first)

    @router.get(
        "/v1/warrants/{warrant_id}/revocation",
        response_class=Response,
        responses={
            **errors,
            200: {"content": {"application/json": {}}, "description": "the signed revocation"},
        },
        summary="A warrant's court-signed revocation, if any (custodians check it)",
    )
    async def revocation(warrant_id: _WarrantPath) -> Response:
        document = await service.revocation(_warrant_id(warrant_id))
        return Response(document, media_type="application/json")

    @router.post(
        "/v1/log/receipts",
        status_code=201,
        response_model=IndexBody,
        responses=errors,
        summary="Log a custodian-signed access receipt",
        openapi_extra=_body_doc(
            "an AccessReceipt log entry and its custodian's signature",
            {
                "type": "object",
                "required": ["receipt", "signature"],
                "additionalProperties": False,
                "properties": {"receipt": _B64_STRING, "signature": _B64_STRING},
            },
        ),
    )
    async def receipts(request: Request) -> IndexBody:
        await service.require_escrow()
        doc = await _json(request, MAX_RECEIPT_BODY)
        if not isinstance(doc, dict) or set(doc) != {"receipt", "signature"}:
            raise Malformed('the body is {"receipt": "<b64 entry>", "signature": "<b64>"}')
        receipt, signature = doc["receipt"], doc["signature"]
        if not isinstance(receipt, str) or not isinstance(signature, str):
            raise Malformed("receipt and signature are base64url strings")
        index = await service.log_receipt(
            b64decode(receipt, "the receipt"), b64decode(signature, "the signature")
        )
        return IndexBody(index=index)

    @router.post(
        "/v1/epochs",
        status_code=201,
        response_model=EpochBody,
        responses=errors,
        summary="Publish an escrow epoch's DKG (verified, then its EpochKey logged)",
        openapi_extra=_body_doc(
            "the DKG run: every custodian's signed broadcast messages and confirmation",
            {
                "type": "object",
                "additionalProperties": False,
                "required": [
                    "answers",
                    "attempt",
                    "commitments",
                    "complaints",
                    "confirmations",
                    "epoch",
                ],
                "properties": {
                    "epoch": {"type": "integer", "minimum": 0, "maximum": 0xFFFF_FFFF},
                    "attempt": {"type": "integer", "minimum": 0, "maximum": 0xFFFF_FFFF},
                    "commitments": _SIGNED_MESSAGES,
                    "complaints": _SIGNED_MESSAGES,
                    "answers": _SIGNED_MESSAGES,
                    "confirmations": _SIGNED_MESSAGES,
                },
            },
        ),
    )
    async def publish(request: Request) -> EpochBody:
        await service.require_escrow()
        try:
            publication = EpochPublication.from_json(await _json(request, MAX_EPOCH_BODY))
        except DecodeError as e:
            raise Malformed(str(e)) from None
        record, entry = await service.publish_epoch(publication)
        return _epoch_body(record, entry)

    @router.get("/v1/epochs", response_model=EpochsBody, summary="The logged escrow epochs")
    async def epochs() -> EpochsBody:
        return EpochsBody(epochs=[_epoch_body(r, e) for r, e in await service.epochs()])

    @router.get(
        "/v1/epochs/{epoch}",
        response_model=EpochBody,
        responses=errors,
        summary="One logged escrow epoch and its DKG transcript",
    )
    async def epoch(epoch: Annotated[int, Path(ge=0, le=0xFFFF_FFFF)]) -> EpochBody:
        record, entry = await service.epoch(epoch)
        return _epoch_body(record, entry)

    return router


def format_address_of(account: bytes, device: int) -> str:
    return format_address(Address(account, device))


__all__ = [
    "INTERCEPT_SLACK_SECONDS",
    "LIVE_REFRESH_MS",
    "LawfulAccess",
    "ManifestSource",
    "ServedWarrant",
    "WarrantRefused",
    "lawful_router",
    "parse_stored_warrant",
]
