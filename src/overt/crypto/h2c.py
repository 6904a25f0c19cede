"""Hashing to ristretto255: RFC 9380 ``expand_message_xmd`` with SHA-512, and its two uses.

* :func:`expand_message_xmd` is RFC 9380 §5.3.1 instantiated with SHA-512 (b_in_bytes = 64,
  s_in_bytes = 128), including the §5.3.3 rule for domain separation tags longer than 255 bytes.
* :func:`hash_to_group` is RFC 9380 Appendix B ``hash_to_ristretto255``: expand to 64 bytes,
  then the RFC 9496 §4.3.4 one-way map. With ``expand_message_xmd``/SHA-512 this is the suite
  ``ristretto255_XMD:SHA-512_R255MAP_RO_``, and RFC 9497's ``HashToGroup`` for
  ristretto255-SHA512.
* :func:`hash_to_scalar` is RFC 9497 §4.1's ``HashToScalar`` for ristretto255-SHA512: expand to
  64 bytes and reduce the little-endian integer modulo the group order.

The caller chooses the domain separation tag; this module knows no protocol, no key, no
context string and no Overt message: bytes and a tag in, a group element or a scalar out.
"""

from __future__ import annotations

from typing import Final

from overt.crypto._hash import sha512
from overt.crypto._ristretto import WIDE_LEN, Point, Scalar

#: SHA-512 output length (RFC 9380 ``b_in_bytes``).
B_IN_BYTES: Final = 64
#: SHA-512 input block length (RFC 9380 ``s_in_bytes``).
S_IN_BYTES: Final = 128
#: Longest domain separation tag used as is (it is length-prefixed by one byte).
MAX_DST_LEN: Final = 255
#: Prefix under which an oversize tag is hashed down (RFC 9380 §5.3.3).
OVERSIZE_DST_PREFIX: Final = b"H2C-OVERSIZE-DST-"
#: ``expand_message_xmd`` produces at most 255 blocks (``ell <= 255``).
MAX_EXPAND_BLOCKS: Final = 255
#: ... and at most 65535 bytes (``len_in_bytes`` is encoded on two bytes).
MAX_EXPAND_LEN: Final = 0xFFFF
#: Bytes expanded for one ristretto255 element or scalar (RFC 9380 App. B, RFC 9497 §4.1).
UNIFORM_LEN: Final = WIDE_LEN

_Z_PAD: Final = bytes(S_IN_BYTES)


def _dst_prime(dst: bytes) -> bytes:
    if len(dst) > MAX_DST_LEN:
        dst = sha512(OVERSIZE_DST_PREFIX + dst)
    return dst + bytes((len(dst),))


def expand_message_xmd(msg: bytes, dst: bytes, len_in_bytes: int) -> bytes:
    """RFC 9380 §5.3.1 ``expand_message_xmd`` with SHA-512.

    ``len_in_bytes`` must be between 1 and 65535 and need at most 255 SHA-512 blocks; asking for
    more (or less) is a programming error and raises :class:`ValueError`.
    """
    ell = -(-len_in_bytes // B_IN_BYTES)
    if not 0 < len_in_bytes <= MAX_EXPAND_LEN or ell > MAX_EXPAND_BLOCKS:
        raise ValueError("expand_message_xmd output length out of range")
    dst_prime = _dst_prime(dst)
    b_0 = sha512(_Z_PAD + msg + len_in_bytes.to_bytes(2, "big") + b"\x00" + dst_prime)
    b_i = sha512(b_0 + b"\x01" + dst_prime)
    blocks = [b_i]
    for i in range(2, ell + 1):
        chained = bytes(x ^ y for x, y in zip(b_0, b_i, strict=True))
        b_i = sha512(chained + bytes((i,)) + dst_prime)
        blocks.append(b_i)
    return b"".join(blocks)[:len_in_bytes]


def hash_to_group(msg: bytes, dst: bytes) -> Point:
    """``hash_to_ristretto255`` (RFC 9380 App. B) with ``expand_message_xmd``/SHA-512."""
    return Point.from_uniform(expand_message_xmd(msg, dst, UNIFORM_LEN))


def hash_to_scalar(msg: bytes, dst: bytes) -> Scalar:
    """RFC 9497 ``HashToScalar`` for ristretto255-SHA512: 64 expanded bytes reduced mod l.

    The result is zero with negligible probability; callers that need a non-zero scalar check.
    """
    return Scalar.from_wide(expand_message_xmd(msg, dst, UNIFORM_LEN))
