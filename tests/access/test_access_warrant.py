"""Warrants: round trip, every rule, court signatures, revocation, the log commitment."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from overt.access import (
    Delivery,
    Revocation,
    Task,
    Timespan,
    read_opening,
    sign_revocation,
    sign_warrant,
    unsealing,
    verify_revocation,
    verify_warrant,
    warrant_commitment,
)
from overt.access._b64 import b64e
from overt.access.limits import DAY_SECONDS, MAX_TARGETS, MAX_TASKS
from overt.access.warrant import WARRANT_SIGNING_CONTEXT, court_key_id, warrant_opening
from overt.errors import (
    DecodeError,
    InvalidMessage,
    LocalError,
    ProtocolViolation,
    UntrustedIdentity,
)
from overt.transparency.entries import decode_entry, encode_entry
from overt.transparency.manifest import NamedKey
from overt.wire.jcs import canonicalize

from .support import (
    COURT,
    COURT_NAME,
    MAX_SEAL_DAYS,
    ROGUE_COURT,
    T0,
    TRUST,
    make_warrant,
    signed,
)

KEYS = TRUST.court_keys


def resign(doc: dict[str, Any], court: Any = COURT) -> bytes:
    """Sign an arbitrary warrant object as a court (honest or not) could."""
    sig = court.sign(WARRANT_SIGNING_CONTEXT + canonicalize(doc))
    return canonicalize({"signature": b64e(sig), "warrant": doc})


def warrant_json() -> dict[str, Any]:
    obj = json.loads(signed(make_warrant()))
    assert isinstance(obj["warrant"], dict)
    return obj["warrant"]


def test_round_trip() -> None:
    w = make_warrant([b"alice", b"bob"])
    data = signed(w)
    assert verify_warrant(data, KEYS, max_seal_days=MAX_SEAL_DAYS) == w
    assert data == canonicalize(json.loads(data))
    doc = json.loads(data)["warrant"]
    assert set(doc) == {
        "authorisation", "max_messages", "notification", "targets_salt", "tasks", "version",
        "warrant_id",
    }  # fmt: skip
    assert doc["tasks"][0]["targets"][0] == {"type": "overt-account", "value": "YWxpY2U"}
    assert doc["tasks"][0]["delivery"] == "content"
    assert "targets_salt" not in repr(w) and w.targets_salt.hex() not in repr(w)


def test_forged_signature_is_invalid_message() -> None:
    data = bytearray(signed(make_warrant()))
    i = data.index(b'"signature":"') + 13
    data[i] = ord("A") if data[i] != ord("A") else ord("B")
    with pytest.raises((InvalidMessage, DecodeError)):
        verify_warrant(bytes(data), KEYS, max_seal_days=MAX_SEAL_DAYS)
    # A well-formed document whose content was changed after signing:
    doc = json.loads(signed(make_warrant()))
    doc["warrant"]["max_messages"] = 10_000
    with pytest.raises(InvalidMessage):
        verify_warrant(canonicalize(doc), KEYS, max_seal_days=MAX_SEAL_DAYS)


def test_unknown_court_key_is_untrusted() -> None:
    rogue = make_warrant(court=ROGUE_COURT)
    with pytest.raises(UntrustedIdentity, match="does not list"):
        verify_warrant(signed(rogue, ROGUE_COURT), KEYS, max_seal_days=MAX_SEAL_DAYS)


def test_signature_by_another_listed_key_than_named_is_forged() -> None:
    doc = warrant_json()
    with pytest.raises(InvalidMessage):
        verify_warrant(resign(doc, ROGUE_COURT), KEYS, max_seal_days=MAX_SEAL_DAYS)


def test_court_name_must_match_manifest() -> None:
    doc = warrant_json()
    doc["authorisation"]["approval"]["court"] = "Supreme Court"
    with pytest.raises(UntrustedIdentity, match="names this court key"):
        verify_warrant(resign(doc), KEYS, max_seal_days=MAX_SEAL_DAYS)


def test_signing_key_must_be_the_named_one() -> None:
    with pytest.raises(LocalError):
        sign_warrant(make_warrant(), ROGUE_COURT)


def test_non_canonical_or_oversized_refused() -> None:
    data = signed(make_warrant())
    spaced = json.dumps(json.loads(data), indent=1).encode()
    with pytest.raises(DecodeError, match="canonical"):
        verify_warrant(spaced, KEYS, max_seal_days=None)
    with pytest.raises(DecodeError):
        verify_warrant(b"x" * (70 * 1024), KEYS, max_seal_days=None)


def test_sealing_beyond_manifest_max() -> None:
    w = make_warrant(seal_days=MAX_SEAL_DAYS + 1)
    data = sign_warrant(w, COURT)  # the court's own tool, without a manifest
    with pytest.raises(ProtocolViolation, match="at most 180"):
        verify_warrant(data, KEYS, max_seal_days=MAX_SEAL_DAYS)
    assert verify_warrant(data, KEYS, max_seal_days=None) == w
    with pytest.raises(LocalError, match="at most 180"):
        sign_warrant(w, COURT, max_seal_days=MAX_SEAL_DAYS)


# ----------------------------------------------------------------------------- every rule


def _set(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    node: Any = doc
    *head, last = path.split(".")
    for p in head:
        node = node[int(p)] if p.isdigit() else node[p]
    if value is _DELETE:
        del node[last]
    else:
        node[int(last) if last.isdigit() else last] = value
    return doc


_DELETE = object()
D = DAY_SECONDS


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("version", 2, "version"),
        ("warrant_id", "AAAA", "warrant id"),
        ("warrant_id", "not base64!", "base64url"),
        ("max_messages", 0, "max_messages"),
        ("max_messages", -5, "max_messages"),
        ("max_messages", True, "integer"),
        ("targets_salt", "AAAA", "salt"),
        ("tasks", [], "1..16 tasks"),
        ("tasks.0.targets", [], "at least one target"),
        ("tasks.0.targets.0.type", "e164", "target type"),
        ("tasks.0.targets.0.value", "", "account id"),
        ("tasks.0.delivery", "everything", "delivery"),
        ("tasks.0.reference", "", "non-empty"),
        ("tasks.0.reference", " x", "whitespace"),
        ("tasks.0.reference", "a\nb", "control"),
        ("tasks.0.reference", "x" * 257, "longer than 256"),
        ("tasks.0.timespan.end", T0, "end after it starts"),
        ("tasks.0.timespan.end", T0 + 61 * D, "outside the authorisation"),
        ("tasks.0.timespan.start", T0 - D, "outside the authorisation"),
        ("authorisation.timespan.start", T0 - D, "before it was approved"),
        ("authorisation.timespan.end", T0 + 121 * D, "before the authorisation ends"),
        ("authorisation.timespan.start", -1, "Unix seconds"),
        ("authorisation.legal_basis", "", "legal basis"),
        ("authorisation.approval.judge_reference", "", "judge reference"),
        ("authorisation.approval.court_key", "AAAA", "Ed25519"),
        ("authorisation.approval.approved_at", "yesterday", "integer"),
        ("notification.sealed_until", T0 + 59 * D, "before the authorisation ends"),
        ("notification", {}, "lacks sealed_until"),
        ("authorisation.reference", _DELETE, "lacks reference"),
        ("extra", 1, "unknown members"),
    ],
)
def test_every_field_validated(path: str, value: Any, message: str) -> None:
    doc = _set(warrant_json(), path, value)
    with pytest.raises(DecodeError, match=message):
        verify_warrant(resign(doc), KEYS, max_seal_days=MAX_SEAL_DAYS)


def test_duplicate_targets_and_references_and_bounds() -> None:
    w = make_warrant()
    task = w.tasks[0]
    with pytest.raises(LocalError, match="twice"):
        replace(task, targets=(b"a", b"a"))
    with pytest.raises(LocalError, match="share a reference"):
        replace(w, tasks=(task, task))
    with pytest.raises(LocalError, match=f"1..{MAX_TASKS}"):
        replace(w, tasks=tuple(replace(task, reference=f"T{i}") for i in range(MAX_TASKS + 1)))
    many = [
        replace(task, reference=f"T{i}", targets=tuple(bytes([i, j]) for j in range(60)))
        for i in range(3)
    ]
    assert MAX_TARGETS < 3 * 60
    with pytest.raises(LocalError, match=f"at most {MAX_TARGETS} targets"):
        replace(w, tasks=tuple(many))


def test_day_granularity() -> None:
    span = Timespan(10 * D + 3600, 20 * D)
    assert not span.covers_day(10)  # partly covered: outside
    assert span.covers_day(11) and span.covers_day(19)
    assert not span.covers_day(20)


# ----------------------------------------------------------------------------- revocation


def test_revocation_round_trip_and_forgery() -> None:
    w = make_warrant()
    rev = Revocation(w.warrant_id, COURT_NAME, COURT.public_key, T0 + 5 * D, "case closed")
    data = sign_revocation(rev, COURT)
    assert verify_revocation(data, KEYS) == rev
    rogue = Revocation(w.warrant_id, COURT_NAME, ROGUE_COURT.public_key, T0, "no")
    with pytest.raises(UntrustedIdentity):
        verify_revocation(sign_revocation(rogue, ROGUE_COURT), KEYS)
    doc = json.loads(data)
    doc["revocation"]["reason"] = "changed"
    with pytest.raises(InvalidMessage):
        verify_revocation(canonicalize(doc), KEYS)
    with pytest.raises(LocalError):
        sign_revocation(rev, ROGUE_COURT)
    # A second listed court may revoke too (revoking only takes access away).
    keys = (*KEYS, NamedKey("Appeals Court", ROGUE_COURT.public_key))
    other = Revocation(w.warrant_id, "Appeals Court", ROGUE_COURT.public_key, T0, "overturned")
    assert verify_revocation(sign_revocation(other, ROGUE_COURT), keys) == other


# ----------------------------------------------------------------------------- the log


def test_commitment_hides_targets_and_unsealing_opens_it() -> None:
    w = make_warrant([b"alice", b"bob"])
    entry, opening = warrant_commitment(w)
    assert warrant_commitment(w) == (entry, opening)  # deterministic
    assert decode_entry(encode_entry(entry)) == entry
    assert entry.warrant_id == w.warrant_id
    assert entry.court_key_id == court_key_id(COURT.public_key)
    assert entry.window_seconds == 60 * D
    assert entry.sealed_until == w.sealed_until
    assert b"alice" not in encode_entry(entry)
    # Another salt, the same targets: another commitment.
    other = replace(w, targets_salt=bytes(32))
    assert warrant_commitment(other)[0].targets_commitment != entry.targets_commitment
    u = unsealing(w, opening)
    u.check_opens(entry)
    tasks = read_opening(u.opening)
    assert tasks[0].targets == (b"alice", b"bob")
    assert tasks[0].delivery is Delivery.CONTENT
    assert tasks[0].timespan == w.tasks[0].timespan
    with pytest.raises(LocalError):
        unsealing(w, warrant_opening(other))
    with pytest.raises(InvalidMessage):
        unsealing(other, warrant_opening(other)).check_opens(entry)


def test_opening_size_fits_the_log_at_the_bound() -> None:
    w = make_warrant()
    targets = [tuple(bytes([i, j]) + b"\xff" * 62 for j in range(64)) for i in range(2)]
    tasks = tuple(
        Task(f"T{i}", targets[i], w.tasks[0].timespan, Delivery.METADATA) for i in range(2)
    )
    assert sum(len(t.targets) for t in tasks) == MAX_TARGETS
    big = replace(w, tasks=tasks)
    u = unsealing(big, warrant_commitment(big)[1])
    assert decode_entry(encode_entry(u)) == u
    assert len(read_opening(u.opening)) == 2


def test_read_opening_strict() -> None:
    opening = warrant_commitment(make_warrant())[1]
    for bad in (opening[:-1], opening + b"\x00", opening[:32] + b"\x00"):
        with pytest.raises(DecodeError):
            read_opening(bad)
