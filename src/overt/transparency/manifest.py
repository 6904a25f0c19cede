"""The deployment manifest (DESIGN §2): what a deployment promises, signed by its provider.

A manifest names the deployment and a monotonic version; the provider's Ed25519 key (and, to
rotate it, the key that may sign the next version); the server's API keys; the transparency
log's origin and C2SP verifier key; the key directory's vrf-r255 public key (``vrf_key``: the
key clients check account labels with); the witnesses (names and cosignature/v1 verifier keys)
and their quorum — or no witnesses and quorum 0, a deployment whose checkpoints only the log
signs —; the **access policy** — ``none`` (end-to-end encryption only) or ``escrow`` with
its custodians, threshold, court keys, escrow-epoch length, key-retention window and longest
sealing period —; and the **safety policy** (franking, always on; known-content matching, off
unless enabled with its threshold, the organisations that sign the list and the parameters
clients hash with: signal type, bit-sampling keys and their seed, detection width, synthetic
rate, images per generation).

Encoding. The manifest is a JSON object (:meth:`Manifest.to_json`); binary keys are unpadded
base64url, verifier keys their C2SP text. The provider signs, with Ed25519,
``"Overt_Manifest_v1\\n" ‖ JCS(manifest)`` (RFC 8785, :mod:`overt.wire.jcs`), and the signed
form is the canonical JSON ``{"manifest": {...}, "signature": "<base64url>"}``
(:func:`sign_manifest`). It is self-describing: a reader needs nothing but the bytes to check
it, and one manifest has exactly one signed encoding (non-canonical input is refused), so its
hash as a log entry is unambiguous.

Trust. A client pins the first manifest it sees (:func:`verify_manifest` without a key checks
the signature against the key the manifest names, i.e. trust on first use — the log and its
witnesses are what make that first view checkable by others), then accepts a later manifest
only through :func:`verify_successor`: the same deployment, a higher version, and the same
provider key unless the pinned manifest named ``next_provider_key``, in which case that key.

Failures: malformed or non-canonical bytes and values outside the rules raise
:class:`overt.errors.DecodeError`; a bad signature :class:`overt.errors.InvalidMessage` (no
reason); a successor with another provider key :class:`overt.errors.UntrustedIdentity`; one
that does not advance the version or renames the deployment
:class:`overt.errors.ProtocolViolation`. Building an invalid manifest locally raises
:class:`overt.errors.ConfigurationError`.

This module never sees sockets, files, clocks or the log's storage; appending a manifest to
the log and fetching it with an inclusion proof are the log's and client's business.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, Self, TypeAlias
from urllib.parse import urlsplit

from overt.crypto import (
    ED25519_KEY_LEN,
    ED25519_SIG_LEN,
    Ed25519PrivateKey,
    Ed25519PublicKey,
    sha256,
)
from overt.crypto.vrf import VRF_KEY_LEN, VrfPublicKey
from overt.errors import (
    ConfigurationError,
    DecodeError,
    LocalError,
    ProtocolViolation,
    UntrustedIdentity,
)
from overt.transparency.checkpoint import Checkpoint
from overt.transparency.merkle import EMPTY_ROOT
from overt.transparency.note import ALG_COSIGNATURE_V1, ALG_ED25519, VerifierKey
from overt.wire.jcs import MAX_SAFE_INTEGER, JsonValue, canonicalize, parse_strict

MANIFEST_SIGNING_CONTEXT: Final = b"Overt_Manifest_v1\n"
"""Prefix of every signed manifest message: domain separation and format version."""

MAX_MANIFEST_BYTES: Final = 60 * 1024
"""Largest signed manifest accepted: 60 KiB, what a log entry carries (a 2-byte length)."""

MAX_NAME_BYTES: Final = 128
"""Longest deployment, custodian, court, witness, server-key or signer name, in UTF-8 bytes."""

MAX_URL_BYTES: Final = 2048
"""Longest custodian URL."""

MAX_SERVER_KEYS: Final = 8
MAX_WITNESSES: Final = 32
MAX_CUSTODIANS: Final = 32
MAX_COURT_KEYS: Final = 32
MAX_LIST_SIGNERS: Final = 16

MIN_ESCROW_THRESHOLD: Final = 2
"""No single custodian may decrypt (DESIGN §6: "no single party can decrypt anything")."""

MAX_POLICY_DAYS: Final = 3660
"""Longest epoch, retention window or sealing period, in days (ten years)."""

MAX_MATCHING_THRESHOLD: Final = 1000
"""Largest known-content matching threshold (matching images per account)."""

MAX_MATCHING_VOUCHERS: Final = 256
"""Most vouchers per image the matching parameters may ask for (keys × 2^flip bits)."""

MATCHING_SIGNAL_PDQ: Final = "pdq"
MATCHING_SIGNAL_TYPES: Final = frozenset({MATCHING_SIGNAL_PDQ})
"""Signal types a manifest may name (``overt.safety.matching.signals`` implements them)."""

DEFAULT_LSH_SEED: Final = sha256(b"Overt PDQ bit-sampling positions v1")
"""The default seed of the public bit positions (the same as
``overt.safety.matching.lsh.DEFAULT_LSH_SEED``; anyone can recompute it)."""

_SIGNATURE_B64_LEN: Final = 86  # unpadded base64url of 64 bytes
_LOOPBACK_NAMES: Final = frozenset({"localhost"})


# ----------------------------------------------------------------------------- helpers


class _Invalid(Exception):
    """A rule of the manifest is broken; mapped to ConfigurationError or DecodeError."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


