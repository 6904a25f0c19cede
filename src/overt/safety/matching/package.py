"""A list version on its way to the log: what the provider prepares, what each organisation
checks and signs, and the entry that results.

**The provider** (``overt matching prepare``) imports a list file, builds the blinded table —
the first version of a series with :func:`~overt.safety.matching.table.build_table`, a later
one around the previous version with :func:`~overt.safety.matching.table.update_table` so that
it ships as a delta — and writes a :class:`ListPackage`: the plaintext list (``list.txt``,
one hash per line), the table (``table.bin``), its opening with the DLEQ proofs
(``opening.bin``, for the organisations only; never served) and the unsigned statement
(``statement.json``).

**Each organisation** (``overt matching sign``) reads the package, recomputes every
locality-sensitive key from the list it vetted, checks the opening
(:func:`~overt.safety.matching.table.verify_opening`: the table holds exactly those keys,
blinded under the table's ``L``), checks that the statement names this table's commitment, this
list's digest and count, and only then signs the statement with its Ed25519 key
(:func:`check_and_sign`). A signature is a small JSON file (:class:`ListSignature`).

**The provider** (``overt matching publish``) collects the signatures into the
:class:`~overt.transparency.entries.MatchingListCommitment` (:func:`assemble`), which goes into
the transparency log (entry type 8).

Everything here is bytes and JSON in, values out; files and the log are the callers'.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Final, Self

from overt.crypto import Ed25519PrivateKey, Ed25519PublicKey, Rng
from overt.errors import DecodeError, InvalidMessage, LocalError
from overt.safety.matching.lists import NO_PREVIOUS, HashList, sign_statement
from overt.safety.matching.lsh import LshParams
from overt.safety.matching.pdq import PdqHash
from overt.safety.matching.table import (
    MAX_LOAD,
    BlindedTable,
    ProviderKey,
    TableDelta,
    TableOpening,
    build_table,
    table_slots,
    update_table,
    verify_opening,
)
from overt.transparency.entries import MatchingListCommitment
from overt.wire import Reader, Writer
from overt.wire.b64 import b64d, b64e
from overt.wire.jcs import canonicalize, parse_strict

OPENING_VERSION: Final = 1
STATEMENT_FORMAT: Final = "overt-matching-statement"
SIGNATURE_FORMAT: Final = "overt-matching-signature"
_PLACEHOLDER: Final = ((bytes(32), bytes(64)),)
BUILD_ATTEMPTS: Final = 8
"""Cuckoo placements tried (each with a fresh seed) before the table is made larger."""
FALLBACK_LOAD: Final = 0.5
DEFAULT_HEADROOM: Final = 0.25
"""Version 1 of a series is sized for 25 % more keys than it holds: later versions that add
hashes then still fit the series and ship as deltas (past it, a new series and a full
download)."""
MAX_HEADROOM: Final = 10.0


# ----------------------------------------------------------------------------- encodings


def encode_opening(opening: TableOpening) -> bytes:
    w = Writer().u8(OPENING_VERSION).u32(len(opening.inputs))
    for x in opening.inputs:
        w.vec(x, 2)
    w.u32(len(opening.proofs))
    for p in opening.proofs:
        w.vec(p, 2)
    return w.getvalue()


def decode_opening(data: bytes) -> TableOpening:
    r = Reader(data, "table opening")
    r.version(OPENING_VERSION)
    n = r.u32("inputs")
    if n * 2 > r.remaining():
        raise DecodeError("table opening: more inputs than bytes")
    inputs = tuple(r.vec(2, "input") for _ in range(n))
    m = r.u32("proofs")
    if m * 2 > r.remaining():
        raise DecodeError("table opening: more proofs than bytes")
    proofs = tuple(r.vec(2, "proof") for _ in range(m))
    r.finish()
    return TableOpening(inputs, proofs)


def encode_list(hashes: HashList) -> str:
    """The plaintext list as organisations read it: one hex hash per line."""
    return "".join(h.hex() + "\n" for h in hashes.hashes)


def list_bytes(hashes: HashList) -> bytes:
    """The list as the server keeps it for its re-check: the raw hashes, concatenated."""
    return b"".join(h.raw for h in hashes.hashes)


def list_from_bytes(data: bytes) -> HashList:
    if len(data) % 32:
        raise DecodeError("a stored hash list is a multiple of 32 bytes")
    return HashList.of([PdqHash(data[i : i + 32]) for i in range(0, len(data), 32)])


@dataclass(frozen=True, slots=True)
class Statement:
    """The unsigned part of a list version's log entry."""

    list_id: bytes
    version: int
    hash_count: int
    table_commitment: bytes
    list_digest: bytes
    previous: bytes

    def entry(
        self, signatures: tuple[tuple[bytes, bytes], ...] = _PLACEHOLDER
    ) -> MatchingListCommitment:
        return MatchingListCommitment(
            self.list_id, self.version, self.hash_count, self.table_commitment,
            self.list_digest, self.previous, signatures,
        )  # fmt: skip

    def message(self) -> bytes:
        """What every organisation signs (:meth:`MatchingListCommitment.statement`)."""
        return self.entry().statement()

    def to_json(self) -> bytes:
        return canonicalize(
            {
                "format": STATEMENT_FORMAT,
                "list_digest": b64e(self.list_digest),
                "list_id": b64e(self.list_id),
                "hash_count": self.hash_count,
                "previous": b64e(self.previous),
                "table_commitment": b64e(self.table_commitment),
                "version": self.version,
            }
        )

    @classmethod
    def from_json(cls, data: bytes) -> Self:
        v = parse_strict(data)
        keys = {"format", "list_digest", "list_id", "hash_count", "previous",
                "table_commitment", "version"}  # fmt: skip
        if not isinstance(v, dict) or set(v) != keys or v["format"] != STATEMENT_FORMAT:
            raise DecodeError("not an Overt matching statement")
        try:
            out = cls(
                _b64(v["list_id"]), _int(v["version"]), _int(v["hash_count"]),
                _b64(v["table_commitment"]), _b64(v["list_digest"]), _b64(v["previous"]),
            )  # fmt: skip
            out.entry()
        except LocalError as e:
            raise DecodeError(f"matching statement: {e}") from None
        return out


