"""Key transparency, client side: the deployment manifest, the log, and what they let a client
check (DESIGN §4; docs/transparency.md, "What clients verify").

Three layers, as in the rest of the package:

* :class:`LogReader` — the public endpoints of docs/api.md ("Transparency log and key
  directory"), unsigned requests through a :class:`~overt.client.transport.Transport`; strict
  parsing, no verification.
* pure checks — :func:`verify_log_checkpoint`, :func:`verify_listing`: bytes and a manifest in,
  a verified value or an exception out; no I/O.
* :class:`KeyTransparency` — one profile's view of the log: it pins the manifest, keeps the
  newest checkpoint it verified and connects every later one to it by a consistency proof,
  proves device lists are logged before the client uses them, checks what peers gossip, and
  monitors the log for entries of its own account that it did not make. Findings that are
  evidence of misbehaviour are recorded as alarms in the profile's store. A
  :class:`LogWatcher` (lawful access: :mod:`overt.client.notices`) gets the other entries
  monitoring reads.

A server that refuses to prove that two checkpoints are consistent (any refusal but "slow
down") is treated exactly like one that proves they are not: as a split view.

What this module must not know: the protocol's sessions and messages, the server's code. It
reads time only through the :class:`~overt.client.clock.Clock` it is given.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from overt.client import _api
from overt.client._b64 import b64e
from overt.client.body import Gossip
from overt.client.clock import Clock
from overt.client.errors import (
    BadResponse,
    NotFound,
    NotInLog,
    RateLimited,
    ServerRefused,
    SplitView,
    TransparencyUnavailable,
)
from overt.client.limits import (
    GOSSIP_AHEAD_GRACE_S,
    KT_LOOKUP_ATTEMPTS,
    KT_LOOKUP_RETRY_S,
    LOG_ENTRIES_PAGE,
    MAX_PENDING_GOSSIP,
)
from overt.client.model import AlarmKind
from overt.client.store import MonitorState, NewAlarm, PendingGossip, Store
from overt.client.transport import Response, Transport
from overt.crypto import Ed25519PublicKey, sha256
from overt.crypto.vrf import VrfPublicKey
from overt.crypto.vrf import verify as vrf_verify
from overt.errors import DecodeError, InvalidMessage, LocalError, ProtocolViolation
from overt.transparency.checkpoint import (
    Checkpoint,
    ProofBundle,
    VerifiedCheckpoint,
    verify_checkpoint,
    verify_checkpoint_consistency,
    verify_proof_bundle,
)
from overt.transparency.entries import (
    Entry,
    KeyDirectoryUpdate,
    ManifestEntry,
    decode_entry,
    kt_commitment,
    kt_label,
)
from overt.transparency.manifest import Manifest, check_successor, verify_manifest
from overt.transparency.merkle import (
    MAX_CONSISTENCY_PROOF_HASHES,
    MAX_INCLUSION_PROOF_HASHES,
    CompactRange,
    hash_leaf,
    verify_inclusion,
)
from overt.transparency.note import Note
from overt.wire import SignedDeviceList, Writer

log = logging.getLogger("overt.client")

#: Called with (entries read, entries to read) while monitoring reads the log.
Progress = Callable[[int, int], None]


# ----------------------------------------------------------------------------- reading


class LogReader:
    """The log's public endpoints (docs/api.md), parsed strictly, not yet verified."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    async def _get(self, target: str) -> Response:
        return await self._transport.request("GET", target)

    async def manifest(self) -> _api.ManifestView | None:
        """``GET /v1/manifest``; None if the server publishes none (404)."""
        try:
            answer = await self._get("/v1/manifest")
        except NotFound:
            return None
        return _api.parse_manifest(answer.json())

    async def checkpoint(self) -> Note:
        """``GET /v1/log/checkpoint``: the latest published (cosigned) checkpoint."""
        answer = await self._get("/v1/log/checkpoint")
        try:
            return Note.from_bytes(answer.content)
        except DecodeError as exc:
            raise BadResponse("the server's checkpoint is not a signed note") from exc

    async def entries(self, start: int, end: int) -> list[bytes]:
        answer = await self._get(f"/v1/log/entries?start={start}&end={end}")
        return _api.parse_entries(answer.json(), max(0, end - start))

    async def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        answer = await self._get(f"/v1/log/inclusion?index={index}&size={size}")
        return _api.hash_list(answer.json(), "inclusion proof", MAX_INCLUSION_PROOF_HASHES)

    async def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        answer = await self._get(f"/v1/log/consistency?from={size1}&to={size2}")
        return _api.hash_list(answer.json(), "consistency proof", MAX_CONSISTENCY_PROOF_HASHES)

    async def key_directory(self, account: bytes) -> _api.KtView | None:
        """``GET /v1/kt/{account}``; None on 404 (unknown, or not yet in a checkpoint)."""
        try:
            answer = await self._get(f"/v1/kt/{b64e(account)}")
        except NotFound:
            return None
        return _api.parse_kt(answer.json())


