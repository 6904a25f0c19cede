"""Start an accountable-lawful-access deployment on loopback, every party its own process.

The lawful-access demo (:mod:`overt.demo_lawful`), its end-to-end tests and the ``access``
benchmark all run the same deployment: ``n`` custodian processes (``overt custodian``), a
witness (``python -m overt.services.witness``) and a provider whose manifest names them, a
court and a threshold (policy ``escrow``). This module is that orchestration, once:

* :func:`start_parties` picks the provider's port (the custodians must know its URL before it
  listens), makes the provider's transparency keys (the witness must know the log key), starts
  the custodians and the witness side by side, and stops every process it started on the way
  out, also on failure;
* :meth:`LawfulParties.escrow` and :meth:`LawfulParties.deployment` are the access policy and
  the deployment configuration that name them (with the court's key the caller brings), and
  :meth:`LawfulParties.write_deployment` puts it where a provider process reads it;
* :meth:`LawfulParties.start` starts the provider process the caller chose (the test provider,
  the benchmark's server) under the same stop; :func:`serve_provider` instead serves the
  relay in the calling process (the demo moves its unsealing clock, the test provider wraps it);
* :func:`warrant_from_today` is the warrant all three ask a court for: approved 24 hours ago
  (a warrant may not reach back before its approval, and a custodian opens a message only if
  its whole UTC day lies in the window), its window starting at today's UTC midnight.

The DKG and serving warrants are the parties' own calls (:func:`overt.services.custodian_client.
run_dkg`, :func:`overt.services.lea.serve`, or their command lines): the callers time or test
them. This module knows processes, files and the relay's constructor; the protocol and the
lawful-access core never import it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import uvicorn

from overt import launch
from overt.access.limits import DAY_SECONDS
from overt.access.warrant import Warrant
from overt.crypto import Ed25519PublicKey, Rng, SystemRng
from overt.devservices import free_port
from overt.errors import LocalError
from overt.server import ServerConfig, create_app
from overt.server.config import (
    TransparencyConfig,
    TransparencyKeys,
    load_or_create_franking_key,
    load_or_create_transparency_keys,
)
from overt.server.deployment import (
    DEPLOYMENT_FILE,
    Deployment,
    WitnessEndpoint,
    encode_deployment,
)
from overt.server.lawful import LawfulAccess
from overt.services import court as court_tool
from overt.services.custodian import PUBLIC_FILE_NAME
from overt.services.custodian_wire import b64d, epoch_at
from overt.storage import InProcessPubSub, open_sqlite
from overt.transparency.manifest import Custodian, EscrowAccess, NamedKey
from overt.transparency.note import VerifierKey

EPOCH_LENGTH_DAYS: Final = 30
"""The escrow epoch of these deployments (a month, as the design suggests)."""

RETENTION_DAYS: Final = 30
"""How long custodians keep an epoch's shares after it ends."""

MAX_SEAL_DAYS: Final = 30
"""The longest sealing period a court may give a warrant before the target is told."""

WITNESS_TIMEOUT_MS: Final = 2000
"""How long the in-process provider waits for the witness to cosign a checkpoint."""

WITNESS_NAME: Final = "Witness One"
PROVIDER_DIR: Final = "provider"
WITNESS_DIR: Final = "witness"
WITNESS_VKEY_FILE: Final = "witness.vkey"


def custodian_name(index: int) -> str:
    """The name custodian ``index`` (from 1) has in the manifest and on its command line."""
    return f"Custodian {index}"


def custodian_service(index: int, data_dir: Path, provider: str) -> launch.Service:
    """``overt custodian`` number ``index`` with its key store in ``data_dir``, any free port."""
    return launch.Service(
        f"custodian {index}",
        ["custodian", "--data-dir", str(data_dir), "--index", str(index), "--name",
         custodian_name(index), "--provider", provider, "--port", "0"],
    )  # fmt: skip


def witness_service(data_dir: Path, log_key: VerifierKey) -> launch.Service:
    """A witness of the log whose checkpoints ``log_key`` verifies, any free port."""
    return launch.Service(
        "witness",
        [sys.executable, "-m", "overt.services.witness", "--data-dir", str(data_dir),
         "--log-vkey", log_key.to_text(), "--port", "0"],
        raw_argv=True,
    )  # fmt: skip


def custodian_key(data_dir: Path) -> Ed25519PublicKey:
    """The signing key a custodian published in its data directory."""
    doc = json.loads((data_dir / PUBLIC_FILE_NAME).read_text())
    return Ed25519PublicKey.from_bytes(b64d(doc["key"], "custodian key"))


def current_epoch(escrow: EscrowAccess) -> int:
    """The escrow epoch in force now."""
    return epoch_at(int(time.time()), escrow)


