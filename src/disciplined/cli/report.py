"""``disciplined report DIR``: rebuild the HTML report of a ``tune`` output folder."""

from __future__ import annotations

import argparse
import sys

from disciplined.report.html import read_history, write_report


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``report`` sub-command."""
    p = sub.add_parser(
        "report",
        help="rebuild report.html of a tune output folder",
        description="Rebuild DIR/report.html from the files `disciplined tune` wrote into DIR "
        "(tune.json, history.json and the plots) and print its path.",
    )
    p.add_argument("dir", metavar="DIR", help="the output folder of `disciplined tune`")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Write ``DIR/report.html`` and print its path (and, on stderr, a warning when the
    final run's history could not be read)."""
    path = write_report(args.dir)
    _, problem = read_history(args.dir)
    if problem is not None:
        print(f"disciplined: warning: {problem}; the report leaves it out", file=sys.stderr)
    print(path)
    return 0
