"""Group ``transparency``: Overt's persistent transparency log on SQLite against ``pymerkle``.

Measured, for Overt's :class:`overt.transparency.Log` over :func:`overt.storage.open_sqlite`
and, side by side, for ``pymerkle.SqliteTree`` (PyPI ``pymerkle``, RFC 6962 hashing, leaves in
SQLite, interior nodes recomputed on demand with an in-memory subroot cache):

* ``append-batch-<b>`` — entries appended per second in batches of ``b`` (one transaction per
  batch), on a fresh file, median of ``repeats`` runs;
* ``append-concurrent`` (Overt only) — 1,000 concurrent single-entry ``Log.append`` calls
  per round, coalesced by the default :class:`~overt.transparency.Appender`, and the mean
  batch that resulted;
* ``build-<n>`` — entries per second while growing the log to ``n`` entries in batches of
  ``build_batch`` (each size grows the same database file, so the 10^6 log is built once);
* ``inclusion-prove-<n>``, ``inclusion-verify-<n>``, ``inclusion-<n>`` — at ``n`` entries:
  median time to generate one inclusion proof of a random entry against the full tree, median
  time to verify it, and its size in bytes;
* ``consistency-prove-<n>``, ``consistency-verify-<n>``, ``consistency-<n>`` — the same for
  consistency proofs from a random earlier size;
* ``inclusion-prove-first-<n>`` — the first inclusion proof after the log is (re)opened:
  Overt reads its stored subtrees; pymerkle fills its subroot cache from the leaves.

Both trees are built from the same entries (encoded :class:`KeyDirectoryUpdate` records, about
170 bytes) and the group fails unless both have the same RFC 9162 root at every size and every
proof verifies. Overt's times include its SQLite worker-thread hops and, for appends, encoding
the typed entries (built outside the timed section); pymerkle gets the same bytes ready-made.
Overt's file is in WAL mode with ``synchronous=FULL``; pymerkle uses SQLite's defaults
(rollback journal, ``synchronous=FULL``), so each commit is durable in both.
"""

from __future__ import annotations

import asyncio
import gc
import random
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from bench.core import OVERT, SPEEDUP_PREFIX, BenchError, Context, Group, Row

NAME: Final = "transparency"
PEER: Final = "pymerkle"
DEFAULT_SIZES: Final = "10000,100000,1000000"
DEFAULT_BATCHES: Final = "1,100,1000"
DEFAULT_PROOFS: Final = 200
DEFAULT_REPEATS: Final = 3
DEFAULT_BUILD_BATCH: Final = 50_000
DEFAULT_SEED: Final = 1
CONCURRENT_CALLERS: Final = 1000
CONCURRENT_ROUNDS: Final = 10
ORIGIN: Final = "bench.overt.example/log"


def _label(n: int) -> str:
    """``1e6`` for powers of ten, else the number."""
    text = str(n)
    if text.startswith("1") and set(text[1:]) <= {"0"} and len(text) > 1:
        return f"1e{len(text) - 1}"
    return text


def _append_entries(batch: int) -> int:
    """Entries per append measurement: enough batches to be steady, bounded in time."""
    return min(max(batch * 100, 1000), 100_000)


