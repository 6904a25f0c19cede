"""The canonical codec: round trips, strictness (versions, bounds, trailing bytes)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from overt.errors import DecodeError
from overt.wire import (
    AccessField,
    Address,
    Content,
    Envelope,
    MessageType,
    RatchetHeader,
    Reader,
    Writer,
)

addresses = st.builds(Address, st.binary(min_size=1, max_size=64), st.integers(0, 2**32 - 1))
envelopes = st.builds(
    Envelope,
    st.just(MessageType.MESSAGE),
    addresses,
    addresses,
    st.integers(0, 2**64 - 1),
    st.binary(min_size=16, max_size=16),
    st.binary(min_size=32, max_size=32),
    st.none(),
    st.builds(
        RatchetHeader,
        st.binary(min_size=32, max_size=32),
        st.integers(0, 2**32 - 1),
        st.integers(0, 2**32 - 1),
    ),
    st.binary(min_size=32, max_size=32),
    st.one_of(
        st.none(),
        st.builds(
            AccessField,
            st.integers(0, 2**32 - 1),
            st.binary(min_size=32, max_size=32),
            st.binary(min_size=32, max_size=32),
        ),
    ),
    st.binary(max_size=300),
)


@given(envelopes)
def test_envelope_round_trip(env: Envelope) -> None:
    wire = env.encode()
    assert Envelope.decode(wire) == env
    assert Envelope.decode(wire).encode() == wire
    assert wire.endswith(env.ciphertext)
    assert wire.startswith(env.header_bytes())


@given(st.binary(max_size=200))
def test_decoding_garbage_only_raises_decode_error(data: bytes) -> None:
    for cls in (Envelope, Content):
        with contextlib.suppress(DecodeError):
            cls.decode(data)


def test_strictness() -> None:
    c = Content(b"k" * 32, b"body").encode()
    assert Content.decode(c).body == b"body"
    with pytest.raises(DecodeError, match="version"):
        Content.decode(b"\x09" + c[1:])
    with pytest.raises(DecodeError, match="trailing"):
        Content.decode(c + b"\x00")
    with pytest.raises(DecodeError, match="truncated"):
        Content.decode(c[:-1])
    r = Reader(Writer().vec(b"x" * 10, 1).getvalue(), "test")
    with pytest.raises(DecodeError, match="outside"):
        r.vec(1, "field", max_len=5)
    with pytest.raises(DecodeError, match="boolean"):
        Reader(b"\x02", "t").boolean()
    with pytest.raises(ValueError):
        Writer().u8(256)
    with pytest.raises(ValueError):
        Writer().vec(b"x" * 6, 1, max_len=5)
