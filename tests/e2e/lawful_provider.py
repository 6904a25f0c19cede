"""A provider process for the lawful-access end-to-end tests: the real relay server
(:func:`overt.launch_lawful.serve_provider`, the one the demo serves too:
:func:`overt.server.create_app` over SQLite, with its transparency log, checkpointer and
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

from overt.launch_lawful import serve_provider
from overt.server.deployment import DEPLOYMENT_FILE, read_deployment

UNSEAL_EVERY_S = 0.5
UNSEAL_CLOCK_FILE = "unseal-at"


async def serve(data_dir: Path, port: int, checkpoint_ms: int) -> None:
    deployment = read_deployment(data_dir / DEPLOYMENT_FILE)
    async with serve_provider(data_dir, deployment, port, checkpoint_ms=checkpoint_ms) as (
        lawful,
        serving,
    ):

        async def unseal() -> None:
            while True:
                await asyncio.sleep(UNSEAL_EVERY_S)
                with contextlib.suppress(Exception):
                    injected = data_dir / UNSEAL_CLOCK_FILE
                    now = int(injected.read_text()) if injected.exists() else None
                    await lawful.unseal_due(now)

        print(f"lawful provider listening on http://127.0.0.1:{port}", flush=True)
        unsealing = asyncio.ensure_future(unseal())
        try:
            await serving
        finally:
            unsealing.cancel()


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
