"""The relay server's settings and its one secret: the franking key.

The franking key (32 random bytes) computes the reporting tag attached to every relayed copy
of a message (DESIGN.md §5). It must survive restarts — a report checks a tag computed months
before — so :func:`load_or_create_franking_key` keeps it in ``<data_dir>/franking.key``,
created on first start with mode 0600 in a directory of mode 0700, and refuses a key file that
others can read or that has the wrong length.

This module knows files, but no web framework, no storage and no protocol.
"""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from overt.crypto import Rng
from overt.errors import ConfigurationError
from overt.server.limits import ServerLimits

FRANKING_KEY_LEN: Final = 32
FRANKING_KEY_FILE: Final = "franking.key"
DATABASE_FILE: Final = "server.db"


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """What :func:`overt.server.create_app` needs besides its stores."""

    franking_key: bytes = field(repr=False)
    limits: ServerLimits = field(default_factory=ServerLimits)

    def __post_init__(self) -> None:
        if not isinstance(self.franking_key, bytes) or len(self.franking_key) != FRANKING_KEY_LEN:
            raise ConfigurationError(f"the franking key must be {FRANKING_KEY_LEN} bytes")


def prepare_data_dir(data_dir: Path) -> Path:
    """Create ``data_dir`` (mode 0700) if needed; refuse a path that is not a directory."""
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigurationError(f"cannot create the data directory {data_dir}: {e}") from e
    if not data_dir.is_dir():
        raise ConfigurationError(f"{data_dir} is not a directory")
    return data_dir


def load_or_create_franking_key(data_dir: Path, rng: Rng) -> bytes:
    """The franking key in ``data_dir``, drawn from ``rng`` and written (0600) if absent."""
    path = prepare_data_dir(data_dir) / FRANKING_KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_key(path)
    except OSError as e:
        raise ConfigurationError(f"cannot create {path}: {e}") from e
    key = rng.random_bytes(FRANKING_KEY_LEN)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(key)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        with contextlib.suppress(OSError):
            path.unlink()
        raise ConfigurationError(f"cannot write {path}: {e}") from e
    return key


def _read_key(path: Path) -> bytes:
    try:
        mode = path.stat().st_mode
        if not stat.S_ISREG(mode):
            raise ConfigurationError(f"{path} is not a regular file")
        if mode & 0o077:
            raise ConfigurationError(
                f"{path} is readable by other users: run 'chmod 600 {path}' and start again"
            )
        key = path.read_bytes()
    except OSError as e:
        raise ConfigurationError(f"cannot read {path}: {e}") from e
    if len(key) != FRANKING_KEY_LEN:
        raise ConfigurationError(
            f"{path} must hold exactly {FRANKING_KEY_LEN} bytes; restore it from a backup "
            "(a new key would invalidate the reporting tags of stored messages)"
        )
    return key
