"""``overt group …`` (group conversations) and ``overt chat --group GROUP``.

``overt group create NAME --member BOB --member CAROL`` makes a group of this account (its
admin) and the members, with every device of each; ``add``, ``remove`` and ``rename`` change it
(admins only, from the device that holds the account key); ``leave`` leaves it; ``send``
writes to it; ``list``, ``members`` and ``history`` show what this device knows; ``report``
reports messages received in it (without ids it lists them). A group is
named by its name, its id (as ``overt group list`` prints it) or a prefix of the id of at
least four characters. New group messages also appear in ``overt inbox`` and ``overt listen``.

This module only parses arguments, calls :class:`overt.client.Client` and prints; errors are
the client's typed errors, printed by :func:`overt.cli.main.main` (exit status 1).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime

from overt.cli.safety import REPORT_LIST_MESSAGES, REPORT_LOOKUP_MESSAGES
from overt.client import GroupInfo
from overt.client.reports import REPORT_CATEGORIES, report_group
from overt.errors import LocalError


def _when(ms: int | None) -> str:
    if ms is None:
        return "before this device joined"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone().strftime("%Y-%m-%d %H:%M")


def describe(info: GroupInfo) -> str:
    """One group as a line: name, id, version, members, and the status if not a member."""
    state = "" if info.active else f" [{info.status}]"
    return f"{info.name} (id {info.ref}, version {info.version}): {', '.join(info.members)}{state}"


async def cmd_group_create(args: argparse.Namespace) -> int:
    from overt.cli.main import Session, _need_account  # noqa: PLC0415 - main imports us

    async with Session(args) as client:
        _need_account(client, args)
        info = await client.create_group(args.name, args.member or [])
        print(f"Created group {info.name!r} with {', '.join(info.members)}.")
        print(f"Group id: {info.ref}")
    return 0


async def cmd_group_add(args: argparse.Namespace) -> int:
    from overt.cli.main import Session, _need_account  # noqa: PLC0415

    async with Session(args) as client:
        _need_account(client, args)
        await client.sync()  # apply what changed meanwhile first
        info = await client.add_members(args.group, args.names)
        print(f"Added {', '.join(args.names)}: {describe(info)}")
    return 0


async def cmd_group_remove(args: argparse.Namespace) -> int:
    from overt.cli.main import Session, _need_account  # noqa: PLC0415

    async with Session(args) as client:
        _need_account(client, args)
        await client.sync()
        info = await client.remove_members(args.group, args.names)
        print(f"Removed {', '.join(args.names)}: {describe(info)}")
        print("Every remaining device uses new keys from now on; the removed read nothing new.")
    return 0


async def cmd_group_rename(args: argparse.Namespace) -> int:
    from overt.cli.main import Session, _need_account  # noqa: PLC0415

    async with Session(args) as client:
        _need_account(client, args)
        await client.sync()
        info = await client.rename_group(args.group, args.name)
        print(f"Renamed: {describe(info)}")
    return 0


async def cmd_group_leave(args: argparse.Namespace) -> int:
    from overt.cli.main import Session, _need_account  # noqa: PLC0415

    async with Session(args) as client:
        _need_account(client, args)
        await client.sync()
        info = await client.leave_group(args.group)
        print(f"You left {info.name!r}; this device no longer reads or sends there.")
    return 0


async def cmd_group_send(args: argparse.Namespace) -> int:
    from overt.cli.main import Session, _need_account, _time  # noqa: PLC0415

    async with Session(args) as client:
        _need_account(client, args)
        await client.sync()  # the latest view and keys before sending
        msg = await client.send_group(args.group, " ".join(args.text))
        print(f"Sent to {msg.peer} at {_time(msg.sent_at_ms)}.")
    return 0


async def cmd_group_list(args: argparse.Namespace) -> int:
    from overt.cli.main import Session, _need_account  # noqa: PLC0415

    async with Session(args) as client:
        _need_account(client, args)
        await client.sync()
        groups = await client.groups()
        if not groups:
            print("No groups yet: `overt group create NAME --member ACCOUNT` makes one.")
        for info in groups:
            print(describe(info))
    return 0


async def cmd_group_members(args: argparse.Namespace) -> int:
    from overt.cli.main import Session, _need_account  # noqa: PLC0415

    async with Session(args) as client:
        _need_account(client, args)
        await client.sync()
        for m in await client.group_members(args.group):
            role = " (admin)" if m.admin else ""
            devices = ", ".join(str(d) for d in m.devices)
            print(
                f"{m.name}{role}: devices {devices}; member since version {m.since_version} "
                f"({_when(m.since_ms)})"
            )
    return 0


async def cmd_group_history(args: argparse.Namespace) -> int:
    from overt.cli.main import Session, _need_account, show  # noqa: PLC0415

    async with Session(args) as client:
        _need_account(client, args)
        new = await client.sync()
        print(f"{len(new)} new message(s).")
        for m in await client.group_history(args.group, limit=args.limit):
            print(show(m))
    return 0


async def cmd_group_report(args: argparse.Namespace) -> int:
    from overt.cli.main import Session, _need_account, show  # noqa: PLC0415
    from overt.cli.safety import _ids  # noqa: PLC0415 - the same id prefixes as `report`

    async with Session(args) as client:
        _need_account(client, args)
        await client.sync()
        history = await client.group_history(args.group, limit=REPORT_LOOKUP_MESSAGES)
        received = [m for m in history if not m.outgoing]
        if not args.message:
            print(f"Messages received in {args.group} (report with their ids):")
            for m in received[-REPORT_LIST_MESSAGES:]:
                print(f"  {m.message_id.hex()[:12]}  {show(m)}")
            return 0
        if args.category is None:
            raise LocalError(f"choose a --category: {', '.join(REPORT_CATEGORIES)}")
        ids = _ids(args.message, [m.message_id for m in received])
        report_id = await report_group(
            client, args.group, ids, category=args.category, comment=args.comment or ""
        )
        print(f"Reported {len(ids)} message(s); report {report_id}.")
    return 0


async def chat_group(args: argparse.Namespace) -> int:
    """``overt chat --group GROUP``: the group's recent history, then live messages; each
    line typed is sent to the group."""
    from overt.cli.main import Session, _need_account, show  # noqa: PLC0415

    async with Session(args) as client:
        _need_account(client, args)
        await client.sync()
        history = await client.group_history(args.group, limit=20)
        for m in history:
            print(show(m))
        info = await client.group_info(args.group)
        print(
            f"Chatting in {info.name!r} ({', '.join(info.members)}). Type a message and Enter; "
            "/quit to leave.",
            flush=True,
        )

        async def incoming() -> None:
            async for m in client.listen():
                if m.group_id == info.group_id:
                    print(show(m), flush=True)

        listener = asyncio.create_task(incoming())
        loop = asyncio.get_running_loop()
        try:
            while True:
                line = await loop.run_in_executor(None, sys.stdin.readline)
                if not line or line.strip() in {"/quit", "/exit"}:
                    break
                if line.strip():
                    await client.send_group(info.ref, line.rstrip("\n"))
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``overt group …``."""
    grp = sub.add_parser("group", help="group conversations").add_subparsers(
        dest="sub", required=True, metavar="ACTION"
    )
    c = grp.add_parser("create", help="create a group (you are its admin)")
    c.add_argument("name", help="the group's name")
    c.add_argument(
        "--member", action="append", metavar="ACCOUNT", help="a member (repeat for several)"
    )
    c.set_defaults(run=cmd_group_create)

    c = grp.add_parser("add", help="add members (admins)")
    c.add_argument("group", help="name or id")
    c.add_argument("names", nargs="+", metavar="ACCOUNT")
    c.set_defaults(run=cmd_group_add)

    c = grp.add_parser("remove", help="remove members (admins); they read nothing new")
    c.add_argument("group", help="name or id")
    c.add_argument("names", nargs="+", metavar="ACCOUNT")
    c.set_defaults(run=cmd_group_remove)

    c = grp.add_parser("rename", help="rename a group (admins)")
    c.add_argument("group", help="name or id")
    c.add_argument("name", help="the new name")
    c.set_defaults(run=cmd_group_rename)

    c = grp.add_parser("leave", help="leave a group")
    c.add_argument("group", help="name or id")
    c.set_defaults(run=cmd_group_leave)

    c = grp.add_parser("send", help="send a text message to a group")
    c.add_argument("group", help="name or id")
    c.add_argument("text", nargs="+")
    c.set_defaults(run=cmd_group_send)

    c = grp.add_parser("list", help="the groups this device is or was in")
    c.set_defaults(run=cmd_group_list)

    c = grp.add_parser("members", help="who is in a group, and since when")
    c.add_argument("group", help="name or id")
    c.set_defaults(run=cmd_group_members)

    c = grp.add_parser("report", help="report messages received in a group (verifiable)")
    c.add_argument("group", help="name or id")
    c.add_argument("message", nargs="*", help="message ids (a prefix is enough); none: list them")
    c.add_argument("--category", choices=REPORT_CATEGORIES)
    c.add_argument("--comment")
    c.set_defaults(run=cmd_group_report)

    c = grp.add_parser("history", help="fetch new messages and show a group's history")
    c.add_argument("group", help="name or id")
    c.add_argument("--limit", type=int, default=50)
    c.set_defaults(run=cmd_group_history)


__all__ = ["add_commands", "chat_group", "describe"]