async def consistency_proof(reader: LogReader, old: Checkpoint, new: Checkpoint) -> list[bytes]:
    """The proof that ``new`` extends ``old`` (empty where none is needed)."""
    if old.size == 0 or old.size >= new.size:
        return []
    return await reader.consistency_proof(old.size, new.size)


# ----------------------------------------------------------------------------- pure checks


def vrf_key(manifest: Manifest) -> VrfPublicKey:
    """The key directory's VRF key, as the manifest names it."""
    key = manifest.vrf_key
    if key is None:
        raise TransparencyUnavailable(
            "the deployment manifest names no key-directory VRF key; this client cannot check "
            "that device lists are in the log"
        )
    return key


def verify_log_checkpoint(manifest: Manifest, note: Note) -> VerifiedCheckpoint:
    """The log's signature, origin and the manifest's witness quorum; :class:`InvalidMessage`
    (or :class:`DecodeError`) otherwise."""
    return verify_checkpoint(
        note,
        manifest.log.vkey,
        manifest.witness_keys,
        manifest.witness_quorum,
        origin=manifest.log.origin,
    )


@dataclass(frozen=True, slots=True)
class Listing:
    """A device list proven to be an account's key-directory entry in a cosigned checkpoint."""

    signed: SignedDeviceList = field(repr=False)
    index: int
    label: bytes = field(repr=False)
    checkpoint: VerifiedCheckpoint = field(repr=False)

    @property
    def serial(self) -> int:
        return self.signed.device_list.serial


def device_list_hash(signed: SignedDeviceList) -> bytes:
    """What a key-directory entry records of a device list: SHA-256 of its encoding."""
    return sha256(signed.encode())


def verify_listing(manifest: Manifest, account: bytes, view: _api.KtView) -> Listing:
    """Check a ``GET /v1/kt/{account}`` answer: the VRF proof verifies under the manifest's key
    and gives the entry's label; the commitment opens to ``account``; the entry — rebuilt from
    the device list the answer carries (its account key, serial and SHA-256) — is the leaf that
    the proof bundle shows at ``index`` under a checkpoint the log signed and the manifest's
    witness quorum cosigned. :class:`BadResponse` if the answer is malformed,
    :class:`InvalidMessage` if any check fails. The device list's own signature is the
    caller's to check (against the key it pinned)."""
    try:
        signed = SignedDeviceList.decode(view.signed_device_list)
        bundle = ProofBundle.from_bytes(view.proof)
    except (DecodeError, LocalError) as exc:
        raise BadResponse("the server's key-directory answer does not decode") from exc
    dl = signed.device_list
    if dl.account != account or bundle.index != view.index:
        raise InvalidMessage()
    label = kt_label(vrf_verify(vrf_key(manifest), account, view.vrf_proof))
    try:
        entry = KeyDirectoryUpdate(
            label=label,
            account_key=dl.account_key,
            serial=dl.serial,
            device_list_hash=device_list_hash(signed),
            commitment=kt_commitment(view.opening, account),
        )
    except LocalError:
        raise InvalidMessage() from None
    verified = verify_proof_bundle(
        bundle,
        leaf_data=entry.encode(),
        log_key=manifest.log.vkey,
        witnesses=manifest.witness_keys,
        quorum=manifest.witness_quorum,
        origin=manifest.log.origin,
    )
    return Listing(signed, view.index, label, verified)


