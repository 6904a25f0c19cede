"""Attachments in group conversations, against the real server in-process: encrypted and
uploaded once, one group message (one ciphertext) carries the pointer to every member device,
each member opens it with ``fetch_attachment`` (hashes checked, key-committing); a member
removed before the message never gets its key; altered bytes are refused; a reported
attachment message verifies; an image is hashed for known-content matching once, not once
per member."""

from __future__ import annotations

from pathlib import Path

import pytest

from overt.client import AttachmentRejected, Client, Direction, Response
from overt.client.matching import MatchingState
from overt.client.reports import report_group
from overt.errors import LocalError
from safety import matching_kit as kit

from .support import Call, Interposer, World
from .test_client_matching import MatchWorld, mworld  # noqa: F401 - the matching world fixture

PHOTO = bytes(range(256)) * 300 + b"end"


async def _trio(world: World) -> tuple[Client, Client, Client]:
    return (
        await world.user("alice", "alice"),
        await world.user("bob", "bob"),
        await world.user("carol", "carol"),
    )


def _profile_bytes(client: Client) -> bytes:
    """Every byte the client's profile database holds on disk (with its write-ahead log)."""
    path = Path(client._store.path)
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


def _record_posts(inter: Interposer) -> list[str]:
    """The targets of every POST through ``inter`` from now on, in order."""
    posts: list[str] = []

    async def record(call: Call) -> Response | None:
        if call.method == "POST":
            posts.append(call.target)
        return None

    inter.hooks.append(record)
    return posts


async def test_a_group_attachment_reaches_every_member_once(world: World, tmp_path: Path) -> None:
    alice, bob, carol = await _trio(world)
    info = await alice.create_group("trip", ["bob", "carol"])
    path = tmp_path / "map.jpg"
    path.write_bytes(PHOTO)
    sent = await alice.send_group_attachment(
        "trip", path, content_type="image/jpeg", caption="the route"
    )
    assert sent.outgoing and sent.group_id == info.group_id and sent.text == "the route"
    assert sent.attachment is not None and sent.attachment.file_name == "map.jpg"

    for member in (bob, carol):
        (m,) = await member.sync()
        assert m.group_id == info.group_id and m.sender == "alice" and m.text == "the route"
        assert m.attachment == sent.attachment  # the same pointer: one upload, one key
        assert await member.fetch_attachment(m) == PHOTO
        (stored,) = await member.group_history("trip")
        assert stored.attachment == sent.attachment
    # The sender's history keeps the pointer, and it opens there too.
    (own,) = await alice.group_history("trip")
    assert own.attachment == sent.attachment and await alice.fetch_attachment(own) == PHOTO

    # Raw bytes, from another member, work as well.
    back = await bob.send_group_attachment("trip", b"tiny", file_name="t.txt")
    assert back.attachment is not None and back.attachment.content_type.endswith("octet-stream")
    assert [await alice.fetch_attachment(m) for m in await alice.sync()] == [b"tiny"]


async def test_the_attachment_is_uploaded_once_and_sent_as_one_group_message(
    world: World,
) -> None:
    inter = world.interposer()
    alice = await world.user("alice", "alice", inter)
    await world.user("bob", "bob")
    await world.user("carol", "carol")
    await alice.create_group("g", ["bob", "carol"])
    await alice.send_group("g", "keys first")  # sender keys are handed out with the first one
    posts = _record_posts(inter)
    await alice.send_group_attachment("g", PHOTO)
    gid = (await alice.group_info("g")).ref
    assert posts == ["/v1/attachments", f"/v1/groups/{gid}/messages"]


