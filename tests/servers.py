"""Real services for tests: a throwaway PostgreSQL cluster and throwaway Redis servers.

The services themselves are :mod:`overt.devservices` (also used by the benchmarks): both run on
127.0.0.1 on a free port, with their files in a fresh temporary directory, and are stopped (and
their files removed) by the finalizer of the fixture that started them:

* ``postgres_dsn`` (session): the DSN of ``OVERT_TEST_POSTGRES_DSN`` if it is set (tests then
  create and drop their own schemas in that database and touch nothing else); otherwise a
  throwaway cluster (:class:`overt.devservices.PostgresCluster`, ``fsync=off``).
* ``redis_server`` (per test): a ``redis-server`` with no persistence that a test may stop and
  start again on the same port (to test reconnection).

When the binaries are missing the tests that need them are skipped, saying what to install;
with ``OVERT_REQUIRE_SERVICES=1`` (set by ``.ci/run``) they fail instead, so CI cannot pass by
skipping them. A conftest makes the fixtures visible by importing them::

    from servers import postgres_dsn, redis_server  # noqa: F401

The fixture's cluster trades durability for speed (``fsync=off``): it is for correctness
tests; ``postgres_cluster(durable=True)`` keeps PostgreSQL's defaults for measurements.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import NoReturn

import pytest

from overt import devservices
from overt.devservices import (
    START_TIMEOUT_S,
    PostgresCluster,
    RedisServer,
    ServiceMissing,
    find_postgres_bin,
    find_redis_server,
    free_port,
)

__all__ = [
    "POSTGRES_DSN_ENV",
    "REQUIRE_SERVICES_ENV",
    "START_TIMEOUT_S",
    "PostgresCluster",
    "RedisServer",
    "find_postgres_bin",
    "find_redis_server",
    "free_port",
    "postgres_cluster",
    "postgres_dsn",
    "redis_server",
    "service_missing",
]

POSTGRES_DSN_ENV = "OVERT_TEST_POSTGRES_DSN"
REQUIRE_SERVICES_ENV = "OVERT_REQUIRE_SERVICES"


def service_missing(reason: str) -> NoReturn:
    """Skip the test for ``reason``, or fail it when ``OVERT_REQUIRE_SERVICES=1``."""
    if os.environ.get(REQUIRE_SERVICES_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_SERVICES_ENV}=1 requires every service)", pytrace=False)
    pytest.skip(reason)


@contextlib.contextmanager
def postgres_cluster(*, durable: bool = False) -> Iterator[PostgresCluster]:
    """A running throwaway cluster for the ``with`` block (skips if PostgreSQL is missing)."""
    bin_dir = find_postgres_bin()
    if bin_dir is None:
        service_missing(
            f"{devservices.postgres_missing_reason()}, or set {POSTGRES_DSN_ENV} to a database "
            "the tests may create schemas in"
        )
    cluster = PostgresCluster(bin_dir, durable=durable)
    try:
        try:
            cluster.start()
        except ServiceMissing as e:
            service_missing(str(e))
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """A PostgreSQL DSN for the whole session: ``OVERT_TEST_POSTGRES_DSN`` or a throwaway
    cluster. Tests isolate themselves in schemas of their own."""
    given = os.environ.get(POSTGRES_DSN_ENV)
    if given:
        yield given
        return
    with postgres_cluster() as cluster:
        yield cluster.dsn


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A fresh Redis on a free loopback port for one test."""
    binary = find_redis_server()
    if binary is None:
        service_missing(devservices.redis_missing_reason())
    server = RedisServer(binary)
    try:
        server.start()
        yield server
    finally:
        server.close()
