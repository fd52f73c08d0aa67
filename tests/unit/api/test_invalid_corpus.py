"""Every invalid spec fails `kubetrain validate --cluster` with exit code 2, each expected field
path and message, one line per issue and no traceback, fast; every valid spec passes it."""

from __future__ import annotations

import pytest
from spec_cases import invalid_cases, valid_cases, validate_locally

CASES = invalid_cases()
VALID = valid_cases()


def test_corpora_are_large_enough() -> None:
    assert len(CASES) >= 100
    assert len(VALID) >= 40
    names = [c.name for c in CASES + VALID]
    assert len(set(names)) == len(names), "case names must be unique"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_invalid_spec_reports_each_error(case, tmp_path) -> None:
    verdict = validate_locally(case, tmp_path)
    assert verdict.code == 2, verdict.stderr
    assert verdict.seconds < 5.0, f"took {verdict.seconds:.1f}s"  # hostile files took minutes
    found = [(field, message) for _, field, message in verdict.issues]
    for path, fragment in case.expect:
        matches = [m for p, m in found if p == path and fragment in m]
        assert matches, f"expected {path}: ...{fragment}... among {found}"
    assert verdict.issues and all(message for _, _, message in verdict.issues), verdict.stderr


@pytest.mark.parametrize("case", VALID, ids=[c.name for c in VALID])
def test_valid_spec_passes(case, tmp_path) -> None:
    verdict = validate_locally(case, tmp_path)
    assert verdict.code == 0, verdict.stderr
