"""Group ``scale``: the same load through four deployments, side by side in one run.

The load generator of :mod:`bench.loadgen` (``clients`` clients in pairs, a closed loop for
throughput, then an open loop at half of it for latency; every message checked) against:

* ``overt-sqlite`` — one Overt node, SQLite in WAL mode with ``synchronous=FULL`` (the
  ``server`` group's setup);
* ``overt-postgres`` — one Overt node on PostgreSQL (a throwaway cluster started here with
  PostgreSQL's durable defaults: ``fsync=on``, ``synchronous_commit=on``), in-process pub/sub;
* ``overt-2nodes`` — two Overt nodes on that PostgreSQL and a throwaway Redis; client ``i``
  talks to node ``i % 2``, so the two members of every pair sit on different nodes and every
  message crosses nodes through Redis;
* ``synapse`` — Synapse, the Matrix reference homeserver, installed from PyPI into its own
  virtual environment (:mod:`bench.synapse`), on SQLite, under the same load shape over the
  Matrix client API. If it cannot be installed or started, its rows are left out and the reason
  is printed: no number is ever made up.

Each Overt deployment gets a fresh data directory and a fresh database. Nodes run through
``bench/server_wrapper.py`` (per-device limits raised, as in the ``server`` group).
PostgreSQL and Redis come from :mod:`overt.devservices`; if they cannot run here, the two
deployments that need them are skipped with a message.

Rows (``case`` ``throughput`` and ``latency-at-half``, ``impl`` one of the four above):
``messages_per_s``, ``p50_ms``, ``p99_ms``, ``server_cpu_ms_per_message`` (CPU of every
server-side process over the measured window — relay nodes, PostgreSQL's whole process tree,
Redis; Synapse's one process — per message delivered), ``node_cpu_ms_per_message`` (the relay
processes alone), ``generator_cpu_ms_per_message``, ``sent_messages``, ``verified_messages``,
``clients``, ``nodes``; on ``latency-at-half`` also ``target_messages_per_s``. For each Overt
deployment, when Synapse ran, the ratios ``overt_over_synapse_<metric>`` (unit ``x``) of
``messages_per_s`` (throughput), ``p50_ms`` and ``p99_ms`` (latency at half rate) and
``server_cpu_ms_per_message`` (throughput).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from bench.core import BenchError, Context, Group, Row
from bench.loadrun import float_param, run_async

NAME: Final = "scale"
THROUGHPUT: Final = "throughput"
LATENCY: Final = "latency-at-half"
SQLITE: Final = "overt-sqlite"
POSTGRES: Final = "overt-postgres"
TWO_NODES: Final = "overt-2nodes"
SYNAPSE: Final = "synapse"
IMPLS: Final = (SQLITE, POSTGRES, TWO_NODES, SYNAPSE)
OVERT_IMPLS: Final = (SQLITE, POSTGRES, TWO_NODES)
DEFAULT_CLIENTS: Final = 100
DEFAULT_DURATION_S: Final = 10.0
DEFAULT_WINDOW: Final = 4
DEFAULT_WARMUP_S: Final = 1.0
DEFAULT_DRAIN_S: Final = 5.0
DEFAULT_SYNAPSE_DRAIN_S: Final = 30.0
DEFAULT_BODY: Final = 100
RATIO_PREFIX: Final = "overt_over_synapse_"
RATIOS: Final = (
    (THROUGHPUT, "messages_per_s"),
    (THROUGHPUT, "server_cpu_ms_per_message"),
    (LATENCY, "p50_ms"),
    (LATENCY, "p99_ms"),
)


# ----------------------------------------------------------------------------- probes


def _children_of(pid: int) -> list[int]:
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text(encoding="ascii", errors="replace")
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def _probe_class() -> type[Any]:
    from bench.loadgen import ProcessProbe  # noqa: PLC0415 - keeps group discovery light

    class Probe(ProcessProbe):
        """A :class:`ProcessProbe` that remembers every CPU reading (the generator reads at
        the window's two edges, so the last two readings give this process's share) and, with
        ``tree``, counts the process's children too (PostgreSQL: postmaster and backends)."""

        def __init__(self, pid: int, *, tree: bool = False) -> None:
            super().__init__(pid)
            self.tree = tree
            self.readings: list[float] = []

        def _own(self, pid: int, *, reaped: bool) -> float:
            with open(f"/proc/{pid}/stat", encoding="ascii") as f:
                stat = f.read()
            fields = stat[stat.rindex(")") + 2 :].split()
            ticks = int(fields[11]) + int(fields[12])  # utime, stime
            if reaped:
                ticks += int(fields[13]) + int(fields[14])  # cutime, cstime: exited children
            return ticks / self._ticks

        def cpu_seconds(self) -> float:
            total = self._own(self.pid, reaped=self.tree)
            if self.tree:
                for child in _children_of(self.pid):
                    try:
                        total += self._own(child, reaped=False)
                    except OSError:
                        continue  # it exited meanwhile (then it is counted as reaped later)
            self.readings.append(total)
            return total

        def window_cpu(self) -> float:
            if len(self.readings) < 2:
                raise BenchError(f"no CPU readings of process {self.pid}")
            return self.readings[-1] - self.readings[-2]

    return Probe