_B64URL_CHARS: Final = re.compile(r"[A-Za-z0-9_-]*")


def _b64url_decode(text: str, what: str) -> bytes:
    """Canonical unpadded base64url, or :class:`_Invalid`."""
    if not _B64URL_CHARS.fullmatch(text) or len(text) % 4 == 1:
        raise _Invalid(f"{what} is not base64url")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise _Invalid(f"{what} is not base64url") from None
    if _b64url(raw) != text:
        raise _Invalid(f"{what} is not canonical base64url")
    return raw


def _check(condition: bool, problem: str) -> None:
    if not condition:
        raise _Invalid(problem)


def _check_name(name: str, what: str) -> None:
    _check(isinstance(name, str) and name != "", f"{what} must be a non-empty string")
    _check(name == name.strip(), f"{what} has leading or trailing whitespace")
    _check(not any(ch < " " or ch == "\x7f" for ch in name), f"{what} holds a control character")
    try:
        n = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        raise _Invalid(f"{what} is not valid Unicode") from None
    _check(n <= MAX_NAME_BYTES, f"{what} is longer than {MAX_NAME_BYTES} bytes")


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_url(url: str, what: str) -> None:
    _check(isinstance(url, str) and 0 < len(url) <= MAX_URL_BYTES, f"{what} length out of range")
    _check(url.isascii() and url.isprintable() and " " not in url, f"{what} is not a plain URL")
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise _Invalid(f"{what} is not a URL") from None
    _check(parts.scheme in ("https", "http") and host != "", f"{what} must be an http(s) URL")
    _check(
        parts.scheme == "https" or _is_loopback(host),
        f"{what} must use https (plain http only on loopback)",
    )
    _check(not parts.username and not parts.password, f"{what} must not carry credentials")
    _check(not parts.query and not parts.fragment, f"{what} must not have a query or fragment")


def _check_int(value: int, lo: int, hi: int, what: str) -> None:
    _check(
        isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi,
        f"{what} must be an integer in [{lo}, {hi}]",
    )


def _check_distinct(items: Sequence[object], what: str) -> None:
    _check(len(set(items)) == len(items), f"two {what} are the same")


def _run_checks(obj: object, validate: Callable[[], None]) -> None:
    """Run ``validate()`` in a constructor: a broken rule is a local configuration error."""
    try:
        validate()
    except _Invalid as e:
        raise ConfigurationError(f"{type(obj).__name__}: {e}") from None


# ----------------------------------------------------------------------------- parts


@dataclass(frozen=True, slots=True)
class NamedKey:
    """An Ed25519 public key with the name a person reads: a server key, a court, a signer."""

    name: str
    key: Ed25519PublicKey

    def __post_init__(self) -> None:
        _run_checks(self, self._validate)

    def _validate(self) -> None:
        _check_name(self.name, "name")
        _check(isinstance(self.key, Ed25519PublicKey), "key must be an Ed25519 public key")

    def to_json(self) -> dict[str, JsonValue]:
        return {"key": _b64url(self.key.raw), "name": self.name}


@dataclass(frozen=True, slots=True)
class Custodian:
    """A key custodian: its name, the URL of its service and its Ed25519 signing key."""

    name: str
    url: str
    key: Ed25519PublicKey

    def __post_init__(self) -> None:
        _run_checks(self, self._validate)

    def _validate(self) -> None:
        _check_name(self.name, "custodian name")
        _check_url(self.url, "custodian URL")
        _check(isinstance(self.key, Ed25519PublicKey), "custodian key must be Ed25519")

    def to_json(self) -> dict[str, JsonValue]:
        return {"key": _b64url(self.key.raw), "name": self.name, "url": self.url}


