"""The textual views of binary values at the HTTP API: strict base64url without padding and
device addresses ``"<b64 account>:<device id>"``.

Decoding is strict in the way :mod:`overt.wire` is: one canonical text per value (no padding,
no whitespace, no other alphabet, zero trailing bits, decimal device ids without leading
zeros), and :class:`~overt.server.errors.Malformed` is the only failure.

This module knows no web framework, no storage and no protocol state.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Final

from overt.server.errors import Malformed
from overt.server.limits import MAX_ACCOUNT_ID_LEN, UINT32_MAX
from overt.wire import Address

_B64_TEXT: Final = re.compile(r"[A-Za-z0-9_-]*")
_DEVICE_TEXT: Final = re.compile(r"0|[1-9][0-9]{0,9}")

B64_PATTERN: Final = (
    r"^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-][AQgw]|[A-Za-z0-9_-]{2}[AEIMQUYcgkosw048])?$"
)
"""Canonical base64url without padding, as a JSON-schema pattern: whole groups, then a last
partial group whose unused low bits are zero (so the text is exactly what :func:`b64decode`
accepts, and the OpenAPI description does not promise more than the server takes)."""


def b64_chars(n_bytes: int) -> int:
    """How many characters the unpadded base64url text of ``n_bytes`` bytes has."""
    return (4 * n_bytes + 2) // 3


def b64encode(data: bytes) -> str:
    """Base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64decode(text: str, what: str = "a value") -> bytes:
    """Decode canonical base64url without padding; :class:`Malformed` otherwise."""
    if not isinstance(text, str) or not _B64_TEXT.fullmatch(text) or len(text) % 4 == 1:
        raise Malformed(f"{what} must be base64url without padding")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise Malformed(f"{what} must be base64url without padding") from None
    if b64encode(data) != text:
        raise Malformed(f"{what} is not canonical base64url (nonzero trailing bits)")
    return data


def account_id(text: str, what: str = "an account id") -> bytes:
    """An account id from its base64url text: 1..64 bytes."""
    if len(text) > b64_chars(MAX_ACCOUNT_ID_LEN):
        raise Malformed(f"{what} is at most {MAX_ACCOUNT_ID_LEN} bytes")
    raw = b64decode(text, what)
    if not 1 <= len(raw) <= MAX_ACCOUNT_ID_LEN:
        raise Malformed(f"{what} is 1..{MAX_ACCOUNT_ID_LEN} bytes")
    return raw


def device_id(text: str, what: str = "a device id") -> int:
    """A uint32 device id from canonical decimal text."""
    if not _DEVICE_TEXT.fullmatch(text) or int(text) > UINT32_MAX:
        raise Malformed(f"{what} must be a decimal integer in 0..{UINT32_MAX}")
    return int(text)


def format_address(address: Address) -> str:
    """``"<b64 account>:<device id>"``."""
    return f"{b64encode(address.account)}:{address.device}"


def parse_address(text: str, what: str = "a device address") -> Address:
    """The inverse of :func:`format_address`; :class:`Malformed` for anything else."""
    account, sep, device = text.partition(":")
    if not sep:
        raise Malformed(f"{what} must be '<b64 account>:<device id>'")
    return Address(account_id(account, what), device_id(device, what))
