"""``overt matching``: the list's way from a file to the log (docs/matching.md §7).

Operator (on the server's machine, as its user; ``--data-dir`` and ``--database-url`` as for
``overt console``)::

    overt matching prepare LIST-FILE --out PACKAGE [--previous OLD-PACKAGE]
    overt matching publish PACKAGE

Organisations (each on its own machine)::

    overt matching keygen --out ORG.key              # prints the public key for the manifest
    overt matching sign PACKAGE --list VETTED-LIST --key ORG.key --name "Hotline A"

``prepare`` imports the list (PDQ hex per line, ThreatExchange or HMA CSV), builds the blinded
table under the server's matching key with the manifest's parameters, and writes the package
directory: ``list.txt``, ``table.bin``, ``opening.bin`` (for the organisations only),
``statement.json`` (and ``delta.bin``). A later version is prepared from the previous package
(``--previous``) so that it ships as a delta. ``sign`` checks the package against the list the
organisation vetted (every key, the DLEQ proofs, the statement) and only then writes
``signatures/<name>.json``. ``publish`` checks the signatures against the manifest's list
signers and quorum, appends the entry (type 8) to the transparency log and stores the version;
the running server serves it at once.

This module parses arguments, reads and writes files and calls the matching core and
:mod:`overt.server.matching`.
"""

from __future__ import annotations

import argparse
import os
import re
import time
from pathlib import Path
from typing import Final

from overt.crypto import Ed25519PrivateKey, SystemRng
from overt.errors import DecodeError, InvalidMessage, LocalError
from overt.safety.matching import HashList, import_list
from overt.safety.matching.package import (
    ListPackage,
    ListSignature,
    Statement,
    assemble,
    check_and_sign,
    decode_opening,
    encode_list,
    encode_opening,
    prepare,
)
from overt.safety.matching.table import BlindedTable, TableDelta
from overt.wire.b64 import b64e

LIST_FILE: Final = "list.txt"
TABLE_FILE: Final = "table.bin"
OPENING_FILE: Final = "opening.bin"
STATEMENT_FILE: Final = "statement.json"
DELTA_FILE: Final = "delta.bin"
SIGNATURES_DIR: Final = "signatures"
MAX_LIST_FILE_BYTES: Final = 1 << 30
_NAME_FILE: Final = re.compile(r"[^A-Za-z0-9._-]+")


