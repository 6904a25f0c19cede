"""The law-enforcement agency's tool: serve a warrant, fetch what the provider intercepted, ask
the custodians to open it, keep verifiable evidence; and anyone's recount of lawful access
from the log.

A *case* lives in a data directory (0700):

``case.json`` (0600)
    The provider's URL, the signed warrant, its id and log index, the access token for its
    intercepts (a secret) and the manifest seen when it was served.
``intercepts.jsonl``
    The intercepted envelopes and group messages fetched so far, one JSON object per line, in
    id order (a group message with the signed membership update of the view it names).

The steps, each a function here and an ``overt lea`` command:

1. :func:`serve` — hand the court's warrant to the provider, which logs its commitment and
   starts copying the targets' envelopes.
2. :func:`fetch` — download new intercepts (paged, with progress).
3. :func:`decrypt` — for each escrow epoch, in batches: get the warrant's log proof (a
   checkpoint cosigned by the witness quorum) and the epoch's transcript (checked against its
   ``EpochKey`` entry in the log), ask **every** custodian in parallel, verify every answer's
   DLEQ proof against the custodian's verification key and drop (and name) any that fails,
   combine ``t`` valid ones, recover each message key (which re-derives ``R``), decrypt, check
   the franking commitment, and write the evidence bundle, re-verified before it is written.
   Envelopes the warrant does not cover (another account, a day outside the window) are
   skipped and said so — the custodians would refuse them anyway. So is every one-to-one
   envelope that may carry **key material**: one whose conversation is not a one-to-one
   conversation the tool can name (:func:`names_conversation`) is a group's control message —
   a membership update, a leave request or a sender-key distribution, which the envelope does
   not tell apart — and a distribution's field is under the key context, which custodians
   refuse and no share opens (``key_material``). A group message goes to the custodians with
   the member list of its view (:func:`group_members`, checked against its member-set hash)
   and is opened with :func:`overt.access.evidence.open_group`; its sender-key signature is
   not checked (the signature key travels only in the sender's distribution).
4. :func:`verify` — re-check a bundle offline with :func:`overt.access.verify_evidence`,
   fetching only public trust material (the manifest, the epoch keys with their log proofs).

:func:`audit_access` recounts warrants, receipts and unsealings from the whole log (after
checking it against the published checkpoint) with :func:`overt.access.audit`.

Progress goes to the ``progress`` callback (the CLI prints it to stderr); nothing here prints
plaintext. This module never imports the relay server or the user's client: it speaks HTTP.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import httpx

from overt.access.audit import AuditReport, audit
from overt.access.context import decode_context
from overt.access.custodian_policy import (
    KEY_MATERIAL_REFUSED,
    AccessItem,
    AccessRequest,
    AccessTrust,
    GroupMembers,
    check_covered,
    check_log_proof,
    contexts_hash,
)
from overt.access.dkg import DkgTranscript
from overt.access.errors import ThresholdNotMet
from overt.access.evidence import (
    EvidenceBatch,
    EvidenceBundle,
    EvidenceItem,
    ItemKind,
    ReceiptRecord,
    SessionKeys,
    VerifiedEvidence,
    open_direct,
    open_group,
    verify_evidence,
)
from overt.access.limits import MAX_EVIDENCE_BYTES, MAX_SHARE_BATCH
from overt.access.threshold import ShareResponse, collect
from overt.access.warrant import Warrant, verify_warrant, warrant_commitment
from overt.crypto import Point, sha256
from overt.errors import (
    DecodeError,
    InvalidMessage,
    LocalError,
    OvertError,
    ProtocolViolation,
    RemoteError,
)
from overt.protocol import access as af
from overt.protocol.device import direct_conversation_id
from overt.protocol.groups import member_set_hash
from overt.protocol.identity import verify_device_list
from overt.services.custodian_client import (
    CustodianClient,
    CustodianRefused,
    DecryptAnswer,
    InterceptedEnvelope,
    PartyError,
    ProviderClient,
)
from overt.services.custodian_wire import b64d, b64e, integer, members
from overt.transparency.checkpoint import (
    Checkpoint,
    ProofBundle,
    verify_checkpoint,
    verify_proof_bundle,
)
from overt.transparency.entries import EpochKey, decode_entry
from overt.transparency.manifest import Manifest, check_successor, verify_manifest
from overt.transparency.merkle import CompactRange, hash_leaf
from overt.wire import Address, DeviceEntry, Envelope, SignedDeviceList
from overt.wire.group_messages import GroupMessage, MembershipUpdate
from overt.wire.jcs import canonicalize, parse_strict

CASE_FILE_NAME: Final = "case.json"
INTERCEPTS_FILE_NAME: Final = "intercepts.jsonl"
CASE_FORMAT: Final = "overt-lea-case"
CASE_VERSION: Final = 1
MAX_CASE_BYTES: Final = 1024 * 1024
FETCH_PAGE: Final = 500
"""Intercepts asked for per request."""
DEFAULT_BATCH: Final = 1000
"""Messages per custodian request (one receipt each; at most ``MAX_SHARE_BATCH``)."""
PROOF_TIMEOUT_SECONDS: Final = 30.0
"""How long to wait for a published checkpoint to cover a fresh log entry."""
LOG_PAGE: Final = 1000
SIGNATURE_NOT_CHECKED: Final = (
    "sender-key signature not checked: the sender's distribution is key material and is never "
    "decrypted (the key-committing encryption and the franking commitment still hold)"
)

ProgressFn = Callable[[str], None]


class LeaError(RemoteError):
    """The case cannot go on; the message says what happened and what to do."""


def _quiet(_: str) -> None:
    pass


# ----------------------------------------------------------------------------- the case


@dataclass(frozen=True, slots=True)
class Case:
    server: str
    warrant: bytes
    warrant_id: bytes
    index: int
    token: str = field(repr=False)
    manifest: bytes

    def to_bytes(self) -> bytes:
        return canonicalize(
            {
                "format": CASE_FORMAT,
                "index": self.index,
                "manifest": b64e(self.manifest),
                "server": self.server,
                "token": self.token,
                "version": CASE_VERSION,
                "warrant": b64e(self.warrant),
                "warrant_id": b64e(self.warrant_id),
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Case:
        m = members(
            parse_strict(data, max_bytes=MAX_CASE_BYTES),
            "case file",
            {"format", "index", "manifest", "server", "token", "version", "warrant", "warrant_id"},
        )
        if m["format"] != CASE_FORMAT or m["version"] != CASE_VERSION:
            raise DecodeError("not an Overt LEA case file of this version")
        server, token = m["server"], m["token"]
        if not isinstance(server, str) or not isinstance(token, str):
            raise DecodeError("case file: server and token are strings")
        return cls(
            server,
            b64d(m["warrant"], "warrant"),
            b64d(m["warrant_id"], "warrant id", 32),
            integer(m["index"], "index", 0, 1 << 62),
            token,
            b64d(m["manifest"], "manifest"),
        )


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def load_case(data_dir: str | Path) -> Case:
    path = Path(data_dir) / CASE_FILE_NAME
    try:
        return Case.from_bytes(path.read_bytes())
    except FileNotFoundError:
        raise LocalError(
            f"no case in {data_dir}: serve the warrant first (`overt lea serve`)"
        ) from None
    except DecodeError as e:
        raise LocalError(f"{path} is not a case file ({e})") from None


def load_intercepts(data_dir: str | Path) -> list[InterceptedEnvelope]:
    path = Path(data_dir) / INTERCEPTS_FILE_NAME
    if not path.exists():
        return []
    out = []
    with path.open("rb") as f:
        for line in f:
            out.append(InterceptedEnvelope.from_json(parse_strict(line.strip())))
    return out


def _trust(manifest: Manifest) -> AccessTrust:
    try:
        return AccessTrust.from_manifest(manifest)
    except OvertError as e:
        raise LeaError(f"the deployment has no lawful access: {e}") from None


async def _manifest(provider: ProviderClient, pinned: bytes | None) -> tuple[Manifest, bytes]:
    signed = await provider.manifest()
    manifest = verify_manifest(signed)
    if pinned is not None and pinned != signed:
        check_successor(verify_manifest(pinned), manifest)
    return manifest, signed


# ----------------------------------------------------------------------------- serve, fetch


async def serve(
    data_dir: str | Path,
    server: str,
    warrant: bytes,
    *,
    progress: ProgressFn = _quiet,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Case:
    """Serve ``warrant`` on the provider at ``server``; keep the case in ``data_dir``."""
    directory = Path(data_dir)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    if (directory / CASE_FILE_NAME).exists():
        raise LocalError(f"{directory} already holds a case: use a new --data-dir per warrant")
    async with ProviderClient(server, transport=transport) as provider:
        manifest, signed = await _manifest(provider, None)
        trust = _trust(manifest)
        try:
            verify_warrant(warrant, trust.court_keys, max_seal_days=trust.max_seal_days)
        except OvertError as e:
            raise LeaError(f"the provider would refuse this warrant: {e}") from None
        progress(f"serving the warrant on {server}…")
        served = await provider.serve_warrant(warrant)
    case = Case(server, warrant, served.warrant_id, served.index, served.token, signed)
    _write_private(directory / CASE_FILE_NAME, case.to_bytes())
    progress(f"logged as entry {served.index}; the provider now copies the targets' envelopes")
    return case


async def fetch(
    data_dir: str | Path,
    *,
    progress: ProgressFn = _quiet,
    transport: httpx.AsyncBaseTransport | None = None,
) -> int:
    """Download the intercepts not fetched yet; how many were new."""
    case = load_case(data_dir)
    path = Path(data_dir) / INTERCEPTS_FILE_NAME
    have = load_intercepts(data_dir)
    after = max((i.id for i in have), default=0)
    new = 0
    async with ProviderClient(case.server, transport=transport) as provider:
        while True:
            page, more = await provider.intercepts(case.warrant_id, case.token, after, FETCH_PAGE)
            if page:
                with path.open("ab") as f:
                    for item in page:
                        f.write(canonicalize(item.to_json()) + b"\n")
                    f.flush()
                    os.fsync(f.fileno())
                after = page[-1].id
                new += len(page)
                progress(f"fetched {len(have) + new} intercepted envelope(s)")
            if not more:
                break
    return new


# ----------------------------------------------------------------------------- the log


async def _verified_entry(
    provider: ProviderClient, trust: AccessTrust, index: int
) -> tuple[bytes, ProofBundle]:
    """Entry ``index`` and its proof under a quorum-cosigned checkpoint, both checked."""
    bundle = await provider.wait_for_proof(index, PROOF_TIMEOUT_SECONDS)
    (data,) = await provider.entries(index, index + 1)
    try:
        verify_proof_bundle(
            bundle, leaf_data=data, log_key=trust.log_key, witnesses=trust.witness_keys,
            quorum=trust.witness_quorum, origin=trust.log_origin,
        )  # fmt: skip
    except (InvalidMessage, DecodeError):
        raise LeaError(f"log entry {index} does not verify under the witnessed log") from None
    return data, bundle


async def epoch_transcript(
    provider: ProviderClient, trust: AccessTrust, epoch: int
) -> tuple[DkgTranscript, EpochKey]:
    """The epoch's DKG transcript, checked against its ``EpochKey`` entry in the log."""
    info = await provider.epoch(epoch)
    data, _ = await _verified_entry(provider, trust, info.index)
    entry = decode_entry(data)
    if not isinstance(entry, EpochKey) or entry.epoch != epoch:
        raise LeaError(f"log entry {info.index} is not the key of epoch {epoch}")
    transcript = DkgTranscript.decode(info.transcript)
    if sha256(info.transcript) != entry.transcript_hash:
        raise LeaError(f"the provider's transcript of epoch {epoch} is not the logged one")
    if transcript.public_key().raw != entry.public_key:  # pragma: no cover - hash binds it
        raise LeaError(f"the transcript of epoch {epoch} does not give the logged key")
    return transcript, entry


