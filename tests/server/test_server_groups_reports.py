"""Reports of group messages: a member reports what it received, with the GroupMessage, the
mail record and the opening it decrypted; the report verifies for that member only."""

from __future__ import annotations

from typing import Any

from group_kit import Members, members_of, new_group, put_ok, send
from server_kit import Env, Party, make_party, server_env, unb64

from overt.safety import Report, ReportedMessage
from overt.wire import Address


async def report(env: Env, reporter: Party, messages: list[ReportedMessage]) -> Any:
    body = {"category": "harassment", "report": Report(reporter.address, tuple(messages)).to_json()}
    return await env.call(reporter, "POST", "/v1/reports", json_body=body)


async def delivered(env: Env, crew: Members, party: Party) -> tuple[dict[str, Any], bytes, bytes]:
    """The one mail ``party`` has, and the body and franking key it decrypts to."""
    response = await env.call(party, "GET", "/v1/messages")
    (mail,) = response.json()["messages"]
    assert mail["kind"] == "group"
    body, fk = crew.decrypt(party.address, unb64(mail["envelope"]))
    return mail, body, fk


def reported(mail: dict[str, Any], body: bytes, fk: bytes, recipient: Address) -> ReportedMessage:
    return ReportedMessage.from_group_delivery(
        unb64(mail["envelope"]),
        recipient=recipient,
        franking_key=fk,
        body=body,
        server_id=mail["id"],
        server_time_ms=mail["server_time"],
        reporting_tag=unb64(mail["reporting_tag"]),
    )


async def test_a_group_report_verifies_for_its_recipient_only() -> None:
    async with server_env() as env:
        alice, bob, carol = (make_party(n, i + 1) for i, n in enumerate(("alice", "bob", "carol")))
        for p in (alice, bob, carol):
            await env.register(p)
        group = new_group(alice, members_of(alice, bob, carol))
        await put_ok(env, alice, group.update)
        crew = Members(group.update, {alice.account: alice.identity.public_key},
                       [alice, bob, carol])  # fmt: skip
        message = crew.encrypt(alice.address, "abuse", env.clock.now)
        assert (await send(env, alice, group.id, message.encode())).status_code == 200
        bob_mail, body, fk = await delivered(env, crew, bob)
        carol_mail, carol_body, carol_fk = await delivered(env, crew, carol)
        assert bob_mail["reporting_tag"] != carol_mail["reporting_tag"]

        # carol presents bob's delivery as her own: the tag names bob's device
        stolen = reported(bob_mail, body, fk, carol.address)
        response = await report(env, carol, [stolen])
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "invalid_report"
        # ... or honestly labelled as bob's: it did not reach her account
        response = await report(env, carol, [reported(bob_mail, body, fk, bob.address)])
        assert response.status_code == 400
        assert response.json()["error"] == "refused"
        # an altered body does not open the commitment
        response = await report(env, bob, [reported(bob_mail, body + b"!", fk, bob.address)])
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_report"

        # bob's own report verifies, once
        mine = reported(bob_mail, body, fk, bob.address)
        response = await report(env, bob, [mine])
        assert response.status_code == 201, response.text
        assert response.json()["messages"] == 1
        again = await report(env, bob, [mine])
        assert again.status_code == 409
        assert again.json()["error"] == "already_reported"
        # carol may report the same message with her own delivery
        response = await report(env, carol, [reported(carol_mail, carol_body, carol_fk,
                                                      carol.address)])  # fmt: skip
        assert response.status_code == 201, response.text