def _read(path: Path, limit: int = 1 << 32) -> bytes:
    try:
        with path.open("rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        raise LocalError(f"cannot read {path}: {e.strerror}") from None
    if len(data) > limit:
        raise LocalError(f"{path} is larger than {limit} bytes")
    return data


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    except OSError as e:
        raise LocalError(f"cannot write {path}: {e.strerror}") from None


def _hash_list_file(path: Path) -> tuple[HashList, str]:
    try:
        text = _read(path, MAX_LIST_FILE_BYTES).decode("utf-8")
    except UnicodeDecodeError:
        raise LocalError(f"{path} is not UTF-8 text") from None
    hashes, report = import_list(text)
    summary = (
        f"{report.accepted} hashes ({report.duplicates} duplicates, {report.low_quality} below "
        f"quality 50, {report.other_signal_types} of other signal types skipped)"
    )
    return hashes, summary


def read_package(directory: Path) -> ListPackage:
    """A package directory as ``prepare`` wrote it."""
    hashes, _ = import_list(_read(directory / LIST_FILE).decode("utf-8"))
    delta_path = directory / DELTA_FILE
    return ListPackage(
        hashes,
        BlindedTable.decode(_read(directory / TABLE_FILE)),
        decode_opening(_read(directory / OPENING_FILE)),
        Statement.from_json(_read(directory / STATEMENT_FILE)),
        TableDelta.decode(_read(delta_path)) if delta_path.exists() else None,
    )


def write_package(package: ListPackage, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / SIGNATURES_DIR).mkdir(exist_ok=True)
    _write(directory / LIST_FILE, encode_list(package.hashes).encode())
    _write(directory / TABLE_FILE, package.table.encode())
    _write(directory / OPENING_FILE, encode_opening(package.opening))
    _write(directory / STATEMENT_FILE, package.statement.to_json())
    if package.delta is not None:
        _write(directory / DELTA_FILE, package.delta.encode())


def _server_side(args: argparse.Namespace) -> tuple[Path, object]:
    from overt.cli.safety import _data_dir  # noqa: PLC0415
    from overt.server.deployment import DEPLOYMENT_FILE, read_deployment  # noqa: PLC0415

    data_dir = _data_dir(args)
    deployment = read_deployment(Path(args.deployment or data_dir / DEPLOYMENT_FILE))
    if not deployment.safety.matching.enabled:
        raise LocalError(
            "the deployment turns matching off: set safety.matching in deployment.json (and "
            "restart the server so that the new manifest is logged) first"
        )
    return data_dir, deployment


async def cmd_prepare(args: argparse.Namespace) -> int:
    from overt.safety.matching.deployment import psi_params  # noqa: PLC0415
    from overt.server.deployment import Deployment  # noqa: PLC0415
    from overt.server.matching import load_or_create_matching_key  # noqa: PLC0415

    data_dir, deployment = _server_side(args)
    assert isinstance(deployment, Deployment)
    rng = SystemRng()
    key = load_or_create_matching_key(data_dir, rng, create=args.previous is None)
    hashes, summary = _hash_list_file(Path(args.list))
    print(f"Imported {summary}.")
    lsh = psi_params(deployment.safety.matching).lsh
    previous = None
    list_id = rng.random_bytes(32)
    if args.previous:
        old = read_package(Path(args.previous))
        previous = (old.table, old.opening)
        list_id = old.table.header.list_id
    package = prepare(hashes, key, rng, list_id=list_id, lsh=lsh, previous=previous)
    out = Path(args.out)
    write_package(package, out)
    s = package.statement
    print(f"Prepared list version {s.version} in {out} ({package.table.nbytes()} table bytes).")
    print(f"  table commitment: {b64e(s.table_commitment)}")
    print(f"  list digest:      {b64e(s.list_digest)}")
    print("Give the package to the organisations named in the manifest: each runs")
    print("  overt matching sign PACKAGE --list THEIR-VETTED-LIST --key ORG.key --name NAME")
    print("and hands back its signatures/<name>.json; then run overt matching publish PACKAGE.")
    return 0


async def cmd_keygen(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.exists():
        raise LocalError(f"{out} exists already; an organisation's key is never overwritten")
    key = Ed25519PrivateKey.generate(SystemRng())
    _write(out, key.export_secret(), 0o600)
    print(f"Signing key written to {out} (keep it offline).")
    print(f"Public key for the manifest's list_signers: {b64e(key.public_key.raw)}")
    return 0


async def cmd_sign(args: argparse.Namespace) -> int:
    package_dir = Path(args.package)
    package = read_package(package_dir)
    vetted, summary = _hash_list_file(Path(args.list))
    raw = _read(Path(args.key), 64)
    if len(raw) != 32:
        raise LocalError(f"{args.key} is not an organisation key (overt matching keygen)")
    key = Ed25519PrivateKey.from_secret_bytes(raw)
    print(f"Checking the table against the vetted list ({summary})…")
    try:
        signature = check_and_sign(
            hashes=vetted, table=package.table, opening=package.opening,
            statement=package.statement, key=key, name=args.name,
        )  # fmt: skip
    except InvalidMessage:
        print("REFUSED: the table or the statement is not exactly the vetted list. Not signed.")
        return 1
    name = _NAME_FILE.sub("_", args.name).strip("_") or "signer"
    path = package_dir / SIGNATURES_DIR / f"{name}.json"
    path.parent.mkdir(exist_ok=True)
    _write(path, signature.to_json())
    print(f"The table holds exactly the vetted list. Signed version {package.statement.version}:")
    print(f"  {path}")
    return 0


async def cmd_publish(args: argparse.Namespace) -> int:
    from overt.cli.safety import _open_storage  # noqa: PLC0415
    from overt.server.config import load_or_create_transparency_keys  # noqa: PLC0415
    from overt.server.deployment import Deployment  # noqa: PLC0415
    from overt.server.matching import publish_version  # noqa: PLC0415
    from overt.transparency.log import Log  # noqa: PLC0415

    data_dir, deployment = _server_side(args)
    assert isinstance(deployment, Deployment)
    package_dir = Path(args.package)
    package = read_package(package_dir)
    signatures = []
    for path in sorted((package_dir / SIGNATURES_DIR).glob("*.json")):
        try:
            signatures.append(ListSignature.from_json(_read(path, 4096)))
        except DecodeError as e:
            raise LocalError(f"{path}: {e}") from None
    entry = assemble(package.statement, signatures)
    keys, _ = load_or_create_transparency_keys(data_dir, SystemRng(), create=False)
    storage = await _open_storage(args)
    try:
        if storage.matching is None:
            raise LocalError("this database has no matching tables")
        log = Log(
            storage.log, keys.log, keys.origin, lambda: time.time_ns() // 1_000_000,
            witnesses=deployment.witness_keys,
        )  # fmt: skip
        index = await publish_version(
            store=storage.matching, log=log, policy=deployment.safety.matching,
            package=package, entry=entry, now_ms=time.time_ns() // 1_000_000,
        )  # fmt: skip
    finally:
        await storage.close()
    print(f"Published list version {entry.version} (log entry {index}, signed by "
          f"{len(entry.signatures)} organisations); the server serves it now.")  # fmt: skip
    return 0


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``matching``."""
    matching = subparsers.add_parser(
        "matching", help="known-content matching lists: prepare, sign, publish"
    )
    sub = matching.add_subparsers(dest="sub", required=True)
    c = sub.add_parser("prepare", help="(operator) build the next list version's package")
    c.add_argument("list", help="the list file (PDQ hex per line, ThreatExchange or HMA CSV)")
    c.add_argument("--out", required=True, help="the package directory to write")
    c.add_argument("--previous", help="the previous version's package (to ship a delta)")
    c.set_defaults(run=cmd_prepare)
    server_side = [c]
    c = sub.add_parser("publish", help="(operator) log and serve a signed package")
    c.add_argument("package", help="the package directory with its signatures/")
    c.set_defaults(run=cmd_publish)
    server_side.append(c)
    for leaf in server_side:
        leaf.add_argument("--data-dir", help="the server's data directory ($OVERT_HOME/server)")
        leaf.add_argument("--deployment", help="deployment.json (default: in the data directory)")
        leaf.add_argument(
            "--database-url", metavar="DSN", help="the server's PostgreSQL ($OVERT_DATABASE_URL)"
        )
    c = sub.add_parser("keygen", help="(organisation) make a list-signing key")
    c.add_argument("--out", required=True, help="where to write the private key (mode 0600)")
    c.set_defaults(run=cmd_keygen)
    c = sub.add_parser("sign", help="(organisation) check a package against a vetted list, sign")
    c.add_argument("package", help="the package directory the provider handed over")
    c.add_argument("--list", required=True, help="the list this organisation vetted")
    c.add_argument("--key", required=True, help="the organisation's key file (keygen)")
    c.add_argument("--name", required=True, help="the organisation's name as in the manifest")
    c.set_defaults(run=cmd_sign)


__all__ = ["add_commands", "read_package", "write_package"]
