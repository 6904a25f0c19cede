"""Property-based fuzzing of the report routes against the relay's own ``/openapi.json``
(as ``create_app`` will serve them once they are mounted): no generated request yields a 5xx,
and answers match the description. The signed run signs every request as a registered device,
so the fuzzing reaches the report parser and the verifier."""

from __future__ import annotations

import asyncio
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance
from starlette.testclient import TestClient

from console.kit import FakeClock, b64, build_app, encode_json, signed_headers
from overt.crypto import DeterministicRng
from overt.protocol import AccountIdentity, Device
from overt.storage import open_memory

_SIGNED = frozenset({"x-overt-device", "x-overt-timestamp", "x-overt-signature"})
_REFUSALS = ["400", "401", "403", "404", "405", "409", "413", "415", "422", "429"]


def _build() -> tuple[Any, Any]:
    storage = asyncio.run(open_memory())
    clock = FakeClock()
    app, _, _, _ = build_app(storage, clock, escalation=None)
    device = Device.create(b"bob", 1, rng=DeterministicRng(5), one_time_prekeys=1)
    identity = AccountIdentity.generate(b"bob", DeterministicRng(6))
    stock = device.prekeys
    raw = encode_json({
        "account": b64(b"bob"),
        "signed_device_list": b64(identity.sign_device_list(1, [device.entry()]).encode()),
        "prekeys": {
            "signed_prekey": b64(stock.signed[stock.current_signed][1].encode()),
            "last_resort_kem": b64(stock.kem[stock.last_resort_kem][1].encode()),
        },
    })  # fmt: skip
    client = TestClient(app)
    headers = signed_headers(device, "POST", "/v1/accounts", raw, clock.advance())
    assert client.post("/v1/accounts", content=raw, headers=headers).status_code == 201

    class SigningApp:
        async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            chunks = []
            while True:
                message = await receive()
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    break
            body = b"".join(chunks)
            target = scope.get("raw_path", scope["path"].encode()).decode("latin-1")
            if scope.get("query_string"):
                target += "?" + scope["query_string"].decode("latin-1")
            signed = signed_headers(device, scope["method"], target, body, clock.advance())
            headers = [(k, v) for k, v in scope["headers"] if k.decode().lower() not in _SIGNED]
            headers += [(k.lower().encode(), v.encode()) for k, v in signed.items()]
            sent = False

            async def replay() -> dict[str, Any]:
                nonlocal sent
                if sent:
                    return await receive()
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}

            await app({**scope, "headers": headers}, replay, send)

    return app, SigningApp()


_APP, _SIGNING = _build()
bare = schemathesis.openapi.from_asgi(
    "/openapi.json",
    _APP,
    config=SchemathesisConfig.from_dict(
        {"checks": {"negative_data_rejection": {"expected-statuses": _REFUSALS}}}
    ),
).include(path_regex="^/v1/reports")
signed = schemathesis.openapi.from_asgi("/openapi.json", _SIGNING).include(
    path_regex="^/v1/reports"
)
signed.config.generation.update(modes=[GenerationMode.POSITIVE])

_SETTINGS = settings(
    max_examples=10,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@bare.parametrize()
@_SETTINGS
def test_fuzz_report_routes_unsigned(case: Any) -> None:
    case.call_and_validate()


@signed.parametrize()
@_SETTINGS
def test_fuzz_report_routes_signed(case: Any) -> None:
    # Schema-valid JSON is not a verifiable report: "valid data is accepted" cannot hold.
    case.call_and_validate(excluded_checks=[positive_data_acceptance])


def test_the_paths_are_described() -> None:
    spec = TestClient(_APP).get("/openapi.json").json()
    assert {"/v1/reports", "/v1/reports/standing"} <= set(spec["paths"])
    assert "/console" not in spec["paths"]
