"""Async clients of the lawful-access parties, and the DKG driver.

* :class:`CustodianClient` — one custodian service (:mod:`overt.services.custodian`): its
  identity, the DKG rounds, decryption requests and the operator's actions.
* :class:`ProviderClient` — the provider's public log endpoints and its lawful-access routes
  (:mod:`overt.server.lawful`), as custodians, the DKG driver and the LEA use them. It speaks
  HTTP only; nothing here imports the relay server.
* :func:`run_dkg` — drives one escrow epoch's DKG among the custodians (it relays signed
  messages and holds no secret: every share travels sealed to its recipient) and publishes
  the result to the provider, which logs the epoch key.

Errors are typed and rooted in :class:`overt.errors.RemoteError`::

    PartyError                    a custodian or the provider failed     (status or None)
    ├── PartyUnavailable          no answer, a transport error, a 5xx    (503)
    └── PartyRejected             a 4xx; ``code`` is the answer's error code
        └── CustodianRefused      403 from a custodian: ``refusal`` is the reason code,
                                  ``item`` the request item at fault

httpx's exceptions never escape: they are mapped here, at the edge. A transport passed in stays
the caller's (several clients may share it; closing a client does not close it). This module
never sees a custodian's key or state.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import ClassVar, Final, Self

import httpx

from overt.access.custodian_policy import AccessRequest
from overt.access.dkg import Complaints, DkgTranscript
from overt.access.limits import MAX_WARRANT_BYTES
from overt.access.threshold import ShareResponse
from overt.errors import DecodeError, LocalError, ProtocolViolation, RemoteError
from overt.services.custodian_wire import (
    CustodianIdentity,
    EpochPublication,
    SignedMessage,
    b64d,
    b64e,
    integer,
    items,
    members,
    message_list,
)
from overt.transparency.checkpoint import Checkpoint, ProofBundle
from overt.transparency.entries import AccessReceipt, decode_entry, encode_entry
from overt.transparency.note import Note
from overt.wire.jcs import JsonValue, canonicalize, parse_strict

DEFAULT_TIMEOUT_SECONDS: Final = 30.0
MAX_RESPONSE_BYTES: Final = 64 * 1024 * 1024
"""Largest answer read from a party (a page of intercepts of up to 1 MiB envelopes)."""

MAX_ERROR_BYTES: Final = 4096
PROOF_POLL_SECONDS: Final = 0.1
"""How often :meth:`ProviderClient.wait_for_proof` asks for a newer checkpoint."""

ProgressFn = Callable[[str], None]


class PartyError(RemoteError):
    """A custodian or the provider refused, failed or could not be reached."""

    def __init__(self, message: str, *, status: int | None = None, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class PartyUnavailable(PartyError):
    """No usable answer: a network error, a timeout or a 5xx. Retry later."""

    status_hint = 503


class PartyRejected(PartyError):
    """The party answered with a 4xx."""


class CustodianRefused(PartyRejected):
    """A custodian refused to release shares (403): ``refusal`` says why."""

    status_hint = 403

    def __init__(self, message: str, *, refusal: str, item: int | None, custodian: str) -> None:
        super().__init__(message, status=403, code="refused")
        self.refusal = refusal
        self.item = item
        self.custodian = custodian


class _Http:
    """One pooled HTTP client to one base URL, with strict JSON and mapped errors."""

    def __init__(
        self,
        url: str,
        what: str,
        *,
        timeout: float,
        transport: httpx.AsyncBaseTransport | None,
    ) -> None:
        self.url = url.rstrip("/")
        self.what = what
        self._http = httpx.AsyncClient(timeout=timeout, transport=transport)
        self._owns_transport = transport is None

    async def aclose(self) -> None:
        """Close the connections, unless the transport is the caller's (it may be shared)."""
        if self._owns_transport:
            await self._http.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: JsonValue = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, int] | None = None,
    ) -> tuple[int, bytes]:
        headers = dict(headers or {})
        if json_body is not None:
            content = canonicalize(json_body)
            headers["content-type"] = "application/json"
        try:
            async with self._http.stream(
                method, self.url + path, headers=headers, params=params, content=content
            ) as response:
                data = bytearray()
                async for chunk in response.aiter_bytes():
                    data += chunk
                    if len(data) > MAX_RESPONSE_BYTES:
                        raise DecodeError(f"{self.what} answered more than {MAX_RESPONSE_BYTES}")
                return response.status_code, bytes(data)
        except httpx.HTTPError as e:
            raise PartyUnavailable(f"{self.what} at {self.url} is unreachable: {e}") from e

    def error(self, status: int, body: bytes) -> PartyError:
        code, message = "", body[:MAX_ERROR_BYTES].decode("utf-8", "replace").strip()
        try:
            doc = parse_strict(body[:MAX_ERROR_BYTES], max_bytes=MAX_ERROR_BYTES)
        except DecodeError:
            doc = None
        if isinstance(doc, dict):
            code = str(doc.get("error", ""))
            message = str(doc.get("message", message))
            if status == 403 and code == "refused":
                item = doc.get("item")
                return CustodianRefused(
                    message,
                    refusal=str(doc.get("refusal", "")),
                    item=item if isinstance(item, int) and not isinstance(item, bool) else None,
                    custodian=self.url,
                )
        text = f"{self.what} at {self.url} answered {status}: {message[:300]}"
        if status >= 500:
            return PartyUnavailable(text, status=status, code=code)
        return PartyRejected(text, status=status, code=code)

    async def json(
        self,
        method: str,
        path: str,
        *,
        json_body: JsonValue = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, int] | None = None,
        ok: tuple[int, ...] = (200,),
    ) -> JsonValue:
        status, data = await self.request(
            method, path, json_body=json_body, content=content, headers=headers, params=params
        )
        if status not in ok:
            raise self.error(status, data)
        return parse_strict(data, max_bytes=MAX_RESPONSE_BYTES)


