"""Report intake: ``POST /v1/reports``, the reporter's standing, and the suspension gate.

A device reports messages it received by sending the JSON view of an
:class:`overt.safety.Report` with a category (docs/safety.md, "Reporting a message")::

    POST /v1/reports            (signed by the reporting device, docs/api.md)
    {"category": "harassment", "report": {"version": 1, "reporter": "<b64>:<device>",
                                          "comment": "…", "messages": [ … ]}}

    201 {"id": "<b64 16 bytes>", "sha256": "<hex>", "received_ms": …, "retain_until_ms": …,
         "messages": n}

:class:`ReportService` checks the report with :func:`overt.safety.verify_report` — for the
authenticated device, against the server's franking key, at the injected clock's time, with
the messages this account reported before as ``seen`` — and only then stores its evidence
bundle (:class:`overt.safety.EvidenceBundle`: the exact report, its SHA-256, when it was
received and until when it is kept, :data:`~overt.safety.limits.EVIDENCE_RETENTION_MS` by
default) with its replay keys and a queue item, in one transaction of the
:class:`~overt.storage.moderation.ReportStore`. A report that fails any check stores nothing;
the answer says which message failed and, for a cryptographic failure, never why:

=====================================  ==============================================
``400 malformed``                      not JSON, not a report, unknown category
``400 refused``                        another reporter, a message that reached
                                       another account or was sent by the reporter's
                                       own account, a server time in the future
``400 invalid_report``                 an altered body or key, a forged tag, a tag of
                                       another device, an attachment that is not the
                                       committed one (message named, reason not)
``409 already_reported``               a message this account already reported
``413 too_large``                      over :data:`REPORT_REQUEST_MAX_BYTES` or a
                                       bound of :mod:`overt.safety.limits`
=====================================  ==============================================

The queue item's severity comes from the reporter's :class:`Category`
(:data:`CATEGORY_SEVERITY`); the moderation console (:mod:`overt.console`) works the queue.

``GET /v1/reports/standing`` tells a device its account's standing (warnings, suspension).
:class:`SuspensionGate` is what the relay's authentication asks before serving a suspended
account (403 ``suspended``).

This module knows HTTP and the report JSON; verification is :mod:`overt.safety`'s, storage the
store's. Time comes only from the injected clock. It never logs report content.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Container, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from overt.errors import ConfigurationError, DecodeError, LimitExceeded, RemoteError
from overt.safety import (
    AlreadyReported,
    EvidenceBundle,
    InvalidReportedMessage,
    ReplayKey,
    Report,
    ReportRefused,
    VerifiedReport,
    verify_report,
)
from overt.server.auth import Clock
from overt.server.codec import b64encode
from overt.server.errors import Forbidden, Malformed, TooLarge
from overt.server.models import error_responses as _errors
from overt.server.models import signed_header_parameters
from overt.storage import AlreadyExists, StorageConflict
from overt.storage.limits import REPORT_ID_LEN
from overt.storage.moderation import NewReport, ReportStore, StandingStore
from overt.wire import Address

_log = logging.getLogger("overt.server.reports")

# ----------------------------------------------------------------------------- bounds

REPORT_REQUEST_MAX_BYTES: Final = 32 * 1024 * 1024
"""Bytes of one ``POST /v1/reports`` body: a report revealing one 10 MiB attachment as
ciphertext (13.4 MiB of base64) with room to spare. Larger evidence is not taken over HTTP."""

MAX_CONCURRENT_VERIFICATIONS: Final = 4
"""Reports verified at once per server node (each may hash and decrypt 10 MiB attachments
off the event loop); further reports wait their turn."""

SUSPENSION_CACHE_MS: Final = 10_000
"""How long a node trusts what it last read of an account's suspension; a suspension made
on this node applies at once (:meth:`SuspensionGate.forget`), on another node within this."""

SUSPENSION_CACHE_ENTRIES: Final = 100_000
"""Accounts whose suspension state one node remembers (least recently used forgotten)."""


class Category(StrEnum):
    """What the reporter says is wrong; it sets the queue item's severity."""

    CHILD_SAFETY = "child_safety"
    VIOLENCE = "violence"
    HARASSMENT = "harassment"
    SPAM = "spam"
    OTHER = "other"


CATEGORY_SEVERITY: Final[Mapping[Category, int]] = {
    Category.CHILD_SAFETY: 9,
    Category.VIOLENCE: 7,
    Category.HARASSMENT: 5,
    Category.SPAM: 3,
    Category.OTHER: 2,
}
"""Queue severity (0..9, worked highest first) per category. Child safety comes first: it may
need a CyberTipline report, which the law expects "as soon as reasonably possible"."""


# ----------------------------------------------------------------------------- errors


class ReportNotAccepted(RemoteError):
    """A well-formed report this reporter may not make (see the message)."""

    status_hint = 400
    code = "refused"


