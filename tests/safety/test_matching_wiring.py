"""The pieces that wire matching into a deployment: parameters from the manifest, the stored
record of an opened image, the package formats, and the organisations' check before signing."""

from __future__ import annotations

import contextlib
import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from overt.crypto import DeterministicRng
from overt.errors import DecodeError, InvalidMessage, LocalError
from overt.safety.matching import (
    HashList,
    LshParams,
    MatchingSecret,
    ProviderKey,
    PsiParams,
    TableOpening,
    hash_rgb,
    make_bundle,
    make_payload,
    open_bundle,
    verify_table,
)
from overt.safety.matching.deployment import (
    decode_opened,
    encode_opened,
    opened_device,
    psi_params,
)
from overt.safety.matching.package import (
    ListSignature,
    Statement,
    assemble,
    check_and_sign,
    decode_opening,
    encode_opening,
    list_bytes,
    list_from_bytes,
)
from overt.transparency.manifest import MatchingParameters, MatchingPolicy

from . import matching_kit as kit


def test_parameters_from_the_manifest_are_the_cores_defaults() -> None:
    params = psi_params(kit.orgs().policy())
    assert params.lsh == LshParams()
    default = PsiParams(kit.THRESHOLD)
    assert (params.dhf_width, params.synthetic_one_in, params.generation_images) == (
        default.dhf_width, default.synthetic_one_in, default.generation_images,
    )  # fmt: skip
    custom = dataclasses.replace(
        kit.orgs().policy(), parameters=MatchingParameters(lsh_keys=8, lsh_flip_bits=1)
    )
    assert psi_params(custom).lsh.vouchers == 16
    assert len(psi_params(custom).open_weights) <= 16
    with pytest.raises(LocalError):
        psi_params(MatchingPolicy())


@given(
    inputs=st.lists(st.binary(max_size=40), max_size=20),
    proofs=st.lists(st.binary(max_size=100), max_size=5),
)
def test_an_opening_round_trips(inputs: list[bytes], proofs: list[bytes]) -> None:
    opening = TableOpening(tuple(inputs), tuple(proofs))
    back = decode_opening(encode_opening(opening))
    assert (back.inputs, back.proofs) == (opening.inputs, opening.proofs)


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_garbage_openings_and_statements_are_decode_errors(data: bytes) -> None:
    """Any bytes decode or raise DecodeError — never another exception."""
    for decode in (decode_opening, Statement.from_json, ListSignature.from_json):
        with contextlib.suppress(DecodeError):
            decode(data)


@given(
    version=st.integers(0, 2**32 - 1),
    count=st.integers(0, 2**32 - 1),
    fields=st.lists(st.binary(min_size=32, max_size=32), min_size=4, max_size=4),
)
def test_a_statement_round_trips(version: int, count: int, fields: list[bytes]) -> None:
    s = Statement(fields[0], version, count, fields[1], fields[2], fields[3])
    assert Statement.from_json(s.to_json()) == s


def test_the_stored_list_round_trips() -> None:
    hashes = kit.hash_list()
    assert list_from_bytes(list_bytes(hashes)) == hashes
    with pytest.raises(DecodeError):
        list_from_bytes(b"x" * 33)


def test_an_opened_image_record_round_trips() -> None:
    o = kit.orgs()
    key = ProviderKey.generate(DeterministicRng(1))
    package, entry = kit.signed_version(o, key)
    params = psi_params(o.policy())
    verified = verify_table(package.table, entry, o.policy(), lsh=params.lsh)
    rgb = kit.near_duplicate(0)
    digest = hash_rgb(rgb)
    bundle = make_bundle(
        table=verified, secret=MatchingSecret.generate(DeterministicRng(2)), device=1,
        sequence=0, digest=digest, payload=make_payload(rgb, digest), params=params,
        rng=DeterministicRng(3),
    )  # fmt: skip
    opened = open_bundle(bundle, key, verified.commitment, params)
    assert opened is not None
    record = encode_opened(opened, 7)
    back = decode_opened(record, params)
    assert opened_device(record) == 7
    assert (back.image_id, back.x, back.y, back.k_img, back.payload, back.generation) == (
        opened.image_id, opened.x, opened.y, opened.k_img, opened.payload, opened.generation,
    )  # fmt: skip
    assert (back.row == opened.row).all()
    with pytest.raises(DecodeError):
        decode_opened(record[:-1], params)


def test_an_organisation_signs_only_exactly_its_vetted_list() -> None:
    o = kit.orgs()
    key = ProviderKey.generate(DeterministicRng(1))
    package, _ = kit.signed_version(o, key)
    org_key, name = o.keys[0], o.names[0]
    # A list with one hash fewer than the table holds (the provider added one): refused.
    fewer = HashList(package.hashes.hashes[1:])
    with pytest.raises(InvalidMessage):
        check_and_sign(hashes=fewer, table=package.table, opening=package.opening,
                       statement=package.statement, key=org_key, name=name)  # fmt: skip
    # The right table, but a statement claiming another list digest: refused.
    wrong = dataclasses.replace(package.statement, list_digest=b"\x00" * 32)
    with pytest.raises(InvalidMessage):
        check_and_sign(hashes=package.hashes, table=package.table, opening=package.opening,
                       statement=wrong, key=org_key, name=name)  # fmt: skip
    good = check_and_sign(hashes=package.hashes, table=package.table, opening=package.opening,
                          statement=package.statement, key=org_key, name=name)  # fmt: skip
    assert ListSignature.from_json(good.to_json()) == good
    # A forged signature is left out of the entry; none at all is an error.
    forged = ListSignature("Mallory", o.keys[1].public_key.raw, b"\x01" * 64)
    entry = assemble(package.statement, [good, forged])
    assert [k for k, _ in entry.signatures] == [org_key.public_key.raw]
    with pytest.raises(LocalError):
        assemble(package.statement, [forged])
