"""base64url without padding, strict and canonical, for the binary values of access documents.

Only the URL-safe alphabet, no padding, no impossible lengths, unused trailing bits zero: one
value has exactly one text form (the same rules as the manifest's and the safety package's;
:mod:`overt.access` keeps its own copy rather than reach into theirs).
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Final

from overt.errors import DecodeError

_ALPHABET: Final = re.compile(r"[A-Za-z0-9_-]*")


def b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64d(text: object, what: str) -> bytes:
    """Decode ``text``; :class:`DecodeError` naming ``what`` if it is not canonical base64url."""
    if not isinstance(text, str) or not _ALPHABET.fullmatch(text) or len(text) % 4 == 1:
        raise DecodeError(f"{what} is not base64url")
    try:
        out = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise DecodeError(f"{what} is not base64url") from None
    if b64e(out) != text:
        raise DecodeError(f"{what} is not canonical base64url")
    return out
