"""Signal types as plugins: what a kind of hash can do, declared in one class.

Following ThreatExchange's ``SignalType`` habit, a signal type says its **name** (as a manifest
or a list file names it), the **content types** it hashes, how to **hash** content, how to
**parse and compare** hash strings (distance and the match threshold), its **locality-sensitive
keys** for private matching, and how to **index** a list for the re-check. The registry
(:data:`SIGNAL_TYPES`) maps names to classes; :func:`signal_types_for` turns the names a
deployment enables into classes and refuses unknown ones. Each type inherits a ready test base
(``tests/safety/test_matching_signals.py``, ``SignalTypeContract``).

Only PDQ is registered today. A video hash (vPDQ, TMK) would be a second class with its own
keys; the PSI (:mod:`~overt.safety.matching.psi`) only sees key bytes and an opaque payload.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from typing import ClassVar, Final

from overt.errors import ConfigurationError
from overt.safety.matching.lsh import LshParams, list_keys, probe_keys
from overt.safety.matching.payload import PdqIndex
from overt.safety.matching.pdq import MATCH_DISTANCE, MIN_QUALITY, PdqDigest, PdqHash, hash_image


class SignalType(ABC):
    """One kind of hash. Subclasses are stateless; everything is a classmethod."""

    name: ClassVar[str]
    content_types: ClassVar[tuple[str, ...]]
    match_distance: ClassVar[int]
    min_quality: ClassVar[int]

    @classmethod
    @abstractmethod
    def hash_content(cls, content: bytes) -> PdqDigest: ...

    @classmethod
    @abstractmethod
    def parse(cls, text: str) -> PdqHash: ...

    @classmethod
    @abstractmethod
    def distance(cls, a: PdqHash, b: PdqHash) -> int: ...

    @classmethod
    def matches(cls, a: PdqHash, b: PdqHash) -> bool:
        return cls.distance(a, b) <= cls.match_distance

    @classmethod
    @abstractmethod
    def list_keys(cls, value: PdqHash, lsh: LshParams) -> list[bytes]: ...

    @classmethod
    @abstractmethod
    def probe_keys(cls, digest: PdqDigest, lsh: LshParams) -> list[bytes]: ...

    @classmethod
    @abstractmethod
    def index(cls, values: Iterable[PdqHash]) -> PdqIndex: ...


class PdqSignal(SignalType):
    """PDQ (photos): 256-bit hashes, distance ≤ 31, quality ≥ 50, bit-sampling keys."""

    name = "pdq"
    content_types = ("photo",)
    match_distance = MATCH_DISTANCE
    min_quality = MIN_QUALITY

    @classmethod
    def hash_content(cls, content: bytes) -> PdqDigest:
        return hash_image(content)

    @classmethod
    def parse(cls, text: str) -> PdqHash:
        return PdqHash.from_hex(text)

    @classmethod
    def distance(cls, a: PdqHash, b: PdqHash) -> int:
        return a.distance(b)

    @classmethod
    def list_keys(cls, value: PdqHash, lsh: LshParams) -> list[bytes]:
        return list_keys(value, lsh)

    @classmethod
    def probe_keys(cls, digest: PdqDigest, lsh: LshParams) -> list[bytes]:
        return probe_keys(digest, lsh)

    @classmethod
    def index(cls, values: Iterable[PdqHash]) -> PdqIndex:
        return PdqIndex(values)


SIGNAL_TYPES: Final[Mapping[str, type[SignalType]]] = {PdqSignal.name: PdqSignal}
"""Every registered signal type, by name."""


def signal_types_for(names: Sequence[str]) -> list[type[SignalType]]:
    """The classes of the signal types a deployment enables; unknown names are refused."""
    unknown = [n for n in names if n not in SIGNAL_TYPES]
    if unknown:
        raise ConfigurationError(f"unknown signal type(s): {', '.join(unknown)}")
    return [SIGNAL_TYPES[n] for n in dict.fromkeys(names)]
