"""``make demo``: a user reports an abusive message, a lead escalates it, the CyberTipline
stand-in accepts it — in plain words.

:func:`safety_walkthrough` runs against a relay server already running at ``server_url`` (as
its own process, with the report routes mounted) whose data directory is ``server_data_dir``
(``server.db`` and ``franking.key``). The user side goes through the client library over HTTP;
the moderator side uses the console's service layer directly on the server's database (what
the web console at ``/console`` calls), with a CyberTipline stand-in in this process — nothing
leaves the machine.

This module is a demo: it prints, and it creates a throwaway moderator in the server's database.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx

from overt.client import Client
from overt.client.errors import ServerRefused
from overt.client.reports import report
from overt.console.service import (
    ConsoleService,
    EscalationSettings,
    Moderator,
    Role,
    create_moderator,
)
from overt.crypto import SystemRng
from overt.crypto.passwords import SCRYPT_MIN_LOG_N
from overt.errors import LocalError
from overt.safety.cybertip import (
    ContactPerson,
    CyberTipCredentials,
    IncidentType,
    ProviderProfile,
    validate_xml,
)
from overt.safety.cybertip_standin import CyberTipStandin
from overt.safety.submission import DirectorySubmissionStore
from overt.storage import open_sqlite
from overt.storage.moderation import ItemState

_ABUSE = "you said you're 13? send me a photo tonight and don't tell your parents"
_DEMO_PROVIDER = ProviderProfile(
    reporting_person=ContactPerson("safety@overt.invalid", "Demo", "Safety Team"),
    service_name="Overt (demo)",
)


def _wall_clock() -> int:
    return time.time_ns() // 1_000_000


async def safety_walkthrough(
    server_url: str,
    work_dir: Path,
    sender: Client,
    reporter: Client,
    *,
    server_data_dir: Path | None = None,
    say: Callable[[str], None] = print,
) -> None:
    """``sender`` sends ``reporter`` an abusive message; ``reporter`` reports it; a lead
    escalates it to a local CyberTipline stand-in. Both clients must be registered with the
    server at ``server_url``; ``server_data_dir`` defaults to ``work_dir / "server"``."""
    data_dir = server_data_dir or work_dir / "server"
    say("\n== Safety without reading messages: a report, verified, reviewed, escalated ==")
    sender_name, reporter_name = sender.account_name, reporter.account_name
    if sender_name is None or reporter_name is None:
        raise LocalError("both demo clients need an account")
    await sender.send(reporter_name, _ABUSE)
    received = [m for m in await reporter.sync() if m.sender == sender_name]
    say(f"{sender_name} sent {reporter_name} a message the server could not read; "
        f"{reporter_name}'s phone shows: {received[-1].text!r}")  # fmt: skip
    report_id = await report(
        reporter, sender_name, [received[-1].message_id], category="child_safety",
        comment="an adult asking me for photos",
    )  # fmt: skip
    say(f"{reporter_name} tapped 'report': the phone revealed that one message (its text, "
        "its franking key, the server's delivery tag), nothing else of the chat")  # fmt: skip
    say(f"the server checked the sender's commitment and its own tag, kept the evidence for a "
        f"year and queued it as child safety (report {report_id})")  # fmt: skip
    try:
        await report(reporter, sender_name, [received[-1].message_id], category="spam")
    except ServerRefused as exc:
        say(f"reporting the same message twice is refused ({exc.status} {exc.code})")

    storage = await open_sqlite(data_dir / "server.db")
    standin = CyberTipStandin(username="overt-demo", password="demo only")  # noqa: S106
    try:
        rng = SystemRng()
        lead = Moderator(f"demo-lead-{rng.random_bytes(3).hex()}", Role.LEAD)
        assert storage.moderators is not None and storage.reports is not None
        await create_moderator(
            storage.moderators, storage.reports, lead.name, Role.LEAD,
            rng.random_bytes(16).hex(), rng=rng, now=_wall_clock(), log_n=SCRYPT_MIN_LOG_N,
        )  # fmt: skip
        console = ConsoleService(
            franking_key=(data_dir / "franking.key").read_bytes(),
            reports=storage.reports, standing=storage.standing, moderators=storage.moderators,
            escalation=EscalationSettings(
                base_url="http://cybertip.invalid/ispws",
                credentials=CyberTipCredentials("overt-demo", "demo only"),
                provider=_DEMO_PROVIDER,
                submissions=DirectorySubmissionStore(work_dir / "cybertip"),
                transport=httpx.ASGITransport(app=standin.app),
            ),
            clock=_wall_clock, rng=rng,
        )  # fmt: skip
        queue = await console.queue()
        item = next(i for i in queue if i.label == "child_safety" and i.state is ItemState.OPEN)
        view = await console.view(lead, item.id)
        say(f"lead {lead.name} opens the moderation queue: {len(queue)} item(s), most severe "
            f"first; the report shows {len(view.messages)} message, re-verified: "
            f"{view.messages[0].text!r}")  # fmt: skip
        state = await console.escalate(
            lead, item.id, incident_type=IncidentType.ONLINE_ENTICEMENT,
            notes="An adult account asks a child for photos and secrecy.",
        )  # fmt: skip
        assert state.report_id is not None
        submitted = standin.reports[state.report_id]
        validate_xml(submitted.document, "report", "the escalated report")
        done = "finished" if submitted.finished else "still open"
        say(f"the lead escalated it: a CyberTipline report (incident: online enticement) was "
            f"built, checked against the schema and submitted; the local stand-in accepted it "
            f"as report {state.report_id}, {done}")  # fmt: skip
        say("every step — who viewed the evidence, who escalated — is in the audit trail, and "
            "the provider never saw the rest of the conversation")  # fmt: skip
    finally:
        await storage.close()


__all__ = ["safety_walkthrough"]
