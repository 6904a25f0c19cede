"""The argument checks every store is made of: an integer in a range, bytes of a fixed length,
bytes up to a bound (and not empty).

They raise :class:`~overt.storage.errors.InvalidArgument` for a value of the wrong type or out
of range and :class:`overt.errors.LimitExceeded` for a size over a bound; messages name the
field, never its contents. This module imports nothing of the stores, so that each store's
module (:mod:`overt.storage.matching`, which :mod:`overt.storage.interfaces` imports) and the
shared checks of :mod:`overt.storage._checks` can both use it without an import cycle.
"""

from __future__ import annotations

from overt.errors import LimitExceeded
from overt.storage.errors import InvalidArgument


def int_range(value: int, high: int, what: str) -> None:
    """``value`` is an integer (not a bool) in ``0..high``."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
        raise InvalidArgument(f"{what} must be an integer in 0..{high}")


def fixed(value: bytes, n: int, what: str) -> None:
    """``value`` is exactly ``n`` bytes."""
    if not isinstance(value, bytes) or len(value) != n:
        raise InvalidArgument(f"{what} must be {n} bytes")


def size(data: bytes, high: int, what: str) -> None:
    """``data`` is bytes, at most ``high`` of them."""
    if not isinstance(data, bytes):
        raise InvalidArgument(f"{what} must be bytes")
    if len(data) > high:
        raise LimitExceeded(f"{what} is longer than {high} bytes")


def nonempty(data: bytes, high: int, what: str) -> None:
    """:func:`size`, and not empty."""
    size(data, high, what)
    if not data:
        raise InvalidArgument(f"{what} must not be empty")


__all__ = ["fixed", "int_range", "nonempty", "size"]
