"""Key transparency, client side: nobody can be silently added.

Against a fake log in front of the real relay (test_client_kt_support): the manifest is pinned
and its policy shown; a device list is used only once the log proves it; a key the server hands
out but never logged is refused (key substitution, a); a key the server logs too is found by
the owner's monitoring (key substitution, b); the own account's legitimate changes raise
nothing; monitoring resumes where it stopped and follows the manifest through the log.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from overt.client import (
    AlarmKind,
    FailureReason,
    NotInLog,
    PolicyUnavailable,
    Response,
    TransparencyUnavailable,
)
from overt.client._b64 import b64e
from overt.client.body import Body
from overt.client.limits import LOG_CHECK_INTERVAL_S
from overt.client.store import MIGRATIONS, SCHEMA_VERSION, PendingGossip, Store
from overt.crypto import DeterministicRng, sha256
from overt.errors import UntrustedIdentity
from overt.protocol import AccountIdentity, Device
from overt.transparency.entries import ManifestEntry
from overt.transparency.manifest import Custodian, EscrowAccess, NamedKey, sign_manifest
from overt.wire import SignedDeviceList

from .support import Call, Interposer, json_response
from .test_client_kt_support import (
    PROVIDER,
    KtWorld,
    key,
    kt_world,
    make_manifest,
)


@pytest.fixture
async def kt(tmp_path: Path) -> AsyncIterator[KtWorld]:
    async with kt_world(tmp_path) as world:
        yield world


def forged_alice(serial: int = 7) -> tuple[AccountIdentity, Device, SignedDeviceList]:
    """A key and device of the server's own, passed off as alice's."""
    impostor = AccountIdentity.generate(b"alice", DeterministicRng("impostor"))
    rogue = Device.create(b"alice", 1, rng=DeterministicRng("rogue"))
    return impostor, rogue, impostor.sign_device_list(serial, [rogue.entry()])


def serve_forged_account(net: Interposer, signed: SignedDeviceList, rogue: Device) -> None:
    """The relay hands out ``signed`` as alice's account and device list."""
    record = {
        "account": b64e(b"alice"),
        "identity_key": b64e(signed.device_list.account_key),
        "signed_device_list": b64e(signed.encode()),
        "serial": signed.device_list.serial,
        "devices": [1],
    }

    async def forge(call: Call) -> Response | None:
        path = f"/v1/accounts/{b64e(b'alice')}"
        if call.target == path:
            return json_response(record)
        if call.target.startswith(path + "/bundles"):
            bundles = [b64e(rogue.prekey_bundle().encode())]
            return json_response(
                {
                    "serial": signed.device_list.serial,
                    "signed_device_list": record["signed_device_list"],
                    "bundles": bundles,
                }
            )
        return None

    net.hooks.append(forge)


# ----------------------------------------------------------------------------- the manifest


async def test_the_manifest_is_pinned_on_first_contact_and_its_policy_shown(kt: KtWorld) -> None:
    alice = await kt.user("alice")
    assert await alice.policy_description() == "no exceptional access (end-to-end encryption only)"
    store = Store.open(kt.tmp / "alice")
    try:
        pinned = store.manifest()
        assert pinned == (kt.deployment.signed_manifest, 0)
        assert store.schema_version() == SCHEMA_VERSION
        assert store.checkpoint() is not None
    finally:
        store.close()


async def test_a_given_provider_key_replaces_trust_on_first_use(kt: KtWorld) -> None:
    ok = await kt.client("ok", provider_key=PROVIDER.public_key)
    await ok.create_account("carol")
    other = await kt.client("other", provider_key=key("another provider").public_key)
    with pytest.raises(UntrustedIdentity):
        await other.create_account("dave")


async def test_a_server_without_a_manifest_is_refused_when_a_provider_key_is_given(
    kt: KtWorld,
) -> None:
    net = kt.transport()
    net.refuse.add("/v1/manifest")
    c = await kt.client("c", net, provider_key=PROVIDER.public_key)
    with pytest.raises(TransparencyUnavailable):
        await c.create_account("carol")


async def test_a_manifest_not_in_the_log_is_refused(kt: KtWorld) -> None:
    other = sign_manifest(make_manifest(version=2), PROVIDER)  # validly signed, never logged
    net = Interposer(kt.transport())

    async def swap(call: Call) -> Response | None:
        if call.target == "/v1/manifest":
            return json_response({"manifest": b64e(other), "index": 0})
        return None

    net.hooks.append(swap)
    c = await kt.client("c", net)
    with pytest.raises(TransparencyUnavailable):
        await c.create_account("carol")


