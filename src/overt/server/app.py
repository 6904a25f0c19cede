"""The ASGI application: thin routes over the services, one error edge, OpenAPI.

Each route does the same four things: authenticate (read the body under its cap, check the
signed-request headers), parse the body into a strict model, make one service call, serialize
the result. Errors are not caught in routes: every :class:`~overt.errors.OvertError` reaches
:func:`_overt_error`, which answers from the class's ``status_hint`` through
:func:`overt.server.errors.describe`; framework errors (unknown route, wrong method, a query
parameter out of range) are mapped next to it; anything else is a bug and becomes a generic 500
in :class:`~overt.server.logs.AccessLog`.

:func:`create_app` wires the services, each given only the stores it uses — including the
transparency log (:class:`~overt.transparency.log.Log` over ``storage.log``), the manifest
publisher, the key directory and the checkpointer, whose routes live in
:mod:`overt.server.log_routes`. What this module must not know: the client, SQL, and the binary
structures inside the base64 (services decode them). It reads time only through ``clock`` and
draws randomness only from ``rng``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, Final

import httpx
from fastapi import FastAPI, Path, Query, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match, Route

from overt.console import ConsoleConfig, console_app
from overt.crypto import Rng, SystemRng
from overt.errors import ConfigurationError, OvertError
from overt.server import models as m
from overt.server.accounts import AccountService, DeviceCleanup
from overt.server.attachments import AttachmentService
from overt.server.auth import Authenticator, Clock, device_hash, parse_headers
from overt.server.cache import CachedAccountStore
from overt.server.checkpointer import Checkpointer
from overt.server.codec import (
    B64_PATTERN,
    account_id,
    b64_chars,
    b64decode,
    b64encode,
    format_address,
)
from overt.server.config import ServerConfig, TransparencyConfig, TransparencyKeys
from overt.server.delivery import Delivery
from overt.server.directory import KeyDirectory
from overt.server.errors import ErrorAnswer, Malformed, TooLarge, describe, plain_answer
from overt.server.groups import GroupService, groups_router
from overt.server.lawful import LawfulAccess, lawful_router
from overt.server.limits import (
    ATTACHMENT_ID_LEN,
    FETCH_PAGE_DEFAULT,
    FETCH_PAGE_MAX,
    HEADER_MAX_LEN,
    INT64_MAX,
    MAX_ACCOUNT_ID_LEN,
    MAX_ATTACHMENT_SIZE,
    MAX_REQUEST_BODY,
    UINT32_MAX,
    UNSEAL_INTERVAL_S,
)
from overt.server.log_routes import add_transparency_routes
from overt.server.logs import DEVICE_SCOPE_KEY, AccessLog, describe_exception
from overt.server.matching import matching_router, matching_service
from overt.server.messages import MessageService
from overt.server.metrics import CONTENT_TYPE, Metrics
from overt.server.models import error_responses as _errors
from overt.server.notify import Notifier
from overt.server.prekeys import PrekeyService
from overt.server.reports import ReportService, SuspensionGate, reports_router
from overt.server.signals import SignalService
from overt.server.transparency import LogCatalog, LogView, ManifestPublisher
from overt.storage import PubSub, Storage
from overt.transparency.log import Log
from overt.wire import Address

_log = logging.getLogger("overt.server")

API_VERSION: Final = "1"

_REQUEST_MODELS: Final[tuple[type[BaseModel], ...]] = (
    m.RegisterRequest,
    m.ReplaceDevicesRequest,
    m.PrekeyUpload,
    m.SendRequest,
    m.AckRequest,
)

_AccountPath = Annotated[
    str,
    Path(
        min_length=2,
        max_length=b64_chars(MAX_ACCOUNT_ID_LEN),
        pattern=B64_PATTERN,
        description="account id, base64url without padding",
    ),
]


def wall_clock_ms() -> int:
    """Milliseconds since the Unix epoch (the default clock)."""
    return time.time_ns() // 1_000_000


def _json_body(model: type[BaseModel]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
            },
        }
    }


_SIGNED_HEADERS: Final[dict[str, Any]] = {
    "parameters": [
        {
            "name": name,
            "in": "header",
            "required": True,
            "description": description,
            "schema": {"type": "string", "maxLength": HEADER_MAX_LEN},
        }
        for name, description in (
            ("X-Overt-Device", "<b64 account>:<device id> of the signing device"),
            ("X-Overt-Timestamp", "Unix time in milliseconds"),
            ("X-Overt-Signature", "b64 Ed25519 signature of the request (docs/api.md)"),
        )
    ]
}


def _signed(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"parameters": list(_SIGNED_HEADERS["parameters"])}
    if extra:
        out.update(extra)
    return out


_STALE_DEVICES: Final[dict[int | str, dict[str, Any]]] = {
    409: {"model": m.StaleDevicesBody, "description": "stale device set (or another conflict)"}
}


def _answer(answer: ErrorAnswer) -> JSONResponse:
    return JSONResponse(answer.body, status_code=answer.status, headers=answer.headers)


async def _overt_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OvertError)
    answer = describe(exc)
    if answer.internal:
        _log.error(
            "request failed",
            extra={"fields": {"status": answer.status, "exception": describe_exception(exc)}},
        )
    return _answer(answer)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    parts = []
    for error in exc.errors()[:3]:
        location = ".".join(str(p) for p in error.get("loc", ()))
        parts.append(f"{location}: {error.get('msg', 'invalid')}")
    return _answer(
        plain_answer(400, "malformed", "the request does not parse: " + "; ".join(parts))
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        answer = plain_answer(404, "not_found", "no such endpoint: see /openapi.json")
    elif exc.status_code == 405:
        answer = plain_answer(
            405, "method_not_allowed", "this endpoint does not take this method: see /openapi.json"
        )
        return JSONResponse(
            answer.body, status_code=405, headers={"Allow": ", ".join(_allowed(request))}
        )
    else:
        answer = plain_answer(exc.status_code, "malformed", "the request is not acceptable")
    return JSONResponse(answer.body, status_code=answer.status, headers=exc.headers)


def _allowed(request: Request) -> list[str]:
    """Every method some route takes at this path (Starlette names only the first route's)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.methods:
            match, _ = route.matches({**request.scope, "method": "\x00"})
            if match is not Match.NONE:
                methods |= route.methods
    return sorted(methods)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than ``limit`` bytes (declared or streamed)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"the request body is larger than {limit} bytes")
    chunks: list[bytes] = []
    total = 0
    try:
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                raise TooLarge(f"the request body is larger than {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        raise Malformed("the request body was cut off") from None
    return b"".join(chunks)


def request_target(request: Request) -> bytes:
    """The raw request target (path and query) that the signature covers."""
    raw = request.scope.get("raw_path") or request.scope["path"].encode("utf-8")
    query: bytes = request.scope.get("query_string", b"")
    return bytes(raw) + b"?" + query if query else bytes(raw)


async def _unseal_forever(lawful: LawfulAccess | None) -> None:
    """Log the unsealing of every warrant past its notification date, every few seconds."""
    if lawful is None:
        return
    while True:
        try:
            await lawful.unseal_due()
        except OvertError:
            _log.exception("unsealing round failed; retrying")
        await asyncio.sleep(UNSEAL_INTERVAL_S)


def create_app(
    config: ServerConfig,
    storage: Storage,
    pubsub: PubSub,
    *,
    clock: Clock = wall_clock_ms,
    rng: Rng | None = None,
    witness_transport: httpx.AsyncBaseTransport | None = None,
    console: ConsoleConfig | None = None,
) -> FastAPI:
    """The relay server as an ASGI application over ``storage`` and ``pubsub``.

    The caller owns ``storage`` and ``pubsub`` (opens and closes them). Background work
    (draining removed devices) is awaited when the application's lifespan ends;
    ``app.state.background`` is that work's :class:`DeviceCleanup` (tests await ``wait()``).

    The transparency log lives in ``storage.log`` and ``storage.kt`` (a backend without a
    key-directory store is refused). ``config.transparency`` gives its keys and deployment;
    without it, keys are drawn from ``rng`` (an in-memory server). The lifespan makes sure the
    manifest is entry 0 (:meth:`ManifestPublisher.ensure`, also run on first use) and runs the
    checkpointer every ``checkpoint_interval_ms``; without a lifespan (in-process tests), await
    ``app.state.checkpointer.run_once()`` to sign, collect cosignatures and publish.
    ``witness_transport`` replaces the network to every witness (tests).
    """
    rng = SystemRng() if rng is None else rng
    # Every service reads and changes accounts through one per-node cache (server/cache.py).
    storage = dataclasses.replace(storage, accounts=CachedAccountStore(storage.accounts))
    if storage.kt is None:
        raise ConfigurationError(
            "this storage backend has no key-directory store (Storage.kt); the server cannot "
            "publish account keys without one"
        )
    transparency = config.transparency or TransparencyConfig(TransparencyKeys.generate(rng))
    deployment = transparency.deployment
    keys = transparency.keys
    log = Log(storage.log, keys.log, keys.origin, clock, witnesses=deployment.witness_keys)
    catalog = LogCatalog(log)
    publisher = ManifestPublisher(log, catalog, deployment, keys)
    checkpointer = Checkpointer(
        log,
        deployment.witnesses,
        deployment.quorum,
        ready=publisher.ensure,
        interval_ms=transparency.checkpoint_interval_ms,
        timeout_ms=transparency.witness_timeout_ms,
        transport=witness_transport,
    )
    directory = KeyDirectory(
        log,
        storage.accounts,
        storage.kt,
        keys.vrf,
        rng,
        ready=publisher.ensure,
        published=lambda: checkpointer.published,
    )
    metrics = Metrics()
    notifier = Notifier(pubsub)
    auth = Authenticator(storage.accounts, clock, config.limits)
    prekeys = PrekeyService(storage.accounts, storage.prekeys, notifier)
    cleanup = DeviceCleanup(storage.accounts, storage.prekeys, storage.mailboxes)
    accounts = AccountService(storage.accounts, prekeys, cleanup, notifier, directory)
    suspensions = SuspensionGate(storage.standing, clock)
    lawful = None
    if storage.warrants is not None and storage.intercepts is not None and storage.epochs:
        lawful = LawfulAccess(
            log, publisher, storage.warrants, storage.intercepts, storage.epochs,
            clock=clock, rng=rng,
        )  # fmt: skip
    signals = SignalService(storage.reports)  # one per node: group sends count too
    messages = MessageService(
        storage.accounts, storage.mailboxes, notifier, config.franking_key, clock,
        signals=signals, lawful=lawful,
    )  # fmt: skip
    attachments = AttachmentService(storage.blobs, rng)
    delivery = Delivery(auth, messages, prekeys, pubsub, rng, metrics, node_id=config.node_id)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await publisher.ensure()
        await checkpointer.load()
        checkpointing = asyncio.create_task(checkpointer.run_forever())
        unsealing = asyncio.create_task(_unseal_forever(lawful))
        try:
            yield
        finally:
            checkpointing.cancel()
            unsealing.cancel()
            await asyncio.gather(checkpointing, unsealing, return_exceptions=True)
            await checkpointer.aclose()
            await cleanup.wait()

    app = FastAPI(
        title="Overt relay server",
        version=API_VERSION,
        description="Relays and stores ciphertext only. See docs/api.md.",
        lifespan=lifespan,
        redoc_url=None,
    )
    app.state.background = cleanup
    app.state.suspensions = suspensions
    app.state.log = log
    app.state.publisher = publisher
    app.state.checkpointer = checkpointer
    app.state.key_directory = directory
    app.add_exception_handler(OvertError, _overt_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_middleware(AccessLog, metrics=metrics)

    async def authenticated(
        request: Request, limit: int = MAX_REQUEST_BODY
    ) -> tuple[Address, bytes]:
        body = await read_body(request, limit)
        device = await auth.authenticate(
            request.method, request_target(request), request.headers, body
        )
        request.scope[DEVICE_SCOPE_KEY] = device_hash(device)
        await suspensions.check(device)
        return device, body

    if lawful is not None:
        app.include_router(lawful_router(lawful))
        app.state.lawful = lawful
    app.include_router(
        reports_router(
            ReportService(config.franking_key, storage.reports, clock),
            authenticated,
            storage.standing,
        )
    )
    if storage.groups is not None:
        group_service = GroupService(
            storage.accounts, storage.groups, storage.mailboxes, notifier, config.franking_key,
            clock, signals=signals, lawful=lawful,
        )  # fmt: skip
        app.include_router(groups_router(group_service, authenticated, metrics))
    if deployment.safety.matching.enabled:
        app.state.matching = matching_service(
            deployment.safety.matching, config.matching_key, storage.matching, storage.reports,
            clock, rng,
        )  # fmt: skip
        app.include_router(matching_router(app.state.matching, authenticated))
    if console is not None:
        app.mount(
            "/console",
            console_app(
                console, storage, config.franking_key, clock=clock, rng=rng,
                on_standing_change=suspensions.forget,
            )[1],
        )  # fmt: skip

    # ------------------------------------------------------------------------- accounts

    @app.post(
        "/v1/accounts",
        status_code=201,
        response_model=m.RegisterResponse,
        responses=_errors(400, 401, 409, 413, 429),
        openapi_extra=_signed(_json_body(m.RegisterRequest)),
        summary="Register an account with its first device",
    )
    async def register(request: Request) -> m.RegisterResponse:
        body = await read_body(request, MAX_REQUEST_BODY)
        signed = parse_headers(request.headers)
        req = m.parse_json(m.RegisterRequest, body)
        registration = accounts.check_registration(
            signed.device, req.account, req.signed_device_list
        )
        auth.authenticate_with_key(
            signed, request.method, request_target(request), body, registration.device_key
        )
        request.scope[DEVICE_SCOPE_KEY] = device_hash(signed.device)
        device = await accounts.register(
            registration,
            signed_prekey=req.prekeys.signed_prekey,
            last_resort_kem=req.prekeys.last_resort_kem,
            one_time=req.prekeys.one_time,
            kem_one_time=req.prekeys.kem_one_time,
        )
        return m.RegisterResponse(account=b64encode(device.account), device=device.device)

    @app.get(
        "/v1/accounts/{account}",
        response_model=m.AccountResponse,
        responses=_errors(400, 404),
        summary="The public record of an account",
    )
    async def get_account(account: _AccountPath) -> m.AccountResponse:
        record = await accounts.get(account_id(account))
        return m.AccountResponse(
            account=b64encode(record.account_id),
            identity_key=b64encode(record.identity_key),
            signed_device_list=b64encode(record.device_list),
            serial=record.serial,
            devices=[d.device for d in record.devices],
        )

    @app.put(
        "/v1/accounts/{account}/devices",
        response_model=m.SerialResponse,
        responses=_errors(400, 401, 403, 404, 409, 413, 429),
        openapi_extra=_signed(_json_body(m.ReplaceDevicesRequest)),
        summary="Replace the account's device list",
    )
    async def replace_devices(account: _AccountPath, request: Request) -> m.SerialResponse:
        device, body = await authenticated(request)
        req = m.parse_json(m.ReplaceDevicesRequest, body)
        serial = await accounts.replace_devices(
            device, account_id(account), req.signed_device_list, req.expected_serial
        )
        return m.SerialResponse(serial=serial)

    # ------------------------------------------------------------------------- prekeys

    @app.put(
        "/v1/devices/self/prekeys",
        response_model=m.PrekeyCountResponse,
        responses=_errors(400, 401, 404, 409, 413, 429),
        openapi_extra=_signed(_json_body(m.PrekeyUpload)),
        summary="Upload prekeys of the signing device",
    )
    async def upload_prekeys(request: Request) -> m.PrekeyCountResponse:
        device, body = await authenticated(request)
        req = m.parse_json(m.PrekeyUpload, body)
        stock = await prekeys.upload(
            device,
            signed_prekey=req.signed_prekey,
            last_resort_kem=req.last_resort_kem,
            one_time=req.one_time,
            kem_one_time=req.kem_one_time,
        )
        return m.PrekeyCountResponse(one_time=stock.one_time, kem_one_time=stock.kem_one_time)

    @app.get(
        "/v1/devices/self/prekeys",
        response_model=m.PrekeyStockResponse,
        responses=_errors(400, 401, 413, 429),
        openapi_extra=_signed(),
        summary="How many one-time prekeys the signing device has left",
    )
    async def prekey_stock(request: Request) -> m.PrekeyStockResponse:
        device, _ = await authenticated(request)
        stock = await prekeys.stock(device)
        return m.PrekeyStockResponse(
            one_time=stock.one_time, kem_one_time=stock.kem_one_time, low=stock.low
        )

    @app.get(
        "/v1/accounts/{account}/bundles",
        response_model=m.BundlesResponse,
        responses=_errors(400, 401, 404, 413, 429),
        openapi_extra=_signed(),
        summary="Prekey bundles of an account's devices (one-time prekeys handed out once)",
    )
    async def bundles(
        account: _AccountPath,
        request: Request,
        device: Annotated[int | None, Query(ge=0, le=UINT32_MAX)] = None,
    ) -> m.BundlesResponse:
        requester, _ = await authenticated(request)
        found = await prekeys.bundles(requester, account_id(account), device)
        return m.BundlesResponse(
            serial=found.serial,
            signed_device_list=b64encode(found.signed_device_list),
            bundles=[b64encode(b) for b in found.bundles],
        )

    # ------------------------------------------------------------------------- messages

    @app.post(
        "/v1/messages",
        response_model=m.SendResponse,
        responses={**_errors(400, 401, 404, 413, 429), **_STALE_DEVICES},
        openapi_extra=_signed(_json_body(m.SendRequest)),
        summary="Send one message to every device of its recipients",
    )
    async def send(request: Request) -> m.SendResponse:
        device, body = await authenticated(request)
        req = m.parse_json(m.SendRequest, body)
        sent = await messages.send(device, req.recipients, req.envelopes)
        metrics.messages_relayed.inc(amount=len(sent.ids))
        return m.SendResponse(ids=list(sent.ids), server_time=sent.server_time)

    @app.get(
        "/v1/messages",
        response_model=m.FetchResponse,
        responses=_errors(400, 401, 413, 429),
        openapi_extra=_signed(),
        summary="Pending messages of the signing device, in id order",
    )
    async def fetch(
        request: Request,
        after: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0,
        limit: Annotated[int, Query(ge=1, le=FETCH_PAGE_MAX)] = FETCH_PAGE_DEFAULT,
    ) -> m.FetchResponse:
        device, _ = await authenticated(request)
        page = await messages.fetch(device, after, limit)
        metrics.deliveries.inc("fetch", amount=len(page.mail))
        return m.FetchResponse(
            messages=[
                m.MailBody(
                    id=mail.id,
                    sender=format_address(Address(mail.sender_account, mail.sender_device)),
                    server_time=mail.server_time,
                    envelope=b64encode(mail.envelope),
                    reporting_tag=b64encode(mail.reporting_tag),
                    kind=mail.kind.value,
                )
                for mail in page.mail
            ],
            more=page.more,
        )

    @app.post(
        "/v1/messages/ack",
        response_model=m.AckResponse,
        responses=_errors(400, 401, 413, 429),
        openapi_extra=_signed(_json_body(m.AckRequest)),
        summary="Acknowledge messages: they leave the mailbox",
    )
    async def ack(request: Request) -> m.AckResponse:
        device, body = await authenticated(request)
        req = m.parse_json(m.AckRequest, body)
        removed = await messages.ack(device, req.ids)
        metrics.acknowledged.inc(amount=removed)
        return m.AckResponse(removed=removed)

    @app.websocket("/v1/ws")
    async def websocket(ws: WebSocket) -> None:
        await delivery.serve(ws)

    # ------------------------------------------------------------------------- attachments

    @app.post(
        "/v1/attachments",
        status_code=201,
        response_model=m.AttachmentResponse,
        responses=_errors(400, 401, 413, 429),
        openapi_extra=_signed(
            {
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/octet-stream": {
                            "schema": {
                                "type": "string",
                                "format": "binary",
                                "maxLength": MAX_ATTACHMENT_SIZE,
                            }
                        }
                    },
                }
            }
        ),
        summary="Upload an encrypted attachment",
    )
    async def upload_attachment(request: Request) -> m.AttachmentResponse:
        _, body = await authenticated(request, MAX_ATTACHMENT_SIZE)
        blob_id = await attachments.upload(body)
        return m.AttachmentResponse(id=b64encode(blob_id))

    @app.get(
        "/v1/attachments/{blob_id}",
        response_class=Response,
        responses={
            200: {
                "content": {
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
                },
                "description": "the attachment's bytes",
            },
            **_errors(400, 401, 404, 413, 429),
        },
        openapi_extra=_signed(),
        summary="Download an encrypted attachment",
    )
    async def download_attachment(
        request: Request,
        blob_id: Annotated[
            str,
            Path(
                min_length=b64_chars(ATTACHMENT_ID_LEN),
                max_length=b64_chars(ATTACHMENT_ID_LEN),
                pattern=B64_PATTERN,
            ),
        ],
    ) -> Response:
        await authenticated(request)
        data = await attachments.download(b64decode(blob_id, "an attachment id"))
        return Response(data, media_type="application/octet-stream")

    # ------------------------------------------------------------------------- operations

    @app.get("/healthz", response_model=m.HealthResponse, summary="Liveness")
    async def healthz() -> m.HealthResponse:
        return m.HealthResponse(status="ok")

    @app.get(
        "/metrics",
        response_class=Response,
        responses={
            200: {
                "content": {CONTENT_TYPE: {"schema": {"type": "string"}}},
                "description": "Prometheus text format",
            }
        },
        summary="Prometheus metrics",
    )
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    # ------------------------------------------------------------------------- transparency

    view = LogView(log, publisher, checkpointer, catalog, deployment)
    add_transparency_routes(app, view, directory)

    app.openapi = _openapi_factory(app)  # type: ignore[method-assign]
    return app


def _openapi_factory(app: FastAPI) -> Callable[[], dict[str, Any]]:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        _, definitions = models_json_schema(
            [(model, "validation") for model in _REQUEST_MODELS],
            ref_template="#/components/schemas/{model}",
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(definitions.get("$defs", {}))
        # Validation failures are answered 400 (docs/api.md), never FastAPI's 422.
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                operation.get("responses", {}).pop("422", None)
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        app.openapi_schema = schema
        return schema

    return openapi
