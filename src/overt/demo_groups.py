"""The group part of ``make demo``: three people in a group, one removed, who then reads
nothing more.

A relay server in its own process (SQLite in a temporary directory) and three clients over
HTTP: alice creates a group with bob and carol, they talk (one ciphertext per message, fanned
out by the server), alice removes carol, everyone still in the group moves to new sender keys,
and carol's client — which still holds every old key — finds nothing it can read.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from overt import launch
from overt.client import Client, HttpTransport


async def group_walkthrough(work: Path, say: Callable[[str], None] = print) -> None:
    say("\n== A group conversation: three people, then one is removed ==")
    with launch.server(work / "group-server") as srv:
        transport = HttpTransport(srv.url)
        clients: list[Client] = []
        try:
            for name in ("alice", "bob", "carol"):
                c = await Client.open(work / f"group-{name}", transport)
                clients.append(c)
                await c.create_account(name)
            alice, bob, carol = clients
            info = await alice.create_group("weekend trip", ["bob", "carol"])
            say(
                f"alice created the group {info.name!r} (id {info.ref[:10]}…) with "
                f"{', '.join(info.members)}; she signed the member list with her account key"
            )
            await alice.send_group(info.ref, "Train on Saturday at 9?")
            say(
                "alice sent one message: her device made a sender key, gave it to each "
                "member over their pairwise sessions, then sent ONE ciphertext; the server "
                "fanned it out with a reporting tag per recipient"
            )
            for c in (bob, carol):
                for m in await c.sync():
                    say(f"  {c.account_name} reads from {m.sender}: {m.text!r}")
            await carol.send_group(info.ref, "Works for me!")
            await bob.send_group(info.ref, "I'll bring snacks.")
            for m in await alice.sync():
                say(f"  alice reads from {m.sender}: {m.text!r}")

            info = await alice.remove_members(info.ref, ["carol"])
            say(
                f"alice removed carol: version {info.version} of the member list, now "
                f"{', '.join(info.members)}; every remaining device will use a new sender key"
            )
            await alice.send_group(info.ref, "Surprise party for carol on Sunday!")
            for m in await bob.sync():
                say(f"  bob reads from {m.sender}: {m.text!r}")
            await bob.send_group(info.ref, "I'll get the cake.")
            for m in await alice.sync():
                say(f"  alice reads from {m.sender}: {m.text!r}")
            new = await carol.sync()
            (view,) = await carol.groups()
            say(
                f"carol's client fetched its mail: {len(new)} new message(s); the group is "
                f"{view.status!r} on her device, and her old keys open nothing sent since"
            )
            for m in await carol.group_history(info.ref):
                say(f"  carol's history still shows only: {m.sender}: {m.text!r}")
            for member in await bob.group_members(info.ref):
                role = "admin, " if member.admin else ""
                say(f"  {member.name}: {role}member since version {member.since_version}")
        finally:
            for c in clients:
                await c.close()
            await transport.aclose()


__all__ = ["group_walkthrough"]
