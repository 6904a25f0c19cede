"""The public surface of overt.safety, pinned; what the package must not reach for; and the
body format it shares with the client."""

from __future__ import annotations

import ast
from pathlib import Path

import overt.safety
import overt.safety.cybertip
from overt.client import body as client_body
from overt.client import client as client_module
from overt.client import limits as client_limits
from overt.crypto import sha256
from overt.safety import limits
from overt.safety.body import AttachmentRef, BodyKind, MessageBody

SAFETY = Path(overt.safety.__file__).parent

EXPECTED = {
    "ATTACHMENT_AD",
    "ATTACHMENT_LABEL",
    "AlreadyReported",
    "AttachmentRef",
    "BodyKind",
    "BundleMismatch",
    "CyberTipRejected",
    "CyberTipUnavailable",
    "EscalationInvalid",
    "EvidenceBundle",
    "InvalidReportedMessage",
    "MessageBody",
    "ReplayKey",
    "Report",
    "ReportRefused",
    "ReportedMessage",
    "RevealedAttachment",
    "SubmissionStateError",
    "VerificationEntry",
    "VerifiedAttachment",
    "VerifiedMessage",
    "VerifiedReport",
    "export_bundle",
    "franking_key_id",
    "load_bundle",
    "reverify_bundle",
    "verify_report",
}

EXPECTED_CYBERTIP = {
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
}


def test_exported_names_are_pinned() -> None:
    assert set(overt.safety.__all__) == EXPECTED
    assert set(overt.safety.cybertip.__all__) == EXPECTED_CYBERTIP
    for name in EXPECTED:
        assert getattr(overt.safety, name) is not None


def _imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


def test_the_package_does_not_reach_for_other_layers_or_primitives() -> None:
    forbidden = (
        "overt.server",
        "overt.client",
        "overt.cli",
        "hashlib",
        "hmac",
        "cryptography",
        "pickle",
    )
    for path in SAFETY.rglob("*.py"):
        for name in _imports(path):
            assert not name.startswith(forbidden), f"{path.name} imports {name}"
    pure = {"reports.py", "body.py", "_b64.py", "limits.py", "errors.py"}
    for name in pure:  # the pure core: no I/O, clocks or randomness
        imported = _imports(SAFETY / name)
        assert not imported & {"os", "time", "httpx", "tempfile", "pathlib", "random"}, name


def test_every_module_says_what_it_must_not_know() -> None:
    for path in SAFETY.glob("*.py"):
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        assert doc, path.name
        if path.name not in {"__init__.py", "limits.py", "errors.py", "_b64.py"}:
            assert "never" in doc or "not import" in doc or "knows no" in doc, path.name


def test_body_format_is_the_clients() -> None:
    pointer = client_body.AttachmentPointer(
        b"blob", b"\x11" * 32, 42, sha256(b"p"), sha256(b"c"), "image/png", "x.png"
    )
    for body in (
        client_body.Body.of_text(b"bob", "hello ✓"),
        client_body.Body.of_attachment(b"bob", pointer, "caption"),
        client_body.Body.of_text(b"\x07" * 32, "to the group"),
        client_body.Body.of_group(client_body.BodyKind.GROUP_UPDATE, b"\x07" * 32, b"update"),
        client_body.Body.of_group(client_body.BodyKind.GROUP_KEY, b"\x07" * 32, b"key"),
    ):
        ours = MessageBody.decode(body.encode())
        assert ours.encode() == body.encode()
        assert client_body.Body.decode(ours.encode()) == body
    ref = AttachmentRef(b"blob", b"\x11" * 32, 42, sha256(b"p"), sha256(b"c"), "image/png", "x.png")
    assert MessageBody(BodyKind.ATTACHMENT, b"bob", "caption", ref).encode() == (
        client_body.Body.of_attachment(b"bob", pointer, "caption").encode()
    )


def test_mirrored_bounds_and_labels_agree_with_the_client() -> None:
    assert limits.MAX_TEXT_BYTES == client_limits.MAX_TEXT_BYTES
    assert limits.MAX_FILE_NAME_BYTES == client_limits.MAX_FILE_NAME_BYTES
    assert limits.MAX_CONTENT_TYPE_BYTES == client_limits.MAX_CONTENT_TYPE_BYTES
    assert limits.MAX_BLOB_ID_BYTES == client_body.MAX_BLOB_ID_LEN
    assert limits.MAX_GROUP_DATA_BYTES == client_limits.MAX_GROUP_DATA_BYTES
    assert {(k.name, k.value) for k in BodyKind} == {
        (k.name, k.value) for k in client_body.BodyKind
    }
    assert limits.MAX_ATTACHMENT_PLAINTEXT_BYTES == client_limits.MAX_ATTACHMENT_BYTES
    assert overt.safety.ATTACHMENT_LABEL == client_module.ATTACHMENT_LABEL
    assert overt.safety.ATTACHMENT_AD == client_module.ATTACHMENT_AD
