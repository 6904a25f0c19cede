"""Lawful access, client side: the escrow-epoch keys, learnt from the transparency log
(DESIGN §6; docs/lawful-access.md, "What the client does").

On a deployment whose manifest sets the access policy ``escrow``, every message carries an
access field encrypted to the key of an escrow epoch. The client takes those keys from the
log, never from the server's word alone. An :class:`~overt.transparency.entries.EpochKey` is
used only once

* it is in the log: the entry read while monitoring (whose leaves hash to a cosigned
  checkpoint's root), or the entry the server names in ``GET /v1/epochs`` proven by an
  inclusion proof under the newest checkpoint this device verified (log signature, witness
  quorum, consistent with every earlier one);
* it is the custodians' key: the DKG transcript the server keeps for it hashes to the entry's
  ``transcript_hash``, gives its public key, was run by exactly the manifest's custodians
  with the manifest's threshold (its session id binds the deployment, the epoch and the
  custodians' keys), **every** custodian of the manifest signed a confirmation of exactly
  that transcript for exactly that session with its manifest key (the custodians'
  confirmations the server keeps with the epoch, checked by
  :func:`overt.access.epoch.verify_confirmations`, the function the provider ran before
  logging it), and the entry's span is the manifest's calendar for that epoch
  (:func:`verify_epoch_key`).

Verified epochs are kept in the profile (``escrow_epochs``). A sender encrypts to the newest
live epoch (started, shares not yet destroyed); a recipient accepts a field for any verified
epoch whose shares still exist, asks the server for an epoch it does not know yet, and
refuses the message (:class:`~overt.errors.PolicyViolation`) if that epoch is not provably
logged. A provider that made up a transcript for the right session, with a key whose secret
it knows, cannot get it used: no custodian's signature confirms it.

What this module must not know: sessions and messages (it hands the protocol an
:class:`~overt.protocol.EscrowPolicy`), the server's code. It reads time only through the
:class:`~overt.client.clock.Clock` it is given.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from overt.access.dkg import DkgTranscript, session_id
from overt.access.epoch import decode_confirmations, verify_confirmations
from overt.access.limits import DAY_SECONDS
from overt.client import _api
from overt.client.clock import Clock
from overt.client.errors import (
    BadResponse,
    EpochNotInLog,
    NotFound,
    PolicyUnavailable,
)
from overt.client.kt import KeyTransparency, LogReader
from overt.client.limits import (
    EPOCH_REFRESH_S,
    KT_LOOKUP_ATTEMPTS,
    KT_LOOKUP_RETRY_S,
    MAX_DKG_ATTEMPTS_CHECKED,
    MAX_EPOCHS_LISTED,
)
from overt.client.store import Store, StoredEpoch
from overt.client.transport import Transport
from overt.crypto import Point, constant_time_eq, sha256
from overt.errors import (
    DecodeError,
    InvalidMessage,
    LocalError,
    PolicyViolation,
    ProtocolViolation,
)
from overt.protocol import EscrowPolicy
from overt.transparency.entries import EpochKey, decode_entry
from overt.transparency.manifest import EscrowAccess, Manifest, describe_policy
from overt.transparency.merkle import hash_leaf, verify_inclusion
from overt.wire import AccessField

log = logging.getLogger("overt.client")


# ----------------------------------------------------------------------------- pure checks


def escrow_of(manifest: Manifest | None) -> EscrowAccess | None:
    """The manifest's escrow policy, or None (no manifest, or policy ``none``)."""
    if manifest is None or not isinstance(manifest.access, EscrowAccess):
        return None
    return manifest.access


def epoch_span(epoch: int, access: EscrowAccess) -> tuple[int, int]:
    """``(not_before, retain_until)`` of ``epoch`` by the manifest's calendar: epoch ``E``
    serves from ``E·L`` days after 1970-01-01 and its shares go ``R`` days after it ends."""
    length = access.epoch_length_days * DAY_SECONDS
    return epoch * length, (epoch + 1) * length + access.retention_days * DAY_SECONDS


