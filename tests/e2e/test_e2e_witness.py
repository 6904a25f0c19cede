"""A real server process and a real witness process, set up from the command line the way
docs/transparency.md ("Serving the log") tells an operator to: print the log's key, start the
witness with it, name the witness in the deployment configuration, start the server. The
published checkpoint carries the witness's cosignature, and a key-directory lookup verifies
under the manifest's log key and witness quorum."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from overt import launch
from overt.crypto import DeterministicRng, sha256
from overt.crypto import vrf as vrf_mod
from overt.protocol import AccountIdentity, Device, verify_device_list
from overt.server.auth import request_message
from overt.server.codec import b64decode, b64encode, format_address
from overt.transparency.checkpoint import parse_proof_bundle, verify_checkpoint, verify_proof_bundle
from overt.transparency.entries import KeyDirectoryUpdate, kt_commitment, kt_label
from overt.transparency.manifest import verify_manifest
from overt.transparency.note import Note, parse_verifier_key
from overt.wire import SignedDeviceList

pytestmark = pytest.mark.slow

ORIGIN = "e2e.witness.test/log"
WAIT_S = 30.0


def overt(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "overt.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"overt {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def register(url: str, name: str, seed: int) -> bytes:
    """Register an account with one device over HTTP; its id."""
    account = name.encode()
    identity = AccountIdentity.generate(account, DeterministicRng(seed))
    device = Device.create(
        account, 1, rng=DeterministicRng(seed + 1), one_time_prekeys=2, kem_one_time_prekeys=2
    )
    stock = device.prekeys
    body = json.dumps(
        {
            "account": b64encode(account),
            "signed_device_list": b64encode(
                identity.sign_device_list(1, [device.entry()]).encode()
            ),
            "prekeys": {
                "signed_prekey": b64encode(stock.signed[stock.current_signed][1].encode()),
                "last_resort_kem": b64encode(stock.kem[stock.last_resort_kem][1].encode()),
            },
        }
    ).encode()
    timestamp = str(int(time.time() * 1000))
    signature = device.identity.sign.sign(request_message("POST", b"/v1/accounts", timestamp, body))
    response = httpx.post(
        f"{url}/v1/accounts",
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-Overt-Device": format_address(device.address),
            "X-Overt-Timestamp": timestamp,
            "X-Overt-Signature": b64encode(signature),
        },
        timeout=WAIT_S,
    )
    assert response.status_code == 201, response.text
    return account


def poll(get: Any, ready: Any) -> Any:
    """``get()`` until ``ready(answer)``, for at most :data:`WAIT_S` (no timing asserted)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        answer = get()
        if ready(answer):
            return answer
        assert time.monotonic() < deadline, f"not ready in time: {answer}"
        time.sleep(0.05)


def test_a_witness_process_cosigns_what_the_server_publishes(tmp_path: Path) -> None:
    server_dir, witness_dir = tmp_path / "server", tmp_path / "witness"
    keys = dict(
        line.split(":", 1)
        for line in overt(
            "server", "--print-keys", "--data-dir", str(server_dir), "--origin", ORIGIN
        )
        .strip()
        .splitlines()
    )
    log_vkey = keys["log vkey"].strip()

    witness = launch.Service(
        "the witness",
        ["witness", "--data-dir", str(witness_dir), "--log-vkey", log_vkey,
         "--port", "0", "--name", "witness.e2e.test"],
    )  # fmt: skip
    with witness:
        witness_vkey = (witness_dir / "witness.vkey").read_text().strip()
        assert f"witness vkey: {witness_vkey}" in witness.output()
        deployment = server_dir / "deployment.json"
        config = json.loads(deployment.read_text())
        config["deployment"] = "E2E deployment"
        config["witnesses"] = [{"name": "The witness", "url": witness.url, "vkey": witness_vkey}]
        config["quorum"] = 1
        deployment.write_text(json.dumps(config))

        server = launch.Service(
            "the Overt server",
            ["server", "--host", "127.0.0.1", "--port", "0", "--data-dir", str(server_dir),
             "--checkpoint-interval-ms", "100", "--log-level", "warning"],
        )  # fmt: skip
        with server:
            url = server.url
            manifest_body = httpx.get(f"{url}/v1/manifest", timeout=WAIT_S).json()
            manifest = verify_manifest(b64decode(manifest_body["manifest"]))
            assert manifest_body["index"] == 0 and manifest.deployment == "E2E deployment"
            assert manifest.log.vkey == parse_verifier_key(log_vkey)
            assert [w.vkey.to_text() for w in manifest.witnesses] == [witness_vkey]

            account = register(url, "alice", 1)
            lookup = poll(
                lambda: httpx.get(f"{url}/v1/kt/{b64encode(account)}", timeout=WAIT_S),
                lambda r: r.status_code == 200,
            ).json()

            note = Note.from_bytes(httpx.get(f"{url}/v1/log/checkpoint", timeout=WAIT_S).content)
            verified = verify_checkpoint(
                note, manifest.log.vkey, manifest.witness_keys, 1, origin=ORIGIN
            )
            assert verified.checkpoint.size == 2
            assert [c.key.to_text() for c in verified.cosignatures] == [witness_vkey]
            state = httpx.get(f"{witness.url}/state", timeout=WAIT_S).json()
            assert state["logs"][0]["origin"] == ORIGIN and state["logs"][0]["size"] == 2

            assert manifest.vrf_key is not None
            beta = vrf_mod.verify(manifest.vrf_key, account, b64decode(lookup["vrf_proof"]))
            signed = b64decode(lookup["signed_device_list"])
            device_list = verify_device_list(SignedDeviceList.decode(signed))
            entry = KeyDirectoryUpdate(
                kt_label(beta),
                device_list.account_key,
                device_list.serial,
                sha256(signed),
                kt_commitment(b64decode(lookup["opening"]), account),
            )
            verify_proof_bundle(
                parse_proof_bundle(lookup["proof"].encode()),
                leaf_data=entry.encode(),
                log_key=manifest.log.vkey,
                witnesses=manifest.witness_keys,
                quorum=manifest.witness_quorum,
                origin=ORIGIN,
            )
            page = httpx.get(f"{url}/log", timeout=WAIT_S).text
            assert "The witness" in page and "alice" not in page
        assert not server.running()
    assert not witness.running()
