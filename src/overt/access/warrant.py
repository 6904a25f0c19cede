"""Warrants: court-signed JSON documents shaped after ETSI TS 103 120, and their log entries.

A :class:`Warrant` follows the structure of ETSI TS 103 120's HI-1 objects, reduced to what
Overt acts on:

* the **warrant id** — 32 random bytes the court draws (TS 103 120's ``ObjectIdentifier``);
* an :class:`Authorisation` (``AuthorisationObject``): reference, legal basis, the timespan in
  which the authorisation is in force, and the approval details — the court's name and signing
  key, the judge's reference, the approval time;
* one or more :class:`Task` s (``LITaskObject``): a reference, target identifiers (Overt
  account ids), the interception timespan, and the delivery — ``content`` (decryption of
  message content) or ``metadata`` (no decryption at all);
* the **notification** date (``sealed_until``): when, at the latest, the targets are told;
* a **cap** on the number of messages any one custodian may release shares for;
* a random **targets salt** that hides the targets in the public log until unsealing.

The document is signed, as TS 103 120's ``DocumentObject`` carries a signed warrant, with
Ed25519 over ``"Overt_Warrant_v1\\n" ‖ JCS(warrant)`` (RFC 8785, :mod:`overt.wire.jcs`), and
travels as the canonical JSON ``{"signature": "<base64url>", "warrant": {...}}``: one warrant,
one signed encoding. The court's key is named inside the approval details, so the document is
self-describing; :func:`verify_warrant` accepts it only if that key is one the manifest lists,
under the name the manifest gives it. A :class:`Revocation` is a court-signed document of the
same form naming the warrant id.

Times are Unix seconds; a timespan is half-open ``[start, end)``. Rules a warrant must satisfy
(each refused with a message that names it): the approval comes no later than the
authorisation starts (access is prospective: the provider copies nothing before a warrant
arrives, see docs/lawful-access.md); every task's timespan lies inside the authorisation's;
the authorisation ends no later than the sealing date; the cap is at least one; every task
names at least one target, with no target twice in a task and at most :data:`MAX_TARGETS` over
the warrant; and — checked against the manifest — the sealing period from approval to
notification is at most the manifest's ``max_seal_days``.

**The log.** Before any custodian acts on it the provider logs a
:class:`~overt.transparency.entries.WarrantCommitment` (:func:`warrant_commitment`): the
warrant id, the court key, the authorisation's length and the sealing date are public; the
targets are hidden behind ``SHA-256("Overt_warrant_targets_v1" ‖ opening)``, where the
``opening`` is the salt followed by the canonical target list (below). The commitment is a
function of the warrant alone, so a custodian holding the warrant recomputes the exact entry
and checks the log holds it. When the seal ends the provider logs the opening
(:func:`unsealing`), and anyone can check it against the commitment and read the targets
(:func:`read_opening`)::

    opening     = salt[32] ‖ target_list
    target_list = u8 n_tasks ‖ n_tasks × (start u64 ‖ end u64 ‖ delivery u8 ‖
                                          u8 n_targets ‖ n_targets × account<1..64>)

Failures: a document that is malformed, not canonical or breaks a rule raises
:class:`~overt.errors.DecodeError`; a court key the manifest does not list (or lists under
another name) :class:`~overt.errors.UntrustedIdentity`; a bad signature
:class:`~overt.errors.InvalidMessage` (no reason); a sealing period longer than the manifest
allows :class:`~overt.errors.ProtocolViolation`. Building an invalid warrant locally raises
:class:`~overt.errors.LocalError`.

This module never sees sockets, files or clocks; the caller passes every time it compares.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Final, Self

from overt.access._b64 import b64d, b64e
from overt.access.limits import (
    DAY_SECONDS,
    MAX_MESSAGE_CAP,
    MAX_TARGETS,
    MAX_TARGETS_PER_TASK,
    MAX_TASKS,
    MAX_TIMESTAMP,
    MAX_WARRANT_BYTES,
    MAX_WARRANT_TEXT_BYTES,
    TARGETS_SALT_LEN,
    WARRANT_ID_LEN,
)
from overt.crypto import (
    ED25519_KEY_LEN,
    ED25519_SIG_LEN,
    Ed25519PrivateKey,
    Ed25519PublicKey,
    Rng,
)
from overt.errors import DecodeError, LocalError, ProtocolViolation, UntrustedIdentity
from overt.transparency.entries import (
    WarrantCommitment,
    WarrantUnsealing,
    warrant_targets_commitment,
)
from overt.transparency.manifest import NamedKey
from overt.wire import Reader, Writer
from overt.wire.jcs import JsonValue, canonicalize, parse_strict
from overt.wire.messages import MAX_ACCOUNT_ID_LEN

WARRANT_SIGNING_CONTEXT: Final = b"Overt_Warrant_v1\n"
"""Prefix of the message a court signs for a warrant."""

REVOCATION_SIGNING_CONTEXT: Final = b"Overt_WarrantRevocation_v1\n"
"""Prefix of the message a court signs to revoke a warrant."""

WARRANT_VERSION: Final = 1
REVOCATION_VERSION: Final = 1
TARGET_TYPE_ACCOUNT: Final = "overt-account"
"""The one target identifier type: an Overt account id (base64url of its bytes)."""

_SIG_B64_LEN: Final = 86


class Delivery(Enum):
    """What a task authorises (TS 103 120's delivery type: CC is content, IRI metadata)."""

    CONTENT = "content"
    METADATA = "metadata"


_DELIVERY_CODE: Final = {Delivery.CONTENT: 1, Delivery.METADATA: 2}
_CODE_DELIVERY: Final = {v: k for k, v in _DELIVERY_CODE.items()}


class _Invalid(Exception):
    """A warrant rule is broken; mapped to LocalError (construction) or DecodeError (parsing)."""


def _check(condition: bool, problem: str) -> None:
    if not condition:
        raise _Invalid(problem)


def _run(obj: object, validate: Callable[[], None]) -> None:
    try:
        validate()
    except _Invalid as e:
        raise LocalError(f"{type(obj).__name__}: {e}") from None


def _check_time(value: int, what: str) -> None:
    _check(
        isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TIMESTAMP,
        f"{what} must be Unix seconds in [0, 2^53-1]",
    )


def _check_text(value: str, what: str) -> None:
    _check(isinstance(value, str) and value != "", f"{what} must be a non-empty string")
    _check(value == value.strip(), f"{what} has leading or trailing whitespace")
    _check(not any(ch < " " or ch == "\x7f" for ch in value), f"{what} holds a control character")
    try:
        n = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise _Invalid(f"{what} is not valid Unicode") from None
    _check(n <= MAX_WARRANT_TEXT_BYTES, f"{what} is longer than {MAX_WARRANT_TEXT_BYTES} bytes")


# ----------------------------------------------------------------------------- parts


@dataclass(frozen=True, slots=True)
class Timespan:
    """A half-open interval ``[start, end)`` of Unix seconds."""

    start: int
    end: int

    def __post_init__(self) -> None:
        _run(self, self._validate)

    def _validate(self) -> None:
        _check_time(self.start, "start")
        _check_time(self.end, "end")
        _check(self.start < self.end, "a timespan must end after it starts")

    @property
    def seconds(self) -> int:
        return self.end - self.start

    def within(self, other: Timespan) -> bool:
        return other.start <= self.start and self.end <= other.end

    def contains(self, t: int) -> bool:
        return self.start <= t < self.end

    def covers_day(self, day: int) -> bool:
        """Whether the whole UTC day ``day`` (days since the Unix epoch) lies in the span.

        An access context carries only the day of a message, so this is the window check at day
        granularity: a partly covered day at either edge is *outside* (a custodian never
        releases a share for a message that might fall outside the court's window). Courts
        that want those days name windows on UTC day boundaries.
        """
        return self.start <= day * DAY_SECONDS and (day + 1) * DAY_SECONDS <= self.end

    def to_json(self) -> dict[str, JsonValue]:
        return {"end": self.end, "start": self.start}


@dataclass(frozen=True, slots=True)
class Approval:
    """Who approved the authorisation (TS 103 120 ``AuthorisationApprovalDetails``)."""

    court: str
    """The court's name, exactly as the manifest names its key."""
    court_key: Ed25519PublicKey
    """The court key that signs this warrant (one the manifest lists)."""
    judge_reference: str
    approved_at: int

    def __post_init__(self) -> None:
        _run(self, self._validate)

    def _validate(self) -> None:
        _check_text(self.court, "court name")
        _check(isinstance(self.court_key, Ed25519PublicKey), "court key must be Ed25519")
        _check_text(self.judge_reference, "judge reference")
        _check_time(self.approved_at, "approval time")

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "approved_at": self.approved_at,
            "court": self.court,
            "court_key": b64e(self.court_key.raw),
            "judge_reference": self.judge_reference,
        }


