"""Start Overt's own services (server, witness, custodian, court) as child processes.

Used by ``make demo``, the end-to-end tests and the benchmarks, which all need real separate
processes on loopback. A service announces itself with one stdout line containing
``listening on http://HOST:PORT``; :meth:`Service.start` waits for it and returns the URL.
Output is drained by a thread (so a chatty child never blocks on a full pipe) and kept for
error messages.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from overt.errors import LocalError

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
_KEPT_LINES = 200
_LISTENING = re.compile(r"listening on (http://\S+)")


class Service:
    """One child process running ``python -m overt.cli.main ARGS`` (or any argv)."""

    def __init__(
        self,
        name: str,
        args: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        raw_argv: bool = False,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(args) if raw_argv else [sys.executable, "-m", "overt.cli.main", *args]
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.cwd = cwd
        self.url = ""
        self._proc: subprocess.Popen[str] | None = None
        self._lines: deque[str] = deque(maxlen=_KEPT_LINES)
        self._found = threading.Event()

    def _drain(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self._lines.append(line.rstrip("\n"))
            m = _LISTENING.search(line)
            if m and not self._found.is_set():
                self.url = m.group(1)
                self._found.set()

    def start(self, timeout: float = START_TIMEOUT_S) -> str:
        """Start the process and wait until it listens; return its URL."""
        self._found.clear()
        self._proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            self.argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env=self.env,
            cwd=self.cwd,
        )
        threading.Thread(target=self._drain, args=(self._proc,), daemon=True).start()
        deadline = time.monotonic() + timeout
        while not self._found.wait(0.05):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                out = "\n".join(self._lines)
                self.kill()
                raise LocalError(f"{self.name} did not start; its output was:\n{out}")
        return self.url

    @property
    def pid(self) -> int:
        return -1 if self._proc is None else self._proc.pid

    def output(self) -> str:
        return "\n".join(self._lines)

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM, then SIGKILL if it does not exit in ``timeout`` seconds."""
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.send_signal(signal.SIGTERM)
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL: the crash of a machine, as far as this process can tell."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def server(data_dir: Path, port: int = 0, *, log_level: str = "warning") -> Service:
    """A relay server on loopback with SQLite under ``data_dir`` (port 0: any free port)."""
    return Service(
        "the Overt server",
        ["server", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir),
         "--log-level", log_level],
    )  # fmt: skip
