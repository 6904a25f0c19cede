"""Registration (proof of possession), account records and device-list replacement."""

from __future__ import annotations

from server_kit import (
    Env,
    Party,
    b64,
    make_party,
    prekey_upload,
    registration,
    server_env,
    unb64,
)

from overt.crypto import DeterministicRng
from overt.protocol import AccountIdentity, verify_device_list
from overt.storage import NewMail, OneTimeKind
from overt.wire import DeviceList, SignedDeviceList


async def test_register_and_read_the_public_record() -> None:
    async with server_env() as env:
        alice = make_party("alice", 1)
        response = await env.call(alice, "POST", "/v1/accounts", json_body=registration(alice))
        assert response.status_code == 201
        assert response.json() == {"account": alice.b64, "device": 1}

        record = (await env.http.get(f"/v1/accounts/{alice.b64}")).json()
        assert record["account"] == alice.b64
        assert unb64(record["identity_key"]) == alice.identity.public_key.raw
        assert record["serial"] == 1
        assert record["devices"] == [1]
        signed = SignedDeviceList.decode(unb64(record["signed_device_list"]))
        assert verify_device_list(signed, alice.identity.public_key.raw).devices[0].device == 1

        stock = await env.call(alice, "GET", "/v1/devices/self/prekeys")
        assert stock.json() == {"one_time": 10, "kem_one_time": 10, "low": False}


async def test_an_account_id_is_registered_once() -> None:
    async with server_env() as env:
        alice = make_party("alice", 1)
        await env.register(alice)
        again = make_party("alice", 2)
        response = await env.call(again, "POST", "/v1/accounts", json_body=registration(again))
        assert response.status_code == 409
        assert response.json()["error"] == "exists"


async def test_registration_needs_both_keys() -> None:
    async with server_env() as env:
        alice = make_party("alice", 1)
        body = registration(alice)

        # The device list signed by another key than the account key it names: 400 invalid.
        intruder = AccountIdentity.generate(b"x", DeterministicRng(9))
        unsigned = DeviceList(
            alice.account, alice.identity.public_key.raw, 1, (alice.device.entry(),)
        )
        signature = intruder.key.sign(SignedDeviceList(unsigned, bytes(64)).signed_part())
        body_forged = dict(body)
        body_forged["signed_device_list"] = b64(SignedDeviceList(unsigned, signature).encode())
        response = await env.call(alice, "POST", "/v1/accounts", json_body=body_forged)
        assert response.status_code == 400
        assert response.json()["error"] == "invalid"

        # The request signed by a device that is not the listed one: refused.
        mallory = make_party("alice", 7)
        response = await env.call(mallory, "POST", "/v1/accounts", json_body=body)
        assert response.status_code in (400, 401)
        # Same address, wrong key: the request signature does not verify.
        response = await env.call(
            mallory,
            "POST",
            "/v1/accounts",
            json_body=registration(alice) | {"prekeys": prekey_upload(alice.device)},
        )
        assert response.status_code == 401
        assert response.json()["error"] == "unauthenticated"

        # Two devices in a new account's list: 400 invalid.
        second = alice.sibling(2, 3)
        two = dict(body)
        two["signed_device_list"] = b64(
            alice.signed_list([alice.device, second.device], 1).encode()
        )
        response = await env.call(alice, "POST", "/v1/accounts", json_body=two)
        assert response.status_code == 400
        assert response.json()["error"] == "invalid"

        # No signed prekey: 400 invalid.
        bare = dict(body)
        bare["prekeys"] = {}
        response = await env.call(alice, "POST", "/v1/accounts", json_body=bare)
        assert response.status_code == 400

        # Account id in the body differs from the list's.
        other = dict(body)
        other["account"] = b64(b"bob")
        response = await env.call(alice, "POST", "/v1/accounts", json_body=other)
        assert response.status_code == 400
        assert response.json()["error"] == "invalid"

        # Nothing of it was stored.
        assert (await env.http.get(f"/v1/accounts/{alice.b64}")).status_code == 404
        await env.register(alice)


async def test_account_record_errors() -> None:
    async with server_env() as env:
        response = await env.http.get(f"/v1/accounts/{b64(b'nobody')}")
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"
        response = await env.http.get("/v1/accounts/YWxpY2U=")
        assert response.status_code == 400
        assert response.json()["error"] == "malformed"
        response = await env.http.get("/v1/accounts/YR")  # nonzero trailing bits
        assert response.status_code == 400


