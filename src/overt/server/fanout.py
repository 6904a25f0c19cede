"""Fan-out: one send stored for many recipient devices, tagged, then one wake-up each.

The message service (one envelope per device) and the group service (one group message for
every device of the view) store a send the same way, in two steps that this module is:

* :func:`store_tagged` enqueues the whole batch in one transaction; the reporting tag of each
  copy (DESIGN.md §5, :func:`overt.protocol.franking.reporting_tag`) is computed inside that
  transaction from the server message id the store assigns, under the server's franking key,
  over the franking commitment the caller names for that recipient;
* :func:`notify_stored` publishes, after the commit, one wake-up per recipient device carrying
  the stored mail (:func:`overt.server.notify.mail_hint`), so that a connection can pass it on
  without reading the mailbox — or the plain "read your mailbox" hint for a copy the tagger did
  not see.

Between the two a caller may do what must precede the wake-ups (the message service's
lawful-access hook copies what a live warrant covers). This module knows no HTTP and no SQL;
the time is the caller's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from overt.protocol.franking import reporting_tag
from overt.server import notify
from overt.server.notify import Notifier
from overt.storage import Mail, MailboxStore, NewMail
from overt.wire import Address


@dataclass(frozen=True, slots=True)
class Stored:
    """What one enqueue stored: ``ids`` aligned with the batch, the tags by server id."""

    ids: tuple[int, ...]
    tags: Mapping[int, bytes]


async def store_tagged(
    mailboxes: MailboxStore,
    franking_key: bytes,
    sender: Address,
    batch: Sequence[NewMail],
    server_time: int,
    commitment: Callable[[Address], bytes],
) -> Stored:
    """Enqueue ``batch`` (sent by ``sender`` at ``server_time``) in one transaction, each copy
    tagged over ``commitment(recipient)``; nothing is stored for an empty batch."""
    if not batch:
        return Stored((), {})
    tags: dict[int, bytes] = {}

    def tag(server_id: int, mail: NewMail) -> bytes:
        recipient = Address(mail.recipient_account, mail.recipient_device)
        tags[server_id] = reporting_tag(
            franking_key, commitment(recipient), sender, recipient, server_id, server_time
        )
        return tags[server_id]

    ids = await mailboxes.enqueue(batch, server_time, tag)
    return Stored(ids, tags)


async def notify_stored(
    notifier: Notifier, batch: Sequence[NewMail], stored: Stored, server_time: int
) -> None:
    """One wake-up per stored copy of ``batch``, carrying the mail where it was tagged."""
    for server_id, item in zip(stored.ids, batch, strict=True):
        recipient = Address(item.recipient_account, item.recipient_device)
        tagged = stored.tags.get(server_id)
        hint = notify.MAIL  # "read your mailbox", should the tagger not have seen this id
        if tagged is not None:  # the mail itself: its connections need no mailbox read
            mail = Mail(
                server_id, item.recipient_account, item.recipient_device, item.sender_account,
                item.sender_device, server_time, item.envelope, tagged, item.kind,
            )  # fmt: skip
            hint = notify.mail_hint(mail)
        await notifier.notify(recipient, hint)


__all__ = ["Stored", "notify_stored", "store_tagged"]
