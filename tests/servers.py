"""Real services for tests: a throwaway PostgreSQL cluster and throwaway Redis servers.

Both run on 127.0.0.1 on a free port, with their files in a fresh temporary directory, and are
stopped (and their files removed) by the finalizer of the fixture that started them:

* ``postgres_dsn`` (session): the DSN of ``OVERT_TEST_POSTGRES_DSN`` if it is set (tests then
  create and drop their own schemas in that database and touch nothing else); otherwise a
  cluster made by ``initdb`` in a temporary directory and started with ``pg_ctl`` (binaries
  from ``/usr/lib/postgresql/*/bin``, newest first, else ``PATH``). As root, the binaries run
  as the ``postgres`` OS user through ``runuser``, since PostgreSQL refuses to run as root.
* ``redis_server`` (per test): a ``redis-server`` with no persistence that a test may stop and
  start again on the same port (to test reconnection).

When the binaries are missing the tests that need them are skipped, saying what to install;
with ``OVERT_REQUIRE_SERVICES=1`` (set by ``.ci/run``) they fail instead, so CI cannot pass by
skipping them. A conftest makes the fixtures visible by importing them::

    from servers import postgres_dsn, redis_server  # noqa: F401

The fixture's cluster trades durability for speed (``fsync=off``): it is for correctness
tests; ``postgres_cluster(durable=True)`` keeps PostgreSQL's defaults for measurements.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import pytest

POSTGRES_DSN_ENV = "OVERT_TEST_POSTGRES_DSN"
REQUIRE_SERVICES_ENV = "OVERT_REQUIRE_SERVICES"
POSTGRES_OS_USER = "postgres"
START_TIMEOUT_S = 60
"""How long a service may take to start before the fixture gives up (not a test assertion)."""


def service_missing(reason: str) -> NoReturn:
    """Skip the test for ``reason``, or fail it when ``OVERT_REQUIRE_SERVICES=1``."""
    if os.environ.get(REQUIRE_SERVICES_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_SERVICES_ENV}=1 requires every service)", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes]) -> bool:
    """Poll until something accepts on ``127.0.0.1:port``; ``False`` if ``process`` exits or
    :data:`START_TIMEOUT_S` passes."""
    for _ in range(START_TIMEOUT_S * 20):
        if process.poll() is not None:
            return False
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return True
        time.sleep(0.05)
    return False


# ============================================================================= PostgreSQL


def find_postgres_bin() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``: newest under /usr/lib/postgresql, or
    the one on ``PATH``."""

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(p) for p in path.parent.name.split(".") if p.isdigit())

    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
    for directory in candidates:
        if (directory / "initdb").is_file() and (directory / "pg_ctl").is_file():
            return directory
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).resolve().parent
    return None


@dataclass
class PostgresCluster:
    """A throwaway cluster: ``start()`` runs initdb and pg_ctl, ``stop()`` undoes both."""

    bin_dir: Path
    durable: bool = False
    """Keep ``fsync`` on (for measurements); tests run faster without it."""
    port: int = 0
    root: Path = field(default_factory=Path)
    _as_user: list[str] = field(default_factory=list)

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self._as_user, *args], capture_output=True, text=True, check=False, timeout=120
        )

    def start(self) -> None:
        owner: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam(POSTGRES_OS_USER)
            except KeyError:
                service_missing(
                    "PostgreSQL refuses to run as root and there is no 'postgres' user "
                    "(apt-get install postgresql creates it)"
                )
            self._as_user = ["runuser", "-u", POSTGRES_OS_USER, "--"]
        self.root = Path(tempfile.mkdtemp(prefix="overt-pg-"))
        if owner is not None:
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        data = self.root / "data"
        done = self._run(
            str(self.bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        if done.returncode != 0:
            self.stop()
            raise RuntimeError(f"initdb failed:\n{done.stdout}\n{done.stderr}")
        for _ in range(3):  # another process may take the free port before the server does
            self.port = free_port()
            options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root}"
            if not self.durable:
                options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            started = self._run(
                str(self.bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(self.root / "server.log"),
                "-o",
                options,
                "-w",
                "-t",
                str(START_TIMEOUT_S),
                "start",
            )
            if started.returncode == 0:
                return
        log = (self.root / "server.log").read_text(errors="replace")
        self.stop()
        raise RuntimeError(f"pg_ctl start failed:\n{started.stderr}\n{log}")

    def stop(self) -> None:
        if (self.root / "data" / "postmaster.pid").exists():
            self._run(
                str(self.bin_dir / "pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate",
                "-w", "stop",
            )  # fmt: skip
        if self.root != Path() and self.root.exists():
            shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def postgres_cluster(*, durable: bool = False) -> Iterator[PostgresCluster]:
    """A running throwaway cluster for the ``with`` block (skips if PostgreSQL is missing)."""
    bin_dir = find_postgres_bin()
    if bin_dir is None:
        service_missing(
            "PostgreSQL server binaries not found (install the Debian package postgresql, or "
            f"set {POSTGRES_DSN_ENV} to a database the tests may create schemas in)"
        )
    cluster = PostgresCluster(bin_dir, durable=durable)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """A PostgreSQL DSN for the whole session: ``OVERT_TEST_POSTGRES_DSN`` or a throwaway
    cluster. Tests isolate themselves in schemas of their own."""
    given = os.environ.get(POSTGRES_DSN_ENV)
    if given:
        yield given
        return
    with postgres_cluster() as cluster:
        yield cluster.dsn


# ============================================================================= Redis


@dataclass
class RedisServer:
    """A throwaway ``redis-server`` without persistence; ``stop()``/``start()`` keep the port."""

    binary: Path
    port: int = 0
    root: Path = field(default_factory=Path)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        if self.root == Path():
            self.root = Path(tempfile.mkdtemp(prefix="overt-redis-"))
        for _ in range(3):
            if not self.port:
                self.port = free_port()
            with (self.root / "server.log").open("ab") as log:
                self.process = subprocess.Popen(
                    [
                        str(self.binary),
                        "--port", str(self.port),
                        "--bind", "127.0.0.1",
                        "--save", "",
                        "--appendonly", "no",
                        "--dir", str(self.root),
                        "--daemonize", "no",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )  # fmt: skip
            if _wait_for_port(self.port, self.process):
                return
            self._kill()
            self.port = 0
        raise RuntimeError(
            "redis-server did not start:\n" + (self.root / "server.log").read_text(errors="replace")
        )

    def _kill(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def stop(self) -> None:
        """Stop the server (connections drop); ``start()`` brings it back on the same port."""
        self._kill()

    def close(self) -> None:
        self._kill()
        if self.root != Path() and self.root.exists():
            shutil.rmtree(self.root, ignore_errors=True)


def find_redis_server() -> Path | None:
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").is_file() else None
    )
    return None if found is None else Path(found)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A fresh Redis on a free loopback port for one test."""
    binary = find_redis_server()
    if binary is None:
        service_missing("redis-server not found (install the Debian package redis-server)")
    server = RedisServer(binary)
    try:
        server.start()
        yield server
    finally:
        server.close()
