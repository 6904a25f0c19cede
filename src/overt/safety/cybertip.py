"""Escalation to NCMEC's CyberTipline: the report document and a resumable API client.

**The document.** :func:`build_report_xml` turns an :class:`Escalation` (a verified report, the
moderator's notes and annotations, the reported account and the files with their hashes) into a
``<report>`` shaped after the public description of the CyberTipline Reporting API
(https://report.cybertip.org/ispws/documentation): an ``incidentSummary`` (incident type, time,
annotations), one ``internetDetails/chatImIncident`` per reported message, the ``reporter`` (the
provider's reporting person, not the user who reported), ``personOrUserReported`` and
``intendedRecipient`` (accounts, by base64url id), and ``additionalInfo`` (the moderator's notes
and how the evidence was verified). :func:`build_fileinfo_xml` writes the ``fileDetails`` of one
uploaded file (original name, the SHA-256 the sender committed to as ``originalFileHash``, the
ciphertext hash as a ``HASH`` detail). Both are validated against Overt's own XSD
(``schemas/cybertip-report.xsd``) before they leave; one that fails is a bug here
(:class:`EscalationInvalid`).

**The client.** :class:`CyberTipClient` runs ``/submit`` → per file ``/upload`` (multipart) and
``/fileinfo`` (XML) → ``/finish``, and ``/retract``, with HTTP Basic credentials. A 5xx answer
or a connection error is retried with exponential backoff and jitter (bounds in
:mod:`overt.safety.limits`); an answer with a non-zero ``responseCode`` is final
(:class:`CyberTipRejected`). Every step is recorded in a :class:`SubmissionStore` before it is
made and after it succeeds (:mod:`overt.safety.submission`), so a process that dies between
steps resumes with the same report id instead of submitting twice.

This module never sees message keys, the franking key or anything a reporter did not reveal; it
takes time and randomness from its caller (``sleep`` and ``rng``), and does not import
overt.server, overt.client or overt.cli.
"""

from __future__ import annotations

import asyncio
import io
import re
import xml.etree.ElementTree as ET  # builds documents only; parsing goes through xmlschema
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from functools import cache
from importlib.resources import files
from typing import Final, Self

import httpx
import xmlschema

from overt.crypto import Rng, SystemRng, sha256
from overt.errors import DecodeError, LimitExceeded
from overt.safety._b64 import b64e
from overt.safety.errors import (
    CyberTipRejected,
    CyberTipUnavailable,
    EscalationInvalid,
    SubmissionStateError,
)
from overt.safety.limits import (
    CYBERTIP_BACKOFF_FACTOR,
    CYBERTIP_BACKOFF_INITIAL_S,
    CYBERTIP_BACKOFF_MAX_S,
    CYBERTIP_MAX_ATTEMPTS,
    CYBERTIP_MAX_FILES,
    CYBERTIP_MAX_RESPONSE_BYTES,
    CYBERTIP_REQUEST_TIMEOUT_S,
)
from overt.safety.reports import VerifiedMessage, VerifiedReport
from overt.safety.submission import (
    Event,
    FileEvent,
    FileStage,
    Phase,
    SubmissionState,
    SubmissionStore,
)
from overt.wire import Address

SCHEMA_RESOURCE: Final = "schemas/cybertip-report.xsd"

#: ``responseCode`` values of the API this module acts on (0 is success).
RESPONSE_SUCCESS: Final = 0
RESPONSE_ALREADY_RETRACTED: Final = 5101
RESPONSE_ALREADY_FINISHED: Final = 5102


class IncidentType(StrEnum):
    """The incident types of the public API (the text is the value sent)."""

    CHILD_PORNOGRAPHY = "Child Pornography (possession, manufacture, and distribution)"
    CHILD_SEX_TRAFFICKING = "Child Sex Trafficking"
    CHILD_SEX_TOURISM = "Child Sex Tourism"
    CHILD_SEXUAL_MOLESTATION = "Child Sexual Molestation"
    MISLEADING_DOMAIN_NAME = "Misleading Domain Name"
    MISLEADING_WORDS_OR_IMAGES = "Misleading Words or Digital Images on the Internet"
    ONLINE_ENTICEMENT = "Online Enticement of Children for Sexual Act"
    UNSOLICITED_OBSCENE_MATERIAL = "Unsolicited Obscene Material Sent to a Child"


