"""The JSON view of docs/api.md, client side: request bodies out, strictly parsed answers in.

Every parser takes what ``json.loads`` gave and returns typed values, or raises
:class:`BadResponse` naming the field that does not fit. Binary values stay opaque bytes here;
the caller decodes and verifies them with :mod:`overt.wire` and :mod:`overt.protocol`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from overt.client._b64 import b64d, b64e
from overt.client.errors import BadResponse
from overt.errors import DecodeError
from overt.wire import Address, Envelope, KemPreKey, OneTimePreKey, SignedPreKey
from overt.wire.messages import MAX_ACCOUNT_ID_LEN

_U32_MAX = 0xFFFFFFFF
_U63_MAX = (1 << 63) - 1


def account_path(account: bytes) -> str:
    return b64e(account)


def address_text(address: Address) -> str:
    """``"<b64 account>:<device id>"``."""
    return f"{b64e(address.account)}:{address.device}"


def parse_address(value: object, what: str) -> Address:
    if not isinstance(value, str) or value.count(":") != 1:
        raise BadResponse(f"{what} is not a device address")
    account_b64, device = value.split(":")
    account = b64_value(account_b64, what)
    if not 1 <= len(account) <= MAX_ACCOUNT_ID_LEN or not device.isdigit():
        raise BadResponse(f"{what} is not a device address")
    dev = int(device)
    if dev > _U32_MAX:
        raise BadResponse(f"{what} is not a device address")
    return Address(account, dev)


def send_request(targets: Sequence[Address], envelopes: Sequence[Envelope]) -> dict[str, object]:
    """A ``POST /v1/messages`` body: the target devices by account, and the envelopes."""
    recipients: dict[str, list[int]] = {}
    for t in targets:
        recipients.setdefault(account_path(t.account), []).append(t.device)
    return {"recipients": recipients, "envelopes": [b64e(e.encode()) for e in envelopes]}


def prekey_upload(
    signed: SignedPreKey | None,
    last_resort_kem: KemPreKey | None,
    one_time: Sequence[OneTimePreKey],
    kem_one_time: Sequence[KemPreKey],
) -> dict[str, object]:
    """A ``PrekeyUpload`` object."""
    out: dict[str, object] = {}
    if signed is not None:
        out["signed_prekey"] = b64e(signed.encode())
    if last_resort_kem is not None:
        out["last_resort_kem"] = b64e(last_resort_kem.encode())
    if one_time:
        out["one_time"] = [b64e(k.encode()) for k in one_time]
    if kem_one_time:
        out["kem_one_time"] = [b64e(k.encode()) for k in kem_one_time]
    return out


# ----------------------------------------------------------------------------- parsing


def obj(value: object, what: str) -> Mapping[str, object]:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise BadResponse(f"{what} is not a JSON object")
    return value


def _field(o: Mapping[str, object], name: str, what: str) -> object:
    if name not in o:
        raise BadResponse(f"{what} has no {name!r}")
    return o[name]


def integer(o: Mapping[str, object], name: str, what: str, maximum: int = _U63_MAX) -> int:
    v = _field(o, name, what)
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= maximum:
        raise BadResponse(f"{what}: {name!r} is not an integer in range")
    return v


def boolean(o: Mapping[str, object], name: str, what: str) -> bool:
    v = _field(o, name, what)
    if not isinstance(v, bool):
        raise BadResponse(f"{what}: {name!r} is not a boolean")
    return v


def b64_value(v: object, what: str) -> bytes:
    """One strict base64url JSON value (a field's or an array item's) as bytes."""
    try:
        return b64d(v, what)
    except DecodeError as exc:
        raise BadResponse(str(exc)) from None


def binary(o: Mapping[str, object], name: str, what: str) -> bytes:
    return b64_value(_field(o, name, what), f"{what}: {name!r}")


def array(o: Mapping[str, object], name: str, what: str) -> list[object]:
    v = _field(o, name, what)
    if not isinstance(v, list):
        raise BadResponse(f"{what}: {name!r} is not an array")
    return v


def int_list(o: Mapping[str, object], name: str, what: str, maximum: int = _U63_MAX) -> list[int]:
    out = []
    for v in array(o, name, what):
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= maximum:
            raise BadResponse(f"{what}: {name!r} is not a list of integers in range")
        out.append(v)
    return out


@dataclass(frozen=True, slots=True)
class AccountView:
    """``GET /v1/accounts/{account}``."""

    account: bytes
    identity_key: bytes
    signed_device_list: bytes = field(repr=False)
    serial: int


def parse_account(value: object) -> AccountView:
    what = "account record"
    o = obj(value, what)
    return AccountView(
        binary(o, "account", what),
        binary(o, "identity_key", what),
        binary(o, "signed_device_list", what),
        integer(o, "serial", what),
    )


@dataclass(frozen=True, slots=True)
class BundlesView:
    """``GET /v1/accounts/{account}/bundles``."""

    serial: int
    signed_device_list: bytes = field(repr=False)
    bundles: tuple[bytes, ...] = field(repr=False)


def parse_bundles(value: object) -> BundlesView:
    what = "prekey bundles"
    o = obj(value, what)
    bundles = tuple(b64_value(b, f"{what}: bundle") for b in array(o, "bundles", what))
    return BundlesView(integer(o, "serial", what), binary(o, "signed_device_list", what), bundles)


@dataclass(frozen=True, slots=True)
class StaleAccount:
    """One entry of a ``409 stale_devices`` answer."""

    account: bytes
    serial: int
    devices: tuple[int, ...]
    signed_device_list: bytes = field(repr=False)


def parse_stale(details: Mapping[str, object]) -> list[StaleAccount]:
    what = "stale_devices answer"
    accounts = obj(_field(details, "accounts", what), what)
    out = []
    for key, value in accounts.items():
        entry = obj(value, what)
        out.append(
            StaleAccount(
                b64_value(key, f"{what}: account"),
                integer(entry, "serial", what),
                tuple(int_list(entry, "devices", what, _U32_MAX)),
                binary(entry, "signed_device_list", what),
            )
        )
    return out


#: The kinds of mail (docs/api.md): a one-to-one ``Envelope``, or a ``GroupMessage``.
MAIL_ENVELOPE = "envelope"
MAIL_GROUP = "group"


@dataclass(frozen=True, slots=True)
class Mail:
    """One mailbox entry (``GET /v1/messages`` or a WebSocket ``mail`` event)."""

    id: int
    sender: Address
    server_time_ms: int
    envelope: bytes = field(repr=False)
    """The envelope's bytes, or the group message's for ``kind == "group"``."""
    reporting_tag: bytes | None = field(repr=False)
    kind: str = MAIL_ENVELOPE


def parse_mail(value: object) -> Mail:
    what = "mail"
    o = obj(value, what)
    tag = o.get("reporting_tag")
    kind = o.get("kind", MAIL_ENVELOPE)  # absent: a server from before group mail
    if kind not in (MAIL_ENVELOPE, MAIL_GROUP):
        raise BadResponse(f"{what}: 'kind' is not 'envelope' or 'group'")
    return Mail(
        integer(o, "id", what),
        parse_address(_field(o, "sender", what), f"{what}: 'sender'"),
        integer(o, "server_time", what),
        binary(o, "envelope", what),
        None if tag is None else b64_value(tag, f"{what}: 'reporting_tag'"),
        str(kind),
    )


def parse_mail_page(value: object) -> tuple[list[Mail], bool]:
    what = "message page"
    o = obj(value, what)
    return [parse_mail(m) for m in array(o, "messages", what)], boolean(o, "more", what)


@dataclass(frozen=True, slots=True)
class PrekeyCounts:
    one_time: int
    kem_one_time: int
    low: bool


def parse_prekey_counts(value: object) -> PrekeyCounts:
    what = "prekey stock"
    o = obj(value, what)
    return PrekeyCounts(
        integer(o, "one_time", what), integer(o, "kem_one_time", what), boolean(o, "low", what)
    )


def parse_sent(value: object) -> tuple[list[int], int]:
    what = "send answer"
    o = obj(value, what)
    return int_list(o, "ids", what), integer(o, "server_time", what)


# ----------------------------------------------------------------------------- transparency


def text(o: Mapping[str, object], name: str, what: str) -> str:
    v = _field(o, name, what)
    if not isinstance(v, str):
        raise BadResponse(f"{what}: {name!r} is not a string")
    return v


def hash_list(value: object, what: str, max_items: int) -> list[bytes]:
    """``{"proof": ["<b64 32 bytes>", …]}`` of the inclusion and consistency endpoints."""
    o = obj(value, what)
    items = array(o, "proof", what)
    if len(items) > max_items:
        raise BadResponse(f"{what}: more than {max_items} hashes")
    out = [b64_value(h, f"{what}: hash") for h in items]
    if any(len(h) != 32 for h in out):
        raise BadResponse(f"{what}: a hash is not 32 bytes")
    return out


@dataclass(frozen=True, slots=True)
class ManifestView:
    """``GET /v1/manifest``: the signed manifest in force and its log index."""

    manifest: bytes = field(repr=False)
    index: int


def parse_manifest(value: object) -> ManifestView:
    what = "manifest answer"
    o = obj(value, what)
    return ManifestView(binary(o, "manifest", what), integer(o, "index", what))


def parse_entries(value: object, max_items: int) -> list[bytes]:
    what = "log entries"
    o = obj(value, what)
    items = array(o, "entries", what)
    if len(items) > max_items:
        raise BadResponse(f"{what}: more than {max_items} entries")
    return [b64_value(e, f"{what}: entry") for e in items]


@dataclass(frozen=True, slots=True)
class KtView:
    """``GET /v1/kt/{account}``: the account's latest key-directory entry, provably logged."""

    vrf_proof: bytes = field(repr=False)
    index: int
    opening: bytes = field(repr=False)
    signed_device_list: bytes = field(repr=False)
    proof: bytes = field(repr=False)
    """The C2SP tlog-proof bundle, as the bytes of its text."""


def parse_kt(value: object) -> KtView:
    what = "key-directory answer"
    o = obj(value, what)
    try:
        proof = text(o, "proof", what).encode("utf-8")
    except UnicodeEncodeError:
        raise BadResponse(f"{what}: 'proof' is not a C2SP tlog-proof") from None
    return KtView(
        binary(o, "vrf_proof", what),
        integer(o, "index", what),
        binary(o, "opening", what),
        binary(o, "signed_device_list", what),
        proof,
    )
