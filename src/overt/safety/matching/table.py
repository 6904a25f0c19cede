"""The provider's blinded table: a cuckoo hash table of ``α·H(key)``, its commitment and deltas.

**Contents.** For a list version the provider takes every locality-sensitive key ``κ`` of every
list hash (:func:`~overt.safety.matching.lsh.list_keys`), deduplicated, and places ``α·H(κ)``
(``H`` = hash-to-ristretto255 under :data:`H2G_DST`, ``α`` the provider's blinding secret) at one
of three public positions ``h_0(κ), h_1(κ), h_2(κ)`` of a table of ``n`` slots (3-way cuckoo
hashing, load at most :data:`MAX_LOAD`). Every other slot holds a *filler* ``α·H(φ_j)`` with
``φ_j = "filler" ‖ j``: blinded like the real entries, so nobody without ``α`` can tell them
apart (DDH), yet never equal to any client key (the encodings are domain separated). The
client, for a key, uses all three positions, so where a key sits — and whether it is there —
stays hidden.

**Header and commitment.** The header carries the format version, the list id and version, the
LSH parameters, ``n``, the cuckoo seed and ``L = α·G``. The commitment is::

    commitment = SHA-256("Overt_PSI_table_v1" ‖ header ‖ SHA-256(d_0 ‖ d_1 ‖ …))
    d_c        = SHA-256(slots of chunk c)   (chunks of CHUNK_SLOTS slots)

so a client can check a downloaded table in one pass, and a delta re-hashes only the chunks it
touches. The organisations sign this commitment (:mod:`~overt.safety.matching.lists`).

**Opening for the organisations.** The provider can hand the organisations, out of band, the
*opening* of a table — each slot's input (a key or a filler label) — with batched DLEQ proofs
that every slot is ``α·H(input)`` for the ``α`` of ``L`` (:func:`prove_table`). An organisation
recomputes the keys from the plaintext list it vetted and checks the opening
(:func:`verify_opening`) before it signs: the table then encodes exactly that list and nothing
else, and the client, who never sees the opening, learns nothing.

**Deltas.** A new version in the same *series* (same ``α``, ``n`` and cuckoo seed) ships as the
slots that changed (:class:`TableDelta`); :func:`apply_delta` yields the new table, which the
client checks against the newly logged commitment like any other.

This module never sees images, vouchers or the network; ``α`` stays inside
:class:`ProviderKey`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, Self

from overt.crypto import POINT_LEN, Point, Rng, Scalar, sha256
from overt.crypto.dleq import MAX_BATCH, generate_proof, overt_context, verify_proof
from overt.crypto.h2c import hash_to_group
from overt.errors import DecodeError, InvalidMessage, LocalError
from overt.safety.matching.limits import MAX_DELTA_WRITES, MAX_TABLE_SLOTS
from overt.safety.matching.lsh import LshParams
from overt.wire import Reader, Writer

TABLE_VERSION: Final = 1
H2G_DST: Final = b"Overt_PSI_v1_HashToGroup_PDQ"
"""Domain separation tag of ``H`` for table keys and fillers."""
FILLER_PREFIX: Final = b"\xfffiller"
"""Filler labels start with 0xFF, which no key's index byte (< 64) is."""
COMMIT_LABEL: Final = b"Overt_PSI_table_v1"
CUCKOO_LABEL: Final = b"Overt_PSI_cuckoo_v1"
CHOICES: Final = 3
"""Positions per key (3-way cuckoo hashing; each client voucher tries all three)."""
MAX_LOAD: Final = 0.85
"""Filled fraction of the slots (3-way cuckoo insertion succeeds reliably up to ~0.9)."""
MAX_KICKS: Final = 2000
"""Evictions tried for one insertion before the build gives up (then: a new seed)."""
CHUNK_SLOTS: Final = 4096
"""Slots per hashed chunk of the commitment."""
LIST_ID_LEN: Final = 32
DLEQ_CONTEXT: Final = overt_context("psi-table")


