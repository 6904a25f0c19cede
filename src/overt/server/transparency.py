"""The server's side of the transparency log: the manifest in force, what the log holds, and the
read-only views that the public endpoints and the explorer page serve.

* :class:`ManifestPublisher` makes sure the log holds the deployment's manifest before
  anything else is appended: entry 0 of a fresh log is version 1; if the configuration (or a
  key) changed since the manifest in force, version + 1 is appended after
  :func:`~overt.transparency.manifest.check_successor` accepted it. A log whose first entry is
  no manifest, a provider key that did not sign the manifest in force, or a log or VRF key that
  differs from the one it names stops the server with what to do (rotating those keys is not
  supported).
* :class:`LogCatalog` reads the log once from the start and then as it grows, and remembers
  where every entry that is *not* a key-directory update sits (manifests, warrants, receipts,
  statistics: few). That finds the manifest in force and counts entries by type at any size,
  without an index in storage. The first read costs one pass over the log at startup.
* :class:`LogView` answers the read endpoints from the log and the published checkpoint, and
  gathers what the explorer page shows.

Everything served is bounded by the *published* checkpoint (the latest one carrying the
witness quorum): a reader is never shown an entry or a proof it cannot verify yet.

This module knows the transparency package and the storage-free log service; no HTTP, no SQL.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from overt.errors import (
    ConfigurationError,
    DecodeError,
    LocalError,
    OvertError,
    ProtocolViolation,
)
from overt.server.checkpointer import Checkpointer, Published
from overt.server.config import TransparencyKeys
from overt.server.deployment import Deployment, build_manifest
from overt.server.errors import NotYetPublished
from overt.server.explorer import CheckpointView, EntryRow, ExplorerPage
from overt.server.limits import EXPLORER_RECENT_ENTRIES, LOG_ENTRIES_PAGE_MAX
from overt.server.logs import LOGGER
from overt.storage import NotFound
from overt.transparency.entries import (
    ENTRY_VERSION,
    AccessReceipt,
    AggregateStatistics,
    EntryType,
    EpochKey,
    KeyDirectoryUpdate,
    ManifestEntry,
    MatchingListCommitment,
    WarrantCommitment,
    WarrantUnsealing,
    decode_entry,
)
from overt.transparency.log import Log
from overt.transparency.manifest import (
    Manifest,
    check_successor,
    describe_policy,
    describe_safety,
    sign_manifest,
    verify_manifest,
)

_log = logging.getLogger(LOGGER)

_RETRY = "retry in a second"
UNKNOWN_TYPE = 0
"""The catalog's type for an entry whose first two bytes are no known version and type."""


@dataclass(frozen=True, slots=True)
class ManifestInForce:
    """The latest manifest in the log: the parsed manifest, its signed bytes, its index."""

    manifest: Manifest
    signed: bytes
    index: int


class LogCatalog:
    """Where the log's rarer entries are, read from the log itself as it grows.

    Key-directory updates, the bulk of the log, are only counted (as the entries that are not
    listed); every other entry's index and type is kept, in index order.
    """

    def __init__(self, log: Log) -> None:
        self._log = log
        self._scanned = 0
        self._others: list[tuple[int, int]] = []  # (index, type) of non-KT entries
        self._lock = asyncio.Lock()

    @property
    def scanned(self) -> int:
        return self._scanned

    async def scan_to(self, size: int) -> None:
        """Read every entry below ``size`` not read yet (pages of the log's bound)."""
        async with self._lock:
            while self._scanned < size:
                end = min(size, self._scanned + LOG_ENTRIES_PAGE_MAX)
                page = await self._log.entries(self._scanned, end)
                if not page:
                    raise ConfigurationError("the log store returned fewer entries than it holds")
                for offset, data in enumerate(page):
                    kind = _entry_type(data)
                    if kind != EntryType.KEY_DIRECTORY_UPDATE:
                        self._others.append((self._scanned + offset, kind))
                self._scanned += len(page)

    def counts(self, size: int) -> dict[int, int]:
        """Entries of each type among the first ``size`` (at most what was scanned)."""
        size = min(size, self._scanned)
        listed = self._others[: bisect.bisect_left(self._others, (size, -1))]
        counts = dict.fromkeys((int(t) for t in EntryType), 0)
        for _, kind in listed:
            counts[kind] = counts.get(kind, 0) + 1
        counts[EntryType.KEY_DIRECTORY_UPDATE] = size - len(listed)
        return counts

    def last_manifest(self) -> int | None:
        """The index of the last manifest entry scanned, or ``None``."""
        for index, kind in reversed(self._others):
            if kind == EntryType.MANIFEST:
                return index
        return None


_KNOWN_TYPES = frozenset(int(t) for t in EntryType)