@dataclass
class LawfulParties:
    """The running custodians and witness of one deployment, and where its provider goes."""

    root: Path
    provider: str
    """The URL the provider is to serve on (the custodians were told it)."""
    custodian_dirs: list[Path]
    custodians: list[str]
    """The custodians' URLs, in index order."""
    witness: WitnessEndpoint
    keys: TransparencyKeys
    services: list[launch.Service] = field(default_factory=list)

    @property
    def provider_dir(self) -> Path:
        return self.root / PROVIDER_DIR

    @property
    def port(self) -> int:
        return int(self.provider.rsplit(":", 1)[1])

    def escrow(self, threshold: int, court_keys: Sequence[NamedKey]) -> EscrowAccess:
        """Policy ``escrow``: these custodians, ``threshold`` of them, the given courts."""
        return EscrowAccess(
            custodians=tuple(
                Custodian(custodian_name(j), url, custodian_key(d))
                for j, (d, url) in enumerate(
                    zip(self.custodian_dirs, self.custodians, strict=True), start=1
                )
            ),
            threshold=threshold,
            court_keys=tuple(court_keys),
            epoch_length_days=EPOCH_LENGTH_DAYS,
            retention_days=RETENTION_DAYS,
            max_seal_days=MAX_SEAL_DAYS,
        )

    def deployment(self, name: str, escrow: EscrowAccess) -> Deployment:
        """The deployment ``name``: this witness (quorum 1) and the access policy ``escrow``."""
        return Deployment(name=name, witnesses=(self.witness,), quorum=1, access=escrow)

    def write_deployment(self, deployment: Deployment) -> Path:
        """Write ``deployment`` where a provider process over :attr:`provider_dir` reads it."""
        path = self.provider_dir / DEPLOYMENT_FILE
        path.write_bytes(encode_deployment(deployment))
        return path

    def start(self, service: launch.Service) -> str:
        """Start ``service`` (the provider process); it is stopped with the parties."""
        self.services.append(service)
        return service.start()

    def exited(self) -> list[launch.Service]:
        """The processes that are no longer running."""
        return [s for s in self.services if not s.running()]


@contextlib.contextmanager
def start_parties(root: Path, custodians: int, rng: Rng | None = None) -> Iterator[LawfulParties]:
    """Start ``custodians`` custodian processes and a witness under ``root``; stop every
    process started here (and by :meth:`LawfulParties.start`) on the way out."""
    provider = f"http://127.0.0.1:{free_port()}"
    keys, _ = load_or_create_transparency_keys(root / PROVIDER_DIR, rng or SystemRng())
    dirs = [root / f"custodian{j}" for j in range(1, custodians + 1)]
    services = [custodian_service(j, d, provider) for j, d in enumerate(dirs, start=1)]
    services.append(witness_service(root / WITNESS_DIR, keys.log.verifier_key))
    try:
        with ThreadPoolExecutor(len(services)) as pool:  # the processes start side by side
            urls = list(pool.map(launch.Service.start, services))
        vkey = VerifierKey.from_text((root / WITNESS_DIR / WITNESS_VKEY_FILE).read_text().strip())
        yield LawfulParties(
            root, provider, dirs, urls[:-1], WitnessEndpoint(WITNESS_NAME, urls[-1], vkey), keys,
            services,
        )  # fmt: skip
    finally:
        for svc in reversed(services):
            svc.stop()


@contextlib.asynccontextmanager
async def serve_provider(
    data_dir: Path,
    deployment: Deployment,
    port: int,
    *,
    checkpoint_ms: int,
    rng: Rng | None = None,
) -> AsyncIterator[tuple[LawfulAccess, asyncio.Task[None]]]:
    """Serve the relay (SQLite under ``data_dir``, its transparency keys there, the log of
    ``deployment`` with a checkpoint every ``checkpoint_ms``) on ``127.0.0.1:port`` in this
    process; yields its lawful-access service and the task that serves until told to stop
    (or a signal). Stops serving and closes storage on the way out."""
    rng = rng or SystemRng()
    keys, _ = load_or_create_transparency_keys(data_dir, rng)
    franking = load_or_create_franking_key(data_dir, rng)
    storage = await open_sqlite(data_dir / "server.db")
    server: uvicorn.Server | None = None
    serving: asyncio.Task[None] | None = None
    try:
        transparency = TransparencyConfig(
            keys, deployment, checkpoint_interval_ms=checkpoint_ms,
            witness_timeout_ms=WITNESS_TIMEOUT_MS,
        )  # fmt: skip
        app = create_app(
            ServerConfig(franking, transparency=transparency), storage, InProcessPubSub(), rng=rng
        )
        # create_app mounts the lawful-access routes and the interception hook itself.
        lawful: LawfulAccess = app.state.lawful
        server = uvicorn.Server(
            uvicorn.Config(
                app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
                log_config=None,
            )
        )  # fmt: skip
        serving = asyncio.create_task(server.serve())
        while not server.started:
            if serving.done():
                raise LocalError(f"the provider could not serve on port {port}")
            await asyncio.sleep(0.01)
        yield lawful, serving
    finally:
        if server is not None and serving is not None:
            server.should_exit = True
            with contextlib.suppress(Exception):
                await serving
        await storage.close()


def warrant_from_today(
    court: court_tool.Court,
    targets: Sequence[bytes],
    *,
    days: int,
    seal_days: int,
    cap: int,
    reference: str,
    legal_basis: str,
    judge_reference: str,
    rng: Rng | None = None,
) -> Warrant:
    """A warrant ``court`` approved 24 hours ago on ``targets``, whose window runs ``days``
    days from today's UTC midnight — so today's messages are inside it."""
    now = int(time.time())
    today = now - now % DAY_SECONDS
    return court_tool.make_warrant(
        court, targets=list(targets), start=today, end=today + days * DAY_SECONDS,
        seal_days=seal_days, cap=cap, reference=reference, legal_basis=legal_basis,
        judge_reference=judge_reference, now=now - DAY_SECONDS, rng=rng or SystemRng(),
    )  # fmt: skip


__all__ = [
    "EPOCH_LENGTH_DAYS",
    "MAX_SEAL_DAYS",
    "RETENTION_DAYS",
    "LawfulParties",
    "current_epoch",
    "custodian_key",
    "custodian_name",
    "custodian_service",
    "serve_provider",
    "start_parties",
    "warrant_from_today",
    "witness_service",
]
