"""Property-based API fuzzing with schemathesis against the app's own ``/openapi.json``,
in-process over ASGI: no generated request may produce a 5xx, and answers must match the
description (status codes, content types, response schemas).

Two runs: one against the bare app, where the signed-request headers are fuzzed too (so most
signed endpoints answer 401), and one through :class:`fuzz_kit.SigningApp`, a test-only wrapper
that replaces those headers with a valid signature of a registered device over the body
schemathesis generated, so the fuzzing reaches body parsing and the services behind it.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from schemathesis.specs.openapi.checks import positive_data_acceptance
from server_kit import (
    FRANKING_KEY,
    FakeClock,
    encode_json,
    make_party,
    registration,
    signed_headers,
)
from starlette.testclient import TestClient

from overt.crypto import DeterministicRng
from overt.server import ServerConfig, ServerLimits, create_app
from overt.storage import InProcessPubSub, StorageLimits, open_memory

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the fuzz kit
from fuzz_kit import SigningApp, fuzz_schemas, fuzz_settings

_EXAMPLES = 20


def _build() -> tuple[Any, Any]:
    storage = asyncio.run(open_memory(StorageLimits(mailbox_depth=50, blob_size=1 << 20)))
    clock = FakeClock()
    app = create_app(
        ServerConfig(FRANKING_KEY, ServerLimits(rate_burst=1_000_000)),
        storage,
        InProcessPubSub(),
        clock=clock,
        rng=DeterministicRng(b"fuzz"),
    )
    alice, bob = make_party("alice", 1), make_party("bob", 2)
    client = TestClient(app)
    for party in (alice, bob):
        raw = encode_json(registration(party))
        headers = signed_headers(party.device, "POST", "/v1/accounts", raw, clock.advance())
        response = client.post("/v1/accounts", content=raw, headers=headers)
        assert response.status_code == 201, response.text

    def sign(method: str, target: str, body: bytes) -> dict[str, str]:
        return signed_headers(alice.device, method, target, body, clock.advance())

    return app, SigningApp(app, sign)


_APP, _SIGNING_APP = _build()
# A breached size or count bound is answered 413 (docs/api.md): a refusal like any other.
_REFUSALS = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]
bare, signed = fuzz_schemas(_APP, _SIGNING_APP, _REFUSALS)
_SETTINGS = fuzz_settings(_EXAMPLES)


@bare.parametrize()
@_SETTINGS
def test_fuzz_unsigned(case: Any) -> None:
    case.call_and_validate()


@signed.parametrize()
@_SETTINGS
def test_fuzz_signed(case: Any) -> None:
    # A schema-valid body may still carry base64 of bytes that are no binary structure (no
    # JSON schema can say what an Envelope is), so "valid data is accepted" cannot hold here.
    case.call_and_validate(excluded_checks=[positive_data_acceptance])
