"""Lawful access, client side: the notice a target gets when a warrant naming it is unsealed.

Against the real relay with access policy ``escrow`` (escrow_support): the provider serves a
warrant (its commitment logged), custodians log receipts, and at the notification date the
provider logs the unsealing; the target's monitoring finds it and shows a notice — not before,
not to anyone else. A forged unsealing (an opening that does not open the logged commitment,
or one for a warrant never committed) shows nothing and raises an alarm; an unsealing the
server serves but never logged does not get past the log's root.
"""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import given
from hypothesis import strategies as st

from overt.access.audit import WarrantTally
from overt.access.warrant import new_targets_salt, target_list
from overt.client import AlarmKind, BadResponse, Notice
from overt.client._b64 import b64d, b64e
from overt.client.notices import decode_receipts, encode_receipts, messages_bound
from overt.crypto import DeterministicRng
from overt.transparency.entries import WarrantUnsealing, decode_entry

from .escrow_support import EscrowWorld, escrow_world
from .support import Call, json_response

__all__ = ["escrow_world"]

DAY = 86_400


async def test_the_target_is_told_after_unsealing_and_only_then(
    escrow_world: EscrowWorld,
) -> None:
    w = escrow_world
    alice = await w.user("alice", "alice")
    bob = await w.user("bob", "bob")
    warrant = await w.serve([b"alice"], seal_days=7)
    for custodian in (1, 2, 3, 4):
        await w.receipt(warrant, custodian, 2)
    await w.receipt(warrant, 5, 1)
    await alice.check_log()
    assert alice.notices() == []  # sealed: the log shows a warrant, not whom it names

    await w.lawful.unseal_due(warrant.sealed_until)
    await w.receipt(warrant, 1, 3)  # a receipt after the unsealing still counts
    assert await alice.check_log() == []  # a notice, not an alarm
    (notice,) = alice.notices()
    assert isinstance(notice, Notice) and notice.new
    assert notice.warrant_id == warrant.warrant_id
    assert notice.court == "District Court"
    (task,) = warrant.tasks
    assert notice.windows == ((task.timespan.start, task.timespan.end),)
    assert notice.content and notice.sealed_until == warrant.sealed_until
    assert notice.custodians_released == 5
    assert notice.messages_accessed == 2  # the 3rd largest of 5, 2, 2, 2, 1
    text = notice.describe()
    assert "District Court" in text and "at most 2 of your messages" in text
    assert notice.unsealing_index > notice.commitment_index

    assert await bob.check_log() == [] and bob.notices() == []  # not a target
    assert alice.notices(new_only=True) == [notice]
    assert alice.mark_notices_shown() == 1
    assert alice.notices(new_only=True) == []
    (listed,) = alice.notices()
    assert not listed.new and listed.shown_at_ms == w.clock.now_ms()


async def test_a_notice_survives_a_restart_and_is_found_by_sync(
    escrow_world: EscrowWorld,
) -> None:
    w = escrow_world
    alice = await w.user("alice", "alice")
    warrant = await w.serve([b"alice", b"carol"])
    await alice.check_log()
    await w.lawful.unseal_due(warrant.sealed_until)
    w.clock.advance(3600 * 1000)  # sync monitors by itself when the last check is old
    await alice.sync()
    (notice,) = alice.notices()
    assert notice.messages_accessed == 0
    assert "no message was decrypted" in notice.describe()
    await alice.close()
    w.clients.remove(alice)
    again = await w.client("alice")
    assert [n.warrant_id for n in again.notices(new_only=True)] == [warrant.warrant_id]


