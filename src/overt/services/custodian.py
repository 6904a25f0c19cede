"""The custodian service: one of the ``n`` key custodians of an escrow deployment (DESIGN §6),
with its own process, keys and durable state.

It holds one share of each escrow epoch's key, made by a DKG with the other custodians, and
releases ``x_j·R`` for messages only when it decides, on its own, that a request is lawful
(:func:`overt.access.custodian_policy.decide`) — and only after the provider has logged its
access receipt.

Endpoints (an ASGI app built by :func:`create_app`; JSON bodies, base64url binary):

``GET /identity``
    Index, name, Ed25519 key (the manifest's), X25519 key for DKG shares (signed).
``GET /status``
    Epochs held or destroyed, and per warrant how many messages were released.
``GET /epochs/{epoch}``
    The epoch's public DKG transcript and status (also after destruction).
``POST /dkg/{epoch}/round1`` … ``round2``, ``round3``, ``finalize``
    The DKG rounds (:mod:`overt.access.dkg`), driven by
    :func:`~overt.services.custodian_client.run_dkg`.
    Every message out is signed with this custodian's manifest key; every message in must be
    signed by its sender's manifest key for this run's session; shares arrive sealed to this
    custodian's X25519 key. A round asked for again answers the same (a retried request is
    harmless); a DKG for an epoch this custodian already has (or destroyed) is refused (409).
``POST /decrypt``
    ``{"warrant": b64, "log_proof": "<tlog-proof>", "request": b64 AccessRequest}``. The
    custodian fetches the manifest (court keys, log key, witnesses and quorum) and the
    warrant's revocation from the provider, decides, and on approval **first** has the provider
    log its signed receipt, **then** answers ``{"custodian", "response", "receipt",
    "receipt_index"}``. A refusal is ``403 {"error": "refused", "refusal": <code>, "message":
    <why>, "item": <index or null>}``; if the provider cannot be reached the answer is ``503``
    and nothing is released (it fails closed).
``POST /revocations``
    A court-signed revocation, pushed by a court directly (besides the provider's copy).
``POST /epochs/{epoch}/destroy``, ``POST /warrants/{id}/veto`` (operator: ``Authorization:
Bearer <admin.token>``)
    Destroy an epoch's share now; refuse a warrant whatever it says (the operator's own
    judgement — independence is the point of having custodians).

A DKG is taken part in only for an epoch whose retention has not ended and that is at most
:data:`MAX_DKG_EPOCHS_AHEAD` epochs ahead.

**Destruction.** On every request the custodian compares its clock with each held epoch's
``retain_until`` (:func:`~overt.services.custodian_wire.epoch_span`) and destroys the shares
that are due: the state file then keeps only the :class:`~overt.access.dkg.DestroyedShare`
tombstone (public values), and every later request for that epoch is refused.

**Files** in the data directory (all 0600, in a 0700 directory):

``custodian.key``
    The Ed25519 identity key (its public half goes in the manifest) and the X25519 key DKG
    shares are sealed to, created on first start.
``storage.key``
    32 random bytes: the key that encrypts the epoch shares at rest. It is kept apart from the
    state so that a copy of the state alone reveals no share; **a real deployment keeps it in
    an HSM** (or a KMS) and never on the same disk.
``admin.token``
    The operator's bearer token for the destroy and veto endpoints.
``custodian-state.json``
    The durable state, written atomically (temporary file, fsync, rename, fsync of the
    directory) before any answer that depends on it: the pinned manifest, per epoch the share
    sealed under a key derived from ``storage.key`` with a fresh salt (or its tombstone), per
    warrant the count released and the ``(SHA-256(ctx), R)`` pairs released (as ``decide``
    requires), the receipts' log indices, revocations and vetoes.

This module holds the I/O — files, the clock, HTTP to the provider, uvicorn; the decisions are
:mod:`overt.access`'s. It never imports the relay server or the user's client.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, TextIO

import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from overt.access.custodian_policy import (
    AccessRequest,
    AccessTrust,
    Approved,
    Refused,
    decide,
)
from overt.access.dkg import (
    ComplaintAnswer,
    Complaints,
    DealerCommitment,
    DestroyedShare,
    DkgParameters,
    DkgParticipant,
    DkgTranscript,
    EpochKeyShare,
)
from overt.access.errors import DkgFailed, DkgStateError
from overt.access.limits import MAX_WARRANT_BYTES
from overt.access.threshold import make_shares
from overt.access.warrant import verify_revocation
from overt.crypto import (
    Ed25519PrivateKey,
    Rng,
    SystemRng,
    X25519PrivateKey,
    constant_time_eq,
    hkdf_sha256,
    open_sealed,
    seal,
    sha256,
)
from overt.errors import (
    ConfigurationError,
    DecodeError,
    InvalidMessage,
    LocalError,
    OvertError,
    ProtocolViolation,
    UntrustedIdentity,
)
from overt.services import _files
from overt.services._files import create_secret, read_secret, write_atomically
from overt.services._listen import listen, serve, url_of
from overt.services.custodian_client import PartyError, PartyRejected, ProviderClient
from overt.services.custodian_wire import (
    CustodianIdentity,
    MessageKind,
    SignedMessage,
    b64d,
    b64e,
    dkg_parameters,
    epoch_at,
    epoch_span,
    escrow,
    integer,
    items,
    members,
    message_list,
    open_share,
    seal_share,
    sign_receipt,
)
from overt.transparency.checkpoint import MAX_PROOF_BUNDLE_BYTES
from overt.transparency.entries import encode_entry
from overt.transparency.manifest import Manifest, check_successor, verify_manifest
from overt.wire.jcs import JsonValue, canonicalize, parse_strict

KEY_FILE_NAME: Final = "custodian.key"
STORAGE_KEY_FILE_NAME: Final = "storage.key"
ADMIN_TOKEN_FILE_NAME: Final = "admin.token"  # noqa: S105 - a file name, not a secret
STATE_FILE_NAME: Final = "custodian-state.json"
PUBLIC_FILE_NAME: Final = "custodian.json"

KEY_FILE_HEADER: Final = "OVERT-CUSTODIAN-KEY v1"
STATE_FORMAT: Final = "overt-custodian-state"
STATE_VERSION: Final = 1
AT_REST_INFO: Final = b"Overt_CustodianShareAtRest_v1"

STORAGE_KEY_LEN: Final = 32
ADMIN_TOKEN_BYTES: Final = 32
MAX_KEY_FILE_BYTES: Final = 1024
MAX_STATE_BYTES: Final = 256 * 1024 * 1024
"""Largest state file read (per warrant, 96 bytes of JSON per released message)."""
MAX_DKG_REQUEST_BYTES: Final = 1024 * 1024
MAX_DECRYPT_REQUEST_BYTES: Final = 16 * 1024 * 1024
"""An AccessRequest of 4096 items with group member lists, in base64, with the warrant."""
MAX_REVOCATION_REQUEST_BYTES: Final = MAX_WARRANT_BYTES
MAX_DKG_EPOCHS_AHEAD: Final = 12
"""How many epochs ahead of the current one a custodian takes part in a DKG: the DKG
endpoints need no credential (every message is signed and checked), so this bounds what any
driver can make a custodian keep."""
MANIFEST_REFRESH_SECONDS: Final = 30.0
"""How long a fetched manifest is used before asking the provider again."""
DEFAULT_HOST: Final = "127.0.0.1"

logger = logging.getLogger("overt.services.custodian")


# ----------------------------------------------------------------------------- files


def _read_secret(path: Path, limit: int) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        raise ConfigurationError(f"cannot read {path}: {e}") from e
    data = read_secret(fd, path, limit)
    if len(data) > limit:
        raise ConfigurationError(f"{path} is too large to be a custodian key file")
    return data


@dataclass(frozen=True, slots=True, eq=False)
class CustodianKeys:
    """The custodian's secrets: signing and DH keys, the at-rest storage key, the admin
    token. ``repr`` shows the public key only."""

    sign: Ed25519PrivateKey
    dh: X25519PrivateKey
    storage_key: bytes = field(repr=False)
    admin_token: str = field(repr=False)

    @classmethod
    def generate(cls, rng: Rng) -> CustodianKeys:
        return cls(
            Ed25519PrivateKey.generate(rng),
            X25519PrivateKey.generate(rng),
            rng.random_bytes(STORAGE_KEY_LEN),
            rng.random_bytes(ADMIN_TOKEN_BYTES).hex(),
        )


def load_or_create_keys(data_dir: str | Path, rng: Rng | None = None) -> tuple[CustodianKeys, bool]:
    """The custodian's keys from ``data_dir`` (created on first use, 0600); whether they were
    just created. :class:`ConfigurationError` says what to do if a file is unusable."""
    directory = Path(data_dir)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    rng = rng or SystemRng()
    key_path = directory / KEY_FILE_NAME
    created = False
    if not key_path.exists():
        fresh = CustodianKeys.generate(rng)
        text = (
            f"{KEY_FILE_HEADER}\nsign {b64e(fresh.sign.export_secret())}\n"
            f"dh {b64e(fresh.dh.export_secret())}\n"
        )
        create_secret(key_path, text.encode("ascii"))
        create_secret(directory / STORAGE_KEY_FILE_NAME, fresh.storage_key)
        create_secret(directory / ADMIN_TOKEN_FILE_NAME, (fresh.admin_token + "\n").encode())
        created = True
    try:
        lines = _read_secret(key_path, MAX_KEY_FILE_BYTES).decode("ascii").splitlines()
        if len(lines) != 3 or lines[0] != KEY_FILE_HEADER:
            raise DecodeError("not a custodian key file")
        sign_b64 = lines[1].removeprefix("sign ")
        dh_b64 = lines[2].removeprefix("dh ")
        sign = Ed25519PrivateKey.from_secret_bytes(b64d(sign_b64, "signing key", 32))
        dh = X25519PrivateKey.from_secret_bytes(b64d(dh_b64, "DH key", 32))
    except (DecodeError, UnicodeDecodeError) as e:
        raise ConfigurationError(f"{key_path} is not a custodian key ({e}); restore it") from None
    storage_key = _read_secret(directory / STORAGE_KEY_FILE_NAME, STORAGE_KEY_LEN)
    if len(storage_key) != STORAGE_KEY_LEN:
        raise ConfigurationError(f"{directory / STORAGE_KEY_FILE_NAME} must hold 32 bytes")
    token = _read_secret(directory / ADMIN_TOKEN_FILE_NAME, 256).decode("ascii", "replace")
    return CustodianKeys(sign, dh, storage_key, token.strip()), created


def read_admin_token(data_dir: str | Path) -> str:
    """The operator's bearer token of the custodian in ``data_dir``."""
    return _read_secret(Path(data_dir) / ADMIN_TOKEN_FILE_NAME, 256).decode("ascii").strip()


