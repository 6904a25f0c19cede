"""The storage contract: one small Protocol per kind of thing, the records they exchange, and
:class:`Storage`, which bundles one store of each kind with the means to close them.

The relay server stores what clients upload as *opaque bytes*: signed device lists, public
prekeys, ciphertext envelopes, encrypted attachments, and the transparency log's entries, hashes
and signed checkpoints. This layer must not know how any of them is encoded, signed, hashed or
encrypted; it never imports :mod:`overt.protocol`, :mod:`overt.transparency`,
:mod:`overt.server` or :mod:`overt.client`. It knows only the identifiers it indexes by — an
account id (bytes), a device id (uint32), prekey ids (uint32), server message ids it assigns,
blob ids chosen by callers, leaf indices and ``(level, index)`` positions of complete subtrees —
and the bounds of :mod:`overt.storage.limits`.

(The key directory's records — :class:`KtStore` — are likewise opaque: a serial, a log index
and two byte strings per account.)

Conventions every backend follows, and ``tests/storage/test_contract.py`` checks:

* Every operation is a coroutine and is atomic: it happens entirely or not at all, also when
  several callers (tasks, threads, processes on one SQLite file) race.
* ``None`` means absent; an exception means failure (see :mod:`overt.storage.errors`).
* Server times and ids are plain integers supplied by the caller or assigned by the store;
  the store never reads a clock or draws randomness.
* Records are frozen; ``repr`` leaves out envelopes, reporting tags and blob contents.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import TracebackType
from typing import Protocol, Self

from overt.errors import LimitExceeded
from overt.storage.errors import InvalidArgument
from overt.storage.groups import GroupStore
from overt.storage.limits import (
    INT64_MAX,
    LOG_APPEND_BATCH_MAX,
    LOG_APPEND_BATCH_MAX_BYTES,
    LOG_CHECKPOINT_MAX_LEN,
    LOG_ENTRY_MAX_LEN,
    LOG_HASH_MAX_LEN,
    LOG_HASHES_MAX,
    LOG_LEVEL_MAX,
    LOG_PAGE_MAX,
)
from overt.storage.matching import MatchingStore
from overt.storage.moderation import ModeratorStore, ReportStore, StandingStore

# ----------------------------------------------------------------------------- records


class OneTimeKind(StrEnum):
    """The two pools of one-time prekeys a device publishes (stored as these strings)."""

    X25519 = "x25519"
    ML_KEM_768 = "ml-kem-768"


@dataclass(frozen=True, slots=True)
class PrekeyRecord:
    """A public prekey as the device uploaded it: its id and its opaque encoding."""

    id: int
    data: bytes


@dataclass(frozen=True, slots=True)
class DeviceAuth:
    """A device of an account and the public key its requests are signed with."""

    device: int
    signing_key: bytes


@dataclass(frozen=True, slots=True)
class AccountRecord:
    """An account: identity key, the signed device list with its serial, the devices' auth keys.

    ``devices`` is sorted by device id when it comes out of a store.
    """

    account_id: bytes
    identity_key: bytes
    device_list: bytes
    serial: int
    devices: tuple[DeviceAuth, ...]


class MailKind(StrEnum):
    """What a stored mail's bytes are (stored as these strings): a one-to-one envelope, or one
    group message fanned out to every member device. Opaque either way; the label only tells
    the recipient how to read them."""

    ENVELOPE = "envelope"
    GROUP = "group"


@dataclass(frozen=True, slots=True)
class NewMail:
    """One envelope to enqueue for one recipient device."""

    recipient_account: bytes
    recipient_device: int
    sender_account: bytes
    sender_device: int
    envelope: bytes = field(repr=False)
    kind: MailKind = MailKind.ENVELOPE


@dataclass(frozen=True, slots=True)
class Mail:
    """One stored envelope, as fetched by its recipient device."""

    id: int
    recipient_account: bytes
    recipient_device: int
    sender_account: bytes
    sender_device: int
    server_time: int
    envelope: bytes = field(repr=False)
    reporting_tag: bytes = field(repr=False)
    kind: MailKind = MailKind.ENVELOPE


@dataclass(frozen=True, slots=True)
class LogLeaf:
    """One leaf to append to the log: the entry's bytes and its leaf hash, both opaque here."""

    data: bytes
    hash: bytes


