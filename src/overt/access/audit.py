"""Recounting lawful access from the public log, as any auditor can.

:func:`audit` reads decoded log entries in log order — warrant commitments, unsealings and
access receipts; other entry types are skipped — and returns an :class:`AuditReport`:

* warrants per court (by court key id) and, per warrant, its receipts, the sum of their counts
  (shares released, over all custodians), the total per custodian and, given the threshold,
  the most messages that can have been decrypted (the ``t``-th largest custodian total: every
  decrypted message needs shares from ``t`` custodians, each of which counted it);
* **flags**, each with the log index of the entry at fault:
  - a receipt with no commitment of its warrant *earlier* in the log (DESIGN §6: there must be
    none — access is logged before it is used),
  - an unsealing with no earlier commitment, or one whose opening does not open it,
  - a second commitment for one warrant id,
  - a warrant past its notification date (``sealed_until``) with no unsealing,
  - with the manifest's :class:`~overt.access.custodian_policy.AccessTrust`: a receipt from a
    custodian, or a commitment by a court key, that the manifest does not list.

What the log cannot show: a warrant's cap and exact targets before unsealing, and anything a
provider never logged (which the witnesses' consistency checks and custodians' refusal to act
without a logged commitment are there to prevent). This module never sees sockets, files or
clocks; ``now`` is a parameter.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum

from overt.access.custodian_policy import AccessTrust
from overt.access.warrant import UnsealedTask, read_opening
from overt.errors import DecodeError, InvalidMessage
from overt.transparency.entries import (
    AccessReceipt,
    Entry,
    WarrantCommitment,
    WarrantUnsealing,
)


class FlagKind(Enum):
    RECEIPT_WITHOUT_WARRANT = "receipt_without_warrant"
    UNSEALING_WITHOUT_COMMITMENT = "unsealing_without_commitment"
    UNSEALING_MISMATCH = "unsealing_mismatch"
    DUPLICATE_COMMITMENT = "duplicate_commitment"
    OVERDUE_UNSEALING = "overdue_unsealing"
    UNKNOWN_CUSTODIAN = "unknown_custodian"
    UNKNOWN_COURT = "unknown_court"


@dataclass(frozen=True, slots=True)
class AuditFlag:
    kind: FlagKind
    index: int
    """Log index of the entry at fault (the commitment, for an overdue unsealing)."""
    warrant_id: bytes
    detail: str


@dataclass(slots=True)
class WarrantTally:
    """One warrant as the log shows it."""

    warrant_id: bytes
    court_key_id: bytes
    index: int
    window_seconds: int
    sealed_until: int
    receipts: int = 0
    released: int = 0
    """Sum of the receipts' counts: shares released, over all custodians."""
    per_custodian: dict[bytes, int] = field(default_factory=dict)
    unsealed_at: int | None = None
    """Log index of the unsealing, if any."""
    targets: tuple[UnsealedTask, ...] | None = None
    """The tasks the unsealing revealed (None while sealed)."""

    def messages_bound(self, threshold: int) -> int:
        """The most messages that can have been decrypted: the ``threshold``-th largest
        per-custodian total (0 if fewer custodians released anything)."""
        totals = sorted(self.per_custodian.values(), reverse=True)
        return totals[threshold - 1] if len(totals) >= threshold else 0


@dataclass(frozen=True, slots=True)
class AuditReport:
    warrants: dict[bytes, WarrantTally]
    warrants_per_court: dict[bytes, int]
    flags: tuple[AuditFlag, ...]

    def receipts_per_warrant(self) -> dict[bytes, int]:
        return {w: t.receipts for w, t in self.warrants.items()}

    def released_per_warrant(self) -> dict[bytes, int]:
        """Messages decrypted per warrant as the sum of receipt counts (over custodians)."""
        return {w: t.released for w, t in self.warrants.items()}

    def flagged(self, kind: FlagKind) -> tuple[AuditFlag, ...]:
        return tuple(f for f in self.flags if f.kind is kind)


def audit(
    entries: Iterable[tuple[int, Entry]], *, now: int, trust: AccessTrust | None = None
) -> AuditReport:
    """Recount ``(log index, entry)`` pairs given in log order; see the module docstring."""
    warrants: dict[bytes, WarrantTally] = {}
    commitments: dict[bytes, WarrantCommitment] = {}
    flags: list[AuditFlag] = []
    courts = {k.key.raw for k in trust.court_keys} if trust is not None else None

    def flag(kind: FlagKind, index: int, warrant_id: bytes, detail: str) -> None:
        flags.append(AuditFlag(kind, index, warrant_id, detail))

    for index, entry in entries:
        if isinstance(entry, WarrantCommitment):
            wid = entry.warrant_id
            if wid in warrants:
                flag(
                    FlagKind.DUPLICATE_COMMITMENT,
                    index,
                    wid,
                    "a second commitment for this warrant id",
                )
                continue
            if courts is not None and entry.court_key_id not in courts:
                flag(
                    FlagKind.UNKNOWN_COURT,
                    index,
                    wid,
                    "committed under a court key the manifest does not list",
                )
            commitments[wid] = entry
            warrants[wid] = WarrantTally(
                wid, entry.court_key_id, index, entry.window_seconds, entry.sealed_until
            )
        elif isinstance(entry, AccessReceipt):
            tally = warrants.get(entry.warrant_id)
            if tally is None:
                flag(
                    FlagKind.RECEIPT_WITHOUT_WARRANT,
                    index,
                    entry.warrant_id,
                    "no commitment of this warrant earlier in the log",
                )
                continue
            if trust is not None and trust.custodian_index(entry.custodian_id) is None:
                flag(
                    FlagKind.UNKNOWN_CUSTODIAN,
                    index,
                    entry.warrant_id,
                    "a receipt of a custodian the manifest does not list",
                )
            tally.receipts += 1
            tally.released += entry.count
            cid = entry.custodian_id
            tally.per_custodian[cid] = tally.per_custodian.get(cid, 0) + entry.count
        elif isinstance(entry, WarrantUnsealing):
            wid = entry.warrant_id
            commitment = commitments.get(wid)
            if commitment is None:
                flag(
                    FlagKind.UNSEALING_WITHOUT_COMMITMENT,
                    index,
                    wid,
                    "no commitment of this warrant earlier in the log",
                )
                continue
            try:
                entry.check_opens(commitment)
                targets = read_opening(entry.opening)
            except (InvalidMessage, DecodeError):
                flag(
                    FlagKind.UNSEALING_MISMATCH,
                    index,
                    wid,
                    "the opening does not open the warrant's commitment",
                )
                continue
            tally = warrants[wid]
            if tally.unsealed_at is None:
                tally.unsealed_at = index
                tally.targets = targets
    for wid, tally in warrants.items():
        if tally.unsealed_at is None and tally.sealed_until < now:
            flags.append(AuditFlag(FlagKind.OVERDUE_UNSEALING, tally.index, wid,
                                   "past its notification date and not unsealed"))  # fmt: skip
    per_court: dict[bytes, int] = {}
    for tally in warrants.values():
        per_court[tally.court_key_id] = per_court.get(tally.court_key_id, 0) + 1
    return AuditReport(warrants, per_court, tuple(flags))


__all__ = ["AuditFlag", "AuditReport", "FlagKind", "WarrantTally", "audit"]
