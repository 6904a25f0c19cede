"""Threshold private matching with synthetic vouchers on ristretto255 (the client and the server).

Notation: ``G`` the ristretto255 generator, ``l`` its order, ``H`` hash-to-group
(:func:`~overt.safety.matching.table.key_point`), ``α`` the provider's blinding secret and
``L = α·G``; the verified table holds ``P_j`` in slot ``j`` (``α·H(κ)`` or a blinded filler).
``KDF(S, Q) = HKDF-SHA256(IKM = S, salt = "Overt_PSI_voucher_v1" ‖ table_commitment ‖ image_id,
info = Q, L = 48)``, split as ``pad ‖ tag`` (32 + 16 bytes).

**One image, client side** (:func:`make_bundle`). The client draws a fresh image key
``K`` (32 bytes) and, for each of its ``V = L·2^m`` probe keys ``κ``
(:func:`~overt.safety.matching.lsh.probe_keys`), a *voucher*:

* random ``β, γ ∈ Z_l``; ``Q = β·H(κ) + γ·G``;
* for each of the three cuckoo positions ``j`` of ``κ``: ``S_j = β·P_j + γ·L`` and the entry
  ``(K ⊕ pad_j) ‖ tag_j`` with ``pad_j ‖ tag_j = KDF(S_j, Q)``;
* the three entries in random order; the ``V`` vouchers in random order.

**The server** (:func:`open_bundle`) computes ``R = α·Q`` per voucher and ``KDF(R, Q)``. If
``κ`` sits in slot ``j`` then ``P_j = α·H(κ)`` and ``S_j = β·α·H(κ) + γ·α·G = α·Q = R``: the
tag matches and ``K`` comes out. Otherwise ``P_j ≠ α·H(κ)`` and, writing ``H(κ) = h·G`` and
``P_j = p·G``, the pair ``(Q, S_j) = ((βh + γ)·G, (βp + γα)·G)`` is the image of the uniform
``(β, γ)`` under a matrix of determinant ``hα − p ≠ 0``: uniform, whatever the server knows
(``α``, the table, a guess of ``κ``). The three positions share ``(β, γ)`` (one ``Q`` per
voucher instead of three): given ``Q`` one uniform scalar remains and
``S_j = R + β·(P_j − α·H(κ))``, so each ``S_j`` alone is uniform and the three together are as
unpredictable as ``β`` (252 bits) — hidden behind the KDF (random-oracle model) rather than
perfectly. A match reveals only ``K``, which all entries carry anyway. The client learns
nothing at all: it sends and never hears back.

**What ``K`` opens.** The *middle* ciphertext ``seal(K, generation ‖ x ‖ y ‖ v)`` with the
image's Shamir share ``(x, y = f(x))`` and detection row ``v = C(x)``
(:mod:`~overt.safety.matching.dhf`), and nothing else: the *payload* (low-resolution visual
derivative and the full PDQ hash) is sealed under
``HKDF(s ‖ K, "Overt_PSI_payload_v1", image_id ‖ table_commitment)`` with ``s = f(0)`` the
account generation's secret. So a payload opens only if its image matched (``K``) **and** the
account has ``t`` real matches (``s``); below threshold the server holds shares and rows that are
uniformly random.

**Synthetic vouchers.** With probability ``1/synthetic_one_in`` an image's bundle is made
*synthetic*: after building it as usual (same work, same time), its vouchers are replaced by
``n`` openable ones — ``Q = r·G``, ``S = r·L``, which the server opens since ``α·Q = S`` —
and ``V − n`` decoys (a random point and random bytes), ``n`` drawn from
:attr:`PsiParams.open_weights` (the distribution of how many vouchers a real match opens,
measured on the evaluation corpus); its share and row are uniformly random, its payload sealed
under a key nobody keeps. The server cannot tell a synthetic opening from a real one (``Q`` is
uniform either way; shares and rows are uniform below threshold), so it cannot count real
matches below ``t``: it sees only ``real + synthetic``. Above ``t`` the detection rows separate
them (:func:`~overt.safety.matching.dhf.identify_real`), ``s`` is interpolated, every identified
share is checked to lie on one polynomial, and only the real images' payloads open.

Images that cannot be matched (quality below 50, undecodable) get a *decoy* bundle of random
vouchers, equally likely to be synthetic, so the server cannot tell them either.

**Generations.** Shares use public coordinates ``x = device·G + (sequence mod G) + 1`` with
``G`` = :attr:`PsiParams.generation_images`, ``device`` the device's matching slot (distinct per
device of the account, handed out at linking) and ``sequence`` its own image counter; every
``G`` images of a device start a new generation with fresh ``f`` and ``C`` (derived from the
account's matching seed, which all its devices share, so their shares are points of one
polynomial). The threshold
counts matches within a generation; this bounds the synthetic vouchers the detection rows must
absorb (``≤ D``) and the false-positive exposure of one secret.

Randomness comes only from the :class:`~overt.crypto.Rng` passed in. Failed openings are
``None`` or :class:`~overt.errors.InvalidMessage`, never a reason. This module never sees
sockets, storage, clocks or the transparency log.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Self

from overt.crypto import (
    GROUP_ORDER,
    POINT_LEN,
    Point,
    Rng,
    Scalar,
    constant_time_eq,
    hkdf_expand,
    hkdf_sha256,
    open_sealed,
    seal,
)
from overt.errors import DecodeError, InvalidMessage, LocalError
from overt.safety.matching import dhf
from overt.safety.matching.errors import ListRefused, RefusalReason
from overt.safety.matching.limits import (
    MAX_BUNDLE_BYTES,
    MAX_DEVICES,
    MAX_IMAGES_PER_GENERATION,
    MAX_OPENED_PER_ACCOUNT,
    MAX_PAYLOAD_BYTES,
    MAX_THRESHOLD,
    MAX_VOUCHERS_PER_IMAGE,
)
from overt.safety.matching.lists import VerifiedTable
from overt.safety.matching.lsh import LshParams, probe_keys
from overt.safety.matching.pdq import PdqDigest
from overt.safety.matching.table import CHOICES, ProviderKey, TableHeader, key_point, positions
from overt.wire import Reader, Writer

BUNDLE_VERSION: Final = 1
MID_VERSION: Final = 1
IMAGE_ID_LEN: Final = 16
KEY_LEN: Final = 32
TAG_LEN: Final = 16
ENTRY_LEN: Final = KEY_LEN + TAG_LEN
VOUCHER_LEN: Final = POINT_LEN + CHOICES * ENTRY_LEN
"""``Q`` and three ``(K ⊕ pad) ‖ tag`` entries: 176 bytes."""
VOUCHER_SALT: Final = b"Overt_PSI_voucher_v1"
PAYLOAD_LABEL: Final = b"Overt_PSI_payload_v1"
MID_LABEL: Final = b"Overt_PSI_mid_v1"
GENERATION_LABEL: Final = b"Overt_PSI_generation_v1"

DEFAULT_DHF_WIDTH: Final = 128
"""Detection-row width ``D``: the most synthetic openings per account generation that
detection absorbs (≈ 4 devices' worth, see docs/matching.md)."""
DEFAULT_SYNTHETIC_ONE_IN: Final = 256
"""An image is synthetic with probability 1/256: about 16 per 4096 images."""
DEFAULT_GENERATION_IMAGES: Final = 4096
"""Images per device and generation of the account secret (≈ 13 months at 10 a day)."""
DEFAULT_OPEN_WEIGHTS: Final = (
    169, 145, 125, 87, 83, 104, 87, 75, 114, 104, 124, 116, 121, 157, 233, 1511,
)  # fmt: skip
"""How many of its vouchers a real match opened, for ``n = 1..16``: the counts the ``matching``
bench prints for the near-copies within distance 31 of its corpus (``bench/corpus.py``, seed
2024, 300 originals) with the default LSH parameters. Synthetic vouchers copy this distribution.
"""


@dataclass(frozen=True)
class PsiParams:
    """The PSI's parameters; ``threshold`` comes from the manifest's matching policy."""

    threshold: int
    lsh: LshParams = field(default_factory=LshParams)
    dhf_width: int = DEFAULT_DHF_WIDTH
    synthetic_one_in: int = DEFAULT_SYNTHETIC_ONE_IN
    generation_images: int = DEFAULT_GENERATION_IMAGES
    open_weights: tuple[int, ...] = DEFAULT_OPEN_WEIGHTS

    def __post_init__(self) -> None:
        if not 1 <= self.threshold <= MAX_THRESHOLD:
            raise LocalError(f"the matching threshold is 1..{MAX_THRESHOLD}")
        if not 1 <= self.dhf_width <= 4096:
            raise LocalError("the detection width is 1..4096")
        if self.synthetic_one_in < 1:
            raise LocalError("synthetic_one_in is at least 1")
        if not 1 <= self.generation_images <= MAX_IMAGES_PER_GENERATION:
            raise LocalError("generation_images out of range")
        if MAX_DEVICES * self.generation_images >= dhf.DHF_PRIME:
            raise LocalError("share coordinates would leave the detection field")
        if self.lsh.vouchers > MAX_VOUCHERS_PER_IMAGE:
            raise LocalError("more vouchers per image than MAX_VOUCHERS_PER_IMAGE")
        weights = self.open_weights
        if not weights or len(weights) > self.lsh.vouchers or min(weights) < 0 or not any(weights):
            raise LocalError("open_weights: one non-negative weight per count 1..len, some > 0")


# ----------------------------------------------------------------------------- client secrets


@dataclass(frozen=True, slots=True, eq=False)
class GenerationSecret:
    """One generation's Shamir polynomial ``f`` and detection polynomial ``C`` (client only)."""

    shamir: tuple[int, ...] = field(repr=False)
    detection: dhf.FieldRows = field(repr=False)

    @property
    def secret(self) -> int:
        return self.shamir[0]


@dataclass(frozen=True, slots=True, eq=False)
class MatchingSecret:
    """The account's 32-byte matching seed (shared by its devices; stored encrypted at rest)."""

    seed: bytes = field(repr=False)
    _cache: dict[tuple[int, int, int], GenerationSecret] = field(
        default_factory=dict, repr=False, compare=False
    )
    """Derived generations, kept with this object only (never in a module-level cache)."""

    def __post_init__(self) -> None:
        if not isinstance(self.seed, bytes) or len(self.seed) != 32:
            raise LocalError("a matching seed is 32 bytes")

    @classmethod
    def generate(cls, rng: Rng) -> Self:
        return cls(rng.random_bytes(32))

    def generation(self, number: int, params: PsiParams) -> GenerationSecret:
        """Generation ``number``'s polynomials (derived once per object and parameters)."""
        index = (number, params.threshold, params.dhf_width)
        found = self._cache.get(index)
        if found is None:
            found = _generation(self.seed, *index)
            self._cache.clear()  # one generation at a time is all a device needs
            self._cache[index] = found
        return found

    def export_secret(self) -> bytes:
        return self.seed

    def __repr__(self) -> str:
        return "MatchingSecret(<redacted>)"


def _generation(seed: bytes, number: int, threshold: int, width: int) -> GenerationSecret:
    gen_seed = hkdf_expand(seed, GENERATION_LABEL + number.to_bytes(4, "big"), 64)
    shamir = tuple(dhf.derive_scalars(gen_seed[:32], threshold))
    detection = dhf.derive_coefficients(gen_seed[32:], threshold - 1, width)
    return GenerationSecret(shamir, detection)


def share_coordinate(device: int, sequence: int, params: PsiParams) -> tuple[int, int]:
    """``(generation, x)`` of a device's image number ``sequence``."""
    if not 0 <= device < MAX_DEVICES or sequence < 0:
        raise LocalError("device index or sequence out of range")
    generation, n = divmod(sequence, params.generation_images)
    return generation, device * params.generation_images + n + 1


# ----------------------------------------------------------------------------- the bundle


@dataclass(frozen=True, slots=True, eq=False)
class ImageBundle:
    """What a client attaches to one image it sends."""

    table_commitment: bytes
    image_id: bytes
    vouchers: tuple[bytes, ...] = field(repr=False)
    mid: bytes = field(repr=False)
    payload: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.table_commitment) != 32 or len(self.image_id) != IMAGE_ID_LEN:
            raise DecodeError("bundle: bad commitment or image id")
        if not 1 <= len(self.vouchers) <= MAX_VOUCHERS_PER_IMAGE:
            raise DecodeError("bundle: voucher count out of range")
        if any(len(v) != VOUCHER_LEN for v in self.vouchers):
            raise DecodeError("bundle: malformed voucher")

    def header(self) -> bytes:
        return bytes((BUNDLE_VERSION,)) + self.table_commitment + self.image_id

    def encode(self) -> bytes:
        w = Writer().u8(BUNDLE_VERSION).fixed(self.table_commitment, 32)
        w.fixed(self.image_id, IMAGE_ID_LEN).u16(len(self.vouchers))
        for v in self.vouchers:
            w.fixed(v, VOUCHER_LEN)
        return w.vec(self.mid, 2).vec(self.payload, 4, MAX_PAYLOAD_BYTES + 64).getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        if len(data) > MAX_BUNDLE_BYTES:
            raise DecodeError("bundle larger than MAX_BUNDLE_BYTES")
        r = Reader(data, "image bundle")
        r.version(BUNDLE_VERSION)
        commitment = r.fixed(32, "table commitment")
        image_id = r.fixed(IMAGE_ID_LEN, "image id")
        n = r.u16("voucher count")
        if not 1 <= n <= MAX_VOUCHERS_PER_IMAGE:
            raise DecodeError("image bundle: voucher count out of range")
        vouchers = tuple(r.fixed(VOUCHER_LEN, "voucher") for _ in range(n))
        mid = r.vec(2, "middle ciphertext")
        payload = r.vec(4, "payload ciphertext", MAX_PAYLOAD_BYTES + 64)
        r.finish()
        return cls(commitment, image_id, vouchers, mid, payload)


