"""An in-process deployment with access policy ``escrow`` for the client tests: the real relay
(:func:`overt.server.create_app` over in-memory storage) with a manifest naming five
custodians (threshold 3) and a court, no witnesses. Epoch keys are made by five in-process
DKG participants signing as the custodians and published through the provider's own
:meth:`~overt.server.lawful.LawfulAccess.publish_epoch` (or, for a provider that misbehaves,
made up by the provider alone and logged behind the custodians' backs:
:meth:`EscrowWorld.log_made_up_epoch`); warrants come from the court tool,
are served, counted by custodian-signed receipts and unsealed by the provider's service,
with the shared fake clock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from custodian_kit import CUSTODIANS, custodian_entries, signed_publication
from overt.access.dkg import (
    ComplaintAnswer,
    Complaints,
    DealerCommitment,
    DkgParameters,
    session_id,
    transcript_from_messages,
)
from overt.access.epoch import (
    CONFIRMATION_KIND,
    Confirmation,
    encode_confirmations,
    message_signed_part,
)
from overt.access.warrant import Warrant
from overt.client import Client
from overt.crypto import DeterministicRng, Ed25519PrivateKey, Point, sha256
from overt.protocol import EscrowPolicy
from overt.server.config import TransparencyConfig, TransparencyKeys
from overt.server.deployment import Deployment
from overt.services import court as court_tool
from overt.services.custodian_wire import (
    EpochPublication,
    confirmations_of,
    epoch_at,
    epoch_span,
    sign_receipt,
)
from overt.storage.interfaces import EpochRecord
from overt.transparency.entries import AccessReceipt, EpochKey
from overt.transparency.manifest import EscrowAccess

from .support import World, running, server_config

DAY = 86_400
DEPLOYMENT = "escrow.test"
COURT = court_tool.Court("District Court", Ed25519PrivateKey.generate(DeterministicRng("court")))
ESCROW = EscrowAccess(
    custodians=custodian_entries(),
    threshold=3,
    court_keys=(COURT.named_key,),
    epoch_length_days=30,
    retention_days=30,
    max_seal_days=30,
)
#: Keys the provider holds, not the custodians' (a provider signing as if it were them).
PROVIDER_KEYS = tuple(
    Ed25519PrivateKey.generate(DeterministicRng(f"provider as custodian {i}")) for i in range(1, 6)
)


@dataclass
class EscrowWorld(World):
    """A :class:`World` whose deployment sets access policy ``escrow``."""

    @property
    def lawful(self) -> Any:
        return self.app.state.lawful  # type: ignore[attr-defined]

    async def client_with_policy(self, profile: str, policy: EscrowPolicy) -> Client:
        """The profile opened again with ``policy`` as an explicit override (the way a test
        plays a sender that escrows to another key)."""
        c = await Client.open(
            self.tmp / profile, self.transport, clock=self.clock,
            rng=DeterministicRng(f"client {profile} with {policy.epoch}"), policy=policy,
        )  # fmt: skip
        self.clients.append(c)
        return c

    def now_s(self) -> int:
        return self.clock.now_ms() // 1000

    def epoch_now(self) -> int:
        return epoch_at(self.now_s(), ESCROW)

    async def publish_epoch(self, epoch: int | None = None, attempt: int = 0) -> EscrowPolicy:
        """Run the DKG among five in-process participants and have the provider log it."""
        epoch = self.epoch_now() if epoch is None else epoch
        publication, key = dkg(epoch, attempt)
        await self.lawful.publish_epoch(publication)
        return EscrowPolicy(epoch, key)

    async def serve(self, targets: list[bytes], *, seal_days: int = 7) -> Warrant:
        """A warrant on ``targets`` approved now (window: the next three days), served."""
        now = self.now_s()
        start = now - now % DAY + DAY
        warrant = court_tool.make_warrant(
            COURT, targets=targets, start=start, end=start + 3 * DAY, seal_days=seal_days,
            cap=100, reference="AUTH-1", legal_basis="s.15", judge_reference="J. Doe",
            now=now, rng=DeterministicRng(f"warrant {targets!r} {now}"),
        )  # fmt: skip
        await self.lawful.serve(court_tool.sign_warrant_file(COURT, warrant))
        return warrant

    async def receipt(self, warrant: Warrant, custodian: int, count: int) -> int:
        """Custodian ``custodian`` (1-based) logs a receipt for ``count`` messages."""
        key = CUSTODIANS[custodian - 1]
        entry = AccessReceipt(warrant.warrant_id, key.public_key.raw, count, sha256(b"ctx"))
        index: int = await self.lawful.log_receipt(entry.encode(), sign_receipt(entry, key))
        return index

    async def log_made_up_epoch(self, epoch: int, confirmations: str) -> EscrowPolicy:
        """A provider that misbehaves: it runs the DKG of ``epoch`` alone (every participant
        is its own, so it knows the key's secret) for the custodians' very session (attempt
        0), logs the ``EpochKey`` of that transcript and keeps it with ``confirmations``:
        ``"none"`` (none at all), ``"custodians"`` (the real custodians' confirmations of an
        honest run of the same session: of another transcript) or ``"own"`` (its own keys'
        confirmations of the made-up transcript)."""
        keys = [k.public_key.raw for k in CUSTODIANS]
        params = DkgParameters(session_id(DEPLOYMENT, epoch, 0, keys), epoch, 5, 3)
        made_up, transcript = signed_publication(
            params, PROVIDER_KEYS, lambda i: f"provider alone {i} {epoch}"
        )
        encoded = transcript.encode()
        kept = {
            "none": None,
            "custodians": encode_confirmations(confirmations_of(dkg(epoch)[0])),
            "own": encode_confirmations(confirmations_of(made_up)),
        }[confirmations]
        key = transcript.public_key()
        entry = EpochKey(epoch, key.raw, sha256(encoded), *epoch_span(epoch, ESCROW))
        index = await self.append(entry)
        await self.lawful._epochs.add(EpochRecord(epoch, index, encoded, kept))
        return EscrowPolicy(epoch, key)

    async def append(self, entry: Any) -> int:
        """Append any entry to the provider's log (a provider that misbehaves)."""
        (index,) = await self.app.state.log.append([entry])  # type: ignore[attr-defined]
        return int(index)


def dkg(epoch: int, attempt: int = 0) -> tuple[EpochPublication, Point]:
    """Five in-process participants run the DKG of ``epoch``; every message signed as its
    custodian (what ``overt custodian dkg`` sends the provider)."""
    keys = [k.public_key.raw for k in CUSTODIANS]
    params = DkgParameters(session_id(DEPLOYMENT, epoch, attempt, keys), epoch, 5, 3)
    publication, transcript = signed_publication(
        params, CUSTODIANS, lambda i: f"dkg{i} {epoch} {attempt}", attempt=attempt
    )
    return publication, transcript.public_key()


def confirmation(
    key: Ed25519PrivateKey, session: bytes, custodian: int, digest: bytes
) -> Confirmation:
    """A confirmation of ``digest`` for ``session`` signed with ``key`` as ``custodian``."""
    signed = message_signed_part(session, CONFIRMATION_KIND, custodian, digest)
    return Confirmation(custodian, digest, key.sign(signed))


def transcript_of(publication: EpochPublication) -> bytes:
    """The transcript a publication's messages give (as the provider recomputes it)."""
    keys = [c.key.raw for c in ESCROW.custodians]
    params = DkgParameters(
        session_id(DEPLOYMENT, publication.epoch, publication.attempt, keys), publication.epoch,
        5, 3,
    )  # fmt: skip
    return transcript_from_messages(
        params,
        {m.sender: DealerCommitment.decode(m.body) for m in publication.commitments},
        {m.sender: Complaints.decode(m.body) for m in publication.complaints},
        {m.sender: ComplaintAnswer.decode(m.body) for m in publication.answers},
    ).encode()


@pytest.fixture
async def escrow_world(tmp_path: Path) -> AsyncIterator[EscrowWorld]:
    keys = TransparencyKeys.generate(DeterministicRng("transparency"))
    config = server_config(
        transparency=TransparencyConfig(keys, Deployment(DEPLOYMENT, access=ESCROW))
    )
    async with running(tmp_path, config, make=EscrowWorld) as (w, _):
        yield w