@contextmanager
def _timed_section() -> Iterator[None]:
    """As in ``timeit``: collect first, keep the cyclic collector off while timing."""
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _int_list(text: str, what: str) -> list[int]:
    try:
        values = [int(v.strip().replace("_", "")) for v in text.split(",") if v.strip()]
    except ValueError:
        raise BenchError(f"{what}: expected a comma list of integers, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise BenchError(f"{what}: expected positive integers, got {text!r}")
    return values


@dataclass
class _Results:
    rows: list[Row] = field(default_factory=list)

    def add(self, case: str, impl: str, metric: str, value: float, unit: str) -> None:
        self.rows.append(Row(NAME, case, impl, metric, value, unit))

    def value(self, case: str, impl: str, metric: str) -> float | None:
        for row in self.rows:
            if (row.case, row.impl, row.metric) == (case, impl, metric):
                return row.value
        return None

    def speedups(self) -> None:
        """A ratio row per case measured by both, oriented so that above 1 favours Overt."""
        higher_is_better = {"entries_per_s"}
        lower_is_better = {"time_us", "proof_bytes"}
        for row in list(self.rows):
            if row.impl != OVERT or row.metric not in higher_is_better | lower_is_better:
                continue
            peer = self.value(row.case, PEER, row.metric)
            if peer is None or peer == 0 or row.value == 0:
                continue
            ratio = row.value / peer if row.metric in higher_is_better else peer / row.value
            self.add(row.case, OVERT, SPEEDUP_PREFIX + PEER, ratio, "x")


# ----------------------------------------------------------------------------- Overt


class _Overt:
    """Overt's log over one SQLite file, and the entries it is fed."""

    def __init__(self, path: Path, seed: int) -> None:
        from overt.crypto import DeterministicRng, Ed25519PrivateKey  # noqa: PLC0415
        from overt.transparency import NoteSigner  # noqa: PLC0415

        self.path = path
        self.signer = NoteSigner(ORIGIN, Ed25519PrivateKey.generate(DeterministicRng(seed)))
        self.storage: Any = None
        self.log: Any = None

    @staticmethod
    def entries(start: int, n: int) -> list[Any]:
        from overt.transparency import KeyDirectoryUpdate  # noqa: PLC0415

        return [
            KeyDirectoryUpdate(
                i.to_bytes(32, "big"), b"K" * 32, i, (i * 7).to_bytes(32, "big"), b"C" * 32
            )
            for i in range(start, start + n)
        ]

    async def open(self) -> None:
        from overt.storage import open_sqlite  # noqa: PLC0415
        from overt.transparency import Log  # noqa: PLC0415

        self.storage = await open_sqlite(self.path)
        self.log = Log(self.storage.log, self.signer, ORIGIN, lambda: 0)

    async def close(self) -> None:
        if self.storage is not None:
            await self.storage.close()
            self.storage = self.log = None


class _Peer:
    """pymerkle's SqliteTree over one file (indices there count from one)."""

    def __init__(self, path: Path) -> None:
        import pymerkle  # noqa: PLC0415

        self.pymerkle = pymerkle
        self.path = path
        self.tree: Any = pymerkle.SqliteTree(str(path))

    def reopen(self) -> None:
        self.tree.close()
        self.tree = self.pymerkle.SqliteTree(str(self.path))

    def close(self) -> None:
        self.tree.close()


def _peer_available(ctx: Context) -> bool:
    try:
        import pymerkle  # noqa: F401, PLC0415
    except ImportError:
        message = (
            f"{PEER} is not installed; skipping the peer (pip install pymerkle, or the bench extra)"
        )
        print(f"[{NAME}] {message}")
        return False
    return True


# ----------------------------------------------------------------------------- appends


async def _overt_appends(workdir: Path, seed: int, batch: int, total: int, rep: int) -> float:
    impl = _Overt(workdir / f"append-{batch}-{rep}.db", seed)
    await impl.open()
    try:
        batches = [_Overt.entries(s, batch) for s in range(0, total, batch)]
        with _timed_section():
            started = time.perf_counter()
            for entries in batches:
                await impl.log.append_batch(entries)
            elapsed = time.perf_counter() - started
        if await impl.log.size() != len(batches) * batch:
            raise BenchError("overt: the log does not hold every appended entry")
    finally:
        await impl.close()
    return len(batches) * batch / elapsed


def _peer_appends(workdir: Path, batch: int, total: int, rep: int) -> float:
    impl = _Peer(workdir / f"pymerkle-append-{batch}-{rep}.db")
    try:
        batches = [[e.encode() for e in _Overt.entries(s, batch)] for s in range(0, total, batch)]
        with _timed_section():
            started = time.perf_counter()
            for data in batches:
                if batch == 1:
                    impl.tree.append_entry(data[0])
                else:
                    impl.tree.append_entries(data)
            elapsed = time.perf_counter() - started
        if impl.tree.get_size() != len(batches) * batch:
            raise BenchError("pymerkle: the tree does not hold every appended entry")
    finally:
        impl.close()
    return len(batches) * batch / elapsed


async def _overt_concurrent(workdir: Path, seed: int) -> tuple[float, float]:
    from overt.transparency import Appender  # noqa: PLC0415

    impl = _Overt(workdir / "append-concurrent.db", seed)
    await impl.open()
    try:
        appender = Appender(impl.log)
        rounds = [
            [_Overt.entries(r * CONCURRENT_CALLERS + c, 1) for c in range(CONCURRENT_CALLERS)]
            for r in range(CONCURRENT_ROUNDS)
        ]
        with _timed_section():
            started = time.perf_counter()
            for callers in rounds:
                await asyncio.gather(*(appender.append(e) for e in callers))
            elapsed = time.perf_counter() - started
        total = CONCURRENT_CALLERS * CONCURRENT_ROUNDS
        if await impl.log.size() != total:
            raise BenchError("overt: concurrent appends lost entries")
        return total / elapsed, total / appender.batches
    finally:
        await impl.close()


# ----------------------------------------------------------------------------- proofs


@dataclass
class _ProofTimes:
    prove_s: list[float] = field(default_factory=list)
    verify_s: list[float] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)

    def record(self, results: _Results, kind: str, label: str, impl: str) -> None:
        results.add(f"{kind}-prove-{label}", impl, "time_us", _median_us(self.prove_s), "us")
        results.add(f"{kind}-verify-{label}", impl, "time_us", _median_us(self.verify_s), "us")
        results.add(f"{kind}-{label}", impl, "proof_bytes", statistics.median(self.sizes), "B")


