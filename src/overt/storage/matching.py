"""The known-content matching store: published list versions and per-account opened images.

One small Protocol, :class:`MatchingStore`, in :class:`~overt.storage.interfaces.Storage` as
``matching`` (``None`` on a backend without it), with an in-memory reference, SQLite and
PostgreSQL (tables of migration ``_MATCHING``):

* **List versions** — what the operator published (``overt matching publish``): the version
  number, the table commitment, the encoded blinded table, the delta from the previous version
  (if any), the plaintext list (for the server's re-check), and where its commitment sits in
  the transparency log. Published once, never changed.
* **Opened images** — per *subject* (an opaque key; the server uses the account id), the
  records of the images whose vouchers opened, each under its image id, and — once the
  account crossed its threshold — the image's revealed payload (after which it is not
  revealed again). At most ``limit`` per subject (the caller's bound), so a client cannot make
  the server keep more.

Everything is opaque bytes: this layer never parses a table, a list or a record. The
conventions of :mod:`overt.storage.interfaces` hold: every call is atomic, ``None`` means
absent, an exception means failure, times come from the caller.

This module knows no SQL and no matching format.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Protocol

from overt.errors import LimitExceeded
from overt.storage._argcheck import fixed, int_range, size
from overt.storage.errors import InvalidArgument
from overt.storage.limits import ACCOUNT_ID_MAX_LEN, INT64_MAX

#: Bytes of a table commitment and of an image id.
COMMITMENT_LEN: Final = 32
IMAGE_ID_LEN: Final = 16
#: Largest stored table (the 10^6-hash table is about 0.6 GB; this leaves room).
TABLE_MAX_LEN: Final = 2 * 1024 * 1024 * 1024 - 1
#: Largest stored plaintext list (10^7 hashes of 32 bytes).
HASHES_MAX_LEN: Final = 320_000_000
#: Largest opened-image record.
OPENED_RECORD_MAX_LEN: Final = 128 * 1024
#: Longest subject key (the server uses the account id; room is left for a suffix).
SUBJECT_MAX_LEN: Final = ACCOUNT_ID_MAX_LEN + 8
#: Most opened images one subject may hold (the caller passes a bound at most this).
OPENED_PER_SUBJECT_MAX: Final = 1 << 16
#: Most payloads revealed in one call.
REVEAL_BATCH_MAX: Final = 4096
#: Largest revealed payload.
PAYLOAD_MAX_LEN: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class ListVersion:
    """One published list version (every field opaque to storage)."""

    version: int
    commitment: bytes
    table: bytes = field(repr=False)
    hashes: bytes = field(repr=False)
    log_index: int
    created_ms: int
    delta: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class OpenedRecord:
    """An opened image of a subject: its id, its record, and its payload once revealed."""

    image_id: bytes
    record: bytes = field(repr=False)
    revealed: bytes | None = field(default=None, repr=False)


class MatchingStore(Protocol):
    """List versions and opened images (see the module docstring)."""

    async def publish(self, version: ListVersion) -> None:
        """Store a new list version. ``AlreadyExists`` (nothing stored) if the version number
        or the commitment is stored already."""
        ...

    async def latest(self) -> ListVersion | None:
        """The highest version, or ``None``."""
        ...

    async def version(self, number: int) -> ListVersion | None:
        """That version, or ``None``."""
        ...

    async def commitments(self) -> tuple[tuple[int, bytes], ...]:
        """``(version, commitment)`` of every version, oldest first (no tables)."""
        ...

    async def add_opened(self, subject: bytes, image_id: bytes, record: bytes, limit: int) -> bool:
        """Keep ``record`` under ``(subject, image_id)``, unrevealed; False (nothing stored) if
        that image id is stored for the subject or the subject holds ``limit`` records."""
        ...

    async def opened(self, subject: bytes) -> tuple[OpenedRecord, ...]:
        """The subject's records in the order they were added."""
        ...

    async def reveal(self, subject: bytes, payloads: Mapping[bytes, bytes]) -> None:
        """Record the revealed payload of each image id in ``payloads`` stored for the subject
        (others are ignored; a payload already recorded is kept)."""
        ...


# ----------------------------------------------------------------------------- checks


def check_version_number(number: int) -> None:
    int_range(number, (1 << 32) - 1, "a list version")


def check_list_version(v: ListVersion) -> None:
    if not isinstance(v, ListVersion):
        raise InvalidArgument("expected a ListVersion")
    check_version_number(v.version)
    fixed(v.commitment, COMMITMENT_LEN, "a table commitment")
    size(v.table, TABLE_MAX_LEN, "a table")
    if not v.table:
        raise InvalidArgument("a table is not empty")
    size(v.hashes, HASHES_MAX_LEN, "a hash list")
    if v.delta is not None:
        size(v.delta, TABLE_MAX_LEN, "a delta")
    int_range(v.log_index, INT64_MAX, "a log index")
    int_range(v.created_ms, INT64_MAX, "a time")


def check_subject(subject: bytes) -> None:
    if not isinstance(subject, bytes) or not 1 <= len(subject) <= SUBJECT_MAX_LEN:
        raise InvalidArgument(f"a subject is 1..{SUBJECT_MAX_LEN} bytes")


def check_opened(subject: bytes, image_id: bytes, record: bytes, limit: int) -> None:
    check_subject(subject)
    fixed(image_id, IMAGE_ID_LEN, "an image id")
    size(record, OPENED_RECORD_MAX_LEN, "an opened-image record")
    if not record:
        raise InvalidArgument("an opened-image record is not empty")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidArgument("the opened-image bound is a positive integer")
    if limit > OPENED_PER_SUBJECT_MAX:
        raise LimitExceeded(f"at most {OPENED_PER_SUBJECT_MAX} opened images per subject")


def check_reveal(subject: bytes, payloads: Mapping[bytes, bytes]) -> None:
    check_subject(subject)
    if len(payloads) > REVEAL_BATCH_MAX:
        raise LimitExceeded(f"at most {REVEAL_BATCH_MAX} payloads per call")
    for image_id, payload in payloads.items():
        fixed(image_id, IMAGE_ID_LEN, "an image id")
        size(payload, PAYLOAD_MAX_LEN, "a payload")


__all__ = [
    "ListVersion",
    "MatchingStore",
    "OpenedRecord",
]
