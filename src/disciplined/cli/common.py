"""Argument types and helpers shared by the sub-commands.

Every numeric option has a stated range (its type says it, argparse names the option): a
value outside it, or one that is not finite, is one line and exit 2 before any work.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from disciplined.errors import UsageError
from disciplined.outdir import (
    LOCK,
    MARKER,
    OUTPUTS,
    OutLock,
    check_out,
    guard_out,
    lock_out,
    prepare_out,
    write_marker,
)
from disciplined.tasks import Task, load_task
from disciplined.training import distributed
from disciplined.trials.bounds import (
    BOUNDS,
    MAX_BATCH_SIZE,
    MAX_BUDGET,
    MAX_DIV,
    MAX_EPOCHS,
    MAX_LR,
    MAX_SEED,
    MAX_STEPS,
    MAX_WEIGHT_DECAY,
    MAX_WORKERS,
    Bound,
)
from disciplined.trials.executor_base import ThreadChoice, thread_choice
from disciplined.trials.executors import Executor, InProcessExecutor
from disciplined.trials.factory import EXECUTORS, make_executor
from disciplined.trials.hparams import HParams
from disciplined.trials.spec import TrialResult

# The numeric options' bounds are `trials.bounds`'s, the ones the library checks (`HParams`,
# `TuneConfig`, ``train --hparams``), and the output folder's guard is `disciplined.outdir`'s;
# the names stay importable from here.
__all__ = [
    "LOCK",
    "MARKER",
    "MAX_BATCH_SIZE",
    "MAX_BUDGET",
    "MAX_DIV",
    "MAX_EPOCHS",
    "MAX_LR",
    "MAX_SEED",
    "MAX_STEPS",
    "MAX_WEIGHT_DECAY",
    "MAX_WORKERS",
    "OUTPUTS",
    "check_out",
    "guard_out",
    "prepare_out",
]

ArgType = Callable[[str], Any]


def _bounds(low: float, high: float, low_open: bool, high_open: bool) -> str:
    return f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def float_in(
    low: float, high: float, *, low_open: bool = False, high_open: bool = False
) -> ArgType:
    """An argparse type: a finite float in ``[low, high]`` (``low_open``/``high_open`` make
    that end exclusive). The error names the range and the text received."""
    where = _bounds(low, high, low_open, high_open)

    def parse(text: str) -> float:
        value = _float(text)
        too_low = value <= low if low_open else value < low
        too_high = value >= high if high_open else value > high
        if too_low or too_high:
            raise argparse.ArgumentTypeError(f"must be in {where}, got {text!r}")
        return value

    parse.__name__ = f"float in {where}"
    return parse


def int_in(low: int, high: int) -> ArgType:
    """An argparse type: an integer in ``[low, high]``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {text!r}")
        if value > high:
            raise argparse.ArgumentTypeError(f"must be <= {high}, got {text!r}")
        return value

    parse.__name__ = f"integer in [{low}, {high}]"
    return parse


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
    """An integer >= 1 (and at most `MAX_STEPS`)."""
    return int_in(1, MAX_STEPS)(text)


def range_steps_arg(text: str) -> int:
    """A range test's steps: an integer >= 2 (a sweep needs a start and an end) and at most
    `MAX_STEPS`."""
    return int_in(2, MAX_STEPS)(text)


def bound_arg(bound: Bound) -> ArgType:
    """An argparse type for a `trials.bounds.Bound`: the option's range is the library's."""
    if bound.integer:
        return int_in(int(bound.low) + bound.low_open, int(bound.high) - bound.high_open)
    return float_in(bound.low, bound.high, low_open=bound.low_open, high_open=bound.high_open)


learning_rate_arg = bound_arg(BOUNDS["max_lr"])
"""A learning rate: a float in (0, `MAX_LR`]."""
weight_decay_arg = bound_arg(BOUNDS["weight_decay"])
"""A weight decay: a float in [0, `MAX_WEIGHT_DECAY`]."""
epochs_arg = bound_arg(BOUNDS["epochs"])
"""A run's length in epochs: a float in (0, `MAX_EPOCHS`]."""
budget_arg = bound_arg(BOUNDS["budget"])
"""A tune's budget in epochs: a float in (0, `MAX_BUDGET`]."""
div_arg = bound_arg(BOUNDS["div"])
"""max LR / min LR: a float in (1, `MAX_DIV`]."""
fraction_arg = bound_arg(BOUNDS["dropout"])
"""A momentum or a dropout: a float in [0, 1)."""
batch_size_arg = bound_arg(BOUNDS["batch_size"])
"""A batch size: an integer in [1, `MAX_BATCH_SIZE`]."""
seed_arg = bound_arg(BOUNDS["seed"])
"""A random seed: an integer in [0, 2**63 - 1]."""
workers_arg = bound_arg(BOUNDS["workers"])
"""A number of worker processes: an integer in [1, `MAX_WORKERS`]."""
threads_arg = int_in(1, MAX_WORKERS)
"""A number of torch threads: an integer in [1, `MAX_WORKERS`]."""


