"""What the client hands to the application: messages, conversations, undecryptable mail.

Account ids appear as names (``str``, the UTF-8 account id). ``repr`` leaves out text and
attachment keys, so that logging one of these objects never logs content.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from overt.client.body import AttachmentPointer
from overt.client.store import Direction
from overt.errors import LocalError

__all__ = [
    "Alarm",
    "AlarmKind",
    "Conversation",
    "Direction",
    "FailureReason",
    "GroupInfo",
    "GroupMemberInfo",
    "Message",
    "Undecryptable",
]


def name_of(account: bytes) -> str:
    """An account id as the name people see (invalid UTF-8 shown with replacement marks)."""
    return account.decode("utf-8", errors="replace")


#: Account names as the CLI and the server's conventions have them (docs/api.md).
NAME_PATTERN: Final = re.compile(r"[a-z0-9_.-]{3,32}")


def account_of(name: str) -> bytes:
    """The account id a typed name stands for, or :class:`LocalError` if it is not one."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise LocalError(
            f"{name!r} is not an account name: use 3 to 32 characters of a-z, 0-9, '_', '.', '-'"
        )
    return name.encode()


@dataclass(frozen=True, slots=True)
class Message:
    """One message as a person sees it."""

    #: The other party of the conversation this message belongs to.
    peer: str
    #: The sender's account name and device id (for outgoing messages: this account).
    sender: str
    sender_device: int
    direction: Direction
    #: 16 random bytes the sending device chose; unique per conversation and sender.
    message_id: bytes
    text: str = field(repr=False)
    attachment: AttachmentPointer | None = field(repr=False)
    #: The sender's clock when it sent the message (ms since the epoch).
    sent_at_ms: int
    #: This device's clock when it stored the message.
    stored_at_ms: int
    #: The server's time of relay, when known.
    server_time_ms: int | None
    #: For a group message: the group's id (``peer`` is then the group's name).
    group_id: bytes | None = None

    @property
    def outgoing(self) -> bool:
        return self.direction is Direction.OUTGOING

    @property
    def in_group(self) -> bool:
        return self.group_id is not None


@dataclass(frozen=True, slots=True)
class GroupMemberInfo:
    """One member of a group as this device's verified view has it."""

    name: str
    devices: tuple[int, ...]
    admin: bool
    #: The membership version from which this account has been in the group without a break
    #: (as far as this device knows the group's history), and when this device learned it.
    since_version: int
    since_ms: int | None


@dataclass(frozen=True, slots=True)
class GroupInfo:
    """One group this device is or was in."""

    #: The group's 32-byte id; :attr:`ref` is its base64url text (what the CLI accepts).
    group_id: bytes
    ref: str
    name: str
    version: int
    members: tuple[str, ...]
    admins: tuple[str, ...]
    #: ``member``, ``left`` (this account left) or ``removed`` (an admin removed it).
    status: str
    last_activity_ms: int

    @property
    def active(self) -> bool:
        return self.status == "member"


@dataclass(frozen=True, slots=True)
class Conversation:
    peer: str
    last_activity_ms: int
    last_message: Message | None


class FailureReason(StrEnum):
    """Why a mail could not be shown. A class of reason, never the content."""

    #: The envelope or the mail is not a canonical encoding.
    MALFORMED = "malformed"
    #: The envelope does not fit the mail (sender, recipient, conversation).
    MISMATCH = "mismatch"
    #: A ciphertext, key commitment or franking commitment did not verify.
    INVALID = "invalid"
    #: No session and no prekey matched (e.g. this device was reinstalled).
    NO_SESSION = "no_session"
    #: The access field broke the deployment's policy (missing, forged, or under a context
    #: kind that does not fit the body: key material only for a sender-key distribution).
    POLICY = "policy"
    #: A counter beyond the protocol's bounds.
    LIMIT = "limit"
    #: Well-formed but not acceptable now.
    PROTOCOL = "protocol"
    #: The sender account's key differs from the pinned one.
    UNTRUSTED_IDENTITY = "untrusted_identity"
    #: The sender's device list is not provably in the transparency log (or the log forked).
    NOT_IN_LOG = "not_in_log"
    #: The sending device is not in its account's signed device list, or not with these keys.
    UNKNOWN_DEVICE = "unknown_device"
    #: Decrypted, but the body is not one this client understands (e.g. from a newer client).
    UNSUPPORTED_BODY = "unsupported_body"


@dataclass(frozen=True, slots=True)
class Undecryptable:
    """Mail recorded as not shown, and why."""

    server_id: int
    sender: str
    sender_device: int
    server_time_ms: int
    reason: FailureReason
    recorded_at_ms: int


class AlarmKind(StrEnum):
    """What the transparency checks found. Each is evidence that the server (or a key of this
    account) did something its users did not ask for."""

    #: The log has a key-directory entry for this account with an account key that this
    #: account never had: the server is offering someone else's key as this account's.
    UNKNOWN_ACCOUNT_KEY = "unknown_account_key"
    #: The log has a device list for this account that no device of it signed or accepted:
    #: a device this person did not add (or the account key is in someone else's hands).
    UNKNOWN_DEVICE_LIST = "unknown_device_list"
    #: Two checkpoints of the log that cannot both be true (this device's and the server's,
    #: or this device's and a peer's gossip), or a server that refuses to prove they can.
    SPLIT_VIEW = "split_view"
    #: The log's own content does not verify: entries that do not hash to its signed root, an
    #: entry that does not decode, a manifest that is not a valid successor of the last.
    INVALID_LOG = "invalid_log"
    #: An unsealing in the log names this account but opens no warrant commitment logged
    #: before it: a forged notice (none is shown).
    INVALID_UNSEALING = "invalid_unsealing"


@dataclass(frozen=True, slots=True)
class Alarm:
    """One thing the transparency checks found, kept until a person acknowledges it."""

    id: int
    kind: AlarmKind
    #: The log entry concerned, when there is one.
    entry_index: int | None
    detected_at_ms: int
    #: What happened and what to do, in words.
    detail: str
    #: The checkpoint this device held (a signed note's text), as evidence.
    ours: str | None = field(repr=False)
    #: The other checkpoint (the server's signed note, or a peer's gossip), as evidence.
    theirs: str | None = field(repr=False)
    acknowledged_at_ms: int | None = None

    @property
    def acknowledged(self) -> bool:
        return self.acknowledged_at_ms is not None