@dataclass(frozen=True, slots=True)
class Authorisation:
    """The legal authorisation (TS 103 120 ``AuthorisationObject``)."""

    reference: str
    legal_basis: str
    timespan: Timespan
    """When the authorisation is in force: custodians act on it only inside this span."""
    approval: Approval

    def __post_init__(self) -> None:
        _run(self, self._validate)

    def _validate(self) -> None:
        _check_text(self.reference, "authorisation reference")
        _check_text(self.legal_basis, "legal basis")
        _check(isinstance(self.timespan, Timespan), "timespan must be a Timespan")
        _check(isinstance(self.approval, Approval), "approval must be an Approval")

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "approval": self.approval.to_json(),
            "legal_basis": self.legal_basis,
            "reference": self.reference,
            "timespan": self.timespan.to_json(),
        }


@dataclass(frozen=True, slots=True)
class Task:
    """One interception task (TS 103 120 ``LITaskObject``): targets, window, delivery."""

    reference: str
    targets: tuple[bytes, ...]
    """Overt account ids (1..64 bytes each), each once."""
    timespan: Timespan
    """The interception window: messages of these days (whole UTC days) are in scope."""
    delivery: Delivery

    def __post_init__(self) -> None:
        _run(self, self._validate)

    def _validate(self) -> None:
        _check_text(self.reference, "task reference")
        _check(isinstance(self.targets, tuple), "targets must be a tuple")
        _check(len(self.targets) > 0, "a task names at least one target")
        _check(
            len(self.targets) <= MAX_TARGETS_PER_TASK,
            f"a task names at most {MAX_TARGETS_PER_TASK} targets",
        )
        for t in self.targets:
            _check(
                isinstance(t, bytes) and 0 < len(t) <= MAX_ACCOUNT_ID_LEN,
                f"a target is an account id of 1..{MAX_ACCOUNT_ID_LEN} bytes",
            )
        _check(len(set(self.targets)) == len(self.targets), "a task names a target twice")
        _check(isinstance(self.timespan, Timespan), "timespan must be a Timespan")
        _check(isinstance(self.delivery, Delivery), "delivery must be a Delivery")

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "delivery": self.delivery.value,
            "reference": self.reference,
            "targets": [{"type": TARGET_TYPE_ACCOUNT, "value": b64e(t)} for t in self.targets],
            "timespan": self.timespan.to_json(),
        }


