"""``overt notices`` and what ``status``, ``inbox`` and ``listen`` say about lawful access.

``overt notices [--check]`` lists every warrant naming this account that was unsealed in the
transparency log (after reading the log now, with ``--check``): which court, the windows,
the notification date, where the unsealing is in the log and how many messages the
custodians' receipts allow to have been decrypted. A notice is shown prominently, once, by
the first of ``status``, ``inbox``, ``listen`` or ``notices`` that sees it
(:func:`show_new_notices`); ``notices`` lists them all afterwards.

``status`` adds the access policy in force and the escrow epoch a message sent now would use
(:func:`print_access`), learnt from the log.

This module only parses arguments, calls :mod:`overt.client` and prints.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import TextIO

from overt.client import Client, Notice
from overt.errors import LocalError, RemoteError

BANNER = "!" * 78


def _day(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def _wrap(text: str, width: int = 76) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return [*lines, line] if line else lines


def print_notice(notice: Notice, out: TextIO, *, prominent: bool) -> None:
    """One notice: a banner around it when it is new."""
    if prominent:
        print(BANNER, file=out)
        print("NOTICE: your account was named in a court warrant, now unsealed", file=out)
    for line in _wrap(notice.describe()):
        print(f"  {line}", file=out)
    print(f"  warrant id: {notice.warrant_id.hex()}", file=out)
    if prominent:
        print(BANNER, file=out)


def show_new_notices(client: Client, out: TextIO | None = None) -> int:
    """Print the notices not shown yet, prominently, and mark them shown; how many."""
    if not client.is_active:
        return 0
    out = out or sys.stdout
    new = client.notices(new_only=True)
    for notice in new:
        print_notice(notice, out, prominent=True)
    if new:
        out.flush()
        client.mark_notices_shown(new)
    return len(new)


async def print_access(client: Client, out: TextIO | None = None) -> None:
    """The access policy in force and the escrow epoch in use (for ``overt status``)."""
    out = out or sys.stdout
    try:
        print(f"access:  {await client.policy_description()}", file=out)
        if not client.is_active:
            return
        epoch = await client.access_epoch()
    except RemoteError as exc:
        print(f"access:  unknown ({exc})", file=out)
        return
    except LocalError as exc:
        print(f"epoch:   {exc}", file=out)
        return
    if epoch is not None:
        where = "given by the caller"
        if epoch.log_index >= 0:
            destroyed = _day(epoch.retain_until)
            where = f"key from log entry {epoch.log_index}, shares destroyed {destroyed}"
        print(f"epoch:   escrow epoch {epoch.epoch} ({where})", file=out)
    elif (await client.policy_description()).startswith("exceptional access"):
        print("epoch:   none live in the log yet: nothing can be sent until the custodians "
              "make one", file=out)  # fmt: skip
    n = len(client.notices())
    print(f"notices: {n} (overt notices)" if n else "notices: none", file=out)


async def cmd_notices(args: argparse.Namespace) -> int:
    from overt.cli.main import Session, _need_account  # noqa: PLC0415 - main imports this module

    async with Session(args) as client:
        _need_account(client, args)
        if args.check:
            await client.check_log()
        notices = client.notices()
        if not notices:
            print("No notices: no unsealed warrant in the log names this account.")
            return 0
        for notice in notices:
            print_notice(notice, sys.stdout, prominent=notice.new)
        client.mark_notices_shown()
    return 0


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``notices``."""
    c = subparsers.add_parser(
        "notices", help="unsealed warrants that named this account (lawful-access notices)"
    )
    c.add_argument("--check", action="store_true", help="read the transparency log first")
    c.set_defaults(run=cmd_notices)


__all__ = ["add_commands", "cmd_notices", "print_access", "print_notice", "show_new_notices"]
