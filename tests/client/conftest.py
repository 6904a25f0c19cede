"""The ``world`` fixture: the real relay server in-process, over in-memory storage."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from overt.client import AsgiTransport
from overt.crypto import DeterministicRng
from overt.server import ServerConfig, ServerLimits, create_app
from overt.storage import InProcessPubSub, open_memory

from .support import Checkpointing, FakeClock, World


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    clock = FakeClock()
    storage = await open_memory()
    app = create_app(
        # The fake clock does not refill rate buckets; the limiter is not under test here.
        ServerConfig(franking_key=bytes(range(32)), limits=ServerLimits(rate_burst=1_000_000)),
        storage,
        InProcessPubSub(),
        clock=clock.now_ms,
        rng=DeterministicRng("server"),
    )
    transport = Checkpointing(AsgiTransport(app), app)
    w = World(tmp_path, clock, app, transport)
    try:
        yield w
    finally:
        for c in w.clients:
            await c.close()
        await transport.aclose()
        await storage.close()