# ----------------------------------------------------------------------------- the warrant


@dataclass(frozen=True, slots=True)
class Warrant:
    """One warrant. Validated on construction (see the module docstring for the rules)."""

    warrant_id: bytes
    authorisation: Authorisation
    tasks: tuple[Task, ...]
    sealed_until: int
    """The notification date: the targets are told at the latest then (Unix seconds)."""
    max_messages: int
    """How many messages any one custodian may release shares for under this warrant."""
    targets_salt: bytes = field(repr=False)
    """Hides the targets in the public commitment until unsealing."""

    def __post_init__(self) -> None:
        _run(self, self._validate)

    def _validate(self) -> None:
        _check(
            isinstance(self.warrant_id, bytes) and len(self.warrant_id) == WARRANT_ID_LEN,
            f"warrant id must be {WARRANT_ID_LEN} bytes",
        )
        _check(isinstance(self.authorisation, Authorisation), "authorisation is required")
        _check(isinstance(self.tasks, tuple), "tasks must be a tuple")
        _check(0 < len(self.tasks) <= MAX_TASKS, f"a warrant holds 1..{MAX_TASKS} tasks")
        _check(all(isinstance(t, Task) for t in self.tasks), "tasks must be Tasks")
        _check_time(self.sealed_until, "sealed_until")
        _check(
            isinstance(self.max_messages, int)
            and not isinstance(self.max_messages, bool)
            and 0 < self.max_messages <= MAX_MESSAGE_CAP,
            f"max_messages must be in [1, {MAX_MESSAGE_CAP}]",
        )
        _check(
            isinstance(self.targets_salt, bytes) and len(self.targets_salt) == TARGETS_SALT_LEN,
            f"targets salt must be {TARGETS_SALT_LEN} bytes",
        )
        auth = self.authorisation
        _check(
            auth.approval.approved_at <= auth.timespan.start,
            "the authorisation starts before it was approved (access is prospective only)",
        )
        _check(
            auth.timespan.end <= self.sealed_until,
            "the targets would be told before the authorisation ends",
        )
        refs = [t.reference for t in self.tasks]
        _check(len(set(refs)) == len(refs), "two tasks share a reference")
        for t in self.tasks:
            _check(
                t.timespan.within(auth.timespan),
                f"task {t.reference!r} reaches outside the authorisation's timespan",
            )
        n_targets = sum(len(t.targets) for t in self.tasks)
        _check(n_targets <= MAX_TARGETS, f"a warrant names at most {MAX_TARGETS} targets")

    @property
    def court_key(self) -> Ed25519PublicKey:
        return self.authorisation.approval.court_key

    @property
    def window(self) -> Timespan:
        """When the authorisation is in force."""
        return self.authorisation.timespan

    @property
    def targets(self) -> frozenset[bytes]:
        """Every account any task names."""
        return frozenset(a for t in self.tasks for a in t.targets)

    def seal_days(self) -> int:
        """Whole days from approval to notification, rounded up."""
        return -(-(self.sealed_until - self.authorisation.approval.approved_at) // DAY_SECONDS)

    def check_max_seal(self, max_seal_days: int) -> None:
        """:class:`ProtocolViolation` if the seal outlasts the manifest's ``max_seal_days``."""
        limit = self.authorisation.approval.approved_at + max_seal_days * DAY_SECONDS
        if self.sealed_until > limit:
            raise ProtocolViolation(
                f"warrant sealed for {self.seal_days()} days from approval; the manifest "
                f"allows at most {max_seal_days}"
            )

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "authorisation": self.authorisation.to_json(),
            "max_messages": self.max_messages,
            "notification": {"sealed_until": self.sealed_until},
            "targets_salt": b64e(self.targets_salt),
            "tasks": [t.to_json() for t in self.tasks],
            "version": WARRANT_VERSION,
            "warrant_id": b64e(self.warrant_id),
        }

    def canonical_bytes(self) -> bytes:
        return canonicalize(self.to_json())

    @classmethod
    def from_json(cls, value: JsonValue) -> Self:
        """Read a warrant object strictly; :class:`DecodeError` on any deviation."""
        try:
            return cls._from_json(value)
        except _Invalid as e:
            raise DecodeError(f"warrant: {e}") from None
        except LocalError as e:  # a constructor's rule, on remote input
            raise DecodeError(f"warrant: {e}") from None

    @classmethod
    def _from_json(cls, value: JsonValue) -> Self:
        m = _members(
            value,
            "warrant",
            {
                "authorisation",
                "max_messages",
                "notification",
                "targets_salt",
                "tasks",
                "version",
                "warrant_id",
            },
        )
        _check(_int(m["version"], "version") == WARRANT_VERSION, "unknown warrant version")
        a = _members(
            m["authorisation"],
            "authorisation",
            {"approval", "legal_basis", "reference", "timespan"},
        )
        ap = _members(
            a["approval"], "approval", {"approved_at", "court", "court_key", "judge_reference"}
        )
        approval = Approval(
            court=_str(ap["court"], "court"),
            court_key=_ed25519(ap["court_key"], "court key"),
            judge_reference=_str(ap["judge_reference"], "judge reference"),
            approved_at=_int(ap["approved_at"], "approval time"),
        )
        authorisation = Authorisation(
            reference=_str(a["reference"], "authorisation reference"),
            legal_basis=_str(a["legal_basis"], "legal basis"),
            timespan=_timespan(a["timespan"], "authorisation timespan"),
            approval=approval,
        )
        notification = _members(m["notification"], "notification", {"sealed_until"})
        return cls(
            warrant_id=_bytes(m["warrant_id"], "warrant id"),
            authorisation=authorisation,
            tasks=tuple(_task(t) for t in _list(m["tasks"], "tasks", MAX_TASKS)),
            sealed_until=_int(notification["sealed_until"], "sealed_until"),
            max_messages=_int(m["max_messages"], "max_messages"),
            targets_salt=_bytes(m["targets_salt"], "targets salt"),
        )


