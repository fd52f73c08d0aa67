"""The spec corpora (tests/cases/invalid_specs.yaml and valid_specs.yaml), built into YAML files.

Shared by the local tests (loader, `kubetrain validate`) and the API-server parity test, so both
sides read the same bytes.

A case starts from `base` (a file in examples/) or `text` (a whole document). Structured edits
`rename`, `unset` and `set` (dotted paths) apply to the parsed base, which is then written back
as YAML; text edits `replace` ([old, new] pairs, each old must occur) and `append` apply to the
text; `generate` builds hostile text (see GENERATORS); `encoding` writes the text in another
encoding than UTF-8. `expect` lists [field path, message fragment] pairs `kubetrain validate`
must report (invalid corpus). `server` is `reject` or `accept` when the API server agrees with
kubetrain, else a mapping {accepts: why} / {rejects: why} saying why the verdicts differ.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kubetrain.api.yamlsource import dump_yaml
from kubetrain.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
CORPUS = ROOT / "tests" / "cases" / "invalid_specs.yaml"
VALID_CORPUS = ROOT / "tests" / "cases" / "valid_specs.yaml"


@dataclass(frozen=True)
class SpecCase:
    name: str
    data: bytes  # the file's bytes
    valid: bool  # kubetrain's verdict
    expect: list[tuple[str, str]]
    server_agrees: bool
    why_differs: str  # when the API server's verdict differs: why

    @property
    def server_accepts(self) -> bool:
        return self.valid == self.server_agrees

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


def _walk(doc: dict[str, Any], dotted: str) -> tuple[dict[str, Any], str]:
    *parents, leaf = dotted.split(".")
    node = doc
    for key in parents:
        node = node.setdefault(key, {})
    return node, leaf


def _structured(case: dict[str, Any]) -> bool:
    return any(k in case for k in ("rename", "unset", "set"))


def build_document(case: dict[str, Any]) -> dict[str, Any]:
    """The base example with the case's structured edits applied."""
    doc = copy.deepcopy(yaml.safe_load((EXAMPLES / case["base"]).read_text()))
    for old, new in case.get("rename", {}).items():
        node, leaf = _walk(doc, old)
        value = node.pop(leaf)
        node, leaf = _walk(doc, new)
        node[leaf] = value
    for dotted in case.get("unset", []):
        node, leaf = _walk(doc, dotted)
        node.pop(leaf, None)
    for dotted, value in case.get("set", {}).items():
        node, leaf = _walk(doc, dotted)
        node[leaf] = value
    return doc


def _billion_laughs(levels: int = 9, fan: int = 10) -> str:
    lines = ["apiVersion: kubetrain.io/v1alpha1", "kind: TrainingJob", "metadata: {name: lol}"]
    lines.append('a0: &a0 ["lol"]')
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * fan) + "]")
    lines.append(f"spec: {{model: {{args: *a{levels}}}}}")
    return "\n".join(lines) + "\n"


def _nested(depth: int, opener: str = "[", closer: str = "]") -> str:
    base = (EXAMPLES / "quickstart.yaml").read_text()
    return base.replace(
        "    dropout: 0.1",
        "    import: mypkg.models:build\n    args: {deep: " + opener * depth + closer * depth + "}",
    ).replace("    type: mlp\n    mlp: {hidden: [128, 128], activation: gelu}\n", "")


def _many_aliases(items: int, aliases: int) -> str:
    """A free-form block of `aliases` copies of one list of `items` numbers."""
    base = (EXAMPLES / "quickstart.yaml").read_text()
    listing = "[" + ", ".join(["0"] * items) + "]"
    copies = "[" + ", ".join(["*zeros"] * aliases) + "]"
    return base.replace(
        "    type: mlp\n    mlp: {hidden: [128, 128], activation: gelu}\n",
        "    import: mypkg.models:build\n"
        f"    args: {{zeros: &zeros {listing}, copies: {copies}}}\n",
    )


