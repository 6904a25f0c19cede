"""Attachments end to end: encrypted under a fresh key, uploaded, pointed to from a message,
downloaded and checked; altered bytes are refused, whatever was altered."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from overt.client import AttachmentRejected, Direction, Response
from overt.client.body import AttachmentPointer

from .support import Call, World

PHOTO = bytes(range(256)) * 300 + b"end"


async def test_attachment_round_trip_to_peer_and_own_devices(world: World, tmp_path: Path) -> None:
    alice1 = await world.user("alice1", "alice")
    alice2 = await world.linked("alice2", alice1)
    bob = await world.user("bob", "bob")
    path = tmp_path / "cat.jpg"
    path.write_bytes(PHOTO)

    sent = await alice1.send_attachment("bob", path, content_type="image/jpeg", caption="look")
    assert sent.attachment is not None and sent.attachment.file_name == "cat.jpg"

    [got] = await bob.sync()
    assert got.text == "look" and got.attachment is not None
    assert got.attachment.size == len(PHOTO) and got.attachment.content_type == "image/jpeg"
    assert await bob.fetch_attachment(got) == PHOTO
    # The sync copy on alice's other device opens too; history keeps the pointer.
    [copy] = await alice2.sync()
    assert copy.direction is Direction.OUTGOING
    assert await alice2.fetch_attachment(copy) == PHOTO
    [stored] = await bob.history("alice")
    assert stored.attachment == got.attachment

    # Raw bytes work as well; the server never saw the plaintext.
    await bob.send_attachment("alice", b"tiny", file_name="t.txt", content_type="text/plain")
    [back] = await alice1.sync()
    assert await alice1.fetch_attachment(back) == b"tiny"


def _tamper(data: bytes) -> bytes:
    return data[:100] + bytes([data[100] ^ 1]) + data[101:]


@pytest.mark.parametrize(
    "alter",
    [
        pytest.param(_tamper, id="flipped-byte"),
        pytest.param(lambda d: d[:-1], id="truncated"),
        pytest.param(lambda d: d + b"\x00", id="extended"),
        pytest.param(lambda d: b"", id="empty"),
    ],
)
async def test_altered_attachment_ciphertext_is_rejected(world: World, alter: object) -> None:
    alice = await world.user("alice", "alice")
    net = world.interposer()
    bob = await world.user("bob", "bob", net)
    await alice.send_attachment("bob", PHOTO)
    [got] = await bob.sync()

    async def tamper(call: Call) -> Response | None:
        if call.target.startswith("/v1/attachments/"):
            answer = await call.proceed()
            assert callable(alter)
            return Response(answer.status, answer.headers, alter(answer.content))
        return None

    net.hooks.append(tamper)
    with pytest.raises(AttachmentRejected) as info:
        await bob.fetch_attachment(got)
    assert "ask the sender to send it again" in str(info.value)


async def test_swapped_attachment_with_a_consistent_hash_is_rejected(world: World) -> None:
    """A server that also rewrote the pointer's ciphertext hash could not make the blob open
    under the message's key: the key commitment and the plaintext hash still fail."""
    alice = await world.user("alice", "alice")
    bob = await world.user("bob", "bob")
    await alice.send_attachment("bob", PHOTO)
    await alice.send_attachment("bob", b"something else")
    first, second = await bob.sync()
    assert first.attachment is not None and second.attachment is not None
    # Pointer to the second blob, but with the first's key and plaintext hash.
    forged = AttachmentPointer(
        second.attachment.blob_id,
        first.attachment.key,
        first.attachment.size,
        first.attachment.plaintext_sha256,
        second.attachment.ciphertext_sha256,
        "application/octet-stream",
        "",
    )
    with pytest.raises(AttachmentRejected):
        await bob.fetch_attachment(replace(first, attachment=forged))
