"""Shared pieces of the schemathesis fuzz tests (``tests/server/test_server_schemathesis.py``,
``tests/safety/test_safety_intake_fuzz.py``): both fuzz an app against its own
``/openapi.json`` twice, once bare (the signed-request headers are fuzzed too, so most signed
routes answer 401) and once through :class:`SigningApp`, so the fuzzing reaches the parsers and
the services behind the signature check.

Importable from every test directory once ``tests/`` is on ``sys.path`` (a test file under a
directory without ``__init__.py`` puts it there itself, as ``tests/server`` files do).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.generation.modes import GenerationMode

Scope = dict[str, Any]
Sign = Callable[[str, str, bytes], dict[str, str]]
"""``sign(method, target, body)``: the signed-request headers of one request."""

SIGNED_HEADERS = frozenset({"x-overt-device", "x-overt-timestamp", "x-overt-signature"})


class SigningApp:
    """A test-only ASGI wrapper: replaces the signed-request headers of every HTTP request with
    ``sign``'s headers over the body the client sent, then hands the request to ``app``."""

    def __init__(self, app: Any, sign: Sign) -> None:
        self.app = app
        self.sign = sign

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        target = scope.get("raw_path", scope["path"].encode())
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        signed = self.sign(scope["method"], target.decode("latin-1"), body)
        headers = [(k, v) for k, v in scope["headers"] if k.decode().lower() not in SIGNED_HEADERS]
        headers += [(k.lower().encode(), v.encode()) for k, v in signed.items()]
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app({**scope, "headers": headers}, replay, send)


def fuzz_schemas(
    app: Any, signing_app: Any, refusals: list[str], path_regex: str | None = None
) -> tuple[Any, Any]:
    """The bare and the signed schemathesis schemas of ``app``'s ``/openapi.json``, limited to
    paths matching ``path_regex`` when given. On the bare one ``refusals`` are the statuses
    that count as rejecting negative data; the signed one generates positive data only (the
    wrapper puts the signature headers back, so requests without them are not negative data)."""
    bare = schemathesis.openapi.from_asgi(
        "/openapi.json",
        app,
        config=SchemathesisConfig.from_dict(
            {"checks": {"negative_data_rejection": {"expected-statuses": refusals}}}
        ),
    )
    signed = schemathesis.openapi.from_asgi("/openapi.json", signing_app)
    if path_regex is not None:
        bare = bare.include(path_regex=path_regex)
        signed = signed.include(path_regex=path_regex)
    signed.config.generation.update(modes=[GenerationMode.POSITIVE])
    return bare, signed


def fuzz_settings(max_examples: int) -> settings:
    """Hypothesis settings of a fuzz run: reproducible, no deadline, no example database."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
