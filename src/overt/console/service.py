"""The moderation console's service layer: everything a moderator can do, without HTTP.

The web pages (:mod:`overt.console.app`), the CLI (``overt console add-moderator``) and the demo
call this; it is given only what it uses — the report, standing and moderator stores, the
franking key (to re-verify evidence before it is shown or sent on), the CyberTipline settings,
a clock and an RNG.

**Roles and actions.** Two roles, ``moderator`` and ``lead``:

================  =====================  ================================================
action            who                    effect
================  =====================  ================================================
view, download    both                   shows exactly what the reporter revealed
                                         (audited: who looked at which evidence, when)
dismiss           both (lead: any item)  closes the item
warn              both (lead: any item)  closes it, counts a warning on the account
suspend           both (lead: any item)  closes it, suspends the account (the relay's
                                         :class:`~overt.server.reports.SuspensionGate`
                                         then refuses its requests)
propose           both                   a report goes to the leads (``needs_lead``)
escalate          lead only              builds the CyberTipline report, submits it,
                                         closes the item
decline           lead only              sends a proposal back to the queue
lift              lead only              lifts an account's suspension
================  =====================  ================================================

Escalation is for leads only: a CyberTipline report is a legal act with a provider's name on
it, so a second person decides; moderators who find something that must be escalated propose
it and the item moves up the queue to the leads. Items waiting for a lead are acted on by
leads only.

Every action is a compare-and-set on the item's state written together with its audit entry
(:meth:`~overt.storage.moderation.ReportStore.act`): when two moderators act on one item at
once, one wins and the other is told the item changed. Views, downloads, logins and lifted
suspensions are audited too.

**Evidence.** A report's page re-verifies its evidence bundle
(:func:`overt.safety.reverify_bundle`: the report's SHA-256, every commitment and tag, every
attachment) and shows only what the report reveals. An attachment is downloadable only if the
reporter revealed it; the download decrypts the revealed ciphertext with the committed key on
the server (key-committing ``open_sealed``) and re-checks size and hashes every time.

**Escalation.** ``Escalation.from_verified`` → :func:`~overt.safety.cybertip.build_report_xml`
→ :class:`~overt.safety.cybertip.CyberTipClient` (submit → upload → fileinfo → finish) at the
configured endpoint, with the state of each submission kept in a
:class:`~overt.safety.submission.SubmissionStore` under the escalation id ``overt-item-<id>``:
a lead who retries after an outage resumes the same submission.

This module knows no HTTP (the CyberTipline client aside) and no HTML. Time and randomness
come in.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

import httpx

from overt.console.matches import MatchEvidence, is_match, match_escalation, match_evidence
from overt.crypto import Rng, constant_time_eq, open_sealed, sha256
from overt.crypto.passwords import SCRYPT_LOG_N, scrypt_hash, scrypt_verify
from overt.errors import ConfigurationError, InvalidMessage, LocalError, OvertError, RemoteError
from overt.safety import (
    ATTACHMENT_AD,
    ATTACHMENT_LABEL,
    EvidenceBundle,
    VerifiedMessage,
    VerifiedReport,
    reverify_bundle,
)
from overt.safety.cybertip import (
    CyberTipClient,
    CyberTipCredentials,
    Escalation,
    IncidentType,
    ProviderProfile,
)
from overt.safety.submission import SubmissionState, SubmissionStore
from overt.storage.limits import MODERATOR_NAME_MAX_LEN, SAFETY_TEXT_MAX_LEN
from overt.storage.matching import MatchingStore
from overt.storage.moderation import (
    AuditEntry,
    ItemKind,
    ItemState,
    ModeratorRecord,
    ModeratorStore,
    NewAuditEntry,
    QueueItem,
    ReportStore,
    Standing,
    StandingStore,
    StoredReport,
    check_moderator_name,
)
from overt.wire import Address

_log = logging.getLogger("overt.console")

Clock = Callable[[], int]

#: Items one queue page shows.
QUEUE_PAGE: Final = 200
#: Audit entries one page shows.
AUDIT_PAGE: Final = 100
#: Failed logins of one name within :data:`LOGIN_WINDOW_MS` before it is refused for a while.
LOGIN_FAILURES_MAX: Final = 5
LOGIN_WINDOW_MS: Final = 15 * 60 * 1000
#: Names whose failed logins one node remembers.
LOGIN_TRACKED_NAMES: Final = 10_000
#: Password checks running at once (scrypt takes 128 MiB each at the default cost).
MAX_CONCURRENT_LOGINS: Final = 2
#: Shortest password ``add-moderator`` accepts.
MIN_PASSWORD_CHARS: Final = 12
#: Moderator notes (they go into the audit trail and, escalated, to NCMEC).
MAX_NOTES_BYTES: Final = SAFETY_TEXT_MAX_LEN - 256

ESCALATION_PREFIX: Final = "overt-item-"


class Role(StrEnum):
    MODERATOR = "moderator"
    LEAD = "lead"


class Action(StrEnum):
    """What the audit trail records (the values are the stored action labels)."""

    LOGIN = "login"
    LOGIN_REFUSED = "login_refused"
    LOGOUT = "logout"
    VIEW = "view"
    DOWNLOAD = "download"
    DISMISS = "dismiss"
    WARN = "warn"
    SUSPEND = "suspend"
    PROPOSE = "propose_escalation"
    DECLINE = "decline_escalation"
    ESCALATE = "escalate"
    ESCALATION_FAILED = "escalation_failed"
    LIFT = "lift_suspension"
    ADD_MODERATOR = "add_moderator"


# ----------------------------------------------------------------------------- errors


class ConsoleError(RemoteError):
    """A moderator's request that cannot be done (the message says why and what to do)."""

    status_hint = 400


