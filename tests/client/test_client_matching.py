"""The client's side of known-content matching, against the real relay in process: it verifies
the served table against the logged, signed commitment before it scans; it refuses — and
does not scan, and says why — a table that is not the committed one or a list signed by too
few organisations; it queues a bundle it cannot upload and sends it later; and matching off
means nothing is hashed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from overt.client import Client, LinkApproval, ServerUnreachable
from overt.client.matching import MatchingState
from overt.client.transport import Transport
from overt.crypto import DeterministicRng
from overt.errors import DecodeError, ProtocolViolation
from overt.safety.matching import ProviderKey, RefusalReason
from overt.server.config import TransparencyConfig, TransparencyKeys
from overt.server.deployment import Deployment
from overt.server.matching import publish_version
from overt.storage import Storage
from overt.storage.matching import ListVersion
from overt.storage.moderation import ItemState
from safety import matching_kit as kit

from .support import Call, Checkpointing, Interposer, World, running, server_config

BUNDLES = "/v1/matching/bundles"


class Counting(Interposer):
    """Counts bundle uploads (``log`` keeps every request); ``down`` makes uploads fail as if
    the server were unreachable."""

    def __init__(self, inner: Transport, app: object) -> None:
        super().__init__(Checkpointing(inner, app))
        self.bundles = 0
        self.down = False
        self.hooks.append(self._count)

    async def _count(self, call: Call) -> None:
        if call.target == BUNDLES:
            if self.down:
                raise ServerUnreachable("the test cut the line")
            self.bundles += 1

    @property
    def targets(self) -> list[str]:
        return [target for _, target in self.log]


@dataclass
class MatchWorld:
    world: World
    storage: Storage
    key: ProviderKey
    orgs: kit.Orgs
    transport: Counting

    async def publish(self, signers: int = 2) -> kit.ListPackage:
        package, entry = kit.signed_version(self.orgs, self.key, signers=signers)
        assert self.storage.matching is not None
        log = self.world.app.state.log  # type: ignore[attr-defined]
        if signers >= 2:
            await publish_version(
                store=self.storage.matching, log=log, policy=self.orgs.policy(),
                package=package, entry=entry, now_ms=1,
            )  # fmt: skip
            return package
        # A provider that skips its own check: logs and serves a list too few signed.
        (index,) = await log.append_batch([entry])
        await self.storage.matching.publish(
            ListVersion(1, entry.table_commitment, package.table.encode(), b"", index, 1)
        )
        return package


@pytest.fixture
async def mworld(tmp_path: Path) -> AsyncIterator[MatchWorld]:
    rng = DeterministicRng("matching server")
    key = ProviderKey.generate(rng)
    orgs = kit.orgs()
    config = server_config(
        transparency=TransparencyConfig(
            TransparencyKeys.generate(rng), Deployment(safety=orgs.safety())
        ),
        matching_key=key.export_secret(),
    )
    async with running(tmp_path, config, rng=rng, wrap=Counting) as (w, storage):
        await w.app.state.publisher.ensure()  # type: ignore[attr-defined]
        assert isinstance(w.transport, Counting)
        yield MatchWorld(w, storage, key, orgs, w.transport)


async def pair(m: MatchWorld) -> tuple[Client, Client]:
    alice = await m.world.user("alice", "alice")
    bob = await m.world.user("bob", "bob")
    return alice, bob


async def opened(m: MatchWorld, client: Client) -> int:
    assert m.storage.matching is not None and client.device_id is not None
    return len(await m.storage.matching.opened(b"alice"))  # the account is the subject


async def test_a_verified_list_is_used_and_images_are_matched(mworld: MatchWorld) -> None:
    await mworld.publish()
    alice, bob = await pair(mworld)
    status = await alice.refresh_matching()
    assert status.state is MatchingState.READY and status.version == 1
    assert status.signed_by == ("Hotline A", "Hotline B")
    assert "list version 1 signed by Hotline A, Hotline B" in status.describe()
    await alice.send_attachment("bob", kit.png(kit.near_duplicate(0)), content_type="image/png")
    await alice.send_attachment("bob", b"not an image", content_type="text/plain")
    assert mworld.transport.bundles == 1  # the text file is not hashed
    assert await opened(mworld, alice) == 1  # below threshold: held, nothing revealed
    assert [m.attachment is not None for m in await bob.sync()] == [True, True]


async def test_a_new_version_arrives_as_a_delta_and_is_verified(mworld: MatchWorld) -> None:
    first = await mworld.publish()
    alice, _ = await pair(mworld)
    assert (await alice.refresh_matching()).version == 1
    package, entry = kit.signed_next(mworld.orgs, mworld.key, first, extra=50)
    assert package.delta is not None
    assert mworld.storage.matching is not None
    await publish_version(
        store=mworld.storage.matching, log=mworld.world.app.state.log,  # type: ignore[attr-defined]
        policy=mworld.orgs.policy(), package=package, entry=entry, now_ms=2,
    )  # fmt: skip
    mworld.transport.log.clear()
    status = await alice.refresh_matching()
    assert status.state is MatchingState.READY and status.version == 2
    assert "/v1/matching/delta/2" in mworld.transport.targets
    assert not any(t.startswith("/v1/matching/table") for t in mworld.transport.targets)
    # The profile keeps the verified table: a client opened again uses it without a download.
    await alice.close()
    mworld.world.clients.remove(alice)
    again = await mworld.world.client("alice")
    assert again.matching_status().version == 2


async def test_too_few_signers_are_refused_and_nothing_is_scanned(mworld: MatchWorld) -> None:
    await mworld.publish(signers=1)
    alice, bob = await pair(mworld)
    status = await alice.refresh_matching()
    assert status.state is MatchingState.REFUSED
    assert status.refusal is RefusalReason.TOO_FEW_SIGNERS
    assert "signed by 1 of the 2 organisations required" in status.describe()
    await alice.send_attachment("bob", kit.png(kit.near_duplicate(0)), content_type="image/png")
    assert mworld.transport.bundles == 0
    assert alice.matching_status().state is MatchingState.REFUSED
    assert len(await bob.sync()) == 1  # the message itself went out


async def test_a_table_that_is_not_the_committed_one_is_refused(mworld: MatchWorld) -> None:
    await mworld.publish()
    # The server now serves another table under the logged version (a targeted list).
    other_key = ProviderKey.generate(DeterministicRng("other"))
    package, _ = kit.signed_version(mworld.orgs, other_key)
    store = mworld.storage.matching
    assert store is not None
    stored = await store.latest()
    assert stored is not None
    store._versions[1] = ListVersion(  # type: ignore[attr-defined]
        1, stored.commitment, package.table.encode(), stored.hashes, stored.log_index, 1
    )
    alice, _ = await pair(mworld)
    status = await alice.refresh_matching()
    assert status.state is MatchingState.REFUSED
    assert status.refusal is RefusalReason.TABLE_MISMATCH
    assert "does not match the commitment in the transparency log" in status.reason
    await alice.send_attachment("bob", kit.png(kit.near_duplicate(0)), content_type="image/png")
    assert mworld.transport.bundles == 0


async def test_a_bundle_that_cannot_be_uploaded_waits_and_goes_later(mworld: MatchWorld) -> None:
    await mworld.publish()
    alice, bob = await pair(mworld)
    mworld.transport.down = True
    await alice.send_attachment("bob", kit.png(kit.near_duplicate(1)), content_type="image/png")
    assert alice.matching_status().queued == 1
    assert await opened(mworld, alice) == 0
    mworld.transport.down = False
    await alice.sync()  # flushes the queue
    assert alice.matching_status().queued == 0
    assert await opened(mworld, alice) == 1
    assert len(await bob.sync()) == 1


async def test_matching_off_hashes_nothing(tmp_path: Path) -> None:
    async with running(tmp_path, wrap=Counting) as (w, _):
        alice = await w.user("alice", "alice")
        await w.user("bob", "bob")
        await alice.send_attachment("bob", kit.png(kit.near_duplicate(0)), content_type="image/png")
        assert isinstance(w.transport, Counting) and w.transport.bundles == 0
        assert (await alice.refresh_matching()).state is MatchingState.OFF
        assert "known-content matching: off" in alice.matching_status().describe()


# ----------------------------------------------------------------------------- one account


async def revealed_devices(m: MatchWorld) -> list[int]:
    """The sending device of each match item in the queue (one item per revealed image)."""
    import json  # noqa: PLC0415

    assert m.storage.reports is not None and m.storage.matching is not None
    items = await m.storage.reports.queue({ItemState.OPEN}, 100)
    held = {r.image_id for r in await m.storage.matching.opened(b"alice") if r.revealed}
    assert len(items) == len(held)  # every revealed image queued once, nothing else
    return sorted(json.loads(i.detail)["device"] for i in items)


async def send_image(client: Client, i: int) -> None:
    await client.send_attachment("bob", kit.png(kit.near_duplicate(i)), content_type="image/png")


@pytest.mark.parametrize("last", [1, 2])
async def test_the_devices_of_an_account_share_one_threshold(mworld: MatchWorld, last: int) -> None:
    """t − 1 matches split across two devices open nothing; the t-th, from either device,
    opens exactly those t images."""
    await mworld.publish()
    alice1, _ = await pair(mworld)
    alice2 = await mworld.world.linked("alice2", alice1)
    devices = {1: alice1, 2: alice2}
    for i in range(kit.THRESHOLD - 1):
        await send_image(devices[1 + i % 2], i)
    assert await opened(mworld, alice1) == kit.THRESHOLD - 1  # one account, one collection
    assert await revealed_devices(mworld) == []  # t − 1 across the account: nothing opens
    assert not alice2.matching_status().own_seed  # the seed came with the approval
    await send_image(devices[last], kit.THRESHOLD - 1)
    expected = sorted([1 + i % 2 for i in range(kit.THRESHOLD - 1)] + [last])
    assert await revealed_devices(mworld) == expected  # exactly those t images


async def test_a_device_linked_before_seeds_were_shared_counts_on_its_own(
    mworld: MatchWorld,
) -> None:
    """A device whose approval carried no seed (linked before this version) draws its own and
    says so; its matches reach a threshold of their own, and the account's other devices
    still reach theirs in the same generation."""
    await mworld.publish()
    alice1, _ = await pair(mworld)
    alice2 = await mworld.world.linked("alice2", alice1)
    # What an approval of version 1 left behind: no seed, no slot.
    alice2._matching._profile.delete("seed", "seed_origin", "slot")  # type: ignore[attr-defined]
    for i in range(kit.THRESHOLD - 1):
        await send_image(alice1, i)
    for i in range(kit.THRESHOLD - 1):
        await send_image(alice2, i)
    status = alice2.matching_status()
    assert status.own_seed and "threshold of their own" in status.describe()
    assert not alice1.matching_status().own_seed
    # 2(t − 1) matches in the account, but t − 1 under each seed: nothing opens.
    assert await opened(mworld, alice1) == 2 * (kit.THRESHOLD - 1)
    assert await revealed_devices(mworld) == []
    await send_image(alice2, kit.THRESHOLD)
    assert await revealed_devices(mworld) == [2] * kit.THRESHOLD
    await send_image(alice1, kit.THRESHOLD)
    assert await revealed_devices(mworld) == [1] * kit.THRESHOLD + [2] * kit.THRESHOLD


async def test_a_garbled_or_old_approval_is_refused_and_changes_nothing(
    mworld: MatchWorld,
) -> None:
    alice1, _ = await pair(mworld)
    alice2 = await mworld.world.client("alice2")
    request = await alice2.request_link("alice")
    approval = await alice1.approve_link(request.encode())
    flipped = bytearray(approval.sealed_secrets)
    flipped[0] ^= 1
    garbled = LinkApproval(
        approval.device, approval.signed_device_list, approval.ephemeral, bytes(flipped)
    )
    with pytest.raises(ProtocolViolation):
        await alice2.finish_link(garbled.encode())
    old = b"\x01" + approval.device.to_bytes(4, "big") + approval.signed_device_list.encode()
    with pytest.raises(DecodeError):
        await alice2.finish_link(old)
    assert not alice2.is_active and alice2.device_id is None
    assert alice2._matching._profile.get("seed") is None  # type: ignore[attr-defined]
    await alice2.finish_link(approval.encode())  # the real one still works
    assert alice2.is_active
    seeds = {c._matching._profile.get("seed") for c in (alice1, alice2)}  # type: ignore[attr-defined]
    assert len(seeds) == 1 and None not in seeds
