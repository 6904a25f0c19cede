"""base64url without padding, as docs/api.md uses for every binary value in JSON, and as the
access, safety and manifest documents use: one shared, strict implementation.

Decoding is strict: only the URL-safe alphabet, no padding, no impossible lengths, and the
encoding must be canonical (unused trailing bits zero), so one value has one text form.
"""

from __future__ import annotations

import base64
import binascii
import re

from overt.errors import DecodeError

_ALPHABET = re.compile(r"[A-Za-z0-9_-]*")


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
