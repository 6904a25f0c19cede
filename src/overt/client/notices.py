"""Lawful access, client side: the notice a target gets once a warrant naming it is unsealed
(DESIGN §6; docs/lawful-access.md, "What the client does").

While monitoring reads the transparency log (:meth:`overt.client.kt.KeyTransparency.check_log`,
which has already checked that the entries it hands over are exactly the leaves of a
cosigned checkpoint), :class:`WarrantWatch` follows the lawful-access entries:

* a ``WarrantCommitment`` starts tracking the warrant (court, window length, notification
  date; its targets are hidden);
* an ``AccessReceipt`` of a tracked warrant adds its count to that custodian's total (only
  custodians the manifest lists count);
* a ``WarrantUnsealing`` is checked against the tracked commitment — the opening must hash to
  the logged targets commitment — and read: if a task names this account, the warrant becomes
  a **notice**; otherwise it is forgotten. An unsealing that names this account but opens no
  commitment this device saw in the log (a forged opening, or one for a warrant never
  committed) shows nothing and raises an alarm, as other key-transparency findings do.
* an ``EpochKey`` goes to :class:`~overt.client.escrow.EscrowEpochs` (an epoch key that is
  not the custodians' raises an alarm).

Everything a step finds is stored in one transaction with how far the log was read
(``access_watch``), so that reading entries again after a crash counts no receipt twice.

A :class:`Notice` says which court, the task windows naming this account, the notification
date, where the unsealing is in the log, and how many messages the custodians' receipts allow
to have been decrypted (the ``t``-th largest per-custodian total, as
:mod:`overt.access.audit` counts; receipts logged later raise it). This module never sees
sessions or messages; time comes from the caller's clock.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from overt.access.warrant import Delivery, read_opening
from overt.client.clock import Clock
from overt.client.escrow import EscrowEpochs
from overt.client.kt import new_alarm
from overt.client.limits import MAX_TRACKED_WARRANTS
from overt.client.model import AlarmKind
from overt.client.store import NewAlarm, Store, TrackedWarrant
from overt.errors import DecodeError, InvalidMessage, LocalError
from overt.transparency.entries import (
    AccessReceipt,
    Entry,
    EpochKey,
    WarrantCommitment,
    WarrantUnsealing,
    decode_entry,
)
from overt.transparency.manifest import EscrowAccess, Manifest
from overt.wire import Reader, Writer

log = logging.getLogger("overt.client")

RECEIPTS_VERSION = 1
"""Version of the per-custodian receipt totals kept with a tracked warrant."""

_CUSTODIAN_ID_LEN = 32


# ----------------------------------------------------------------------------- records


def encode_receipts(totals: Mapping[bytes, int]) -> bytes:
    """``version u8 ‖ n u8 ‖ n × (custodian id[32] ‖ total u64)``, sorted by custodian id."""
    w = Writer().u8(RECEIPTS_VERSION).u8(len(totals))
    for cid in sorted(totals):
        w.fixed(cid, _CUSTODIAN_ID_LEN).u64(totals[cid])
    return w.getvalue()


def decode_receipts(data: bytes) -> dict[bytes, int]:
    r = Reader(data, "receipt totals")
    r.version(RECEIPTS_VERSION)
    out = {}
    for _ in range(r.u8("count")):
        cid = r.fixed(_CUSTODIAN_ID_LEN, "custodian id")
        out[cid] = r.u64("total")
    r.finish()
    return out


@dataclass(frozen=True, slots=True)
class Notice:
    """A warrant that named this account, now unsealed in the transparency log."""

    warrant_id: bytes
    court: str
    """The court's name as the manifest lists its key (or that the key is not listed)."""
    windows: tuple[tuple[int, int], ...]
    """The windows ``[start, end)`` (Unix seconds) of the tasks that name this account."""
    content: bool
    """Whether a task naming this account authorised decrypting content (else metadata)."""
    sealed_until: int
    """The notification date the warrant carried (Unix seconds)."""
    commitment_index: int
    """Where the warrant's commitment is in the log (logged before it was used)."""
    unsealing_index: int
    """Where its unsealing is in the log."""
    custodians_released: int
    """How many custodians logged access receipts under it (so far)."""
    messages_accessed: int
    """The most messages that can have been decrypted, by the receipts: the threshold-th
    largest per-custodian total (0: none)."""
    found_at_ms: int
    """When this device found the unsealing."""
    shown_at_ms: int | None
    """When it was first shown to the person (None: new)."""

    @property
    def new(self) -> bool:
        return self.shown_at_ms is None

    def describe(self) -> str:
        """The notice in words, one paragraph."""
        spans = ", ".join(f"{_day(a)} to {_day(b)}" for a, b in self.windows) or "(none)"
        what = "the content of your messages" if self.content else "metadata only"
        if self.messages_accessed:
            accessed = (
                f"the custodians' receipts in the log allow at most {self.messages_accessed} "
                f"of your messages to have been decrypted (receipts of {self.custodians_released} "
                "custodian(s))"
            )
        elif self.content:
            accessed = "no custodian receipt in the log: no message was decrypted under it"
        else:
            accessed = "no message could be decrypted under it"
        return (
            f"A warrant of {self.court} named your account: {what}, "
            f"{spans}. It was unsealed at its notification date ({_day(self.sealed_until)}) "
            f"in log entry {self.unsealing_index} (its commitment: entry "
            f"{self.commitment_index}); {accessed}."
        )