class ReportAnnotation(StrEnum):
    """Tags of a whole report (empty elements under ``reportAnnotations``), in schema order."""

    SEXTORTION = "sextortion"
    CSAM_SOLICITATION = "csamSolicitation"
    MINOR_TO_MINOR_INTERACTION = "minorToMinorInteraction"
    SPAM = "spam"


class FileAnnotation(StrEnum):
    """Tags of one file (empty elements under ``fileAnnotations``), in schema order."""

    ANIME_DRAWING_VIRTUAL_HENTAI = "animeDrawingVirtualHentai"
    POTENTIAL_MEME = "potentialMeme"
    VIRAL = "viral"
    POSSIBLE_SELF_PRODUCTION = "possibleSelfProduction"
    PHYSICAL_HARM = "physicalHarm"
    VIOLENCE_GORE = "violenceGore"
    BESTIALITY = "bestiality"
    LIVE_STREAMING = "liveStreaming"
    INFANT = "infant"
    GENERATIVE_AI = "generativeAi"


class FileRelevance(StrEnum):
    REPORTED = "Reported"
    SUPPLEMENTAL = "Supplemental Reported"


# ----------------------------------------------------------------------------- the record


@dataclass(frozen=True, slots=True)
class ContactPerson:
    email: str
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None


@dataclass(frozen=True, slots=True)
class ProviderProfile:
    """The provider's reporting identity (configuration, not per report)."""

    reporting_person: ContactPerson
    contact_person: ContactPerson | None = None
    service_name: str = "Overt"
    company_template: str | None = None
    terms_of_service: str | None = None
    legal_url: str | None = None


@dataclass(frozen=True, slots=True)
class AccountRef:
    """An Overt account as the API names a user: its id in base64url as ``espIdentifier``."""

    account: bytes
    screen_name: str | None = None
    display_names: tuple[str, ...] = ()
    devices: tuple[int, ...] = ()
    additional_info: str | None = None

    @property
    def esp_identifier(self) -> str:
        return b64e(self.account)


@dataclass(frozen=True, slots=True)
class EscalatedMessage:
    """One verified message as it goes into the report (text only; files go separately)."""

    server_id: int
    server_time_ms: int
    sender: Address
    text: str = field(repr=False)
    attachment_note: str | None = None


@dataclass(frozen=True, slots=True)
class EvidenceFile:
    """An attachment the reporter revealed and the provider verified."""

    content: bytes = field(repr=False)
    sha256: bytes
    ciphertext_sha256: bytes
    original_file_name: str
    content_type: str
    server_id: int
    server_time_ms: int
    relevance: FileRelevance = FileRelevance.REPORTED
    annotations: frozenset[FileAnnotation] = frozenset()
    viewed_by_esp: bool = True
    info: str | None = None
    """How the provider came to hold this file, if not as a reported attachment (a
    known-content match's visual derivative)."""

    @property
    def upload_name(self) -> str:
        """The name the file is uploaded under: the sender's, made safe, else a neutral one."""
        base = re.split(r"[/\\]", self.original_file_name)[-1]
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", base)[:128].lstrip(".")
        return safe or f"overt-attachment-{self.server_id}"