def verify_epoch_key(
    manifest: Manifest, entry: EpochKey, transcript: bytes, confirmations: bytes | None
) -> None:
    """Check that ``entry`` is the key the manifest's custodians made for its epoch:
    ``transcript`` hashes to the entry's ``transcript_hash``, decodes, gives the entry's key,
    is a run of the manifest's custodians (in order) with its threshold for this epoch and
    deployment, the entry's span is the manifest's calendar, and ``confirmations`` (the
    custodians' signed confirmations the server keeps, None if it keeps none) hold one by
    every custodian of the manifest, signed with its manifest key, of exactly this
    transcript's digest for exactly this session. :class:`EpochNotInLog` otherwise, saying
    which of these failed."""
    what = f"the key of escrow epoch {entry.epoch} in the log"
    access = escrow_of(manifest)
    sid = _transcript_session(manifest, entry, transcript) if access is not None else None
    if access is None or sid is None:
        raise EpochNotInLog(
            f"{what} is not one the manifest's custodians made together (its DKG transcript "
            "does not match); not using it — the provider is misbehaving"
        )
    if confirmations is None:
        raise EpochNotInLog(
            f"{what} comes without the custodians' signed confirmations of its DKG transcript "
            "(the provider kept none); not using it — the custodians must make a new epoch key"
        )
    keys = [c.key for c in access.custodians]
    try:
        verify_confirmations(decode_confirmations(confirmations), sid, entry.transcript_hash, keys)
    except DecodeError as exc:
        raise EpochNotInLog(
            f"{what}: the custodians' confirmations of its DKG transcript do not decode "
            f"({exc}); not using it — the provider is misbehaving"
        ) from None
    except InvalidMessage:
        raise EpochNotInLog(
            f"{what}: a confirmation of its DKG transcript is not signed by the manifest's key "
            "of the custodian it names; not using it — the provider is misbehaving"
        ) from None
    except ProtocolViolation as exc:
        raise EpochNotInLog(
            f"{what} is not confirmed by every custodian of the manifest ({exc}); not using "
            "it — the provider is misbehaving"
        ) from None


def _transcript_session(manifest: Manifest, entry: EpochKey, transcript: bytes) -> bytes | None:
    """The session id of ``transcript`` if it is ``entry``'s (hash, key, epoch, the manifest's
    custodians, threshold and calendar), else None."""
    access = escrow_of(manifest)
    if access is None or not constant_time_eq(sha256(transcript), entry.transcript_hash):
        return None
    try:
        t = DkgTranscript.decode(transcript)
    except DecodeError:
        return None
    params = t.params
    if (
        t.public_key().raw != entry.public_key
        or params.epoch != entry.epoch
        or params.n != len(access.custodians)
        or params.t != access.threshold
        or (entry.not_before, entry.retain_until) != epoch_span(entry.epoch, access)
    ):
        return None
    keys = [c.key.raw for c in access.custodians]
    for attempt in range(MAX_DKG_ATTEMPTS_CHECKED):
        if session_id(manifest.deployment, entry.epoch, attempt, keys) == params.session_id:
            return params.session_id
    return None


def stored_epoch(entry: EpochKey, index: int) -> StoredEpoch:
    return StoredEpoch(
        entry.epoch, entry.public_key, entry.transcript_hash, entry.not_before,
        entry.retain_until, index,
    )  # fmt: skip


def newest_live(epochs: Sequence[StoredEpoch], now: int) -> StoredEpoch | None:
    """The epoch a sender uses at ``now`` (Unix seconds): the newest that has started and
    whose shares still exist."""
    live = [e for e in epochs if e.not_before <= now < e.retain_until]
    return max(live, key=lambda e: e.epoch, default=None)


def policy_of(epochs: Sequence[StoredEpoch], now: int) -> EscrowPolicy | None:
    """Every epoch a recipient accepts at ``now``: those whose shares still exist (the newest
    as the policy's epoch); None if there is none."""
    alive = sorted((e for e in epochs if now < e.retain_until), key=lambda e: e.epoch)
    if not alive:
        return None
    newest = alive[-1]
    try:
        previous = {e.epoch: Point.from_bytes(e.public_key) for e in alive[:-1]}
        return EscrowPolicy(newest.epoch, Point.from_bytes(newest.public_key), previous)
    except (DecodeError, InvalidMessage, LocalError) as exc:  # verified before it was stored
        raise LocalError(
            "an escrow-epoch key in this profile does not decode; the profile is damaged"
        ) from exc


# ----------------------------------------------------------------------------- the server's list


@dataclass(frozen=True, slots=True)
class EpochView:
    """One epoch of ``GET /v1/epochs`` (not yet verified)."""

    epoch: int
    index: int
    public_key: bytes = field(repr=False)
    retain_until: int
    transcript: bytes = field(repr=False)
    confirmations: bytes | None = field(repr=False)
    """The custodians' signed confirmations of the transcript (None: the server has none)."""


def parse_epoch(value: object) -> EpochView:
    what = "escrow epoch"
    o = _api.obj(value, what)
    return EpochView(
        _api.integer(o, "epoch", what, 0xFFFF_FFFF),
        _api.integer(o, "index", what),
        _api.binary(o, "public_key", what),
        _api.integer(o, "retain_until", what),
        _api.binary(o, "transcript", what),
        None if o.get("confirmations") is None else _api.binary(o, "confirmations", what),
    )


