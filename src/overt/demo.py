"""`make demo`: Overt end to end on this machine, in plain words, without questions.

1. The protocol core alone (no server): a tampered message caught, safety numbers, and — under
   access policy ``escrow`` — one message key opened with the epoch secret.
2. A real deployment on loopback: a relay server in its own process (SQLite in a temporary
   directory), two users, one with two devices, a conversation both ways over HTTP and
   WebSocket, an attachment, a device offline that catches up.

The lawful-access section (:mod:`overt.demo_lawful`) runs an ``escrow`` deployment — custodian
processes making the epoch key, a witness, a court, an agency — from warrant to the target's
notice, then audits the same log.
The group section (:mod:`overt.demo_groups`): three people in a group, one removed, who then
reads nothing sent afterwards.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TypeVar

import uvicorn

from overt import launch
from overt.client import Client, HttpTransport
from overt.console.demo import safety_walkthrough
from overt.crypto import Point, Scalar, SystemRng
from overt.demo_groups import group_walkthrough
from overt.demo_lawful import lawful_walkthrough
from overt.demo_matching import matching_walkthrough
from overt.errors import InvalidMessage
from overt.protocol import (
    Device,
    EscrowPolicy,
    access,
    direct_conversation_id,
    format_safety_number,
    safety_number,
)
from overt.protocol.identity import AccountIdentity
from overt.server import ServerConfig, create_app
from overt.storage import InProcessPubSub, open_memory
from overt.wire import Envelope

T = TypeVar("T")


def say(text: str) -> None:
    print(text, flush=True)


def protocol_walkthrough() -> None:
    rng = SystemRng()
    now = 1_764_000_000_000
    say("== The protocol core, in memory ==")
    alice_acct = AccountIdentity.generate(b"alice", rng)
    bob_acct = AccountIdentity.generate(b"bob", rng)
    alice_phone = Device.create(b"alice", 1, rng=rng)
    alice_laptop = Device.create(b"alice", 2, rng=rng)
    bob_phone = Device.create(b"bob", 1, rng=rng)
    say("alice has a phone and a laptop; bob has a phone. Each device made its own keys.")

    cid = direct_conversation_id(b"alice", b"bob")
    _, envs = alice_phone.encrypt_fanout(
        [bob_phone.address, alice_laptop.address],
        b"Hi Bob! Lunch at noon?",
        now_ms=now,
        conversation_id=cid,
        bundles={
            bob_phone.address: bob_phone.prekey_bundle(),
            alice_laptop.address: alice_laptop.prekey_bundle(),
        },
    )
    say(f"alice's phone ran PQXDH with both devices and sent {len(envs)} copies "
        f"({len(envs[0].encode())} bytes each, post-quantum handshake included).")  # fmt: skip
    for dev, env in zip([bob_phone, alice_laptop], envs, strict=True):
        got = dev.decrypt(Envelope.decode(env.encode()))
        say(f"  {dev.address.account.decode()}'s device {dev.address.device} reads: "
            f"{got.body.decode()!r}")  # fmt: skip

    reply = bob_phone.encrypt(alice_phone.address, b"Noon works.", now_ms=now + 1000)
    say(f"bob answers: {alice_phone.decrypt(reply).body.decode()!r}")

    forged = bytearray(bob_phone.encrypt(alice_phone.address, b"See you", now_ms=now).encode())
    forged[-5] ^= 1
    try:
        alice_phone.decrypt(Envelope.decode(bytes(forged)))
    except InvalidMessage:
        say("a message changed in transit is refused, and alice's session state is untouched.")

    number = safety_number(b"alice", alice_acct.public_key.raw, b"bob", bob_acct.public_key.raw)
    say("their safety number, to compare in person:")
    say("  " + format_safety_number(number).replace("\n", "\n  "))

    say("\n== Access policy 'escrow', in memory (the full flow with custodians follows) ==")
    x = Scalar.random(rng)
    policy = EscrowPolicy(1, Point.base_mul(x))
    carol = Device.create(b"carol", 1, rng=rng, policy=policy)
    dave = Device.create(b"dave", 1, rng=rng, policy=policy)
    env = carol.encrypt(dave.address, b"evidence", now_ms=now, bundle=dave.prekey_bundle())
    dave.decrypt(env)
    say("dave's client checked the access field of carol's message before showing it.")
    assert env.access is not None
    ctx = access.context(env.access.epoch, env.sender, env.recipient, env.conversation_id,
                         env.message_id, env.timestamp_ms)  # fmt: skip
    key = access.recover(env.access, Point.from_bytes(env.access.r).mul(x), ctx)
    say(f"with the epoch secret, one message key (and only it) is recovered: {key.hex()[:16]}…")


async def relay_walkthrough(work: Path) -> None:

    say("\n== A deployment on this machine: a relay server and three devices ==")
    with launch.server(work / "server") as srv:
        say(f"the relay server runs as its own process at {srv.url} (SQLite in {work})")
        transport = HttpTransport(srv.url)
        alice = await Client.open(work / "alice-phone", transport)
        laptop = await Client.open(work / "alice-laptop", transport)
        bob = await Client.open(work / "bob-phone", transport)
        try:
            await alice.create_account("alice")
            await bob.create_account("bob")
            say("alice and bob registered; each proved possession of a fresh account key")
            await laptop.link_device(alice)
            say(f"alice linked her laptop: her account key signed a device list with devices "
                f"{await alice.devices()}")  # fmt: skip

            await alice.send("bob", "Hi Bob, it's Alice. Lunch at noon?")
            say("alice sent a message: one envelope for bob's phone, one for her own laptop")
            got = [m async for m in _take(bob.listen(), 1)]
            say(f"bob's phone, connected by WebSocket, shows: {got[0].text!r}")
            await bob.send("alice", "Noon works. Bring the slides?")
            for m in await alice.sync():
                say(f"alice's phone shows from {m.sender}: {m.text!r}")

            slides = b"%PDF-1.4 pretend these are slides\n" * 20
            await alice.send_attachment("bob", slides, content_type="application/pdf",
                                        file_name="slides.pdf", caption="here you go")  # fmt: skip
            say("alice attached slides.pdf: encrypted under a fresh key, uploaded as an opaque "
                "blob; the key and hashes travel inside the message")  # fmt: skip
            (att,) = [m for m in await bob.sync() if m.attachment is not None]
            data = await bob.fetch_attachment(att)
            say(f"bob downloaded and checked it: {len(data)} bytes, hashes match")

            say("alice's laptop was offline all this time; now it connects and catches up:")
            for m in await laptop.sync():
                arrow = "→ " + m.peer if m.sender == "alice" else "from " + m.sender
                say(f"  laptop: {arrow}: {m.text}")
            say(f"bob's safety number with alice: {await bob.safety_number('alice')}")
            say(f"the policy every client shows: {await alice.policy_description()}")
            await safety_walkthrough(
                srv.url, work, alice, bob, server_data_dir=work / "server", say=say
            )
        finally:
            for c in (alice, laptop, bob):
                await c.close()
            await transport.aclose()
    say("the server stopped; everything it held was ciphertext and public keys")


async def kt_walkthrough(work: Path) -> None:
    """A provider that turns malicious publishes a key alice never made: bob's client cannot
    tell, but the log makes it public, and alice's own client raises the alarm."""
    say("\n== Key transparency: nobody can be silently added ==")
    storage = await open_memory()
    app = create_app(ServerConfig(SystemRng().random_bytes(32)), storage, InProcessPubSub())
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", log_config=None)
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    transport = HttpTransport(f"http://127.0.0.1:{port}")
    alice = await Client.open(work / "kt-alice", transport)
    bob = await Client.open(work / "kt-bob", transport)
    try:
        await alice.create_account("alice")
        await bob.create_account("bob")
        await alice.check_log()
        await bob.send("alice", "hello")
        say(
            "every account key and device list is an entry of the public log; bob's client "
            "checked alice's against it (VRF label, commitment, proof under a checkpoint)"
        )
        say(
            "now the provider turns malicious: it publishes a second account key for alice, "
            "with a device of its own, and logs it as it must"
        )
        rng = SystemRng()
        impostor = AccountIdentity.generate(b"alice", rng)
        ghost = Device.create(b"alice", 9, rng=rng)
        forged = impostor.sign_device_list(7, [ghost.entry()])
        await app.state.key_directory.publish(b"alice", impostor.public_key.raw, 7, forged.encode())
        await asyncio.sleep(1.5)  # the server's checkpointer signs the grown log
        for alarm in await alice.check_log():
            say(
                f"alice's client scanned the new log entries and raised an alarm: "
                f"{alarm.kind.value} (log entry {alarm.entry_index}) — a ghost cannot hide"
            )
    finally:
        await alice.close()
        await bob.close()
        await transport.aclose()
        server.should_exit = True
        await serving
        await storage.close()


async def _take(it: AsyncIterator[T], n: int) -> AsyncIterator[T]:
    """The first ``n`` items of ``it``."""
    count = 0
    async for item in it:
        yield item
        count += 1
        if count >= n:
            break


def main() -> int:
    protocol_walkthrough()
    with tempfile.TemporaryDirectory(prefix="overt-demo-") as tmp:
        asyncio.run(relay_walkthrough(Path(tmp)))
        asyncio.run(kt_walkthrough(Path(tmp)))
        asyncio.run(lawful_walkthrough(Path(tmp), say))
        asyncio.run(group_walkthrough(Path(tmp), say))
        asyncio.run(matching_walkthrough(Path(tmp), say))
    say("\nDemo finished.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
