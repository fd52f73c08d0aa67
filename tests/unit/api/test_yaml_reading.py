"""Reading YAML as the API server does (go-yaml v2, then JSON), and the limits on hostile input."""

from __future__ import annotations

import math
import time

import pytest
from spec_cases import EXAMPLES

from kubetrain.api.errors import SpecError
from kubetrain.api.goyaml import NotJSON, Uint64, key_string, resolve_plain, to_json_value
from kubetrain.api.loader import load_file, load_text
from kubetrain.api.yamlsource import (
    MAX_BYTES,
    MAX_DEPTH,
    MAX_NODES,
    YAMLProblems,
    dump_yaml,
    parse_documents,
)

QUICKSTART = (EXAMPLES / "quickstart.yaml").read_text()


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("yes", True),
        ("Y", True),
        ("n", False),
        ("On", True),
        ("OFF", False),
        ("true", True),
        ("tRue", "tRue"),
        ("0755", 493),
        ("0o17", 15),
        ("0x1F", 31),
        ("0b101", 5),
        ("-0b101", -5),
        ("1_000", 1000),
        ("+5", 5),
        ("08", 8.0),
        ("1e3", 1000.0),
        ("3.", 3.0),
        (".5", 0.5),
        ("1:30", "1:30"),
        ("2024-01-01", "2024-01-01"),
        ("~", None),
        ("", None),
        ("Null", None),
        ("1e400", "1e400"),
        ("99999999999999999999", 1e20),
        ("0x", "0x"),
        ("_1", "_1"),
        ("lr", "lr"),
    ],
)
def test_plain_scalars_resolve_as_go_yaml_v2(text, value) -> None:
    got = resolve_plain(text)
    assert got == value and type(got) is type(value)


def test_special_floats_and_unsigned_integers() -> None:
    assert math.isnan(resolve_plain(".NaN"))
    assert resolve_plain("-.inf") == -math.inf
    assert isinstance(resolve_plain("18446744073709551615"), Uint64)
    assert resolve_plain("18446744073709551616") == 18446744073709551616.0


@pytest.mark.parametrize(
    ("value", "json_value"),
    [
        (1000.0, 1000),
        (3.0, 3),
        (-0.0, 0),
        (0.5, 0.5),
        (1e20, 1e20),  # integral, but beyond int64: the server reads a float
        (2**63 - 1, 2**63 - 1),
        (Uint64(2**63), float(2**63)),
        (-(2**63), -(2**63)),
        (1e21, 1e21),
    ],
)
def test_values_as_json_carries_them(value, json_value) -> None:
    got = to_json_value(value)
    assert got == json_value and type(got) is type(json_value)


def test_nan_and_infinity_cannot_be_carried() -> None:
    for value in (math.nan, math.inf, -math.inf):
        with pytest.raises(NotJSON):
            to_json_value(value)


@pytest.mark.parametrize(
    ("key", "text"),
    [(True, "true"), (False, "false"), (12, "12"), (1.5, "1.5"), (1e6, "1e+06"), ("a", "a")],
)
def test_keys_become_strings_as_in_sigs_k8s_io_yaml(key, text) -> None:
    assert key_string(key) == text


def test_null_and_uint64_keys_are_refused() -> None:
    for key in (None, Uint64(2**64 - 1)):
        with pytest.raises(ValueError):
            key_string(key)


def test_duplicates_are_reported_together_with_their_lines() -> None:
    text = "a: 1\nb: {c: 1, c: 2}\na: 3\nm:\n  <<: {x: 1}\n  x: 2\n"
    (doc,) = parse_documents(text, "d.yaml")
    found = {(p.path, p.line) for p in doc.problems}
    assert found == {(("a",), 3), (("b", "c"), 2), (("m", "x"), 6)}
    assert all("duplicate key" in p.message for p in doc.problems)
    assert doc.data == {"a": 3, "b": {"c": 2}, "m": {"x": 2}}  # later wins, as in go-yaml


