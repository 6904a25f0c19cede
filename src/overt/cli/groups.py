"""``overt group …`` (group conversations) and ``overt chat --group GROUP``.

``overt group create NAME --member BOB --member CAROL`` makes a group of this account (its
admin) and the members, with every device of each; ``add``, ``remove`` and ``rename`` change it
(admins only, from the device that holds the account key); ``leave`` leaves it; ``send``
writes to it; ``attach GROUP FILE`` sends a file (encrypted and uploaded once, one group
message for every member; ``overt save GROUP MESSAGE-ID`` opens a received one); ``list``,
``members`` and ``history`` show what this device knows; ``report`` reports messages received
in it (without ids it lists them). A group is named by its name, its id (as ``overt group
list`` prints it) or a prefix of the id of at least four characters. New group messages also
appear in ``overt inbox`` and ``overt listen``.

This module only parses arguments, calls :class:`overt.client.Client` and prints; errors are
the client's typed errors, printed by :func:`overt.cli.main.main` (exit status 1).
"""

from __future__ import annotations

import argparse
import contextlib
from argparse import ArgumentParser
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from overt.cli.chat import CHAT_HISTORY_MESSAGES, converse
from overt.cli.safety import REPORT_LOOKUP_MESSAGES, add_report_options, pick_received
from overt.client import Client, GroupInfo
from overt.client.model import Message
from overt.client.reports import report_group
from overt.errors import LocalError

#: What a command runs with the parsed arguments (its exit status).
Runner = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]


def _when(ms: int | None) -> str:
    if ms is None:
        return "before this device joined"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone().strftime("%Y-%m-%d %H:%M")


def describe(info: GroupInfo) -> str:
    """One group as a line: name, id, version, members, and the status if not a member."""
    state = "" if info.active else f" [{info.status}]"
    return f"{info.name} (id {info.ref}, version {info.version}): {', '.join(info.members)}{state}"


@contextlib.asynccontextmanager
async def _session(args: argparse.Namespace, *, sync: bool = True) -> AsyncIterator[Client]:
    """The profile's client, with an account; with ``sync``, after fetching new mail (so
    that a change or a send starts from the latest view and keys)."""
    from overt.cli.main import Session, _need_account  # noqa: PLC0415 - main imports us

    async with Session(args) as client:
        _need_account(client, args)
        if sync:
            await client.sync()
        yield client


async def cmd_group_create(args: argparse.Namespace) -> int:
    async with _session(args, sync=False) as client:
        info = await client.create_group(args.name, args.member or [])
        print(f"Created group {info.name!r} with {', '.join(info.members)}.")
        print(f"Group id: {info.ref}")
    return 0


async def cmd_group_add(args: argparse.Namespace) -> int:
    async with _session(args) as client:
        info = await client.add_members(args.group, args.names)
        print(f"Added {', '.join(args.names)}: {describe(info)}")
    return 0


async def cmd_group_remove(args: argparse.Namespace) -> int:
    async with _session(args) as client:
        info = await client.remove_members(args.group, args.names)
        print(f"Removed {', '.join(args.names)}: {describe(info)}")
        print("Every remaining device uses new keys from now on; the removed read nothing new.")
    return 0


async def cmd_group_rename(args: argparse.Namespace) -> int:
    async with _session(args) as client:
        info = await client.rename_group(args.group, args.name)
        print(f"Renamed: {describe(info)}")
    return 0


async def cmd_group_leave(args: argparse.Namespace) -> int:
    async with _session(args) as client:
        info = await client.leave_group(args.group)
        print(f"You left {info.name!r}; this device no longer reads or sends there.")
    return 0


async def cmd_group_send(args: argparse.Namespace) -> int:
    from overt.cli.main import _time  # noqa: PLC0415

    async with _session(args) as client:
        msg = await client.send_group(args.group, " ".join(args.text))
        print(f"Sent to {msg.peer} at {_time(msg.sent_at_ms)}.")
    return 0


async def cmd_group_attach(args: argparse.Namespace) -> int:
    from overt.cli.main import send_file  # noqa: PLC0415

    async with _session(args) as client:  # encrypted and uploaded once, for every member
        return await send_file(
            args,
            lambda path, caption: client.send_group_attachment(args.group, path, caption=caption),
        )


async def cmd_group_list(args: argparse.Namespace) -> int:
    async with _session(args) as client:
        groups = await client.groups()
        if not groups:
            print("No groups yet: `overt group create NAME --member ACCOUNT` makes one.")
        for info in groups:
            print(describe(info))
    return 0


