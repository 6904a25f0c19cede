"""``overt console add-moderator`` / ``moderators`` on a server's SQLite database, and how
``overt report`` resolves message ids."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest

from overt.cli.main import main
from overt.cli.safety import _ids
from overt.crypto.passwords import scrypt_verify
from overt.errors import LocalError
from overt.storage import open_sqlite


def _database(home: Path) -> Path:
    path = home / "server" / "server.db"
    path.parent.mkdir(parents=True)

    async def create() -> None:
        await (await open_sqlite(path)).close()

    asyncio.run(create())
    return path


def test_add_and_list_moderators(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _database(tmp_path)
    monkeypatch.delenv("OVERT_DATABASE_URL", raising=False)
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    assert main(["--home", str(tmp_path), "console", "add-moderator", "lee", "--role", "lead"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["--home", str(tmp_path), "console", "add-moderator", "kim"]) == 1
    monkeypatch.setattr("sys.stdin", io.StringIO("another long password\n"))
    assert main(["--home", str(tmp_path), "console", "add-moderator", "lee"]) == 1
    assert main(["--home", str(tmp_path), "console", "moderators"]) == 0
    out, err = capsys.readouterr()
    assert "lee  lead" in out and "kim" not in out
    assert "at least 12 characters" in err and "exists already" in err

    async def stored() -> str:
        storage = await open_sqlite(path)
        try:
            assert storage.moderators is not None
            record = await storage.moderators.get("lee")
            assert record is not None
            return record.password_hash
        finally:
            await storage.close()

    hashed = asyncio.run(stored())
    assert hashed.startswith("$scrypt$ln=17,r=8,p=1$")
    assert scrypt_verify("a long enough password", hashed)
    assert not scrypt_verify("a long enough passwore", hashed)


def test_without_a_server_database_nothing_is_created(tmp_path: Path) -> None:
    assert main(["--home", str(tmp_path), "console", "moderators"]) == 1
    assert not (tmp_path / "server").exists()


def test_message_ids_resolve_by_unique_prefix() -> None:
    ids = [bytes.fromhex("3f9c0a1b22e4" + "00" * 10), bytes.fromhex("3f9d" + "11" * 14)]
    assert _ids(["3f9c", "3F9D11"], ids) == ids
    for bad in ("3f9", "3f9x", "3f9e", "3f"):
        with pytest.raises(LocalError):
            _ids([bad], ids)
    with pytest.raises(LocalError, match="several"):
        _ids(["3f9c"], [ids[0], ids[0][:15] + b"\x01"])