class _Client:
    """What every client of one party shares: its :class:`_Http`, ``url`` and closing.

    Subclasses set ``_PARTY``, the party's name in error messages. Use ``async with`` or
    :meth:`aclose`.
    """

    _PARTY: ClassVar[str]

    def __init__(
        self,
        url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = _Http(url, self._PARTY, timeout=timeout, transport=transport)

    @property
    def url(self) -> str:
        return self._http.url

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


# ----------------------------------------------------------------------------- custodians


@dataclass(frozen=True, slots=True)
class DecryptAnswer:
    """What a willing custodian answers: its shares with their proof, and its logged receipt."""

    custodian: int
    response: ShareResponse
    receipt: AccessReceipt
    receipt_index: int


class CustodianClient(_Client):
    """One custodian service. Use ``async with`` or :meth:`aclose`."""

    _PARTY: ClassVar[str] = "custodian"

    async def identity(self) -> CustodianIdentity:
        return CustodianIdentity.from_json(await self._http.json("GET", "/identity"))

    async def status(self) -> JsonValue:
        return await self._http.json("GET", "/status")

    # -- DKG ------------------------------------------------------------------------------

    async def round1(
        self, epoch: int, attempt: int, identities: Sequence[CustodianIdentity]
    ) -> tuple[SignedMessage, list[SignedMessage]]:
        doc = await self._http.json(
            "POST",
            f"/dkg/{epoch}/round1",
            json_body={"attempt": attempt, "identities": [i.to_json() for i in identities]},
        )
        m = members(doc, "round 1 answer", {"commitment", "shares"})
        return SignedMessage.from_json(m["commitment"]), message_list(m["shares"], "shares")

    async def round2(
        self, epoch: int, commitments: Sequence[SignedMessage], shares: Sequence[SignedMessage]
    ) -> SignedMessage:
        doc = await self._http.json(
            "POST",
            f"/dkg/{epoch}/round2",
            json_body={
                "commitments": [c.to_json() for c in commitments],
                "shares": [s.to_json() for s in shares],
            },
        )
        return SignedMessage.from_json(members(doc, "round 2 answer", {"complaints"})["complaints"])

    async def round3(self, epoch: int, complaints: Sequence[SignedMessage]) -> SignedMessage | None:
        doc = await self._http.json(
            "POST",
            f"/dkg/{epoch}/round3",
            json_body={"complaints": [c.to_json() for c in complaints]},
        )
        answer = members(doc, "round 3 answer", {"answer"})["answer"]
        return None if answer is None else SignedMessage.from_json(answer)

    async def finalize(
        self, epoch: int, answers: Sequence[SignedMessage]
    ) -> tuple[bytes, SignedMessage]:
        doc = await self._http.json(
            "POST", f"/dkg/{epoch}/finalize", json_body={"answers": [a.to_json() for a in answers]}
        )
        m = members(doc, "finalize answer", {"confirmation", "transcript"})
        return b64d(m["transcript"], "transcript"), SignedMessage.from_json(m["confirmation"])

    async def transcript(self, epoch: int) -> DkgTranscript:
        doc = await self._http.json("GET", f"/epochs/{epoch}")
        m = members(doc, "epoch", {"epoch", "public_key", "retain_until", "status", "transcript"})
        return DkgTranscript.decode(b64d(m["transcript"], "transcript"))

    # -- decryption -----------------------------------------------------------------------

    async def decrypt(
        self, warrant: bytes, log_proof: bytes, request: AccessRequest
    ) -> DecryptAnswer:
        """Ask for shares. :class:`CustodianRefused` if the custodian refuses (with its reason),
        :class:`PartyUnavailable` if it cannot answer now."""
        doc = await self._http.json(
            "POST",
            "/decrypt",
            json_body={
                "log_proof": log_proof.decode("utf-8"),
                "request": b64e(request.encode()),
                "warrant": b64e(warrant),
            },
        )
        m = members(doc, "decrypt answer", {"custodian", "receipt", "receipt_index", "response"})
        entry = decode_entry(b64d(m["receipt"], "receipt"))
        if not isinstance(entry, AccessReceipt):
            raise DecodeError("the custodian's receipt is not an access receipt")
        return DecryptAnswer(
            integer(m["custodian"], "custodian", 1, 255),
            ShareResponse.decode(b64d(m["response"], "share response")),
            entry,
            integer(m["receipt_index"], "receipt index", 0, (1 << 63) - 1),
        )

    # -- the operator ---------------------------------------------------------------------

    async def destroy(self, epoch: int, admin_token: str) -> JsonValue:
        return await self._http.json(
            "POST", f"/epochs/{epoch}/destroy", headers=_bearer(admin_token)
        )

    async def veto(self, warrant_id: bytes, admin_token: str) -> JsonValue:
        return await self._http.json(
            "POST", f"/warrants/{b64e(warrant_id)}/veto", headers=_bearer(admin_token)
        )

    async def add_revocation(self, revocation: bytes) -> JsonValue:
        return await self._http.json("POST", "/revocations", content=revocation)


# ----------------------------------------------------------------------------- the provider


@dataclass(frozen=True, slots=True)
class ServedWarrant:
    warrant_id: bytes
    index: int
    token: str


INTERCEPT_KINDS: Final = ("envelope", "group")
"""The kinds of intercept the provider serves: a one-to-one envelope, or one group message."""

_INTERCEPT_MEMBERS: Final = {"envelope", "id", "mail_id", "recipient", "sender", "server_time"}


@dataclass(frozen=True, slots=True)
class InterceptedEnvelope:
    """One envelope or group message copied under a warrant, as the provider serves it.

    ``kind`` is ``"envelope"`` or ``"group"``; a group message comes with ``membership``, the
    signed membership update of the view it names (the custodians check its member list).
    A line of an older ``intercepts.jsonl`` without ``kind`` is an envelope."""

    id: int
    mail_id: int
    server_time: int
    sender: str
    recipient: str
    envelope: bytes
    kind: str = "envelope"
    membership: bytes | None = None

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "envelope": b64e(self.envelope),
            "id": self.id,
            "kind": self.kind,
            "mail_id": self.mail_id,
            "membership": None if self.membership is None else b64e(self.membership),
            "recipient": self.recipient,
            "sender": self.sender,
            "server_time": self.server_time,
        }

    @classmethod
    def from_json(cls, value: JsonValue) -> Self:
        names = _INTERCEPT_MEMBERS
        if isinstance(value, dict) and "kind" in value:
            names = names | {"kind", "membership"}
        m = members(value, "intercept", names)
        sender, recipient = m["sender"], m["recipient"]
        if not isinstance(sender, str) or not isinstance(recipient, str):
            raise DecodeError("an intercept's sender and recipient are address strings")
        kind, membership = m.get("kind", "envelope"), m.get("membership")
        if kind not in INTERCEPT_KINDS:
            raise DecodeError(f"an intercept's kind is one of {', '.join(INTERCEPT_KINDS)}")
        assert isinstance(kind, str)
        if (kind == "group") != (membership is not None):
            raise DecodeError("a group intercept, and only one, carries its membership update")
        big = (1 << 63) - 1
        return cls(
            integer(m["id"], "intercept id", 1, big),
            integer(m["mail_id"], "mail id", 0, big),
            integer(m["server_time"], "server time", 0, big),
            sender,
            recipient,
            b64d(m["envelope"], "envelope"),
            kind,
            None if membership is None else b64d(membership, "membership update"),
        )