def _salt(table_commitment: bytes, image_id: bytes) -> bytes:
    return VOUCHER_SALT + table_commitment + image_id


def _kdf(s: Point, q: Point, salt: bytes) -> bytes:
    return hkdf_sha256(s.raw, salt, q.raw, ENTRY_LEN)


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


def _below(rng: Rng, n: int) -> int:
    """Uniform in ``0..n-1`` by rejection."""
    limit = (1 << 32) - ((1 << 32) % n)
    while True:
        v = int.from_bytes(rng.random_bytes(4), "big")
        if v < limit:
            return v % n


def _shuffled(items: Sequence[bytes], rng: Rng) -> list[bytes]:
    out = list(items)
    for i in range(len(out) - 1, 0, -1):
        j = _below(rng, i + 1)
        out[i], out[j] = out[j], out[i]
    return out


def _payload_key(secret: int, k_img: bytes, image_id: bytes, table_commitment: bytes) -> bytes:
    ikm = secret.to_bytes(32, "little") + k_img
    return hkdf_sha256(ikm, PAYLOAD_LABEL, image_id + table_commitment, KEY_LEN)


def _voucher(
    key: bytes, k_img: bytes, header: TableHeader, slots: VerifiedTable, salt: bytes, rng: Rng
) -> bytes:
    beta, gamma = Scalar.random(rng), Scalar.random(rng)
    q = key_point(key).mul(beta) + Point.base_mul(gamma)
    gamma_l = header.public.mul(gamma)
    entries = []
    for j in positions(header.cuckoo_seed, key, header.n_slots):
        s_j = Point(slots.table.slot(j)).mul(beta) + gamma_l
        pad = _kdf(s_j, q, salt)
        entries.append(_xor(k_img, pad[:KEY_LEN]) + pad[KEY_LEN:])
    return q.raw + b"".join(_shuffled(entries, rng))