def _median_us(samples: list[float]) -> float:
    if not samples:
        raise BenchError("no samples")
    return statistics.median(samples) * 1e6


async def _overt_proofs(
    impl: _Overt, n: int, indices: list[int], olds: list[int]
) -> tuple[_ProofTimes, _ProofTimes, bytes]:
    from overt.transparency import (  # noqa: PLC0415
        hash_leaf,
        verify_checkpoint,
        verify_consistency,
        verify_inclusion,
    )

    log = impl.log
    note = await log.checkpoint()
    checkpoint = verify_checkpoint(note, log.verifier_key).checkpoint
    if checkpoint.size != n:
        raise BenchError(f"overt: checkpoint at {checkpoint.size}, expected {n}")
    root = checkpoint.root_hash
    leaf_hashes = {i: hash_leaf(_Overt.entries(i, 1)[0].encode()) for i in indices}
    old_roots = {m: await log.root(m) for m in olds}
    inclusion, consistency = _ProofTimes(), _ProofTimes()
    with _timed_section():
        for i in indices:
            started = time.perf_counter()
            proof = await log.inclusion_proof(i, n)
            inclusion.prove_s.append(time.perf_counter() - started)
            started = time.perf_counter()
            verify_inclusion(leaf_hashes[i], i, n, proof, root)
            inclusion.verify_s.append(time.perf_counter() - started)
            inclusion.sizes.append(sum(len(h) for h in proof))
        for m in olds:
            started = time.perf_counter()
            proof = await log.consistency_proof(m, n)
            consistency.prove_s.append(time.perf_counter() - started)
            started = time.perf_counter()
            verify_consistency(m, n, proof, old_roots[m], root)
            consistency.verify_s.append(time.perf_counter() - started)
            consistency.sizes.append(sum(len(h) for h in proof))
    return inclusion, consistency, root


def _peer_proofs(
    impl: _Peer, n: int, indices: list[int], olds: list[int]
) -> tuple[_ProofTimes, _ProofTimes, bytes]:
    tree, pm = impl.tree, impl.pymerkle
    root = tree.get_root(n)
    bases = {i: tree.get_leaf(i + 1) for i in indices}
    old_roots = {m: tree.get_root(m) for m in olds}
    inclusion, consistency = _ProofTimes(), _ProofTimes()
    with _timed_section():
        for i in indices:
            started = time.perf_counter()
            proof = tree.prove_inclusion(i + 1, n)
            inclusion.prove_s.append(time.perf_counter() - started)
            started = time.perf_counter()
            pm.verify_inclusion(bases[i], root, proof)
            inclusion.verify_s.append(time.perf_counter() - started)
            inclusion.sizes.append(sum(len(h) for h in proof.path))
        for m in olds:
            started = time.perf_counter()
            proof = tree.prove_consistency(m, n)
            consistency.prove_s.append(time.perf_counter() - started)
            started = time.perf_counter()
            pm.verify_consistency(old_roots[m], root, proof)
            consistency.verify_s.append(time.perf_counter() - started)
            consistency.sizes.append(sum(len(h) for h in proof.path))
    return inclusion, consistency, root


# ----------------------------------------------------------------------------- the group


@dataclass
class _Params:
    sizes: list[int]
    batches: list[int]
    proofs: int
    repeats: int
    build_batch: int
    seed: int
    peer: bool
    workdir: Path


