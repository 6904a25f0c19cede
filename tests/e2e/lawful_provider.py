"""A provider process for the lawful-access end-to-end tests: the real relay server
(:func:`overt.server.create_app` over SQLite, with its transparency log, checkpointer and
witnesses) with the lawful-access router mounted and the interception hook on every enqueue —
what the lead's one-line mount will make of ``overt server``.

    python -m lawful_provider --data-dir D --port P [--checkpoint-ms 200]

``D`` holds ``deployment.json`` (witnesses, escrow policy) and the transparency keys (made by
the test before the witness starts, so the witness knows the log key). Prints ``lawful
provider listening on http://127.0.0.1:P`` once serving; stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import signal
from collections.abc import Collection, Sequence
from pathlib import Path

import uvicorn

from overt.crypto import SystemRng
from overt.server import ServerConfig, create_app
from overt.server.app import wall_clock_ms
from overt.server.config import (
    TransparencyConfig,
    load_or_create_franking_key,
    load_or_create_transparency_keys,
)
from overt.server.deployment import read_deployment
from overt.server.lawful import LawfulAccess, lawful_router
from overt.storage import InProcessPubSub, Mail, MailboxStore, NewMail, ReportingTagger, open_sqlite

UNSEAL_EVERY_S = 0.5


class InterceptingMailboxes:
    """The relay's mailbox store, calling the interception hook after every enqueue (the
    line the message service gets: ``await lawful.intercept(batch, ids, server_time)``)."""

    def __init__(self, inner: MailboxStore) -> None:
        self.inner = inner
        self.lawful: LawfulAccess | None = None

    async def enqueue(
        self, batch: Sequence[NewMail], server_time: int, tag: ReportingTagger
    ) -> tuple[int, ...]:
        ids = await self.inner.enqueue(batch, server_time, tag)
        if self.lawful is not None:
            await self.lawful.intercept(batch, ids, server_time)
        return ids

    async def fetch(
        self, account_id: bytes, device: int, after_id: int, limit: int
    ) -> tuple[Mail, ...]:
        return await self.inner.fetch(account_id, device, after_id, limit)

    async def ack(self, account_id: bytes, device: int, ids: Collection[int]) -> int:
        return await self.inner.ack(account_id, device, ids)

    async def depth(self, account_id: bytes, device: int) -> int:
        return await self.inner.depth(account_id, device)


async def serve(data_dir: Path, port: int, checkpoint_ms: int) -> None:
    rng = SystemRng()
    keys, _ = load_or_create_transparency_keys(data_dir, rng)
    deployment = read_deployment(data_dir / "deployment.json")
    franking = load_or_create_franking_key(data_dir, rng)
    storage = await open_sqlite(data_dir / "server.db")
    assert storage.warrants and storage.intercepts and storage.epochs
    mailboxes = InterceptingMailboxes(storage.mailboxes)
    transparency = TransparencyConfig(
        keys, deployment, checkpoint_interval_ms=checkpoint_ms, witness_timeout_ms=2000
    )
    app = create_app(
        ServerConfig(franking, transparency=transparency),
        dataclasses.replace(storage, mailboxes=mailboxes),
        InProcessPubSub(),
        rng=rng,
    )
    lawful = LawfulAccess(
        app.state.log, app.state.publisher, storage.warrants, storage.intercepts, storage.epochs,
        clock=wall_clock_ms, rng=rng,
    )  # fmt: skip
    mailboxes.lawful = lawful
    app.include_router(lawful_router(lawful))
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )

    async def unseal() -> None:
        while True:
            await asyncio.sleep(UNSEAL_EVERY_S)
            with contextlib.suppress(Exception):
                await lawful.unseal_due()

    async def announce() -> None:
        while not server.started:
            await asyncio.sleep(0.01)
        print(f"lawful provider listening on http://127.0.0.1:{port}", flush=True)

    tasks = [asyncio.ensure_future(unseal()), asyncio.ensure_future(announce())]
    try:
        await server.serve()
    finally:
        for t in tasks:
            t.cancel()
        await storage.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", required=True, type=Path)
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--checkpoint-ms", type=int, default=200)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.data_dir, args.port, args.checkpoint_ms))


if __name__ == "__main__":
    main()
