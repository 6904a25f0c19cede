"""Group ``matching``: known-content matching on the evaluation corpus of ``bench/corpus.py``.

* **Recall** per transformation and overall: among near-copies whose PDQ hash is within
  distance ≤ 31 of their listed original (both of quality ≥ 50), the fraction whose client probe
  keys meet a list key of the original (what makes a voucher open). Also, per transformation,
  the fraction of copies PDQ itself keeps within 31 (``pdq_within_31``) and the end-to-end
  fraction. Crops, rotations and mirror images are reported but left out of "overall": PDQ is
  not designed to survive them.
* **False matches** (modelled): for a client image unrelated to a list of ``N`` hashes, the
  chance that one of its vouchers meets a list key. With ``d`` the distance of an unrelated pair
  (its distribution measured on the corpus' unrelated pairs) a key of ``b`` sampled bits and
  ``m`` probed bits meets the other hash's key with probability
  ``Σ_{j≤m} Hyp(j; 256, d, b)·C(m, j)/C(b, j)``; an image has ``L`` keys and the list ``N``
  hashes. Then false images per account-year at 10 images a day, and the probability that an
  account reaches ``t`` of them in a year (Poisson), at the chosen ``t``; and the same under a
  wider distance distribution (normal, mean 128, standard deviation 12 and 16) as a
  sensitivity check, since synthetic images are more evenly spread than photographs.
* **Client** ms per 1024×1024 image: PDQ (trim, reference down-scaling, hash) and the voucher
  bundle (64 vouchers against a real table); **server** ms to open one bundle.
* **Table bytes** per list hash (a table really built for ``list_hashes`` hashes) and the size
  for 10^5 and 10^6 hashes at the same keys per hash and load, next to the naive table
  (64 keys × 32 bytes per hash).

Medians of the timings; everything deterministic except the timings.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from typing import Final

import numpy as np

from bench.core import OVERT, BenchError, Context, Group, Row, median
from bench.corpus import PDQ_MISSES, TRANSFORMS, distractor, synthetic_photo

NAME: Final = "matching"
DEFAULT_ORIGINALS: Final = 300
DEFAULT_DISTRACTORS: Final = 2000
DEFAULT_TIMING_IMAGES: Final = 20
DEFAULT_LIST_HASHES: Final = 2000
DEFAULT_THRESHOLD: Final = 10
IMAGES_PER_DAY: Final = 10
LIST_SIZE: Final = 10**6
FP_TARGET: Final = 1e-9
NAIVE_KEYS: Final = 64


def _log_comb(n: int, k: int) -> float:
    if k < 0 or k > n:
        return -math.inf
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def key_meet_probability(d: int, bits: int, flips: int) -> float:
    """Chance that one probed key of ``bits`` sampled bits meets a hash at distance ``d``."""
    total = 0.0
    for j in range(flips + 1):
        hyp = _log_comb(d, j) + _log_comb(256 - d, bits - j) - _log_comb(256, bits)
        total += math.exp(hyp + _log_comb(flips, j) - _log_comb(bits, j))
    return total


def poisson_tail(lam: float, t: int) -> float:
    """``P(Poisson(lam) ≥ t)``, summed from ``t`` up (no cancellation for tiny tails)."""
    term = math.exp(-lam + t * math.log(lam) - math.lgamma(t + 1)) if lam > 0 else 0.0
    total, k = 0.0, t
    while term > 0 and term > total * 1e-17:
        total += term
        k += 1
        term *= lam / k
    return total


def run(ctx: Context) -> list[Row]:
    try:
        from overt.crypto import DeterministicRng, Ed25519PrivateKey  # noqa: PLC0415
        from overt.safety import matching as m  # noqa: PLC0415
        from overt.transparency.manifest import MatchingPolicy, NamedKey  # noqa: PLC0415
    except ImportError as exc:
        raise BenchError(f"cannot import overt.safety.matching: {exc}") from exc

    n_orig = ctx.int_param("originals", DEFAULT_ORIGINALS)
    n_dist = ctx.int_param("distractors", DEFAULT_DISTRACTORS)
    n_time = ctx.int_param("timing_images", DEFAULT_TIMING_IMAGES)
    n_list = ctx.int_param("list_hashes", DEFAULT_LIST_HASHES)
    t = ctx.int_param("threshold", DEFAULT_THRESHOLD)
    seed = ctx.int_param("seed", 2024, minimum=0)
    default = m.LshParams()
    lsh = m.LshParams(
        keys=ctx.int_param("lsh_keys", default.keys),
        bits_per_key=ctx.int_param("lsh_bits", default.bits_per_key),
        flip_bits=ctx.int_param("lsh_flips", default.flip_bits, minimum=0),
    )
    rows: list[Row] = []

    def add(case: str, metric: str, value: float, unit: str) -> None:
        rows.append(Row(NAME, case, OVERT, metric, value, unit))

    # ------------------------------------------------------------------ corpus and recall
    ctx.progress(f"hashing {n_orig} originals x {len(TRANSFORMS)} copies ...")
    started = time.perf_counter()
    per_case: dict[str, list[tuple[bool, bool, int]]] = {name: [] for name in TRANSFORMS}
    originals = []
    opened_hist: Counter[int] = Counter()
    for i in range(n_orig):
        img = synthetic_photo(seed, i)
        original = m.hash_rgb(img)
        originals.append(original)
        if not original.hashable:
            continue
        listed = set(m.list_keys(original.hash, lsh))
        for name, fn in TRANSFORMS.items():
            copy = m.hash_rgb(fn(img))
            within = copy.hashable and copy.hash.distance(original.hash) <= m.MATCH_DISTANCE
            opened = len(listed & set(m.probe_keys(copy, lsh))) if copy.hashable else 0
            per_case[name].append((within, opened > 0, opened))
            if within and opened and name not in PDQ_MISSES:
                opened_hist[opened] += 1
        if i % 50 == 49:
            ctx.progress(f"  {i + 1}/{n_orig} originals ({time.perf_counter() - started:.0f} s)")
    overall_hit = overall_n = 0
    for name, results in per_case.items():
        within = [r for r in results if r[0]]
        hits = sum(1 for r in within if r[1])
        add(name, "recall_within_31", hits / len(within) if within else 0.0, "fraction")
        add(name, "pdq_within_31", len(within) / len(results) if results else 0.0, "fraction")
        add(name, "end_to_end", sum(1 for r in within if r[1]) / max(len(results), 1), "fraction")
        if name not in PDQ_MISSES:
            overall_hit += hits
            overall_n += len(within)
    add("overall", "recall_within_31", overall_hit / max(overall_n, 1), "fraction")
    add("overall", "copies_within_31", overall_n, "images")
    add("overall", "originals_quality_ge_50", sum(o.hashable for o in originals), "images")
    weights = [opened_hist.get(k, 0) for k in range(1, lsh.keys + 1)]
    ctx.progress(f"recall {overall_hit / max(overall_n, 1):.3f}; opened-count weights {weights}")

    # ------------------------------------------------------------------ false-match model
    ctx.progress(f"hashing {n_dist} unrelated images for the false-match model ...")
    unrelated = [o.hash for o in originals if o.hashable]
    for i in range(n_dist):
        d = m.hash_rgb(distractor(seed, i))
        if d.hashable:
            unrelated.append(d.hash)
    words = np.frombuffer(b"".join(h.raw for h in unrelated), dtype=">u8").reshape(-1, 4)
    words = words.astype(np.uint64)
    hist = np.zeros(257, dtype=np.float64)
    for i in range(len(unrelated) - 1):
        dist = np.bitwise_count(np.bitwise_xor(words[i + 1 :], words[i])).sum(axis=1)
        hist += np.bincount(dist, minlength=257)
    pairs = hist.sum()
    add("false-model", "unrelated_pairs", pairs, "pairs")
    mean = float((hist * np.arange(257)).sum() / pairs)
    add("false-model", "unrelated_mean_distance", mean, "bits")
    add("false-model", "unrelated_min_distance", int(np.flatnonzero(hist)[0]), "bits")
    meet = [key_meet_probability(d, lsh.bits_per_key, lsh.flip_bits) for d in range(257)]
    per_pair = lsh.keys * float(np.dot(hist / pairs, meet))
    images_per_year = IMAGES_PER_DAY * 365
    for label, sd in (("corpus", 0.0), ("sd12-sensitivity", 12.0), ("sd16-sensitivity", 16.0)):
        p_pair = per_pair
        if sd:
            d = np.arange(257)
            normal = np.exp(-0.5 * ((d - 128) / sd) ** 2)
            p_pair = lsh.keys * float(np.dot(normal / normal.sum(), meet))
        p_image = 1 - math.exp(-LIST_SIZE * p_pair)
        lam = images_per_year * p_image
        add(label, "false_images_per_account_year", lam, "images")
        add(label, f"fp_accounts_per_year_t{t}", poisson_tail(lam, t), "fraction")
        smallest = next(k for k in range(1, 1001) if poisson_tail(lam, k) <= FP_TARGET)
        add(label, "smallest_t_for_1e-9", smallest, "images")

    # ------------------------------------------------------------------ table
    ctx.progress(f"building a blinded table for {n_list} list hashes ...")
    rng = DeterministicRng(seed)
    list_hashes = m.HashList.of([m.PdqHash(rng.random_bytes(32)) for _ in range(n_list)])
    key = m.ProviderKey.generate(rng)
    t0 = time.perf_counter()
    keys = list_hashes.keys(lsh)
    table, _ = m.build_table(keys, list_id=b"B" * 32, version=1, lsh=lsh, key=key, rng=rng,
                             prove=False)  # fmt: skip
    build_s = time.perf_counter() - t0
    add("table", "bytes_per_list_hash", table.nbytes() / n_list, "B")
    add("table", "build_ms_per_list_hash", build_s / n_list * 1e3, "ms")
    keys_per_hash = len(keys) / n_list
    from overt.safety.matching.table import table_slots  # noqa: PLC0415

    for n in (10**5, 10**6):
        add("table", f"bytes_at_{n:.0e}".replace("+0", ""),
            table_slots(round(keys_per_hash * n)) * 32, "B")  # fmt: skip
        add("table-naive", f"bytes_at_{n:.0e}".replace("+0", ""), NAIVE_KEYS * 32 * n, "B")

    # ------------------------------------------------------------------ timings
    orgs = [Ed25519PrivateKey.generate(rng) for _ in range(2)]
    policy = MatchingPolicy(True, t, tuple(NamedKey(f"org{i}", o.public_key)
                                           for i, o in enumerate(orgs)), 2)  # fmt: skip
    entry = m.commitment_entry(list_id=b"B" * 32, version=1, hash_list=list_hashes, table=table,
                               signers=orgs)  # fmt: skip
    verified = m.verify_table(table, entry, policy, lsh=lsh)
    weights = tuple(weights) if any(weights) else (1,)
    params = m.PsiParams(threshold=t, lsh=lsh, open_weights=weights[: lsh.vouchers])
    secret = m.MatchingSecret.generate(rng)
    pdq_s, voucher_s, server_s, sizes = [], [], [], []
    ctx.progress(f"timing {n_time} 1024x1024 images (PDQ + 64 vouchers, server open) ...")
    for i in range(n_time):
        img = synthetic_photo(seed + 7, i, size=(1024, 1024))
        t0 = time.perf_counter()
        digest = m.hash_rgb(img)
        t1 = time.perf_counter()
        payload = m.make_payload(img, digest)
        bundle = m.make_bundle(table=verified, secret=secret, device=0, sequence=i,
                               digest=digest, payload=payload, params=params, rng=rng)  # fmt: skip
        t2 = time.perf_counter()
        m.open_bundle(bundle, key, verified.commitment, params)
        t3 = time.perf_counter()
        pdq_s.append(t1 - t0)
        voucher_s.append(t2 - t1)
        server_s.append(t3 - t2)
        sizes.append(len(bundle.encode()))
    add("client", "pdq_ms_per_image", median(pdq_s) * 1e3, "ms")
    add("client", "vouchers_ms_per_image", median(voucher_s) * 1e3, "ms")
    add("client", "total_ms_per_image",
        median([a + b for a, b in zip(pdq_s, voucher_s, strict=True)]) * 1e3, "ms")  # fmt: skip
    add("client", "vouchers_per_image", lsh.vouchers, "vouchers")
    add("client", "bundle_bytes_per_image", median(sizes), "B")
    add("server", "open_ms_per_image", median(server_s) * 1e3, "ms")
    return rows


GROUP = Group(
    name=NAME,
    description="known-content matching: PDQ recall per transformation, false-match model, "
    "client and server cost, blinded-table size",
    run=run,
    order=60,
    parameters={
        "originals": f"listed originals of the corpus (default {DEFAULT_ORIGINALS})",
        "distractors": f"unrelated images for the false-match model (default "
        f"{DEFAULT_DISTRACTORS})",
        "timing_images": f"1024x1024 images timed (default {DEFAULT_TIMING_IMAGES})",
        "list_hashes": f"hashes of the table actually built (default {DEFAULT_LIST_HASHES})",
        "threshold": f"t for the false-positive account rate (default {DEFAULT_THRESHOLD})",
        "seed": "corpus seed (default 2024)",
        "lsh_keys": "keys per list hash (default 16), to compare parameter choices",
        "lsh_bits": "sampled bits per key (default 40)",
        "lsh_flips": "probed weak bits per key, 2^flips probes (default 2)",
    },
)