def new_warrant_id(rng: Rng) -> bytes:
    """A fresh random warrant id (the court's tool draws one per warrant)."""
    return rng.random_bytes(WARRANT_ID_LEN)


def new_targets_salt(rng: Rng) -> bytes:
    """A fresh random targets salt (the court's tool draws one per warrant)."""
    return rng.random_bytes(TARGETS_SALT_LEN)


# ----------------------------------------------------------------------------- JSON readers


def _members(value: JsonValue, what: str, names: Collection[str]) -> Mapping[str, JsonValue]:
    if not isinstance(value, dict):
        raise _Invalid(f"{what} must be an object")
    missing = set(names) - value.keys()
    _check(not missing, f"{what} lacks {', '.join(sorted(missing))}")
    unknown = value.keys() - set(names)
    _check(not unknown, f"{what} has unknown members {', '.join(sorted(unknown))}")
    return value


def _str(value: JsonValue, what: str) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"{what} must be a string")
    return value


def _int(value: JsonValue, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _Invalid(f"{what} must be an integer")
    return value


def _list(value: JsonValue, what: str, max_items: int) -> list[JsonValue]:
    if not isinstance(value, list):
        raise _Invalid(f"{what} must be an array")
    _check(len(value) <= max_items, f"{what} has more than {max_items} items")
    return value


def _bytes(value: JsonValue, what: str) -> bytes:
    try:
        return b64d(value, what)
    except DecodeError as e:
        raise _Invalid(str(e)) from None


def _ed25519(value: JsonValue, what: str) -> Ed25519PublicKey:
    raw = _bytes(value, what)
    _check(len(raw) == ED25519_KEY_LEN, f"{what} is not a 32-byte Ed25519 key")
    try:
        return Ed25519PublicKey.from_bytes(raw)
    except DecodeError:
        raise _Invalid(f"{what} is not an Ed25519 public key") from None


def _timespan(value: JsonValue, what: str) -> Timespan:
    m = _members(value, what, {"end", "start"})
    return Timespan(_int(m["start"], f"{what} start"), _int(m["end"], f"{what} end"))


def _task(value: JsonValue) -> Task:
    m = _members(value, "task", {"delivery", "reference", "targets", "timespan"})
    delivery = _str(m["delivery"], "delivery")
    _check(delivery in {d.value for d in Delivery}, "delivery must be 'content' or 'metadata'")
    targets = []
    for t in _list(m["targets"], "targets", MAX_TARGETS_PER_TASK):
        tm = _members(t, "target", {"type", "value"})
        _check(_str(tm["type"], "target type") == TARGET_TYPE_ACCOUNT, "unknown target type")
        targets.append(_bytes(tm["value"], "target"))
    return Task(
        reference=_str(m["reference"], "task reference"),
        targets=tuple(targets),
        timespan=_timespan(m["timespan"], "task timespan"),
        delivery=Delivery(delivery),
    )


# ----------------------------------------------------------------------------- signing


def _court_problem(
    key: Ed25519PublicKey, name: str, court_keys: Collection[NamedKey]
) -> str | None:
    for listed in court_keys:
        if listed.key == key:
            if listed.name != name:
                return f"the manifest names this court key {listed.name!r}, not {name!r}"
            return None
    return "signed by a court key the manifest does not list"


def _signed_document(data: bytes, body_name: str, what: str) -> tuple[JsonValue, bytes, bytes]:
    """Parse ``{"signature", body_name}`` canonical JSON: (body, its JCS bytes, signature)."""
    doc = parse_strict(data, max_bytes=MAX_WARRANT_BYTES)
    if canonicalize(doc) != bytes(data):
        raise DecodeError(f"{what}: not in canonical form")
    try:
        m = _members(doc, what, {body_name, "signature"})
        sig_text = _str(m["signature"], "signature")
        _check(len(sig_text) == _SIG_B64_LEN, "signature is not 64 bytes")
        signature = _bytes(sig_text, "signature")
        _check(len(signature) == ED25519_SIG_LEN, "signature is not 64 bytes")
    except _Invalid as e:
        raise DecodeError(f"{what}: {e}") from None
    return m[body_name], canonicalize(m[body_name]), signature


def warrant_signing_message(warrant: Warrant) -> bytes:
    """What the court signs: the context string ‖ JCS(warrant)."""
    return WARRANT_SIGNING_CONTEXT + warrant.canonical_bytes()


def sign_warrant(
    warrant: Warrant, court_key: Ed25519PrivateKey, *, max_seal_days: int | None = None
) -> bytes:
    """The signed warrant: canonical ``{"signature": "<base64url>", "warrant": {...}}``.

    ``court_key`` must be the private half of the key the approval names. With
    ``max_seal_days`` (the manifest's) the sealing period is checked too.
    """
    if court_key.public_key != warrant.court_key:
        raise LocalError("the signing key is not the court key the warrant's approval names")
    if max_seal_days is not None:
        try:
            warrant.check_max_seal(max_seal_days)
        except ProtocolViolation as e:
            raise LocalError(str(e)) from None
    signature = court_key.sign(warrant_signing_message(warrant))
    out = canonicalize({"signature": b64e(signature), "warrant": warrant.to_json()})
    if len(out) > MAX_WARRANT_BYTES:
        raise LocalError("the signed warrant exceeds MAX_WARRANT_BYTES")
    return out


def verify_warrant(
    data: bytes, court_keys: Collection[NamedKey], *, max_seal_days: int | None
) -> Warrant:
    """Check a signed warrant against the manifest's court keys and return it.

    ``court_keys`` is the manifest's list (``EscrowAccess.court_keys``); the key the approval
    names must be in it, under the court name the approval gives. ``max_seal_days`` is the
    manifest's bound on the sealing period (``None`` skips that one check, for a court's own
    tool without a manifest). Raises :class:`DecodeError` (malformed, non-canonical, a broken
    rule), :class:`UntrustedIdentity` (key not listed, or listed under another name),
    :class:`ProtocolViolation` (sealed too long) or :class:`InvalidMessage` (bad signature).
    """
    body, signed_bytes, signature = _signed_document(data, "warrant", "signed warrant")
    warrant = Warrant.from_json(body)
    if warrant.canonical_bytes() != signed_bytes:  # one warrant, one encoding
        raise DecodeError("signed warrant: not the encoding of a warrant")
    problem = _court_problem(warrant.court_key, warrant.authorisation.approval.court, court_keys)
    if problem is not None:
        raise UntrustedIdentity(f"warrant: {problem}")
    warrant.court_key.verify(signature, WARRANT_SIGNING_CONTEXT + signed_bytes)
    if max_seal_days is not None:
        warrant.check_max_seal(max_seal_days)
    return warrant


# ----------------------------------------------------------------------------- revocation


@dataclass(frozen=True, slots=True)
class Revocation:
    """A court's revocation of a warrant: from its signature on, no custodian acts on it."""

    warrant_id: bytes
    court: str
    court_key: Ed25519PublicKey
    revoked_at: int
    reason: str

    def __post_init__(self) -> None:
        _run(self, self._validate)

    def _validate(self) -> None:
        _check(
            isinstance(self.warrant_id, bytes) and len(self.warrant_id) == WARRANT_ID_LEN,
            f"warrant id must be {WARRANT_ID_LEN} bytes",
        )
        _check_text(self.court, "court name")
        _check(isinstance(self.court_key, Ed25519PublicKey), "court key must be Ed25519")
        _check_time(self.revoked_at, "revocation time")
        _check_text(self.reason, "reason")

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "court": self.court,
            "court_key": b64e(self.court_key.raw),
            "reason": self.reason,
            "revoked_at": self.revoked_at,
            "version": REVOCATION_VERSION,
            "warrant_id": b64e(self.warrant_id),
        }

    def canonical_bytes(self) -> bytes:
        return canonicalize(self.to_json())

    @classmethod
    def from_json(cls, value: JsonValue) -> Self:
        try:
            m = _members(
                value,
                "revocation",
                {"court", "court_key", "reason", "revoked_at", "version", "warrant_id"},
            )
            _check(
                _int(m["version"], "version") == REVOCATION_VERSION, "unknown revocation version"
            )
            return cls(
                warrant_id=_bytes(m["warrant_id"], "warrant id"),
                court=_str(m["court"], "court"),
                court_key=_ed25519(m["court_key"], "court key"),
                revoked_at=_int(m["revoked_at"], "revocation time"),
                reason=_str(m["reason"], "reason"),
            )
        except (_Invalid, LocalError) as e:
            raise DecodeError(f"revocation: {e}") from None


