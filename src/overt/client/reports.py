"""Reporting abuse: turn messages this device received into a verifiable report and send it.

:func:`report` looks the messages up in the profile's store, rebuilds for each exactly what the
server needs to check it (docs/safety.md, "Reports") and sends ``POST /v1/reports``:

* the envelope fields the franking commitment and the tag cover — the sender, this device as
  recipient, the sender's timestamp, the message id, the conversation id — and the commitment
  itself, recomputed from the stored franking key and body (the client verified it when the
  message arrived, and drops any message whose commitment does not verify, so only messages it
  showed can be reported);
* the server's delivery record (server id, server time, reporting tag) and the franking key
  and exact body bytes the store kept;
* for an attachment, its ciphertext, downloaded again from the server and checked against the
  committed hash (the key is in the body already), within :data:`REPORT_ATTACHMENT_BUDGET`;
  an attachment that is gone or over the budget is reported by its committed hashes only.

Only messages received from ``peer`` in the direct conversation with it can be reported
(never one's own). :func:`report_group` reports messages received in a group: each carries
the whole group message as delivered and this device's own reporting tag. The report is sent
as it is built; nothing is stored locally.

This module knows the client's store and the API; the report format is :mod:`overt.safety`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Final

from overt.client import _api
from overt.client._b64 import b64e
from overt.client.body import AttachmentPointer
from overt.client.client import Client
from overt.client.errors import NotFound
from overt.client.group_store import StoredGroupMessage
from overt.client.model import account_of
from overt.client.store import Direction, StoredMessage
from overt.crypto import SEAL_OVERHEAD, constant_time_eq, sha256
from overt.errors import LocalError
from overt.protocol import direct_conversation_id, franking
from overt.safety import Report, ReportedMessage, RevealedAttachment
from overt.safety.limits import MAX_REPORT_COMMENT_BYTES, MAX_REPORTED_MESSAGES
from overt.wire import Address

log = logging.getLogger("overt.client.reports")

#: The categories the server takes (overt.server.reports.Category; a test checks they agree).
REPORT_CATEGORIES: Final = ("child_safety", "violence", "harassment", "spam", "other")

#: Attachment ciphertext one report reveals at most, in bytes (the server takes request
#: bodies of up to 32 MiB, and base64 grows bytes by a third).
REPORT_ATTACHMENT_BUDGET: Final = 20 * 1024 * 1024


async def report(
    client: Client,
    peer: str,
    message_ids: Sequence[bytes],
    *,
    category: str,
    comment: str = "",
    reveal_attachments: bool = True,
) -> str:
    """Report the messages ``message_ids`` received from ``peer`` as ``category`` (one of
    :data:`REPORT_CATEGORIES`), with an optional comment; return the report's id (base64url)
    as the server acknowledged it.

    :class:`LocalError` for an unknown category, too many or repeated ids, or an id that is
    not a message this device received from ``peer``; the server's refusals arrive as
    :class:`~overt.client.errors.ServerRefused` (``409`` if a message was reported before).
    """
    _check_request(category, message_ids, comment)
    # A module of the client package: it reads the profile's store and signs requests as the
    # facade does (Client._active, ._store, ._request), without widening Client's public API.
    profile = client._active()
    store = client._store
    account = account_of(peer)
    me = profile.device.address
    cid = direct_conversation_id(profile.account, account)
    budget = REPORT_ATTACHMENT_BUDGET if reveal_attachments else 0
    messages: list[ReportedMessage] = []
    for mid in message_ids:
        stored = store.message(cid, account, mid)
        if stored is None or stored.direction is not Direction.INCOMING:
            raise LocalError(
                f"no message {mid.hex()[:12]} received from {peer}: only messages this device "
                "received and showed can be reported"
            )
        delivery = _delivery(stored)
        revealed, budget = await _reveal(client, stored.attachment, budget)
        messages.append(_reported(stored, delivery, me, cid, revealed))
    return await _send(client, Report(me, tuple(messages), comment), category, "message(s)")


async def report_group(
    client: Client,
    group: str,
    message_ids: Sequence[bytes],
    *,
    category: str,
    comment: str = "",
    reveal_attachments: bool = True,
) -> str:
    """Report the messages ``message_ids`` this device received in ``group`` (its name or
    id); return the report's id as the server acknowledged it.

    Each message is revealed as delivered: the whole group message (the server reads sender,
    time, ids and franking commitment from it), this device as recipient, the mail's server
    id, time and reporting tag — the relay computed that tag for this device alone, so the
    report verifies for this member only — and the franking key and body the client kept.
    Errors as for :func:`report`.
    """
    _check_request(category, message_ids, comment)
    profile = client._active()
    me = profile.device.address
    gid = client._groups.resolve(group).group_id
    budget = REPORT_ATTACHMENT_BUDGET if reveal_attachments else 0
    messages: list[ReportedMessage] = []
    for mid in message_ids:
        found = client._groups.store.received(gid, mid)
        if len(found) != 1:
            raise LocalError(
                f"no message {mid.hex()[:12]} received in this group: only messages this "
                "device received and showed can be reported"
            )
        m = found[0]
        server_id, server_time_ms, reporting_tag = _delivery(m)
        revealed, budget = await _reveal(client, m.attachment, budget)
        reported = ReportedMessage.from_group_delivery(
            m.message, recipient=me, franking_key=m.franking_key, body=m.body,
            server_id=server_id, server_time_ms=server_time_ms, reporting_tag=reporting_tag,
            attachment=revealed,
        )  # fmt: skip
        messages.append(reported)
    return await _send(client, Report(me, tuple(messages), comment), category, "group message(s)")


def _check_request(category: str, message_ids: Sequence[bytes], comment: str) -> None:
    if category not in REPORT_CATEGORIES:
        raise LocalError(f"category must be one of {', '.join(REPORT_CATEGORIES)}")
    if not 1 <= len(message_ids) <= MAX_REPORTED_MESSAGES:
        raise LocalError(f"a report names 1..{MAX_REPORTED_MESSAGES} messages")
    if len(set(message_ids)) != len(message_ids):
        raise LocalError("a message is named twice")
    if len(comment.encode("utf-8", "replace")) > MAX_REPORT_COMMENT_BYTES:
        raise LocalError(f"the comment is over {MAX_REPORT_COMMENT_BYTES} bytes; shorten it")


async def _send(client: Client, report: Report, category: str, what: str) -> str:
    """``POST /v1/reports``; the report's id as the server acknowledged it."""
    body = {"category": category, "report": report.to_json()}
    answer = await client._request("POST", "/v1/reports", json=body)
    report_id = _api.text(_api.obj(answer.json(), "report answer"), "id", "report answer")
    log.info("reported %d %s", len(report.messages), what)
    return report_id


