"""The ``backend`` fixture: every contract test runs once per backend of ``support.BACKENDS``
and ``support.SERVER_BACKENDS`` (PostgreSQL, on the server of ``servers.postgres_dsn``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from servers import postgres_dsn, redis_server  # noqa: F401  (fixtures used by these tests)

from .support import BACKENDS, SERVER_BACKENDS, Backend


@pytest.fixture(params=sorted([*BACKENDS, *SERVER_BACKENDS]))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param in SERVER_BACKENDS:
        dsn = request.getfixturevalue(f"{request.param}_dsn")
        made = SERVER_BACKENDS[request.param](dsn)
    else:
        made = BACKENDS[request.param](tmp_path)
    try:
        yield made
    finally:
        if made.cleanup is not None:
            made.cleanup()