def _synthetic_voucher(k_img: bytes, header: TableHeader, salt: bytes, rng: Rng) -> bytes:
    r = Scalar.random(rng)
    q = Point.base_mul(r)
    pad = _kdf(header.public.mul(r), q, salt)
    entries = [_xor(k_img, pad[:KEY_LEN]) + pad[KEY_LEN:]]
    entries += [rng.random_bytes(ENTRY_LEN) for _ in range(CHOICES - 1)]
    return q.raw + b"".join(_shuffled(entries, rng))


def _decoy_voucher(rng: Rng) -> bytes:
    q = Point.from_uniform(rng.random_bytes(64))
    return q.raw + rng.random_bytes(CHOICES * ENTRY_LEN)


def _mid_plaintext(generation: int, x: int, y: int, row: dhf.FieldRows) -> bytes:
    return (
        Writer()
        .u8(MID_VERSION)
        .u32(generation)
        .u32(x)
        .fixed(y.to_bytes(32, "little"), 32)
        .raw(dhf.encode_row(row))
        .getvalue()
    )


def _draw_open_count(params: PsiParams, rng: Rng) -> int:
    total = sum(params.open_weights)
    v = _below(rng, total)
    for n, w in enumerate(params.open_weights, start=1):
        if v < w:
            return n
        v -= w
    return len(params.open_weights)  # pragma: no cover


