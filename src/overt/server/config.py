"""The relay server's settings and its secrets: the franking key and the transparency keys.

The franking key (32 random bytes) computes the reporting tag attached to every relayed copy
of a message (DESIGN.md §5). It must survive restarts — a report checks a tag computed months
before — so :func:`load_or_create_franking_key` keeps it in ``<data_dir>/franking.key``,
created on first start with mode 0600 in a directory of mode 0700, and refuses a key file that
others can read or that has the wrong length.

The transparency keys (:class:`TransparencyKeys`, :func:`load_or_create_transparency_keys`)
live next to it, under the same rules:

==================  ===========================================================================
``provider.key``    the provider's Ed25519 key (32-byte seed): signs the deployment manifest
``log.key``         the log's note signer, ``PRIVATE+KEY+<origin>+<key ID>+<base64(0x01 ‖
                    seed)>`` (the form of Go's note signer keys): signs checkpoints
``vrf.key``         the key directory's vrf-r255 secret scalar (32 bytes): account labels
==================  ===========================================================================

They are created only while the log is empty: once entries were signed with them, a missing
key must be restored from a backup, not replaced (clients pinned the old one). The franking key
follows the same rule when the caller says whether the deployment is new.

:class:`Backends` says where a node keeps its data and how it wakes connections on other
nodes: SQLite and the in-process PubSub (one node), or PostgreSQL and Redis (one node of
several, every one of them with identical copies of the key files above; docs/deploy.md).

This module knows files, but no web framework, no storage and no protocol.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from overt.crypto import ED25519_KEY_LEN, Ed25519PrivateKey, Rng
from overt.crypto.vrf import VRF_KEY_LEN, VrfSecretKey
from overt.errors import ConfigurationError, DecodeError, LocalError
from overt.server.deployment import Deployment
from overt.server.limits import (
    CHECKPOINT_INTERVAL_MS,
    KEY_FILE_MAX,
    WITNESS_TIMEOUT_MS,
    ServerLimits,
)
from overt.transparency.checkpoint import Checkpoint
from overt.transparency.merkle import EMPTY_ROOT
from overt.transparency.note import ALG_ED25519, NoteSigner, b64decode_strict, b64encode, key_id

FRANKING_KEY_LEN: Final = 32
FRANKING_KEY_FILE: Final = "franking.key"
DATABASE_FILE: Final = "server.db"
PROVIDER_KEY_FILE: Final = "provider.key"
LOG_KEY_FILE: Final = "log.key"
VRF_KEY_FILE: Final = "vrf.key"

DEFAULT_LOG_ORIGIN: Final = "overt.local/log"
"""The checkpoint origin (and log key name) of a new log when none is configured."""

_SIGNER_KEY_PREFIX: Final = "PRIVATE+KEY+"


@dataclass(frozen=True, slots=True, eq=False)
class TransparencyKeys:
    """The provider's manifest key, the log's checkpoint signer and the directory's VRF key.

    The log signer's name is the log's origin. ``repr`` shows public halves only.
    """

    provider: Ed25519PrivateKey
    log: NoteSigner
    vrf: VrfSecretKey

    @property
    def origin(self) -> str:
        return self.log.name

    @classmethod
    def generate(cls, rng: Rng, origin: str = DEFAULT_LOG_ORIGIN) -> TransparencyKeys:
        """Fresh keys drawn from ``rng`` (for a new deployment, or an in-memory server)."""
        provider = Ed25519PrivateKey.generate(rng)
        log = _log_signer(origin, Ed25519PrivateKey.generate(rng))
        return cls(provider, log, VrfSecretKey.generate(rng))


@dataclass(frozen=True, slots=True)
class TransparencyConfig:
    """The transparency log and key directory of one deployment: keys, configuration, pace.

    A checkpointing round runs every ``checkpoint_interval_ms`` and waits at most
    ``witness_timeout_ms`` for each witness.
    """

    keys: TransparencyKeys
    deployment: Deployment = field(default_factory=Deployment)
    checkpoint_interval_ms: int = CHECKPOINT_INTERVAL_MS
    witness_timeout_ms: int = WITNESS_TIMEOUT_MS

    def __post_init__(self) -> None:
        for value in (self.checkpoint_interval_ms, self.witness_timeout_ms):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(
                    "the checkpoint interval and witness timeout are positive milliseconds"
                )


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """What :func:`overt.server.create_app` needs besides its stores.

    Without ``transparency`` the application draws fresh transparency keys from its RNG and
    uses the default deployment (no witnesses): right for an in-memory server, not for one
    whose log outlives the process.
    """

    franking_key: bytes = field(repr=False)
    limits: ServerLimits = field(default_factory=ServerLimits)
    transparency: TransparencyConfig | None = None
    node_id: str = "node"
    """Names this node in Redis presence entries (:attr:`Backends.node_id`)."""
    matching_key: bytes | None = field(default=None, repr=False)
    """The provider's known-content matching key (``matching.key``, 32 bytes), used when the
    manifest turns matching on; ``None`` draws one (an in-memory server)."""

    def __post_init__(self) -> None:
        if not isinstance(self.franking_key, bytes) or len(self.franking_key) != FRANKING_KEY_LEN:
            raise ConfigurationError(f"the franking key must be {FRANKING_KEY_LEN} bytes")


STORAGE_SQLITE: Final = "sqlite"
STORAGE_POSTGRES: Final = "postgres"
PUBSUB_INPROCESS: Final = "inprocess"
PUBSUB_REDIS: Final = "redis"
NODE_ID_MAX: Final = 64
"""Longest node id (it names the node in Redis presence entries)."""

_NODE_ID_CHARS: Final = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-"
)


@dataclass(frozen=True, slots=True)
class Backends:
    """Where a server node keeps its data and how it wakes connections on other nodes.

    The default is one node: SQLite in the data directory and the in-process PubSub. Several
    nodes of one deployment share PostgreSQL (``storage="postgres"``, ``database_url``) and
    Redis (``pubsub="redis"``, ``redis_url``); ``node_id`` names this node in Redis's presence
    entries. The URLs may hold passwords, so ``repr`` hides them.
    """

    storage: str = STORAGE_SQLITE
    database_url: str | None = field(default=None, repr=False)
    pubsub: str = PUBSUB_INPROCESS
    redis_url: str | None = field(default=None, repr=False)
    node_id: str = "node"

    def __post_init__(self) -> None:
        if self.storage not in (STORAGE_SQLITE, STORAGE_POSTGRES):
            raise ConfigurationError(f"--storage is sqlite or postgres, not {self.storage!r}")
        if self.pubsub not in (PUBSUB_INPROCESS, PUBSUB_REDIS):
            raise ConfigurationError(f"--pubsub is inprocess or redis, not {self.pubsub!r}")
        if self.storage == STORAGE_POSTGRES and not self.database_url:
            raise ConfigurationError(
                "--storage postgres needs --database-url postgresql://USER@HOST:PORT/DB "
                "(or OVERT_DATABASE_URL)"
            )
        if self.storage == STORAGE_SQLITE and self.database_url:
            raise ConfigurationError(
                "--database-url is for --storage postgres; SQLite lives in the data directory"
            )
        if self.pubsub == PUBSUB_REDIS and not self.redis_url:
            raise ConfigurationError(
                "--pubsub redis needs --redis-url redis://HOST:PORT/DB (or OVERT_REDIS_URL)"
            )
        if self.pubsub == PUBSUB_INPROCESS and self.redis_url:
            raise ConfigurationError("--redis-url is for --pubsub redis")
        if self.pubsub == PUBSUB_REDIS and self.storage == STORAGE_SQLITE:
            raise ConfigurationError(
                "--pubsub redis serves several nodes, and several nodes need --storage postgres "
                "(an SQLite file belongs to one server process)"
            )
        if (
            not isinstance(self.node_id, str)
            or not 0 < len(self.node_id) <= NODE_ID_MAX
            or not set(self.node_id) <= _NODE_ID_CHARS
        ):
            raise ConfigurationError(
                f"--node-id is 1-{NODE_ID_MAX} of A-Z a-z 0-9 . _ : -, not {self.node_id!r}"
            )

    @property
    def multi_node(self) -> bool:
        """Whether other nodes may serve the same deployment (Redis carries the wake-ups)."""
        return self.pubsub == PUBSUB_REDIS


def prepare_data_dir(data_dir: Path) -> Path:
    """Create ``data_dir`` (mode 0700) if needed; refuse a path that is not a directory."""
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigurationError(f"cannot create the data directory {data_dir}: {e}") from e
    if not data_dir.is_dir():
        raise ConfigurationError(f"{data_dir} is not a directory")
    return data_dir


def load_or_create_franking_key(data_dir: Path, rng: Rng, *, create: bool = True) -> bytes:
    """The franking key in ``data_dir``, drawn from ``rng`` and written (0600) if absent.

    A missing key is created only if ``create`` — the caller passes whether the deployment is
    new (its log still empty); otherwise the key already tags stored messages (on this node or,
    on PostgreSQL, on any other), and it must be copied or restored, not replaced.
    """
    path = prepare_data_dir(data_dir) / FRANKING_KEY_FILE
    if not create and not path.exists():
        raise ConfigurationError(
            f"{path} is missing, but this deployment already has data: copy franking.key from "
            "another node of the deployment (every node needs the same one) or restore it from "
            "a backup; a new key would make the reports of relayed messages unverifiable"
        )
    key = rng.random_bytes(FRANKING_KEY_LEN) if not path.exists() else None
    if key is not None and _create_secret(path, key):
        return key
    key = _read_key(path)
    if len(key) != FRANKING_KEY_LEN:
        raise ConfigurationError(
            f"{path} must hold exactly {FRANKING_KEY_LEN} bytes; restore it from a backup "
            "(a new key would invalidate the reporting tags of stored messages)"
        )
    return key


def load_or_create_transparency_keys(
    data_dir: Path, rng: Rng, *, origin: str | None = None, create: bool = True
) -> tuple[TransparencyKeys, tuple[str, ...]]:
    """The transparency keys in ``data_dir`` and the names of the files just created.

    A missing key file is created (0600, drawn from ``rng``) only if ``create`` — the caller
    passes whether the log is still empty; otherwise it must be restored from a backup.
    ``origin`` names a new log (default :data:`DEFAULT_LOG_ORIGIN`); given for an existing log
    key it must match the name in ``log.key``.
    """
    directory = prepare_data_dir(data_dir)
    created: list[str] = []

    def secret(name: str, make: Callable[[], bytes]) -> bytes:
        path = directory / name
        if not path.exists():
            if not create:
                raise ConfigurationError(
                    f"{path} is missing, but the transparency log already has entries signed "
                    "with it: restore the file from a backup (a new key would break every "
                    "client that pinned the old one)"
                )
            if _create_secret(path, make()):
                created.append(name)
        return _read_key(path)

    provider_seed = secret(PROVIDER_KEY_FILE, lambda: rng.random_bytes(ED25519_KEY_LEN))
    new_origin = DEFAULT_LOG_ORIGIN if origin is None else origin
    log_text = secret(
        LOG_KEY_FILE,
        lambda: _encode_log_signer(_log_signer(new_origin, Ed25519PrivateKey.generate(rng))),
    )
    vrf_secret = secret(VRF_KEY_FILE, lambda: VrfSecretKey.generate(rng).export_secret())
    try:
        provider = Ed25519PrivateKey.from_secret_bytes(provider_seed)
    except (DecodeError, ValueError):
        raise _corrupt(directory / PROVIDER_KEY_FILE) from None
    log = _parse_log_signer(log_text, directory / LOG_KEY_FILE)
    if origin is not None and origin != log.name:
        raise ConfigurationError(
            f"{directory / LOG_KEY_FILE} is the key of log {log.name!r}, not {origin!r}: a "
            "log keeps its origin for life; drop --origin or use another data directory"
        )
    if len(vrf_secret) != VRF_KEY_LEN:
        raise _corrupt(directory / VRF_KEY_FILE)
    try:
        vrf = VrfSecretKey.from_secret_bytes(vrf_secret)
    except DecodeError:
        raise _corrupt(directory / VRF_KEY_FILE) from None
    return TransparencyKeys(provider, log, vrf), tuple(created)


def _corrupt(path: Path) -> ConfigurationError:
    return ConfigurationError(f"{path} does not hold a valid key; restore it from a backup")


def _log_signer(origin: str, key: Ed25519PrivateKey) -> NoteSigner:
    try:
        Checkpoint(origin, 0, EMPTY_ROOT)
        return NoteSigner(origin, key)
    except LocalError as e:
        raise ConfigurationError(f"{origin!r} cannot be a log origin: {e}") from None


def _encode_log_signer(signer: NoteSigner) -> bytes:
    material = bytes((ALG_ED25519,)) + signer.private_key.export_secret()
    kid = signer.verifier_key.key_id
    return f"{_SIGNER_KEY_PREFIX}{signer.name}+{kid:08x}+{b64encode(material)}\n".encode()


def _parse_log_signer(data: bytes, path: Path) -> NoteSigner:
    try:
        text = data.decode("utf-8").strip()
        if not text.startswith(_SIGNER_KEY_PREFIX):
            raise DecodeError("not a signer key")
        # From the left: a name and a key ID hold no "+", base64 may.
        name, kid_hex, b64 = text[len(_SIGNER_KEY_PREFIX) :].split("+", 2)
        material = b64decode_strict(b64, "log key")
        if len(material) != 1 + ED25519_KEY_LEN or material[0] != ALG_ED25519:
            raise DecodeError("not an Ed25519 note key")
        signer = _log_signer(name, Ed25519PrivateKey.from_secret_bytes(material[1:]))
        if kid_hex != f"{key_id(name, ALG_ED25519, signer.private_key.public_key.raw):08x}":
            raise DecodeError("the key ID does not match the key")
    except (UnicodeDecodeError, ValueError, DecodeError, ConfigurationError):
        raise _corrupt(path) from None
    return signer


def _create_secret(path: Path, data: bytes) -> bool:
    """Write ``data`` to a new file of mode 0600; False if the file exists already."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    except OSError as e:
        raise ConfigurationError(f"cannot create {path}: {e}") from e
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        with contextlib.suppress(OSError):
            path.unlink()
        raise ConfigurationError(f"cannot write {path}: {e}") from e
    return True


def _read_key(path: Path) -> bytes:
    try:
        mode = path.stat().st_mode
        if not stat.S_ISREG(mode):
            raise ConfigurationError(f"{path} is not a regular file")
        if mode & 0o077:
            raise ConfigurationError(
                f"{path} is readable by other users: run 'chmod 600 {path}' and start again"
            )
        with path.open("rb") as f:
            key = f.read(KEY_FILE_MAX + 1)
    except OSError as e:
        raise ConfigurationError(f"cannot read {path}: {e}") from e
    if len(key) > KEY_FILE_MAX:
        raise _corrupt(path)
    return key