# ----------------------------------------------------------------------------- shares at rest


def _at_rest_key(storage_key: bytes, salt: bytes, epoch: int, index: int) -> tuple[bytes, bytes]:
    label = AT_REST_INFO + epoch.to_bytes(4, "big") + bytes((index,))
    return hkdf_sha256(storage_key, salt, label, 32), label


def seal_at_rest(storage_key: bytes, share: EpochKeyShare, rng: Rng) -> bytes:
    """``salt[32] ‖ seal(HKDF(storage_key, salt, info), share)``: a fresh key per record."""
    salt = rng.random_bytes(32)
    key, label = _at_rest_key(storage_key, salt, share.epoch, share.index)
    return salt + seal(key, share.encode(), label)


def open_at_rest(storage_key: bytes, sealed: bytes, epoch: int, index: int) -> EpochKeyShare:
    """The share sealed by :func:`seal_at_rest`; :class:`ConfigurationError` if it does not
    open (wrong ``storage.key``, a damaged state file)."""
    key, label = _at_rest_key(storage_key, sealed[:32], epoch, index)
    try:
        share = EpochKeyShare.decode(open_sealed(key, sealed[32:], label))
    except (InvalidMessage, DecodeError):
        raise ConfigurationError(
            f"the stored share of epoch {epoch} does not open with storage.key: restore the "
            "matching storage.key (or the state) from a backup"
        ) from None
    if share.epoch != epoch or share.index != index:
        raise ConfigurationError(f"the stored share of epoch {epoch} is another epoch's")
    return share