def make_bundle(
    *,
    table: VerifiedTable,
    secret: MatchingSecret,
    device: int,
    sequence: int,
    digest: PdqDigest | None,
    payload: bytes,
    params: PsiParams,
    rng: Rng,
) -> ImageBundle:
    """The bundle for one image: ``digest`` None or below the quality gate gives a decoy.

    ``sequence`` is this device's image counter (the caller persists it and never reuses a
    value); ``payload`` is what the server may read above threshold (see
    :func:`~overt.safety.matching.payload.encode_payload`), at most MAX_PAYLOAD_BYTES.
    """
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise LocalError("payload larger than MAX_PAYLOAD_BYTES")
    header = table.table.header
    if header.lsh != params.lsh:
        raise LocalError("the PSI parameters and the table disagree on the LSH parameters")
    commitment = table.commitment
    generation, x = share_coordinate(device, sequence, params)
    image_id = rng.random_bytes(IMAGE_ID_LEN)
    salt = _salt(commitment, image_id)
    k_img = rng.random_bytes(KEY_LEN)
    bundle_header = bytes((BUNDLE_VERSION,)) + commitment + image_id

    if digest is not None and digest.hashable:
        try:
            vouchers = [
                _voucher(key, k_img, header, table, salt, rng)
                for key in probe_keys(digest, params.lsh)
            ]
        except InvalidMessage:
            raise ListRefused(
                RefusalReason.INVALID_TABLE, "the table holds a slot that is not a group element"
            ) from None
    else:
        vouchers = [_decoy_voucher(rng) for _ in range(params.lsh.vouchers)]

    synthetic = _below(rng, params.synthetic_one_in) == 0
    if synthetic:
        # The real vouchers were built all the same (the same work, so the same time); they
        # are replaced by decoys, so that a synthetic image opens exactly n vouchers even if
        # the image itself matches.
        n = _draw_open_count(params, rng)
        vouchers = [_synthetic_voucher(k_img, header, salt, rng) for _ in range(n)]
        vouchers += [_decoy_voucher(rng) for _ in range(params.lsh.vouchers - n)]
        y = int.from_bytes(rng.random_bytes(64), "little") % GROUP_ORDER
        row = dhf.random_row(rng, params.dhf_width)
        payload_key = rng.random_bytes(KEY_LEN)  # nobody keeps it
    else:
        gen = secret.generation(generation, params)
        y = dhf.evaluate_polynomial(gen.shamir, x)
        row = dhf.evaluate_rows(gen.detection, x)
        payload_key = _payload_key(gen.secret, k_img, image_id, commitment)

    mid = seal(k_img, _mid_plaintext(generation, x, y, row), bundle_header, MID_LABEL)
    sealed_payload = seal(payload_key, payload, bundle_header, PAYLOAD_LABEL)
    return ImageBundle(commitment, image_id, tuple(_shuffled(vouchers, rng)), mid, sealed_payload)


