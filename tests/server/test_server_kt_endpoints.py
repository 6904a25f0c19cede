"""The log's public endpoints: their answers verify, and every way to ask wrongly is a 4xx
(``400 malformed`` for a query that does not parse, ``404`` for a position or range the
published tree does not have, with ``Retry-After`` when it is only not published yet)."""

from __future__ import annotations

import pytest
from server_kit import b64, make_party, unb64
from test_server_kt_support import KtEnv, kt_env

from overt.server.limits import INT64_MAX, LOG_ENTRIES_PAGE_MAX, LOG_POSITION_DIGITS
from overt.transparency.checkpoint import Checkpoint, verify_checkpoint
from overt.transparency.entries import KeyDirectoryUpdate
from overt.transparency.log import ENTRIES_PAGE_MAX
from overt.transparency.merkle import hash_leaf, verify_consistency, verify_inclusion
from overt.transparency.note import Note


async def get(env: KtEnv, target: str) -> tuple[int, dict[str, str], object]:
    response = await env.call(None, "GET", target)
    if response.headers.get("content-type", "").startswith("application/json"):
        return response.status_code, dict(response.headers), response.json()
    return response.status_code, dict(response.headers), response.text


async def published_env(env: KtEnv, accounts: int = 3, first: int = 0) -> int:
    for i in range(first, first + accounts):
        await env.register(make_party(f"user{i}", 10 + i))
    published = await env.checkpointer.run_once()
    assert published is not None
    return published.size


LARGEST = 10**LOG_POSITION_DIGITS - 1


def root_of(env: KtEnv) -> bytes:
    published = env.checkpointer.published
    assert published is not None
    return Checkpoint.from_text(published.note.text).root_hash


async def test_nothing_is_served_before_the_first_checkpoint() -> None:
    async with kt_env() as env:
        await env.register(make_party("alice", 1))
        for target in (
            "/v1/log/checkpoint",
            "/v1/log/entries?start=0&end=1",
            "/v1/log/inclusion?index=0&size=1",
            "/v1/log/consistency?from=1&to=1",
        ):
            status, headers, body = await get(env, target)
            assert status == 404, target
            assert body == {"error": "not_found", "message": body["message"]}  # type: ignore[index]
            assert headers["retry-after"] == "1"
        status, _, body = await get(env, "/v1/manifest")
        assert status == 200  # the manifest is entry 0 from the start


async def test_checkpoints() -> None:
    async with kt_env() as env:
        size = await published_env(env)
        status, headers, text = await get(env, "/v1/log/checkpoint")
        assert status == 200 and headers["content-type"] == "text/plain; charset=utf-8"
        assert isinstance(text, str)
        note = Note.from_bytes(text.encode())
        verified = verify_checkpoint(note, env.log.verifier_key)
        assert verified.checkpoint.size == size
        assert (await get(env, f"/v1/log/checkpoint?size={size}"))[2] == text
        status = (await get(env, f"/v1/log/checkpoint?size={size - 1}"))[0]
        assert status == 404  # never signed at that size
        assert (await get(env, f"/v1/log/checkpoint?size={LARGEST}"))[0] == 404


async def test_entries_are_paged_and_bounded_by_the_published_tree() -> None:
    async with kt_env() as env:
        size = await published_env(env)
        status, _, body = await get(env, f"/v1/log/entries?start=1&end={size}")
        assert status == 200
        found = [unb64(e) for e in body["entries"]]  # type: ignore[index]
        assert found == await env.log.entries(1, size)
        assert (await get(env, f"/v1/log/entries?start={size}&end={size}"))[2] == {"entries": []}
        status, headers, _ = await get(env, f"/v1/log/entries?start=0&end={size + 1}")
        assert status == 404 and headers["retry-after"] == "1"
        status, headers, _ = await get(env, "/v1/log/entries?start=3&end=2")
        assert status == 404 and "retry-after" not in headers

        # A long range is cut at the page bound.
        label = bytes(32)
        filler = [
            KeyDirectoryUpdate(label, bytes(32), i, bytes(32), bytes(32)) for i in range(1100)
        ]
        await env.log.append_batch(filler)
        published = await env.checkpointer.run_once()
        assert published is not None
        total = published.size
        status, _, body = await get(env, f"/v1/log/entries?start=0&end={total}")
        assert status == 200 and len(body["entries"]) == LOG_ENTRIES_PAGE_MAX  # type: ignore[index]
        assert LOG_ENTRIES_PAGE_MAX <= ENTRIES_PAGE_MAX


