"""The witness service over HTTP: in-process through ASGI, and as a real separate process that is
killed and restarted. Loopback only; every process started here is killed in a fixture."""

from __future__ import annotations

import json
import os
import queue
import stat
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from overt.crypto import DeterministicRng, Ed25519PrivateKey
from overt.errors import ConfigurationError, DecodeError, InvalidMessage
from overt.services.witness import (
    KEY_FILE_NAME,
    STATE_FILE_NAME,
    VKEY_FILE_NAME,
    FileStore,
    MemoryStore,
    create_app,
    encode_signer_key,
    load_or_create_key,
    main,
    parse_signer_key,
    run_witness,
)
from overt.services.witness_client import (
    WitnessClient,
    WitnessConflict,
    WitnessProofRejected,
    WitnessRejected,
    WitnessUnavailable,
)
from overt.transparency.checkpoint import Checkpoint, sign_checkpoint, verify_checkpoint
from overt.transparency.merkle import MemoryTree
from overt.transparency.note import (
    CosignatureSigner,
    Note,
    NoteSigner,
    VerifierKey,
    parse_verifier_key,
)
from overt.transparency.witness import (
    SIZE_CONTENT_TYPE,
    Witness,
    WitnessedLog,
    WitnessState,
    encode_add_checkpoint,
)
from overt.wire.jcs import JsonValue