async def test_an_escrow_manifest_needs_the_epoch_key_to_send(kt: KtWorld) -> None:
    custodians = tuple(
        Custodian(f"c{i}", f"https://c{i}.test", key(f"custodian {i}").public_key) for i in range(3)
    )
    escrow = EscrowAccess(custodians, 2, (NamedKey("Court", key("court").public_key),), 30, 30, 180)
    deployment = await kt.other_deployment(make_manifest(access=escrow))
    alice = await kt.client("alice", kt.transport(deployment=deployment))
    await alice.create_account("alice")
    await kt.user("bob")
    assert await alice.policy_description() == (
        "exceptional access: 2 of 3 custodians, notice within 180 days"
    )
    with pytest.raises(PolicyUnavailable):
        await alice.send("bob", "no access field, no message")


# ----------------------------------------------------------------------------- using the log


async def test_lists_are_used_only_once_proven_and_a_conversation_carries_gossip(
    kt: KtWorld,
) -> None:
    alice = await kt.user("alice")
    bob = await kt.user("bob")
    await alice.send("bob", "hello")
    [got] = await bob.sync()
    assert got.text == "hello"
    contact = alice._store.contact(b"bob")
    assert contact is not None and contact.log_index is not None
    # The stored body carries alice's newest checkpoint (version 2 with gossip).
    [(cid, _, _, _)] = bob._store.conversations()
    [row] = bob._store.history(cid, 1)
    body = Body.decode(row.body)
    assert body.gossip is not None and body.gossip.origin == kt.deployment.manifest.log.origin
    assert alice.alarms() == [] and bob.alarms() == []


async def test_key_substitution_not_in_the_log_is_refused(kt: KtWorld) -> None:
    """(a) The server hands bob a key and device of its own as alice's, without logging
    them: bob refuses to start a session and nothing is sent."""
    await kt.user("alice")
    net = Interposer(kt.transport())
    bob = await kt.user("bob", net)
    _, rogue, forged = forged_alice()
    serve_forged_account(net, forged, rogue)

    with pytest.raises(NotInLog) as info:
        await bob.send("alice", "are you there?")
    assert "not in the transparency log" in str(info.value)
    assert ("POST", "/v1/messages") not in net.inner.log  # type: ignore[attr-defined]
    assert await bob.history("alice") == []
    assert bob._store.contact(b"alice") is None
    assert bob._store.session_addresses(b"alice") == []


@pytest.mark.parametrize("field", ["vrf_proof", "opening", "index", "proof"])
async def test_a_lookup_whose_proof_does_not_fit_is_refused(kt: KtWorld, field: str) -> None:
    await kt.user("alice")
    await kt.user("mallory")
    net = Interposer(kt.transport())
    bob = await kt.user("bob", net)

    async def bend(call: Call) -> Response | None:
        if call.target != f"/v1/kt/{b64e(b'alice')}":
            return None
        data = (await call.proceed()).json()
        other = (await call.inner.request("GET", f"/v1/kt/{b64e(b'mallory')}")).json()
        assert isinstance(data, dict) and isinstance(other, dict)
        data[field] = other[field]  # mallory's label proof, opening, index or bundle
        return json_response(data)

    net.hooks.append(bend)
    with pytest.raises(NotInLog):
        await bob.send("alice", "hello?")
    assert bob._store.contact(b"alice") is None


async def test_mail_from_a_device_not_in_the_log_is_not_shown(kt: KtWorld) -> None:
    await kt.user("alice")
    bob = await kt.user("bob")
    mallory = await kt.user("mallory")
    # The server relays mail from a device it made up for a new account it never logged.
    kt.deployment.log_device_lists = False
    ghost = await kt.user("ghost")
    await ghost.send("bob", "trust me")
    kt.deployment.log_device_lists = True
    assert await bob.sync() == []
    [failure] = await bob.undecryptable()
    assert failure.reason is FailureReason.NOT_IN_LOG
    await mallory.send("bob", "still works")
    assert [m.text for m in await bob.sync()] == ["still works"]


