"""The ``overt`` command line: every party's tools behind one entry point.

Each user profile is a directory (``$OVERT_HOME/profiles/<name>``, ``~/.overt`` by default)
holding the client's SQLite state and a small ``cli.json`` (the server address). Several
profiles on one machine let one person try a conversation between two users.

This module only parses arguments, calls :mod:`overt.client` (or starts a service) and prints
what happened; every error a person sees says what went wrong and what to do, and the exit
status is 0 on success, 1 on an error, 2 on a usage mistake.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from overt.cli.access import add_commands as add_access_commands
from overt.cli.audit import add_commands as add_audit_commands
from overt.cli.chat import CHAT_HISTORY_MESSAGES, converse
from overt.cli.groups import add_commands as add_group_commands
from overt.cli.groups import chat_group, messages_with
from overt.cli.matching import add_commands as add_matching_commands
from overt.cli.notices import add_commands as add_notice_commands
from overt.cli.notices import print_access, show_new_notices
from overt.cli.safety import add_commands as add_safety_commands
from overt.client import Client, HttpTransport
from overt.client.model import Direction, Message
from overt.console.config import add_console_arguments
from overt.errors import LocalError, OvertError

DEFAULT_SERVER = "http://127.0.0.1:8000"
DEFAULT_PROFILE = "default"
CONFIG_FILE = "cli.json"
#: How far back ``overt save`` looks for the message named (per conversation or group).
SAVE_LOOKUP_MESSAGES: Final = 1000


# ----------------------------------------------------------------------------- profiles


def home_dir(arg: str | None) -> Path:
    return Path(arg or os.environ.get("OVERT_HOME") or Path.home() / ".overt").expanduser()


def profile_dir(args: argparse.Namespace, name: str | None = None) -> Path:
    return home_dir(args.home) / "profiles" / (name or args.profile)


def _read_config(path: Path) -> dict[str, Any]:
    try:
        data = json.loads((path / CONFIG_FILE).read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise LocalError(f"{path / CONFIG_FILE} is unreadable ({exc}); fix or delete it") from exc
    return data if isinstance(data, dict) else {}


def _write_config(path: Path, data: dict[str, Any]) -> None:
    path.mkdir(parents=True, exist_ok=True)
    tmp = path / (CONFIG_FILE + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path / CONFIG_FILE)


def server_url(args: argparse.Namespace, path: Path) -> str:
    url = args.server or os.environ.get("OVERT_SERVER") or _read_config(path).get("server")
    return str(url or DEFAULT_SERVER)


class Session:
    """An open client for one profile, with its transport; closes both."""

    def __init__(
        self, args: argparse.Namespace, profile: str | None = None, url: str | None = None
    ) -> None:
        self.path = profile_dir(args, profile)
        self.url = url or server_url(args, self.path)
        self._stack = AsyncExitStack()
        self.client: Client

    async def __aenter__(self) -> Client:
        transport = HttpTransport(self.url)
        self._stack.push_async_callback(transport.aclose)
        self.client = await Client.open(self.path, transport)
        self._stack.push_async_callback(self.client.close)
        return self.client

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()


def _need_account(client: Client, args: argparse.Namespace) -> None:
    if not client.is_active:
        raise LocalError(
            f"profile {args.profile!r} has no account yet: run "
            f"`overt --profile {args.profile} account create NAME` (or `device link`)"
        )


# ----------------------------------------------------------------------------- printing


def _time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def show(message: Message) -> str:
    """One message as a line: time, who (and which of their devices), text."""
    if message.direction is Direction.OUTGOING:
        to = f"#{message.peer}" if message.in_group else message.peer
        head = f"[{_time(message.sent_at_ms)}] me → {to}"
    else:
        who = f"{message.sender} (device {message.sender_device})"
        if message.in_group:
            who = f"#{message.peer} {who}"
        head = f"[{_time(message.sent_at_ms)}] {who}"
    text = message.text
    if message.attachment is not None:
        a = message.attachment
        label = a.file_name or "attachment"
        note = f"[file {label}, {a.size} bytes, id {message.message_id.hex()[:12]}]"
        text = f"{text} {note}" if text else note
    return f"{head}: {text}"


# ----------------------------------------------------------------------------- commands


def _from_env(name: str, wanted: bool) -> str | None:
    """A server URL from the environment, only for the backend that uses it (so that a shell
    with both variables set can still start a single node)."""
    return (os.environ.get(name) or None) if wanted else None


def cmd_server(args: argparse.Namespace) -> int:
    from overt.server import run_server  # noqa: PLC0415 - a server process needs no client
    from overt.server.config import Backends  # noqa: PLC0415

    data = Path(args.data_dir or home_dir(args.home) / "server")
    backends = Backends(
        storage=args.storage,
        database_url=args.database_url or _from_env("OVERT_DATABASE_URL", args.storage != "sqlite"),
        pubsub=args.pubsub,
        redis_url=args.redis_url or _from_env("OVERT_REDIS_URL", args.pubsub == "redis"),
        node_id=args.node_id or f"{socket.gethostname()[:40]}-{args.port or os.getpid()}",
    )
    if args.print_keys:
        from overt.server.run import print_keys  # noqa: PLC0415

        for line in print_keys(
            data, deployment=args.deployment, origin=args.origin, backends=backends
        ):
            print(line)
        return 0
    run_server(
        args.host,
        args.port,
        data,
        log_level=args.log_level,
        backends=backends,
        deployment=args.deployment,
        origin=args.origin,
        checkpoint_interval_ms=args.checkpoint_interval_ms,
        cybertip_url=args.cybertip_url,
        cybertip_profile=args.cybertip_profile,
    )
    return 0


def cmd_witness(args: argparse.Namespace) -> int:
    import logging  # noqa: PLC0415

    from overt.services.witness import run_witness  # noqa: PLC0415 - a witness needs no client

    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    run_witness(
        args.host,
        args.port,
        args.data_dir,
        args.log_vkey,
        args.origin,
        name=args.name,
        log_level=args.log_level,
    )
    return 0


async def cmd_account_create(args: argparse.Namespace) -> int:
    async with Session(args) as client:
        if client.is_active:
            raise LocalError(
                f"profile {args.profile!r} already holds account {client.account_name!r}; "
                "use another --profile for another account"
            )
        print(f"Creating keys for {args.name!r} and registering with {args.server_url}…")
        await client.create_account(args.name)
        _write_config(profile_dir(args), {"server": server_url(args, profile_dir(args))})
        print(f"Account {args.name!r} created; this is device {client.device_id}.")
        print(f"Profile: {profile_dir(args)}")
    return 0


async def cmd_device_link(args: argparse.Namespace) -> int:
    primary_path = profile_dir(args, args.from_profile)
    if not primary_path.exists():
        raise LocalError(f"no profile {args.from_profile!r} at {primary_path}")
    url = server_url(args, primary_path)
    async with Session(args, args.from_profile) as primary, Session(args, url=url) as new:
        if new.is_active:
            raise LocalError(f"profile {args.profile!r} is already an active device")
        _need_account(primary, args)
        print(f"Linking profile {args.profile!r} to account {primary.account_name!r}…")
        await new.link_device(primary)
        _write_config(profile_dir(args), {"server": url})
        print(f"Linked: this is device {new.device_id} of {new.account_name!r}.")
    return 0


async def cmd_device_list(args: argparse.Namespace) -> int:
    async with Session(args) as client:
        _need_account(client, args)
        devices = await client.devices()
        for d in devices:
            mark = " (this device)" if d == client.device_id else ""
            print(f"device {d}{mark}")
    return 0


async def cmd_send(args: argparse.Namespace) -> int:
    async with Session(args) as client:
        _need_account(client, args)
        msg = await client.send(args.to, " ".join(args.text))
        print(f"Sent to {args.to} at {_time(msg.sent_at_ms)}.")
    return 0


async def send_file(
    args: argparse.Namespace, send: Callable[[Path, str], Awaitable[Message]]
) -> int:
    """``attach`` and ``group attach``: ``send(path, caption)`` the file ``args.file``."""
    path = Path(args.file)
    print(f"Encrypting and uploading {path.name}…")
    msg = await send(path, args.caption or "")
    print(f"Sent {path.name} to {msg.peer} (message {msg.message_id.hex()[:12]}).")
    return 0


async def cmd_attach(args: argparse.Namespace) -> int:
    async with Session(args) as client:
        _need_account(client, args)
        return await send_file(
            args, lambda path, caption: client.send_attachment(args.to, path, caption=caption)
        )


async def cmd_save(args: argparse.Namespace) -> int:
    async with Session(args) as client:
        _need_account(client, args)
        for m in await messages_with(client, args.peer, limit=SAVE_LOOKUP_MESSAGES):
            if m.message_id.hex().startswith(args.message) and m.attachment is not None:
                data = await client.fetch_attachment(m)
                out = Path(args.output or m.attachment.file_name or m.message_id.hex())
                out.write_bytes(data)
                print(f"Saved {len(data)} bytes to {out} (hashes checked).")
                return 0
        raise LocalError(f"no attachment message starting with {args.message!r} in {args.peer!r}")


async def cmd_inbox(args: argparse.Namespace) -> int:
    async with Session(args) as client:
        _need_account(client, args)
        new = await client.sync()
        show_new_notices(client)  # a warrant naming this account was unsealed
        print(f"{len(new)} new message(s).")
        if args.peer:
            for m in await client.history(args.peer, limit=args.limit):
                print(show(m))
            return 0
        for conv in await client.conversations():
            last = conv.last_message
            line = show(last) if last else "(no messages)"
            print(f"{conv.peer}: {line}")
        for group in await client.groups():  # group lines (overt group history GROUP)
            latest = await client.group_history(group.ref, limit=1)
            line = show(latest[0]) if latest else "(no messages)"
            print(f"#{group.name}: {line}")
    return 0


async def cmd_listen(args: argparse.Namespace) -> int:
    async with Session(args) as client:
        _need_account(client, args)
        print(f"Listening as {client.account_name} (device {client.device_id}); Ctrl-C to stop.")
        show_new_notices(client)
        sys.stdout.flush()
        async for m in client.listen():
            print(show(m), flush=True)
            show_new_notices(client)
    return 0


async def cmd_chat(args: argparse.Namespace) -> int:
    if args.group is not None:
        return await chat_group(args)
    if args.peer is None:
        raise LocalError("name the person to chat with, or --group GROUP")
    async with Session(args) as client:
        _need_account(client, args)
        peer: str = args.peer
        await converse(
            client,
            await client.history(peer, limit=CHAT_HISTORY_MESSAGES),
            f"Chatting with {peer}.",
            belongs=lambda m: not m.in_group and m.peer == peer,
            send=lambda text: client.send(peer, text),
        )
    return 0


async def cmd_safety_number(args: argparse.Namespace) -> int:
    async with Session(args) as client:
        _need_account(client, args)
        if args.accept:
            await client.accept_new_identity(args.peer, args.accept)
            print(f"Accepted the new key of {args.peer}.")
            return 0
        number = await client.safety_number(args.peer)
        groups = [number[i : i + 5] for i in range(0, len(number), 5)]
        print(f"Safety number with {args.peer} (compare it with theirs, in person or by call):")
        for i in range(0, len(groups), 4):
            print("  " + " ".join(groups[i : i + 4]))
    return 0


async def cmd_status(args: argparse.Namespace) -> int:
    async with Session(args) as client:
        print(f"profile: {profile_dir(args)}")
        print(f"server:  {server_url(args, profile_dir(args))}")
        if client.is_active:
            print(f"account: {client.account_name} (device {client.device_id})")
            try:
                matching = await client.refresh_matching()
            except OvertError:  # the server unreachable: what this profile knows
                matching = client.matching_status()
            print(f"safety:  {matching.describe()}")
        else:
            print("account: none yet")
        await print_access(client)  # the policy in force, the escrow epoch, notices
        show_new_notices(client)
    return 0


# ----------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="overt",
        description="Overt: end-to-end encrypted messaging with verifiable reports and "
        "accountable lawful access.",
    )
    p.add_argument("--home", help="state directory (default $OVERT_HOME or ~/.overt)")
    p.add_argument("--profile", default=DEFAULT_PROFILE, help="local profile (default: default)")
    p.add_argument("--server", help=f"server URL (default: the profile's, or {DEFAULT_SERVER})")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("server", help="run a relay server (SQLite, or one node of several)")
    add_console_arguments(s)
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--data-dir", help="keys (and server.db for SQLite); default $OVERT_HOME/server")
    s.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    s.add_argument(
        "--storage",
        default="sqlite",
        choices=["sqlite", "postgres"],
        help="sqlite (server.db in the data directory; default) or postgres",
    )
    s.add_argument(
        "--database-url", metavar="DSN", help="postgresql://USER@HOST:PORT/DB ($OVERT_DATABASE_URL)"
    )
    s.add_argument(
        "--pubsub",
        default="inprocess",
        choices=["inprocess", "redis"],
        help="wake-ups in this process (default) or through Redis (several nodes)",
    )
    s.add_argument("--redis-url", metavar="URL", help="redis://HOST:PORT/DB ($OVERT_REDIS_URL)")
    s.add_argument(
        "--node-id", metavar="NAME", help="this node's name in Redis presence (default HOST-PORT)"
    )
    s.add_argument(
        "--deployment",
        metavar="FILE",
        help="deployment configuration: witnesses, quorum, policies "
        "(default DATA_DIR/deployment.json, created with defaults if absent)",
    )
    s.add_argument("--origin", help="the checkpoint origin of a new log (default overt.local/log)")
    s.add_argument(
        "--checkpoint-interval-ms",
        type=int,
        default=1000,
        metavar="MS",
        help="sign a checkpoint and ask the witnesses this often when the log grew (1000)",
    )
    s.add_argument(
        "--print-keys",
        action="store_true",
        help="create the keys if needed, print the log's verifier key and the provider key, "
        "and exit (give the log vkey to witnesses before serving)",
    )
    s.set_defaults(sync=cmd_server)

    w = sub.add_parser("witness", help="run a transparency-log witness (c2sp.org/tlog-witness)")
    w.add_argument("--data-dir", required=True, help="the witness's key and state")
    w.add_argument("--log-vkey", required=True, help="the log's verifier key (server --print-keys)")
    w.add_argument("--origin", help="the log's checkpoint origin (default: the vkey's name)")
    w.add_argument("--host", default="127.0.0.1")
    w.add_argument("--port", type=int, default=7380, help="0 picks a free port (printed)")
    w.add_argument("--name", help="this witness's key name, for a new key")
    w.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    w.set_defaults(sync=cmd_witness)

    acct = sub.add_parser("account", help="accounts").add_subparsers(dest="sub", required=True)
    c = acct.add_parser("create", help="create an account with this profile as device 1")
    c.add_argument("name", help="account name: 3-32 of a-z 0-9 _ . -")
    c.set_defaults(run=cmd_account_create)

    dev = sub.add_parser("device", help="devices").add_subparsers(dest="sub", required=True)
    d = dev.add_parser("link", help="make this profile another device of an account")
    d.add_argument("--from-profile", required=True, help="a profile holding the account key")
    d.set_defaults(run=cmd_device_link)
    d = dev.add_parser("list", help="the account's devices")
    d.set_defaults(run=cmd_device_list)

    c = sub.add_parser("send", help="send a text message")
    c.add_argument("to")
    c.add_argument("text", nargs="+")
    c.set_defaults(run=cmd_send)

    c = sub.add_parser("attach", help="send a file (encrypted; the key travels in the message)")
    c.add_argument("to")
    c.add_argument("file")
    c.add_argument("--caption")
    c.set_defaults(run=cmd_attach)

    c = sub.add_parser("save", help="download, check and decrypt a received attachment")
    c.add_argument("peer", help="the account, or the group (name or id), it was sent in")
    c.add_argument("message", help="message id (a prefix is enough), as `inbox` shows it")
    c.add_argument("-o", "--output")
    c.set_defaults(run=cmd_save)

    c = sub.add_parser("inbox", help="fetch new messages; list conversations or one history")
    c.add_argument("peer", nargs="?")
    c.add_argument("--limit", type=int, default=50)
    c.set_defaults(run=cmd_inbox)

    c = sub.add_parser("listen", help="print messages as they arrive (WebSocket push)")
    c.set_defaults(run=cmd_listen)

    c = sub.add_parser("chat", help="an interactive conversation in the terminal")
    c.add_argument("peer", nargs="?")
    c.add_argument("--group", metavar="GROUP", help="chat in a group (name or id) instead")
    c.set_defaults(run=cmd_chat)

    c = sub.add_parser("safety-number", help="show (or accept a changed) safety number")
    c.add_argument("peer")
    c.add_argument("--accept", metavar="NUMBER", help="accept the peer's new key after checking")
    c.set_defaults(run=cmd_safety_number)

    c = sub.add_parser("status", help="this profile's account, device and server")
    c.set_defaults(run=cmd_status)
    add_access_commands(sub)  # custodian, court, lea, audit-access
    add_notice_commands(sub)  # notices
    add_safety_commands(sub)  # report, console
    add_matching_commands(sub)  # matching prepare, keygen, sign, publish
    add_group_commands(sub)  # group create/add/remove/leave/rename/send/list/members/history
    add_audit_commands(sub)  # audit, alarms; last: it wraps the commands above
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.server_url = server_url(args, profile_dir(args))
    try:
        if getattr(args, "sync", None) is not None:
            sync_cmd: Callable[[argparse.Namespace], int] = args.sync
            return sync_cmd(args)
        run: Callable[[argparse.Namespace], Coroutine[Any, Any, int]] = args.run
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        return 130
    except OvertError as exc:
        print(f"overt: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
