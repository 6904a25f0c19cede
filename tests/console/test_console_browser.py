"""The moderation console in a real browser: Debian's chromium driven by Playwright, against
the relay served by uvicorn on loopback (in a background thread) with the console mounted at
``/console`` and the CyberTipline stand-in behind it.

A moderator signs in, works the queue (severity first), opens a report, downloads its revealed
attachment, warns, dismisses, suspends and proposes an escalation; a lead signs in and
escalates; the stand-in accepts a report that validates against the XSD, with the file; the
audit trail shows who did what. Without chromium (or the playwright package) the test is
skipped, unless ``OVERT_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from console.kit import FRANKING_KEY, PASSWORD, TEST_LOG_N, build_app, standin_settings
from overt.console.service import Role, create_moderator
from overt.crypto import DeterministicRng
from overt.safety.cybertip import validate_xml
from overt.safety.cybertip_standin import CyberTipStandin
from overt.server.reports import Category, ReportService
from overt.storage import Storage, open_sqlite
from overt.storage.moderation import ItemState
from safety.support import World, report

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
#: How long the browser waits for one page or element (not a timing assertion: a bound).
PAGE_TIMEOUT_MS = 15_000
SERVER_START_TIMEOUT_S = 20.0

PICTURE = b"\x89PNG pretend this is the reported picture" * 50


def _need_browser() -> Any:
    required = os.environ.get("OVERT_REQUIRE_SERVICES") == "1"
    try:
        from playwright.sync_api import sync_playwright  # noqa: PLC0415
    except ImportError:
        if required:
            pytest.fail("the playwright package is missing (pip install playwright)")
        pytest.skip("the playwright package is not installed")
    if shutil.which(CHROMIUM) is None:
        if required:
            pytest.fail(f"{CHROMIUM} is missing (apt-get install -y chromium)")
        pytest.skip(f"{CHROMIUM} is not installed")
    return sync_playwright


def wall_clock() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class Served:
    url: str
    storage: Storage
    standin: CyberTipStandin
    items: dict[str, int]


async def _seed(storage: Storage) -> dict[str, int]:
    """Moderators, and one verified report per category (through the intake service)."""
    assert storage.moderators is not None and storage.reports is not None
    for name, role in (("mia", Role.MODERATOR), ("lee", Role.LEAD)):
        await create_moderator(
            storage.moderators, storage.reports, name, role, PASSWORD,
            rng=DeterministicRng(name), now=wall_clock(), log_n=TEST_LOG_N,
        )  # fmt: skip
    w = World.make(seed=7)
    w.server_key = FRANKING_KEY
    intake = ReportService(FRANKING_KEY, storage.reports, wall_clock)
    picture = w.attachment(w.alice, w.bob, PICTURE, file_name="picture.png", reveal="ciphertext")
    cases = {
        Category.CHILD_SAFETY: [w.text(w.alice, w.bob, "send me a photo, don't tell anyone"),
                                picture],
        Category.VIOLENCE: [w.text(w.alice, w.bob, "I know where you live")],
        Category.HARASSMENT: [w.text(w.alice, w.bob, "you are worthless")],
        Category.SPAM: [w.text(w.alice, w.bob, "cheap watches")],
    }  # fmt: skip
    items = {}
    for category, messages in cases.items():
        rep = dataclasses.replace(report(w.bob, *messages), comment=f"{category.value} report")
        await intake.submit(w.bob.address, category, rep)
    for item in await storage.reports.queue({ItemState.OPEN}, 10):
        items[item.label] = item.id
    return items


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    storage = asyncio.run(open_sqlite(tmp_path / "server.db"))
    standin = CyberTipStandin(username="overt-test", password="stand-in password")
    server: uvicorn.Server | None = None
    thread: threading.Thread | None = None
    try:
        items = asyncio.run(_seed(storage))
        app, _, _, _ = build_app(storage, wall_clock, escalation=standin_settings(standin))
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
        )
        thread = threading.Thread(target=server.run, name="console-uvicorn", daemon=True)
        thread.start()
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield Served(f"http://127.0.0.1:{port}", storage, standin, items)
    finally:
        if server is not None:
            server.should_exit = True
        if thread is not None:
            thread.join(SERVER_START_TIMEOUT_S)
        asyncio.run(storage.close())


def test_a_moderator_and_a_lead_work_the_queue_in_chromium(served: Served) -> None:
    sync_playwright = _need_browser()
    base = f"{served.url}/console"
    items = served.items
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(accept_downloads=True)
            page = context.new_page()
            page.set_default_timeout(PAGE_TIMEOUT_MS)

            def sign_in(name: str) -> None:
                page.goto(f"{base}/")
                assert page.url.endswith("/console/login")
                page.fill("#name", name)
                page.fill("#password", PASSWORD)
                page.click("text=Sign in")
                page.wait_for_url(f"{base}/queue")

            def act(item: int, button: str, notes: str) -> None:
                page.goto(f"{base}/items/{item}")
                form = page.locator("form", has=page.locator(f"button:text-is('{button}')"))
                form.locator("textarea[name=notes]").fill(notes)
                form.locator("button").click()
                page.wait_for_selector("#notice")

            # ---------------------------------------------------------------- a moderator
            sign_in("mia")
            assert page.inner_text("#who") == "mia (moderator)"
            cookie = next(c for c in context.cookies() if c["name"] == "overt_console")
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
            rows = page.locator("tbody tr")
            labels = [rows.nth(i).locator("td").nth(3).inner_text() for i in range(rows.count())]
            assert labels == ["child_safety", "violence", "harassment", "spam"]

            page.click(f"#item-{items['child_safety']} a")
            assert "send me a photo, don't tell anyone" in page.inner_text("#message-1")
            assert page.inner_text("#comment") == "child_safety report"
            with page.expect_download() as download:
                page.click("#download-2")
            assert Path(download.value.path()).read_bytes() == PICTURE
            assert download.value.suggested_filename == "picture.png"
            assert page.locator("text=Escalate to the CyberTipline").count() == 0  # leads only
            act(items["child_safety"], "Propose escalation to a lead", "grooming, escalate")

            act(items["harassment"], "Warn the account", "insults")
            assert page.inner_text("#notice") == "The account was warned."
            act(items["spam"], "Dismiss", "not worth it")
            act(items["violence"], "Suspend the account", "threat of violence")
            # A POST without the form's CSRF token changes nothing.
            forged = page.request.post(
                f"{base}/items/{items['child_safety']}/decline", form={"notes": "x"}
            )
            assert forged.status == 400
            page.click("text=Log out")
            page.wait_for_url(f"{base}/login")

            # ---------------------------------------------------------------- a lead
            sign_in("lee")
            assert page.locator("tbody tr").count() == 1  # the proposal waits for a lead
            page.goto(f"{base}/items/{items['child_safety']}")
            form = page.locator("form", has=page.locator("text=Escalate to the CyberTipline"))
            form.locator("select[name=incident_type]").select_option(
                "Online Enticement of Children for Sexual Act"
            )
            form.locator("textarea[name=notes]").fill("adult asks a child for a photo in secret")
            form.locator("button").click()
            page.wait_for_selector("#notice")
            assert page.inner_text("#notice") == "Escalated: the CyberTipline accepted the report."
            assert "CyberTipline report 1000" in page.inner_text("#audit")

            page.click("text=Audit trail")
            trail = page.inner_text("#audit")
            actions = [a.inner_text() for a in page.locator("td.action").all()]
            for expected in ("login", "view", "download", "propose_escalation", "warn",
                             "dismiss", "suspend", "logout", "escalate"):  # fmt: skip
                assert expected in actions, expected
            assert "mia" in trail and "lee" in trail
        finally:
            browser.close()

    # The stand-in holds one finished report that validates, with the revealed file.
    (submitted,) = served.standin.reports.values()
    assert submitted.finished and not submitted.retracted
    parsed = validate_xml(submitted.document, "report", "the submitted report")
    assert "incidentSummary" in parsed
    assert b"send me a photo" in submitted.document
    (uploaded,) = submitted.files.values()
    assert uploaded.content == PICTURE and uploaded.details is not None
    standing = asyncio.run(_standing(served.storage))
    assert standing == (1, True)  # alice: warned once, then suspended


async def _standing(storage: Storage) -> tuple[int, bool]:
    assert storage.standing is not None
    st = await storage.standing.get(b"alice")
    assert st is not None
    return st.warnings, st.suspended
