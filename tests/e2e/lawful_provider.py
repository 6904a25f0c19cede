"""A provider process for the lawful-access end-to-end tests: the real relay server
(:func:`overt.server.create_app` over SQLite, with its transparency log, checkpointer and
witnesses), which mounts the lawful-access routes and the interception hook itself; this
process adds only a faster unsealing loop for the tests.

    python -m lawful_provider --data-dir D --port P [--checkpoint-ms 200]

``D`` holds ``deployment.json`` (witnesses, escrow policy) and the transparency keys (made by
the test before the witness starts, so the witness knows the log key). Prints ``lawful
provider listening on http://127.0.0.1:P`` once serving; stops on SIGTERM.

The unsealing clock can be injected: while ``D/unseal-at`` holds Unix seconds, every warrant
whose notification date is at or before them is unsealed (a test's way to reach a notice date
days away).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from pathlib import Path

import uvicorn

from overt.crypto import SystemRng
from overt.server import ServerConfig, create_app
from overt.server.config import (
    TransparencyConfig,
    load_or_create_franking_key,
    load_or_create_transparency_keys,
)
from overt.server.deployment import read_deployment
from overt.server.lawful import LawfulAccess
from overt.storage import InProcessPubSub, open_sqlite

UNSEAL_EVERY_S = 0.5
UNSEAL_CLOCK_FILE = "unseal-at"


async def serve(data_dir: Path, port: int, checkpoint_ms: int) -> None:
    rng = SystemRng()
    keys, _ = load_or_create_transparency_keys(data_dir, rng)
    deployment = read_deployment(data_dir / "deployment.json")
    franking = load_or_create_franking_key(data_dir, rng)
    storage = await open_sqlite(data_dir / "server.db")
    assert storage.warrants and storage.intercepts and storage.epochs
    transparency = TransparencyConfig(
        keys, deployment, checkpoint_interval_ms=checkpoint_ms, witness_timeout_ms=2000
    )
    app = create_app(
        ServerConfig(franking, transparency=transparency),
        storage,
        InProcessPubSub(),
        rng=rng,
    )
    # create_app mounts the lawful-access routes and the interception hook itself.
    lawful: LawfulAccess = app.state.lawful
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )

    async def unseal() -> None:
        while True:
            await asyncio.sleep(UNSEAL_EVERY_S)
            with contextlib.suppress(Exception):
                injected = data_dir / UNSEAL_CLOCK_FILE
                now = int(injected.read_text()) if injected.exists() else None
                await lawful.unseal_due(now)

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
