"""Smoke test of the ``access`` benchmark group at tiny sizes.

Runs ``python -m bench --only access`` with every part — the access-field sessions, the
primitives, the in-process DKG and shares, and the real processes (3 custodians, a witness and
the provider on loopback, 6 intercepted messages opened with 2 of 3) — into a temporary results
file, and checks the row schema and the correctness counters: every message decrypted, the LEA
opened every intercept, the escrow envelope is larger, and no child process is left. Nothing
here looks at timings.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `bench` lives at the repository root, outside src/
    sys.path.insert(0, str(ROOT))

from bench import core  # noqa: E402
from bench.__main__ import main  # noqa: E402
from bench.groups import access  # noqa: E402

from bench_kit import checked_rows, children, seed_results  # noqa: E402

MESSAGES = 30
INTERCEPTS = 6
CHILD_MARKERS = (b"overt.cli.main", b"overt.services.witness", b"bench.server_wrapper")


def test_access_group_writes_checked_rows(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    other = seed_results(results, access.NAME)

    argv = ["--only", access.NAME, "--results", str(results), "-q"]
    argv += ["--messages", str(MESSAGES), "--repeats", "1", "-p", "primitive_ops=5"]
    argv += ["-p", "batch=4", "-p", f"intercepts={INTERCEPTS}", "-p", "custodians=3"]
    argv += ["-p", "threshold=2", "-p", "checkpoint_ms=100"]
    assert main(argv) == 0
    assert children(*CHILD_MARKERS) == []

    mine = checked_rows(results, access.NAME, other)
    assert all(r.impl == core.OVERT for r in mine)
    by_key = {(r.case, r.metric): r.value for r in mine}
    assert len(by_key) == len(mine)
    expected_cases = {
        access.MESSAGE_NONE, access.MESSAGE_ESCROW, access.ACCESS_FIELD, access.PRIMITIVES,
        access.DKG_IN_PROCESS, access.DKG_PROCESSES, access.SHARES_IN_PROCESS,
        access.SHARES_HTTP, access.LEA_DECRYPT, access.EVIDENCE_VERIFY,
    }  # fmt: skip
    assert {case for case, _ in by_key} == expected_cases

    for case in (access.MESSAGE_NONE, access.MESSAGE_ESCROW):
        assert by_key[case, "verified_messages"] == MESSAGES  # every message decrypted right
    assert by_key[access.ACCESS_FIELD, "added_bytes_per_message"] > 0
    sizes = [by_key[c, "envelope_bytes"] for c in (access.MESSAGE_ESCROW, access.MESSAGE_NONE)]
    assert sizes[0] - sizes[1] == by_key[access.ACCESS_FIELD, "added_bytes_per_message"]
    for metric in ("scalar_mult_us", "dleq_prove_us", "dleq_verify_us"):
        assert by_key[access.PRIMITIVES, metric] > 0
    assert by_key[access.DKG_PROCESSES, "custodians"] == 3
    assert by_key[access.SHARES_HTTP, "batch"] == 4
    assert by_key[access.LEA_DECRYPT, "opened_messages"] == INTERCEPTS
    assert by_key[access.LEA_DECRYPT, "threshold"] == 2
    assert by_key[access.LEA_DECRYPT, "evidence_bytes"] > 0
    # The 5 s target is stated for 1,000 messages: no verdict is recorded for 6.
    assert (access.LEA_DECRYPT, "meets_5s_target") not in by_key

    recorded = json.loads((tmp_path / "environment.json").read_text(encoding="utf-8"))
    assert recorded["groups"][access.NAME]["parameters"]["intercepts"] == INTERCEPTS


def test_access_parts_are_checked(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    argv = ["--only", access.NAME, "--results", str(results), "-q", "-p", "parts=field,nonsense"]
    assert main(argv) == 1  # the group fails and writes nothing
    assert not results.exists()
