"""``overt audit`` and ``overt alarms``: the auditor passes on an honest log and fails, saying
exactly why, on a tampered entry, a checkpoint without quorum, a rewritten history, a broken
manifest chain or an access receipt without a warrant; the CLI lists and acknowledges alarms
and warns on every command while some are unacknowledged."""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import pytest

from overt.cli.audit import audit, parse_provider_key, parse_since, pending_alarms
from overt.cli.main import build_parser, main
from overt.client import AlarmKind, Response
from overt.client._b64 import b64e
from overt.client.kt import LogReader, new_alarm
from overt.crypto import sha256
from overt.errors import LocalError
from overt.transparency.entries import (
    AccessReceipt,
    ManifestEntry,
    WarrantCommitment,
    WarrantUnsealing,
    warrant_targets_commitment,
)
from overt.transparency.manifest import sign_manifest

from .support import Call, Interposer, json_response
from .test_client_kt_support import (
    PROVIDER,
    KtTransport,
    KtWorld,
    key,
    kt_world,
    make_manifest,
)


@pytest.fixture
async def kt(tmp_path: Path) -> AsyncIterator[KtWorld]:
    async with kt_world(tmp_path) as world:
        yield world


async def run(net: KtTransport | Interposer, **kwargs: object) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    code = await audit(LogReader(net), out=out, err=err, **kwargs)  # type: ignore[arg-type]
    return code, out.getvalue()


async def populated(kt: KtWorld) -> None:
    alice = await kt.user("alice")
    bob = await kt.user("bob")
    await alice.send("bob", "hello")
    warrant = WarrantCommitment(b"W" * 32, b"C" * 32, 86400, 2_000_000_000,
                                warrant_targets_commitment(b"opening"))  # fmt: skip
    await kt.deployment.views["a"].append(
        [
            warrant,
            AccessReceipt(b"W" * 32, b"K" * 32, 3, sha256(b"contexts")),
            WarrantUnsealing(b"W" * 32, b"opening"),
        ]
    )
    await bob.check_log()  # a checkpoint over everything


async def test_an_honest_log_passes(kt: KtWorld) -> None:
    await populated(kt)
    code, out = await run(kt.transport(), provider_key=PROVIDER.public_key)
    assert code == 0, out
    assert "OK: the log verifies" in out
    assert "  manifest               1" in out
    assert "  key_directory_update   2" in out
    assert "  warrant_commitment     1" in out
    assert "1 logged, 1 unsealed, 3 message(s) decrypted" in out
    assert "no exceptional access" in out


async def test_a_tampered_entry_fails(kt: KtWorld) -> None:
    await populated(kt)
    net = Interposer(kt.transport())

    async def tamper(call: Call) -> Response | None:
        if not call.target.startswith("/v1/log/entries"):
            return None
        data = (await call.proceed()).json()
        assert isinstance(data, dict)
        data["entries"][2] = b64e(ManifestEntry(b"tampered").encode())
        return json_response(data)

    net.hooks.append(tamper)
    code, out = await run(net)
    assert code == 1
    assert "AUDIT FAILED: entry 2 is not a valid successor manifest" in out

    net.hooks[0] = _replace_entry(1)  # alice's key-directory update, one bit changed
    code, out = await run(net)
    assert code == 1
    assert "do not hash to its checkpoint's root" in out


def _replace_entry(index: int) -> Callable[[Call], Awaitable[Response | None]]:
    async def hook(call: Call) -> Response | None:
        if not call.target.startswith("/v1/log/entries"):
            return None
        data = (await call.proceed()).json()
        assert isinstance(data, dict)
        raw = bytearray(base64.urlsafe_b64decode(data["entries"][index] + "=="))
        raw[-1] ^= 1  # a key-directory update with another commitment
        data["entries"][index] = b64e(bytes(raw))
        return json_response(data)

    return hook


async def test_a_checkpoint_without_quorum_fails(kt: KtWorld) -> None:
    deployment = await kt.other_deployment(make_manifest(quorum=2))
    deployment.views["a"].witnesses = [deployment.honest]
    code, out = await run(kt.transport(deployment=deployment))
    assert code == 1
    assert "fewer than 2 of the manifest's witnesses cosigned it" in out


async def test_since_checks_the_log_still_starts_with_an_earlier_checkpoint(kt: KtWorld) -> None:
    await populated(kt)
    view = kt.deployment.views["a"]
    root = await view.log.root(2)
    ok, out = await run(kt.transport(), since=(2, root))
    assert ok == 0, out
    assert "still starts with the checkpoint of size 2" in out
    bad, out = await run(kt.transport(), since=(2, sha256(b"another history")))
    assert bad == 1 and "the log was rewritten" in out
    big, out = await run(kt.transport(), since=(10_000, root))
    assert big == 1 and "truncated or forked" in out


