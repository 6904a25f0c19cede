"""``make demo``: known-content matching crossing its threshold, in plain words.

A relay server in its own process whose manifest turns matching on (threshold 3, a list signed
by two of three organisations); the operator prepares a list version, two organisations check
it against the list they vetted and sign it, the operator logs and serves it; a client verifies
the table against the logged commitment and sends images: unrelated ones, then near-duplicates
(recompressed, resized, brightened) of listed images. Below the threshold the server can open
nothing; at the threshold exactly the matching images' payloads open, pass the re-check and
reach the moderation queue, where a lead looks at the visual derivative and escalates to a
local CyberTipline stand-in. Nothing leaves the machine.

Images are generated here (smooth colour noise with discs; PDQ quality 100); the list is
their PDQ hashes. This module is a demo: it prints.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
from PIL import Image, ImageDraw

from overt import launch
from overt.client import Client, HttpTransport
from overt.console.service import ConsoleService, EscalationSettings, Moderator, Role
from overt.crypto import Ed25519PrivateKey, SystemRng
from overt.safety.cybertip import (
    ContactPerson,
    CyberTipCredentials,
    IncidentType,
    ProviderProfile,
    validate_xml,
)
from overt.safety.cybertip_standin import CyberTipStandin
from overt.safety.matching import HashList, hash_rgb
from overt.safety.matching.deployment import MATCH_RULE, psi_params
from overt.safety.matching.package import assemble, check_and_sign, prepare
from overt.safety.submission import DirectorySubmissionStore
from overt.server.config import load_or_create_transparency_keys
from overt.server.deployment import Deployment, encode_deployment
from overt.server.matching import load_or_create_matching_key, publish_version
from overt.storage import open_sqlite
from overt.transparency.log import Log
from overt.transparency.manifest import MatchingParameters, MatchingPolicy, NamedKey, SafetyPolicy

THRESHOLD = 3
LISTED = 4


def _clock() -> int:
    return time.time_ns() // 1_000_000


def picture(index: int, side: int = 384) -> np.ndarray:
    """A deterministic photo-like image: smooth colour noise with a few discs on it."""
    rng = np.random.default_rng([7, index])
    channels = []
    for _ in range(3):
        small = Image.fromarray((rng.random((16, 16)) * 255).astype(np.uint8), "L")
        channels.append(np.asarray(small.resize((side, side), Image.Resampling.BICUBIC)))
    img = Image.fromarray(np.stack(channels, axis=2).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(6):
        x, y = (int(v) for v in rng.integers(0, side, 2))
        r = int(rng.integers(20, 90))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)
    return np.asarray(img)


def near_duplicate(rgb: np.ndarray) -> bytes:
    """Recompressed (JPEG 70), resized to 60 % and brightened by 15 %: a typical re-share."""
    img = Image.fromarray(rgb)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=70)
    img = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    img = img.resize((int(img.width * 0.6), int(img.height * 0.6)), Image.Resampling.BILINEAR)
    arr = np.clip(np.asarray(img, dtype=np.float32) * 1.15, 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(arr).save(out, format="JPEG", quality=85)
    return out.getvalue()


def png(rgb: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, format="PNG")
    return out.getvalue()


async def matching_walkthrough(work: Path, say: Callable[[str], None] = print) -> None:
    say("\n== Known-content matching: a list nobody can target, a threshold, a human look ==")
    rng = SystemRng()
    data = work / "matching-server"
    data.mkdir(mode=0o700, exist_ok=True)
    orgs = [
        (name, Ed25519PrivateKey.generate(rng)) for name in ("Hotline A", "Hotline B", "Hotline C")
    ]
    policy = MatchingPolicy(
        True,
        THRESHOLD,
        tuple(NamedKey(n, k.public_key) for n, k in orgs),
        2,
        MatchingParameters(),
    )
    (data / "deployment.json").write_bytes(
        encode_deployment(Deployment(safety=SafetyPolicy(matching=policy)))
    )
    with launch.server(data) as srv:
        say(
            f"a relay server runs at {srv.url}; its signed manifest turns matching on: threshold "
            f"{THRESHOLD}, lists signed by 2 of 3 organisations"
        )

        # ---------------------------------------------------------------- the list
        hashes = HashList.of([hash_rgb(picture(i)).hash for i in range(LISTED)])
        key = load_or_create_matching_key(data, rng)
        package = prepare(
            hashes, key, rng, list_id=rng.random_bytes(32), lsh=psi_params(policy).lsh
        )
        say(
            f"the operator blinded a list of {len(hashes)} PDQ hashes into a "
            f"{package.table.nbytes()}-byte table"
        )
        signatures = [
            check_and_sign(
                hashes=hashes,
                table=package.table,
                opening=package.opening,
                statement=package.statement,
                key=k,
                name=n,
            )
            for n, k in orgs[:2]
        ]
        say(
            "Hotline A and Hotline B each recomputed every key from the list they vetted, "
            "checked the table's DLEQ proofs, and signed its commitment"
        )
        entry = assemble(package.statement, signatures)
        keys, _ = load_or_create_transparency_keys(data, rng, create=False)
        storage = await open_sqlite(data / "server.db")
        try:
            assert storage.matching is not None
            log = Log(storage.log, keys.log, keys.origin, _clock)
            index = await publish_version(
                store=storage.matching,
                log=log,
                policy=policy,
                package=package,
                entry=entry,
                now_ms=_clock(),
            )
        finally:
            await storage.close()
        say(
            f"the commitment is now entry {index} of the transparency log (type 8): every "
            "client can check it is matched against the same list as everyone else"
        )

        # ---------------------------------------------------------------- the client
        transport = HttpTransport(srv.url)
        mallory = await Client.open(work / "mallory-phone", transport)
        friend = await Client.open(work / "friend-phone", transport)
        try:
            await mallory.create_account("mallory")
            await friend.create_account("friend")
            status = await mallory.refresh_matching()
            say(
                f"mallory's client verified the table against the logged, signed commitment: "
                f"{status.describe()}"
            )
            for i in range(2):
                await mallory.send_attachment(
                    "friend", png(picture(100 + i)), content_type="image/png"
                )
            say(
                "mallory sends two holiday photos: each goes with a bundle of 64 vouchers; "
                "none opens, and the server cannot tell"
            )
            # A bundle is synthetic with probability 1/256 (its real vouchers are replaced):
            # keep sending copies until the threshold is really crossed.
            queued: list[int] = []
            sent = 0
            while not queued and sent < THRESHOLD + LISTED:
                await mallory.send_attachment(
                    "friend", near_duplicate(picture(sent % LISTED)), content_type="image/jpeg"
                )
                sent += 1
                queued = await _queue(data)
                say(
                    f"mallory sends a re-compressed, resized, brightened copy of listed image "
                    f"{(sent - 1) % LISTED}: {len(queued)} item(s) in the moderation queue"
                )
            say(
                f"at the threshold ({THRESHOLD}) the server recovered the account's secret, "
                "opened exactly those images' payloads, re-checked each PDQ hash (distance "
                "≤ 31) and queued them"
            )
            await _escalate(data, work, say)
        finally:
            for c in (mallory, friend):
                await c.close()
            await transport.aclose()


async def _queue(data: Path) -> list[int]:
    storage = await open_sqlite(data / "server.db")
    try:
        assert storage.reports is not None
        from overt.storage.moderation import ItemState  # noqa: PLC0415

        items = await storage.reports.queue({ItemState.OPEN}, 100)
        return [i.id for i in items if i.label == MATCH_RULE]
    finally:
        await storage.close()


async def _escalate(data: Path, work: Path, say: Callable[[str], None]) -> None:
    storage = await open_sqlite(data / "server.db")
    standin = CyberTipStandin(username="overt-demo", password="demo only")  # noqa: S106
    try:
        rng = SystemRng()
        console = ConsoleService(
            franking_key=(data / "franking.key").read_bytes(),
            reports=storage.reports,
            standing=storage.standing,
            moderators=storage.moderators,
            matching=storage.matching,
            escalation=EscalationSettings(
                base_url="http://cybertip.invalid/ispws",
                credentials=CyberTipCredentials("overt-demo", "demo only"),
                provider=ProviderProfile(
                    ContactPerson("safety@overt.invalid", "Demo", "Team"),
                    service_name="Overt (demo)",
                ),
                submissions=DirectorySubmissionStore(work / "matching-cybertip"),
                transport=httpx.ASGITransport(app=standin.app),
            ),
            clock=_clock,
            rng=rng,
        )
        lead = Moderator("demo-lead", Role.LEAD)
        queue = [i for i in await console.queue() if i.label == MATCH_RULE]
        view = await console.view(lead, queue[0].id)
        assert view.match is not None
        say(
            f"a lead opens item #{queue[0].id}: a 64×64 grayscale derivative made by mallory's "
            f"client, PDQ distance {view.match.distance} from a listed hash, not the image"
        )
        state = await console.escalate(
            lead,
            queue[0].id,
            incident_type=IncidentType.CHILD_PORNOGRAPHY,
            notes="The derivative shows a listed image (demo).",
        )
        assert state.report_id is not None
        validate_xml(standin.reports[state.report_id].document, "report", "the report")
        say(
            f"the lead escalated it: the CyberTipline stand-in accepted report "
            f"{state.report_id} with the derivative attached; the view and the escalation are "
            "in the audit trail"
        )
    finally:
        await storage.close()


__all__ = ["matching_walkthrough", "near_duplicate", "picture"]
