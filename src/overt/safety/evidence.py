"""Evidence bundles on disk: export one to a file and read it back, for offline re-checking.

A bundle file is exactly :meth:`EvidenceBundle.encode` (versioned, canonical binary). Writing is
atomic (a temporary file in the same directory, flushed and synced, then renamed over the
target), so a crash leaves either the old file or the new one, never half of one. Re-checking a
bundle read back is :func:`overt.safety.reports.reverify_bundle`.

This module does file I/O only; it never sees sockets, HTTP, the clock or keys.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from overt.errors import LimitExceeded, LocalError
from overt.safety.reports import MAX_BUNDLE_BYTES, EvidenceBundle


def export_bundle(bundle: EvidenceBundle, path: str | os.PathLike[str]) -> Path:
    """Write ``bundle`` to ``path`` atomically; :class:`LocalError` if the file system fails."""
    target = Path(path)
    data = bundle.encode()
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise LocalError(f"could not write evidence bundle {str(target)!r}: {exc}") from exc
    return target


def load_bundle(path: str | os.PathLike[str]) -> EvidenceBundle:
    """Read a bundle back; :class:`overt.errors.DecodeError` if the file is not one."""
    source = Path(path)
    try:
        with source.open("rb") as f:
            data = f.read(MAX_BUNDLE_BYTES + 1)
    except OSError as exc:
        raise LocalError(f"could not read evidence bundle {str(source)!r}: {exc}") from exc
    if len(data) > MAX_BUNDLE_BYTES:
        raise LimitExceeded(f"{str(source)!r} is larger than any evidence bundle")
    return EvidenceBundle.decode(data)