def test_merges_and_aliases_build_the_data_with_lines() -> None:
    text = "base: &b {x: 1, v: [1, 2]}\nuse:\n  <<: [*b, {z: 3}]\n  w: 4\ncopy: *b\ny: 5\n"
    (doc,) = parse_documents(text, "m.yaml")
    assert doc.data["use"] == {"x": 1, "v": [1, 2], "z": 3, "w": 4}
    assert doc.data["copy"] == {"x": 1, "v": [1, 2]}
    assert doc.data["true"] == 5  # the key y is the boolean true, written as JSON's "true"
    assert doc.problems == []
    assert doc.line_of(("use", "w")) == 4
    assert doc.line_of(("copy", "v", 1)) == 1  # where the aliased value was written


def test_limits_are_exact(tmp_path) -> None:
    # MAX_BYTES passes, one byte more fails before any parsing.
    at_limit = QUICKSTART + "#" * (MAX_BYTES - len(QUICKSTART.encode()) - 1) + "\n"
    path = tmp_path / "big.yaml"
    path.write_text(at_limit)
    assert load_file(path)
    path.write_text(at_limit + "\n")
    with pytest.raises(SpecError, match=f"the limit is {MAX_BYTES:,} bytes"):
        load_file(path)
    # MAX_DEPTH levels pass, one more fails.
    parse_documents("[" * MAX_DEPTH + "]" * MAX_DEPTH, "d")
    with pytest.raises(YAMLProblems, match=f"nested deeper than {MAX_DEPTH}"):
        parse_documents("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), "d")
    # MAX_NODES: a flat list (no aliases) of that many nodes passes, one more fails.
    parse_documents("[" + "0," * (MAX_NODES - 1) + "]", "n")
    with pytest.raises(YAMLProblems, match=f"more than {MAX_NODES:,} YAML nodes"):
        parse_documents("[" + "0," * MAX_NODES + "]", "n")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: &a [*a]", "alias *a is inside its own anchor &a"),
        ("a: &a {b: *a}", "alias *a is inside its own anchor &a"),
        ("a: *nowhere", "alias *nowhere names no anchor"),
        ("a: !!int twelve", "cannot decode 'twelve' as !!int"),
        ("a: !!binary '%%%'", "!!binary value is not base64"),
        ("{[1]: 2}", "a mapping key must be a scalar"),
        ("a: [1, 2", "invalid YAML"),
        ("a: b\n\x07", "invalid YAML"),
        ("a: b\n\tc: d", "invalid YAML"),
        ("<<: 1", "map merge requires a mapping"),
    ],
)
def test_unreadable_yaml_is_one_problem(text, message) -> None:
    with pytest.raises(YAMLProblems) as info:
        parse_documents(text, "x.yaml")
    (problem,) = info.value.problems
    assert message in problem.message
    assert "\n" not in problem.message


def test_billion_laughs_fails_fast() -> None:
    levels = ['a0: &a0 ["lol"]'] + [
        f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)
    ]
    text = "\n".join(levels) + "\nb: *a9\n"
    assert len(text) < 700
    started = time.perf_counter()
    with pytest.raises(YAMLProblems, match="excessive aliasing"):
        parse_documents(text, "lol.yaml")
    assert time.perf_counter() - started < 1.0


def test_non_utf8_bytes_name_the_byte_and_line(tmp_path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("a: 1\nb: Jos\xe9\n".encode("latin-1"))
    with pytest.raises(SpecError) as info:
        load_file(path)
    (issue,) = info.value.issues
    assert (issue.line, issue.message) == (2, "not UTF-8 text: byte 0xe9 at offset 11")


def test_a_directory_is_one_clear_issue(tmp_path) -> None:
    with pytest.raises(SpecError, match="is a directory"):
        load_file(tmp_path)


@pytest.mark.parametrize("word", ["y", "n", "yes", "off", "0755", "1e3", "1:30", "~", "", "true"])
def test_dumped_strings_read_back_as_strings(word) -> None:
    (doc,) = parse_documents(dump_yaml([{"value": word}]), "d")
    assert doc.data == {"value": word}


def test_set_values_are_read_like_the_file() -> None:
    (job,) = load_text(QUICKSTART, overrides=["spec.training.deterministic=yes"])
    assert job.spec.training.deterministic is True
    with pytest.raises(SpecError) as info:
        load_text(QUICKSTART, overrides=["spec.image=0755"])
    assert [(i.path, "valid string" in i.message) for i in info.value.issues] == [
        ("spec.image", True)
    ]
