"""The typed entries of Overt's transparency log and their one canonical binary encoding.

Every entry is ``version (u8) ‖ entry type (u8) ‖ body``, written with :mod:`overt.wire.codec`
(fixed-width big-endian integers, fixed-length hashes, length-prefixed vectors). The log's leaf
is exactly these bytes, so what is hashed is unambiguous. Decoding is strict: unknown versions
and types, truncation, trailing bytes, out-of-range lengths and non-canonical values (counters
out of order, for instance) all raise :class:`overt.errors.DecodeError`; building an entry from
bad fields raises :class:`overt.errors.LocalError`.

=====  ======================  ==========================================================
type   class                   body
=====  ======================  ==========================================================
1      ManifestEntry           ``manifest<1..2^16-1>`` (the signed manifest, opaque here)
2      KeyDirectoryUpdate      label[32] ‖ account_key[32] ‖ serial u64 ‖
                               device_list_hash[32] ‖ commitment[32]
3      WarrantCommitment       warrant_id[32] ‖ court_key_id[32] ‖ window_seconds u64 ‖
                               sealed_until u64 ‖ targets_commitment[32]
4      WarrantUnsealing        warrant_id[32] ‖ opening<1..2^16-1>
5      AccessReceipt           warrant_id[32] ‖ custodian_id[32] ‖ count u64 ‖
                               contexts_hash[32]
6      AggregateStatistics     period_start u64 ‖ period_end u64 ‖ n u8 ‖
                               n × (name<1..2^8-1> ‖ value u64)
7      EpochKey                epoch u32 ‖ public_key[32] ‖ transcript_hash[32] ‖
                               not_before u64 ‖ retain_until u64
8      MatchingListCommitment  list_id[32] ‖ version u32 ‖ hash_count u32 ‖
                               table_commitment[32] ‖ list_digest[32] ‖ previous[32] ‖
                               n u8 ‖ n × (signer_key[32] ‖ signature[64])
=====  ======================  ==========================================================

**Key directory privacy.** A :class:`KeyDirectoryUpdate` never names the account. Its ``label``
is the first 32 bytes of the vrf-r255 output ``beta`` of the account id under the directory's
VRF key (:func:`kt_label`); a lookup returns the VRF proof so a client can check the label
without the log revealing which accounts exist. Its ``commitment`` is
``SHA-256("Overt_KT_commit_v1" ‖ opening ‖ account id)`` with a fresh 32-byte random opening
per entry (:func:`kt_commitment`): a lookup returns the opening too, which binds the entry to
the account id even if the VRF key leaks, while the public log — which sees only the hash —
cannot confirm a guessed account id. The label is stable per account, so the public does learn
how many updates one (unnamed) label had, and the account key is public.

**Warrants.** A :class:`WarrantCommitment` shows the court, the window length and the sealing
date while hiding the targets: ``targets_commitment`` is
``SHA-256("Overt_warrant_targets_v1" ‖ opening)`` (:func:`warrant_targets_commitment`), where
the opening — random bytes followed by the canonical target list, as :mod:`overt.access`
defines it — is published later in a :class:`WarrantUnsealing` of the same warrant id.

**Escrow epochs.** An :class:`EpochKey` publishes the public key ``Y`` of one escrow epoch
(the ristretto255 encoding, opaque here) after the custodians' DKG, with the SHA-256 of the
DKG's public transcript (which gives every custodian's verification key) and the span the key
serves: senders encrypt access fields to it from ``not_before`` on, and custodians destroy their
shares at ``retain_until``. Clients take the escrow policy from the newest ``EpochKey`` entry.

**Matching lists.** A :class:`MatchingListCommitment` logs one version of a known-content
matching list (DESIGN §5): the commitment to the blinded table clients download
(``table_commitment``), the SHA-256 of the canonical plaintext list the organisations vetted
(``list_digest``; the list itself is not public), how many hashes it has, and the table
commitment of the version it replaces (``previous``, zeros for the first), so that versions form
a chain a client can follow delta by delta. It carries the child-safety organisations'
Ed25519 signatures over :meth:`~MatchingListCommitment.statement` (``"Overt_MatchingList_v1"``
followed by every field but the signatures), as opaque key and signature bytes, sorted by key;
:mod:`overt.safety.matching.lists` checks them against the keys the manifest names.

Times are Unix seconds. This module never sees storage, clocks, keys or the manifest's own
format; it turns values into bytes and back.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar, Final

from overt.crypto import constant_time_eq, sha256
from overt.crypto.vrf import OUTPUT_LEN as VRF_OUTPUT_LEN
from overt.errors import DecodeError, InvalidMessage, LocalError
from overt.wire.codec import Reader, Writer

ENTRY_VERSION: Final = 1
"""The encoding version every entry starts with."""

MAX_ENTRY_BYTES: Final = 64 * 1024
"""Largest encoded entry (equal to the storage layer's ``LOG_ENTRY_MAX_LEN``)."""

MAX_MANIFEST_BYTES: Final = 60 * 1024
"""Largest signed manifest carried by a :class:`ManifestEntry`."""

MAX_OPENING_BYTES: Final = 16 * 1024
"""Largest warrant-targets opening carried by a :class:`WarrantUnsealing`."""

MAX_COUNTERS: Final = 64
"""Most counters in one :class:`AggregateStatistics`."""

MAX_COUNTER_NAME_BYTES: Final = 64
"""Longest counter name."""

MAX_ACCOUNT_ID_BYTES: Final = 64
"""Longest account id that :func:`kt_commitment` commits to (account ids are 1..64 bytes)."""

MAX_U64: Final = (1 << 64) - 1
MAX_U32: Final = (1 << 32) - 1

EPOCH_KEY_LEN: Final = 32
"""An escrow-epoch public key: a ristretto255 element's canonical encoding."""

DIGEST_LEN: Final = 32
"""SHA-256 digests and the 32-byte identifiers (warrant, court key, custodian)."""

KT_LABEL_LEN: Final = 32
"""A key-directory label: the first 32 bytes of the 64-byte vrf-r255 output."""

KT_OPENING_LEN: Final = 32
"""The random opening of a key-directory commitment."""

ACCOUNT_KEY_LEN: Final = 32
"""An Ed25519 account identity key."""

MAX_LIST_SIGNATURES: Final = 16
"""Most organisation signatures on one :class:`MatchingListCommitment`."""

SIGNER_KEY_LEN: Final = 32
"""An organisation's Ed25519 public key."""

SIGNATURE_LEN: Final = 64
"""An Ed25519 signature."""

MATCHING_LIST_DST: Final = b"Overt_MatchingList_v1"
"""Prefix of the statement the organisations sign."""

KT_COMMIT_DST: Final = b"Overt_KT_commit_v1"
WARRANT_TARGETS_DST: Final = b"Overt_warrant_targets_v1"

_COUNTER_NAME_CHARS: Final = frozenset(string.ascii_lowercase + string.digits + "_.-")


class EntryType(IntEnum):
    """The entry type byte."""

    MANIFEST = 1
    KEY_DIRECTORY_UPDATE = 2
    WARRANT_COMMITMENT = 3
    WARRANT_UNSEALING = 4
    ACCESS_RECEIPT = 5
    AGGREGATE_STATISTICS = 6
    EPOCH_KEY = 7
    MATCHING_LIST = 8


# ----------------------------------------------------------------------------- field checks


def _fixed(value: bytes, n: int, what: str) -> None:
    if not isinstance(value, bytes) or len(value) != n:
        raise LocalError(f"{what} must be {n} bytes")


def _u64(value: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_U64:
        raise LocalError(f"{what} must be an integer in 0..2^64-1")


def _u32(value: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_U32:
        raise LocalError(f"{what} must be an integer in 0..2^32-1")


def _var(value: bytes, max_len: int, what: str) -> None:
    if not isinstance(value, bytes) or not 1 <= len(value) <= max_len:
        raise LocalError(f"{what} must be 1..{max_len} bytes")


def _header(entry_type: EntryType) -> Writer:
    return Writer().u8(ENTRY_VERSION).u8(entry_type)


_KEY_DIRECTORY_HEADER: Final = bytes((ENTRY_VERSION, EntryType.KEY_DIRECTORY_UPDATE))


# ----------------------------------------------------------------------------- entries


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    """A signed deployment manifest, carried as the opaque bytes its own module produced."""

    ENTRY_TYPE: ClassVar[EntryType] = EntryType.MANIFEST

    manifest: bytes

    def __post_init__(self) -> None:
        _var(self.manifest, MAX_MANIFEST_BYTES, "a manifest")

    def encode(self) -> bytes:
        return _header(self.ENTRY_TYPE).vec(self.manifest, 2).getvalue()

    @classmethod
    def _read(cls, r: Reader) -> ManifestEntry:
        return cls(r.vec(2, "manifest", MAX_MANIFEST_BYTES, 1))


@dataclass(frozen=True, slots=True)
class KeyDirectoryUpdate:
    """A change to an account's identity key or device list, without naming the account."""

    ENTRY_TYPE: ClassVar[EntryType] = EntryType.KEY_DIRECTORY_UPDATE

    label: bytes
    """:func:`kt_label` of the account id: the first 32 bytes of its vrf-r255 output."""
    account_key: bytes
    """The account's Ed25519 identity key."""
    serial: int
    """The serial of the signed device list."""
    device_list_hash: bytes
    """SHA-256 of the signed device list."""
    commitment: bytes
    """:func:`kt_commitment` of a fresh opening and the account id."""

    def __post_init__(self) -> None:
        _fixed(self.label, KT_LABEL_LEN, "a key-directory label")
        _fixed(self.account_key, ACCOUNT_KEY_LEN, "an account key")
        _u64(self.serial, "a device-list serial")
        _fixed(self.device_list_hash, DIGEST_LEN, "a device-list hash")
        _fixed(self.commitment, DIGEST_LEN, "a key-directory commitment")

    def encode(self) -> bytes:
        # Fixed layout, fields checked on construction: concatenated directly (the log appends
        # these by the thousand), equal to what a Writer would produce.
        return b"".join(
            (
                _KEY_DIRECTORY_HEADER,
                self.label,
                self.account_key,
                self.serial.to_bytes(8, "big"),
                self.device_list_hash,
                self.commitment,
            )
        )

    @classmethod
    def _read(cls, r: Reader) -> KeyDirectoryUpdate:
        return cls(
            label=r.fixed(KT_LABEL_LEN, "label"),
            account_key=r.fixed(ACCOUNT_KEY_LEN, "account key"),
            serial=r.u64("serial"),
            device_list_hash=r.fixed(DIGEST_LEN, "device-list hash"),
            commitment=r.fixed(DIGEST_LEN, "commitment"),
        )

    def check_opening(self, opening: bytes, account_id: bytes) -> None:
        """Raise :class:`InvalidMessage` unless ``opening`` opens the commitment to
        ``account_id``."""
        try:
            expected = kt_commitment(opening, account_id)
        except LocalError:
            raise InvalidMessage() from None
        if not constant_time_eq(expected, self.commitment):
            raise InvalidMessage()


@dataclass(frozen=True, slots=True)
class WarrantCommitment:
    """A warrant the provider accepted, logged before it is used; its targets stay hidden."""

    ENTRY_TYPE: ClassVar[EntryType] = EntryType.WARRANT_COMMITMENT

    warrant_id: bytes
    """The 32-byte id that later unsealing and access receipts name."""
    court_key_id: bytes
    """The 32-byte id of the court key (listed in the manifest) that signed the warrant."""
    window_seconds: int
    """Length of the interception window."""
    sealed_until: int
    """When the target is told, at the latest (Unix seconds)."""
    targets_commitment: bytes
    """:func:`warrant_targets_commitment` of the opening published at unsealing."""

    def __post_init__(self) -> None:
        _fixed(self.warrant_id, DIGEST_LEN, "a warrant id")
        _fixed(self.court_key_id, DIGEST_LEN, "a court key id")
        _u64(self.window_seconds, "a window length")
        _u64(self.sealed_until, "a sealing date")
        _fixed(self.targets_commitment, DIGEST_LEN, "a targets commitment")

    def encode(self) -> bytes:
        return (
            _header(self.ENTRY_TYPE)
            .fixed(self.warrant_id, DIGEST_LEN)
            .fixed(self.court_key_id, DIGEST_LEN)
            .u64(self.window_seconds)
            .u64(self.sealed_until)
            .fixed(self.targets_commitment, DIGEST_LEN)
            .getvalue()
        )

    @classmethod
    def _read(cls, r: Reader) -> WarrantCommitment:
        return cls(
            warrant_id=r.fixed(DIGEST_LEN, "warrant id"),
            court_key_id=r.fixed(DIGEST_LEN, "court key id"),
            window_seconds=r.u64("window length"),
            sealed_until=r.u64("sealed until"),
            targets_commitment=r.fixed(DIGEST_LEN, "targets commitment"),
        )


@dataclass(frozen=True, slots=True)
class WarrantUnsealing:
    """The opening of a warrant's targets commitment, published when the sealing ends."""

    ENTRY_TYPE: ClassVar[EntryType] = EntryType.WARRANT_UNSEALING

    warrant_id: bytes
    opening: bytes

    def __post_init__(self) -> None:
        _fixed(self.warrant_id, DIGEST_LEN, "a warrant id")
        _var(self.opening, MAX_OPENING_BYTES, "a warrant opening")

    def encode(self) -> bytes:
        return (
            _header(self.ENTRY_TYPE)
            .fixed(self.warrant_id, DIGEST_LEN)
            .vec(self.opening, 2)
            .getvalue()
        )

    @classmethod
    def _read(cls, r: Reader) -> WarrantUnsealing:
        return cls(
            warrant_id=r.fixed(DIGEST_LEN, "warrant id"),
            opening=r.vec(2, "opening", MAX_OPENING_BYTES, 1),
        )

    def check_opens(self, commitment: WarrantCommitment) -> None:
        """Raise :class:`InvalidMessage` unless this opens ``commitment`` (same warrant)."""
        same_id = constant_time_eq(self.warrant_id, commitment.warrant_id)
        opened = constant_time_eq(
            warrant_targets_commitment(self.opening), commitment.targets_commitment
        )
        if not (same_id and opened):
            raise InvalidMessage()


@dataclass(frozen=True, slots=True)
class AccessReceipt:
    """A custodian's record that it released decryption shares for ``count`` messages."""

    ENTRY_TYPE: ClassVar[EntryType] = EntryType.ACCESS_RECEIPT

    warrant_id: bytes
    custodian_id: bytes
    """The 32-byte id of the custodian (as listed in the manifest)."""
    count: int
    """How many message contexts this release covered."""
    contexts_hash: bytes
    """SHA-256 of the canonical list of the contexts released for."""

    def __post_init__(self) -> None:
        _fixed(self.warrant_id, DIGEST_LEN, "a warrant id")
        _fixed(self.custodian_id, DIGEST_LEN, "a custodian id")
        _u64(self.count, "a receipt count")
        _fixed(self.contexts_hash, DIGEST_LEN, "a contexts hash")

    def encode(self) -> bytes:
        return (
            _header(self.ENTRY_TYPE)
            .fixed(self.warrant_id, DIGEST_LEN)
            .fixed(self.custodian_id, DIGEST_LEN)
            .u64(self.count)
            .fixed(self.contexts_hash, DIGEST_LEN)
            .getvalue()
        )

    @classmethod
    def _read(cls, r: Reader) -> AccessReceipt:
        return cls(
            warrant_id=r.fixed(DIGEST_LEN, "warrant id"),
            custodian_id=r.fixed(DIGEST_LEN, "custodian id"),
            count=r.u64("count"),
            contexts_hash=r.fixed(DIGEST_LEN, "contexts hash"),
        )


@dataclass(frozen=True, slots=True)
class AggregateStatistics:
    """Counters over a period (reports, bans, warrants, ...), published for the public.

    ``counters`` is a tuple of ``(name, value)`` sorted by name, names unique, lowercase ASCII
    letters, digits, ``_``, ``.`` and ``-``. Which names exist is the publisher's business.
    """

    ENTRY_TYPE: ClassVar[EntryType] = EntryType.AGGREGATE_STATISTICS

    period_start: int
    period_end: int
    counters: tuple[tuple[str, int], ...]

    def __post_init__(self) -> None:
        _u64(self.period_start, "a period start")
        _u64(self.period_end, "a period end")
        if self.period_end <= self.period_start:
            raise LocalError("a statistics period must end after it starts")
        if not isinstance(self.counters, tuple) or len(self.counters) > MAX_COUNTERS:
            raise LocalError(f"statistics hold a tuple of at most {MAX_COUNTERS} counters")
        previous = ""
        for item in self.counters:
            if not isinstance(item, tuple) or len(item) != 2:
                raise LocalError("a counter is a (name, value) pair")
            name, value = item
            if (
                not isinstance(name, str)
                or not 1 <= len(name) <= MAX_COUNTER_NAME_BYTES
                or not set(name) <= _COUNTER_NAME_CHARS
            ):
                raise LocalError("a counter name is 1..64 of [a-z0-9_.-]")
            if name <= previous:
                raise LocalError("counters must be sorted by name, each name once")
            _u64(value, "a counter value")
            previous = name

    def encode(self) -> bytes:
        w = _header(self.ENTRY_TYPE).u64(self.period_start).u64(self.period_end)
        w.u8(len(self.counters))
        for name, value in self.counters:
            w.vec(name.encode("ascii"), 1).u64(value)
        return w.getvalue()

    @classmethod
    def _read(cls, r: Reader) -> AggregateStatistics:
        start = r.u64("period start")
        end = r.u64("period end")
        n = r.u8("counter count")
        if n > MAX_COUNTERS:
            raise DecodeError(f"{r.what}: more than {MAX_COUNTERS} counters")
        counters = []
        for _ in range(n):
            raw = r.vec(1, "counter name", MAX_COUNTER_NAME_BYTES, 1)
            if not raw.isascii():
                raise DecodeError(f"{r.what}: counter name is not ASCII")
            counters.append((raw.decode("ascii"), r.u64("counter value")))
        return cls(start, end, tuple(counters))


@dataclass(frozen=True, slots=True)
class EpochKey:
    """An escrow epoch's public key, logged once the custodians' DKG produced it."""

    ENTRY_TYPE: ClassVar[EntryType] = EntryType.EPOCH_KEY

    epoch: int
    """The escrow epoch (u32) that access fields name."""
    public_key: bytes
    """``Y``, the epoch key senders encrypt access fields to (ristretto255, 32 bytes)."""
    transcript_hash: bytes
    """SHA-256 of the DKG's public transcript (its canonical encoding)."""
    not_before: int
    """From when senders use this key (Unix seconds)."""
    retain_until: int
    """When custodians destroy their shares of it (Unix seconds)."""

    def __post_init__(self) -> None:
        _u32(self.epoch, "an epoch")
        _fixed(self.public_key, EPOCH_KEY_LEN, "an epoch public key")
        _fixed(self.transcript_hash, DIGEST_LEN, "a transcript hash")
        _u64(self.not_before, "a not-before time")
        _u64(self.retain_until, "a retain-until time")
        if self.retain_until <= self.not_before:
            raise LocalError("an epoch key must be retained past its not-before time")

    def encode(self) -> bytes:
        return (
            _header(self.ENTRY_TYPE)
            .u32(self.epoch)
            .fixed(self.public_key, EPOCH_KEY_LEN)
            .fixed(self.transcript_hash, DIGEST_LEN)
            .u64(self.not_before)
            .u64(self.retain_until)
            .getvalue()
        )

    @classmethod
    def _read(cls, r: Reader) -> EpochKey:
        return cls(
            epoch=r.u32("epoch"),
            public_key=r.fixed(EPOCH_KEY_LEN, "public key"),
            transcript_hash=r.fixed(DIGEST_LEN, "transcript hash"),
            not_before=r.u64("not before"),
            retain_until=r.u64("retain until"),
        )


@dataclass(frozen=True, slots=True)
class MatchingListCommitment:
    """One version of a known-content matching list, signed by child-safety organisations."""

    ENTRY_TYPE: ClassVar[EntryType] = EntryType.MATCHING_LIST

    list_id: bytes
    """32-byte identifier of the list (all its versions share it)."""
    version: int
    """Version number (u32), increasing along the chain."""
    hash_count: int
    """How many hashes this version lists (u32)."""
    table_commitment: bytes
    """The commitment to the blinded table clients download and check."""
    list_digest: bytes
    """SHA-256 of the canonical plaintext list the organisations vetted."""
    previous: bytes
    """``table_commitment`` of the version this one replaces; 32 zero bytes for the first."""
    signatures: tuple[tuple[bytes, bytes], ...]
    """``(signer_key, signature)`` pairs, sorted by key, each key once."""

    def __post_init__(self) -> None:
        _fixed(self.list_id, DIGEST_LEN, "a list id")
        _u32(self.version, "a list version")
        _u32(self.hash_count, "a hash count")
        _fixed(self.table_commitment, DIGEST_LEN, "a table commitment")
        _fixed(self.list_digest, DIGEST_LEN, "a list digest")
        _fixed(self.previous, DIGEST_LEN, "a previous table commitment")
        if (
            not isinstance(self.signatures, tuple)
            or not 1 <= len(self.signatures) <= MAX_LIST_SIGNATURES
        ):
            raise LocalError(f"a list commitment carries 1..{MAX_LIST_SIGNATURES} signatures")
        previous_key = b""
        for item in self.signatures:
            if not isinstance(item, tuple) or len(item) != 2:
                raise LocalError("a signature is a (signer key, signature) pair")
            key, signature = item
            _fixed(key, SIGNER_KEY_LEN, "a signer key")
            _fixed(signature, SIGNATURE_LEN, "a signature")
            if key <= previous_key:
                raise LocalError("signatures must be sorted by signer key, each key once")
            previous_key = key

    def statement(self) -> bytes:
        """What each organisation signs: the label and every field but the signatures."""
        return MATCHING_LIST_DST + self._fields().getvalue()

    def _fields(self) -> Writer:
        return (
            Writer()
            .fixed(self.list_id, DIGEST_LEN)
            .u32(self.version)
            .u32(self.hash_count)
            .fixed(self.table_commitment, DIGEST_LEN)
            .fixed(self.list_digest, DIGEST_LEN)
            .fixed(self.previous, DIGEST_LEN)
        )

    def encode(self) -> bytes:
        w = _header(self.ENTRY_TYPE).raw(self._fields().getvalue()).u8(len(self.signatures))
        for key, signature in self.signatures:
            w.fixed(key, SIGNER_KEY_LEN).fixed(signature, SIGNATURE_LEN)
        return w.getvalue()

    @classmethod
    def _read(cls, r: Reader) -> MatchingListCommitment:
        list_id = r.fixed(DIGEST_LEN, "list id")
        version = r.u32("version")
        hash_count = r.u32("hash count")
        table_commitment = r.fixed(DIGEST_LEN, "table commitment")
        list_digest = r.fixed(DIGEST_LEN, "list digest")
        previous = r.fixed(DIGEST_LEN, "previous")
        n = r.u8("signature count")
        if not 1 <= n <= MAX_LIST_SIGNATURES:
            raise DecodeError(f"{r.what}: 1..{MAX_LIST_SIGNATURES} signatures expected")
        signatures = tuple(
            (r.fixed(SIGNER_KEY_LEN, "signer key"), r.fixed(SIGNATURE_LEN, "signature"))
            for _ in range(n)
        )
        return cls(
            list_id, version, hash_count, table_commitment, list_digest, previous, signatures
        )


Entry = (
    ManifestEntry
    | KeyDirectoryUpdate
    | WarrantCommitment
    | WarrantUnsealing
    | AccessReceipt
    | AggregateStatistics
    | EpochKey
    | MatchingListCommitment
)
"""Any typed log entry."""

_BY_TYPE: Final[dict[int, type[Entry]]] = {
    cls.ENTRY_TYPE: cls
    for cls in (
        ManifestEntry,
        KeyDirectoryUpdate,
        WarrantCommitment,
        WarrantUnsealing,
        AccessReceipt,
        AggregateStatistics,
        EpochKey,
        MatchingListCommitment,
    )
}


def encode_entry(entry: Entry) -> bytes:
    """The canonical encoding of ``entry`` (the log leaf's data)."""
    if not isinstance(entry, tuple(_BY_TYPE.values())):
        raise LocalError("not a transparency log entry")
    return entry.encode()


def decode_entry(data: bytes) -> Entry:
    """Decode one entry strictly; :class:`DecodeError` on anything but a canonical encoding."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError("log entry: expected bytes")
    if len(data) > MAX_ENTRY_BYTES:
        raise DecodeError("log entry: larger than MAX_ENTRY_BYTES")
    r = Reader(data, "log entry")
    r.version(ENTRY_VERSION)
    entry_type = r.u8("entry type")
    cls = _BY_TYPE.get(entry_type)
    if cls is None:
        raise DecodeError(f"log entry: unknown entry type {entry_type}")
    r.what = f"log entry ({EntryType(entry_type).name.lower()})"
    try:
        entry = cls._read(r)
    except LocalError as e:
        raise DecodeError(f"{r.what}: {e}") from None
    r.finish()
    return entry


# ----------------------------------------------------------------------------- commitments


def kt_label(beta: bytes) -> bytes:
    """The key-directory label of an account: the first 32 bytes of its vrf-r255 output."""
    _fixed(beta, VRF_OUTPUT_LEN, "a vrf-r255 output")
    return beta[:KT_LABEL_LEN]


def kt_commitment(opening: bytes, account_id: bytes) -> bytes:
    """``SHA-256("Overt_KT_commit_v1" ‖ opening ‖ account id)``; the opening is 32 fresh
    random bytes, so the account id (the rest of the input) is unambiguous."""
    _fixed(opening, KT_OPENING_LEN, "a key-directory opening")
    _var(account_id, MAX_ACCOUNT_ID_BYTES, "an account id")
    return sha256(KT_COMMIT_DST + opening + account_id)


def warrant_targets_commitment(opening: bytes) -> bytes:
    """``SHA-256("Overt_warrant_targets_v1" ‖ opening)``."""
    _var(opening, MAX_OPENING_BYTES, "a warrant opening")
    return sha256(WARRANT_TARGETS_DST + opening)
