"""Every inclusion and consistency vector of transparency-dev/merkle (see tests/vectors/README.md).

Happy paths must verify; every ``wantErr`` vector must be rejected with InvalidMessage. The
data's conventions: a consistency proof from size 0 is an error; leaf hashes are 32 bytes.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from overt.errors import InvalidMessage
from overt.transparency.merkle import verify_consistency, verify_inclusion

TESTDATA = Path(__file__).resolve().parent.parent / "vectors" / "merkle" / "testdata"
INCLUSION = sorted((TESTDATA / "inclusion").rglob("*.json"))
CONSISTENCY = sorted((TESTDATA / "consistency").rglob("*.json"))


def _b64(s: str) -> bytes:
    return base64.b64decode(s, validate=True)


def _proof(v: dict[str, Any]) -> list[bytes]:
    return [_b64(p) for p in (v["proof"] or [])]


def _id(path: Path) -> str:
    return str(path.relative_to(TESTDATA))


def test_all_vector_files_are_present() -> None:
    # 197 files in the upstream testdata at the pinned commit, LICENSE aside.
    assert len(INCLUSION) + len(CONSISTENCY) == 196
    assert (TESTDATA.parent / "LICENSE").is_file()


@pytest.mark.parametrize("path", INCLUSION, ids=_id)
def test_inclusion_vector(path: Path) -> None:
    v = json.loads(path.read_text())
    args = (_b64(v["leafHash"]), v["leafIdx"], v["treeSize"], _proof(v), _b64(v["root"]))
    if v["wantErr"]:
        with pytest.raises(InvalidMessage):
            verify_inclusion(*args)
    else:
        verify_inclusion(*args)


@pytest.mark.parametrize("path", CONSISTENCY, ids=_id)
def test_consistency_vector(path: Path) -> None:
    v = json.loads(path.read_text())
    args = (v["size1"], v["size2"], _proof(v), _b64(v["root1"]), _b64(v["root2"]))
    if v["wantErr"]:
        with pytest.raises(InvalidMessage):
            verify_consistency(*args)
    else:
        verify_consistency(*args)


def test_vectors_cover_both_outcomes() -> None:
    outcomes = [json.loads(p.read_text())["wantErr"] for p in INCLUSION + CONSISTENCY]
    assert outcomes.count(False) >= 10
    assert outcomes.count(True) >= 150