def _note_text(note: Note) -> str:
    return note.to_bytes().decode("utf-8")


def new_alarm(
    kind: AlarmKind,
    detail: str,
    *,
    index: int | None = None,
    ours: str | None = None,
    theirs: str | None = None,
) -> NewAlarm:
    """An alarm whose fingerprint is its kind, entry and evidence (the same finding twice is
    recorded once)."""
    w = Writer().vec(str(kind).encode(), 1).u64(0 if index is None else index + 1)
    w.vec((ours or "").encode(), 4).vec((theirs or "").encode(), 4)
    return NewAlarm(str(kind), index, detail, ours, theirs, sha256(w.getvalue()))


# ----------------------------------------------------------------------------- the view


@dataclass(frozen=True, slots=True)
class OwnAccount:
    """What monitoring needs to know about this device's account."""

    account: bytes
    account_key: bytes
    signs_lists: bool
    """Whether this device holds the account key, so that it signed every legitimate list."""
    refresh: Callable[[], Awaitable[object]]
    """Fetch (and, if it verifies, accept) the account's current device list."""


class LogWatcher(Protocol):
    """Something else that reads the log while monitoring does (lawful access:
    :class:`overt.client.notices.WarrantWatch`): it gets every entry that is neither a
    key-directory update nor a manifest, after the entries were checked to be exactly the
    leaves of a cosigned checkpoint, and stores what it finds itself (idempotently: entries
    below its :meth:`size` are ones it already took)."""

    def size(self) -> int: ...

    async def observe(
        self, manifest: Manifest, account: bytes, entries: Sequence[tuple[int, Entry]], size: int
    ) -> list[int]: ...


