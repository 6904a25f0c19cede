"""Canonical binary encoding (:mod:`overt.wire.codec`) and the structures Overt sends, signs
or hashes (:mod:`overt.wire.messages`). Bytes in, typed values out; no keys, sockets or clocks.
"""

from overt.wire.codec import Reader, Writer
from overt.wire.messages import (
    CONVERSATION_ID_LEN,
    MAX_BODY_LEN,
    MAX_CIPHERTEXT_LEN,
    MESSAGE_ID_LEN,
    AccessField,
    Address,
    Content,
    DeviceEntry,
    DeviceList,
    Envelope,
    KemPreKey,
    MessageType,
    OneTimePreKey,
    PqxdhInit,
    PreKeyBundle,
    RatchetHeader,
    SignedDeviceList,
    SignedPreKey,
)

__all__ = [
    "CONVERSATION_ID_LEN",
    "MAX_BODY_LEN",
    "MAX_CIPHERTEXT_LEN",
    "MESSAGE_ID_LEN",
    "AccessField",
    "Address",
    "Content",
    "DeviceEntry",
    "DeviceList",
    "Envelope",
    "KemPreKey",
    "MessageType",
    "OneTimePreKey",
    "PqxdhInit",
    "PreKeyBundle",
    "RatchetHeader",
    "Reader",
    "SignedDeviceList",
    "SignedPreKey",
    "Writer",
]
