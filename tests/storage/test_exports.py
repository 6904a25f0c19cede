"""The public surface of overt.storage, pinned, and what the layer must not reach for."""

from __future__ import annotations

import ast
from pathlib import Path

import overt.storage

EXPECTED = {
    "AccountRecord",
    "AccountStore",
    "AlreadyExists",
    "BlobStore",
    "DeviceAuth",
    "InProcessPubSub",
    "InvalidArgument",
    "KtRecord",
    "KtStore",
    "LogLeaf",
    "LogNode",
    "LogStore",
    "Mail",
    "MailKind",
    "MailboxStore",
    "NewMail",
    "NotFound",
    "OneTimeKind",
    "PrekeyRecord",
    "PrekeyStore",
    "PubSub",
    "RedisPubSub",
    "ReportingTagger",
    "StaleSerial",
    "Storage",
    "StorageConflict",
    "StorageError",
    "StorageLimits",
    "StorageUnavailable",
    "StoredCheckpoint",
    "Subscription",
    "open_memory",
    "open_postgres",
    "open_sqlite",
}

# Clocks, randomness and serializers of arbitrary objects have no place in storage: times and
# ids come from callers, and what is stored is bytes.
FORBIDDEN_MODULES = {"time", "datetime", "random", "secrets", "pickle", "shelve", "marshal"}
FORBIDDEN_NAMES = {"urandom", "getrandom"}


def test_exported_names_are_pinned() -> None:
    assert set(overt.storage.__all__) == EXPECTED
    for name in EXPECTED:
        assert getattr(overt.storage, name) is not None


def test_storage_reads_no_clock_and_draws_no_randomness() -> None:
    package = Path(overt.storage.__file__).parent
    for source in package.rglob("*.py"):
        tree = ast.parse(source.read_text(), str(source))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported = {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                imported = {(node.module or "").split(".")[0]}
            else:
                if isinstance(node, ast.Attribute | ast.Name):
                    name = node.attr if isinstance(node, ast.Attribute) else node.id
                    assert name not in FORBIDDEN_NAMES, f"{source.name} uses {name}"
                continue
            assert not imported & FORBIDDEN_MODULES, f"{source.name} imports {imported}"


# Storage holds opaque bytes: it must not know the wire format, the protocol, or how the
# transparency log hashes and signs what it stores (import-linter covers the protocol side).
FORBIDDEN_OVERT = ("overt.protocol", "overt.transparency", "overt.wire", "overt.server")


def test_storage_imports_no_format_of_what_it_stores() -> None:
    package = Path(overt.storage.__file__).parent
    for source in package.rglob("*.py"):
        tree = ast.parse(source.read_text(), str(source))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert not name.startswith(FORBIDDEN_OVERT), f"{source.name} imports {name}"
