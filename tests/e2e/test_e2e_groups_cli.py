"""Group conversations from the ``overt`` command line against a real server process: three
people, a file sent to the group and saved by a member, a removal, and the removed one reads
nothing sent afterwards (text or file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from overt import launch

from .test_e2e_cli import ok, overt

pytestmark = pytest.mark.slow


def test_a_group_of_three_and_a_removal_from_the_command_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with launch.server(tmp_path / "server") as srv:
        for name in ("alice", "bob", "carol"):
            ok(home, "--profile", name, "--server", srv.url, "account", "create", name)
        out = ok(home, "--profile", "alice", "group", "create", "lunch", "--member", "bob",
                 "--member", "carol")  # fmt: skip
        assert "Created group 'lunch' with alice, bob, carol" in out
        ok(home, "--profile", "alice", "group", "send", "lunch", "noon", "today?")

        out = ok(home, "--profile", "bob", "inbox")
        assert "1 new message" in out and "#lunch: " in out and "noon today?" in out
        out = ok(home, "--profile", "carol", "group", "history", "lunch")
        assert "#lunch alice (device 1): noon today?" in out
        ok(home, "--profile", "carol", "group", "send", "lunch", "count", "me", "in")
        out = ok(home, "--profile", "bob", "group", "members", "lunch")
        assert "alice (admin): devices 1; member since version 1" in out

        out = ok(home, "--profile", "bob", "group", "report", "lunch")
        line = next(x for x in out.splitlines() if "count me in" in x)
        out = ok(home, "--profile", "bob", "group", "report", "lunch", line.split()[0],
                 "--category", "spam")  # fmt: skip
        assert "Reported 1 message(s)" in out

        notes = tmp_path / "menu.txt"
        notes.write_text("soup, bread\n")
        out = ok(home, "--profile", "alice", "group", "attach", "lunch", str(notes),
                 "--caption", "the menu")  # fmt: skip
        assert "Sent menu.txt to lunch" in out
        out = ok(home, "--profile", "bob", "inbox")
        assert "#lunch: " in out and "the menu [file menu.txt, 12 bytes, id " in out
        out = ok(home, "--profile", "carol", "group", "history", "lunch")
        line = next(x for x in out.splitlines() if "[file menu.txt" in x)
        mid = line.split(", id ")[1].rstrip("]")
        saved = tmp_path / "saved.txt"
        out = ok(home, "--profile", "carol", "save", "lunch", mid, "-o", str(saved))
        assert "hashes checked" in out and saved.read_text() == "soup, bread\n"
        out = ok(home, "--profile", "carol", "group", "report", "lunch", mid, "--category", "spam",
                 "--no-attachments")  # fmt: skip
        assert "Reported 1 message(s)" in out

        out = ok(home, "--profile", "alice", "group", "remove", "lunch", "carol")
        assert "Removed carol" in out and "version 2" in out
        ok(home, "--profile", "alice", "group", "send", "lunch", "without", "carol")
        ok(home, "--profile", "bob", "group", "send", "lunch", "agreed")
        secret = tmp_path / "after.txt"
        secret.write_text("not for carol\n")
        ok(home, "--profile", "alice", "group", "attach", "lunch", str(secret))

        out = ok(home, "--profile", "bob", "group", "history", "lunch")
        assert "count me in" in out and "without carol" in out and "[file after.txt" in out
        out = ok(home, "--profile", "carol", "group", "history", "lunch")
        assert "0 new message(s)" in out
        assert "noon today?" in out and "without carol" not in out and "agreed" not in out
        assert "after.txt" not in out
        assert "[removed]" in ok(home, "--profile", "carol", "group", "list")
        r = overt(home, "--profile", "carol", "group", "send", "lunch", "hello?")
        assert r.returncode == 1 and "no longer in the group" in r.stderr

        out = ok(home, "--profile", "alice", "chat", "--group", "lunch", stdin="from chat\n/quit\n")
        assert "Chatting in 'lunch'" in out
        assert "from chat" in ok(home, "--profile", "bob", "group", "history", "lunch")


def test_group_errors_are_readable(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with launch.server(tmp_path / "server") as srv:
        ok(home, "--profile", "alice", "--server", srv.url, "account", "create", "alice")
        r = overt(home, "--profile", "alice", "group", "send", "nowhere", "hi")
        assert r.returncode == 1 and "no group 'nowhere'" in r.stderr
        r = overt(home, "--profile", "alice", "group", "create", "g", "--member", "nobody")
        assert r.returncode == 1 and "no account named 'nobody'" in r.stderr
        r = overt(home, "--profile", "alice", "save", "No Such", "1a2b")
        assert r.returncode == 1 and "no group 'No Such'" in r.stderr
        assert "not an account name either" in r.stderr
        r = overt(home, "--profile", "alice", "save", "alice", "1a2b")
        assert r.returncode == 1 and "no attachment message starting with '1a2b'" in r.stderr
        r = overt(home, "--profile", "alice", "group", "frobnicate")
        assert r.returncode == 2
