"""Strict base64url: see :mod:`overt.wire.b64` (one implementation for every package)."""

from overt.wire.b64 import b64d, b64e

__all__ = ["b64d", "b64e"]
