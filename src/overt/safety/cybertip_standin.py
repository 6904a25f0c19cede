"""A local stand-in of the CyberTipline Reporting API, for tests, demos and staging.

It speaks the API as its public documentation describes it (paths relative to a base such as
``/ispws``; HTTP Basic credentials; XML answers ``<reportResponse>`` with ``responseCode``,
``responseDescription``, ``reportId`` and ``fileId``, and ``<reportDoneResponse>`` for
``/finish``):

====================  =====================================================================
``GET  /status``      answers code 0 with the user name
``GET  /xsd``         Overt's XSD (the real API serves NCMEC's)
``POST /submit``      a ``<report>``; opens a report and answers its ``reportId``
``POST /upload``      multipart ``id`` and ``file``; answers a ``fileId``
``POST /fileinfo``    a ``<fileDetails>`` for an uploaded file
``POST /finish``      form ``id``; closes the report, answers the file ids
``POST /retract``     form ``id``; withdraws an unfinished report
====================  =====================================================================

Every XML document it receives is validated against Overt's XSD (``schemas/
cybertip-report.xsd``): malformed XML is refused with code 4110, a schema violation with 4100
and a message naming it. Other codes follow the public list: 2000 authentication required,
5001 report does not exist, 5002 file does not exist, 5101 already retracted, 5102 already
finished, 1000 server error. HTTP statuses are the stand-in's choice (the public description
does not fix them): 200, 400, 401, 404, 409, 413, or 5xx when told to fail.

Everything received is kept in memory (:attr:`CyberTipStandin.reports`); :meth:`fail_next`
makes the next requests fail with a 5xx before doing anything, :meth:`lose_next_answers` makes
them do their work and then answer 5xx (an answer lost on the way back). Unlike the real API the
``/upload`` answer carries no ``hash`` (the real one is an MD5, which Overt does not compute).

This module is a test double: it never contacts NCMEC, holds no real credentials and knows no
Overt protocol; it is meant to run in-process (``httpx.ASGITransport``) or on loopback only.
"""

from __future__ import annotations

import base64
import email.message
import itertools
import re
import xml.etree.ElementTree as ET  # builds answers only; parsing goes through xmlschema
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from overt.crypto import constant_time_eq
from overt.errors import DecodeError
from overt.safety.cybertip import schema_bytes, validate_xml
from overt.safety.limits import STANDIN_MAX_UPLOAD_BYTES, STANDIN_MAX_XML_BYTES

SUCCESS: Final = 0
SERVER_ERROR: Final = 1000
AUTHENTICATION_REQUIRED: Final = 2000
INVALID_REQUEST: Final = 4000
VALIDATION_FAILED: Final = 4100
MALFORMED_XML: Final = 4110
MALFORMED_FILE: Final = 4200
REPORT_DOES_NOT_EXIST: Final = 5001
FILE_DOES_NOT_EXIST: Final = 5002
ALREADY_RETRACTED: Final = 5101
ALREADY_FINISHED: Final = 5102

_STATUS: Final = {
    SUCCESS: 200, SERVER_ERROR: 500, AUTHENTICATION_REQUIRED: 401, INVALID_REQUEST: 400,
    VALIDATION_FAILED: 400, MALFORMED_XML: 400, MALFORMED_FILE: 400,
    REPORT_DOES_NOT_EXIST: 404, FILE_DOES_NOT_EXIST: 404, ALREADY_RETRACTED: 409,
    ALREADY_FINISHED: 409,
}  # fmt: skip
_XML: Final = "application/xml"


@dataclass
class StandinFile:
    file_id: str
    name: str
    content_type: str
    content: bytes = field(repr=False)
    details: Mapping[str, object] | None = None


@dataclass
class StandinReport:
    report_id: int
    document: bytes = field(repr=False)
    parsed: Mapping[str, object] = field(repr=False)
    files: dict[str, StandinFile] = field(default_factory=dict)
    finished: bool = False
    retracted: bool = False


