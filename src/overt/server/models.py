"""The JSON bodies of the HTTP and WebSocket API as strict pydantic models.

Requests are parsed strictly: unknown fields are refused, no type is coerced (``"1"`` is not
``1``), binary values are canonical base64url without padding (decoded here, so services see
``bytes``), and every string, list and map is bounded by a constant of
:mod:`overt.server.limits`. :func:`parse_json` turns every failure into
:class:`~overt.server.errors.Malformed` (400) or, for a breached size or count bound,
:class:`~overt.server.errors.TooLarge` (413). Responses are plain models of already-encoded
values, so that ``/openapi.json`` describes both directions.

This module knows nothing of storage, signatures or the binary structures inside the base64:
decoding those (``overt.wire``) is the services' job.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    TypeAdapter,
    ValidationError,
)
from pydantic_core import PydanticCustomError, core_schema

from overt.errors import OvertError
from overt.server.codec import B64_PATTERN, b64_chars, b64decode
from overt.server.errors import Malformed, TooLarge
from overt.server.limits import (
    ATTACHMENT_ID_LEN,
    INT64_MAX,
    MAX_ACCOUNT_ID_LEN,
    MAX_ACK_IDS,
    MAX_DEVICE_LIST_LEN,
    MAX_DEVICES_PER_ACCOUNT,
    MAX_ENVELOPE_LEN,
    MAX_ENVELOPES_PER_SEND,
    MAX_PREKEY_LEN,
    MAX_PREKEYS_PER_UPLOAD,
    MAX_RECIPIENT_ACCOUNTS,
    UINT32_MAX,
)

M = TypeVar("M", bound=BaseModel)

_TOO_LARGE_TYPES: Final = frozenset({"too_long", "string_too_long", "b64_too_large"})
"""Validation error types that breach a size or count bound (413 rather than 400)."""

_MAX_REPORTED_ERRORS: Final = 3
_FIELD_NAME: Final = re.compile(r"[a-z_\[\]]{1,32}")


@dataclass(frozen=True, slots=True)
class _B64:
    """Pydantic metadata: canonical base64url text of ``min_bytes..max_bytes`` bytes, read as
    ``bytes``; oversize is a size bound (413) where ``oversize_is_too_large``."""

    what: str
    max_bytes: int
    min_bytes: int = 0
    oversize_is_too_large: bool = False

    def validate(self, value: object) -> bytes:
        if not isinstance(value, str):
            raise PydanticCustomError("b64_type", f"{self.what} must be a base64url string")
        if len(value) > b64_chars(self.max_bytes):
            kind = "b64_too_large" if self.oversize_is_too_large else "b64_length"
            raise PydanticCustomError(kind, f"{self.what} is longer than {self.max_bytes} bytes")
        try:
            raw = b64decode(value, self.what)
        except Malformed as e:
            raise PydanticCustomError("b64", str(e)) from None
        if not self.min_bytes <= len(raw) <= self.max_bytes:
            raise PydanticCustomError(
                "b64_length", f"{self.what} must be {self.min_bytes}..{self.max_bytes} bytes"
            )
        return raw

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(self.validate)

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "string",
            "pattern": B64_PATTERN,
            "maxLength": b64_chars(self.max_bytes),
            "description": (
                f"{self.what}, base64url without padding ({self.min_bytes}..{self.max_bytes} bytes)"
            ),
        }
        if self.min_bytes:
            out["minLength"] = b64_chars(self.min_bytes)
        return out


AccountIdB64 = Annotated[bytes, _B64("an account id", MAX_ACCOUNT_ID_LEN, min_bytes=1)]
DeviceListB64 = Annotated[bytes, _B64("a signed device list", MAX_DEVICE_LIST_LEN, min_bytes=1)]
PrekeyB64 = Annotated[bytes, _B64("a prekey", MAX_PREKEY_LEN, min_bytes=1)]
EnvelopeB64 = Annotated[
    bytes, _B64("an envelope", MAX_ENVELOPE_LEN, min_bytes=1, oversize_is_too_large=True)
]
SignatureB64 = Annotated[bytes, _B64("a signature", 64, min_bytes=64)]

DeviceId = Annotated[int, Field(ge=0, le=UINT32_MAX)]
MessageId = Annotated[int, Field(ge=1, le=INT64_MAX)]
Serial = Annotated[int, Field(ge=0, le=INT64_MAX)]
DeviceIds = Annotated[list[DeviceId], Field(max_length=MAX_DEVICES_PER_ACCOUNT)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


# ----------------------------------------------------------------------------- requests


class PrekeyUpload(_Strict):
    """Prekeys a device publishes; each is the standalone ``overt.wire`` encoding."""

    signed_prekey: PrekeyB64 | None = None
    last_resort_kem: PrekeyB64 | None = None
    one_time: list[PrekeyB64] = Field(default_factory=list, max_length=MAX_PREKEYS_PER_UPLOAD)
    kem_one_time: list[PrekeyB64] = Field(default_factory=list, max_length=MAX_PREKEYS_PER_UPLOAD)


class RegisterRequest(_Strict):
    account: AccountIdB64
    signed_device_list: DeviceListB64
    prekeys: PrekeyUpload


class ReplaceDevicesRequest(_Strict):
    signed_device_list: DeviceListB64
    expected_serial: Serial


class SendRequest(_Strict):
    recipients: dict[AccountIdB64, DeviceIds] = Field(max_length=MAX_RECIPIENT_ACCOUNTS)
    envelopes: list[EnvelopeB64] = Field(min_length=1, max_length=MAX_ENVELOPES_PER_SEND)


class AckRequest(_Strict):
    ids: list[MessageId] = Field(max_length=MAX_ACK_IDS)


# ----------------------------------------------------------------------------- responses


class ErrorBody(_Out):
    error: str
    message: str


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """A route's OpenAPI ``responses`` for ``statuses``, each answered with an
    :class:`ErrorBody` (every router of the server describes its errors with this)."""
    return {status: {"model": ErrorBody, "description": "error"} for status in statuses}


def signed_header_parameters() -> list[dict[str, Any]]:
    """A signed route's OpenAPI ``parameters``: the three headers of a signed device request
    (docs/api.md, "Authentication"); a new list for each route."""
    return [
        {"name": name, "in": "header", "required": True, "schema": {"type": "string"}}
        for name in ("X-Overt-Device", "X-Overt-Timestamp", "X-Overt-Signature")
    ]


class CurrentDevicesBody(_Out):
    serial: int
    devices: list[int]
    signed_device_list: str


class StaleDevicesBody(_Out):
    error: Literal["stale_devices"]
    message: str
    accounts: dict[str, CurrentDevicesBody]


class RegisterResponse(_Out):
    account: str
    device: int


class AccountResponse(_Out):
    account: str
    identity_key: str
    signed_device_list: str
    serial: int
    devices: list[int]


class SerialResponse(_Out):
    serial: int


class PrekeyCountResponse(_Out):
    one_time: int
    kem_one_time: int


class PrekeyStockResponse(_Out):
    one_time: int
    kem_one_time: int
    low: bool


class BundlesResponse(_Out):
    serial: int
    signed_device_list: str
    bundles: list[str]


class SendResponse(_Out):
    ids: list[int]
    server_time: int


class MailBody(_Out):
    id: int
    sender: str
    server_time: int
    envelope: str
    reporting_tag: str
    kind: Literal["envelope", "group"] = Field(
        default="envelope",
        description="'envelope': a one-to-one Envelope; 'group': a GroupMessage (docs/api.md)",
    )


class FetchResponse(_Out):
    messages: list[MailBody]
    more: bool


class AckResponse(_Out):
    removed: int


class AttachmentResponse(_Out):
    id: str = Field(description=f"base64url of {ATTACHMENT_ID_LEN} random bytes")


class HealthResponse(_Out):
    status: Literal["ok"]


class ManifestResponse(_Out):
    manifest: str = Field(description="base64url of the signed manifest (canonical JSON)")
    index: int = Field(description="its index in the transparency log")


class EntriesResponse(_Out):
    entries: list[str] = Field(description="base64url of each entry's canonical encoding")


class ProofResponse(_Out):
    proof: list[str] = Field(description="base64url of each 32-byte hash (RFC 9162)")


class KtLookupResponse(_Out):
    vrf_proof: str = Field(description="base64url of the 80-byte vrf-r255 proof of the label")
    index: int = Field(description="the log index of the account's latest entry")
    opening: str = Field(description="base64url of the commitment's 32-byte opening")
    signed_device_list: str = Field(description="base64url of the device list the entry hashes")
    proof: str = Field(description="a C2SP tlog-proof bundle under the published checkpoint")


# ----------------------------------------------------------------------------- WebSocket


class WsAuth(_Strict):
    type: Literal["auth"]
    device: str = Field(max_length=b64_chars(MAX_ACCOUNT_ID_LEN) + 11)
    timestamp: int = Field(ge=0, le=INT64_MAX)
    signature: SignatureB64


class WsAck(_Strict):
    type: Literal["ack"]
    ids: list[MessageId] = Field(max_length=MAX_ACK_IDS)


WsClientFrame = Annotated[WsAuth | WsAck, Field(discriminator="type")]
_WS_FRAME: Final[TypeAdapter[WsAuth | WsAck]] = TypeAdapter(WsClientFrame)


# ----------------------------------------------------------------------------- parsing


def _as_overt(error: ValidationError) -> OvertError:
    details = error.errors(include_url=False, include_input=False, include_context=False)
    parts: list[str] = []
    for item in details[:_MAX_REPORTED_ERRORS]:
        location = ".".join(_location_part(p) for p in item["loc"]) or "body"
        parts.append(f"{location}: {item['msg']}")
    too_large = any(item["type"] in _TOO_LARGE_TYPES for item in details)
    message = "; ".join(parts) + ("; …" if len(details) > _MAX_REPORTED_ERRORS else "")
    if too_large:
        return TooLarge(f"the request is too large: {message}")
    return Malformed(f"the request does not parse: {message}")


def _location_part(part: str | int) -> str:
    """A field name or index as is; anything the client named itself (a map key) elided."""
    if isinstance(part, int) or _FIELD_NAME.fullmatch(part):
        return str(part)
    return "…"


def _parse(validate: Callable[[], M]) -> M:
    try:
        return validate()
    except ValidationError as e:
        raise _as_overt(e) from None


def parse_json(model: type[M], body: bytes) -> M:
    """``body`` as ``model``; :class:`Malformed` or :class:`TooLarge` if it does not fit."""
    return _parse(lambda: model.model_validate_json(body))


def parse_ws_frame(text: str | bytes) -> WsAuth | WsAck:
    """One client WebSocket frame."""
    try:
        return _WS_FRAME.validate_json(text)
    except ValidationError as e:
        raise _as_overt(e) from None