def key(seed: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate(DeterministicRng(seed))


ORIGIN = "log.overt.example/v1"
LOG_SIGNER = NoteSigner(ORIGIN, key("log"))
LOG_VKEY = LOG_SIGNER.verifier_key.to_text()
WITNESS_SIGNER = CosignatureSigner("witness.overt.example", key("witness"))
NOW = 1_750_000_000
STARTUP_TIMEOUT_SECONDS = 20.0


class Log:
    def __init__(self, entries: list[bytes], signer: NoteSigner = LOG_SIGNER) -> None:
        self.tree = MemoryTree()
        for e in entries:
            self.tree.append(e)
        self.signer = signer

    def checkpoint(self, size: int) -> Note:
        cp = Checkpoint(self.signer.name, size, self.tree.root(size))
        return sign_checkpoint(cp, self.signer)

    def proof(self, old: int, new: int) -> list[bytes]:
        return [] if old in (0, new) else self.tree.consistency_proof(old, new)


def entries(n: int, tag: str = "entry") -> list[bytes]:
    return [f"{tag} {i}".encode() for i in range(n)]


HONEST = Log(entries(40))
FORK = Log(entries(10) + entries(30, "forked"))  # diverges after entry 10
IMPOSTOR = Log(entries(40), NoteSigner(ORIGIN, key("impostor")))


def tree(value: JsonValue) -> Any:
    """A JSON document, for indexing in assertions."""
    return value


def split_view(size: int) -> Note:
    return Log([*entries(size - 1), b"another last entry"]).checkpoint(size)


# ----------------------------------------------------------------------------- in-process


@dataclass
class InProcess:
    witness: Witness
    store: MemoryStore | FileStore
    client: WitnessClient
    http: httpx.AsyncClient


def make_witness(state: WitnessState | None = None) -> Witness:
    return Witness(WITNESS_SIGNER, [WitnessedLog.from_vkey(LOG_VKEY)], state)


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[InProcess]:
    store = FileStore(tmp_path / STATE_FILE_NAME)
    witness = make_witness()
    app = create_app(witness, store, clock=lambda: NOW)
    transport = httpx.ASGITransport(app=app)
    client = WitnessClient(
        "http://witness.test", witness_key=WITNESS_SIGNER.verifier_key, transport=transport
    )
    async with httpx.AsyncClient(transport=transport, base_url="http://witness.test") as http:
        yield InProcess(witness, store, client, http)
    await client.aclose()


async def post(http: httpx.AsyncClient, old: int, proof: list[bytes], note: Note) -> httpx.Response:
    return await http.post("/add-checkpoint", content=encode_add_checkpoint(old, proof, note))


async def test_consistent_growth_cosigned_over_http(service: InProcess) -> None:
    old = 0
    for size in (3, 8, 8, 21):
        note = HONEST.checkpoint(size)
        sigs = await service.client.add_checkpoint(old, HONEST.proof(old, size), note.to_bytes())
        verified = verify_checkpoint(
            note.with_signatures(*sigs), LOG_SIGNER.verifier_key, [WITNESS_SIGNER.verifier_key], 1
        )
        assert verified.cosignatures[0].timestamp == NOW
        old = size
    state = tree(await service.client.get_state())
    assert state["witness"] == {
        "name": WITNESS_SIGNER.name,
        "vkey": WITNESS_SIGNER.verifier_key.to_text(),
    }
    (log,) = state["logs"]
    assert log["origin"] == ORIGIN and log["size"] == 21 and log["refusals"] == 0
    # The response is exactly the cosignature lines, as text.
    r = await post(service.http, 21, HONEST.proof(21, 22), HONEST.checkpoint(22))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert r.text.startswith("\u2014 witness.overt.example ") and r.text.count("\n") == 1


async def test_persisted_before_answering(service: InProcess) -> None:
    await service.client.add_checkpoint(0, [], HONEST.checkpoint(9))
    assert isinstance(service.store, FileStore)
    on_disk = service.store.load()
    assert on_disk == service.witness.state and on_disk is not None
    assert on_disk.size_of(ORIGIN) == 9
    leftovers = [p.name for p in service.store.path.parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []
    assert stat.S_IMODE(service.store.path.stat().st_mode) == 0o600


async def test_conflict_answers_the_size_as_text_x_tlog_size(service: InProcess) -> None:
    await service.client.add_checkpoint(0, [], HONEST.checkpoint(9))
    r = await post(service.http, 0, [], HONEST.checkpoint(12))
    assert r.status_code == 409
    assert r.headers["content-type"] == SIZE_CONTENT_TYPE
    assert r.content == b"9\n"
    with pytest.raises(WitnessConflict) as e:
        await service.client.add_checkpoint(4, HONEST.proof(4, 12), HONEST.checkpoint(12))
    assert e.value.current_size == 9
    # cosign() retries from the size the witness names.
    asked: list[int] = []

    def proof_from(n: int) -> list[bytes]:
        asked.append(n)
        return HONEST.proof(n, 15)

    sigs = await service.client.cosign(HONEST.checkpoint(15), proof_from, old_size=0)
    assert asked == [9] and len(sigs) == 1
    assert service.witness.state.size_of(ORIGIN) == 15


async def test_split_view_refused_and_evidence_published(service: InProcess) -> None:
    await service.client.add_checkpoint(0, [], HONEST.checkpoint(12))
    r = await post(service.http, 12, [], split_view(12))
    assert r.status_code == 409
    assert r.headers["content-type"].startswith("text/plain")
    with pytest.raises(WitnessConflict) as e:
        await service.client.add_checkpoint(12, [], split_view(12))
    assert e.value.current_size is None  # not a size to retry from
    evidence = tree(await service.client.get_evidence())
    (record,) = evidence["evidence"]
    assert record["kind"] == "split-view"
    offered = Note.from_bytes(record["offered"].encode())
    cosigned = Note.from_bytes(record["cosigned"].encode())
    for note in (offered, cosigned):
        verify_checkpoint(note, LOG_SIGNER.verifier_key)
    assert offered.text != cosigned.text
    state = tree(await service.client.get_state())
    assert state["logs"][0]["refusals"] == 2 and state["logs"][0]["evidence"] == 1


async def test_fork_refused_with_422(service: InProcess) -> None:
    await service.client.add_checkpoint(0, [], HONEST.checkpoint(12))
    r = await post(service.http, 12, FORK.proof(12, 30), FORK.checkpoint(30))
    assert r.status_code == 422
    with pytest.raises(WitnessProofRejected):
        await service.client.cosign(FORK.checkpoint(30), lambda n: FORK.proof(n, 30), old_size=12)
    assert service.witness.state.size_of(ORIGIN) == 12
    assert [e.kind for e in service.witness.state.evidence] == ["inconsistent-proof"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (encode_add_checkpoint(0, [], IMPOSTOR.checkpoint(5)), 403),  # wrong log key
        (
            encode_add_checkpoint(
                0, [], Log(entries(3), NoteSigner("other.example", key("o"))).checkpoint(3)
            ),
            404,
        ),
        (b"old 0\n\nnot a checkpoint\n", 400),
        (b"garbage", 400),
        (encode_add_checkpoint(5, [], HONEST.checkpoint(3)), 400),  # old size above the size
        (b"old 0\n" + b"A" * (1 << 19), 413),
    ],
)
async def test_refusal_statuses(service: InProcess, body: bytes, status: int) -> None:
    r = await service.http.post("/add-checkpoint", content=body)
    assert r.status_code == status
    assert r.text.endswith("\n")
    assert service.witness.state.size_of(ORIGIN) == 0


async def test_wrong_log_key_refused_by_the_client_too(service: InProcess) -> None:
    with pytest.raises(WitnessRejected) as e:
        await service.client.add_checkpoint(0, [], IMPOSTOR.checkpoint(5))
    assert e.value.status == 403
    assert not isinstance(e.value, WitnessConflict | WitnessProofRejected)


async def test_methods(service: InProcess) -> None:
    assert (await service.http.get("/add-checkpoint")).status_code == 405
    assert (await service.http.post("/state")).status_code == 405
    assert (await service.http.get("/nothing")).status_code == 404


async def test_failed_save_changes_nothing(tmp_path: Path) -> None:
    class BrokenStore(MemoryStore):
        def save(self, state: WitnessState) -> None:
            raise OSError("disk full")

    witness = make_witness()
    app = create_app(witness, BrokenStore(), clock=lambda: NOW)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://w"
    ) as http:
        r = await post(http, 0, [], HONEST.checkpoint(4))
        assert r.status_code == 500
        assert "try again" in r.text
    assert witness.state.size_of(ORIGIN) == 0


