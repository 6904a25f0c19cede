"""The lawful-access orchestration's pieces that need no process (:mod:`overt.launch_lawful`):
the access policy and deployment it writes for a provider, and the warrant it asks a court for.
The processes themselves are started by the lawful end-to-end tests, the ``access`` benchmark's
smoke test and the demo."""

from __future__ import annotations

import json
from pathlib import Path

from overt import launch_lawful
from overt.access.limits import DAY_SECONDS
from overt.crypto import DeterministicRng, Ed25519PrivateKey
from overt.server.config import load_or_create_transparency_keys
from overt.server.deployment import WitnessEndpoint, read_deployment
from overt.services import court as court_tool
from overt.services.custodian import PUBLIC_FILE_NAME
from overt.services.custodian_wire import b64e
from overt.transparency.note import CosignatureSigner

N, T = 3, 2


def parties(tmp_path: Path) -> tuple[launch_lawful.LawfulParties, list[Ed25519PrivateKey]]:
    rng = DeterministicRng(7)
    keys, _ = load_or_create_transparency_keys(tmp_path / launch_lawful.PROVIDER_DIR, rng)
    signing = [Ed25519PrivateKey.generate(rng) for _ in range(N)]
    dirs = []
    for j, key in enumerate(signing, start=1):  # what `overt custodian` publishes
        d = tmp_path / f"custodian{j}"
        d.mkdir()
        (d / PUBLIC_FILE_NAME).write_text(json.dumps({"key": b64e(key.public_key.raw)}))
        dirs.append(d)
    cosigner = CosignatureSigner("w.witness.test", Ed25519PrivateKey.generate(rng))
    witness = WitnessEndpoint("Witness One", "http://127.0.0.1:9001", cosigner.verifier_key)
    urls = [f"http://127.0.0.1:{9100 + j}" for j in range(N)]
    return launch_lawful.LawfulParties(
        tmp_path, "http://127.0.0.1:9000", dirs, urls, witness, keys
    ), signing


def test_the_policy_names_each_custodian_with_its_published_key_and_the_provider_reads_it(
    tmp_path: Path,
) -> None:
    world, signing = parties(tmp_path)
    court = court_tool.Court("District Court", Ed25519PrivateKey.generate(DeterministicRng(8)))
    escrow = world.escrow(T, [court.named_key])
    assert [(c.name, c.url, c.key) for c in escrow.custodians] == [
        (f"Custodian {j}", world.custodians[j - 1], signing[j - 1].public_key)
        for j in range(1, N + 1)
    ]
    assert escrow.threshold == T and escrow.court_keys == (court.named_key,)
    assert world.port == 9000
    deployment = world.deployment("lawful.test", escrow)
    path = world.write_deployment(deployment)
    assert path.parent == world.provider_dir
    assert read_deployment(path) == deployment


def test_the_warrant_was_approved_yesterday_and_its_window_starts_at_todays_midnight() -> None:
    court = court_tool.Court("District Court", Ed25519PrivateKey.generate(DeterministicRng(9)))
    warrant = launch_lawful.warrant_from_today(
        court, [b"alice", b"bob"], days=2, seal_days=3, cap=10, reference="AUTH-1",
        legal_basis="s.15", judge_reference="J. Doe", rng=DeterministicRng(10),
    )  # fmt: skip
    (task,) = warrant.tasks
    start = task.timespan.start
    assert start % DAY_SECONDS == 0
    assert task.timespan.end == start + 2 * DAY_SECONDS
    approved = warrant.authorisation.approval.approved_at
    assert start - DAY_SECONDS <= approved < start  # approved the day before the window
    assert warrant.sealed_until == approved + 3 * DAY_SECONDS
    assert task.targets == (b"alice", b"bob") and warrant.max_messages == 10
    court_tool.read_own_warrant(court, court_tool.sign_warrant_file(court, warrant))