@dataclass(frozen=True, slots=True)
class LogNode:
    """The hash of the complete subtree over leaves ``[index·2^level, (index+1)·2^level)``.

    Level 0 is the leaves themselves (their hashes come with :class:`LogLeaf`); an append
    carries the nodes of levels 1 and up that it completes (see :func:`log_nodes_completed`).
    """

    level: int
    index: int
    hash: bytes


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    """The latest signed checkpoint the log stored, with the tree size it was stored under."""

    size: int
    checkpoint: bytes


@dataclass(frozen=True, slots=True)
class KtRecord:
    """One key-directory entry of an account, as the server keeps it to answer lookups.

    ``serial`` is the device-list serial the entry records, ``index`` its position in the
    transparency log, ``opening`` the secret that opens the entry's commitment and
    ``device_list`` the signed device list the entry hashes. All opaque here.
    """

    serial: int
    index: int
    opening: bytes = field(repr=False)
    device_list: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class WarrantRecord:
    """A warrant the provider was served: all opaque here but the times it is indexed by.

    ``index`` is the log index of its commitment; ``token_hash`` the hash of the access token
    handed to whoever served it; ``document`` the signed warrant; ``not_after`` when the
    authorisation ends (the warrant is *live* until then unless revoked); ``sealed_until``
    when its targets are to be told; ``revocation`` the signed revocation, once one came;
    ``unsealed_index`` the log index of its unsealing, once logged.
    """

    warrant_id: bytes
    index: int
    token_hash: bytes = field(repr=False)
    document: bytes = field(repr=False)
    not_after: int
    sealed_until: int
    revocation: bytes | None = field(default=None, repr=False)
    unsealed_index: int | None = None


@dataclass(frozen=True, slots=True)
class NewIntercept:
    """One envelope copied under a warrant: the relay's record of it, unchanged.

    A group message (``kind`` :attr:`MailKind.GROUP`) is copied once per message, not per
    delivery: ``mail_id`` and the recipient are those of its first delivery, and
    ``membership`` is the signed membership update of the view the message names (which the
    custodians need to see who it reached). A one-to-one envelope has no ``membership``.
    """

    warrant_id: bytes
    mail_id: int
    server_time: int
    sender_account: bytes
    sender_device: int
    recipient_account: bytes
    recipient_device: int
    envelope: bytes = field(repr=False)
    kind: MailKind = MailKind.ENVELOPE
    membership: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Intercept:
    """A stored intercepted envelope; ``id`` orders a warrant's intercepts (commit order)."""

    id: int
    warrant_id: bytes
    mail_id: int
    server_time: int
    sender_account: bytes
    sender_device: int
    recipient_account: bytes
    recipient_device: int
    envelope: bytes = field(repr=False)
    kind: MailKind = MailKind.ENVELOPE
    membership: bytes | None = field(default=None, repr=False)
    """For a group message, the signed membership update of the view it names."""


@dataclass(frozen=True, slots=True)
class EpochRecord:
    """An escrow epoch whose key the log holds: the log index of its entry, the public DKG
    transcript and the custodians' signed confirmations of it (both opaque here;
    ``confirmations`` is None for an epoch stored before schema version 9)."""

    epoch: int
    index: int
    transcript: bytes
    confirmations: bytes | None = field(default=None, repr=False)


ReportingTagger = Callable[[int, NewMail], bytes]
"""Computes an item's reporting tag from the server message id the store assigned to it.

Called inside the enqueue transaction (on the backend's worker thread for SQLite), once per
item, in order. It must be a quick, pure function: no I/O, no event loop. If it raises, the
enqueue stores nothing and the exception propagates unchanged.
"""

# ----------------------------------------------------------------------------- stores


class AccountStore(Protocol):
    """Accounts, their signed device lists (compare-and-swap on the serial) and auth keys."""

    async def create(self, account: AccountRecord) -> None:
        """Store a new account. Raises ``AlreadyExists`` if the id is taken."""
        ...

    async def get(self, account_id: bytes) -> AccountRecord | None:
        """The account, or ``None``."""
        ...

    async def replace_device_list(
        self,
        account_id: bytes,
        *,
        expected_serial: int,
        serial: int,
        device_list: bytes,
        devices: Sequence[DeviceAuth],
    ) -> None:
        """Swap in a new signed device list and the new set of device auth keys.

        Succeeds only if the stored serial equals ``expected_serial`` and ``serial`` is greater;
        otherwise raises ``StaleSerial`` and changes nothing. ``NotFound`` if no such account.
        """
        ...

    async def device_auth_key(self, account_id: bytes, device: int) -> bytes | None:
        """The device's request-signing key, or ``None`` if account or device is unknown."""
        ...

    async def list_devices(self, account_id: bytes) -> tuple[int, ...] | None:
        """The account's device ids in ascending order, or ``None`` if the account is unknown."""
        ...


