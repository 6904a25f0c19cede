"""Key transparency end to end: a real server process, the ``overt`` command line, and the
auditor over HTTP — people converse, their clients prove each other's keys against the log and
monitor their own, and ``overt audit`` verifies the whole log from the outside."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from overt import launch
from overt.transparency.checkpoint import Checkpoint
from overt.transparency.note import Note

pytestmark = pytest.mark.slow


def overt(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "overt.cli.main", "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def ok(home: Path, *args: str) -> str:
    r = overt(home, *args)
    assert r.returncode == 0, f"overt {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}"
    assert "unacknowledged transparency alarm" not in r.stderr
    return r.stdout


def latest_checkpoint(url: str) -> Checkpoint:
    note = Note.from_bytes(httpx.get(f"{url}/v1/log/checkpoint", timeout=10).content)
    return Checkpoint.from_text(note.text)


def test_people_converse_and_the_auditor_verifies_the_log(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with launch.server(tmp_path / "server") as srv:
        ok(home, "--profile", "alice", "--server", srv.url, "account", "create", "alice")
        ok(home, "--profile", "bob", "--server", srv.url, "account", "create", "bob")
        ok(home, "--profile", "alice", "send", "bob", "logged", "keys", "only")
        assert "logged keys only" in ok(home, "--profile", "bob", "inbox", "alice")
        out = ok(home, "--profile", "alice", "alarms", "--check")
        assert "0 new alarm(s)." in out and "No unacknowledged alarms." in out

        earlier = latest_checkpoint(srv.url)
        ok(home, "--profile", "carol", "--server", srv.url, "account", "create", "carol")
        # Carol's client finds her own entry in the log: a checkpoint covers it now.
        ok(home, "--profile", "carol", "alarms", "--check")
        out = ok(home, "audit", "--server", srv.url)
        assert "OK: the log verifies" in out
        assert "key_directory_update   3" in out
        assert "reading entries" in overt(home, "audit", "--server", srv.url).stderr

        since = f"{earlier.size}:{base64.b64encode(earlier.root_hash).decode()}"
        out = ok(home, "audit", "--server", srv.url, "--since", since)
        assert f"still starts with the checkpoint of size {earlier.size}" in out

        forged = f"{earlier.size}:{base64.b64encode(bytes(32)).decode()}"
        r = overt(home, "audit", "--server", srv.url, "--since", forged)
        assert r.returncode == 1 and "AUDIT FAILED" in r.stdout and "rewritten" in r.stdout

        r = overt(home, "audit", "--server", srv.url, "--provider-key", "11" * 32)
        assert r.returncode == 1 and "not the given provider's" in r.stdout