def sign_revocation(revocation: Revocation, court_key: Ed25519PrivateKey) -> bytes:
    """The signed revocation: canonical ``{"revocation": {...}, "signature": "<base64url>"}``."""
    if court_key.public_key != revocation.court_key:
        raise LocalError("the signing key is not the court key the revocation names")
    signature = court_key.sign(REVOCATION_SIGNING_CONTEXT + revocation.canonical_bytes())
    return canonicalize({"revocation": revocation.to_json(), "signature": b64e(signature)})


def verify_revocation(data: bytes, court_keys: Collection[NamedKey]) -> Revocation:
    """Check a signed revocation; the same errors as :func:`verify_warrant`.

    Any court the manifest lists may revoke any warrant: revoking only ever takes access away.
    """
    body, signed_bytes, signature = _signed_document(data, "revocation", "signed revocation")
    revocation = Revocation.from_json(body)
    if revocation.canonical_bytes() != signed_bytes:
        raise DecodeError("signed revocation: not the encoding of a revocation")
    problem = _court_problem(revocation.court_key, revocation.court, court_keys)
    if problem is not None:
        raise UntrustedIdentity(f"revocation: {problem}")
    revocation.court_key.verify(signature, REVOCATION_SIGNING_CONTEXT + signed_bytes)
    return revocation


