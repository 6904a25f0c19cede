"""Lawful access, client side: the escrow-epoch keys come from the transparency log.

Against the real relay with access policy ``escrow`` (escrow_support): a client sends without
being given a policy once the custodians' epoch key is logged, and not before; a key the
server serves but cannot prove — not in the log, a bad inclusion proof, a transcript that is
not the custodians' — is refused with :class:`EpochNotInLog` and nothing is kept; so is a
transcript the provider made up for the custodians' session and logged (with a key only it
can open), and a genuine one whose custodians' confirmations are missing, signed by another
key, or of another transcript or session; the recipient refuses a field under an epoch that
is not logged, fetches a logged one it did not know, and a restarted profile keeps its
epochs.
"""

from __future__ import annotations

import pytest

from overt.access.dkg import session_id
from overt.access.epoch import decode_confirmations, encode_confirmations
from overt.client import (
    AlarmKind,
    EpochNotInLog,
    FailureReason,
    PolicyUnavailable,
    ServerUnreachable,
)
from overt.client._b64 import b64d, b64e
from overt.client.escrow import epoch_span, verify_epoch_key
from overt.crypto import DeterministicRng, Point, Scalar, sha256
from overt.protocol import EscrowPolicy
from overt.services.custodian_wire import verify_publication
from overt.transparency.entries import EpochKey
from overt.transparency.manifest import LogInfo, Manifest, NamedKey
from overt.transparency.note import NoteSigner

from .escrow_support import (
    CUSTODIANS,
    DEPLOYMENT,
    ESCROW,
    PROVIDER_KEYS,
    EscrowWorld,
    confirmation,
    dkg,
    escrow_world,
    transcript_of,
)
from .support import Call, json_response

__all__ = ["escrow_world"]


async def test_a_client_sends_under_the_logged_epoch_without_being_given_a_policy(
    escrow_world: EscrowWorld,
) -> None:
    w = escrow_world
    alice = await w.user("alice", "alice")
    bob = await w.user("bob", "bob")
    with pytest.raises(PolicyUnavailable, match="no live escrow-epoch key"):
        await alice.send("bob", "before the custodians made a key")
    assert await alice.access_epoch() is None

    policy = await w.publish_epoch()
    await alice.send("bob", "escrowed under the logged key")
    (got,) = await bob.sync()
    assert got.text == "escrowed under the logged key"
    epoch = await alice.access_epoch()
    assert epoch is not None and epoch.epoch == policy.epoch == w.epoch_now()
    assert epoch.public_key == policy.public_key.raw and epoch.log_index > 0
    assert [e.epoch for e in bob._escrow.known()] == [policy.epoch]  # learnt on receipt
    await bob.send("alice", "and back")
    assert [m.text for m in await alice.sync()] == ["and back"]


async def test_a_restarted_profile_keeps_its_epochs(escrow_world: EscrowWorld) -> None:
    w = escrow_world
    alice = await w.user("alice", "alice")
    await w.user("bob", "bob")
    await w.publish_epoch()
    await alice.send("bob", "one")
    await alice.close()
    w.clients.remove(alice)

    net = w.interposer()

    async def no_epochs(call: Call) -> None:
        if call.target.startswith("/v1/epochs"):
            raise ServerUnreachable("the epoch list is not asked for again")

    net.hooks.append(no_epochs)
    again = await w.client("alice", net)
    await again.send("bob", "two")
    assert [t for _, t in net.log if t.startswith("/v1/epochs")] == []


async def test_the_newest_live_epoch_is_used(escrow_world: EscrowWorld) -> None:
    w = escrow_world
    alice = await w.user("alice", "alice")
    bob = await w.user("bob", "bob")
    now = w.epoch_now()
    await w.publish_epoch(now - 1)
    await w.publish_epoch(now)
    await w.publish_epoch(now + 1)  # made ahead of time: not started yet
    await alice.send("bob", "hello")
    epoch = await alice.access_epoch()
    assert epoch is not None and epoch.epoch == now
    assert [m.text for m in await bob.sync()] == ["hello"]


@pytest.mark.parametrize("forgery", ["unlogged_key", "bad_proof", "other_entry", "transcript"])
async def test_an_epoch_key_the_server_cannot_prove_is_refused(
    escrow_world: EscrowWorld, forgery: str
) -> None:
    w = escrow_world
    net = w.interposer()
    alice = await w.user("alice", "alice", net)
    await w.user("bob", "bob")
    await w.publish_epoch()

    async def forge(call: Call) -> object:
        if call.target == "/v1/epochs":
            answer = await call.proceed()
            listed = answer.json()["epochs"][0]  # type: ignore[index]
            if forgery == "unlogged_key":
                listed = {**listed, "public_key": b64e(Point.base_mul(Scalar.from_int(5)).raw)}
            elif forgery == "other_entry":
                listed = {**listed, "index": 0}  # the manifest, not an epoch key
            elif forgery == "transcript":
                # another run's transcript: not the one whose hash the log entry holds
                other, _ = dkg(w.epoch_now(), attempt=7)
                listed = {**listed, "transcript": b64e(transcript_of(other))}
            return json_response({"epochs": [listed]})
        if forgery == "bad_proof" and call.target.startswith("/v1/log/inclusion"):
            answer = await call.proceed()
            proof = answer.json()
            proof["proof"][0] = b64e(bytes(32))  # type: ignore[index]
            return json_response(proof)
        return None

    net.hooks.append(forge)
    with pytest.raises(EpochNotInLog) as caught:
        await alice.send("bob", "never sent")
    assert "not using it" in str(caught.value) or "not the" in str(caught.value)
    assert alice._escrow.known() == []  # nothing kept