async def test_restart_from_the_file_keeps_refusing(service: InProcess) -> None:
    await service.client.add_checkpoint(0, [], HONEST.checkpoint(12))
    assert isinstance(service.store, FileStore)
    reborn = make_witness(FileStore(service.store.path).load())
    app = create_app(reborn, FileStore(service.store.path), clock=lambda: NOW)
    transport = httpx.ASGITransport(app=app)
    async with WitnessClient("http://w", witness_key=reborn.verifier_key, transport=transport) as c:
        with pytest.raises(WitnessConflict):
            await c.add_checkpoint(12, [], split_view(12))
        with pytest.raises(WitnessProofRejected):
            await c.add_checkpoint(12, FORK.proof(12, 30), FORK.checkpoint(30))
        await c.add_checkpoint(12, HONEST.proof(12, 13), HONEST.checkpoint(13))


# ----------------------------------------------------------------------------- the client alone


async def test_client_maps_transport_failures() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with WitnessClient("http://w", transport=httpx.MockTransport(refuse)) as c:
        with pytest.raises(WitnessUnavailable):
            await c.add_checkpoint(0, [], HONEST.checkpoint(1))


@pytest.mark.parametrize(
    ("status", "body", "headers", "error"),
    [
        (503, b"busy\n", {}, WitnessUnavailable),
        (200, b"no signature lines\n", {}, DecodeError),
        (200, b"", {}, DecodeError),
        (409, b"012\n", {"content-type": SIZE_CONTENT_TYPE}, WitnessConflict),
        (418, b"teapot\n", {}, WitnessRejected),
    ],
)
async def test_client_maps_answers(
    status: int, body: bytes, headers: dict[str, str], error: type[Exception]
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body, headers=headers)

    async with WitnessClient("http://w", transport=httpx.MockTransport(answer)) as c:
        with pytest.raises(error) as e:
            await c.add_checkpoint(0, [], HONEST.checkpoint(1))
    if isinstance(e.value, WitnessConflict):
        assert e.value.current_size is None  # "012" is not a canonical size