class NotAllowed(ConsoleError):
    status_hint = 403


class NoSuchItem(ConsoleError):
    status_hint = 404


class ItemChanged(ConsoleError):
    """Someone acted on the item first."""

    status_hint = 409


# ----------------------------------------------------------------------------- views


@dataclass(frozen=True, slots=True)
class Moderator:
    name: str
    role: Role

    @property
    def is_lead(self) -> bool:
        return self.role is Role.LEAD


@dataclass(frozen=True, slots=True)
class AttachmentView:
    file_name: str
    content_type: str
    size: int
    plaintext_sha256: str
    ciphertext_sha256: str
    #: The reporter revealed the content (its ciphertext, its plaintext or both).
    revealed: bool
    ciphertext_revealed: bool


@dataclass(frozen=True, slots=True)
class MessageView:
    """One reported message, exactly as revealed and verified."""

    index: int
    sender: Address
    recipient: Address
    sent_ms: int
    server_id: int
    server_time_ms: int
    text: str = field(repr=False)
    attachment: AttachmentView | None


@dataclass(frozen=True, slots=True)
class ItemView:
    """One queue item as its page shows it."""

    item: QueueItem
    report: StoredReport | None
    reporter: Address | None
    comment: str = field(repr=False)
    messages: tuple[MessageView, ...]
    report_sha256: str | None
    #: Why the evidence cannot be shown (purged, does not verify), or None.
    problem: str | None
    standing: Standing | None
    signal: dict[str, object]
    audit: tuple[AuditEntry, ...]
    #: A known-content match's revealed payload (console/matches.py), else None.
    match: MatchEvidence | None = None


@dataclass(frozen=True, slots=True)
class Download:
    file_name: str
    content: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class EscalationSettings:
    """Where and as whom CyberTipline reports are submitted, and where their state is kept."""

    base_url: str
    credentials: CyberTipCredentials
    provider: ProviderProfile
    submissions: SubmissionStore
    #: Replaces the network (tests: ``httpx.ASGITransport`` of the stand-in).
    transport: httpx.AsyncBaseTransport | None = None
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep


def name_of(account: bytes) -> str:
    """An account id as people see it (account ids are UTF-8 names)."""
    return account.decode("utf-8", errors="replace")


def _check_notes(notes: str) -> str:
    notes = notes.strip()
    if len(notes.encode("utf-8", "replace")) > MAX_NOTES_BYTES:
        raise ConsoleError(f"notes are limited to {MAX_NOTES_BYTES} bytes; shorten them")
    return notes


async def create_moderator(
    moderators: ModeratorStore,
    reports: ReportStore,
    name: str,
    role: Role,
    password: str,
    *,
    rng: Rng,
    now: int,
    log_n: int = SCRYPT_LOG_N,
) -> None:
    """Create a console account with an scrypt hash of ``password``, and audit it.
    ``LocalError`` for a bad name or a short password, ``AlreadyExists`` if the name is taken."""
    try:
        check_moderator_name(name)
    except OvertError:
        raise LocalError("a moderator name is 1..64 characters of a-z 0-9 _ . -") from None
    if len(password) < MIN_PASSWORD_CHARS:
        raise LocalError(f"a moderator password has at least {MIN_PASSWORD_CHARS} characters")
    try:
        hashed = await asyncio.to_thread(scrypt_hash, password, rng, log_n=log_n)
    except ValueError as exc:
        raise LocalError(f"this password cannot be used: {exc}") from None
    role = Role(role)
    await moderators.add(ModeratorRecord(name, role.value, hashed, now))
    await reports.record(
        NewAuditEntry(now, name, Action.ADD_MODERATOR.value, detail=f"role {role.value}")
    )


