"""Group ``server``: messages through the real relay server, over loopback, durably stored.

One server process (``bench/server_wrapper.py``: ``overt server`` with SQLite in WAL mode and
``synchronous=FULL`` under a fresh temporary data directory, per-device rate limits raised so
that the load is not refused) and, in this process, ``clients`` clients of
:mod:`bench.loadgen`, in pairs, each with its own account, device, keep-alive HTTP connections
and WebSocket. After an untimed setup (registration, prekeys, bundles, WebSockets, one message
each way per pair):

* ``throughput`` — closed loop: every client keeps ``window`` sends outstanding to its partner
  for ``warmup_s`` + ``duration_s``; ``messages_per_s`` counts the messages delivered over
  WebSocket (decrypted, checked, acknowledged) inside the ``duration_s`` window.
* ``latency-at-half`` — open loop: sends start at a fixed aggregate rate (``rate``, default
  half of the ``throughput`` just measured), round robin over the clients, for ``duration_s``;
  latency runs from just before encryption at the sender to the end of decryption at the
  recipient.

Server CPU per message comes from ``/proc/<pid>/stat`` (user + system, every thread) over the
measured window, divided by the messages delivered in it; the generator's own CPU per message
likewise (``time.process_time``), so the split is visible. Peak memory is the server's
``VmHWM`` at the end of each phase. The group fails if any message decrypted to something other
than what was sent, arrived twice, or was acknowledged to its sender but not delivered within
``drain_s`` after the phase, or if any send was refused.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Final

from bench.core import OVERT, BenchError, Context, Group, Row
from bench.loadrun import float_param, run_async

NAME: Final = "server"
THROUGHPUT: Final = "throughput"
LATENCY: Final = "latency-at-half"
DEFAULT_CLIENTS: Final = 100
DEFAULT_DURATION_S: Final = 10.0
DEFAULT_WINDOW: Final = 4
DEFAULT_WARMUP_S: Final = 1.0
DEFAULT_DRAIN_S: Final = 5.0
DEFAULT_BODY: Final = 100


def _describe(r: Any) -> str:  # a loadgen.PhaseResult
    return (
        f"{r.delivered:,} delivered in {r.window_s:.2f} s = {r.messages_per_s:,.0f} msg/s; "
        f"latency p50 {r.latency_ms(0.5):.1f} ms, p99 {r.latency_ms(0.99):.1f} ms, "
        f"max {r.latency_ms(1.0):.1f} ms; server CPU {r.server_cpu_ms_per_message:.3f} ms/msg "
        f"({r.server_busy:.0%} of a core), generator {r.generator_cpu_ms_per_message:.3f} "
        f"ms/msg ({r.generator_busy:.0%}); server peak {max(r.server_peak_mib):.0f} MiB"
    )


def _check(phase: Any) -> None:
    if phase.verified != phase.sent:
        raise BenchError(
            f"{phase.name}: {phase.sent} sends acknowledged but {phase.verified} delivered"
        )
    if phase.duplicates:
        raise BenchError(
            f"{phase.name}: {phase.duplicates} messages arrived twice on one connection "
            "(docs/api.md: within one connection each message is sent once)"
        )
    if not phase.latencies_ms:
        raise BenchError(f"{phase.name}: no message was delivered inside the measured window")


async def _measure(
    ctx: Context,
    url: str,
    pid: int,
    *,
    clients: int,
    duration_s: float,
    window: int,
    rate: float,
    warmup_s: float,
    drain_s: float,
    body_size: int,
) -> list[Row]:
    from bench.loadgen import LoadGenerator, ProcessProbe  # noqa: PLC0415

    gen = LoadGenerator(
        [url], clients, probes=[ProcessProbe(pid)], body_size=body_size, progress=ctx.progress
    )
    try:
        await gen.setup()
        ctx.progress(f"{THROUGHPUT}: window {window} per client, {warmup_s:g} s warm-up + "
                     f"{duration_s:g} s ...")  # fmt: skip
        busy = await gen.closed_loop(duration_s, window, warmup_s=warmup_s, drain_s=drain_s)
        gen.check()
        _check(busy)
        ctx.progress(f"{THROUGHPUT}: {_describe(busy)}")
        if busy.generator_busy > 0.9:
            ctx.progress(
                f"{THROUGHPUT}: warning: the generator used {busy.generator_busy:.0%} of a core; "
                "it may be the bottleneck on this machine"
            )

        target = rate or busy.messages_per_s / 2
        ctx.used["rate"] = round(target, 1)
        ctx.progress(f"{LATENCY}: open loop at {target:,.0f} msg/s for {duration_s:g} s ...")
        calm = await gen.open_loop(target, duration_s, drain_s=drain_s)
        gen.check()
        _check(calm)
        ctx.progress(f"{LATENCY}: {_describe(calm)}; sends started up to "
                     f"{calm.max_lag_ms:.1f} ms late")  # fmt: skip
    finally:
        await gen.close()

    rows: list[Row] = []
    for case, r in ((THROUGHPUT, busy), (LATENCY, calm)):

        def add(metric: str, value: float, unit: str, case: str = case) -> None:
            rows.append(Row(NAME, case, OVERT, metric, value, unit))

        add("messages_per_s", r.messages_per_s, "msg/s")
        add("p50_ms", r.latency_ms(0.5), "ms")
        add("p99_ms", r.latency_ms(0.99), "ms")
        add("p999_ms", r.latency_ms(0.999), "ms")
        add("max_ms", r.latency_ms(1.0), "ms")
        add("server_cpu_ms_per_message", r.server_cpu_ms_per_message, "ms")
        add("generator_cpu_ms_per_message", r.generator_cpu_ms_per_message, "ms")
        add("server_peak_mib", max(r.server_peak_mib), "MiB")
        add("clients", r.clients, "clients")
        add("sent_messages", r.sent, "msg")
        add("verified_messages", r.verified, "msg")
        add("duplicate_deliveries", r.duplicates, "msg")
    rows.append(Row(NAME, LATENCY, OVERT, "target_messages_per_s", target, "msg/s"))
    return rows


def run(ctx: Context) -> list[Row]:
    clients = ctx.int_param("clients", DEFAULT_CLIENTS, minimum=2)
    if clients % 2:
        raise BenchError(
            f"--param clients: the clients are paired, give an even number ({clients})"
        )
    duration_s = float_param(ctx, "duration_s", DEFAULT_DURATION_S, minimum=0.1)
    window = ctx.int_param("window", DEFAULT_WINDOW)
    rate = float_param(ctx, "rate", 0.0)
    warmup_s = float_param(ctx, "warmup_s", DEFAULT_WARMUP_S)
    drain_s = float_param(ctx, "drain_s", DEFAULT_DRAIN_S, minimum=0.1)
    body_size = ctx.int_param("body_size", DEFAULT_BODY, minimum=24)
    loop = ctx.str_param("loop", "uvloop")

    from bench import server_wrapper  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="overt-bench-server-") as tmp:
        service = server_wrapper.service(Path(tmp) / "data")
        url = service.start()
        ctx.progress(f"server at {url} (pid {service.pid}), SQLite under {tmp}")
        try:
            rows = run_async(
                _measure(
                    ctx, url, service.pid, clients=clients, duration_s=duration_s,
                    window=window, rate=rate, warmup_s=warmup_s, drain_s=drain_s,
                    body_size=body_size,
                ),
                loop,
            )  # fmt: skip
            if not service.running():
                raise BenchError(f"the server exited during the run:\n{service.output()}")
        finally:
            service.stop()
    return rows


GROUP = Group(
    name=NAME,
    description="clients messaging through a real server over loopback (SQLite, WebSocket): "
    "throughput and latency at half of it",
    run=run,
    order=30,
    parameters={
        "clients": f"clients, in pairs; one account and device each (default {DEFAULT_CLIENTS})",
        "duration_s": f"measured seconds of each phase (default {DEFAULT_DURATION_S:g})",
        "window": f"throughput: sends outstanding per client (default {DEFAULT_WINDOW})",
        "rate": "latency: aggregate sends per second (default 0 = half the measured throughput)",
        "warmup_s": f"throughput: unmeasured seconds first (default {DEFAULT_WARMUP_S:g})",
        "drain_s": f"seconds to wait for the last deliveries of a phase (default "
        f"{DEFAULT_DRAIN_S:g})",
        "body_size": f"plaintext bytes per message (default {DEFAULT_BODY})",
        "loop": "the generator's event loop: uvloop (default) or asyncio",
    },
)
