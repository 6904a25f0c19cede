"""Verifiable reports end to end: real devices, real envelopes, real reporting tags.

Each way a report can lie is refused with an error naming the message; a valid report verifies
to exactly what the reporter revealed; any single-byte change of its encoding is refused."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Container
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from overt.crypto import aes256gcm_decrypt, sha256
from overt.errors import (
    ConfigurationError,
    DecodeError,
    DuplicateMessage,
    InvalidMessage,
    LimitExceeded,
    RemoteError,
)
from overt.protocol import franking
from overt.safety import (
    ATTACHMENT_AD,
    ATTACHMENT_LABEL,
    AlreadyReported,
    AttachmentRef,
    BodyKind,
    BundleMismatch,
    EvidenceBundle,
    InvalidReportedMessage,
    MessageBody,
    ReplayKey,
    Report,
    ReportedMessage,
    ReportRefused,
    RevealedAttachment,
    VerifiedReport,
    export_bundle,
    franking_key_id,
    load_bundle,
    reverify_bundle,
    verify_report,
)
from overt.safety.limits import EVIDENCE_RETENTION_MS, MAX_REPORTED_MESSAGES
from overt.wire import Address

from .gcm_forgery import content_key_parts, forge_two_key_gcm
from .support import NOW_MS, SERVER_KEY, World, report


def _verify(
    rep: Report | bytes, reporter: Address, seen: Container[ReplayKey] = frozenset()
) -> VerifiedReport:
    return verify_report(rep, SERVER_KEY, reporter_address=reporter, now_ms=NOW_MS, seen=seen)


@pytest.fixture(scope="module")
def world() -> World:
    return World.make()


# ----------------------------------------------------------------------------- acceptance


def test_valid_report_verifies_to_exactly_what_was_revealed(world: World) -> None:
    m1 = world.text(world.alice, world.bob, "first, harmless")
    m2 = world.attachment(world.alice, world.bob, b"\x89PNG fake image bytes" * 50)
    m3 = world.attachment(world.alice, world.bob, b"hash only", reveal="none")
    rep = report(world.bob, m1, m2, m3, comment="he keeps sending these")
    v = verify_report(
        rep, SERVER_KEY, reporter_address=world.bob.address, now_ms=NOW_MS, seen=set()
    )

    assert v.reporter == world.bob.address and v.comment == "he keeps sending these"
    assert v.report_sha256 == sha256(rep.encode()) == rep.sha256()
    assert v.franking_key_id == franking_key_id(SERVER_KEY)
    assert [m.index for m in v.messages] == [1, 2, 3]
    for got, sent in zip(v.messages, (m1, m2, m3), strict=True):
        assert (got.sender, got.recipient) == (world.alice.address, world.bob.address)
        assert (got.server_id, got.server_time_ms) == (sent.server_id, sent.server_time_ms)
        assert (got.message_id, got.sent_ms) == (sent.message_id, sent.timestamp_ms)
        assert got.body_bytes == sent.body
        assert got.body == MessageBody.decode(sent.body)
    assert v.messages[0].body.text == "first, harmless" and v.messages[0].attachment is None
    att = v.messages[1].attachment
    assert att is not None and att.ciphertext_opened
    assert att.plaintext == b"\x89PNG fake image bytes" * 50
    hashes_only = v.messages[2].attachment
    assert hashes_only is not None and hashes_only.plaintext is None
    assert hashes_only.pointer.plaintext_sha256 == sha256(b"hash only")
    assert len(v.replay_keys) == 3


def test_each_way_of_revealing_an_attachment_verifies(world: World) -> None:
    data = b"attachment content"
    for reveal in ("ciphertext", "plaintext", "both"):
        m = world.attachment(world.alice, world.bob, data, reveal=reveal)
        (got,) = _verify(report(world.bob, m), world.bob.address).messages
        assert got.attachment is not None and got.attachment.plaintext == data
        assert got.attachment.ciphertext_opened == (reveal != "plaintext")


def test_a_message_received_on_another_device_of_the_reporter_verifies(world: World) -> None:
    m = world.text(world.alice, world.bob2, "to the second device")
    v = _verify(report(world.bob, m), world.bob.address)
    assert v.messages[0].recipient == world.bob2.address


def test_binary_and_json_forms_round_trip(world: World) -> None:
    rep = report(
        world.bob,
        world.text(world.alice, world.bob, "héllo"),
        world.attachment(world.alice, world.bob, b"x" * 100),
        comment="ünïcode",
    )
    assert Report.decode(rep.encode()) == rep
    text = json.dumps(rep.to_json())
    assert Report.from_json(json.loads(text)) == rep
    assert json.loads(text)["reporter"] == "Ym9i:1"


# ----------------------------------------------------------------------------- refusals


def test_altered_body_is_refused_naming_the_message(world: World) -> None:
    good = world.text(world.alice, world.bob, "what was really sent")
    forged_body = MessageBody(BodyKind.TEXT, b"bob", "something much worse").encode()
    bad = dataclasses.replace(world.text(world.alice, world.bob, "original"), body=forged_body)
    with pytest.raises(InvalidReportedMessage) as info:
        _verify(report(world.bob, good, bad), world.bob.address)
    assert info.value.index == 2
    assert str(info.value) == "reported message 2: invalid message"
    assert isinstance(info.value, InvalidMessage)


def test_altered_franking_key_or_context_is_refused(world: World) -> None:
    m = world.text(world.alice, world.bob, "context")
    for forged in (
        dataclasses.replace(m, franking_key=bytes(32)),
        dataclasses.replace(m, timestamp_ms=m.timestamp_ms + 1),
        dataclasses.replace(m, message_id=bytes(16)),
        dataclasses.replace(m, conversation_id=bytes(32)),
        dataclasses.replace(m, sender=world.carol.address),
    ):
        with pytest.raises(InvalidReportedMessage):
            _verify(report(world.bob, forged), world.bob.address)


def test_forged_reporting_tag_is_refused(world: World) -> None:
    m = world.text(world.alice, world.bob, "tagged")
    under_other_key = franking.reporting_tag(
        b"\x01" * 32, m.franking_commitment, m.sender, m.recipient, m.server_id, m.server_time_ms
    )
    for forged in (
        dataclasses.replace(m, reporting_tag=under_other_key),
        dataclasses.replace(m, reporting_tag=bytes(32)),
        dataclasses.replace(m, server_id=m.server_id + 1),
        dataclasses.replace(m, server_time_ms=m.server_time_ms - 1),
    ):
        with pytest.raises(InvalidReportedMessage) as info:
            _verify(report(world.bob, forged), world.bob.address)
        assert info.value.index == 1


def test_message_that_reached_someone_else_is_refused(world: World) -> None:
    to_carol = world.text(world.alice, world.carol, "for carol only")
    # As delivered: the recipient is carol, so bob cannot report it.
    with pytest.raises(ReportRefused, match="reported message 1: was delivered to another"):
        _verify(report(world.bob, to_carol), world.bob.address)
    # Rewritten to name bob: carol's tag does not bind bob.
    rewritten = dataclasses.replace(to_carol, recipient=world.bob.address)
    with pytest.raises(InvalidReportedMessage):
        _verify(report(world.bob, rewritten), world.bob.address)
    # Bob's authenticated device cannot submit a report in carol's name either.
    with pytest.raises(ReportRefused, match="submitted by"):
        _verify(report(world.carol, to_carol), world.bob.address)


def test_replayed_report_is_refused(world: World) -> None:
    m1 = world.text(world.alice, world.bob, "one")
    m2 = world.text(world.alice, world.bob, "two")
    seen: set[ReplayKey] = set()
    first = _verify(report(world.bob, m1), world.bob.address, seen)
    seen |= first.replay_keys
    with pytest.raises(AlreadyReported) as info:
        _verify(report(world.bob, m1), world.bob.address, seen)
    assert isinstance(info.value, DuplicateMessage) and info.value.status_hint == 409
    # Hidden among new messages, or under a new comment: still refused, naming it.
    with pytest.raises(AlreadyReported, match="reported message 2:"):
        _verify(report(world.bob, m2, m1, comment="again"), world.bob.address, seen)
    # Twice in one report.
    with pytest.raises(AlreadyReported, match="same message as reported message 1"):
        _verify(report(world.bob, m2, m2), world.bob.address)
    # verify_report itself changed nothing.
    assert seen == set(first.replay_keys)


def test_one_message_cannot_be_reported_once_per_device(world: World) -> None:
    copy1, copy2, copy_carol = world.deliver_fanout(
        world.alice,
        [world.bob, world.bob2, world.carol],
        MessageBody(BodyKind.TEXT, b"bob", "to the group").encode(),
    )
    assert copy1.server_id != copy2.server_id
    v = _verify(report(world.bob, copy1), world.bob.address)
    with pytest.raises(AlreadyReported):
        _verify(report(world.bob2, copy2), world.bob2.address, v.replay_keys)
    # Another person who received the same message can still report it.
    _verify(report(world.carol, copy_carol), world.carol.address, v.replay_keys)


def test_message_from_the_future_is_refused(world: World) -> None:
    m = world.text(world.alice, world.bob, "later")
    with pytest.raises(ReportRefused, match="in the future"):
        verify_report(
            report(world.bob, m),
            SERVER_KEY,
            reporter_address=world.bob.address,
            now_ms=m.server_time_ms - 10 * 60 * 1000,
            seen=(),
        )


def test_body_that_is_not_a_message_body_is_refused(world: World) -> None:
    m = world.deliver(world.alice, world.bob, b"raw protocol bytes, no body format")
    with pytest.raises(DecodeError, match="reported message 1: Body"):
        _verify(report(world.bob, m), world.bob.address)


def test_attachment_reveal_that_differs_from_the_commitment_is_refused(world: World) -> None:
    data = b"the real attachment"
    m = world.attachment(world.alice, world.bob, data)
    assert m.attachment is not None and m.attachment.ciphertext is not None
    ct = m.attachment.ciphertext
    for forged in (
        RevealedAttachment(b"\x43" * 32, ct, data),  # another key
        RevealedAttachment(m.attachment.key, ct[:-1] + bytes([ct[-1] ^ 1]), None),
        RevealedAttachment(m.attachment.key, None, b"the fake attachment"),
        RevealedAttachment(m.attachment.key, ct, b"the fake attachment"),
    ):
        with pytest.raises(InvalidReportedMessage):
            _verify(report(world.bob, dataclasses.replace(m, attachment=forged)), world.bob.address)
    text = world.text(world.alice, world.bob, "no attachment here")
    with pytest.raises(ReportRefused, match="its body has none"):
        _verify(
            report(world.bob, dataclasses.replace(text, attachment=m.attachment)), world.bob.address
        )


def test_two_key_attachment_ciphertext_is_refused(world: World) -> None:
    """A sender builds one blob that plain GCM opens under two keys, to two plaintexts whose
    hashes it commits to. Only the key whose commitment prefixes the blob opens it."""
    key1, key2 = b"\x01" * 32, b"\x02" * 32
    aes1, nonce1, commitment1 = content_key_parts(key1, ATTACHMENT_LABEL)
    aes2, nonce2, _ = content_key_parts(key2, ATTACHMENT_LABEL)
    gcm = forge_two_key_gcm(aes1, nonce1, aes2, nonce2, ATTACHMENT_AD)
    p1 = aes256gcm_decrypt(aes1, nonce1, gcm, ATTACHMENT_AD)
    p2 = aes256gcm_decrypt(aes2, nonce2, gcm, ATTACHMENT_AD)
    assert p1 != p2  # the forgery is real: raw GCM accepts it under both keys
    blob = commitment1 + gcm

    def message(key: bytes, plaintext: bytes) -> ReportedMessage:
        ref = AttachmentRef(
            b"blob", key, len(plaintext), sha256(plaintext), sha256(blob), "image/jpeg", "a.jpg"
        )
        body = MessageBody(BodyKind.ATTACHMENT, b"bob", "", ref).encode()
        msg = world.deliver(world.alice, world.bob, body)
        return dataclasses.replace(msg, attachment=RevealedAttachment(key, blob, None))

    # Under the committed key the blob opens, to p1.
    v = _verify(report(world.bob, message(key1, p1)), world.bob.address)
    opened = v.messages[0].attachment
    assert opened is not None and opened.plaintext == p1
    # Under the second key every hash in the body matches, yet the key commitment refuses it.
    with pytest.raises(InvalidReportedMessage):
        _verify(report(world.bob, message(key2, p2)), world.bob.address)


def test_decoding_bounds(world: World) -> None:
    m = world.text(world.alice, world.bob, "bounds")
    with pytest.raises(ValueError, match=r"1\.\.100 messages"):
        Report(world.bob.address, (m,) * (MAX_REPORTED_MESSAGES + 1)).encode()
    with pytest.raises(ValueError):
        Report(world.bob.address, ()).encode()
    with pytest.raises(LimitExceeded):
        Report.decode(bytes(64 * 1024 * 1024 + 1))
    enc = report(world.bob, m).encode()
    with pytest.raises(DecodeError, match="trailing"):
        Report.decode(enc + b"\x00")
    with pytest.raises(DecodeError, match="truncated"):
        Report.decode(enc[:-1])


def test_json_view_is_strict(world: World) -> None:
    good = report(world.bob, world.text(world.alice, world.bob, "json")).to_json()
    cases: list[tuple[object, str]] = []
    extra = dict(good, surprise=1)
    cases.append((extra, "unknown fields"))
    missing = {k: v for k, v in good.items() if k != "comment"}
    cases.append((missing, "lacks"))
    msgs = json.loads(json.dumps(good["messages"]))
    msgs[0]["franking_key"] = msgs[0]["franking_key"] + "="
    cases.append((dict(good, messages=msgs), "franking_key is not base64url"))
    msgs = json.loads(json.dumps(good["messages"]))
    msgs[0]["server_id"] = -1
    cases.append((dict(good, messages=msgs), "server_id"))
    cases.append((dict(good, reporter="Ym9i:01"), "reporter"))
    cases.append((dict(good, version=2), "version"))
    cases.append((dict(good, messages=[]), "messages"))
    for value, needle in cases:
        with pytest.raises(DecodeError, match=needle):
            Report.from_json(value)


# ----------------------------------------------------------------------------- any byte


@pytest.fixture(scope="module")
def encoded_report(world: World) -> bytes:
    return report(
        world.bob,
        world.text(world.alice, world.bob, "a text message"),
        world.attachment(world.alice, world.bob2, bytes(range(256)) * 4),
        world.attachment(world.alice, world.bob, b"plaintext only", reveal="plaintext"),
    ).encode()


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_single_byte_change_is_refused(
    world: World, encoded_report: bytes, data: st.DataObject
) -> None:
    _verify(encoded_report, world.bob.address)  # the original verifies
    i = data.draw(st.integers(0, len(encoded_report) - 1), label="position")
    delta = data.draw(st.integers(1, 255), label="xor")
    mutated = encoded_report[:i] + bytes([encoded_report[i] ^ delta]) + encoded_report[i + 1 :]
    with pytest.raises(RemoteError):
        _verify(mutated, world.bob.address)


def test_the_comment_is_covered_only_by_the_report_hash(world: World) -> None:
    """Documented limit: nothing the sender or the server made covers the reporter's comment.
    Changing it gives another valid report, with another SHA-256."""
    m = world.text(world.alice, world.bob, "comment")
    a, b = report(world.bob, m, comment="abc"), report(world.bob, m, comment="abd")
    assert (
        _verify(a, world.bob.address).report_sha256 != _verify(b, world.bob.address).report_sha256
    )


# ----------------------------------------------------------------------------- evidence


def test_evidence_bundle_exports_and_reverifies_offline(world: World, tmp_path: Path) -> None:
    rep = report(
        world.bob,
        world.text(world.alice, world.bob, "keep this"),
        world.attachment(world.alice, world.bob, b"evidence"),
    )
    v = verify_report(rep, SERVER_KEY, reporter_address=world.bob.address, now_ms=NOW_MS, seen=())
    bundle = EvidenceBundle.of(v, received_ms=NOW_MS + 5)
    assert bundle.retain_until_ms == NOW_MS + 5 + EVIDENCE_RETENTION_MS
    assert bundle.report_sha256 == v.report_sha256
    path = export_bundle(bundle, tmp_path / "report.bundle")
    loaded = load_bundle(path)
    assert loaded == bundle
    again = reverify_bundle(loaded, SERVER_KEY)
    assert again.messages == v.messages
    summary = json.dumps(loaded.summary())
    assert "keep this" not in summary and "evidence" not in summary

    with pytest.raises(ConfigurationError, match="pass that key"):
        reverify_bundle(loaded, b"\x00" * 32)
    tampered = dataclasses.replace(loaded, report=loaded.report[:-1] + b"\x01")
    with pytest.raises(BundleMismatch, match="recorded SHA-256"):
        reverify_bundle(tampered, SERVER_KEY)
    wrong_entry = dataclasses.replace(loaded.entries[0], server_time_ms=0)
    altered = dataclasses.replace(loaded, entries=(wrong_entry, *loaded.entries[1:]))
    with pytest.raises(BundleMismatch, match="verification result"):
        reverify_bundle(altered, SERVER_KEY)
    with pytest.raises(DecodeError):
        EvidenceBundle.decode(bundle.encode()[:-1])
    (tmp_path / "junk.bundle").write_bytes(b"\x01junk")
    with pytest.raises(DecodeError):
        load_bundle(tmp_path / "junk.bundle")


def test_reprs_hold_no_content_or_keys(world: World) -> None:
    m = world.attachment(world.alice, world.bob, b"SECRETPLAINTEXT")
    v = _verify(report(world.bob, m), world.bob.address)
    assert m.attachment is not None
    for obj in (m, m.attachment, v, v.messages[0], v.messages[0].attachment):
        text = repr(obj)
        assert "SECRETPLAINTEXT" not in text
        assert m.franking_key.hex() not in text and repr(m.franking_key) not in text
        assert repr(m.attachment.key) not in text