async def _run(ctx: Context, p: _Params, results: _Results) -> None:
    # Appends per second, batched, on fresh files; implementations interleaved.
    for batch in p.batches:
        total = _append_entries(batch)
        rates: dict[str, list[float]] = {OVERT: [], PEER: []}
        for rep in range(p.repeats):
            order = [OVERT, PEER] if rep % 2 == 0 else [PEER, OVERT]
            for impl in order:
                if impl == OVERT:
                    rates[OVERT].append(await _overt_appends(p.workdir, p.seed, batch, total, rep))
                elif p.peer:
                    rates[PEER].append(_peer_appends(p.workdir, batch, total, rep))
        for impl, samples in rates.items():
            if samples:
                median_rate = statistics.median(samples)
                results.add(f"append-batch-{batch}", impl, "entries_per_s", median_rate, "entry/s")
        peer_text = f", {PEER} {statistics.median(rates[PEER]):,.0f}" if rates[PEER] else ""
        ctx.progress(
            f"append batch {batch} ({total:,} entries x {p.repeats}): "
            f"overt {statistics.median(rates[OVERT]):,.0f}{peer_text} entries/s"
        )

    rate, mean_batch = await _overt_concurrent(p.workdir, p.seed)
    results.add("append-concurrent", OVERT, "entries_per_s", rate, "entry/s")
    results.add("append-concurrent", OVERT, "mean_batch", mean_batch, "entry")
    ctx.progress(
        f"{CONCURRENT_ROUNDS} x {CONCURRENT_CALLERS} concurrent appends: {rate:,.0f} entries/s, "
        f"{mean_batch:,.0f} entries per commit"
    )

    # One growing log per implementation for every size.
    overt = _Overt(p.workdir / "grown.db", p.seed)
    await overt.open()
    peer = _Peer(p.workdir / "pymerkle-grown.db") if p.peer else None
    rng = random.Random(p.seed)
    size = 0
    try:
        for n in sorted(p.sizes):
            label = _label(n)
            ctx.progress(f"growing to {n:,} entries (batches of {p.build_batch:,}) ...")
            overt_s = peer_s = 0.0
            for start in range(size, n, p.build_batch):
                entries = _Overt.entries(start, min(p.build_batch, n - start))
                with _timed_section():
                    started = time.perf_counter()
                    await overt.log.append_batch(entries)
                    overt_s += time.perf_counter() - started
                if peer is not None:
                    data = [e.encode() for e in entries]
                    with _timed_section():
                        started = time.perf_counter()
                        peer.tree.append_entries(data)
                        peer_s += time.perf_counter() - started
            results.add(f"build-{label}", OVERT, "entries_per_s", (n - size) / overt_s, "entry/s")
            if peer is not None:
                results.add(f"build-{label}", PEER, "entries_per_s", (n - size) / peer_s, "entry/s")
            size = n
            ctx.progress(
                f"built {n:,}: overt {overt_s:.1f} s"
                + (f", {PEER} {peer_s:.1f} s" if peer is not None else "")
            )

            # The first proof after reopening: stored nodes vs a cold subroot cache.
            first = rng.randrange(n)
            await overt.close()
            await overt.open()
            with _timed_section():
                started = time.perf_counter()
                await overt.log.inclusion_proof(first, n)
                first_s = time.perf_counter() - started
            results.add(f"inclusion-prove-first-{label}", OVERT, "time_us", first_s * 1e6, "us")
            if peer is not None:
                peer.reopen()
                with _timed_section():
                    started = time.perf_counter()
                    peer.tree.prove_inclusion(first + 1, n)
                    first_s = time.perf_counter() - started
                results.add(f"inclusion-prove-first-{label}", PEER, "time_us", first_s * 1e6, "us")

            indices = [rng.randrange(n) for _ in range(p.proofs)]
            olds = [rng.randrange(1, n) for _ in range(p.proofs)]
            inclusion, consistency, root = await _overt_proofs(overt, n, indices, olds)
            inclusion.record(results, "inclusion", label, OVERT)
            consistency.record(results, "consistency", label, OVERT)
            text = (
                f"{label}: overt inclusion {_median_us(inclusion.prove_s):.0f} us prove, "
                f"{_median_us(inclusion.verify_s):.0f} us verify; consistency "
                f"{_median_us(consistency.prove_s):.0f} us prove"
            )
            if peer is not None:
                p_inclusion, p_consistency, p_root = _peer_proofs(peer, n, indices, olds)
                if p_root != root:
                    raise BenchError(f"{PEER} and overt disagree on the root at {n} entries")
                p_inclusion.record(results, "inclusion", label, PEER)
                p_consistency.record(results, "consistency", label, PEER)
                text += (
                    f" | {PEER} inclusion {_median_us(p_inclusion.prove_s):.0f} us prove, "
                    f"{_median_us(p_inclusion.verify_s):.0f} us verify; consistency "
                    f"{_median_us(p_consistency.prove_s):.0f} us prove"
                )
            ctx.progress(text)
    finally:
        await overt.close()
        if peer is not None:
            peer.close()


