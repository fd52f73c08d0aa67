"""`kubetrain`: one entry point, a subcommand per module (imported only when used)."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from kubetrain import __version__
from kubetrain.api.errors import SpecError
from kubetrain.errors import InvalidJob
from kubetrain.exitcodes import ExitCode

# name -> (module, one-line help). Each module defines add_arguments(parser) and run(args) -> int.
COMMANDS = {
    "run": ("kubetrain.cli.run", "train a TrainingJob on this machine (torchrun when >1 process)"),
    "validate": ("kubetrain.cli.validate", "check TrainingJob files and print the resolved plan"),
    "plot": ("kubetrain.cli.plot", "draw the loss curves of a run directory as a PNG"),
    "eval": ("kubetrain.cli.evaluate", "evaluate a trained run on its test split"),
    "sample": ("kubetrain.cli.sample", "generate text from a trained gpt run"),
    "export": ("kubetrain.cli.export", "write a trained model as safetensors files others load"),
    "prepare": ("kubetrain.cli.prepare", "tokenize a job's raw corpus into token shards"),
    "crd": ("kubetrain.cli.crd", "write the TrainingJob CustomResourceDefinition"),
}


def add_overrides(parser: argparse.ArgumentParser) -> None:
    """Helm-style `--set path=value`, validated like the file itself."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="override a field, e.g. --set spec.training.maxSteps=50 (repeatable)",
    )


def command_in(argv: Sequence[str]) -> str | None:
    """The sub-command named in `argv`: its first word that is not an option of `kubetrain`
    itself (those are flags without values), if it names a command."""
    for arg in argv:
        if arg == "--":
            return None
        if not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; with `command`, that sub-command's own arguments too (its module is imported
    only then, so `kubetrain validate` does not pay for the others)."""
    parser = argparse.ArgumentParser(prog="kubetrain", description=__doc__)
    parser.add_argument("--version", action="version", version=f"kubetrain {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of user errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            importlib.import_module(module_name).add_arguments(sub_parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # The sub-command's arguments are added before anything is parsed, so that its --help
    # (handled during parsing) lists them.
    args = build_parser(command_in(argv)).parse_args(argv)
    module = importlib.import_module(COMMANDS[args.command][0])
    from kubetrain.storage.fetch import one_job

    try:
        with one_job():  # a bucket location is listed once per command, not once per reader
            return int(module.run(args))
    except SpecError as e:
        if args.debug:
            raise
        print(f"kubetrain {args.command}: invalid TrainingJob", file=sys.stderr)
        for issue in e.issues:
            print(f"  {issue}", file=sys.stderr)
        return ExitCode.INVALID
    except InvalidJob as e:
        if args.debug:
            raise
        print(f"kubetrain {args.command}: error: {e}", file=sys.stderr)
        return ExitCode.INVALID
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
