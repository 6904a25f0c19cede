"""The public log explorer (``GET /log``) in a real browser: Debian's Chromium driven by
Playwright, with JavaScript turned off, against the real application served by uvicorn on
loopback with two in-process witnesses.

Needs ``/usr/bin/chromium`` (``apt-get install chromium``) and the ``playwright`` package (not
its downloaded browsers). Without them the browser test is skipped, or fails when
``OVERT_REQUIRE_SERVICES=1`` (CI). The page's content rules are also checked without a browser.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from server_kit import make_party
from test_server_kt_support import DEPLOYMENT_NAME, KtEnv, kt_env

from overt.server.explorer import CheckpointView, EntryRow, ExplorerPage, render
from overt.server.limits import EXPLORER_RECENT_ENTRIES
from overt.transparency.manifest import describe_policy

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
HANG_S = 30


def _browser_or_skip() -> Any:
    """Playwright's async API, or a skip (a failure when services are required)."""
    problem = None
    if not CHROMIUM.exists():
        problem = f"{CHROMIUM} is missing (apt-get install chromium)"
    else:
        try:
            from playwright import async_api  # noqa: PLC0415
        except ImportError:
            problem = "the playwright package is not installed (pip install playwright)"
        else:
            return async_api
    if os.environ.get("OVERT_REQUIRE_SERVICES") == "1":
        pytest.fail(f"OVERT_REQUIRE_SERVICES=1 but {problem}")
    pytest.skip(problem)


@asynccontextmanager
async def served(env: KtEnv) -> AsyncIterator[str]:
    """The application on a loopback port (no lifespan: rounds are run by the test)."""
    server = uvicorn.Server(
        uvicorn.Config(env.app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    )
    task = asyncio.ensure_future(server.serve())
    try:
        async with asyncio.timeout(HANG_S):
            while not server.started:
                await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def test_the_explorer_in_a_real_browser(tmp_path: Path) -> None:
    async_api = _browser_or_skip()
    async with kt_env(witnesses=2, quorum=2) as env:
        zelda = make_party("zelda", 7)
        await env.register(zelda)
        await env.link(zelda, zelda.sibling(2, 8))
        await env.register(make_party("yusuf", 9))
        published = await env.checkpointer.run_once()
        assert published is not None and published.size == 4
        manifest, _ = await env.manifest()

        async with served(env) as url, async_api.async_playwright() as pw:
            context = await pw.chromium.launch_persistent_context(
                str(tmp_path / "profile"),
                executable_path=str(CHROMIUM),
                headless=True,
                args=CHROMIUM_ARGS,
                java_script_enabled=False,
            )
            try:
                page = await context.new_page()
                response = await page.goto(f"{url}/log")
                assert response is not None and response.status == 200
                assert await page.title() == f"Transparency log — {DEPLOYMENT_NAME}"
                assert await page.locator("#policy").inner_text() == describe_policy(manifest)
                assert await page.locator("#checkpoint-size").inner_text() == "4"
                assert await page.locator("#origin").inner_text() == manifest.log.origin
                assert await page.locator("#vkey").inner_text() == manifest.log.vkey.to_text()
                cosigners = await page.locator("#checkpoint-cosigners li").all_inner_texts()
                assert sorted(cosigners) == ["Witness 0", "Witness 1"]
                assert "2 of 2 must cosign" in await page.locator("#witnesses").inner_text()
                counts = {
                    kind: await page.locator(f'#counts td[data-type="{kind}"]').inner_text()
                    for kind in ("manifest", "key directory update", "warrant commitment")
                }
                assert counts == {
                    "manifest": "1",
                    "key directory update": "3",
                    "warrant commitment": "0",
                }
                rows = await page.locator("#recent tbody tr").all_inner_texts()
                assert len(rows) == 4 and rows[0].startswith("3") and "label" in rows[0]
                assert rows[-1].split()[:2] == ["0", "manifest"]
                text = await page.locator("body").inner_text()
                html = await page.content()
                for secret in ("zelda", "yusuf", zelda.b64):
                    assert secret not in text and secret not in html
                assert await page.locator("script").count() == 0

                # The link leads to the raw checkpoint the page describes.
                await page.locator("#raw-checkpoint").click()
                await page.wait_for_url(f"{url}/v1/log/checkpoint")
                raw = await page.locator("body").inner_text()
                assert raw.strip() == published.note.to_bytes().decode().strip()
            finally:
                await context.close()


async def test_the_page_is_strict_about_what_it_shows() -> None:
    async with kt_env() as env:
        response = await env.call(None, "GET", "/log")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert "script-src" not in response.headers["content-security-policy"]
        assert response.headers["content-security-policy"].startswith("default-src 'none'")
        assert "No checkpoint has been published yet." in response.text
        for i in range(EXPLORER_RECENT_ENTRIES + 2):
            await env.register(make_party(f"user{i}", 100 + i))
        await env.checkpointer.run_once()
        page = (await env.call(None, "GET", "/log")).text
        assert page.count('<tr><td class="n">') == EXPLORER_RECENT_ENTRIES
        assert "user" not in page.replace("users", "")
        assert "none: checkpoints are signed by the log alone" in page


def test_every_value_is_escaped() -> None:
    page = ExplorerPage(
        deployment="<script>alert(1)</script>",
        policy="a & b",
        safety="<b>",
        manifest_version=1,
        manifest_index=0,
        origin='o"rigin',
        vkey="k<",
        witnesses=("<w>",),
        quorum=1,
        checkpoint=CheckpointView(3, bytes(32), 1_750_000_000, ("<i>",)),
        counts=(("<t>", 1),),
        recent=(EntryRow(0, "<k>", "<d>"),),
    )
    html = render(page)
    assert "<script>" not in html and "&lt;script&gt;" in html
    for raw in ("<w>", "<i>", "<t>", "<k>", "<d>", "<b>", 'o"rigin', "k<"):
        assert raw not in html
    assert "2025-06-15 15:06:40 UTC" in html


async def test_the_explorer_is_reachable_over_http_without_a_browser() -> None:
    async with kt_env() as env, served(env) as url, httpx.AsyncClient() as http:
        response = await http.get(f"{url}/log", timeout=HANG_S)
        assert response.status_code == 200 and "<title>" in response.text