async def test_a_forged_unsealing_shows_nothing_and_raises_an_alarm(
    escrow_world: EscrowWorld,
) -> None:
    w = escrow_world
    alice = await w.user("alice", "alice")
    warrant = await w.serve([b"bob"])
    # The provider claims the warrant named alice: an opening that is not the committed one.
    forged_tasks = target_list(
        type(warrant)(
            warrant.warrant_id, warrant.authorisation,
            (type(warrant.tasks[0])("TASK-1", (b"alice",), warrant.tasks[0].timespan,
                                    warrant.tasks[0].delivery),),
            warrant.sealed_until, warrant.max_messages, warrant.targets_salt,
        )
    )  # fmt: skip
    wrong = await w.append(
        WarrantUnsealing(warrant.warrant_id, new_targets_salt(DeterministicRng("s")) + forged_tasks)
    )
    never = await w.append(
        WarrantUnsealing(b"\x07" * 32, new_targets_salt(DeterministicRng("t")) + forged_tasks)
    )
    alarms = await alice.check_log()
    assert alice.notices() == []
    assert {(a.kind, a.entry_index) for a in alarms} == {
        (AlarmKind.INVALID_UNSEALING, wrong),
        (AlarmKind.INVALID_UNSEALING, never),
    }
    # the real unsealing (naming bob) later tells alice nothing and raises nothing
    await w.lawful.unseal_due(warrant.sealed_until)
    assert await alice.check_log() == [] and alice.notices() == []


async def test_an_unsealing_the_server_shows_but_never_logged_is_not_believed(
    escrow_world: EscrowWorld,
) -> None:
    w = escrow_world
    net = w.interposer()
    alice = await w.user("alice", "alice", net)
    warrant = await w.serve([b"bobby"])
    await w.lawful.unseal_due(warrant.sealed_until)

    async def rewrite(call: Call) -> object:
        """Serve the unsealing with alice as its target instead of bobby."""
        if not call.target.startswith("/v1/log/entries"):
            return None
        answer = await call.proceed()
        entries = []
        for served in answer.json()["entries"]:  # type: ignore[index]
            entry = decode_entry(b64d(served, "entry"))
            if isinstance(entry, WarrantUnsealing):
                opening = entry.opening.replace(b"bobby", b"alice")
                entries.append(b64e(WarrantUnsealing(entry.warrant_id, opening).encode()))
            else:
                entries.append(served)
        return json_response({"entries": entries})

    net.hooks.append(rewrite)
    with pytest.raises(BadResponse):
        await alice.check_log()
    assert alice.notices() == []
    assert [a.kind for a in alice.alarms()] == [AlarmKind.INVALID_LOG]


async def test_warrants_are_tracked_only_while_sealed(escrow_world: EscrowWorld) -> None:
    w = escrow_world
    alice = await w.user("alice", "alice")
    first = await w.serve([b"bob"])
    second = await w.serve([b"carol"])
    await alice.check_log()
    assert [t.warrant_id for t in alice._store.access_warrants()] == [
        first.warrant_id,
        second.warrant_id,
    ]
    await w.lawful.unseal_due(first.sealed_until)
    await alice.check_log()
    assert alice._store.access_warrants() == []  # neither named alice: forgotten


async def test_a_profile_from_before_the_watch_reads_the_log_again_once(
    escrow_world: EscrowWorld,
) -> None:
    w = escrow_world
    alice = await w.user("alice", "alice")
    warrant = await w.serve([b"alice"])
    await alice.check_log()
    # as a profile monitored by a client without the warrant watch (schema 2) would be
    db = sqlite3.connect(alice._store.path)
    db.execute("DELETE FROM access_watch")
    db.execute("DELETE FROM access_warrants")
    db.commit()
    db.close()
    assert alice._store.access_warrants() == []
    await w.lawful.unseal_due(warrant.sealed_until)
    await alice.check_log()
    assert [n.warrant_id for n in alice.notices()] == [warrant.warrant_id]


@given(st.dictionaries(st.binary(min_size=32, max_size=32), st.integers(0, 2**64 - 1), max_size=8))
def test_receipt_totals_round_trip_and_count_as_the_auditor_does(totals: dict[bytes, int]) -> None:
    assert decode_receipts(encode_receipts(totals)) == totals
    tally = WarrantTally(bytes(32), bytes(32), 0, 1, 1, per_custodian=dict(totals))
    for t in range(1, 6):
        assert messages_bound(totals, t) == tally.messages_bound(t)
