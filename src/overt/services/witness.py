"""The witness service: c2sp.org/tlog-witness over HTTP, with its own key and durable state.

Endpoints (an ASGI app built by :func:`create_app`):

``POST /add-checkpoint``
    The tlog-witness request body (``old <size>``, base64 consistency-proof lines, a blank
    line, the log-signed checkpoint note). 200 answers the witness's cosignature line
    (``text/plain``); 409 with ``Content-Type: text/x.tlog.size`` answers the size the witness
    is at, for a client to retry from; 409 in ``text/plain`` means a split view (same size,
    another root); 400, 403, 404, 413 and 422 as the spec says (see
    :mod:`overt.transparency.witness` for the table).
``GET /state``
    JSON: the witness's name and verifier key, and for each log its origin, last cosigned size,
    root hash, cosignature time, the number of inconsistent checkpoints it refused and how many
    evidence records it kept.
``GET /evidence``
    JSON: every evidence record (both log-signed checkpoints as note text, old size as a
    decimal string, proof hashes in base64), for anyone to check with the log's key.

Durability: one request at a time goes through stage → persist → commit under a lock; the new
state is written to ``<data_dir>/witness-state.json`` (temporary file, fsync, rename, fsync of
the directory) *before* a cosignature or a refusal with new evidence is answered, as tlog-witness
requires. If writing fails, the request fails with 500 and nothing changes. A state file that
cannot be read stops the service from starting: a witness that forgot what it signed would sign
a split view.

Keys: on first start a key is generated into ``<data_dir>/witness.key`` (mode 0600, refused if
group- or world-readable later) as ``PRIVATE+KEY+<name>+<key ID>+<base64(0x04 ‖ seed)>``, the
shape of Go's note signer keys with the cosignature/v1 type byte; the verifier key is printed and
written to ``<data_dir>/witness.vkey``.

This module holds the I/O — files, clock, sockets, uvicorn — and no witnessing logic; it never
imports the relay server or the user's client.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final, Protocol, TextIO

import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from overt.crypto import ED25519_KEY_LEN, Ed25519PrivateKey, Rng, SystemRng, sha256
from overt.errors import ConfigurationError, DecodeError, OvertError
from overt.services._files import StateFile, create_secret, read_secret, write_atomically
from overt.services._listen import listen, serve, url_of
from overt.transparency.merkle import EMPTY_ROOT
from overt.transparency.note import ALG_COSIGNATURE_V1, CosignatureSigner, VerifierKey, key_id
from overt.transparency.witness import (
    MAX_ADD_CHECKPOINT_BYTES,
    MAX_STATE_BYTES,
    SIZE_CONTENT_TYPE,
    CheckpointConflict,
    Witness,
    WitnessedLog,
    WitnessState,
)

KEY_FILE_NAME: Final = "witness.key"
VKEY_FILE_NAME: Final = "witness.vkey"
STATE_FILE_NAME: Final = "witness-state.json"

KEY_FILE_PREFIX: Final = "PRIVATE+KEY+"
MAX_KEY_FILE_BYTES: Final = 1024
"""Largest key file read: a name of at most 255 bytes plus the key."""

DEFAULT_HOST: Final = "127.0.0.1"

logger = logging.getLogger("overt.services.witness")


# ----------------------------------------------------------------------------- state storage


class WitnessStore(Protocol):
    """Where a witness keeps its state. ``load`` returns None when nothing was saved yet."""

    def load(self) -> WitnessState | None: ...

    def save(self, state: WitnessState) -> None: ...


class MemoryStore:
    """A store that keeps the last saved state in memory (tests, throwaway witnesses)."""

    def __init__(self, state: WitnessState | None = None) -> None:
        self.state = state

    def load(self) -> WitnessState | None:
        return self.state

    def save(self, state: WitnessState) -> None:
        self.state = state


class FileStore(StateFile[WitnessState]):
    """The witness state in one file, replaced atomically on every change."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(
            path,
            decode=WitnessState.from_bytes,
            max_bytes=MAX_STATE_BYTES,
            party="witness",
            consequence="starting from an empty state would let the witness sign a split view",
        )


# ----------------------------------------------------------------------------- keys


def encode_signer_key(signer: CosignatureSigner) -> str:
    """``PRIVATE+KEY+<name>+<hex key ID>+<base64(0x04 ‖ seed)>`` — secret material."""
    vkey = signer.verifier_key
    material = bytes((ALG_COSIGNATURE_V1,)) + signer.private_key.export_secret()
    return (
        f"{KEY_FILE_PREFIX}{signer.name}+{vkey.key_id:08x}+"
        f"{base64.b64encode(material).decode('ascii')}"
    )