# ----------------------------------------------------------------------------- state


@dataclass(frozen=True, slots=True)
class HeldEpoch:
    sealed_share: bytes = field(repr=False)
    transcript: bytes
    not_before: int
    retain_until: int


@dataclass(frozen=True, slots=True)
class DestroyedEpoch:
    tombstone: bytes
    retain_until: int
    destroyed_at: int


EpochRecord = HeldEpoch | DestroyedEpoch


@dataclass(frozen=True, slots=True)
class WarrantUse:
    """What this custodian released under one warrant."""

    used: int = 0
    released: Mapping[bytes, bytes] = field(default_factory=dict, repr=False)
    """SHA-256 of each released context → the point ``R`` it was released with."""
    receipts: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class CustodianState:
    """Everything the custodian must not forget, as one versioned JSON document."""

    index: int
    name: str
    manifest: bytes | None = None
    epochs: Mapping[int, EpochRecord] = field(default_factory=dict)
    warrants: Mapping[bytes, WarrantUse] = field(default_factory=dict)
    revocations: tuple[bytes, ...] = ()
    vetoes: frozenset[bytes] = frozenset()

    def to_bytes(self) -> bytes:
        epochs: dict[str, JsonValue] = {}
        for e, rec in sorted(self.epochs.items()):
            if isinstance(rec, HeldEpoch):
                epochs[str(e)] = {
                    "not_before": rec.not_before,
                    "retain_until": rec.retain_until,
                    "sealed_share": b64e(rec.sealed_share),
                    "status": "held",
                    "transcript": b64e(rec.transcript),
                }
            else:
                epochs[str(e)] = {
                    "destroyed_at": rec.destroyed_at,
                    "retain_until": rec.retain_until,
                    "status": "destroyed",
                    "tombstone": b64e(rec.tombstone),
                }
        warrants: dict[str, JsonValue] = {
            b64e(w): {
                "receipts": list(u.receipts),
                "released": {b64e(h): b64e(r) for h, r in sorted(u.released.items())},
                "used": u.used,
            }
            for w, u in sorted(self.warrants.items())
        }
        doc: dict[str, JsonValue] = {
            "epochs": epochs,
            "format": STATE_FORMAT,
            "index": self.index,
            "manifest": None if self.manifest is None else b64e(self.manifest),
            "name": self.name,
            "revocations": [b64e(r) for r in self.revocations],
            "version": STATE_VERSION,
            "vetoes": [b64e(v) for v in sorted(self.vetoes)],
            "warrants": warrants,
        }
        return canonicalize(doc)

    @classmethod
    def from_bytes(cls, data: bytes) -> CustodianState:
        doc = parse_strict(data, max_bytes=MAX_STATE_BYTES)
        m = members(
            doc,
            "custodian state",
            {
                "epochs", "format", "index", "manifest", "name", "revocations", "version",
                "vetoes", "warrants",
            },
        )  # fmt: skip
        if m["format"] != STATE_FORMAT or m["version"] != STATE_VERSION:
            raise DecodeError("not a custodian state of this version")
        name = m["name"]
        if not isinstance(name, str):
            raise DecodeError("custodian state: name must be a string")
        raw_epochs = m["epochs"]
        raw_warrants = m["warrants"]
        if not isinstance(raw_epochs, dict) or not isinstance(raw_warrants, dict):
            raise DecodeError("custodian state: epochs and warrants are objects")
        epochs: dict[int, EpochRecord] = {}
        for key, value in raw_epochs.items():
            if not key.isdigit():
                raise DecodeError("custodian state: an epoch key is not a number")
            if isinstance(value, dict) and value.get("status") == "held":
                h = members(
                    value,
                    "held epoch",
                    {"not_before", "retain_until", "sealed_share", "status", "transcript"},
                )
                epochs[int(key)] = HeldEpoch(
                    b64d(h["sealed_share"], "sealed share"),
                    b64d(h["transcript"], "transcript"),
                    integer(h["not_before"], "not_before", 0, 1 << 63),
                    integer(h["retain_until"], "retain_until", 0, 1 << 63),
                )
            else:
                d = members(
                    value,
                    "destroyed epoch",
                    {"destroyed_at", "retain_until", "status", "tombstone"},
                )
                epochs[int(key)] = DestroyedEpoch(
                    b64d(d["tombstone"], "tombstone"),
                    integer(d["retain_until"], "retain_until", 0, 1 << 63),
                    integer(d["destroyed_at"], "destroyed_at", 0, 1 << 63),
                )
        warrants: dict[bytes, WarrantUse] = {}
        for key, value in raw_warrants.items():
            u = members(value, "warrant use", {"receipts", "released", "used"})
            released_doc = u["released"]
            if not isinstance(released_doc, dict):
                raise DecodeError("custodian state: released is an object")
            warrants[b64d(key, "warrant id", 32)] = WarrantUse(
                integer(u["used"], "used", 0, 1 << 62),
                {
                    b64d(h, "context hash", 32): b64d(r, "point", 32)
                    for h, r in released_doc.items()
                },
                tuple(
                    integer(i, "receipt index", 0, 1 << 62)
                    for i in items(u["receipts"], "receipts", 1 << 20)
                ),
            )
        manifest = m["manifest"]
        return cls(
            index=integer(m["index"], "index", 1, 32),
            name=name,
            manifest=None if manifest is None else b64d(manifest, "manifest"),
            epochs=epochs,
            warrants=warrants,
            revocations=tuple(
                b64d(r, "revocation") for r in items(m["revocations"], "revocations", 1 << 16)
            ),
            vetoes=frozenset(b64d(v, "veto", 32) for v in items(m["vetoes"], "vetoes", 1 << 16)),
        )


