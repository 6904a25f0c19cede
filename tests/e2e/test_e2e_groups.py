"""Groups end to end against a real server process on loopback (SQLite): signed requests over
HTTP, a group created and changed, one group message fanned out, the server SIGKILLed and
restarted on the same data directory, every member reading the message and one reporting it.

The members are ``overt.protocol`` devices driven by hand (the route-level helpers of
``tests/server``), so this checks the server's side of the group API as a client sees it on
the wire.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from overt import launch
from overt.devservices import free_port
from overt.safety import Report, ReportedMessage
from overt.wire.group_messages import MembershipUpdate

# The route-level helpers of tests/server (a directory of plain modules, not a package).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from group_kit import Members, members_of, new_group, text_body
from server_kit import Party, b64, encode_json, make_party, registration, unb64

pytestmark = pytest.mark.slow


class Wire:
    """Signed requests to a real server, timestamps from the wall clock (never repeated)."""

    def __init__(self, url: str) -> None:
        self.http = httpx.AsyncClient(base_url=url, timeout=30)
        self._last = 0

    def _timestamp(self) -> int:
        self._last = max(self._last + 1, time.time_ns() // 1_000_000)
        return self._last

    async def call(self, party: Party, method: str, target: str, body: Any = None) -> Any:
        raw = b"" if body is None else encode_json(body)
        headers = party.headers(method, target, raw, self._timestamp())
        if body is not None:
            headers["Content-Type"] = "application/json"
        return await self.http.request(method, target, content=raw, headers=headers)


async def test_a_group_conversation_over_a_real_server(tmp_path: Path) -> None:
    data, port = tmp_path / "server", free_port()
    srv = launch.server(data, port)
    url = srv.start()
    wire = Wire(url)
    try:
        alice, bob, carol = (make_party(n, i + 1) for i, n in enumerate(("alice", "bob", "carol")))
        for p in (alice, bob, carol):
            response = await wire.call(p, "POST", "/v1/accounts", registration(p))
            assert response.status_code == 201, response.text
            p.devices = [p.device]
        group = new_group(alice, members_of(alice, bob))
        path = f"/v1/groups/{b64(group.id)}"
        response = await wire.call(alice, "PUT", path, {"membership": b64(group.update.encode())})
        assert response.status_code == 200, response.text
        added = group.next(members_of(alice, bob, carol))
        response = await wire.call(alice, "PUT", path, {"membership": b64(added.encode())})
        assert response.status_code == 200, response.text
        crew = Members(group.update, {alice.account: alice.identity.public_key}, [alice, bob])
        crew.apply(added, joining=[carol])
        message = crew.encrypt(alice.address, "to the group", 1)
        response = await wire.call(
            alice, "POST", f"{path}/messages", {"message": b64(message.encode())}
        )
        assert response.status_code == 200, response.text
        sent = response.json()
        assert sent["recipients"] == [f"{bob.b64}.1", f"{carol.b64}.1"]

        srv.kill()  # acknowledged to the sender: it must survive a crash
        srv = launch.server(data, port)
        srv.start()

        mails = {}
        for p in (bob, carol):
            response = await wire.call(p, "GET", "/v1/messages")
            (mail,) = response.json()["messages"]
            assert mail["kind"] == "group"
            assert mail["id"] == sent["ids"][[bob, carol].index(p)]
            body, fk = crew.decrypt(p.address, unb64(mail["envelope"]))
            assert body == text_body("to the group")
            mails[p.b64] = (mail, body, fk)
        response = await wire.call(carol, "GET", path)
        view = response.json()
        assert [MembershipUpdate.decode(unb64(u)) for u in view["updates"]] == [
            group.update,
            added,
        ]

        mail, body, fk = mails[carol.b64]
        reported = ReportedMessage.from_group_delivery(
            unb64(mail["envelope"]), recipient=carol.address, franking_key=fk, body=body,
            server_id=mail["id"], server_time_ms=mail["server_time"],
            reporting_tag=unb64(mail["reporting_tag"]),
        )  # fmt: skip
        report = {"category": "spam", "report": Report(carol.address, (reported,)).to_json()}
        response = await wire.call(carol, "POST", "/v1/reports", report)
        assert response.status_code == 201, response.text
        # bob cannot present carol's delivery as his own
        stolen = Report(bob.address, (ReportedMessage.from_group_delivery(
            unb64(mail["envelope"]), recipient=bob.address, franking_key=fk, body=body,
            server_id=mail["id"], server_time_ms=mail["server_time"],
            reporting_tag=unb64(mail["reporting_tag"]),
        ),))  # fmt: skip
        response = await wire.call(bob, "POST", "/v1/reports",
                                   {"category": "spam", "report": stolen.to_json()})  # fmt: skip
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_report"
    finally:
        await wire.http.aclose()
        srv.stop()
