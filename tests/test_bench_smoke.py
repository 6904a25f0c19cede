"""Smoke test of the benchmark harness and the ``protocol`` group at tiny sizes.

Checks that both adapters (Overt and python-doubleratchet + x3dh) run every traffic pattern with
every decrypted message equal to what was sent, and that ``python -m bench --only protocol``
writes well-formed rows while keeping other groups' rows. Nothing here looks at timings.
If Overt's protocol API is missing, these tests fail (they never skip).
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
from bench.groups import protocol  # noqa: E402
from bench.impls import PATTERNS, a_sends, bodies  # noqa: E402
from bench.impls import overt_protocol as overt_impl  # noqa: E402
from bench.impls import python_doubleratchet as peer_impl  # noqa: E402

MESSAGES = 20


def test_patterns_have_the_promised_shape() -> None:
    assert a_sends("one-way", 25) == [True] * 25
    flip = a_sends("flip-10", 25)
    assert flip == [True] * 10 + [False] * 10 + [True] * 5
    assert a_sends("ping-pong", 4) == [True, False, True, False]
    msgs = bodies(MESSAGES)
    assert all(len(m) == 100 for m in msgs)
    assert len(set(msgs)) == MESSAGES


@pytest.mark.parametrize("pattern", PATTERNS)
def test_peer_adapter_decrypts_every_message(pattern: str) -> None:
    run = peer_impl.run_session(pattern, MESSAGES, prekeys=2)
    assert run.impl == "python-doubleratchet"
    assert run.handshake_verified
    assert run.verified == MESSAGES


def test_peer_adapter_handshake_only() -> None:
    run = peer_impl.run_session("one-way", 0, prekeys=1)
    assert run.all_verified


def test_overt_api_is_present() -> None:
    overt_impl.check_api()  # raises BenchError naming what is missing


@pytest.mark.parametrize("policy", overt_impl.POLICIES)
@pytest.mark.parametrize("pattern", PATTERNS)
def test_overt_adapter_decrypts_every_message(pattern: str, policy: str) -> None:
    run = overt_impl.run_session(pattern, MESSAGES, policy=policy, seed=7)
    assert run.impl == "overt"
    assert run.handshake_verified
    assert run.verified == MESSAGES
    assert run.wire_bytes is not None
    assert run.wire_bytes > MESSAGES * 100


def test_overt_franking_commitments_verify() -> None:
    _, ok = overt_impl.franking_cost(MESSAGES)
    assert ok


def _expected_keys() -> set[tuple[str, str, str]]:
    peer = protocol.PEER
    speedup = core.SPEEDUP_PREFIX + peer
    keys = {
        ("handshake", "overt", "handshake_ms"),
        ("handshake", peer, "handshake_ms"),
        ("handshake", "overt", speedup),
        (protocol.MIN_POOL_CASE, "overt", "handshake_ms"),
        (protocol.MIN_POOL_CASE, peer, "handshake_ms"),
        (protocol.MIN_POOL_CASE, "overt", speedup),
        (protocol.ESCROW_CASE, "overt", "messages_per_s"),
        (protocol.ESCROW_CASE, "overt", "verified_messages"),
        ("access-field", "overt", "added_us_per_message"),
        ("access-field", "overt", "added_bytes_per_message"),
        ("franking", "overt", "added_us_per_message"),
        ("franking", "overt", "added_bytes_per_message"),
    }
    for pattern in PATTERNS:
        keys |= {
            (pattern, "overt", "messages_per_s"),
            (pattern, peer, "messages_per_s"),
            (pattern, "overt", "verified_messages"),
            (pattern, peer, "verified_messages"),
            (pattern, "overt", "wire_bytes_per_message"),
            (pattern, "overt", speedup),
        }
    return keys


def test_protocol_group_writes_rows(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    other = {
        "group": "server",
        "case": "c",
        "impl": "overt",
        "metric": "m",
        "value": 1.5,
        "unit": "s",
    }
    stale = {**other, "group": "protocol", "case": "stale"}
    results.write_text(json.dumps([stale, other]), encoding="utf-8")

    argv = ["--only", "protocol", "--results", str(results), "-q"]
    argv += ["--messages", str(MESSAGES), "--repeats", "1", "-p", "peer_prekeys=2"]
    assert main(argv) == 0

    rows = json.loads(results.read_text(encoding="utf-8"))
    assert isinstance(rows, list)
    for row in rows:
        assert list(row) == list(core.ROW_KEYS)
        assert all(isinstance(row[k], str) and row[k] for k in core.ROW_KEYS if k != "value")
        assert isinstance(row["value"], int | float)
        assert not isinstance(row["value"], bool)
    parsed = [core.Row.from_json(row) for row in rows]
    assert parsed == core.sort_rows(parsed)  # the file is in the stable order

    assert other in rows  # another group's rows survive
    protocol_rows = [r for r in parsed if r.group == "protocol"]
    assert all(r.case != "stale" for r in protocol_rows)  # this group's old rows are replaced
    got = {(r.case, r.impl, r.metric) for r in protocol_rows}
    assert got == _expected_keys()
    assert len(got) == len(protocol_rows)

    for r in protocol_rows:
        if r.metric == "verified_messages":
            assert r.value == MESSAGES, r  # every decrypted message matched what was sent
        if r.metric.startswith(core.SPEEDUP_PREFIX):
            assert r.impl == "overt"
            assert r.unit == "x"
    by_key = {(r.case, r.impl, r.metric): r for r in protocol_rows}
    assert by_key["access-field", "overt", "added_bytes_per_message"].value > 0
    assert by_key["franking", "overt", "added_bytes_per_message"].value == 64

    environment = json.loads((tmp_path / "environment.json").read_text(encoding="utf-8"))
    recorded = environment["groups"]["protocol"]
    assert recorded["parameters"]["messages"] == MESSAGES
    assert recorded["environment"]["python"]


def test_table_mentions_every_case() -> None:
    rows = [
        core.Row("protocol", "one-way", "overt", "messages_per_s", 200.0, "msg/s"),
        core.Row("protocol", "one-way", "peer", "messages_per_s", 100.0, "msg/s"),
        core.Row("protocol", "one-way", "overt", "speedup_vs_peer", 2.0, "x"),
        core.Row("protocol", "franking", "overt", "added_bytes_per_message", 64, "B"),
    ]
    table = core.format_table(rows)
    assert "2.00" in table
    assert "franking" in table
    assert "speedup_vs_peer" not in table