class StateFile(_files.StateFile[CustodianState]):
    """The state in one file, replaced atomically on every change."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(
            path,
            decode=CustodianState.from_bytes,
            max_bytes=MAX_STATE_BYTES,
            party="custodian",
            consequence="starting afresh would forget what was released and the shares held",
        )


class MemoryStateFile:
    """A state store in memory (tests)."""

    def __init__(self) -> None:
        self.state: CustodianState | None = None

    def load(self) -> CustodianState | None:
        return self.state

    def save(self, state: CustodianState) -> None:
        self.state = state


StateStore = StateFile | MemoryStateFile


class _Released(Mapping[bytes, bytes]):
    """``decide``'s view of the released pairs: looked up by context, stored by its hash."""

    def __init__(self, by_hash: Mapping[bytes, bytes]) -> None:
        self._by_hash = by_hash

    def __getitem__(self, context: bytes) -> bytes:
        return self._by_hash[sha256(context)]

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._by_hash)

    def __len__(self) -> int:
        return len(self._by_hash)


# ----------------------------------------------------------------------------- errors


class CustodianError(OvertError):
    """An answer this service gives: HTTP status, error code, message."""

    def __init__(self, status: int, code: str, message: str, **extra: JsonValue) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.extra = extra

    def response(self) -> JSONResponse:
        body: dict[str, JsonValue] = {"error": self.code, "message": str(self), **self.extra}
        return JSONResponse(body, status_code=self.status)


def _refused(refusal: str, message: str, item: int | None = None) -> CustodianError:
    return CustodianError(403, "refused", message, refusal=refusal, item=item)


# ----------------------------------------------------------------------------- DKG runs


@dataclass
class _Run:
    attempt: int
    params: DkgParameters
    participant: DkgParticipant
    peers: dict[int, CustodianIdentity] = field(default_factory=dict)
    answers: dict[str, JsonValue] = field(default_factory=dict)
    """The answer given to each round, for a retried request."""


# ----------------------------------------------------------------------------- the service


