"""An async client of c2sp.org/tlog-witness, for the log operator collecting cosignatures.

:meth:`WitnessClient.add_checkpoint` sends one add-checkpoint request and returns the
witness's cosignature lines as :class:`overt.transparency.note.NoteSignature` values, ready for
``note.with_signatures(...)``. Given the witness's verifier key, the client checks the
cosignature and keeps only that witness's lines (the spec tells clients to ignore the others).
:meth:`WitnessClient.cosign` adds the usual dance: on a 409 that names the witness's size, it
asks the caller for a proof from that size and retries once.

Errors are typed and rooted in :class:`overt.errors.RemoteError`::

    WitnessClientError             anything the witness or the network did     (status or None)
    ├── WitnessUnavailable         no answer, a transport error, or a 5xx
    └── WitnessRejected            a 4xx: the witness refused the request
        ├── WitnessConflict        409: ``current_size`` (None for a split-view refusal)
        └── WitnessProofRejected   422: the consistency proof did not verify

A 200 whose body is not signature lines raises :class:`overt.errors.DecodeError`; a cosignature
that does not verify under the given witness key :class:`overt.errors.InvalidMessage`. httpx's
exceptions never escape: they are mapped here, at the edge.

This module never sees the witness's key or state, storage or clocks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Final, Self

import httpx

from overt.errors import DecodeError, InvalidMessage, RemoteError
from overt.transparency.checkpoint import Checkpoint
from overt.transparency.note import Note, NoteSignature, VerifierKey, parse_note, verify_signatures
from overt.transparency.witness import (
    MAX_STATE_BYTES,
    SIZE_CONTENT_TYPE,
    encode_add_checkpoint,
    parse_cosignature_response,
)
from overt.wire.jcs import JsonValue, parse_strict

MAX_COSIGNATURE_RESPONSE_BYTES: Final = 1 << 16
"""Largest add-checkpoint response read: room for many post-quantum cosignature lines."""

MAX_ERROR_BODY_BYTES: Final = 4096
"""How much of an error response is kept for the exception message."""

DEFAULT_TIMEOUT_SECONDS: Final = 10.0

_MAX_SIZE_DIGITS: Final = 19


class WitnessClientError(RemoteError):
    """The witness refused, failed or could not be reached. ``status`` is the HTTP status."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class WitnessUnavailable(WitnessClientError):
    """No usable answer: a network error, a timeout or a 5xx. Retry later or elsewhere."""

    status_hint = 502


class WitnessRejected(WitnessClientError):
    """The witness answered with a 4xx."""


class WitnessConflict(WitnessRejected):
    """409: the witness is at ``current_size``, or (None) refused a split view."""

    status_hint = 409

    def __init__(self, message: str, *, current_size: int | None) -> None:
        super().__init__(message, status=409)
        self.current_size = current_size


class WitnessProofRejected(WitnessRejected):
    """422: the consistency proof did not verify against what the witness cosigned."""

    status_hint = 422


