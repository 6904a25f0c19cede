"""The fan-out shared by one-to-one and group sends (:mod:`overt.server.fanout`), over the
in-memory reference store: every copy is tagged for its own recipient and commitment, the
wake-up of a tagged copy carries exactly the stored mail, an untagged one says "read your
mailbox", and an empty batch stores and publishes nothing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from overt.errors import InvalidMessage
from overt.protocol.franking import verify_reporting_tag
from overt.server import notify
from overt.server.fanout import Stored, notify_stored, store_tagged
from overt.server.notify import Notifier
from overt.storage import InProcessPubSub, Mail, MailboxStore, MailKind, NewMail, open_memory
from overt.wire import Address

KEY = bytes(range(32))
SENDER = Address(b"alice", 1)
NOW = 1_700_000_000_000


class Recording(Notifier):
    """The notifier, except that it keeps what it would publish."""

    def __init__(self) -> None:
        super().__init__(InProcessPubSub())
        self.sent: list[tuple[Address, bytes]] = []

    async def notify(self, device: Address, hint: bytes) -> None:
        self.sent.append((device, hint))


def commitment_of(recipient: Address) -> bytes:
    return recipient.account[:1] * 16 + recipient.device.to_bytes(16, "big")


def batch_for(recipients: list[Address], kind: MailKind) -> list[NewMail]:
    return [
        NewMail(r.account, r.device, SENDER.account, SENDER.device, b"sealed " + r.account, kind)
        for r in recipients
    ]


async def fetched(mailboxes: MailboxStore, recipient: Address) -> tuple[Mail, ...]:
    return await mailboxes.fetch(recipient.account, recipient.device, 0, 10)


@settings(max_examples=25, deadline=None)
@given(
    devices=st.lists(
        st.tuples(st.sampled_from([b"bob", b"carol", b"dave"]), st.integers(1, 4)),
        unique=True,
        max_size=6,
    ),
    kind=st.sampled_from(list(MailKind)),
)
async def test_every_copy_is_tagged_for_its_recipient_and_its_wake_up_carries_it(
    devices: list[tuple[bytes, int]], kind: MailKind
) -> None:
    storage = await open_memory()
    recipients = [Address(a, d) for a, d in devices]
    batch = batch_for(recipients, kind)
    notifier = Recording()
    stored = await store_tagged(storage.mailboxes, KEY, SENDER, batch, NOW, commitment_of)
    await notify_stored(notifier, batch, stored, NOW)

    assert len(stored.ids) == len(batch) == len(set(stored.ids))
    assert [device for device, _ in notifier.sent] == recipients
    for recipient, server_id, (_, hint) in zip(recipients, stored.ids, notifier.sent, strict=True):
        (mail,) = await fetched(storage.mailboxes, recipient)
        assert mail.id == server_id and mail.kind is kind and mail.server_time == NOW
        assert mail.reporting_tag == stored.tags[server_id]
        verify_reporting_tag(
            KEY, mail.reporting_tag, commitment_of(recipient), SENDER, recipient, server_id, NOW
        )
        assert hint == notify.mail_hint(mail)
        for other in recipients:
            if other != recipient:  # a tag verifies for the device it was delivered to only
                with pytest.raises(InvalidMessage):
                    verify_reporting_tag(
                        KEY, mail.reporting_tag, commitment_of(recipient), SENDER, other,
                        server_id, NOW,
                    )  # fmt: skip


async def test_an_empty_batch_stores_and_publishes_nothing() -> None:
    storage = await open_memory()
    notifier = Recording()
    stored = await store_tagged(storage.mailboxes, KEY, SENDER, [], NOW, commitment_of)
    await notify_stored(notifier, [], stored, NOW)
    assert stored == Stored((), {})
    assert notifier.sent == []


async def test_a_copy_the_tagger_did_not_see_wakes_its_device_to_read_the_mailbox() -> None:
    bob = Address(b"bob", 1)
    notifier = Recording()
    await notify_stored(notifier, batch_for([bob], MailKind.ENVELOPE), Stored((7,), {}), NOW)
    assert notifier.sent == [(bob, notify.MAIL)]