class CustodianService:
    """One custodian: its keys, state, provider link and clock."""

    def __init__(
        self,
        keys: CustodianKeys,
        store: StateStore,
        provider: ProviderClient,
        *,
        index: int,
        name: str,
        clock: Callable[[], float] = time.time,
        rng: Rng | None = None,
    ) -> None:
        self.keys = keys
        self._store = store
        self._provider = provider
        self._clock = clock
        self._rng = rng or SystemRng()
        loaded = store.load()
        if loaded is None:
            loaded = CustodianState(index, name)
            store.save(loaded)
        elif loaded.index != index or loaded.name != name:
            raise ConfigurationError(
                f"this data directory belongs to custodian {loaded.name!r} (index "
                f"{loaded.index}), not {name!r} (index {index}); use its own data directory"
            )
        self.state = loaded
        self.identity = CustodianIdentity.create(index, name, keys.sign, keys.dh.public_key)
        self._lock = asyncio.Lock()
        self._runs: dict[int, _Run] = {}
        self._shares: dict[int, EpochKeyShare] = {}
        self._manifest: Manifest | None = None
        self._manifest_at = -MANIFEST_REFRESH_SECONDS

    @property
    def index(self) -> int:
        return self.state.index

    def now(self) -> int:
        return int(self._clock())

    async def _save(self, state: CustodianState) -> None:
        """Persist ``state``, then make it current (stage, persist, commit)."""
        try:
            await anyio.to_thread.run_sync(self._store.save, state)
        except OSError as e:
            logger.exception("could not persist the custodian state")
            raise CustodianError(
                500, "internal", "the custodian could not save its state; try again later"
            ) from e
        self.state = state

    # -- trust ----------------------------------------------------------------------------

    async def manifest(self) -> Manifest:
        """The provider's manifest in force, checked against the pinned one."""
        if (
            self._manifest is not None
            and time.monotonic() - self._manifest_at < MANIFEST_REFRESH_SECONDS
        ):
            return self._manifest
        try:
            signed = await self._provider.manifest()
        except PartyError as e:
            raise CustodianError(
                503, "provider_unavailable", f"cannot read the provider's manifest: {e}"
            ) from None
        try:
            manifest = verify_manifest(signed)
            pinned = self.state.manifest
            if pinned is not None and pinned != signed:
                check_successor(verify_manifest(pinned), manifest)
        except (DecodeError, InvalidMessage, ProtocolViolation) as e:
            raise CustodianError(
                502, "untrusted_manifest", f"the provider's manifest is not acceptable: {e}"
            ) from None
        access = escrow(manifest)
        j = self.index
        if j > len(access.custodians) or access.custodians[j - 1].key != self.keys.sign.public_key:
            raise CustodianError(
                409,
                "not_listed",
                f"the manifest does not list this custodian's key as custodian {j}",
            )
        if self.state.manifest != signed:
            async with self._lock:
                await self._save(dataclasses.replace(self.state, manifest=signed))
        self._manifest, self._manifest_at = manifest, time.monotonic()
        return manifest

    # -- destruction ----------------------------------------------------------------------

    async def expire(self) -> list[int]:
        """Destroy every held share whose retention has ended; the epochs destroyed."""
        now = self.now()
        due = [
            e
            for e, rec in self.state.epochs.items()
            if isinstance(rec, HeldEpoch) and rec.retain_until <= now
        ]
        for e in due:
            await self.destroy(e)
            logger.warning("epoch share destroyed: its retention ended", extra={"epoch": e})
        return due

    async def destroy(self, epoch: int) -> bool:
        """Replace the epoch's share by its tombstone; False if not held."""
        async with self._lock:
            rec = self.state.epochs.get(epoch)
            if not isinstance(rec, HeldEpoch):
                return False
            tombstone = DestroyedShare(self.index, DkgTranscript.decode(rec.transcript))
            epochs = dict(self.state.epochs)
            epochs[epoch] = DestroyedEpoch(tombstone.encode(), rec.retain_until, self.now())
            await self._save(dataclasses.replace(self.state, epochs=epochs))
            self._shares.pop(epoch, None)
            return True

    def _share(self, epoch: int) -> EpochKeyShare:
        share = self._shares.get(epoch)
        if share is None:
            rec = self.state.epochs.get(epoch)
            if not isinstance(rec, HeldEpoch):
                raise LocalError(f"no share of epoch {epoch} is held")
            share = open_at_rest(self.keys.storage_key, rec.sealed_share, epoch, self.index)
            self._shares[epoch] = share
        return share

    # -- the DKG --------------------------------------------------------------------------

    def _sign(self, run: _Run, kind: MessageKind, body: bytes) -> SignedMessage:
        return SignedMessage.sign(self.keys.sign, run.params.session_id, kind, self.index, body)

    def _run(self, epoch: int) -> _Run:
        run = self._runs.get(epoch)
        if run is None:
            raise CustodianError(
                409, "no_dkg", f"no DKG of epoch {epoch} is running: start round 1"
            )
        return run

    async def dkg_round1(
        self, epoch: int, attempt: int, identities: Sequence[CustodianIdentity]
    ) -> JsonValue:
        manifest = await self.manifest()
        if epoch in self.state.epochs:
            raise CustodianError(409, "epoch_exists", f"this custodian already made epoch {epoch}")
        run = self._runs.get(epoch)
        if run is not None and run.attempt == attempt and "round1" in run.answers:
            return run.answers["round1"]
        access = escrow(manifest)
        now = self.now()
        if (
            epoch > epoch_at(now, access) + MAX_DKG_EPOCHS_AHEAD
            or epoch_span(epoch, access)[1] <= now
        ):
            raise CustodianError(
                409,
                "epoch_out_of_range",
                f"epoch {epoch} is past its retention or more than {MAX_DKG_EPOCHS_AHEAD} epochs "
                "ahead: no key is made for it",
            )
        params = dkg_parameters(manifest, epoch, attempt)
        peers: dict[int, CustodianIdentity] = {}
        for ident in identities:
            if not 1 <= ident.index <= params.n or ident.index in peers:
                raise CustodianError(400, "malformed", "identities must name each custodian once")
            try:
                ident.verify(access.custodians[ident.index - 1].key, ident.index)
            except InvalidMessage:
                raise CustodianError(
                    400, "invalid", f"custodian {ident.index}'s identity is not its manifest key's"
                ) from None
            peers[ident.index] = ident
        if sorted(peers) != list(range(1, params.n + 1)):
            raise CustodianError(400, "malformed", "identities must name every custodian")
        participant = DkgParticipant(params, self.index, self._rng)
        run = _Run(attempt, params, participant, peers=peers)
        out = participant.round1()
        commitment = self._sign(run, MessageKind.COMMITMENT, out.commitment.encode())
        shares = [
            self._sign(run, MessageKind.SHARE, seal_share(s, peers[s.recipient].dh_key, self._rng))
            for s in out.shares
        ]
        answer: JsonValue = {
            "commitment": commitment.to_json(),
            "shares": [s.to_json() for s in shares],
        }
        run.answers["round1"] = answer
        self._runs[epoch] = run
        return answer

    async def dkg_round2(
        self, epoch: int, commitments: Sequence[SignedMessage], shares: Sequence[SignedMessage]
    ) -> JsonValue:
        run = self._run(epoch)
        if "round2" in run.answers:
            return run.answers["round2"]
        keys = [c.key for c in escrow(await self.manifest()).custodians]
        sid = run.params.session_id
        sealed: dict[int, bytes] = {}
        for msg in shares:
            try:
                msg.verify(sid, MessageKind.SHARE, keys)
            except InvalidMessage:
                continue  # a share that is not its dealer's counts as missing: a complaint
            if msg.sender != self.index and msg.body[:1] == bytes((self.index,)):
                sealed.setdefault(msg.sender, msg.body)
        try:
            for msg in commitments:
                try:
                    msg.verify(sid, MessageKind.COMMITMENT, keys)
                    commitment = DealerCommitment.decode(msg.body)
                except (InvalidMessage, DecodeError):
                    continue  # not this dealer's broadcast: the dealer is out
                if commitment.dealer != msg.sender or msg.sender == self.index:
                    continue
                share = None
                body = sealed.get(msg.sender)
                if body is not None:
                    try:
                        share = open_share(body, self.keys.dh, sid, msg.sender, self.index)
                    except (InvalidMessage, DecodeError):
                        share = None  # undecryptable: complain
                run.participant.receive_round1(commitment, share)
            complaints = run.participant.round2()
        except (ProtocolViolation, DkgStateError) as e:
            raise CustodianError(409, "dkg_failed", f"DKG round 2: {e}") from None
        answer: JsonValue = {
            "complaints": self._sign(run, MessageKind.COMPLAINTS, complaints.encode()).to_json()
        }
        run.answers["round2"] = answer
        return answer

    async def dkg_round3(self, epoch: int, complaints: Sequence[SignedMessage]) -> JsonValue:
        run = self._run(epoch)
        if "round3" in run.answers:
            return run.answers["round3"]
        keys = [c.key for c in escrow(await self.manifest()).custodians]
        sid = run.params.session_id
        try:
            for msg in complaints:
                msg.verify(sid, MessageKind.COMPLAINTS, keys)
                comp = Complaints.decode(msg.body)
                if comp.accuser != msg.sender or msg.sender == self.index:
                    raise ProtocolViolation(f"custodian {msg.sender} relayed another's complaints")
                run.participant.receive_complaints(comp)
            answer_msg = run.participant.round3()
        except (InvalidMessage, DecodeError) as e:
            raise CustodianError(
                400, "invalid", f"DKG round 3: a complaint does not verify ({e})"
            ) from None
        except (ProtocolViolation, DkgStateError) as e:
            raise CustodianError(409, "dkg_failed", f"DKG round 3: {e}") from None
        answer: JsonValue = {
            "answer": None
            if answer_msg is None
            else self._sign(run, MessageKind.ANSWER, answer_msg.encode()).to_json()
        }
        run.answers["round3"] = answer
        return answer

    async def dkg_finalize(self, epoch: int, answers: Sequence[SignedMessage]) -> JsonValue:
        run = self._run(epoch)
        if "finalize" in run.answers:
            return run.answers["finalize"]
        manifest = await self.manifest()
        keys = [c.key for c in escrow(manifest).custodians]
        sid = run.params.session_id
        try:
            for msg in answers:
                msg.verify(sid, MessageKind.ANSWER, keys)
                answer = ComplaintAnswer.decode(msg.body)
                if answer.dealer != msg.sender or msg.sender == self.index:
                    raise ProtocolViolation(f"custodian {msg.sender} relayed another's answer")
                run.participant.receive_answer(answer)
            share = run.participant.finalize()
        except (InvalidMessage, DecodeError) as e:
            raise CustodianError(
                400, "invalid", f"DKG finalize: an answer does not verify ({e})"
            ) from None
        except (ProtocolViolation, DkgStateError, DkgFailed) as e:
            self._runs.pop(epoch, None)
            raise CustodianError(
                409, "dkg_failed", f"DKG finalize: {e}; start a new attempt"
            ) from None
        transcript = share.transcript.encode()
        not_before, retain_until = epoch_span(epoch, escrow(manifest))
        async with self._lock:
            if epoch in self.state.epochs:
                raise CustodianError(409, "epoch_exists", f"epoch {epoch} was made meanwhile")
            epochs = dict(self.state.epochs)
            sealed = seal_at_rest(self.keys.storage_key, share, self._rng)
            epochs[epoch] = HeldEpoch(sealed, transcript, not_before, retain_until)
            await self._save(dataclasses.replace(self.state, epochs=epochs))
        self._shares[epoch] = share
        confirmation = self._sign(run, MessageKind.CONFIRMATION, sha256(transcript))
        out: JsonValue = {"confirmation": confirmation.to_json(), "transcript": b64e(transcript)}
        run.answers["finalize"] = out
        logger.info("epoch share made", extra={"epoch": epoch})
        return out

    # -- decisions ------------------------------------------------------------------------

    async def add_revocation(self, document: bytes) -> bytes:
        manifest = await self.manifest()
        try:
            revocation = verify_revocation(document, escrow(manifest).court_keys)
        except (DecodeError, InvalidMessage, UntrustedIdentity) as e:
            raise CustodianError(
                400, "invalid", f"not a revocation by a listed court: {e}"
            ) from None
        async with self._lock:
            if document not in self.state.revocations:
                await self._save(
                    dataclasses.replace(self.state, revocations=(*self.state.revocations, document))
                )
        return revocation.warrant_id

    async def veto(self, warrant_id: bytes) -> None:
        async with self._lock:
            await self._save(
                dataclasses.replace(self.state, vetoes=self.state.vetoes | {warrant_id})
            )

    async def _revocations(self, warrant_id: bytes) -> list[bytes]:
        found = list(self.state.revocations)
        try:
            remote = await self._provider.revocation(warrant_id)
        except PartyError as e:
            raise CustodianError(
                503,
                "provider_unavailable",
                f"cannot check the warrant's revocation with the provider ({e}); nothing released",
            ) from None
        if remote is not None:
            found.append(remote)
        return found

    async def decrypt(self, warrant: bytes, log_proof: bytes, request: AccessRequest) -> JsonValue:
        """Decide on ``request``; log the receipt; answer the shares (see the module doc)."""
        if request.warrant_id in self.state.vetoes:
            raise _refused(
                "vetoed",
                f"custodian {self.index}'s operator refused this warrant; ask the other custodians",
            )
        manifest = await self.manifest()
        trust = AccessTrust.from_manifest(manifest)
        revocations = await self._revocations(request.warrant_id)
        async with self._lock:
            before = self.state
            use = before.warrants.get(request.warrant_id, WarrantUse())
            alive = {e: isinstance(r, HeldEpoch) for e, r in before.epochs.items()}
            decision = decide(
                request,
                trust=trust,
                custodian_index=self.index,
                warrant_bytes=warrant,
                revocations=revocations,
                log_proof=log_proof,
                now=self.now(),
                epochs_alive=alive,
                used_count_so_far=use.used,
                released=_Released(use.released),
            )
            if isinstance(decision, Refused):
                logger.info(
                    "request refused",
                    extra={"refusal": decision.reason.value, "items": len(request.items)},
                )
                raise _refused(
                    decision.reason.value,
                    f"custodian {self.index} refused: {decision.detail}",
                    decision.item,
                )
            assert isinstance(decision, Approved)
            released = dict(use.released)
            for item in request.items:
                released[sha256(item.context)] = item.point.raw
            reserved = WarrantUse(use.used + len(request.items), released, use.receipts)
            warrants = dict(before.warrants)
            warrants[request.warrant_id] = reserved
            await self._save(dataclasses.replace(before, warrants=warrants))
            receipt = decision.receipt
            try:
                index = await self._provider.post_receipt(
                    receipt, sign_receipt(receipt, self.keys.sign)
                )
            except PartyRejected as e:
                await self._save(before)  # the provider refused it: nothing was logged
                raise CustodianError(
                    502,
                    "receipt_refused",
                    f"the provider refused to log the receipt ({e}); nothing was released",
                ) from None
            except PartyError as e:
                raise CustodianError(
                    503, "provider_unavailable",
                    f"the receipt could not be logged ({e}); nothing was released, try again",
                ) from None  # fmt: skip
            warrants = dict(self.state.warrants)
            warrants[request.warrant_id] = dataclasses.replace(
                reserved, receipts=(*reserved.receipts, index)
            )
            await self._save(dataclasses.replace(self.state, warrants=warrants))
            share = self._share(decision.epoch)
        response = await anyio.to_thread.run_sync(make_shares, share, decision.points, self._rng)
        logger.info("shares released", extra={"items": len(decision.points), "receipt": index})
        return {
            "custodian": self.index,
            "receipt": b64e(encode_entry(receipt)),
            "receipt_index": index,
            "response": b64e(response.encode()),
        }

    # -- views ----------------------------------------------------------------------------

    def status(self) -> JsonValue:
        epochs: list[JsonValue] = []
        for e, rec in sorted(self.state.epochs.items()):
            status = "held" if isinstance(rec, HeldEpoch) else "destroyed"
            epochs.append({"epoch": e, "retain_until": rec.retain_until, "status": status})
        warrants: list[JsonValue] = [
            {"receipts": list(u.receipts), "released": u.used, "warrant_id": b64e(w)}
            for w, u in sorted(self.state.warrants.items())
        ]
        return {
            "custodian": self.identity.to_json(),
            "epochs": epochs,
            "vetoes": [b64e(v) for v in sorted(self.state.vetoes)],
            "warrants": warrants,
        }

    def epoch_view(self, epoch: int) -> JsonValue:
        rec = self.state.epochs.get(epoch)
        if rec is None:
            raise CustodianError(404, "not_found", f"this custodian has no epoch {epoch}")
        if isinstance(rec, HeldEpoch):
            transcript, status = rec.transcript, "held"
        else:
            transcript, status = (
                DestroyedShare.decode(rec.tombstone).transcript.encode(),
                "destroyed",
            )
        return {
            "epoch": epoch,
            "public_key": b64e(DkgTranscript.decode(transcript).public_key().raw),
            "retain_until": rec.retain_until,
            "status": status,
            "transcript": b64e(transcript),
        }


