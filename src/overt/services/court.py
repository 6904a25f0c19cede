"""The court's tool: a signing key kept in a data directory, and the warrants and revocations it
signs (:mod:`overt.access.warrant`). A court needs no server: it hands the signed files to the
agency (which serves the warrant on the provider) and, for a revocation, to the provider and the
custodians.

Files in the data directory (0700):

``court.key``
    The Ed25519 signing key (0600), created by :func:`keygen`. Its public half, with the
    court's name, is what the deployment manifest lists (``court_keys``).
``court.json``
    The court's name and public key (0644): what to send the provider for the manifest.

A warrant (:func:`sign_warrant_file`) is approved *now* (the tool reads the clock once), its
authorisation runs from now to ``end``; its one task names the target accounts and the window
``[start, end)``, which may not start before now (access is prospective). The notification
date is ``seal_days`` after approval and must not come before ``end``. Every rule of
:class:`~overt.access.warrant.Warrant` is checked before anything is signed; a broken one is a
:class:`~overt.errors.LocalError` that says which.

This module knows files and the clock; the warrant format is :mod:`overt.access`'s.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from overt.access.limits import DAY_SECONDS
from overt.access.warrant import (
    Approval,
    Authorisation,
    Delivery,
    Revocation,
    Task,
    Timespan,
    Warrant,
    new_targets_salt,
    new_warrant_id,
    sign_revocation,
    sign_warrant,
    verify_warrant,
)
from overt.crypto import Ed25519PrivateKey, Rng, SystemRng
from overt.errors import ConfigurationError, DecodeError, InvalidMessage, LocalError, OvertError
from overt.services.custodian_wire import b64d, b64e
from overt.transparency.manifest import NamedKey
from overt.wire.jcs import JsonValue, canonicalize, parse_strict

KEY_FILE_NAME: Final = "court.key"
INFO_FILE_NAME: Final = "court.json"
KEY_HEADER: Final = "OVERT-COURT-KEY v1"
MAX_FILE_BYTES: Final = 4096

_RELATIVE: Final = re.compile(r"\+([0-9]{1,6})([smhd])")
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": DAY_SECONDS}


@dataclass(frozen=True, slots=True, eq=False)
class Court:
    """A court's name and signing key."""

    name: str
    key: Ed25519PrivateKey

    @property
    def named_key(self) -> NamedKey:
        """The manifest's entry for this court."""
        return NamedKey(self.name, self.key.public_key)