def test_an_epoch_key_is_checked_against_the_manifests_custodians() -> None:
    signer = NoteSigner("escrow.test/log", CUSTODIANS[0])
    provider = CUSTODIANS[1]
    manifest = Manifest(
        deployment=DEPLOYMENT, version=1, provider_key=provider.public_key,
        server_keys=(NamedKey("api", provider.public_key),),
        log=LogInfo("escrow.test/log", signer.verifier_key), witnesses=(), witness_quorum=0,
        access=ESCROW,
    )  # fmt: skip
    publication, key = dkg(681)
    verified = verify_publication(publication, manifest)
    transcript = verified.transcript.encode()
    confirmations = encode_confirmations(verified.confirmations)
    entry = verified.entry
    verify_epoch_key(manifest, entry, transcript, confirmations)  # the custodians' own
    assert (entry.not_before, entry.retain_until) == epoch_span(681, ESCROW)
    for bad in (
        EpochKey(681, key.raw, sha256(b"x"), entry.not_before, entry.retain_until),
        EpochKey(682, key.raw, entry.transcript_hash, entry.not_before, entry.retain_until),
        EpochKey(681, key.raw, entry.transcript_hash, entry.not_before + 1, entry.retain_until),
        EpochKey(
            681,
            Point.base_mul(Scalar.from_int(3)).raw,
            entry.transcript_hash,
            entry.not_before,
            entry.retain_until,
        ),
    ):
        with pytest.raises(EpochNotInLog, match="DKG transcript does not match"):
            verify_epoch_key(manifest, bad, transcript, confirmations)
    with pytest.raises(EpochNotInLog, match="without the custodians' signed confirmations"):
        verify_epoch_key(manifest, entry, transcript, None)
    # a run among other custodians (another deployment's) gives another session id
    other = Manifest(
        deployment="another.test", version=1, provider_key=provider.public_key,
        server_keys=(NamedKey("api", provider.public_key),),
        log=LogInfo("escrow.test/log", signer.verifier_key), witnesses=(), witness_quorum=0,
        access=ESCROW,
    )  # fmt: skip
    with pytest.raises(EpochNotInLog, match="DKG transcript does not match"):
        verify_epoch_key(other, entry, transcript, confirmations)


@pytest.mark.parametrize("kept", ["none", "custodians", "own"])
async def test_a_transcript_the_provider_made_up_for_the_custodians_session_is_refused(
    escrow_world: EscrowWorld, kept: str
) -> None:
    """The silent master key: the provider runs the custodians' DKG session alone, logs its
    key and transcript (which hashes to the logged entry and names the right session,
    custodians, threshold and calendar). Without the custodians' signatures it is refused
    both when sending and when monitoring finds it in the log."""
    w = escrow_world
    alice = await w.user("alice", "alice")
    bob = await w.user("bob", "bob")
    rogue = await w.log_made_up_epoch(w.epoch_now(), kept)
    with pytest.raises(EpochNotInLog) as caught:
        await alice.send("bob", "never escrowed to the provider's key")
    reason = {
        "none": "without the custodians' signed confirmations",
        "custodians": "custodian 1 confirmed another transcript",
        "own": "not signed by the manifest's key of the custodian it names",
    }[kept]
    assert reason in str(caught.value) and "not using it" in str(caught.value)
    assert alice._escrow.known() == []  # nothing kept
    alarms = await bob.check_log()
    assert [a.kind for a in alarms] == [AlarmKind.INVALID_LOG]
    assert bob._escrow.known() == []
    # a recipient refuses a field under it too
    forger = await w.client_with_policy("alice", rogue)
    await forger.send("bob", "escrowed to the provider's own key")
    assert await bob.sync() == []
    assert [f.reason for f in await bob.undecryptable()] == [FailureReason.POLICY]


