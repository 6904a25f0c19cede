"""A deployment with known-content matching on, a list prepared and signed by two
organisations, and images from the evaluation corpus (bench/corpus.py): shared by the server,
client and end-to-end matching tests."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.corpus import TRANSFORMS, synthetic_photo  # noqa: E402

from overt.crypto import DeterministicRng, Ed25519PrivateKey  # noqa: E402
from overt.safety.matching import HashList, ProviderKey, hash_rgb  # noqa: E402
from overt.safety.matching.deployment import psi_params  # noqa: E402
from overt.safety.matching.package import (  # noqa: E402
    ListPackage,
    ListSignature,
    assemble,
    check_and_sign,
    prepare,
)
from overt.transparency.entries import MatchingListCommitment  # noqa: E402
from overt.transparency.manifest import (  # noqa: E402
    MatchingParameters,
    MatchingPolicy,
    NamedKey,
    SafetyPolicy,
)

CORPUS_SEED = 2024
LISTED = (0, 1, 2)
"""Corpus images on the list; images 100.. are unrelated."""
THRESHOLD = 3
LIST_ID = b"T" * 32
NEAR_DUPLICATES = ("jpeg-30", "resize-50", "brightness+30", "combo")
"""Transformations of bench/corpus.py a list image is sent as (recompressed, resized,
brightened, all three)."""


@dataclass
class Orgs:
    keys: list[Ed25519PrivateKey]
    names: list[str] = field(default_factory=lambda: ["Hotline A", "Hotline B", "Hotline C"])

    def policy(self, threshold: int = THRESHOLD, quorum: int = 2) -> MatchingPolicy:
        return MatchingPolicy(
            True,
            threshold,
            tuple(NamedKey(n, k.public_key) for n, k in zip(self.names, self.keys, strict=False)),
            quorum,
            MatchingParameters(),
        )

    def safety(self, threshold: int = THRESHOLD) -> SafetyPolicy:
        return SafetyPolicy(matching=self.policy(threshold))


def orgs(seed: int = 5) -> Orgs:
    rng = DeterministicRng(seed)
    return Orgs([Ed25519PrivateKey.generate(rng) for _ in range(3)])


def listed_image(i: int) -> np.ndarray:
    return synthetic_photo(CORPUS_SEED, LISTED[i % len(LISTED)])


def near_duplicate(i: int) -> np.ndarray:
    """A transformed copy of a list image (cycling through images and transformations)."""
    name = NEAR_DUPLICATES[i % len(NEAR_DUPLICATES)]
    return TRANSFORMS[name](listed_image(i))


def unrelated_image(i: int) -> np.ndarray:
    return synthetic_photo(CORPUS_SEED, 100 + i)


def png(rgb: np.ndarray) -> bytes:
    import io  # noqa: PLC0415

    from PIL import Image  # noqa: PLC0415

    out = io.BytesIO()
    Image.fromarray(rgb).save(out, format="PNG")
    return out.getvalue()


def hash_list() -> HashList:
    return HashList.of([hash_rgb(synthetic_photo(CORPUS_SEED, i)).hash for i in LISTED])


def signed_version(
    o: Orgs, key: ProviderKey, *, signers: int = 2, seed: int = 9
) -> tuple[ListPackage, MatchingListCommitment]:
    """Version 1 of the list, checked and signed by ``signers`` organisations."""
    rng = DeterministicRng(seed)
    package = prepare(hash_list(), key, rng, list_id=LIST_ID, lsh=psi_params(o.policy()).lsh)
    sigs: list[ListSignature] = [
        check_and_sign(
            hashes=package.hashes,
            table=package.table,
            opening=package.opening,
            statement=package.statement,
            key=k,
            name=n,
        )
        for k, n in list(zip(o.keys, o.names, strict=True))[:signers]
    ]
    return package, assemble(package.statement, sigs)


def signed_next(
    o: Orgs, key: ProviderKey, previous: ListPackage, extra: int, *, seed: int = 10
) -> tuple[ListPackage, MatchingListCommitment]:
    """The next version, shipped as a delta: the previous list with its first hash replaced by
    corpus image ``extra``'s."""
    rng = DeterministicRng(seed)
    added = hash_rgb(synthetic_photo(CORPUS_SEED, extra)).hash
    hashes = HashList.of([*previous.hashes.hashes[1:], added])
    package = prepare(
        hashes, key, rng, list_id=LIST_ID, lsh=psi_params(o.policy()).lsh,
        previous=(previous.table, previous.opening),
    )  # fmt: skip
    sigs = [
        check_and_sign(
            hashes=hashes,
            table=package.table,
            opening=package.opening,
            statement=package.statement,
            key=k,
            name=n,
        )
        for k, n in list(zip(o.keys, o.names, strict=True))[:2]
    ]
    return package, assemble(package.statement, sigs)
