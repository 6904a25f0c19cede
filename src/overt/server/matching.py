"""Known-content matching on the relay (DESIGN §5, docs/matching.md): the provider's matching
key, list versions, table and delta downloads, bundle intake, threshold evaluation, and the
hand-off of re-checked matches to the moderation queue.

Mounted by :func:`overt.server.create_app` only when the manifest turns matching on::

    GET  /v1/matching/list                 the current version: number, log index, commitment
    GET  /v1/matching/table?version=N      a version's blinded table (default: the current)
    GET  /v1/matching/delta/{version}      the delta from version − 1 to ``version``
    POST /v1/matching/bundles              one ImageBundle (signed by the sending device)

**Intake** (:meth:`MatchingService.intake`). The bundle is decoded strictly (at most
:data:`~overt.safety.matching.limits.MAX_BUNDLE_BYTES`), must name a published version's table
commitment, and each device may send :data:`BUNDLES_PER_WINDOW` per
:data:`BUNDLE_WINDOW_MS` (per node). The answer is the same ``202`` whether or not any voucher
opened: a client learns nothing about the list. Opening is one exponentiation per voucher, off
the event loop. An opened image is stored (:class:`~overt.storage.matching.MatchingStore`) under
its *subject* — the account (:func:`subject_of`): all devices of an account share its matching
seed (handed over at linking, docs/matching.md §7) and so feed one collection and one threshold
— with the sending device in the record, at most
:data:`~overt.safety.matching.limits.MAX_OPENED_PER_ACCOUNT` per account. The account's records
are then evaluated (:func:`~overt.safety.matching.deployment.evaluate_account`, one evaluation
at a time per account on a node); below ``t`` nothing opens. Above, every newly revealed
payload is recorded (so it is not revealed twice), re-checked against the current list
(:func:`~overt.safety.matching.payload.recheck`: full PDQ within distance 31, quality ≥ 50),
and each survivor becomes a ``known_content_match`` item of the moderation queue
(:data:`MATCH_RULE`, severity :data:`MATCH_SEVERITY`), whose detail names the subject, the
image and the device that sent it, so the console can show the visual derivative.

**The matching key** ``α`` (:class:`~overt.safety.matching.table.ProviderKey`) lives in
``<data_dir>/matching.key`` (32 bytes, mode 0600) like the server's other secrets
(:func:`load_or_create_matching_key`); every node of a deployment needs the same file.

**Publishing** (:func:`publish_version`, ``overt matching publish``): the signed entry is
checked against the manifest's list signers and quorum, appended to the transparency log, and
stored with the table, the plaintext list and the delta. The server then serves it.

This module knows HTTP and the matching core; SQL is the store's. It never logs hashes,
payloads or which account matched below the queue.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, Final

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import Response
from pydantic import BaseModel, Field

from overt.crypto import Rng
from overt.errors import ConfigurationError, DecodeError, InvalidMessage, ProtocolViolation
from overt.safety.matching import ImageBundle, PdqIndex, ProviderKey, open_bundle, recheck
from overt.safety.matching.deployment import (
    MATCH_RULE,
    MATCH_SEVERITY,
    encode_opened,
    evaluate_account,
    opened_device,
    psi_params,
)
from overt.safety.matching.limits import MAX_BUNDLE_BYTES, MAX_OPENED_PER_ACCOUNT
from overt.safety.matching.lists import MIN_LIST_SIGNERS, valid_signers
from overt.safety.matching.package import ListPackage, list_bytes, list_from_bytes
from overt.server.auth import Clock
from overt.server.codec import b64encode
from overt.server.config import _create_secret, _read_key, prepare_data_dir
from overt.server.errors import RateLimited
from overt.server.keyed_locks import KeyedLocks
from overt.server.models import error_responses as _errors
from overt.server.models import signed_header_parameters
from overt.storage.matching import ListVersion, MatchingStore
from overt.storage.moderation import NewSignal, ReportStore
from overt.transparency.entries import MatchingListCommitment
from overt.transparency.log import Log
from overt.transparency.manifest import MatchingPolicy
from overt.wire import Address
from overt.wire.b64 import b64e

_log = logging.getLogger("overt.server.matching")

MATCHING_KEY_FILE: Final = "matching.key"
MATCHING_KEY_LEN: Final = 32

#: Bundles one device may send per window on one node (an image a second, with bursts).
BUNDLES_PER_WINDOW: Final = 120
BUNDLE_WINDOW_MS: Final = 60_000
#: Devices whose bundle counts one node remembers (least recently seen forgotten).
RATE_TRACKED_DEVICES: Final = 100_000
#: Bundles opened at once per node (each is 64 exponentiations off the event loop).
MAX_CONCURRENT_OPENINGS: Final = 4


# ----------------------------------------------------------------------------- errors


class UnknownListVersion(ProtocolViolation):
    """A bundle made against a table this server never published."""

    status_hint = 409
    code = "unknown_list_version"


class MatchingUnavailable(ProtocolViolation):
    """No list version is published yet (or the one asked for does not exist)."""

    status_hint = 404
    code = "not_found"


# ----------------------------------------------------------------------------- the key


def load_or_create_matching_key(data_dir: Path, rng: Rng, *, create: bool = True) -> ProviderKey:
    """The provider's matching key ``α`` in ``<data_dir>/matching.key`` (created, 0600, if
    absent and ``create``). A published table is blinded under it: a lost key means a new
    series (every client downloads the whole table again), never a silent replacement."""
    path = prepare_data_dir(data_dir) / MATCHING_KEY_FILE
    if not path.exists():
        if not create:
            raise ConfigurationError(
                f"{path} is missing: restore it from a backup or copy it from another node "
                "(the published tables are blinded under it)"
            )
        _create_secret(path, ProviderKey.generate(rng).export_secret())
    raw = _read_key(path)
    if len(raw) != MATCHING_KEY_LEN:
        raise ConfigurationError(f"{path} must hold exactly {MATCHING_KEY_LEN} bytes")
    try:
        return ProviderKey.from_secret_bytes(raw)
    except (DecodeError, InvalidMessage, ValueError):
        raise ConfigurationError(f"{path} does not hold a matching key") from None


# ----------------------------------------------------------------------------- publishing


async def publish_version(
    *,
    store: MatchingStore,
    log: Log,
    policy: MatchingPolicy,
    package: ListPackage,
    entry: MatchingListCommitment,
    now_ms: int,
) -> int:
    """Log ``entry`` for ``package`` and store the version; return the entry's log index.

    Refused (``ConfigurationError``, nothing logged) unless matching is on, the entry is this
    package's statement, enough organisations the manifest names signed it, and it follows the
    latest stored version.
    """
    if not policy.enabled:
        raise ConfigurationError("the manifest turns matching off: enable it first")
    lsh = psi_params(policy).lsh
    if package.table.header.lsh != lsh:
        raise ConfigurationError(
            "the table was built with other LSH parameters than the manifest names"
        )
    if entry.statement() != package.statement.message():
        raise ConfigurationError("the signed entry is not this package's statement")
    required = max(policy.list_signer_quorum, MIN_LIST_SIGNERS)
    signers = valid_signers(entry, policy)
    if len(signers) < required:
        raise ConfigurationError(
            f"the statement carries valid signatures of {len(signers)} of the {required} "
            "organisations required (named in the manifest); collect more before publishing"
        )
    latest = await store.latest()
    expected_previous = latest.commitment if latest is not None else bytes(32)
    if entry.previous != expected_previous or (
        latest is not None and entry.version != latest.version + 1
    ):
        raise ConfigurationError(
            "this version does not follow the latest published one; prepare it from that one"
        )
    (index,) = await log.append_batch([entry])
    await store.publish(
        ListVersion(
            version=entry.version,
            commitment=entry.table_commitment,
            table=package.table.encode(),
            hashes=list_bytes(package.hashes),
            log_index=index,
            created_ms=now_ms,
            delta=None if package.delta is None else package.delta.encode(),
        )
    )
    _log.info("matching list published", extra={"fields": {"version": entry.version}})
    return index


# ----------------------------------------------------------------------------- the service


class _RateLimiter:
    def __init__(self) -> None:
        self._seen: OrderedDict[bytes, tuple[int, int]] = OrderedDict()

    def check(self, key: bytes, now: int) -> None:
        start, count = self._seen.pop(key, (now, 0))
        if not start <= now < start + BUNDLE_WINDOW_MS:
            start, count = now, 0
        if count >= BUNDLES_PER_WINDOW:
            self._seen[key] = (start, count)
            retry = (start + BUNDLE_WINDOW_MS - now + 999) // 1000
            raise RateLimited(
                f"at most {BUNDLES_PER_WINDOW} matching bundles per minute per device; "
                "keep the rest queued and retry",
                retry,
            )
        self._seen[key] = (start, count + 1)
        while len(self._seen) > RATE_TRACKED_DEVICES:
            self._seen.popitem(last=False)


def subject_of(device: Address) -> bytes:
    """Whose opened images are counted together: the device's account (its devices share one
    matching seed, so one threshold)."""
    return device.account


class MatchingService:
    """Serve list versions, take bundles, evaluate thresholds, queue re-checked matches."""

    def __init__(
        self,
        *,
        policy: MatchingPolicy,
        key: ProviderKey,
        store: MatchingStore | None,
        reports: ReportStore | None,
        clock: Clock,
    ) -> None:
        if store is None or reports is None:
            raise ConfigurationError(
                "the manifest turns matching on, but this storage backend has no matching or "
                "report store (Storage.matching, Storage.reports)"
            )
        self._params = psi_params(policy)
        self._key = key
        self._store = store
        self._reports = reports
        self._clock = clock
        self._rate = _RateLimiter()
        self._slots = asyncio.Semaphore(MAX_CONCURRENT_OPENINGS)
        self._commitments: dict[bytes, int] = {}
        self._index: tuple[int, PdqIndex] | None = None
        self._current: ListVersion | None = None
        self._evaluating = KeyedLocks()

    async def current(self) -> ListVersion:
        """The latest version (kept in memory until a newer one is published)."""
        versions = await self._store.commitments()
        if not versions:
            raise MatchingUnavailable("no matching list is published yet")
        number = versions[-1][0]
        if self._current is None or self._current.version != number:
            found = await self._store.version(number)
            if found is None:
                raise MatchingUnavailable("no matching list is published yet")
            self._current = found
        return self._current

    async def version(self, number: int | None) -> ListVersion:
        if number is None:
            return await self.current()
        found = await self._store.version(number)
        if found is None:
            raise MatchingUnavailable(f"there is no list version {number}")
        return found

    async def _known(self, commitment: bytes) -> bool:
        if commitment not in self._commitments:
            self._commitments = {c: v for v, c in await self._store.commitments()}
        return commitment in self._commitments

    def _list_index(self, latest: ListVersion) -> PdqIndex:
        """The re-check index of ``latest`` (parsed once per version)."""
        if self._index is None or self._index[0] != latest.version:
            hashes = list_from_bytes(latest.hashes)
            self._index = (latest.version, PdqIndex(hashes.hashes))
        return self._index[1]

    async def intake(self, device: Address, data: bytes) -> None:
        """Take one bundle of ``device`` (see the module docstring)."""
        self._rate.check(device.account + device.device.to_bytes(4, "big"), self._clock())
        bundle = ImageBundle.decode(data)
        if not await self._known(bundle.table_commitment):
            raise UnknownListVersion(
                "this bundle was made for a list version the server does not know; download "
                "the current table (GET /v1/matching/table) and make it again"
            )
        async with self._slots:
            opened = await asyncio.to_thread(
                open_bundle, bundle, self._key, bundle.table_commitment, self._params
            )
        if opened is None:
            return
        subject = subject_of(device)
        stored = await self._store.add_opened(
            subject, opened.image_id, encode_opened(opened, device.device), MAX_OPENED_PER_ACCOUNT
        )
        if stored:
            # The account's devices may send at once: one evaluation per account at a time on
            # this node, so an image is revealed (and queued) once.
            async with self._evaluating.hold(subject):
                await self._evaluate(device.account, subject)

    async def _evaluate(self, account: bytes, subject: bytes) -> None:
        records = await self._store.opened(subject)
        done = {r.image_id for r in records if r.revealed is not None}
        sender = {r.image_id: opened_device(r.record) for r in records}
        outcome = await asyncio.to_thread(
            evaluate_account, [r.record for r in records], self._params
        )
        if outcome.undecodable:
            _log.warning("matching: an account generation did not decode; nothing opened")
        new = [(r.image_id, r.payload) for r in outcome.revealed if r.image_id not in done]
        if not new:
            return
        await self._store.reveal(subject, dict(new))
        latest = await self.current()
        candidates, dropped = recheck(new, self._list_index(latest))
        now = self._clock()
        for c in candidates:
            detail = {
                "image": b64e(c.image_id),
                "subject": b64e(subject),
                "device": sender.get(c.image_id, 0),
                "distance": c.distance,
                "quality": c.payload.quality,
                "width": c.payload.width,
                "height": c.payload.height,
                "matched": c.matched.hex(),
                "list_version": latest.version,
                "threshold": self._params.threshold,
            }
            item = await self._reports.flag(
                NewSignal(
                    account, MATCH_RULE, MATCH_SEVERITY, now,
                    json.dumps(detail, sort_keys=True).encode(),
                )
            )  # fmt: skip
            _log.info("matching: re-checked match queued", extra={"fields": {"item": item}})
        if dropped:
            _log.info("matching: revealed images failed the re-check",
                      extra={"fields": {"dropped": dropped}})  # fmt: skip


def matching_service(
    policy: MatchingPolicy,
    key: bytes | None,
    store: MatchingStore | None,
    reports: ReportStore | None,
    clock: Clock,
    rng: Rng,
) -> MatchingService:
    """The service :func:`overt.server.create_app` mounts; without ``key`` (an in-memory
    server) a fresh matching key is drawn from ``rng``."""
    provider = ProviderKey.generate(rng) if key is None else ProviderKey.from_secret_bytes(key)
    return MatchingService(policy=policy, key=provider, store=store, reports=reports, clock=clock)


# ----------------------------------------------------------------------------- HTTP

Authenticate = Callable[[Request, int], Awaitable[tuple[Address, bytes]]]


class ListBody(BaseModel):
    version: int
    log_index: int = Field(description="where the version's MatchingListCommitment is in the log")
    table_commitment: str = Field(description="base64url")
    has_delta: bool = Field(description="whether GET /v1/matching/delta/{version} answers")


class AcceptedBody(BaseModel):
    status: str = Field(description='always "accepted", whether or not anything matched')


_OCTETS: Final[dict[int | str, dict[str, Any]]] = {
    200: {
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        "description": "the encoded bytes",
    }
}


def matching_router(service: MatchingService, authenticate: Authenticate) -> APIRouter:
    """The matching routes over ``service`` (see the module docstring)."""
    router = APIRouter()

    @router.get(
        "/v1/matching/list",
        response_model=ListBody,
        responses=_errors(404),
        summary="The current known-content matching list version",
    )
    async def current_list() -> ListBody:
        v = await service.current()
        return ListBody(
            version=v.version, log_index=v.log_index,
            table_commitment=b64encode(v.commitment), has_delta=v.delta is not None,
        )  # fmt: skip

    @router.get(
        "/v1/matching/table",
        response_class=Response,
        responses={**_OCTETS, **_errors(400, 404)},
        summary="A list version's blinded table (the current one by default)",
    )
    async def table(
        version: Annotated[int | None, Query(ge=0, le=(1 << 32) - 1)] = None,
    ) -> Response:
        v = await service.version(version)
        return Response(v.table, media_type="application/octet-stream")

    @router.get(
        "/v1/matching/delta/{version}",
        response_class=Response,
        responses={**_OCTETS, **_errors(400, 404)},
        summary="The delta from version − 1 to this version",
    )
    async def delta(version: Annotated[int, PathParam(ge=1, le=(1 << 32) - 1)]) -> Response:
        v = await service.version(version)
        if v.delta is None:
            raise MatchingUnavailable(f"version {version} starts a new series: no delta")
        return Response(v.delta, media_type="application/octet-stream")

    @router.post(
        "/v1/matching/bundles",
        status_code=202,
        response_model=AcceptedBody,
        responses=_errors(400, 401, 403, 409, 413, 429),
        openapi_extra={
            "parameters": signed_header_parameters(),
            "requestBody": {
                "required": True,
                "content": {
                    "application/octet-stream": {
                        "schema": {
                            "type": "string",
                            "format": "binary",
                            "maxLength": MAX_BUNDLE_BYTES,
                        }
                    }
                },
            },
        },
        summary="Hand in the matching bundle of one image the device sent",
    )
    async def bundles(request: Request) -> AcceptedBody:
        device, body = await authenticate(request, MAX_BUNDLE_BYTES)
        await service.intake(device, body)
        return AcceptedBody(status="accepted")

    return router


__all__ = [
    "BUNDLES_PER_WINDOW",
    "BUNDLE_WINDOW_MS",
    "MATCHING_KEY_FILE",
    "MATCH_RULE",
    "MATCH_SEVERITY",
    "MatchingService",
    "MatchingUnavailable",
    "UnknownListVersion",
    "load_or_create_matching_key",
    "matching_router",
    "matching_service",
    "publish_version",
    "subject_of",
]