async def test_client_checks_the_cosignature() -> None:
    """A cosignature from another key than the expected witness's is refused."""
    app = create_app(make_witness(), MemoryStore(), clock=lambda: NOW)
    other = CosignatureSigner("witness.overt.example", key("someone else")).verifier_key
    async with WitnessClient(
        "http://w", witness_key=other, transport=httpx.ASGITransport(app=app)
    ) as c:
        with pytest.raises(InvalidMessage):
            await c.add_checkpoint(0, [], HONEST.checkpoint(2))


# ----------------------------------------------------------------------------- keys and files


def test_key_created_once_with_private_permissions(tmp_path: Path) -> None:
    signer, created = load_or_create_key(tmp_path / "w", name="witness.example/w1")
    assert created and signer.name == "witness.example/w1"
    path = tmp_path / "w" / KEY_FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "w").stat().st_mode) == 0o700
    assert (tmp_path / "w" / VKEY_FILE_NAME).read_text().strip() == signer.verifier_key.to_text()
    again, created = load_or_create_key(tmp_path / "w")
    assert not created and again.verifier_key == signer.verifier_key
    with pytest.raises(ConfigurationError, match="not 'other'"):
        load_or_create_key(tmp_path / "w", name="other")
    path.chmod(0o644)
    with pytest.raises(ConfigurationError, match="chmod 600"):
        load_or_create_key(tmp_path / "w")
    path.chmod(0o600)
    path.write_text("PRIVATE+KEY+w+00000000+AAAA\n")
    with pytest.raises(ConfigurationError, match="not a witness key"):
        load_or_create_key(tmp_path / "w")


def test_default_key_name(tmp_path: Path) -> None:
    signer, _ = load_or_create_key(tmp_path)
    assert signer.name.startswith("overt-witness-")


def test_key_text_round_trip() -> None:
    text = encode_signer_key(WITNESS_SIGNER)
    assert text.startswith("PRIVATE+KEY+witness.overt.example+")
    parsed = parse_signer_key(text)
    assert parsed.verifier_key == WITNESS_SIGNER.verifier_key
    name, hex_id, b64 = text.removeprefix("PRIVATE+KEY+").split("+", 2)
    for bad in (
        text.replace("PRIVATE", "PUBLIC"),
        f"PRIVATE+KEY+{name}+{'0' * 8}+{b64}",
        f"PRIVATE+KEY+other+{hex_id}+{b64}",
        f"PRIVATE+KEY+{name}+{hex_id}+{b64[:-4]}",
        f"PRIVATE+KEY+{name}+{hex_id}",
    ):
        with pytest.raises(DecodeError):
            parse_signer_key(bad)


def test_state_file_missing_corrupt(tmp_path: Path) -> None:
    store = FileStore(tmp_path / STATE_FILE_NAME)
    assert store.load() is None
    store.path.write_bytes(b'{"format":"overt-witness-state"}')
    with pytest.raises(ConfigurationError, match="split view"):
        store.load()


def test_bad_configuration_stops_startup(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigurationError, match="log key"):
        run_witness("127.0.0.1", 0, tmp_path, "not a vkey")
    assert main(["--data-dir", str(tmp_path), "--log-vkey", "not a vkey"]) == 2
    assert "error: bad log key" in capsys.readouterr().err
    FileStore(tmp_path / STATE_FILE_NAME).path.write_bytes(b"garbage")
    assert main(["--data-dir", str(tmp_path), "--log-vkey", LOG_VKEY]) == 2
    assert "restore it from a backup" in capsys.readouterr().err


