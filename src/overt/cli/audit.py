"""``overt audit`` and ``overt alarms``: checking the transparency log from the outside, and what
this profile's own checks found.

``overt audit --server URL [--provider-key K] [--since SIZE:ROOTHASH]`` needs no account and
trusts nothing the server says without checking it: it verifies the deployment manifest (under
``K`` if given), the latest checkpoint (the log's key and the manifest's witness quorum),
downloads every entry (with progress) and recomputes the root with a
:class:`~overt.transparency.merkle.CompactRange`, decodes every entry, walks the manifest chain
from entry 0 (each later manifest a valid successor, the last one the manifest in force), checks
that warrants, unsealings and access receipts fit together, and — given an earlier checkpoint
``SIZE:ROOTHASH`` — that the log still starts with it (recomputed and by the server's
consistency proof). It prints per-type counts and exits 0 when everything verifies, 1 with the
exact failure otherwise.

``overt alarms [--check] [--all] [--ack]`` lists the profile's transparency alarms (after
checking the log now, with ``--check``) and acknowledges them with ``--ack``. Every other
command prints a warning line while unacknowledged alarms exist (:func:`add_commands` wraps
them).

This module only parses arguments, calls :mod:`overt.client` and prints.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import re
import sys
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import wraps
from pathlib import Path
from typing import Any, Final, TextIO

from overt.client import HttpTransport
from overt.client.kt import LogReader, verify_log_checkpoint
from overt.client.store import DB_FILE_NAME, Store
from overt.crypto import Ed25519PublicKey
from overt.errors import DecodeError, InvalidMessage, LocalError, OvertError, ProtocolViolation
from overt.transparency.entries import (
    AccessReceipt,
    EntryType,
    ManifestEntry,
    WarrantCommitment,
    WarrantUnsealing,
    decode_entry,
)
from overt.transparency.manifest import (
    Manifest,
    check_successor,
    describe_policy,
    describe_safety,
    verify_manifest,
)
from overt.transparency.merkle import CompactRange, hash_leaf, verify_consistency

PAGE: Final = 1000
"""Entries asked for per request (the server's page bound)."""

_HEX64: Final = re.compile(r"[0-9a-fA-F]{64}")

Run = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]


class AuditFailure(Exception):
    """Something in the log does not verify; the message says exactly what."""


# ----------------------------------------------------------------------------- parsing