def run(ctx: Context) -> list[Row]:
    sizes = _int_list(ctx.str_param("sizes", DEFAULT_SIZES), "sizes")
    batches = _int_list(ctx.str_param("batches", DEFAULT_BATCHES), "batches")
    proofs = ctx.int_param("proofs", DEFAULT_PROOFS)
    repeats = ctx.int_param("repeats", DEFAULT_REPEATS, env="OVERT_BENCH_REPEATS")
    build_batch = ctx.int_param("build_batch", DEFAULT_BUILD_BATCH)
    seed = ctx.int_param("seed", DEFAULT_SEED, env="OVERT_BENCH_SEED", minimum=0)
    impls = [s.strip() for s in ctx.str_param("impls", f"{OVERT},{PEER}").split(",") if s]
    workdir_param = ctx.str_param("workdir", "")
    for impl in impls:
        if impl not in (OVERT, PEER):
            raise BenchError(f"unknown impl {impl!r}; known: {OVERT}, {PEER}")
    if OVERT not in impls:
        raise BenchError("the transparency group always runs overt")
    try:
        from overt.storage.limits import LOG_APPEND_BATCH_MAX  # noqa: PLC0415
        from overt.transparency import Log  # noqa: F401, PLC0415
    except ImportError as exc:
        raise BenchError(f"cannot import Overt's transparency log: {exc}") from exc
    if build_batch > LOG_APPEND_BATCH_MAX or max(batches) > LOG_APPEND_BATCH_MAX:
        raise BenchError(f"batches are bounded by LOG_APPEND_BATCH_MAX = {LOG_APPEND_BATCH_MAX}")
    peer = PEER in impls and _peer_available(ctx)

    results = _Results()
    with _workdir(workdir_param) as workdir:
        ctx.progress(
            f"sizes {', '.join(f'{n:,}' for n in sizes)}; batches {batches}; {proofs} proofs per "
            f"size; files under {workdir}"
        )
        params = _Params(sizes, batches, proofs, repeats, build_batch, seed, peer, workdir)
        asyncio.run(_run(ctx, params, results))
    results.speedups()
    return results.rows


@contextmanager
def _workdir(param: str) -> Iterator[Path]:
    """``-p workdir=DIR`` keeps the databases there; by default a temporary directory."""
    if param:
        path = Path(param)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db*"):
            stale.unlink()
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="overt-bench-transparency-") as tmp:
        yield Path(tmp)


_HELP: Final[dict[str, str]] = {
    "sizes": f"comma list of log sizes for proofs (default {DEFAULT_SIZES})",
    "batches": f"comma list of append batch sizes (default {DEFAULT_BATCHES})",
    "proofs": f"random proofs per size and kind; medians reported (default {DEFAULT_PROOFS})",
    "repeats": f"runs per append batch size; median (default {DEFAULT_REPEATS}; "
    "$OVERT_BENCH_REPEATS)",
    "build_batch": f"entries per append while growing the log (default {DEFAULT_BUILD_BATCH})",
    "seed": "seed of the log key and the random indices (default 1; $OVERT_BENCH_SEED)",
    "impls": f"comma list of impls (default {OVERT},{PEER}; {PEER} is skipped if missing)",
    "workdir": "directory for the database files (default: a temporary directory, removed)",
}

GROUP = Group(
    name=NAME,
    description=f"transparency log on SQLite vs {PEER}: batched appends, 10^4..10^6-entry "
    "inclusion and consistency proofs",
    run=run,
    order=30,
    parameters=_HELP,
)