class PrekeyStore(Protocol):
    """Each device's published prekeys: one signed prekey, one last-resort ML-KEM prekey, and
    two pools of one-time prekeys (:class:`OneTimeKind`) that are handed out at most once."""

    async def set_signed_prekey(self, account_id: bytes, device: int, prekey: PrekeyRecord) -> None:
        """Store or replace the device's signed prekey."""
        ...

    async def get_signed_prekey(self, account_id: bytes, device: int) -> PrekeyRecord | None:
        """The device's signed prekey, or ``None``."""
        ...

    async def set_last_resort_kem(
        self, account_id: bytes, device: int, prekey: PrekeyRecord
    ) -> None:
        """Store or replace the device's last-resort ML-KEM prekey."""
        ...

    async def get_last_resort_kem(self, account_id: bytes, device: int) -> PrekeyRecord | None:
        """The device's last-resort ML-KEM prekey, or ``None``."""
        ...

    async def add_one_time(
        self, account_id: bytes, device: int, kind: OneTimeKind, prekeys: Sequence[PrekeyRecord]
    ) -> None:
        """Add a batch to a pool, all or nothing.

        ``AlreadyExists`` if an id repeats (in the batch or in the pool); ``LimitExceeded`` if the
        pool would exceed ``StorageLimits.one_time_prekeys``.
        """
        ...

    async def take_one_time(
        self, account_id: bytes, device: int, kind: OneTimeKind
    ) -> PrekeyRecord | None:
        """Remove and return the pool's prekey with the lowest id, or ``None`` if it is empty.

        Each stored prekey is returned to exactly one caller, however many race.
        """
        ...

    async def count_one_time(self, account_id: bytes, device: int, kind: OneTimeKind) -> int:
        """How many prekeys remain in the pool."""
        ...


class MailboxStore(Protocol):
    """Durable per-device mailboxes of envelopes awaiting acknowledgement."""

    async def enqueue(
        self, batch: Sequence[NewMail], server_time: int, tag: ReportingTagger
    ) -> tuple[int, ...]:
        """Store every item of ``batch`` in one transaction, all or nothing.

        Returns the server message id assigned to each item, in batch order. Ids are unique
        across all mailboxes, never reused, and increase in commit order, so a device that has
        seen id ``n`` misses nothing by fetching after ``n``. ``tag`` computes each item's
        reporting tag from its id (see :data:`ReportingTagger`). ``LimitExceeded`` if any
        recipient device's mailbox would exceed ``StorageLimits.mailbox_depth``.
        """
        ...

    async def fetch(
        self, account_id: bytes, device: int, after_id: int, limit: int
    ) -> tuple[Mail, ...]:
        """Up to ``limit`` pending items with ids greater than ``after_id``, in id order."""
        ...

    async def ack(self, account_id: bytes, device: int, ids: Collection[int]) -> int:
        """Remove these items from the device's mailbox; returns how many were removed.

        Ids that are unknown, already acknowledged or addressed to another device are ignored.
        """
        ...

    async def depth(self, account_id: bytes, device: int) -> int:
        """How many items are pending for the device."""
        ...


class BlobStore(Protocol):
    """Encrypted attachments under random ids chosen by the uploader."""

    async def put(self, blob_id: bytes, data: bytes) -> None:
        """Store a blob. ``AlreadyExists`` if the id is taken; ``LimitExceeded`` if too large."""
        ...

    async def get(self, blob_id: bytes) -> bytes | None:
        """The blob, or ``None``."""
        ...

    async def delete(self, blob_id: bytes) -> bool:
        """Remove a blob; ``True`` if it existed."""
        ...