# ----------------------------------------------------------------------------- the server


@dataclass(frozen=True, slots=True, eq=False)
class OpenedImage:
    """What the server learns from a bundle whose vouchers opened (real or synthetic)."""

    image_id: bytes
    table_commitment: bytes
    opened: int
    """How many of its vouchers opened."""
    generation: int
    x: int
    y: int = field(repr=False)
    row: dhf.FieldRows = field(repr=False)
    k_img: bytes = field(repr=False)
    payload: bytes = field(repr=False)
    """The payload ciphertext (opens only above threshold, and only for a real match)."""


def _read_mid(plain: bytes, width: int) -> tuple[int, int, int, dhf.FieldRows] | None:
    try:
        r = Reader(plain, "mid")
        r.version(MID_VERSION)
        generation, x = r.u32("generation"), r.u32("x")
        y = int.from_bytes(r.fixed(32, "y"), "little")
        row = dhf.decode_row(r.fixed(dhf.DHF_ELEMENT_BYTES * width, "row"), width)
        r.finish()
    except DecodeError:
        return None
    if row is None or y >= GROUP_ORDER or x == 0:
        return None
    return generation, x, y, row


def open_bundle(
    bundle: ImageBundle, key: ProviderKey, table_commitment: bytes, params: PsiParams
) -> OpenedImage | None:
    """Try every voucher with ``α``; ``None`` if none opens (the usual case).

    ``table_commitment`` is the version the server accepts vouchers for; a bundle made for
    another version is :class:`InvalidMessage`.
    """
    if not constant_time_eq(bundle.table_commitment, table_commitment):
        raise InvalidMessage()
    salt = _salt(bundle.table_commitment, bundle.image_id)
    candidates: dict[bytes, int] = {}
    for voucher in bundle.vouchers:
        try:
            q = Point.from_bytes(voucher[:POINT_LEN])
            pad = _kdf(key.blind(q), q, salt)
        except (DecodeError, InvalidMessage):
            continue
        found: set[bytes] = set()  # positions may coincide in a tiny table: count vouchers
        for j in range(CHOICES):
            entry = voucher[POINT_LEN + j * ENTRY_LEN : POINT_LEN + (j + 1) * ENTRY_LEN]
            if constant_time_eq(entry[KEY_LEN:], pad[KEY_LEN:]):
                found.add(_xor(entry[:KEY_LEN], pad[:KEY_LEN]))
        for k_img in found:
            candidates[k_img] = candidates.get(k_img, 0) + 1
    for k_img, count in sorted(candidates.items(), key=lambda kv: -kv[1]):
        try:
            plain = open_sealed(k_img, bundle.mid, bundle.header(), MID_LABEL)
        except InvalidMessage:
            continue
        mid = _read_mid(plain, params.dhf_width)
        if mid is None:
            continue
        generation, x, y, row = mid
        return OpenedImage(
            bundle.image_id, bundle.table_commitment, count, generation, x, y, row, k_img,
            bundle.payload,
        )  # fmt: skip
    return None


