"""Prekey upload (signatures checked), stock, and bundles that hand out one-time prekeys once."""

from __future__ import annotations

import asyncio
from pathlib import Path

from server_kit import b64, make_device, make_party, prekey_upload, server_env, unb64

from overt.crypto import DeterministicRng
from overt.protocol import verify_bundle, verify_device_list
from overt.protocol.identity import make_kem_prekey, make_signed_prekey
from overt.storage import StorageLimits, open_sqlite
from overt.wire import PreKeyBundle, SignedDeviceList


async def test_upload_and_stock() -> None:
    async with server_env() as env:
        alice = make_party("alice", 1)
        await env.register(alice)
        otks, kems = alice.device.add_one_time_prekeys(5, 3)
        body = {
            "one_time": [b64(p.encode()) for p in otks],
            "kem_one_time": [b64(k.encode()) for k in kems],
        }
        response = await env.call(alice, "PUT", "/v1/devices/self/prekeys", json_body=body)
        assert response.status_code == 200
        assert response.json() == {"one_time": 15, "kem_one_time": 13}

        # Replacing the signed and last-resort prekeys alone is fine too.
        alice.device.rotate_signed_prekey()
        response = await env.call(
            alice,
            "PUT",
            "/v1/devices/self/prekeys",
            json_body=prekey_upload(alice.device, one_time=False),
        )
        assert response.status_code == 200

        # Uploading the same one-time ids again: 409 exists.
        response = await env.call(alice, "PUT", "/v1/devices/self/prekeys", json_body=body)
        assert response.status_code == 409
        assert response.json()["error"] == "exists"


async def test_prekey_signatures_are_checked() -> None:
    async with server_env() as env:
        alice = make_party("alice", 1)
        await env.register(alice)
        stranger = make_device(b"alice", 1, 77)
        _, foreign_spk = make_signed_prekey(stranger.identity, 500, DeterministicRng(1))
        response = await env.call(
            alice,
            "PUT",
            "/v1/devices/self/prekeys",
            json_body={"signed_prekey": b64(foreign_spk.encode())},
        )
        assert response.status_code == 400
        assert response.json()["error"] == "invalid"

        _, foreign_kem = make_kem_prekey(
            stranger.identity, 501, DeterministicRng(2), last_resort=False
        )
        response = await env.call(
            alice,
            "PUT",
            "/v1/devices/self/prekeys",
            json_body={"kem_one_time": [b64(foreign_kem.encode())]},
        )
        assert response.status_code == 400

        # A correctly signed KEM prekey with the wrong last-resort flag.
        _, own_kem = make_kem_prekey(
            alice.device.identity, 502, DeterministicRng(3), last_resort=True
        )
        response = await env.call(
            alice,
            "PUT",
            "/v1/devices/self/prekeys",
            json_body={"kem_one_time": [b64(own_kem.encode())]},
        )
        assert response.status_code == 400

        # Not a prekey encoding at all.
        response = await env.call(
            alice, "PUT", "/v1/devices/self/prekeys", json_body={"signed_prekey": b64(b"\x00" * 10)}
        )
        assert response.status_code == 400
        assert response.json()["error"] == "malformed"

        stock = await env.call(alice, "GET", "/v1/devices/self/prekeys")
        assert stock.json()["kem_one_time"] == 10


async def test_bundles_hand_out_one_time_prekeys_once_then_fall_back() -> None:
    async with server_env() as env:
        bob = make_party("bob", 2, one_time=2)
        await env.register(bob)
        alice = make_party("alice", 1)
        await env.register(alice)

        seen_otk: list[int] = []
        seen_kem: list[int] = []
        for _ in range(3):
            response = await env.call(alice, "GET", f"/v1/accounts/{bob.b64}/bundles")
            assert response.status_code == 200
            body = response.json()
            assert body["serial"] == 1
            dl = verify_device_list(
                SignedDeviceList.decode(unb64(body["signed_device_list"])),
                bob.identity.public_key.raw,
            )
            (raw,) = body["bundles"]
            bundle = PreKeyBundle.decode(unb64(raw))
            verify_bundle(bundle, dl.devices[0])
            if bundle.one_time_prekey is not None:
                seen_otk.append(bundle.one_time_prekey.id)
            if not bundle.kem_prekey.last_resort:
                seen_kem.append(bundle.kem_prekey.id)
            else:
                assert bundle.kem_prekey.id == bob.device.prekeys.last_resort_kem
        assert sorted(seen_otk) == sorted(bob.device.prekeys.one_time)
        assert len(seen_kem) == 2
        assert len(set(seen_kem)) == 2

        stock = await env.call(bob, "GET", "/v1/devices/self/prekeys")
        assert stock.json() == {"one_time": 0, "kem_one_time": 0, "low": True}

        # One device of several, and errors.
        response = await env.call(alice, "GET", f"/v1/accounts/{bob.b64}/bundles?device=1")
        assert response.status_code == 200
        assert len(response.json()["bundles"]) == 1
        response = await env.call(alice, "GET", f"/v1/accounts/{bob.b64}/bundles?device=5")
        assert response.status_code == 404
        response = await env.call(alice, "GET", f"/v1/accounts/{b64(b'nobody')}/bundles")
        assert response.status_code == 404
        response = await env.call(alice, "GET", f"/v1/accounts/{bob.b64}/bundles?device=-1")
        assert response.status_code == 400
        assert response.json()["error"] == "malformed"
        # Unsigned: 401.
        response = await env.call(None, "GET", f"/v1/accounts/{bob.b64}/bundles")
        assert response.status_code == 401


async def test_concurrent_bundle_fetches_never_share_a_one_time_prekey(tmp_path: Path) -> None:
    storage = await open_sqlite(tmp_path / "server.db", limits=StorageLimits())
    async with server_env(storage) as env:
        bob = make_party("bob", 2, one_time=10)
        await env.register(bob)
        fetchers = [make_party(f"user{i}", 100 + i, one_time=0) for i in range(3)]
        for party in fetchers:
            await env.register(party)

        responses = await asyncio.gather(
            *(
                env.call(fetchers[i % 3], "GET", f"/v1/accounts/{bob.b64}/bundles")
                for i in range(30)
            )
        )
        assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
        bundles = [PreKeyBundle.decode(unb64(r.json()["bundles"][0])) for r in responses]
        otks = [b.one_time_prekey.id for b in bundles if b.one_time_prekey is not None]
        kems = [b.kem_prekey.id for b in bundles if not b.kem_prekey.last_resort]
        assert len(otks) == 10
        assert len(set(otks)) == 10
        assert set(otks) == set(bob.device.prekeys.one_time)
        assert len(kems) == 10
        assert len(set(kems)) == 10
        last_resort = [b for b in bundles if b.kem_prekey.last_resort]
        assert len(last_resort) == 20
        assert {b.kem_prekey.id for b in last_resort} == {bob.device.prekeys.last_resort_kem}