def _b64(value: object) -> bytes:
    if not isinstance(value, str):
        raise DecodeError("expected a base64url string")
    return b64d(value, "a matching statement field")


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise DecodeError("expected an integer")
    return value


@dataclass(frozen=True, slots=True)
class ListSignature:
    """One organisation's signature on a statement, as the file it hands back."""

    name: str
    key: bytes
    signature: bytes = field(repr=False)

    def to_json(self) -> bytes:
        return canonicalize(
            {
                "format": SIGNATURE_FORMAT,
                "key": b64e(self.key),
                "name": self.name,
                "signature": b64e(self.signature),
            }
        )

    @classmethod
    def from_json(cls, data: bytes) -> Self:
        v = parse_strict(data)
        if (
            not isinstance(v, dict)
            or set(v) != {"format", "key", "name", "signature"}
            or v["format"] != SIGNATURE_FORMAT
            or not isinstance(v["name"], str)
        ):
            raise DecodeError("not an Overt matching list signature")
        key, sig = _b64(v["key"]), _b64(v["signature"])
        if len(key) != 32 or len(sig) != 64:
            raise DecodeError("a list signature has a 32-byte key and a 64-byte signature")
        return cls(v["name"], key, sig)


# ----------------------------------------------------------------------------- the provider


@dataclass(frozen=True, slots=True, eq=False)
class ListPackage:
    """A prepared list version: what the organisations check and the provider publishes."""

    hashes: HashList
    table: BlindedTable
    opening: TableOpening
    statement: Statement
    delta: TableDelta | None = None
    """The delta from the previous version, if this one continues a series."""


