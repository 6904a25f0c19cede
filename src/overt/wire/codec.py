"""The canonical binary codec, in the style of the TLS presentation language (RFC 8446 §3).

Fixed-width big-endian integers, fixed-length byte strings, and variable-length vectors
prefixed by a 1-, 2- or 4-byte length. There is exactly one encoding of every value, so what
is signed, hashed or MACed is unambiguous. Decoding is strict: every length is bounded, every
read must fit, and :meth:`Reader.finish` refuses trailing bytes. The only failure is
:class:`overt.errors.DecodeError`.

This module never sees keys, sockets or storage: bytes in, values out.
"""

from __future__ import annotations

from typing import Final

from overt.errors import DecodeError

_PREFIX_MAX: Final = {1: 0xFF, 2: 0xFFFF, 4: 0xFFFFFFFF}


class Writer:
    """Append-only builder of a canonical encoding."""

    __slots__ = ("_parts",)

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def u8(self, v: int) -> Writer:
        self._parts.append(_int(v, 1))
        return self

    def u16(self, v: int) -> Writer:
        self._parts.append(_int(v, 2))
        return self

    def u32(self, v: int) -> Writer:
        self._parts.append(_int(v, 4))
        return self

    def u64(self, v: int) -> Writer:
        self._parts.append(_int(v, 8))
        return self

    def fixed(self, data: bytes, n: int) -> Writer:
        if len(data) != n:
            raise ValueError(f"fixed field needs {n} bytes, got {len(data)}")
        self._parts.append(bytes(data))
        return self

    def vec(self, data: bytes, prefix: int, max_len: int | None = None) -> Writer:
        """A variable-length byte vector with a ``prefix``-byte length."""
        limit = _PREFIX_MAX[prefix] if max_len is None else max_len
        if len(data) > limit:
            raise ValueError(f"vector of {len(data)} bytes exceeds its bound of {limit}")
        self._parts.append(_int(len(data), prefix))
        self._parts.append(bytes(data))
        return self

    def raw(self, data: bytes) -> Writer:
        """Already-canonical bytes (an encoded sub-structure)."""
        self._parts.append(data)
        return self

    def boolean(self, v: bool) -> Writer:
        self._parts.append(b"\x01" if v else b"\x00")
        return self

    def getvalue(self) -> bytes:
        return b"".join(self._parts)


def _int(v: int, width: int) -> bytes:
    if v < 0 or v >= 1 << (8 * width):
        raise ValueError(f"integer {v} does not fit in {width} bytes")
    return v.to_bytes(width, "big")


class Reader:
    """Strict cursor over a canonical encoding. ``what`` names the structure in errors."""

    __slots__ = ("_data", "_pos", "what")

    def __init__(self, data: bytes, what: str) -> None:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise DecodeError(f"{what}: expected bytes")
        self._data = bytes(data)
        self._pos = 0
        self.what = what

    def _take(self, n: int, field: str) -> bytes:
        end = self._pos + n
        if end > len(self._data):
            raise DecodeError(f"{self.what}: truncated at {field}")
        out = self._data[self._pos : end]
        self._pos = end
        return out

    def u8(self, field: str = "u8") -> int:
        return self._take(1, field)[0]

    def u16(self, field: str = "u16") -> int:
        return int.from_bytes(self._take(2, field), "big")

    def u32(self, field: str = "u32") -> int:
        return int.from_bytes(self._take(4, field), "big")

    def u64(self, field: str = "u64") -> int:
        return int.from_bytes(self._take(8, field), "big")

    def fixed(self, n: int, field: str = "bytes") -> bytes:
        return self._take(n, field)

    def vec(self, prefix: int, field: str, max_len: int | None = None, min_len: int = 0) -> bytes:
        n = int.from_bytes(self._take(prefix, field), "big")
        limit = _PREFIX_MAX[prefix] if max_len is None else max_len
        if n > limit or n < min_len:
            raise DecodeError(f"{self.what}: {field} length {n} outside [{min_len}, {limit}]")
        return self._take(n, field)

    def boolean(self, field: str = "flag") -> bool:
        b = self.u8(field)
        if b > 1:
            raise DecodeError(f"{self.what}: {field} is not a boolean")
        return b == 1

    def version(self, expected: int | tuple[int, ...]) -> int:
        v = self.u8("version")
        allowed = (expected,) if isinstance(expected, int) else expected
        if v not in allowed:
            raise DecodeError(f"{self.what}: unknown version {v}")
        return v

    @property
    def position(self) -> int:
        return self._pos

    def remaining(self) -> int:
        return len(self._data) - self._pos

    def finish(self) -> None:
        if self._pos != len(self._data):
            raise DecodeError(f"{self.what}: {len(self._data) - self._pos} trailing bytes")
