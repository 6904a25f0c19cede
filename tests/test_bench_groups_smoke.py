"""Smoke test of the ``groups`` benchmark group at tiny sizes (groups of 3 and 5 devices).

Runs ``python -m bench --only groups`` into a temporary results file and checks the row schema,
that every group and one-to-one message decrypted to what was sent, the fan-outs' recipient
counts (in storage and through the relay's group and one-to-one send routes, in process) and
the membership change's count of pairwise encryptions. Nothing here looks at timings.
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
from bench.groups import groups  # noqa: E402

SIZES = (3, 5)
MESSAGES = 6
PEER_MESSAGES = 2
REPEATS = 2


def test_groups_group_writes_checked_rows(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    other = {"group": "access", "case": "c", "impl": "overt", "metric": "m", "value": 2,
             "unit": "ms"}  # fmt: skip
    stale = {**other, "group": groups.NAME, "case": "stale"}
    results.write_text(json.dumps([stale, other]), encoding="utf-8")

    argv = ["--only", groups.NAME, "--results", str(results), "-q", "--repeats", str(REPEATS)]
    argv += ["-p", "sizes=" + ",".join(map(str, SIZES)), "--messages", str(MESSAGES)]
    argv += ["-p", f"peer_messages={PEER_MESSAGES}", "-p", "fanouts=2"]
    assert main(argv) == 0

    rows = json.loads(results.read_text(encoding="utf-8"))
    for row in rows:
        assert list(row) == list(core.ROW_KEYS)
        assert isinstance(row["value"], int | float) and not isinstance(row["value"], bool)
    parsed = [core.Row.from_json(row) for row in rows]
    assert parsed == core.sort_rows(parsed)
    assert other in rows  # another group's rows survive

    mine = [r for r in parsed if r.group == groups.NAME]
    assert all(r.case != "stale" for r in mine)
    assert {r.impl for r in mine} == {core.OVERT, groups.PEER}
    by_key = {(r.case, r.impl, r.metric): r.value for r in mine}
    assert len(by_key) == len(mine)
    speedup = core.SPEEDUP_PREFIX + groups.PEER
    for n in SIZES:
        for impl, sent in ((core.OVERT, MESSAGES), (groups.PEER, PEER_MESSAGES)):
            # every message decrypted to exactly what was sent, in every repetition
            assert by_key[f"decrypt-{n}", impl, "verified_messages"] == sent * REPEATS
            assert by_key[f"send-{n}", impl, "sender_us_per_message"] > 0
            assert by_key[f"fanout-storage-{n}", impl, "fanout_ms"] > 0
            # through the relay's routes (the group send answered with every recipient)
            assert by_key[f"fanout-server-{n}", impl, "fanout_ms"] > 0
            assert by_key[f"fanout-server-{n}", impl, "requests"] == 1
        for case in (f"send-{n}", f"decrypt-{n}", f"fanout-storage-{n}", f"fanout-server-{n}"):
            assert by_key[case, core.OVERT, speedup] > 0
        assert by_key[f"fanout-storage-{n}", core.OVERT, "recipients"] == n - 1
        assert by_key[f"fanout-server-{n}", core.OVERT, "recipients"] == n - 1
        # one group message is stored per recipient; one envelope per device for one-to-one
        group_bytes = by_key[f"send-{n}", core.OVERT, "wire_bytes_per_message"]
        assert by_key[f"fanout-storage-{n}", core.OVERT, "stored_bytes"] == group_bytes * (n - 1)
        assert by_key[f"membership-remove-{n}", core.OVERT, "pairwise_encryptions"] == (
            (n - 2) + (n - 1) * (n - 2)
        )
        for metric in ("admin_ms", "device_send_ms", "device_receive_ms", "total_cpu_s"):
            assert by_key[f"membership-remove-{n}", core.OVERT, metric] > 0

    recorded = json.loads((tmp_path / "environment.json").read_text(encoding="utf-8"))
    assert recorded["groups"][groups.NAME]["parameters"]["sizes"] == "3,5"


def test_groups_sizes_are_checked(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    argv = ["--only", groups.NAME, "--results", str(results), "-q", "-p", "sizes=2"]
    assert main(argv) == 1  # a group of 2 has no member to remove: refused, nothing written
    assert not results.exists()
