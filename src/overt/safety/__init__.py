"""overt.safety — verifiable reports and their escalation, without reading messages (DESIGN.md §5).

* :mod:`~overt.safety.reports` — the report format, :func:`verify_report`, evidence bundles and
  :func:`reverify_bundle` (pure: no I/O, no clock).
* :mod:`~overt.safety.body` — the message body as a moderator reads it (the client's format).
* :mod:`~overt.safety.evidence` — evidence bundles on disk.
* :mod:`~overt.safety.cybertip` — escalation to NCMEC's CyberTipline: the report XML shaped after
  its reporting API, validated against Overt's XSD, and a resumable client of the API
  (imported on its own: it brings in httpx and xmlschema).
* :mod:`~overt.safety.cybertip_standin` — a local stand-in of that API, for tests and demos.
* :mod:`~overt.safety.limits` — every bound, named; :mod:`~overt.safety.errors` — the errors.

This package never reads a message the reporter did not reveal, holds no user keys, and does not
import overt.server, overt.client or overt.cli.
"""

from overt.safety.body import (
    ATTACHMENT_AD,
    ATTACHMENT_LABEL,
    AttachmentRef,
    BodyKind,
    MessageBody,
)
from overt.safety.errors import (
    AlreadyReported,
    BundleMismatch,
    CyberTipRejected,
    CyberTipUnavailable,
    EscalationInvalid,
    InvalidReportedMessage,
    ReportRefused,
    SubmissionStateError,
)
from overt.safety.evidence import export_bundle, load_bundle
from overt.safety.reports import (
    EvidenceBundle,
    ReplayKey,
    Report,
    ReportedMessage,
    RevealedAttachment,
    VerificationEntry,
    VerifiedAttachment,
    VerifiedMessage,
    VerifiedReport,
    franking_key_id,
    reverify_bundle,
    verify_report,
)

__all__ = [
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
]
