"""Accountable lists: import formats, the organisations' check of a table, signed and logged
commitments, the client's refusal (and why), deltas."""

from __future__ import annotations

import pytest

from overt.crypto import DeterministicRng, Ed25519PrivateKey, Point
from overt.errors import DecodeError, InvalidMessage
from overt.safety.matching import (
    BlindedTable,
    HashList,
    ListFormat,
    ListImportError,
    ListRefused,
    LshParams,
    PdqHash,
    ProviderKey,
    RefusalReason,
    TableDelta,
    apply_delta,
    build_table,
    commitment_entry,
    detect_format,
    import_list,
    update_table,
    verify_opening,
    verify_table,
)
from overt.safety.matching.table import key_point
from overt.transparency.entries import MatchingListCommitment, decode_entry
from overt.transparency.manifest import MatchingPolicy, NamedKey

LSH = LshParams(keys=4, flip_bits=1)
LIST_ID = b"N" * 32


def _hashes(n: int, seed: int = 0) -> list[PdqHash]:
    rng = DeterministicRng(seed)
    return [PdqHash(rng.random_bytes(32)) for _ in range(n)]


@pytest.fixture(scope="module")
def setup() -> dict[str, object]:
    rng = DeterministicRng(1)
    key = ProviderKey.generate(rng)
    hashes = HashList.of(_hashes(6))
    table, opening = build_table(hashes.keys(LSH), list_id=LIST_ID, version=1, lsh=LSH, key=key,
                                 rng=rng)  # fmt: skip
    orgs = [Ed25519PrivateKey.generate(rng) for _ in range(3)]
    policy = MatchingPolicy(
        True, 5, tuple(NamedKey(n, o.public_key) for n, o in zip("ABC", orgs, strict=True)), 2
    )
    return {"rng": rng, "key": key, "hashes": hashes, "table": table, "opening": opening,
            "orgs": orgs, "policy": policy}  # fmt: skip


# ----------------------------------------------------------------------------- import

HEXES = [h.hex() for h in _hashes(3, 7)]


def test_pdq_hex_lines_with_quality_and_comments() -> None:
    text = f"# a list\n{HEXES[0]}\n\n{HEXES[1]},90,bridge.jpg\n{HEXES[2]},20\n{HEXES[0].upper()}\n"
    assert detect_format(text) is ListFormat.PDQ_HEX
    hl, report = import_list(text)
    assert {h.hex() for h in hl.hashes} == set(HEXES[:2])
    assert (report.accepted, report.duplicates, report.low_quality) == (2, 1, 1)


def test_threatexchange_csv() -> None:
    text = (
        "signal_type,signal_str,collab,category,tags\n"
        f"pdq,{HEXES[0]},Sample,ADULT_EXPLOITATION,a b\n"
        "video_md5,0123456789abcdef0123456789abcdef,Sample,SPAM,\n"
        f"pdq,{HEXES[1]},Sample,ADULT_EXPLOITATION,\n"
    )
    assert detect_format(text) is ListFormat.TE_CSV
    hl, report = import_list(text)
    assert len(hl) == 2 and report.other_signal_types == 1


def test_hma_csv() -> None:
    text = (
        f"{HEXES[0]},1234567890,987,2021-01-01,tag1 tag2\n{HEXES[2]},1234567891,988,2021-01-02,\n"
    )
    assert detect_format(text) is ListFormat.HMA_CSV
    hl, _ = import_list(text)
    assert {h.hex() for h in hl.hashes} == {HEXES[0], HEXES[2]}


@pytest.mark.parametrize(
    ("text", "fmt", "line"),
    [
        (f"{HEXES[0]}\nnot-a-hash\n", ListFormat.PDQ_HEX, 2),
        (f"{HEXES[0]},x\n", ListFormat.PDQ_HEX, 1),
        (f"{HEXES[0]},101\n", ListFormat.PDQ_HEX, 1),
        ("pdq,abc\n", ListFormat.TE_CSV, 1),
        (f"{HEXES[0]}\n", ListFormat.HMA_CSV, 1),
    ],
)
def test_malformed_list_lines_are_named(text: str, fmt: ListFormat, line: int) -> None:
    with pytest.raises(ListImportError) as err:
        import_list(text, fmt)
    assert err.value.line == line
    assert isinstance(err.value, DecodeError)


def test_list_digest_is_canonical() -> None:
    a = HashList.of(_hashes(5))
    b = HashList.of(list(reversed(_hashes(5))) + _hashes(2))
    assert a.digest() == b.digest()
    assert HashList.of(_hashes(4)).digest() != a.digest()


# ----------------------------------------------------------------------------- organisations


def test_the_organisations_check_the_opening_of_a_table(setup: dict) -> None:
    table, opening, hashes = setup["table"], setup["opening"], setup["hashes"]
    verify_opening(table, opening, hashes.keys(LSH))
    # A table with an extra, hidden key: a filler slot replaced by α·H(extra key).
    extra = b"\x00" + bytes(5)
    fillers = [i for i, x in enumerate(opening.inputs) if x.startswith(b"\xff")]
    j = fillers[0]
    forged_slots = bytearray(table.slots)
    forged_slots[32 * j : 32 * j + 32] = setup["key"].blind(key_point(extra)).raw
    forged = BlindedTable(table.header, bytes(forged_slots))
    with pytest.raises(InvalidMessage):
        verify_opening(forged, opening, hashes.keys(LSH))
    # The list the organisations vetted is not the list in the table.
    with pytest.raises(InvalidMessage):
        verify_opening(table, opening, HashList.of(_hashes(5)).keys(LSH))