@dataclass(frozen=True, slots=True)
class LogInfo:
    """The transparency log: its checkpoint origin and its note verifier key (type 0x01)."""

    origin: str
    vkey: VerifierKey

    def __post_init__(self) -> None:
        _run_checks(self, self._validate)

    def _validate(self) -> None:
        _check(isinstance(self.vkey, VerifierKey), "log vkey must be a VerifierKey")
        _check(self.vkey.alg == ALG_ED25519, "the log key must be an Ed25519 note key (0x01)")
        try:
            Checkpoint(self.origin, 0, EMPTY_ROOT)
        except LocalError as e:
            raise _Invalid(f"log origin: {e}") from None

    def to_json(self) -> dict[str, JsonValue]:
        return {"origin": self.origin, "vkey": self.vkey.to_text()}


@dataclass(frozen=True, slots=True)
class WitnessInfo:
    """A witness: a display name and its cosignature/v1 verifier key (type 0x04)."""

    name: str
    vkey: VerifierKey

    def __post_init__(self) -> None:
        _run_checks(self, self._validate)

    def _validate(self) -> None:
        _check_name(self.name, "witness name")
        _check(isinstance(self.vkey, VerifierKey), "witness vkey must be a VerifierKey")
        _check(self.vkey.alg == ALG_COSIGNATURE_V1, "witness keys must be cosignature/v1 (0x04)")

    def to_json(self) -> dict[str, JsonValue]:
        return {"name": self.name, "vkey": self.vkey.to_text()}


@dataclass(frozen=True, slots=True)
class NoAccess:
    """Access policy ``none``: end-to-end encryption only, no exceptional access."""

    mode: Literal["none"] = field(default="none", init=False)

    def to_json(self) -> dict[str, JsonValue]:
        return {"mode": "none"}


@dataclass(frozen=True, slots=True)
class EscrowAccess:
    """Access policy ``escrow`` (DESIGN §6): t of n custodians, courts, epochs and notice.

    ``epoch_length_days`` is the life of one escrow-epoch key; ``retention_days`` how long
    custodians keep an epoch's shares after it ends (then destroy them); ``max_seal_days`` the
    longest a warrant may stay sealed before its target is told.
    """

    custodians: tuple[Custodian, ...]
    threshold: int
    court_keys: tuple[NamedKey, ...]
    epoch_length_days: int
    retention_days: int
    max_seal_days: int
    mode: Literal["escrow"] = field(default="escrow", init=False)

    def __post_init__(self) -> None:
        _run_checks(self, self._validate)

    def _validate(self) -> None:
        n = len(self.custodians)
        _check(isinstance(self.custodians, tuple), "custodians must be a tuple")
        _check(isinstance(self.court_keys, tuple), "court_keys must be a tuple")
        _check(MIN_ESCROW_THRESHOLD <= n <= MAX_CUSTODIANS, "custodian count out of range")
        _check_int(self.threshold, MIN_ESCROW_THRESHOLD, n, "threshold")
        _check(1 <= len(self.court_keys) <= MAX_COURT_KEYS, "court key count out of range")
        _check_distinct([c.name for c in self.custodians], "custodian names")
        _check_distinct([c.url for c in self.custodians], "custodian URLs")
        _check_distinct([c.key.raw for c in self.custodians], "custodian keys")
        _check_distinct([k.name for k in self.court_keys], "court names")
        _check_distinct([k.key.raw for k in self.court_keys], "court keys")
        _check_int(self.epoch_length_days, 1, MAX_POLICY_DAYS, "epoch_length_days")
        _check_int(self.retention_days, 1, MAX_POLICY_DAYS, "retention_days")
        _check_int(self.max_seal_days, 0, MAX_POLICY_DAYS, "max_seal_days")

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "court_keys": [k.to_json() for k in self.court_keys],
            "custodians": [c.to_json() for c in self.custodians],
            "epoch_length_days": self.epoch_length_days,
            "max_seal_days": self.max_seal_days,
            "mode": "escrow",
            "retention_days": self.retention_days,
            "threshold": self.threshold,
        }


AccessPolicy: TypeAlias = NoAccess | EscrowAccess


