"""RFC 8785 JSON Canonicalization Scheme (JCS), restricted to integers, and a strict JSON parser.

Overt signs a few JSON documents — the deployment manifest, warrants (DESIGN §2, §6), the
witness's persisted state — and a signature over JSON is only meaningful if every party turns
the same value into the same bytes. :func:`canonicalize` produces RFC 8785's canonical form:

* no whitespace between tokens (§3.2.1);
* ``null``, ``true``, ``false`` as literals; strings in UTF-8 with only the escapes §3.2.2.2
  mandates — ``\\"``, ``\\\\``, ``\\b \\t \\n \\f \\r`` and lowercase ``\\u00xx`` for the other
  control characters below U+0020 — and every other character (``/``, DEL, U+2028, non-ASCII)
  as itself;
* object members sorted by the UTF-16 code units of their names (§3.2.3), not by code points:
  the two orders differ once a name holds a character above U+FFFF, whose surrogates sort
  below U+E000..U+FFFF.

**Numbers are integers only**, with magnitude at most 2^53 − 1 (the I-JSON safe range, where an
IEEE 754 double is exact and RFC 8785's ECMAScript number serialization is plain decimal).
Floats are rejected with :class:`ValueError`: Overt's documents hold counts, sizes, days and
versions, never fractions, and leaving floats out removes the one part of RFC 8785 (shortest
round-trip ECMAScript formatting of doubles) where implementations have historically
disagreed. Larger quantities (64-bit tree sizes, say) travel as decimal strings, as RFC 8785
Appendix D recommends.

:func:`parse_strict` reads JSON from bytes for the same documents and refuses what would make
two parties see different values: duplicate member names, numbers with a fraction or an
exponent (``1.0``, ``1e3``), integers outside the safe range, ``NaN``/``Infinity``, input that
is not UTF-8 (a byte-order mark included), lone surrogates written as ``\\ud800`` escapes, and
input beyond :data:`MAX_JSON_BYTES` or nested deeper than :data:`MAX_JSON_DEPTH`. Every
failure is an :class:`overt.errors.DecodeError`. It does not require its input to be canonical;
a caller that does compares ``canonicalize(parse_strict(b)) == b``.

Misuse of :func:`canonicalize` — a value that is not JSON — raises :class:`ValueError` or
:class:`TypeError`, as the standard library's ``json`` does, since such values come from this
process and never from a peer.

This module knows nothing of keys, signatures, sockets or files, nor of what the documents
mean.
"""

from __future__ import annotations

import json
import re
from typing import Final, NoReturn, TypeAlias

from overt.errors import DecodeError

JsonValue: TypeAlias = bool | int | str | list["JsonValue"] | dict[str, "JsonValue"] | None
"""A JSON value as Overt handles it: no floats. :func:`canonicalize` also accepts tuples."""

MAX_SAFE_INTEGER: Final = (1 << 53) - 1
"""Largest integer magnitude accepted: 2^53 − 1, exact in IEEE 754 double precision."""

MAX_JSON_BYTES: Final = 1 << 20
"""Default bound on the input of :func:`parse_strict`: 1 MiB."""

MAX_JSON_DEPTH: Final = 32
"""Default and most nesting of arrays and objects, for both functions (``[]`` has depth 1)."""

_MAX_INT_DIGITS: Final = len(str(MAX_SAFE_INTEGER)) + 1  # a minus sign

_SHORT_ESCAPES: Final = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}
_MUST_ESCAPE: Final = re.compile('[\\x00-\\x1f"\\\\]')


def _escape_char(match: re.Match[str]) -> str:
    ch = match.group()
    return _SHORT_ESCAPES.get(ch) or f"\\u{ord(ch):04x}"


def _string(s: str) -> str:
    return '"' + _MUST_ESCAPE.sub(_escape_char, s) + '"'


def _utf16_key(name: str) -> bytes:
    # Big-endian UTF-16 compares bytewise exactly as its 16-bit code units compare numerically.
    # "surrogatepass" lets a lone surrogate through here; the final UTF-8 encode rejects it.
    return name.encode("utf-16-be", "surrogatepass")


