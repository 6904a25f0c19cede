"""Durable files for the custodian and witness services: atomic replacement, secret files, and
one state file per service.

Every write that a service must not lose goes to a temporary file, is fsynced, renamed over the
old file, and the directory is fsynced, so a crash leaves either the old or the new file. Secret
files are created once with mode 0600 and refused later if group or others can read them. Reads
are bounded by a named limit given by the caller.

This module knows files only: no HTTP, no clock, no protocol logic. Its errors are
:class:`ConfigurationError` (the operator must act) and :class:`OSError` from a failed write
(the caller answers it as a temporary failure).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from overt.errors import ConfigurationError, DecodeError


class Persistable(Protocol):
    """A state that serializes itself (versioned, no pickle)."""

    def to_bytes(self) -> bytes: ...


S = TypeVar("S", bound=Persistable)


def fsync_directory(path: Path) -> None:
    """Make a rename or creation in directory ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` so that a crash leaves either the old or the new file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def create_secret(path: Path, data: bytes) -> None:
    """Create ``path`` (which must not exist) with mode 0600 holding ``data``, durably."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_directory(path.parent)


def read_secret(fd: int, path: Path, limit: int, *, advice: str = "") -> bytes:
    """Read the secret file open as ``fd`` (closed here), at most ``limit + 1`` bytes.

    One byte more than ``limit`` is read so the caller can tell a file that is too large and
    say so in its own words. :class:`ConfigurationError` if group or others can read it;
    ``advice`` is appended to the ``chmod`` instruction (" and restart").
    """
    try:
        mode = os.fstat(fd).st_mode
        data = os.read(fd, limit + 1)
    finally:
        os.close(fd)
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigurationError(
            f"{path} is readable by other users; run `chmod 600 {path}`{advice}"
        )
    return data


class StateFile(Generic[S]):
    """A service's state in one file, replaced atomically (mode 0600) on every change.

    ``decode`` reads the file's bytes (at most ``max_bytes``) and raises :class:`DecodeError`
    if they are not a state. ``party`` names the service in messages ("witness"), and
    ``consequence`` says why starting from an empty state would be wrong.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        decode: Callable[[bytes], S],
        max_bytes: int,
        party: str,
        consequence: str,
    ) -> None:
        self.path = Path(path)
        self._decode = decode
        self._max_bytes = max_bytes
        self._party = party
        self._consequence = consequence

    def load(self) -> S | None:
        """The saved state, None if there is no file; :class:`ConfigurationError` if unreadable."""
        try:
            with self.path.open("rb") as f:
                data = f.read(self._max_bytes + 1)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise ConfigurationError(f"cannot read the {self._party} state {self.path}: {e}") from e
        try:
            return self._decode(data)
        except DecodeError as e:
            raise ConfigurationError(
                f"the {self._party} state {self.path} is unreadable ({e}); restore it from a "
                f"backup — {self._consequence}"
            ) from e

    def save(self, state: S) -> None:
        write_atomically(self.path, state.to_bytes())


__all__ = [
    "Persistable",
    "StateFile",
    "create_secret",
    "fsync_directory",
    "read_secret",
    "write_atomically",
]
