"""Smoke test of the ``server`` benchmark group at a tiny size (4 clients, ~1 s per phase).

Runs ``python -m bench --only server`` against a real server process into a temporary results
file and checks the row schema and the correctness counters: every acknowledged send was
delivered and verified, nothing arrived twice, and the server process is gone afterwards.
Nothing here looks at timings.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `bench` lives at the repository root, outside src/
    sys.path.insert(0, str(ROOT))

from bench import core  # noqa: E402
from bench.__main__ import main  # noqa: E402
from bench.groups import server  # noqa: E402
from bench.loadgen import HttpConnection, LoadGenerator, percentile  # noqa: E402

from bench_kit import checked_rows, children, seed_results  # noqa: E402

CLIENTS = 4

PER_CASE_METRICS = {
    "messages_per_s": "msg/s",
    "p50_ms": "ms",
    "p99_ms": "ms",
    "p999_ms": "ms",
    "max_ms": "ms",
    "server_cpu_ms_per_message": "ms",
    "generator_cpu_ms_per_message": "ms",
    "server_peak_mib": "MiB",
    "clients": "clients",
    "sent_messages": "msg",
    "verified_messages": "msg",
    "duplicate_deliveries": "msg",
}


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50
    assert percentile(values, 0.99) == 99
    assert percentile(values, 0.999) == 100
    assert percentile(values, 1.0) == 100
    assert percentile([7.0], 0.5) == 7


def test_http_head_parsing() -> None:
    head = b"HTTP/1.1 200 OK\r\ncontent-length: 12\r\ncontent-type: application/json\r\n\r\n"
    assert HttpConnection._parse_head(head) == (200, 12, False, False)
    head = b"HTTP/1.1 409 Conflict\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    assert HttpConnection._parse_head(head) == (409, 0, True, True)


def test_clients_come_in_pairs() -> None:
    with pytest.raises(core.BenchError):
        LoadGenerator(["http://127.0.0.1:9"], 3)


def test_server_group_writes_checked_rows(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    other = seed_results(results, server.NAME)

    argv = ["--only", "server", "--results", str(results), "-q"]
    argv += ["-p", f"clients={CLIENTS}", "-p", "duration_s=1", "-p", "warmup_s=0.2"]
    assert main(argv) == 0
    assert children(b"bench.server_wrapper") == []

    mine = checked_rows(results, server.NAME, other)
    assert all(r.impl == core.OVERT for r in mine)  # no reported (unmeasured) peer rows
    by_key = {(r.case, r.metric): r for r in mine}
    expected = {
        (case, metric)
        for case in (server.THROUGHPUT, server.LATENCY)
        for metric in PER_CASE_METRICS
    }
    expected.add((server.LATENCY, "target_messages_per_s"))
    assert set(by_key) == expected
    assert len(by_key) == len(mine)

    for case in (server.THROUGHPUT, server.LATENCY):
        for metric, unit in PER_CASE_METRICS.items():
            assert by_key[case, metric].unit == unit
            assert by_key[case, metric].value >= 0
        sent = by_key[case, "sent_messages"].value
        assert sent > 0
        assert by_key[case, "verified_messages"].value == sent  # every acknowledged send arrived
        assert by_key[case, "duplicate_deliveries"].value == 0
        assert by_key[case, "clients"].value == CLIENTS
        assert by_key[case, "p50_ms"].value <= by_key[case, "p99_ms"].value
        assert by_key[case, "p99_ms"].value <= by_key[case, "max_ms"].value

    environment = json.loads((tmp_path / "environment.json").read_text(encoding="utf-8"))
    recorded = environment["groups"][server.NAME]["parameters"]
    assert recorded["clients"] == CLIENTS
    assert recorded["rate"] > 0  # the rate the latency phase actually used
