"""What a misbehaving server or a forged message cannot do: add a ghost device, swap an
account key, or make one bad mail cost the good ones."""

from __future__ import annotations

import pytest

from overt.client import Client, FailureReason, NotInLog, Response
from overt.client._b64 import b64d, b64e
from overt.client.body import Body
from overt.crypto import DeterministicRng
from overt.errors import ProtocolViolation, UntrustedIdentity
from overt.protocol import AccountIdentity, Device, direct_conversation_id
from overt.wire import Address, PreKeyBundle

from .support import Call, Interposer, World, json_response


async def bundle_of(requester: Client, account: bytes, device: int) -> PreKeyBundle:
    answer = await requester._request(
        "GET", f"/v1/accounts/{b64e(account)}/bundles?device={device}"
    )
    data = answer.json()
    assert isinstance(data, dict)
    return PreKeyBundle.decode(b64d(data["bundles"][0], "bundle"))


def forged_mail(device: Device, recipient: Address, bundle: PreKeyBundle, peer: bytes,
                mail_id: int, now: int) -> dict[str, object]:  # fmt: skip
    device.start_session(bundle)
    env = device.encrypt(
        recipient,
        Body.of_text(peer, "it is really me").encode(),
        now_ms=now,
        conversation_id=direct_conversation_id(device.address.account, recipient.account),
    )
    return {
        "id": mail_id,
        "sender": f"{b64e(device.address.account)}:{device.address.device}",
        "server_time": now,
        "envelope": b64e(env.encode()),
        "reporting_tag": b64e(bytes(32)),
    }


def inject(net: Interposer, extra: list[dict[str, object]], *, first: bool = False) -> None:
    """Add ``extra`` mail to the next page the client fetches (once)."""

    async def hook(call: Call) -> Response | None:
        if not call.target.startswith("/v1/messages?"):
            return None
        net.hooks.remove(hook)
        data = (await call.proceed()).json()
        assert isinstance(data, dict)
        messages = [*extra, *data["messages"]] if first else [*data["messages"], *extra]
        return json_response({"messages": messages, "more": data["more"]})

    net.hooks.append(hook)


async def test_a_ghost_device_the_account_never_signed_is_not_shown(world: World) -> None:
    alice = await world.user("alice", "alice")
    net = world.interposer()
    bob = await world.user("bob", "bob", net)
    mallory = await world.user("mallory", "mallory")
    await alice.send("bob", "real")

    ghost = Device.create(b"alice", 9, rng=DeterministicRng("ghost"))
    bundle = await bundle_of(mallory, b"bob", 1)
    inject(net, [forged_mail(ghost, Address(b"bob", 1), bundle, b"bob", 10**9, world.clock.t)])

    assert [m.text for m in await bob.sync()] == ["real"]
    [failure] = await bob.undecryptable()
    assert failure.reason is FailureReason.UNKNOWN_DEVICE
    assert (failure.sender, failure.sender_device) == ("alice", 9)
    assert [m.text for m in await bob.history("alice")] == ["real"]


async def test_a_changed_account_key_is_refused_until_reverified(world: World) -> None:
    alice = await world.user("alice", "alice")
    net = world.interposer()
    bob = await world.user("bob", "bob", net)
    mallory = await world.user("mallory", "mallory")
    pinned = await bob.safety_number("alice")  # bob pins alice's real key

    # The server now claims alice has a new key and one device of the attacker's.
    impostor = AccountIdentity.generate(b"alice", DeterministicRng("impostor"))
    rogue = Device.create(b"alice", 1, rng=DeterministicRng("rogue"))
    forged_list = impostor.sign_device_list(7, [rogue.entry()])
    record = {
        "account": b64e(b"alice"),
        "identity_key": b64e(impostor.public_key.raw),
        "signed_device_list": b64e(forged_list.encode()),
        "serial": 7,
        "devices": [1],
    }

    async def forge(call: Call) -> Response | None:
        alice_path = f"/v1/accounts/{b64e(b'alice')}"
        if call.target == alice_path:
            return json_response(record)
        if call.target.startswith(alice_path + "/bundles"):
            bundles = [b64e(rogue.prekey_bundle().encode())]
            return json_response(
                {
                    "serial": 7,
                    "signed_device_list": record["signed_device_list"],
                    "bundles": bundles,
                }
            )
        return None

    net.hooks.append(forge)

    # Sending: the forged list is refused, nothing goes out.
    with pytest.raises(UntrustedIdentity) as info:
        await bob.send("alice", "are you there?")
    assert "safety numbers" in str(info.value)
    assert await bob.history("alice") == []
    assert ("POST", "/v1/messages") not in net.log

    # Receiving: mail from a device under the new key is recorded, not shown.
    bundle = await bundle_of(mallory, b"bob", 1)
    forged = Device.create(b"alice", 2, rng=DeterministicRng("rogue 2"))
    mail = forged_mail(forged, Address(b"bob", 1), bundle, b"bob", 10**9, world.clock.t)
    inject(net, [mail])
    await alice.send("bob", "the real alice")  # from the pinned device, still shown
    assert [m.text for m in await bob.sync()] == ["the real alice"]
    assert [f.reason for f in await bob.undecryptable()] == [FailureReason.UNTRUSTED_IDENTITY]

    # With key transparency a new key is not even offered until it is in the log; a real
    # key change is logged, so log this one too.
    with pytest.raises(NotInLog):
        await bob.offered_safety_number("alice")
    directory = world.app.state.key_directory  # type: ignore[attr-defined]
    await directory.publish(b"alice", impostor.public_key.raw, 7, forged_list.encode())

    # Re-verification: the offered number differs; only that number is accepted.
    offered = await bob.offered_safety_number("alice")
    assert offered != pinned
    with pytest.raises(ProtocolViolation):
        await bob.accept_new_identity("alice", pinned)
    assert await bob.safety_number("alice") == pinned
    await bob.accept_new_identity("alice", offered)
    assert await bob.safety_number("alice") == offered


async def test_bad_mail_is_recorded_and_does_not_cost_the_good_ones(world: World) -> None:
    alice = await world.user("alice", "alice")
    net = world.interposer()
    bob = await world.user("bob", "bob", net)
    await alice.send("bob", "first")
    await alice.send("bob", "second")

    async def corrupt(call: Call) -> Response | None:
        if not call.target.startswith("/v1/messages?"):
            return None
        net.hooks.remove(corrupt)
        data = (await call.proceed()).json()
        assert isinstance(data, dict)
        real = data["messages"]
        env = bytearray(b64d(real[0]["envelope"], "envelope"))
        env[-1] ^= 1
        flipped = {**real[0], "id": 10**9, "envelope": b64e(bytes(env))}
        garbage = {**real[0], "id": 10**9 + 1, "envelope": b64e(b"\x01not an envelope")}
        misaddressed = {**real[1], "id": 10**9 + 2, "sender": f"{b64e(b'mallory')}:1"}
        return json_response(
            {"messages": [flipped, garbage, misaddressed, *real], "more": data["more"]}
        )

    net.hooks.append(corrupt)
    assert [m.text for m in await bob.sync()] == ["first", "second"]
    reasons = [f.reason for f in await bob.undecryptable()]
    assert reasons == [FailureReason.INVALID, FailureReason.MALFORMED, FailureReason.MISMATCH]
    # Everything was acknowledged: the mailbox is empty, and nothing is recorded twice.
    assert await bob.sync() == []
    assert len(await bob.undecryptable()) == 3
    # The session survived the forgery: the conversation goes on.
    await alice.send("bob", "third")
    assert [m.text for m in await bob.sync()] == ["third"]