# ----------------------------------------------------------------------------- requests


def access_item(envelope: Envelope) -> AccessItem:
    """The custodians' view of one envelope: its access context and ``R``."""
    if envelope.access is None:
        raise DecodeError("the envelope has no access field")
    ctx = af.context(
        envelope.access.epoch, envelope.sender, envelope.recipient, envelope.conversation_id,
        envelope.message_id, envelope.timestamp_ms,
    )  # fmt: skip
    return AccessItem(ctx, Point.from_bytes(envelope.access.r))


def names_conversation(envelope: Envelope, accounts: Collection[bytes]) -> bool:
    """Whether ``envelope``'s conversation id is a one-to-one conversation the tool can name:
    the one between its sender's and recipient's accounts, or — for a copy between one
    account's own devices, whose conversation is with someone else — the one between that
    account and one of ``accounts`` (those seen in the case's intercepts). Anything else is
    the control conversation of a group (the honest client sends updates, leave requests and
    sender-key distributions with the group id as conversation id; a recipient refuses them
    otherwise), or a peer the tool cannot name: it may be key material."""
    a, b = envelope.sender.account, envelope.recipient.account
    if a != b:
        return envelope.conversation_id == direct_conversation_id(a, b)
    return any(envelope.conversation_id == direct_conversation_id(a, x) for x in accounts)


