"""A load generator for Overt relay servers: many clients messaging through real servers.

Reusable by any group that needs traffic through one or more running servers (``server`` uses
one node; a multi-node group passes several base URLs and the clients are spread over them,
client ``i`` on ``urls[i % len(urls)]``, so the two members of a pair sit on different nodes
whenever there are two or more).

What one run looks like (:class:`LoadGenerator`)::

    gen = LoadGenerator(urls, clients=100, probes=[ProcessProbe(server_pid)])
    await gen.setup()                       # untimed
    busy = await gen.closed_loop(duration_s=10, window=4)
    calm = await gen.open_loop(rate=busy.messages_per_s / 2, duration_s=10)
    await gen.close()

**Clients.** Each client is one account with one device: an in-memory
:class:`overt.protocol.Device` (no client database), its own Ed25519 request signer
(:class:`overt.client.transport.RequestSigner`, so requests are signed exactly as the client
library signs them), a small pool of keep-alive HTTP/1.1 connections for ``POST /v1/messages``
(:class:`HttpPool`, a minimal client on asyncio streams: measured against the same server,
``httpx.AsyncClient`` spent about 930 µs of client CPU per request and this client about
60 µs, so ``httpx`` would make the generator the bottleneck) and one ``/v1/ws`` WebSocket
(the ``websockets`` library, default options as the client library uses them:
permessage-deflate offered, which the Overt server declines).

**Setup** (:meth:`LoadGenerator.setup`): register every account (``POST /v1/accounts`` with the
payload of :meth:`overt.client.Client.create_account`: a signed device list of one device plus
its signed, last-resort and one-time prekeys), pair clients ``2k`` and ``2k+1``, let each even
client fetch its partner's bundle (``GET /v1/accounts/{account}/bundles?device=1``, verified
against the partner's signed device list and pinned account key), open and authenticate every
WebSocket, then exchange one message each way per pair so that every session is past its
PQXDH message and in the steady state of the Double Ratchet.

**Sending.** Both members of a pair send to each other. A send encrypts a fresh body
(``body_size`` bytes: sender, recipient, sequence number, ``time.perf_counter()`` just before
encryption, and filler) with ``Device.encrypt`` and posts it; the send is *acknowledged* when
the server answers ``200`` (the message is then durable: docs/api.md).

**Receiving.** On every ``mail`` frame the recipient de-duplicates by the envelope's message id
(as the client library does: a repeat is counted, never shown), decrypts, checks that the body
is byte for byte what the sender encrypted for this recipient, records the latency (now minus
the timestamp in the body) and acknowledges mail in batches as the client library's
``Client.listen`` does: one ``ack`` frame once ``ACK_BATCH_MAX`` ids wait, or when no further
frame arrived within ``ACK_DELAY_S`` (both from :mod:`overt.client.limits`). Any decryption
failure, mismatch, unknown message or failed send is recorded and makes
:meth:`LoadGenerator.check` raise.

**Phases.** :meth:`~LoadGenerator.closed_loop` opens ``window`` keep-alive connections per
client (untimed: a burst of new connections at the start would be served late by a saturated
uvloop server, see docs/benchmarks.md) and keeps ``window`` sends outstanding per client
for ``warmup_s + duration_s``; :meth:`~LoadGenerator.open_loop` schedules sends at a fixed
aggregate rate, round robin over the clients, whatever the answers do. Both then stop sending
and *drain*: wait (at most ``drain_s``) until every acknowledged send of the phase has been
delivered; one that is not is *lost*. Rates count deliveries inside the measured window;
latencies cover the sends started inside it; CPU is read from ``/proc`` at the window's edges.

Everything is bounded: each request and WebSocket step has a timeout, each loop a count and a
deadline. Only loopback (or whatever the given URLs name) is contacted.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
import os
import struct
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosedOK

from bench.core import BenchError
from bench.impls import paused_gc
from overt.client._api import prekey_upload
from overt.client.clock import SystemClock
from overt.client.limits import ACK_BATCH_MAX, ACK_DELAY_S
from overt.client.transport import RequestSigner
from overt.crypto import Rng, SystemRng
from overt.protocol import AccountIdentity, Device, verify_bundle, verify_device_list
from overt.wire import Address, Envelope, PreKeyBundle, SignedDeviceList

REQUEST_TIMEOUT_S: Final = 30.0
"""One HTTP request (connect, send, whole answer) or one WebSocket handshake step."""

IDLE_REUSE_S: Final = 20.0
"""A pooled connection idle for longer is closed instead of reused (the server's keep-alive
timeout is 30 s), so a request is never sent on a connection the server may be closing."""

SETUP_CONCURRENCY: Final = 16
"""Registrations and bundle fetches in flight at once during setup."""

MAX_SENDS_PER_TASK: Final = 10_000_000
"""Count bound of one closed-loop sender task (its real bound is the phase's deadline)."""

OPEN_LOOP_CONNECTIONS: Final = 32
"""HTTP connections one client may hold during the open loop (sends wait for one beyond)."""

MAX_RECORDED_FAILURES: Final = 10

_HEADER: Final = struct.Struct(">IIQd")
"""Body header: sender index, recipient index, sequence number, perf_counter() at send."""

_MIN_BODY: Final = _HEADER.size
_SEND_TARGET: Final = "/v1/messages"


def b64(data: bytes) -> bytes:
    """base64url without padding (docs/api.md), as ASCII bytes."""
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..1) of already sorted values."""
    if not sorted_values:
        raise BenchError("no latency samples")
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


async def _send_acks(ws: ClientConnection, acks: list[int]) -> None:
    """One ``ack`` frame for every id in ``acks``, which is emptied."""
    if acks:
        ids = ",".join(map(str, acks))
        acks.clear()
        await ws.send(f'{{"type":"ack","ids":[{ids}]}}')


async def _next_frame(ws: ClientConnection, acks: list[int]) -> str | bytes:
    """The next WebSocket message; acknowledgements waiting go out once none arrives within
    ``ACK_DELAY_S`` (as ``Client.listen`` does; ``recv`` may be cancelled without losing data)."""
    if acks:
        try:
            async with asyncio.timeout(ACK_DELAY_S):
                return await ws.recv()
        except TimeoutError:
            await _send_acks(ws, acks)
    return await ws.recv()


# ----------------------------------------------------------------------------- processes


class ProcessProbe:
    """CPU time and peak memory of one process (Linux ``/proc``), e.g. a server node."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._ticks = os.sysconf("SC_CLK_TCK")

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of every thread of the process so far."""
        with open(f"/proc/{self.pid}/stat", encoding="ascii") as f:
            stat = f.read()
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / self._ticks  # utime, stime

    def peak_mib(self) -> float:
        """Peak resident memory (``VmHWM``) in MiB."""
        with open(f"/proc/{self.pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        raise BenchError(f"no VmHWM for process {self.pid}")


# ----------------------------------------------------------------------------- HTTP


class HttpError(Exception):
    """The connection broke or the answer is not HTTP/1.1 as expected."""


class HttpConnection:
    """One keep-alive HTTP/1.1 connection; one request at a time, no pipelining."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._host = host
        self.last_used = time.monotonic()
        self.reusable = True

    @classmethod
    async def open(cls, host: str, port: int) -> HttpConnection:
        async with asyncio.timeout(REQUEST_TIMEOUT_S):
            reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer, f"{host}:{port}")

    async def request(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes]:
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self._host}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if body or method in ("POST", "PUT"):
            lines.append("Content-Type: application/json")
            lines.append(f"Content-Length: {len(body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.reusable = False  # until the whole answer has been read
        try:
            self._writer.write(head + body if body else head)
            await self._writer.drain()
            raw = await self._reader.readuntil(b"\r\n\r\n")
            status, length, chunked, close = self._parse_head(raw)
            if chunked:
                content = await self._read_chunked()
            else:
                content = await self._reader.readexactly(length) if length else b""
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            raise HttpError(f"{type(exc).__name__} on {method} {target}") from exc
        self.reusable = not close
        self.last_used = time.monotonic()
        return status, content

    @staticmethod
    def _parse_head(raw: bytes) -> tuple[int, int, bool, bool]:
        lines = raw.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise HttpError(f"not an HTTP/1.1 status line: {lines[0][:80]!r}")
        length, chunked, close = 0, False, parts[0] == "HTTP/1.0"
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value.strip())
            elif name == "transfer-encoding":
                chunked = "chunked" in value.lower()
            elif name == "connection":
                close = value.strip().lower() == "close"
        return int(parts[1]), length, chunked, close

    async def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        for _ in range(1_000_000):
            size = int((await self._reader.readline()).split(b";")[0].strip(), 16)
            if size == 0:
                await self._reader.readuntil(b"\r\n")  # no trailers expected
                return b"".join(chunks)
            chunks.append(await self._reader.readexactly(size))
            await self._reader.readexactly(2)
        raise HttpError("too many chunks")

    def close(self) -> None:
        self.reusable = False
        self._writer.close()


