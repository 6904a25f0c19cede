"""Accountable lists: import, the signed and logged commitment, and the client's check.

**Import.** A list arrives as one of the usual formats (:class:`ListFormat`):

* ``pdq-hex`` — one 64-hex-digit PDQ hash per line, optionally followed by ``,quality`` and
  anything else (so the reference ``pdq-photo-hasher`` output ``hash,quality,filename`` reads as
  is); ``#`` comments and blank lines are skipped;
* ``te-csv`` — the CSV of ThreatExchange's ``threatexchange dataset -P --csv`` (header
  ``signal_type,signal_str,collab,category,tags``); rows of another signal type are counted and
  skipped;
* ``hma-csv`` — the header-less CSV of HMA's bank serialization
  (``indicator,indicator_id,first_descriptor_id,added_on,labels``) of ``HASH_PDQ`` indicators.

Hashes whose quality is given and below 50 are dropped (the quality gate applies on both
sides); duplicates are merged. The result is a :class:`HashList` with a canonical digest.

**Governance.** Each list version is one :class:`~overt.transparency.entries.MatchingListCommitment`
in the transparency log: the table commitment, the plaintext list's digest, the hash count, the
previous version's commitment, and Ed25519 signatures of child-safety organisations over its
``statement()``. An organisation signs only after checking the provider's table opening against
the list it vetted (:func:`overt.safety.matching.table.verify_opening`).

**The client's check** (:func:`verify_table`) before it hashes anything against a table: the
manifest turns matching on; at least ``max(quorum, 2)`` distinct organisations the manifest
names signed the logged statement; the downloaded table's commitment equals the logged one;
its LSH parameters are the ones the client pins; the version does not go back. Any failure is a
:class:`ListRefused` that says which check failed — the client then does not scan, and can tell
its user why. Only a :class:`VerifiedTable` can be used to build vouchers.

This module never sees the network, the log's storage or a clock: entries and bytes in,
verdicts out. Checking that the entry is *in* the log (inclusion and consistency proofs) is the
log client's job and comes before this.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from overt.crypto import Ed25519PrivateKey, Ed25519PublicKey, sha256
from overt.errors import DecodeError, InvalidMessage, LocalError
from overt.safety.matching.errors import ListImportError, ListRefused, RefusalReason
from overt.safety.matching.limits import MAX_LIST_HASHES, MAX_LIST_LINE
from overt.safety.matching.lsh import LshParams, list_keys
from overt.safety.matching.pdq import MIN_QUALITY, PdqHash
from overt.safety.matching.table import BlindedTable
from overt.transparency.entries import MatchingListCommitment
from overt.transparency.manifest import MatchingPolicy

MIN_LIST_SIGNERS: Final = 2
"""A list is used only if at least this many independent organisations signed it, whatever a
manifest's quorum says."""
LIST_DIGEST_LABEL: Final = b"Overt_PDQ_list_v1"
NO_PREVIOUS: Final = bytes(32)

TE_HEADER: Final = ("signal_type", "signal_str")
TE_PDQ: Final = "pdq"


class ListFormat(StrEnum):
    PDQ_HEX = "pdq-hex"
    TE_CSV = "te-csv"
    HMA_CSV = "hma-csv"


@dataclass(frozen=True, slots=True)
class ImportReport:
    accepted: int
    duplicates: int
    low_quality: int
    other_signal_types: int


