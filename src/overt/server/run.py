"""Running the relay server as a process: storage, PubSub, uvicorn, JSON logs, graceful
shutdown on SIGTERM/SIGINT.

:class:`overt.server.config.Backends` picks the engines: by default SQLite in the data
directory and the in-process PubSub (one node); for one node of several, PostgreSQL
(:func:`overt.storage.open_postgres`) and Redis (:class:`overt.storage.RedisPubSub`), with the
keys still read from the data directory, which must hold the same key files on every node
(docs/deploy.md).

The data directory holds ``server.db`` (:func:`overt.storage.open_sqlite`), ``franking.key``
(:func:`overt.server.config.load_or_create_franking_key`), the transparency keys
``provider.key``, ``log.key`` and ``vrf.key``
(:func:`overt.server.config.load_or_create_transparency_keys`) and, unless another file is
named, the deployment configuration ``deployment.json``
(:func:`overt.server.deployment.load_or_create_deployment`). Before serving, the manifest in
force is made sure of (appended as entry 0, or as a successor if the configuration changed).
Once uvicorn is listening, two lines go to stdout::

    Overt server listening on http://127.0.0.1:8080 (data: /path/to/data)
    Overt log overt.local/log+1a2b3c4d+AX…, manifest version 1 (entry 0), quorum 0 of 0

:func:`print_keys` (``overt server --print-keys``) creates the keys and the default
configuration if needed and returns what a witness and a client need, without serving.

:func:`run_server` runs on uvloop when it is installed (:func:`event_loop_factory`), and
WebSocket frames go out without permessage-deflate (base64 of ciphertext compresses by a
quarter at most, for CPU on every frame of both ends).

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
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, Final

import uvicorn

from overt.console.config import load_console_config
from overt.crypto import Rng, SystemRng
from overt.errors import ConfigurationError
from overt.server.app import create_app
from overt.server.codec import b64encode
from overt.server.config import (
    DATABASE_FILE,
    PUBSUB_REDIS,
    STORAGE_POSTGRES,
    Backends,
    ServerConfig,
    TransparencyConfig,
    load_or_create_franking_key,
    load_or_create_transparency_keys,
    prepare_data_dir,
)
from overt.server.deployment import DEPLOYMENT_FILE, load_or_create_deployment
from overt.server.limits import CHECKPOINT_INTERVAL_MS, WS_MESSAGE_MAX, ServerLimits
from overt.server.logs import configure_logging
from overt.server.matching import load_or_create_matching_key
from overt.server.transparency import ManifestInForce
from overt.storage import (
    InProcessPubSub,
    PubSub,
    Storage,
    StorageLimits,
    StorageUnavailable,
    open_sqlite,
)

GRACEFUL_SHUTDOWN_S: Final = 10
"""Seconds requests in flight get to finish after SIGTERM/SIGINT."""

KEEP_ALIVE_S: Final = 30
"""Seconds an idle HTTP keep-alive connection stays open."""

STARTUP_CHANNEL: Final = "overt.node.start"
"""A node publishes one empty message here when it starts: the check that Redis answers."""


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


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when uvloop is installed (``uvicorn[standard]`` brings it), else
    ``None`` (asyncio's): what uvicorn's ``loop="auto"`` picks when uvicorn runs the loop."""
    try:
        import uvloop  # noqa: PLC0415 - optional
    except ImportError:  # pragma: no cover - installed with uvicorn[standard]
        return None
    return uvloop.new_event_loop


def run_on_fastest_loop(main: Coroutine[Any, Any, None]) -> None:
    """``asyncio.run(main)`` on the loop of :func:`event_loop_factory`."""
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(main)


