"""Shared pieces of the benchmark smoke tests (``tests/test_bench_*_smoke.py``): a results file
seeded with another group's row and a stale row of the group under test, the checks every
group's rows must pass, and the child processes a group left running."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `bench` lives at the repository root, outside src/
    sys.path.insert(0, str(ROOT))

from bench import core  # noqa: E402


def seed_results(results: Path, group: str, other_group: str = "protocol") -> dict[str, object]:
    """Write ``results`` with a row of ``other_group`` (returned: it must survive the run) and
    a stale row of ``group`` (which the run must replace)."""
    other: dict[str, object] = {
        "group": other_group, "case": "c", "impl": "overt", "metric": "m", "value": 1.5,
        "unit": "ms",
    }  # fmt: skip
    stale = {**other, "group": group, "case": "stale"}
    results.write_text(json.dumps([stale, other]), encoding="utf-8")
    return other


def checked_rows(results: Path, group: str, other: dict[str, object]) -> list[core.Row]:
    """The rows of ``group`` in ``results``, after the checks every group's rows pass: the row
    schema, non-empty text fields and numeric values, the file's sort order, the other group's
    row kept and the stale row gone."""
    rows = json.loads(results.read_text(encoding="utf-8"))
    for row in rows:
        assert list(row) == list(core.ROW_KEYS)
        assert all(isinstance(row[k], str) and row[k] for k in core.ROW_KEYS if k != "value")
        assert isinstance(row["value"], int | float) and not isinstance(row["value"], bool)
    parsed = [core.Row.from_json(row) for row in rows]
    assert parsed == core.sort_rows(parsed)
    assert other in rows  # another group's rows survive
    mine = [r for r in parsed if r.group == group]
    assert all(r.case != "stale" for r in mine)
    return mine


def children(*markers: bytes) -> list[int]:
    """Processes of ours (children of this one) whose command line holds one of ``markers``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        if ppid == os.getpid() and any(m in cmdline for m in markers):
            found.append(int(entry.name))
    return found