class HttpPool:
    """Keep-alive connections to one server, opened on demand, at most ``max_connections``."""

    def __init__(self, base_url: str, max_connections: int) -> None:
        url = urlsplit(base_url)
        if url.scheme != "http" or url.hostname is None or url.port is None:
            raise BenchError(f"need a plain http://host:port URL, got {base_url!r}")
        self.host: str = url.hostname
        self.port: int = url.port
        self._idle: list[HttpConnection] = []
        self._slots = asyncio.Semaphore(max_connections)

    async def request(
        self, method: str, target: str, headers: dict[str, str], body: bytes = b""
    ) -> tuple[int, bytes]:
        async with self._slots:
            conn = None
            while self._idle:
                candidate = self._idle.pop()
                if time.monotonic() - candidate.last_used < IDLE_REUSE_S:
                    conn = candidate
                    break
                candidate.close()
            if conn is None:
                conn = await HttpConnection.open(self.host, self.port)
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT_S):
                    answer = await conn.request(method, target, headers, body)
            except BaseException:
                conn.close()
                raise
            if conn.reusable:
                self._idle.append(conn)
            else:
                conn.close()
            return answer

    async def prefill(self, n: int) -> None:
        """Open connections until ``n`` (at most the pool's bound) are idle."""
        while len(self._idle) < n and not self._slots.locked():
            async with self._slots:
                self._idle.append(await HttpConnection.open(self.host, self.port))

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()


