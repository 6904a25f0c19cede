"""Wake-ups that carry their mail: a connection passes them on without reading its mailbox, and
reads it when it may have missed one — never sending a message twice on one connection.

The delivery loop runs against fakes (a socket that records frames, a subscription fed by
hand, a message service that counts reads), so each case is exact and needs no timing. The
last test goes through the whole app.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from server_kit import make_party
from test_server_ws import ack_and_sync, read_mail, ws_env

from overt.crypto import DeterministicRng
from overt.server import notify
from overt.server.delivery import WS_PUSHED_MAX, Delivery
from overt.server.messages import Page
from overt.server.metrics import Metrics
from overt.storage import InProcessPubSub, Mail
from overt.wire import Address

ME = Address(b"bob", 1)


class Done(Exception):
    """The fake subscription ran out of hints."""


def stored(mail_id: int) -> Mail:
    return Mail(mail_id, ME.account, ME.device, b"alice", 1, 1000 + mail_id, b"env-%d" % mail_id,
                b"tag")  # fmt: skip


@dataclass
class FakeSocket:
    scope: dict[str, Any] = field(default_factory=dict)
    sent: list[dict[str, Any]] = field(default_factory=list)

    async def send_json(self, frame: dict[str, Any]) -> None:
        self.sent.append(frame)

    async def send_text(self, text: str) -> None:
        self.sent.append(json.loads(text))

    def mail_ids(self) -> list[int]:
        return [f["id"] for f in self.sent if f["type"] == "mail"]


@dataclass
class FakeSubscription:
    hints: list[bytes]
    dropped: int = 0
    drop_before: dict[int, int] = field(default_factory=dict)
    """Hint number → how many hints the queue lost just before it."""
    taken: int = 0

    async def get(self) -> bytes:
        if not self.hints:
            raise Done
        self.dropped += self.drop_before.get(self.taken, 0)
        self.taken += 1
        return self.hints.pop(0)


@dataclass
class FakeMessages:
    mailbox: dict[int, Mail] = field(default_factory=dict)
    reads: int = 0

    def store(self, *ids: int) -> None:
        for i in ids:
            self.mailbox[i] = stored(i)

    async def fetch(self, device: Address, after: int, limit: int) -> Page:
        self.reads += 1
        found = sorted(i for i in self.mailbox if i > after)
        return Page(tuple(self.mailbox[i] for i in found[:limit]), len(found) > limit)


class FakePrekeys:
    @dataclass
    class Stock:
        low: bool = False

    async def stock(self, device: Address) -> FakePrekeys.Stock:
        return FakePrekeys.Stock()


def run(messages: FakeMessages, subscription: FakeSubscription) -> FakeSocket:
    ws = FakeSocket()
    delivery = Delivery(
        None,  # type: ignore[arg-type]  # not used by the delivery loop
        messages,  # type: ignore[arg-type]
        FakePrekeys(),  # type: ignore[arg-type]
        InProcessPubSub(),
        DeterministicRng(1),
        Metrics(),
    )

    async def main() -> None:
        with pytest.raises(Done):
            await delivery._deliver(ws, ME, subscription)  # type: ignore[arg-type]

    asyncio.run(main())
    return ws


def hint(mail_id: int) -> bytes:
    return notify.mail_hint(stored(mail_id))


def test_a_hint_with_its_mail_is_passed_on_without_a_mailbox_read() -> None:
    messages = FakeMessages()
    messages.store(1)
    messages.store(2, 3)
    ws = run(messages, FakeSubscription([hint(2), hint(3), hint(3), hint(1)]))
    assert ws.mail_ids() == [1, 2, 3]  # 1 from the first read; 3 and 1 once only
    assert messages.reads == 1
    assert ws.sent[1] == notify.mail_frame(stored(2))


def test_hints_out_of_order_are_all_sent_and_a_later_read_repeats_none() -> None:
    messages = FakeMessages()
    messages.store(5, 6, 7)
    # The connection read nothing at first (the mail committed after its read).
    subscription = FakeSubscription([hint(6), hint(5), notify.MAIL])
    first_read = messages.mailbox.copy()
    messages.mailbox.clear()

    async def fetch(device: Address, after: int, limit: int) -> Page:
        messages.reads += 1
        if messages.reads == 2:
            messages.mailbox.update(first_read)
        found = sorted(i for i in messages.mailbox if i > after)
        return Page(tuple(messages.mailbox[i] for i in found[:limit]), False)

    messages.fetch = fetch  # type: ignore[method-assign]
    ws = run(messages, subscription)
    assert ws.mail_ids() == [6, 5, 7]
    assert messages.reads == 2


def test_a_dropped_hint_makes_the_connection_read_its_mailbox() -> None:
    messages = FakeMessages()
    messages.store(1, 2, 3, 4)
    messages.mailbox.clear()  # nothing at the first read
    subscription = FakeSubscription([hint(1), hint(4)], drop_before={1: 2})  # 2 and 3 lost
    reads_before: list[int] = []

    async def fetch(device: Address, after: int, limit: int) -> Page:
        reads_before.append(after)
        found = [stored(i) for i in (1, 2, 3, 4) if i > after] if reads_before[1:] else []
        return Page(tuple(found), False)

    messages.fetch = fetch  # type: ignore[method-assign]
    ws = run(messages, subscription)
    assert ws.mail_ids() == [1, 2, 3, 4]  # 1 from its hint; 2, 3, 4 from the read
    assert reads_before == [0, 0]


def test_a_hint_without_data_and_a_full_memory_mean_a_read() -> None:
    messages = FakeMessages()
    n = WS_PUSHED_MAX + 2
    messages.store(*range(1, n + 1))
    kept = messages.mailbox.copy()
    messages.mailbox.clear()
    hints = [hint(i) for i in range(1, n + 1)]
    reads = 0

    async def fetch(device: Address, after: int, limit: int) -> Page:
        nonlocal reads
        reads += 1
        found = sorted(i for i in kept if i > after) if reads > 1 else []
        return Page(tuple(kept[i] for i in found[:limit]), len(found) > limit)

    messages.fetch = fetch  # type: ignore[method-assign]
    ws = run(messages, FakeSubscription(hints))
    assert ws.mail_ids() == list(range(1, n + 1))  # every mail once, in order
    assert reads > 1  # the connection forgot its pushed ids by reading


def test_live_mail_over_a_real_connection_needs_no_mailbox_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    alice, bob = make_party("alice", 1), make_party("bob", 2)
    with ws_env() as env:
        env.register(alice)
        env.register(bob)
        reads: list[int] = []
        original = env.storage.mailboxes.fetch

        async def counting(account: bytes, device: int, after: int, limit: int) -> Any:
            reads.append(after)
            return await original(account, device, after, limit)

        monkeypatch.setattr(env.storage.mailboxes, "fetch", counting)
        with env.connect(bob) as ws:
            ids = env.send(alice, bob, b"hello") + env.send(alice, bob, b"again")
            got = [read_mail(ws), read_mail(ws)]
            assert [g["id"] for g in got] == ids
            assert reads == [0]  # only the read when the connection started
            ack_and_sync(ws, ids)  # one acknowledgement for both
        assert env.pending(bob) == []
