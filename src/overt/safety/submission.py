"""The state of one CyberTipline submission, as a table of transitions, and where it is kept.

One escalation is submitted in steps (``/submit`` → per file ``/upload`` then ``/fileinfo`` →
``/finish``; or ``/retract``). The client records each step *before* it makes the request and
its outcome *after*, so that a process that dies anywhere resumes where it stopped: with the
report id it already has, without opening a second report. Every transition is in
:data:`TRANSITIONS` (phases) or :data:`FILE_TRANSITIONS` (files); an event the table does not
list for the current state raises :class:`SubmissionStateError` and changes nothing (transitions
return a new state; the old one is kept until the caller stores the new one).

What cannot be made idempotent: a ``/submit`` whose answer never arrived may or may not have
opened a report at NCMEC (the API has no idempotency key). On resume the client submits again and
:attr:`SubmissionState.submit_requests` keeps count: ``submit_requests - 1`` bounds the number of
orphaned, never-finished reports an operator may have to explain. Likewise ``uploads`` per file.

State is stored as versioned JSON (never pickle) under the escalation id; writes are atomic.
This module knows no HTTP and no XML; :class:`DirectorySubmissionStore` is its only I/O.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Final, Protocol, Self

from overt.errors import DecodeError, LocalError
from overt.safety.errors import SubmissionStateError

STATE_VERSION: Final = 1
ESCALATION_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")


class Phase(StrEnum):
    NEW = "new"
    SUBMITTING = "submitting"  # /submit sent (or about to be); no report id known yet
    OPEN = "open"  # report id known; files being uploaded and described
    FINISHING = "finishing"  # /finish sent (or about to be)
    FINISHED = "finished"  # terminal: the report is with NCMEC
    RETRACTING = "retracting"  # /retract sent (or about to be)
    RETRACTED = "retracted"  # terminal
    FAILED = "failed"  # NCMEC refused a step; retract (if a report id is known) or start anew


class FileStage(StrEnum):
    PENDING = "pending"
    UPLOADING = "uploading"  # /upload sent (or about to be); no file id yet
    UPLOADED = "uploaded"  # file id known
    DESCRIBED = "described"  # /fileinfo accepted


class Event(StrEnum):
    SUBMIT = "submit"
    SUBMITTED = "submitted"
    FINISH = "finish"
    FINISHED = "finished"
    RETRACT = "retract"
    RETRACTED = "retracted"
    FAIL = "fail"


class FileEvent(StrEnum):
    UPLOAD = "upload"
    UPLOADED = "uploaded"
    DESCRIBED = "described"


#: Every transition of a submission's phase. Re-entering SUBMITTING, FINISHING or RETRACTING is
#: how a resumed process retries a request whose outcome it never learnt.
TRANSITIONS: Final[Mapping[tuple[Phase, Event], Phase]] = {
    (Phase.NEW, Event.SUBMIT): Phase.SUBMITTING,
    (Phase.SUBMITTING, Event.SUBMIT): Phase.SUBMITTING,
    (Phase.SUBMITTING, Event.SUBMITTED): Phase.OPEN,
    (Phase.SUBMITTING, Event.FAIL): Phase.FAILED,
    (Phase.OPEN, Event.FINISH): Phase.FINISHING,
    (Phase.OPEN, Event.FAIL): Phase.FAILED,
    (Phase.OPEN, Event.RETRACT): Phase.RETRACTING,
    (Phase.FINISHING, Event.FINISH): Phase.FINISHING,
    (Phase.FINISHING, Event.FINISHED): Phase.FINISHED,
    (Phase.FINISHING, Event.FAIL): Phase.FAILED,
    (Phase.FINISHING, Event.RETRACT): Phase.RETRACTING,
    (Phase.FAILED, Event.RETRACT): Phase.RETRACTING,
    (Phase.RETRACTING, Event.RETRACT): Phase.RETRACTING,
    (Phase.RETRACTING, Event.RETRACTED): Phase.RETRACTED,
    (Phase.RETRACTING, Event.FAIL): Phase.FAILED,
}

#: Every transition of one file; allowed only while the submission is OPEN.
FILE_TRANSITIONS: Final[Mapping[tuple[FileStage, FileEvent], FileStage]] = {
    (FileStage.PENDING, FileEvent.UPLOAD): FileStage.UPLOADING,
    (FileStage.UPLOADING, FileEvent.UPLOAD): FileStage.UPLOADING,
    (FileStage.UPLOADING, FileEvent.UPLOADED): FileStage.UPLOADED,
    (FileStage.UPLOADED, FileEvent.DESCRIBED): FileStage.DESCRIBED,
}


@dataclass(frozen=True, slots=True)
class FileState:
    stage: FileStage = FileStage.PENDING
    file_id: str | None = None
    uploads: int = 0


@dataclass(frozen=True, slots=True)
class SubmissionState:
    """Where one escalation's submission stands. ``document_sha256`` names the report XML it
    was started with, so that a resume with a different document is refused."""

    escalation_id: str
    document_sha256: str
    phase: Phase
    files: tuple[FileState, ...]
    report_id: int | None = None
    submit_requests: int = 0
    error: str | None = None

    @classmethod
    def new(cls, escalation_id: str, document_sha256: str, file_count: int) -> Self:
        if not ESCALATION_ID.fullmatch(escalation_id):
            raise LocalError("an escalation id is 1..64 characters of A-Z, a-z, 0-9, '_', '-'")
        return cls(escalation_id, document_sha256, Phase.NEW,
                   tuple(FileState() for _ in range(file_count)))  # fmt: skip

    def apply(
        self, event: Event, *, report_id: int | None = None, error: str | None = None
    ) -> Self:
        """The state after ``event``; :class:`SubmissionStateError` if the table has no such
        transition (``self`` is unchanged either way)."""
        nxt = TRANSITIONS.get((self.phase, event))
        if nxt is None:
            raise SubmissionStateError(
                f"escalation {self.escalation_id}: cannot {event.value} while {self.phase.value}"
            )
        if event is Event.FINISH and any(f.stage is not FileStage.DESCRIBED for f in self.files):
            raise SubmissionStateError(
                f"escalation {self.escalation_id}: cannot finish before every file is described"
            )
        if event is Event.SUBMITTED:
            if report_id is None:
                raise SubmissionStateError("a submitted report has a report id")
            return replace(self, phase=nxt, report_id=report_id)
        if event is Event.SUBMIT:
            return replace(self, phase=nxt, submit_requests=self.submit_requests + 1)
        if event is Event.FAIL:
            return replace(self, phase=nxt, error=error)
        return replace(self, phase=nxt)

    def apply_file(self, index: int, event: FileEvent, *, file_id: str | None = None) -> Self:
        if self.phase is not Phase.OPEN:
            raise SubmissionStateError(
                f"escalation {self.escalation_id}: files change only while open, not "
                f"{self.phase.value}"
            )
        current = self.files[index]
        nxt = FILE_TRANSITIONS.get((current.stage, event))
        if nxt is None:
            raise SubmissionStateError(
                f"escalation {self.escalation_id}: file {index + 1} cannot {event.value} while "
                f"{current.stage.value}"
            )
        if event is FileEvent.UPLOADED and file_id is None:
            raise SubmissionStateError("an uploaded file has a file id")
        new = replace(
            current,
            stage=nxt,
            file_id=file_id if event is FileEvent.UPLOADED else current.file_id,
            uploads=current.uploads + (event is FileEvent.UPLOAD),
        )
        files = (*self.files[:index], new, *self.files[index + 1 :])
        return replace(self, files=files)

    # ------------------------------------------------------------------ persistence

    def encode(self) -> bytes:
        return json.dumps(
            {
                "version": STATE_VERSION,
                "escalation_id": self.escalation_id,
                "document_sha256": self.document_sha256,
                "phase": self.phase.value,
                "report_id": self.report_id,
                "submit_requests": self.submit_requests,
                "error": self.error,
                "files": [
                    {"stage": f.stage.value, "file_id": f.file_id, "uploads": f.uploads}
                    for f in self.files
                ],
            },
            sort_keys=True,
        ).encode()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        try:
            o = json.loads(data)
            if not isinstance(o, dict) or o.get("version") != STATE_VERSION:
                raise DecodeError("submission state: unknown version")
            files = tuple(
                FileState(FileStage(f["stage"]), _opt_str(f["file_id"]), int(f["uploads"]))
                for f in o["files"]
            )
            return cls(
                str(o["escalation_id"]), str(o["document_sha256"]), Phase(o["phase"]), files,
                None if o["report_id"] is None else int(o["report_id"]),
                int(o["submit_requests"]), _opt_str(o["error"]),
            )  # fmt: skip
        except (ValueError, KeyError, TypeError) as exc:
            raise DecodeError(f"submission state is damaged: {exc}") from None


def _opt_str(v: object) -> str | None:
    if v is None or isinstance(v, str):
        return v
    raise TypeError("expected a string or null")


# ----------------------------------------------------------------------------- stores


class SubmissionStore(Protocol):
    """Where submission states live, by escalation id. ``None`` means absent; an exception
    means failure. ``save`` must be durable when it returns."""

    def load(self, escalation_id: str) -> bytes | None: ...

    def save(self, escalation_id: str, data: bytes) -> None: ...


class MemorySubmissionStore:
    """The in-memory reference (tests; a process that need not survive restarts)."""

    def __init__(self) -> None:
        self._data: dict[str, bytes] = {}

    def load(self, escalation_id: str) -> bytes | None:
        return self._data.get(escalation_id)

    def save(self, escalation_id: str, data: bytes) -> None:
        self._data[escalation_id] = bytes(data)


class DirectorySubmissionStore:
    """One file per escalation in ``directory``, written atomically and synced."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self._dir = Path(directory)

    def _path(self, escalation_id: str) -> Path:
        if not ESCALATION_ID.fullmatch(escalation_id):
            raise LocalError(f"{escalation_id!r} is not an escalation id")
        return self._dir / f"{escalation_id}.json"

    def load(self, escalation_id: str) -> bytes | None:
        try:
            return self._path(escalation_id).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise LocalError(f"could not read submission state: {exc}") from exc

    def save(self, escalation_id: str, data: bytes) -> None:
        target = self._path(escalation_id)
        try:
            self._dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self._dir, prefix=f".{target.name}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise LocalError(f"could not write submission state: {exc}") from exc
