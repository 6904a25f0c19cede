"""The durable files the custodian and witness services share (overt.services._files): atomic
writes, secret files, the state file, and the exact wording each service keeps in its errors."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from overt.errors import ConfigurationError, DecodeError
from overt.services import custodian, witness
from overt.services._files import StateFile, create_secret, read_secret, write_atomically
from overt.services.custodian_client import CustodianClient, PartyUnavailable, ProviderClient


class Blob:
    """A stand-in state: any bytes starting with ``ok``."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def to_bytes(self) -> bytes:
        return self.data

    @classmethod
    def from_bytes(cls, data: bytes) -> Blob:
        if not data.startswith(b"ok"):
            raise DecodeError("not a blob")
        return cls(data)


def blob_file(path: Path, max_bytes: int = 64) -> StateFile[Blob]:
    return StateFile(
        path, decode=Blob.from_bytes, max_bytes=max_bytes, party="test", consequence="it hurts"
    )


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


# ----------------------------------------------------------------------------- atomic writes


@settings(max_examples=30, deadline=None)
@given(
    old=st.binary(max_size=300), new=st.binary(max_size=300), mode=st.sampled_from([0o600, 0o644])
)
def test_write_atomically_replaces_the_whole_file(old: bytes, new: bytes, mode: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "f"
        write_atomically(path, old, mode)
        write_atomically(path, new, mode)
        assert path.read_bytes() == new
        assert stat.S_IMODE(path.stat().st_mode) == mode
        assert leftovers(Path(d)) == []


def test_write_atomically_defaults_to_0600(tmp_path: Path) -> None:
    write_atomically(tmp_path / "f", b"x")
    assert stat.S_IMODE((tmp_path / "f").stat().st_mode) == 0o600


def test_failed_rename_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "state"
    target.mkdir()
    (target / "inside").write_bytes(b"old")
    with pytest.raises(OSError):
        write_atomically(target, b"new")
    assert (target / "inside").read_bytes() == b"old"
    assert leftovers(tmp_path) == []


# ----------------------------------------------------------------------------- secrets


def test_create_secret_is_0600_and_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "k"
    create_secret(path, b"secret")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(FileExistsError):
        create_secret(path, b"other")
    assert path.read_bytes() == b"secret"


def test_read_secret_reads_one_byte_past_the_limit_and_closes(tmp_path: Path) -> None:
    path = tmp_path / "k"
    create_secret(path, b"0123456789")
    fd = os.open(path, os.O_RDONLY)
    assert read_secret(fd, path, 4) == b"01234"
    with pytest.raises(OSError):
        os.fstat(fd)


def test_read_secret_refuses_a_file_others_can_read(tmp_path: Path) -> None:
    path = tmp_path / "k"
    create_secret(path, b"secret")
    path.chmod(0o640)
    with pytest.raises(ConfigurationError) as e:
        read_secret(os.open(path, os.O_RDONLY), path, 64, advice=" and restart")
    assert str(e.value) == (
        f"{path} is readable by other users; run `chmod 600 {path}` and restart"
    )


# ----------------------------------------------------------------------------- state file


def test_state_file_round_trip_and_absence(tmp_path: Path) -> None:
    store = blob_file(tmp_path / "s")
    assert store.load() is None
    store.save(Blob(b"ok state"))
    loaded = store.load()
    assert loaded is not None and loaded.data == b"ok state"
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600


def test_state_file_reads_only_up_to_its_limit(tmp_path: Path) -> None:
    store = blob_file(tmp_path / "s", max_bytes=4)
    store.save(Blob(b"ok and more"))
    loaded = store.load()
    assert loaded is not None and loaded.data == b"ok an"


def test_failed_save_changes_nothing(tmp_path: Path) -> None:
    store = blob_file(tmp_path / "missing-dir" / "s")
    with pytest.raises(OSError):
        store.save(Blob(b"ok"))
    assert not (tmp_path / "missing-dir").exists()


# ----------------------------------------------------------------------------- each party's words


def test_witness_state_errors_name_the_witness_and_the_consequence(tmp_path: Path) -> None:
    path = tmp_path / witness.STATE_FILE_NAME
    path.write_bytes(b"garbage")
    with pytest.raises(ConfigurationError) as e:
        witness.FileStore(path).load()
    text = str(e.value)
    assert text.startswith(f"the witness state {path} is unreadable (")
    assert text.endswith(
        "); restore it from a backup — starting from an empty state would let the witness "
        "sign a split view"
    )
    path.unlink()
    path.mkdir()
    with pytest.raises(ConfigurationError, match=r"^cannot read the witness state "):
        witness.FileStore(path).load()


def test_custodian_state_errors_name_the_custodian_and_the_consequence(tmp_path: Path) -> None:
    path = tmp_path / custodian.STATE_FILE_NAME
    path.write_bytes(b"garbage")
    with pytest.raises(ConfigurationError) as e:
        custodian.StateFile(path).load()
    text = str(e.value)
    assert text.startswith(f"the custodian state {path} is unreadable (")
    assert text.endswith(
        "); restore it from a backup — starting afresh would forget what was released and "
        "the shares held"
    )
    path.unlink()
    path.mkdir()
    with pytest.raises(ConfigurationError, match=r"^cannot read the custodian state "):
        custodian.StateFile(path).load()


def test_key_file_errors_keep_each_party_s_words(tmp_path: Path) -> None:
    witness.load_or_create_key(tmp_path / "w")
    wkey = tmp_path / "w" / witness.KEY_FILE_NAME
    wkey.chmod(0o644)
    with pytest.raises(ConfigurationError) as e:
        witness.load_or_create_key(tmp_path / "w")
    assert str(e.value) == f"{wkey} is readable by other users; run `chmod 600 {wkey}` and restart"
    wkey.chmod(0o600)
    wkey.write_bytes(b"x" * (witness.MAX_KEY_FILE_BYTES + 1))
    with pytest.raises(ConfigurationError) as e:
        witness.load_or_create_key(tmp_path / "w")
    assert str(e.value) == (
        f"{wkey} is not a witness key (witness key: file too large); restore it from a backup"
    )

    custodian.load_or_create_keys(tmp_path / "c")
    ckey = tmp_path / "c" / custodian.KEY_FILE_NAME
    ckey.chmod(0o644)
    with pytest.raises(ConfigurationError) as e:
        custodian.load_or_create_keys(tmp_path / "c")
    assert str(e.value) == f"{ckey} is readable by other users; run `chmod 600 {ckey}`"
    ckey.chmod(0o600)
    ckey.write_bytes(b"x" * (custodian.MAX_KEY_FILE_BYTES + 1))
    with pytest.raises(ConfigurationError) as e:
        custodian.load_or_create_keys(tmp_path / "c")
    assert str(e.value) == f"{ckey} is too large to be a custodian key file"


# ----------------------------------------------------------------------------- clients


def _unreachable(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("refused", request=request)


@pytest.mark.parametrize(
    ("cls", "party"), [(CustodianClient, "custodian"), (ProviderClient, "the provider")]
)
async def test_clients_name_their_party(
    cls: type[CustodianClient] | type[ProviderClient], party: str
) -> None:
    async with cls("http://127.0.0.1:9/", transport=httpx.MockTransport(_unreachable)) as client:
        assert client.url == "http://127.0.0.1:9"
        with pytest.raises(PartyUnavailable) as e:
            await client.status() if isinstance(
                client, CustodianClient
            ) else await client.manifest()
    assert str(e.value).startswith(f"{party} at http://127.0.0.1:9 is unreachable: ")
