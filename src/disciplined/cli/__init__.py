"""The ``disciplined`` command: parse, dispatch, and turn bad input into one line and exit 2.

Each sub-command lives in a module of its own with ``add_parser(subparsers)`` and
``run(args) -> int``; this module only wires them. Exit status: 0 done, 2 bad input (a
`UsageError`: one line on stderr; the task's own code failing, `TaskCodeError`, is one line
too, naming the task, the part that failed and the exception, its traceback in
``OUT/error.log``), 1 an internal error (any other exception: one line on
stderr saying where the full traceback was written; also a full disk, said in one line),
130 interrupted.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from disciplined.cli import diagnose, find_lr, report, sweep, train, tune
from disciplined.errors import TaskCodeError, Terminated, UsageError
from disciplined.files import write_text_atomic

COMMANDS = (train, find_lr, sweep, tune, diagnose, report)

DESCRIPTION = """\
Set a PyTorch network's learning rate, momentum, weight decay and batch size the way
Leslie N. Smith's "disciplined approach" does (arXiv 1803.09820): LR range tests draw the
range, short 1cycle runs race inside it, and the winner is trained and explained in a
report."""

EPILOG = """\
start here:
  disciplined tune --task mnist1d-cnn --out runs/demo
      the whole recipe on a built-in task; prints the chosen values and writes
      runs/demo/hparams.json and runs/demo/report.html (rerun to resume)
  disciplined tune --task path/to/file.py:make_task
      your own model and data: a function returning a disciplined.Task
  disciplined train --task mnist1d-cnn --hparams runs/demo/hparams.json
      train again with what tune chose (the other commands run one step of it)

Run `disciplined COMMAND --help` for a command's options. Exit status: 0 done, 2 bad input
(one line on stderr), 1 an internal error (its traceback written to a file), 130
interrupted (a tune resumes where it stopped)."""

ERROR_LOG = "error.log"
"""The file, in the command's output folder, that an internal error's traceback goes to."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are `UsageError`s (one line, exit 2, no usage dump)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    """The full parser with every sub-command."""
    parser = _Parser(
        prog="disciplined",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(
        dest="command", required=True, parser_class=_Parser, metavar="COMMAND"
    )
    for module in COMMANDS:
        module.add_parser(sub)
    return parser


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _output_folder(args: argparse.Namespace | None) -> Path | None:
    """The command's output folder if it exists and is writable (``--out``, or ``report``'s
    DIR), else None."""
    if args is None:
        return None
    folder = getattr(args, "out", None)
    if folder is None and getattr(args, "command", None) == "report":
        folder = getattr(args, "dir", None)
    if folder is None:
        return None
    path = Path(folder)
    return path if path.is_dir() and os.access(path, os.W_OK | os.X_OK) else None


def write_error_log(exc: BaseException, folder: Path | None, argv: Sequence[str]) -> Path | None:
    """Write the full traceback of ``exc`` (with the command line and the time) to
    ``folder/error.log``, or to a new file in the temporary directory when there is no
    folder or it cannot be written; return the file written, or None if neither could be.
    For a `TaskCodeError` that is the task's traceback (kept as text, so a worker process's
    too), then where our code called it."""
    if isinstance(exc, TaskCodeError) and exc.details:
        trace = (
            exc.details
            + "\nThe task's code was called from:\n\n"
            + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__, chain=False))
        )
    else:
        trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    text = f"disciplined {' '.join(argv)}\n{time.strftime('%Y-%m-%d %H:%M:%S %z')}\n\n" + trace
    if folder is not None:
        path = folder / ERROR_LOG
        try:
            write_text_atomic(path, text)
            return path
        except OSError:
            pass
    try:
        fd, name = tempfile.mkstemp(prefix="disciplined-error-", suffix=".log")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError:
        return None
    return Path(name)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0 ok, 2 bad input, 1 internal error,
    130 interrupted)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args: argparse.Namespace | None = None
    previous = _on_sigterm()
    try:
        args = build_parser().parse_args(argv)
        return int(args.run(args) or 0)
    except TaskCodeError as exc:  # the user's code failed, not ours: exit 2, traceback kept
        return _task_code_error(exc, args, argv)
    except UsageError as exc:
        print(f"disciplined: error: {_first_line(exc)}", file=sys.stderr)
        return 2
    except Terminated:
        print(
            "disciplined: terminated (SIGTERM); what finished is kept: run the same command "
            "again to resume",
            file=sys.stderr,
        )
        return 143
    except KeyboardInterrupt:
        print("disciplined: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            return _internal_error(exc, args, argv)
        where = f" writing {exc.filename}" if exc.filename else ""
        print(
            f"disciplined: error: the disk is full{where} ({exc.strerror}); results are "
            "written whole or not at all, so nothing half-written was kept",
            file=sys.stderr,
        )
        return 1
    except Exception as exc:  # a bug: one line here, the traceback in a file
        return _internal_error(exc, args, argv)
    finally:  # each command's output folder was released by its own guard (outdir.guard_out)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _task_code_error(
    exc: TaskCodeError, args: argparse.Namespace | None, argv: Sequence[str]
) -> int:
    """One line naming the task, the part of it that failed and the exception; the
    traceback in ``OUT/error.log``; exit 2."""
    log = write_error_log(exc, _output_folder(args), argv)
    where = f"full traceback in {log}" if log else "the traceback could not be written"
    task = getattr(args, "task", None)
    named = f"task {task!r}: " if task else ""
    print(f"disciplined: error: {named}{_first_line(exc)}; {where}", file=sys.stderr)
    return 2


def _raise_terminated(_signum: int, _frame: object) -> None:
    raise Terminated()


def _on_sigterm() -> Any:
    """Turn SIGTERM into `Terminated` while the command runs (main thread only); the handler
    that was there before, to put back, or None when none was installed."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_terminated)


def _internal_error(
    exc: BaseException, args: argparse.Namespace | None, argv: Sequence[str]
) -> int:
    log = write_error_log(exc, _output_folder(args), argv)
    where = f"full traceback in {log}" if log else "the traceback could not be written"
    print(
        f"disciplined: internal error: {type(exc).__name__}: {_first_line(exc)}; {where}",
        file=sys.stderr,
    )
    return 1