@dataclass(frozen=True, slots=True)
class Escalation:
    """Everything one CyberTipline report says, built by :meth:`from_verified`."""

    escalation_id: str
    incident_type: IncidentType
    incident_ms: int
    provider: ProviderProfile
    reported: AccountRef
    recipient: AccountRef | None
    messages: tuple[EscalatedMessage, ...]
    files: tuple[EvidenceFile, ...]
    moderator_notes: str
    evidence_sha256: bytes
    report_annotations: frozenset[ReportAnnotation] = frozenset()
    high_priority_reason: str | None = None
    verification: str | None = None
    """How the provider came to know the content, if not through a franked user report (a
    known-content match above threshold)."""

    @classmethod
    def from_verified(
        cls,
        verified: VerifiedReport,
        *,
        escalation_id: str,
        provider: ProviderProfile,
        incident_type: IncidentType,
        moderator_notes: str,
        reported_account: bytes | None = None,
        report_annotations: Iterable[ReportAnnotation] = (),
        file_annotations: Mapping[int, Iterable[FileAnnotation]] | None = None,
        high_priority_reason: str | None = None,
        include_recipient: bool = True,
        reported_screen_name: str | None = None,
    ) -> Self:
        """The escalation of the messages of ``reported_account`` in ``verified`` (by default
        the only sender in it). ``file_annotations`` maps a message's 1-based index in the
        report to the tags of its attachment. The reporter's comment is not included: it is the
        user's, and the moderator's notes say what the provider concluded."""
        senders = {m.sender.account for m in verified.messages}
        if reported_account is None:
            if len(senders) != 1:
                raise EscalationInvalid(
                    f"the report has messages from {len(senders)} accounts: name the reported one"
                )
            (reported_account,) = senders
        chosen = [m for m in verified.messages if m.sender.account == reported_account]
        if not chosen:
            raise EscalationInvalid("the report has no message from the reported account")
        tags = file_annotations or {}
        evidence = [
            f for m in chosen if (f := _evidence_file(m, tags.get(m.index, ()))) is not None
        ]
        if len(evidence) > CYBERTIP_MAX_FILES:
            raise EscalationInvalid(f"at most {CYBERTIP_MAX_FILES} files per escalation")
        return cls(
            escalation_id=escalation_id,
            incident_type=incident_type,
            incident_ms=min(m.server_time_ms for m in chosen),
            provider=provider,
            reported=AccountRef(
                reported_account, screen_name=reported_screen_name,
                devices=tuple(sorted({m.sender.device for m in chosen})),
            ),
            recipient=AccountRef(verified.reporter.account) if include_recipient else None,
            messages=tuple(_escalated(m) for m in chosen),
            files=tuple(evidence),
            moderator_notes=moderator_notes,
            evidence_sha256=verified.report_sha256,
            report_annotations=frozenset(report_annotations),
            high_priority_reason=high_priority_reason,
        )  # fmt: skip


def _escalated(m: VerifiedMessage) -> EscalatedMessage:
    note = None
    if m.attachment is not None:
        p = m.attachment.pointer
        shown = "revealed and verified" if m.attachment.plaintext is not None else "not revealed"
        note = (
            f"attachment {p.file_name!r} ({p.content_type}, {p.size} bytes, SHA-256 "
            f"{p.plaintext_sha256.hex()}; content {shown})"
        )
    return EscalatedMessage(m.server_id, m.server_time_ms, m.sender, m.body.text, note)


def _evidence_file(m: VerifiedMessage, tags: Iterable[FileAnnotation]) -> EvidenceFile | None:
    att = m.attachment
    if att is None or att.plaintext is None:
        return None
    p = att.pointer
    return EvidenceFile(
        att.plaintext, p.plaintext_sha256, p.ciphertext_sha256, p.file_name, p.content_type,
        m.server_id, m.server_time_ms, annotations=frozenset(tags),
    )  # fmt: skip


# ----------------------------------------------------------------------------- XML


@cache
def schema() -> xmlschema.XMLSchema:
    """Overt's XSD of the CyberTipline documents (loaded once)."""
    source = files("overt.safety").joinpath(SCHEMA_RESOURCE).read_bytes()
    return xmlschema.XMLSchema(io.BytesIO(source))


def schema_bytes() -> bytes:
    return files("overt.safety").joinpath(SCHEMA_RESOURCE).read_bytes()


def parse_xml(document: bytes, root: str, what: str) -> xmlschema.XMLResource:
    """Parse untrusted XML with entities and DTDs refused; :class:`DecodeError` if it is not
    well-formed or its root is not ``root``."""
    try:
        resource = xmlschema.XMLResource(io.BytesIO(document), defuse="always")
    except xmlschema.XMLResourceError as exc:
        raise DecodeError(f"{what}: not well-formed XML ({exc})") from None
    if resource.root.tag != root:
        raise DecodeError(f"{what}: root element is <{resource.root.tag}>, expected <{root}>")
    return resource


def validate_xml(document: bytes, root: str, what: str) -> Mapping[str, object]:
    """Parse and validate against Overt's XSD; the document as a dict. :class:`DecodeError`
    names the first violation and where it is."""
    resource = parse_xml(document, root, what)
    for error in schema().iter_errors(resource):
        raise DecodeError(f"{what}: {error.reason} (at {error.path})")
    decoded = schema().to_dict(resource)
    if not isinstance(decoded, dict):
        raise DecodeError(f"{what}: unexpected document shape")
    return decoded