@dataclass(frozen=True, slots=True)
class HashList:
    """A plaintext list version: sorted, distinct PDQ hashes."""

    hashes: tuple[PdqHash, ...]

    def __post_init__(self) -> None:
        raws = [h.raw for h in self.hashes]
        if raws != sorted(set(raws)):
            raise LocalError("a hash list is sorted and without duplicates")
        if len(raws) > MAX_LIST_HASHES:
            raise LocalError("more than MAX_LIST_HASHES hashes")

    @classmethod
    def of(cls, hashes: list[PdqHash]) -> HashList:
        return cls(tuple(sorted({h.raw: h for h in hashes}.values(), key=lambda h: h.raw)))

    def digest(self) -> bytes:
        """``SHA-256("Overt_PDQ_list_v1" ‖ count u32 ‖ hashes)``: what organisations vet."""
        count = len(self.hashes).to_bytes(4, "big")
        return sha256(LIST_DIGEST_LABEL + count + b"".join(h.raw for h in self.hashes))

    def keys(self, lsh: LshParams) -> set[bytes]:
        """Every locality-sensitive key of every hash (the table's content)."""
        return {k for h in self.hashes for k in list_keys(h, lsh)}

    def __len__(self) -> int:
        return len(self.hashes)


# ----------------------------------------------------------------------------- import


def detect_format(text: str) -> ListFormat:
    """Guess the format from the first non-comment line."""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = [f.strip().lower() for f in line.split(",")]
        if fields[: len(TE_HEADER)] == list(TE_HEADER):
            return ListFormat.TE_CSV
        if len(fields) >= 2 and len(fields[1]) > 3 and fields[1].isdigit():
            return ListFormat.HMA_CSV  # an indicator id, not a 0..100 quality
        return ListFormat.PDQ_HEX
    return ListFormat.PDQ_HEX


def _quality(text: str, line_no: int) -> int:
    try:
        q = int(text)
    except ValueError:
        raise ListImportError(line_no, "quality is not an integer") from None
    if not 0 <= q <= 100:
        raise ListImportError(line_no, "quality is not 0..100")
    return q


def _hash(text: str, line_no: int) -> PdqHash:
    try:
        return PdqHash.from_hex(text)
    except DecodeError:
        raise ListImportError(line_no, "not a 64-hex-digit PDQ hash") from None


def import_list(text: str, fmt: ListFormat | None = None) -> tuple[HashList, ImportReport]:
    """Parse a list file; :class:`ListImportError` names the first bad line."""
    fmt = fmt or detect_format(text)
    hashes: list[PdqHash] = []
    low = other = 0
    rows = csv.reader(io.StringIO(text))
    header_seen = False
    for line_no, row in enumerate(rows, start=1):
        if sum(len(f) for f in row) > MAX_LIST_LINE:
            raise ListImportError(line_no, "line longer than MAX_LIST_LINE")
        fields = [f.strip() for f in row]
        if not fields or not any(fields) or fields[0].startswith("#"):
            continue
        if fmt is ListFormat.TE_CSV:
            if not header_seen:
                if [f.lower() for f in fields[: len(TE_HEADER)]] != list(TE_HEADER):
                    raise ListImportError(line_no, "expected the ThreatExchange CSV header")
                header_seen = True
                continue
            if len(fields) < len(TE_HEADER):
                raise ListImportError(line_no, "missing signal_str")
            if fields[0].lower() != TE_PDQ:
                other += 1
                continue
            hashes.append(_hash(fields[1], line_no))
        elif fmt is ListFormat.HMA_CSV:
            if len(fields) < 2:
                raise ListImportError(line_no, "expected indicator,indicator_id,...")
            hashes.append(_hash(fields[0], line_no))
        else:
            h = _hash(fields[0], line_no)
            if len(fields) > 1 and fields[1] and _quality(fields[1], line_no) < MIN_QUALITY:
                low += 1
                continue
            hashes.append(h)
        if len(hashes) > MAX_LIST_HASHES:
            raise ListImportError(line_no, "more than MAX_LIST_HASHES hashes")
    result = HashList.of(hashes)
    return result, ImportReport(len(result), len(hashes) - len(result), low, other)


# ----------------------------------------------------------------------------- signing


def sign_statement(key: Ed25519PrivateKey, statement: bytes) -> tuple[bytes, bytes]:
    """An organisation's ``(public key, signature)`` over a list statement."""
    return key.public_key.raw, key.sign(statement)