class _Refusal(Exception):
    def __init__(self, code: int, description: str, status: int | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.status = status


class CyberTipStandin:
    """The stand-in's state and its ASGI app (:attr:`app`), mounted under ``prefix``."""

    def __init__(
        self,
        *,
        username: str,
        password: str,
        prefix: str = "/ispws",
        first_report_id: int = 1000,
    ) -> None:
        self._username = username
        self._password = password
        self.reports: dict[int, StandinReport] = {}
        self.requests: list[str] = []
        self._report_ids = itertools.count(first_report_id)
        self._file_ids = itertools.count(1)
        self._fail = 0
        self._fail_status = 503
        self._lose = 0
        routes = [
            Route("/status", self._status, methods=["GET"]),
            Route("/xsd", self._xsd, methods=["GET"]),
            Route("/submit", self._submit, methods=["POST"]),
            Route("/upload", self._upload, methods=["POST"]),
            Route("/fileinfo", self._fileinfo, methods=["POST"]),
            Route("/finish", self._finish, methods=["POST"]),
            Route("/retract", self._retract, methods=["POST"]),
        ]
        self.app = Starlette(routes=[Mount(prefix, routes=routes)] if prefix else routes)

    def fail_next(self, n: int, status: int = 503) -> None:
        """The next ``n`` requests answer ``status`` (a 5xx) without doing anything."""
        self._fail, self._fail_status = n, status

    def lose_next_answers(self, n: int) -> None:
        """The next ``n`` requests do their work, then answer 503 as if the answer was lost."""
        self._lose = n

    # ------------------------------------------------------------------ plumbing

    async def _handle(self, request: Request, action: str) -> Response:
        self.requests.append(f"{request.method} {request.url.path.rsplit('/', 1)[-1]}")
        if self._fail > 0:
            self._fail -= 1
            return _answer(SERVER_ERROR, "Server error (injected)", status=self._fail_status)
        if not self._authenticated(request):
            return _answer(AUTHENTICATION_REQUIRED, "Authentication required",
                           headers={"WWW-Authenticate": 'Basic realm="stand-in"'})  # fmt: skip
        try:
            response = await getattr(self, f"_do_{action}")(request)
        except _Refusal as r:
            return _answer(r.code, r.description, status=r.status)
        if self._lose > 0:
            self._lose -= 1
            return _answer(SERVER_ERROR, "Server error (answer lost, injected)", status=503)
        assert isinstance(response, Response)
        return response

    def _authenticated(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        expected = base64.b64encode(f"{self._username}:{self._password}".encode())
        return constant_time_eq(value.strip().encode(), expected)

    async def _body(self, request: Request, limit: int) -> bytes:
        body = await request.body()
        if len(body) > limit:
            raise _Refusal(INVALID_REQUEST, f"request body over {limit} bytes", 413)
        return body

    async def _xml(self, request: Request, root: str) -> tuple[bytes, Mapping[str, object]]:
        body = await self._body(request, STANDIN_MAX_XML_BYTES)
        try:
            return body, validate_xml(body, root, f"<{root}>")
        except DecodeError as exc:
            code = MALFORMED_XML if "well-formed" in str(exc) else VALIDATION_FAILED
            label = "Malformed XML submittal" if code == MALFORMED_XML else "Validation failed"
            raise _Refusal(code, f"{label}: {exc}") from None

    async def _form(self, request: Request) -> dict[str, tuple[str | None, str, bytes]]:
        """Fields of a multipart or urlencoded form: name → (file name, content type, bytes)."""
        body = await self._body(request, STANDIN_MAX_UPLOAD_BYTES)
        ctype = request.headers.get("content-type", "")
        if ctype.startswith("application/x-www-form-urlencoded"):
            pairs = parse_qs(body.decode("latin-1"), strict_parsing=False)
            return {k: (None, "text/plain", v[0].encode()) for k, v in pairs.items()}
        return _multipart(body, ctype)

    def _report(self, raw_id: str | bytes | None, *, open_only: bool = True) -> StandinReport:
        text = raw_id.decode() if isinstance(raw_id, bytes) else raw_id
        if text is None or not text.strip().isdigit():
            raise _Refusal(INVALID_REQUEST, "a numeric report id is required")
        report = self.reports.get(int(text))
        if report is None:
            raise _Refusal(REPORT_DOES_NOT_EXIST, "Report does not exist")
        if open_only and report.retracted:
            raise _Refusal(ALREADY_RETRACTED, "Report already retracted")
        if open_only and report.finished:
            raise _Refusal(ALREADY_FINISHED, "Report already finished")
        return report

    # ------------------------------------------------------------------ endpoints

    async def _status(self, request: Request) -> Response:
        return await self._handle(request, "status")

    async def _xsd(self, request: Request) -> Response:
        return await self._handle(request, "xsd")

    async def _submit(self, request: Request) -> Response:
        return await self._handle(request, "submit")

    async def _upload(self, request: Request) -> Response:
        return await self._handle(request, "upload")

    async def _fileinfo(self, request: Request) -> Response:
        return await self._handle(request, "fileinfo")

    async def _finish(self, request: Request) -> Response:
        return await self._handle(request, "finish")

    async def _retract(self, request: Request) -> Response:
        return await self._handle(request, "retract")

    async def _do_status(self, request: Request) -> Response:
        host = request.client.host if request.client else "unknown"
        return _answer(SUCCESS, f"Remote User : {self._username}, Remote Ip : {host}")

    async def _do_xsd(self, request: Request) -> Response:
        del request
        return Response(schema_bytes(), media_type=_XML)

    async def _do_submit(self, request: Request) -> Response:
        document, parsed = await self._xml(request, "report")
        report_id = next(self._report_ids)
        self.reports[report_id] = StandinReport(report_id, document, parsed)
        return _answer(SUCCESS, "Success", report_id=report_id)

    async def _do_upload(self, request: Request) -> Response:
        form = await self._form(request)
        report = self._report(form.get("id", (None, "", b""))[2])
        upload = form.get("file")
        if upload is None or upload[0] is None:
            raise _Refusal(MALFORMED_FILE, "Malformed file submittal: no 'file' part")
        file_id = f"{next(self._file_ids):032x}"
        report.files[file_id] = StandinFile(file_id, upload[0], upload[1], upload[2])
        return _answer(SUCCESS, "Success", report_id=report.report_id, file_id=file_id)

    async def _do_fileinfo(self, request: Request) -> Response:
        _, parsed = await self._xml(request, "fileDetails")
        report = self._report(str(parsed["reportId"]))
        stored = report.files.get(str(parsed["fileId"]))
        if stored is None:
            raise _Refusal(FILE_DOES_NOT_EXIST, "File does not exist")
        stored.details = parsed
        return _answer(SUCCESS, "Success", report_id=report.report_id)

    async def _do_finish(self, request: Request) -> Response:
        form = await self._form(request)
        report = self._report(form.get("id", (None, "", b""))[2])
        report.finished = True
        root = ET.Element("reportDoneResponse")
        ET.SubElement(root, "responseCode").text = str(SUCCESS)
        ET.SubElement(root, "reportId").text = str(report.report_id)
        listed = ET.SubElement(root, "files")
        for file_id in report.files:
            ET.SubElement(listed, "fileId").text = file_id
        return Response(ET.tostring(root, encoding="UTF-8", xml_declaration=True),
                        media_type=_XML)  # fmt: skip

    async def _do_retract(self, request: Request) -> Response:
        form = await self._form(request)
        report = self._report(form.get("id", (None, "", b""))[2])
        report.retracted = True
        return _answer(SUCCESS, "Success", report_id=report.report_id)


def _answer(
    code: int,
    description: str,
    *,
    report_id: int | None = None,
    file_id: str | None = None,
    status: int | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    root = ET.Element("reportResponse")
    ET.SubElement(root, "responseCode").text = str(code)
    ET.SubElement(root, "responseDescription").text = description
    if report_id is not None:
        ET.SubElement(root, "reportId").text = str(report_id)
    if file_id is not None:
        ET.SubElement(root, "fileId").text = file_id
    body = ET.tostring(root, encoding="UTF-8", xml_declaration=True)
    return Response(body, status_code=status or _STATUS.get(code, 400), media_type=_XML,
                    headers=dict(headers or {}))  # fmt: skip


_BOUNDARY: Final = re.compile(r'boundary="?([^";]+)"?')


def _multipart(body: bytes, content_type: str) -> dict[str, tuple[str | None, str, bytes]]:
    """A strict, small multipart/form-data reader (the stand-in has no multipart library)."""
    match = _BOUNDARY.search(content_type)
    if not content_type.startswith("multipart/form-data") or match is None:
        raise _Refusal(INVALID_REQUEST, "expected multipart/form-data or a urlencoded form")
    delimiter = b"--" + match.group(1).encode()
    chunks = body.split(delimiter)
    if len(chunks) < 3 or not chunks[-1].startswith(b"--"):
        raise _Refusal(INVALID_REQUEST, "malformed multipart body")
    fields: dict[str, tuple[str | None, str, bytes]] = {}
    for chunk in chunks[1:-1]:
        if not chunk.startswith(b"\r\n") or not chunk.endswith(b"\r\n"):
            raise _Refusal(INVALID_REQUEST, "malformed multipart part")
        head, sep, data = chunk[2:-2].partition(b"\r\n\r\n")
        if not sep:
            raise _Refusal(INVALID_REQUEST, "multipart part without headers")
        headers = email.message.Message()
        for line in head.decode("utf-8", "replace").split("\r\n"):
            name, colon, value = line.partition(":")
            if colon:
                headers[name.strip()] = value.strip()
        field_name = headers.get_param("name", header="content-disposition")
        file_name = headers.get_param("filename", header="content-disposition")
        if not isinstance(field_name, str):
            raise _Refusal(INVALID_REQUEST, "multipart part without a name")
        fields[field_name] = (
            file_name if isinstance(file_name, str) else None,
            headers.get("content-type", "text/plain"),
            data,
        )
    return fields
