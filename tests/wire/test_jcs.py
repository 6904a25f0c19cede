"""RFC 8785 canonicalization and the strict JSON parser.

Known answers are the RFC 8785 examples as published in the cyberphone/json-canonicalization
test data (see tests/vectors/README.md); properties are checked with Hypothesis, and the
output is compared with an independent serializer (the standard library's, after sorting
member names by UTF-16 code units).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from overt.errors import DecodeError
from overt.wire.jcs import (
    MAX_JSON_DEPTH,
    MAX_SAFE_INTEGER,
    JsonValue,
    canonicalize,
    parse_strict,
)

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "jcs"

# Cases whose input holds integers and strings only: parse_strict reads them as published.
INTEGER_CASES = ["arrays", "french", "unicode", "weird"]


def _read(kind: str, name: str) -> bytes:
    suffix = ".txt" if kind == "outhex" else ".json"
    return (VECTORS / kind / f"{name}{suffix}").read_bytes()


# ----------------------------------------------------------------------------- known answers


@pytest.mark.parametrize("name", [*INTEGER_CASES, "structures", "values"])
def test_vector_files_agree_with_their_hex(name: str) -> None:
    """The copied output files are the bytes the published hex dumps spell."""
    assert _read("output", name) == bytes.fromhex(_read("outhex", name).decode("ascii"))


@pytest.mark.parametrize("name", INTEGER_CASES)
def test_rfc8785_examples(name: str) -> None:
    expected = _read("output", name)
    value = parse_strict(_read("input", name))
    assert canonicalize(value) == expected
    # Canonical output is a fixed point.
    assert canonicalize(parse_strict(expected)) == expected


def test_rfc8785_sorting_example_uses_utf16_order() -> None:
    """RFC 8785 §3.2.3: U+1F602 (surrogates D83D DE02) sorts before U+FB33, unlike code points."""
    value = parse_strict(_read("input", "weird"))
    assert isinstance(value, dict)
    keys = list(json.loads(canonicalize(value)))
    assert keys.index("\U0001f602") < keys.index("\ufb33")
    assert sorted(keys) != keys  # code-point order would differ


def test_structures_example_with_its_one_integral_float() -> None:
    """structures.json writes 56 as ``56.0``: parse_strict refuses the fraction syntax; read as
    the integer it denotes, the canonical bytes are the published ones."""
    raw = _read("input", "structures")
    with pytest.raises(DecodeError):
        parse_strict(raw)

    def integral(text: str) -> int:
        f = float(text)
        assert f.is_integer()
        return int(f)

    assert canonicalize(json.loads(raw, parse_float=integral)) == _read("output", "structures")


def test_values_example_strings_and_literals() -> None:
    """values.json (RFC 8785 §3.2.2 and §3.2.4) mixes floats with the string-escaping example.

    Floats are refused; without the ``numbers`` member the canonical bytes are the published
    output with that member cut out.
    """
    raw = _read("input", "values")
    with pytest.raises(DecodeError):
        parse_strict(raw)
    doc = json.loads(raw)
    with pytest.raises(ValueError, match="float"):
        canonicalize(doc)
    del doc["numbers"]
    published = _read("output", "values")
    numbers_member = b'"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
    assert numbers_member in published
    assert canonicalize(doc) == published.replace(numbers_member, b"")
    # The escapes: lowercase \u000f, short \n, and "/" and "'" left alone.
    assert b'"\xe2\x82\xac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"' in canonicalize(doc)


# ----------------------------------------------------------------------------- serialization


def test_escapes_only_what_rfc8785_mandates() -> None:
    s = "".join(chr(c) for c in range(0x20)) + '"\\/\x7f\u2028\u00e9'
    out = canonicalize(s)
    assert out == (
        b'"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r'
        b"\\u000e\\u000f\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018\\u0019"
        b'\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f\\"\\\\/\x7f\xe2\x80\xa8\xc3\xa9"'
    )


def test_literals_integers_and_empty_containers() -> None:
    assert canonicalize([None, True, False, 0, -1, MAX_SAFE_INTEGER, {}, []]) == (
        b"[null,true,false,0,-1,9007199254740991,{},[]]"
    )
    assert canonicalize((1, "a")) == b'[1,"a"]'  # type: ignore[arg-type]
    assert canonicalize({"b": 1, "a": {"d": [], "c": None}}) == b'{"a":{"c":null,"d":[]},"b":1}'


@pytest.mark.parametrize("value", [1.0, 0.5, float("nan"), float("inf"), [1, 2.5], {"a": -0.0}])
def test_floats_refused(value: JsonValue) -> None:
    with pytest.raises(ValueError, match="float"):
        canonicalize(value)


@pytest.mark.parametrize("value", [MAX_SAFE_INTEGER + 1, -MAX_SAFE_INTEGER - 1, 1 << 64])
def test_unsafe_integers_refused(value: int) -> None:
    with pytest.raises(ValueError, match="2\\^53"):
        canonicalize(value)


@pytest.mark.parametrize("value", ["\ud800", {"\udfff": 1}, ["a\udc00b"]])
def test_lone_surrogates_refused(value: JsonValue) -> None:
    with pytest.raises(ValueError, match="surrogate"):
        canonicalize(value)


def test_non_json_values_refused() -> None:
    with pytest.raises(TypeError):
        canonicalize({1: "a"})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        canonicalize(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        canonicalize({"a": {1, 2}})  # type: ignore[dict-item]


def test_depth_bound_and_cycles() -> None:
    deep: JsonValue = []
    for _ in range(MAX_JSON_DEPTH - 1):
        deep = [deep]
    assert canonicalize(deep).startswith(b"[" * MAX_JSON_DEPTH)
    with pytest.raises(ValueError, match="deeper"):
        canonicalize([deep])
    cycle: list[JsonValue] = []
    cycle.append(cycle)
    with pytest.raises(ValueError, match="deeper"):
        canonicalize(cycle)


# ----------------------------------------------------------------------------- strict parsing


@pytest.mark.parametrize(
    "data",
    [
        b'{"a":1,"a":2}',
        b'{"a":1,"\\u0061":2}',  # the same name, escaped
        b'[{"x":{"k":1,"k":1}}]',
        b"1.0",
        b"1e3",
        b"-0.0",
        b"[1E+2]",
        b"NaN",
        b"Infinity",
        b"-Infinity",
        b"9007199254740992",
        b"-9007199254740992",
        b"1" * 5000,
        b'"\\ud800"',
        b'{"\\udc00":1}',
        b'"\xff"',
        b'"\xed\xa0\x80"',  # a surrogate encoded in UTF-8 is not UTF-8
        b"\xef\xbb\xbf{}",  # byte-order mark
        b'"a\nb"',  # raw control character in a string
        b"{} {}",
        b"[1,]",
        b"{'a':1}",
        b"",
        b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1),
        b'{"a":' * (MAX_JSON_DEPTH + 1) + b"1" + b"}" * (MAX_JSON_DEPTH + 1),
        b"[" * 100_000,
    ],
)
def test_parse_strict_refuses(data: bytes) -> None:
    with pytest.raises(DecodeError):
        parse_strict(data)


def test_parse_strict_accepts_json_with_whitespace() -> None:
    assert parse_strict(b' { "b" : [ 1 , -2 , "\\u00e9\\/" ] ,\n"a":null } ') == {
        "b": [1, -2, "\u00e9/"],
        "a": None,
    }
    assert parse_strict(b"-0") == 0
    assert parse_strict(b'"[[[[[["') == "[[[[[["  # brackets inside strings are not nesting
    nested = b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH
    assert canonicalize(parse_strict(nested)) == nested


def test_parse_strict_bounds() -> None:
    doc = b'"' + b"a" * 100 + b'"'
    assert parse_strict(doc, max_bytes=len(doc)) == "a" * 100
    with pytest.raises(DecodeError):
        parse_strict(doc, max_bytes=len(doc) - 1)
    with pytest.raises(DecodeError):
        parse_strict(b"[[1]]", max_depth=1)
    with pytest.raises(DecodeError):
        parse_strict("[]")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- properties

_SAFE_INTS = st.integers(min_value=-MAX_SAFE_INTEGER, max_value=MAX_SAFE_INTEGER)
_TEXT = st.text(st.characters(codec="utf-8"), max_size=12)  # every code point but surrogates
json_values: st.SearchStrategy[JsonValue] = st.recursive(
    st.none() | st.booleans() | _SAFE_INTS | _TEXT,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(_TEXT, children, max_size=5),
    max_leaves=30,
)


def _utf16_sorted(value: JsonValue) -> JsonValue:
    if isinstance(value, list):
        return [_utf16_sorted(v) for v in value]
    if isinstance(value, dict):
        names = sorted(value, key=lambda k: k.encode("utf-16-be"))
        return {k: _utf16_sorted(value[k]) for k in names}
    return value


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_canonical_form_is_a_fixed_point(value: JsonValue) -> None:
    canonical = canonicalize(value)
    parsed = parse_strict(canonical)
    assert parsed == value
    assert canonicalize(parsed) == canonical


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_matches_an_independent_serializer(value: JsonValue) -> None:
    """The standard library escapes exactly the same characters when ``ensure_ascii`` is off;
    given members already in UTF-16 order, its compact output must be byte-identical."""
    reference = json.dumps(_utf16_sorted(value), ensure_ascii=False, separators=(",", ":"))
    assert canonicalize(value) == reference.encode("utf-8")


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_reformatted_input_canonicalizes_identically(value: JsonValue) -> None:
    """Whitespace, member order and escaping of the input do not change the canonical bytes."""
    loose = json.dumps(value, indent=2, ensure_ascii=True).encode("ascii")
    assert canonicalize(parse_strict(loose)) == canonicalize(value)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(_TEXT, _SAFE_INTS, min_size=1, max_size=8))
def test_member_order_follows_utf16_code_units(obj: dict[str, JsonValue]) -> None:
    def code_units(name: str) -> list[int]:
        raw = name.encode("utf-16-be")
        return [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]

    names = list(json.loads(canonicalize(obj)))
    assert [code_units(n) for n in names] == sorted(code_units(n) for n in names)