@dataclass(frozen=True, slots=True)
class EpochInfo:
    epoch: int
    index: int
    public_key: bytes
    transcript: bytes


class ProviderClient(_Client):
    """The provider's public and lawful-access endpoints. Use ``async with`` or :meth:`aclose`."""

    _PARTY: ClassVar[str] = "the provider"

    # -- the public log -------------------------------------------------------------------

    async def manifest(self) -> bytes:
        """The signed manifest in force (verify it yourself)."""
        doc = await self._http.json("GET", "/v1/manifest")
        return b64d(members(doc, "manifest answer", {"index", "manifest"})["manifest"], "manifest")

    async def checkpoint(self) -> Note:
        """The latest published (quorum-cosigned) checkpoint note (verify it yourself)."""
        status, data = await self._http.request("GET", "/v1/log/checkpoint")
        if status != 200:
            raise self._http.error(status, data)
        return Note.from_bytes(data)

    async def inclusion(self, index: int, size: int) -> list[bytes]:
        doc = await self._http.json(
            "GET", "/v1/log/inclusion", params={"index": index, "size": size}
        )
        proof = items(members(doc, "inclusion answer", {"proof"})["proof"], "proof", 64)
        return [b64d(h, "proof hash", 32) for h in proof]

    async def entries(self, start: int, end: int) -> list[bytes]:
        doc = await self._http.json("GET", "/v1/log/entries", params={"start": start, "end": end})
        found = items(members(doc, "entries answer", {"entries"})["entries"], "entries", 1000)
        return [b64d(e, "entry") for e in found]

    async def proof_bundle(self, index: int) -> ProofBundle | None:
        """A tlog-proof of entry ``index`` under the published checkpoint, or None if the
        published checkpoint does not cover it yet."""
        note = await self.checkpoint()
        size = Checkpoint.from_text(note.text).size
        if index >= size:
            return None
        proof = await self.inclusion(index, size)
        return ProofBundle(index, tuple(proof), note)

    async def wait_for_proof(self, index: int, timeout: float) -> ProofBundle:
        """:meth:`proof_bundle`, polled until a published checkpoint covers ``index``."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                bundle = await self.proof_bundle(index)
            except PartyRejected as e:
                if e.status != 404:
                    raise
                bundle = None  # nothing published yet
            if bundle is not None:
                return bundle
            if time.monotonic() > deadline:
                raise PartyUnavailable(
                    f"no published checkpoint covers log entry {index} after {timeout:.0f} s: "
                    "are the witnesses up? try again later"
                )
            await asyncio.sleep(PROOF_POLL_SECONDS)

    async def account(self, account: bytes) -> tuple[bytes, bytes]:
        """An account's identity key and signed device list (``GET /v1/accounts/{id}``)."""
        doc = await self._http.json("GET", f"/v1/accounts/{b64e(account)}")
        if not isinstance(doc, dict):
            raise DecodeError("the account answer is not an object")
        return b64d(doc.get("identity_key"), "identity key"), b64d(
            doc.get("signed_device_list"), "signed device list"
        )

    # -- lawful access --------------------------------------------------------------------

    async def serve_warrant(self, warrant: bytes) -> ServedWarrant:
        if len(warrant) > MAX_WARRANT_BYTES:
            raise LocalError("the warrant file is larger than any warrant")
        doc = await self._http.json(
            "POST",
            "/v1/warrants",
            content=warrant,
            headers={"content-type": "application/json"},
            ok=(201,),
        )
        m = members(doc, "served warrant", {"index", "token", "warrant_id"})
        token = m["token"]
        if not isinstance(token, str):
            raise DecodeError("the access token is not a string")
        return ServedWarrant(
            b64d(m["warrant_id"], "warrant id", 32), integer(m["index"], "index", 0, 1 << 62), token
        )

    async def intercepts(
        self, warrant_id: bytes, token: str, after: int, limit: int
    ) -> tuple[list[InterceptedEnvelope], bool]:
        doc = await self._http.json(
            "GET",
            f"/v1/warrants/{b64e(warrant_id)}/intercepts",
            params={"after": after, "limit": limit},
            headers=_bearer(token),
        )
        m = members(doc, "intercepts answer", {"intercepts", "more", "total"})
        more = m["more"]
        found = [
            InterceptedEnvelope.from_json(v) for v in items(m["intercepts"], "intercepts", 1000)
        ]
        return found, more is True

    async def revoke(self, warrant_id: bytes, revocation: bytes) -> JsonValue:
        return await self._http.json(
            "POST",
            f"/v1/warrants/{b64e(warrant_id)}/revoke",
            content=revocation,
            headers={"content-type": "application/json"},
        )

    async def revocation(self, warrant_id: bytes) -> bytes | None:
        """The signed revocation of the warrant the provider holds, or None."""
        status, data = await self._http.request(
            "GET", f"/v1/warrants/{b64e(warrant_id)}/revocation"
        )
        if status == 404:
            return None
        if status != 200:
            raise self._http.error(status, data)
        return data

    async def post_receipt(self, receipt: AccessReceipt, signature: bytes) -> int:
        """Log a custodian-signed receipt; its log index."""
        doc = await self._http.json(
            "POST",
            "/v1/log/receipts",
            json_body={"receipt": b64e(encode_entry(receipt)), "signature": b64e(signature)},
            ok=(201,),
        )
        return integer(members(doc, "receipt answer", {"index"})["index"], "index", 0, 1 << 62)

    async def publish_epoch(self, publication: EpochPublication) -> EpochInfo:
        doc = await self._http.json(
            "POST", "/v1/epochs", json_body=publication.to_json(), ok=(201,)
        )
        return _epoch_info(doc)

    async def epoch(self, epoch: int) -> EpochInfo:
        return _epoch_info(await self._http.json("GET", f"/v1/epochs/{epoch}"))

    async def epochs(self) -> list[EpochInfo]:
        doc = await self._http.json("GET", "/v1/epochs")
        found = items(members(doc, "epochs answer", {"epochs"})["epochs"], "epochs", 1000)
        return [_epoch_info(e) for e in found]


