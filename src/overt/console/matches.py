"""Known-content match items in the moderation console: what a moderator sees of one, and the
CyberTipline escalation built from it.

A match item is a queue *signal* labelled :data:`~overt.safety.matching.deployment.MATCH_RULE`
that the relay filed once an account crossed the matching threshold and the image's full PDQ
hash passed the re-check (docs/matching.md). Its detail names the subject and image; the image's
revealed payload (:class:`~overt.safety.matching.payload.MatchPayload`) is kept by the
:class:`~overt.storage.matching.MatchingStore`. What a moderator sees is only that payload: the
client-made 64×64 grayscale visual derivative, the PDQ hash and its distance to the listed hash
— never the image itself, which the provider never receives. The second human look is what
stands between a hash match (which can be engineered) and a report to the authorities.

Escalating builds an :class:`~overt.safety.cybertip.Escalation` whose one file is that
derivative (as PNG) and whose text says how the provider came to hold it.

This module knows no HTTP and no HTML.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field

from overt.crypto import sha256
from overt.errors import DecodeError
from overt.safety.cybertip import (
    AccountRef,
    Escalation,
    EvidenceFile,
    IncidentType,
    ProviderProfile,
)
from overt.safety.matching.deployment import MATCH_RULE
from overt.safety.matching.payload import MatchPayload
from overt.safety.matching.pdq import DERIVATIVE_SIDE
from overt.storage.matching import MatchingStore
from overt.storage.moderation import ItemKind, QueueItem
from overt.wire.b64 import b64d


def is_match(item: QueueItem) -> bool:
    return item.kind is ItemKind.SIGNAL and item.label == MATCH_RULE


@dataclass(frozen=True, slots=True)
class MatchEvidence:
    """The revealed payload of one match item."""

    image_id: bytes
    device: int
    distance: int
    list_version: int
    payload: MatchPayload = field(repr=False)
    raw: bytes = field(repr=False)

    def derivative_png(self) -> bytes:
        """The visual derivative as a PNG (64×64, grayscale)."""
        from PIL import Image  # noqa: PLC0415 - heavy, only on use

        img = Image.frombytes("L", (DERIVATIVE_SIDE, DERIVATIVE_SIDE), self.payload.derivative)
        out = io.BytesIO()
        img.save(out, format="PNG")
        return out.getvalue()


async def match_evidence(store: MatchingStore | None, item: QueueItem) -> MatchEvidence | None:
    """The item's revealed payload, or ``None`` (not a match item, or no longer held)."""
    if store is None or not is_match(item):
        return None
    try:
        detail = json.loads(item.detail)
        subject = b64d(detail["subject"], "subject")
        image_id = b64d(detail["image"], "image")
        device, distance = int(detail["device"]), int(detail["distance"])
        version = int(detail["list_version"])
    except (ValueError, KeyError, TypeError, DecodeError):
        return None
    for record in await store.opened(subject):
        if record.image_id == image_id and record.revealed is not None:
            try:
                payload = MatchPayload.decode(record.revealed)
            except DecodeError:
                return None
            return MatchEvidence(image_id, device, distance, version, payload, record.revealed)
    return None


def match_escalation(
    item: QueueItem,
    evidence: MatchEvidence,
    *,
    escalation_id: str,
    provider: ProviderProfile,
    incident_type: IncidentType,
    moderator_notes: str,
    high_priority_reason: str | None,
    screen_name: str,
) -> Escalation:
    """The CyberTipline report of a match item a lead decided to escalate."""
    png = evidence.derivative_png()
    p = evidence.payload
    how = (
        f"{provider.service_name} is end-to-end encrypted. This account's client hashed an "
        "image it sent (PDQ) and attached private-matching vouchers; the provider could open "
        "the image's payload only because the account sent at least the deployment's threshold "
        "of images matching a hash list signed by independent child-safety organisations and "
        "published in a transparency log. The provider never received the image: only this "
        f"64x64 grayscale visual derivative and its PDQ hash {p.pdq.hex()} (quality "
        f"{p.quality}, original {p.width}x{p.height}), {evidence.distance} bits from a listed "
        f"hash of list version {evidence.list_version}. A moderator looked at the derivative "
        f"before this report. Payload SHA-256 {sha256(evidence.raw).hex()}."
    )
    file = EvidenceFile(
        content=png,
        sha256=sha256(png),
        ciphertext_sha256=sha256(evidence.raw),
        original_file_name=f"visual-derivative-{evidence.image_id.hex()}.png",
        content_type="image/png",
        server_id=item.id,
        server_time_ms=item.created_ms,
        info=how,
    )
    return Escalation(
        escalation_id=escalation_id,
        incident_type=incident_type,
        incident_ms=item.created_ms,
        provider=provider,
        reported=AccountRef(
            item.subject_account, screen_name=screen_name, devices=(evidence.device,)
        ),
        recipient=None,
        messages=(),
        files=(file,),
        moderator_notes=moderator_notes,
        evidence_sha256=sha256(evidence.raw),
        high_priority_reason=high_priority_reason,
        verification=how,
    )


__all__ = ["MatchEvidence", "is_match", "match_escalation", "match_evidence"]