class KeyTransparency:
    """One profile's view of the deployment's transparency log (see the module docstring).

    ``provider_key``, if given, is the provider's Ed25519 key the manifest must be signed by
    (no trust on first use, and a server without a manifest is refused).
    """

    def __init__(
        self,
        store: Store,
        transport: Transport,
        clock: Clock,
        provider_key: Ed25519PublicKey | None = None,
    ) -> None:
        self._store = store
        self._reader = LogReader(transport)
        self._clock = clock
        self._provider_key = provider_key
        self._manifest: Manifest | None = None
        self._absent = False  # this server published no manifest when first asked
        self._lock = asyncio.Lock()  # one checkpoint connected at a time
        self._watcher: LogWatcher | None = None

    def watch(self, watcher: LogWatcher) -> None:
        """Hand ``watcher`` the other entries :meth:`check_log` reads."""
        self._watcher = watcher

    # ------------------------------------------------------------------ the manifest

    def pinned(self) -> Manifest | None:
        """The pinned manifest (no network), or None."""
        if self._manifest is None:
            stored = self._store.manifest()
            if stored is not None:
                try:
                    self._manifest = verify_manifest(stored[0])
                except (DecodeError, InvalidMessage) as exc:
                    raise LocalError(
                        "the pinned manifest in this profile no longer verifies; the profile "
                        "is damaged"
                    ) from exc
        return self._manifest

    def enforced(self) -> bool:
        """Whether device lists must be proven to be in the log: a manifest is pinned and it
        names a key directory (a VRF key)."""
        manifest = self.pinned()
        return manifest is not None and manifest.vrf_key is not None

    async def directory(self) -> Manifest | None:
        """:meth:`manifest` if it names a key directory, else None (keys are then trusted on
        first use only)."""
        manifest = await self.manifest()
        return manifest if manifest is not None and manifest.vrf_key is not None else None

    async def manifest(self) -> Manifest | None:
        """The manifest this profile follows, pinned on first contact; None if the server
        publishes none and this profile never pinned one (then this profile trusts account
        keys on first use only)."""
        pinned = self.pinned()
        if pinned is not None:
            return pinned
        if self._absent:
            return None
        view = await self._reader.manifest()
        if view is None:
            if self._provider_key is not None:
                raise TransparencyUnavailable(
                    "the server publishes no deployment manifest, but one signed by the given "
                    "provider key was required; check the server address"
                )
            log.warning("the server publishes no transparency log; trusting keys on first use")
            self._absent = True
            return None
        return await self._pin(view)

    async def _pin(self, view: _api.ManifestView) -> Manifest:
        try:
            manifest = verify_manifest(view.manifest, self._provider_key)
        except (DecodeError, InvalidMessage) as exc:
            raise TransparencyUnavailable(
                "the server's deployment manifest does not verify; not trusting this server"
            ) from exc
        data = ManifestEntry(view.manifest).encode()
        for attempt in range(KT_LOOKUP_ATTEMPTS):
            try:
                verified: VerifiedCheckpoint | None = await self._fetch_latest(manifest)
            except NotFound:
                verified = None  # no checkpoint published yet
            if verified is not None and view.index < verified.checkpoint.size:
                cp = verified.checkpoint
                proof = await self._reader.inclusion_proof(view.index, cp.size)
                try:
                    verify_inclusion(hash_leaf(data), view.index, cp.size, proof, cp.root_hash)
                except InvalidMessage as exc:
                    raise TransparencyUnavailable(
                        "the server cannot prove that its manifest is in its transparency log; "
                        "not trusting this server"
                    ) from exc
                async with self._lock:
                    await self._connect(verified)
                self._store.pin_manifest(view.manifest, view.index, self._clock.now_ms())
                self._manifest = manifest
                log.info("pinned manifest version %d of %s", manifest.version, manifest.deployment)
                return manifest
            if attempt + 1 < KT_LOOKUP_ATTEMPTS:
                await self._clock.sleep(KT_LOOKUP_RETRY_S)
        raise TransparencyUnavailable(
            "the server's manifest is not yet covered by a cosigned checkpoint; try again later"
        )

    # ------------------------------------------------------------------ checkpoints

    def head(self) -> Note | None:
        """The newest checkpoint this device verified and connected, or None."""
        raw = self._store.checkpoint()
        return None if raw is None else Note.from_bytes(raw)

    def gossip(self) -> Gossip | None:
        """What to tell peers: the newest verified checkpoint (None without a manifest)."""
        if self.pinned() is None:
            return None
        head = self.head()
        return None if head is None else Gossip.of(Checkpoint.from_text(head.text))

    async def _fetch_latest(self, manifest: Manifest) -> VerifiedCheckpoint:
        note = await self._reader.checkpoint()
        try:
            return verify_log_checkpoint(manifest, note)
        except (DecodeError, InvalidMessage) as exc:
            raise TransparencyUnavailable(
                "the server's latest checkpoint is not signed by the log and cosigned by the "
                "manifest's witness quorum; not trusting what it shows"
            ) from exc

    async def latest(self, manifest: Manifest) -> VerifiedCheckpoint:
        """The server's latest checkpoint, verified and connected to the newest one seen."""
        verified = await self._fetch_latest(manifest)
        async with self._lock:
            await self._connect(verified)
        return verified

    async def _connect(self, verified: VerifiedCheckpoint) -> None:
        """Check that ``verified`` and the newest checkpoint seen are one log (whichever is
        larger extends the other) and keep the larger; a split view otherwise."""
        head = self.head()
        new = verified.checkpoint
        if head is None:
            self._store.set_checkpoint(new.size, verified.note.to_bytes(), self._clock.now_ms())
            return
        old = Checkpoint.from_text(head.text)
        if (old.origin, old.size, old.root_hash) == (new.origin, new.size, new.root_hash):
            return
        small, large = (old, new) if old.size <= new.size else (new, old)
        try:
            if old.origin != new.origin:
                raise InvalidMessage()
            proof = await consistency_proof(self._reader, small, large)
            verify_checkpoint_consistency(small, large, proof)
        except RateLimited:
            raise
        except (InvalidMessage, BadResponse, ServerRefused) as exc:
            self._split_view(
                "the server showed a checkpoint that does not extend the one this device saw "
                "before (or would not prove that it does): it may be showing different people "
                "different logs",
                ours=_note_text(head),
                theirs=_note_text(verified.note),
            )
            raise SplitView(
                "the transparency log the server shows now is not consistent with the one it "
                "showed before; an alarm was recorded (see alarms) — do not trust new keys "
                "from this server until this is explained"
            ) from exc
        if large is new:
            self._store.set_checkpoint(new.size, verified.note.to_bytes(), self._clock.now_ms())

    def _split_view(self, detail: str, *, ours: str, theirs: str) -> None:
        alarm = new_alarm(AlarmKind.SPLIT_VIEW, detail, ours=ours, theirs=theirs)
        if self._store.add_alarm(alarm, self._clock.now_ms()) is not None:
            log.warning("alarm: split view of the transparency log")

    # ------------------------------------------------------------------ key directory

    async def lookup(self, manifest: Manifest, account: bytes) -> Listing | None:
        """The account's latest logged device list, proven and connected; None if the server
        has none in a checkpoint yet. :class:`NotInLog` if its proof does not verify."""
        view = await self._reader.key_directory(account)
        if view is None:
            return None
        try:
            listing = verify_listing(manifest, account, view)
        except InvalidMessage as exc:
            raise NotInLog(
                "the server's proof that this account's keys are in the transparency log does "
                "not verify; not trusting them (if this persists, the server is misbehaving)"
            ) from exc
        async with self._lock:
            await self._connect(listing.checkpoint)
        return listing

    async def listing(self, account: bytes, offered: SignedDeviceList, who: str) -> Listing:
        """Prove that ``offered`` (or a newer list of the account) is in the log.

        The server logs a list before it serves it, but a new entry is public only once a
        checkpoint covers it, so a missing or older entry is asked for again, up to
        :data:`KT_LOOKUP_ATTEMPTS` times. Returns the listing of ``offered``, or of a newer
        list (the caller then uses that one); :class:`NotInLog` otherwise.
        """
        manifest = await self.directory()
        if manifest is None:
            raise LocalError("no key directory: there is no log to check lists against")
        want = offered.encode()
        for attempt in range(KT_LOOKUP_ATTEMPTS):
            listing = await self.lookup(manifest, account)
            if listing is not None and (
                listing.signed.encode() == want or listing.serial > offered.device_list.serial
            ):
                return listing
            if attempt + 1 < KT_LOOKUP_ATTEMPTS:
                await self._clock.sleep(KT_LOOKUP_RETRY_S)
        raise NotInLog(
            f"the device list the server gives for {who!r} is not in the transparency log, so "
            f"anyone could have made it up; nothing is sent to or accepted from {who!r} until "
            "it is (if this persists, the server is misbehaving)"
        )

    # ------------------------------------------------------------------ gossip

    async def receive_gossip(self, gossip: Gossip) -> None:
        """Check a checkpoint a peer says it saw; kept for later if the server is unreachable."""
        if self.pinned() is None:
            return
        now = self._clock.now_ms()
        pending = PendingGossip(gossip.origin, gossip.size, gossip.root_hash, now)
        self._store.add_pending_gossip(pending, MAX_PENDING_GOSSIP)
        await self.check_pending_gossip()

    async def check_pending_gossip(self) -> None:
        """Check every gossiped checkpoint still waiting (raises only if the server is
        unreachable or asks to slow down; the rest stays for next time)."""
        manifest = self.pinned()
        if manifest is None:
            return
        for pending in self._store.pending_gossip():
            if await self._check_gossip(manifest, pending):
                self._store.drop_pending_gossip(pending)

    async def _check_gossip(self, manifest: Manifest, pending: PendingGossip) -> bool:
        """Check one gossiped checkpoint; False if it must wait (it is ahead of what the
        server shows, within :data:`GOSSIP_AHEAD_GRACE_S`)."""
        try:
            theirs = Checkpoint(pending.origin, pending.size, pending.root_hash)
        except LocalError:
            return True  # cannot happen for what Body.decode accepted; nothing to compare
        head = self.head()
        if head is None:
            head = (await self.latest(manifest)).note
        ours = Checkpoint.from_text(head.text)
        if (theirs.origin, theirs.size, theirs.root_hash) == (
            ours.origin,
            ours.size,
            ours.root_hash,
        ):
            return True
        try:
            if theirs.origin != ours.origin:
                raise InvalidMessage()
            if theirs.size > ours.size:
                try:
                    head = (await self.latest(manifest)).note
                except SplitView:
                    return True  # the server's own checkpoints disagree: already an alarm
                ours = Checkpoint.from_text(head.text)
                if theirs.size > ours.size:
                    # A peer saw more than the server shows us: a lagging server node, or a
                    # log withheld from us. Wait a while before calling it a split view.
                    waited_ms = self._clock.now_ms() - pending.received_ms
                    if waited_ms < GOSSIP_AHEAD_GRACE_S * 1000:
                        return False
                    raise InvalidMessage()
            proof = await consistency_proof(self._reader, theirs, ours)
            verify_checkpoint_consistency(theirs, ours, proof)
        except RateLimited:
            raise
        except (InvalidMessage, BadResponse, ServerRefused):
            self._split_view(
                "a peer was shown a checkpoint of the log that is not consistent with the one "
                "this device was shown (or the server would not prove that it is): the server "
                "may be showing different people different logs",
                ours=_note_text(head),
                theirs=theirs.to_text(),
            )
        return True

    # ------------------------------------------------------------------ monitoring

    async def check_log(self, own: OwnAccount, progress: Progress | None = None) -> list[int]:
        """Read the log from where this device stopped to the latest cosigned checkpoint, check
        that the entries are exactly its leaves, and look at every entry of this account and
        every new manifest. Returns the ids of new alarms. All or nothing: the progress, the
        alarms and an adopted manifest are stored together, after the root matched."""
        manifest = await self.manifest()
        if manifest is None:
            return []
        latest = await self.latest(manifest)
        target = latest.checkpoint
        state = self._store.monitor()
        label = state.own_label if state is not None else None
        if label is None and manifest.vrf_key is not None:
            label = await self._own_label(manifest, own)
        cr = CompactRange() if state is None else CompactRange(state.size, state.frontier)
        if self._watcher is not None and self._watcher.size() < cr.size:
            cr = CompactRange()  # a watcher newer than this profile: read the log again, once
        if target.size <= cr.size:
            self._save(cr, label)
            return []
        stored = self._store.manifest()
        pinned_index = -1 if stored is None else stored[1]
        mine: list[tuple[int, KeyDirectoryUpdate]] = []
        manifests: list[tuple[int, bytes]] = []
        others: list[tuple[int, Entry]] = []
        found: list[NewAlarm] = []
        pos = cr.size
        while pos < target.size:
            end = min(pos + LOG_ENTRIES_PAGE, target.size)
            page = await self._reader.entries(pos, end)
            if not page:
                raise BadResponse("the server returned no log entries where its checkpoint has")
            for data in page:
                cr.append(hash_leaf(data))
                try:
                    entry = decode_entry(data)
                except DecodeError:
                    found.append(
                        new_alarm(
                            AlarmKind.INVALID_LOG,
                            f"log entry {pos} does not decode: the log holds something no "
                            "Overt server writes",
                            index=pos,
                        )
                    )
                else:
                    if isinstance(entry, KeyDirectoryUpdate) and label == entry.label:
                        mine.append((pos, entry))
                    elif isinstance(entry, ManifestEntry):
                        if pos > pinned_index:
                            manifests.append((pos, entry.manifest))
                    elif not isinstance(entry, KeyDirectoryUpdate):
                        others.append((pos, entry))
                pos += 1
            if progress is not None:
                progress(pos, target.size)
        if cr.root() != target.root_hash:
            self._store.add_alarm(
                new_alarm(
                    AlarmKind.INVALID_LOG,
                    "the entries the server served do not hash to the root of its own cosigned "
                    "checkpoint",
                    ours=_note_text(latest.note),
                ),
                self._clock.now_ms(),
            )
            raise BadResponse(
                "the log entries the server served are not the ones its checkpoint signs; an "
                "alarm was recorded"
            )
        adopted, manifest_alarms = _successors(manifest, manifests)
        found += manifest_alarms
        found += await self._check_own_entries(own, mine)
        watched = []
        if self._watcher is not None:
            watched = await self._watcher.observe(manifest, own.account, others, target.size)
        new_ids = watched + self._save(cr, label, found, adopted)
        if adopted is not None:
            self._manifest = None  # re-read the adopted one from the store
        if new_ids:
            log.warning("alarm: %d new finding(s) in the transparency log", len(new_ids))
        return new_ids

    def _save(
        self,
        cr: CompactRange,
        label: bytes | None,
        alarms: Sequence[NewAlarm] = (),
        manifest: tuple[bytes, int] | None = None,
    ) -> list[int]:
        now = self._clock.now_ms()
        state = MonitorState(cr.size, cr.hashes, label, now)
        return self._store.save_monitor(state, alarms=alarms, manifest=manifest, now_ms=now)

    async def _own_label(self, manifest: Manifest, own: OwnAccount) -> bytes:
        for attempt in range(KT_LOOKUP_ATTEMPTS):
            listing = await self.lookup(manifest, own.account)
            if listing is not None:
                return listing.label
            if attempt + 1 < KT_LOOKUP_ATTEMPTS:
                await self._clock.sleep(KT_LOOKUP_RETRY_S)
        raise NotInLog(
            "this account is not in the transparency log yet, so it cannot be monitored and "
            "peers cannot verify it; try again later (if this persists, the server is "
            "misbehaving)"
        )

    async def _check_own_entries(
        self, own: OwnAccount, mine: Sequence[tuple[int, KeyDirectoryUpdate]]
    ) -> list[NewAlarm]:
        out: list[NewAlarm] = []
        known = self._store.own_lists()
        refreshed = False
        for index, entry in mine:
            if entry.account_key != own.account_key:
                out.append(
                    new_alarm(
                        AlarmKind.UNKNOWN_ACCOUNT_KEY,
                        f"log entry {index} gives this account an account key it never had "
                        f"(device list serial {entry.serial}): the server may be handing your "
                        "contacts someone else's key as yours — contact the provider",
                        index=index,
                    )
                )
                continue
            if entry.device_list_hash not in known and not refreshed:
                refreshed = True
                try:
                    await own.refresh()
                except (ProtocolViolation, InvalidMessage, DecodeError) as exc:
                    log.info("this account's device list did not verify (%s)", type(exc).__name__)
                known = self._store.own_lists()
            if entry.device_list_hash not in known and _unexplained(own, entry, known):
                out.append(
                    new_alarm(
                        AlarmKind.UNKNOWN_DEVICE_LIST,
                        f"log entry {index} gives this account a device list (serial "
                        f"{entry.serial}) that none of its devices signed or accepted: a "
                        "device you did not add may be reading your messages — check your "
                        "devices and contact the provider",
                        index=index,
                    )
                )
        return out


