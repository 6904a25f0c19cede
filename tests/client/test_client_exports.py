"""The public surface of overt.client, pinned, and what the package must not reach for."""

from __future__ import annotations

import ast
from pathlib import Path

import overt.client
from overt.client import Client
from overt.errors import OvertError

EXPECTED = {
    "AccountExists",
    "Alarm",
    "AlarmKind",
    "AsgiTransport",
    "AttachmentPointer",
    "AttachmentRejected",
    "BadResponse",
    "Body",
    "BodyKind",
    "Client",
    "Clock",
    "Conflict",
    "Conversation",
    "Direction",
    "EpochNotInLog",
    "FailureReason",
    "Forbidden",
    "Gossip",
    "GroupInfo",
    "GroupMemberInfo",
    "HttpTransport",
    "LinkApproval",
    "LinkRequest",
    "Message",
    "NotFound",
    "NotInLog",
    "Notice",
    "PolicyUnavailable",
    "ProfileStateError",
    "ProfileTooNew",
    "PushChannel",
    "RateLimited",
    "RequestSigner",
    "Response",
    "ServerRefused",
    "ServerUnreachable",
    "SplitView",
    "StaleDevices",
    "StaleGroup",
    "StaleSerial",
    "StoreError",
    "SystemClock",
    "TooLarge",
    "Transport",
    "TransparencyUnavailable",
    "Unauthenticated",
    "Undecryptable",
    "UnknownAccount",
}

CLIENT_API = {
    "open", "close", "account_name", "device_id", "is_active", "holds_account_key",
    "create_account", "request_link", "approve_link", "finish_link", "link_device", "devices",
    "send", "send_attachment", "fetch_attachment", "sync", "receive", "listen",
    "conversations", "history", "undecryptable", "safety_number", "offered_safety_number",
    "accept_new_identity", "refill_prekeys",
    # groups
    "create_group", "add_members", "remove_members", "rename_group", "leave_group",
    "send_group", "send_group_attachment", "groups", "group_info", "group_members", "group_history",
    # key transparency
    "policy_description", "check_log", "alarms", "acknowledge_alarms",
    # lawful access
    "access_epoch", "notices", "mark_notices_shown",
    # known-content matching
    "matching_status", "refresh_matching",
}  # fmt: skip

SRC = Path(overt.client.__file__).parent


def test_exported_names() -> None:
    assert set(overt.client.__all__) == EXPECTED
    for name in EXPECTED:
        assert hasattr(overt.client, name)


def test_client_facade_methods() -> None:
    public = {n for n in vars(Client) if not n.startswith("_")}
    assert public == CLIENT_API


def test_every_error_is_in_the_one_tree() -> None:
    for name in EXPECTED:
        obj = getattr(overt.client, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, OvertError), name


def test_the_client_never_imports_the_server_or_its_storage() -> None:
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert not name.startswith(("overt.server", "overt.storage", "pickle")), path
