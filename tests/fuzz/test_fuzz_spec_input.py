"""Fuzzing the spec input with a fixed budget: generated YAML and random byte mutations of every
example go through the loader and `kubetrain validate` (in-process, for speed).

The property: exit code 0 or 2, never an exception (a traceback), never a hang (each input within
a time bound), and an accepted spec round-trips through `kubetrain validate -o yaml` unchanged.
Hypothesis runs derandomized (the same inputs on every run, no example database), so a failure
is reproducible and `make test` stays deterministic. Counts: docs/robustness.md.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spec_cases import example_files, warm_imports

from kubetrain.api.loader import load_file, load_text
from kubetrain.cli.main import main

pytestmark = pytest.mark.timeout(600)  # a hang inside one input still ends the test

EXAMPLES = example_files()
EXAMPLE_DATA = {p.name: yaml.safe_load(p.read_text()) for p in EXAMPLES}
SECONDS_PER_INPUT = 5.0  # far above the ~10 ms an input takes: only a hang trips it
COUNTS: Counter[str] = Counter()

FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,  # the time bound is asserted below, per input, with a clear message
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Plain scalars and fragments that mean something to a YAML reader (YAML 1.1 words, numbers
# go-yaml and PyYAML read differently, anchors, tags, flow and block indicators, odd characters).
TOKENS = [
    "yes", "no", "y", "n", "on", "Off", "true", "NULL", "~", "", "0755", "0o17", "0x1F", "0b11",
    "08", "1_000", "1:30", "1e3", "1e400", ".5", "-.inf", ".nan", "99999999999999999999",
    "18446744073709551615", "-9223372036854775809", "2024-01-01", "1.0", "-0", "+5", "0", "1",
    "-1", "3.5", "<<", "&a", "*a", "&b [*a, *a]", "!!int", "!!str", "!!float", "!!binary", "!x",
    "!!null", "? ", ": ", "- ", "{", "}", "[", "]", ",", "'", '"', "#", "|", ">-", "\t", "\n",
    "\r\n", "\ufeff", "\x85", "\u2028", "é", "训练", "%YAML 1.2", "---", "...", "@", "`",
    "auto", "adamw", "sgd", "mlp", "gpt", "synthetic", "text", "kubetrain.io/v1alpha1",
    "TrainingJob", "mypkg.models:build",
]
FIELD_NAMES = sorted(
    {
        "apiVersion", "kind", "metadata", "name", "labels", "annotations", "spec", "image",
        "dataset", "type", "synthetic", "tabular", "text", "arrays", "split", "val", "test",
        "seed", "model", "mlp", "gpt", "cnn", "linear", "hidden", "import", "args", "dropout",
        "optimizer", "lr", "betas", "momentum", "nesterov", "scheduler", "warmupSteps",
        "warmupRatio", "training", "maxSteps", "epochs", "globalBatchSize", "microBatchSize",
        "precision", "eval", "everySteps", "metrics", "earlyStopping", "parallelism",
        "procsPerNode", "nodes", "strategy", "checkpoint", "saveBest", "resources", "memory",
        "template", "runPolicy", "status",
    }
)

scalars = st.one_of(
    st.sampled_from(TOKENS),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=8),
)
keys = st.one_of(st.sampled_from(FIELD_NAMES), st.sampled_from(TOKENS), st.text(max_size=6))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)
    ),
    max_leaves=12,
)


def render(value: Any, indent: int = 0, flow: bool = False) -> str:
    """YAML text with scalars written raw (unquoted), so the reader sees them as typed."""
    pad = "  " * indent
    if isinstance(value, dict):
        if flow or not value:
            return "{" + ", ".join(f"{k}: {render(v, flow=True)}" for k, v in value.items()) + "}"
        return "".join(
            f"\n{pad}{k}:" + (" " if not isinstance(v, dict) or not v else "")
            + render(v, indent + 1)
            for k, v in value.items()
        )
    if isinstance(value, list):
        return "[" + ", ".join(render(v, flow=True) for v in value) + "]"
    return str(value)


@pytest.fixture(scope="module")
def workdir() -> Any:
    warm_imports()  # the per-input time bound is for hangs, not the one-time imports
    with tempfile.TemporaryDirectory(prefix="kubetrain-fuzz-") as d:
        yield Path(d)


def check(data: bytes, workdir: Path) -> None:
    """The property, for one input."""
    path = workdir / "fuzz.yaml"
    path.write_bytes(data)
    out, err = io.StringIO(), io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["validate", "-o", "yaml", str(path)])  # any exception fails the test
    elapsed = time.perf_counter() - started
    COUNTS["inputs"] += 1
    assert elapsed < SECONDS_PER_INPUT, f"{elapsed:.1f}s for {data[:200]!r}"
    assert code in (0, 2), err.getvalue()
    if code == 2:
        COUNTS["rejected"] += 1
        lines = err.getvalue().splitlines()
        assert lines[0].startswith("kubetrain validate: invalid TrainingJob"), lines
        assert all(line.startswith("  ") for line in lines[1:]), lines
        return
    COUNTS["accepted"] += 1
    again = load_text(out.getvalue(), "round-trip.yaml")
    assert [j.to_yaml_dict() for j in again] == [j.to_yaml_dict() for j in load_file(path)]


@settings(FUZZ, max_examples=200)
@given(
    example=st.sampled_from(sorted(EXAMPLE_DATA)),
    edits=st.lists(
        st.tuples(st.lists(keys, min_size=1, max_size=3), values), min_size=1, max_size=4
    ),
    flow=st.booleans(),
)
def edited_examples(workdir, example, edits, flow) -> None:
    doc = yaml.safe_load(yaml.safe_dump(EXAMPLE_DATA[example]))
    for path, value in edits:
        node = doc
        for key in path[:-1]:
            child = node.get(key) if isinstance(node, dict) else None
            if not isinstance(child, dict):
                child = node[key] = {} if isinstance(node, dict) else None
            if child is None:
                break
            node = child
        if isinstance(node, dict):
            node[path[-1]] = value
    text = render(doc, flow=flow).lstrip("\n") + "\n"
    check(text.encode("utf-8", "surrogatepass"), workdir)


@settings(FUZZ, max_examples=200)
@given(tokens=st.lists(st.one_of(st.sampled_from(TOKENS), st.text(max_size=4)), max_size=40))
def token_soup(workdir, tokens) -> None:
    check("".join(tokens).encode("utf-8", "surrogatepass"), workdir)


def spellings(value: Any) -> st.SearchStrategy[str]:
    """Ways to write a scalar that go-yaml (and so the API server) reads as the same value."""
    if isinstance(value, bool):
        words = ["true", "True", "TRUE", "yes", "Yes", "on", "ON", "y", "Y"]
        return st.sampled_from(words if value else [w.replace("true", "false").replace(
            "True", "False").replace("TRUE", "FALSE").replace("yes", "no").replace(
            "Yes", "No").replace("on", "off").replace("ON", "OFF").replace("y", "n").replace(
            "Y", "N") for w in words])
    if isinstance(value, int):
        forms = [str(value), f"{value}.0", f"+{value}", f"{value:_}", f"{value}e0"]
        if value >= 0:
            forms += [hex(value), f"0o{value:o}", f"0b{value:b}", f"0{value:o}"]
        return st.sampled_from(forms)
    if isinstance(value, float):
        return st.sampled_from([repr(value), f"{value:e}", f"{value:E}"])
    if isinstance(value, str):
        quoted = "'" + value.replace("'", "''") + "'"
        return st.sampled_from([quoted, '"' + value.replace('"', '\\"') + '"', f"!!str {quoted}"])
    return st.just("null")


@st.composite
def respelled(draw: st.DrawFn, value: Any) -> Any:
    if isinstance(value, dict):
        return {k: draw(respelled(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [draw(respelled(v)) for v in value]
    return draw(spellings(value))


@settings(FUZZ, max_examples=120)
@given(example=st.sampled_from(sorted(EXAMPLE_DATA)), data=st.data(), flow=st.booleans())
def respelled_examples(workdir, example, data, flow) -> None:
    doc = data.draw(respelled(EXAMPLE_DATA[example]))
    text = render(doc, flow=flow).lstrip("\n") + "\n"
    check(text.encode(), workdir)
    (job,) = load_text(text)
    (original,) = load_file(next(p for p in EXAMPLES if p.name == example))
    assert job.to_yaml_dict() == original.to_yaml_dict()
    COUNTS["respelled"] += 1


MUTATION = st.tuples(
    st.sampled_from(["flip", "insert", "delete", "duplicate", "truncate"]),
    st.floats(min_value=0, max_value=1),
    st.floats(min_value=0, max_value=1),
    st.binary(min_size=1, max_size=8),
)


def mutate(data: bytes, mutations: list[tuple[str, float, float, bytes]]) -> bytes:
    for op, where, span, payload in mutations:
        i = int(where * len(data))
        j = min(len(data), i + 1 + int(span * 200))
        if op == "flip":
            data = data[:i] + bytes([payload[0]]) + data[i + 1 :]
        elif op == "insert":
            data = data[:i] + payload + data[i:]
        elif op == "delete":
            data = data[:i] + data[j:]
        elif op == "duplicate":  # repeats lines or keys: duplicate keys, odd indentation
            data = data[:j] + data[i:j] + data[j:]
        else:
            data = data[:i]
    return data


@settings(FUZZ, max_examples=60)
@given(mutations=st.lists(MUTATION, min_size=1, max_size=4))
def byte_mutations(workdir, example, mutations) -> None:
    check(mutate(example.read_bytes(), mutations), workdir)


def budget(name: str, run: Any, minimum: int) -> None:
    """Run one fuzzer and check it tried its whole budget."""
    before = COUNTS["inputs"]
    run()
    tried = COUNTS["inputs"] - before
    COUNTS[f"inputs:{name}"] += tried
    print(f"\nfuzz {name}: {tried} inputs, {dict(COUNTS)}")
    assert tried >= minimum


def test_edited_examples(workdir) -> None:
    """Examples with fields replaced or added: real specs with hostile values anywhere."""
    budget("edited", lambda: edited_examples(workdir), 190)


def test_token_soup(workdir) -> None:
    """Arbitrary sequences of YAML syntax: the reader's error paths."""
    budget("soup", lambda: token_soup(workdir), 190)


def test_respelled_examples_mean_the_same(workdir) -> None:
    """Every scalar of an example written another way go-yaml reads alike (1e3, 0x3E8, yes, on,
    quoted strings): accepted, and the same job as the example."""
    before = COUNTS["respelled"]
    budget("respelled", lambda: respelled_examples(workdir), 115)
    assert COUNTS["respelled"] - before >= 115  # every one accepted


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_byte_mutations_of_examples(workdir, example) -> None:
    """Random byte flips, insertions, deletions, duplications and truncations of each example."""
    budget(f"mutations:{example.name}", lambda: byte_mutations(workdir, example), 55)