@dataclass(frozen=True, slots=True)
class MatchingParameters:
    """What a client needs besides the threshold to make vouchers the server can open: the
    signal type, the bit-sampling keys (``lsh_keys`` keys of ``lsh_bits_per_key`` bit
    positions fixed by ``lsh_seed``, ``lsh_flip_bits`` probed bits per key) and the private
    matching's detection width, synthetic rate and images per generation.

    The defaults are the values the ``matching`` bench chose (docs/matching.md §5). A manifest
    without the member (written before it existed) means exactly these defaults.
    """

    signal_type: str = MATCHING_SIGNAL_PDQ
    lsh_keys: int = 16
    lsh_bits_per_key: int = 40
    lsh_flip_bits: int = 2
    lsh_seed: bytes = DEFAULT_LSH_SEED
    detection_width: int = 128
    synthetic_one_in: int = 256
    generation_images: int = 4096

    def __post_init__(self) -> None:
        _run_checks(self, self._validate)

    def _validate(self) -> None:
        _check(self.signal_type in MATCHING_SIGNAL_TYPES, "unknown matching signal type")
        _check_int(self.lsh_keys, 1, 64, "lsh_keys")
        _check_int(self.lsh_bits_per_key, 16, 256, "lsh_bits_per_key")
        _check_int(self.lsh_flip_bits, 0, 4, "lsh_flip_bits")
        _check(
            self.lsh_keys << self.lsh_flip_bits <= MAX_MATCHING_VOUCHERS,
            f"more than {MAX_MATCHING_VOUCHERS} vouchers per image",
        )
        _check(
            isinstance(self.lsh_seed, bytes) and len(self.lsh_seed) == 32,
            "lsh_seed must be 32 bytes",
        )
        _check_int(self.detection_width, 1, 4096, "detection_width")
        _check_int(self.synthetic_one_in, 1, 1 << 16, "synthetic_one_in")
        _check_int(self.generation_images, 1, 1 << 20, "generation_images")

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "detection_width": self.detection_width,
            "generation_images": self.generation_images,
            "lsh_bits_per_key": self.lsh_bits_per_key,
            "lsh_flip_bits": self.lsh_flip_bits,
            "lsh_keys": self.lsh_keys,
            "lsh_seed": _b64url(self.lsh_seed),
            "signal_type": self.signal_type,
            "synthetic_one_in": self.synthetic_one_in,
        }


@dataclass(frozen=True, slots=True)
class MatchingPolicy:
    """Known-content matching (DESIGN §5): off, or on with a per-account threshold of
    matching images, the child-safety organisations whose quorum signs each list, and the
    parameters clients hash and make vouchers with (``None``: a manifest written before they
    were named, meaning :class:`MatchingParameters`' defaults)."""

    enabled: bool = False
    threshold: int = 0
    list_signers: tuple[NamedKey, ...] = ()
    list_signer_quorum: int = 0
    parameters: MatchingParameters | None = None

    def __post_init__(self) -> None:
        _run_checks(self, self._validate)

    @property
    def effective_parameters(self) -> MatchingParameters:
        """The parameters in force (the defaults when the manifest names none)."""
        return self.parameters if self.parameters is not None else MatchingParameters()

    def _validate(self) -> None:
        _check(isinstance(self.enabled, bool), "enabled must be a boolean")
        _check(isinstance(self.list_signers, tuple), "list_signers must be a tuple")
        if not self.enabled:
            _check(
                self.threshold == 0
                and not self.list_signers
                and self.list_signer_quorum == 0
                and self.parameters is None,
                "disabled matching takes no threshold, list signers or parameters",
            )
            return
        _check_int(self.threshold, 1, MAX_MATCHING_THRESHOLD, "matching threshold")
        _check(1 <= len(self.list_signers) <= MAX_LIST_SIGNERS, "list signer count out of range")
        _check_distinct([s.name for s in self.list_signers], "list signer names")
        _check_distinct([s.key.raw for s in self.list_signers], "list signer keys")
        _check_int(self.list_signer_quorum, 1, len(self.list_signers), "list_signer_quorum")
        _check(
            self.parameters is None or isinstance(self.parameters, MatchingParameters),
            "parameters must be MatchingParameters",
        )

    def to_json(self) -> dict[str, JsonValue]:
        if not self.enabled:
            return {"enabled": False}
        obj: dict[str, JsonValue] = {
            "enabled": True,
            "list_signer_quorum": self.list_signer_quorum,
            "list_signers": [s.to_json() for s in self.list_signers],
            "threshold": self.threshold,
        }
        if self.parameters is not None:
            obj["parameters"] = self.parameters.to_json()
        return obj


@dataclass(frozen=True, slots=True)
class SafetyPolicy:
    """Franking (always on, DESIGN §5) and known-content matching."""

    franking: bool = True
    matching: MatchingPolicy = field(default_factory=MatchingPolicy)

    def __post_init__(self) -> None:
        _run_checks(self, self._validate)

    def _validate(self) -> None:
        _check(self.franking is True, "franking is always on")
        _check(isinstance(self.matching, MatchingPolicy), "matching must be a MatchingPolicy")

    def to_json(self) -> dict[str, JsonValue]:
        return {"franking": True, "matching": self.matching.to_json()}


# ----------------------------------------------------------------------------- the manifest


