"""What the client hands to the application: messages, conversations, undecryptable mail.

Account ids appear as names (``str``, the UTF-8 account id). ``repr`` leaves out text and
attachment keys, so that logging one of these objects never logs content.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from overt.client.body import AttachmentPointer
from overt.client.store import Direction

__all__ = ["Conversation", "Direction", "FailureReason", "Message", "Undecryptable"]


def name_of(account: bytes) -> str:
    """An account id as the name people see (invalid UTF-8 shown with replacement marks)."""
    return account.decode("utf-8", errors="replace")


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

    @property
    def outgoing(self) -> bool:
        return self.direction is Direction.OUTGOING


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
    #: The access field broke the deployment's policy.
    POLICY = "policy"
    #: A counter beyond the protocol's bounds.
    LIMIT = "limit"
    #: Well-formed but not acceptable now.
    PROTOCOL = "protocol"
    #: The sender account's key differs from the pinned one.
    UNTRUSTED_IDENTITY = "untrusted_identity"
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