async def test_a_removed_member_never_gets_the_key_of_a_later_attachment(world: World) -> None:
    alice, bob, carol = await _trio(world)
    await alice.create_group("team", ["bob", "carol"])
    await alice.send_group_attachment("team", b"for everyone", file_name="a.txt")
    (before,) = await carol.sync()
    assert await carol.fetch_attachment(before) == b"for everyone"

    await alice.remove_members("team", ["carol"])
    later = await alice.send_group_attachment("team", PHOTO, file_name="b.bin")
    assert later.attachment is not None
    assert await carol.sync() == []  # the message never reaches her
    assert [m.attachment for m in await carol.group_history("team")] == [before.attachment]
    assert later.attachment.key not in _profile_bytes(carol)  # nor does its key, anywhere
    first, got = await bob.sync()
    assert await bob.fetch_attachment(got) == PHOTO
    assert await bob.fetch_attachment(first) == b"for everyone"
    with pytest.raises(LocalError, match="no longer in the group"):
        await carol.send_group_attachment("team", b"hello?")


@pytest.mark.parametrize("flip_at", [0, 100, len(PHOTO)])
async def test_an_altered_group_attachment_is_refused(world: World, flip_at: int) -> None:
    alice = await world.user("alice", "alice")
    net = world.interposer()
    bob = await world.user("bob", "bob", net)
    await alice.create_group("g", ["bob"])
    await alice.send_group_attachment("g", PHOTO)
    (got,) = await bob.sync()

    async def tamper(call: Call) -> Response | None:
        if call.target.startswith("/v1/attachments/"):
            answer = await call.proceed()
            data = bytearray(answer.content)
            data[flip_at] ^= 1
            return Response(answer.status, answer.headers, bytes(data))
        return None

    net.hooks.append(tamper)
    with pytest.raises(AttachmentRejected):
        await bob.fetch_attachment(got)
    net.hooks.clear()
    assert await bob.fetch_attachment(got) == PHOTO  # the stored pointer is unchanged


async def test_a_group_attachment_message_is_reported_like_a_text_one(world: World) -> None:
    alice, bob, carol = await _trio(world)
    await alice.create_group("g", ["bob", "carol"])
    sent = await alice.send_group_attachment("g", b"abusive file", file_name="x.txt")
    (got,) = await bob.sync()
    assert got.direction is Direction.INCOMING
    assert await report_group(bob, "g", [sent.message_id], category="harassment")
    await carol.sync()
    assert await report_group(
        carol, "g", [sent.message_id], category="spam", reveal_attachments=False
    )


async def test_a_group_image_is_matched_once_not_once_per_member(mworld: MatchWorld) -> None:  # noqa: F811
    await mworld.publish()
    alice = await mworld.world.user("alice", "alice")
    bob = await mworld.world.user("bob", "bob")
    carol = await mworld.world.user("carol", "carol")
    assert (await alice.refresh_matching()).state is MatchingState.READY
    await alice.create_group("g", ["bob", "carol"])
    await alice.send_group_attachment("g", kit.png(kit.near_duplicate(0)), content_type="image/png")
    await alice.send_group_attachment("g", b"not an image", content_type="text/plain")
    assert mworld.transport.bundles == 1  # one bundle for the image, none for the text
    assert mworld.storage.matching is not None
    assert len(await mworld.storage.matching.opened(b"alice")) == 1
    for member in (bob, carol):
        assert [m.attachment is not None for m in await member.sync()] == [True, True]


async def test_bad_input_is_refused_before_anything_is_uploaded(
    world: World, tmp_path: Path
) -> None:
    inter = world.interposer()
    alice = await world.user("alice", "alice", inter)
    await world.user("bob", "bob")
    await alice.create_group("g", ["bob"])
    posts = _record_posts(inter)
    with pytest.raises(LocalError, match="no group 'nowhere'"):
        await alice.send_group_attachment("nowhere", b"data")
    with pytest.raises(LocalError, match="could not read"):
        await alice.send_group_attachment("g", tmp_path / "missing.bin")
    with pytest.raises(LocalError, match="file name is over"):
        await alice.send_group_attachment("g", b"data", file_name="x" * 10_000)
    assert posts == []
    assert await alice.group_history("g") == []