# ----------------------------------------------------------------------------- a real process


@dataclass
class Running:
    process: subprocess.Popen[str]
    url: str
    vkey: VerifierKey


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[[Path], Running]]:
    """Start ``python -m overt.services.witness`` on a free loopback port; always killed."""
    started: list[subprocess.Popen[str]] = []

    def start(data_dir: Path) -> Running:
        stderr = (tmp_path / f"witness-{len(started)}.stderr").open("w")
        argv = [sys.executable, "-m", "overt.services.witness", "--host", "127.0.0.1"]
        argv += ["--port", "0", "--data-dir", str(data_dir), "--log-vkey", LOG_VKEY]
        process = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        stderr.close()
        started.append(process)
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        vkey: VerifierKey | None = None
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail("the witness did not start in time")
            if line is None:
                err = (tmp_path / f"witness-{len(started) - 1}.stderr").read_text()
                pytest.fail(f"the witness exited: {err}")
            if line.startswith("witness vkey: "):
                vkey = parse_verifier_key(line.split(": ", 1)[1].strip())
            if line.startswith("witness listening on "):
                assert vkey is not None
                return Running(process, line.rsplit(" ", 1)[1].strip(), vkey)

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


async def test_separate_process_killed_and_restarted(
    tmp_path: Path, spawn: Callable[[Path], Running]
) -> None:
    data_dir = tmp_path / "witness-data"
    first = spawn(data_dir)
    assert first.url.startswith("http://127.0.0.1:")
    assert (data_dir / VKEY_FILE_NAME).read_text().strip() == first.vkey.to_text()
    async with WitnessClient(first.url, witness_key=first.vkey) as client:
        await client.add_checkpoint(0, [], HONEST.checkpoint(5))
        note = HONEST.checkpoint(12)
        sigs = await client.add_checkpoint(5, HONEST.proof(5, 12), note)
        verify_checkpoint(note.with_signatures(*sigs), LOG_SIGNER.verifier_key, [first.vkey], 1)
        with pytest.raises(WitnessRejected) as rejected:  # wrong log key
            await client.add_checkpoint(12, [], IMPOSTOR.checkpoint(12))
        assert rejected.value.status == 403

    first.process.kill()  # no clean shutdown: what it answered must already be on disk
    first.process.wait(timeout=10)
    on_disk = json.loads((data_dir / STATE_FILE_NAME).read_bytes())
    assert on_disk["logs"][ORIGIN]["checkpoint"].split("\n")[1] == "12"

    second = spawn(data_dir)
    assert second.vkey == first.vkey  # same key after the restart
    assert second.url != "" and second.process.pid != first.process.pid
    async with WitnessClient(second.url, witness_key=second.vkey) as client:
        with pytest.raises(WitnessConflict) as conflict:  # split view at the size it signed
            await client.add_checkpoint(12, [], split_view(12))
        assert conflict.value.current_size is None
        with pytest.raises(WitnessProofRejected):  # a fork from the size it signed
            await client.add_checkpoint(12, FORK.proof(12, 30), FORK.checkpoint(30))
        with pytest.raises(WitnessConflict) as conflict:  # pretending it signed nothing
            await client.add_checkpoint(0, [], FORK.checkpoint(30))
        assert conflict.value.current_size == 12
        sigs = await client.cosign(HONEST.checkpoint(20), lambda n: HONEST.proof(n, 20))
        note = HONEST.checkpoint(20).with_signatures(*sigs)
        verify_checkpoint(note, LOG_SIGNER.verifier_key, [second.vkey], 1)
        evidence = tree(await client.get_evidence())
        kinds = sorted(e["kind"] for e in evidence["evidence"])
        assert kinds == ["inconsistent-proof", "split-view"]
        state = tree(await client.get_state())
        assert state["logs"][0]["size"] == 20