def group_members(message: GroupMessage, membership: bytes) -> GroupMembers:
    """The member list of the view ``message`` names, from the signed membership update the
    provider copied with it: :class:`DecodeError` unless the update is of the message's group
    and version and its members hash to the message's member-set hash (the custodians check
    the same; a provider that sent another view is caught here first)."""
    update = MembershipUpdate.decode(membership)
    if update.group_id != message.group_id:
        raise DecodeError("the membership update is of another group")
    if update.membership_version != message.membership_version:
        raise DecodeError("the membership update is of another version than the message's")
    members = GroupMembers(update.membership_version, update.members)
    if member_set_hash(message.group_id, members.version, members.members) != (
        message.member_set_hash
    ):
        raise DecodeError("the membership update's members do not hash to the message's view")
    return members


def group_access_item(message: GroupMessage, members: GroupMembers) -> AccessItem:
    """The custodians' view of one group message: its access context, ``R`` and the member
    list its member-set hash commits to."""
    if message.access is None:
        raise DecodeError("the group message has no access field")
    ctx = af.group_context(
        message.access.epoch, message.sender, message.group_id, message.member_set_hash,
        message.message_id, message.timestamp_ms,
    )  # fmt: skip
    return AccessItem(ctx, Point.from_bytes(message.access.r), members)