def _epoch_info(doc: JsonValue) -> EpochInfo:
    m = members(
        doc,
        "epoch",
        {
            "confirmations",
            "epoch",
            "index",
            "not_before",
            "public_key",
            "retain_until",
            "transcript",
        },
    )
    return EpochInfo(
        integer(m["epoch"], "epoch", 0, 0xFFFF_FFFF),
        integer(m["index"], "index", 0, 1 << 62),
        b64d(m["public_key"], "public key", 32),
        b64d(m["transcript"], "transcript"),
    )


# ----------------------------------------------------------------------------- the DKG driver


@dataclass(frozen=True, slots=True)
class DkgResult:
    epoch: int
    index: int
    """The log index of the epoch's ``EpochKey`` entry."""
    public_key: bytes
    transcript: DkgTranscript
    seconds: float


async def run_dkg(
    epoch: int,
    custodian_urls: Sequence[str],
    provider_url: str,
    *,
    attempt: int = 0,
    progress: ProgressFn | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> DkgResult:
    """Drive the DKG of ``epoch`` among the custodians at ``custodian_urls`` (every custodian
    of the manifest, any order) and publish it to the provider.

    The driver is a relay: it passes each custodian the others' signed broadcast messages and
    the shares sealed to it, and learns nothing secret. Raises :class:`PartyError` if a
    custodian or the provider refuses or fails (start again with ``attempt + 1``), and
    :class:`~overt.errors.ProtocolViolation` if the custodians end with different transcripts.
    """
    say = progress or (lambda _: None)
    started = time.monotonic()
    clients = [CustodianClient(u, transport=transport) for u in custodian_urls]
    try:
        identities = await asyncio.gather(*(c.identity() for c in clients))
        by_index = dict(zip([i.index for i in identities], clients, strict=True))
        if sorted(by_index) != list(range(1, len(clients) + 1)):
            raise LocalError(
                "the custodian URLs must name each custodian of the manifest exactly once; "
                f"they name indices {sorted(i.index for i in identities)}"
            )
        ordered = sorted(identities, key=lambda i: i.index)
        n = len(ordered)
        say(f"DKG for epoch {epoch} among {n} custodians (attempt {attempt})")
        r1 = await asyncio.gather(*(by_index[j].round1(epoch, attempt, ordered) for j in by_index))
        commitments = {j: out[0] for j, out in zip(by_index, r1, strict=True)}
        shares = [s for _, sent in r1 for s in sent]
        say("round 1: commitments and sealed shares dealt")

        def others(messages: dict[int, SignedMessage], j: int) -> list[SignedMessage]:
            return [m for i, m in sorted(messages.items()) if i != j]

        def shares_for(j: int) -> list[SignedMessage]:
            return [s for s in shares if s.body[:1] == bytes((j,))]

        r2 = await asyncio.gather(
            *(c.round2(epoch, others(commitments, j), shares_for(j)) for j, c in by_index.items())
        )
        complaints = dict(zip(by_index, r2, strict=True))
        accusers = sum(bool(Complaints.decode(m.body).dealers) for m in complaints.values())
        say(f"round 2: shares checked ({accusers} custodian(s) complained)")
        r3 = await asyncio.gather(
            *(c.round3(epoch, others(complaints, j)) for j, c in by_index.items())
        )
        answers = {j: a for j, a in zip(by_index, r3, strict=True) if a is not None}
        say(f"round 3: {len(answers)} complaint answer(s)")
        r4 = await asyncio.gather(
            *(c.finalize(epoch, others(answers, j)) for j, c in by_index.items())
        )
        transcripts = {t for t, _ in r4}
        if len(transcripts) != 1:
            raise ProtocolViolation("the custodians finalized different transcripts")
        (transcript_bytes,) = transcripts
        publication = EpochPublication(
            epoch,
            attempt,
            tuple(m for _, m in sorted(commitments.items())),
            tuple(m for _, m in sorted(complaints.items())),
            tuple(m for _, m in sorted(answers.items())),
            tuple(c for _, c in sorted(zip(by_index, (c for _, c in r4), strict=True))),
        )
        say("finalized: every custodian holds a share; publishing the epoch key")
        async with ProviderClient(provider_url, transport=transport) as provider:
            info = await provider.publish_epoch(publication)
        transcript = DkgTranscript.decode(transcript_bytes)
        say(f"epoch {epoch} key logged at index {info.index}")
        return DkgResult(epoch, info.index, info.public_key, transcript, time.monotonic() - started)
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))


__all__ = [
    "DEFAULT_TIMEOUT_SECONDS",
    "CustodianClient",
    "CustodianRefused",
    "DecryptAnswer",
    "DkgResult",
    "EpochInfo",
    "InterceptedEnvelope",
    "PartyError",
    "PartyRejected",
    "PartyUnavailable",
    "ProviderClient",
    "ServedWarrant",
    "run_dkg",
]