# ----------------------------------------------------------------------------- the log


def court_key_id(key: Ed25519PublicKey) -> bytes:
    """The 32-byte id of a court key in log entries: the Ed25519 public key itself."""
    return key.raw


def target_list(warrant: Warrant) -> bytes:
    """The canonical target list (see the module docstring)."""
    w = Writer().u8(len(warrant.tasks))
    for t in warrant.tasks:
        w.u64(t.timespan.start).u64(t.timespan.end).u8(_DELIVERY_CODE[t.delivery])
        w.u8(len(t.targets))
        for account in t.targets:
            w.vec(account, 1, MAX_ACCOUNT_ID_LEN)
    return w.getvalue()


def warrant_opening(warrant: Warrant) -> bytes:
    """``salt ‖ target list``: what the commitment hides and the unsealing reveals."""
    return warrant.targets_salt + target_list(warrant)


def warrant_commitment(warrant: Warrant) -> tuple[WarrantCommitment, bytes]:
    """The public log entry of ``warrant`` and its opening (kept secret until unsealing).

    Deterministic: whoever holds the warrant recomputes the same entry, which is how a
    custodian checks that the log holds *this* warrant's commitment.
    """
    opening = warrant_opening(warrant)
    entry = WarrantCommitment(
        warrant_id=warrant.warrant_id,
        court_key_id=court_key_id(warrant.court_key),
        window_seconds=warrant.window.seconds,
        sealed_until=warrant.sealed_until,
        targets_commitment=warrant_targets_commitment(opening),
    )
    return entry, opening