class WitnessClient:
    """One witness, over one pooled HTTP connection. Use ``async with`` or :meth:`aclose`."""

    def __init__(
        self,
        url: str,
        *,
        witness_key: VerifierKey | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.witness_key = witness_key
        self._http = httpx.AsyncClient(timeout=timeout, transport=transport)

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

    async def _request(
        self, method: str, path: str, body: bytes | None, limit: int
    ) -> tuple[int, str, bytes]:
        """Status, content type and body (at most ``limit`` bytes) of one request."""
        try:
            async with self._http.stream(method, self.url + path, content=body) as response:
                data = bytearray()
                async for chunk in response.aiter_bytes():
                    data += chunk
                    if len(data) > limit:
                        if response.status_code == 200:
                            raise DecodeError("witness response too large")
                        del data[limit:]
                        break
                content_type = response.headers.get("content-type", "")
                return response.status_code, content_type, bytes(data)
        except httpx.HTTPError as e:
            raise WitnessUnavailable(f"witness {self.url} unreachable: {e}") from e

    def _error(self, status: int, content_type: str, body: bytes) -> WitnessClientError:
        text = body.decode("utf-8", "replace").strip()
        message = f"witness {self.url} answered {status}: {text[:200]}"
        if status == 409:
            size: int | None = None
            if content_type.split(";", maxsplit=1)[0].strip() == SIZE_CONTENT_TYPE:
                size = _parse_size(body)
            return WitnessConflict(message, current_size=size)
        if status == 422:
            return WitnessProofRejected(message, status=status)
        if 400 <= status < 500:
            return WitnessRejected(message, status=status)
        return WitnessUnavailable(message, status=status)

    async def add_checkpoint(
        self, old_size: int, proof: Sequence[bytes], checkpoint: bytes | Note
    ) -> tuple[NoteSignature, ...]:
        """Ask for a cosignature of ``checkpoint``, consistent from ``old_size`` by ``proof``."""
        note = checkpoint if isinstance(checkpoint, Note) else parse_note(checkpoint)
        body = encode_add_checkpoint(old_size, proof, note)
        status, content_type, data = await self._request(
            "POST", "/add-checkpoint", body, MAX_COSIGNATURE_RESPONSE_BYTES
        )
        if status != 200:
            raise self._error(status, content_type, data)
        cosigned = parse_cosignature_response(note, data)
        if self.witness_key is None:
            return cosigned.signatures
        if not verify_signatures(cosigned, [self.witness_key]):
            raise InvalidMessage()
        wanted = (self.witness_key.name, self.witness_key.key_id)
        return tuple(s for s in cosigned.signatures if (s.name, s.key_id) == wanted)

    async def cosign(
        self,
        checkpoint: bytes | Note,
        proof_from: Callable[[int], Sequence[bytes]],
        *,
        old_size: int = 0,
    ) -> tuple[NoteSignature, ...]:
        """:meth:`add_checkpoint` from ``old_size``, retried once from the size a 409 names.

        ``proof_from(n)`` returns the consistency proof from size ``n`` to the checkpoint
        (empty when ``n`` is 0 or the checkpoint's size); it is only called with ``n`` ≥ 1.
        """
        note = checkpoint if isinstance(checkpoint, Note) else parse_note(checkpoint)
        size = Checkpoint.from_text(note.text).size

        def proof(n: int) -> Sequence[bytes]:
            return () if n in (0, size) else proof_from(n)

        try:
            return await self.add_checkpoint(old_size, proof(old_size), note)
        except WitnessConflict as e:
            if e.current_size is None or e.current_size > size or e.current_size == old_size:
                raise
            return await self.add_checkpoint(e.current_size, proof(e.current_size), note)

    async def get_state(self) -> JsonValue:
        """The witness's ``GET /state`` document."""
        return await self._get_json("/state")

    async def get_evidence(self) -> JsonValue:
        """The witness's ``GET /evidence`` document."""
        return await self._get_json("/evidence")

    async def _get_json(self, path: str) -> JsonValue:
        status, content_type, data = await self._request("GET", path, None, MAX_STATE_BYTES)
        if status != 200:
            raise self._error(status, content_type, data)
        return parse_strict(data, max_bytes=MAX_STATE_BYTES)


def _parse_size(body: bytes) -> int | None:
    if not body.endswith(b"\n"):
        return None
    digits = body[:-1]
    if not digits or len(digits) > _MAX_SIZE_DIGITS or not digits.isdigit():
        return None
    if digits.startswith(b"0") and digits != b"0":
        return None
    return int(digits)


__all__ = [
    "DEFAULT_TIMEOUT_SECONDS",
    "MAX_COSIGNATURE_RESPONSE_BYTES",
    "WitnessClient",
    "WitnessClientError",
    "WitnessConflict",
    "WitnessProofRejected",
    "WitnessRejected",
    "WitnessUnavailable",
]