def _serialize(value: object, out: list[str], depth: int, max_depth: int) -> None:
    # bool before int: True is an int in Python.
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise ValueError(
                f"integer {value} is outside ±(2^53 − 1); encode larger numbers as strings"
            )
        out.append(str(int(value)))
    elif isinstance(value, float):
        raise ValueError(
            "floats are not canonicalized: Overt's JSON documents hold integers and strings only"
        )
    elif isinstance(value, str):
        out.append(_string(value))
    elif isinstance(value, list | tuple):
        if depth >= max_depth:
            raise ValueError(f"JSON nested deeper than {max_depth}")
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _serialize(item, out, depth + 1, max_depth)
        out.append("]")
    elif isinstance(value, dict):
        if depth >= max_depth:
            raise ValueError(f"JSON nested deeper than {max_depth}")
        for name in value:
            if not isinstance(name, str):
                raise TypeError(f"JSON object member names must be str, not {type(name).__name__}")
        out.append("{")
        for i, name in enumerate(sorted(value, key=_utf16_key)):
            if i:
                out.append(",")
            out.append(_string(name))
            out.append(":")
            _serialize(value[name], out, depth + 1, max_depth)
        out.append("}")
    else:
        raise TypeError(f"{type(value).__name__} is not a JSON value")


def canonicalize(value: JsonValue, *, max_depth: int = MAX_JSON_DEPTH) -> bytes:
    """The RFC 8785 canonical UTF-8 bytes of ``value``.

    ``value`` is built of dict (str keys), list (or tuple), str, int, bool and None. Raises
    :class:`ValueError` for a float, an integer beyond ±(2^53 − 1), a string holding a lone
    surrogate (it is not Unicode text) or nesting deeper than ``max_depth``; :class:`TypeError`
    for anything else that is not JSON.
    """
    out: list[str] = []
    _serialize(value, out, 0, max_depth)
    try:
        return "".join(out).encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("a JSON string holds a lone surrogate, which is not Unicode") from None


# ----------------------------------------------------------------------------- strict parsing


class _Reject(Exception):
    """Raised inside json.loads hooks; mapped to DecodeError by parse_strict."""


def _reject_float(text: str) -> NoReturn:
    raise _Reject(f"number {text[:40]} is not an integer (no fractions or exponents)")


def _reject_constant(text: str) -> NoReturn:
    raise _Reject(f"{text} is not JSON")


def _parse_int(text: str) -> int:
    if len(text) > _MAX_INT_DIGITS:
        raise _Reject("integer outside ±(2^53 − 1)")
    value = int(text)
    if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        raise _Reject("integer outside ±(2^53 − 1)")
    return value


def _unique_members(pairs: list[tuple[str, JsonValue]]) -> dict[str, JsonValue]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _Reject("duplicate member name in a JSON object")
    return obj


_STRING_TOKEN: Final = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS: Final = re.compile(r"[\[\]{}]")


def _nesting_depth(text: str) -> int:
    """Deepest bracket nesting outside string literals (before json.loads recurses)."""
    depth = deepest = 0
    for bracket in _BRACKETS.findall(_STRING_TOKEN.sub("", text)):
        if bracket in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _check_strings(value: JsonValue) -> None:
    """Reject lone surrogates, which json.loads lets through from ``\\udXXX`` escapes."""
    stack: list[JsonValue] = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            v.encode("utf-8")  # UnicodeEncodeError on a lone surrogate
        elif isinstance(v, list):
            stack.extend(v)
        elif isinstance(v, dict):
            for name, item in v.items():
                name.encode("utf-8")
                stack.append(item)


def parse_strict(
    data: bytes, *, max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_JSON_DEPTH
) -> JsonValue:
    """Parse JSON bytes strictly into a :data:`JsonValue`; :class:`DecodeError` otherwise.

    Rejects non-UTF-8 input (and a byte-order mark), more than ``max_bytes`` bytes, nesting
    deeper than ``max_depth``, duplicate member names, non-integer numbers, integers outside
    ±(2^53 − 1), ``NaN``/``Infinity``, lone surrogates, control characters inside strings and
    trailing data. Whitespace between tokens is allowed.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError("JSON input must be bytes")
    if len(data) > max_bytes:
        raise DecodeError(f"JSON document larger than {max_bytes} bytes")
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        raise DecodeError("JSON document is not UTF-8") from None
    if _nesting_depth(text) > max_depth:
        raise DecodeError(f"JSON nested deeper than {max_depth}")
    try:
        value: JsonValue = json.loads(
            text,
            object_pairs_hook=_unique_members,
            parse_float=_reject_float,
            parse_int=_parse_int,
            parse_constant=_reject_constant,
        )
        _check_strings(value)
    except _Reject as e:
        raise DecodeError(f"JSON: {e}") from None
    except json.JSONDecodeError as e:
        raise DecodeError(f"JSON: {e.msg} at offset {e.pos}") from None
    except UnicodeEncodeError:
        raise DecodeError("JSON: a string holds a lone surrogate") from None
    except RecursionError:  # defence in depth: the depth pre-check should prevent it
        raise DecodeError("JSON nested too deeply") from None
    return value


__all__ = [
    "MAX_JSON_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_SAFE_INTEGER",
    "JsonValue",
    "canonicalize",
    "parse_strict",
]
