"""Threshold private matching: below t nothing opens, at t exactly the matches, synthetic
vouchers hide the count, near-duplicates reach the re-check, unrelated images do not.

Everything runs on the sans-I/O core with a DeterministicRng; images come from the evaluation
corpus generator (bench/corpus.py). No timings are asserted.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.corpus import combo, jpeg, synthetic_photo  # noqa: E402

from overt.crypto import GROUP_ORDER, DeterministicRng, Ed25519PrivateKey  # noqa: E402
from overt.errors import InvalidMessage, LocalError  # noqa: E402
from overt.safety.matching import (  # noqa: E402
    AccountMatches,
    HashList,
    ImageBundle,
    LshParams,
    MatchingSecret,
    OpenedImage,
    PdqIndex,
    ProviderKey,
    PsiParams,
    VerifiedTable,
    build_table,
    commitment_entry,
    dhf,
    hash_rgb,
    make_bundle,
    make_payload,
    open_bundle,
    recheck,
    verify_table,
)
from overt.safety.matching.limits import MAX_DEVICES  # noqa: E402
from overt.safety.matching.payload import MatchPayload  # noqa: E402
from overt.safety.matching.psi import VOUCHER_LEN  # noqa: E402
from overt.transparency.manifest import MatchingPolicy, NamedKey  # noqa: E402

SEED = 31
LISTED = 4  # corpus images 0..3 are on the list; 10.. are unrelated


@dataclass
class World:
    lsh: LshParams
    key: ProviderKey
    table: VerifiedTable
    hashes: HashList
    rng: DeterministicRng


def make_world(lsh: LshParams, seed: int = 1) -> World:
    rng = DeterministicRng(seed)
    hashes = HashList.of([hash_rgb(synthetic_photo(SEED, i)).hash for i in range(LISTED)])
    key = ProviderKey.generate(rng)
    table, _ = build_table(
        hashes.keys(lsh), list_id=b"L" * 32, version=1, lsh=lsh, key=key, rng=rng, prove=False
    )
    orgs = [Ed25519PrivateKey.generate(rng) for _ in range(2)]
    policy = MatchingPolicy(
        True, 3, tuple(NamedKey(f"org-{i}", o.public_key) for i, o in enumerate(orgs)), 2
    )
    entry = commitment_entry(list_id=b"L" * 32, version=1, hash_list=hashes, table=table,
                             signers=orgs)  # fmt: skip
    return World(lsh, key, verify_table(table, entry, policy, lsh=lsh), hashes, rng)


@pytest.fixture(scope="module")
def world() -> World:
    return make_world(LshParams())


class Client:
    def __init__(self, world: World, params: PsiParams, seed: int) -> None:
        self.world, self.params = world, params
        self.rng = DeterministicRng(seed)
        self.secret = MatchingSecret.generate(self.rng)
        self.sequence = 0

    def send(self, rgb: np.ndarray) -> ImageBundle:
        digest = hash_rgb(rgb)
        bundle = make_bundle(
            table=self.world.table, secret=self.secret, device=0, sequence=self.sequence,
            digest=digest, payload=make_payload(rgb, digest), params=self.params, rng=self.rng,
        )  # fmt: skip
        self.sequence += 1
        return ImageBundle.decode(bundle.encode())  # over the wire


def server_view(world: World, params: PsiParams, bundles: list[ImageBundle]) -> AccountMatches:
    account = AccountMatches(params)
    for b in bundles:
        opened = open_bundle(b, world.key, world.table.commitment, params)
        if opened is not None:
            account.add(opened)
    return account


NO_SYNTHETIC = 1 << 30  # synthetic_one_in so large that no bundle is synthetic in a test


def test_below_threshold_the_server_opens_nothing(world: World) -> None:
    t = 3
    params = PsiParams(threshold=t, synthetic_one_in=NO_SYNTHETIC)
    client = Client(world, params, 5)
    bundles = [client.send(jpeg(synthetic_photo(SEED, i), 70)) for i in range(t - 1)]
    bundles += [client.send(synthetic_photo(SEED, 10 + i)) for i in range(2)]
    account = server_view(world, params, bundles)
    assert account.opened == t - 1  # the matching images' vouchers opened ...
    outcome = account.evaluate()
    assert outcome.revealed == ()  # ... but no payload does
    assert not outcome.undecodable


def test_at_threshold_it_opens_exactly_the_matching_images(world: World) -> None:
    t = 3
    params = PsiParams(threshold=t, synthetic_one_in=NO_SYNTHETIC)
    client = Client(world, params, 6)
    matching = [client.send(jpeg(synthetic_photo(SEED, i), 50)) for i in range(t)]
    unrelated = [client.send(synthetic_photo(SEED, 20 + i)) for i in range(3)]
    account = server_view(world, params, matching[:1] + unrelated + matching[1:])
    outcome = account.evaluate()
    assert {r.image_id for r in outcome.revealed} == {b.image_id for b in matching}
    candidates, dropped = recheck(
        [(r.image_id, r.payload) for r in outcome.revealed], PdqIndex(world.hashes.hashes)
    )
    assert dropped == 0
    assert {c.image_id for c in candidates} == {b.image_id for b in matching}
    assert all(c.distance <= 31 for c in candidates)
    # Unrelated images of the same account stay closed even above threshold.
    for b in unrelated:
        assert open_bundle(b, world.key, world.table.commitment, params) is None


def test_a_near_duplicate_sent_t_times_opens_for_the_server(world: World) -> None:
    t = 3
    params = PsiParams(threshold=t, synthetic_one_in=NO_SYNTHETIC)
    client = Client(world, params, 7)
    listed = synthetic_photo(SEED, 2)
    copy = combo(listed)  # re-compressed (JPEG 70), resized (60 %), brightened (+15 %)
    bundles = [client.send(copy) for _ in range(t)]
    outcome = server_view(world, params, bundles).evaluate()
    assert len(outcome.revealed) == t
    candidates, _ = recheck(
        [(r.image_id, r.payload) for r in outcome.revealed], PdqIndex(world.hashes.hashes)
    )
    assert len(candidates) == t
    assert candidates[0].matched == hash_rgb(listed).hash
    payload = candidates[0].payload
    assert (payload.height, payload.width) == copy.shape[:2]


def test_t_unrelated_images_do_not_open(world: World) -> None:
    t = 3
    params = PsiParams(threshold=t, synthetic_one_in=NO_SYNTHETIC)
    client = Client(world, params, 8)
    bundles = [client.send(synthetic_photo(SEED, 30 + i)) for i in range(t + 2)]
    account = server_view(world, params, bundles)
    assert account.opened == 0
    assert account.evaluate().revealed == ()


def test_unhashable_images_get_decoy_bundles_of_the_same_shape(world: World) -> None:
    params = PsiParams(threshold=2, synthetic_one_in=NO_SYNTHETIC)
    client = Client(world, params, 9)
    flat = np.full((300, 300, 3), 90, np.uint8)  # quality 0: not matched
    decoy = client.send(flat)
    real = client.send(synthetic_photo(SEED, 0))
    assert len(decoy.encode()) == len(real.encode())
    assert open_bundle(decoy, world.key, world.table.commitment, params) is None


def test_bundles_for_another_table_or_tampered_are_refused(world: World) -> None:
    params = PsiParams(threshold=2, synthetic_one_in=NO_SYNTHETIC)
    client = Client(world, params, 10)
    bundle = client.send(synthetic_photo(SEED, 0))
    with pytest.raises(InvalidMessage):
        open_bundle(bundle, world.key, b"\x00" * 32, params)
    other = ProviderKey.generate(DeterministicRng(99))
    assert open_bundle(bundle, other, world.table.commitment, params) is None
    bad_mid = ImageBundle(bundle.table_commitment, bundle.image_id, bundle.vouchers,
                          bytes(len(bundle.mid)), bundle.payload)  # fmt: skip
    assert open_bundle(bad_mid, world.key, world.table.commitment, params) is None


def test_bundles_are_deterministic_under_a_deterministic_rng(world: World) -> None:
    params = PsiParams(threshold=2)
    a = Client(world, params, 11).send(synthetic_photo(SEED, 1))
    b = Client(world, params, 11).send(synthetic_photo(SEED, 1))
    assert a.encode() == b.encode()
    assert all(len(v) == VOUCHER_LEN for v in a.vouchers)


def test_parameters_are_checked() -> None:
    with pytest.raises(LocalError):
        PsiParams(threshold=0)
    with pytest.raises(LocalError):
        PsiParams(threshold=2, open_weights=(0,) * 3)
    with pytest.raises(LocalError):
        PsiParams(threshold=2, open_weights=(1,) * 65)


# ----------------------------------------------------------------------------- synthetic vouchers

SMALL_LSH = LshParams(keys=4, flip_bits=1)  # 8 vouchers per image: cheap enough for statistics


@pytest.fixture(scope="module")
def small_world() -> World:
    return make_world(SMALL_LSH, seed=2)


def _ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    grid = np.sort(np.concatenate([a, b]))
    cdf_a = np.searchsorted(np.sort(a), grid, side="right") / a.size
    cdf_b = np.searchsorted(np.sort(b), grid, side="right") / b.size
    return float(np.max(np.abs(cdf_a - cdf_b)))


def _ks_critical(n: int, m: int, alpha_coefficient: float = 1.95) -> float:
    # Two-sample Kolmogorov–Smirnov critical value; 1.95 is alpha = 0.001.
    return alpha_coefficient * float(np.sqrt((n + m) / (n * m)))


def _features(opened: list[OpenedImage]) -> dict[str, np.ndarray]:
    return {
        "opened": np.array([o.opened for o in opened], dtype=np.float64),
        "share": np.array([o.y / GROUP_ORDER for o in opened], dtype=np.float64),
        "row": np.concatenate([o.row.astype(np.float64) / dhf.DHF_PRIME for o in opened]),
    }


def test_below_threshold_the_server_view_is_the_same_with_and_without_real_matches(
    small_world: World,
) -> None:
    t = 6
    # Exact copies open all 4 keys; the synthetic vouchers are told to mimic that.
    params = PsiParams(threshold=t, lsh=SMALL_LSH, synthetic_one_in=2, open_weights=(0, 0, 0, 1),
                       dhf_width=64)  # fmt: skip
    listed = [synthetic_photo(SEED, i % LISTED) for i in range(t - 1)]
    unrelated = [synthetic_photo(SEED, 100 + i, size=(160, 120)) for i in range(70)]

    # Account A: t-1 real matches among unrelated images; account B: unrelated images only.
    with_real = Client(small_world, params, 21)
    without = Client(small_world, params, 22)
    a_first = [with_real.send(img) for img in listed]
    a_real = {b.image_id for b in a_first}
    a_bundles = a_first + [with_real.send(img) for img in unrelated]
    b_bundles = [without.send(img) for img in [*unrelated[: t - 1], *unrelated]]
    assert len(a_bundles) == len(b_bundles)
    sizes = {len(b.encode()) for b in a_bundles + b_bundles}
    assert len(sizes) == 1  # every bundle has the same size

    def opened_of(bundles: list[ImageBundle]) -> list[OpenedImage]:
        out = []
        for b in bundles:
            o = open_bundle(b, small_world.key, small_world.table.commitment, params)
            if o is not None:
                out.append(o)
        return out

    a_all, b_all = opened_of(a_bundles), opened_of(b_bundles)
    real = [o for o in a_all if o.image_id in a_real]
    synthetic_a = [o for o in a_all if o.image_id not in a_real]
    assert 1 <= len(real) <= t - 1 and len(synthetic_a) >= 20 and len(b_all) >= 20

    # Neither account reveals anything, and detection finds no real rows in either.
    for opened in (a_all, b_all):
        account = AccountMatches(params)
        for o in opened:
            account.add(o)
        assert account.evaluate().revealed == ()
        assert dhf.identify_real([o.x for o in opened], [o.row for o in opened], t) == []

    # Each opened image looks the same whether real or synthetic: opened counts equal, shares
    # and detection rows indistinguishable from uniform and from each other (KS, alpha 0.001).
    fa, fb, fr = _features(synthetic_a), _features(b_all), _features(real)
    assert set(fr["opened"]) == set(fa["opened"]) == set(fb["opened"]) == {4.0}
    for name in ("share", "row"):
        for x, y in ((fa[name], fb[name]), (fr[name], fb[name]), (fa[name], fr[name])):
            assert _ks_statistic(x, y) < _ks_critical(x.size, y.size), name
        uniform = np.linspace(0, 1, 2001)
        assert _ks_statistic(fb[name], uniform) < _ks_critical(fb[name].size, uniform.size)


def test_above_threshold_synthetic_openings_are_told_apart_and_never_revealed(
    small_world: World,
) -> None:
    t = 4
    params = PsiParams(threshold=t, lsh=SMALL_LSH, synthetic_one_in=4, open_weights=(0, 0, 0, 1),
                       dhf_width=64)  # fmt: skip
    client = Client(small_world, params, 23)
    # 12 matching images: about 9 stay real (a quarter are drawn synthetic), t = 4 suffice.
    matching = [client.send(synthetic_photo(SEED, i % LISTED)) for i in range(12)]
    unrelated = [client.send(synthetic_photo(SEED, 200 + i, size=(160, 120))) for i in range(40)]
    account = server_view(small_world, params, matching + unrelated)
    outcome = account.evaluate()
    synthetic = account.opened - len(outcome.revealed)
    assert synthetic >= 5  # the test exercises detection, not a lucky run without synthetics
    revealed = {r.image_id for r in outcome.revealed}
    assert revealed <= {b.image_id for b in matching}
    assert len(revealed) >= t  # real matches that were not drawn synthetic
    for r in outcome.revealed:
        assert MatchPayload.decode(r.payload).quality >= 50


def test_synthetic_open_counts_follow_the_configured_distribution(small_world: World) -> None:
    params = PsiParams(threshold=2, lsh=SMALL_LSH, synthetic_one_in=1, open_weights=(1, 2, 3, 4),
                       dhf_width=8)  # fmt: skip
    client = Client(small_world, params, 24)
    counts = np.zeros(5)
    for i in range(200):
        b = client.send(synthetic_photo(SEED, 300 + i, size=(96, 96)))
        o = open_bundle(b, small_world.key, small_world.table.commitment, params)
        assert o is not None
        counts[o.opened] += 1
    expected = np.array([0, 0.1, 0.2, 0.3, 0.4]) * 200
    chi2 = float(np.sum((counts[1:] - expected[1:]) ** 2 / expected[1:]))
    assert chi2 < 16.27  # chi-square, 3 degrees of freedom, alpha = 0.001


# ----------------------------------------------------------------------------- detection


def test_detection_finds_real_rows_exactly_from_the_threshold_on() -> None:
    rng = DeterministicRng(3)
    t, width = 5, 16
    coefficients = dhf.derive_coefficients(b"s" * 32, t - 1, width)
    for real_count in range(t + 3):
        xs = list(range(1, real_count + 1)) + list(range(100, 112))
        rows = [dhf.evaluate_rows(coefficients, x) for x in xs[:real_count]]
        rows += [dhf.random_row(rng, width) for _ in range(12)]
        found = dhf.identify_real(xs, rows, t)
        assert found == (list(range(real_count)) if real_count >= t else [])


def test_shamir_needs_t_shares() -> None:
    coefficients = dhf.derive_scalars(b"k" * 32, 4)
    points = [(x, dhf.evaluate_polynomial(coefficients, x)) for x in (3, 9, 27, 81, 243)]
    assert dhf.interpolate_at_zero(points[:4]) == coefficients[0]
    assert dhf.interpolate_at_zero(points[1:]) == coefficients[0]
    assert dhf.interpolate_at_zero(points[:3]) != coefficients[0]
    assert dhf.consistent(points, 4)
    assert not dhf.consistent([*points[:4], (5, 1)], 4)


# ----------------------------------------------------------------------------- more properties


def test_an_exact_copy_opens_every_key_whichever_cuckoo_position_holds_it(world: World) -> None:
    params = PsiParams(threshold=2, synthetic_one_in=NO_SYNTHETIC)
    client = Client(world, params, 12)
    for i in range(LISTED):
        bundle = client.send(synthetic_photo(SEED, i))
        opened = open_bundle(bundle, world.key, world.table.commitment, params)
        assert opened is not None
        assert opened.opened == world.lsh.keys  # each exact key, none of the flipped probes


def test_a_table_slot_that_is_no_group_element_stops_the_client(world: World) -> None:
    from overt.safety.matching import BlindedTable, ListRefused, RefusalReason  # noqa: PLC0415

    bad = BlindedTable(world.table.table.header, b"\xff" * len(world.table.table.slots))
    verified = VerifiedTable(bad, world.table.entry, world.table.signed_by)
    params = PsiParams(threshold=2)
    digest = hash_rgb(synthetic_photo(SEED, 0))
    with pytest.raises(ListRefused) as err:
        make_bundle(table=verified, secret=MatchingSecret.generate(DeterministicRng(1)),
                    device=0, sequence=0, digest=digest, payload=b"", params=params,
                    rng=DeterministicRng(2))  # fmt: skip
    assert err.value.reason is RefusalReason.INVALID_TABLE


def test_bundle_decoding_is_strict(world: World) -> None:
    from overt.errors import DecodeError  # noqa: PLC0415

    params = PsiParams(threshold=2)
    data = Client(world, params, 13).send(synthetic_photo(SEED, 0)).encode()
    for cut in (0, 1, 40, len(data) // 2, len(data) - 1):
        with pytest.raises(DecodeError):
            ImageBundle.decode(data[:cut])
    with pytest.raises(DecodeError):
        ImageBundle.decode(data + b"\x00")
    with pytest.raises(DecodeError):
        ImageBundle.decode(bytes([2]) + data[1:])


def test_share_coordinates_are_distinct_per_device_and_generation() -> None:
    from overt.safety.matching.psi import share_coordinate  # noqa: PLC0415

    params = PsiParams(threshold=2, generation_images=8)
    seen = {share_coordinate(d, n, params) for d in range(3) for n in range(24)}
    assert len(seen) == 72
    assert share_coordinate(1, 9, params) == (1, 8 * 1 + 1 + 1)
    with pytest.raises(LocalError):
        share_coordinate(256, 0, params)


@settings(max_examples=200, deadline=None)
@given(
    st.tuples(st.integers(0, 2**20 - 1), st.integers(0, 2**20 - 1)).filter(lambda p: p[0] != p[1]),
    st.integers(0, MAX_DEVICES - 1),
    st.integers(0, MAX_DEVICES - 1),
    st.sampled_from([1, 3, 4096, 1 << 20]),
)
def test_share_coordinates_never_collide_across_slots_or_images(
    sequences: tuple[int, int], slot_a: int, slot_b: int, per_generation: int
) -> None:
    """Two images with another slot or another counter value never share (generation, x),
    and every x stays inside both fields."""
    from overt.safety.matching.psi import share_coordinate  # noqa: PLC0415

    params = PsiParams(threshold=2, generation_images=per_generation)
    for a, b in ((slot_a, slot_b), (slot_a, slot_a)):
        first = share_coordinate(a, sequences[0], params)
        second = share_coordinate(b, sequences[1], params)
        assert first != second
        assert 0 < first[1] < dhf.DHF_PRIME and 0 < second[1] < dhf.DHF_PRIME
    if slot_a != slot_b:
        assert share_coordinate(slot_a, sequences[0], params) != share_coordinate(
            slot_b, sequences[0], params
        )


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.integers(0, 7), min_size=1, max_size=3),
    st.integers(0, 20),
    st.integers(2, 5),
    st.integers(0, 2**32 - 1),
)
def test_detection_separates_the_seeds_of_one_account(
    per_seed: list[int], synthetic: int, t: int, salt: int
) -> None:
    """Rows of several seeds (an account's and those of devices linked before seeds were
    shared) and synthetic rows: each seed with ≥ t rows is one class, nothing else is."""
    rng = DeterministicRng(salt)
    width = 32
    xs: list[int] = []
    rows: list[np.ndarray] = []
    expected: list[list[int]] = []
    for s, count in enumerate(per_seed):
        coefficients = dhf.derive_coefficients(bytes([s]) * 32, t - 1, width)
        first = len(xs)
        for n in range(count):
            x = 1000 * (s + 1) + n
            xs.append(x)
            rows.append(dhf.evaluate_rows(coefficients, x))
        if count >= t:
            expected.append(list(range(first, first + count)))
    for n in range(synthetic):
        xs.append(50_000 + n)
        rows.append(dhf.random_row(rng, width))
    order = sorted(range(len(xs)), key=lambda i: (xs[i] * 7919) % 65537)  # interleave
    xs = [xs[i] for i in order]
    rows = [rows[i] for i in order]
    position = {old: new for new, old in enumerate(order)}
    want = sorted((sorted(position[i] for i in c) for c in expected), key=lambda c: (-len(c), c[0]))
    assert dhf.real_classes(xs, rows, t) == want
    assert dhf.identify_real(xs, rows, t) == sorted(i for c in want for i in c)