class ReportNotVerified(RemoteError):
    """A reported message failed a cryptographic check (which one is said, not why)."""

    status_hint = 400
    code = "invalid_report"


class ReportAlreadyKnown(StorageConflict):
    """A message this account has already reported."""

    code = "already_reported"


class Suspended(Forbidden):
    """The account is suspended by the provider's moderators."""

    code = "suspended"


# ----------------------------------------------------------------------------- the service


@dataclass(frozen=True, slots=True)
class Receipt:
    """What the reporter learns about its stored report."""

    report_id: bytes
    sha256: bytes
    received_ms: int
    retain_until_ms: int
    messages: int


class _Seen:
    """``verify_report``'s ``seen``: the replay keys of this report that the store holds."""

    def __init__(self, stored: frozenset[bytes]) -> None:
        self._stored = stored

    def __contains__(self, key: object) -> bool:
        return isinstance(key, ReplayKey) and key.encode() in self._stored


def report_id_of(report_sha256: bytes) -> bytes:
    """A report's id: the first 16 bytes of its SHA-256 (a replayed report cannot be stored
    twice, so the id is unique; it reveals nothing about how many reports exist)."""
    return report_sha256[:REPORT_ID_LEN]


def subject_of(senders: list[bytes]) -> bytes:
    """The account a report is about: the sender of most of its messages (the first such)."""
    counts = Counter(senders)
    top = max(counts.values())
    return next(s for s in senders if counts[s] == top)


class ReportService:
    """Verify, keep and queue reports. Given the franking key, the report store and the clock."""

    def __init__(self, franking_key: bytes, reports: ReportStore | None, clock: Clock) -> None:
        if reports is None:
            raise ConfigurationError(
                "this storage backend has no report store (Storage.reports); the server cannot "
                "take abuse reports without one"
            )
        self._key = franking_key
        self._reports = reports
        self._clock = clock
        self._slots = asyncio.Semaphore(MAX_CONCURRENT_VERIFICATIONS)

    async def submit(self, reporter: Address, category: Category, report: Report) -> Receipt:
        """Verify ``report`` for the authenticated ``reporter`` device, then store and queue
        it; nothing is stored unless every check passes."""
        keys = [ReplayKey(reporter.account, m.franking_commitment) for m in report.messages]
        encoded = [k.encode() for k in keys]
        seen = _Seen(await self._reports.seen(sorted(set(encoded))))
        now = self._clock()
        async with self._slots:
            verified = await asyncio.to_thread(self._verify, report, reporter, now, seen)
        bundle = EvidenceBundle.of(verified, received_ms=now)
        record = NewReport(
            report_id=report_id_of(verified.report_sha256),
            bundle=bundle.encode(),
            reporter_account=reporter.account,
            subject_account=subject_of([m.sender.account for m in verified.messages]),
            category=category.value,
            severity=CATEGORY_SEVERITY[category],
            received_ms=bundle.received_ms,
            retain_until_ms=bundle.retain_until_ms,
            replay_keys=tuple(sorted(k.encode() for k in verified.replay_keys)),
        )
        try:
            item_id = await self._reports.add(record)
        except AlreadyExists:
            raise ReportAlreadyKnown(
                "a message of this report was reported by this account meanwhile"
            ) from None
        _log.info(
            "report queued",
            extra={"fields": {"item": item_id, "category": category.value,
                              "messages": len(verified.messages)}},
        )  # fmt: skip
        return Receipt(record.report_id, verified.report_sha256, bundle.received_ms,
                       bundle.retain_until_ms, len(verified.messages))  # fmt: skip

    def _verify(
        self, report: Report, reporter: Address, now: int, seen: Container[ReplayKey]
    ) -> VerifiedReport:
        try:
            return verify_report(
                report, self._key, reporter_address=reporter, now_ms=now, seen=seen
            )
        except InvalidReportedMessage as exc:
            raise ReportNotVerified(
                f"reported message {exc.index} does not verify: it is not exactly what the "
                "server delivered to this device; report messages as they were received"
            ) from None
        except AlreadyReported as exc:
            raise ReportAlreadyKnown(f"{exc}; each message is reported once per account") from None
        except ReportRefused as exc:
            raise ReportNotAccepted(str(exc)) from None


# ----------------------------------------------------------------------------- suspensions


