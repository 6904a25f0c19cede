"""The transparency keys and the deployment configuration in the data directory, and the
command line that creates and prints them."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from server_kit import b64
from test_server_kt_support import KEYS, witness_signer

from overt.cli.main import build_parser, cmd_witness
from overt.cli.main import main as overt_main
from overt.crypto import DeterministicRng, Ed25519PrivateKey
from overt.errors import ConfigurationError
from overt.server.config import (
    DEFAULT_LOG_ORIGIN,
    LOG_KEY_FILE,
    PROVIDER_KEY_FILE,
    VRF_KEY_FILE,
    TransparencyConfig,
    load_or_create_transparency_keys,
)
from overt.server.deployment import (
    DEPLOYMENT_FILE,
    Deployment,
    WitnessEndpoint,
    encode_deployment,
    load_or_create_deployment,
    read_deployment,
)
from overt.server.run import print_keys
from overt.transparency.manifest import NoAccess
from overt.transparency.note import parse_verifier_key

KEY_FILES = (PROVIDER_KEY_FILE, LOG_KEY_FILE, VRF_KEY_FILE)


def test_keys_are_created_once_with_private_permissions(tmp_path: Path) -> None:
    data = tmp_path / "data"
    keys, created = load_or_create_transparency_keys(data, DeterministicRng(1))
    assert created == KEY_FILES
    assert keys.origin == DEFAULT_LOG_ORIGIN
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for name in KEY_FILES:
        assert stat.S_IMODE((data / name).stat().st_mode) == 0o600
    again, created = load_or_create_transparency_keys(data, DeterministicRng(2), create=False)
    assert created == ()
    assert again.provider.public_key == keys.provider.public_key
    assert again.log.verifier_key == keys.log.verifier_key
    assert again.vrf.public_key == keys.vrf.public_key
    assert (data / LOG_KEY_FILE).read_text().startswith(f"PRIVATE+KEY+{DEFAULT_LOG_ORIGIN}+")
    for name in KEY_FILES:  # no secret in what a log line or traceback could print
        secret = (data / name).read_bytes()
        assert secret.hex() not in repr(keys) and secret.decode("latin-1") not in repr(keys)


def test_the_origin_is_chosen_once(tmp_path: Path) -> None:
    keys, _ = load_or_create_transparency_keys(tmp_path, DeterministicRng(1), origin="a.test/log")
    assert keys.origin == "a.test/log" and keys.log.verifier_key.name == "a.test/log"
    same, _ = load_or_create_transparency_keys(tmp_path, DeterministicRng(1), origin="a.test/log")
    assert same.log.verifier_key == keys.log.verifier_key
    with pytest.raises(ConfigurationError, match="keeps its origin"):
        load_or_create_transparency_keys(tmp_path, DeterministicRng(1), origin="b.test/log")
    with pytest.raises(ConfigurationError, match="log origin"):
        load_or_create_transparency_keys(tmp_path / "x", DeterministicRng(1), origin="bad origin")


@pytest.mark.parametrize("name", KEY_FILES)
def test_unsafe_missing_or_broken_key_files_are_refused(tmp_path: Path, name: str) -> None:
    load_or_create_transparency_keys(tmp_path, DeterministicRng(1))
    path = tmp_path / name
    path.chmod(0o644)
    with pytest.raises(ConfigurationError, match="chmod 600"):
        load_or_create_transparency_keys(tmp_path, DeterministicRng(1))
    path.chmod(0o600)
    original = path.read_bytes()
    path.write_bytes(b"\xff" * 33)
    with pytest.raises(ConfigurationError, match="restore it from a backup"):
        load_or_create_transparency_keys(tmp_path, DeterministicRng(1))
    path.unlink()
    with pytest.raises(ConfigurationError, match="restore the file from a backup"):
        load_or_create_transparency_keys(tmp_path, DeterministicRng(1), create=False)
    path.write_bytes(original)
    path.chmod(0o600)
    load_or_create_transparency_keys(tmp_path, DeterministicRng(1), create=False)


def test_the_default_configuration_is_written_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / DEPLOYMENT_FILE
    assert load_or_create_deployment(path) == Deployment()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_deployment(path) == Deployment()
    text = path.read_text()
    assert '"access": {"mode":"none"}' in text and '"quorum": 0' in text


def test_a_configuration_with_witnesses_round_trips(tmp_path: Path) -> None:
    endpoints = tuple(
        WitnessEndpoint(
            f"Witness {i}", f"http://127.0.0.1:{7380 + i}", witness_signer(i).verifier_key
        )
        for i in range(3)
    )
    deployment = Deployment("Example", endpoints, 2)
    path = tmp_path / "d.json"
    path.write_bytes(encode_deployment(deployment))
    assert read_deployment(path) == deployment
    assert load_or_create_deployment(path) == deployment
    assert deployment.witness_keys == tuple(e.vkey for e in endpoints)


WITNESS_VKEY = witness_signer(0).verifier_key.to_text()
GOOD = (
    '{"format":"overt-deployment","version":1,"deployment":"D","witnesses":[{"name":"W",'
    f'"url":"https://w.example/","vkey":"{WITNESS_VKEY}"}}],"quorum":1,'
    '"access":{"mode":"none"},"safety":{"franking":true,"matching":{"enabled":false}}}'
)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda s: s.replace('"quorum":1', '"quorum":2'), "quorum"),
        (lambda s: s.replace('"quorum":1', '"quorum":0'), "quorum"),
        (lambda s: s.replace('"quorum":1', '"quorum":true'), "quorum"),
        (lambda s: s.replace('"version":1', '"version":2'), "version"),
        (lambda s: s.replace('"deployment":"D"', '"deployment":""'), "deployment name"),
        (lambda s: s.replace('"deployment":"D",', '"deployment":"D","extra":1,'), "unknown"),
        (lambda s: s.replace('"safety"', '"safe"'), "lacks safety"),
        (lambda s: s.replace(WITNESS_VKEY, KEYS.log.verifier_key.to_text()), "cosignature"),
        (lambda s: s.replace(WITNESS_VKEY, "w+00000000+AA"), "bad vkey"),
        (lambda s: s.replace("https://w.example/", "ftp://w.example/"), "http"),
        (lambda s: s.replace("https://w.example/", "https://u:p@w.example/"), "credentials"),
        (lambda s: s.replace('{"mode":"none"}', '{"mode":"backdoor"}'), "access"),
        (lambda s: s.replace('"franking":true', '"franking":false'), "franking"),
        (lambda s: s[:-1], "JSON"),
        (lambda s: s.replace('"quorum":1', '"quorum":1.5'), "JSON"),
        (
            lambda s: s.replace(
                "]", f',{{"name":"W","url":"https://x/","vkey":"{WITNESS_VKEY}"}}]'
            ),
            "same",
        ),
    ],
)
def test_a_broken_configuration_says_what_to_fix(
    tmp_path: Path, change: object, problem: str
) -> None:
    path = tmp_path / DEPLOYMENT_FILE
    path.write_text(GOOD)
    assert read_deployment(path).quorum == 1
    path.write_text(change(GOOD))  # type: ignore[operator]
    with pytest.raises(ConfigurationError, match=problem) as caught:
        read_deployment(path)
    assert str(path) in str(caught.value) and "fix the file" in str(caught.value)


def test_policies_are_checked_as_the_manifest_checks_them() -> None:
    custodian = Ed25519PrivateKey.generate(DeterministicRng("custodian")).public_key
    escrow = {
        "mode": "escrow", "threshold": 2, "epoch_length_days": 30, "retention_days": 365,
        "max_seal_days": 90, "court_keys": [],
        "custodians": [{"name": "C", "url": "https://c.example", "key": b64(custodian.raw)}],
    }  # fmt: skip
    with pytest.raises(ConfigurationError, match="access policy"):
        Deployment.from_json({**Deployment().to_json(), "access": escrow})
    assert isinstance(Deployment.from_json(Deployment().to_json()).access, NoAccess)
    with pytest.raises(ConfigurationError, match="positive"):
        TransparencyConfig(KEYS, checkpoint_interval_ms=0)


def test_print_keys_creates_and_prints_what_witnesses_need(tmp_path: Path) -> None:
    data = tmp_path / "server"
    lines = print_keys(data, origin="print.test/log", rng=DeterministicRng(3))
    fields = dict(line.split(":", 1) for line in lines)
    vkey = parse_verifier_key(fields["log vkey"].strip())
    assert vkey.name == "print.test/log" == fields["log origin"].strip()
    assert fields["deployment"].strip() == str((data / DEPLOYMENT_FILE).resolve())
    assert "provider.key" in fields["created"]
    again = print_keys(data)
    assert again[:4] == lines[:4] and "nothing" in again[-1]


def test_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "server"
    assert (
        overt_main(["server", "--print-keys", "--data-dir", str(data), "--origin", "c.test/l"]) == 0
    )
    out = capsys.readouterr().out
    assert "log vkey:     c.test/l+" in out and (data / LOG_KEY_FILE).exists()
    args = build_parser().parse_args(
        ["witness", "--data-dir", str(tmp_path / "w"), "--log-vkey", "x", "--port", "0"]
    )
    assert args.sync is cmd_witness and args.host == "127.0.0.1" and args.origin is None
    # A bad log key is a readable error (exit 1), before anything listens.
    assert overt_main(["witness", "--data-dir", str(tmp_path / "w"), "--log-vkey", "x"]) == 1
    assert "bad log key" in capsys.readouterr().err
    args = build_parser().parse_args(["server", "--checkpoint-interval-ms", "250"])
    assert args.checkpoint_interval_ms == 250 and args.deployment is None
