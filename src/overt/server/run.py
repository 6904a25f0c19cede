"""Running the relay server as a process: SQLite storage in a data directory, the in-process
PubSub, uvicorn, JSON logs, graceful shutdown on SIGTERM/SIGINT.

The data directory holds ``server.db`` (:func:`overt.storage.open_sqlite`) and
``franking.key`` (:func:`overt.server.config.load_or_create_franking_key`). Once uvicorn is
listening, one line goes to stdout::

    Overt server listening on http://127.0.0.1:8080 (data: /path/to/data)

On SIGTERM or SIGINT uvicorn stops accepting, closes WebSocket connections (1012), lets
requests in flight finish (at most :data:`GRACEFUL_SHUTDOWN_S`) and runs the application's
shutdown (background cleanups); then storage is closed and :func:`run_server` returns
normally (a second SIGINT forces the exit).

This module knows processes, files and uvicorn; it never imports the client or the CLI (the
CLI calls :func:`run_server`).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import uvicorn

from overt.crypto import Rng, SystemRng
from overt.server.app import create_app
from overt.server.config import (
    DATABASE_FILE,
    ServerConfig,
    load_or_create_franking_key,
    prepare_data_dir,
)
from overt.server.limits import WS_MESSAGE_MAX, ServerLimits
from overt.server.logs import configure_logging
from overt.storage import InProcessPubSub, StorageLimits, open_sqlite

GRACEFUL_SHUTDOWN_S: Final = 10
"""Seconds requests in flight get to finish after SIGTERM/SIGINT."""

KEEP_ALIVE_S: Final = 30
"""Seconds an idle HTTP keep-alive connection stays open."""


class _Server(uvicorn.Server):
    """uvicorn's server, except that a SIGTERM/SIGINT ends :func:`serve` normally instead of
    being raised again once uvicorn has shut down, so that storage is closed and
    :func:`run_server` returns."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in _SIGNALS}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)


def run_server(
    host: str,
    port: int,
    data_dir: str | Path,
    *,
    log_level: str = "info",
    limits: ServerLimits | None = None,
    storage_limits: StorageLimits | None = None,
    rng: Rng | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT. Blocks; returns after a graceful shutdown.

    ``port`` 0 picks a free port (the line on stdout names it). Raises
    :class:`overt.errors.ConfigurationError` for an unusable data directory or key file and
    :class:`overt.storage.StorageError` for an unusable database.
    """
    asyncio.run(
        serve(
            host,
            port,
            Path(data_dir),
            log_level=log_level,
            limits=limits,
            storage_limits=storage_limits,
            rng=rng,
        )
    )


async def serve(
    host: str,
    port: int,
    data_dir: Path,
    *,
    log_level: str = "info",
    limits: ServerLimits | None = None,
    storage_limits: StorageLimits | None = None,
    rng: Rng | None = None,
) -> None:
    """:func:`run_server` inside a running event loop."""
    configure_logging(log_level)
    rng = SystemRng() if rng is None else rng
    data_dir = prepare_data_dir(data_dir.expanduser().resolve())
    franking_key = load_or_create_franking_key(data_dir, rng)
    config = ServerConfig(franking_key, limits or ServerLimits())
    storage = await open_sqlite(data_dir / DATABASE_FILE, limits=storage_limits)
    try:
        app = create_app(config, storage, InProcessPubSub(), rng=rng)
        server = _Server(
            uvicorn.Config(
                app,
                host=host,
                port=port,
                log_config=None,
                log_level=log_level,
                access_log=False,
                server_header=False,
                proxy_headers=False,
                ws_max_size=WS_MESSAGE_MAX,
                timeout_keep_alive=KEEP_ALIVE_S,
                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
            )
        )
        announce = asyncio.ensure_future(_announce(server, host, data_dir))
        try:
            await server.serve()
        finally:
            announce.cancel()
    finally:
        await storage.close()


async def _announce(server: uvicorn.Server, host: str, data_dir: Path) -> None:
    while not server.started:
        if server.should_exit:
            return
        await asyncio.sleep(0.01)
    bound = [sock.getsockname() for s in server.servers for sock in (s.sockets or ())]
    port = bound[0][1] if bound else 0
    shown = f"[{host}]" if ":" in host else host
    print(f"Overt server listening on http://{shown}:{port} (data: {data_dir})", flush=True)
    sys.stdout.flush()