def _delivery(m: StoredMessage | StoredGroupMessage) -> tuple[int, int, bytes]:
    """The server's delivery record of a stored message: server id, time, reporting tag."""
    if m.server_id is None or m.server_time_ms is None or m.reporting_tag is None:
        raise LocalError("this message has no delivery record from the server: not reportable")
    return m.server_id, m.server_time_ms, m.reporting_tag


def _reported(
    m: StoredMessage,
    delivery: tuple[int, int, bytes],
    me: Address,
    cid: bytes,
    attachment: RevealedAttachment | None,
) -> ReportedMessage:
    server_id, server_time_ms, reporting_tag = delivery
    ctx = franking.context(m.sender, cid, m.message_id, m.sent_ms)
    return ReportedMessage(
        sender=m.sender, recipient=me, timestamp_ms=m.sent_ms, message_id=m.message_id,
        conversation_id=cid, franking_commitment=franking.commit(m.franking_key, ctx, m.body),
        server_id=server_id, server_time_ms=server_time_ms, reporting_tag=reporting_tag,
        franking_key=m.franking_key, body=m.body, attachment=attachment,
    )  # fmt: skip


async def _reveal(
    client: Client, attachment: bytes | None, budget: int
) -> tuple[RevealedAttachment | None, int]:
    """The ciphertext of a stored message's attachment (its encoded pointer) from the server,
    checked, if it fits ``budget``."""
    if attachment is None:
        return None, budget
    pointer = AttachmentPointer.decode(attachment)
    if pointer.size + SEAL_OVERHEAD > budget:
        return None, budget
    try:
        answer = await client._request("GET", f"/v1/attachments/{b64e(pointer.blob_id)}")
    except NotFound:
        log.info("a reported attachment is gone from the server; its hashes are reported")
        return None, budget
    ciphertext = answer.content
    if not constant_time_eq(sha256(ciphertext), pointer.ciphertext_sha256):
        log.warning("a reported attachment's ciphertext does not match; its hashes are reported")
        return None, budget
    return RevealedAttachment(pointer.key, ciphertext, None), budget - len(ciphertext)


__all__ = ["REPORT_ATTACHMENT_BUDGET", "REPORT_CATEGORIES", "report", "report_group"]