# ----------------------------------------------------------------------------- measuring


@dataclass(frozen=True)
class Measured:
    """Both phases of one deployment, and how its CPU splits."""

    impl: str
    nodes: int
    busy: Any  # loadgen.PhaseResult
    calm: Any
    node_cpu_s: tuple[float, float]
    """CPU of the relay processes (not the database or Redis) over each phase's window."""


def _describe(r: Any, node_cpu_s: float) -> str:
    return (
        f"{r.messages_per_s:,.0f} msg/s; p50 {r.latency_ms(0.5):.1f} ms, p99 "
        f"{r.latency_ms(0.99):.1f} ms; server CPU {r.server_cpu_ms_per_message:.2f} ms/msg "
        f"(nodes {node_cpu_s / max(1, r.delivered) * 1e3:.2f}), generator "
        f"{r.generator_cpu_ms_per_message:.2f} ms/msg ({r.generator_busy:.0%} of a core)"
    )


def _check(phase: Any, what: str) -> None:
    if phase.verified != phase.sent:
        raise BenchError(
            f"{what} {phase.name}: {phase.sent} sends acknowledged but {phase.verified} delivered"
        )
    if phase.duplicates:
        raise BenchError(f"{what} {phase.name}: {phase.duplicates} messages arrived twice")
    if not phase.latencies_ms:
        raise BenchError(f"{what} {phase.name}: nothing was delivered inside the window")


@dataclass(frozen=True)
class Settings:
    clients: int
    duration_s: float
    window: int
    warmup_s: float
    drain_s: float
    synapse_drain_s: float
    body_size: int
    loop: str


async def _phases(
    ctx: Context,
    impl: str,
    gen: Any,
    node_probes: Sequence[Any],
    settings: Settings,
    drain_s: float,
) -> Measured:
    """Setup, the closed loop, then the open loop at half its rate, on a generator."""
    try:
        await gen.setup()
        ctx.progress(f"{impl}: {THROUGHPUT}, window {settings.window} per client ...")
        busy = await gen.closed_loop(
            settings.duration_s, settings.window, warmup_s=settings.warmup_s, drain_s=drain_s
        )
        gen.check()
        _check(busy, impl)
        busy_nodes = sum(p.window_cpu() for p in node_probes)
        ctx.progress(f"{impl}: {THROUGHPUT}: {_describe(busy, busy_nodes)}")
        rate = busy.messages_per_s / 2
        ctx.used[f"rate_{impl}"] = round(rate, 1)
        ctx.progress(f"{impl}: {LATENCY}: open loop at {rate:,.0f} msg/s ...")
        calm = await gen.open_loop(rate, settings.duration_s, drain_s=drain_s)
        gen.check()
        _check(calm, impl)
        calm_nodes = sum(p.window_cpu() for p in node_probes)
        ctx.progress(f"{impl}: {LATENCY}: {_describe(calm, calm_nodes)}")
    finally:
        await gen.close()
    return Measured(impl, len(node_probes), busy, calm, (busy_nodes, calm_nodes))


def _overt(
    ctx: Context,
    impl: str,
    settings: Settings,
    backend_args: Sequence[Sequence[str]],
    service_probes: Sequence[Any],
) -> Measured:
    """Start one node per entry of ``backend_args``, load them, stop them."""
    from bench import server_wrapper  # noqa: PLC0415
    from bench.loadgen import LoadGenerator  # noqa: PLC0415

    probe = _probe_class()
    with tempfile.TemporaryDirectory(prefix=f"overt-bench-{impl}-") as tmp, ExitStack() as stack:
        nodes = []
        for k, args in enumerate(backend_args):
            data = Path(tmp) / f"node{k}"
            if k:  # every node of a deployment holds the same keys (docs/deploy.md)
                data.mkdir(mode=0o700)
                for key in Path(tmp, "node0").iterdir():
                    if key.is_file() and key.name != "server.db":
                        (data / key.name).write_bytes(key.read_bytes())
                        (data / key.name).chmod(0o600)
            service = server_wrapper.service(data, backend_args=[*args, "--node-id", f"n{k}"])
            stack.callback(service.stop)
            url = service.start()
            nodes.append(service)
            ctx.progress(f"{impl}: node {k} at {url} (pid {service.pid})")
        node_probes = [probe(s.pid) for s in nodes]
        gen = LoadGenerator(
            [s.url for s in nodes],
            settings.clients,
            probes=[*node_probes, *service_probes],
            body_size=settings.body_size,
            progress=lambda m: ctx.progress(f"{impl}: {m}"),
        )
        measured = run_async(
            _phases(ctx, impl, gen, node_probes, settings, settings.drain_s), settings.loop
        )
        for k, s in enumerate(nodes):
            if not s.running():
                raise BenchError(f"{impl}: node {k} exited during the run:\n{s.output()}")
    return measured