def run_server(
    host: str,
    port: int,
    data_dir: str | Path,
    *,
    log_level: str = "info",
    limits: ServerLimits | None = None,
    storage_limits: StorageLimits | None = None,
    rng: Rng | None = None,
    backends: Backends | None = None,
    deployment: str | Path | None = None,
    origin: str | None = None,
    checkpoint_interval_ms: int = CHECKPOINT_INTERVAL_MS,
    cybertip_url: str | None = None,
    cybertip_profile: str | Path | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT. Blocks; returns after a graceful shutdown.

    ``port`` 0 picks a free port (the line on stdout names it). ``backends`` picks storage and
    pub/sub (default: SQLite in ``data_dir``, in-process). ``deployment`` is the configuration
    file (default ``<data_dir>/deployment.json``, created if absent); ``origin`` names a new
    log (it must match an existing one). Raises :class:`overt.errors.ConfigurationError` for an
    unusable data directory, key file, configuration or Redis, and
    :class:`overt.storage.StorageError` for an unusable database.
    """
    run_on_fastest_loop(
        serve(
            host,
            port,
            Path(data_dir),
            log_level=log_level,
            limits=limits,
            storage_limits=storage_limits,
            rng=rng,
            backends=backends,
            deployment=None if deployment is None else Path(deployment),
            origin=origin,
            checkpoint_interval_ms=checkpoint_interval_ms,
            cybertip_url=cybertip_url,
            cybertip_profile=None if cybertip_profile is None else Path(cybertip_profile),
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
    backends: Backends | None = None,
    deployment: Path | None = None,
    origin: str | None = None,
    checkpoint_interval_ms: int = CHECKPOINT_INTERVAL_MS,
    cybertip_url: str | None = None,
    cybertip_profile: Path | None = None,
) -> None:
    """:func:`run_server` inside a running event loop (the moderation console is mounted at
    ``/console``; moderators are added with ``overt console add-moderator``)."""
    configure_logging(log_level)
    rng = SystemRng() if rng is None else rng
    backends = Backends() if backends is None else backends
    data_dir = prepare_data_dir(data_dir.expanduser().resolve())
    storage = await _open_storage(backends, data_dir, storage_limits)
    pubsub: PubSub | None = None
    try:
        new = await storage.log.size() == 0  # keys are created only for a new deployment
        franking_key = load_or_create_franking_key(data_dir, rng, create=new)
        pubsub = await _open_pubsub(backends)
        keys, _ = load_or_create_transparency_keys(data_dir, rng, origin=origin, create=new)
        transparency = TransparencyConfig(
            keys,
            load_or_create_deployment(_deployment_path(data_dir, deployment)),
            checkpoint_interval_ms=checkpoint_interval_ms,
        )
        matching_key = None
        if transparency.deployment.safety.matching.enabled:
            # Created only before any list is published (then it blinds them: copy, not make).
            published = storage.matching is not None and bool(await storage.matching.commitments())
            matching_key = load_or_create_matching_key(
                data_dir, rng, create=not published
            ).export_secret()
        config = ServerConfig(
            franking_key, limits or ServerLimits(), transparency, node_id=backends.node_id,
            matching_key=matching_key,
        )  # fmt: skip
        console = load_console_config(
            data_dir, rng, cybertip_url=cybertip_url, cybertip_profile=cybertip_profile
        )
        app = create_app(config, storage, pubsub, rng=rng, console=console)
        current: ManifestInForce = await app.state.publisher.ensure()
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
                ws_per_message_deflate=False,  # base64 ciphertext: -25 % at most, CPU per frame
                timeout_keep_alive=KEEP_ALIVE_S,
                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
            )
        )
        announce = asyncio.ensure_future(
            _announce(server, host, data_dir, backends, _describe_log(current))
        )
        try:
            await server.serve()
        finally:
            announce.cancel()
    finally:
        closing = getattr(pubsub, "close", None)
        if closing is not None:
            await closing()
        await storage.close()


async def _open_storage(
    backends: Backends, data_dir: Path, limits: StorageLimits | None
) -> Storage:
    if backends.storage == STORAGE_POSTGRES:
        from overt.storage import open_postgres  # noqa: PLC0415 - loads asyncpg only if used

        assert backends.database_url is not None  # Backends checks it
        return await open_postgres(backends.database_url, limits=limits)
    return await open_sqlite(data_dir / DATABASE_FILE, limits=limits)


async def _open_pubsub(backends: Backends) -> PubSub:
    if backends.pubsub != PUBSUB_REDIS:
        return InProcessPubSub()
    from overt.storage import RedisPubSub  # noqa: PLC0415 - loads redis only if used

    assert backends.redis_url is not None  # Backends checks it
    pubsub = RedisPubSub(backends.redis_url)
    try:
        await pubsub.publish(STARTUP_CHANNEL, b"")
    except StorageUnavailable:
        await pubsub.close()
        raise ConfigurationError(
            "Redis does not answer at --redis-url: start it, or fix the URL"
        ) from None
    return pubsub


def _deployment_path(data_dir: Path, deployment: Path | None) -> Path:
    return data_dir / DEPLOYMENT_FILE if deployment is None else deployment.expanduser().resolve()


def _describe_log(current: ManifestInForce) -> str:
    m = current.manifest
    return (
        f"Overt log {m.log.vkey.to_text()}, manifest version {m.version} "
        f"(entry {current.index}), quorum {m.witness_quorum} of {len(m.witnesses)}"
    )


def print_keys(
    data_dir: str | Path,
    *,
    deployment: str | Path | None = None,
    origin: str | None = None,
    backends: Backends | None = None,
    rng: Rng | None = None,
) -> list[str]:
    """Create the transparency keys and the default configuration if needed; the lines that
    tell a witness operator and an auditor what to trust (``overt server --print-keys``).

    Keys are created only while the log in ``backends``' storage is empty."""
    return asyncio.run(
        _print_keys(
            Path(data_dir),
            deployment=None if deployment is None else Path(deployment),
            origin=origin,
            backends=Backends() if backends is None else backends,
            rng=SystemRng() if rng is None else rng,
        )
    )


async def _print_keys(
    data_dir: Path, *, deployment: Path | None, origin: str | None, backends: Backends, rng: Rng
) -> list[str]:
    data_dir = prepare_data_dir(data_dir.expanduser().resolve())
    storage = await _open_storage(backends, data_dir, None)
    try:
        empty = await storage.log.size() == 0
    finally:
        await storage.close()
    load_or_create_franking_key(data_dir, rng, create=empty)
    keys, created = load_or_create_transparency_keys(data_dir, rng, origin=origin, create=empty)
    path = _deployment_path(data_dir, deployment)
    load_or_create_deployment(path)
    return [
        f"log origin:   {keys.origin}",
        f"log vkey:     {keys.log.verifier_key.to_text()}",
        f"provider key: {b64encode(keys.provider.public_key.raw)}  (base64url, as in the manifest)",
        f"vrf key:      {b64encode(keys.vrf.public_key.raw)}",
        f"deployment:   {path}",
        f"created:      {', '.join(created) if created else 'nothing (the keys existed)'}",
    ]


async def _announce(
    server: uvicorn.Server, host: str, data_dir: Path, backends: Backends, log_line: str
) -> None:
    while not server.started:
        if server.should_exit:
            return
        await asyncio.sleep(0.01)
    bound = [sock.getsockname() for s in server.servers for sock in (s.sockets or ())]
    port = bound[0][1] if bound else 0
    shown = f"[{host}]" if ":" in host else host
    where = f"data: {data_dir}"
    if backends.storage == STORAGE_POSTGRES or backends.multi_node:
        where += f"; storage: {backends.storage}; pubsub: {backends.pubsub}"
        where += f"; node: {backends.node_id}"
    print(f"Overt server listening on http://{shown}:{port} ({where})", flush=True)
    print(log_line, flush=True)
    sys.stdout.flush()
