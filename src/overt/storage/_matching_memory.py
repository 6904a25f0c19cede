"""The in-memory reference of :class:`~overt.storage.matching.MatchingStore`.

Plain dicts on one event loop, nothing durable; each call runs to its end without awaiting, so
it is atomic by construction. ``check_open`` is the owning :class:`Storage`'s lifetime check.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

from overt.storage import matching as mt
from overt.storage.errors import AlreadyExists
from overt.storage.matching import ListVersion, OpenedRecord


class MemoryMatchingStore:
    """:class:`~overt.storage.matching.MatchingStore` in dicts."""

    def __init__(self, check_open: Callable[[], None]) -> None:
        self._check = check_open
        self._versions: dict[int, ListVersion] = {}
        self._opened: dict[bytes, dict[bytes, OpenedRecord]] = {}

    async def publish(self, version: ListVersion) -> None:
        self._check()
        mt.check_list_version(version)
        if version.version in self._versions or any(
            v.commitment == version.commitment for v in self._versions.values()
        ):
            raise AlreadyExists("this list version or commitment is published already")
        self._versions[version.version] = version

    async def latest(self) -> ListVersion | None:
        self._check()
        return self._versions[max(self._versions)] if self._versions else None

    async def version(self, number: int) -> ListVersion | None:
        self._check()
        mt.check_version_number(number)
        return self._versions.get(number)

    async def commitments(self) -> tuple[tuple[int, bytes], ...]:
        self._check()
        return tuple((n, self._versions[n].commitment) for n in sorted(self._versions))

    async def add_opened(self, subject: bytes, image_id: bytes, record: bytes, limit: int) -> bool:
        self._check()
        mt.check_opened(subject, image_id, record, limit)
        held = self._opened.setdefault(subject, {})
        if image_id in held or len(held) >= limit:
            return False
        held[image_id] = OpenedRecord(image_id, record)
        return True

    async def opened(self, subject: bytes) -> tuple[OpenedRecord, ...]:
        self._check()
        mt.check_subject(subject)
        return tuple(self._opened.get(subject, {}).values())

    async def reveal(self, subject: bytes, payloads: Mapping[bytes, bytes]) -> None:
        self._check()
        mt.check_reveal(subject, payloads)
        held = self._opened.get(subject, {})
        for image_id, payload in payloads.items():
            found = held.get(image_id)
            if found is not None and found.revealed is None:
                held[image_id] = replace(found, revealed=payload)
