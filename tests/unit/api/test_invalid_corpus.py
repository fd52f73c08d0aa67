"""Every invalid spec fails locally with each expected field path and message."""

from __future__ import annotations

import pytest
import yaml
from spec_cases import invalid_cases

from kubetrain.api.errors import SpecError
from kubetrain.api.loader import load_text

CASES = invalid_cases()


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 25
    assert len({c.name for c in CASES}) == len(CASES), "case names must be unique"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_invalid_spec_reports_each_error(case) -> None:
    with pytest.raises(SpecError) as info:
        load_text(yaml.safe_dump(case.document, sort_keys=False), source="case.yaml")
    found = [(i.path, i.message) for i in info.value.issues]
    for path, fragment in case.expect:
        matches = [m for p, m in found if p == path and fragment in m]
        assert matches, f"expected {path}: ...{fragment}... among {found}"
    assert all(i.line for i in info.value.issues), "every issue names a line"
