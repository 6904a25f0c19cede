"""Throwaway PostgreSQL clusters and Redis servers on loopback, for tests, benchmarks and trying
out several server nodes on one machine.

Both run on 127.0.0.1 on a free port with their files in a fresh temporary directory, and
``stop``/``close`` remove those files again:

* :class:`PostgresCluster` — ``initdb`` then ``pg_ctl start`` (binaries from
  ``/usr/lib/postgresql/*/bin``, newest first, else ``PATH``). As root, the binaries run as the
  ``postgres`` OS user through ``runuser``, since PostgreSQL refuses to run as root. By default
  the cluster trades durability for speed (``fsync=off``): right for correctness tests;
  ``durable=True`` keeps PostgreSQL's defaults, for measurements.
* :class:`RedisServer` — a ``redis-server`` without persistence that may be stopped and started
  again on the same port (to test reconnection).

A missing binary raises :class:`ServiceMissing`, whose message says what to install (the test
fixtures in ``tests/servers.py`` turn it into a skip, or a failure under
``OVERT_REQUIRE_SERVICES=1``). From a shell::

    python -m overt.devservices        # start both, print their URLs, stop on Ctrl-C

This module starts local processes only; it never contacts anything but 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from overt.errors import LocalError

__all__ = [
    "START_TIMEOUT_S",
    "PostgresCluster",
    "RedisServer",
    "ServiceMissing",
    "find_postgres_bin",
    "find_redis_server",
    "free_port",
    "postgres_cluster",
    "redis_server",
]

START_TIMEOUT_S: Final = 60
"""How long a service may take to start before giving up."""

STOP_TIMEOUT_S: Final = 10
"""How long a stopped Redis gets to exit before it is killed."""

COMMAND_TIMEOUT_S: Final = 120
"""How long one ``initdb`` or ``pg_ctl`` run may take."""

START_ATTEMPTS: Final = 3
"""Ports tried: another process may take the free port before the server does."""

POSTGRES_OS_USER: Final = "postgres"
POLL_S: Final = 0.05


class ServiceMissing(LocalError):
    """The binaries of a service are not installed (the message says what to install)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes]) -> bool:
    """Poll until something accepts on ``127.0.0.1:port``; ``False`` if ``process`` exits or
    :data:`START_TIMEOUT_S` passes."""
    for _ in range(int(START_TIMEOUT_S / POLL_S)):
        if process.poll() is not None:
            return False
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return True
        time.sleep(POLL_S)
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
        """The superuser's DSN for the ``postgres`` database (trust authentication)."""
        return self.dsn_for("postgres")

    def dsn_for(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - PostgreSQL's own binaries, fixed arguments
            [*self._as_user, *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=COMMAND_TIMEOUT_S,
        )

    def start(self) -> None:
        """Create and start the cluster. ``ServiceMissing`` if PostgreSQL cannot run here;
        ``LocalError`` if it does not start (with its log)."""
        owner: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam(POSTGRES_OS_USER)
            except KeyError:
                raise ServiceMissing(
                    "PostgreSQL refuses to run as root and there is no 'postgres' user "
                    "(apt-get install postgresql creates it)"
                ) from None
            self._as_user = ["runuser", "-u", POSTGRES_OS_USER, "--"]
        self.root = Path(tempfile.mkdtemp(prefix="overt-pg-"))
        if owner is not None:
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        data = self.root / "data"
        done = self._run(
            str(self.bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
            "-E", "UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        if done.returncode != 0:
            self.stop()
            raise LocalError(f"initdb failed:\n{done.stdout}\n{done.stderr}")
        started: subprocess.CompletedProcess[str] | None = None
        for _ in range(START_ATTEMPTS):
            self.port = free_port()
            options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root}"
            if not self.durable:
                options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            started = self._run(
                str(self.bin_dir / "pg_ctl"), "-D", str(data), "-l", str(self.root / "server.log"),
                "-o", options, "-w", "-t", str(START_TIMEOUT_S), "start",
            )  # fmt: skip
            if started.returncode == 0:
                return
        log = (self.root / "server.log").read_text(errors="replace")
        self.stop()
        stderr = "" if started is None else started.stderr
        raise LocalError(f"pg_ctl start failed:\n{stderr}\n{log}")

    def create_database(self, name: str) -> str:
        """Create an empty database ``name`` (letters, digits, ``_``); return its DSN."""
        if not name.replace("_", "").isalnum() or not name.isascii():
            raise LocalError(f"not a plain database name: {name!r}")
        done = self._run(
            str(self.bin_dir / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
            "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", f'CREATE DATABASE "{name}"',
        )  # fmt: skip
        if done.returncode != 0:
            raise LocalError(f"CREATE DATABASE {name} failed:\n{done.stderr}")
        return self.dsn_for(name)

    def stop(self) -> None:
        """Stop the server at once and delete its files. Idempotent."""
        if (self.root / "data" / "postmaster.pid").exists():
            self._run(
                str(self.bin_dir / "pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate",
                "-w", "stop",
            )  # fmt: skip
        if self.root != Path() and self.root.exists():
            shutil.rmtree(self.root, ignore_errors=True)


def postgres_missing_reason() -> str:
    return "PostgreSQL server binaries not found (install the Debian package postgresql)"


@contextlib.contextmanager
def postgres_cluster(*, durable: bool = False) -> Iterator[PostgresCluster]:
    """A running throwaway cluster for the ``with`` block; ``ServiceMissing`` without
    PostgreSQL."""
    bin_dir = find_postgres_bin()
    if bin_dir is None:
        raise ServiceMissing(postgres_missing_reason())
    cluster = PostgresCluster(bin_dir, durable=durable)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


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
        """Start (or restart on the same port); ``LocalError`` with its log if it does not."""
        if self.root == Path():
            self.root = Path(tempfile.mkdtemp(prefix="overt-redis-"))
        for _ in range(START_ATTEMPTS):
            if not self.port:
                self.port = free_port()
            with (self.root / "server.log").open("ab") as log:
                self.process = subprocess.Popen(  # noqa: S603 - redis-server, fixed arguments
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
        raise LocalError(
            "redis-server did not start:\n" + (self.root / "server.log").read_text(errors="replace")
        )

    def _kill(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    @property
    def pid(self) -> int:
        return -1 if self.process is None else self.process.pid

    def stop(self) -> None:
        """Stop the server (connections drop); ``start()`` brings it back on the same port."""
        self._kill()

    def close(self) -> None:
        """Stop the server and delete its files. Idempotent."""
        self._kill()
        if self.root != Path() and self.root.exists():
            shutil.rmtree(self.root, ignore_errors=True)


def find_redis_server() -> Path | None:
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").is_file() else None
    )
    return None if found is None else Path(found)


def redis_missing_reason() -> str:
    return "redis-server not found (install the Debian package redis-server)"


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    """A running throwaway Redis for the ``with`` block; ``ServiceMissing`` without Redis."""
    binary = find_redis_server()
    if binary is None:
        raise ServiceMissing(redis_missing_reason())
    server = RedisServer(binary)
    try:
        server.start()
        yield server
    finally:
        server.close()


# ============================================================================= command line


def main(argv: list[str] | None = None) -> int:
    """Start a throwaway PostgreSQL and Redis, print their URLs, stop both on Ctrl-C/SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m overt.devservices",
        description="Run a throwaway PostgreSQL and Redis on 127.0.0.1 until Ctrl-C (their "
        "files live in temporary directories and are deleted at the end).",
    )
    parser.add_argument(
        "--durable", action="store_true", help="keep PostgreSQL's fsync on (default: off)"
    )
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        with (
            postgres_cluster(durable=args.durable) as cluster,
            redis_server() as redis,
        ):
            dsn = cluster.create_database("overt")
            print(f"PostgreSQL: {dsn}", flush=True)
            print(f"Redis:      {redis.url}", flush=True)
            print("Press Ctrl-C to stop both and delete their files.", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                while not stop.wait(1.0):
                    pass
    except LocalError as e:
        print(f"overt.devservices: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
