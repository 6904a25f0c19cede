"""Choosing the backends of a server node: ``Backends`` checks, the ``overt server`` flags and
their environment variables, and the rule that a deployment's keys are created only once."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from overt.cli import main as cli
from overt.crypto import DeterministicRng
from overt.errors import ConfigurationError
from overt.server.config import (
    FRANKING_KEY_FILE,
    NODE_ID_MAX,
    Backends,
    load_or_create_franking_key,
)

DSN = "postgresql://overt@127.0.0.1:5432/overt"
REDIS = "redis://127.0.0.1:6379/0"


def test_the_default_is_one_node_on_sqlite() -> None:
    backends = Backends()
    assert (backends.storage, backends.pubsub, backends.multi_node) == (
        "sqlite",
        "inprocess",
        False,
    )
    assert Backends(storage="postgres", database_url=DSN).multi_node is False
    assert Backends("postgres", DSN, "redis", REDIS, "a").multi_node is True


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"storage": "mysql"}, "--storage"),
        ({"pubsub": "kafka"}, "--pubsub"),
        ({"storage": "postgres"}, "--database-url"),
        ({"database_url": DSN}, "--database-url is for --storage postgres"),
        ({"storage": "postgres", "database_url": DSN, "pubsub": "redis"}, "--redis-url"),
        ({"redis_url": REDIS}, "--redis-url is for --pubsub redis"),
        ({"pubsub": "redis", "redis_url": REDIS}, "need --storage postgres"),
        ({"node_id": ""}, "--node-id"),
        ({"node_id": "a b"}, "--node-id"),
        ({"node_id": "n" * (NODE_ID_MAX + 1)}, "--node-id"),
    ],
)
def test_inconsistent_backends_are_refused_with_the_flag_to_fix(
    kwargs: dict[str, str], says: str
) -> None:
    with pytest.raises(ConfigurationError, match=says):
        Backends(**kwargs)  # type: ignore[arg-type]


def test_urls_stay_out_of_repr() -> None:
    shown = repr(Backends("postgres", "postgresql://u:SECRET@h/d", "redis", "redis://:PW@h", "a"))
    assert "SECRET" not in shown and "PW@" not in shown


def _server_backends(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> Backends:
    """The Backends that ``overt server ARGV`` would run with."""
    seen: list[Backends] = []

    def fake_run_server(*args: object, backends: Backends, **kwargs: object) -> None:
        seen.append(backends)

    monkeypatch.setattr("overt.server.run_server", fake_run_server)
    args: argparse.Namespace = cli.build_parser().parse_args(["server", *argv])
    assert cli.cmd_server(args) == 0
    (backends,) = seen
    return backends


def test_server_flags_choose_the_backends(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OVERT_DATABASE_URL", raising=False)
    monkeypatch.delenv("OVERT_REDIS_URL", raising=False)
    argv = ["--storage", "postgres", "--database-url", DSN, "--pubsub", "redis",
            "--redis-url", REDIS, "--node-id", "node-a"]  # fmt: skip
    assert _server_backends(monkeypatch, argv) == Backends(
        "postgres", DSN, "redis", REDIS, "node-a"
    )


def test_urls_come_from_the_environment_only_for_the_backend_in_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OVERT_DATABASE_URL", DSN)
    monkeypatch.setenv("OVERT_REDIS_URL", REDIS)
    single = _server_backends(monkeypatch, ["--port", "8123"])
    assert (single.storage, single.database_url, single.redis_url) == ("sqlite", None, None)
    assert single.node_id.endswith("-8123")
    nodes = _server_backends(monkeypatch, ["--storage", "postgres", "--pubsub", "redis"])
    assert (nodes.database_url, nodes.redis_url) == (DSN, REDIS)


def test_a_missing_franking_key_is_not_replaced_once_the_deployment_has_data(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigurationError, match=r"copy franking\.key from another node"):
        load_or_create_franking_key(tmp_path, DeterministicRng(1), create=False)
    assert not (tmp_path / FRANKING_KEY_FILE).exists()
    key = load_or_create_franking_key(tmp_path, DeterministicRng(1))
    assert load_or_create_franking_key(tmp_path, DeterministicRng(2), create=False) == key
