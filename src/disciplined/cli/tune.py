"""``disciplined tune``: the whole recipe on a task, ending in ``hparams.json`` and a report."""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from disciplined.cli.common import (
    MAX_BATCH_SIZE,
    TuneProgress,
    add_device_args,
    add_executor_args,
    add_force_arg,
    add_log_to_arg,
    add_task_args,
    add_threads_arg,
    budget_arg,
    check_out,
    device_from_args,
    epochs_arg,
    executor_from_args,
    logger_from_args,
    memory_size,
    metric_text,
    out_owner,
    parse_task_options,
    positive_int,
    seed_arg,
    task_from_args,
)
from disciplined.errors import Terminated, UsageError
from disciplined.recipe.plan import BUDGET_FACTOR, RACE_BUDGET_FACTOR, SEARCHES
from disciplined.studies import BATCH_COMPARISONS
from disciplined.tasks import Task
from disciplined.training import distributed
from disciplined.trials.hparams import OPTIMIZERS
from disciplined.trials.runtime import Runtime


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be comma-separated integers, got {text!r}"
        ) from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"batch sizes must be >= 1, got {text!r}")
    if max(sizes) > MAX_BATCH_SIZE:
        raise argparse.ArgumentTypeError(
            f"batch sizes must be <= {MAX_BATCH_SIZE}, got {max(sizes)}"
        )
    return sizes


def _add_search_args(p: argparse.ArgumentParser) -> None:
    """The options that say how full runs settle what the range tests read."""
    p.add_argument(
        "--search",
        choices=SEARCHES,
        default="race",
        help="how full runs settle what the range tests read: 'race' (default: successive "
        "halving over the batch candidates, max LRs around each one's reading and the two "
        "best weight decays) or 'bracket' (the batch comparison, full runs at 1/3 and 3x the "
        "final max LR, and a corrective run)",
    )
    p.add_argument(
        "--compare-batch-sizes",
        choices=BATCH_COMPARISONS,
        default="epochs",
        help="how to compare candidate batch sizes: 'epochs' (default: each trains the "
        "final run's epochs at its own max LR; in the race, they race), 'time' (short runs "
        "of equal wall-clock time; with --search bracket), 'off' (keep the task's batch "
        "size, capped by memory)",
    )
    p.add_argument(
        "--batch-sizes",
        type=_sizes,
        default=None,
        help="candidates to compare (default: the task's batch size, half and a quarter "
        "of it; at equal time: powers of 2)",
    )
    p.add_argument(
        "--memory-limit",
        type=memory_size,
        default=None,
        help="cap for the batch size search, e.g. 4GB (default: half of free RAM)",
    )
    p.add_argument(
        "--no-correction",
        action="store_true",
        help="skip the corrective round after an overfitting or underfitting verdict "
        "(--search bracket)",
    )


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``tune`` sub-command."""
    p = sub.add_parser(
        "tune",
        help="run the whole recipe and train with what it chose",
        description="Smith's recipe (arXiv 1803.09820, section 5): LR range "
        "test, weight decay, momentum, batch size, one 1cycle run, "
        "diagnosis; resumable from its store.",
    )
    add_task_args(p)
    p.add_argument(
        "--epochs",
        type=epochs_arg,
        default=20.0,
        help="length of the final 1cycle run, in (0, 10000] (default 20)",
    )
    p.add_argument(
        "--budget",
        type=budget_arg,
        default=None,
        help="all compute, in epochs of the task, in (0, 1e6]: N x --epochs pays for about "
        f"N final runs (default {RACE_BUDGET_FACTOR:g} x --epochs for the race: about 2 "
        f"final runs of range tests and the race in the rest; {BUDGET_FACTOR:g} x with "
        "--search bracket)",
    )
    add_executor_args(p)
    add_threads_arg(p, workers=True)
    add_log_to_arg(p)
    p.add_argument(
        "--store", default=None, help="SQLite file of trials (default OUT/trials.sqlite)"
    )
    p.add_argument(
        "--optimizer",
        choices=OPTIMIZERS,
        default="sgd",
        help="sgd (default; with momentum, cycled 0.95-0.85) or adamw (betas[0] cycled)",
    )
    p.add_argument(
        "--seed",
        type=seed_arg,
        default=0,
        help="seeds every trial's initial weights and data order; an integer >= 0 "
        "(default 0)",
    )
    add_device_args(p)
    p.add_argument(
        "--tune-dropout",
        action="store_true",
        help="also sweep dropout (after weight decay) when the task's model takes it",
    )
    p.add_argument(
        "--range-steps",
        type=positive_int,
        default=300,
        help="steps of each range test, >= 1 (default 300; fewer if the budget requires)",
    )
    _add_search_args(p)
    p.add_argument(
        "--out",
        default="runs/tune",
        help="output folder for hparams.json, report.html, tune.json, the plots and the "
        "trial store; rerunning the same command there resumes (default runs/tune)",
    )
    add_force_arg(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the recipe; print progress, a summary table, and where the report is."""
    from disciplined.api import tune

    distributed.refuse_launch(
        "tune",
        "its trials run one to a device (--workers, --executor ray); run it once, then its "
        "final run with `torchrun ... disciplined train --hparams OUT/hparams.json`",
    )
    task = task_from_args(args)  # a bad task fails here, before any folder is made
    device, amp = device_from_args(args)
    check_memory(args, task, device)
    check_out(args.out, out_owner("tune", args), args.force)  # before Ray or workers start
    logger = logger_from_args(args)
    executor = executor_from_args(args, task)
    command = "disciplined " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    interrupts = _Interrupts()
    runtime = Runtime(
        out=args.out,
        force=args.force,
        store=args.store,
        executor=executor,
        progress=interrupts.say,
        on_result=interrupts.on_result,
        log_to=logger,
        command=command,
    )
    try:
        with interrupts:
            result = tune(
                args.task,
                runtime=runtime,
                task_options=parse_task_options(args),
                budget=args.budget,
                epochs=args.epochs,
                optimizer=args.optimizer,
                seed=args.seed,
                device=device,
                amp=amp,
                range_steps=args.range_steps,
                compare_batch_sizes=args.compare_batch_sizes,
                search=args.search,
                batch_sizes=args.batch_sizes,
                memory_limit=args.memory_limit,
                correct=not args.no_correction,
                tune_dropout=args.tune_dropout,
            )
    except KeyboardInterrupt as exc:
        if isinstance(exc, Terminated):
            raise  # SIGTERM: the command line's own line and exit 143
        print(
            f"disciplined: interrupted; finished trials are kept. Resume with the same "
            f"command: {command}",
            file=sys.stderr,
        )
        return 130
    finally:
        executor.close()
    _summary(result, Path(result.out))
    return 0