class _Throttle:
    """Failed logins per name, in memory."""

    def __init__(self) -> None:
        self._failures: dict[str, deque[int]] = {}

    def blocked(self, name: str, now: int) -> bool:
        times = self._failures.get(name)
        if times is None:
            return False
        while times and times[0] <= now - LOGIN_WINDOW_MS:
            times.popleft()
        return len(times) >= LOGIN_FAILURES_MAX

    def failed(self, name: str, now: int) -> None:
        if name not in self._failures and len(self._failures) >= LOGIN_TRACKED_NAMES:
            self._failures.pop(next(iter(self._failures)))
        self._failures.setdefault(name, deque(maxlen=LOGIN_FAILURES_MAX)).append(now)

    def succeeded(self, name: str) -> None:
        self._failures.pop(name, None)


class ConsoleService:
    """The console's operations (see the module docstring)."""

    def __init__(
        self,
        *,
        franking_key: bytes,
        reports: ReportStore | None,
        standing: StandingStore | None,
        moderators: ModeratorStore | None,
        escalation: EscalationSettings | None,
        clock: Clock,
        rng: Rng,
        on_standing_change: Callable[[bytes], None] | None = None,
        matching: MatchingStore | None = None,
    ) -> None:
        if reports is None or standing is None or moderators is None:
            raise ConfigurationError(
                "this storage backend has no safety stores (Storage.reports, .standing, "
                ".moderators); the moderation console needs them"
            )
        self._key = franking_key
        self._reports = reports
        self._standing = standing
        self._moderators = moderators
        self._escalation = escalation
        self._matching = matching
        self._clock = clock
        self._rng = rng
        self._on_standing_change = on_standing_change or (lambda _: None)
        self._throttle = _Throttle()
        self._logins = asyncio.Semaphore(MAX_CONCURRENT_LOGINS)
        self._escalating = asyncio.Lock()
        # A hash to check unknown names against, so that they take as long as known ones
        # (made on first use, off the event loop).
        self._decoy: str | None = None

    @property
    def escalation_enabled(self) -> bool:
        return self._escalation is not None

    # ------------------------------------------------------------------ moderators

    async def add_moderator(
        self, name: str, role: Role, password: str, *, log_n: int = SCRYPT_LOG_N
    ) -> None:
        """Create a console account (see :func:`create_moderator`)."""
        await create_moderator(
            self._moderators, self._reports, name, role, password, rng=self._rng,
            now=self._clock(), log_n=log_n,
        )  # fmt: skip

    async def moderator(self, name: str) -> Moderator | None:
        """The enabled moderator of this name, or None."""
        try:
            record = await self._moderators.get(name)
        except OvertError:
            return None
        if record is None or record.disabled or record.role not in Role._value2member_map_:
            return None
        return Moderator(record.name, Role(record.role))

    async def login(self, name: str, password: str) -> Moderator | None:
        """The moderator if the password is right; None otherwise (also while the name is
        throttled). Unknown names cost as much as known ones."""
        now = self._clock()
        name = name[:MODERATOR_NAME_MAX_LEN]  # what the throttle remembers stays bounded
        if self._throttle.blocked(name, now):
            return None
        try:
            check_moderator_name(name)
            record = await self._moderators.get(name)
        except OvertError:
            record = None
        if record is None and self._decoy is None:
            self._decoy = await asyncio.to_thread(scrypt_hash, "not a password", self._rng)
        hashed = record.password_hash if record is not None else self._decoy or ""
        async with self._logins:
            ok = await asyncio.to_thread(scrypt_verify, password, hashed)
        moderator = await self.moderator(name) if ok and record is not None else None
        if moderator is None:
            self._throttle.failed(name, now)
            if record is not None:
                await self._audit(NewAuditEntry(now, record.name, Action.LOGIN_REFUSED.value))
            return None
        self._throttle.succeeded(name)
        await self._audit(NewAuditEntry(now, moderator.name, Action.LOGIN.value))
        return moderator

    async def logout(self, moderator: Moderator) -> None:
        await self._audit(NewAuditEntry(self._clock(), moderator.name, Action.LOGOUT.value))

    async def _audit(self, entry: NewAuditEntry) -> None:
        await self._reports.record(entry)

    # ------------------------------------------------------------------ reading

    async def queue(self) -> tuple[QueueItem, ...]:
        """Open items and proposals waiting for a lead: highest severity first, then oldest."""
        return await self._reports.queue({ItemState.OPEN, ItemState.NEEDS_LEAD}, QUEUE_PAGE)

    async def audit(self, before_id: int | None = None) -> tuple[AuditEntry, ...]:
        return await self._reports.audit(before_id=before_id, limit=AUDIT_PAGE)

    async def _item(self, item_id: int) -> QueueItem:
        item = await self._reports.item(item_id) if 0 < item_id < 1 << 63 else None
        if item is None:
            raise NoSuchItem(f"there is no queue item {item_id}")
        return item

    async def _verified(self, item: QueueItem) -> tuple[StoredReport | None, VerifiedReport]:
        """The item's report, re-verified; :class:`ConsoleError` saying why not."""
        if item.kind is not ItemKind.REPORT or item.report_id is None:
            raise ConsoleError("this item is a metadata signal: it has no evidence")
        stored = await self._reports.get(item.report_id)
        if stored is None or stored.bundle is None:
            raise ConsoleError(
                "this report's evidence was deleted at the end of its retention period"
            )
        try:
            bundle = EvidenceBundle.decode(stored.bundle)
            verified = await asyncio.to_thread(reverify_bundle, bundle, self._key)
        except (OvertError, ValueError) as exc:
            raise ConsoleError(
                f"this report's evidence no longer verifies ({type(exc).__name__}): do not act "
                "on it; tell the safety team's engineers"
            ) from None
        return stored, verified

    async def view(self, moderator: Moderator, item_id: int) -> ItemView:
        """An item's page: what the reporter revealed (re-verified) or the signal's counts,
        the account's standing and the item's audit entries. Audited."""
        item = await self._item(item_id)
        stored: StoredReport | None = None
        messages: tuple[MessageView, ...] = ()
        reporter, comment, digest, problem = None, "", None, None
        signal: dict[str, object] = {}
        if item.kind is ItemKind.REPORT:
            try:
                stored, verified = await self._verified(item)
            except ConsoleError as exc:
                problem = str(exc)
            else:
                messages = tuple(_message_view(m) for m in verified.messages)
                reporter, comment = verified.reporter, verified.comment
                digest = verified.report_sha256.hex()
        else:
            try:
                decoded = json.loads(item.detail or b"{}")
                signal = decoded if isinstance(decoded, dict) else {}
            except ValueError:
                signal = {}
        now = self._clock()
        await self._audit(
            NewAuditEntry(now, moderator.name, Action.VIEW.value, item.id, item.subject_account)
        )
        match = await match_evidence(self._matching, item)
        if is_match(item) and match is None:
            problem = "this match's payload is no longer held: do not act on it"
        return ItemView(
            item, stored, reporter, comment, messages, digest, problem,
            await self._standing.get(item.subject_account),
            signal, await self._reports.audit(item_id=item.id, limit=AUDIT_PAGE), match,
        )  # fmt: skip

    async def derivative(self, moderator: Moderator, item_id: int) -> Download:
        """A known-content match's visual derivative as PNG (all a moderator sees of the
        image). Audited."""
        item = await self._item(item_id)
        match = await match_evidence(self._matching, item)
        if match is None:
            raise ConsoleError("this item is not a known-content match with a held payload")
        await self._audit(
            NewAuditEntry(self._clock(), moderator.name, Action.DOWNLOAD.value, item.id,
                          item.subject_account, "visual derivative")
        )  # fmt: skip
        return Download(f"derivative-{item.id}.png", match.derivative_png())

    async def attachment(self, moderator: Moderator, item_id: int, index: int) -> Download:
        """The revealed attachment of reported message ``index`` (1-based): the revealed
        ciphertext opened with the committed key here and now, size and hashes checked again
        (or the revealed plaintext, checked). Audited."""
        item = await self._item(item_id)
        _, verified = await self._verified(item)
        if not 1 <= index <= len(verified.messages):
            raise NoSuchItem(f"the report has no message {index}")
        message = verified.report.messages[index - 1]
        pointer = verified.messages[index - 1].body.attachment
        revealed = message.attachment
        if pointer is None or revealed is None:
            raise ConsoleError(f"the reporter did not reveal an attachment of message {index}")
        content = revealed.plaintext
        if revealed.ciphertext is not None:
            if not constant_time_eq(sha256(revealed.ciphertext), pointer.ciphertext_sha256):
                raise ConsoleError("the attachment's ciphertext does not match its hash")
            try:
                content = open_sealed(
                    pointer.key, revealed.ciphertext, ATTACHMENT_AD, ATTACHMENT_LABEL
                )
            except InvalidMessage:
                raise ConsoleError("the attachment does not open under its committed key") from None
        if (
            content is None
            or len(content) != pointer.size
            or not constant_time_eq(sha256(content), pointer.plaintext_sha256)
        ):
            raise ConsoleError("the attachment does not match the hashes its sender committed to")
        await self._audit(
            NewAuditEntry(self._clock(), moderator.name, Action.DOWNLOAD.value, item.id,
                          item.subject_account, f"message {index}: {pointer.file_name}"[:200])
        )  # fmt: skip
        return Download(pointer.file_name or f"attachment-{item.id}-{index}", content)

    # ------------------------------------------------------------------ actions

    def _may_act(self, moderator: Moderator, item: QueueItem) -> None:
        if item.state is ItemState.CLOSED:
            raise ItemChanged(f"item {item.id} is closed ({item.resolution}); nothing to do")
        if item.state is ItemState.NEEDS_LEAD and not moderator.is_lead:
            raise NotAllowed(f"item {item.id} waits for a lead's decision on escalation")

    async def _act(
        self, moderator: Moderator, item: QueueItem, new: ItemState, action: Action, notes: str
    ) -> None:
        entry = NewAuditEntry(
            self._clock(), moderator.name, action.value, item.id, item.subject_account, notes
        )
        if not await self._reports.act(item.id, item.state, new, entry):
            raise ItemChanged(f"item {item.id} was changed by someone else; look at it again")

    async def dismiss(self, moderator: Moderator, item_id: int, notes: str = "") -> None:
        item = await self._item(item_id)
        self._may_act(moderator, item)
        await self._act(moderator, item, ItemState.CLOSED, Action.DISMISS, _check_notes(notes))

    async def warn(self, moderator: Moderator, item_id: int, notes: str = "") -> Standing:
        item = await self._item(item_id)
        self._may_act(moderator, item)
        notes = _check_notes(notes)
        await self._act(moderator, item, ItemState.CLOSED, Action.WARN, notes)
        standing = await self._standing.warn(item.subject_account, notes, self._clock())
        self._on_standing_change(item.subject_account)
        return standing

    async def suspend(self, moderator: Moderator, item_id: int, notes: str = "") -> Standing:
        item = await self._item(item_id)
        self._may_act(moderator, item)
        notes = _check_notes(notes)
        await self._act(moderator, item, ItemState.CLOSED, Action.SUSPEND, notes)
        standing = await self._standing.set_suspended(
            item.subject_account, True, notes, self._clock()
        )
        self._on_standing_change(item.subject_account)
        return standing

    async def propose(self, moderator: Moderator, item_id: int, notes: str = "") -> None:
        item = await self._item(item_id)
        self._may_act(moderator, item)
        if item.kind is not ItemKind.REPORT and not is_match(item):
            raise ConsoleError("only a report or a known-content match carries evidence")
        if item.state is not ItemState.OPEN:
            raise ItemChanged(f"item {item.id} already waits for a lead")
        await self._act(moderator, item, ItemState.NEEDS_LEAD, Action.PROPOSE, _check_notes(notes))

    async def decline(self, moderator: Moderator, item_id: int, notes: str = "") -> None:
        if not moderator.is_lead:
            raise NotAllowed("only a lead decides on a proposed escalation")
        item = await self._item(item_id)
        if item.state is not ItemState.NEEDS_LEAD:
            raise ItemChanged(f"item {item.id} is not waiting for a lead")
        await self._act(moderator, item, ItemState.OPEN, Action.DECLINE, _check_notes(notes))

    async def lift_item(self, moderator: Moderator, item_id: int, notes: str = "") -> Standing:
        """Lift the suspension of the account an item is about (leads only)."""
        item = await self._item(item_id)
        return await self.lift(moderator, item.subject_account, notes)

    async def lift(self, moderator: Moderator, account: bytes, notes: str = "") -> Standing:
        if not moderator.is_lead:
            raise NotAllowed("only a lead lifts a suspension")
        notes = _check_notes(notes)
        now = self._clock()
        standing = await self._standing.set_suspended(account, False, notes, now)
        await self._audit(
            NewAuditEntry(now, moderator.name, Action.LIFT.value, None, account, notes)
        )
        self._on_standing_change(account)
        return standing

    async def escalate(
        self,
        moderator: Moderator,
        item_id: int,
        *,
        incident_type: IncidentType,
        notes: str,
        high_priority_reason: str | None = None,
    ) -> SubmissionState:
        """Submit the item's report to the CyberTipline and close the item (leads only).

        :class:`~overt.safety.CyberTipUnavailable` leaves the item as it was and the submission
        state kept: escalating again with the same notes resumes it.
        """
        if not moderator.is_lead:
            raise NotAllowed("only a lead escalates to the CyberTipline; propose it instead")
        settings = self._escalation
        if settings is None:
            raise ConsoleError(
                "no CyberTipline endpoint is configured (--cybertip-url): this console cannot "
                "escalate; contact the safety team's engineers"
            )
        notes = _check_notes(notes)
        if not notes:
            raise ConsoleError("write what you saw and why it is reported: notes go to NCMEC")
        async with self._escalating:
            item = await self._item(item_id)
            self._may_act(moderator, item)
            escalation = await self._match_escalation(
                item, settings, incident_type, notes, high_priority_reason
            )
            if escalation is None:
                _, verified = await self._verified(item)
                escalation = Escalation.from_verified(
                    verified,
                    escalation_id=f"{ESCALATION_PREFIX}{item.id}",
                    provider=settings.provider,
                    incident_type=incident_type,
                    moderator_notes=notes,
                    reported_account=item.subject_account,
                    high_priority_reason=high_priority_reason or None,
                    reported_screen_name=name_of(item.subject_account),
                )
            try:
                async with CyberTipClient(
                    settings.base_url, settings.credentials, store=settings.submissions,
                    transport=settings.transport, sleep=settings.sleep, rng=self._rng,
                ) as client:  # fmt: skip
                    state = await client.submit(escalation)
            except OvertError as exc:
                await self._audit(
                    NewAuditEntry(self._clock(), moderator.name, Action.ESCALATION_FAILED.value,
                                  item.id, item.subject_account, str(exc)[:1000])
                )  # fmt: skip
                raise
            detail = f"CyberTipline report {state.report_id} ({incident_type.value}). {notes}"
            await self._act(moderator, item, ItemState.CLOSED, Action.ESCALATE, detail[:4000])
        _log.info("escalated", extra={"fields": {"item": item.id, "report": state.report_id}})
        return state

    async def _match_escalation(
        self,
        item: QueueItem,
        settings: EscalationSettings,
        incident_type: IncidentType,
        notes: str,
        high_priority_reason: str | None,
    ) -> Escalation | None:
        """The escalation of a known-content match item; None for any other item."""
        if not is_match(item):
            return None
        evidence = await match_evidence(self._matching, item)
        if evidence is None:
            raise ConsoleError("this match's payload is no longer held: it cannot be escalated")
        return match_escalation(
            item, evidence, escalation_id=f"{ESCALATION_PREFIX}{item.id}",
            provider=settings.provider, incident_type=incident_type, moderator_notes=notes,
            high_priority_reason=high_priority_reason or None,
            screen_name=name_of(item.subject_account),
        )  # fmt: skip


def _message_view(m: VerifiedMessage) -> MessageView:
    att = None
    if m.attachment is not None:
        p = m.attachment.pointer
        att = AttachmentView(
            p.file_name, p.content_type, p.size, p.plaintext_sha256.hex(),
            p.ciphertext_sha256.hex(), m.attachment.plaintext is not None,
            m.attachment.ciphertext_opened,
        )  # fmt: skip
    return MessageView(m.index, m.sender, m.recipient, m.sent_ms, m.server_id, m.server_time_ms,
                       m.body.text, att)  # fmt: skip


__all__ = [
    "AUDIT_PAGE",
    "LOGIN_FAILURES_MAX",
    "QUEUE_PAGE",
    "Action",
    "AttachmentView",
    "ConsoleError",
    "ConsoleService",
    "Download",
    "EscalationSettings",
    "ItemChanged",
    "ItemView",
    "MessageView",
    "Moderator",
    "NoSuchItem",
    "NotAllowed",
    "Role",
    "create_moderator",
    "name_of",
]
