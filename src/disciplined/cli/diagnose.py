"""``disciplined diagnose``: read a run's history and say whether it under- or overfits."""

from __future__ import annotations

import argparse
import errno
import json
import math
import os
from pathlib import Path

from disciplined.cli.common import prepare_out
from disciplined.errors import UsageError
from disciplined.files import write_text_atomic
from disciplined.measure.diagnose import diagnose
from disciplined.training.fit import History


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``diagnose`` sub-command."""
    p = sub.add_parser(
        "diagnose",
        help="under/overfitting verdict from a history.json",
        description="Read the validation and training loss curves of a run (the "
        "history.json that `disciplined train` writes) and say whether it underfits, "
        "overfits, is balanced, diverged or is too short to tell; write diagnosis.json.",
    )
    p.add_argument("path", metavar="PATH", help="a history.json, or a folder holding one")
    p.add_argument(
        "--out", default=None, help="folder for diagnosis.json (default: beside the history)"
    )
    p.set_defaults(run=run)


def load_history(path: str | Path) -> tuple[History, Path]:
    """The `History` at ``path`` (a file, or a folder with ``history.json``) and its file.

    Anything else - a missing file, text that is not JSON, JSON that is not a history, a
    history without steps or without a single finite loss - is a `UsageError` naming the
    file and what is wrong.
    """
    file = Path(path)
    if file.is_dir():
        file = file / "history.json"
    if not file.is_file():
        raise UsageError(f"no history file at {str(file)!r}")
    try:
        data = json.loads(file.read_text())
    except UnicodeDecodeError as exc:
        raise UsageError(f"{str(file)!r} is not a JSON text file: {exc.reason}") from exc
    except json.JSONDecodeError as exc:
        raise UsageError(f"{str(file)!r} is not JSON: {exc.msg} at line {exc.lineno}") from exc
    except RecursionError:
        raise UsageError(
            f"{str(file)!r} is not a history: its JSON is nested too deeply to read"
        ) from None
    if not isinstance(data, dict):
        raise UsageError(f"{str(file)!r} is not a history: expected a JSON object")
    missing = [k for k in ("evals", "train_losses", "steps_per_epoch") if k not in data]
    if missing:
        raise UsageError(f"{str(file)!r} is not a history: no {missing[0]!r} field")
    spe = data["steps_per_epoch"]
    if isinstance(spe, bool) or not isinstance(spe, int) or spe < 1:
        raise UsageError(
            f"{str(file)!r} is not a valid history: steps_per_epoch must be an integer >= 1, "
            f"got {spe!r}"
        )
    try:
        history = History.from_dict(data)
    except KeyError as exc:
        raise UsageError(f"{str(file)!r} is not a history: no {exc.args[0]!r} field") from exc
    except (TypeError, ValueError, AttributeError) as exc:
        raise UsageError(f"{str(file)!r} is not a valid history: {exc}") from exc
    if not history.train_losses and not history.evals:
        raise UsageError(f"{str(file)!r} is an empty history: no training steps, no evaluations")
    values = [*history.train_losses, *(e.val_loss for e in history.evals)]
    if not any(isinstance(v, int | float) and math.isfinite(v) for v in values):
        raise UsageError(
            f"{str(file)!r} holds no finite loss (every training and validation loss is NaN "
            "or infinite): nothing to diagnose"
        )
    return history, file


def run(args: argparse.Namespace) -> int:
    """Diagnose the history, write ``diagnosis.json``, print the verdict line."""
    history, file = load_history(args.path)
    out = prepare_out(args.out) if args.out is not None else file.parent
    if args.out is None and not os.access(out, os.W_OK | os.X_OK):
        raise UsageError(
            f"cannot write diagnosis.json beside {str(file)!r}: its folder is not writable; "
            "give --out DIR"
        )
    result = diagnose(history)
    target = out / "diagnosis.json"
    try:
        write_text_atomic(target, json.dumps(result.to_dict(), indent=1, allow_nan=False))
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise  # a full disk is said as such by the command line
        raise UsageError(
            f"cannot write {str(target)!r}: {exc.strerror or exc}; give --out DIR"
        ) from None
    print(f"{result.line()} (wrote {target})")
    return 0
