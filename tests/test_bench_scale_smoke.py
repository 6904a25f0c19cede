"""Smoke test of the ``scale`` benchmark group at a tiny size (4 clients, ~1 s per phase).

Runs ``python -m bench --only scale`` for the three Overt deployments (one node on SQLite, one
on PostgreSQL, two on PostgreSQL + Redis; Synapse is left out: installing it is a download of
minutes) into a temporary results file, and checks the rows and the correctness counters, and
that every process the group started is gone. Nothing here looks at timings.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `bench` lives at the repository root, outside src/
    sys.path.insert(0, str(ROOT))

from bench import core  # noqa: E402
from bench.__main__ import main  # noqa: E402
from bench.groups import scale  # noqa: E402

from servers import find_postgres_bin, find_redis_server, service_missing  # noqa: E402

CLIENTS = 4


def _descendants() -> list[str]:
    """Command lines of processes still running below this one."""
    parents: dict[int, int] = {}
    commands: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parents[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
        commands[int(entry.name)] = cmdline.replace(b"\0", b" ").decode(errors="replace")
    mine = {os.getpid()}
    for _ in range(len(parents)):
        grown = mine | {pid for pid, ppid in parents.items() if ppid in mine}
        if grown == mine:
            break
        mine = grown
    return [commands[pid] for pid in mine - {os.getpid()} if pid in commands]


def test_ratio_rows_compare_each_deployment_with_synapse() -> None:
    rows = [
        core.Row(scale.NAME, scale.THROUGHPUT, scale.SQLITE, "messages_per_s", 400, "msg/s"),
        core.Row(scale.NAME, scale.THROUGHPUT, scale.SYNAPSE, "messages_per_s", 50, "msg/s"),
        core.Row(scale.NAME, scale.LATENCY, scale.SQLITE, "p99_ms", 30, "ms"),
        core.Row(scale.NAME, scale.LATENCY, scale.SYNAPSE, "p99_ms", 60, "ms"),
        core.Row(scale.NAME, scale.LATENCY, scale.POSTGRES, "p99_ms", 45, "ms"),
    ]
    ratios = {(r.case, r.impl, r.metric): r.value for r in scale.ratio_rows(rows)}
    assert ratios == {
        (scale.THROUGHPUT, scale.SQLITE, "overt_over_synapse_messages_per_s"): 8.0,
        (scale.LATENCY, scale.SQLITE, "overt_over_synapse_p99_ms"): 0.5,
        (scale.LATENCY, scale.POSTGRES, "overt_over_synapse_p99_ms"): 0.75,
    }
    assert scale.ratio_rows(rows[:1]) == []  # no Synapse rows: no ratio


def test_scale_group_measures_every_overt_deployment(tmp_path: Path) -> None:
    if find_postgres_bin() is None or find_redis_server() is None:
        service_missing("the scale group needs PostgreSQL and Redis (Debian: postgresql, "
                        "redis-server)")  # fmt: skip
    results = tmp_path / "results.json"
    impls = ",".join(scale.OVERT_IMPLS)
    argv = ["--only", "scale", "--results", str(results), "-q", "-p", f"impls={impls}"]
    argv += ["-p", f"clients={CLIENTS}", "-p", "duration_s=1", "-p", "warmup_s=0.2"]
    assert main(argv) == 0
    assert _descendants() == []

    rows = [core.Row.from_json(row) for row in json.loads(results.read_text(encoding="utf-8"))]
    assert {r.impl for r in rows} == set(scale.OVERT_IMPLS)
    by_key = {(r.case, r.impl, r.metric): r.value for r in rows}
    assert len(by_key) == len(rows)
    for impl in scale.OVERT_IMPLS:
        for case in (scale.THROUGHPUT, scale.LATENCY):
            sent = by_key[case, impl, "sent_messages"]
            assert sent > 0
            assert by_key[case, impl, "verified_messages"] == sent
            assert by_key[case, impl, "clients"] == CLIENTS
            assert by_key[case, impl, "p50_ms"] <= by_key[case, impl, "p99_ms"]
            assert by_key[case, impl, "messages_per_s"] > 0
            assert by_key[case, impl, "server_cpu_ms_per_message"] > 0
        nodes = by_key[scale.THROUGHPUT, impl, "nodes"]
        assert nodes == (2 if impl == scale.TWO_NODES else 1)
    assert not any(r.metric.startswith(scale.RATIO_PREFIX) for r in rows)  # Synapse not run
