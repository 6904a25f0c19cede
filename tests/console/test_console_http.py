"""The console over HTTP (in-process) and its service: sign-in, sessions and CSRF, roles, the
compare-and-set of actions, escalation through the CyberTipline stand-in (including an outage
and its resumption), and the audit trail."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from console.kit import FRANKING_KEY, PASSWORD, Deployment, call, deployment, register
from overt.console.service import (
    ConsoleError,
    ItemChanged,
    Moderator,
    NotAllowed,
    Role,
)
from overt.safety import CyberTipUnavailable
from overt.safety.cybertip import IncidentType
from overt.storage.moderation import ItemState
from overt.wire import Address
from safety.support import World, report

MIA = Moderator("mia", Role.MODERATOR)
LEE = Moderator("lee", Role.LEAD)


@pytest.fixture
async def d(tmp_path: Path) -> AsyncIterator[Deployment]:
    async with deployment(tmp_path) as dep:
        await dep.moderator("mia", Role.MODERATOR)
        await dep.moderator("lee", Role.LEAD)
        yield dep


async def reported(d: Deployment, *texts: str, category: str = "child_safety") -> list[int]:
    """One report per text, alice → bob; the queue item ids."""
    w = World.make(seed=len(texts))
    w.server_key = FRANKING_KEY
    if d.storage.accounts is not None and await d.storage.accounts.get(b"bob") is None:
        await register(d, [w.bob], 2)
    ids = []
    for text in texts:
        rep = report(w.bob, w.text(w.alice, w.bob, text))
        body = {"category": category, "report": rep.to_json()}
        response = await call(d, w.bob, "POST", "/v1/reports", body)
        assert response.status_code == 201, response.text
    assert d.storage.reports is not None
    for item in await d.storage.reports.queue({ItemState.OPEN}, 100):
        ids.append(item.id)
    return ids


async def login(d: Deployment, name: str, password: str = PASSWORD) -> str:
    """Sign in over HTTP; the CSRF token of the session (the client keeps the cookie)."""
    form = await d.http.get("/console/login")
    token = re.search(r'name="token" value="([^"]+)"', form.text)
    assert token is not None
    answer = await d.http.post(
        "/console/login", data={"token": token.group(1), "name": name, "password": password}
    )
    if answer.status_code != 303:
        return ""
    page = await d.http.get("/console/queue")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    return csrf.group(1)


async def test_sign_in_sessions_and_headers(d: Deployment) -> None:
    first = await d.http.get("/console/queue")
    assert (first.status_code, first.headers["location"]) == (303, "/console/login")
    assert await login(d, "mia", "wrong password") == ""
    csrf = await login(d, "mia")
    page = await d.http.get("/console/queue")
    assert page.status_code == 200 and "mia (moderator)" in page.text
    for header in ("content-security-policy", "x-frame-options", "x-content-type-options"):
        assert header in page.headers
    assert "script-src" not in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    cookie = next(c for c in d.http.cookies.jar if c.name == "overt_console")
    assert cookie.path == "/console" and cookie.has_nonstandard_attr("HttpOnly")
    # A tampered cookie is no session.
    d.http.cookies.set("overt_console", cookie.value[:-2] + "AA", path="/console")
    assert (await d.http.get("/console/queue")).status_code == 303
    d.http.cookies.set("overt_console", cookie.value, path="/console")
    # Log out: the same cookie no longer works.
    out = await d.http.post("/console/logout", data={"csrf": csrf})
    assert out.status_code == 303
    d.http.cookies.set("overt_console", cookie.value, path="/console")
    assert (await d.http.get("/console/queue")).status_code == 303


async def test_failed_logins_are_throttled(d: Deployment) -> None:
    for _ in range(5):
        assert await login(d, "mia", "not it") == ""
    assert await login(d, "mia") == ""  # right password, refused while throttled
    d.clock.advance(15 * 60 * 1000 + 1)
    assert await login(d, "mia") != ""
    assert await login(d, "nobody") == ""


async def test_every_post_needs_the_sessions_csrf_token(d: Deployment) -> None:
    (item,) = await reported(d, "bad")
    await login(d, "mia")
    for data in ({"notes": "x"}, {"csrf": "forged"}, {"csrf": ""}):
        answer = await d.http.post(f"/console/items/{item}/dismiss", data=data)
        assert answer.status_code == 400 and "form expired" in answer.text
    assert d.storage.reports is not None
    current = await d.storage.reports.item(item)
    assert current is not None and current.state is ItemState.OPEN
    # A login form without its pre-login cookie is refused as well.
    d.http.cookies.clear()
    answer = await d.http.post(
        "/console/login", data={"token": "x", "name": "mia", "password": PASSWORD}
    )
    assert answer.status_code == 400


async def test_queue_order_and_actions_over_http(d: Deployment) -> None:
    await reported(d, "spam text", category="spam")
    await reported(d, "a threat", category="violence")
    csrf = await login(d, "mia")
    page = (await d.http.get("/console/queue")).text
    assert "a threat" not in page  # the queue shows no content
    order = [int(i) for i in re.findall(r'id="item-(\d+)"', page)]
    assert d.storage.reports is not None
    items = {i: await d.storage.reports.item(i) for i in order}
    assert [items[i].label for i in order] == ["violence", "spam"]  # type: ignore[union-attr]
    answer = await d.http.post(
        f"/console/items/{order[1]}/dismiss", data={"csrf": csrf, "notes": "just spam"}
    )
    assert (answer.status_code, answer.headers["location"]) == (303, "/console/queue?done=dismiss")
    assert "Dismissed." in (await d.http.get(answer.headers["location"])).text
    audit = (await d.http.get("/console/audit")).text
    assert "dismiss" in audit and "just spam" in audit and "login" in audit


async def test_roles_and_races(d: Deployment) -> None:
    first, second = await reported(d, "one", "two")
    with pytest.raises(NotAllowed):
        await d.console.escalate(
            MIA, first, incident_type=IncidentType.ONLINE_ENTICEMENT, notes="x"
        )
    await d.console.propose(MIA, first, "looks like enticement")
    with pytest.raises(NotAllowed):  # waits for a lead now
        await d.console.dismiss(MIA, first)
    with pytest.raises(NotAllowed):
        await d.console.decline(MIA, first)
    await d.console.decline(LEE, first, "not enough")
    await d.console.dismiss(MIA, first)
    with pytest.raises(ItemChanged):
        await d.console.warn(MIA, first)
    with pytest.raises(NotAllowed):
        await d.console.lift(MIA, b"alice")
    with pytest.raises(ConsoleError):
        await d.console.escalate(
            LEE, second, incident_type=IncidentType.ONLINE_ENTICEMENT, notes="   "
        )
    assert d.storage.reports is not None
    trail = [e.action for e in await d.storage.reports.audit(item_id=first, limit=20)]
    assert trail == ["dismiss", "decline_escalation", "propose_escalation"]


async def test_escalation_reaches_the_standin_and_survives_an_outage(d: Deployment) -> None:
    (item,) = await reported(d, "meet me alone, don't tell your parents")
    d.standin.fail_next(5)  # every attempt of the first run fails
    with pytest.raises(CyberTipUnavailable):
        await d.console.escalate(
            LEE, item, incident_type=IncidentType.ONLINE_ENTICEMENT, notes="enticement of a minor"
        )
    assert d.storage.reports is not None
    still = await d.storage.reports.item(item)
    assert still is not None and still.state is ItemState.OPEN
    state = await d.console.escalate(
        LEE, item, incident_type=IncidentType.ONLINE_ENTICEMENT, notes="enticement of a minor"
    )
    assert state.report_id is not None and state.submit_requests == 6
    submitted = d.standin.reports[state.report_id]
    assert submitted.finished and len(d.standin.reports) == 1
    assert b"meet me alone" in submitted.document and b"enticement of a minor" in submitted.document
    assert b"<espIdentifier>YWxpY2U</espIdentifier>" in submitted.document  # alice, base64url
    closed = await d.storage.reports.item(item)
    assert closed is not None and (closed.state, closed.resolution) == (
        ItemState.CLOSED,
        "escalate",
    )
    actions = [e.action for e in await d.storage.reports.audit(item_id=item, limit=10)]
    assert actions == ["escalate", "escalation_failed"]


async def test_signal_items_have_no_evidence(d: Deployment) -> None:
    for i in range(20):
        await d.signals.observe_send(
            Address(b"mallory", 1), {f"u{i:02d}".encode(): [1]}, [700], d.clock() + i
        )
    assert d.storage.reports is not None
    items = await d.storage.reports.queue({ItemState.OPEN}, 10)
    assert items
    view = await d.console.view(MIA, items[0].id)
    assert view.messages == () and view.signal
    with pytest.raises(ConsoleError):
        await d.console.propose(MIA, items[0].id)
    await d.console.suspend(MIA, items[0].id, "bulk messaging")
    standing = await d.storage.standing.get(b"mallory")  # type: ignore[union-attr]
    assert standing is not None and standing.suspended