@dataclass(frozen=True, slots=True)
class Manifest:
    """One version of a deployment's manifest. Validated on construction."""

    deployment: str
    version: int
    provider_key: Ed25519PublicKey
    server_keys: tuple[NamedKey, ...]
    log: LogInfo
    witnesses: tuple[WitnessInfo, ...]
    witness_quorum: int
    access: AccessPolicy
    safety: SafetyPolicy = field(default_factory=SafetyPolicy)
    next_provider_key: Ed25519PublicKey | None = None
    """The key allowed to sign the next version instead of ``provider_key`` (a rotation)."""
    vrf_key: VrfPublicKey | None = None
    """The key directory's vrf-r255 public key: a lookup's VRF proof of an account's label
    verifies under it. ``None`` (member absent) for a deployment without a key directory."""

    def __post_init__(self) -> None:
        _run_checks(self, self._validate)

    def _validate(self) -> None:
        _check_name(self.deployment, "deployment name")
        _check_int(self.version, 1, MAX_SAFE_INTEGER, "version")
        _check(isinstance(self.provider_key, Ed25519PublicKey), "provider key must be Ed25519")
        _check(
            self.next_provider_key is None or isinstance(self.next_provider_key, Ed25519PublicKey),
            "next provider key must be Ed25519",
        )
        _check(
            self.next_provider_key != self.provider_key,
            "next_provider_key must differ from provider_key",
        )
        _check(isinstance(self.server_keys, tuple), "server_keys must be a tuple")
        _check(1 <= len(self.server_keys) <= MAX_SERVER_KEYS, "server key count out of range")
        _check_distinct([k.name for k in self.server_keys], "server key names")
        _check_distinct([k.key.raw for k in self.server_keys], "server keys")
        _check(isinstance(self.log, LogInfo), "log must be a LogInfo")
        _check(
            self.vrf_key is None or isinstance(self.vrf_key, VrfPublicKey),
            "vrf_key must be a vrf-r255 public key",
        )
        _check(isinstance(self.witnesses, tuple), "witnesses must be a tuple")
        _check(len(self.witnesses) <= MAX_WITNESSES, "witness count out of range")
        _check_distinct([w.name for w in self.witnesses], "witness names")
        _check_distinct([w.vkey.public_key.raw for w in self.witnesses], "witness keys")
        _check_distinct([(w.vkey.name, w.vkey.key_id) for w in self.witnesses], "witness vkeys")
        _check(
            self.log.vkey.public_key.raw not in {w.vkey.public_key.raw for w in self.witnesses},
            "the log cannot witness itself",
        )
        # No witnesses means quorum 0 (checkpoints signed by the log alone); listed witnesses
        # must be required: at least one cosignature.
        _check_int(
            self.witness_quorum, min(1, len(self.witnesses)), len(self.witnesses), "witness quorum"
        )
        _check(isinstance(self.access, NoAccess | EscrowAccess), "unknown access policy")
        _check(isinstance(self.safety, SafetyPolicy), "safety must be a SafetyPolicy")

    @property
    def witness_keys(self) -> tuple[VerifierKey, ...]:
        """The witnesses' verifier keys, as :func:`verify_checkpoint` takes them."""
        return tuple(w.vkey for w in self.witnesses)

    def to_json(self) -> dict[str, JsonValue]:
        """The manifest as a JSON object (the value that is canonicalized and signed)."""
        obj: dict[str, JsonValue] = {
            "access": self.access.to_json(),
            "deployment": self.deployment,
            "log": self.log.to_json(),
            "provider_key": _b64url(self.provider_key.raw),
            "safety": self.safety.to_json(),
            "server_keys": [k.to_json() for k in self.server_keys],
            "version": self.version,
            "witnesses": {
                "members": [w.to_json() for w in self.witnesses],
                "quorum": self.witness_quorum,
            },
        }
        if self.next_provider_key is not None:
            obj["next_provider_key"] = _b64url(self.next_provider_key.raw)
        if self.vrf_key is not None:
            obj["vrf_key"] = _b64url(self.vrf_key.raw)
        return obj

    def canonical_bytes(self) -> bytes:
        """JCS(manifest): what, after the context string, the provider signs."""
        return canonicalize(self.to_json())

    @classmethod
    def from_json(cls, value: JsonValue) -> Self:
        """Read a manifest object strictly; :class:`DecodeError` on any deviation."""
        try:
            return cls._from_json(value)
        except _Invalid as e:
            raise DecodeError(f"manifest: {e}") from None
        except ConfigurationError as e:  # a constructor's rule, on remote input
            raise DecodeError(f"manifest: {e}") from None

    @classmethod
    def _from_json(cls, value: JsonValue) -> Self:
        m = _members(
            value,
            "manifest",
            required={
                "access",
                "deployment",
                "log",
                "provider_key",
                "safety",
                "server_keys",
                "version",
                "witnesses",
            },
            optional={"next_provider_key", "vrf_key"},
        )
        witnesses = _members(m["witnesses"], "witnesses", required={"members", "quorum"})
        log = _members(m["log"], "log", required={"origin", "vkey"})
        return cls(
            deployment=_str(m["deployment"], "deployment"),
            version=_int(m["version"], "version"),
            provider_key=_ed25519(m["provider_key"], "provider_key"),
            server_keys=tuple(
                _named_key(k, "server key")
                for k in _list(m["server_keys"], "server_keys", MAX_SERVER_KEYS)
            ),
            log=LogInfo(_str(log["origin"], "log origin"), _vkey(log["vkey"], "log vkey")),
            witnesses=tuple(
                _witness(w) for w in _list(witnesses["members"], "witnesses", MAX_WITNESSES)
            ),
            witness_quorum=_int(witnesses["quorum"], "witness quorum"),
            access=_access(m["access"]),
            safety=_safety(m["safety"]),
            next_provider_key=_ed25519(m["next_provider_key"], "next_provider_key")
            if "next_provider_key" in m
            else None,
            vrf_key=_vrf_key(m["vrf_key"]) if "vrf_key" in m else None,
        )