def commitment_entry(
    *,
    list_id: bytes,
    version: int,
    hash_list: HashList,
    table: BlindedTable,
    previous: bytes = NO_PREVIOUS,
    signers: list[Ed25519PrivateKey],
) -> MatchingListCommitment:
    """Build the log entry of a list version signed by ``signers`` (for tools and tests: real
    organisations each sign :meth:`~MatchingListCommitment.statement` on their own machine)."""
    unsigned = MatchingListCommitment(
        list_id,
        version,
        len(hash_list),
        table.commitment(),
        hash_list.digest(),
        previous,
        ((bytes(32), bytes(64)),),
    )
    statement = unsigned.statement()
    sigs = tuple(sorted(sign_statement(k, statement) for k in signers))
    return MatchingListCommitment(
        list_id, version, len(hash_list), unsigned.table_commitment, unsigned.list_digest,
        previous, sigs,
    )  # fmt: skip


# ----------------------------------------------------------------------------- the client's check


@dataclass(frozen=True, slots=True, eq=False)
class VerifiedTable:
    """A table the client checked against its logged, sufficiently signed commitment."""

    table: BlindedTable
    entry: MatchingListCommitment
    signed_by: tuple[str, ...]
    """Names (from the manifest) of the organisations whose signatures verified."""

    @property
    def commitment(self) -> bytes:
        return self.entry.table_commitment


def valid_signers(entry: MatchingListCommitment, policy: MatchingPolicy) -> tuple[str, ...]:
    """Names of the manifest's list signers with a valid signature on ``entry``."""
    statement = entry.statement()
    by_key: dict[bytes, tuple[str, Ed25519PublicKey]] = {
        s.key.raw: (s.name, s.key) for s in policy.list_signers
    }
    names = []
    for key, signature in entry.signatures:
        found = by_key.get(key)
        if found is None:
            continue
        name, public = found
        try:
            public.verify(signature, statement)
        except InvalidMessage:
            continue
        names.append(name)
    return tuple(sorted(set(names)))


def verify_table(
    table: BlindedTable,
    entry: MatchingListCommitment,
    policy: MatchingPolicy,
    *,
    lsh: LshParams,
    pinned_version: int | None = None,
) -> VerifiedTable:
    """The client's check before scanning; :class:`ListRefused` says what failed.

    ``entry`` is the logged commitment (its inclusion in the log already verified), ``lsh`` the
    parameters the client pins, ``pinned_version`` the newest version it used before.
    """
    if not policy.enabled:
        raise ListRefused(RefusalReason.MATCHING_OFF, "the manifest turns matching off")
    required = max(policy.list_signer_quorum, MIN_LIST_SIGNERS)
    signed_by = valid_signers(entry, policy)
    if len(signed_by) < required:
        who = ", ".join(signed_by) or "none"
        raise ListRefused(
            RefusalReason.TOO_FEW_SIGNERS,
            f"list version {entry.version} is signed by {len(signed_by)} of the {required} "
            f"organisations required (valid signatures from: {who})",
        )
    if pinned_version is not None and entry.version < pinned_version:
        raise ListRefused(
            RefusalReason.ROLLBACK,
            f"list version {entry.version} is older than version {pinned_version} already used",
        )
    header = table.header
    if header.list_id != entry.list_id or header.version != entry.version:
        raise ListRefused(
            RefusalReason.TABLE_MISMATCH,
            "the downloaded table is for another list or version than the logged commitment",
        )
    if table.commitment() != entry.table_commitment:
        raise ListRefused(
            RefusalReason.TABLE_MISMATCH,
            "the downloaded table does not match the commitment in the transparency log",
        )
    if header.lsh != lsh:
        raise ListRefused(
            RefusalReason.PARAMETERS,
            "the table's locality-sensitive key parameters are not the ones this client pins",
        )
    return VerifiedTable(table, entry, signed_by)
