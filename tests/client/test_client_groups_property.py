"""Random runs of a group through the client library and the real server (in-process): sends,
removals, additions and syncs in any order. Every member reads exactly what was sent while it
was a member, once, and nothing sent while it was not."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from overt.client import Client

from .support import running

NAMES = ("alice", "bob", "carol", "dave")

Op = tuple[str, int]
ops = st.lists(
    st.tuples(st.sampled_from(["send", "remove", "add", "sync"]), st.integers(0, len(NAMES) - 1)),
    min_size=1,
    max_size=12,
)


async def _run(tmp: Path, steps: list[Op]) -> None:
    async with running(tmp) as (world, _):
        clients: dict[str, Client] = {n: await world.user(n, n) for n in NAMES}
        members = {"alice", "bob", "carol"}
        ever = set(members)
        await clients["alice"].create_group("g", sorted(members - {"alice"}))
        expected: dict[str, list[str]] = {n: [] for n in NAMES}
        counter = 0
        for op, i in steps:
            who = NAMES[i]
            if op == "send" and who in members:
                counter += 1
                text = f"{who} #{counter}"
                await clients[who].sync()  # as the CLI does: the latest view first
                await clients[who].send_group("g", text)
                for m in members - {who}:
                    expected[m].append(text)
            elif op == "remove" and who in members and who != "alice":
                await clients["alice"].sync()
                await clients["alice"].remove_members("g", [who])
                members.discard(who)
            elif op == "add" and who not in members:
                if who in ever:
                    event("a removed member is added back")
                await clients["alice"].sync()
                await clients["alice"].add_members("g", [who])
                members.add(who)
                ever.add(who)
            elif op == "sync":
                await clients[who].sync()
            world.clock.advance(1000)
        for who in sorted(members):  # a last word from everyone still in the group
            counter += 1
            text = f"{who} #{counter}"
            await clients[who].sync()
            await clients[who].send_group("g", text)
            for m in members - {who}:
                expected[m].append(text)
        for n in NAMES:
            await clients[n].sync()
        for n in NAMES:
            if not await clients[n].groups():
                assert expected[n] == [], n
                continue
            got = [m.text for m in await clients[n].group_history("g", 1000) if not m.outgoing]
            assert sorted(got) == sorted(expected[n]), n
            assert len(got) == len(set(got)), n


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(ops)
def test_every_member_reads_exactly_what_was_sent_while_it_was_a_member(steps: list[Op]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(_run(Path(tmp), steps))