def _members(
    value: JsonValue, what: str, required: Collection[str], optional: Collection[str] = ()
) -> Mapping[str, JsonValue]:
    if not isinstance(value, dict):
        raise _Invalid(f"{what} must be an object")
    missing = set(required) - value.keys()
    _check(not missing, f"{what} lacks {', '.join(sorted(missing))}")
    unknown = value.keys() - set(required) - set(optional)
    _check(not unknown, f"{what} has unknown members {', '.join(sorted(unknown))}")
    return value


def _str(value: JsonValue, what: str) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"{what} must be a string")
    return value


def _int(value: JsonValue, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _Invalid(f"{what} must be an integer")
    return value


def _bool(value: JsonValue, what: str) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"{what} must be true or false")
    return value


def _list(value: JsonValue, what: str, max_items: int) -> list[JsonValue]:
    if not isinstance(value, list):
        raise _Invalid(f"{what} must be an array")
    _check(len(value) <= max_items, f"{what} has more than {max_items} items")
    return value


def _ed25519(value: JsonValue, what: str) -> Ed25519PublicKey:
    raw = _b64url_decode(_str(value, what), what)
    _check(len(raw) == ED25519_KEY_LEN, f"{what} is not a 32-byte Ed25519 key")
    try:
        return Ed25519PublicKey.from_bytes(raw)
    except DecodeError:
        raise _Invalid(f"{what} is not an Ed25519 public key") from None


def _vrf_key(value: JsonValue) -> VrfPublicKey:
    raw = _b64url_decode(_str(value, "vrf_key"), "vrf_key")
    _check(len(raw) == VRF_KEY_LEN, "vrf_key is not a 32-byte vrf-r255 key")
    try:
        return VrfPublicKey.from_bytes(raw)
    except DecodeError:
        raise _Invalid("vrf_key is not a vrf-r255 public key") from None


def _vkey(value: JsonValue, what: str) -> VerifierKey:
    try:
        return VerifierKey.from_text(_str(value, what))
    except (DecodeError, LocalError) as e:
        raise _Invalid(f"{what}: {e}") from None


def _named_key(value: JsonValue, what: str) -> NamedKey:
    m = _members(value, what, required={"key", "name"})
    return NamedKey(_str(m["name"], f"{what} name"), _ed25519(m["key"], f"{what} key"))


def _witness(value: JsonValue) -> WitnessInfo:
    m = _members(value, "witness", required={"name", "vkey"})
    return WitnessInfo(_str(m["name"], "witness name"), _vkey(m["vkey"], "witness vkey"))


def _custodian(value: JsonValue) -> Custodian:
    m = _members(value, "custodian", required={"key", "name", "url"})
    return Custodian(
        _str(m["name"], "custodian name"),
        _str(m["url"], "custodian url"),
        _ed25519(m["key"], "custodian key"),
    )


def _access(value: JsonValue) -> AccessPolicy:
    if not isinstance(value, dict) or "mode" not in value:
        raise _Invalid("access must be an object with a mode")
    mode = value["mode"]
    if mode == "none":
        _members(value, "access", required={"mode"})
        return NoAccess()
    _check(mode == "escrow", "access mode must be 'none' or 'escrow'")
    m = _members(
        value,
        "access",
        required={
            "court_keys",
            "custodians",
            "epoch_length_days",
            "max_seal_days",
            "mode",
            "retention_days",
            "threshold",
        },
    )
    return EscrowAccess(
        custodians=tuple(
            _custodian(c) for c in _list(m["custodians"], "custodians", MAX_CUSTODIANS)
        ),
        threshold=_int(m["threshold"], "threshold"),
        court_keys=tuple(
            _named_key(k, "court key") for k in _list(m["court_keys"], "court_keys", MAX_COURT_KEYS)
        ),
        epoch_length_days=_int(m["epoch_length_days"], "epoch_length_days"),
        retention_days=_int(m["retention_days"], "retention_days"),
        max_seal_days=_int(m["max_seal_days"], "max_seal_days"),
    )