# ----------------------------------------------------------------------------- HTTP


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise CustodianError(413, "too_large", f"the request body is larger than {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise CustodianError(413, "too_large", f"the request body is larger than {limit} bytes")
    return bytes(body)


async def _json(request: Request, limit: int) -> JsonValue:
    data = await _body(request, limit)
    try:
        return parse_strict(data, max_bytes=limit)
    except DecodeError as e:
        raise CustodianError(400, "malformed", f"the body is not strict JSON: {e}") from None


def _epoch(request: Request) -> int:
    text = request.path_params["epoch"]
    if not isinstance(text, str) or not text.isdigit() or len(text) > 10 or int(text) > 0xFFFF_FFFF:
        raise CustodianError(400, "malformed", "the epoch is a decimal u32")
    return int(text)


Handler = Callable[[Request], Awaitable[JsonValue]]


def create_app(service: CustodianService) -> Starlette:
    """The custodian's ASGI app over ``service``."""

    def admin(request: Request) -> None:
        header = request.headers.get("authorization", "")
        given = header.removeprefix("Bearer ").strip().encode()
        if not header.startswith("Bearer ") or not constant_time_eq(
            sha256(given), sha256(service.keys.admin_token.encode())
        ):
            raise CustodianError(401, "unauthenticated", "this needs the operator's admin token")

    def endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def wrapped(request: Request) -> Response:
            try:
                await service.expire()
                result = await handler(request)
            except CustodianError as e:
                return e.response()
            except DecodeError as e:
                return JSONResponse({"error": "malformed", "message": str(e)}, status_code=400)
            except ProtocolViolation as e:
                return JSONResponse({"error": "invalid", "message": str(e)}, status_code=400)
            return JSONResponse(result)

        return wrapped

    async def identity(request: Request) -> JsonValue:
        return service.identity.to_json()

    async def status(request: Request) -> JsonValue:
        return service.status()

    async def epoch(request: Request) -> JsonValue:
        return service.epoch_view(_epoch(request))

    async def round1(request: Request) -> JsonValue:
        m = members(
            await _json(request, MAX_DKG_REQUEST_BYTES), "round 1", {"attempt", "identities"}
        )
        identities = [
            CustodianIdentity.from_json(i) for i in items(m["identities"], "identities", 32)
        ]
        return await service.dkg_round1(
            _epoch(request), integer(m["attempt"], "attempt", 0, 0xFFFF_FFFF), identities
        )

    async def round2(request: Request) -> JsonValue:
        m = members(
            await _json(request, MAX_DKG_REQUEST_BYTES), "round 2", {"commitments", "shares"}
        )
        return await service.dkg_round2(
            _epoch(request),
            message_list(m["commitments"], "commitments"),
            message_list(m["shares"], "shares"),
        )

    async def round3(request: Request) -> JsonValue:
        m = members(await _json(request, MAX_DKG_REQUEST_BYTES), "round 3", {"complaints"})
        return await service.dkg_round3(
            _epoch(request), message_list(m["complaints"], "complaints")
        )

    async def finalize(request: Request) -> JsonValue:
        m = members(await _json(request, MAX_DKG_REQUEST_BYTES), "finalize", {"answers"})
        return await service.dkg_finalize(_epoch(request), message_list(m["answers"], "answers"))

    async def decrypt(request: Request) -> JsonValue:
        m = members(
            await _json(request, MAX_DECRYPT_REQUEST_BYTES),
            "decrypt request",
            {"log_proof", "request", "warrant"},
        )
        proof = m["log_proof"]
        if not isinstance(proof, str) or len(proof) > MAX_PROOF_BUNDLE_BYTES:
            raise _refused("malformed_log_proof", "the log proof is a tlog-proof text")
        try:
            access = AccessRequest.decode(b64d(m["request"], "request"))
        except DecodeError as e:
            raise _refused("malformed_request", f"the request does not decode: {e}") from None
        warrant = b64d(m["warrant"], "warrant", MAX_WARRANT_BYTES)
        return await service.decrypt(warrant, proof.encode("utf-8"), access)

    async def revocations(request: Request) -> JsonValue:
        warrant_id = await service.add_revocation(
            await _body(request, MAX_REVOCATION_REQUEST_BYTES)
        )
        return {"revoked": b64e(warrant_id)}

    async def destroy(request: Request) -> JsonValue:
        admin(request)
        e = _epoch(request)
        if e not in service.state.epochs:
            raise CustodianError(404, "not_found", f"this custodian has no epoch {e}")
        destroyed = await service.destroy(e)
        return {"destroyed": destroyed, "epoch": e, "status": "destroyed"}

    async def veto(request: Request) -> JsonValue:
        admin(request)
        warrant_id = b64d(request.path_params["warrant"], "warrant id", 32)
        if len(warrant_id) != 32:
            raise CustodianError(400, "malformed", "a warrant id is 32 bytes")
        await service.veto(warrant_id)
        return {"vetoed": b64e(warrant_id)}

    return Starlette(
        routes=[
            Route("/identity", endpoint(identity), methods=["GET"]),
            Route("/status", endpoint(status), methods=["GET"]),
            Route("/epochs/{epoch}", endpoint(epoch), methods=["GET"]),
            Route("/epochs/{epoch}/destroy", endpoint(destroy), methods=["POST"]),
            Route("/dkg/{epoch}/round1", endpoint(round1), methods=["POST"]),
            Route("/dkg/{epoch}/round2", endpoint(round2), methods=["POST"]),
            Route("/dkg/{epoch}/round3", endpoint(round3), methods=["POST"]),
            Route("/dkg/{epoch}/finalize", endpoint(finalize), methods=["POST"]),
            Route("/decrypt", endpoint(decrypt), methods=["POST"]),
            Route("/revocations", endpoint(revocations), methods=["POST"]),
            Route("/warrants/{warrant}/veto", endpoint(veto), methods=["POST"]),
        ]
    )


# ----------------------------------------------------------------------------- running


def run_custodian(
    host: str,
    port: int,
    data_dir: str | Path,
    *,
    index: int,
    name: str,
    provider_url: str,
    log_level: str = "warning",
    out: TextIO | None = None,
) -> None:
    """Run custodian ``index`` until interrupted.

    Loads or creates its keys and state in ``data_dir``, binds ``host:port`` (0: any free
    port), prints its public keys and ``custodian listening on http://HOST:PORT``, then
    serves. The provider at ``provider_url`` is asked for the manifest, revocations and
    receipts when needed (it may start later). :class:`ConfigurationError` says what to fix.
    """
    out = sys.stdout if out is None else out
    if not 1 <= index <= 32:
        raise ConfigurationError("the custodian index is its 1-based position in the manifest")
    keys, created = load_or_create_keys(data_dir)
    store = StateFile(Path(data_dir) / STATE_FILE_NAME)
    provider = ProviderClient(provider_url)
    service = CustodianService(keys, store, provider, index=index, name=name)
    public = canonicalize(service.identity.to_json())
    write_atomically(Path(data_dir) / PUBLIC_FILE_NAME, public + b"\n", 0o644)
    app = create_app(service)
    sock = listen(host, port)
    print(
        f"custodian {name} (index {index}) {'created' if created else 'loaded'} its keys", file=out
    )
    print(f"custodian key: {b64e(keys.sign.public_key.raw)}", file=out)
    print(f"custodian listening on {url_of(sock)}", file=out, flush=True)
    serve(app, sock, log_level)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m overt.services.custodian``: run one custodian."""
    parser = argparse.ArgumentParser(prog="python -m overt.services.custodian")
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--provider", required=True, help="the provider's URL")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        run_custodian(
            args.host, args.port, args.data_dir, index=args.index, name=args.name,
            provider_url=args.provider, log_level=args.log_level,
        )  # fmt: skip
    except ConfigurationError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


__all__ = [
    "ADMIN_TOKEN_FILE_NAME",
    "KEY_FILE_NAME",
    "PUBLIC_FILE_NAME",
    "STATE_FILE_NAME",
    "STORAGE_KEY_FILE_NAME",
    "CustodianError",
    "CustodianKeys",
    "CustodianService",
    "CustodianState",
    "MemoryStateFile",
    "StateFile",
    "create_app",
    "load_or_create_keys",
    "main",
    "open_at_rest",
    "read_admin_token",
    "run_custodian",
    "seal_at_rest",
]

if __name__ == "__main__":
    raise SystemExit(main())