@pytest.mark.parametrize(
    "forgery",
    ["missing", "null", "garbled", "non_custodian", "other_digest", "other_session", "moved"],
)
async def test_an_epoch_without_every_custodians_confirmation_is_refused(
    escrow_world: EscrowWorld, forgery: str
) -> None:
    """The transcript is the custodians' and logged; the server shows its confirmations with
    one of them wrong."""
    w = escrow_world
    net = w.interposer()
    alice = await w.user("alice", "alice", net)
    await w.user("bob", "bob")
    policy = await w.publish_epoch()
    keys = [k.public_key.raw for k in CUSTODIANS]
    session = session_id(DEPLOYMENT, policy.epoch, 0, keys)

    async def forge(call: Call) -> object:
        if call.target != "/v1/epochs":
            return None
        answer = await call.proceed()
        listed = answer.json()["epochs"][0]  # type: ignore[index]
        kept = list(decode_confirmations(b64d(listed["confirmations"], "c")))
        digest = kept[4].body
        if forgery == "missing":
            del kept[4]  # custodian 5 did not confirm
        elif forgery == "non_custodian":  # signed by a key the manifest does not list
            kept[4] = confirmation(PROVIDER_KEYS[4], session, 5, digest)
        elif forgery == "other_digest":  # custodian 5 really signed, another transcript
            kept[4] = confirmation(CUSTODIANS[4], session, 5, sha256(b"another transcript"))
        elif forgery == "other_session":  # custodian 5 really signed, in another run
            other = session_id(DEPLOYMENT, policy.epoch, 1, keys)
            kept[4] = confirmation(CUSTODIANS[4], other, 5, digest)
        elif forgery == "moved":  # custodian 4's signature presented as custodian 5's
            kept[4] = confirmation(CUSTODIANS[3], session, 5, digest)
        encoded: object = b64e(encode_confirmations(kept))
        if forgery == "null":
            encoded = None
        elif forgery == "garbled":
            encoded = b64e(b"\x01\x09garbage")
        return json_response({"epochs": [{**listed, "confirmations": encoded}]})

    net.hooks.append(forge)
    with pytest.raises(EpochNotInLog) as caught:
        await alice.send("bob", "never sent")
    reason = {
        "missing": "custodian 5 did not confirm the transcript",
        "null": "without the custodians' signed confirmations",
        "garbled": "do not decode",
        "non_custodian": "not signed by the manifest's key",
        "other_digest": "custodian 5 confirmed another transcript",
        "other_session": "not signed by the manifest's key",
        "moved": "not signed by the manifest's key",
    }[forgery]
    assert reason in str(caught.value)
    assert alice._escrow.known() == []  # nothing kept
    net.hooks.remove(forge)  # the honest answer: the same epoch is used
    await alice.send("bob", "now escrowed under the custodians' key")
    epoch = await alice.access_epoch()
    assert epoch is not None and epoch.public_key == policy.public_key.raw


async def test_the_recipient_refuses_a_field_under_an_unlogged_epoch(
    escrow_world: EscrowWorld,
) -> None:
    w = escrow_world
    await w.user("alice", "alice")
    bob = await w.user("bob", "bob")
    logged = await w.publish_epoch()
    rogue = EscrowPolicy(logged.epoch + 5, Point.base_mul(Scalar.random(DeterministicRng("x"))))
    forger = await w.client_with_policy("alice", rogue)
    await forger.send("bob", "escrowed to a key no custodian holds")
    assert await bob.sync() == []
    (failure,) = await bob.undecryptable()
    assert failure.reason is FailureReason.POLICY
    # the same epoch number as the logged one, but another key: refused as well
    forged_key = EscrowPolicy(logged.epoch, rogue.public_key)
    other = await w.client_with_policy("alice", forged_key)
    await other.send("bob", "wrong key for the logged epoch")
    assert await bob.sync() == []
    assert [f.reason for f in await bob.undecryptable()] == [FailureReason.POLICY] * 2


async def test_the_recipient_fetches_a_logged_epoch_it_does_not_know_yet(
    escrow_world: EscrowWorld,
) -> None:
    w = escrow_world
    await w.user("alice", "alice")
    bob = await w.user("bob", "bob")
    await w.publish_epoch()
    await bob.send("alice", "bob learns the current epoch")
    ahead = await w.publish_epoch(w.epoch_now() + 1)
    assert ahead.epoch not in {e.epoch for e in bob._escrow.known()}
    early = await w.client_with_policy("alice", ahead)  # a sender whose clock runs ahead
    await early.send("bob", "under next epoch's key")
    assert [m.text for m in await bob.sync()] == ["under next epoch's key"]
    assert ahead.epoch in {e.epoch for e in bob._escrow.known()}


async def test_policy_is_still_an_explicit_override(escrow_world: EscrowWorld) -> None:
    w = escrow_world
    await w.user("alice", "alice")
    bob = await w.user("bob", "bob")
    logged = await w.publish_epoch()
    alice = await w.client_with_policy("alice", logged)
    epoch = await alice.access_epoch()
    assert epoch is not None and epoch.epoch == logged.epoch and epoch.log_index == -1
    await alice.send("bob", "with the given policy")
    assert [m.text for m in await bob.sync()] == ["with the given policy"]
    assert ESCROW.threshold == 3


async def test_a_message_without_the_field_is_refused(escrow_world: EscrowWorld) -> None:
    w = escrow_world
    alice = await w.user("alice", "alice")
    bob = await w.user("bob", "bob")
    await w.publish_epoch()
    await bob.send("alice", "bob knows the epoch")
    alice._access_policy = lambda: None  # type: ignore[method-assign]  # a modified client
    await alice.send("bob", "no access field")
    assert await bob.sync() == []
    assert [f.reason for f in await bob.undecryptable()] == [FailureReason.POLICY]