def _safety(value: JsonValue) -> SafetyPolicy:
    m = _members(value, "safety", required={"franking", "matching"})
    _check(_bool(m["franking"], "franking"), "franking is always on")
    matching = m["matching"]
    if not isinstance(matching, dict) or "enabled" not in matching:
        raise _Invalid("matching must be an object with 'enabled'")
    if not _bool(matching["enabled"], "matching enabled"):
        _members(matching, "matching", required={"enabled"})
        return SafetyPolicy()
    mm = _members(
        matching,
        "matching",
        required={"enabled", "list_signer_quorum", "list_signers", "threshold"},
        optional={"parameters"},
    )
    return SafetyPolicy(
        matching=MatchingPolicy(
            enabled=True,
            threshold=_int(mm["threshold"], "matching threshold"),
            list_signers=tuple(
                _named_key(s, "list signer")
                for s in _list(mm["list_signers"], "list_signers", MAX_LIST_SIGNERS)
            ),
            list_signer_quorum=_int(mm["list_signer_quorum"], "list_signer_quorum"),
            parameters=_matching_parameters(mm["parameters"]) if "parameters" in mm else None,
        )
    )


def _matching_parameters(value: JsonValue) -> MatchingParameters:
    m = _members(
        value,
        "matching parameters",
        required={
            "detection_width",
            "generation_images",
            "lsh_bits_per_key",
            "lsh_flip_bits",
            "lsh_keys",
            "lsh_seed",
            "signal_type",
            "synthetic_one_in",
        },
    )
    return MatchingParameters(
        signal_type=_str(m["signal_type"], "signal_type"),
        lsh_keys=_int(m["lsh_keys"], "lsh_keys"),
        lsh_bits_per_key=_int(m["lsh_bits_per_key"], "lsh_bits_per_key"),
        lsh_flip_bits=_int(m["lsh_flip_bits"], "lsh_flip_bits"),
        lsh_seed=_b64url_decode(_str(m["lsh_seed"], "lsh_seed"), "lsh_seed"),
        detection_width=_int(m["detection_width"], "detection_width"),
        synthetic_one_in=_int(m["synthetic_one_in"], "synthetic_one_in"),
        generation_images=_int(m["generation_images"], "generation_images"),
    )


def access_policy_from_json(value: JsonValue) -> AccessPolicy:
    """Read an access policy object (the manifest's ``access`` member) strictly, e.g. from a
    deployment's configuration; :class:`DecodeError` on any deviation."""
    try:
        return _access(value)
    except (_Invalid, ConfigurationError) as e:
        raise DecodeError(f"access policy: {e}") from None


def safety_policy_from_json(value: JsonValue) -> SafetyPolicy:
    """Read a safety policy object (the manifest's ``safety`` member) strictly;
    :class:`DecodeError` on any deviation."""
    try:
        return _safety(value)
    except (_Invalid, ConfigurationError) as e:
        raise DecodeError(f"safety policy: {e}") from None


# ----------------------------------------------------------------------------- signing


def manifest_signing_message(manifest: Manifest) -> bytes:
    """What the provider signs: the context string ‖ JCS(manifest)."""
    return MANIFEST_SIGNING_CONTEXT + manifest.canonical_bytes()


def sign_manifest(manifest: Manifest, provider_key: Ed25519PrivateKey) -> bytes:
    """The signed manifest: canonical ``{"manifest": {...}, "signature": "<base64url>"}``.

    ``provider_key`` must be the private half of ``manifest.provider_key``.
    """
    if provider_key.public_key != manifest.provider_key:
        raise LocalError("the signing key is not the manifest's provider key")
    signature = provider_key.sign(manifest_signing_message(manifest))
    out = canonicalize({"manifest": manifest.to_json(), "signature": _b64url(signature)})
    if len(out) > MAX_MANIFEST_BYTES:
        raise ConfigurationError("the signed manifest exceeds MAX_MANIFEST_BYTES")
    return out


