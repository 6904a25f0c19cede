"""Synapse, the Matrix reference homeserver, under the load shape of :mod:`bench.loadgen`.

The ``scale`` group's outside reference: the same number of clients in the same pairs, the same
closed and open loops, the same drain and correctness checks, against a Synapse on this machine.

**Install** (:func:`ensure_installed`): ``matrix-synapse`` from PyPI, pinned
(:data:`SYNAPSE_VERSION`), with pip into its own virtual environment under the benchmark cache
directory (``$OVERT_BENCH_CACHE``, else ``$XDG_CACHE_HOME/overt-bench``, else
``~/.cache/overt-bench``); kept there for the next run. Nothing else is downloaded.

**Server** (:class:`SynapseServer`): ``--generate-config`` makes the signing key; the
configuration itself is written here (YAML is a superset of JSON): one ``client`` listener on
127.0.0.1 and a free port, SQLite in a temporary directory, no federation and no trusted key
servers (nothing leaves the machine), presence off, logging at WARNING to a file (Overt's
server runs at ``warning`` too), and every rate limit raised to 10⁶ per second, as the Overt
server's are in the benchmark. Users are registered through the admin shared-secret API
(``/_synapse/admin/v1/register``, HMAC-SHA1 over nonce, name, password and ``notadmin``).

**Load** (:class:`MatrixLoad`, a :class:`bench.loadgen.LoadGenerator` that keeps its phases,
drain and checks): client ``2k`` creates a private room inviting ``2k+1`` (``preset
trusted_private_chat``, ``is_direct``), which joins it. A send is ``PUT
/_matrix/client/v3/rooms/{room}/send/m.room.message/{txn}`` of an ``m.text`` whose ``body`` is
``body_size`` characters (sender, recipient, sequence number, ``perf_counter()`` at the send,
filler), acknowledged by ``200`` with an ``event_id``. Each client long-polls ``GET
/_matrix/client/v3/sync`` (``timeout`` :data:`SYNC_TIMEOUT_MS`, a filter that keeps only
``m.room.message`` timeline events, up to :data:`TIMELINE_LIMIT` per poll) on a connection of
its own; a message counts as delivered when its recipient's sync returns it, byte for byte the
body that was sent. A ``limited`` timeline (events skipped by the server) is a failure. Matrix
messages here are not end-to-end encrypted: the generator does no cryptography for them.

Everything is bounded: every request has :data:`bench.loadgen.REQUEST_TIMEOUT_S`, installing
:data:`INSTALL_TIMEOUT_S`, starting :data:`START_TIMEOUT_S`; the server process is stopped
(SIGTERM, then SIGKILL) and its directory removed at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib  # noqa: TID251 - Synapse's admin API wants HMAC-SHA1 (its protocol)
import hmac  # noqa: TID251 - (overt.crypto has no SHA-1, rightly)
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

from bench.core import BenchError
from bench.loadgen import (
    REQUEST_TIMEOUT_S,
    SETUP_CONCURRENCY,
    HttpError,
    HttpPool,
    LoadGenerator,
    PhaseStats,
    ProcessProbe,
    _Pending,
)
from overt.devservices import free_port

SYNAPSE_VERSION: Final = "1.163.2"
"""The ``matrix-synapse`` release installed (pinned, so that runs compare)."""

INSTALL_TIMEOUT_S: Final = 900
START_TIMEOUT_S: Final = 120
STOP_TIMEOUT_S: Final = 15
POLL_S: Final = 0.2
SYNC_TIMEOUT_MS: Final = 10_000
"""Long-poll of one ``/sync`` (well under the request timeout)."""
TIMELINE_LIMIT: Final = 1000
"""Timeline events one ``/sync`` may return per room before it says ``limited``."""
RATE_UNLIMITED: Final = {"per_second": 1_000_000, "burst_count": 1_000_000}
MAX_SYNC_POLLS: Final = 10_000_000
"""Count bound of one client's sync loop (its real bound is the run's end)."""
SERVER_NAME: Final = "localhost"

_FILTER: Final = json.dumps(
    {
        "presence": {"types": []},
        "account_data": {"types": []},
        "room": {
            "timeline": {"limit": TIMELINE_LIMIT, "types": ["m.room.message"]},
            "state": {"types": []},
            "ephemeral": {"types": []},
            "account_data": {"types": []},
        },
    },
    separators=(",", ":"),
)


class SynapseUnavailable(Exception):
    """Synapse could not be installed or started here (the impl is skipped, not faked)."""


def cache_dir() -> Path:
    given = os.environ.get("OVERT_BENCH_CACHE")
    if given:
        return Path(given)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "overt-bench"


def _installed_version(python: Path) -> str | None:
    if not python.exists():
        return None
    done = subprocess.run(
        [str(python), "-c", "import synapse; print(synapse.__version__)"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.stdout.strip() if done.returncode == 0 else None


def ensure_installed(
    version: str = SYNAPSE_VERSION, progress: Callable[[str], None] = print
) -> Path:
    """The Python of a virtual environment holding ``matrix-synapse==version`` (installed with
    pip on first use); :class:`SynapseUnavailable` if that fails."""
    venv = cache_dir() / f"synapse-{version}"
    python = venv / "bin" / "python"
    if _installed_version(python) == version:
        return python
    progress(f"synapse: installing matrix-synapse=={version} with pip into {venv} ...")
    started = time.perf_counter()
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    try:
        steps = (
            [sys.executable, "-m", "venv", str(venv)],
            [str(python), "-m", "pip", "install", "--quiet", f"matrix-synapse=={version}"],
        )
        for argv in steps:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False
            )
            if done.returncode != 0:
                tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-8:])
                raise SynapseUnavailable(f"{' '.join(argv[:4])} failed:\n{tail}")
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SynapseUnavailable(f"installing Synapse: {type(exc).__name__}: {exc}") from exc
    if _installed_version(python) != version:
        raise SynapseUnavailable(f"matrix-synapse {version} does not import after installing")
    progress(f"synapse: installed in {time.perf_counter() - started:.0f} s")
    return python


class SynapseServer:
    """One Synapse process on 127.0.0.1 with SQLite in a temporary directory."""

    def __init__(self, python: Path) -> None:
        self.python = python
        self.root = Path(tempfile.mkdtemp(prefix="overt-bench-synapse-"))
        self.port = 0
        self.shared_secret = secrets.token_hex(32)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return -1 if self.process is None else self.process.pid

    def _configure(self) -> Path:
        root = self.root
        generated = root / "generated.yaml"
        done = subprocess.run(
            [str(self.python), "-m", "synapse.app.homeserver", "--server-name", SERVER_NAME,
             "--config-path", str(generated), "--data-directory", str(root),
             "--generate-config", "--report-stats=no"],
            capture_output=True, text=True, timeout=START_TIMEOUT_S, check=False,
        )  # fmt: skip
        key = root / f"{SERVER_NAME}.signing.key"
        if done.returncode != 0 or not key.exists():
            raise SynapseUnavailable(f"synapse --generate-config failed:\n{done.stderr[-2000:]}")
        log_config = root / "log.json"
        log_config.write_text(json.dumps({
            "version": 1,
            "formatters": {"plain": {"format": "%(asctime)s %(name)s %(levelname)s %(message)s"}},
            "handlers": {"file": {"class": "logging.FileHandler", "formatter": "plain",
                                  "filename": str(root / "homeserver.log")}},
            "root": {"level": "WARNING", "handlers": ["file"]},
            "disable_existing_loggers": False,
        }))  # fmt: skip
        self.port = free_port()
        config = {
            "server_name": SERVER_NAME,
            "pid_file": str(root / "homeserver.pid"),
            "listeners": [{
                "port": self.port, "bind_addresses": ["127.0.0.1"], "type": "http",
                "tls": False, "x_forwarded": False,
                "resources": [{"names": ["client"], "compress": False}],
            }],
            "database": {"name": "sqlite3", "args": {"database": str(root / "homeserver.db")}},
            "log_config": str(log_config),
            "media_store_path": str(root / "media"),
            "signing_key_path": str(key),
            "registration_shared_secret": self.shared_secret,
            "macaroon_secret_key": secrets.token_hex(32),
            "form_secret": secrets.token_hex(32),
            "report_stats": False,
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "federation_domain_whitelist": [],
            "presence": {"enabled": False},
            "url_preview_enabled": False,
            "rc_message": RATE_UNLIMITED,
            "rc_registration": RATE_UNLIMITED,
            "rc_login": {"address": RATE_UNLIMITED, "account": RATE_UNLIMITED,
                         "failed_attempts": RATE_UNLIMITED},
            "rc_joins": {"local": RATE_UNLIMITED, "remote": RATE_UNLIMITED},
            "rc_invites": {"per_room": RATE_UNLIMITED, "per_user": RATE_UNLIMITED,
                           "per_issuer": RATE_UNLIMITED},
            "rc_room_creation": RATE_UNLIMITED,
        }  # fmt: skip
        path = root / "homeserver.yaml"
        path.write_text(json.dumps(config, indent=1))
        return path

    def start(self) -> str:
        """Configure, start and wait until the client API answers; return its URL."""
        config = self._configure()
        with (self.root / "stdout.log").open("ab") as out:
            self.process = subprocess.Popen(
                [str(self.python), "-m", "synapse.app.homeserver", "--config-path", str(config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.root,
            )
        import urllib.request  # noqa: PLC0415 - only for this readiness probe

        for _ in range(int(START_TIMEOUT_S / POLL_S)):
            if self.process.poll() is not None:
                break
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{self.url}/_matrix/client/versions", timeout=5) as answer,
            ):
                if answer.status == 200:
                    return self.url
            time.sleep(POLL_S)
        log = (self.root / "stdout.log").read_text(errors="replace")[-3000:]
        self.stop()
        raise SynapseUnavailable(f"Synapse did not start; its output ended with:\n{log}")

    def stop(self) -> None:
        """SIGTERM, SIGKILL if need be; remove the directory. Idempotent."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def synapse_server(python: Path) -> Iterator[SynapseServer]:
    server = SynapseServer(python)
    try:
        server.start()
        yield server
    finally:
        server.stop()


