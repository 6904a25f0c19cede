"""Structured JSON logs, and the outermost ASGI layer that writes one line per request.

Every line is one JSON object: time, level, logger, message and the ``fields`` a caller passed
with ``extra={"fields": {...}}``. What the server logs about a request is fixed by
:class:`AccessLog`: method, route *template* (``/v1/accounts/{account}``, never the raw path,
which carries account ids), status, duration and at most a pseudonym of the authenticated
device (:func:`overt.server.auth.device_hash`). Envelopes, bodies, keys, signatures and
exception messages (which might quote input) never reach a log line; an unexpected exception
is logged with its type and stack frames only.

:class:`AccessLog` is also the last line of defence: an exception that escaped every handler
becomes the generic ``500 internal`` answer here, so uvicorn never prints it with its message.

This module knows ASGI scopes but no routes, no storage and no protocol.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any, Final

from overt.server.errors import internal_answer
from overt.server.metrics import Metrics

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOGGER: Final = "overt.server"
DEVICE_SCOPE_KEY: Final = "overt.device_hash"
"""Where the authentication step leaves the device pseudonym for the access log."""

_log = logging.getLogger(LOGGER)


class JsonFormatter(logging.Formatter):
    """One JSON object per line; ``record.fields`` (a dict) is merged in."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info and record.exc_info[1] is not None:
            line["exception"] = describe_exception(record.exc_info[1])
        return json.dumps(line, default=str, separators=(",", ":"))


def describe_exception(exc: BaseException) -> dict[str, Any]:
    """An exception's type and stack frames, without its message (which might quote input)."""
    frames = traceback.extract_tb(exc.__traceback__)
    return {
        "type": f"{type(exc).__module__}.{type(exc).__qualname__}",
        "frames": [f"{f.filename}:{f.lineno} in {f.name}" for f in frames],
    }


class DropPeerDetails(logging.Filter):
    """Drops uvicorn's per-connection lines, which name the client's address and the raw path
    (the server writes its own line per request and per WebSocket instead)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        return not (
            '"WebSocket ' in message
            or message in ("connection open", "connection closed")
            or "Invalid HTTP request" in message
        )


def configure_logging(level: str = "info") -> None:
    """Send every log line of the process (uvicorn's too) to stderr as JSON."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(DropPeerDetails())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True


def route_template(scope: Scope) -> str:
    """The matched route's path template, or a fixed placeholder."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "<unmatched>"


class AccessLog:
    """Outermost ASGI middleware: one log line and metrics per request; 500 for the unexpected."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self._app = app
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self._app(scope, receive, send_wrapper)
        except Exception as e:
            _log.error(
                "unexpected exception",
                extra={
                    "fields": {"route": route_template(scope), "exception": describe_exception(e)}
                },
            )
            if status == 0:
                status = 500
                answer = internal_answer()
                body = json.dumps(answer.body).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
        finally:
            duration = time.perf_counter() - started
            route = route_template(scope)
            method = str(scope.get("method", ""))
            self._metrics.requests.inc(method, route, str(status))
            self._metrics.request_seconds.observe(duration, route)
            fields: dict[str, Any] = {
                "method": method,
                "route": route,
                "status": status,
                "duration_ms": round(duration * 1000, 3),
            }
            device = scope.get(DEVICE_SCOPE_KEY)
            if isinstance(device, str):
                fields["device"] = device
            _log.info("request", extra={"fields": fields})
