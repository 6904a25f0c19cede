"""What the load groups (``server``, ``scale``) share around :mod:`bench.loadgen`.

:func:`float_param` reads a ``--param`` that is a number (the :class:`bench.core.Context`
readers cover integers and strings), and :func:`run_async` runs a measurement on the event loop
its ``--param loop`` names: ``uvloop`` (the default; plain asyncio when uvloop is not installed)
or ``asyncio``. This module imports nothing heavy, so that listing the groups stays cheap.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from bench.core import BenchError, Context

T = TypeVar("T")


def float_param(ctx: Context, name: str, default: float, minimum: float = 0.0) -> float:
    """``--param name`` as a number of at least ``minimum``, recorded in ``ctx.used``."""
    raw = ctx.str_param(name, repr(default))
    try:
        value = float(raw)
    except ValueError:
        raise BenchError(f"--param {name}: not a number: {raw!r}") from None
    if not value >= minimum:
        raise BenchError(f"--param {name}: must be at least {minimum}, got {raw}")
    ctx.used[name] = value
    return value


def run_async(coro: Coroutine[Any, Any, T], loop: str) -> T:
    """Run ``coro`` to completion on a fresh ``uvloop`` or ``asyncio`` event loop."""
    if loop == "uvloop":
        try:
            import uvloop  # noqa: PLC0415 - optional; comes with uvicorn[standard]
        except ImportError:
            loop = "asyncio"
        else:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                return runner.run(coro)
    if loop != "asyncio":
        raise BenchError(f"--param loop: uvloop or asyncio, got {loop!r}")
    return asyncio.run(coro)