class LogStore(Protocol):
    """The transparency log's persistent tree: leaves, complete-subtree hashes, checkpoints.

    The store holds an append-only sequence of leaves (entry bytes and leaf hash) and, for every
    complete (perfect) subtree, its hash keyed by ``(level, index)`` — exactly the nodes an
    in-memory Merkle tree keeps — so that a root or proof at the current or any past size is
    read with O(log n) lookups and never recomputed. Which hash function made those hashes, and
    how an entry is encoded, is the caller's business: the store checks only positions, lengths
    and bounds. It also keeps every signed checkpoint under the tree size it commits to, so that
    the checkpoint a client last saw can be served alongside a consistency proof from it.
    """

    async def append(
        self, expected_size: int, leaves: Sequence[LogLeaf], nodes: Collection[LogNode]
    ) -> int:
        """Append ``leaves`` at indices ``expected_size, expected_size + 1, ...`` together with
        the interior ``nodes`` they complete, in one transaction; return the new size.

        ``nodes`` must be exactly the nodes :func:`log_nodes_completed` names for this growth,
        in any order (``InvalidArgument`` otherwise). ``StorageConflict`` if the log's size is
        not ``expected_size`` (another writer appended first); nothing is stored then.
        ``LimitExceeded`` over ``LOG_APPEND_BATCH_MAX`` leaves, ``LOG_APPEND_BATCH_MAX_BYTES``
        of data or ``LOG_ENTRY_MAX_LEN`` per entry.
        """
        ...

    async def size(self) -> int:
        """How many leaves the log holds."""
        ...

    async def hash_at(self, level: int, index: int) -> bytes | None:
        """The hash of the complete subtree at ``(level, index)`` (level 0: a leaf hash), or
        ``None`` if that subtree is not complete yet."""
        ...

    async def hashes(self, keys: Sequence[tuple[int, int]]) -> tuple[bytes | None, ...]:
        """:meth:`hash_at` for each ``(level, index)`` of ``keys``, in order, read in one
        transaction (so from one size of the tree). At most ``LOG_HASHES_MAX`` keys."""
        ...

    async def leaf(self, index: int) -> bytes | None:
        """The data of leaf ``index``, or ``None`` if the log is not that long."""
        ...

    async def leaves(self, start: int, end: int) -> tuple[bytes, ...]:
        """The data of leaves ``[start, end)`` that exist (fewer, or none, past the end).

        ``InvalidArgument`` unless ``0 <= start <= end`` and ``end - start <= LOG_PAGE_MAX``.
        """
        ...

    async def set_checkpoint(self, size: int, checkpoint: bytes) -> None:
        """Store a signed checkpoint of the first ``size`` leaves.

        A checkpoint already stored under ``size`` is replaced, however old (that is how
        cosignatures are added to it). ``InvalidArgument`` if ``size`` exceeds the log's size;
        ``StorageConflict`` for a new size below the latest stored one, so the latest checkpoint
        never moves backwards.
        """
        ...

    async def get_checkpoint(self) -> StoredCheckpoint | None:
        """The checkpoint with the largest size, or ``None`` if none was stored."""
        ...

    async def checkpoint_at(self, size: int) -> bytes | None:
        """The checkpoint stored under ``size``, or ``None``."""
        ...


class KtStore(Protocol):
    """The key directory's server-side records: per account and device-list serial, the log
    index of the entry that published it and the opening of that entry's commitment.

    Records are written once and never change or go away (the log entries they describe do
    not either). The server reads only the latest one per account.
    """

    async def add(self, account_id: bytes, record: KtRecord) -> None:
        """Store ``record`` under ``(account_id, record.serial)``.

        ``AlreadyExists`` if a record of that serial is stored for the account (nothing
        changes then); ``InvalidArgument`` or ``LimitExceeded`` for values out of bounds
        (``KT_OPENING_MAX_LEN``, ``DEVICE_LIST_MAX_LEN``).
        """
        ...

    async def latest(self, account_id: bytes) -> KtRecord | None:
        """The account's record with the largest serial, or ``None`` if it has none."""
        ...


class WarrantStore(Protocol):
    """The warrants the provider was served (lawful access, DESIGN §6).

    A record is added once and changes only by :meth:`revoke` (once) and
    :meth:`set_unsealed` (once).
    """

    async def add(self, record: WarrantRecord) -> None:
        """Store a new warrant. ``AlreadyExists`` if its id is taken (nothing changes then)."""
        ...

    async def get(self, warrant_id: bytes) -> WarrantRecord | None:
        """The warrant, or ``None``."""
        ...

    async def live(self, now: int) -> tuple[WarrantRecord, ...]:
        """Warrants not revoked whose ``not_after`` is later than ``now``, by log index; at
        most ``LIVE_WARRANTS_MAX``."""
        ...

    async def revoke(self, warrant_id: bytes, revocation: bytes) -> bool:
        """Record ``revocation``; ``True`` if the warrant was not revoked before (a later
        revocation keeps the first). ``NotFound`` if there is no such warrant."""
        ...

    async def due_for_unsealing(self, now: int, limit: int) -> tuple[WarrantRecord, ...]:
        """Up to ``limit`` (at most ``WARRANT_PAGE_MAX``) warrants whose ``sealed_until`` is at
        or before ``now`` and that have no unsealing yet, oldest date first."""
        ...

    async def set_unsealed(self, warrant_id: bytes, index: int) -> None:
        """Record the log index of the warrant's unsealing. ``NotFound`` if there is no such
        warrant; ``StorageConflict`` if another index was recorded (the same one: no-op)."""
        ...


