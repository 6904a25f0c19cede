"""CyberTipline escalation: the report XML against Overt's XSD, and the client against the
in-process stand-in — a full submission, retries, resumption after a crash, retraction, and the
stand-in's refusal of invalid XML."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from overt.crypto import DeterministicRng, sha256
from overt.errors import DecodeError
from overt.safety import VerifiedReport, verify_report
from overt.safety._b64 import b64e
from overt.safety.cybertip import (
    ContactPerson,
    CyberTipClient,
    CyberTipCredentials,
    Escalation,
    FileAnnotation,
    IncidentType,
    ProviderProfile,
    ReportAnnotation,
    build_fileinfo_xml,
    build_report_xml,
    validate_xml,
)
from overt.safety.cybertip_standin import CyberTipStandin
from overt.safety.errors import (
    CyberTipRejected,
    CyberTipUnavailable,
    EscalationInvalid,
    SubmissionStateError,
)
from overt.safety.limits import (
    CYBERTIP_BACKOFF_FACTOR,
    CYBERTIP_BACKOFF_INITIAL_S,
    CYBERTIP_MAX_ATTEMPTS,
)
from overt.safety.submission import (
    DirectorySubmissionStore,
    Event,
    FileEvent,
    FileStage,
    MemorySubmissionStore,
    Phase,
    SubmissionState,
    SubmissionStore,
)

from .support import NOW_MS, SERVER_KEY, World, report

BASE_URL = "http://cybertip.test/ispws"
CREDENTIALS = CyberTipCredentials("overt-test", "stand-in password")
PROVIDER = ProviderProfile(
    ContactPerson("safety@overt.example", "Trust", "Safety", "+1 555 0100"),
    company_template="Overt retains reported evidence for one year.",
    legal_url="https://overt.example/legal",
)
IMAGE = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8


class Crash(BaseException):
    """Stands for the process dying: nothing in the client catches it."""


class CrashingTransport(httpx.AsyncBaseTransport):
    """Passes requests to ``inner`` until the first one to ``path``; then dies, before sending
    it or (``after=True``) after the server handled it but before the answer is read."""

    def __init__(self, inner: httpx.AsyncBaseTransport, path: str, *, after: bool) -> None:
        self.inner, self.path, self.after, self.armed = inner, path, after, True

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.armed and request.url.path.endswith(self.path):
            self.armed = False
            if self.after:
                await self.inner.handle_async_request(request)
            raise Crash
        return await self.inner.handle_async_request(request)


class FlakyTransport(httpx.AsyncBaseTransport):
    """Refuses the first ``n`` connections."""

    def __init__(self, inner: httpx.AsyncBaseTransport, n: int) -> None:
        self.inner, self.n = inner, n

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.n > 0:
            self.n -= 1
            raise httpx.ConnectError("connection refused", request=request)
        return await self.inner.handle_async_request(request)


@pytest.fixture(scope="module")
def verified() -> VerifiedReport:
    w = World.make(seed=7)
    rep = report(
        w.bob,
        w.text(w.alice, w.bob, "send me a picture <now> & don't tell"),
        w.attachment(w.alice, w.bob, IMAGE, file_name="../holiday pic.png"),
        w.attachment(w.alice, w.bob, b"not revealed", reveal="none"),
        comment="the reporter's own words",
    )
    return verify_report(rep, SERVER_KEY, reporter_address=w.bob.address, now_ms=NOW_MS, seen=())


def make_escalation(
    verified: VerifiedReport, escalation_id: str = "esc-1", **kw: object
) -> Escalation:
    args: dict[str, object] = {
        "escalation_id": escalation_id,
        "provider": PROVIDER,
        "incident_type": IncidentType.ONLINE_ENTICEMENT,
        "moderator_notes": "Adult account soliciting images from a minor.",
        "report_annotations": [ReportAnnotation.CSAM_SOLICITATION],
        "file_annotations": {2: [FileAnnotation.POSSIBLE_SELF_PRODUCTION]},
    }
    args.update(kw)
    return Escalation.from_verified(verified, **args)  # type: ignore[arg-type]


@pytest.fixture
def standin() -> CyberTipStandin:
    return CyberTipStandin(username=CREDENTIALS.username, password=CREDENTIALS.password)


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def client(
    standin: CyberTipStandin,
    store: SubmissionStore,
    transport: httpx.AsyncBaseTransport | None = None,
    sleeps: Sleeps | None = None,
    credentials: CyberTipCredentials = CREDENTIALS,
) -> CyberTipClient:
    return CyberTipClient(
        BASE_URL,
        credentials,
        store=store,
        transport=transport or httpx.ASGITransport(app=standin.app),
        sleep=sleeps or Sleeps(),
        rng=DeterministicRng(5),
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SubmissionStore]:
    yield DirectorySubmissionStore(tmp_path / "cybertip-state")


# ----------------------------------------------------------------------------- the document


def test_report_xml_validates_and_has_the_public_shape(verified: VerifiedReport) -> None:
    esc = make_escalation(verified)
    document = build_report_xml(esc)
    validate_xml(document, "report", "report")
    root = ET.fromstring(document)
    assert root.tag == "report"
    assert [c.tag for c in root] == [
        "incidentSummary",
        "internetDetails",
        "internetDetails",
        "internetDetails",
        "reporter",
        "personOrUserReported",
        "intendedRecipient",
        "additionalInfo",
    ]
    assert root.findtext("incidentSummary/incidentType") == IncidentType.ONLINE_ENTICEMENT.value
    assert root.find("incidentSummary/reportAnnotations/csamSolicitation") is not None
    first = verified.messages[0].server_time_ms
    assert root.findtext("incidentSummary/incidentDateTime", "").endswith("Z")
    assert str(first % 1000).zfill(3) in root.findtext("incidentSummary/incidentDateTime", "")
    chats = root.findall("internetDetails/chatImIncident")
    assert chats[0].findtext("content") == "send me a picture <now> & don't tell"
    assert chats[0].findtext("chatClient") == "Overt"
    assert "holiday pic.png" in chats[1].findtext("additionalInfo", "")
    assert "content not revealed" in chats[2].findtext("additionalInfo", "")
    alice = verified.messages[0].sender.account
    assert root.findtext("personOrUserReported/espIdentifier") == b64e(alice)
    assert root.findtext("intendedRecipient/espIdentifier") == b64e(b"bob")
    assert root.findtext("reporter/reportingPerson/email") == "safety@overt.example"
    info = root.findtext("additionalInfo", "")
    assert "Adult account soliciting" in info and verified.report_sha256.hex() in info
    assert b"the reporter's own words" not in document


def test_fileinfo_xml_carries_the_committed_hashes(verified: VerifiedReport) -> None:
    esc = make_escalation(verified)
    (f,) = esc.files  # only the revealed attachment becomes a file
    assert f.content == IMAGE and f.upload_name == "holiday_pic.png"
    document = build_fileinfo_xml(1234, "0" * 32, f)
    parsed = validate_xml(document, "fileDetails", "fileDetails")
    assert parsed["reportId"] == 1234
    root = ET.fromstring(document)
    digest = root.find("originalFileHash")
    assert digest is not None and digest.get("hashType") == "SHA256"
    assert digest.text == sha256(IMAGE).hex()
    assert root.findtext("originalFileName") == "../holiday pic.png"
    assert root.find("fileAnnotations/possibleSelfProduction") is not None
    assert root.findtext("details/nameValuePair/value") == f.ciphertext_sha256.hex()


def test_text_xml_cannot_carry_is_replaced_not_dropped(verified: VerifiedReport) -> None:
    esc = make_escalation(verified)
    odd = dataclasses.replace(esc.messages[0], text="nul\x00 bell\x07 ok\ttab \ud800 end")
    document = build_report_xml(dataclasses.replace(esc, messages=(odd,)))
    content = ET.fromstring(document).findtext("internetDetails/chatImIncident/content")
    assert content == "nul\ufffd bell\ufffd ok\ttab \ufffd end"


def test_an_escalation_our_xsd_refuses_is_a_local_error(verified: VerifiedReport) -> None:
    esc = make_escalation(verified)
    bad = dataclasses.replace(esc, provider=ProviderProfile(ContactPerson("")))
    with pytest.raises(EscalationInvalid, match="fails its XSD"):
        build_report_xml(bad)


def test_reported_account_must_be_named_when_several_wrote() -> None:
    w = World.make(seed=9)
    w.carol.start_session(w.bob.prekey_bundle())
    rep = report(w.bob, w.text(w.alice, w.bob, "one"), w.text(w.carol, w.bob, "two"))
    v = verify_report(rep, SERVER_KEY, reporter_address=w.bob.address, now_ms=NOW_MS, seen=())
    with pytest.raises(EscalationInvalid, match="2 accounts"):
        make_escalation(v)
    esc = make_escalation(v, reported_account=b"carol", file_annotations={})
    assert [m.text for m in esc.messages] == ["two"] and esc.reported.account == b"carol"


# ----------------------------------------------------------------------------- the flow


async def test_full_submission_against_the_standin(
    verified: VerifiedReport, standin: CyberTipStandin, store: SubmissionStore
) -> None:
    esc = make_escalation(verified)
    async with client(standin, store) as c:
        assert "overt-test" in await c.status()
        state = await c.submit(esc)
    assert state.phase is Phase.FINISHED and state.report_id == 1000
    assert state.submit_requests == 1 and [f.uploads for f in state.files] == [1]
    assert standin.requests == [
        "GET status",
        "POST submit",
        "POST upload",
        "POST fileinfo",
        "POST finish",
    ]
    (got,) = standin.reports.values()
    assert got.finished and not got.retracted
    assert got.document == build_report_xml(esc)
    (stored,) = got.files.values()
    assert stored.content == IMAGE and stored.name == "holiday_pic.png"
    assert stored.details is not None and stored.details["fileId"] == stored.file_id
    # Submitting again is a no-op: the stored state says it is done.
    async with client(standin, store) as c:
        assert (await c.submit(esc)).phase is Phase.FINISHED
    assert len(standin.requests) == 5


async def test_standin_answers_and_xsd_endpoint(standin: CyberTipStandin) -> None:
    auth = httpx.BasicAuth(CREDENTIALS.username, CREDENTIALS.password)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=standin.app), base_url=BASE_URL, auth=auth
    ) as http:
        xsd = await http.get("/xsd")
        assert xsd.status_code == 200 and b"<xs:schema" in xsd.content
        status = await http.get("/status")
        validate_xml(status.content, "reportResponse", "status answer")
        nobody = await http.get("/status", auth=httpx.BasicAuth("x", "y"))
        assert nobody.status_code == 401 and b"<responseCode>2000<" in nobody.content


async def test_retries_after_injected_failures(
    verified: VerifiedReport, standin: CyberTipStandin, store: SubmissionStore
) -> None:
    sleeps = Sleeps()
    standin.fail_next(3, status=503)
    transport = FlakyTransport(httpx.ASGITransport(app=standin.app), n=0)
    async with client(standin, store, transport, sleeps) as c:
        state = await c.submit(make_escalation(verified))
    assert state.phase is Phase.FINISHED and len(standin.reports) == 1
    assert state.submit_requests == 4  # every attempt is counted; the 503s did nothing
    assert len(sleeps.delays) == 3
    for k, delay in enumerate(sleeps.delays):
        nominal = CYBERTIP_BACKOFF_INITIAL_S * CYBERTIP_BACKOFF_FACTOR**k
        assert nominal / 2 <= delay <= nominal

    # Connection errors are retried too.
    standin2 = CyberTipStandin(username=CREDENTIALS.username, password=CREDENTIALS.password)
    flaky = FlakyTransport(httpx.ASGITransport(app=standin2.app), n=2)
    async with client(standin2, MemorySubmissionStore(), flaky) as c:
        assert (await c.submit(make_escalation(verified))).phase is Phase.FINISHED
    assert len(standin2.reports) == 1


async def test_gives_up_after_every_attempt_then_resumes(
    verified: VerifiedReport, standin: CyberTipStandin, store: SubmissionStore
) -> None:
    esc = make_escalation(verified)
    async with client(standin, store) as c:
        standin.fail_next(100)
        with pytest.raises(CyberTipUnavailable, match="submit: still failing after 5 attempts"):
            await c.submit(esc)
        st = c.state("esc-1")
        assert st is not None and st.phase is Phase.SUBMITTING
        assert st.submit_requests == CYBERTIP_MAX_ATTEMPTS
        standin.fail_next(0)
        assert (await c.submit(esc)).phase is Phase.FINISHED
    assert len(standin.reports) == 1


async def test_resume_after_a_crash_between_steps_submits_once(
    verified: VerifiedReport, standin: CyberTipStandin, store: SubmissionStore
) -> None:
    esc = make_escalation(verified)
    asgi = httpx.ASGITransport(app=standin.app)
    # The process dies as it is about to upload: the report is open at the stand-in.
    async with client(standin, store, CrashingTransport(asgi, "/upload", after=False)) as c:
        with pytest.raises(Crash):
            await c.submit(esc)
    st = SubmissionState.decode(store.load("esc-1") or b"")
    assert st.phase is Phase.OPEN and st.report_id == 1000
    # The next run (a new client, the same stored state) carries on with report 1000.
    async with client(standin, store) as c:
        state = await c.submit(esc)
    assert state.phase is Phase.FINISHED and state.report_id == 1000
    assert standin.requests.count("POST submit") == 1
    assert list(standin.reports) == [1000] and standin.reports[1000].finished


async def test_a_lost_upload_answer_is_uploaded_again_and_counted(
    verified: VerifiedReport, standin: CyberTipStandin, store: SubmissionStore
) -> None:
    esc = make_escalation(verified)
    asgi = httpx.ASGITransport(app=standin.app)
    async with client(standin, store, CrashingTransport(asgi, "/upload", after=True)) as c:
        with pytest.raises(Crash):
            await c.submit(esc)
    async with client(standin, store) as c:
        state = await c.submit(esc)
    assert state.phase is Phase.FINISHED and state.files[0].uploads == 2
    assert len(standin.reports) == 1 and len(standin.reports[1000].files) == 2


async def test_a_lost_submit_answer_is_the_documented_limit(
    verified: VerifiedReport, standin: CyberTipStandin, store: SubmissionStore
) -> None:
    """The API has no idempotency key: a /submit whose answer never came back may have opened
    a report. The client submits again and counts it; the orphan stays unfinished."""
    esc = make_escalation(verified)
    standin.lose_next_answers(1)
    async with client(standin, store) as c:
        state = await c.submit(esc)
    assert state.submit_requests == 2
    assert [r.finished for r in standin.reports.values()] == [False, True]


async def test_resume_with_another_document_is_refused(
    verified: VerifiedReport, standin: CyberTipStandin, store: SubmissionStore
) -> None:
    asgi = httpx.ASGITransport(app=standin.app)
    async with client(standin, store, CrashingTransport(asgi, "/finish", after=False)) as c:
        with pytest.raises(Crash):
            await c.submit(make_escalation(verified))
    changed = make_escalation(verified, moderator_notes="edited after the fact")
    async with client(standin, store) as c:
        with pytest.raises(SubmissionStateError, match="another document"):
            await c.submit(changed)


async def test_retract(
    verified: VerifiedReport, standin: CyberTipStandin, store: SubmissionStore
) -> None:
    esc = make_escalation(verified)
    asgi = httpx.ASGITransport(app=standin.app)
    async with client(standin, store, CrashingTransport(asgi, "/finish", after=False)) as c:
        with pytest.raises(Crash):
            await c.submit(esc)
    async with client(standin, store) as c:
        standin.lose_next_answers(1)  # retracted, answer lost: the retry hears 5101, done
        state = await c.retract("esc-1")
        assert state.phase is Phase.RETRACTED
        assert (await c.retract("esc-1")).phase is Phase.RETRACTED
        with pytest.raises(SubmissionStateError, match="retracted"):
            await c.submit(esc)
        with pytest.raises(SubmissionStateError, match="no submission"):
            await c.retract("never-started")
    assert standin.reports[1000].retracted and not standin.reports[1000].finished

    async with client(standin, store) as c:
        done = await c.submit(make_escalation(verified, "esc-2"))
        with pytest.raises(SubmissionStateError, match="finished"):
            await c.retract("esc-2")
    assert done.phase is Phase.FINISHED


async def test_a_refusal_is_final_and_clear(
    verified: VerifiedReport, standin: CyberTipStandin, store: SubmissionStore
) -> None:
    wrong = CyberTipCredentials("overt-test", "not the password")
    async with client(standin, store, credentials=wrong) as c:
        with pytest.raises(CyberTipRejected, match="responseCode 2000") as info:
            await c.submit(make_escalation(verified))
        assert info.value.response_code == 2000 and info.value.step == "submit"
        st = c.state("esc-1")
        assert st is not None and st.phase is Phase.FAILED and "2000" in (st.error or "")
        with pytest.raises(SubmissionStateError, match="failed"):
            await c.submit(make_escalation(verified))


async def test_standin_refuses_invalid_xml_with_a_clear_error(standin: CyberTipStandin) -> None:
    auth = httpx.BasicAuth(CREDENTIALS.username, CREDENTIALS.password)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=standin.app), base_url=BASE_URL, auth=auth
    ) as http:
        broken = await http.post("/submit", content=b"<report><incidentSummary></report>")
        assert broken.status_code == 400
        assert b"<responseCode>4110</responseCode>" in broken.content
        assert b"Malformed XML submittal" in broken.content
        validate_xml(broken.content, "reportResponse", "answer")

        no_reporter = (
            b"<report><incidentSummary><incidentType>Child Sex Tourism</incidentType>"
            b"<incidentDateTime>2024-01-01T00:00:00Z</incidentDateTime></incidentSummary>"
            b"</report>"
        )
        invalid = await http.post("/submit", content=no_reporter)
        assert invalid.status_code == 400
        assert b"<responseCode>4100</responseCode>" in invalid.content
        assert b"reporter" in invalid.content

        wrong_root = await http.post("/submit", content=b"<fileDetails/>")
        assert b"<responseCode>4100</responseCode>" in wrong_root.content

        entity = b'<!DOCTYPE r [<!ENTITY x "y">]><report>&x;</report>'
        refused = await http.post("/submit", content=entity)
        assert b"<responseCode>4110</responseCode>" in refused.content

        unknown = await http.post("/finish", files={"id": (None, "999")})
        assert unknown.status_code == 404 and b"<responseCode>5001<" in unknown.content
    assert standin.reports == {}


async def test_standin_accepts_urlencoded_forms(
    verified: VerifiedReport, standin: CyberTipStandin
) -> None:
    auth = httpx.BasicAuth(CREDENTIALS.username, CREDENTIALS.password)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=standin.app), base_url=BASE_URL, auth=auth
    ) as http:
        opened = await http.post("/submit", content=build_report_xml(make_escalation(verified)))
        assert b"<reportId>1000</reportId>" in opened.content
        done = await http.post("/finish", data={"id": "1000"})
        validate_xml(done.content, "reportDoneResponse", "finish answer")
        again = await http.post("/finish", data={"id": "1000"})
        assert b"<responseCode>5102<" in again.content


# ----------------------------------------------------------------------------- the state


def test_state_machine_is_a_table() -> None:
    st = SubmissionState.new("esc", "d" * 64, 1)
    with pytest.raises(SubmissionStateError, match="cannot finish while new"):
        st.apply(Event.FINISH)
    with pytest.raises(SubmissionStateError, match="only while open"):
        st.apply_file(0, FileEvent.UPLOAD)
    st = st.apply(Event.SUBMIT).apply(Event.SUBMITTED, report_id=7)
    with pytest.raises(SubmissionStateError, match="every file is described"):
        st.apply(Event.FINISH)
    with pytest.raises(SubmissionStateError, match="cannot described while pending"):
        st.apply_file(0, FileEvent.DESCRIBED)
    st = st.apply_file(0, FileEvent.UPLOAD).apply_file(0, FileEvent.UPLOADED, file_id="f")
    st = st.apply_file(0, FileEvent.DESCRIBED).apply(Event.FINISH).apply(Event.FINISHED)
    assert st.phase is Phase.FINISHED and st.files[0].stage is FileStage.DESCRIBED
    assert SubmissionState.decode(st.encode()) == st
    with pytest.raises(SubmissionStateError):
        st.apply(Event.RETRACT)
    with pytest.raises(DecodeError):
        SubmissionState.decode(b'{"version": 1}')
    with pytest.raises(Exception, match="escalation id"):
        SubmissionState.new("../etc/passwd", "d", 0)