async def _setup_linked(env: Env) -> tuple[Party, Party]:
    alice = make_party("alice", 1)
    await env.register(alice)
    phone = alice.sibling(2, 11)
    await env.link(alice, phone)
    return alice, phone


async def test_link_a_device_then_remove_it() -> None:
    async with server_env() as env:
        alice, phone = await _setup_linked(env)
        record = (await env.http.get(f"/v1/accounts/{alice.b64}")).json()
        assert record["serial"] == 2
        assert record["devices"] == [1, 2]
        # The new device authenticates and has its prekeys.
        stock = await env.call(phone, "GET", "/v1/devices/self/prekeys")
        assert stock.status_code == 200
        assert stock.json()["one_time"] == 10

        # Mail waiting for the phone, to see it dropped.
        bob = make_party("bob", 2)
        await env.register(bob)
        await env.storage.mailboxes.enqueue(
            [NewMail(alice.account, 2, bob.account, 1, b"x")],
            1,
            lambda i, m: b"t",
        )

        body = {
            "signed_device_list": b64(alice.signed_list([alice.device], 3).encode()),
            "expected_serial": 2,
        }
        response = await env.call(alice, "PUT", f"/v1/accounts/{alice.b64}/devices", json_body=body)
        assert response.status_code == 200
        assert response.json() == {"serial": 3}

        # The removed device no longer authenticates.
        response = await env.call(phone, "GET", "/v1/devices/self/prekeys")
        assert response.status_code == 401

        await env.app.state.background.wait()
        for kind in OneTimeKind:
            assert await env.storage.prekeys.count_one_time(alice.account, 2, kind) == 0
        assert await env.storage.mailboxes.depth(alice.account, 2) == 0
        # The remaining device keeps its prekeys.
        assert await env.storage.prekeys.count_one_time(alice.account, 1, OneTimeKind.X25519) == 10


async def test_device_list_compare_and_swap() -> None:
    async with server_env() as env:
        alice, _ = await _setup_linked(env)
        laptop = alice.sibling(3, 12)
        devices = [*alice.devices, laptop.device]

        stale = {
            "signed_device_list": b64(alice.signed_list(devices, 3).encode()),
            "expected_serial": 1,
        }
        response = await env.call(
            alice, "PUT", f"/v1/accounts/{alice.b64}/devices", json_body=stale
        )
        assert response.status_code == 409
        assert response.json()["error"] == "stale_serial"

        same_serial = {
            "signed_device_list": b64(alice.signed_list(devices, 2).encode()),
            "expected_serial": 2,
        }
        response = await env.call(
            alice, "PUT", f"/v1/accounts/{alice.b64}/devices", json_body=same_serial
        )
        assert response.status_code == 409
        assert response.json()["error"] == "stale_serial"

        # Signed by another account key.
        other = AccountIdentity(
            alice.account, AccountIdentity.generate(b"z", DeterministicRng(5)).key
        )
        forged = {
            "signed_device_list": b64(
                other.sign_device_list(3, [d.entry() for d in devices]).encode()
            ),
            "expected_serial": 2,
        }
        response = await env.call(
            alice, "PUT", f"/v1/accounts/{alice.b64}/devices", json_body=forged
        )
        assert response.status_code == 400
        assert response.json()["error"] == "invalid"

        # An empty list is refused.
        empty = {"signed_device_list": b64(alice.signed_list([], 3).encode()), "expected_serial": 2}
        response = await env.call(
            alice, "PUT", f"/v1/accounts/{alice.b64}/devices", json_body=empty
        )
        assert response.status_code == 400

        # Another account's device may not change it.
        bob = make_party("bob", 2)
        await env.register(bob)
        ok = {
            "signed_device_list": b64(alice.signed_list(devices, 3).encode()),
            "expected_serial": 2,
        }
        response = await env.call(bob, "PUT", f"/v1/accounts/{alice.b64}/devices", json_body=ok)
        assert response.status_code == 403
        assert response.json()["error"] == "forbidden"

        # A device id relisted with other keys is refused.
        impostor = alice.sibling(2, 99)
        swapped = {
            "signed_device_list": b64(
                alice.signed_list([alice.device, impostor.device], 3).encode()
            ),
            "expected_serial": 2,
        }
        response = await env.call(
            alice, "PUT", f"/v1/accounts/{alice.b64}/devices", json_body=swapped
        )
        assert response.status_code == 400

        response = await env.call(alice, "PUT", f"/v1/accounts/{alice.b64}/devices", json_body=ok)
        assert response.status_code == 200
        assert response.json() == {"serial": 3}
