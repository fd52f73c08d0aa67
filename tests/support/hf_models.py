"""Tiny random Hugging Face models for tests, written locally with save_pretrained (no hub):
the same script the examples tell users to run (examples/models/make_tiny_llama.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "models" / "make_tiny_llama.py"


def tiny_llama_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_tiny_llama", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_tiny_llama(out: Path, **kw: object) -> Path:
    """config.json, model.safetensors and tokenizer files of a 2-layer, 32-wide Llama."""
    return tiny_llama_module().write(out, **kw)
