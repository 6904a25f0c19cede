"""The interactive loop of ``overt chat PEER`` and ``overt chat --group GROUP``: the recent
history, then live messages of the conversation as they arrive (WebSocket push), while each
line typed is sent; ``/quit`` (or the end of input) stops.

This module only prints and reads the terminal; what is sent where, and which incoming
messages belong to the conversation, the caller decides.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

from overt.client import Client
from overt.client.model import Message

#: Messages of the history ``overt chat`` shows before the live ones.
CHAT_HISTORY_MESSAGES: Final = 20
#: Lines that end a chat.
_QUIT: Final = frozenset({"/quit", "/exit"})


async def converse(
    client: Client,
    history: Sequence[Message],
    banner: str,
    *,
    belongs: Callable[[Message], bool],
    send: Callable[[str], Awaitable[object]],
) -> None:
    """Print ``history`` and ``banner``; then print each arriving message that ``belongs``
    to the conversation, and ``send`` each line typed, until ``/quit`` or end of input."""
    from overt.cli.main import show  # noqa: PLC0415 - main imports us

    for m in history:
        print(show(m))
    print(f"{banner} Type a message and Enter; /quit to leave.", flush=True)

    async def incoming() -> None:
        async for m in client.listen():
            if belongs(m):
                print(show(m), flush=True)

    listener = asyncio.create_task(incoming())
    loop = asyncio.get_running_loop()
    try:
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line or line.strip() in _QUIT:
                break
            if line.strip():
                await send(line.rstrip("\n"))
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)


__all__ = ["CHAT_HISTORY_MESSAGES", "converse"]
