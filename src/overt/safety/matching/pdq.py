"""PDQ perceptual hashing as the client (and the list tooling) does it: decode, trim, hash.

The pipeline, for every image a client sends and for every image a list is built from:

1. **Decode** (:func:`decode_image`, Pillow): to 8-bit RGB; refuses more than
   :data:`~overt.safety.matching.limits.MAX_IMAGE_PIXELS` pixels before decoding them.
2. **Trim uniform borders** (:func:`trim_uniform_borders`): rows and columns at each edge that
   are flat (luma range within :data:`TRIM_TOLERANCE`) and of the edge's colour are cut —
   letterboxing bars, screenshot margins — at most :data:`MAX_TRIM_FRACTION` of each side.
3. **Reference down-scaling** (:func:`reference_downscale`): like the reference tool
   (``pdq/cpp/io/pdqio.cpp``), an image larger than 512 in either dimension is resized to
   512×512 by nearest neighbour, because the reference's two-pass Jarosz filter is meant for that
   size. It also makes hashing a 1024×1024 image cost a quarter of what it would.
4. **PDQ** (the reference C++ through the ``pdqhash`` binding): luma, Jarosz filters to 64×64,
   a 16×16 DCT, each coefficient compared to the median → 256 bits, and the quality (0..100,
   the image-domain gradient measure of the reference).

The result (:class:`PdqDigest`) keeps, besides hash and quality, each bit's **margin**
``|coefficient − median|``: a small margin is a bit that a re-encoding may flip, which the
locality-sensitive keys of :mod:`~overt.safety.matching.lsh` probe.

Conventions: a :class:`PdqHash` is 32 bytes, bit 0 the most significant bit of byte 0, so
``hash.hex()`` is the reference's 64-character hex string. Distance is Hamming distance; two
hashes *match* at distance ≤ :data:`MATCH_DISTANCE` (31, the reference's recommendation), and
hashes of quality below :data:`MIN_QUALITY` (50) are not matched at all.

This module never sees keys, lists, the network or a clock.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Final, Self

import numpy as np
from numpy.typing import NDArray

from overt.errors import DecodeError
from overt.safety.matching._pdqhash import pdq_float
from overt.safety.matching.limits import (
    MAX_IMAGE_BYTES,
    MAX_IMAGE_PIXELS,
)

RgbArray = NDArray[np.uint8]
"""An ``(height, width, 3)`` uint8 RGB image."""

PDQ_BITS: Final = 256
PDQ_BYTES: Final = 32
MATCH_DISTANCE: Final = 31
"""Largest Hamming distance at which two PDQ hashes are the same picture (reference value)."""
MIN_QUALITY: Final = 50
"""Hashes of lower quality are neither listed nor matched (the reference discards ≤ 49)."""
REFERENCE_DIM: Final = 512
"""The reference tool resizes larger images to this square before hashing."""
MIN_HASHABLE_DIM: Final = 5
"""The reference gives quality 0 to images smaller than this in either dimension."""
TRIM_TOLERANCE: Final = 10
"""A border row or column is flat if its luma spans at most this many levels (of 255) and its
mean is within this of the outermost row or column (JPEG leaves a little noise on bars)."""
MAX_TRIM_FRACTION: Final = 0.45
"""At most this fraction of the height (width) is trimmed from each of top and bottom (sides)."""
TRIM_SAMPLE: Final = 256
"""Trimming looks at a grid of about this many rows and columns (it never needs more)."""
DERIVATIVE_SIDE: Final = 64
"""The visual derivative a matching payload carries: 64×64 grayscale, 4096 bytes."""
DERIVATIVE_BYTES: Final = DERIVATIVE_SIDE * DERIVATIVE_SIDE

_LUMA: Final = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass(frozen=True, slots=True)
class PdqHash:
    """A 256-bit PDQ hash; ``hex()`` is the reference's 64-hex-digit form."""

    raw: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.raw, bytes) or len(self.raw) != PDQ_BYTES:
            raise DecodeError("a PDQ hash is 32 bytes")

    @classmethod
    def from_hex(cls, text: str) -> Self:
        text = text.strip().lower()
        if len(text) != 2 * PDQ_BYTES or not all(c in "0123456789abcdef" for c in text):
            raise DecodeError("a PDQ hash is 64 hexadecimal digits")
        return cls(bytes.fromhex(text))

    @classmethod
    def from_bits(cls, bits: NDArray[np.uint8]) -> Self:
        if bits.shape != (PDQ_BITS,):
            raise ValueError("a PDQ hash has 256 bits")
        return cls(np.packbits(bits.astype(np.uint8)).tobytes())

    def hex(self) -> str:
        return self.raw.hex()

    def bits(self) -> NDArray[np.uint8]:
        """The 256 bits, bit 0 first (the most significant bit of the hex string)."""
        return np.unpackbits(np.frombuffer(self.raw, dtype=np.uint8))

    def distance(self, other: PdqHash) -> int:
        return hamming(self.raw, other.raw)

    def __repr__(self) -> str:
        return f"PdqHash({self.raw.hex()})"


