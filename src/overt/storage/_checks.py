"""Argument checks shared by every backend, so that all of them refuse the same inputs.

Each check raises :class:`InvalidArgument` for a value outside a range and
:class:`overt.errors.LimitExceeded` for a size or count over a bound. Messages name the field,
never its contents. This module knows no SQL and no protocol.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from overt.errors import LimitExceeded
from overt.storage._argcheck import int_range as _int_range
from overt.storage._argcheck import nonempty as _nonempty
from overt.storage._argcheck import size as _size
from overt.storage.errors import AlreadyExists, InvalidArgument
from overt.storage.interfaces import (
    AccountRecord,
    DeviceAuth,
    EpochRecord,
    KtRecord,
    MailKind,
    NewIntercept,
    NewMail,
    OneTimeKind,
    PrekeyRecord,
    WarrantRecord,
)
from overt.storage.limits import (
    ACCOUNT_ID_MAX_LEN,
    ACK_BATCH_MAX,
    BLOB_ID_LENS,
    DEVICE_ID_MAX,
    DEVICE_LIST_MAX_LEN,
    DEVICES_PER_ACCOUNT_MAX,
    ENQUEUE_BATCH_MAX,
    ENVELOPE_MAX_LEN,
    EPOCH_CONFIRMATIONS_MAX_LEN,
    EPOCH_MAX,
    EPOCH_PAGE_MAX,
    EPOCH_TRANSCRIPT_MAX_LEN,
    FETCH_LIMIT_MAX,
    GROUP_UPDATE_MAX_LEN,
    INT64_MAX,
    INTERCEPT_BATCH_MAX,
    INTERCEPT_PAGE_MAX,
    KEY_ID_MAX,
    KT_OPENING_MAX_LEN,
    PREKEY_RECORD_MAX_LEN,
    PUBLIC_KEY_MAX_LEN,
    WARRANT_DOCUMENT_MAX_LEN,
    WARRANT_ID_LEN,
    WARRANT_PAGE_MAX,
    WARRANT_TOKEN_HASH_MAX_LEN,
)


def account_id(value: bytes) -> None:
    if not isinstance(value, bytes) or not 1 <= len(value) <= ACCOUNT_ID_MAX_LEN:
        raise InvalidArgument(f"an account id must be 1..{ACCOUNT_ID_MAX_LEN} bytes")


def device(owner: bytes, device_id: int) -> None:
    account_id(owner)
    _int_range(device_id, DEVICE_ID_MAX, "a device id")


def devices(items: Sequence[DeviceAuth]) -> tuple[DeviceAuth, ...]:
    """Checked and sorted by device id; repeats are refused."""
    if len(items) > DEVICES_PER_ACCOUNT_MAX:
        raise LimitExceeded(f"an account has at most {DEVICES_PER_ACCOUNT_MAX} devices")
    for d in items:
        _int_range(d.device, DEVICE_ID_MAX, "a device id")
        _size(d.signing_key, PUBLIC_KEY_MAX_LEN, "a device signing key")
    ordered = tuple(sorted(items, key=lambda d: d.device))
    if len({d.device for d in ordered}) != len(ordered):
        raise InvalidArgument("device ids repeat")
    return ordered


def serial(value: int) -> None:
    _int_range(value, INT64_MAX, "a device-list serial")


def account(record: AccountRecord) -> AccountRecord:
    """The record with its devices sorted, after checking every field."""
    account_id(record.account_id)
    _size(record.identity_key, PUBLIC_KEY_MAX_LEN, "an identity key")
    _size(record.device_list, DEVICE_LIST_MAX_LEN, "a device list")
    serial(record.serial)
    return AccountRecord(
        record.account_id,
        record.identity_key,
        record.device_list,
        record.serial,
        devices(record.devices),
    )


def device_list(data: bytes) -> None:
    _size(data, DEVICE_LIST_MAX_LEN, "a device list")


def kt_record(account: bytes, record: KtRecord) -> None:
    account_id(account)
    if type(record) is not KtRecord:
        raise InvalidArgument("a key-directory record must be a KtRecord")
    serial(record.serial)
    _int_range(record.index, INT64_MAX, "a log index")
    _size(record.opening, KT_OPENING_MAX_LEN, "a key-directory opening")
    _size(record.device_list, DEVICE_LIST_MAX_LEN, "a device list")
    if not record.opening or not record.device_list:
        raise InvalidArgument("a key-directory record needs an opening and a device list")


def prekey(record: PrekeyRecord) -> None:
    _int_range(record.id, KEY_ID_MAX, "a prekey id")
    _size(record.data, PREKEY_RECORD_MAX_LEN, "a prekey record")


def kind(value: OneTimeKind) -> None:
    if not isinstance(value, OneTimeKind):
        raise InvalidArgument("unknown one-time prekey kind")


def one_time_batch(records: Sequence[PrekeyRecord]) -> None:
    for r in records:
        prekey(r)
    if len({r.id for r in records}) != len(records):
        raise AlreadyExists("a one-time prekey id repeats in the batch")


def mail_batch(batch: Sequence[NewMail], server_time: int) -> None:
    _int_range(server_time, INT64_MAX, "a server time")
    if len(batch) > ENQUEUE_BATCH_MAX:
        raise LimitExceeded(f"an enqueue holds at most {ENQUEUE_BATCH_MAX} envelopes")
    for m in batch:
        device(m.recipient_account, m.recipient_device)
        device(m.sender_account, m.sender_device)
        _size(m.envelope, ENVELOPE_MAX_LEN, "an envelope")
        if not isinstance(m.kind, MailKind):
            raise InvalidArgument("unknown mail kind")


def reporting_tag(tag: bytes) -> None:
    if not isinstance(tag, bytes):
        raise InvalidArgument("a reporting tag must be bytes")


def fetch(after_id: int, limit: int) -> None:
    _int_range(after_id, INT64_MAX, "after_id")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= FETCH_LIMIT_MAX:
        raise InvalidArgument(f"a fetch limit must be in 1..{FETCH_LIMIT_MAX}")


def ack_ids(ids: Collection[int]) -> frozenset[int]:
    if len(ids) > ACK_BATCH_MAX:
        raise LimitExceeded(f"an acknowledgement holds at most {ACK_BATCH_MAX} ids")
    for i in ids:
        _int_range(i, INT64_MAX, "a server message id")
    return frozenset(ids)


def blob(blob_id: bytes, data: bytes | None = None, max_size: int = 0) -> None:
    if not isinstance(blob_id, bytes) or len(blob_id) not in BLOB_ID_LENS:
        raise InvalidArgument("a blob id must be 16 or 32 bytes")
    if data is not None:
        _size(data, max_size, "a blob")


# ----------------------------------------------------------------------------- lawful access


def warrant_id(value: bytes) -> None:
    if not isinstance(value, bytes) or len(value) != WARRANT_ID_LEN:
        raise InvalidArgument(f"a warrant id must be {WARRANT_ID_LEN} bytes")


def warrant_record(record: WarrantRecord) -> None:
    if not isinstance(record, WarrantRecord):
        raise InvalidArgument("expected a WarrantRecord")
    warrant_id(record.warrant_id)
    _int_range(record.index, INT64_MAX, "a log index")
    _nonempty(record.token_hash, WARRANT_TOKEN_HASH_MAX_LEN, "a token hash")
    _nonempty(record.document, WARRANT_DOCUMENT_MAX_LEN, "a warrant document")
    _int_range(record.not_after, INT64_MAX, "a warrant end")
    _int_range(record.sealed_until, INT64_MAX, "a sealing date")
    if record.revocation is not None:
        _nonempty(record.revocation, WARRANT_DOCUMENT_MAX_LEN, "a revocation")
    if record.unsealed_index is not None:
        _int_range(record.unsealed_index, INT64_MAX, "an unsealing index")


def revocation(value: bytes) -> None:
    _nonempty(value, WARRANT_DOCUMENT_MAX_LEN, "a revocation")


def time_value(value: int, what: str = "a time") -> None:
    _int_range(value, INT64_MAX, what)


def log_index(value: int) -> None:
    _int_range(value, INT64_MAX, "a log index")


def page_limit(limit: int, high: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= high:
        raise InvalidArgument(f"a page limit must be an integer in 1..{high}")


def warrant_page(limit: int) -> None:
    page_limit(limit, WARRANT_PAGE_MAX)


def intercept_batch(batch: Sequence[NewIntercept]) -> None:
    if len(batch) > INTERCEPT_BATCH_MAX:
        raise LimitExceeded(f"one call stores at most {INTERCEPT_BATCH_MAX} intercepts")
    for item in batch:
        if not isinstance(item, NewIntercept):
            raise InvalidArgument("expected NewIntercept items")
        warrant_id(item.warrant_id)
        _int_range(item.mail_id, INT64_MAX, "a server message id")
        _int_range(item.server_time, INT64_MAX, "a server time")
        device(item.sender_account, item.sender_device)
        device(item.recipient_account, item.recipient_device)
        _size(item.envelope, ENVELOPE_MAX_LEN, "an envelope")
        if not isinstance(item.kind, MailKind):
            raise InvalidArgument("unknown mail kind")
        if item.kind is MailKind.GROUP:
            if item.membership is None:
                raise InvalidArgument("a group intercept carries its membership update")
            _nonempty(item.membership, GROUP_UPDATE_MAX_LEN, "a membership update")
        elif item.membership is not None:
            raise InvalidArgument("only a group intercept carries a membership update")


def intercept_page(warrant: bytes, after_id: int, limit: int) -> None:
    warrant_id(warrant)
    _int_range(after_id, INT64_MAX, "an intercept id")
    page_limit(limit, INTERCEPT_PAGE_MAX)


def epoch(value: int) -> None:
    _int_range(value, EPOCH_MAX, "an epoch")


def epoch_record(record: EpochRecord) -> None:
    if not isinstance(record, EpochRecord):
        raise InvalidArgument("expected an EpochRecord")
    epoch(record.epoch)
    _int_range(record.index, INT64_MAX, "a log index")
    _nonempty(record.transcript, EPOCH_TRANSCRIPT_MAX_LEN, "a transcript")
    if record.confirmations is not None:
        _nonempty(record.confirmations, EPOCH_CONFIRMATIONS_MAX_LEN, "the confirmations")


def epoch_page(limit: int) -> None:
    page_limit(limit, EPOCH_PAGE_MAX)
