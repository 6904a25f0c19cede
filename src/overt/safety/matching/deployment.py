"""What wires the matching core into a deployment: parameters from the manifest, the stored
form of an opened image, and the relay's per-account view.

* :func:`psi_params` — the :class:`~overt.safety.matching.psi.PsiParams` (and so the
  :class:`~overt.safety.matching.lsh.LshParams`) that the manifest's enabled
  :class:`~overt.transparency.manifest.MatchingPolicy` fixes. Client and server both derive
  them from the same signed manifest, so they cannot disagree.
* :func:`encode_opened` / :func:`decode_opened` — a versioned record of an
  :class:`~overt.safety.matching.psi.OpenedImage` and the device that sent it
  (:func:`opened_device`), what the server keeps per account until the threshold is reached
  (storage keeps it as opaque bytes; never pickle).
* :func:`evaluate_account` — rebuild :class:`~overt.safety.matching.psi.AccountMatches` from
  stored records and evaluate it.

This module never sees sockets, SQL or clocks.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from overt.errors import DecodeError, LocalError
from overt.safety.matching import dhf
from overt.safety.matching.limits import MAX_PAYLOAD_BYTES
from overt.safety.matching.lsh import LshParams
from overt.safety.matching.psi import (
    IMAGE_ID_LEN,
    KEY_LEN,
    AccountMatches,
    OpenedImage,
    PsiParams,
    ThresholdOutcome,
)
from overt.safety.matching.signals import SIGNAL_TYPES
from overt.transparency.manifest import MatchingPolicy
from overt.wire import Reader, Writer

OPENED_RECORD_VERSION: Final = 2
"""Version 2 names the sending device (the account's devices share one collection); version 1
records (per-device collections, never released) are read with device 0."""

MATCH_RULE: Final = "known_content_match"
"""The moderation queue label of a re-checked known-content match (a signal item whose detail
names the subject and image; the console shows its visual derivative)."""
MATCH_SEVERITY: Final = 9
"""Child safety comes first in the queue, as for reports of that category."""


def psi_params(policy: MatchingPolicy) -> PsiParams:
    """The PSI parameters an enabled matching policy fixes (``LocalError`` if it is off)."""
    if not policy.enabled:
        raise LocalError("known-content matching is off in this manifest")
    p = policy.effective_parameters
    if p.signal_type not in SIGNAL_TYPES:
        raise LocalError(f"signal type {p.signal_type!r} is not implemented by this build")
    lsh = LshParams(p.lsh_keys, p.lsh_bits_per_key, p.lsh_flip_bits, p.lsh_seed)
    return PsiParams(
        threshold=policy.threshold,
        lsh=lsh,
        dhf_width=p.detection_width,
        synthetic_one_in=p.synthetic_one_in,
        generation_images=p.generation_images,
        open_weights=PsiParams(policy.threshold).open_weights[: lsh.vouchers],
    )


def encode_opened(image: OpenedImage, device: int) -> bytes:
    """The stored form of an opened image sent by the account's ``device`` (version 2)."""
    row = dhf.encode_row(image.row)
    return (
        Writer()
        .u8(OPENED_RECORD_VERSION)
        .u32(device)
        .fixed(image.image_id, IMAGE_ID_LEN)
        .fixed(image.table_commitment, 32)
        .u16(image.opened)
        .u32(image.generation)
        .u32(image.x)
        .fixed(image.y.to_bytes(32, "little"), 32)
        .fixed(image.k_img, KEY_LEN)
        .vec(row, 4)
        .vec(image.payload, 4, MAX_PAYLOAD_BYTES + 64)
        .getvalue()
    )


def decode_opened(data: bytes, params: PsiParams) -> OpenedImage:
    """:class:`DecodeError` if ``data`` is not a record for these parameters."""
    r = Reader(data, "opened image record")
    if r.version((1, OPENED_RECORD_VERSION)) >= 2:
        r.u32("device")
    image_id = r.fixed(IMAGE_ID_LEN, "image id")
    commitment = r.fixed(32, "table commitment")
    opened = r.u16("opened")
    generation, x = r.u32("generation"), r.u32("x")
    y = int.from_bytes(r.fixed(32, "y"), "little")
    k_img = r.fixed(KEY_LEN, "image key")
    row = dhf.decode_row(r.vec(4, "row"), params.dhf_width)
    payload = r.vec(4, "payload", MAX_PAYLOAD_BYTES + 64)
    r.finish()
    if row is None:
        raise DecodeError("opened image record: the detection row does not fit the parameters")
    return OpenedImage(image_id, commitment, opened, generation, x, y, row, k_img, payload)


def opened_device(data: bytes) -> int:
    """The device that sent the image of a stored record (0 if the record does not say)."""
    r = Reader(data, "opened image record")
    return r.u32("device") if r.version((1, OPENED_RECORD_VERSION)) >= 2 else 0


def evaluate_account(records: Iterable[bytes], params: PsiParams) -> ThresholdOutcome:
    """Rebuild an account's collection from its stored records and evaluate it."""
    matches = AccountMatches(params)
    for record in records:
        matches.add(decode_opened(record, params))
    return matches.evaluate()


__all__ = [
    "MATCH_RULE",
    "MATCH_SEVERITY",
    "OPENED_RECORD_VERSION",
    "decode_opened",
    "encode_opened",
    "evaluate_account",
    "opened_device",
    "psi_params",
]
