"""Wake-ups between server tasks (and nodes): one PubSub channel per device.

After mail for a device commits, the message service publishes :data:`MAIL` on the device's
channel; a WebSocket connection of that device, subscribed to it, then fetches its mailbox.
:data:`PREKEYS_LOW` tells the device's connections to ask it for more prekeys, and
:data:`REVOKED` that the device was removed from its account's list, so its connections close.
Hints carry no data and may be lost (the mailbox is the durable copy), so a connection
subscribes first and fetches second.

This module knows no web framework and no storage: channels are strings, hints are bytes.
It never names a device in a log line.
"""

from __future__ import annotations

import logging
from typing import Final

from overt.server.codec import b64encode
from overt.storage import PubSub
from overt.wire import Address

_log = logging.getLogger("overt.server")

MAIL: Final = b"mail"
PREKEYS_LOW: Final = b"prekeys_low"
REVOKED: Final = b"revoked"


def device_channel(device: Address) -> str:
    """The channel of one device: ``overt.device.<b64 account>.<device id>``."""
    return f"overt.device.{b64encode(device.account)}.{device.device}"


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