def _synapse(ctx: Context, settings: Settings, version: str) -> Measured | None:
    from bench import synapse  # noqa: PLC0415

    try:
        python = synapse.ensure_installed(version, ctx.progress)
        with synapse.synapse_server(python) as server:
            ctx.progress(f"{SYNAPSE}: Synapse {version} at {server.url} (pid {server.pid})")
            probe = _probe_class()(server.pid)
            gen = synapse.MatrixLoad(
                server,
                settings.clients,
                probes=[probe],
                body_size=settings.body_size,
                progress=ctx.progress,
            )
            return run_async(
                _phases(ctx, SYNAPSE, gen, [probe], settings, settings.synapse_drain_s),
                settings.loop,
            )
    except synapse.SynapseUnavailable as exc:
        ctx.progress(f"{SYNAPSE}: skipped, no rows recorded: {exc}")
        return None


@contextmanager
def _services(ctx: Context) -> Iterator[tuple[str, str, str, list[Any]] | None]:
    """A durable throwaway PostgreSQL (two databases) and a Redis, with CPU probes of both;
    ``None`` (and a message) if they cannot run here."""
    from overt import devservices  # noqa: PLC0415

    probe = _probe_class()
    try:
        with (
            devservices.postgres_cluster(durable=True) as cluster,
            devservices.redis_server() as redis,
        ):
            one = cluster.create_database("overt_one_node")
            two = cluster.create_database("overt_two_nodes")
            postmaster = int((cluster.root / "data" / "postmaster.pid").read_text().split()[0])
            ctx.progress(f"PostgreSQL on port {cluster.port} (durable), Redis at {redis.url}")
            yield one, two, redis.url, [probe(postmaster, tree=True), probe(redis.pid)]
    except devservices.ServiceMissing as exc:
        ctx.progress(f"{POSTGRES} and {TWO_NODES}: skipped, no rows recorded: {exc}")
        yield None


# ----------------------------------------------------------------------------- rows


def _rows(m: Measured) -> list[Row]:
    rows: list[Row] = []
    for case, r, node_cpu in ((THROUGHPUT, m.busy, m.node_cpu_s[0]),
                              (LATENCY, m.calm, m.node_cpu_s[1])):  # fmt: skip

        def add(metric: str, value: float, unit: str, case: str = case) -> None:
            rows.append(Row(NAME, case, m.impl, metric, value, unit))

        add("messages_per_s", r.messages_per_s, "msg/s")
        add("p50_ms", r.latency_ms(0.5), "ms")
        add("p99_ms", r.latency_ms(0.99), "ms")
        add("server_cpu_ms_per_message", r.server_cpu_ms_per_message, "ms")
        add("node_cpu_ms_per_message", node_cpu / max(1, r.delivered) * 1e3, "ms")
        add("generator_cpu_ms_per_message", r.generator_cpu_ms_per_message, "ms")
        add("sent_messages", r.sent, "msg")
        add("verified_messages", r.verified, "msg")
        add("clients", r.clients, "clients")
        add("nodes", m.nodes, "nodes")
    rows.append(Row(NAME, LATENCY, m.impl, "target_messages_per_s", m.calm.target_rate, "msg/s"))
    return rows


def ratio_rows(rows: Sequence[Row]) -> list[Row]:
    """``overt_over_synapse_<metric>`` for every Overt deployment, if Synapse has rows."""
    values = {(r.case, r.impl, r.metric): r.value for r in rows}
    out: list[Row] = []
    for impl in OVERT_IMPLS:
        for case, metric in RATIOS:
            overt, peer = values.get((case, impl, metric)), values.get((case, SYNAPSE, metric))
            if overt is not None and peer:
                out.append(Row(NAME, case, impl, RATIO_PREFIX + metric, overt / peer, "x"))
    return out