def add_threads_arg(p: argparse.ArgumentParser, *, workers: bool = False) -> None:
    """``--threads``: torch's CPU threads for the work this command runs in its own process
    (`threads_from_args`); with ``workers``, also each worker's."""
    where = (
        "each trial's torch CPU threads, in [1, 1024]; in this process (default: the cores "
        "free now, the load average deducted, and no more than the model's size pays for: "
        "1 for the built-in tasks) or in each worker (default: the cores over --workers)"
        if workers
        else "torch CPU threads for the run, in [1, 1024] (default: the cores free now, the "
        "load average deducted, and no more than the model's size pays for: 1 for the "
        "built-in tasks)"
    )
    p.add_argument("--threads", type=threads_arg, default=None, metavar="N", help=where)


def threads_from_args(
    args: argparse.Namespace, task: Task, batch_size: int | None = None
) -> ThreadChoice:
    """The torch threads ``--threads`` asks for, or the default rule's choice for ``task``
    at ``batch_size`` on this machine (`trials.executor_base.thread_choice`)."""
    return thread_choice(args.threads, task, batch_size)


def add_executor_args(p: argparse.ArgumentParser) -> None:
    """``--workers``, ``--executor``, ``--address``, ``--trial-cpus``, ``--trial-gpus``: where
    the trials run (`executor_from_args`)."""
    p.add_argument(
        "--workers",
        type=workers_arg,
        default=None,
        help="trials at once, in [1, 1024]: worker processes (default 1: in this process); "
        "with --executor ray, the size of the local Ray (default: the machine's CPUs)",
    )
    p.add_argument(
        "--executor",
        choices=EXECUTORS,
        default=None,
        help="where trials run (default: inprocess for --workers 1, process for more)",
    )
    p.add_argument(
        "--address",
        default=None,
        help="--executor ray: 'auto' (the cluster this machine is in) or ray://HOST:PORT "
        "(default: start a local Ray)",
    )
    p.add_argument(
        "--trial-cpus",
        type=float_in(0, MAX_WORKERS, low_open=True),
        default=None,
        help="--executor ray: CPUs each trial asks for, in (0, 1024] (default 1)",
    )
    p.add_argument(
        "--trial-gpus",
        type=float_in(0, MAX_WORKERS),
        default=None,
        help="--executor ray: GPUs each trial asks for, in [0, 1024] (default 0); give "
        "--device cuda too",
    )