# ----------------------------------------------------------------------------- state


@dataclass(slots=True)
class _Pending:
    """One message between encryption and delivery."""

    sender: int
    recipient: int
    body: bytes
    phase: PhaseStats
    acked: bool = False


@dataclass
class PhaseStats:
    """Counters of one phase (mutable while it runs)."""

    name: str
    window_start: float = math.inf
    """perf_counter() at the start of the measured window (inf: not started)."""
    window_end: float = math.inf
    sent: int = 0
    """Sends the server acknowledged (200)."""
    send_errors: int = 0
    verified: int = 0
    """Deliveries decrypted and checked (every delivery of this phase's messages)."""
    delivered_in_window: int = 0
    latencies_s: list[float] = field(default_factory=list)
    """Delivery latency of each message sent inside the measured window."""
    duplicates: int = 0
    lost: int = 0
    max_lag_s: float = 0.0
    """Open loop: the latest a send started after its scheduled time."""


@dataclass(frozen=True)
class PhaseResult:
    """What one phase measured."""

    name: str
    clients: int
    window_s: float
    delivered: int
    """Messages delivered (decrypted and checked) inside the measured window."""
    sent: int
    verified: int
    duplicates: int
    latencies_ms: tuple[float, ...] = field(repr=False)
    """Sorted delivery latencies of the messages sent inside the window."""
    server_cpu_s: float
    generator_cpu_s: float
    server_peak_mib: tuple[float, ...]
    """``VmHWM`` of each probed process at the end of the phase (its peak so far)."""
    target_rate: float | None = None
    max_lag_ms: float = 0.0

    @property
    def messages_per_s(self) -> float:
        return self.delivered / self.window_s

    def latency_ms(self, q: float) -> float:
        return percentile(self.latencies_ms, q)

    @property
    def server_cpu_ms_per_message(self) -> float:
        return self.server_cpu_s / max(1, self.delivered) * 1e3

    @property
    def generator_cpu_ms_per_message(self) -> float:
        return self.generator_cpu_s / max(1, self.delivered) * 1e3

    @property
    def generator_busy(self) -> float:
        """Fraction of one CPU the generator used during the window."""
        return self.generator_cpu_s / self.window_s

    @property
    def server_busy(self) -> float:
        return self.server_cpu_s / self.window_s