@dataclass(frozen=True, slots=True)
class RevealedImage:
    """A real match of an account above threshold: its payload, for the re-check."""

    image_id: bytes
    payload: bytes


@dataclass(frozen=True, slots=True)
class ThresholdOutcome:
    revealed: tuple[RevealedImage, ...]
    """Payloads of the real matches (empty below threshold)."""
    opened: int
    """Opened images held (real and synthetic alike)."""
    undecodable: bool = False
    """Detection found ``t`` or more rows but they did not form one polynomial (more synthetic
    openings than the detection width, or a misbehaving client): nothing was opened."""


class AccountMatches:
    """The server's per-account collection of opened images (sans-I/O; the caller stores it).

    ``add`` takes each :class:`OpenedImage` of the account; ``evaluate`` reports what can be
    opened now. Below threshold it returns nothing and learns nothing.
    """

    def __init__(self, params: PsiParams) -> None:
        self._params = params
        self._by_generation: dict[int, dict[int, OpenedImage | None]] = {}

    def add(self, image: OpenedImage) -> None:
        images = self._by_generation.setdefault(image.generation, {})
        if sum(len(g) for g in self._by_generation.values()) >= MAX_OPENED_PER_ACCOUNT:
            return
        if image.x in images:  # a reused coordinate: keep neither (a rolled-back client)
            images[image.x] = None
        else:
            images[image.x] = image

    @property
    def opened(self) -> int:
        return sum(1 for g in self._by_generation.values() for i in g.values() if i is not None)

    def evaluate(self) -> ThresholdOutcome:
        t = self._params.threshold
        revealed: list[RevealedImage] = []
        undecodable = False
        for images in self._by_generation.values():
            held = [i for i in images.values() if i is not None]
            if len(held) < t:
                continue
            # One class per seed that reached t (normally one: the account's; a device linked
            # before seeds were shared at linking has its own, see dhf.real_classes).
            for real in dhf.real_classes([i.x for i in held], [i.row for i in held], t):
                if len(real) < t:
                    continue
                points = [(held[i].x, held[i].y) for i in real]
                if not dhf.consistent(points, t):
                    undecodable = True
                    continue
                secret = dhf.interpolate_at_zero(points[:t])
                for i in real:
                    img = held[i]
                    key = _payload_key(secret, img.k_img, img.image_id, img.table_commitment)
                    header = bytes((BUNDLE_VERSION,)) + img.table_commitment + img.image_id
                    try:
                        payload = open_sealed(key, img.payload, header, PAYLOAD_LABEL)
                    except InvalidMessage:
                        continue
                    revealed.append(RevealedImage(img.image_id, payload))
        return ThresholdOutcome(tuple(revealed), self.opened, undecodable)