def log_target(text: str) -> Any:
    """An argparse type for ``--log-to``: ``tensorboard:DIR`` or ``mlflow:URI``."""
    from disciplined.integrations.trackers import LogTarget

    try:
        return LogTarget.parse(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--log-to ")) from None


def add_log_to_arg(p: argparse.ArgumentParser, what: str = "each trial's") -> None:
    """``--log-to KIND:WHERE``, repeatable (`logger_from_args`)."""
    p.add_argument(
        "--log-to",
        type=log_target,
        action="append",
        default=None,
        metavar="tensorboard:DIR|mlflow:URI",
        help=f"also write {what} curves (loss, metric, LR per step and epoch) and "
        "hyper-parameters to TensorBoard (a log folder) or MLflow (a tracking URI such as "
        "sqlite:///mlflow.db or http://host:5000); repeatable; needs pip install "
        "'disciplined[logging]' (default: neither)",
    )


def logger_from_args(args: argparse.Namespace) -> Any:
    """The `integrations.trackers.TrialLogger` of ``--log-to``, its targets opened (a missing
    package is a `UsageError` now), or None without the option."""
    if not getattr(args, "log_to", None):
        return None
    from disciplined.integrations.trackers import TrialLogger

    return TrialLogger(args.log_to)


def executor_from_args(args: argparse.Namespace, task: Task | None = None) -> Executor:
    """The executor the options of `add_executor_args` (and ``--threads``) ask for,
    connected (a local Ray started) so that a bad combination, a missing Ray or an
    unreachable cluster is a `UsageError` before any folder is made. In this process its
    torch threads are ``--threads`` or the default rule's for ``task``
    (`threads_from_args`)."""
    kind = args.executor or ("process" if (args.workers or 1) > 1 else "inprocess")
    ray_only = (("--address", args.address), ("--trial-cpus", args.trial_cpus))
    for flag, value in (*ray_only, ("--trial-gpus", args.trial_gpus)):
        if value is not None and kind != "ray":
            raise UsageError(f"{flag} applies to --executor ray only, got --executor {kind}")
    if kind == "inprocess" and (args.workers or 1) > 1:
        raise UsageError(
            f"--executor inprocess runs one trial at a time, got --workers {args.workers}"
        )
    if kind == "ray" and args.address is not None and args.workers is not None:
        raise UsageError(
            f"--workers sizes a local Ray; with --address {args.address} the cluster decides "
            f"how many trials run at once, got --workers {args.workers}"
        )
    if kind == "ray":
        from disciplined.trials.ray_executor import check_address

        check_address(args.address)
    threads = getattr(args, "threads", None)
    if kind == "inprocess" and task is not None:
        choice = threads_from_args(args, task)
        return InProcessExecutor(choice.threads, reason=choice.reason)
    try:
        executor = make_executor(
            args.workers,
            threads,
            kind=kind,
            address=args.address,
            trial_cpus=1.0 if args.trial_cpus is None else args.trial_cpus,
            trial_gpus=0.0 if args.trial_gpus is None else args.trial_gpus,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    executor.start()
    return executor


def memory_size(text: str) -> str:
    """An argparse type for ``--memory-limit``: text `disciplined.studies.batch.parse_memory` reads
    (``4GB``, ``512MiB``, ``1e9``), at most 1 EiB; returns the text itself."""
    from disciplined.studies.batch import parse_memory

    try:
        parse_memory(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _float(text: str) -> float:
    if "_" in text:  # Python reads "0_1" as 1.0 (a digit separator): never what was meant
        raise argparse.ArgumentTypeError(f"must be a number without '_', got {text!r}")
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be finite, got {text!r}")
    return value


def build_hparams(**values: Any) -> HParams:
    """`HParams` from command-line values; a combination it refuses is a `UsageError`."""
    try:
        return HParams(**values)
    except ValueError as exc:
        raise UsageError(f"bad hyper-parameters: {exc}") from exc


def check_batch_size(task: Task, batch: int) -> None:
    """Refuse a batch larger than the task's training set (one line naming both)."""
    if batch > task.num_train:
        raise UsageError(
            f"--batch-size {batch} is larger than task {task.name!r}'s training set "
            f"({task.num_train} samples)"
        )


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


def _option_value(key: str, text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return text
    if not math.isfinite(value):
        raise UsageError(f"--task-option {key}={text}: the value must be finite")
    return value


def add_task_args(parser: argparse.ArgumentParser) -> None:
    """``--task`` and repeated ``--task-option KEY=VALUE``."""
    parser.add_argument(
        "--task",
        required=True,
        help="required: the task to run, a built-in name (mnist1d-cnn, mnist1d-mlp, "
        "digits-mlp, synthetic-regression) or path/file.py:function or module:function "
        "(a function returning a disciplined.Task)",
    )
    parser.add_argument(
        "--task-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="option passed to the task function (repeatable), e.g. samples=10000 "
        "(default: none, the function's own defaults)",
    )


def parse_task_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``--task-option KEY=VALUE`` pairs as a dictionary."""
    options = {}
    for item in args.task_option:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--task-option must be KEY=VALUE, got {item!r}")
        options[key.strip()] = _option_value(key.strip(), value.strip())
    return options


def task_from_args(args: argparse.Namespace) -> Task:
    """Load the task that ``--task`` and ``--task-option`` name."""
    return load_task(args.task, parse_task_options(args))


def metric_text(value: float | None) -> str:
    """A validation metric as the summaries print it: 4 decimals, ``n/a`` when there is
    none, or, when the task's metric gave NaN or infinity, that value said to be the
    metric's (never a bare ``nan``)."""
    if value is None:
        return "n/a"
    if math.isfinite(value):
        return f"{value:.4f}"
    return f"{value} (the task's metric returned no finite number)"


def trial_line(result: TrialResult, cached: bool = False) -> str:
    """What a finished trial's progress line says after its name: a training run's outcome
    in the words of `disciplined.measure.diagnose.describe_run` (ok, plateau, collapsed or
    diverged, and where it stopped when it stopped early) with its last validation metric;
    a range test's status; why a trial failed or was pruned; and its seconds, or ``cached``
    for a result read back from the store."""
    from disciplined.measure.diagnose import describe_run

    h = result.history
    if result.status == "failed":
        state = f"failed: {result.reason}"
    elif result.status == "pruned" and h is not None:
        state = f"pruned: stopped early at epoch {h.epochs:.3g} by the search's median rule"
    elif h is not None:
        state = describe_run(h, result.spec.budget.get("epochs"))
        final = h.final
        if final is not None and math.isfinite(final.val_metric):
            state += f", {h.metric_name} {final.val_metric:.4f}"
    elif result.status == "diverged":
        state = "diverged" + (f": {result.reason}" if result.reason else "")
    else:
        state = result.status
    state += ", cached" if cached else f", {result.seconds:.1f} s"
    if result.retries:
        state += f", retried {len(result.retries)}x after its worker was lost"
    return state


def trial_progress() -> Callable[[TrialResult, bool], None]:
    """A callback that shows each finished trial on stderr, one line each (`trial_line`)."""
    import sys

    count = {"n": 0}

    def on_result(result: TrialResult, cached: bool) -> None:
        count["n"] += 1
        print(
            f"  trial {count['n']}: {result.spec.tag or result.spec.kind} "
            f"({trial_line(result, cached)})",
            file=sys.stderr,
        )

    return on_result


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
        help="mixed precision on CUDA: off, bf16 or fp16 with loss scaling (default off)",
    )


def device_from_args(args: argparse.Namespace) -> tuple[str, str | None]:
    """The device and mixed precision asked for, checked (`UsageError`) before any file is
    written."""
    from disciplined.training.fit import device_and_amp

    return device_and_amp(args.device, args.amp)


# --------------------------------------------------------------------------- ownership
# The output folder's marker, lock and --force check live in the library (`disciplined.outdir`,
# `guard_out`), so that `disciplined.tune(out=...)` is guarded as the commands are; the names
# stay importable from here.


def add_force_arg(parser: argparse.ArgumentParser) -> None:
    """``--force``: write into an output folder another command or task wrote, or that
    holds files of the names this command writes."""
    parser.add_argument(
        "--force",
        action="store_true",
        help="write into --out even if another command or task wrote it, or it holds files "
        "of the names this command writes (they are replaced)",
    )


def out_owner(command: str, args: argparse.Namespace) -> dict[str, Any]:
    """Who writes an output folder: the command, the task reference and its options."""
    return {"command": command, "task": args.task, "task_options": parse_task_options(args)}


@dataclass(frozen=True)
class CommandFolder:
    """What `command_folder` set up for a command's run: the output folder (created and
    locked on rank 0), whether this process is rank 0 (the one that writes and prints), the
    ``--log-to`` logger (rank 0 only, else None) and the torch threads to run with."""

    out: Path
    main: bool
    logger: Any
    threads: int


@contextmanager
def command_folder(
    command: str, args: argparse.Namespace, task: Task, batch_size: int | None = None
) -> Iterator[CommandFolder]:
    """Set up the output folder ``args.out`` of a command that runs once and writes its
    files there (``train``, ``find-lr``), and hold it for the ``with`` block.

    In order: the folder is checked in every process (`check_out`: another command's or
    task's folder, or files of the names it writes, are a `UsageError` unless ``--force``);
    rank 0 opens the ``--log-to`` logger (a missing package is a `UsageError`); every rank
    waits for the others (`distributed.barrier`) before rank 0 creates the folder
    (`prepare_out`); the threads are ``--threads`` or the default rule's for ``task`` at
    ``batch_size`` (`threads_from_args`). Rank 0 then holds the folder, its lock and marker
    (`guard_out`), until the block ends, however it ends; the other ranks create and hold
    nothing."""
    owner = out_owner(command, args)
    check_out(args.out, owner, args.force)  # another command's folder, or the user's files
    main = distributed.is_main()
    logger = logger_from_args(args) if main else None
    distributed.barrier()  # every rank has checked the folder before rank 0 creates it
    out = prepare_out(args.out) if main else Path(args.out)
    threads = threads_from_args(args, task, batch_size).threads
    # rank 0 holds the folder (lock and marker) from here until its files are written
    with guard_out(out, owner, force=args.force) if main else nullcontext(out):
        yield CommandFolder(out=out, main=main, logger=logger, threads=threads)


_HELD: list[OutLock] = []  # the locks `claim_out` took, for `release_out`


def claim_out(out: Path, owner: dict[str, Any]) -> bool:
    """Lock ``out`` for this process (`outdir.lock_out`: another holder is refused with a
    `UsageError` naming it) and write the `MARKER` naming ``owner``; return whether there was
    no marker before. `release_out` lets go. Kept for callers of the old helper: the
    commands use `outdir.guard_out`, which also releases by itself."""
    _HELD.append(lock_out(out, owner))
    return write_marker(out, owner)


def release_out() -> None:
    """Unlock the output folders `claim_out` locked (the lock files stay, unlocked)."""
    while _HELD:
        _HELD.pop().release()


def _clock(seconds: float) -> str:
    """Seconds as a short clock: "45s", "3m05s", "1h02m"."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


PROGRESS_EVERY = 20.0
"""Seconds between two of `RunProgress`'s plain lines (read when one is made)."""


class RunProgress:
    """A ``train`` or ``find-lr`` run's progress as plain lines on a stream that is not a
    terminal (a file, CI), where `training.fit`'s tqdm bar (``disable=None``) shows nothing.

    While in its ``with`` block it is a `training.fit` step listener: a line
    ``[LABEL] TEXT, 1m05s elapsed`` (TEXT is ``describe(step, total, loss)``) when
    ``every`` seconds (default `PROGRESS_EVERY`) passed since the run started or since the
    last line, never at a run's last step (the command's summary follows). With ``runs``
    above 1 (a range test on several seeds: one `fit` each) the line starts ``run R of N``,
    R counted up each time the steps start again. On a terminal (the bar shows), or in a
    process other than rank 0 of a ``torchrun``, it prints nothing and listens to nothing;
    ``enabled`` forces either way. ``stream`` defaults to stderr, where the bar would be.
    """

    def __init__(
        self,
        label: str,
        describe: Callable[[int, int, float], str],
        *,
        runs: int = 1,
        stream: Any = None,
        every: float | None = None,
        enabled: bool | None = None,
    ) -> None:
        self.label = label
        self.describe = describe
        self.runs = runs
        self.stream = stream if stream is not None else sys.stderr
        self.every = PROGRESS_EVERY if every is None else every
        if enabled is None:
            isatty = getattr(self.stream, "isatty", None)
            enabled = distributed.is_main() and not (isatty and isatty())
        self.enabled = enabled
        self.run = 0  # the run (`fit`) now going, from 1
        self._step = math.inf  # the last step seen: a smaller one starts the next run
        self.started = self._last_write = time.monotonic()

    def __enter__(self) -> RunProgress:
        self.started = self._last_write = time.monotonic()
        if self.enabled:
            from disciplined.training.fit import add_step_listener

            add_step_listener(self.on_step)
        return self

    def __exit__(self, *exc: object) -> None:
        from disciplined.training.fit import remove_step_listener

        remove_step_listener(self.on_step)

    def on_step(self, step: int, total: int, loss: float) -> None:
        """A step of the run: a line when ``every`` seconds passed without one."""
        if step <= self._step:
            self.run += 1
        self._step = step
        now = time.monotonic()
        if now - self._last_write < self.every or step >= total:
            return
        self._last_write = now
        text = self.describe(step, total, loss)
        if self.runs > 1:
            text = f"run {self.run} of {self.runs}, {text}"
        elapsed = _clock(now - self.started)
        print(f"[{self.label}] {text}, {elapsed} elapsed", file=self.stream, flush=True)


_BUDGET_SAID = re.compile(r"\bbudget (\d+(?:\.\d+)?(?:e[+-]?\d+)?) epochs\b")


class TuneProgress:
    """A tune's progress on a stream (stderr by default): each finished trial on its own
    line (`trial_line`), and an overall line: trials done, epochs spent of the budget, time
    elapsed and time left, estimated from the seconds the trials that ran took per epoch
    (trials read back from the store count as done, at no time; a trial read back twice
    counts once).

    On a terminal the overall line is one tqdm bar that updates in place; elsewhere (a file,
    CI) it is a plain line printed after a trial at most every ``every`` seconds. A training
    trial running in this process shows its steps and loss as it goes (`on_step`, a
    `training.fit` step listener from construction to `close`): in the bar, redrawn at most
    twice a second, or as a plain line when nothing was written for ``every`` seconds, so a
    long trial is not silent. ``budget`` is the plan's budget in epochs, None until known; a
    message saying "budget N epochs" (the recipe says it before its first trial) sets it.
    ``bar`` forces the bar on or off. Call `close` at the end.
    """

    def __init__(
        self,
        budget: float | None = None,
        *,
        stream: Any = None,
        every: float = 30.0,
        bar: bool | None = None,
    ) -> None:
        import sys

        self.stream = stream if stream is not None else sys.stderr
        self.budget = budget
        self.every = every
        self.started = time.monotonic()
        self.trials = 0
        self.epochs = 0.0  # all trials done, read back ones included
        self.ran_epochs = 0.0  # of the trials that ran now: the rate is measured on them
        self.ran_seconds = 0.0
        self.seen: set[str] = set()
        self.last_line = -math.inf
        self.running: tuple[int, int, float] | None = None  # the trial's step, total, loss
        self._drawn = -math.inf
        self._last_write = self.started
        isatty = getattr(self.stream, "isatty", None)
        self._bar: Any = None
        if bar if bar is not None else bool(isatty and isatty()):
            from tqdm import tqdm

            self._bar = tqdm(
                total=1000,
                file=self.stream,
                bar_format="[tune] {bar:20}| {postfix}",
                dynamic_ncols=True,
                leave=True,
            )
        from disciplined.training.fit import add_step_listener

        add_step_listener(self.on_step)

    def on_step(self, step: int, total: int, loss: float) -> None:
        """A step of the running trial: the bar shows it (at most twice a second); a plain
        stream gets a line when nothing was written for ``every`` seconds."""
        self.running = (step, total, loss)
        now = time.monotonic()
        if self._bar is not None:
            if now - self._drawn >= 0.5 or step == total:
                self._drawn = now
                self._overall()
        elif now - self._last_write >= self.every and step < total:
            self._write(f"[tune] running trial: {self.step_text()}; {self.line()}")

    def step_text(self) -> str:
        """The running trial's "step S of T, loss L" (empty when none is running)."""
        if self.running is None:
            return ""
        step, total, loss = self.running
        return f"step {step} of {total}, loss {loss:.4g}"

    def _write(self, text: str) -> None:
        self._last_write = time.monotonic()
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def say(self, message: str) -> None:
        """Show a message of the recipe's (a "budget N epochs" in it sets the budget)."""
        found = _BUDGET_SAID.search(message)
        if found:
            self.budget = float(found.group(1))
        self._write(f"[tune] {message}")
        if self._bar is not None:
            self._overall()

    def on_result(self, result: TrialResult, cached: bool) -> None:
        """Show a finished trial and the overall line."""
        self.running = None
        self.trials += 1
        epochs = float(getattr(result, "epochs", 0.0) or 0.0)
        if result.key in self.seen:  # read back again: counted once, as the ledger does
            epochs = 0.0
        self.seen.add(result.key)
        self.epochs += epochs
        if not cached:
            self.ran_epochs += epochs
            self.ran_seconds += float(result.seconds or 0.0)
        tag = result.spec.tag or result.spec.kind
        self._write(f"  trial {self.trials}: {tag} ({trial_line(result, cached)})")
        self._overall()

    def line(self) -> str:
        """The overall line: trials, epochs of the budget, elapsed and left."""
        elapsed = time.monotonic() - self.started
        text = f"{self.trials} trial{'' if self.trials == 1 else 's'} done"
        if self.budget:
            share = min(self.epochs / self.budget, 1.0)
            text += f", {self.epochs:.3g} of {self.budget:g} epochs of budget ({share:.0%})"
        else:
            text += f", {self.epochs:.3g} epochs"
        text += f", {_clock(elapsed)} elapsed"
        if self.budget and self.ran_epochs > 0:
            left = max(self.budget - self.epochs, 0.0) * (elapsed / self.ran_epochs)
            text += f", at most about {_clock(left)} left" if left else ", finishing"
        return text

    def _overall(self) -> None:
        if self._bar is not None:
            share = min(self.epochs / self.budget, 1.0) if self.budget else 0.0
            self._bar.n = int(1000 * share)
            trial = f" | trial: {self.step_text()}" if self.running is not None else ""
            self._bar.set_postfix_str(self.line() + trial, refresh=True)
            return
        now = time.monotonic()
        if now - self.last_line >= self.every:
            self.last_line = now
            self._write(f"[tune] progress: {self.line()}")

    def close(self) -> None:
        """End the bar (on a terminal); a plain stream gets the last overall line. Stops
        listening to the trials' steps."""
        from disciplined.training.fit import remove_step_listener

        remove_step_listener(self.on_step)
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.trials:
            self._write(f"[tune] progress: {self.line()}")
