"""decode_context is the exact inverse of the protocol's context and group_context."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from overt.access import DirectContext, GroupContext, decode_context
from overt.errors import DecodeError
from overt.protocol import access
from overt.wire import Address

addresses = st.builds(
    Address, st.binary(min_size=1, max_size=64), st.integers(min_value=0, max_value=2**32 - 1)
)
u32 = st.integers(min_value=0, max_value=2**32 - 1)
ts = st.integers(min_value=0, max_value=2**48)


@given(u32, addresses, addresses, st.binary(min_size=32, max_size=32),
       st.binary(min_size=16, max_size=16), ts)  # fmt: skip
def test_direct_round_trip(
    epoch: int, s: Address, r: Address, cid: bytes, mid: bytes, t: int
) -> None:
    ctx = access.context(epoch, s, r, cid, mid, t)
    got = decode_context(ctx)
    assert got == DirectContext(epoch, s, r, cid, mid, t // access.DAY_MS)
    assert got.encode() == ctx
    assert got.accounts == {s.account, r.account}


@given(u32, addresses, st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32),
       st.binary(min_size=16, max_size=16), ts)  # fmt: skip
def test_group_round_trip(
    epoch: int, s: Address, gid: bytes, msh: bytes, mid: bytes, t: int
) -> None:
    ctx = access.group_context(epoch, s, gid, msh, mid, t)
    got = decode_context(ctx)
    assert got == GroupContext(epoch, s, gid, msh, mid, t // access.DAY_MS)
    assert got.encode() == ctx


def test_strict() -> None:
    ctx = access.context(1, Address(b"a", 1), Address(b"b", 2), bytes(32), bytes(16), 0)
    for bad in (ctx[:-1], ctx + b"\x00", b"Overt_AF_ctx_v2" + ctx[15:], b"", b"x" * 300):
        with pytest.raises(DecodeError):
            decode_context(bad)
    empty_account = ctx[:19] + b"\x00" + ctx[21:]
    with pytest.raises(DecodeError):
        decode_context(empty_account)