async def test_key_substitution_logged_too_raises_the_owners_alarm(kt: KtWorld) -> None:
    """(b) The server logs its forged key for alice as well, so bob (first contact) accepts
    it; alice's monitoring finds an entry of her account with a key she never had."""
    alice = await kt.user("alice")
    assert await alice.check_log() == []
    net = Interposer(kt.transport())
    bob = await kt.user("bob", net)
    _, rogue, forged = forged_alice()
    await kt.deployment.log_list(b"alice", forged.encode())
    serve_forged_account(net, forged, rogue)
    await bob.send("alice", "hi alice?")  # to the server's device: bob cannot tell

    [alarm] = await alice.check_log()
    assert alarm.kind is AlarmKind.UNKNOWN_ACCOUNT_KEY
    assert alarm.entry_index is not None
    assert alice.alarms() == [alarm]
    assert await alice.check_log() == []  # found once, not again
    assert alice.acknowledge_alarms() == 1
    assert alice.alarms() == []
    assert [a.id for a in alice.alarms(include_acknowledged=True)] == [alarm.id]


async def test_a_logged_device_list_the_owner_never_signed_raises_an_alarm(kt: KtWorld) -> None:
    alice = await kt.user("alice")
    await alice.check_log()
    own = alice._store.contact(b"alice")
    assert own is not None
    # An entry with alice's real key but a list hash none of her devices made.
    await kt.deployment.log_list(
        b"alice", own.signed_device_list.encode(), serial=2, list_hash=sha256(b"ghost list"),
        serve=False,
    )  # fmt: skip
    [alarm] = await alice.check_log()
    assert alarm.kind is AlarmKind.UNKNOWN_DEVICE_LIST
    assert "device you did not add" in alarm.detail


async def test_the_owners_own_changes_raise_nothing(kt: KtWorld) -> None:
    alice = await kt.user("alice")
    second = await kt.client("alice-2")
    await second.link_device(alice)
    third = await kt.client("alice-3")
    await third.link_device(alice)
    bob = await kt.user("bob")
    await bob.send("alice", "to all of you")
    for device in (alice, second, third):
        assert [m.text for m in await device.sync()] == ["to all of you"]
    for device in (alice, second, third):
        assert await device.check_log() == []
    assert await second.devices() == [1, 2, 3]


async def test_a_device_without_the_account_key_alarms_only_on_what_cannot_be_a_missed_list(
    kt: KtWorld,
) -> None:
    alice = await kt.user("alice")
    second = await kt.client("alice-2")
    await second.link_device(alice)  # serial 2
    assert await second.check_log() == []
    for n in (3, 4):  # two more devices between two checks of the second one
        await (await kt.client(f"alice-{n}")).link_device(alice)
    assert await second.check_log() == []  # serial 3 came and went: the primary vouches
    own = second._store.contact(b"alice")
    assert own is not None and own.serial == 4
    # Another list with serial 4 (equivocation): every device raises it.
    await kt.deployment.log_list(
        b"alice", own.signed_device_list.encode(), list_hash=sha256(b"another 4"), serve=False
    )
    [on_second] = await second.check_log()
    [on_primary] = await alice.check_log()
    assert on_second.kind is on_primary.kind is AlarmKind.UNKNOWN_DEVICE_LIST
    assert on_second.entry_index == on_primary.entry_index


async def test_a_profile_from_before_the_log_proves_its_contacts_before_use(
    kt: KtWorld,
) -> None:
    net = kt.transport()
    net.refuse.add("/v1/manifest")  # the server has no log yet: trust on first use
    alice = await kt.user("alice", net)
    await kt.user("bob")
    await alice.send("bob", "before the log")
    before = alice._store.contact(b"bob")
    assert before is not None and before.log_index is None
    assert alice._store.manifest() is None
    await alice.close()
    kt.clients.remove(alice)

    net.refuse.clear()  # now it publishes one
    alice = await kt.client("alice", net)
    await alice.send("bob", "after")
    after = alice._store.contact(b"bob")
    assert after is not None and after.log_index is not None
    assert alice._store.manifest() is not None
    assert [m.text for m in await alice.sync()] == []  # and it monitors
    assert alice._store.monitor() is not None


def test_a_profile_of_schema_1_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old"
    path.mkdir()
    db = sqlite3.connect(path / "overt.db", isolation_level=None)
    db.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY)")
    for statement in MIGRATIONS[0]:
        db.execute(statement)
    db.execute("INSERT INTO schema_version (version) VALUES (1)")
    signed = AccountIdentity.generate(b"bob", DeterministicRng("bob")).sign_device_list(
        1, [Device.create(b"bob", 1, rng=DeterministicRng("bob device")).entry()]
    )
    db.execute(
        "INSERT INTO contacts VALUES (?, ?, ?, 1, 5, 5)",
        (b"bob", signed.device_list.account_key, signed.encode()),
    )
    db.close()
    store = Store.open(path)
    try:
        assert store.schema_version() == SCHEMA_VERSION
        contact = store.contact(b"bob")
        assert contact is not None and contact.log_index is None
        assert store.manifest() is None and store.alarms() == [] and store.monitor() is None
    finally:
        store.close()


