"""Argument types and helpers shared by the sub-commands."""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import Any

from disciplined.errors import UsageError
from disciplined.tasks import Task, load_task


def positive_float(text: str) -> float:
    """A finite float > 0."""
    value = _float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def nonneg_float(text: str) -> float:
    """A finite float >= 0."""
    value = _float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text!r}")
    return value


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be finite, got {text!r}")
    return value


def momentum_pair(text: str) -> tuple[float, float]:
    """``"0.95,0.85"`` -> (max, min); one value gives a constant momentum."""
    parts = [p for p in text.split(",") if p.strip()]
    if len(parts) not in (1, 2):
        raise argparse.ArgumentTypeError(f"must be MAX,MIN or one value, got {text!r}")
    values = [_float(p) for p in parts]
    for v in values:
        if not 0 <= v < 1:
            raise argparse.ArgumentTypeError(f"momentum must be in [0, 1), got {v}")
    hi, lo = (values[0], values[0]) if len(values) == 1 else (values[0], values[1])
    if lo > hi:
        raise argparse.ArgumentTypeError(f"MIN must be <= MAX, got {text!r}")
    return hi, lo


def _option_value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def add_task_args(parser: argparse.ArgumentParser) -> None:
    """``--task`` and repeated ``--task-option KEY=VALUE``."""
    parser.add_argument(
        "--task",
        required=True,
        help="built-in name (mnist1d-cnn, mnist1d-mlp, digits-mlp, "
        "synthetic-regression) or path/file.py:function or module:function",
    )
    parser.add_argument(
        "--task-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="option passed to the task function (repeatable), e.g. samples=10000",
    )


def parse_task_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``--task-option KEY=VALUE`` pairs as a dictionary."""
    options = {}
    for item in args.task_option:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--task-option must be KEY=VALUE, got {item!r}")
        options[key.strip()] = _option_value(value.strip())
    return options


def task_from_args(args: argparse.Namespace) -> Task:
    """Load the task that ``--task`` and ``--task-option`` name."""
    return load_task(args.task, parse_task_options(args))


def trial_progress():
    """A callback that shows finished trials on stderr as a tqdm bar-less counter."""
    import sys

    count = {"n": 0}

    def on_result(result, cached: bool) -> None:
        count["n"] += 1
        state = "cached" if cached else f"{result.status}, {result.seconds:.1f} s"
        print(
            f"  trial {count['n']}: {result.spec.tag or result.spec.kind} ({state})",
            file=sys.stderr,
        )

    return on_result


def prepare_out(path: str) -> Path:
    """Create the output folder (or reuse it) and check it is writable, before any work."""
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create output folder {path!r}: {exc.strerror or exc}") from exc
    if not out.is_dir() or not os.access(out, os.W_OK | os.X_OK):
        raise UsageError(f"output folder {path!r} is not writable")
    return out


def add_device_args(p: argparse.ArgumentParser) -> None:
    """``--device`` (default ``auto``: CUDA when the machine has it) and ``--amp``."""
    p.add_argument(
        "--device",
        default="auto",
        help="cpu, cuda, cuda:N or auto (default: CUDA when there is one, else the CPU)",
    )
    p.add_argument(
        "--amp",
        choices=("off", "bf16", "fp16"),
        default="off",
        help="mixed precision (CUDA only)",
    )


def device_from_args(args: argparse.Namespace) -> tuple[str, str | None]:
    """The device and mixed precision asked for, checked (`UsageError`) before any file is
    written."""
    from disciplined.training import device_and_amp

    return device_and_amp(args.device, args.amp)