async def test_the_manifest_chain_and_access_records_are_checked(kt: KtWorld) -> None:
    await populated(kt)
    view = kt.deployment.views["a"]
    # A successor signed by another key than the provider's.
    other = key("usurper")
    m = make_manifest(version=2)
    usurped = sign_manifest(replace(m, provider_key=other.public_key), other)
    await view.append([ManifestEntry(usurped)])
    code, out = await run(kt.transport())
    assert code == 1 and "is not a valid successor manifest" in out


async def test_a_receipt_without_a_warrant_fails(kt: KtWorld) -> None:
    await populated(kt)
    await kt.deployment.views["a"].append([AccessReceipt(b"X" * 32, b"K" * 32, 1, sha256(b"ctx"))])
    code, out = await run(kt.transport())
    assert code == 1 and "access receipt without a logged warrant" in out


async def test_a_manifest_from_another_provider_fails(kt: KtWorld) -> None:
    code, out = await run(kt.transport(), provider_key=key("someone else").public_key)
    assert code == 1 and "not the given provider's" in out


async def test_a_newer_manifest_in_force_must_be_the_last_in_the_log(kt: KtWorld) -> None:
    await populated(kt)
    newer = sign_manifest(make_manifest(version=2), PROVIDER)
    net = Interposer(kt.transport())

    async def hide(call: Call) -> Response | None:
        if call.target == "/v1/manifest":
            return json_response({"manifest": b64e(newer), "index": 1})
        return None

    net.hooks.append(hide)
    code, out = await run(net)
    assert code == 1 and "is not the last manifest in the log" in out


def test_argument_parsing() -> None:
    k = PROVIDER.public_key.raw
    assert parse_provider_key(k.hex()).raw == k
    assert parse_provider_key(b64e(k)).raw == k
    assert parse_provider_key(base64.b64encode(k).decode()).raw == k
    assert parse_since(f"12:{base64.b64encode(k).decode()}") == (12, k)
    for bad in ("12", "0:" + k.hex(), "x:" + k.hex(), "12:abcd"):
        with pytest.raises(LocalError):
            parse_since(bad)
    with pytest.raises(LocalError):
        parse_provider_key("abcd")
    args = build_parser().parse_args(["audit", "--server", "http://127.0.0.1:1", "--since", "3:x"])
    assert args.audit_server == "http://127.0.0.1:1" and args.since == "3:x"
    # Every profile command warns about alarms; the two new ones do not need to.
    for argv in (["send", "bob", "hi"], ["inbox"], ["account", "create", "alice"]):
        assert getattr(build_parser().parse_args(argv).run, "alarm_warning", False), argv
    assert not getattr(build_parser().parse_args(["alarms"]).run, "alarm_warning", False)


async def test_the_cli_lists_acknowledges_and_warns_about_alarms(
    kt: KtWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    home = kt.tmp / "home"
    profile = home / "profiles" / "alice"
    alice = await kt.client(str(profile.relative_to(kt.tmp)))
    await alice.create_account("alice")
    alice._store.add_alarm(
        new_alarm(AlarmKind.UNKNOWN_DEVICE_LIST, "a device you did not add", index=5), 1
    )
    await alice.close()
    kt.clients.remove(alice)
    base = ["--home", str(home), "--profile", "alice", "--server", "http://127.0.0.1:9"]

    async def cli(*argv: str) -> int:
        return await asyncio.to_thread(main, [*base, *argv])

    args = build_parser().parse_args([*base, "status"])
    assert pending_alarms(args) == 1

    assert await cli("status") == 0
    captured = capsys.readouterr()
    assert "1 unacknowledged transparency alarm(s)" in captured.err
    assert await cli("alarms", "--evidence") == 0
    assert "unknown_device_list (log entry 5): a device you did not add" in capsys.readouterr().out
    assert await cli("alarms", "--ack") == 0
    assert "Acknowledged 1 alarm(s)." in capsys.readouterr().out
    assert await cli("status") == 0
    assert "unacknowledged" not in capsys.readouterr().err
    assert await cli("alarms", "--all") == 0
    assert "[acknowledged]" in capsys.readouterr().out
    assert (
        pending_alarms(build_parser().parse_args(["--home", str(Path(kt.tmp) / "x"), "inbox"])) == 0
    )