def unsealing(warrant: Warrant, opening: bytes) -> WarrantUnsealing:
    """The unsealing entry that publishes ``opening``; :class:`LocalError` unless it is this
    warrant's opening (an unsealing that did not open the commitment would be worse than none).
    """
    if opening != warrant_opening(warrant):
        raise LocalError("this opening is not the warrant's")
    return WarrantUnsealing(warrant.warrant_id, opening)


@dataclass(frozen=True, slots=True)
class UnsealedTask:
    """One task as an unsealing reveals it: window, delivery and targets (no references)."""

    timespan: Timespan
    delivery: Delivery
    targets: tuple[bytes, ...]


def read_opening(opening: bytes) -> tuple[UnsealedTask, ...]:
    """Parse a published opening into its tasks; :class:`DecodeError` if malformed.

    Check it against the commitment first
    (:meth:`~overt.transparency.entries.WarrantUnsealing.check_opens`).
    """
    r = Reader(opening, "warrant opening")
    r.fixed(TARGETS_SALT_LEN, "salt")
    n = r.u8("task count")
    if not 0 < n <= MAX_TASKS:
        raise DecodeError(f"warrant opening: 1..{MAX_TASKS} tasks")
    tasks = []
    total = 0
    try:
        for _ in range(n):
            span = Timespan(r.u64("start"), r.u64("end"))
            code = r.u8("delivery")
            if code not in _CODE_DELIVERY:
                raise DecodeError("warrant opening: unknown delivery")
            count = r.u8("target count")
            total += count
            if not 0 < count <= MAX_TARGETS_PER_TASK or total > MAX_TARGETS:
                raise DecodeError("warrant opening: target count out of range")
            targets = tuple(r.vec(1, "target", MAX_ACCOUNT_ID_LEN, 1) for _ in range(count))
            tasks.append(UnsealedTask(span, _CODE_DELIVERY[code], targets))
    except LocalError as e:
        raise DecodeError(f"warrant opening: {e}") from None
    r.finish()
    return tuple(tasks)


__all__ = [
    "REVOCATION_SIGNING_CONTEXT",
    "TARGET_TYPE_ACCOUNT",
    "WARRANT_SIGNING_CONTEXT",
    "Approval",
    "Authorisation",
    "Delivery",
    "Revocation",
    "Task",
    "Timespan",
    "UnsealedTask",
    "Warrant",
    "court_key_id",
    "new_targets_salt",
    "new_warrant_id",
    "read_opening",
    "sign_revocation",
    "sign_warrant",
    "target_list",
    "unsealing",
    "verify_revocation",
    "verify_warrant",
    "warrant_commitment",
    "warrant_opening",
    "warrant_signing_message",
]