def _summary(rows: Sequence[Row]) -> str:
    values = {(r.case, r.impl, r.metric): r.value for r in rows}
    impls = [i for i in IMPLS if (THROUGHPUT, i, "messages_per_s") in values]
    lines = [f"{'':34}" + "".join(f"{i:>16}" for i in impls)]
    for case, metric in ((THROUGHPUT, "messages_per_s"), (THROUGHPUT, "server_cpu_ms_per_message"),
                         (LATENCY, "p50_ms"), (LATENCY, "p99_ms")):  # fmt: skip
        cells = "".join(f"{values[case, i, metric]:>16,.2f}" for i in impls)
        lines.append(f"{case + ' ' + metric:34}{cells}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- the group


def run(ctx: Context) -> list[Row]:
    clients = ctx.int_param("clients", DEFAULT_CLIENTS, minimum=2)
    if clients % 2:
        raise BenchError(
            f"--param clients: the clients are paired, give an even number ({clients})"
        )
    settings = Settings(
        clients=clients,
        duration_s=float_param(ctx, "duration_s", DEFAULT_DURATION_S, minimum=0.1),
        window=ctx.int_param("window", DEFAULT_WINDOW),
        warmup_s=float_param(ctx, "warmup_s", DEFAULT_WARMUP_S),
        drain_s=float_param(ctx, "drain_s", DEFAULT_DRAIN_S, minimum=0.1),
        synapse_drain_s=float_param(ctx, "synapse_drain_s", DEFAULT_SYNAPSE_DRAIN_S, 0.1),
        body_size=ctx.int_param("body_size", DEFAULT_BODY, minimum=24),
        loop=ctx.str_param("loop", "uvloop"),
    )
    chosen = [i.strip() for i in ctx.str_param("impls", ",".join(IMPLS)).split(",") if i.strip()]
    unknown = sorted(set(chosen) - set(IMPLS))
    if unknown or not chosen:
        raise BenchError(f"--param impls: a comma-separated subset of {','.join(IMPLS)}")
    version = ctx.str_param("synapse_version", _default_synapse_version())

    measured: list[Measured] = []
    if SQLITE in chosen:
        measured.append(_overt(ctx, SQLITE, settings, [[]], []))
    if POSTGRES in chosen or TWO_NODES in chosen:
        with _services(ctx) as services:
            if services is not None:
                one, two, redis_url, probes = services
                if POSTGRES in chosen:
                    args = ["--storage", "postgres", "--database-url", one]
                    measured.append(_overt(ctx, POSTGRES, settings, [args], probes[:1]))
                if TWO_NODES in chosen:
                    args = ["--storage", "postgres", "--database-url", two,
                            "--pubsub", "redis", "--redis-url", redis_url]  # fmt: skip
                    measured.append(_overt(ctx, TWO_NODES, settings, [args, args], probes))
    if SYNAPSE in chosen:
        found = _synapse(ctx, settings, version)
        if found is not None:
            measured.append(found)
    if not measured:
        raise BenchError("no deployment could be measured")
    rows = [row for m in measured for row in _rows(m)]
    rows += ratio_rows(rows)
    ctx.progress("side by side:\n" + _summary(rows))
    return rows


def _default_synapse_version() -> str:
    from bench.synapse import SYNAPSE_VERSION  # noqa: PLC0415

    return SYNAPSE_VERSION


def _parameters() -> dict[str, str]:
    return {
        "clients": f"clients, in pairs (default {DEFAULT_CLIENTS})",
        "duration_s": f"measured seconds of each phase (default {DEFAULT_DURATION_S:g})",
        "window": f"throughput: sends outstanding per client (default {DEFAULT_WINDOW})",
        "warmup_s": f"throughput: unmeasured seconds first (default {DEFAULT_WARMUP_S:g})",
        "drain_s": f"Overt: seconds to wait for a phase's last deliveries ({DEFAULT_DRAIN_S:g})",
        "synapse_drain_s": f"Synapse: the same (default {DEFAULT_SYNAPSE_DRAIN_S:g})",
        "body_size": f"plaintext bytes per message (default {DEFAULT_BODY})",
        "loop": "the generator's event loop: uvloop (default) or asyncio",
        "impls": f"deployments to run, comma-separated (default {','.join(IMPLS)})",
        "synapse_version": "the matrix-synapse release to install (default: bench.synapse's pin)",
    }


GROUP = Group(
    name=NAME,
    description="one node on SQLite, one on PostgreSQL, two on PostgreSQL + Redis, and Synapse: "
    "throughput, latency at half rate, server CPU per message",
    run=run,
    order=40,
    parameters=_parameters(),
)
