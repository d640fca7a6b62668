"""The ``bitnet`` command line: ``bitnet <command> ...`` (also ``python -m bitnet``).

Each command lives in its own module ``bitnet.cli_<name>`` that provides

    add_parser(subparsers) -> argparse.ArgumentParser   # registers the command
    run(args: argparse.Namespace) -> int                # runs it, returns the exit status

and is listed in COMMANDS. Errors the user can cause (a bitnet.BitNetError, an
OSError such as a missing file) print ``bitnet: error: <message>`` to stderr
and exit 1; usage errors exit 2 (argparse's convention). No tracebacks for
either.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

# Command names, in the order `bitnet --help` lists them; module bitnet.cli_<name>.
COMMANDS: tuple[str, ...] = ("run", "chat", "serve", "config", "perplexity", "tokenize", "inspect", "bench", "convert",
                             "info")

PROG = "bitnet"


def error_message(exc: BaseException) -> str:
    """A one-line message for an error the user caused."""
    if isinstance(exc, OSError) and exc.strerror:
        if exc.filename is not None:
            return f"{os.fsdecode(exc.filename)}: {exc.strerror}"
        return exc.strerror
    return str(exc) or type(exc).__name__


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Inference engine for BitNet b1.58 (ternary-weight) models in GGUF files.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"{__package__}.cli_{name}")
        sub = module.add_parser(subparsers)
        sub.set_defaults(_command_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from ._errors import BitNetError

    parser = build_parser()
    args = parser.parse_args(argv)
    run = getattr(args, "_command_run", None)
    if run is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(run(args) or 0)
    except BrokenPipeError:  # `bitnet ... | head`: stop quietly
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - avoid a second error at exit
        except OSError:
            pass
        return 1
    except (BitNetError, OSError) as exc:
        print(f"{PROG}: error: {error_message(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