def keygen(data_dir: str | Path, name: str, rng: Rng | None = None) -> Court:
    """Create a court key in ``data_dir``; :class:`ConfigurationError` if one exists."""
    directory = Path(data_dir)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        NamedKey(name, Ed25519PrivateKey.generate(SystemRng()).public_key)
    except OvertError as e:
        raise ConfigurationError(f"{name!r} cannot be a court's name: {e}") from None
    key = Ed25519PrivateKey.generate(rng or SystemRng())
    text = f"{KEY_HEADER}\n{name}\n{b64e(key.export_secret())}\n".encode()
    try:
        fd = os.open(directory / KEY_FILE_NAME, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigurationError(
            f"{directory / KEY_FILE_NAME} exists already: a court keeps its key (the manifest "
            "lists it); use another data directory for another court"
        ) from None
    try:
        os.write(fd, text)
        os.fsync(fd)
    finally:
        os.close(fd)
    court = Court(name, key)
    info = canonicalize({"key": b64e(key.public_key.raw), "name": name})
    (directory / INFO_FILE_NAME).write_bytes(info + b"\n")
    return court


def load(data_dir: str | Path) -> Court:
    """The court in ``data_dir``; :class:`ConfigurationError` says what is wrong."""
    path = Path(data_dir) / KEY_FILE_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        raise ConfigurationError(
            f"no court key at {path} ({e.strerror}): run `overt court keygen` first"
        ) from None
    try:
        mode = os.fstat(fd).st_mode
        data = os.read(fd, MAX_FILE_BYTES + 1)
    finally:
        os.close(fd)
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigurationError(f"{path} is readable by other users; run `chmod 600 {path}`")
    try:
        header, name, secret = data.decode("utf-8").splitlines()
        if header != KEY_HEADER:
            raise DecodeError("not a court key")
        return Court(name, Ed25519PrivateKey.from_secret_bytes(b64d(secret, "court key", 32)))
    except (ValueError, DecodeError) as e:
        raise ConfigurationError(f"{path} is not a court key ({e}); restore it") from None


def parse_time(text: str, now: int) -> int:
    """Unix seconds from ``now``, ``today``/``tomorrow`` (UTC midnight), ``+N{s,m,h,d}``,
    decimal Unix seconds, or ISO 8601 (a date is UTC midnight; a time without offset is UTC)."""
    text = text.strip()
    if text == "now":
        return now
    if text in ("today", "tomorrow"):
        midnight = now - now % DAY_SECONDS
        return midnight + (DAY_SECONDS if text == "tomorrow" else 0)
    m = _RELATIVE.fullmatch(text)
    if m:
        return now + int(m.group(1)) * _UNITS[m.group(2)]
    if text.isdigit():
        return int(text)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise LocalError(
            f"{text!r} is not a time: use now, today, tomorrow, +3d, Unix seconds or ISO 8601"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp())


def make_warrant(
    court: Court,
    *,
    targets: list[bytes],
    start: int,
    end: int,
    seal_days: int,
    cap: int,
    reference: str,
    legal_basis: str,
    judge_reference: str,
    now: int,
    rng: Rng,
    task_reference: str = "TASK-1",
    delivery: Delivery = Delivery.CONTENT,
) -> Warrant:
    """One warrant approved at ``now`` (see the module docstring for its shape)."""
    if start < now:
        raise LocalError(
            "the window starts before now: access is prospective, so --from must not be in "
            "the past (use now, tomorrow or a later time)"
        )
    if not targets:
        raise LocalError("name at least one target account (--target)")
    if len(set(targets)) != len(targets):
        raise LocalError("a target is named twice")
    sealed_until = now + seal_days * DAY_SECONDS
    if sealed_until < end:
        raise LocalError(
            f"the targets would be told ({seal_days} days after approval) before the window "
            "ends: give a longer --seal-days or an earlier --to"
        )
    return Warrant(
        warrant_id=new_warrant_id(rng),
        authorisation=Authorisation(
            reference=reference,
            legal_basis=legal_basis,
            timespan=Timespan(now, end),
            approval=Approval(court.name, court.key.public_key, judge_reference, now),
        ),
        tasks=(Task(task_reference, tuple(targets), Timespan(start, end), delivery),),
        sealed_until=sealed_until,
        max_messages=cap,
        targets_salt=new_targets_salt(rng),
    )


def sign_warrant_file(court: Court, warrant: Warrant, max_seal_days: int | None = None) -> bytes:
    """The signed warrant document (canonical JSON), as the agency serves it."""
    return sign_warrant(warrant, court.key, max_seal_days=max_seal_days)


def read_own_warrant(court: Court, document: bytes) -> Warrant:
    """A warrant this court signed; :class:`LocalError` if it is not one."""
    try:
        return verify_warrant(document, (court.named_key,), max_seal_days=None)
    except (DecodeError, InvalidMessage, OvertError) as e:
        raise LocalError(f"this is not a warrant signed by {court.name!r}: {e}") from None


def revoke(court: Court, document: bytes, *, reason: str, now: int) -> bytes:
    """The signed revocation of a warrant this court signed."""
    warrant = read_own_warrant(court, document)
    revocation = Revocation(warrant.warrant_id, court.name, court.key.public_key, now, reason)
    return sign_revocation(revocation, court.key)


def describe(warrant: Warrant) -> JsonValue:
    """A summary for people: id, times, targets, cap."""
    task = warrant.tasks[0]
    return {
        "cap": warrant.max_messages,
        "from": task.timespan.start,
        "sealed_until": warrant.sealed_until,
        "targets": [t.decode("utf-8", "replace") for t in warrant.targets],
        "to": task.timespan.end,
        "warrant_id": b64e(warrant.warrant_id),
    }


def warrant_id_of(document: bytes) -> bytes:
    """The warrant id of a signed warrant or revocation document (unverified)."""
    doc = parse_strict(document, max_bytes=64 * 1024)
    if isinstance(doc, dict):
        body = doc.get("warrant") or doc.get("revocation")
        if isinstance(body, dict):
            return b64d(body.get("warrant_id"), "warrant id", 32)
    raise DecodeError("not a warrant or revocation document")


__all__ = [
    "INFO_FILE_NAME",
    "KEY_FILE_NAME",
    "Court",
    "describe",
    "keygen",
    "load",
    "make_warrant",
    "parse_time",
    "read_own_warrant",
    "revoke",
    "sign_warrant_file",
    "warrant_id_of",
]