def check_memory(args: argparse.Namespace, task: Task, device: str) -> None:
    """With ``--memory-limit`` or ``--batch-sizes``: probe the largest batch that fits
    (`studies.batch.largest_batch_that_fits`, as the recipe's memory step will), before any
    folder is made, and refuse (`UsageError`) a limit in which not even a batch of 1 fits,
    or candidates none of which fits. Without either, nothing is probed here."""
    if args.memory_limit is None and args.batch_sizes is None:
        return
    from disciplined.studies.batch import largest_batch_that_fits
    from disciplined.studies.steps import starting_hparams

    hp = starting_hparams(task, args.optimizer)
    limit = args.memory_limit or "half of the free memory"
    try:
        fit = largest_batch_that_fits(task, hp, memory_limit=args.memory_limit, device=device)
    except ValueError as exc:  # not even a batch of 1 fits
        raise UsageError(f"--memory-limit {limit}: {exc} for task {task.name!r}") from None
    sizes = args.batch_sizes
    if sizes and args.compare_batch_sizes != "off" and min(sizes) > fit.batch_size:
        raise UsageError(
            f"--batch-sizes {','.join(map(str, sizes))}: none fits in memory ({limit}): the "
            f"largest batch of task {task.name!r} that fits is {fit.batch_size}"
        )


class _Interrupts:
    """Ctrl-C for a tune, as a context: SIGINT raises KeyboardInterrupt; if that lands where
    Python ignores exceptions (a destructor, a callback) the run would go on, so the request
    is also remembered and raised again at the next trial or progress message."""

    def __init__(self) -> None:
        self.asked = False
        self.shown = TuneProgress()
        self.previous: Any = None
        self.main_thread = threading.current_thread() is threading.main_thread()

    def __enter__(self) -> _Interrupts:
        if self.main_thread:
            self.previous = signal.signal(signal.SIGINT, self._interrupt)
        return self

    def __exit__(self, *exc: object) -> None:
        self.shown.close()
        if self.main_thread:
            signal.signal(signal.SIGINT, self.previous)

    def _interrupt(self, _signum: int, _frame: object) -> None:
        self.asked = True
        raise KeyboardInterrupt

    def check(self) -> None:
        """Raise the interrupt asked for, if one was."""
        if self.asked:
            raise KeyboardInterrupt

    def say(self, message: str) -> None:
        """Show a progress message (after checking for an interrupt)."""
        self.check()
        self.shown.say(message)

    def on_result(self, result: Any, cached: bool) -> None:
        """Show a finished trial, then check for an interrupt."""
        self.shown.on_result(result, cached)
        self.check()


SUMMARY_KEYS = (
    "max_lr",
    "min_lr",
    "max_momentum",
    "min_momentum",
    "weight_decay",
    "batch_size",
    "dropout",
    "epochs",
    "optimizer",
)
"""The hyper-parameters the summary table prints, in order."""


def _summary(result: Any, out: Path) -> None:
    """The summary table: each chosen value, the final validation metric and verdict, the
    compute spent, and where the report is."""
    hj = result.hparams_json()
    print(f"{'hyper-parameter':<16} value")
    for key in SUMMARY_KEYS:
        value = hj[key]
        print(f"{key:<16} {value:.4g}" if isinstance(value, float) else f"{key:<16} {value}")
    spent_e = sum(c["epochs"] for c in result.compute.values())
    spent_s = sum(c["seconds"] for c in result.compute.values())
    print(
        f"validation {hj['final']['metric']} {metric_text(hj['final']['val_metric'])} "
        f"({result.diagnosis.verdict}); compute {spent_e:.1f} epochs, {spent_s:.0f} s"
    )
    print(f"report: {out / 'report.html'}")