def test_pending_gossip_is_bounded(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "p")
    try:
        for i in range(1, 8):
            store.add_pending_gossip(PendingGossip("o", i, bytes(32), i), bound=5)
        assert [g.size for g in store.pending_gossip()] == [3, 4, 5, 6, 7]
    finally:
        store.close()


async def test_manifests_are_followed_through_the_log(kt: KtWorld) -> None:
    alice = await kt.user("alice")
    await alice.check_log()
    view = kt.deployment.views["a"]
    usurper = key("usurper")
    bad = sign_manifest(replace(make_manifest(version=2), provider_key=usurper.public_key), usurper)
    custodians = tuple(
        Custodian(f"c{i}", f"https://c{i}.test", key(f"custodian {i}").public_key) for i in range(5)
    )
    escrow = EscrowAccess(custodians, 3, (NamedKey("Court", key("court").public_key),), 30, 30, 90)
    good = sign_manifest(make_manifest(version=2, access=escrow), PROVIDER)
    await view.append([ManifestEntry(bad), ManifestEntry(good)])
    [alarm] = await alice.check_log()
    assert alarm.kind is AlarmKind.INVALID_LOG and "not a valid successor" in alarm.detail
    assert await alice.policy_description() == (
        "exceptional access: 3 of 5 custodians, notice within 90 days"
    )
    stored = alice._store.manifest()
    assert stored is not None and stored[0] == good


async def test_monitoring_resumes_where_it_stopped(kt: KtWorld) -> None:
    alice = await kt.user("alice")
    await alice.check_log()
    first = alice._store.monitor()
    assert first is not None and first.own_label is not None
    await kt.user("bob")
    await kt.user("carol")
    net_log = alice._transport.log  # type: ignore[attr-defined]
    net_log.clear()
    seen: list[tuple[int, int]] = []
    assert await alice.check_log(progress=lambda done, total: seen.append((done, total))) == []
    second = alice._store.monitor()
    assert second is not None and second.size == first.size + 2
    pages = [t for m, t in net_log if t.startswith("/v1/log/entries")]
    assert pages == [f"/v1/log/entries?start={first.size}&end={second.size}"]
    assert seen == [(second.size, second.size)]


async def test_sync_monitors_by_itself_at_most_every_interval(kt: KtWorld) -> None:
    alice = await kt.user("alice")
    await alice.sync()
    state = alice._store.monitor()
    assert state is not None
    await kt.user("bob")
    await alice.sync()
    assert alice._store.monitor() == state  # too soon
    kt.clock.advance(LOG_CHECK_INTERVAL_S * 1000)
    await alice.sync()
    later = alice._store.monitor()
    assert later is not None and later.size > state.size


async def test_entries_that_do_not_match_the_signed_root_are_an_alarm(kt: KtWorld) -> None:
    alice = await kt.user("alice")
    net = Interposer(alice._transport)  # type: ignore[arg-type]
    alice._kt._reader._transport = net

    async def tamper(call: Call) -> Response | None:
        if not call.target.startswith("/v1/log/entries"):
            return None
        data = (await call.proceed()).json()
        assert isinstance(data, dict)
        entries = data["entries"]
        entries[-1] = b64e(ManifestEntry(b"{}").encode())
        return json_response({"entries": entries})

    net.hooks.append(tamper)
    with pytest.raises(Exception, match="not the ones its checkpoint signs"):
        await alice.check_log()
    [alarm] = alice.alarms()
    assert alarm.kind is AlarmKind.INVALID_LOG
    assert alice._store.monitor() is None  # nothing was taken from the bad read


async def test_a_checkpoint_without_the_witness_quorum_is_not_trusted(kt: KtWorld) -> None:
    deployment = await kt.other_deployment(make_manifest(quorum=2))
    alice = await kt.client("alice", kt.transport(deployment=deployment))
    await alice.create_account("alice")
    assert await alice.check_log() == []
    # One witness stops cosigning: the next checkpoints carry one cosignature of two.
    deployment.views["a"].witnesses = [deployment.honest]
    bob = await kt.client("bob", kt.transport(deployment=deployment))
    await bob.create_account("bob")
    with pytest.raises(NotInLog):
        await alice.send("bob", "hello?")
    with pytest.raises(TransparencyUnavailable):
        await alice.check_log()
    assert alice.alarms() == []
