"""The matching payload — what the server may read of a real match above threshold — and the
re-check against the plaintext list before anything reaches a moderator.

The payload is fixed-size, so its ciphertext says nothing about the image::

    version u8 ‖ pdq[32] ‖ quality u8 ‖ width u16 ‖ height u16 ‖ derivative[4096]

``derivative`` is the client's 64×64 grayscale thumbnail
(:func:`~overt.safety.matching.pdq.visual_derivative`); ``width``/``height`` the image's size.

**Re-check** (:func:`recheck`). Vouchers open on *key* equality, which locality-sensitive keys
make approximate: an opened image may be farther than distance 31 from every list hash (a
random collision of 40 sampled bits, or a key of a near-duplicate listed image). The server
therefore compares the payload's full PDQ hash with the list (:class:`PdqIndex`) and hands an
image to the moderation queue only if it is within distance 31 of some listed hash and of
quality ≥ 50; the rest are dropped and counted.

This module never sees keys, vouchers or storage.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, Self

import numpy as np
from numpy.typing import NDArray

from overt.errors import DecodeError
from overt.safety.matching.pdq import (
    DERIVATIVE_BYTES,
    MATCH_DISTANCE,
    MIN_QUALITY,
    PDQ_BYTES,
    PdqDigest,
    PdqHash,
    RgbArray,
    visual_derivative,
)
from overt.wire import Reader, Writer

PAYLOAD_VERSION: Final = 1
PAYLOAD_LEN: Final = 1 + PDQ_BYTES + 1 + 2 + 2 + DERIVATIVE_BYTES


@dataclass(frozen=True, slots=True)
class MatchPayload:
    pdq: PdqHash
    quality: int
    width: int
    height: int
    derivative: bytes = field(repr=False)

    def encode(self) -> bytes:
        return (
            Writer()
            .u8(PAYLOAD_VERSION)
            .fixed(self.pdq.raw, PDQ_BYTES)
            .u8(self.quality)
            .u16(min(self.width, 0xFFFF))
            .u16(min(self.height, 0xFFFF))
            .fixed(self.derivative, DERIVATIVE_BYTES)
            .getvalue()
        )

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = Reader(data, "matching payload")
        r.version(PAYLOAD_VERSION)
        pdq = PdqHash(r.fixed(PDQ_BYTES, "pdq"))
        quality = r.u8("quality")
        width, height = r.u16("width"), r.u16("height")
        derivative = r.fixed(DERIVATIVE_BYTES, "derivative")
        r.finish()
        if quality > 100:
            raise DecodeError("matching payload: quality above 100")
        return cls(pdq, quality, width, height, derivative)


def make_payload(rgb: RgbArray, digest: PdqDigest) -> bytes:
    """The payload of one image (the client builds it for every image; it opens rarely)."""
    h, w = rgb.shape[:2]
    return MatchPayload(digest.hash, digest.quality, w, h, visual_derivative(rgb)).encode()


class PdqIndex:
    """Brute-force Hamming search over a plaintext list (numpy; ~10 ms per query at 10^6)."""

    def __init__(self, hashes: Iterable[PdqHash]) -> None:
        raws = [h.raw for h in hashes]
        self._hashes: list[PdqHash] = [PdqHash(r) for r in raws]
        self._words: NDArray[np.uint64] = (
            np.frombuffer(b"".join(raws), dtype=">u8").reshape(len(raws), 4).astype(np.uint64)
            if raws
            else np.zeros((0, 4), np.uint64)
        )

    def nearest(self, h: PdqHash) -> tuple[PdqHash, int] | None:
        if not self._hashes:
            return None
        q = np.frombuffer(h.raw, dtype=">u8").astype(np.uint64)
        x = np.bitwise_xor(self._words, q[None, :])
        d = np.bitwise_count(x).sum(axis=1)
        i = int(np.argmin(d))
        return self._hashes[i], int(d[i])


@dataclass(frozen=True, slots=True)
class ModerationCandidate:
    """An image that passed the re-check, for the moderation queue (a second human look)."""

    image_id: bytes
    payload: MatchPayload
    matched: PdqHash
    distance: int


def recheck(
    revealed: Sequence[tuple[bytes, bytes]], index: PdqIndex
) -> tuple[list[ModerationCandidate], int]:
    """Re-check ``(image_id, payload bytes)`` pairs; returns the candidates and how many were
    dropped (too far, too low quality or malformed)."""
    out: list[ModerationCandidate] = []
    dropped = 0
    for image_id, raw in revealed:
        try:
            payload = MatchPayload.decode(raw)
        except DecodeError:
            dropped += 1
            continue
        best = index.nearest(payload.pdq)
        if payload.quality < MIN_QUALITY or best is None or best[1] > MATCH_DISTANCE:
            dropped += 1
            continue
        out.append(ModerationCandidate(image_id, payload, best[0], best[1]))
    return out, dropped