# ----------------------------------------------------------------------------- load


class MatrixClient:
    """One Matrix user: an access token, a room shared with its partner, two connections
    pools (sends; the ``/sync`` long poll)."""

    def __init__(self, index: int, url: str, name: str, max_connections: int) -> None:
        self.index = index
        self.url = url
        self.name = name
        self.user_id = f"@{name}:{SERVER_NAME}"
        self.token = ""
        self.pool = HttpPool(url, max_connections)
        self.sync_pool = HttpPool(url, 1)
        self.peer: MatrixClient | None = None
        self.room = ""
        self.since = ""
        self.sequence = 0
        self.seen: set[bytes] = set()

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def _json(status: int, answer: bytes, what: str) -> dict[str, Any]:
    if status != 200:
        raise BenchError(f"synapse: {what}: {status} {answer[:300]!r}")
    data: dict[str, Any] = json.loads(answer)
    return data


class MatrixLoad(LoadGenerator):
    """:class:`bench.loadgen.LoadGenerator`'s phases against a Synapse server."""

    def __init__(
        self,
        server: SynapseServer,
        clients: int,
        *,
        probes: list[ProcessProbe],
        body_size: int,
        progress: Callable[[str], None],
    ) -> None:
        super().__init__([server.url], clients, probes=probes, body_size=body_size,
                         progress=progress)  # fmt: skip
        self.server = server
        self.matrix: list[MatrixClient] = []
        self._by_user: dict[str, MatrixClient] = {}

    async def setup(self) -> None:
        """Register, pair (a room per pair), sync once and exchange one message each way."""
        started = time.perf_counter()
        for i in range(self.n):
            c = MatrixClient(i, self.server.url, f"lg{self._run_tag}_{i:05d}",
                             self._max_connections)  # fmt: skip
            self.matrix.append(c)
            self._by_user[c.user_id] = c
        self.clients = self.matrix  # type: ignore[assignment]  # the phases index this list
        limit = asyncio.Semaphore(SETUP_CONCURRENCY)

        async def bounded(job: Awaitable[None]) -> None:
            async with limit:
                await job

        await asyncio.gather(*(bounded(self._register(c)) for c in self.matrix))
        self._progress(f"synapse setup: {self.n} users registered in "
                       f"{time.perf_counter() - started:.1f} s")  # fmt: skip
        t = time.perf_counter()
        for k in range(0, self.n, 2):
            a, b = self.matrix[k], self.matrix[k + 1]
            a.peer, b.peer = b, a
        await asyncio.gather(*(bounded(self._pair(c)) for c in self.matrix[0::2]))
        await asyncio.gather(*(bounded(self._first_sync(c)) for c in self.matrix))
        self._receivers = [asyncio.ensure_future(self._sync_forever(c)) for c in self.matrix]
        self._progress(f"synapse setup: {self.n // 2} rooms made and joined in "
                       f"{time.perf_counter() - t:.1f} s")  # fmt: skip
        warm = PhaseStats("setup")
        self._phase = warm
        for senders in (self.matrix[0::2], self.matrix[1::2]):
            await asyncio.gather(*(self._send(c, warm) for c in senders))  # type: ignore[arg-type]
            await self._drain(warm, REQUEST_TIMEOUT_S)
        self.check()
        if warm.verified != self.n:
            raise BenchError(f"synapse setup exchange: {warm.verified}/{self.n} delivered")
        self._progress(f"synapse setup: done in {time.perf_counter() - started:.1f} s")

    async def _register(self, c: MatrixClient) -> None:  # type: ignore[override]
        target = "/_synapse/admin/v1/register"
        nonce = _json(*await c.pool.request("GET", target, {}), "register nonce")["nonce"]
        password = secrets.token_hex(8)
        mac = hmac.new(self.server.shared_secret.encode(), digestmod=hashlib.sha1)
        mac.update(b"\x00".join((nonce.encode(), c.name.encode(), password.encode(),
                                 b"notadmin")))  # fmt: skip
        body = json.dumps({"nonce": nonce, "username": c.name, "password": password,
                           "admin": False, "mac": mac.hexdigest()}).encode()  # fmt: skip
        answer = _json(*await c.pool.request("POST", target, {}, body), "register")
        c.token = answer["access_token"]
        if answer["user_id"] != c.user_id:
            raise BenchError(f"synapse registered {answer['user_id']}, not {c.user_id}")

    async def _pair(self, c: MatrixClient) -> None:
        peer = c.peer
        assert peer is not None
        body = json.dumps({"preset": "trusted_private_chat", "invite": [peer.user_id],
                           "is_direct": True}).encode()  # fmt: skip
        room = _json(*await c.pool.request("POST", "/_matrix/client/v3/createRoom",
                                           c.headers(), body), "createRoom")["room_id"]  # fmt: skip
        _json(*await peer.pool.request("POST", f"/_matrix/client/v3/join/{quote(room)}",
                                       peer.headers(), b"{}"), "join")  # fmt: skip
        c.room = peer.room = room

    async def _first_sync(self, c: MatrixClient) -> None:
        target = f"/_matrix/client/v3/sync?timeout=0&filter={quote(_FILTER)}"
        c.since = _json(*await c.sync_pool.request("GET", target, c.headers()), "sync")[
            "next_batch"
        ]

    async def _send(self, c: MatrixClient, phase: PhaseStats) -> None:  # type: ignore[override]
        peer = c.peer
        assert peer is not None
        c.sequence += 1
        t0 = time.perf_counter()
        head = f"{c.index} {peer.index} {c.sequence} {t0!r} "
        text = head + self._fillers[c.sequence % 64].hex()[: max(0, self.body_size - len(head))]
        txn = f"{self._run_tag}-{c.index}-{c.sequence}"
        key = txn.encode()
        pending = _Pending(c.index, peer.index, text.encode(), phase)
        self.pending[key] = pending
        body = json.dumps({"msgtype": "m.text", "body": text}).encode()
        target = f"/_matrix/client/v3/rooms/{quote(c.room)}/send/m.room.message/{txn}"
        try:
            status, answer = await c.pool.request("PUT", target, c.headers(), body)
        except (HttpError, TimeoutError, OSError) as exc:
            status, answer = 0, repr(exc).encode()
        if status == 200 and "event_id" in json.loads(answer):
            pending.acked = True
            phase.sent += 1
        else:
            phase.send_errors += 1
            self.pending.pop(key, None)
            self._fail(f"synapse send by client {c.index}: {status} {answer[:200]!r}")

    def _on_event(self, c: MatrixClient, event: dict[str, Any]) -> None:
        if event.get("type") != "m.room.message" or event.get("sender") == c.user_id:
            return
        text = str(event.get("content", {}).get("body", ""))
        sender, recipient, sequence, t0_text = text.split(" ", 4)[:4]
        key = f"{self._run_tag}-{sender}-{sequence}".encode()
        if key in c.seen:
            self._phase.duplicates += 1
            return
        pending = self.pending.get(key)
        if pending is None or pending.recipient != c.index or int(recipient) != c.index:
            self._fail(f"synapse client {c.index} got a message nobody sent it: {text[:60]!r}")
            return
        now = time.perf_counter()
        c.seen.add(key)
        del self.pending[key]
        if (
            text.encode() != pending.body
            or event.get("sender") != self.matrix[pending.sender].user_id
        ):
            self._fail(f"synapse client {c.index}: message {key!r} arrived altered")
            return
        phase = pending.phase
        phase.verified += 1
        t0 = float(t0_text)
        if phase.window_start <= t0 < phase.window_end:
            phase.latencies_s.append(now - t0)
        if phase.window_start <= now <= phase.window_end:
            phase.delivered_in_window += 1

    async def _sync_forever(self, c: MatrixClient) -> None:
        filter_q = quote(_FILTER)
        try:
            for _ in range(MAX_SYNC_POLLS):
                if self._closing:
                    return
                target = (f"/_matrix/client/v3/sync?timeout={SYNC_TIMEOUT_MS}"
                          f"&filter={filter_q}&since={quote(c.since)}")  # fmt: skip
                data = _json(*await c.sync_pool.request("GET", target, c.headers()), "sync")
                room = data.get("rooms", {}).get("join", {}).get(c.room)
                if room is not None:
                    timeline = room.get("timeline", {})
                    if timeline.get("limited"):
                        self._fail(f"synapse client {c.index}: a sync skipped events (limited)")
                    for event in timeline.get("events", ()):
                        try:
                            self._on_event(c, event)
                        except Exception as exc:  # a failed check must not stop the loop
                            self._fail(f"synapse client {c.index}: {type(exc).__name__}: {exc}")
                c.since = data["next_batch"]
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not self._closing:
                self._fail(f"synapse client {c.index}: sync failed: {type(exc).__name__}: {exc}")

    async def close(self) -> None:
        self._closing = True
        for task in self._receivers:
            task.cancel()
        if self._receivers:
            await asyncio.wait(self._receivers, timeout=REQUEST_TIMEOUT_S)
        for c in self.matrix:
            c.pool.close()
            c.sync_pool.close()