def verify_manifest(data: bytes, provider_key: Ed25519PublicKey | None = None) -> Manifest:
    """Check a signed manifest and return it.

    With ``provider_key``, the manifest must name that key and be signed by it. Without, it is
    checked against the key it names (first contact: pin the result). Raises
    :class:`DecodeError` for malformed, non-canonical or invalid content,
    :class:`UntrustedIdentity` if it names another provider key than ``provider_key``, and
    :class:`InvalidMessage` if the signature does not verify.
    """
    doc = parse_strict(data, max_bytes=MAX_MANIFEST_BYTES)
    if canonicalize(doc) != bytes(data):
        raise DecodeError("signed manifest: not in canonical form")
    try:
        envelope = _members(doc, "signed manifest", required={"manifest", "signature"})
        sig_text = _str(envelope["signature"], "signature")
        _check(len(sig_text) == _SIGNATURE_B64_LEN, "signature is not 64 bytes")
        signature = _b64url_decode(sig_text, "signature")
        _check(len(signature) == ED25519_SIG_LEN, "signature is not 64 bytes")
    except _Invalid as e:
        raise DecodeError(f"{e}") from None
    manifest = Manifest.from_json(envelope["manifest"])
    signed_bytes = canonicalize(envelope["manifest"])
    if manifest.canonical_bytes() != signed_bytes:  # one manifest, one encoding
        raise DecodeError("signed manifest: not the encoding of a manifest")
    if provider_key is not None and manifest.provider_key != provider_key:
        raise UntrustedIdentity("the manifest names another provider key")
    manifest.provider_key.verify(signature, MANIFEST_SIGNING_CONTEXT + signed_bytes)
    return manifest


def check_successor(old: Manifest, new: Manifest) -> None:
    """Raise unless ``new`` may replace ``old``: same deployment, higher version, and signed by
    ``old``'s provider key or the ``next_provider_key`` it named.

    Both must come from :func:`verify_manifest` (their signatures are not rechecked here);
    :func:`verify_successor` does both steps.
    """
    if new.deployment != old.deployment:
        raise ProtocolViolation("a successor manifest must keep the deployment name")
    if new.version <= old.version:
        raise ProtocolViolation(
            f"manifest version {new.version} does not advance on version {old.version}"
        )
    allowed = {old.provider_key.raw}
    if old.next_provider_key is not None:
        allowed.add(old.next_provider_key.raw)
    if new.provider_key.raw not in allowed:
        raise UntrustedIdentity("the successor manifest is signed by an unannounced provider key")


def verify_successor(old: Manifest, data: bytes) -> Manifest:
    """Verify the signed manifest ``data`` and check that it may replace the pinned ``old``."""
    new = verify_manifest(data)
    check_successor(old, new)
    return new


# ----------------------------------------------------------------------------- what users see


def describe_policy(manifest: Manifest) -> str:
    """The one line a client shows about exceptional access.

    E.g. ``"exceptional access: 3 of 5 custodians, notice within 180 days"`` or
    ``"no exceptional access (end-to-end encryption only)"``.
    """
    access = manifest.access
    if isinstance(access, NoAccess):
        return "no exceptional access (end-to-end encryption only)"
    if access.max_seal_days == 0:
        notice = "immediate notice"
    else:
        unit = "day" if access.max_seal_days == 1 else "days"
        notice = f"notice within {access.max_seal_days} {unit}"
    return (
        f"exceptional access: {access.threshold} of {len(access.custodians)} custodians, {notice}"
    )


def describe_safety(manifest: Manifest) -> str:
    """The one line a client shows about the safety policy."""
    matching = manifest.safety.matching
    if not matching.enabled:
        return "verifiable reporting (franking) on; known-content matching off"
    params = matching.effective_parameters
    return (
        "verifiable reporting (franking) on; known-content matching on "
        f"(threshold {matching.threshold}, list signed by {matching.list_signer_quorum} of "
        f"{len(matching.list_signers)} organisations), {params.signal_type} hashes, "
        f"{params.lsh_keys} keys of {params.lsh_bits_per_key} bits"
    )


__all__ = [
    "MANIFEST_SIGNING_CONTEXT",
    "MATCHING_SIGNAL_PDQ",
    "MATCHING_SIGNAL_TYPES",
    "MAX_COURT_KEYS",
    "MAX_CUSTODIANS",
    "MAX_LIST_SIGNERS",
    "MAX_MANIFEST_BYTES",
    "MAX_MATCHING_THRESHOLD",
    "MAX_MATCHING_VOUCHERS",
    "MAX_NAME_BYTES",
    "MAX_POLICY_DAYS",
    "MAX_SERVER_KEYS",
    "MAX_URL_BYTES",
    "MAX_WITNESSES",
    "MIN_ESCROW_THRESHOLD",
    "AccessPolicy",
    "Custodian",
    "EscrowAccess",
    "LogInfo",
    "Manifest",
    "MatchingParameters",
    "MatchingPolicy",
    "NamedKey",
    "NoAccess",
    "SafetyPolicy",
    "WitnessInfo",
    "access_policy_from_json",
    "check_successor",
    "describe_policy",
    "describe_safety",
    "manifest_signing_message",
    "safety_policy_from_json",
    "sign_manifest",
    "verify_manifest",
    "verify_successor",
]
