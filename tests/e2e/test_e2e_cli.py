"""The ``overt`` command line against a real server process, as a person would use it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from overt import launch

pytestmark = pytest.mark.slow


def overt(home: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "overt.cli.main", "--home", str(home), *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=60,
        check=False,
    )


def ok(home: Path, *args: str, stdin: str | None = None) -> str:
    r = overt(home, *args, stdin=stdin)
    assert r.returncode == 0, f"overt {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}"
    return r.stdout


def test_two_people_converse_from_the_command_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with launch.server(tmp_path / "server") as srv:
        ok(home, "--profile", "alice", "--server", srv.url, "account", "create", "alice")
        ok(home, "--profile", "bob", "--server", srv.url, "account", "create", "bob")
        out = ok(home, "--profile", "alice-laptop", "device", "link", "--from-profile", "alice")
        assert "device 2" in out
        ok(home, "--profile", "alice", "send", "bob", "hello", "from", "the", "CLI")
        out = ok(home, "--profile", "bob", "inbox", "alice")
        assert "hello from the CLI" in out and "1 new message" in out
        out = ok(home, "--profile", "alice-laptop", "inbox", "bob")
        assert "me → bob: hello from the CLI" in out

        f = tmp_path / "note.txt"
        f.write_text("attached words\n")
        ok(home, "--profile", "alice", "attach", "bob", str(f), "--caption", "see file")
        out = ok(home, "--profile", "bob", "inbox", "alice")
        line = next(x for x in out.splitlines() if "note.txt" in x)
        mid = line.rsplit("id ", 1)[1].rstrip("]")
        target = tmp_path / "saved.txt"
        ok(home, "--profile", "bob", "save", "alice", mid, "-o", str(target))
        assert target.read_text() == "attached words\n"

        out = ok(home, "--profile", "bob", "chat", "alice", stdin="typed in chat\n/quit\n")
        assert "Chatting with alice" in out
        assert "typed in chat" in ok(home, "--profile", "alice", "inbox", "bob")

        a = ok(home, "--profile", "alice", "safety-number", "bob").splitlines()[1:]
        b = ok(home, "--profile", "bob", "safety-number", "alice").splitlines()[1:]
        assert a == b and len("".join(a).split()) == 12


def test_errors_are_readable(tmp_path: Path) -> None:
    home = tmp_path / "home"
    r = overt(home, "--server", "http://127.0.0.1:9", "account", "create", "nobody")
    assert r.returncode == 1
    assert "could not reach the server" in r.stderr
    r = overt(home, "send", "bob", "hi")
    assert r.returncode == 1 and "has no account yet" in r.stderr
    r = overt(home, "no-such-command")
    assert r.returncode == 2