# ----------------------------------------------------------------------------- the client's check


def _entry(setup: dict, signers: list[Ed25519PrivateKey], table: BlindedTable | None = None):
    return commitment_entry(list_id=LIST_ID, version=1, hash_list=setup["hashes"],
                            table=table or setup["table"], signers=signers)  # fmt: skip


def test_a_table_signed_by_two_organisations_and_logged_is_accepted(setup: dict) -> None:
    entry = _entry(setup, setup["orgs"][:2])
    logged = decode_entry(entry.encode())  # as the client reads it from the log
    assert isinstance(logged, MatchingListCommitment)
    verified = verify_table(setup["table"], logged, setup["policy"], lsh=LSH)
    assert verified.signed_by == ("A", "B")
    assert verified.commitment == setup["table"].commitment()


def test_a_list_signed_by_too_few_organisations_is_refused(setup: dict) -> None:
    outsider = Ed25519PrivateKey.generate(DeterministicRng(5))
    for signers in ([setup["orgs"][0]], [setup["orgs"][0], outsider]):
        with pytest.raises(ListRefused) as err:
            verify_table(setup["table"], _entry(setup, signers), setup["policy"], lsh=LSH)
        assert err.value.reason is RefusalReason.TOO_FEW_SIGNERS
        assert "signed by 1 of the 2" in str(err.value)
    # A quorum of 1 in the manifest does not lower the floor of two organisations.
    lax = MatchingPolicy(True, 5, setup["policy"].list_signers, 1)
    with pytest.raises(ListRefused):
        verify_table(setup["table"], _entry(setup, [setup["orgs"][0]]), lax, lsh=LSH)


def test_a_forged_signature_does_not_count(setup: dict) -> None:
    entry = _entry(setup, setup["orgs"][:2])
    (k0, _), second = entry.signatures
    bad = MatchingListCommitment(entry.list_id, entry.version, entry.hash_count,
                                 entry.table_commitment, entry.list_digest, entry.previous,
                                 ((k0, bytes(64)), second))  # fmt: skip
    with pytest.raises(ListRefused) as err:
        verify_table(setup["table"], bad, setup["policy"], lsh=LSH)
    assert err.value.reason is RefusalReason.TOO_FEW_SIGNERS


def test_a_table_that_does_not_match_the_logged_commitment_is_refused(setup: dict) -> None:
    entry = _entry(setup, setup["orgs"])
    table = setup["table"]
    tampered = bytearray(table.slots)
    tampered[0:32] = Point.base_mul(setup["key"].alpha).raw
    with pytest.raises(ListRefused) as err:
        verify_table(BlindedTable(table.header, bytes(tampered)), entry, setup["policy"], lsh=LSH)
    assert err.value.reason is RefusalReason.TABLE_MISMATCH
    assert "transparency log" in str(err.value)


def test_other_refusals_say_why(setup: dict) -> None:
    entry = _entry(setup, setup["orgs"])
    with pytest.raises(ListRefused) as err:
        verify_table(setup["table"], entry, MatchingPolicy(), lsh=LSH)
    assert err.value.reason is RefusalReason.MATCHING_OFF
    with pytest.raises(ListRefused) as err:
        verify_table(setup["table"], entry, setup["policy"], lsh=LshParams())
    assert err.value.reason is RefusalReason.PARAMETERS
    with pytest.raises(ListRefused) as err:
        verify_table(setup["table"], entry, setup["policy"], lsh=LSH, pinned_version=2)
    assert err.value.reason is RefusalReason.ROLLBACK


# ----------------------------------------------------------------------------- deltas


def test_updates_ship_as_deltas_that_the_client_checks(setup: dict) -> None:
    rng, key = setup["rng"], setup["key"]
    old, opening = setup["table"], setup["opening"]
    new_hashes = HashList.of(list(setup["hashes"].hashes[1:]) + _hashes(1, 9))
    new, new_opening, delta = update_table(old, opening, new_hashes.keys(LSH), version=2,
                                           key=key, rng=rng)  # fmt: skip
    verify_opening(new, new_opening, new_hashes.keys(LSH))
    assert 0 < len(delta.writes) < new.header.n_slots // 2
    shipped = TableDelta.decode(delta.encode())
    rebuilt = apply_delta(old, shipped)
    assert rebuilt.commitment() == new.commitment()
    entry = commitment_entry(list_id=LIST_ID, version=2, hash_list=new_hashes, table=rebuilt,
                             previous=old.commitment(), signers=setup["orgs"][1:])  # fmt: skip
    assert verify_table(rebuilt, entry, setup["policy"], lsh=LSH, pinned_version=1)
    with pytest.raises(InvalidMessage):
        apply_delta(new, shipped)  # a delta applies to its base only
    assert BlindedTable.decode(new.encode()).commitment() == new.commitment()
