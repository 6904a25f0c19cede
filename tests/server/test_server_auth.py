"""Signed requests: every way a signature can be missing, wrong, late or replayed is a 401;
going too fast is a 429."""

from __future__ import annotations

import pytest
from server_kit import encode_json, make_party, registration, server_env, signed_headers

from overt.server import ServerLimits
from overt.server.auth import ReplayCache
from overt.server.errors import RateLimited, Unauthenticated

TARGET = "/v1/devices/self/prekeys"


async def test_signature_failures_are_401() -> None:
    async with server_env() as env:
        alice = make_party("alice", 1)
        await env.register(alice)
        now = env.clock.now

        async def status(headers: dict[str, str], target: str = TARGET) -> tuple[int, str]:
            response = await env.http.get(target, headers=headers)
            return response.status_code, response.json().get("error", "")

        # Missing headers, all or one.
        assert await status({}) == (401, "unauthenticated")
        good = signed_headers(alice.device, "GET", TARGET, b"", now + 1)
        for name in good:
            partial = {k: v for k, v in good.items() if k != name}
            assert await status(partial) == (401, "unauthenticated")

        # Malformed headers.
        for name, value in (
            ("X-Overt-Device", "not-an-address"),
            ("X-Overt-Device", f"{alice.b64}:01"),
            ("X-Overt-Device", f"{alice.b64}:99999999999"),
            ("X-Overt-Timestamp", "-5"),
            ("X-Overt-Timestamp", "1e3"),
            ("X-Overt-Signature", "!!!"),
            ("X-Overt-Signature", "A" * 300),
        ):
            assert await status({**good, name: value}) == (401, "unauthenticated"), (name, value)

        # Expired and too far in the future.
        assert await status(signed_headers(alice.device, "GET", TARGET, b"", now - 301_000)) == (
            401,
            "unauthenticated",
        )
        assert await status(signed_headers(alice.device, "GET", TARGET, b"", now + 301_000)) == (
            401,
            "unauthenticated",
        )
        # Inside the window either way: fine.
        assert (await status(signed_headers(alice.device, "GET", TARGET, b"", now - 299_000)))[
            0
        ] == 200

        # Forged: signed by another key under alice's address.
        mallory = make_party("alice", 66)
        assert await status(signed_headers(mallory.device, "GET", TARGET, b"", now + 2)) == (
            401,
            "unauthenticated",
        )
        # Unknown device of a known account; unknown account.
        stranger = alice.sibling(9, 67)
        assert (await status(signed_headers(stranger.device, "GET", TARGET, b"", now + 3)))[
            0
        ] == 401
        nobody = make_party("nobody", 68)
        assert (await status(signed_headers(nobody.device, "GET", TARGET, b"", now + 4)))[0] == 401

        # Signed for another target, method or body.
        other = signed_headers(alice.device, "GET", "/v1/messages", b"", now + 5)
        assert (await status(other))[0] == 401
        posted = signed_headers(alice.device, "POST", TARGET, b"", now + 6)
        assert (await status(posted))[0] == 401
        body_sig = signed_headers(alice.device, "PUT", TARGET, b'{"one_time":[]}', now + 7)
        response = await env.http.put(TARGET, headers=body_sig, content=b'{"one_time": []}')
        assert response.status_code == 401
        # The query string is covered too.
        fetch = signed_headers(alice.device, "GET", "/v1/messages?limit=5", b"", now + 8)
        assert (await status(fetch, "/v1/messages?limit=6"))[0] == 401
        assert (await status(fetch, "/v1/messages?limit=5"))[0] == 200


async def test_a_replayed_request_is_refused() -> None:
    async with server_env() as env:
        alice = make_party("alice", 1)
        await env.register(alice)
        headers = signed_headers(alice.device, "GET", TARGET, b"", env.clock.advance())
        assert (await env.http.get(TARGET, headers=headers)).status_code == 200
        replay = await env.http.get(TARGET, headers=headers)
        assert replay.status_code == 401
        assert "already seen" in replay.json()["message"]
        # Still refused later inside the window, and after it by the window check.
        env.clock.advance(200_000)
        assert (await env.http.get(TARGET, headers=headers)).status_code == 401
        env.clock.advance(200_000)
        assert (await env.http.get(TARGET, headers=headers)).status_code == 401


async def test_a_registration_cannot_be_replayed() -> None:
    async with server_env() as env:
        alice = make_party("alice", 1)
        body = encode_json(registration(alice))
        headers = signed_headers(alice.device, "POST", "/v1/accounts", body, env.clock.advance())
        first = await env.http.post("/v1/accounts", headers=headers, content=body)
        assert first.status_code == 201
        second = await env.http.post("/v1/accounts", headers=headers, content=body)
        assert second.status_code == 401
        assert "already seen" in second.json()["message"]


async def test_rate_limit_per_device() -> None:
    limits = ServerLimits(rate_burst=3, rate_per_second=1.0)
    async with server_env(limits=limits) as env:
        alice, bob = make_party("alice", 1), make_party("bob", 2)
        await env.register(alice)
        await env.register(bob)
        codes = [(await env.call(alice, "GET", TARGET)).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        limited = await env.call(alice, "GET", TARGET)
        assert limited.json()["error"] == "rate_limited"
        assert int(limited.headers["Retry-After"]) >= 1
        # Another device is not affected; time refills the bucket.
        assert (await env.call(bob, "GET", TARGET)).status_code == 200
        env.clock.advance(2_000)
        assert (await env.call(alice, "GET", TARGET)).status_code == 200


def test_replay_cache_is_bounded_and_fails_closed() -> None:
    cache = ReplayCache(max_entries=2, window_ms=1000)
    cache.add(b"a", timestamp_ms=0, now_ms=0)
    cache.add(b"b", timestamp_ms=0, now_ms=0)
    with pytest.raises(Unauthenticated):
        cache.add(b"a", timestamp_ms=0, now_ms=10)
    with pytest.raises(RateLimited) as full:
        cache.add(b"c", timestamp_ms=0, now_ms=10)
    assert full.value.retry_after >= 1
    # Once the first entries expire, room is made again.
    cache.add(b"c", timestamp_ms=1500, now_ms=1500)
    assert len(cache) == 1


async def test_full_replay_cache_answers_429() -> None:
    async with server_env(limits=ServerLimits(replay_cache=1)) as env:
        alice = make_party("alice", 1)
        await env.register(alice)  # uses the one entry
        response = await env.call(alice, "GET", TARGET)
        assert response.status_code == 429
        assert response.json()["error"] == "rate_limited"
        env.clock.advance(301_000)
        assert (await env.call(alice, "GET", TARGET)).status_code == 200
