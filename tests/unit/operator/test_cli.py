"""`python -m kubetrain_operator` options: one namespace, several, or all."""

from __future__ import annotations

import pytest

from kubetrain_operator.__main__ import parse_args


def test_one_several_or_all_namespaces():
    assert parse_args(["-n", "a"]).namespace == ["a"]
    assert parse_args(["-n", "a", "--namespace", "b,c"]).namespace == ["a", "b,c"]
    assert parse_args(["-A"]).all_namespaces


def test_a_scope_is_required_and_exclusive(capsys: pytest.CaptureFixture[str]):
    for argv in ([], ["-A", "-n", "a"]):
        with pytest.raises(SystemExit):
            parse_args(argv)
    capsys.readouterr()