async def cmd_group_members(args: argparse.Namespace) -> int:
    async with _session(args) as client:
        for m in await client.group_members(args.group):
            role = " (admin)" if m.admin else ""
            devices = ", ".join(str(d) for d in m.devices)
            print(
                f"{m.name}{role}: devices {devices}; member since version {m.since_version} "
                f"({_when(m.since_ms)})"
            )
    return 0


async def cmd_group_history(args: argparse.Namespace) -> int:
    from overt.cli.main import show  # noqa: PLC0415

    async with _session(args, sync=False) as client:
        new = await client.sync()
        print(f"{len(new)} new message(s).")
        for m in await client.group_history(args.group, limit=args.limit):
            print(show(m))
    return 0


async def cmd_group_report(args: argparse.Namespace) -> int:
    async with _session(args) as client:
        history = await client.group_history(args.group, limit=REPORT_LOOKUP_MESSAGES)
        heading = f"Messages received in {args.group} (report with their ids):"
        ids = pick_received(history, args, heading)
        if ids is None:
            return 0
        report_id = await report_group(
            client, args.group, ids, category=args.category, comment=args.comment or "",
            reveal_attachments=not args.no_attachments,
        )  # fmt: skip
        print(f"Reported {len(ids)} message(s); report {report_id}.")
    return 0


async def chat_group(args: argparse.Namespace) -> int:
    """``overt chat --group GROUP``: the group's recent history, then live messages; each
    line typed is sent to the group."""
    async with _session(args) as client:
        info = await client.group_info(args.group)
        await converse(
            client,
            await client.group_history(info.ref, limit=CHAT_HISTORY_MESSAGES),
            f"Chatting in {info.name!r} ({', '.join(info.members)}).",
            belongs=lambda m: m.group_id == info.group_id,
            send=lambda text: client.send_group(info.ref, text),
        )
    return 0


async def messages_with(client: Client, peer: str, *, limit: int) -> list[Message]:
    """The last ``limit`` messages of the conversation with the account ``peer`` and of the
    group ``peer`` names (its name, id or id prefix), whichever exist (``overt save``)."""
    found: list[Message] = []
    misses: list[LocalError] = []
    try:
        found += await client.history(peer, limit=limit)
    except LocalError as exc:  # not an account name
        misses.append(exc)
    try:
        found += await client.group_history(peer, limit=limit)
    except LocalError as exc:  # no such group (or several)
        misses.append(exc)
    if len(misses) == 2:
        raise LocalError(f"{misses[1]} ({peer!r} is not an account name either)")
    return found


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``overt group …``."""
    grp = sub.add_parser("group", help="group conversations").add_subparsers(
        dest="sub", required=True, metavar="ACTION"
    )

    def command(name: str, help: str, run: Runner, *, group: bool = True) -> ArgumentParser:
        c = grp.add_parser(name, help=help)
        if group:
            c.add_argument("group", help="name or id")
        c.set_defaults(run=run)
        return c

    c = command("create", "create a group (you are its admin)", cmd_group_create, group=False)
    c.add_argument("name", help="the group's name")
    c.add_argument(
        "--member", action="append", metavar="ACCOUNT", help="a member (repeat for several)"
    )
    command("add", "add members (admins)", cmd_group_add).add_argument(
        "names", nargs="+", metavar="ACCOUNT"
    )
    command(
        "remove", "remove members (admins); they read nothing new", cmd_group_remove
    ).add_argument("names", nargs="+", metavar="ACCOUNT")
    command("rename", "rename a group (admins)", cmd_group_rename).add_argument(
        "name", help="the new name"
    )
    command("leave", "leave a group", cmd_group_leave)
    command("send", "send a text message to a group", cmd_group_send).add_argument(
        "text", nargs="+"
    )
    c = command("attach", "send a file to a group (encrypted once for all)", cmd_group_attach)
    c.add_argument("file")
    c.add_argument("--caption")
    command("list", "the groups this device is or was in", cmd_group_list, group=False)
    command("members", "who is in a group, and since when", cmd_group_members)
    c = command("report", "report messages received in a group (verifiable)", cmd_group_report)
    add_report_options(c)
    command(
        "history", "fetch new messages and show a group's history", cmd_group_history
    ).add_argument("--limit", type=int, default=50)


__all__ = ["add_commands", "chat_group", "describe", "messages_with"]