class SuspensionGate:
    """Refuses requests of suspended accounts (403 ``suspended``). Reads the
    :class:`~overt.storage.moderation.StandingStore`, remembering each answer for
    :data:`SUSPENSION_CACHE_MS`; :meth:`forget` drops what it remembers of an account (the
    console calls it after suspending or lifting)."""

    def __init__(self, standing: StandingStore | None, clock: Clock) -> None:
        self._standing = standing
        self._clock = clock
        self._cache: OrderedDict[bytes, tuple[bool, str, int]] = OrderedDict()

    async def check(self, device: Address) -> None:
        """Raise :class:`Suspended` if ``device``'s account is suspended."""
        if self._standing is None:
            return
        account = device.account
        now = self._clock()
        cached = self._cache.pop(account, None)
        if cached is None or now - cached[2] >= SUSPENSION_CACHE_MS or now < cached[2]:
            standing = await self._standing.get(account)
            suspended = standing is not None and standing.suspended
            cached = (suspended, standing.reason if standing is not None else "", now)
        self._cache[account] = cached
        while len(self._cache) > SUSPENSION_CACHE_ENTRIES:
            self._cache.popitem(last=False)
        if cached[0]:
            reason = f" ({cached[1]})" if cached[1] else ""
            raise Suspended(
                f"this account is suspended by the provider's moderators{reason}; contact the "
                "provider to appeal"
            )

    def forget(self, account: bytes) -> None:
        self._cache.pop(account, None)


# ----------------------------------------------------------------------------- HTTP

Authenticate = Callable[[Request, int], Awaitable[tuple[Address, bytes]]]
"""The server's signed-request check (``authenticated`` in :func:`overt.server.create_app`):
reads the body under a cap, verifies the headers, returns the device and the body."""


REPORT_REQUEST_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["category", "report"],
    "properties": {
        "category": {"type": "string", "enum": [c.value for c in Category]},
        "report": {"type": "object", "description": "the JSON view of overt.safety.Report"},
    },
}
"""The request body as JSON Schema, self-contained (no references) for the OpenAPI document."""


class ReceiptBody(BaseModel):
    id: str = Field(description="the report's id, base64url (16 bytes)")
    sha256: str = Field(description="SHA-256 of the report's canonical encoding, hex")
    received_ms: int
    retain_until_ms: int
    messages: int


class StandingBody(BaseModel):
    warnings: int
    suspended: bool
    reason: str


def parse_report_request(body: bytes) -> tuple[Category, Report]:
    """The category and the report of a request body; :class:`Malformed` if it is not one."""
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Malformed("the request body is not JSON") from None
    if not isinstance(value, dict) or set(value) != {"category", "report"}:
        raise Malformed('the request body is {"category": …, "report": …} and nothing else')
    raw = value["category"]
    if not isinstance(raw, str) or raw not in Category._value2member_map_:
        names = ", ".join(c.value for c in Category)
        raise Malformed(f"category must be one of {names}")
    try:
        report = Report.from_json(value["report"])
    except LimitExceeded as exc:
        raise TooLarge(str(exc)) from None
    except DecodeError as exc:
        raise Malformed(str(exc)) from None
    return Category(raw), report


def reports_router(
    service: ReportService, authenticate: Authenticate, standing: StandingStore | None
) -> APIRouter:
    """The report routes over ``service``; ``authenticate`` is the server's signed-request
    check and ``standing`` the store the standing route reads."""
    router = APIRouter()

    @router.post(
        "/v1/reports",
        status_code=201,
        response_model=ReceiptBody,
        responses=_errors(400, 401, 403, 409, 413, 429),
        openapi_extra={
            "parameters": signed_header_parameters(),
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": REPORT_REQUEST_SCHEMA}},
            },
        },
        summary="Report received messages to the provider's moderators",
    )
    async def submit_report(request: Request) -> ReceiptBody:
        device, body = await authenticate(request, REPORT_REQUEST_MAX_BYTES)
        category, report = parse_report_request(body)
        receipt = await service.submit(device, category, report)
        return ReceiptBody(
            id=b64encode(receipt.report_id),
            sha256=receipt.sha256.hex(),
            received_ms=receipt.received_ms,
            retain_until_ms=receipt.retain_until_ms,
            messages=receipt.messages,
        )

    @router.get(
        "/v1/reports/standing",
        response_model=StandingBody,
        responses=_errors(400, 401, 403, 413, 429),
        openapi_extra={"parameters": signed_header_parameters()},
        summary="This account's standing with the moderators (warnings, suspension)",
    )
    async def get_standing(request: Request) -> StandingBody:
        device, _ = await authenticate(request, 0)
        found = None if standing is None else await standing.get(device.account)
        if found is None:
            return StandingBody(warnings=0, suspended=False, reason="")
        return StandingBody(warnings=found.warnings, suspended=found.suspended, reason=found.reason)

    return router


__all__ = [
    "CATEGORY_SEVERITY",
    "MAX_CONCURRENT_VERIFICATIONS",
    "REPORT_REQUEST_MAX_BYTES",
    "REPORT_REQUEST_SCHEMA",
    "SUSPENSION_CACHE_MS",
    "Authenticate",
    "Category",
    "Receipt",
    "ReportAlreadyKnown",
    "ReportNotAccepted",
    "ReportNotVerified",
    "ReportService",
    "Suspended",
    "SuspensionGate",
    "parse_report_request",
    "reports_router",
]
