"""Wake-ups between server tasks (and nodes): one PubSub channel per device.

After mail for a device commits, the message service publishes a mail hint on the device's
channel; a WebSocket connection of that device, subscribed to it, then delivers it.
:data:`PREKEYS_LOW` tells the device's connections to ask it for more prekeys, and
:data:`REVOKED` that the device was removed from its account's list, so its connections close.

A mail hint made by :func:`mail_hint` carries the stored mail itself, as the ``mail`` frame
the connection sends (:func:`mail_frame`), so a connection that receives it needs no mailbox
read; :func:`parse_mail_hint` takes it apart. The bare :data:`MAIL` hint (no data: "read your
mailbox") is understood too. Hints may be lost (the mailbox is the durable copy), so a
connection subscribes first and reads second, and reads its mailbox again whenever it may have
missed a hint (see :mod:`overt.server.delivery`).

This module knows no web framework and calls no store: channels are strings, hints are bytes.
It never names a device in a log line.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Final

from overt.server.codec import b64encode, format_address
from overt.storage import Mail, PubSub
from overt.wire import Address

_log = logging.getLogger("overt.server")

MAIL: Final = b"mail"
PREKEYS_LOW: Final = b"prekeys_low"
REVOKED: Final = b"revoked"

MAIL_HINT_PREFIX: Final = b"mail:"
"""A mail hint with data: ``mail:<server id>\\n<mail frame as JSON>``."""


def device_channel(device: Address) -> str:
    """The channel of one device: ``overt.device.<b64 account>.<device id>``."""
    return f"overt.device.{b64encode(device.account)}.{device.device}"


def mail_frame(mail: Mail) -> dict[str, Any]:
    """One stored message as the ``mail`` frame (the ``Mail`` object of docs/api.md)."""
    return {
        "type": "mail",
        "id": mail.id,
        "sender": format_address(Address(mail.sender_account, mail.sender_device)),
        "server_time": mail.server_time,
        "envelope": b64encode(mail.envelope),
        "reporting_tag": b64encode(mail.reporting_tag),
        "kind": mail.kind.value,
    }


def mail_hint(mail: Mail) -> bytes:
    """The wake-up for ``mail``'s recipient that carries the mail's frame (as Starlette's
    ``send_json`` would write it)."""
    text = json.dumps(mail_frame(mail), separators=(",", ":"), ensure_ascii=False)
    return b"%s%d\n%s" % (MAIL_HINT_PREFIX, mail.id, text.encode())


def parse_mail_hint(hint: bytes) -> tuple[int, str] | None:
    """The server id and frame text of a hint made by :func:`mail_hint`; ``None`` for any
    other hint."""
    if not hint.startswith(MAIL_HINT_PREFIX):
        return None
    head, newline, frame = hint.partition(b"\n")
    number = head[len(MAIL_HINT_PREFIX) :]
    if not newline or not number.isdigit():
        return None
    return int(number), frame.decode()


class Notifier:
    """Publishes hints on device channels."""

    def __init__(self, pubsub: PubSub) -> None:
        self._pubsub = pubsub

    async def notify(self, device: Address, hint: bytes) -> None:
        """Publish ``hint`` for ``device``; a failure is logged, never raised (hints are best
        effort, and what they announce is already durable)."""
        try:
            await self._pubsub.publish(device_channel(device), hint)
        except Exception as e:
            _log.warning("wake-up not published", extra={"fields": {"cause": type(e).__name__}})