_XML_ILLEGAL = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _text(value: str) -> str:
    """XML 1.0 cannot carry some code points (most C0 controls, lone surrogates, U+FFFE/F);
    they become U+FFFD. The exact bytes stay in the evidence bundle."""
    return _XML_ILLEGAL.sub("\ufffd", value)


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag, attrs)
    if text is not None:
        el.text = _text(text)
    return el


def _instant(ms: int) -> str:
    t = datetime.fromtimestamp(ms // 1000, UTC).replace(microsecond=(ms % 1000) * 1000)
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _person(parent: ET.Element, tag: str, p: ContactPerson) -> None:
    el = _sub(parent, tag)
    if p.first_name:
        _sub(el, "firstName", p.first_name)
    if p.last_name:
        _sub(el, "lastName", p.last_name)
    if p.phone:
        _sub(el, "phone", p.phone)
    _sub(el, "email", p.email)


def _account(parent: ET.Element, tag: str, a: AccountRef, service: str) -> None:
    el = _sub(parent, tag)
    _sub(el, "espIdentifier", a.esp_identifier)
    _sub(el, "espService", service)
    if a.screen_name:
        _sub(el, "screenName", a.screen_name)
    for name in a.display_names:
        _sub(el, "displayName", name)
    info = [a.additional_info] if a.additional_info else []
    if a.devices:
        info.append("Overt devices used: " + ", ".join(str(d) for d in a.devices))
    if info:
        _sub(el, "additionalInfo", "\n".join(info))


def _serialize(root: ET.Element, what: str) -> bytes:
    document = bytes(ET.tostring(root, encoding="UTF-8", xml_declaration=True))
    try:
        validate_xml(document, root.tag, what)
    except DecodeError as exc:
        raise EscalationInvalid(f"Overt's own {what} fails its XSD: {exc}") from exc
    return document


def build_report_xml(escalation: Escalation) -> bytes:
    """The ``<report>`` of ``/submit`` (validated against the XSD; see the module docstring)."""
    e = escalation
    root = ET.Element("report")
    summary = _sub(root, "incidentSummary")
    _sub(summary, "incidentType", e.incident_type.value)
    if e.high_priority_reason:
        _sub(summary, "escalateToHighPriority", e.high_priority_reason)
    if e.report_annotations:
        annotations = _sub(summary, "reportAnnotations")
        for tag in ReportAnnotation:
            if tag in e.report_annotations:
                _sub(annotations, tag.value)
    _sub(summary, "incidentDateTime", _instant(e.incident_ms))
    _sub(summary, "incidentDateTimeDescription",
         "Server time of the earliest reported message (UTC).")  # fmt: skip
    for m in e.messages:
        chat = _sub(_sub(root, "internetDetails"), "chatImIncident")
        _sub(chat, "chatClient", e.provider.service_name)
        if m.text:
            _sub(chat, "content", m.text)
        info = [
            f"Sent by account {b64e(m.sender.account)} (device {m.sender.device}) at "
            f"{_instant(m.server_time_ms)}, server message id {m.server_id}."
        ]
        if m.attachment_note:
            info.append(f"Carries an {m.attachment_note}.")
        _sub(chat, "additionalInfo", " ".join(info))
    reporter = _sub(root, "reporter")
    p = e.provider
    _person(reporter, "reportingPerson", p.reporting_person)
    if p.contact_person is not None:
        _person(reporter, "contactPerson", p.contact_person)
    if p.company_template:
        _sub(reporter, "companyTemplate", p.company_template)
    if p.terms_of_service:
        _sub(reporter, "termsOfService", p.terms_of_service)
    if p.legal_url:
        _sub(reporter, "legalURL", p.legal_url)
    _account(root, "personOrUserReported", e.reported, p.service_name)
    if e.recipient is not None:
        _account(root, "intendedRecipient", e.recipient, p.service_name)
    verification = e.verification or (
        f"{p.service_name} is end-to-end encrypted: the provider saw these messages only "
        "because their recipient reported them. Each was verified by message franking: the "
        "sender's commitment opens to the content shown, and the provider's delivery tag "
        "binds that commitment, the sender and the recipient. Evidence (the report as "
        f"received) is preserved under SHA-256 {e.evidence_sha256.hex()}."
    )
    notes = f"Moderator notes: {e.moderator_notes}\n\n" if e.moderator_notes else ""
    _sub(root, "additionalInfo", notes + verification)
    return _serialize(root, "report")


def build_fileinfo_xml(report_id: int, file_id: str, f: EvidenceFile) -> bytes:
    """The ``<fileDetails>`` of ``/fileinfo`` for one uploaded file (validated)."""
    root = ET.Element("fileDetails")
    _sub(root, "reportId", str(report_id))
    _sub(root, "fileId", file_id)
    _sub(root, "fileName", f.upload_name)
    if f.original_file_name:
        _sub(root, "originalFileName", f.original_file_name[:255])
    _sub(root, "fileViewedByEsp", "true" if f.viewed_by_esp else "false")
    _sub(root, "publiclyAvailable", "false")
    _sub(root, "fileRelevance", f.relevance.value)
    if f.annotations:
        tags = _sub(root, "fileAnnotations")
        for tag in FileAnnotation:
            if tag in f.annotations:
                _sub(tags, tag.value)
    _sub(root, "originalFileHash", f.sha256.hex(), hashType="SHA256")
    details = _sub(root, "details", type="HASH")
    pair = _sub(details, "nameValuePair")
    _sub(pair, "name", "Encrypted attachment SHA-256")
    _sub(pair, "value", f.ciphertext_sha256.hex())
    _sub(root, "additionalInfo",
         f.info or
         f"Sent at {_instant(f.server_time_ms)} in message {f.server_id} with content type "
         f"{f.content_type or 'unknown'}; the sender committed to this file's SHA-256 in the "
         "message, and the provider checked the revealed file against it.")  # fmt: skip
    return _serialize(root, "fileDetails")


# ----------------------------------------------------------------------------- the client


@dataclass(frozen=True, slots=True)
class CyberTipCredentials:
    username: str
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Answer:
    """The fields of an API answer this client reads (others are ignored)."""

    response_code: int
    description: str
    report_id: int | None
    file_id: str | None


def _answer(document: bytes, what: str) -> Answer:
    """Lenient reading of an answer: known root, well-formed, a numeric ``responseCode``;
    unknown elements are ignored so that a richer real answer still reads."""
    if len(document) > CYBERTIP_MAX_RESPONSE_BYTES:
        raise LimitExceeded(f"{what}: answer over {CYBERTIP_MAX_RESPONSE_BYTES} bytes")
    try:
        resource = xmlschema.XMLResource(io.BytesIO(document), defuse="always")
    except xmlschema.XMLResourceError as exc:
        raise DecodeError(f"{what}: the answer is not well-formed XML ({exc})") from None
    root = resource.root
    if root.tag not in ("reportResponse", "reportDoneResponse"):
        raise DecodeError(f"{what}: unexpected answer <{root.tag}>")

    def text(tag: str) -> str | None:
        el = root.find(tag)
        return None if el is None or el.text is None else el.text.strip()

    code, report_id = text("responseCode"), text("reportId")
    if code is None or not code.isdigit():
        raise DecodeError(f"{what}: the answer has no numeric responseCode")
    if report_id is not None and not report_id.isdigit():
        raise DecodeError(f"{what}: the answer's reportId is not a number")
    return Answer(int(code), text("responseDescription") or "", None if report_id is None
                  else int(report_id), text("fileId"))  # fmt: skip


Sleep = Callable[[float], Awaitable[None]]


def _file_event(index: int, event: FileEvent) -> Callable[[SubmissionState], SubmissionState]:
    return lambda st: st.apply_file(index, event)


_XML_HEADERS: Final = {"Content-Type": "text/xml; charset=utf-8"}
_OCTETS: Final = "application/octet-stream"


class CyberTipClient:
    """A client of the CyberTipline Reporting API at ``base_url`` (see the module docstring).

    ``transport`` is any httpx transport (``httpx.ASGITransport`` for the in-process stand-in);
    ``sleep`` and ``rng`` drive the backoff (tests pass a recorder and a deterministic RNG).
    """

    def __init__(
        self,
        base_url: str,
        credentials: CyberTipCredentials,
        *,
        store: SubmissionStore,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: Rng | None = None,
        timeout_s: float = CYBERTIP_REQUEST_TIMEOUT_S,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            auth=httpx.BasicAuth(credentials.username, credentials.password),
            transport=transport,
            timeout=timeout_s,
        )
        self._store = store
        self._sleep = sleep
        self._rng = rng or SystemRng()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def __repr__(self) -> str:
        return f"CyberTipClient({str(self._http.base_url)!r})"

    # ------------------------------------------------------------------ state

    def state(self, escalation_id: str) -> SubmissionState | None:
        data = self._store.load(escalation_id)
        return None if data is None else SubmissionState.decode(data)

    def _save(self, state: SubmissionState) -> SubmissionState:
        self._store.save(state.escalation_id, state.encode())
        return state

    # ------------------------------------------------------------------ API

    async def status(self) -> str:
        """``GET /status``: checks that the endpoint answers and accepts the credentials."""
        return (await self._request("status", "GET", "/status")).description

    async def submit(self, escalation: Escalation) -> SubmissionState:
        """Submit ``escalation`` completely, or resume it where an earlier run stopped.

        Returns the FINISHED state. :class:`CyberTipRejected` (stored as FAILED) if the API
        refuses a step; :class:`CyberTipUnavailable` if it keeps failing (the state is kept:
        call again to resume); :class:`SubmissionStateError` if the escalation was retracted,
        failed before, or was started with another document under the same id.
        """
        document = build_report_xml(escalation)
        digest = sha256(document).hex()
        state = self.state(escalation.escalation_id)
        if state is None:
            state = SubmissionState.new(escalation.escalation_id, digest, len(escalation.files))
        if state.document_sha256 != digest or len(state.files) != len(escalation.files):
            raise SubmissionStateError(
                f"escalation {escalation.escalation_id} was started with another document; "
                "an escalation id names one document"
            )
        if state.phase is Phase.FINISHED:
            return state
        if state.phase in (Phase.RETRACTING, Phase.RETRACTED, Phase.FAILED):
            raise SubmissionStateError(
                f"escalation {escalation.escalation_id} is {state.phase.value}"
                + (f" ({state.error})" if state.error else "")
                + "; it cannot be submitted again"
            )
        if state.phase in (Phase.NEW, Phase.SUBMITTING):
            # Each attempt is recorded before it is made: its outcome may never be known.
            answer, state = await self._step(
                state, lambda st: st.apply(Event.SUBMIT), "submit", "POST", "/submit",
                content=document, headers=_XML_HEADERS,
            )  # fmt: skip
            if answer.report_id is None:
                raise DecodeError("CyberTipline submit: the answer has no reportId")
            state = self._save(state.apply(Event.SUBMITTED, report_id=answer.report_id))
        assert state.report_id is not None
        report_id = state.report_id
        for i, f in enumerate(escalation.files):
            if state.files[i].stage in (FileStage.PENDING, FileStage.UPLOADING):
                upload = {
                    "id": (None, str(report_id)),
                    "file": (f.upload_name, f.content, f.content_type or _OCTETS),
                }
                answer, state = await self._step(
                    state, _file_event(i, FileEvent.UPLOAD),
                    f"upload of file {i + 1}", "POST", "/upload", files=upload,
                )  # fmt: skip
                if not answer.file_id:
                    raise DecodeError("CyberTipline upload: the answer has no fileId")
                state = self._save(state.apply_file(i, FileEvent.UPLOADED, file_id=answer.file_id))
            if state.files[i].stage is FileStage.UPLOADED:
                file_id = state.files[i].file_id
                assert file_id is not None
                info = build_fileinfo_xml(report_id, file_id, f)
                _, state = await self._step(
                    state, None, f"fileinfo of file {i + 1}", "POST", "/fileinfo", content=info,
                    headers=_XML_HEADERS,
                )  # fmt: skip
                state = self._save(state.apply_file(i, FileEvent.DESCRIBED))
        _, state = await self._step(
            state, lambda st: st.apply(Event.FINISH), "finish", "POST", "/finish",
            files={"id": (None, str(report_id))}, idempotent_code=RESPONSE_ALREADY_FINISHED,
        )  # fmt: skip
        return self._save(state.apply(Event.FINISHED))

    async def retract(self, escalation_id: str) -> SubmissionState:
        """Retract an escalation's report before it is finished (or after a refused step)."""
        state = self.state(escalation_id)
        if state is None:
            raise SubmissionStateError(f"no submission of escalation {escalation_id} is known")
        if state.phase is Phase.RETRACTED:
            return state
        if state.phase is Phase.FINISHED:
            raise SubmissionStateError(
                f"escalation {escalation_id} is finished: the API does not retract a finished "
                f"report ({state.report_id}); contact NCMEC to amend it"
            )
        if state.report_id is None:
            raise SubmissionStateError(
                f"escalation {escalation_id} has no report id yet ({state.phase.value}): "
                "there is nothing this client can retract"
            )
        _, state = await self._step(
            state, lambda st: st.apply(Event.RETRACT), "retract", "POST", "/retract",
            files={"id": (None, str(state.report_id))},
            idempotent_code=RESPONSE_ALREADY_RETRACTED,
        )  # fmt: skip
        return self._save(state.apply(Event.RETRACTED))

    # ------------------------------------------------------------------ transport

    async def _step(
        self,
        state: SubmissionState,
        record: Callable[[SubmissionState], SubmissionState] | None,
        step: str,
        method: str,
        path: str,
        *,
        idempotent_code: int | None = None,
        **kwargs: object,
    ) -> tuple[Answer, SubmissionState]:
        """One recorded step: ``record`` is applied and stored before every attempt (so the
        state counts requests whose outcome was lost); a refusal is stored as FAILED, then
        raised."""
        current = state

        def before_attempt() -> None:
            nonlocal current
            if record is not None:
                current = self._save(record(current))

        try:
            answer = await self._request(
                step, method, path, before_attempt, idempotent_code=idempotent_code, **kwargs
            )
        except CyberTipRejected as exc:
            self._save(current.apply(Event.FAIL, error=str(exc)))
            raise
        return answer, current

    async def _request(
        self,
        step: str,
        method: str,
        path: str,
        before_attempt: Callable[[], None] | None = None,
        *,
        idempotent_code: int | None = None,
        **kwargs: object,
    ) -> Answer:
        """One API call: 5xx answers and connection errors are retried with backoff and
        jitter; an answer with a non-zero ``responseCode`` (other than ``idempotent_code``,
        which means the step was already done) raises :class:`CyberTipRejected`."""
        delay = CYBERTIP_BACKOFF_INITIAL_S
        last = ""
        for attempt in range(1, CYBERTIP_MAX_ATTEMPTS + 1):
            if before_attempt is not None:
                before_attempt()
            try:
                response = await self._http.request(method, path, **kwargs)  # type: ignore[arg-type]
            except httpx.TransportError as exc:
                last = type(exc).__name__
            else:
                if response.status_code < 500:
                    return self._read(step, response, idempotent_code)
                last = f"HTTP {response.status_code}"
            if attempt < CYBERTIP_MAX_ATTEMPTS:
                fraction = int.from_bytes(self._rng.random_bytes(4), "big") / (1 << 32)
                await self._sleep(delay * (0.5 + 0.5 * fraction))
                delay = min(delay * CYBERTIP_BACKOFF_FACTOR, CYBERTIP_BACKOFF_MAX_S)
        raise CyberTipUnavailable(step, CYBERTIP_MAX_ATTEMPTS, last)

    @staticmethod
    def _read(step: str, response: httpx.Response, idempotent_code: int | None) -> Answer:
        what = f"CyberTipline {step}"
        try:
            answer = _answer(response.content, what)
        except DecodeError:
            if response.is_success:
                raise
            raise CyberTipRejected(step, -1, f"HTTP {response.status_code}") from None
        if answer.response_code in (RESPONSE_SUCCESS, idempotent_code):
            return answer
        raise CyberTipRejected(step, answer.response_code, answer.description or "no description")


__all__ = [
    "AccountRef",
    "Answer",
    "ContactPerson",
    "CyberTipClient",
    "CyberTipCredentials",
    "EscalatedMessage",
    "Escalation",
    "EvidenceFile",
    "FileAnnotation",
    "FileRelevance",
    "IncidentType",
    "ProviderProfile",
    "ReportAnnotation",
    "build_fileinfo_xml",
    "build_report_xml",
    "parse_xml",
    "schema",
    "schema_bytes",
    "validate_xml",
]
