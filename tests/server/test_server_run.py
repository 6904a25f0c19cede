"""The server as a process (uvicorn on loopback, SQLite in a data directory, SIGTERM), and its
franking key file."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from overt.crypto import DeterministicRng
from overt.errors import ConfigurationError
from overt.server import load_or_create_franking_key

_STARTUP_TIMEOUT_S = 60
_LINE = re.compile(r"Overt server listening on http://127\.0\.0\.1:(\d+) \(data: (.+)\)")


def test_franking_key_is_created_once_with_private_permissions(tmp_path: Path) -> None:
    data = tmp_path / "data"
    key = load_or_create_franking_key(data, DeterministicRng(1))
    assert len(key) == 32
    path = data / "franking.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert load_or_create_franking_key(data, DeterministicRng(2)) == key


def test_a_franking_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    load_or_create_franking_key(tmp_path, DeterministicRng(1))
    path = tmp_path / "franking.key"
    path.chmod(0o644)
    with pytest.raises(ConfigurationError, match="chmod 600"):
        load_or_create_franking_key(tmp_path, DeterministicRng(1))
    path.chmod(0o600)
    path.write_bytes(b"short")
    with pytest.raises(ConfigurationError, match="32 bytes"):
        load_or_create_franking_key(tmp_path, DeterministicRng(1))


def test_run_server_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    data = tmp_path / "server-data"
    code = (
        "import sys; from overt.server import run_server; "
        "run_server('127.0.0.1', 0, sys.argv[1], log_level='warning')"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code, str(data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = _LINE.search(line)
        assert match, line + (process.stderr.read() if process.stderr else "")
        port = int(match.group(1))
        assert Path(match.group(2)) == data.resolve()

        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            assert client.get("/healthz").json() == {"status": "ok"}
            missing = client.get("/v1/accounts/bm9ib2R5")
            assert missing.status_code == 404
            assert missing.json()["error"] == "not_found"
            assert "overt_http_requests_total" in client.get("/metrics").text

        assert (data / "server.db").exists()
        assert stat.S_IMODE((data / "franking.key").stat().st_mode) == 0o600

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=_STARTUP_TIMEOUT_S) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=_STARTUP_TIMEOUT_S)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