def _day(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M UTC")


def court_name(manifest: Manifest | None, court_key_id: bytes) -> str:
    access = None if manifest is None else manifest.access
    if isinstance(access, EscrowAccess):
        for k in access.court_keys:
            if k.key.raw == court_key_id:
                return k.name
    return f"a court the manifest does not list (key {court_key_id.hex()[:16]}…)"


def messages_bound(totals: Mapping[bytes, int], threshold: int) -> int:
    """The ``threshold``-th largest per-custodian total (0 if fewer custodians released)."""
    ranked = sorted(totals.values(), reverse=True)
    return ranked[threshold - 1] if threshold >= 1 and len(ranked) >= threshold else 0


def notice_of(w: TrackedWarrant, manifest: Manifest | None, account: bytes) -> Notice:
    """The notice of a tracked warrant that was unsealed naming ``account``."""
    if w.unsealing_index is None or w.opening is None or w.found_ms is None:
        raise LocalError("this warrant was not unsealed naming this account")
    commitment = decode_entry(w.commitment)
    if not isinstance(commitment, WarrantCommitment):
        raise DecodeError("a tracked warrant's commitment is another kind of entry")
    tasks = [t for t in read_opening(w.opening) if account in t.targets]
    totals = decode_receipts(w.receipts)
    access = None if manifest is None else manifest.access
    threshold = access.threshold if isinstance(access, EscrowAccess) else 1
    return Notice(
        warrant_id=w.warrant_id,
        court=court_name(manifest, commitment.court_key_id),
        windows=tuple((t.timespan.start, t.timespan.end) for t in tasks),
        content=any(t.delivery is Delivery.CONTENT for t in tasks),
        sealed_until=commitment.sealed_until,
        commitment_index=w.commitment_index,
        unsealing_index=w.unsealing_index,
        custodians_released=len(totals),
        messages_accessed=messages_bound(totals, threshold),
        found_at_ms=w.found_ms,
        shown_at_ms=w.shown_ms,
    )


# ----------------------------------------------------------------------------- the watch


def _names(opening: bytes, account: bytes) -> bool | None:
    """Whether the opening names ``account`` (None: it does not parse)."""
    try:
        return any(account in t.targets for t in read_opening(opening))
    except DecodeError:
        return None


class WarrantWatch:
    """Follows the log's lawful-access entries for one profile (see the module docstring).
    Plugged into monitoring with :meth:`KeyTransparency.watch`."""

    def __init__(self, store: Store, clock: Clock, epochs: EscrowEpochs) -> None:
        self._store = store
        self._clock = clock
        self._epochs = epochs

    def size(self) -> int:
        """How far the log was read for warrants."""
        return self._store.access_watch_size()

    async def observe(
        self,
        manifest: Manifest,
        account: bytes,
        entries: Sequence[tuple[int, Entry]],
        size: int,
    ) -> list[int]:
        """Take the entries monitoring read (log order, up to ``size``, exactly the log's
        leaves); store what they change. Returns the ids of new alarms."""
        start = self.size()
        now = self._clock.now_ms()
        tracked = {w.warrant_id: w for w in self._store.access_warrants()}
        changed: dict[bytes, TrackedWarrant] = {}
        dropped: set[bytes] = set()
        alarms: list[NewAlarm] = []
        epochs: list[tuple[int, EpochKey]] = []
        access = manifest.access
        listed = (
            {c.key.raw for c in access.custodians} if isinstance(access, EscrowAccess) else set()
        )

        def put(w: TrackedWarrant) -> None:
            tracked[w.warrant_id] = changed[w.warrant_id] = w
            dropped.discard(w.warrant_id)

        for index, entry in entries:
            if index < start:
                continue  # read before (a step that crashed before monitoring saved)
            if isinstance(entry, EpochKey):
                epochs.append((index, entry))
            elif isinstance(entry, WarrantCommitment):
                if entry.warrant_id not in tracked:  # a second one: the auditor flags it
                    receipts = encode_receipts({})
                    put(TrackedWarrant(entry.warrant_id, index, entry.encode(), receipts))
            elif isinstance(entry, AccessReceipt):
                w = tracked.get(entry.warrant_id)
                if w is not None and entry.custodian_id in listed:
                    totals = decode_receipts(w.receipts)
                    totals[entry.custodian_id] = totals.get(entry.custodian_id, 0) + entry.count
                    put(replace(w, receipts=encode_receipts(totals)))
            elif isinstance(entry, WarrantUnsealing):
                alarm = self._unsealing(index, entry, tracked.get(entry.warrant_id), account)
                if alarm is not None:
                    alarms.append(alarm)
                    continue
                w = tracked.get(entry.warrant_id)
                if w is None or w.unsealing_index is not None:
                    continue
                if _names(entry.opening, account):
                    put(replace(w, unsealing_index=index, opening=entry.opening, found_ms=now))
                    log.info("a warrant naming this account was unsealed (log entry %d)", index)
                else:
                    tracked.pop(w.warrant_id)
                    changed.pop(w.warrant_id, None)
                    dropped.add(w.warrant_id)
        sealed = [w for w in tracked.values() if w.unsealing_index is None]
        for w in sorted(sealed, key=lambda w: w.commitment_index)[
            : max(0, len(sealed) - MAX_TRACKED_WARRANTS)
        ]:
            changed.pop(w.warrant_id, None)
            dropped.add(w.warrant_id)
        for index in await self._epochs.learn_logged(manifest, epochs):
            alarms.append(
                new_alarm(
                    AlarmKind.INVALID_LOG,
                    f"log entry {index} is an escrow-epoch key that the manifest's custodians "
                    "did not make together (its DKG transcript does not match, not every "
                    "custodian signed a confirmation of it, or the server does not show it); "
                    "it is not used",
                    index=index,
                )
            )
        return self._store.save_access_watch(
            size, put=changed.values(), drop=dropped, alarms=alarms, now_ms=now
        )

    def _unsealing(
        self,
        index: int,
        entry: WarrantUnsealing,
        w: TrackedWarrant | None,
        account: bytes,
    ) -> NewAlarm | None:
        """An alarm if ``entry`` claims to unseal a warrant naming ``account`` but does not
        open a commitment this device saw in the log; None otherwise."""
        if not _names(entry.opening, account):
            return None  # not ours (or unreadable): the auditor flags a bad one
        if w is not None:
            try:
                commitment = decode_entry(w.commitment)
                if not isinstance(commitment, WarrantCommitment):
                    raise InvalidMessage()
                entry.check_opens(commitment)
            except (InvalidMessage, DecodeError):
                pass
            else:
                return None
        return new_alarm(
            AlarmKind.INVALID_UNSEALING,
            f"log entry {index} claims to unseal a warrant naming this account, but it does not "
            "open any warrant commitment in the log: no notice is shown for it — the provider "
            "may be misbehaving; keep this alarm as evidence",
            index=index,
        )


__all__ = [
    "Notice",
    "WarrantWatch",
    "court_name",
    "decode_receipts",
    "encode_receipts",
    "messages_bound",
    "notice_of",
]