class LoadClient:
    """One account with one device, its signer, its HTTP pool and its WebSocket."""

    def __init__(
        self, index: int, url: str, account: bytes, rng: Rng, max_connections: int
    ) -> None:
        self.index = index
        self.url = url.rstrip("/")
        self.account_identity = AccountIdentity.generate(account, rng)
        # One one-time prekey of each kind: a pair uses one bundle; more is setup time only.
        self.device = Device.create(account, 1, rng=rng, one_time_prekeys=1,
                                    kem_one_time_prekeys=1)  # fmt: skip
        self.signer = RequestSigner(self.device.address, self.device.identity.sign, SystemClock())
        self.pool = HttpPool(self.url, max_connections)
        self.ws: ClientConnection | None = None
        self.peer: LoadClient | None = None
        self.send_prefix = b""
        self.seen: set[bytes] = set()
        self.sequence = 0
        self.prekeys_low = 0

    @property
    def address(self) -> Address:
        return self.device.address

    def pair_with(self, peer: LoadClient) -> None:
        self.peer = peer
        self.send_prefix = (
            b'{"recipients":{"' + b64(peer.address.account) + b'":[1]},"envelopes":["'
        )


# ----------------------------------------------------------------------------- generator


class LoadGenerator:
    """``clients`` clients in pairs, spread over ``urls``; see the module docstring."""

    def __init__(
        self,
        urls: Sequence[str],
        clients: int,
        *,
        probes: Sequence[ProcessProbe] = (),
        body_size: int = 100,
        rng: Rng | None = None,
        progress: Callable[[str], None] | None = None,
        max_connections: int = OPEN_LOOP_CONNECTIONS,
    ) -> None:
        if clients < 2 or clients % 2:
            raise BenchError(f"clients must be an even number of at least 2, got {clients}")
        if not urls:
            raise BenchError("no server URL to load")
        if body_size < _MIN_BODY:
            raise BenchError(f"body_size must be at least {_MIN_BODY} bytes")
        self.urls = [u.rstrip("/") for u in urls]
        self.n = clients
        self.probes = list(probes)
        self.body_size = body_size
        self._rng = rng or SystemRng()
        self._progress = progress or (lambda _msg: None)
        self._max_connections = max_connections
        self._fillers = [self._rng.random_bytes(body_size - _MIN_BODY) for _ in range(64)]
        self._run_tag = self._rng.random_bytes(4).hex()
        self.clients: list[LoadClient] = []
        self.pending: dict[bytes, _Pending] = {}
        self.failures: list[str] = []
        self.failure_count = 0
        self._phase = PhaseStats("idle")
        self._receivers: list[asyncio.Task[None]] = []
        self._closing = False

    # ------------------------------------------------------------------ failures

    def _fail(self, what: str) -> None:
        self.failure_count += 1
        if len(self.failures) < MAX_RECORDED_FAILURES:
            self.failures.append(what)

    def check(self) -> None:
        """Raise :class:`BenchError` if anything went wrong so far."""
        if self.failure_count:
            shown = "; ".join(self.failures)
            raise BenchError(f"{self.failure_count} correctness failure(s): {shown}")

    # ------------------------------------------------------------------ setup

    async def setup(self) -> None:
        """Register, pair, connect and warm up every client (untimed)."""
        started = time.perf_counter()
        for i in range(self.n):
            account = f"lg{self._run_tag}-{i:05d}".encode()
            url = self.urls[i % len(self.urls)]
            self.clients.append(LoadClient(i, url, account, self._rng, self._max_connections))
        self._progress(f"setup: {self.n} devices made in {time.perf_counter() - started:.1f} s")

        limit = asyncio.Semaphore(SETUP_CONCURRENCY)

        async def bounded(job: Awaitable[None]) -> None:
            async with limit:
                await job

        t = time.perf_counter()
        await asyncio.gather(*(bounded(self._register(c)) for c in self.clients))
        self._progress(f"setup: {self.n} accounts registered in {time.perf_counter() - t:.1f} s")

        for k in range(0, self.n, 2):
            a, b = self.clients[k], self.clients[k + 1]
            a.pair_with(b)
            b.pair_with(a)
        t = time.perf_counter()
        initiators = self.clients[0::2]
        await asyncio.gather(*(bounded(self._fetch_bundle(c)) for c in initiators))
        self._progress(
            f"setup: {len(initiators)} bundles fetched in {time.perf_counter() - t:.1f} s"
        )

        t = time.perf_counter()
        await asyncio.gather(*(bounded(self._connect(c)) for c in self.clients))
        self._receivers = [asyncio.ensure_future(self._receive(c)) for c in self.clients]
        self._progress(f"setup: {self.n} WebSockets open in {time.perf_counter() - t:.1f} s")

        # One message each way per pair: the PQXDH message, then the responder's first answer.
        t = time.perf_counter()
        warm = PhaseStats("setup")
        self._phase = warm
        for senders in (self.clients[0::2], self.clients[1::2]):
            await asyncio.gather(*(self._send(c, warm) for c in senders))
            await self._drain(warm, REQUEST_TIMEOUT_S)
        self.check()
        if warm.verified != self.n:
            raise BenchError(f"setup exchange: {warm.verified}/{self.n} messages delivered")
        self._progress(
            f"setup: sessions established ({warm.verified} messages) in "
            f"{time.perf_counter() - t:.1f} s; total setup {time.perf_counter() - started:.1f} s"
        )

    async def _register(self, c: LoadClient) -> None:
        stock = c.device.prekeys
        signed = c.account_identity.sign_device_list(1, [c.device.entry()])
        payload = {
            "account": b64(c.address.account).decode(),
            "signed_device_list": b64(signed.encode()).decode(),
            "prekeys": prekey_upload(
                stock.signed[stock.current_signed][1],
                stock.kem[stock.last_resort_kem][1],
                [pub for _, pub in stock.one_time.values()],
                [pub for _, pub in stock.kem.values() if not pub.last_resort],
            ),
        }
        body = json.dumps(payload, separators=(",", ":")).encode()
        status, answer = await c.pool.request(
            "POST", "/v1/accounts", c.signer.headers("POST", "/v1/accounts", body), body
        )
        if status != 201:
            raise BenchError(f"registering client {c.index}: {status} {answer[:200]!r}")

    async def _fetch_bundle(self, c: LoadClient) -> None:
        assert c.peer is not None
        peer = c.peer
        target = f"/v1/accounts/{b64(peer.address.account).decode()}/bundles?device=1"
        status, answer = await c.pool.request("GET", target, c.signer.headers("GET", target, b""))
        if status != 200:
            raise BenchError(f"bundle of client {peer.index}: {status} {answer[:200]!r}")
        data = json.loads(answer)
        device_list = verify_device_list(
            SignedDeviceList.decode(unb64(data["signed_device_list"])),
            peer.account_identity.public_key.raw,
        )
        (bundle_b64,) = data["bundles"]
        bundle = PreKeyBundle.decode(unb64(bundle_b64))
        (entry,) = [d for d in device_list.devices if d.device == 1]
        verify_bundle(bundle, entry)
        c.device.start_session(bundle, entry)

    async def _connect(self, c: LoadClient) -> None:
        ws_url = "ws" + c.url[len("http") :] + "/v1/ws"
        ws = await ws_connect(ws_url, proxy=None, open_timeout=REQUEST_TIMEOUT_S,
                              max_size=2 * 1024 * 1024)  # fmt: skip
        async with asyncio.timeout(REQUEST_TIMEOUT_S):
            challenge = json.loads(await ws.recv())
            if challenge.get("type") != "challenge":
                raise BenchError(f"client {c.index}: expected a challenge, got {challenge!r}")
            await ws.send(json.dumps(c.signer.ws_auth(challenge["nonce"]), separators=(",", ":")))
            ready = json.loads(await ws.recv())
            if ready.get("type") != "ready":
                raise BenchError(f"client {c.index}: WebSocket login refused: {ready!r}")
        c.ws = ws

    # ------------------------------------------------------------------ the hot path

    async def _send(self, c: LoadClient, phase: PhaseStats) -> None:
        """Encrypt one fresh body for ``c``'s partner and post it."""
        peer = c.peer
        assert peer is not None
        c.sequence += 1
        t0 = time.perf_counter()
        body = _HEADER.pack(c.index, peer.index, c.sequence, t0) + self._fillers[c.sequence % 64]
        envelope = c.device.encrypt(peer.address, body, now_ms=wall_ms())
        pending = _Pending(c.index, peer.index, body, phase)
        self.pending[envelope.message_id] = pending
        payload = c.send_prefix + b64(envelope.encode()) + b'"]}'
        headers = c.signer.headers("POST", _SEND_TARGET, payload)
        try:
            status, answer = await c.pool.request("POST", _SEND_TARGET, headers, payload)
        except (HttpError, TimeoutError, OSError) as exc:
            status, answer = 0, repr(exc).encode()
        if status == 200 and len(json.loads(answer)["ids"]) == 1:
            pending.acked = True
            phase.sent += 1
        else:
            # Refused (or no answer): nothing of it may arrive; drop it from the expected set.
            phase.send_errors += 1
            self.pending.pop(envelope.message_id, None)
            self._fail(f"send by client {c.index} in {phase.name}: {status} {answer[:200]!r}")

    def _on_mail(self, c: LoadClient, frame: dict[str, object]) -> None:
        envelope = Envelope.decode(unb64(frame["envelope"]))  # type: ignore[arg-type]
        mid = envelope.message_id
        if mid in c.seen:  # at-least-once delivery: shown once, counted
            self._phase.duplicates += 1
            return
        pending = self.pending.get(mid)
        if pending is None or pending.recipient != c.index:
            self._fail(f"client {c.index} got a message nobody sent it (id {mid.hex()})")
            return
        received = c.device.decrypt(envelope)
        now = time.perf_counter()
        c.seen.add(mid)
        del self.pending[mid]
        if received.body != pending.body or received.sender != self.clients[pending.sender].address:
            self._fail(f"client {c.index}: message {mid.hex()} decrypted to something else")
            return
        phase = pending.phase
        phase.verified += 1
        t0 = _HEADER.unpack_from(received.body)[3]
        if phase.window_start <= t0 < phase.window_end:
            phase.latencies_s.append(now - t0)
        if phase.window_start <= now <= phase.window_end:
            phase.delivered_in_window += 1

    async def _receive(self, c: LoadClient) -> None:
        ws = c.ws
        assert ws is not None
        acks: list[int] = []
        try:
            while True:
                try:
                    raw = await _next_frame(ws, acks)
                except ConnectionClosedOK:
                    break
                frame = json.loads(raw)
                kind = frame.get("type")
                if kind == "mail":
                    try:
                        self._on_mail(c, frame)
                    except Exception as exc:  # a failed check must not stop the reader
                        self._fail(f"client {c.index}: {type(exc).__name__}: {exc}")
                    acks.append(int(frame["id"]))
                    if len(acks) >= ACK_BATCH_MAX:
                        await _send_acks(ws, acks)
                elif kind == "prekeys_low":
                    c.prekeys_low += 1
                else:
                    self._fail(f"client {c.index}: unexpected frame {str(frame)[:200]}")
        except Exception as exc:
            if not self._closing:
                self._fail(f"client {c.index}: WebSocket failed: {type(exc).__name__}: {exc}")
        if not self._closing:
            self._fail(f"client {c.index}: WebSocket closed ({ws.close_code} {ws.close_reason})")

    async def _drain(self, phase: PhaseStats, timeout_s: float) -> None:
        """Wait until every acknowledged send of ``phase`` was delivered; count the rest."""
        deadline = time.perf_counter() + timeout_s
        for _ in range(int(timeout_s * 100) + 1):
            if not any(p.phase is phase for p in self.pending.values()):
                break
            if time.perf_counter() > deadline:
                break
            await asyncio.sleep(0.01)
        left = [(mid, p) for mid, p in self.pending.items() if p.phase is phase]
        for mid, p in left:
            del self.pending[mid]
            if p.acked:
                phase.lost += 1
                self._fail(
                    f"{phase.name}: message {mid.hex()} from client {p.sender} to {p.recipient} "
                    f"was acknowledged but not delivered within {timeout_s:.0f} s"
                )

    # ------------------------------------------------------------------ phases

    def _cpu(self) -> tuple[float, float]:
        return sum(p.cpu_seconds() for p in self.probes), time.process_time()

    def _result(
        self,
        phase: PhaseStats,
        cpu_start: tuple[float, float],
        cpu_end: tuple[float, float],
        target_rate: float | None = None,
    ) -> PhaseResult:
        return PhaseResult(
            name=phase.name,
            clients=self.n,
            window_s=phase.window_end - phase.window_start,
            delivered=phase.delivered_in_window,
            sent=phase.sent,
            verified=phase.verified,
            duplicates=phase.duplicates,
            latencies_ms=tuple(sorted(s * 1e3 for s in phase.latencies_s)),
            server_cpu_s=cpu_end[0] - cpu_start[0],
            generator_cpu_s=cpu_end[1] - cpu_start[1],
            server_peak_mib=tuple(p.peak_mib() for p in self.probes),
            target_rate=target_rate,
            max_lag_ms=phase.max_lag_s * 1e3,
        )

    async def closed_loop(
        self, duration_s: float, window: int, *, warmup_s: float = 1.0, drain_s: float = 5.0
    ) -> PhaseResult:
        """Every client keeps ``window`` sends outstanding; measure ``duration_s`` after
        ``warmup_s``."""
        phase = PhaseStats("throughput")
        self._phase = phase
        # Keep-alive connections for every sender, opened before the clock starts.
        await asyncio.gather(*(c.pool.prefill(window) for c in self.clients))
        begin = time.perf_counter()
        stop_at = begin + warmup_s + duration_s

        async def sender(c: LoadClient) -> None:
            for _ in range(MAX_SENDS_PER_TASK):
                if time.perf_counter() >= stop_at:
                    return
                await self._send(c, phase)

        with paused_gc():
            tasks = [asyncio.ensure_future(sender(c)) for c in self.clients for _ in range(window)]
            try:
                await asyncio.sleep(max(0.0, begin + warmup_s - time.perf_counter()))
                cpu_start = self._cpu()
                phase.window_start = time.perf_counter()
                await asyncio.sleep(max(0.0, stop_at - time.perf_counter()))
                phase.window_end = time.perf_counter()
                cpu_end = self._cpu()
                async with asyncio.timeout(REQUEST_TIMEOUT_S + 5):
                    await asyncio.gather(*tasks)
            finally:
                for task in tasks:
                    task.cancel()
            await self._drain(phase, drain_s)
        return self._result(phase, cpu_start, cpu_end)

    async def open_loop(
        self, rate: float, duration_s: float, *, drain_s: float = 5.0
    ) -> PhaseResult:
        """Start sends at ``rate`` per second in aggregate (round robin over the clients) for
        ``duration_s``, whether or not earlier sends were answered."""
        if rate <= 0:
            raise BenchError(f"open loop: the rate must be positive, got {rate}")
        phase = PhaseStats("latency")
        self._phase = phase
        total = max(1, int(rate * duration_s))
        interval = 1.0 / rate
        tasks: set[asyncio.Task[None]] = set()
        with paused_gc():
            cpu_start = self._cpu()
            start = phase.window_start = time.perf_counter()
            phase.window_end = start + duration_s
            try:
                for k in range(total):
                    due = start + k * interval
                    delay = due - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    phase.max_lag_s = max(phase.max_lag_s, time.perf_counter() - due)
                    task = asyncio.ensure_future(self._send(self.clients[k % self.n], phase))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                await asyncio.sleep(max(0.0, phase.window_end - time.perf_counter()))
                cpu_end = self._cpu()
                if tasks:
                    async with asyncio.timeout(REQUEST_TIMEOUT_S + 5):
                        await asyncio.gather(*tasks)
            finally:
                for task in tasks:
                    task.cancel()
            await self._drain(phase, drain_s)
        return self._result(phase, cpu_start, cpu_end, target_rate=rate)

    # ------------------------------------------------------------------ teardown

    async def close(self) -> None:
        """Close every WebSocket and HTTP connection (the servers keep running)."""
        self._closing = True
        for task in self._receivers:
            task.cancel()
        if self._receivers:
            await asyncio.wait(self._receivers, timeout=REQUEST_TIMEOUT_S)
        for c in self.clients:
            if c.ws is not None:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(5):
                        await c.ws.close()
            c.pool.close()