def parse_signer_key(text: str) -> CosignatureSigner:
    """Read :func:`encode_signer_key`'s format; :class:`DecodeError` if it is not one."""
    if not text.startswith(KEY_FILE_PREFIX):
        raise DecodeError("witness key: not a PRIVATE+KEY line")
    # Base64 may hold "+": split off the name and the key ID only (names cannot hold "+").
    name, sep1, rest = text[len(KEY_FILE_PREFIX) :].partition("+")
    hex_id, sep2, b64 = rest.partition("+")
    if not (sep1 and sep2):
        raise DecodeError("witness key: expected name+keyid+key")
    try:
        material = base64.b64decode(b64.encode("ascii"), validate=True)
    except (binascii.Error, ValueError):
        raise DecodeError("witness key: key is not base64") from None
    if len(material) != 1 + ED25519_KEY_LEN or material[0] != ALG_COSIGNATURE_V1:
        raise DecodeError("witness key: not a cosignature/v1 Ed25519 key")
    try:
        signer = CosignatureSigner(name, Ed25519PrivateKey.from_secret_bytes(material[1:]))
    except OvertError as e:
        raise DecodeError(f"witness key: {e}") from None
    if f"{key_id(name, ALG_COSIGNATURE_V1, signer.private_key.public_key.raw):08x}" != hex_id:
        raise DecodeError("witness key: key ID does not match the key")
    return signer


def _default_name(private_key: Ed25519PrivateKey) -> str:
    return f"overt-witness-{sha256(private_key.public_key.raw)[:4].hex()}"


def load_or_create_key(
    data_dir: str | Path, *, name: str | None = None, rng: Rng | None = None
) -> tuple[CosignatureSigner, bool]:
    """The witness key from ``<data_dir>/witness.key``, generated on first use.

    Returns the signer and whether it was just created. ``name`` (default
    ``overt-witness-<hex>``) only applies to a new key; given for an existing key it must match.
    Writes ``<data_dir>/witness.vkey``. Raises :class:`ConfigurationError` with what to do.
    """
    directory = Path(data_dir)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / KEY_FILE_NAME
    created = False
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        private = Ed25519PrivateKey.generate(rng or SystemRng())
        try:
            signer = CosignatureSigner(name or _default_name(private), private)
        except OvertError as e:
            raise ConfigurationError(f"bad witness name {name!r}: {e}") from None
        create_secret(path, (encode_signer_key(signer) + "\n").encode("utf-8"))
        created = True
    else:
        signer = _read_key_file(fd, path)
        if name is not None and name != signer.name:
            raise ConfigurationError(
                f"{path} holds the key of witness {signer.name!r}, not {name!r}; "
                "drop --name or use another data directory"
            )
    write_atomically(
        directory / VKEY_FILE_NAME, (signer.verifier_key.to_text() + "\n").encode(), 0o644
    )
    return signer, created


def _read_key_file(fd: int, path: Path) -> CosignatureSigner:
    data = read_secret(fd, path, MAX_KEY_FILE_BYTES, advice=" and restart")
    try:
        if len(data) > MAX_KEY_FILE_BYTES:
            raise DecodeError("witness key: file too large")
        return parse_signer_key(data.decode("utf-8").strip())
    except (DecodeError, UnicodeDecodeError) as e:
        raise ConfigurationError(
            f"{path} is not a witness key ({e}); restore it from a backup"
        ) from None


# ----------------------------------------------------------------------------- HTTP


