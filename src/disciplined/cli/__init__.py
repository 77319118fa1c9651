"""The ``disciplined`` command: parse, dispatch, and turn bad input into one line and exit 2.

Each sub-command lives in a module of its own with ``add_parser(subparsers)`` and
``run(args) -> int``; this module only wires them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from disciplined.cli import diagnose, find_lr, report, sweep, train, tune
from disciplined.errors import UsageError

COMMANDS = (train, find_lr, sweep, tune, diagnose, report)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are `UsageError`s (one line, exit 2, no usage dump)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    """The full parser with every sub-command."""
    parser = _Parser(prog="disciplined", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(
        dest="command", required=True, parser_class=_Parser, metavar="COMMAND"
    )
    for module in COMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0 ok, 2 bad input, 130 interrupted)."""
    try:
        args = build_parser().parse_args(argv)
        return int(args.run(args) or 0)
    except (UsageError, ValueError, OSError) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"disciplined: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("disciplined: interrupted", file=sys.stderr)
        return 130
