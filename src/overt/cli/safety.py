"""``overt report`` (a user reports messages) and ``overt console`` (moderator accounts).

``overt report PEER MESSAGE-ID [MESSAGE-ID...] --category C [--comment TEXT]`` reports
messages received from ``PEER`` (ids as ``overt report PEER`` lists them; a unique prefix of
the hex id is enough) through :func:`overt.client.reports.report`; without ids it lists the
messages received from ``PEER`` with their ids.

``overt console add-moderator NAME [--role moderator|lead]`` creates a console account in the
server's database (``--data-dir``, default ``$OVERT_HOME/server``), reading the password from
the terminal (twice) or, when stdin is not a terminal, from its first line;
``overt console moderators`` lists them. Run them on the server's machine, as its user
(``--database-url`` or ``$OVERT_DATABASE_URL`` for a PostgreSQL deployment).

This module only parses arguments, calls the client or the console's service and prints.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

from overt.client.reports import REPORT_CATEGORIES, report
from overt.errors import LocalError

if TYPE_CHECKING:
    from overt.client.model import Message
    from overt.storage import Storage

#: How far back ``overt report`` looks for the messages named (per peer).
REPORT_LOOKUP_MESSAGES: Final = 5000
#: Messages ``overt report PEER`` lists.
REPORT_LIST_MESSAGES: Final = 30


def _ids(wanted: list[str], candidates: list[bytes]) -> list[bytes]:
    out = []
    for text in wanted:
        prefix = text.strip().lower()
        if len(prefix) < 4 or any(c not in "0123456789abcdef" for c in prefix):
            raise LocalError(f"{text!r} is not a message id (at least 4 hex digits)")
        found = [c for c in candidates if c.hex().startswith(prefix)]
        if len(found) != 1:
            what = "no received message" if not found else "several messages"
            raise LocalError(f"{what} with an id starting {prefix!r}: give more digits")
        out.append(found[0])
    return out


def pick_received(
    history: Sequence[Message], args: argparse.Namespace, heading: str
) -> list[bytes] | None:
    """The ids of the messages ``args.message`` names among those of ``history`` this device
    received (``overt report`` and ``overt group report``); without any, print ``heading`` and
    those messages with their ids (the newest last) and return None."""
    from overt.cli.main import show  # noqa: PLC0415 - main imports us

    received = [m for m in history if not m.outgoing]
    if not args.message:
        print(heading)
        for m in received[-REPORT_LIST_MESSAGES:]:
            print(f"  {m.message_id.hex()[:12]}  {show(m)}")
        return None
    if args.category is None:
        raise LocalError(f"choose a --category: {', '.join(REPORT_CATEGORIES)}")
    return _ids(args.message, [m.message_id for m in received])


def add_report_options(c: argparse.ArgumentParser) -> None:
    """The options ``overt report`` and ``overt group report`` share (after the target)."""
    c.add_argument("message", nargs="*", help="message ids (a prefix is enough; none: list them)")
    c.add_argument("--category", choices=REPORT_CATEGORIES)
    c.add_argument("--comment", help="what the moderators should know (optional)")
    c.add_argument(
        "--no-attachments",
        action="store_true",
        help="report attachments by their hashes only (do not reveal their content)",
    )


async def cmd_report(args: argparse.Namespace) -> int:
    from overt.cli.main import Session, _need_account  # noqa: PLC0415 - main imports us

    async with Session(args) as client:
        _need_account(client, args)
        history = await client.history(args.peer, limit=REPORT_LOOKUP_MESSAGES)
        heading = f"Messages received from {args.peer} (newest last); report with their ids:"
        ids = pick_received(history, args, heading)
        if ids is None:
            return 2
        print(f"Reporting {len(ids)} message(s) from {args.peer} as {args.category}…")
        report_id = await report(
            client, args.peer, ids, category=args.category, comment=args.comment or "",
            reveal_attachments=not args.no_attachments,
        )  # fmt: skip
        print(f"Reported. The server verified the messages are what {args.peer} sent you and")
        print(f"queued them for its moderators (report {report_id}).")
    return 0


def _data_dir(args: argparse.Namespace) -> Path:
    from overt.cli.main import home_dir  # noqa: PLC0415 - main imports us

    return Path(args.data_dir or home_dir(args.home) / "server")


async def _open_storage(args: argparse.Namespace) -> Storage:
    """The server's storage: PostgreSQL if ``--database-url`` (or ``$OVERT_DATABASE_URL``)
    names one, else ``server.db`` in its data directory."""
    from overt.server.config import DATABASE_FILE  # noqa: PLC0415 - server side only
    from overt.storage import open_postgres, open_sqlite  # noqa: PLC0415

    url = args.database_url or os.environ.get("OVERT_DATABASE_URL")
    if url:
        return await open_postgres(url, min_size=1, max_size=1)
    path = _data_dir(args) / DATABASE_FILE
    if not path.exists():
        raise LocalError(f"no server database at {path}: pass the server's --data-dir")
    return await open_sqlite(path)


def _password() -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password for the new moderator: ")
    if getpass.getpass("Again: ") != first:
        raise LocalError("the two passwords differ; nothing was changed")
    return first


async def cmd_add_moderator(args: argparse.Namespace) -> int:
    from overt.console.service import Role, create_moderator  # noqa: PLC0415 - server side only
    from overt.crypto import SystemRng  # noqa: PLC0415
    from overt.storage import AlreadyExists  # noqa: PLC0415

    password = _password()
    storage = await _open_storage(args)
    try:
        if storage.moderators is None or storage.reports is None:
            raise LocalError("this database has no moderation tables")
        try:
            await create_moderator(
                storage.moderators, storage.reports, args.name, Role(args.role), password,
                rng=SystemRng(), now=time.time_ns() // 1_000_000,
            )  # fmt: skip
        except AlreadyExists:
            raise LocalError(f"a moderator named {args.name!r} exists already") from None
    finally:
        await storage.close()
    print(f"Moderator {args.name!r} ({args.role}) can now sign in at /console.")
    return 0


async def cmd_moderators(args: argparse.Namespace) -> int:
    storage = await _open_storage(args)
    try:
        found = () if storage.moderators is None else await storage.moderators.all()
    finally:
        await storage.close()
    for m in found:
        print(f"{m.name}  {m.role}{'  (disabled)' if m.disabled else ''}")
    if not found:
        print("No moderators yet: overt console add-moderator NAME --role lead")
    return 0


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``report`` and ``console``."""
    c = subparsers.add_parser("report", help="report abusive messages to the provider")
    c.add_argument("peer", help="the account that sent them")
    add_report_options(c)
    c.set_defaults(run=cmd_report)

    console = subparsers.add_parser("console", help="moderation console accounts (server side)")
    sub = console.add_subparsers(dest="sub", required=True)
    c = sub.add_parser("add-moderator", help="create a moderator (password from stdin)")
    c.add_argument("name", help="login name: a-z 0-9 _ . -")
    c.add_argument("--role", choices=["moderator", "lead"], default="moderator")
    c.set_defaults(run=cmd_add_moderator)
    c = sub.add_parser("moderators", help="list moderators")
    c.set_defaults(run=cmd_moderators)
    for leaf in sub.choices.values():
        leaf.add_argument("--data-dir", help="the server's data directory ($OVERT_HOME/server)")
        leaf.add_argument(
            "--database-url", metavar="DSN", help="the server's PostgreSQL ($OVERT_DATABASE_URL)"
        )


__all__ = [
    "add_commands",
    "add_report_options",
    "cmd_add_moderator",
    "cmd_moderators",
    "cmd_report",
    "pick_received",
]