async def test_proofs_verify_against_published_roots() -> None:
    async with kt_env() as env:
        first = await published_env(env, accounts=2)
        first_root = root_of(env)
        size = await published_env(env, accounts=3, first=2)
        root = root_of(env)
        entries = await env.log.entries(0, size)
        for index in (0, 1, size - 1):
            status, _, body = await get(env, f"/v1/log/inclusion?index={index}&size={size}")
            assert status == 200
            proof = [unb64(h) for h in body["proof"]]  # type: ignore[index]
            verify_inclusion(hash_leaf(entries[index]), index, size, proof, root)
        status, _, body = await get(env, f"/v1/log/consistency?from={first}&to={size}")
        assert status == 200
        proof = [unb64(h) for h in body["proof"]]  # type: ignore[index]
        verify_consistency(first, size, proof, first_root, root)
        assert (await get(env, f"/v1/log/consistency?from={size}&to={size}"))[2] == {"proof": []}

        for target, retry in (
            (f"/v1/log/inclusion?index={size}&size={size}", False),
            (f"/v1/log/inclusion?index=0&size={size + 1}", True),
            (f"/v1/log/consistency?from={size}&to={first}", False),
            (f"/v1/log/consistency?from=1&to={size + 1}", True),
            (f"/v1/log/consistency?from=1&to={LARGEST}", True),
        ):
            status, headers, body = await get(env, target)
            assert status == 404, target
            assert ("retry-after" in headers) is retry, target


@pytest.mark.parametrize(
    "target",
    [
        "/v1/manifest?x=1",
        "/v1/log/checkpoint?size=0",
        "/v1/log/checkpoint?size=abc",
        "/v1/log/checkpoint?size=01",
        "/v1/log/checkpoint?size=%2B1",
        "/v1/log/checkpoint?size=%201",
        "/v1/log/checkpoint?size=1_0",
        "/v1/log/checkpoint?size=1.0",
        "/v1/log/checkpoint?size=-1",
        "/v1/log/checkpoint?size=",
        f"/v1/log/checkpoint?size={INT64_MAX + 1}",
        f"/v1/log/checkpoint?size={LARGEST + 1}",
        "/v1/log/checkpoint?size=1000.0",
        "/v1/log/checkpoint?size=99999999999999999999999",
        "/v1/log/checkpoint?size=1&size=1",
        "/v1/log/checkpoint?sizes=1",
        "/v1/log/entries",
        "/v1/log/entries?start=0",
        "/v1/log/entries?end=1",
        "/v1/log/entries?start=0&end=1&extra=2",
        "/v1/log/entries?start=00&end=1",
        "/v1/log/entries?start=0&end=1&end=2",
        "/v1/log/inclusion?index=0",
        "/v1/log/inclusion?index=0&size=0",
        "/v1/log/inclusion?index=-1&size=1",
        "/v1/log/consistency?from=0&to=1",
        "/v1/log/consistency?to=1",
        "/v1/log/consistency?from=1&to=1&from=1",
        "/v1/kt/YWxpY2U=",  # padded
        "/v1/kt/YWxpY2V",  # non-zero trailing bits
        "/v1/kt/a+b",
        "/v1/kt/" + "A" * 90,  # longer than an account id
        "/v1/kt/" + b64(b"alice") + "?x=1",
    ],
)
async def test_malformed_requests_are_400(target: str) -> None:
    async with kt_env() as env:
        await published_env(env, accounts=1)
        status, _, body = await get(env, target)
        assert status == 400, (target, body)
        assert body["error"] == "malformed", body  # type: ignore[index]


async def test_other_methods_and_paths() -> None:
    async with kt_env() as env:
        for method, target in (
            ("POST", "/v1/log/checkpoint"),
            ("DELETE", "/v1/manifest"),
            ("PUT", "/v1/kt/YWxpY2U"),
            ("POST", "/log"),
        ):
            response = await env.call(None, method, target)
            assert response.status_code == 405, target
        assert (await env.call(None, "GET", "/v1/log")).status_code == 404
        paths = (await env.call(None, "GET", "/openapi.json")).json()["paths"]
        for path in (
            "/v1/manifest",
            "/v1/log/checkpoint",
            "/v1/log/entries",
            "/v1/log/inclusion",
            "/v1/log/consistency",
            "/v1/kt/{account}",
            "/log",
        ):
            assert "get" in paths[path], path


async def test_odd_queries_never_cause_a_server_error() -> None:
    async with kt_env() as env:
        size = await published_env(env, accounts=1)
        values = ["", "0", "1", str(size), str(INT64_MAX), "18446744073709551616", "x", "%00",
                  "1e3", "٣", "-0", "0x1", " ", "%ff"]  # fmt: skip
        for path, (a, b) in (
            ("/v1/log/entries", ("start", "end")),
            ("/v1/log/inclusion", ("index", "size")),
            ("/v1/log/consistency", ("from", "to")),
        ):
            for x in values:
                for y in values:
                    response = await env.call(None, "GET", f"{path}?{a}={x}&{b}={y}")
                    assert 200 <= response.status_code < 500, (path, x, y, response.text)
