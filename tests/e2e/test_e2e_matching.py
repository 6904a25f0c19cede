"""Known-content matching end to end: a real server process on loopback with matching on in
its manifest, the list published through the operator and organisation commands
(``overt matching prepare``, ``sign`` ×2, ``publish``) while it runs, and the client library
sending images. Near-duplicates (recompressed, resized, brightened) of list images sent
``t`` times reach the moderation queue as ``known_content_match`` items — exactly those, and
only once the ``t``-th arrives; ``t`` unrelated images sent by another account do not."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from overt import launch
from overt.client import Client, HttpTransport
from overt.client.matching import MatchingState
from overt.crypto import DeterministicRng
from overt.server.deployment import Deployment, encode_deployment
from overt.server.matching import MATCH_RULE
from overt.storage import open_sqlite
from overt.storage.moderation import ItemState
from safety import matching_kit as kit

pytestmark = pytest.mark.slow


def overt(*args: str) -> str:
    r = subprocess.run(
        [sys.executable, "-m", "overt.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 0, f"overt {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}"
    return r.stdout


async def queue(data_dir: Path) -> list[tuple[bytes, dict[str, object]]]:
    storage = await open_sqlite(data_dir / "server.db")
    try:
        assert storage.reports is not None
        items = await storage.reports.queue({ItemState.OPEN}, 100)
    finally:
        await storage.close()
    assert all(i.label == MATCH_RULE for i in items)
    return [(i.subject_account, json.loads(i.detail)) for i in items]


async def test_near_duplicates_sent_t_times_reach_the_queue(tmp_path: Path) -> None:
    data = tmp_path / "server"
    data.mkdir(mode=0o700)
    orgs = kit.orgs()
    (data / "deployment.json").write_bytes(encode_deployment(Deployment(safety=orgs.safety())))
    list_file = tmp_path / "list.txt"
    list_file.write_text("".join(h.hex() + ",100\n" for h in kit.hash_list().hashes))
    package = tmp_path / "package"
    with launch.server(data) as srv:
        out = overt(
            "matching", "prepare", str(list_file), "--out", str(package), "--data-dir", str(data)
        )
        assert "Prepared list version 1" in out
        for name, key in zip(orgs.names[:2], orgs.keys[:2], strict=True):
            key_file = tmp_path / f"{name}.key"
            key_file.write_bytes(key.export_secret())
            out = overt(
                "matching",
                "sign",
                str(package),
                "--list",
                str(list_file),
                "--key",
                str(key_file),
                "--name",
                name,
            )
            assert "holds exactly the vetted list" in out
        out = overt("matching", "publish", str(package), "--data-dir", str(data))
        assert "Published list version 1" in out

        # A person's view: `overt status` says matching is on and who signed the list.
        home = tmp_path / "home"
        cli = ("--home", str(home), "--profile", "dave", "--server", srv.url)
        overt(*cli, "account", "create", "dave")
        out = overt(*cli, "status")
        assert "known-content matching: on, list version 1 signed by Hotline A, Hotline B" in out

        transport = HttpTransport(srv.url)
        alice = await Client.open(tmp_path / "alice", transport, rng=DeterministicRng("alice"))
        bob = await Client.open(tmp_path / "bob", transport, rng=DeterministicRng("bob"))
        carol = await Client.open(tmp_path / "carol", transport, rng=DeterministicRng("carol"))
        phone = await Client.open(tmp_path / "phone", transport, rng=DeterministicRng("phone"))
        try:
            for c, name in ((alice, "alice"), (bob, "bob"), (carol, "carol")):
                await c.create_account(name)
            await phone.link_device(alice)  # alice's second device: the seed comes with it
            status = await alice.refresh_matching()
            assert status.state is MatchingState.READY, status.describe()
            assert status.signed_by == ("Hotline A", "Hotline B")

            # carol: t unrelated images — nothing opens, nothing is queued.
            for i in range(kit.THRESHOLD):
                await carol.send_attachment(
                    "bob", kit.png(kit.unrelated_image(i)), content_type="image/png"
                )
            # alice: t − 1 near-duplicates, from both her devices — nothing is queued yet.
            for i in range(kit.THRESHOLD - 1):
                await (phone if i % 2 else alice).send_attachment(
                    "bob",
                    kit.png(kit.near_duplicate(i)),
                    content_type="image/png",
                    file_name=f"{i}.png",
                )
            assert await queue(data) == []
            assert alice.matching_status().queued == 0  # every bundle was uploaded
            assert phone.matching_status().queued == 0
            # The t-th: all t reach the queue, as one item each, about alice.
            await alice.send_attachment(
                "bob", kit.png(kit.near_duplicate(kit.THRESHOLD - 1)), content_type="image/png"
            )
            items = await queue(data)
            assert len(items) == kit.THRESHOLD
            assert {subject for subject, _ in items} == {b"alice"}
            assert all(int(str(d["distance"])) <= 31 for _, d in items)
            assert len({d["image"] for _, d in items}) == kit.THRESHOLD
            # One threshold for the account: the phone's match counted toward it.
            assert sorted(int(str(d["device"])) for _, d in items) == sorted(
                [2 if i % 2 else 1 for i in range(kit.THRESHOLD - 1)] + [1]
            )
            # The messages themselves were delivered as usual.
            received = [m for m in await bob.sync() if m.attachment is not None]
            assert len(received) == 2 * kit.THRESHOLD
        finally:
            for c in (alice, bob, carol, phone):
                await c.close()
            await transport.aclose()