def hamming(a: bytes, b: bytes) -> int:
    """Hamming distance of two equal-length byte strings."""
    if len(a) != len(b):
        raise ValueError("hamming distance of strings of different lengths")
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).bit_count()


@dataclass(frozen=True, slots=True, eq=False)
class PdqDigest:
    """What hashing one image gives: the hash, its quality and each bit's margin."""

    hash: PdqHash
    quality: int
    margins: NDArray[np.float64] = field(repr=False)
    """``|coefficient − median|`` per bit, bit 0 first: small means easily flipped."""
    trimmed: tuple[int, int, int, int] = (0, 0, 0, 0)
    """Pixels trimmed from (top, bottom, left, right)."""

    @property
    def hashable(self) -> bool:
        """Whether the quality gate lets this hash be matched."""
        return self.quality >= MIN_QUALITY


# ----------------------------------------------------------------------------- pipeline


def decode_image(data: bytes) -> RgbArray:
    """Decode JPEG/PNG/WebP/... bytes to RGB with Pillow (imported on first use).

    :class:`DecodeError` for anything Pillow cannot read, a bomb over
    :data:`MAX_IMAGE_PIXELS`, or more than :data:`MAX_IMAGE_BYTES` of input.
    """
    if len(data) > MAX_IMAGE_BYTES:
        raise DecodeError("image larger than MAX_IMAGE_BYTES")
    from PIL import Image, UnidentifiedImageError  # noqa: PLC0415 - optional heavy import

    try:
        with Image.open(io.BytesIO(data)) as img:
            w, h = img.size
            if w * h > MAX_IMAGE_PIXELS:
                raise DecodeError("image has more than MAX_IMAGE_PIXELS pixels")
            rgb = img.convert("RGB")
            return np.asarray(rgb, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise DecodeError("not a decodable image") from None


def _check_rgb(rgb: RgbArray) -> None:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8:
        raise ValueError("an image is a uint8 numpy array")
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError("an image has shape (height, width, 3)")
    if rgb.shape[0] * rgb.shape[1] > MAX_IMAGE_PIXELS:
        raise DecodeError("image has more than MAX_IMAGE_PIXELS pixels")


def luma(rgb: RgbArray) -> NDArray[np.float32]:
    """Rec. 601 luma, as the reference computes it."""
    out: NDArray[np.float32] = rgb.astype(np.float32) @ _LUMA
    return out


def _flat_run(lo: NDArray[np.float32], hi: NDArray[np.float32], mean: NDArray[np.float32]) -> int:
    """How many lines from index 0 on are flat and of line 0's colour."""
    flat = (hi - lo <= TRIM_TOLERANCE) & (np.abs(mean - mean[0]) <= TRIM_TOLERANCE)
    if not flat[0]:
        return 0
    breaks = np.flatnonzero(~flat)
    return int(breaks[0]) if breaks.size else int(flat.size)


def trim_uniform_borders(rgb: RgbArray) -> tuple[RgbArray, tuple[int, int, int, int]]:
    """Cut flat single-colour borders; returns the view and (top, bottom, left, right).

    Works on a grid of about :data:`TRIM_SAMPLE` lines, so the cut is exact to within one grid
    step (the few bar pixels that can remain do not move a PDQ hash). An image that is flat all
    over is returned whole (its quality is 0 anyway).
    """
    _check_rgb(rgb)
    h, w = rgb.shape[:2]
    step = max(1, min(h, w) // TRIM_SAMPLE)
    g = luma(rgb[::step, ::step])
    row_lo, row_hi, row_mean = g.min(axis=1), g.max(axis=1), g.mean(axis=1)
    col_lo, col_hi, col_mean = g.min(axis=0), g.max(axis=0), g.mean(axis=0)
    runs = (
        _flat_run(row_lo, row_hi, row_mean),
        _flat_run(row_lo[::-1], row_hi[::-1], row_mean[::-1]),
        _flat_run(col_lo, col_hi, col_mean),
        _flat_run(col_lo[::-1], col_hi[::-1], col_mean[::-1]),
    )
    if runs[0] >= g.shape[0] or runs[2] >= g.shape[1]:
        return rgb, (0, 0, 0, 0)  # flat all over

    def px(run: int, size: int) -> int:
        # Grid line run-1 (pixel (run-1)*step) was flat; cut up to just past it.
        cut = 0 if run == 0 else (run - 1) * step + 1
        return min(cut, int(size * MAX_TRIM_FRACTION))

    top, bottom = px(runs[0], h), px(runs[1], h)
    left, right = px(runs[2], w), px(runs[3], w)
    if h - top - bottom < MIN_HASHABLE_DIM or w - left - right < MIN_HASHABLE_DIM:
        return rgb, (0, 0, 0, 0)
    return rgb[top : h - bottom, left : w - right], (top, bottom, left, right)


def reference_downscale(rgb: RgbArray) -> RgbArray:
    """Nearest-neighbour resize to 512×512 if larger in either dimension (as the reference)."""
    h, w = rgb.shape[:2]
    if h <= REFERENCE_DIM and w <= REFERENCE_DIM:
        return rgb
    rows = (np.arange(REFERENCE_DIM) * h // REFERENCE_DIM).astype(np.intp)
    cols = (np.arange(REFERENCE_DIM) * w // REFERENCE_DIM).astype(np.intp)
    out: RgbArray = rgb[rows][:, cols]
    return out


def hash_rgb(rgb: RgbArray, *, trim: bool = True) -> PdqDigest:
    """PDQ of an RGB image through the whole pipeline (trim, reference down-scaling, hash)."""
    _check_rgb(rgb)
    box = (0, 0, 0, 0)
    if trim:
        rgb, box = trim_uniform_borders(rgb)
    small = np.ascontiguousarray(reference_downscale(rgb))
    h, w = small.shape[:2]
    if h < MIN_HASHABLE_DIM or w < MIN_HASHABLE_DIM:
        zero = np.zeros(PDQ_BITS, dtype=np.float64)
        return PdqDigest(PdqHash(bytes(PDQ_BYTES)), 0, zero, box)
    coefficients, quality = pdq_float(small)
    median = float(np.median(coefficients))
    bits = (coefficients > median).astype(np.uint8)
    margins = np.abs(coefficients - median)
    return PdqDigest(PdqHash.from_bits(bits), quality, margins, box)


def hash_image(data: bytes, *, trim: bool = True) -> PdqDigest:
    """:func:`decode_image` then :func:`hash_rgb`."""
    return hash_rgb(decode_image(data), trim=trim)


def visual_derivative(rgb: RgbArray) -> bytes:
    """A 64×64 grayscale thumbnail (row-major, 4096 bytes) by area averaging.

    This is all a moderator is shown of a matched image before deciding whether to look
    further; it is made on the client and only leaves it inside a matching payload.
    """
    _check_rgb(rgb)
    g = luma(reference_downscale(rgb))
    h, w = g.shape
    k = max(1, -(-max(h, w) // DERIVATIVE_SIDE))
    n = DERIVATIVE_SIDE * k
    grid = g[(np.arange(n) * h // n)[:, None], (np.arange(n) * w // n)[None, :]]
    blocks = grid.reshape(DERIVATIVE_SIDE, k, DERIVATIVE_SIDE, k).mean(axis=(1, 3))
    out: bytes = np.clip(np.rint(blocks), 0, 255).astype(np.uint8).tobytes()
    return out