def _unexplained(
    own: OwnAccount, entry: KeyDirectoryUpdate, known: dict[bytes, tuple[int, bytes]]
) -> bool:
    """Whether a list of this account that this device does not know is an alarm.

    The device holding the account key signed every legitimate list: anything else is. A
    device without it learns lists from the server and may have missed one that came and went
    between two checks; it raises the alarm for what cannot be such a list — a second list
    with a serial it knows (equivocation), or one newer than every list the server serves.
    The key-holding device checks the ones in between.
    """
    if own.signs_lists:
        return True
    serials = {serial for serial, _ in known.values()}
    return not serials or entry.serial in serials or entry.serial > max(serials)


def _successors(
    pinned: Manifest, found: Sequence[tuple[int, bytes]]
) -> tuple[tuple[bytes, int] | None, list[NewAlarm]]:
    """Walk the manifests found after the pinned one: each must be a valid successor of the
    last. Returns the newest valid one (to adopt) and an alarm for each that is not."""
    current = pinned
    adopted: tuple[bytes, int] | None = None
    alarms: list[NewAlarm] = []
    for index, data in found:
        try:
            new = verify_manifest(data)
            check_successor(current, new)
        except (DecodeError, InvalidMessage, ProtocolViolation) as exc:
            alarms.append(
                new_alarm(
                    AlarmKind.INVALID_LOG,
                    f"log entry {index} is a manifest that is not a valid successor of version "
                    f"{current.version} ({type(exc).__name__}); it is not followed",
                    index=index,
                )
            )
            continue
        current = new
        adopted = (data, index)
    return adopted, alarms


__all__ = [
    "KeyTransparency",
    "Listing",
    "LogReader",
    "LogWatcher",
    "OwnAccount",
    "Progress",
    "consistency_proof",
    "device_list_hash",
    "new_alarm",
    "verify_listing",
    "verify_log_checkpoint",
    "vrf_key",
]
