"""Smoke test of the ``matching`` bench group at tiny sizes: it runs, its rows are well formed,
and the recall and table rows are where the design says. Nothing here looks at timings."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.core import Context, check_rows  # noqa: E402
from bench.groups import matching  # noqa: E402


def test_the_matching_group_runs_at_tiny_sizes() -> None:
    params = {"originals": "6", "distractors": "30", "timing_images": "1", "list_hashes": "40"}
    ctx = Context(group="matching", params=params, verbose=False)
    rows = matching.run(ctx)
    check_rows("matching", rows)
    by_key = {(r.case, r.metric): r.value for r in rows}
    assert 0.5 <= by_key[("overall", "recall_within_31")] <= 1
    assert by_key[("crop-20", "pdq_within_31")] == 0
    assert by_key[("table", "bytes_per_list_hash")] < 1000
    assert by_key[("table", "bytes_at_1e6")] < 10**9 < by_key[("table-naive", "bytes_at_1e6")]
    assert by_key[("client", "vouchers_per_image")] == 64


def test_the_false_match_model() -> None:
    # One key of 40 bits with no probes meets a hash at distance 0 surely, at 256 never.
    assert matching.key_meet_probability(0, 40, 0) == 1.0
    assert matching.key_meet_probability(256, 40, 0) == 0.0
    assert matching.key_meet_probability(1, 40, 2) > matching.key_meet_probability(1, 40, 0)
    assert abs(matching.poisson_tail(2.0, 0) - 1.0) < 1e-12
    assert matching.poisson_tail(0.2, 10) < 1e-13