def parse_epochs(value: object) -> list[EpochView]:
    what = "escrow epochs"
    items = _api.array(_api.obj(value, what), "epochs", what)
    if len(items) > MAX_EPOCHS_LISTED:
        raise BadResponse(f"{what}: more than {MAX_EPOCHS_LISTED} epochs")
    return [parse_epoch(i) for i in items]


# ----------------------------------------------------------------------------- the view


class EscrowEpochs:
    """One profile's escrow-epoch keys (see the module docstring)."""

    def __init__(self, store: Store, transport: Transport, clock: Clock, kt: KeyTransparency):
        self._store = store
        self._transport = transport
        self._reader = LogReader(transport)
        self._clock = clock
        self._kt = kt
        self._asked_ms: int | None = None  # when the server's list was last read

    def _now(self) -> int:
        return self._clock.now_ms() // 1000

    def known(self) -> list[StoredEpoch]:
        """The verified epochs in this profile, oldest first (no network)."""
        return self._store.escrow_epochs()

    def current(self) -> EscrowPolicy | None:
        """The sender's policy now, from the pinned manifest and the verified epochs (no
        network): None under policy ``none``; :class:`PolicyUnavailable` if no live epoch is
        known (:meth:`ensure_live` fetches them)."""
        manifest = self._kt.pinned()
        if manifest is None or escrow_of(manifest) is None:
            return None
        chosen = newest_live(self.known(), self._now())
        if chosen is None:
            raise PolicyUnavailable(
                f"this deployment sets exceptional access ({describe_policy(manifest)}), and "
                "its transparency log holds no live escrow-epoch key yet: nothing can be sent "
                "until the custodians make one (overt custodian dkg); try again later"
            )
        return EscrowPolicy(chosen.epoch, Point.from_bytes(chosen.public_key))

    async def ensure_live(self) -> None:
        """Before sending: make sure the newest live epoch is known — read the server's list
        if none is, or if the newest known one's sending span ended (at most every
        :data:`EPOCH_REFRESH_S`). :class:`EpochNotInLog` if the server lists one it cannot
        prove."""
        manifest = await self._kt.manifest()
        access = escrow_of(manifest)
        if manifest is None or access is None:
            return
        now = self._now()
        chosen = newest_live(self.known(), now)
        if chosen is not None:
            ended = now >= chosen.not_before + access.epoch_length_days * DAY_SECONDS
            asked = self._asked_ms
            recent = asked is not None and self._clock.now_ms() - asked < EPOCH_REFRESH_S * 1000
            if not ended or recent:
                return
        await self.refresh(manifest)

    async def refresh(self, manifest: Manifest) -> list[StoredEpoch]:
        """Read ``GET /v1/epochs`` and keep every listed epoch not known yet whose shares
        still exist (by the server's word, checked against the entry), each proven
        (:meth:`prove`). Returns the new ones."""
        answer = await self._transport.request("GET", "/v1/epochs")
        self._asked_ms = self._clock.now_ms()
        now = self._now()
        have = {e.epoch: e for e in self.known()}
        wanted = [
            v for v in parse_epochs(answer.json()) if v.epoch not in have and now < v.retain_until
        ]
        new = [await self.prove(manifest, v) for v in wanted]
        for e in new:
            self._check_unique(have, e)
        if new:
            self._store.add_escrow_epochs(new, self._clock.now_ms())
            log.info("learnt %d escrow epoch key(s) from the log", len(new))
        return new

    async def fetch(self, manifest: Manifest, epoch: int) -> StoredEpoch | None:
        """Ask the server for one epoch (``GET /v1/epochs/{epoch}``), prove and keep it; None
        if the server has none."""
        try:
            answer = await self._transport.request("GET", f"/v1/epochs/{epoch}")
        except NotFound:
            return None
        view = parse_epoch(answer.json())
        if view.epoch != epoch:
            raise BadResponse(f"asked for escrow epoch {epoch}, the server answered another")
        verified = await self.prove(manifest, view)
        self._store.add_escrow_epochs([verified], self._clock.now_ms())
        log.info("learnt the key of escrow epoch %d from the log", epoch)
        return verified

    def _check_unique(self, have: dict[int, StoredEpoch], e: StoredEpoch) -> None:
        old = have.get(e.epoch)
        if old is not None and old.public_key != e.public_key:
            raise EpochNotInLog(
                f"the log holds two keys for escrow epoch {e.epoch}; not trusting either "
                "(the provider is misbehaving)"
            )
        have[e.epoch] = e

    async def prove(self, manifest: Manifest, view: EpochView) -> StoredEpoch:
        """Check that ``view`` is the ``EpochKey`` at its index under the newest verified
        checkpoint (waiting for one that covers it, as for a new device list) and the
        custodians' key (:func:`verify_epoch_key`). :class:`EpochNotInLog` otherwise."""
        what = f"the key of escrow epoch {view.epoch}"
        for attempt in range(KT_LOOKUP_ATTEMPTS):
            cp = (await self._kt.latest(manifest)).checkpoint
            if view.index < cp.size:
                break
            if attempt + 1 < KT_LOOKUP_ATTEMPTS:
                await self._clock.sleep(KT_LOOKUP_RETRY_S)
        else:
            raise EpochNotInLog(
                f"{what} is not in a cosigned checkpoint of the transparency log yet; nothing "
                "is sent under it (try again shortly; if this persists, the server is "
                "misbehaving)"
            )
        proof = await self._reader.inclusion_proof(view.index, cp.size)
        (data,) = await self._reader.entries(view.index, view.index + 1)
        try:
            verify_inclusion(hash_leaf(data), view.index, cp.size, proof, cp.root_hash)
            entry = decode_entry(data)
            if (
                not isinstance(entry, EpochKey)
                or entry.epoch != view.epoch
                or entry.public_key != view.public_key
                or entry.retain_until != view.retain_until
            ):
                raise InvalidMessage()
        except (InvalidMessage, DecodeError):
            raise EpochNotInLog(
                f"the server cannot prove that {what} is in its transparency log; not using "
                "it (if this persists, the server is misbehaving)"
            ) from None
        verify_epoch_key(manifest, entry, view.transcript, view.confirmations)
        return stored_epoch(entry, view.index)

    async def learn_logged(
        self, manifest: Manifest, found: Sequence[tuple[int, EpochKey]]
    ) -> list[int]:
        """Keep the ``EpochKey`` entries monitoring read (already proven to be in the log):
        each checked against the transcript the server keeps for it. Returns the log indices
        of entries that are not the custodians' key (the caller raises alarms)."""
        if escrow_of(manifest) is None:
            return []  # policy none: no epoch is used, whatever the log holds
        have = {e.epoch: e for e in self.known()}
        bad: list[int] = []
        new: list[StoredEpoch] = []
        for index, entry in found:
            old = have.get(entry.epoch)
            if old is not None and old.log_index == index:
                continue
            try:
                answer = await self._transport.request("GET", f"/v1/epochs/{entry.epoch}")
                view = parse_epoch(answer.json())
                if view.index != index:
                    raise InvalidMessage()
                verify_epoch_key(manifest, entry, view.transcript, view.confirmations)
                e = stored_epoch(entry, index)
                self._check_unique(have, e)
            except (InvalidMessage, NotFound, EpochNotInLog) as exc:
                log.warning("escrow-epoch key at log entry %d refused: %s", index, exc)
                bad.append(index)
                continue
            new.append(e)
        if new:
            self._store.add_escrow_epochs(new, self._clock.now_ms())
            log.info("learnt %d escrow epoch key(s) while reading the log", len(new))
        return bad

    async def for_receiving(self, field_: AccessField | None) -> EscrowPolicy | None:
        """The recipient's policy for a message carrying ``field_``: None under policy
        ``none``; else every epoch whose shares still exist, after fetching (and proving) the
        field's epoch if it is not known yet. :class:`PolicyViolation` if the message cannot
        be acceptable (no epoch known at all, or its epoch is not provably in the log)."""
        manifest = await self._kt.manifest()
        if manifest is None or escrow_of(manifest) is None:
            return None
        known = self.known()
        if field_ is not None and all(e.epoch != field_.epoch for e in known):
            try:
                await self.fetch(manifest, field_.epoch)
            except (EpochNotInLog, BadResponse) as exc:
                log.warning("a message names escrow epoch %d, which is not provably logged",
                            field_.epoch)  # fmt: skip
                raise PolicyViolation("access field for an epoch that is not in the log") from exc
            known = self.known()
        policy = policy_of(known, self._now())
        if policy is None:
            raise PolicyViolation("no escrow epoch is known for this deployment's policy")
        return policy


__all__ = [
    "EpochView",
    "EscrowEpochs",
    "epoch_span",
    "escrow_of",
    "newest_live",
    "parse_epoch",
    "parse_epochs",
    "policy_of",
    "verify_epoch_key",
]