def _padded(size: int) -> str:
    base = (EXAMPLES / "quickstart.yaml").read_text()
    line = "# " + "x" * 98 + "\n"
    return base + line * (size // len(line) + 1)


GENERATORS = {
    "billion-laughs": lambda g: _billion_laughs(g.get("levels", 9), g.get("fan", 10)),
    "nested": lambda g: _nested(g["depth"], g.get("open", "["), g.get("close", "]")),
    "padded": lambda g: _padded(g["bytes"]),
    "many-aliases": lambda g: _many_aliases(g["items"], g["aliases"]),
}


def build_text(case: dict[str, Any]) -> str:
    """The YAML text of a case (before its encoding)."""
    if "generate" in case:
        return GENERATORS[case["generate"]["kind"]](case["generate"])
    if "text" in case:
        text = case["text"]
    elif _structured(case):
        text = dump_yaml([build_document(case)])
    else:
        text = (EXAMPLES / case["base"]).read_text()
    for old, new in case.get("replace", []):
        assert old in text, f"{case['name']}: {old!r} is not in the text"
        text = text.replace(old, new, 1)
    return text + case.get("append", "")


def _server(case: dict[str, Any], valid: bool) -> tuple[bool, str]:
    verdict = case["server"]
    if verdict in ("reject", "accept"):
        agrees = (verdict == "accept") == valid
        assert agrees, f"{case['name']}: say why the server's verdict differs ({{accepts: why}})"
        return True, ""
    (key, why), *_ = verdict.items()
    assert key == ("rejects" if valid else "accepts"), f"{case['name']}: server {verdict}"
    return False, why


def _cases(path: Path, valid: bool) -> list[SpecCase]:
    out = []
    for c in yaml.safe_load(path.read_text()):
        agrees, why = _server(c, valid)
        text = build_text(c)
        out.append(
            SpecCase(
                name=c["name"],
                data=text.encode(c.get("encoding", "utf-8")),
                valid=valid,
                expect=[(p, m) for p, m in c.get("expect", [])],
                server_agrees=agrees,
                why_differs=why,
            )
        )
    return out


def invalid_cases() -> list[SpecCase]:
    return _cases(CORPUS, valid=False)


def valid_cases() -> list[SpecCase]:
    return _cases(VALID_CORPUS, valid=True)


def example_files() -> list[Path]:
    return sorted(EXAMPLES.glob("*.yaml"))


@dataclass(frozen=True)
class LocalVerdict:
    code: int  # kubetrain validate's exit code
    issues: list[tuple[int | None, str, str]]  # (line, field path or <document>, message)
    stderr: str
    seconds: float


@functools.cache
def warm_imports() -> None:
    """Import what validating a Hugging Face model loads lazily (torch and transformers, about
    5 s once per process), so that a time bound meant to catch hangs never counts it."""
    with contextlib.suppress(ImportError):  # an install without the trainer never loads them
        import kubetrain.models.hf_checks  # noqa: F401


def validate_locally(case: SpecCase, workdir: Path) -> LocalVerdict:
    """`kubetrain validate --cluster -o yaml FILE` in-process, on the case's bytes."""
    warm_imports()
    path = workdir / f"{case.name}.yaml"
    path.write_bytes(case.data)
    err = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        # -o yaml: the same verdict without the plan summary, whose parameter count builds
        # the model with torch (slow, and not what the corpora are about)
        code = main(["validate", "--cluster", "-o", "yaml", str(path)])
    seconds = time.perf_counter() - started
    issues: list[tuple[int | None, str, str]] = []
    for line in err.getvalue().splitlines()[1:]:
        rest = line.strip().removeprefix(f"{path}:").strip()
        head, _, tail = rest.partition(": ")
        number = int(head) if head.isdigit() else None
        if number is not None:
            rest = tail
        field, _, message = rest.partition(": ")
        issues.append((number, field, message))
    return LocalVerdict(code, issues, err.getvalue(), seconds)