class InterceptStore(Protocol):
    """Envelopes copied under warrants. Nothing else is ever copied: without a warrant the
    relay keeps no ciphertext once it is delivered."""

    async def add(self, batch: Sequence[NewIntercept]) -> tuple[int, ...]:
        """Store every item in one transaction, all or nothing; return each one's id.

        Ids are unique, never reused and increase in commit order, so a reader that has seen
        id ``n`` misses nothing by paging after ``n``. At most ``INTERCEPT_BATCH_MAX`` items.
        """
        ...

    async def page(self, warrant_id: bytes, after_id: int, limit: int) -> tuple[Intercept, ...]:
        """Up to ``limit`` (at most ``INTERCEPT_PAGE_MAX``) intercepts of the warrant with ids
        greater than ``after_id``, in id order."""
        ...

    async def count(self, warrant_id: bytes) -> int:
        """How many intercepts the warrant has."""
        ...


class EpochStore(Protocol):
    """Escrow epochs whose key is in the log, with their public DKG transcripts and the
    custodians' confirmations of them."""

    async def add(self, record: EpochRecord) -> None:
        """Store a new epoch. ``AlreadyExists`` if the epoch has a record (nothing changes)."""
        ...

    async def get(self, epoch: int) -> EpochRecord | None:
        """The epoch's record, or ``None``."""
        ...

    async def latest(self, limit: int) -> tuple[EpochRecord, ...]:
        """Up to ``limit`` (at most ``EPOCH_PAGE_MAX``) records, highest epoch first."""
        ...


# ----------------------------------------------------------------------------- log arguments
#
# Shared by every backend, so that all of them refuse the same inputs. Positions only: which
# subtrees an append completes is arithmetic on sizes, not hashing.


def log_nodes_completed(old_size: int, new_size: int) -> Iterator[tuple[int, int]]:
    """The ``(level, index)`` of every subtree of level >= 1 that becomes complete when the log
    grows from ``old_size`` to ``new_size`` leaves, by level then index."""
    level = 1
    while level <= LOG_LEVEL_MAX:
        low, high = old_size >> level, new_size >> level
        if low == high:
            # A subtree completes only together with its right child one level down.
            return
        for index in range(low, high):
            yield level, index
        level += 1


