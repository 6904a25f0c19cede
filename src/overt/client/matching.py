"""Known-content matching on the client (DESIGN §5, docs/matching.md): the verified table, the
matching seed and image counter, and one bundle per image sent.

**When it runs.** Only if the pinned manifest turns matching on. :meth:`ClientMatching.refresh`
asks the server for the current list version (``GET /v1/matching/list``), brings the local
table to it — by the deltas (``GET /v1/matching/delta/{v}``) from the version it holds, or the
whole table (``GET /v1/matching/table``) — then reads the version's log entry
(``MatchingListCommitment``, entry type 8) at the index the server names, checks its
inclusion proof against the checkpoint the profile verified and connected (as
:mod:`overt.client.kt` does for device lists), and runs
:func:`~overt.safety.matching.lists.verify_table`: enough organisations named in the manifest
signed it, the table is the committed one, the LSH parameters are the manifest's, the version
does not go back. Only then is the table kept and used. Any failure **refuses**: the client does
not scan at all, and :meth:`status` says why (a :class:`MatchingStatus`, shown by
``overt status``). The server never learns whether a client refused.

**Per image** (:meth:`ClientMatching.after_send`, called by
:meth:`~overt.client.Client.send_attachment` once the message went out). An attachment whose
content type is ``image/*`` or that decodes as an image is hashed (trim, PDQ, quality gate) and
turned into one :class:`~overt.safety.matching.psi.ImageBundle` (a decoy bundle if it cannot be
matched) with the next value of the image counter, which is stored *before* the bundle is made,
so no share coordinate is ever used twice. The bundle is queued in the profile and uploaded
(``POST /v1/matching/bundles``); a bundle that cannot be uploaded now (server unreachable,
slowed down, failing) stays queued and goes out with the next image or :meth:`flush`
(``Client.sync`` calls it). The message itself never waits for, or fails because of, matching.

**The account's seed** (:class:`~overt.safety.matching.psi.MatchingSecret`) is one per
account, so the server counts the matches of all its devices against one threshold. The device
that creates the account draws it (:meth:`ClientMatching.create_account_seed`) and keeps matching
slot = its device id; approving a link (:meth:`ClientMatching.link_secrets`) hands the seed and
a fresh *matching slot* to the new device inside the approval, sealed to it
(:class:`~overt.client.link.AccountSecrets`), which keeps them (:meth:`ClientMatching.adopt`).
The slot is the device's part of its share coordinates (``x = slot·G + (n mod G) + 1``, ``n``
this device's image counter, stored before use): the approving device keeps its device id as
slot and hands out each other slot once, counting down from 255 — never again after a removal
— so no two devices of an account ever use the same coordinate; the count stops above every
device id listed (those are the slots of devices that hold no slot of their own). A device
linked before seeds travelled in the approval (or once the slots are used up) holds no account
seed: it draws a seed of its own on its first image and uses its device id as slot; its
matches then count toward a threshold of their own on the server (docs/matching.md §7), and
:meth:`status` says so. The seed is never logged or printed (its ``repr`` is redacted).

**Kept** in ``matching.db`` next to the profile (mode 0600): the 32-byte matching seed and
whether it is the account's, this device's slot (and, on the device holding the account key,
the slots it handed out), the image counter, the verified table and its entry, the last
refusal, and the queued bundles.

What this module must not know: the server's code, the protocol's sessions.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Final

from overt.client import _api
from overt.client.clock import Clock
from overt.client.errors import (
    BadResponse,
    NotFound,
    ServerRefused,
    ServerUnreachable,
    TransparencyUnavailable,
)
from overt.client.kt import KeyTransparency, LogReader
from overt.client.limits import KT_LOOKUP_ATTEMPTS, KT_LOOKUP_RETRY_S
from overt.client.link import AccountSecrets
from overt.client.transport import Response
from overt.crypto import Rng
from overt.errors import DecodeError, InvalidMessage, LocalError, OvertError
from overt.safety.matching import (
    BlindedTable,
    ListRefused,
    MatchingSecret,
    PsiParams,
    RefusalReason,
    TableDelta,
    VerifiedTable,
    apply_delta,
    decode_image,
    hash_rgb,
    make_bundle,
    make_payload,
    verify_table,
)
from overt.safety.matching.deployment import psi_params
from overt.safety.matching.limits import MAX_DEVICES, MAX_IMAGE_BYTES
from overt.safety.matching.payload import PAYLOAD_LEN
from overt.transparency.entries import MatchingListCommitment, decode_entry
from overt.transparency.manifest import Manifest
from overt.transparency.merkle import hash_leaf, verify_inclusion

log = logging.getLogger("overt.client.matching")

DB_FILE_NAME: Final = "matching.db"
MAX_QUEUED_BUNDLES: Final = 1000
"""Bundles kept for upload at most; past this the oldest are dropped (and counted)."""
BUNDLES_PER_FLUSH: Final = 100
"""Bundles one :meth:`ClientMatching.flush` tries to upload."""
MAX_TABLE_DOWNLOAD: Final = 1 << 31
"""Largest table downloaded (about 3.5·10^6 list hashes)."""
REFRESH_INTERVAL_MS: Final = 3600 * 1000
"""How often sending an image asks the server for a newer list version (or, after a refusal,
tries again); :meth:`ClientMatching.refresh` itself asks whenever called."""
SEED_ACCOUNT: Final = b"account"
"""``seed_origin`` of the account's shared seed (drawn at account creation or received at
linking)."""
SEED_OWN: Final = b"device"
"""``seed_origin`` of a seed this device drew for itself (linked without the account's)."""

Request = Callable[..., Awaitable[Response]]
"""The client's signed request (``Client._request``)."""

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS matching_meta (key TEXT PRIMARY KEY, value BLOB NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS matching_queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT, bundle BLOB NOT NULL, created_ms INTEGER NOT NULL
) STRICT;
"""


class MatchingState(StrEnum):
    OFF = "off"
    """The manifest turns matching off (or no manifest is pinned)."""
    NO_LIST = "no-list"
    """Matching is on but the server publishes no list yet: nothing to match against."""
    READY = "ready"
    """A verified table is in use: every image sent is matched."""
    REFUSED = "refused"
    """The list did not verify: this client does not scan (``reason`` says why)."""


@dataclass(frozen=True, slots=True)
class MatchingStatus:
    state: MatchingState
    version: int | None = None
    signed_by: tuple[str, ...] = ()
    reason: str = ""
    refusal: RefusalReason | None = None
    queued: int = 0
    own_seed: bool = False
    """This device matches under a seed of its own, not the account's (linked before seeds
    were shared at linking): its matches count toward a threshold of their own."""

    def describe(self) -> str:
        """One line for ``overt status``."""
        if self.state is MatchingState.OFF:
            return "known-content matching: off"
        if self.state is MatchingState.NO_LIST:
            return "known-content matching: on, but no list is published yet (nothing scanned)"
        if self.state is MatchingState.REFUSED:
            return f"known-content matching: on, but this client does not scan: {self.reason}"
        who = ", ".join(self.signed_by)
        queued = f"; {self.queued} bundle(s) waiting for upload" if self.queued else ""
        own = (
            "; this device was linked without the account's matching seed, so its images "
            "count toward a threshold of their own (a device linked anew shares the account's)"
            if self.own_seed
            else ""
        )
        return (
            f"known-content matching: on, list version {self.version} signed by {who}{queued}{own}"
        )


class _Profile:
    """``matching.db``: synchronous, one small transaction per call (like the profile store)."""

    def __init__(self, directory: Path) -> None:
        path = directory / DB_FILE_NAME
        if not path.exists():
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def get(self, key: str) -> bytes | None:
        row = self._db.execute("SELECT value FROM matching_meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: committed on return, rolled back on error."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            yield self._db

    def _set(self, key: str, value: bytes) -> None:
        """Within :meth:`_tx`: store ``value`` under ``key``."""
        self._db.execute(
            "INSERT INTO matching_meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def put(self, values: dict[str, bytes]) -> None:
        with self._tx():
            for key, value in values.items():
                self._set(key, value)

    def delete(self, *keys: str) -> None:
        with self._tx() as db:
            for key in keys:
                db.execute("DELETE FROM matching_meta WHERE key = ?", (key,))

    def allocate_slot(self, holder: bytes, listed: Sequence[int], own_slot: int) -> int | None:
        """The matching slot of the device whose identity key is ``holder``: the one handed to
        it before, else the next never handed out, counting down from ``MAX_DEVICES − 1``;
        None once the next would reach ``own_slot`` or a device id in ``listed`` (the slots
        of devices that never received one). One transaction: a slot is stored as given
        before it leaves this device."""
        key = "slot:" + holder.hex()
        with self._tx():
            given = self.get(key)
            if given is not None:
                return int.from_bytes(given, "big")
            following = self.get("next_slot")
            slot = MAX_DEVICES - 1 if following is None else int.from_bytes(following, "big")
            if slot <= max(d % MAX_DEVICES for d in (own_slot, *listed)):
                return None
            self._set(key, slot.to_bytes(4, "big"))
            self._set("next_slot", (slot - 1).to_bytes(4, "big"))
            return slot

    def next_sequence(self) -> int:
        """The image counter's next value, stored before it is used."""
        with self._tx():
            stored = self.get("sequence")
            n = 0 if stored is None else int.from_bytes(stored, "big")
            self._set("sequence", (n + 1).to_bytes(8, "big"))
            return n

    def enqueue(self, bundle: bytes, now_ms: int) -> int:
        """Queue ``bundle``; return how many old ones were dropped to stay bounded."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO matching_queue (bundle, created_ms) VALUES (?, ?)", (bundle, now_ms)
            )
            excess = max(0, self.queue_size() - MAX_QUEUED_BUNDLES)
            if excess:
                db.execute(
                    "DELETE FROM matching_queue WHERE id IN "
                    "(SELECT id FROM matching_queue ORDER BY id LIMIT ?)",
                    (excess,),
                )
            return excess

    def queued(self, limit: int) -> list[tuple[int, bytes]]:
        rows = self._db.execute(
            "SELECT id, bundle FROM matching_queue ORDER BY id LIMIT ?", (limit,)
        ).fetchall()
        return [(int(r[0]), bytes(r[1])) for r in rows]

    def queue_size(self) -> int:
        (count,) = self._db.execute("SELECT count(*) FROM matching_queue").fetchone()
        return int(count)

    def dequeue(self, bundle_id: int) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM matching_queue WHERE id = ?", (bundle_id,))

    def close(self) -> None:
        self._db.close()


@dataclass(frozen=True, slots=True, eq=False)
class _Ready:
    verified: VerifiedTable
    params: PsiParams
    secret: MatchingSecret


class ClientMatching:
    """One profile's matching (see the module docstring)."""

    def __init__(
        self,
        directory: Path,
        kt: KeyTransparency,
        reader: LogReader,
        request: Request,
        clock: Clock,
        rng: Rng,
        holds_account_key: Callable[[], bool] = lambda: False,
    ) -> None:
        self._profile = _Profile(directory)
        self._holds_account_key = holds_account_key
        self._kt = kt
        self._reader = reader
        self._request = request
        self._clock = clock
        self._rng = rng
        self._ready: _Ready | None = None
        self._lock = asyncio.Lock()
        self._refreshed_ms: int | None = None

    def close(self) -> None:
        self._profile.close()

    # ------------------------------------------------------------------ the list

    def _refused(self, exc: ListRefused) -> MatchingStatus:
        self._ready = None
        self._profile.put({"refusal": exc.reason.value.encode(), "reason": str(exc).encode()})
        log.warning("matching list refused: %s", exc)
        return self.status()

    def status(self) -> MatchingStatus:
        """What the client does about matching now (no network)."""
        manifest = self._kt.pinned()
        if manifest is None or not manifest.safety.matching.enabled:
            return MatchingStatus(MatchingState.OFF)
        queued = self._profile.queue_size()
        refusal = self._profile.get("refusal")
        if refusal is not None:
            reason = (self._profile.get("reason") or b"").decode()
            return MatchingStatus(
                MatchingState.REFUSED, reason=reason, refusal=RefusalReason(refusal.decode()),
                queued=queued,
            )  # fmt: skip
        ready = self._ready or self._load()
        if ready is None:
            return MatchingStatus(MatchingState.NO_LIST, queued=queued)
        return MatchingStatus(
            MatchingState.READY, ready.verified.entry.version, ready.verified.signed_by,
            queued=queued, own_seed=self._profile.get("seed_origin") == SEED_OWN,
        )  # fmt: skip

    # ------------------------------------------------------------------ the account's seed

    def _secret(self) -> MatchingSecret:
        seed = self._profile.get("seed")
        if seed is None:
            # No account seed was handed to this device: the account-key holder of a profile
            # made before seeds were drawn at creation makes its own the account's; any other
            # device matches under its own (status says so).
            origin = SEED_ACCOUNT if self._holds_account_key() else SEED_OWN
            seed = MatchingSecret.generate(self._rng).export_secret()
            self._profile.put({"seed": seed, "seed_origin": origin})
        return MatchingSecret(seed)

    def _slot(self, device: int) -> int:
        """This device's part of its share coordinates (the device id if none was given)."""
        slot = self._profile.get("slot")
        return device % MAX_DEVICES if slot is None else int.from_bytes(slot, "big")

    def create_account_seed(self, device: int) -> None:
        """At account creation: draw the account's seed (kept if already drawn, as when a lost
        answer makes the caller register again); this device keeps ``device`` as its slot."""
        if self._profile.get("seed") is None:
            seed = MatchingSecret.generate(self._rng).export_secret()
            self._profile.put(
                {"seed": seed, "seed_origin": SEED_ACCOUNT, "slot": device.to_bytes(4, "big")}
            )
        self._ready = None

    def link_secrets(self, holder: bytes, listed: Sequence[int], device: int) -> AccountSecrets:
        """On the device holding the account key, approving a link: the account's seed and the
        new device's slot (see the module docstring). ``holder`` is the new device's identity
        signing key, ``listed`` the device ids of the account's list, ``device`` this device's
        id."""
        seed = self._profile.get("seed")
        if seed is None or self._profile.get("seed_origin") != SEED_ACCOUNT:
            # A profile from before seeds were drawn at creation: the seed this device
            # already matches under (or a new one) becomes the account's.
            seed = self._secret().export_secret()
            self._profile.put({"seed_origin": SEED_ACCOUNT})
        slot = self._profile.allocate_slot(holder, listed, self._slot(device))
        if slot is None:
            log.warning("matching: no matching slot left to give; the new device will match "
                        "under a seed of its own")  # fmt: skip
            return AccountSecrets(None, 0)
        return AccountSecrets(seed, slot)

    @staticmethod
    def check_secrets(secrets: AccountSecrets) -> None:
        """:class:`DecodeError` unless the slot handed over fits the share coordinates."""
        if secrets.matching_seed is not None and not 0 <= secrets.matching_slot < MAX_DEVICES:
            raise DecodeError(f"a matching slot is 0..{MAX_DEVICES - 1}")

    def adopt(self, secrets: AccountSecrets) -> None:
        """On a device finishing its link: keep the account's seed and this device's slot (an
        approval without a seed leaves the device to draw its own at its first image)."""
        self.check_secrets(secrets)
        if secrets.matching_seed is None:
            return
        self._profile.put(
            {"seed": secrets.matching_seed, "seed_origin": SEED_ACCOUNT,
             "slot": secrets.matching_slot.to_bytes(4, "big")}
        )  # fmt: skip
        self._ready = None

    def _load(self) -> _Ready | None:
        """The verified table kept in the profile (checked again against its entry)."""
        manifest = self._kt.pinned()
        table, entry = self._profile.get("table"), self._profile.get("entry")
        if manifest is None or table is None or entry is None:
            return None
        policy = manifest.safety.matching
        try:
            params = psi_params(policy)
            decoded = decode_entry(entry)
            if not isinstance(decoded, MatchingListCommitment):
                raise DecodeError("not a list commitment")
            verified = verify_table(BlindedTable.decode(table), decoded, policy, lsh=params.lsh)
        except (DecodeError, LocalError, ListRefused):
            self._profile.delete("table", "entry")
            return None
        self._ready = _Ready(verified, params, self._secret())
        return self._ready

    async def refresh(self) -> MatchingStatus:
        """Bring the table to the server's current version and verify it (see the module
        docstring); a refusal is recorded and returned, not raised."""
        async with self._lock:
            self._refreshed_ms = self._clock.now_ms()
            manifest = await self._kt.manifest()
            if manifest is None or not manifest.safety.matching.enabled:
                return MatchingStatus(MatchingState.OFF)
            try:
                return await self._refresh(manifest)
            except ListRefused as exc:
                return self._refused(exc)

    async def _refresh(self, manifest: Manifest) -> MatchingStatus:
        policy = manifest.safety.matching
        try:
            params = psi_params(policy)
        except LocalError as exc:
            raise ListRefused(RefusalReason.PARAMETERS, str(exc)) from None
        try:
            info = _api.obj((await self._request("GET", "/v1/matching/list", signed=False)).json(),
                            "matching list")  # fmt: skip
        except NotFound:
            return self.status()
        version = _api.integer(info, "version", "matching list")
        log_index = _api.integer(info, "log_index", "matching list")
        held = self._ready or self._load()
        current = held is not None and held.verified.entry.version == version
        if current and self._profile.get("refusal") is None:
            return self.status()
        table = await self._table(held, version)
        entry = await self._logged_entry(manifest, log_index)
        pinned = self._profile.get("pinned_version")
        verified = verify_table(
            table, entry, policy, lsh=params.lsh,
            pinned_version=None if pinned is None else int.from_bytes(pinned, "big"),
        )  # fmt: skip
        self._profile.put(
            {"table": table.encode(), "entry": entry.encode(),
             "pinned_version": entry.version.to_bytes(4, "big")}
        )  # fmt: skip
        self._profile.delete("refusal", "reason")
        self._ready = _Ready(verified, params, self._secret())
        log.info("matching list version %d verified", entry.version)
        return self.status()

    async def _table(self, held: _Ready | None, version: int) -> BlindedTable:
        if held is not None and held.verified.entry.version < version:
            table = held.verified.table
            try:
                for v in range(table.header.version + 1, version + 1):
                    answer = await self._request("GET", f"/v1/matching/delta/{v}", signed=False)
                    table = apply_delta(table, TableDelta.decode(answer.content))
                return table
            except (NotFound, DecodeError, InvalidMessage):
                log.info("no usable delta chain; downloading the whole table")
        answer = await self._request("GET", f"/v1/matching/table?version={version}", signed=False)
        if len(answer.content) > MAX_TABLE_DOWNLOAD:
            raise ListRefused(RefusalReason.INVALID_TABLE, "the table is larger than allowed")
        try:
            return BlindedTable.decode(answer.content)
        except DecodeError:
            raise ListRefused(
                RefusalReason.INVALID_TABLE, "the server's table does not decode"
            ) from None

    async def _logged_entry(self, manifest: Manifest, index: int) -> MatchingListCommitment:
        """The entry at ``index``, proven to be in the log the profile follows."""
        for attempt in range(KT_LOOKUP_ATTEMPTS):
            verified = await self._kt.latest(manifest)
            cp = verified.checkpoint
            if index < cp.size:
                (data,) = await self._reader.entries(index, index + 1)
                proof = await self._reader.inclusion_proof(index, cp.size)
                try:
                    verify_inclusion(hash_leaf(data), index, cp.size, proof, cp.root_hash)
                    entry = decode_entry(data)
                except (InvalidMessage, DecodeError):
                    raise ListRefused(
                        RefusalReason.TABLE_MISMATCH,
                        "the server cannot prove that the list's commitment is in the "
                        "transparency log",
                    ) from None
                if not isinstance(entry, MatchingListCommitment):
                    raise ListRefused(
                        RefusalReason.TABLE_MISMATCH,
                        f"log entry {index} is not a matching list commitment",
                    )
                return entry
            if attempt + 1 < KT_LOOKUP_ATTEMPTS:
                await self._clock.sleep(KT_LOOKUP_RETRY_S)
        raise TransparencyUnavailable(
            "the list's commitment is not yet covered by a cosigned checkpoint; try again later"
        )

    # ------------------------------------------------------------------ images

    async def after_send(self, data: bytes, content_type: str, device: int) -> None:
        """Hash an attachment just sent and queue (then try to upload) its bundle. Never
        raises for matching's own failures: they are logged, the bundle stays queued."""
        manifest = self._kt.pinned()
        if manifest is None or not manifest.safety.matching.enabled:
            return
        if not content_type.lower().startswith("image/") and not _looks_like_image(data):
            return
        try:
            now = self._clock.now_ms()
            due = self._refreshed_ms is None or now - self._refreshed_ms >= REFRESH_INTERVAL_MS
            if due:
                try:
                    await self.refresh()
                except OvertError as exc:  # unreachable now: keep using the table held
                    log.info("matching: could not refresh the list now: %s", exc)
            ready = self._ready or self._load()
            if ready is None or self._profile.get("refusal") is not None:
                return  # refused (status says why) or no list: nothing is scanned
            sequence = self._profile.next_sequence()
            slot = self._slot(device)
            bundle = await asyncio.to_thread(_bundle, ready, data, slot, sequence, self._rng)
            dropped = self._profile.enqueue(bundle, self._clock.now_ms())
            if dropped:
                log.warning("matching: %d queued bundle(s) dropped (queue full)", dropped)
            await self.flush()
        except (OvertError, sqlite3.Error) as exc:
            log.warning("matching: the image's bundle could not be made or sent now: %s", exc)

    async def flush(self) -> int:
        """Upload queued bundles; return how many are still queued."""
        for bundle_id, bundle in self._profile.queued(BUNDLES_PER_FLUSH):
            try:
                await self._request("POST", "/v1/matching/bundles", content=bundle)
            except (ServerUnreachable, BadResponse):
                break  # try again later
            except ServerRefused as exc:
                if exc.status == 429 or exc.status >= 500:
                    break
                log.warning("matching: the server refused a bundle (%s); dropping it", exc.code)
            self._profile.dequeue(bundle_id)
        return self._profile.queue_size()


def _looks_like_image(data: bytes) -> bool:
    return data[:8] == b"\x89PNG\r\n\x1a\n" or data[:3] == b"\xff\xd8\xff" or (
        data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    ) or data[:6] in (b"GIF87a", b"GIF89a")  # fmt: skip


def _bundle(ready: _Ready, data: bytes, slot: int, sequence: int, rng: Rng) -> bytes:
    """The bundle of one image: a decoy if it does not decode or is below the quality gate."""
    digest = None
    payload = bytes(PAYLOAD_LEN)
    if len(data) <= MAX_IMAGE_BYTES:
        try:
            rgb = decode_image(data)
            digest = hash_rgb(rgb)
            payload = make_payload(rgb, digest)
        except (DecodeError, ValueError):
            digest = None
    bundle = make_bundle(
        table=ready.verified, secret=ready.secret, device=slot,
        sequence=sequence, digest=digest, payload=payload, params=ready.params, rng=rng,
    )  # fmt: skip
    return bundle.encode()


__all__ = [
    "ClientMatching",
    "MatchingState",
    "MatchingStatus",
]
