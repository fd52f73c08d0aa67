"""Every generated manifest means the same to the API server (YAML 1.1: a bare y is a boolean)
as to the generator that wrote it, so `kubectl apply -f` of any of them gets what was meant."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kubetrain.api.yamlsource import parse_documents

ROOT = Path(__file__).resolve().parents[2]
GENERATED = sorted([*ROOT.glob("crds/*.yaml"), *ROOT.glob("charts/kubetrain/crds/*.yaml"),
                    *ROOT.glob("deploy/kustomize/base/*.yaml")])


def test_there_are_generated_files() -> None:
    assert len(GENERATED) >= 5


@pytest.mark.parametrize("path", GENERATED, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_api_server_reads_what_was_written(path: Path) -> None:
    text = path.read_text()
    written = [d for d in yaml.safe_load_all(text) if d is not None]
    as_server_reads = [d.data for d in parse_documents(text, str(path)) if d.data is not None]
    assert as_server_reads == written