def _entry_type(data: bytes) -> int:
    if len(data) >= 2 and data[0] == ENTRY_VERSION and data[1] in _KNOWN_TYPES:
        return data[1]
    return UNKNOWN_TYPE


class ManifestPublisher:
    """Makes the deployment's manifest the one in force in the log (once per process)."""

    def __init__(
        self, log: Log, catalog: LogCatalog, deployment: Deployment, keys: TransparencyKeys
    ) -> None:
        self._log = log
        self._catalog = catalog
        self._deployment = deployment
        self._keys = keys
        self._current: ManifestInForce | None = None
        self._lock = asyncio.Lock()

    @property
    def current(self) -> ManifestInForce | None:
        return self._current

    def _build(self, version: int) -> Manifest:
        return build_manifest(
            self._deployment,
            version=version,
            provider_key=self._keys.provider.public_key,
            log_origin=self._keys.origin,
            log_vkey=self._keys.log.verifier_key,
            vrf_key=self._keys.vrf.public_key,
        )

    async def ensure(self) -> ManifestInForce:
        """The manifest in force, after appending the deployment's if the log lacks it."""
        if self._current is not None:
            return self._current
        async with self._lock:
            if self._current is None:
                self._current = await self._ensure()
            return self._current

    async def _ensure(self) -> ManifestInForce:
        size = await self._log.size()
        await self._catalog.scan_to(size)
        at = self._catalog.last_manifest()
        if at is None:
            if size:
                raise ConfigurationError(
                    f"the log holds {size} entries but no deployment manifest: it is not the "
                    "log of an Overt deployment; point the server at its own database"
                )
            return await self._append(self._build(1))
        (data,) = await self._log.entries(at, at + 1)
        entry = decode_entry(data)
        if not isinstance(entry, ManifestEntry):
            raise LocalError(f"log entry {at} changed type while the server read it")
        old = verify_manifest(entry.manifest)
        wanted = self._build(old.version)
        if wanted.canonical_bytes() == old.canonical_bytes():
            return ManifestInForce(old, entry.manifest, at)
        self._check_keys_kept(old, wanted)
        new = self._build(old.version + 1)
        try:
            check_successor(old, new)
        except ProtocolViolation as e:
            raise ConfigurationError(
                f"the configuration cannot follow manifest version {old.version}: {e}"
            ) from None
        except OvertError as e:
            raise ConfigurationError(
                f"{e}: provider.key is not the key that signed manifest version {old.version}; "
                "restore it from a backup"
            ) from None
        _log.warning(
            "the deployment configuration changed: appending a new manifest",
            extra={"fields": {"version": new.version}},
        )
        return await self._append(new)

    @staticmethod
    def _check_keys_kept(old: Manifest, new: Manifest) -> None:
        if old.log != new.log:
            raise ConfigurationError(
                "log.key (or the origin) is not the log key of the manifest in force: restore "
                "log.key from a backup (rotating the log key is not supported)"
            )
        if old.vrf_key != new.vrf_key:
            raise ConfigurationError(
                "vrf.key is not the VRF key of the manifest in force: restore it from a backup "
                "(rotating the VRF key would change every account's label)"
            )

    async def _append(self, manifest: Manifest) -> ManifestInForce:
        signed = sign_manifest(manifest, self._keys.provider)
        (index,) = await self._log.append_batch([ManifestEntry(signed)])
        return ManifestInForce(manifest, signed, index)


def _entry_row(index: int, data: bytes) -> EntryRow:
    """One line of the explorer: index, kind and a detail that names no user."""
    try:
        entry = decode_entry(data)
    except DecodeError:
        return EntryRow(index, "unreadable entry", "")
    if isinstance(entry, KeyDirectoryUpdate):
        return EntryRow(index, "key directory update", f"label {entry.label[:4].hex()}…")
    if isinstance(entry, ManifestEntry):
        try:
            version = f"version {verify_manifest(entry.manifest).version}"
        except OvertError:
            version = "does not verify"
        return EntryRow(index, "manifest", version)
    if isinstance(entry, WarrantCommitment):
        return EntryRow(index, "warrant commitment", f"warrant {entry.warrant_id[:4].hex()}…")
    if isinstance(entry, WarrantUnsealing):
        return EntryRow(index, "warrant unsealing", f"warrant {entry.warrant_id[:4].hex()}…")
    if isinstance(entry, AccessReceipt):
        return EntryRow(
            index, "access receipt", f"warrant {entry.warrant_id[:4].hex()}…, {entry.count}"
        )
    if isinstance(entry, EpochKey):
        return EntryRow(index, "escrow epoch key", f"epoch {entry.epoch}")
    if isinstance(entry, MatchingListCommitment):
        return EntryRow(index, "matching list commitment", f"version {entry.version}")
    if isinstance(entry, AggregateStatistics):
        return EntryRow(index, "aggregate statistics", f"{len(entry.counters)} counters")
    return EntryRow(index, type(entry).__name__, "")