def prepare(
    hashes: HashList,
    key: ProviderKey,
    rng: Rng,
    *,
    list_id: bytes,
    lsh: LshParams,
    previous: tuple[BlindedTable, TableOpening] | None = None,
    headroom: float = DEFAULT_HEADROOM,
) -> ListPackage:
    """Build the next version of a list: version 1 of a new series (with room for
    ``headroom`` more keys, so that later versions fit as deltas), or the version after
    ``previous`` (its table and opening) in the same series, shipped as a delta."""
    keys = hashes.keys(lsh)
    if previous is None:
        table, opening = _build(keys, list_id, lsh, key, rng, headroom)
        delta, before = None, NO_PREVIOUS
    else:
        old, old_opening = previous
        if old.header.list_id != list_id or old.header.lsh != lsh:
            raise LocalError("the previous version is of another list or LSH parameters")
        table, opening, delta = update_table(
            old, old_opening, keys, version=old.header.version + 1, key=key, rng=rng
        )
        before = old.commitment()
    statement = Statement(
        list_id, table.header.version, len(hashes), table.commitment(), hashes.digest(), before
    )
    return ListPackage(hashes, table, opening, statement, delta)


def _build(
    keys: set[bytes], list_id: bytes, lsh: LshParams, key: ProviderKey, rng: Rng, headroom: float
) -> tuple[BlindedTable, TableOpening]:
    """Version 1 of a series; a cuckoo placement that fails (rare, likelier in tiny tables) is
    retried with a fresh seed, then with a table at half load."""
    if not 0 <= headroom <= MAX_HEADROOM:
        raise LocalError(f"headroom is 0..{MAX_HEADROOM}")
    planned = math.ceil(len(keys) * (1 + headroom))
    for attempt in range(BUILD_ATTEMPTS + 1):
        load = FALLBACK_LOAD if attempt == BUILD_ATTEMPTS else MAX_LOAD
        slots = table_slots(planned, load)
        try:
            return build_table(
                keys, list_id=list_id, version=1, lsh=lsh, key=key, rng=rng, n_slots=slots
            )
        except LocalError:
            if attempt == BUILD_ATTEMPTS:
                raise
    raise AssertionError  # pragma: no cover


def assemble(statement: Statement, signatures: list[ListSignature]) -> MatchingListCommitment:
    """The log entry: the statement and every signature that verifies on it (sorted by key,
    one per key). :class:`LocalError` if none verifies."""
    message = statement.message()
    good: dict[bytes, bytes] = {}
    for s in signatures:
        try:
            Ed25519PublicKey.from_bytes(s.key).verify(s.signature, message)
        except (DecodeError, InvalidMessage):
            continue
        good[s.key] = s.signature
    if not good:
        raise LocalError("no organisation's signature verifies on this statement")
    return statement.entry(tuple(sorted(good.items())))


# ----------------------------------------------------------------------------- organisations


def check_and_sign(
    *,
    hashes: HashList,
    table: BlindedTable,
    opening: TableOpening,
    statement: Statement,
    key: Ed25519PrivateKey,
    name: str,
) -> ListSignature:
    """What an organisation does before it signs (see the module docstring).

    ``hashes`` is the list the organisation vetted. :class:`InvalidMessage` if the table or
    the statement is not exactly that list; nothing is signed then.
    """
    verify_opening(table, opening, hashes.keys(table.header.lsh))
    h = table.header
    if (
        statement.table_commitment != table.commitment()
        or statement.list_digest != hashes.digest()
        or statement.hash_count != len(hashes)
        or statement.list_id != h.list_id
        or statement.version != h.version
    ):
        raise InvalidMessage()
    public, signature = sign_statement(key, statement.message())
    return ListSignature(name, public, signature)


__all__ = [
    "ListPackage",
    "ListSignature",
    "Statement",
    "assemble",
    "check_and_sign",
    "decode_opening",
    "encode_list",
    "encode_opening",
    "list_bytes",
    "list_from_bytes",
    "prepare",
]
