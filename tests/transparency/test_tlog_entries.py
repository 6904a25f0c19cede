"""The transparency log's typed entries: canonical encoding, strict decoding, commitments."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from overt.crypto import DeterministicRng, sha256
from overt.crypto.vrf import prove, verify, vrf_keygen
from overt.errors import DecodeError, InvalidMessage, LocalError
from overt.transparency.entries import (
    ENTRY_VERSION,
    MAX_COUNTER_NAME_BYTES,
    MAX_COUNTERS,
    MAX_ENTRY_BYTES,
    MAX_MANIFEST_BYTES,
    MAX_OPENING_BYTES,
    AccessReceipt,
    AggregateStatistics,
    Entry,
    EntryType,
    EpochKey,
    KeyDirectoryUpdate,
    ManifestEntry,
    MatchingListCommitment,
    WarrantCommitment,
    WarrantUnsealing,
    decode_entry,
    encode_entry,
    kt_commitment,
    kt_label,
    warrant_targets_commitment,
)

U64 = st.integers(0, (1 << 64) - 1)
D32 = st.binary(min_size=32, max_size=32)
COUNTER_NAME = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_.-", min_size=1, max_size=64)


@st.composite
def statistics(draw: st.DrawFn) -> AggregateStatistics:
    start = draw(st.integers(0, (1 << 64) - 2))
    end = draw(st.integers(start + 1, (1 << 64) - 1))
    names = sorted(draw(st.sets(COUNTER_NAME, max_size=MAX_COUNTERS)))
    return AggregateStatistics(start, end, tuple((n, draw(U64)) for n in names))


@st.composite
def epoch_keys(draw: st.DrawFn) -> EpochKey:
    not_before = draw(st.integers(0, (1 << 64) - 2))
    retain_until = draw(st.integers(not_before + 1, (1 << 64) - 1))
    epoch = draw(st.integers(0, (1 << 32) - 1))
    return EpochKey(epoch, draw(D32), draw(D32), not_before, retain_until)


@st.composite
def matching_lists(draw: st.DrawFn) -> MatchingListCommitment:
    keys = sorted(draw(st.sets(D32, min_size=1, max_size=4)))
    sigs = tuple((k, draw(st.binary(min_size=64, max_size=64))) for k in keys)
    u32 = st.integers(0, (1 << 32) - 1)
    return MatchingListCommitment(
        draw(D32), draw(u32), draw(u32), draw(D32), draw(D32), draw(D32), sigs
    )


ENTRIES: st.SearchStrategy[Entry] = st.one_of(
    st.builds(ManifestEntry, st.binary(min_size=1, max_size=2000)),
    st.builds(KeyDirectoryUpdate, D32, D32, U64, D32, D32),
    st.builds(WarrantCommitment, D32, D32, U64, U64, D32),
    st.builds(WarrantUnsealing, D32, st.binary(min_size=1, max_size=500)),
    st.builds(AccessReceipt, D32, D32, U64, D32),
    statistics(),
    epoch_keys(),
    matching_lists(),
)


def one_of_each() -> list[Entry]:
    return [
        ManifestEntry(b"signed manifest"),
        KeyDirectoryUpdate(b"L" * 32, b"K" * 32, 7, b"D" * 32, b"C" * 32),
        WarrantCommitment(b"W" * 32, b"J" * 32, 86_400 * 30, 1_800_000_000, b"T" * 32),
        WarrantUnsealing(b"W" * 32, b"opening"),
        AccessReceipt(b"W" * 32, b"U" * 32, 12, b"X" * 32),
        AggregateStatistics(1_700_000_000, 1_702_592_000, (("bans", 3), ("reports", 1200))),
        EpochKey(677, b"Y" * 32, b"H" * 32, 1_754_784_000, 1_765_152_000),
        MatchingListCommitment(
            b"I" * 32, 3, 1000, b"T" * 32, b"D" * 32, bytes(32), ((b"A" * 32, b"S" * 64),)
        ),
    ]


# ----------------------------------------------------------------------------- round trips


@given(ENTRIES)
def test_every_entry_round_trips(entry: Entry) -> None:
    data = entry.encode()
    assert encode_entry(entry) == data
    assert data[0] == ENTRY_VERSION
    assert data[1] == entry.ENTRY_TYPE
    assert decode_entry(data) == entry
    assert decode_entry(bytearray(data)) == entry
    assert len(data) <= MAX_ENTRY_BYTES


def test_every_type_has_a_class_and_a_pinned_encoding() -> None:
    entries = one_of_each()
    assert sorted(e.ENTRY_TYPE for e in entries) == sorted(EntryType)
    # Pinned: a change to the encoding must be a deliberate new version, not an accident.
    expected = [
        "0101000f" + b"signed manifest".hex(),
        "0102" + "4c" * 32 + "4b" * 32 + "0000000000000007" + "44" * 32 + "43" * 32,
        "0103" + "57" * 32 + "4a" * 32 + "0000000000278d00" + "000000006b49d200" + "54" * 32,
        "0104" + "57" * 32 + "0007" + b"opening".hex(),
        "0105" + "57" * 32 + "55" * 32 + "000000000000000c" + "58" * 32,
        "0106"
        + "000000006553f100"
        + "00000000657b7e00"
        + "02"
        + "04"
        + b"bans".hex()
        + "0000000000000003"
        + "07"
        + b"reports".hex()
        + "00000000000004b0",
        "0107" + "000002a5" + "59" * 32 + "48" * 32 + "000000006897e100" + "0000000069361500",
        "0108"
        + "49" * 32
        + "00000003"
        + "000003e8"
        + "54" * 32
        + "44" * 32
        + "00" * 32
        + "01"
        + "41" * 32
        + "53" * 64,
    ]
    assert [e.encode().hex() for e in entries] == expected


# ----------------------------------------------------------------------------- strict decoding


@pytest.mark.parametrize("entry", one_of_each(), ids=lambda e: type(e).__name__)
def test_every_truncation_and_any_trailing_byte_is_refused(entry: Entry) -> None:
    data = entry.encode()
    for n in range(len(data)):
        with pytest.raises(DecodeError):
            decode_entry(data[:n])
    with pytest.raises(DecodeError):
        decode_entry(data + b"\x00")


@pytest.mark.parametrize("entry_type", [0, 9, 0x80, 0xFF])
def test_an_unknown_entry_type_is_a_decode_error(entry_type: int) -> None:
    body = one_of_each()[1].encode()[2:]
    with pytest.raises(DecodeError, match="unknown entry type"):
        decode_entry(bytes([ENTRY_VERSION, entry_type]) + body)


@pytest.mark.parametrize("version", [0, 2, 0xFF])
def test_an_unknown_version_is_a_decode_error(version: int) -> None:
    data = one_of_each()[0].encode()
    with pytest.raises(DecodeError, match="version"):
        decode_entry(bytes([version]) + data[1:])


def test_decoding_refuses_non_bytes_and_oversized_input() -> None:
    with pytest.raises(DecodeError):
        decode_entry("0101")  # type: ignore[arg-type]
    with pytest.raises(DecodeError):
        decode_entry(b"\x01\x01" + b"\x00" * MAX_ENTRY_BYTES)


def statistics_bytes(counters: list[tuple[bytes, int]], start: int = 1, end: int = 2) -> bytes:
    out = b"\x01\x06" + start.to_bytes(8, "big") + end.to_bytes(8, "big")
    out += bytes([len(counters)])
    for name, value in counters:
        out += bytes([len(name)]) + name + value.to_bytes(8, "big")
    return out


@pytest.mark.parametrize(
    "data",
    [
        statistics_bytes([(b"b", 1), (b"a", 2)]),  # out of order
        statistics_bytes([(b"a", 1), (b"a", 2)]),  # repeated
        statistics_bytes([(b"A", 1)]),  # upper case
        statistics_bytes([(b"caf\xc3\xa9", 1)]),  # not ASCII
        statistics_bytes([(b"", 1)]),  # empty name
        statistics_bytes([(b"x" * (MAX_COUNTER_NAME_BYTES + 1), 1)]),
        statistics_bytes([(b"c%03d" % i, i) for i in range(MAX_COUNTERS + 1)]),
        statistics_bytes([], start=5, end=5),  # empty period
        b"\x01\x01\x00\x00",  # empty manifest
        b"\x01\x04" + b"W" * 32 + b"\x00\x00",  # empty opening
        b"\x01\x01" + (MAX_MANIFEST_BYTES + 1).to_bytes(2, "big") + b"m" * (MAX_MANIFEST_BYTES + 1),
        b"\x01\x04" + b"W" * 32 + (MAX_OPENING_BYTES + 1).to_bytes(2, "big") + b"o" * 20000,
        # an epoch key retained no later than it starts
        b"\x01\x07" + bytes(4) + b"Y" * 32 + b"H" * 32 + (5).to_bytes(8, "big") * 2,
    ],
)
def test_non_canonical_or_out_of_bounds_bodies_are_decode_errors(data: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_entry(data)


def test_constructors_refuse_bad_fields() -> None:
    bad = [
        lambda: ManifestEntry(b""),
        lambda: ManifestEntry(b"m" * (MAX_MANIFEST_BYTES + 1)),
        lambda: KeyDirectoryUpdate(b"L" * 31, b"K" * 32, 1, b"D" * 32, b"C" * 32),
        lambda: KeyDirectoryUpdate(b"L" * 32, b"K" * 32, -1, b"D" * 32, b"C" * 32),
        lambda: KeyDirectoryUpdate(b"L" * 32, b"K" * 32, 1 << 64, b"D" * 32, b"C" * 32),
        lambda: KeyDirectoryUpdate(b"L" * 32, b"K" * 32, True, b"D" * 32, b"C" * 32),
        lambda: WarrantCommitment(b"W" * 32, b"J" * 33, 1, 2, b"T" * 32),
        lambda: WarrantUnsealing(b"W" * 32, b""),
        lambda: AccessReceipt(b"W" * 32, b"U" * 32, -5, b"X" * 32),
        lambda: AggregateStatistics(2, 1, ()),
        lambda: AggregateStatistics(1, 2, (("b", 1), ("a", 1))),
        lambda: AggregateStatistics(1, 2, [("a", 1)]),  # type: ignore[arg-type]
        lambda: AggregateStatistics(1, 2, (("a b", 1),)),
        lambda: AggregateStatistics(1, 2, (("a", 1 << 64),)),
        lambda: EpochKey(-1, b"Y" * 32, b"H" * 32, 1, 2),
        lambda: EpochKey(1 << 32, b"Y" * 32, b"H" * 32, 1, 2),
        lambda: EpochKey(True, b"Y" * 32, b"H" * 32, 1, 2),  # type: ignore[arg-type]
        lambda: EpochKey(1, b"Y" * 31, b"H" * 32, 1, 2),
        lambda: EpochKey(1, b"Y" * 32, b"H" * 33, 1, 2),
        lambda: EpochKey(1, b"Y" * 32, b"H" * 32, 2, 2),
        lambda: EpochKey(1, b"Y" * 32, b"H" * 32, 0, 1 << 64),
    ]
    for make in bad:
        with pytest.raises(LocalError):
            make()
    with pytest.raises(LocalError):
        encode_entry(b"not an entry")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- commitments


def test_key_directory_label_commitment_and_opening() -> None:
    rng = DeterministicRng("kt")
    sk, pk = vrf_keygen(rng)
    account_id = b"alice@example"
    beta = verify(pk, account_id, prove(sk, account_id))  # what a client checks on lookup
    label = kt_label(beta)
    assert label == beta[:32]
    opening = rng.random_bytes(32)
    commitment = kt_commitment(opening, account_id)
    assert commitment == sha256(b"Overt_KT_commit_v1" + opening + account_id)
    update = KeyDirectoryUpdate(label, b"K" * 32, 1, sha256(b"device list"), commitment)
    update.check_opening(opening, account_id)
    for wrong_opening, wrong_id in (
        (rng.random_bytes(32), account_id),
        (opening, b"mallory@example"),
        (opening[:31], account_id),
        (opening, b""),
    ):
        with pytest.raises(InvalidMessage):
            update.check_opening(wrong_opening, wrong_id)
    # The public entry does not contain the account id.
    assert account_id not in update.encode()
    with pytest.raises(LocalError):
        kt_label(beta[:32])
    with pytest.raises(LocalError):
        kt_commitment(opening, b"x" * 65)


def test_warrant_unsealing_opens_its_commitment_only() -> None:
    opening = b"\x07" * 32 + b"targets: alice, bob"
    commitment = WarrantCommitment(
        b"W" * 32, b"J" * 32, 3600, 1_900_000_000, warrant_targets_commitment(opening)
    )
    assert commitment.targets_commitment == sha256(b"Overt_warrant_targets_v1" + opening)
    WarrantUnsealing(b"W" * 32, opening).check_opens(commitment)
    with pytest.raises(InvalidMessage):
        WarrantUnsealing(b"V" * 32, opening).check_opens(commitment)
    with pytest.raises(InvalidMessage):
        WarrantUnsealing(b"W" * 32, opening + b"!").check_opens(commitment)


def test_matching_list_commitment_statement_and_signature_order() -> None:
    sigs = ((b"A" * 32, b"S" * 64), (b"B" * 32, b"s" * 64))
    entry = MatchingListCommitment(b"I" * 32, 3, 1000, b"T" * 32, b"D" * 32, bytes(32), sigs)
    # The statement is the label and the fields, without the signatures.
    assert entry.statement() == b"Overt_MatchingList_v1" + entry.encode()[2 : 2 + 32 + 8 + 96]
    one = MatchingListCommitment(b"I" * 32, 3, 1000, b"T" * 32, b"D" * 32, bytes(32), sigs[:1])
    assert one.statement() == entry.statement()
    for bad in (sigs[::-1], (sigs[0], sigs[0]), ()):
        with pytest.raises(LocalError):
            MatchingListCommitment(b"I" * 32, 3, 1000, b"T" * 32, b"D" * 32, bytes(32), bad)
    with pytest.raises(LocalError):
        MatchingListCommitment(b"I" * 32, 1 << 32, 0, b"T" * 32, b"D" * 32, bytes(32), sigs)
    data = bytearray(entry.encode())
    data[2 + 32 + 8 + 96] = 0  # zero signatures
    with pytest.raises(DecodeError):
        decode_entry(bytes(data[: 2 + 32 + 8 + 96 + 1]))