def _int_in(value: int, low: int, high: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidArgument(f"{what} must be an integer in {low}..{high}")


def check_log_append(
    expected_size: int, leaves: Sequence[LogLeaf], nodes: Collection[LogNode]
) -> int:
    """Check an append's arguments (not the stored size); return the size after it.

    Written as flat loops: it runs over every leaf and node of batches of thousands.
    """
    _int_in(expected_size, 0, INT64_MAX, "a log size")
    if len(leaves) > LOG_APPEND_BATCH_MAX:
        raise LimitExceeded(f"a log append holds at most {LOG_APPEND_BATCH_MAX} leaves")
    new_size = expected_size + len(leaves)
    if new_size > INT64_MAX:
        raise LimitExceeded("the log is full")
    total = 0
    longest_data = longest_hash = 0
    for leaf in leaves:
        if type(leaf) is not LogLeaf:
            raise InvalidArgument("a log append takes LogLeaf records")
        data, h = leaf.data, leaf.hash
        if type(data) is not bytes or type(h) is not bytes or not h:
            raise InvalidArgument("a leaf's data and hash must be bytes, the hash non-empty")
        total += len(data)
        longest_data = max(longest_data, len(data))
        longest_hash = max(longest_hash, len(h))
    if longest_data > LOG_ENTRY_MAX_LEN:
        raise LimitExceeded(f"a log entry is longer than {LOG_ENTRY_MAX_LEN} bytes")
    if total > LOG_APPEND_BATCH_MAX_BYTES:
        raise LimitExceeded(f"a log append holds at most {LOG_APPEND_BATCH_MAX_BYTES} bytes")
    if longest_hash > LOG_HASH_MAX_LEN:
        raise LimitExceeded(f"a leaf hash is longer than {LOG_HASH_MAX_LEN} bytes")
    expected = sum((new_size >> level) - (expected_size >> level) for level in range(1, 64))
    if len(nodes) != expected:
        raise InvalidArgument("an append must carry exactly the subtree hashes it completes")
    seen: set[tuple[int, int]] = set()
    for node in nodes:
        if type(node) is not LogNode:
            raise InvalidArgument("a log append takes LogNode records")
        level, index, h = node.level, node.index, node.hash
        if type(level) is not int or type(index) is not int or not 1 <= level <= LOG_LEVEL_MAX:
            raise InvalidArgument(f"a node level is an integer in 1..{LOG_LEVEL_MAX}")
        if index < 0 or not expected_size < (index + 1) << level <= new_size:
            raise InvalidArgument("an append carries a node it does not complete")
        if type(h) is not bytes or not h:
            raise InvalidArgument("a node hash must be non-empty bytes")
        longest_hash = max(longest_hash, len(h))
        seen.add((level, index))
    if len(seen) != len(nodes):
        raise InvalidArgument("an append carries a node twice")
    if longest_hash > LOG_HASH_MAX_LEN:
        raise LimitExceeded(f"a node hash is longer than {LOG_HASH_MAX_LEN} bytes")
    return new_size


def check_log_position(level: int, index: int) -> None:
    _int_in(level, 0, LOG_LEVEL_MAX, "a node level")
    _int_in(index, 0, INT64_MAX, "a node index")


def check_log_keys(keys: Sequence[tuple[int, int]]) -> None:
    if len(keys) > LOG_HASHES_MAX:
        raise LimitExceeded(f"one read takes at most {LOG_HASHES_MAX} node hashes")
    for key in keys:
        if not isinstance(key, tuple) or len(key) != 2:
            raise InvalidArgument("a node key is a (level, index) pair")
        check_log_position(*key)


def check_log_index(index: int) -> None:
    _int_in(index, 0, INT64_MAX, "a leaf index")


def check_log_range(start: int, end: int) -> None:
    _int_in(start, 0, INT64_MAX, "a leaf range start")
    _int_in(end, start, INT64_MAX, "a leaf range end")
    if end - start > LOG_PAGE_MAX:
        raise InvalidArgument(f"a page of leaves holds at most {LOG_PAGE_MAX}")


def check_log_checkpoint(size: int, checkpoint: bytes | None = None) -> None:
    _int_in(size, 0, INT64_MAX, "a checkpoint size")
    if checkpoint is not None:
        if not isinstance(checkpoint, bytes) or not checkpoint:
            raise InvalidArgument("a checkpoint must be non-empty bytes")
        if len(checkpoint) > LOG_CHECKPOINT_MAX_LEN:
            raise LimitExceeded(f"a checkpoint is longer than {LOG_CHECKPOINT_MAX_LEN} bytes")


# ----------------------------------------------------------------------------- the bundle


@dataclass(frozen=True, slots=True)
class Storage:
    """One store of each kind over one backend. Close it once; any call after that raises
    ``StorageUnavailable``. Usable as ``async with``."""

    accounts: AccountStore
    prekeys: PrekeyStore
    mailboxes: MailboxStore
    blobs: BlobStore
    log: LogStore
    _close: Callable[[], Awaitable[None]] = field(repr=False)
    kt: KtStore | None = None
    """The key directory's records; ``None`` for a backend that does not have them yet (the
    relay server refuses to start on such a backend)."""
    warrants: WarrantStore | None = None
    """Warrants served to the provider (lawful access); ``None`` for a backend without them."""
    intercepts: InterceptStore | None = None
    """Envelopes copied under warrants; ``None`` for a backend without them."""
    epochs: EpochStore | None = None
    """Escrow epochs in the log; ``None`` for a backend without them."""
    reports: ReportStore | None = None
    """Verified reports, the moderation queue and its audit trail
    (:mod:`overt.storage.moderation`); ``None`` for a backend without them."""
    standing: StandingStore | None = None
    """Warnings and suspensions per account; ``None`` for a backend without them."""
    moderators: ModeratorStore | None = None
    """The moderation console's accounts; ``None`` for a backend without them."""
    matching: MatchingStore | None = None
    """Known-content matching: published list versions and opened images
    (:mod:`overt.storage.matching`); ``None`` for a backend without them."""
    groups: GroupStore | None = None
    """Groups' membership histories (:mod:`overt.storage.groups`); ``None`` for a backend
    without them."""

    async def close(self) -> None:
        """Wait for operations in flight, then release the backend. Idempotent."""
        await self._close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
