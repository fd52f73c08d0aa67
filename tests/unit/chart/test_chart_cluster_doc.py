"""docs/cluster.md: every command in it is one the chart's integration test runs."""

from __future__ import annotations

from cluster_doc import APPLY_CRD, ELSEWHERE, EXERCISED, doc_commands


def test_every_documented_command_is_exercised() -> None:
    commands = doc_commands()
    unknown = [c for c in commands if c not in EXERCISED and c not in ELSEWHERE]
    assert not unknown, f"docs/cluster.md has commands no test runs: {unknown}"


def test_every_exercised_command_is_documented() -> None:
    """The CRD upgrade command is in prose (inline code), the rest in console blocks."""
    missing = EXERCISED - set(doc_commands()) - {APPLY_CRD}
    assert not missing, f"tests run commands docs/cluster.md no longer shows: {missing}"
    from cluster_doc import DOC

    assert f"`{APPLY_CRD}`" in DOC.read_text()