def table_slots(entries: int, load: float = MAX_LOAD) -> int:
    """Slots of a table holding ``entries`` keys (at least ``CHOICES``)."""
    return max(CHOICES, -(-entries * 1000 // int(load * 1000)))


def key_point(key: bytes) -> Point:
    """``H(κ)``."""
    return hash_to_group(key, H2G_DST)


def filler_label(index: int) -> bytes:
    return FILLER_PREFIX + index.to_bytes(8, "big")


def positions(seed: bytes, key: bytes, n_slots: int) -> tuple[int, int, int]:
    """The three public cuckoo positions of ``key`` (they may coincide in a tiny table)."""
    d = sha256(CUCKOO_LABEL + seed + key)
    return (
        int.from_bytes(d[0:8], "big") % n_slots,
        int.from_bytes(d[8:16], "big") % n_slots,
        int.from_bytes(d[16:24], "big") % n_slots,
    )


# ----------------------------------------------------------------------------- provider key


@dataclass(frozen=True, slots=True, eq=False)
class ProviderKey:
    """The provider's blinding secret ``α`` of one table series, and ``L = α·G``."""

    alpha: Scalar = field(repr=False)
    public: Point

    @classmethod
    def generate(cls, rng: Rng) -> Self:
        alpha = Scalar.random(rng)
        return cls(alpha, Point.base_mul(alpha))

    @classmethod
    def from_secret_bytes(cls, raw: bytes) -> Self:
        alpha = Scalar.from_bytes(raw)
        return cls(alpha, Point.base_mul(alpha))

    def blind(self, p: Point) -> Point:
        return p.mul(self.alpha)

    def export_secret(self) -> bytes:
        return self.alpha.export_secret()

    def __repr__(self) -> str:
        return f"ProviderKey(<redacted>, public={self.public!r})"


# ----------------------------------------------------------------------------- header and table


@dataclass(frozen=True, slots=True)
class TableHeader:
    """What the commitment binds besides the slots."""

    list_id: bytes
    version: int
    lsh: LshParams
    n_slots: int
    cuckoo_seed: bytes
    public: Point
    """``L = α·G``."""

    def __post_init__(self) -> None:
        if len(self.list_id) != LIST_ID_LEN or len(self.cuckoo_seed) != 32:
            raise LocalError("list id and cuckoo seed are 32 bytes")
        if not CHOICES <= self.n_slots <= MAX_TABLE_SLOTS:
            raise LocalError("table size out of range")
        if not 0 <= self.version < 1 << 32:
            raise LocalError("table version is a u32")

    def encode(self) -> bytes:
        return (
            Writer()
            .u8(TABLE_VERSION)
            .fixed(self.list_id, LIST_ID_LEN)
            .u32(self.version)
            .raw(self.lsh.encode())
            .u32(self.n_slots)
            .fixed(self.cuckoo_seed, 32)
            .fixed(self.public.raw, POINT_LEN)
            .getvalue()
        )

    @classmethod
    def read(cls, r: Reader) -> Self:
        r.version(TABLE_VERSION)
        list_id = r.fixed(LIST_ID_LEN, "list id")
        version = r.u32("version")
        lsh = LshParams.read(r)
        n_slots = r.u32("slots")
        seed = r.fixed(32, "cuckoo seed")
        public = Point.from_bytes(r.fixed(POINT_LEN, "public"))
        try:
            return cls(list_id, version, lsh, n_slots, seed, public)
        except LocalError as e:
            raise DecodeError(f"table header: {e}") from None

    def same_series(self, other: TableHeader) -> bool:
        return (
            self.list_id == other.list_id
            and self.lsh == other.lsh
            and self.n_slots == other.n_slots
            and self.cuckoo_seed == other.cuckoo_seed
            and self.public == other.public
        )


def _chunk_digests(slots: bytes) -> list[bytes]:
    step = CHUNK_SLOTS * POINT_LEN
    return [sha256(slots[i : i + step]) for i in range(0, len(slots), step)]


def _commit(header: TableHeader, chunk_digests: Sequence[bytes]) -> bytes:
    return sha256(COMMIT_LABEL + header.encode() + sha256(b"".join(chunk_digests)))


@dataclass(frozen=True, slots=True, eq=False)
class BlindedTable:
    """A blinded table: header and ``n_slots`` points, concatenated (``32·n`` bytes)."""

    header: TableHeader
    slots: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.slots) != POINT_LEN * self.header.n_slots:
            raise DecodeError("table slots do not match the header's size")

    def slot(self, index: int) -> bytes:
        return self.slots[index * POINT_LEN : (index + 1) * POINT_LEN]

    def commitment(self) -> bytes:
        return _commit(self.header, _chunk_digests(self.slots))

    def nbytes(self) -> int:
        return len(self.slots)

    def encode(self) -> bytes:
        return Writer().raw(self.header.encode()).raw(self.slots).getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = Reader(data, "blinded table")
        header = TableHeader.read(r)
        slots = r.fixed(POINT_LEN * header.n_slots, "slots")
        r.finish()
        return cls(header, slots)


@dataclass(frozen=True, slots=True, eq=False)
class TableOpening:
    """For the organisations only: each slot's input and the DLEQ proofs (one per batch)."""

    inputs: tuple[bytes, ...] = field(repr=False)
    proofs: tuple[bytes, ...] = field(repr=False)


def _insert(owner: list[bytes | None], new_keys: Sequence[bytes], seed: bytes, rng: Rng) -> None:
    """Cuckoo-insert ``new_keys`` into ``owner`` (slot -> key or None), moving others."""
    n_slots = len(owner)
    for key in new_keys:
        item = key
        last = -1
        for _ in range(MAX_KICKS):
            pos = positions(seed, item, n_slots)
            free = next((p for p in pos if owner[p] is None), None)
            if free is not None:
                owner[free] = item
                break
            choices = [p for p in pos if p != last] or list(pos)
            victim = choices[rng.random_bytes(1)[0] % len(choices)]
            evicted = owner[victim]
            assert evicted is not None
            owner[victim], item = item, evicted
            last = victim
        else:
            raise LocalError("cuckoo insertion failed: rebuild with a new seed or more slots")


def _materialise(
    header: TableHeader,
    owner: Sequence[bytes | None],
    key: ProviderKey,
    rng: Rng,
    previous: BlindedTable | None = None,
    previous_inputs: Sequence[bytes] = (),
    *,
    prove: bool = True,
) -> tuple[BlindedTable, TableOpening]:
    inputs = tuple(x if x is not None else filler_label(i) for i, x in enumerate(owner))
    known: dict[bytes, bytes] = {}
    if previous is not None:  # a key that stayed or moved keeps its point: no exponentiation
        known = {x: previous.slot(i) for i, x in enumerate(previous_inputs)}
    parts = [known.get(x) or key.blind(key_point(x)).raw for x in inputs]
    table = BlindedTable(header, b"".join(parts))
    proofs = prove_table(table, inputs, key, rng) if prove else ()
    return table, TableOpening(inputs, proofs)


def build_table(
    keys: Iterable[bytes],
    *,
    list_id: bytes,
    version: int,
    lsh: LshParams,
    key: ProviderKey,
    rng: Rng,
    n_slots: int | None = None,
    cuckoo_seed: bytes | None = None,
    prove: bool = True,
) -> tuple[BlindedTable, TableOpening]:
    """Blind and place ``keys`` (deduplicated); fill the rest; return the table and opening.

    ``prove=False`` leaves the opening without proofs (for sizing runs; not for signing).
    """
    unique = sorted(set(keys))
    n = n_slots if n_slots is not None else table_slots(len(unique))
    if len(unique) > n * MAX_LOAD + CHOICES:
        raise LocalError("too many keys for this table size")
    seed = cuckoo_seed if cuckoo_seed is not None else rng.random_bytes(32)
    header = TableHeader(list_id, version, lsh, n, seed, key.public)
    owner: list[bytes | None] = [None] * n
    _insert(owner, unique, seed, rng)
    return _materialise(header, owner, key, rng, prove=prove)


def update_table(
    old: BlindedTable,
    opening: TableOpening,
    keys: Iterable[bytes],
    *,
    version: int,
    key: ProviderKey,
    rng: Rng,
) -> tuple[BlindedTable, TableOpening, TableDelta]:
    """The next version of a series holding exactly ``keys``: removed keys become fillers,
    new keys are cuckoo-inserted around the existing ones, so the delta stays small."""
    if key.public != old.header.public:
        raise LocalError("not this series' provider key")
    wanted = set(keys)
    n = old.header.n_slots
    if len(wanted) > n * MAX_LOAD + CHOICES:
        raise LocalError("too many keys for this series: start a new one")
    owner: list[bytes | None] = [
        None if x.startswith(FILLER_PREFIX) or x not in wanted else x for x in opening.inputs
    ]
    present = {x for x in owner if x is not None}
    _insert(owner, sorted(wanted - present), old.header.cuckoo_seed, rng)
    header = TableHeader(
        old.header.list_id, version, old.header.lsh, n, old.header.cuckoo_seed, key.public
    )
    new, new_opening = _materialise(header, owner, key, rng, old, opening.inputs)
    return new, new_opening, make_delta(old, new)


def prove_table(
    table: BlindedTable, inputs: Sequence[bytes], key: ProviderKey, rng: Rng
) -> tuple[bytes, ...]:
    """Batched DLEQ proofs that slot ``j`` is ``α·H(inputs[j])`` with ``L = α·G``."""
    g = Point.base_mul(Scalar.from_int(1))
    proofs = []
    for start in range(0, len(inputs), MAX_BATCH):
        idx = range(start, min(start + MAX_BATCH, len(inputs)))
        c = [key_point(inputs[i]) for i in idx]
        d = [Point(table.slot(i)) for i in idx]
        proofs.append(generate_proof(key.alpha, g, key.public, c, d, rng=rng, context=DLEQ_CONTEXT))
    return tuple(proofs)


def verify_opening(table: BlindedTable, opening: TableOpening, keys: Iterable[bytes]) -> None:
    """What an organisation checks before signing: the table holds exactly ``keys``.

    Every slot's input is a key of ``keys`` at one of its cuckoo positions or the filler label
    of that slot; every key appears once; the proofs show every slot is ``α·H(input)`` for the
    ``α`` of the header's ``L``. :class:`InvalidMessage` otherwise.
    """
    expected = set(keys)
    h = table.header
    if len(opening.inputs) != h.n_slots:
        raise InvalidMessage()
    seen: set[bytes] = set()
    for j, x in enumerate(opening.inputs):
        if x.startswith(FILLER_PREFIX):
            if x != filler_label(j):
                raise InvalidMessage()
            continue
        if x not in expected or x in seen or j not in positions(h.cuckoo_seed, x, h.n_slots):
            raise InvalidMessage()
        seen.add(x)
    if seen != expected:
        raise InvalidMessage()
    g = Point.base_mul(Scalar.from_int(1))
    batches = range(0, h.n_slots, MAX_BATCH)
    if len(opening.proofs) != len(batches):
        raise InvalidMessage()
    for proof, start in zip(opening.proofs, batches, strict=True):
        idx = range(start, min(start + MAX_BATCH, h.n_slots))
        try:
            d = [Point.from_bytes(table.slot(i)) for i in idx]
        except DecodeError:
            raise InvalidMessage() from None
        c = [key_point(opening.inputs[i]) for i in idx]
        verify_proof(g, h.public, c, d, proof, context=DLEQ_CONTEXT)


# ----------------------------------------------------------------------------- deltas


@dataclass(frozen=True, slots=True, eq=False)
class TableDelta:
    """The slots that changed between two versions of one series."""

    base_commitment: bytes
    header: TableHeader
    writes: tuple[tuple[int, bytes], ...] = field(repr=False)
    """(slot index, new point), slot indices strictly increasing."""

    def __post_init__(self) -> None:
        if len(self.writes) > MAX_DELTA_WRITES:
            raise DecodeError("delta has more than MAX_DELTA_WRITES writes")
        previous = -1
        for index, point in self.writes:
            if not previous < index < self.header.n_slots or len(point) != POINT_LEN:
                raise DecodeError("delta writes out of order or out of range")
            previous = index

    def encode(self) -> bytes:
        w = Writer().u8(TABLE_VERSION).fixed(self.base_commitment, 32).raw(self.header.encode())
        w.u32(len(self.writes))
        for index, point in self.writes:
            w.u32(index).fixed(point, POINT_LEN)
        return w.getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = Reader(data, "table delta")
        r.version(TABLE_VERSION)
        base = r.fixed(32, "base commitment")
        header = TableHeader.read(r)
        count = r.u32("writes")
        if count > MAX_DELTA_WRITES or count * (4 + POINT_LEN) != r.remaining():
            raise DecodeError("table delta: wrong number of writes")
        writes = tuple((r.u32("slot"), r.fixed(POINT_LEN, "point")) for _ in range(count))
        r.finish()
        return cls(base, header, writes)


def make_delta(old: BlindedTable, new: BlindedTable) -> TableDelta:
    """The delta from ``old`` to ``new`` (same series)."""
    if not old.header.same_series(new.header):
        raise LocalError("a delta joins two versions of one series")
    writes = tuple(
        (i, new.slot(i)) for i in range(new.header.n_slots) if old.slot(i) != new.slot(i)
    )
    return TableDelta(old.commitment(), new.header, writes)


def apply_delta(old: BlindedTable, delta: TableDelta) -> BlindedTable:
    """The new table; :class:`InvalidMessage` if the delta is for another base or series.

    The result is not trusted yet: the caller checks it against the logged commitment.
    """
    if delta.base_commitment != old.commitment() or not old.header.same_series(delta.header):
        raise InvalidMessage()
    slots = bytearray(old.slots)
    for index, point in delta.writes:
        slots[index * POINT_LEN : (index + 1) * POINT_LEN] = point
    return BlindedTable(delta.header, bytes(slots))
