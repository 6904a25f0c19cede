"""A fake transparency log in front of the real relay server, for the key-transparency tests.

No tests here: the pieces the ``test_client_kt*`` files share. The relay is the real
:func:`overt.server.create_app` in-process; in front of it, :class:`KtTransport` answers the
endpoints of docs/api.md's "Transparency log and key directory (v1)" itself, from a
:class:`Deployment` built from the real parts — :class:`~overt.transparency.log.Log` over an
in-memory :class:`~overt.storage.LogStore`, signed checkpoints, real
:class:`~overt.transparency.witness.Witness` cosignatures, a signed manifest, vrf-r255 labels
and commitments — and logs a key-directory entry whenever the relay accepts a device list, as
the server does. So these tests do not depend on the server's own log wiring.

A deployment can show different clients different **views** (a split view): each view is its
own log; :meth:`Deployment.fork` starts one as a copy of another. The honest witness is one
:class:`Witness` for all views (it refuses to cosign a second, inconsistent tree); a
compromised one is a separate :class:`Witness` per view with the same key (it cosigns
anything).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from overt.client import AsgiTransport, Client, PushChannel, RequestSigner, Response, Transport
from overt.client._b64 import b64d, b64e
from overt.client.transport import error_of
from overt.crypto import DeterministicRng, Ed25519PrivateKey, sha256
from overt.crypto.vrf import VrfSecretKey, proof_to_hash, prove
from overt.errors import OvertError
from overt.server import ServerConfig, ServerLimits, create_app
from overt.storage import InProcessPubSub, Storage, open_memory
from overt.transparency.entries import (
    Entry,
    KeyDirectoryUpdate,
    ManifestEntry,
    decode_entry,
    kt_commitment,
    kt_label,
)
from overt.transparency.log import Log
from overt.transparency.manifest import (
    AccessPolicy,
    LogInfo,
    Manifest,
    NamedKey,
    NoAccess,
    WitnessInfo,
    sign_manifest,
)
from overt.transparency.note import CosignatureSigner, Note, NoteSigner
from overt.transparency.witness import Witness, WitnessedLog, WitnessRefusal
from overt.wire import SignedDeviceList

from .support import FakeClock

ORIGIN = "log.overt.test/kt"


def key(seed: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate(DeterministicRng(seed))


PROVIDER = key("provider")
LOG_SIGNER = NoteSigner(ORIGIN, key("log"))
HONEST = CosignatureSigner("witness.honest.test", key("honest witness"))
COMPROMISED = CosignatureSigner("witness.compromised.test", key("compromised witness"))
VRF = VrfSecretKey.generate(DeterministicRng("vrf"))


def label_of(account: bytes) -> bytes:
    return kt_label(proof_to_hash(prove(VRF, account)))


def make_manifest(
    *, quorum: int = 1, version: int = 1, vrf: bool = True, access: AccessPolicy | None = None
) -> Manifest:
    return Manifest(
        deployment="overt.test",
        version=version,
        provider_key=PROVIDER.public_key,
        server_keys=(NamedKey("api", PROVIDER.public_key),),
        log=LogInfo(ORIGIN, LOG_SIGNER.verifier_key),
        witnesses=(
            WitnessInfo("Honest", HONEST.verifier_key),
            WitnessInfo("Compromised", COMPROMISED.verifier_key),
        ),
        witness_quorum=quorum,
        access=NoAccess() if access is None else access,
        vrf_key=VRF.public_key if vrf else None,
    )


@dataclass
class Record:
    """One key-directory entry as the server keeps it: where, the opening, the list."""

    index: int
    opening: bytes
    signed_device_list: bytes


@dataclass
class View:
    """One tree the server shows (honest: there is one)."""

    name: str
    storage: Storage
    log: Log
    witnesses: list[Witness]
    records: dict[bytes, list[Record]] = field(default_factory=dict)
    refusals: list[WitnessRefusal] = field(default_factory=list)
    auto_checkpoint: bool = True
    published: Note | None = None

    async def append(self, entries: list[Entry]) -> list[int]:
        return await self.log.append_batch(entries)

    async def checkpoint(self, now_s: int) -> Note:
        """Sign a checkpoint if the tree grew and collect the witnesses' cosignatures."""
        note = await self.log.checkpoint()
        if self.published is not None and self.published.text == note.text:
            return self.published
        size = int(note.text.split("\n")[1])
        lines = []
        for w in self.witnesses:
            old = w.state.size_of(ORIGIN)
            proof = await self.log.consistency_proof(old, size) if 0 < old < size else []
            try:
                lines.append(w.add_checkpoint(old, proof, note, now_s))
            except WitnessRefusal as refusal:
                self.refusals.append(refusal)
        self.published = await self.log.add_cosignatures(note.with_signatures(*lines))
        return self.published

    async def size(self) -> int:
        return 0 if self.published is None else int(self.published.text.split("\n")[1])