@dataclass
class Asked:
    """What the custodians answered to one request."""

    answers: dict[int, DecryptAnswer] = field(default_factory=dict)
    refused: dict[str, CustodianRefused] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


async def ask_custodians(
    urls: Sequence[str],
    warrant: bytes,
    log_proof: bytes,
    request: AccessRequest,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Asked:
    """Ask every custodian at once; collect answers, refusals and failures by URL."""

    async def one(url: str) -> tuple[str, DecryptAnswer | OvertError]:
        async with CustodianClient(url, transport=transport) as client:
            try:
                return url, await client.decrypt(warrant, log_proof, request)
            except (PartyError, DecodeError) as e:
                return url, e

    asked = Asked()
    for url, result in await asyncio.gather(*(one(u) for u in urls)):
        if isinstance(result, DecryptAnswer):
            asked.answers[result.custodian] = result
        elif isinstance(result, CustodianRefused):
            asked.refused[url] = result
        else:
            asked.failed[url] = str(result)
    return asked


def _receipt_fits(answer: DecryptAnswer, trust: AccessTrust, request: AccessRequest) -> bool:
    r = answer.receipt
    return (
        1 <= answer.custodian <= len(trust.custodian_keys)
        and r.custodian_id == trust.custodian_id(answer.custodian)
        and r.warrant_id == request.warrant_id
        and r.count == len(request.items)
        and r.contexts_hash == contexts_hash(request.contexts)
    )


# ----------------------------------------------------------------------------- decryption


@dataclass
class DecryptReport:
    """What :func:`decrypt` did."""

    opened: int = 0
    batches: int = 0
    skipped: list[str] = field(default_factory=list)
    dropped: dict[int, str] = field(default_factory=dict)
    """Custodians whose answer failed its proof (or did not fit), by index."""
    refused: dict[str, str] = field(default_factory=dict)
    path: Path | None = None
    seconds: float = 0.0


class _Directory:
    """Devices' identity keys, from the accounts' signed device lists (checked)."""

    def __init__(self, provider: ProviderClient) -> None:
        self._provider = provider
        self._lists: dict[bytes, dict[int, DeviceEntry]] = {}

    async def entry(self, address: Address) -> DeviceEntry:
        devices = self._lists.get(address.account)
        if devices is None:
            identity_key, signed = await self._provider.account(address.account)
            dl = verify_device_list(SignedDeviceList.decode(signed), identity_key)
            devices = {d.device: d for d in dl.devices}
            self._lists[address.account] = devices
        found = devices.get(address.device)
        if found is None:
            raise LeaError(f"device {address} is not in its account's current device list")
        return found


async def _open(
    envelope: Envelope, raw: bytes, point: Point, directory: _Directory
) -> EvidenceItem:
    sender = await directory.entry(envelope.sender)
    recipient = await directory.entry(envelope.recipient)
    orders = (True,) if envelope.init is not None else (True, False)
    for initiated in orders:
        keys = SessionKeys(
            sender.identity_dh, sender.identity_sign, recipient.identity_dh,
            recipient.identity_sign, initiated,
        )  # fmt: skip
        try:
            return open_direct(raw, keys, point)
        except InvalidMessage:
            continue
    raise InvalidMessage()


@dataclass(frozen=True, slots=True)
class _Message:
    """One message to open: a one-to-one ``envelope``, or a group message (``envelope``
    None) whose member list is in ``item``."""

    envelope: Envelope | None
    raw: bytes
    item: AccessItem
    epoch: int
    message_id: bytes


def _message(i: InterceptedEnvelope) -> _Message:
    if i.kind == "group":
        if i.membership is None:  # pragma: no cover - from_json refuses it
            raise DecodeError("a group intercept without its membership update")
        msg = GroupMessage.decode(i.envelope)
        item = group_access_item(msg, group_members(msg, i.membership))
        assert msg.access is not None
        return _Message(None, i.envelope, item, msg.access.epoch, msg.message_id)
    env = Envelope.decode(i.envelope)
    item = access_item(env)
    assert env.access is not None
    return _Message(env, i.envelope, item, env.access.epoch, env.message_id)


def _select(
    intercepts: Sequence[InterceptedEnvelope], warrant: Warrant, report: DecryptReport
) -> dict[int, list[_Message]]:
    by_epoch: dict[int, list[_Message]] = {}
    seen: set[bytes] = set()
    parsed: list[tuple[InterceptedEnvelope, _Message | DecodeError]] = []
    accounts: set[bytes] = set()
    for i in intercepts:
        try:
            m = _message(i)
        except DecodeError as e:
            parsed.append((i, e))
            continue
        parsed.append((i, m))
        if m.envelope is not None:
            accounts.update((m.envelope.sender.account, m.envelope.recipient.account))
        elif m.item.group_members is not None:
            accounts.update(m.item.group_members.accounts)
    for i, message in parsed:
        where = f"intercept {i.id}"
        if isinstance(message, DecodeError):
            report.skipped.append(f"{where}: cannot be opened ({message})")
            continue
        if message.envelope is not None and not names_conversation(message.envelope, accounts):
            report.skipped.append(
                f"{where}: not asked for — a group's control message (possibly a sender-key "
                f"distribution) or a conversation the tool cannot name; {KEY_MATERIAL_REFUSED}"
            )
            continue
        item = message.item
        try:
            ctx = decode_context(item.context)
            check_covered(warrant, ctx, item.group_members)
        except DecodeError as e:
            report.skipped.append(f"{where}: cannot be opened ({e})")
            continue
        except ProtocolViolation as e:
            report.skipped.append(f"{where}: outside the warrant ({e})")
            continue
        if item.context in seen:
            report.skipped.append(f"{where}: the same message twice")
            continue
        seen.add(item.context)
        by_epoch.setdefault(message.epoch, []).append(message)
    return by_epoch


async def decrypt(
    data_dir: str | Path,
    custodian_urls: Sequence[str],
    out: str | Path,
    *,
    batch_size: int = DEFAULT_BATCH,
    progress: ProgressFn = _quiet,
    transport: httpx.AsyncBaseTransport | None = None,
    custodian_transport: httpx.AsyncBaseTransport | None = None,
) -> DecryptReport:
    """Open the fetched intercepts with the custodians' help and write the evidence bundle to
    ``out`` (see the module docstring). :class:`LeaError` if nothing could be opened."""
    if not 0 < batch_size <= MAX_SHARE_BATCH:
        raise LocalError(f"the batch size is 1..{MAX_SHARE_BATCH}")
    started = time.monotonic()
    case = load_case(data_dir)
    report = DecryptReport()
    async with ProviderClient(case.server, transport=transport) as provider:
        manifest, _ = await _manifest(provider, case.manifest)
        trust = _trust(manifest)
        warrant = verify_warrant(case.warrant, trust.court_keys, max_seal_days=trust.max_seal_days)
        progress("checking the warrant's log proof (witnessed checkpoint)…")
        _, warrant_proof = await _verified_entry(provider, trust, case.index)
        problem = check_log_proof(trust, warrant_proof, warrant_commitment(warrant)[0])
        if problem is not None:  # pragma: no cover - the entry verified above
            raise LeaError(f"the warrant's log proof: {problem[1]}")
        by_epoch = _select(load_intercepts(data_dir), warrant, report)
        total = sum(len(v) for v in by_epoch.values())
        if total == 0:
            raise LeaError(
                "no fetched envelope is covered by the warrant: run `overt lea fetch` (and check "
                f"the window); {len(report.skipped)} skipped"
            )
        progress(f"{total} message(s) to open in {len(by_epoch)} epoch(s)")
        directory = _Directory(provider)
        batches: list[EvidenceBatch] = []
        receipts_wanted: list[tuple[int, list[DecryptAnswer]]] = []
        for epoch, messages in sorted(by_epoch.items()):
            transcript, _ = await epoch_transcript(provider, trust, epoch)
            chunks = [messages[k : k + batch_size] for k in range(0, len(messages), batch_size)]
            for n, chunk in enumerate(chunks, start=1):
                request = AccessRequest(case.warrant_id, tuple(m.item for m in chunk))
                progress(
                    f"epoch {epoch}, batch {n}/{len(chunks)}: asking {len(custodian_urls)} "
                    f"custodian(s) for {len(chunk)} message(s)…"
                )
                asked = await ask_custodians(
                    custodian_urls, case.warrant, warrant_proof.to_bytes(), request,
                    transport=custodian_transport,
                )  # fmt: skip
                for url, refusal in asked.refused.items():
                    report.refused[url] = f"{refusal.refusal}: {refusal}"
                    progress(f"  {url} refused ({refusal.refusal}): {refusal}")
                for url, failure in asked.failed.items():
                    report.refused[url] = failure
                    progress(f"  {url} did not answer: {failure}")
                fitting: dict[int, ShareResponse] = {}
                for j, answer in asked.answers.items():
                    if _receipt_fits(answer, trust, request):
                        fitting[j] = answer.response
                    else:
                        report.dropped[j] = "its receipt is not for this request"
                        progress(f"  custodian {j}: its receipt does not fit the request — dropped")
                try:
                    combined = collect(transcript, request.points, fitting)
                except ThresholdNotMet as e:
                    for j in e.rejected:
                        report.dropped[j] = "its share proof did not verify"
                    raise LeaError(
                        f"epoch {epoch}: {e.valid} custodian(s) gave valid shares, "
                        f"{e.threshold} are needed — nothing can be opened"
                        + (f"; dropped custodians {list(e.rejected)}" if e.rejected else "")
                        + (
                            "; refusals: " + "; ".join(report.refused.values())
                            if report.refused
                            else ""
                        )
                    ) from None
                for j in combined.rejected:
                    report.dropped[j] = "its share proof did not verify"
                    progress(f"  custodian {j}: share proof FAILED — dropped, using the others")
                progress(f"  combined the shares of custodians {list(combined.used)}")
                items: list[EvidenceItem] = []
                for m, point in zip(chunk, combined.points, strict=True):
                    try:
                        if m.envelope is None:
                            assert m.item.group_members is not None
                            items.append(open_group(m.raw, m.item.group_members, point))
                        else:
                            items.append(await _open(m.envelope, m.raw, point, directory))
                    except (InvalidMessage, LeaError) as e:
                        report.skipped.append(
                            f"message {m.message_id.hex()}: {e or 'does not open'}"
                        )
                if len(items) != len(chunk):
                    report.skipped.append(
                        f"epoch {epoch}, batch {n}: left out of the evidence (a message failed)"
                    )
                    continue
                report.opened += len(items)
                progress(f"  opened {report.opened}/{total} (franking commitments checked)")
                used = [asked.answers[j] for j in combined.used]
                receipts_wanted.append((len(batches), used))
                batches.append(
                    EvidenceBatch(
                        transcript.encode(), tuple(items),
                        tuple(a.response for a in used), (),
                    )
                )  # fmt: skip
        if not batches:
            raise LeaError("no batch could be opened completely; see the skipped messages")
        progress("collecting the custodians' receipts under a witnessed checkpoint…")
        for position, used in receipts_wanted:
            records = []
            for answer in used:
                _, proof = await _verified_entry(provider, trust, answer.receipt_index)
                records.append(ReceiptRecord(answer.receipt, proof.to_bytes()))
            b = batches[position]
            batches[position] = EvidenceBatch(b.transcript, b.items, b.responses, tuple(records))
        bundle = EvidenceBundle(case.warrant, warrant_proof.to_bytes(), tuple(batches))
        keys = {}
        for b in batches:
            t = DkgTranscript.decode(b.transcript)
            keys[t.epoch] = t.public_key()
        verify_evidence(bundle, trust, keys)
        _say_signatures(bundle, progress)
        path = Path(out)
        _write_private(path, bundle.encode())
    report.batches, report.path = len(batches), path
    report.seconds = time.monotonic() - started
    progress(f"wrote {path}: {report.opened} message(s) in {len(batches)} batch(es)")
    return report


# ----------------------------------------------------------------------------- verification


async def verify(
    evidence: str | Path,
    server: str,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    progress: ProgressFn = _quiet,
) -> VerifiedEvidence:
    """Re-check an evidence bundle against the deployment's public trust material."""
    data = Path(evidence).read_bytes()
    if len(data) > MAX_EVIDENCE_BYTES:
        raise LeaError("the file is larger than any evidence bundle")
    bundle = EvidenceBundle.decode(data)
    async with ProviderClient(server, transport=transport) as provider:
        manifest, _ = await _manifest(provider, None)
        trust = _trust(manifest)
        keys: dict[int, Point] = {}
        for b in bundle.batches:
            epoch = DkgTranscript.decode(b.transcript).epoch
            if epoch not in keys:
                progress(f"fetching the logged key of epoch {epoch}…")
                _, entry = await epoch_transcript(provider, trust, epoch)
                keys[epoch] = Point.from_bytes(entry.public_key)
    verified = verify_evidence(bundle, trust, keys)
    _say_signatures(bundle, progress)
    return verified


def signature_notes(bundle: EvidenceBundle) -> list[str]:
    """One line per group message of ``bundle``: its sender-key signature is not checked,
    because the signature key travels only in the sender's distribution, key material that is
    never decrypted."""
    notes = []
    for batch in bundle.batches:
        for item in batch.items:
            if item.kind is ItemKind.GROUP:
                msg = GroupMessage.decode(item.message)
                notes.append(
                    f"group message {msg.message_id.hex()} from {msg.sender}: "
                    f"{SIGNATURE_NOT_CHECKED}"
                )
    return notes


def _say_signatures(bundle: EvidenceBundle, progress: ProgressFn) -> None:
    for line in signature_notes(bundle):
        progress(line)


# ----------------------------------------------------------------------------- the audit


async def audit_access(
    server: str,
    *,
    now: int | None = None,
    progress: ProgressFn = _quiet,
    transport: httpx.AsyncBaseTransport | None = None,
) -> tuple[AuditReport, AccessTrust, int]:
    """Read the whole log up to the published checkpoint, check it against the checkpoint's
    root, and recount lawful access; the report, the trust it was judged with, the size."""
    async with ProviderClient(server, transport=transport) as provider:
        manifest, _ = await _manifest(provider, None)
        trust = _trust(manifest)
        note = await provider.checkpoint()
        try:
            checkpoint: Checkpoint = verify_checkpoint(
                note, trust.log_key, trust.witness_keys, trust.witness_quorum,
                origin=trust.log_origin,
            ).checkpoint  # fmt: skip
        except (InvalidMessage, DecodeError):
            raise LeaError(
                "the published checkpoint is not signed by the log and its quorum"
            ) from None
        tree = CompactRange()
        entries = []
        for start in range(0, checkpoint.size, LOG_PAGE):
            page = await provider.entries(start, min(start + LOG_PAGE, checkpoint.size))
            for offset, data in enumerate(page):
                tree.append(hash_leaf(data))
                try:
                    entries.append((start + offset, decode_entry(data)))
                except DecodeError:
                    raise LeaError(f"log entry {start + offset} does not decode") from None
            progress(f"read {tree.size}/{checkpoint.size} log entries")
        if tree.size != checkpoint.size or tree.root() != checkpoint.root_hash:
            raise LeaError("the entries served are not the ones the checkpoint signs")
    report = audit(entries, now=int(time.time()) if now is None else now, trust=trust)
    return report, trust, checkpoint.size


def describe_report(report: AuditReport, trust: AccessTrust) -> list[str]:
    """The audit for people, one line each."""
    lines = []
    courts = {k.key.raw: k.name for k in trust.court_keys}
    for court, n in sorted(report.warrants_per_court.items()):
        lines.append(f"court {courts.get(court, court.hex()[:16])!r}: {n} warrant(s)")
    for wid, t in report.warrants.items():
        state = "unsealed" if t.unsealed_at is not None else f"sealed until {t.sealed_until}"
        lines.append(
            f"warrant {b64e(wid)} (entry {t.index}, {state}): {t.receipts} receipt(s), "
            f"{t.released} share release(s), at most {t.messages_bound(trust.threshold)} "
            "message(s) decrypted"
        )
    for f in report.flags:
        lines.append(
            f"FLAG {f.kind.value} at entry {f.index} (warrant {b64e(f.warrant_id)}): {f.detail}"
        )
    return lines


__all__ = [
    "CASE_FILE_NAME",
    "DEFAULT_BATCH",
    "INTERCEPTS_FILE_NAME",
    "Asked",
    "Case",
    "DecryptReport",
    "LeaError",
    "access_item",
    "ask_custodians",
    "audit_access",
    "decrypt",
    "describe_report",
    "epoch_transcript",
    "fetch",
    "group_access_item",
    "group_members",
    "load_case",
    "load_intercepts",
    "names_conversation",
    "serve",
    "signature_notes",
    "verify",
]