def parse_key32(text: str, what: str) -> bytes:
    """32 bytes given as 64 hex digits or (URL-safe or standard) base64."""
    if _HEX64.fullmatch(text):
        return bytes.fromhex(text)
    try:
        raw = base64.b64decode(text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise LocalError(f"{what} must be 32 bytes, as 64 hex digits or base64")
    return raw


def parse_provider_key(text: str) -> Ed25519PublicKey:
    try:
        return Ed25519PublicKey.from_bytes(parse_key32(text, "--provider-key"))
    except DecodeError as exc:
        raise LocalError("--provider-key is not an Ed25519 public key") from exc


def parse_since(text: str) -> tuple[int, bytes]:
    """``SIZE:ROOTHASH`` of a checkpoint seen before."""
    size, sep, root = text.partition(":")
    if not sep or not size.isdigit() or int(size) < 1:
        raise LocalError("--since takes SIZE:ROOTHASH, e.g. 1234:<base64 root hash>")
    return int(size), parse_key32(root, "the root hash of --since")


# ----------------------------------------------------------------------------- the audit


@dataclass
class _Warrants:
    committed: dict[bytes, WarrantCommitment]
    unsealed: set[bytes]
    decrypted: Counter[bytes]


def _progress(out: TextIO, done: int, total: int, last: list[int]) -> None:
    """A progress line every 10 % (every page on a terminal)."""
    percent = 100 * done // total if total else 100
    if out.isatty():
        print(f"\rreading entries: {done}/{total} ({percent}%)", end="", file=out, flush=True)
        if done == total:
            print(file=out)
    elif percent >= last[0] + 10 or done == total:
        last[0] = percent - percent % 10
        print(f"reading entries: {done}/{total} ({percent}%)", file=out, flush=True)


async def audit(
    reader: LogReader,
    *,
    provider_key: Ed25519PublicKey | None = None,
    since: tuple[int, bytes] | None = None,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """Audit the log behind ``reader`` (see the module docstring); 0 if it verifies, else 1
    after printing the failure. Network errors raise."""
    try:
        await _audit(reader, provider_key, since, out, err)
    except AuditFailure as failure:
        print(f"AUDIT FAILED: {failure}", file=out)
        return 1
    return 0


async def _audit(
    reader: LogReader,
    provider_key: Ed25519PublicKey | None,
    since: tuple[int, bytes] | None,
    out: TextIO,
    err: TextIO,
) -> None:
    view = await reader.manifest()
    if view is None:
        raise AuditFailure("the server publishes no deployment manifest (GET /v1/manifest: 404)")
    try:
        current = verify_manifest(view.manifest, provider_key)
    except ProtocolViolation as exc:
        raise AuditFailure(f"the manifest in force is not the given provider's: {exc}") from None
    except (DecodeError, InvalidMessage) as exc:
        raise AuditFailure(f"the manifest in force does not verify ({exc})") from None
    print(f"deployment:  {current.deployment}, manifest version {current.version} "
          f"(log index {view.index})", file=out)  # fmt: skip
    print(f"access:      {describe_policy(current)}", file=out)
    print(f"safety:      {describe_safety(current)}", file=out)
    names = ", ".join(w.name for w in current.witnesses) or "none"
    print(f"witnesses:   {current.witness_quorum} of {len(current.witnesses)} ({names})", file=out)

    note = await reader.checkpoint()
    try:
        verified = verify_log_checkpoint(current, note)
    except (DecodeError, InvalidMessage):
        raise AuditFailure(
            "the latest checkpoint is not signed by the manifest's log key for its origin, or "
            f"fewer than {current.witness_quorum} of the manifest's witnesses cosigned it"
        ) from None
    cp = verified.checkpoint
    print(f"checkpoint:  {cp.origin} size {cp.size}, root "
          f"{base64.b64encode(cp.root_hash).decode()}, cosigned by "
          f"{len(verified.cosignatures)} witness(es)", file=out)  # fmt: skip
    if since is not None and since[0] > cp.size:
        raise AuditFailure(
            f"the log has {cp.size} entries now but had {since[0]} at the checkpoint given "
            "with --since: it was truncated or forked"
        )

    cr = CompactRange()
    counts: Counter[str] = Counter()
    chain: Manifest | None = None
    last_manifest: tuple[int, bytes] | None = None
    warrants = _Warrants({}, set(), Counter())
    progress = [-10]
    while cr.size < cp.size:
        start = cr.size
        page = await reader.entries(start, min(start + PAGE, cp.size))
        if not page:
            raise AuditFailure(f"the server returned no entries from {start} on")
        for data in page:
            index = cr.size
            cr.append(hash_leaf(data))
            try:
                entry = decode_entry(data)
            except DecodeError as exc:
                raise AuditFailure(f"entry {index} does not decode: {exc}") from None
            counts[EntryType(entry.ENTRY_TYPE).name.lower()] += 1
            if index == 0 and not isinstance(entry, ManifestEntry):
                raise AuditFailure("entry 0 is not the deployment manifest")
            if isinstance(entry, ManifestEntry):
                chain = _next_manifest(chain, entry.manifest, index)
                last_manifest = (index, entry.manifest)
            else:
                _check_access(entry, index, warrants)
            if since is not None and cr.size == since[0] and cr.root() != since[1]:
                raise AuditFailure(
                    f"the log's first {since[0]} entries do not hash to the root given with "
                    "--since: the log was rewritten"
                )
        _progress(err, cr.size, cp.size, progress)
    if cr.root() != cp.root_hash:
        raise AuditFailure(
            "the entries the server served do not hash to its checkpoint's root: they are not "
            "the log it signed"
        )
    if since is not None and since[0] < cp.size:
        proof = await reader.consistency_proof(since[0], cp.size)
        try:
            verify_consistency(since[0], cp.size, proof, since[1], cp.root_hash)
        except InvalidMessage:
            raise AuditFailure(
                f"the server's consistency proof from size {since[0]} to {cp.size} does not verify"
            ) from None
    if view.index < cp.size:
        if last_manifest is None or last_manifest != (view.index, view.manifest):
            raise AuditFailure(
                f"the manifest in force (index {view.index}) is not the last manifest in the log"
            )
    else:
        print(f"note: the manifest in force (index {view.index}) is not covered by the latest "
              "checkpoint yet; run the audit again shortly", file=out)  # fmt: skip

    print(f"entries:     {cp.size}, root recomputed and equal", file=out)
    for name in [t.name.lower() for t in EntryType]:
        print(f"  {name:<22} {counts[name]}", file=out)
    logged, opened = len(warrants.committed), len(warrants.unsealed)
    decrypted = sum(warrants.decrypted.values())
    print(f"warrants:    {logged} logged, {opened} unsealed, {decrypted} message(s) decrypted "
          "under them", file=out)  # fmt: skip
    if since is not None:
        print(f"since:       the log still starts with the checkpoint of size {since[0]}", file=out)
    print("OK: the log verifies", file=out)


def _next_manifest(previous: Manifest | None, data: bytes, index: int) -> Manifest:
    try:
        new = verify_manifest(data)
        if previous is not None:
            check_successor(previous, new)
    except (DecodeError, InvalidMessage, ProtocolViolation) as exc:
        what = "the first manifest" if previous is None else "a valid successor manifest"
        raise AuditFailure(f"entry {index} is not {what}: {exc}") from None
    return new


def _check_access(entry: object, index: int, w: _Warrants) -> None:
    """Unsealings open their warrant's commitment; receipts name a logged warrant (other
    entry types are counted only)."""
    if isinstance(entry, WarrantCommitment):
        if entry.warrant_id in w.committed:
            raise AuditFailure(f"entry {index} logs warrant {entry.warrant_id.hex()} twice")
        w.committed[entry.warrant_id] = entry
    elif isinstance(entry, WarrantUnsealing):
        commitment = w.committed.get(entry.warrant_id)
        if commitment is None:
            raise AuditFailure(f"entry {index} unseals a warrant that was never logged")
        try:
            entry.check_opens(commitment)
        except InvalidMessage:
            raise AuditFailure(
                f"entry {index} does not open the targets commitment of its warrant"
            ) from None
        w.unsealed.add(entry.warrant_id)
    elif isinstance(entry, AccessReceipt):
        if entry.warrant_id not in w.committed:
            raise AuditFailure(f"entry {index} is an access receipt without a logged warrant")
        w.decrypted[entry.warrant_id] += entry.count


# ----------------------------------------------------------------------------- commands


async def cmd_audit(args: argparse.Namespace) -> int:
    url = args.audit_server or args.server
    if not url:
        raise LocalError("give the server to audit: overt audit --server URL")
    provider_key = None if args.provider_key is None else parse_provider_key(args.provider_key)
    since = None if args.since is None else parse_since(args.since)
    transport = HttpTransport(url)
    try:
        print(f"Auditing the transparency log of {url}…")
        return await audit(LogReader(transport), provider_key=provider_key, since=since)
    finally:
        await transport.aclose()


def _main() -> Any:
    from overt.cli import main  # noqa: PLC0415 - main imports this module

    return main


def _show_time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S")


async def cmd_alarms(args: argparse.Namespace) -> int:
    main = _main()
    async with main.Session(args) as client:
        main._need_account(client, args)
        if args.check:
            print("Checking this account in the transparency log…")
            new = await client.check_log(
                progress=lambda done, total: _progress(sys.stderr, done, total, [-10])
            )
            print(f"{len(new)} new alarm(s).")
        alarms = client.alarms(include_acknowledged=args.all)
        if not alarms:
            print("No unacknowledged alarms." if not args.all else "No alarms.")
            return 0
        for a in alarms:
            where = "" if a.entry_index is None else f" (log entry {a.entry_index})"
            seen = " [acknowledged]" if a.acknowledged else ""
            print(f"#{a.id} [{_show_time(a.detected_at_ms)}] {a.kind}{where}{seen}: {a.detail}")
            if args.evidence:
                for label, text in (("this device's checkpoint", a.ours), ("other", a.theirs)):
                    if text:
                        print(f"  {label}:")
                        print("".join(f"    {line}\n" for line in text.splitlines()), end="")
        if args.ack:
            n = client.acknowledge_alarms([a.id for a in alarms if not a.acknowledged])
            print(f"Acknowledged {n} alarm(s).")
    return 0


def pending_alarms(args: argparse.Namespace) -> int:
    """Unacknowledged alarms of the profile ``args`` names (0 if it has no local state)."""
    path = Path(_main().profile_dir(args))
    if not (path / DB_FILE_NAME).exists():
        return 0
    try:
        store = Store.open(path)
    except OvertError:
        return 0
    try:
        return len(store.alarms())
    finally:
        store.close()


def _warn(args: argparse.Namespace) -> int:
    n = pending_alarms(args)
    if n:
        print(
            f"overt: warning: {n} unacknowledged transparency alarm(s) for profile "
            f"{args.profile!r}: run `overt --profile {args.profile} alarms`",
            file=sys.stderr,
        )
    return n


def with_alarm_warning(run: Run) -> Run:
    """``run`` with the warning line before it (and after, if it found new alarms)."""

    @wraps(run)
    async def wrapped(args: argparse.Namespace) -> int:
        before = _warn(args)
        try:
            return await run(args)
        finally:
            if pending_alarms(args) > before:
                _warn(args)

    wrapped.__dict__["alarm_warning"] = True
    return wrapped


def _leaf_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return [parser]
    return [leaf for a in subs for p in a.choices.values() for leaf in _leaf_parsers(p)]


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``audit`` and ``alarms``, and make every profile command warn about
    unacknowledged alarms. Call it after every other command is registered."""
    c = subparsers.add_parser(
        "audit", help="verify a server's transparency log end to end (no account needed)"
    )
    c.add_argument("--server", dest="audit_server", metavar="URL", help="the server to audit")
    c.add_argument("--provider-key", help="the provider's Ed25519 key (hex or base64)")
    c.add_argument(
        "--since", metavar="SIZE:ROOTHASH", help="a checkpoint seen before: the log must extend it"
    )
    c.set_defaults(run=cmd_audit)

    c = subparsers.add_parser("alarms", help="what this account's transparency checks found")
    c.add_argument("--check", action="store_true", help="check the log now, first")
    c.add_argument("--all", action="store_true", help="acknowledged ones too")
    c.add_argument("--evidence", action="store_true", help="print the checkpoints involved")
    c.add_argument("--ack", action="store_true", help="acknowledge the alarms shown")
    c.set_defaults(run=cmd_alarms)

    for name, parser in subparsers.choices.items():
        for leaf in _leaf_parsers(parser):
            run = leaf.get_default("run")
            if name in {"audit", "alarms"} or run is None or getattr(run, "alarm_warning", False):
                continue
            leaf.set_defaults(run=with_alarm_warning(run))


__all__ = [
    "AuditFailure",
    "add_commands",
    "audit",
    "cmd_alarms",
    "cmd_audit",
    "parse_provider_key",
    "parse_since",
    "pending_alarms",
    "with_alarm_warning",
]