TYPE_NAMES = {
    EntryType.MANIFEST: "manifest",
    EntryType.KEY_DIRECTORY_UPDATE: "key directory update",
    EntryType.WARRANT_COMMITMENT: "warrant commitment",
    EntryType.WARRANT_UNSEALING: "warrant unsealing",
    EntryType.ACCESS_RECEIPT: "access receipt",
    EntryType.AGGREGATE_STATISTICS: "aggregate statistics",
    EntryType.EPOCH_KEY: "escrow epoch key",
    EntryType.MATCHING_LIST: "matching list commitment",
}


class LogView:
    """The log as the public reads it: bounded by the published checkpoint."""

    def __init__(
        self,
        log: Log,
        publisher: ManifestPublisher,
        checkpointer: Checkpointer,
        catalog: LogCatalog,
        deployment: Deployment,
    ) -> None:
        self._log = log
        self._publisher = publisher
        self._checkpointer = checkpointer
        self._catalog = catalog
        self._deployment = deployment

    async def manifest(self) -> ManifestInForce:
        return await self._publisher.ensure()

    def published(self) -> Published:
        """The published checkpoint; :class:`NotYetPublished` before the first."""
        published = self._checkpointer.published
        if published is None:
            raise NotYetPublished(f"no checkpoint has been published yet; {_RETRY}")
        return published

    def _covered(self, size: int) -> Published:
        published = self.published()
        if size > published.size:
            raise NotYetPublished(
                f"the published checkpoint has {published.size} entries; {_RETRY} for more"
            )
        return published

    async def checkpoint_at(self, size: int) -> bytes:
        """The stored checkpoint of ``size`` with its cosignatures; ``NotFound`` if none."""
        note = await self._log.checkpoint_at(size)
        if note is None:
            raise NotFound("the log signed no checkpoint of this size")
        return note.to_bytes()

    async def entries(self, start: int, end: int) -> list[bytes]:
        """Entries ``[start, end)``, at most :data:`LOG_ENTRIES_PAGE_MAX`."""
        if start > end:
            raise NotFound("no entries in a range that ends before it starts")
        self._covered(end)
        return await self._log.entries(start, min(end, start + LOG_ENTRIES_PAGE_MAX))

    async def inclusion(self, index: int, size: int) -> list[bytes]:
        if index >= size:
            raise NotFound("a tree of this size has no entry at this index")
        self._covered(size)
        return await self._log.inclusion_proof(index, size)

    async def consistency(self, first: int, second: int) -> list[bytes]:
        if first > second:
            raise NotFound("a tree is consistent only with smaller or equal trees")
        self._covered(second)
        return await self._log.consistency_proof(first, second)

    async def page(self) -> ExplorerPage:
        """Everything the explorer page shows."""
        current = await self._publisher.ensure()
        manifest = current.manifest
        names = {(w.vkey.name, w.vkey.key_id): w.name for w in self._deployment.witnesses}
        published = self._checkpointer.published
        checkpoint: CheckpointView | None = None
        counts: dict[int, int] = {}
        recent: list[EntryRow] = []
        if published is not None:
            size = published.size
            await self._catalog.scan_to(size)
            counts = self._catalog.counts(size)
            start = max(0, size - EXPLORER_RECENT_ENTRIES)
            data = await self._log.entries(start, size)
            recent = [_entry_row(start + i, d) for i, d in reversed(list(enumerate(data)))]
            times = [c.timestamp for c in published.cosignatures if c.timestamp is not None]
            checkpoint = CheckpointView(
                size=size,
                root_hash=published.checkpoint.root_hash,
                cosigned_at=max(times) if times else None,
                cosigners=tuple(
                    names.get((c.key.name, c.key.key_id), c.key.name)
                    for c in published.cosignatures
                ),
            )
        return ExplorerPage(
            deployment=manifest.deployment,
            policy=describe_policy(manifest),
            safety=describe_safety(manifest),
            manifest_version=manifest.version,
            manifest_index=current.index,
            origin=manifest.log.origin,
            vkey=manifest.log.vkey.to_text(),
            witnesses=tuple(w.name for w in self._deployment.witnesses),
            quorum=manifest.witness_quorum,
            checkpoint=checkpoint,
            counts=tuple(_named_counts(counts.items())),
            recent=tuple(recent),
        )


def _named_counts(items: Iterable[tuple[int, int]]) -> Iterable[tuple[str, int]]:
    for kind, n in items:
        if kind in TYPE_NAMES:
            yield TYPE_NAMES[EntryType(kind)], n
        elif n:
            yield "unreadable", n
