"""The ``backend`` fixture: every contract test runs once per backend of ``support.BACKENDS``."""

from __future__ import annotations

from pathlib import Path

import pytest

from .support import BACKENDS, Backend


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return BACKENDS[request.param](tmp_path)
