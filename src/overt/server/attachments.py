"""Attachments: encrypted blobs stored under random ids the server draws.

The server sees only ciphertext; the key and the hashes of plaintext and ciphertext travel
inside the message body (DESIGN.md §5). An id is 16 bytes from the injected RNG, so knowing
one is the capability to download it; any authenticated device may.

This service knows no HTTP, no SQL and no protocol. It is given only the blob store and an RNG.
"""

from __future__ import annotations

from typing import Final

from overt.crypto import Rng
from overt.server.errors import Malformed
from overt.server.limits import ATTACHMENT_ID_LEN
from overt.storage import AlreadyExists, BlobStore, NotFound

_ID_ATTEMPTS: Final = 3
"""Fresh ids tried before giving up (a collision of 128-bit random ids is not expected)."""


class AttachmentService:
    """Upload and download of encrypted blobs."""

    def __init__(self, blobs: BlobStore, rng: Rng) -> None:
        self._blobs = blobs
        self._rng = rng

    async def upload(self, data: bytes) -> bytes:
        """Store ``data`` under a new random id and return the id."""
        if not data:
            raise Malformed("an attachment is its ciphertext, never empty: send the bytes")
        for _ in range(_ID_ATTEMPTS - 1):
            blob_id = self._rng.random_bytes(ATTACHMENT_ID_LEN)
            try:
                await self._blobs.put(blob_id, data)
            except AlreadyExists:
                continue
            return blob_id
        blob_id = self._rng.random_bytes(ATTACHMENT_ID_LEN)
        await self._blobs.put(blob_id, data)
        return blob_id

    async def download(self, blob_id: bytes) -> bytes:
        """The blob; ``NotFound`` if there is none (or the id has the wrong length)."""
        if len(blob_id) != ATTACHMENT_ID_LEN:
            raise NotFound("no attachment with this id")
        data = await self._blobs.get(blob_id)
        if data is None:
            raise NotFound("no attachment with this id")
        return data