class Deployment:
    """The provider's side of the log: keys, manifest, views, and what it logs."""

    def __init__(self, clock: FakeClock, manifest: Manifest | None = None) -> None:
        self.clock = clock
        self.manifest = manifest or make_manifest()
        self.signed_manifest = sign_manifest(self.manifest, PROVIDER)
        self.honest = Witness(HONEST, [WitnessedLog.from_vkey(LOG_SIGNER.verifier_key)])
        self.views: dict[str, View] = {}
        self.openings = DeterministicRng("openings")
        self.log_device_lists = True
        self.stores: list[Storage] = []

    async def start(self) -> View:
        view = await self._new_view("a")
        await view.append([ManifestEntry(self.signed_manifest)])
        return view

    async def _new_view(self, name: str) -> View:
        storage = await open_memory()
        self.stores.append(storage)
        log = Log(
            storage.log,
            LOG_SIGNER,
            ORIGIN,
            self.clock.now_ms,
            witnesses=self.manifest.witness_keys,
        )
        compromised = Witness(COMPROMISED, [WitnessedLog.from_vkey(LOG_SIGNER.verifier_key)])
        view = View(name, storage, log, [self.honest, compromised])
        self.views[name] = view
        return view

    async def fork(self, name: str, source: str = "a") -> View:
        """A second tree with the same entries as ``source`` so far."""
        src = self.views[source]
        view = await self._new_view(name)
        size = await src.log.size()
        data = await _all_entries(src.log, size)
        await view.append([decode_entry(d) for d in data])
        view.records = {a: list(r) for a, r in src.records.items()}
        return view

    async def close(self) -> None:
        for s in self.stores:
            await s.close()

    # ------------------------------------------------------------------ key directory

    async def log_list(
        self,
        account: bytes,
        signed: bytes,
        *,
        views: list[str] | None = None,
        account_key: bytes | None = None,
        serial: int | None = None,
        list_hash: bytes | None = None,
        serve: bool = True,
    ) -> None:
        """Append a key-directory entry for ``account`` (by default exactly the one the
        server writes for ``signed``) to the given views; ``serve``: lookups return it."""
        dl = SignedDeviceList.decode(signed).device_list
        opening = self.openings.random_bytes(32)
        entry = KeyDirectoryUpdate(
            label=label_of(account),
            account_key=dl.account_key if account_key is None else account_key,
            serial=dl.serial if serial is None else serial,
            device_list_hash=sha256(signed) if list_hash is None else list_hash,
            commitment=kt_commitment(opening, account),
        )
        for name in views or list(self.views):
            view = self.views[name]
            [index] = await view.append([entry])
            if serve:
                view.records.setdefault(account, []).append(Record(index, opening, signed))

    async def observe(self, method: str, target: str, body: object) -> None:
        """What the server logs when the relay accepted a device list."""
        if not self.log_device_lists or not isinstance(body, dict):
            return
        path = urlsplit(target).path
        if method == "POST" and path == "/v1/accounts":
            await self.log_list(
                b64d(body["account"], "account"), b64d(body["signed_device_list"], "list")
            )
        elif method == "PUT" and path.startswith("/v1/accounts/") and path.endswith("/devices"):
            account = b64d(path.split("/")[3], "account")
            await self.log_list(account, b64d(body["signed_device_list"], "list"))

    # ------------------------------------------------------------------ the endpoints

    async def answer(self, view: View, target: str) -> Response:
        url = urlsplit(target)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        if view.auto_checkpoint:
            await view.checkpoint(self.clock.now_ms() // 1000)
        size = await view.size()
        path = url.path
        if path == "/v1/manifest":
            return _json({"manifest": b64e(self.signed_manifest), "index": 0})
        if path == "/v1/log/checkpoint":
            if "size" in q:
                note = await view.log.checkpoint_at(int(q["size"]))
                if note is None:
                    raise _not_found()
                return Response(200, {"content-type": "text/plain"}, note.to_bytes())
            if view.published is None:
                raise _not_found()
            return Response(200, {"content-type": "text/plain"}, view.published.to_bytes())
        if path == "/v1/log/entries":
            start, end = int(q["start"]), min(int(q["end"]), size)
            data = await view.log.entries(start, min(end, start + 1000))
            return _json({"entries": [b64e(d) for d in data]})
        if path == "/v1/log/inclusion":
            proof = await view.log.inclusion_proof(int(q["index"]), int(q["size"]))
            return _json({"proof": [b64e(h) for h in proof]})
        if path == "/v1/log/consistency":
            m, n = int(q["from"]), int(q["to"])
            if not 0 < m <= n <= size:
                raise error_of(400, {"error": "malformed", "message": "bad sizes"})
            proof = await view.log.consistency_proof(m, n)
            return _json({"proof": [b64e(h) for h in proof]})
        if path.startswith("/v1/kt/"):
            account = b64d(path[len("/v1/kt/") :], "account")
            records = [r for r in view.records.get(account, []) if r.index < size]
            if not records:
                raise _not_found()
            r = records[-1]
            bundle = await view.log.proof_bundle(r.index)
            return _json(
                {
                    "vrf_proof": b64e(prove(VRF, account)),
                    "index": r.index,
                    "opening": b64e(r.opening),
                    "signed_device_list": b64e(r.signed_device_list),
                    "proof": bundle.to_bytes().decode(),
                }
            )
        raise _not_found()


async def _all_entries(log: Log, size: int) -> list[bytes]:
    out: list[bytes] = []
    while len(out) < size:
        out += await log.entries(len(out), size)
    return out


def _json(data: object) -> Response:
    return Response(200, {"content-type": "application/json"}, json.dumps(data).encode())


def _not_found() -> OvertError:
    return error_of(404, {"error": "not_found", "message": "no such thing"})


KT_PATHS = ("/v1/manifest", "/v1/log/", "/v1/kt/")


class KtTransport:
    """One client's connection: the log endpoints from its view, the rest from the relay."""

    def __init__(self, deployment: Deployment, view: str, inner: Transport) -> None:
        self.deployment = deployment
        self.view = view
        self.inner = inner
        self.log: list[tuple[str, str]] = []
        self.refuse: set[str] = set()
        """Log paths this server refuses (answers 404)."""

    @property
    def supports_push(self) -> bool:
        return self.inner.supports_push

    async def request(
        self,
        method: str,
        target: str,
        *,
        json: object | None = None,
        content: bytes | None = None,
        signer: RequestSigner | None = None,
    ) -> Response:
        self.log.append((method, target))
        path = urlsplit(target).path
        if method == "GET" and path.startswith(KT_PATHS):
            if any(path.startswith(p) for p in self.refuse):
                raise _not_found()
            return await self.deployment.answer(self.deployment.views[self.view], target)
        answer = await self.inner.request(method, target, json=json, content=content, signer=signer)
        await self.deployment.observe(method, target, json)
        return answer

    def push(self, target: str) -> AbstractAsyncContextManager[PushChannel]:
        return self.inner.push(target)

    async def aclose(self) -> None:
        pass  # the relay transport is the world's


@dataclass
class KtWorld:
    tmp: Path
    clock: FakeClock
    relay: AsgiTransport
    deployment: Deployment
    clients: list[Client] = field(default_factory=list)
    others: list[Deployment] = field(default_factory=list)

    def transport(self, view: str = "a", deployment: Deployment | None = None) -> KtTransport:
        return KtTransport(deployment or self.deployment, view, self.relay)

    async def other_deployment(self, manifest: Manifest) -> Deployment:
        """Another provider's log (closed with the world) over the same relay."""
        deployment = Deployment(self.clock, manifest)
        self.others.append(deployment)
        await deployment.start()
        return deployment

    async def client(
        self, profile: str, transport: Transport | None = None, **kwargs: Any
    ) -> Client:
        c = await Client.open(
            self.tmp / profile,
            transport or self.transport(),
            clock=self.clock,
            rng=DeterministicRng(f"client {profile}"),
            **kwargs,
        )
        self.clients.append(c)
        return c

    async def user(self, name: str, transport: Transport | None = None, **kwargs: Any) -> Client:
        c = await self.client(name, transport, **kwargs)
        await c.create_account(name)
        return c


@asynccontextmanager
async def kt_world(tmp_path: Path) -> AsyncIterator[KtWorld]:
    """The real relay in-process behind a fake log; each test file makes it its fixture."""
    clock = FakeClock()
    storage = await open_memory()
    app = create_app(
        ServerConfig(franking_key=bytes(range(32)), limits=ServerLimits(rate_burst=1_000_000)),
        storage,
        InProcessPubSub(),
        clock=clock.now_ms,
        rng=DeterministicRng("server"),
    )
    relay = AsgiTransport(app)
    deployment = Deployment(clock)
    await deployment.start()
    world = KtWorld(tmp_path, clock, relay, deployment)
    try:
        yield world
    finally:
        for c in world.clients:
            await c.close()
        await relay.aclose()
        for d in [deployment, *world.others]:
            await d.close()
        await storage.close()