def _text(status: int, text: str, content_type: str = "text/plain; charset=utf-8") -> Response:
    return Response(text.encode("utf-8"), status, headers={"content-type": content_type})


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None if it exceeds ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def create_app(
    witness: Witness, store: WitnessStore, *, clock: Callable[[], float] = time.time
) -> Starlette:
    """The witness's ASGI app. ``store`` receives every new state before it is answered."""
    lock = asyncio.Lock()
    vkey = witness.verifier_key

    async def add_checkpoint(request: Request) -> Response:
        body = await _read_body(request, MAX_ADD_CHECKPOINT_BYTES)
        if body is None:
            return _text(413, "request body too large for an add-checkpoint request\n")
        async with lock:
            staged = witness.stage_request(body, int(clock()))
            if staged.changed:
                try:
                    await anyio.to_thread.run_sync(store.save, staged.state)
                except OSError:
                    logger.exception("could not persist the witness state")
                    return _text(500, "the witness could not save its state; try again later\n")
            witness.commit(staged)
        try:
            signature = staged.result()
        except CheckpointConflict as e:
            if e.split_view:
                logger.warning("split view refused; evidence kept (see GET /evidence)")
                return _text(409, f"{e}\n")
            return _text(409, f"{e.current_size}\n", SIZE_CONTENT_TYPE)
        except OvertError as e:
            if e.status_hint == 422:
                logger.warning("inconsistent checkpoint refused; evidence kept if it conflicts")
            return _text(e.status_hint, f"{e}\n")
        return _text(200, signature.to_line())

    async def get_state(request: Request) -> Response:
        state = witness.state
        origins = sorted(set(witness.logs) | set(state.logs))
        logs = []
        for origin in origins:
            record = state.logs.get(origin)
            logs.append(
                {
                    "origin": origin,
                    "witnessed": origin in witness.logs,
                    "size": 0 if record is None else record.size,
                    "root_hash": base64.b64encode(
                        EMPTY_ROOT if record is None else record.root_hash
                    ).decode("ascii"),
                    "cosigned_at": None if record is None else record.cosigned_at,
                    "refusals": 0 if record is None else record.refusals,
                    "evidence": sum(1 for e in state.evidence if e.origin == origin),
                }
            )
        return JSONResponse({"witness": {"name": vkey.name, "vkey": vkey.to_text()}, "logs": logs})

    async def get_evidence(request: Request) -> Response:
        return JSONResponse({"evidence": [e.to_json() for e in witness.state.evidence]})

    return Starlette(
        routes=[
            Route("/add-checkpoint", add_checkpoint, methods=["POST"]),
            Route("/state", get_state, methods=["GET"]),
            Route("/evidence", get_evidence, methods=["GET"]),
        ]
    )


# ----------------------------------------------------------------------------- running


def run_witness(
    host: str,
    port: int,
    data_dir: str | Path,
    log_vkey: str | VerifierKey,
    origin: str | None = None,
    *,
    name: str | None = None,
    log_level: str = "warning",
    out: TextIO | None = None,
) -> None:
    """Run the witness for one log until interrupted.

    Loads or creates the key and state in ``data_dir``, binds ``host:port`` (port 0: any free
    port), prints the verifier key and the URL to ``out`` (default stdout), then serves with
    uvicorn. ``origin`` defaults to the log key's name. Raises :class:`ConfigurationError` (with
    what to do) on a bad key, state or address.
    """
    out = sys.stdout if out is None else out
    try:
        log = WitnessedLog.from_vkey(log_vkey, origin)
    except OvertError as e:
        raise ConfigurationError(f"bad log key or origin: {e}") from None
    signer, created = load_or_create_key(data_dir, name=name)
    store = FileStore(Path(data_dir) / STATE_FILE_NAME)
    witness = Witness(signer, [log], store.load())
    app = create_app(witness, store)
    sock = listen(host, port)
    print(f"witness {'created' if created else 'loaded'} key for {signer.name}", file=out)
    print(f"witness vkey: {signer.verifier_key.to_text()}", file=out)
    print(f"witness for log {log.origin}", file=out)
    print(f"witness listening on {url_of(sock)}", file=out, flush=True)
    serve(app, sock, log_level)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m overt.services.witness``: parse arguments and :func:`run_witness`."""
    parser = argparse.ArgumentParser(
        prog="python -m overt.services.witness",
        description="Run an Overt transparency-log witness (c2sp.org/tlog-witness).",
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to listen on")
    parser.add_argument("--port", type=int, default=0, help="port (0: any free port, printed)")
    parser.add_argument("--data-dir", required=True, help="directory for the key and state")
    parser.add_argument("--log-vkey", required=True, help="the log's C2SP verifier key")
    parser.add_argument("--origin", help="the log's checkpoint origin (default: the key name)")
    parser.add_argument("--name", help="this witness's key name, for a new key")
    parser.add_argument("--log-level", default="warning", help="uvicorn log level")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        run_witness(
            args.host,
            args.port,
            args.data_dir,
            args.log_vkey,
            args.origin,
            name=args.name,
            log_level=args.log_level,
        )
    except ConfigurationError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


__all__ = [
    "KEY_FILE_NAME",
    "STATE_FILE_NAME",
    "VKEY_FILE_NAME",
    "FileStore",
    "MemoryStore",
    "WitnessStore",
    "create_app",
    "encode_signer_key",
    "load_or_create_key",
    "main",
    "parse_signer_key",
    "run_witness",
]

if __name__ == "__main__":
    raise SystemExit(main())
