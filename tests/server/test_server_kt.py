"""The key directory and the manifest, served by the real application in-process: what
registration and device-list changes append, what a lookup answers and that it verifies, the
manifest as entry 0 and its successors, and the repair of an entry that went missing."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from server_kit import b64, make_party, unb64
from test_server_kt_support import DEPLOYMENT_NAME, KEYS, ORIGIN, check_lookup, kt_env

from overt.crypto import DeterministicRng, sha256
from overt.crypto.vrf import proof_to_hash, prove
from overt.errors import ConfigurationError, InvalidMessage
from overt.server.config import TransparencyKeys
from overt.server.directory import KeyDirectory
from overt.storage import open_sqlite
from overt.transparency.entries import (
    EntryType,
    KeyDirectoryUpdate,
    ManifestEntry,
    decode_entry,
    kt_label,
)
from overt.transparency.manifest import NoAccess, check_successor, verify_manifest
from overt.wire import SignedDeviceList


def label(account: bytes) -> bytes:
    return kt_label(proof_to_hash(prove(KEYS.vrf, account)))


async def test_registration_and_device_changes_append_key_directory_entries() -> None:
    async with kt_env() as env:
        alice, bob = make_party("alice", 1), make_party("bob", 2)
        await env.register(alice)
        await env.register(bob)
        laptop = alice.sibling(2, 11)
        await env.link(alice, laptop)
        await env.checkpointer.run_once()
        entries = [decode_entry(e) for e in await env.entries()]

        assert isinstance(entries[0], ManifestEntry)
        kt = entries[1:]
        assert all(isinstance(e, KeyDirectoryUpdate) for e in kt) and len(kt) == 3
        expected = [
            (alice, alice.signed_list([alice.device], 1)),
            (bob, bob.signed_list([bob.device], 1)),
            (alice, alice.signed_list([alice.device, laptop.device], 2)),
        ]
        for entry, (party, signed) in zip(kt, expected, strict=True):
            assert isinstance(entry, KeyDirectoryUpdate)
            assert entry.label == label(party.account)  # the VRF output, not the account id
            assert entry.account_key == party.identity.public_key.raw
            assert entry.serial == signed.device_list.serial
            assert entry.device_list_hash == sha256(signed.encode())
        # The latest record of each account opens its latest entry (and only for that id).
        assert env.storage.kt is not None
        latest = {p.account: await env.storage.kt.latest(p.account) for p in (alice, bob)}
        for (account, record), entry in zip(latest.items(), (kt[2], kt[1]), strict=True):
            assert isinstance(entry, KeyDirectoryUpdate) and record is not None
            assert record.index == kt.index(entry) + 1
            entry.check_opening(record.opening, account)
            with pytest.raises(InvalidMessage):
                entry.check_opening(record.opening, b"mallory")
        assert len({r.opening for r in latest.values() if r is not None}) == 2
        # No entry carries the account id in the clear.
        for data in await env.entries():
            assert b"alice" not in data and b"bob" not in data


async def test_a_lookup_verifies_under_the_log_key_and_the_witness_quorum() -> None:
    async with kt_env(witnesses=3, quorum=2) as env:
        alice = make_party("alice", 1)
        await env.register(alice)
        response = await env.call(None, "GET", f"/v1/kt/{alice.b64}")
        assert response.status_code == 404  # not in a published checkpoint yet
        assert response.json()["error"] == "not_found"
        assert response.headers["Retry-After"] == "1"

        await env.checkpointer.run_once()
        manifest, index = await env.manifest()
        assert index == 0 and manifest.witness_quorum == 2 and len(manifest.witnesses) == 3
        response = await env.call(None, "GET", f"/v1/kt/{alice.b64}")
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"vrf_proof", "index", "opening", "signed_device_list", "proof"}
        assert len(unb64(body["vrf_proof"])) == 80 and len(unb64(body["opening"])) == 32
        verified = check_lookup(body, alice.account, manifest)
        assert len(verified.cosignatures) == 3 and verified.checkpoint.size == 2
        assert body["index"] == 1

        # After a device change the lookup answers the new entry, once it is published.
        laptop = alice.sibling(2, 11)
        await env.link(alice, laptop)
        assert (await env.call(None, "GET", f"/v1/kt/{alice.b64}")).status_code == 404
        await env.checkpointer.run_once()
        body = (await env.call(None, "GET", f"/v1/kt/{alice.b64}")).json()
        assert body["index"] == 2
        check_lookup(body, alice.account, manifest)
        signed = SignedDeviceList.decode(unb64(body["signed_device_list"]))
        assert signed.device_list.serial == 2


async def test_an_unknown_account_is_404() -> None:
    async with kt_env() as env:
        await env.checkpointer.run_once()
        response = await env.call(None, "GET", f"/v1/kt/{b64(b'nobody')}")
        assert response.status_code == 404 and "Retry-After" not in response.headers


async def test_a_missing_entry_is_published_on_lookup() -> None:
    """An account ahead of its key-directory records (a crash between the account store and
    the log, or accounts from before the log existed) gets its entry on the next lookup."""
    async with kt_env() as env:
        alice = make_party("alice", 1)
        await env.register(alice)
        laptop = alice.sibling(2, 11)
        directory: KeyDirectory = env.app.state.key_directory
        # Change the device list behind the directory's back, as a crash would leave it.
        signed = alice.signed_list([alice.device, laptop.device], 2).encode()
        await env.storage.accounts.replace_device_list(
            alice.account, expected_serial=1, serial=2, device_list=signed, devices=()
        )
        await env.checkpointer.run_once()
        response = await env.call(None, "GET", f"/v1/kt/{alice.b64}")
        assert response.status_code == 404 and response.headers["Retry-After"] == "1"
        await env.checkpointer.run_once()
        body = (await env.call(None, "GET", f"/v1/kt/{alice.b64}")).json()
        manifest, _ = await env.manifest()
        check_lookup(body, alice.account, manifest)
        assert unb64(body["signed_device_list"]) == signed
        assert directory.label(alice.account) == label(alice.account)


async def test_the_manifest_is_entry_0_and_a_changed_configuration_appends_a_successor(
    tmp_path: Path,
) -> None:
    path = tmp_path / "server.db"
    storage = await open_sqlite(path)
    async with kt_env(storage=storage) as env:
        manifest, index = await env.manifest()
        assert index == 0
        assert manifest.version == 1 and manifest.deployment == DEPLOYMENT_NAME
        assert manifest.log.origin == ORIGIN and manifest.log.vkey == KEYS.log.verifier_key
        assert manifest.vrf_key == KEYS.vrf.public_key
        assert manifest.provider_key == KEYS.provider.public_key
        assert manifest.witnesses == () and manifest.witness_quorum == 0
        assert isinstance(manifest.access, NoAccess)
        await env.register(make_party("alice", 1))

    # The same configuration after a restart: nothing is appended.
    async with kt_env(storage=await open_sqlite(path)) as env:
        assert (await env.manifest())[1] == 0
        assert await env.log.size() == 2

    # Two witnesses are added: version 2 is appended after the entries, a valid successor.
    async with kt_env(storage=await open_sqlite(path), witnesses=2, quorum=2) as env:
        second, index = await env.manifest()
        assert index == 2 and second.version == 2
        assert second.witness_quorum == 2 and len(second.witnesses) == 2
        check_successor(manifest, second)
        await env.checkpointer.run_once()
        published = env.checkpointer.published
        assert published is not None and published.size == 3
        entries = [decode_entry(e) for e in await env.entries()]
        assert [e.ENTRY_TYPE for e in entries] == [
            EntryType.MANIFEST,
            EntryType.KEY_DIRECTORY_UPDATE,
            EntryType.MANIFEST,
        ]
        assert isinstance(entries[2], ManifestEntry)
        assert verify_manifest(entries[2].manifest, KEYS.provider.public_key) == second


async def test_a_configuration_that_cannot_follow_the_manifest_stops_the_server(
    tmp_path: Path,
) -> None:
    """Another provider key, log key or VRF key than the manifest in force names: refused
    with what to do, and nothing is appended."""
    path = tmp_path / "server.db"
    async with kt_env(storage=await open_sqlite(path)) as env:
        await env.manifest()
    other = TransparencyKeys.generate(DeterministicRng("other keys"), ORIGIN)
    for keys, problem in (
        (dataclasses.replace(KEYS, provider=other.provider), "provider.key"),
        (dataclasses.replace(KEYS, log=other.log), "log.key"),
        (dataclasses.replace(KEYS, vrf=other.vrf), "vrf.key"),
    ):
        async with kt_env(storage=await open_sqlite(path), keys=keys) as env:
            with pytest.raises(ConfigurationError, match=problem):
                await env.app.state.publisher.ensure()
            assert await env.log.size() == 1
