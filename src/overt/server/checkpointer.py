"""The checkpointer: signs checkpoints as the log grows, collects the witnesses' cosignatures
and decides which checkpoint is *published*.

One round (:meth:`Checkpointer.run_once`): the log signs a checkpoint if it grew
(:meth:`overt.transparency.log.Log.checkpoint`); every configured witness that has not
cosigned it yet is sent it concurrently (c2sp.org/tlog-witness ``add-checkpoint``), each under
its own time bound; the cosignatures that come back are merged into the stored checkpoint
(:meth:`~overt.transparency.log.Log.add_cosignatures`). The published checkpoint is the
largest one that carries a quorum of valid cosignatures — with quorum 0, every checkpoint the
log signs, at once. A witness that fails, refuses or is late is logged and asked again in the
next round; nothing else waits for it. :meth:`Checkpointer.run_forever` repeats rounds every
``interval_ms`` (the application's lifespan runs it in the background).

The add-checkpoint dance is :meth:`WitnessClient.cosign`'s, written out here because the log's
consistency proofs are asynchronous store reads while ``cosign`` takes a synchronous proof
callback: send from the size the witness last cosigned for this server (0 at first); if it
answers 409 with its own size, prove consistency from that size and send once more. A split
view refusal (a 409 without a size) means the log contradicts what the witness cosigned: it is
logged as an error and never retried silently.

What this module must not know: HTTP routes, SQL, account data. It reads time only through
the log's clock (and sleeps between rounds).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final

import httpx

from overt.errors import DecodeError, InvalidMessage, OvertError
from overt.server.deployment import WitnessEndpoint
from overt.server.logs import LOGGER, describe_exception
from overt.services.witness_client import (
    WitnessClient,
    WitnessClientError,
    WitnessConflict,
)
from overt.transparency.checkpoint import Checkpoint, verify_checkpoint
from overt.transparency.log import Log
from overt.transparency.note import Note, NoteSignature, VerifiedSignature

_log = logging.getLogger(LOGGER)

_MS: Final = 1000


@dataclass(frozen=True, slots=True)
class Published:
    """A checkpoint that carries the quorum: the note as stored and what it says."""

    note: Note
    checkpoint: Checkpoint
    cosignatures: tuple[VerifiedSignature, ...]
    """The valid cosignatures of configured witnesses, one per witness."""

    @property
    def size(self) -> int:
        return self.checkpoint.size


class Checkpointer:
    """Turns the log's growth into published, witnessed checkpoints.

    ``ready`` is awaited before the first round (the manifest must be entry 0 before anything
    is signed). ``transport`` replaces the network for every witness (tests route it to
    in-process witness apps).
    """

    def __init__(
        self,
        log: Log,
        witnesses: Sequence[WitnessEndpoint],
        quorum: int,
        *,
        ready: Callable[[], Awaitable[object]],
        interval_ms: int,
        timeout_ms: int,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._log = log
        self._witnesses = tuple(witnesses)
        self._keys = tuple(w.vkey for w in self._witnesses)
        self._quorum = quorum
        self._ready = ready
        self._interval_s = interval_ms / _MS
        self._timeout_s = timeout_ms / _MS
        self._transport = transport
        self._clients: dict[str, WitnessClient] = {}
        self._sizes: dict[str, int] = {}  # the size each witness last cosigned for us
        self._published: Published | None = None
        self._lock = asyncio.Lock()
        self.rounds = 0
        """Rounds completed: for monitoring and tests."""

    @property
    def published(self) -> Published | None:
        """The latest published checkpoint, or ``None`` before the first one."""
        return self._published

    @property
    def witnesses(self) -> tuple[WitnessEndpoint, ...]:
        return self._witnesses

    @property
    def quorum(self) -> int:
        return self._quorum

    async def load(self) -> Published | None:
        """Publish the latest stored checkpoint if it carries the quorum (after a restart)."""
        note = await self._log.latest_checkpoint()
        if note is not None:
            self._consider(note)
        return self._published

    async def run_once(self) -> Published | None:
        """One round; returns the published checkpoint after it."""
        async with self._lock:
            await self._ready()
            note = await self._log.checkpoint()
            size = Checkpoint.from_text(note.text).size
            present = {(s.name, s.key_id) for s in note.signatures}
            missing = [w for w in self._witnesses if (w.vkey.name, w.vkey.key_id) not in present]
            if missing:
                results = await asyncio.gather(*(self._cosign(w, note, size) for w in missing))
                lines = [line for result in results for line in result]
                if lines:
                    note = await self._log.add_cosignatures(note.with_signatures(*lines))
            self._consider(note)
            self.rounds += 1
            return self._published

    async def run_forever(self) -> None:
        """Rounds every ``interval_ms`` until cancelled; a failed round is logged."""
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # a background task has no caller to raise to
                _log.error(
                    "checkpointing round failed",
                    extra={"fields": {"exception": describe_exception(e)}},
                )
            await asyncio.sleep(self._interval_s)

    async def aclose(self) -> None:
        """Close the connections to the witnesses."""
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.aclose()

    # ------------------------------------------------------------------------- internals

    def _consider(self, note: Note) -> None:
        try:
            verified = verify_checkpoint(
                note, self._log.verifier_key, self._keys, self._quorum, origin=self._log.origin
            )
        except (InvalidMessage, DecodeError):
            return
        current = self._published
        if current is None or verified.checkpoint.size >= current.size:
            self._published = Published(note, verified.checkpoint, verified.cosignatures)

    def _client(self, witness: WitnessEndpoint) -> WitnessClient:
        client = self._clients.get(witness.url)
        if client is None:
            client = WitnessClient(
                witness.url,
                witness_key=witness.vkey,
                timeout=self._timeout_s,
                transport=self._transport,
            )
            self._clients[witness.url] = client
        return client

    async def _proof(self, old_size: int, size: int) -> list[bytes]:
        if old_size in (0, size) or old_size > size:
            return []
        return await self._log.consistency_proof(old_size, size)

    async def _cosign(
        self, witness: WitnessEndpoint, note: Note, size: int
    ) -> tuple[NoteSignature, ...]:
        """The witness's cosignature lines on ``note``, or none (the failure is logged)."""
        client = self._client(witness)
        old = self._sizes.get(witness.url, 0)
        fields: dict[str, object] = {"witness": witness.name, "size": size}
        try:
            async with asyncio.timeout(self._timeout_s):
                try:
                    lines = await client.add_checkpoint(old, await self._proof(old, size), note)
                except WitnessConflict as e:
                    if e.current_size is None or e.current_size > size or e.current_size == old:
                        raise
                    old = e.current_size
                    lines = await client.add_checkpoint(old, await self._proof(old, size), note)
        except TimeoutError:
            _log.warning("witness did not answer in time", extra={"fields": fields})
            return ()
        except WitnessConflict as e:
            if e.current_size is None:
                _log.error(
                    "witness refused a split view: the log contradicts a checkpoint it cosigned",
                    extra={"fields": fields},
                )
            else:
                fields["witness_size"] = e.current_size
                _log.error("witness is ahead of this log", extra={"fields": fields})
            return ()
        except (WitnessClientError, DecodeError, InvalidMessage) as e:
            fields["exception"] = describe_exception(e)
            _log.warning("witness did not cosign", extra={"fields": fields})
            return ()
        except OvertError as e:  # a proof the store could not produce, and the like
            fields["exception"] = describe_exception(e)
            _log.error("could not ask a witness", extra={"fields": fields})
            return ()
        self._sizes[witness.url] = size
        return lines
