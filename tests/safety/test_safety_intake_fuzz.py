"""Property-based fuzzing of the report routes against the relay's own ``/openapi.json``
(as ``create_app`` will serve them once they are mounted): no generated request yields a 5xx,
and answers match the description. The signed run signs every request as a registered device,
so the fuzzing reaches the report parser and the verifier."""

from __future__ import annotations

import asyncio
from typing import Any

from schemathesis.specs.openapi.checks import positive_data_acceptance
from starlette.testclient import TestClient

from console.kit import FakeClock, b64, build_app, encode_json, signed_headers
from fuzz_kit import SigningApp, fuzz_schemas, fuzz_settings
from overt.crypto import DeterministicRng
from overt.protocol import AccountIdentity, Device
from overt.storage import open_memory

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

    def sign(method: str, target: str, body: bytes) -> dict[str, str]:
        return signed_headers(device, method, target, body, clock.advance())

    return app, SigningApp(app, sign)


_APP, _SIGNING = _build()
bare, signed = fuzz_schemas(_APP, _SIGNING, _REFUSALS, path_regex="^/v1/reports")
_SETTINGS = fuzz_settings(10)


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
