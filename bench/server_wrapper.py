"""The relay server for load benchmarks: ``overt server`` with its per-device limits raised.

``overt server`` takes no limit flags, and its default budget (bursts of 200 requests, 50 per
second per device, WebSocket acknowledgements included) is below what one benchmark client
spends at a few thousand messages per second over a hundred clients. This module starts the
same server the CLI does — :func:`overt.server.run.run_server` (SQLite in WAL mode with
``synchronous=FULL`` under the data directory, the in-process PubSub, uvicorn on the default
asyncio loop) — with only :class:`overt.server.limits.ServerLimits` raised, in its own process::

    python -m bench.server_wrapper --data-dir DIR [--port 0] [--rate-per-second N] ...

(run from the repository root). The limiter and the replay cache still run on every request;
only their bounds are larger, so their cost stays in the measurement. In the parent process,
:func:`service` builds the :class:`overt.launch.Service` that starts it and reads its URL.
``--storage``, ``--database-url``, ``--pubsub``, ``--redis-url`` and ``--node-id`` pick the
backends as ``overt server`` does (the ``scale`` group runs nodes on PostgreSQL and Redis).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from overt.launch import Service

REPO_ROOT: Final = Path(__file__).resolve().parent.parent

BENCH_RATE_BURST: Final = 1_000_000
"""Requests a device may make at once (default server: 200)."""

BENCH_RATE_PER_SECOND: Final = 1_000_000.0
"""Sustained requests per second and device (default server: 50)."""

BENCH_REPLAY_CACHE: Final = 2_000_000
"""Signatures remembered inside the 300 s window (default server: 200,000, which a load of
more than ~650 signed requests per second would fill within the window)."""


def service(
    data_dir: Path,
    port: int = 0,
    *,
    rate_burst: int = BENCH_RATE_BURST,
    rate_per_second: float = BENCH_RATE_PER_SECOND,
    replay_cache: int = BENCH_REPLAY_CACHE,
    log_level: str = "warning",
    backend_args: Sequence[str] = (),
    checkpoint_interval_ms: int | None = None,
) -> Service:
    """A relay server on loopback with SQLite under ``data_dir`` and the given limits.

    ``Service.start()`` returns its URL, ``Service.pid`` is the server process itself (no
    shell in between), ``Service.stop()`` ends it with SIGTERM (SIGKILL after 10 s).
    """
    argv = [
        sys.executable, "-m", "bench.server_wrapper",
        "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir),
        "--rate-burst", str(rate_burst), "--rate-per-second", repr(float(rate_per_second)),
        "--replay-cache", str(replay_cache), "--log-level", log_level, *backend_args,
    ]  # fmt: skip
    if checkpoint_interval_ms is not None:
        argv += ["--checkpoint-interval-ms", str(checkpoint_interval_ms)]
    return Service("the Overt server (bench limits)", argv, raw_argv=True, cwd=REPO_ROOT)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.server_wrapper",
        description="Run the Overt relay server with raised per-device limits (benchmarks).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--rate-burst", type=int, default=BENCH_RATE_BURST)
    parser.add_argument("--rate-per-second", type=float, default=BENCH_RATE_PER_SECOND)
    parser.add_argument("--replay-cache", type=int, default=BENCH_REPLAY_CACHE)
    parser.add_argument("--log-level", default="warning")
    parser.add_argument("--storage", default="sqlite")
    parser.add_argument("--database-url")
    parser.add_argument("--pubsub", default="inprocess")
    parser.add_argument("--redis-url")
    parser.add_argument("--node-id", default="bench")
    parser.add_argument(
        "--checkpoint-interval-ms",
        type=int,
        default=None,
        help="sign a checkpoint and ask the witnesses this often (default: the server's)",
    )
    args = parser.parse_args(argv)

    # Imported here so that the parent (which only calls `service`) needs no server modules.
    from overt.server.config import Backends  # noqa: PLC0415
    from overt.server.limits import CHECKPOINT_INTERVAL_MS, ServerLimits  # noqa: PLC0415
    from overt.server.run import run_server  # noqa: PLC0415

    limits = ServerLimits(
        rate_burst=args.rate_burst,
        rate_per_second=args.rate_per_second,
        replay_cache=args.replay_cache,
    )
    backends = Backends(
        storage=args.storage,
        database_url=args.database_url,
        pubsub=args.pubsub,
        redis_url=args.redis_url,
        node_id=args.node_id,
    )
    run_server(
        args.host,
        args.port,
        args.data_dir,
        log_level=args.log_level,
        limits=limits,
        backends=backends,
        checkpoint_interval_ms=args.checkpoint_interval_ms or CHECKPOINT_INTERVAL_MS,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
