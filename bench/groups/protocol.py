"""Group ``protocol``: Overt's two-party sessions against ``doubleratchet`` + ``x3dh``.

For each traffic pattern (``one-way``, ``flip-10``, ``ping-pong``) and each repetition, every
implementation runs one fresh session: a timed handshake, then ``messages`` timed
encrypt+decrypt round trips of 100-byte messages (see :mod:`bench.impls`). Implementations are
interleaved, and their order alternates between repetitions, so drift hits both alike.
Reported values are **medians over the repetitions** (handshakes: median over every session).

Overt also gets, per message: the access field's added time (one-way under policy ``escrow``
minus one-way under policy ``none``, sender + recipient) and bytes (a steady-state envelope
under each policy), and franking's added time (commit + verify of a 100-byte body) and bytes
(the commitment in the envelope plus the franking key inside the ciphertext).

The main Overt rows run under access policy ``none``, the closest analogue of the peer. The
peer runs with the package's default prekey pool; ``handshake-min-pool`` repeats its handshake
with a pool of 1 (see :data:`MIN_POOL_CASE`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from bench.core import OVERT, SPEEDUP_PREFIX, BenchError, Context, Group, Row, median
from bench.impls import PATTERNS, SessionRun

NAME: Final = "protocol"
PEER: Final = "python-doubleratchet"
DEFAULT_MESSAGES: Final = 10_000
DEFAULT_REPEATS: Final = 5
DEFAULT_SEED: Final = 1
ESCROW_CASE: Final = "one-way+escrow"
MIN_POOL_CASE: Final = "handshake-min-pool"
"""The peer's handshake with a one-time prekey pool of 1: ``x3dh.State`` recomputes every pooled
prekey's public key on each ``bundle`` read (4 per handshake), so with the default pool of 100
most of its handshake time is that; this case shows the handshake without it."""


def _peer_runner(prekeys: int) -> Callable[[str, int], SessionRun]:
    """``(pattern, messages) -> SessionRun`` for the peer with a pool of ``prekeys``."""
    # Imported lazily so `--list` and the other groups work without the bench extras.
    try:
        from bench.impls import python_doubleratchet as peer  # noqa: PLC0415
    except ImportError as exc:
        raise BenchError(
            f"peer packages missing ({exc}); install the bench extras: pip install -e '.[bench]'"
        ) from exc

    def run(pattern: str, messages: int) -> SessionRun:
        return peer.run_session(pattern, messages, prekeys=prekeys)

    return run


def _describe(run: SessionRun) -> str:
    text = (
        f"handshake {run.handshake_s * 1e3:.2f} ms, "
        f"{run.messages} msgs in {run.elapsed_s:.3f} s = {run.messages_per_s:,.0f} msg/s"
    )
    if run.wire_bytes is not None and run.messages:
        text += f", {run.wire_bytes / run.messages:.0f} B/msg"
    return text


def _checked(run: SessionRun) -> SessionRun:
    if not run.all_verified:
        raise BenchError(
            f"{run.impl} {run.pattern}: only {run.verified}/{run.messages} messages "
            f"(handshake ok: {run.handshake_verified}) decrypted to what was sent"
        )
    return run


def run(ctx: Context) -> list[Row]:
    messages = ctx.int_param("messages", DEFAULT_MESSAGES, env="OVERT_BENCH_MESSAGES")
    repeats = ctx.int_param("repeats", DEFAULT_REPEATS, env="OVERT_BENCH_REPEATS")
    seed = ctx.int_param("seed", DEFAULT_SEED, env="OVERT_BENCH_SEED", minimum=0)
    prekeys = ctx.int_param("peer_prekeys", 100)
    impls = [s.strip() for s in ctx.str_param("impls", f"{OVERT},{PEER}").split(",") if s.strip()]
    patterns = [s.strip() for s in ctx.str_param("patterns", ",".join(PATTERNS)).split(",")]
    for impl in impls:
        if impl not in (OVERT, PEER):
            raise BenchError(f"unknown impl {impl!r}; known: {OVERT}, {PEER}")
    for pattern in patterns:
        if pattern not in PATTERNS:
            raise BenchError(f"unknown pattern {pattern!r}; known: {', '.join(PATTERNS)}")
    if not impls or not patterns:
        raise BenchError("nothing to run: empty impls or patterns")

    runners: dict[str, Callable[[str, int], SessionRun]] = {}
    if OVERT in impls:
        # Imported here, not at module level, so that a broken overt.protocol fails this group
        # (before minutes are spent on the peer) rather than every group's registration.
        try:
            from bench.impls import overt_protocol as overt_impl  # noqa: PLC0415
        except ImportError as exc:
            raise BenchError(f"cannot import Overt's protocol API: {exc}") from exc
        overt_impl.check_api()

        def run_overt(pattern: str, n: int) -> SessionRun:
            return overt_impl.run_session(pattern, n, policy="none", seed=seed)

        runners[OVERT] = run_overt
    min_pool_peer = None
    if PEER in impls:
        runners[PEER] = _peer_runner(prekeys)
        min_pool_peer = _peer_runner(1)

    ctx.progress(
        f"{messages:,} messages x {repeats} repetitions, patterns {', '.join(patterns)}; "
        f"impls {', '.join(runners)}"
    )
    sessions: dict[tuple[str, str], list[SessionRun]] = {}
    escrow_runs: list[SessionRun] = []
    franking_s: list[float] = []
    min_pool_s: list[float] = []
    order = list(runners)
    for rep in range(1, repeats + 1):
        for pattern in patterns:
            for impl in order:
                ctx.progress(f"rep {rep}/{repeats} {pattern:<9} {impl} ...")
                result = _checked(runners[impl](pattern, messages))
                sessions.setdefault((pattern, impl), []).append(result)
                ctx.progress(f"rep {rep}/{repeats} {pattern:<9} {impl}: {_describe(result)}")
        if min_pool_peer is not None:
            for pattern in patterns:  # as many samples as the main handshake rows get
                min_pool_s.append(_checked(min_pool_peer(pattern, 0)).handshake_s)
            ctx.progress(
                f"rep {rep}/{repeats} {MIN_POOL_CASE} {PEER}: "
                f"{median(min_pool_s[-len(patterns) :]) * 1e3:.2f} ms"
            )
        if OVERT in runners:
            ctx.progress(f"rep {rep}/{repeats} {ESCROW_CASE} overt (access policy escrow) ...")
            result = _checked(
                overt_impl.run_session("one-way", messages, policy="escrow", seed=seed)
            )
            escrow_runs.append(result)
            ctx.progress(f"rep {rep}/{repeats} {ESCROW_CASE} overt: {_describe(result)}")
            seconds, ok = overt_impl.franking_cost(messages, seed=seed)
            if not ok:
                raise BenchError("franking: a commitment did not verify")
            franking_s.append(seconds)
            ctx.progress(
                f"rep {rep}/{repeats} franking commit+verify: {seconds / messages * 1e6:.2f} us"
            )
        order.reverse()

    access_bytes = franking_bytes = None
    if OVERT in runners:
        # Byte accounting from real encodings of a steady-state (MESSAGE-type) envelope.
        env_none, got = overt_impl.sample_envelope("none", seed)
        env_escrow, _ = overt_impl.sample_envelope("escrow", seed)
        access_bytes = len(env_escrow.encode()) - len(env_none.encode())
        franking_bytes = len(env_none.franking_commitment) + len(got.franking_key)
    rows = _rows(
        messages, patterns, sessions, escrow_runs, franking_s, access_bytes, franking_bytes
    )
    if min_pool_s:
        peer_ms = median(min_pool_s) * 1e3
        rows.append(Row(NAME, MIN_POOL_CASE, PEER, "handshake_ms", peer_ms, "ms"))
        overt_runs = [r for (_, impl), runs in sessions.items() if impl == OVERT for r in runs]
        if overt_runs:
            overt_ms = median([r.handshake_s for r in overt_runs]) * 1e3
            rows.append(Row(NAME, MIN_POOL_CASE, OVERT, "handshake_ms", overt_ms, "ms"))
            rows.append(
                Row(NAME, MIN_POOL_CASE, OVERT, SPEEDUP_PREFIX + PEER, peer_ms / overt_ms, "x")
            )
    return rows


def _rows(
    messages: int,
    patterns: list[str],
    sessions: dict[tuple[str, str], list[SessionRun]],
    escrow_runs: list[SessionRun],
    franking_s: list[float],
    access_bytes: int | None,
    franking_bytes: int | None,
) -> list[Row]:
    rows: list[Row] = []

    def add(case: str, impl: str, metric: str, value: float, unit: str) -> None:
        rows.append(Row(NAME, case, impl, metric, value, unit))

    impls = sorted({impl for _, impl in sessions})
    handshake_ms: dict[str, float] = {}
    for impl in impls:
        samples = [r.handshake_s for (_, i), runs in sessions.items() if i == impl for r in runs]
        handshake_ms[impl] = median(samples) * 1e3
        add("handshake", impl, "handshake_ms", handshake_ms[impl], "ms")
    if OVERT in handshake_ms and PEER in handshake_ms:
        add(
            "handshake", OVERT, SPEEDUP_PREFIX + PEER, handshake_ms[PEER] / handshake_ms[OVERT], "x"
        )

    rate: dict[tuple[str, str], float] = {}
    for (pattern, impl), runs in sessions.items():
        rate[pattern, impl] = messages / median([r.elapsed_s for r in runs])
        add(pattern, impl, "messages_per_s", rate[pattern, impl], "msg/s")
        add(pattern, impl, "verified_messages", sum(r.verified for r in runs), "msg")
        wire = runs[0].wire_bytes
        if wire is not None:
            add(pattern, impl, "wire_bytes_per_message", wire / messages, "B")
    for pattern in patterns:
        if (pattern, OVERT) in rate and (pattern, PEER) in rate:
            add(
                pattern,
                OVERT,
                SPEEDUP_PREFIX + PEER,
                rate[pattern, OVERT] / rate[pattern, PEER],
                "x",
            )

    if escrow_runs:
        escrow_s = median([r.elapsed_s for r in escrow_runs])
        add(ESCROW_CASE, OVERT, "messages_per_s", messages / escrow_s, "msg/s")
        add(ESCROW_CASE, OVERT, "verified_messages", sum(r.verified for r in escrow_runs), "msg")
        none_runs = sessions.get(("one-way", OVERT))
        if none_runs:
            none_s = median([r.elapsed_s for r in none_runs])
            added_us = (escrow_s - none_s) / messages * 1e6
            add("access-field", OVERT, "added_us_per_message", added_us, "us")
    if access_bytes is not None:
        add("access-field", OVERT, "added_bytes_per_message", access_bytes, "B")

    if franking_s:
        add("franking", OVERT, "added_us_per_message", median(franking_s) / messages * 1e6, "us")
    if franking_bytes is not None:
        add("franking", OVERT, "added_bytes_per_message", franking_bytes, "B")
    return rows


GROUP = Group(
    name=NAME,
    description=f"Overt sessions vs {PEER} + x3dh: handshake, 3 traffic patterns, "
    "franking and access-field costs",
    run=run,
    order=10,
    parameters={
        "messages": f"round trips per session (default {DEFAULT_MESSAGES}; $OVERT_BENCH_MESSAGES)",
        "repeats": f"sessions per pattern and impl; medians reported (default {DEFAULT_REPEATS};"
        " $OVERT_BENCH_REPEATS)",
        "seed": "DeterministicRng seed for Overt (default 1; $OVERT_BENCH_SEED)",
        "impls": f"comma list of impls to run (default {OVERT},{PEER})",
        "patterns": f"comma list of patterns (default {','.join(PATTERNS)})",
        "peer_prekeys": "one-time prekeys in the peer's x3dh.State pool (default 100, the "
        "package default)",
    },
)
