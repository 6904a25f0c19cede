"""Reports that reveal group messages: version 2 of the report encoding, the JSON view, and
verification for the member the message was delivered to only."""

from __future__ import annotations

import dataclasses

import pytest

from overt.crypto import DeterministicRng
from overt.errors import DecodeError
from overt.protocol import AccountIdentity, franking
from overt.protocol.groups import (
    create_group,
    create_sender_key,
    group_decrypt,
    group_encrypt,
    join_group,
    process_distribution,
)
from overt.safety import InvalidReportedMessage, Report, ReportedMessage, verify_report
from overt.safety.body import BodyKind, MessageBody
from overt.wire import Address
from overt.wire.group_messages import GroupMessage

from .support import NOW_MS, SENT_MS, SERVER_KEY, World

ALICE = Address(b"alice", 1)
BOB = Address(b"bob", 1)
CAROL = Address(b"carol", 1)


def group_message(text: str = "hi all") -> tuple[GroupMessage, bytes, bytes]:
    """A group message from alice to bob and carol, and the body and franking key bob
    decrypts it to."""
    rng = DeterministicRng(b"group report")
    alice = AccountIdentity.generate(b"alice", rng)
    members = {b"alice": [1], b"bob": [1], b"carol": [1]}
    state, update = create_group(alice, ALICE, b"g", members, rng)
    key, dist = create_sender_key(state, rng)
    body = MessageBody(BodyKind.TEXT, b"g", text).encode()
    msg, _ = group_encrypt(state, key, body, SENT_MS, rng, None)
    bob = join_group(BOB, update, {b"alice": alice.public_key})
    bob = process_distribution(bob, ALICE, dist)
    received, _ = group_decrypt(bob, msg.encode(), None)
    assert received.body == body
    return msg, body, received.franking_key


def delivered(
    msg: GroupMessage, body: bytes, fk: bytes, to: Address, server_id: int = 7
) -> ReportedMessage:
    """The reported form of ``msg`` as the relay delivered it to ``to``."""
    tag = franking.reporting_tag(
        SERVER_KEY, msg.franking_commitment, msg.sender, to, server_id, SENT_MS + 5
    )
    return ReportedMessage.from_group_delivery(
        msg.encode(), recipient=to, franking_key=fk, body=body, server_id=server_id,
        server_time_ms=SENT_MS + 5, reporting_tag=tag,
    )  # fmt: skip


def verify(rep: Report, reporter: Address) -> None:
    verify_report(rep, SERVER_KEY, reporter_address=reporter, now_ms=NOW_MS, seen=())


def test_a_group_message_report_is_version_2_and_round_trips() -> None:
    msg, body, fk = group_message()
    one = delivered(msg, body, fk, BOB)
    assert (one.sender, one.conversation_id, one.message_id) == (
        msg.sender, msg.group_id, msg.message_id,
    )  # fmt: skip
    world = World.make()
    direct = world.text(world.alice, world.bob, "direct")
    rep = Report(world.bob.address, (direct,))
    assert rep.encode()[0] == 1  # no group message: version 1, bytes as before
    assert Report.from_json(rep.to_json()) == rep
    group_rep = Report(BOB, (one,))
    data = group_rep.encode()
    assert data[0] == 2
    assert Report.decode(data) == group_rep
    assert Report.from_json(group_rep.to_json()) == group_rep
    assert group_rep.to_json()["version"] == 2
    verify(group_rep, BOB)


def test_mixed_reports_round_trip() -> None:
    msg, body, fk = group_message()
    world = World.make()
    direct = world.text(world.alice, world.bob, "direct")
    group_to_bob = dataclasses.replace(delivered(msg, body, fk, world.bob.address))
    rep = Report(world.bob.address, (direct, group_to_bob), comment="both")
    assert Report.decode(rep.encode()) == rep
    assert Report.from_json(rep.to_json()) == rep


def test_versions_match_their_content() -> None:
    msg, body, fk = group_message()
    group_json = Report(BOB, (delivered(msg, body, fk, BOB),)).to_json()
    group_json["version"] = 1
    with pytest.raises(DecodeError):
        Report.from_json(group_json)
    world = World.make()
    direct_json = Report(world.bob.address, (world.text(world.alice, world.bob, "x"),)).to_json()
    direct_json["version"] = 2
    with pytest.raises(DecodeError):
        Report.from_json(direct_json)
    # version 2 bytes holding only envelope messages are not canonical
    direct = Report(world.bob.address, (world.text(world.alice, world.bob, "x"),)).encode()
    reporter_end = 1 + len(world.bob.address.account) + 1 + 4
    comment_end = reporter_end + 2
    forged = b"\x02" + direct[1:comment_end] + direct[comment_end : comment_end + 1] + b"\x01"
    forged += direct[comment_end + 1 :]
    with pytest.raises(DecodeError, match="only for reports with group messages"):
        Report.decode(forged)


def test_another_members_tag_does_not_verify() -> None:
    msg, body, fk = group_message()
    to_bob = delivered(msg, body, fk, BOB)
    verify(Report(BOB, (to_bob,)), BOB)
    # carol claims bob's delivery as hers: the tag names bob's device
    stolen = dataclasses.replace(to_bob, recipient=CAROL)
    with pytest.raises(InvalidReportedMessage):
        verify(Report(CAROL, (stolen,)), CAROL)
    # her own delivery verifies
    verify(Report(CAROL, (delivered(msg, body, fk, CAROL, server_id=8),)), CAROL)


@pytest.mark.parametrize(
    "change",
    [
        {"sender": Address(b"alice", 2)},
        {"timestamp_ms": SENT_MS + 1},
        {"message_id": b"\x00" * 16},
        {"group_id": b"\x05" * 32},
        {"franking_commitment": b"\x06" * 32},
    ],
)
def test_the_fields_the_commitment_covers_are_bound(change: dict[str, object]) -> None:
    msg, body, fk = group_message()
    good = delivered(msg, body, fk, BOB)
    altered = dataclasses.replace(msg, header_cache=None, **change)  # type: ignore[arg-type]
    forged = ReportedMessage.from_group_delivery(
        altered.encode(), recipient=BOB, franking_key=fk, body=body, server_id=good.server_id,
        server_time_ms=good.server_time_ms, reporting_tag=good.reporting_tag,
    )  # fmt: skip
    with pytest.raises(InvalidReportedMessage):
        verify(Report(BOB, (forged,)), BOB)


def test_bytes_that_are_not_a_group_message_are_refused() -> None:
    msg, body, fk = group_message()
    good = delivered(msg, body, fk, BOB).to_json()
    good["group_message"] = good["group_message"][:-4]  # type: ignore[index]
    rep = Report(BOB, (delivered(msg, body, fk, BOB),)).to_json()
    rep["messages"] = [good]
    with pytest.raises(DecodeError):
        Report.from_json(rep)
