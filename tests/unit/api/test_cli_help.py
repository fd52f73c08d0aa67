"""Every sub-command's --help lists every one of its options and arguments."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io

import pytest

from kubetrain.cli.main import COMMANDS, build_parser, command_in, main


def own_arguments(name: str) -> list[str]:
    """Option strings and positional names the command's module adds."""
    parser = argparse.ArgumentParser()
    importlib.import_module(COMMANDS[name][0]).add_arguments(parser)
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        found += action.option_strings or [action.metavar or action.dest]
    return found


@pytest.mark.parametrize("name", list(COMMANDS))
def test_help_lists_every_option(name) -> None:
    expected = own_arguments(name)
    assert expected, f"{name} adds no arguments?"
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as info:
        main([name, "--help"])
    assert info.value.code == 0
    for argument in expected:
        assert argument in out.getvalue(), f"kubetrain {name} --help lacks {argument}"


@pytest.mark.parametrize("argv", [["--debug", "run", "-h"], ["validate", "-h", "x.yaml"]])
def test_help_after_global_flags_or_arguments(argv) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main(argv)
    assert "--set" in out.getvalue()


def test_command_is_found_past_global_flags() -> None:
    assert command_in(["--debug", "eval", "runs/x"]) == "eval"
    assert command_in(["--version"]) is None
    assert command_in(["nonsense"]) is None


def test_top_level_help_names_every_command() -> None:
    text = build_parser().format_help()
    for name in COMMANDS:
        assert name in text
