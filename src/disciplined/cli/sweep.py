"""``disciplined sweep weight-decay|momentum|dropout``: one study of the recipe."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from disciplined.cli.common import (
    MAX_WEIGHT_DECAY,
    add_device_args,
    add_executor_args,
    add_force_arg,
    add_log_to_arg,
    add_task_args,
    add_threads_arg,
    batch_size_arg,
    build_hparams,
    check_batch_size,
    check_out,
    device_from_args,
    epochs_arg,
    executor_from_args,
    fraction_arg,
    guard_out,
    logger_from_args,
    out_owner,
    parse_task_options,
    prepare_out,
    range_steps_arg,
    seed_arg,
    task_from_args,
    trial_progress,
    weight_decay_arg,
)
from disciplined.errors import UsageError
from disciplined.integrations.trackers import TrialLogger
from disciplined.report.save import save_decision
from disciplined.studies import StudyContext, dropout_sweep, momentum_test, weight_decay_sweep
from disciplined.studies.decide import Decision
from disciplined.trials.hparams import OPTIMIZERS, HParams
from disciplined.trials.runtime import Runtime
from disciplined.trials.spec import TrialResult
from disciplined.trials.store import open_store

STUDIES = ("weight-decay", "momentum", "dropout")


def _values(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated numbers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError(f"must hold at least one number, got {text!r}")
    bad = [v for v in values if not math.isfinite(v)]
    if bad:
        raise argparse.ArgumentTypeError(f"must be finite numbers, got {bad[0]}")
    return values


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``sweep`` sub-command."""
    p = sub.add_parser(
        "sweep",
        help="weight-decay, momentum or dropout study",
        description="Run LR range tests at each candidate value, read them on "
        "the validation loss, and choose (Smith, section 4).",
    )
    p.add_argument(
        "study",
        choices=STUDIES,
        help="what to sweep: " + ", ".join(STUDIES) + " (one range test per value)",
    )
    add_task_args(p)
    p.add_argument(
        "--values",
        type=_values,
        default=None,
        help="comma-separated candidates (default: the report's grid; weight decay: ten times it "
        "under --optimizer adamw)",
    )
    add_executor_args(p)
    add_threads_arg(p, workers=True)
    add_log_to_arg(p)
    p.add_argument(
        "--store", default=None, help="SQLite file of trials (default: OUT/trials.sqlite)"
    )
    p.add_argument(
        "--steps",
        type=range_steps_arg,
        default=300,
        help="steps of each range test, >= 2 (default 300)",
    )
    _add_held_args(p)
    add_device_args(p)
    p.add_argument(
        "--out",
        default="runs/sweep",
        help="output folder for decision.json, its plot and the trial store (default "
        "runs/sweep)",
    )
    add_force_arg(p)
    p.set_defaults(run=run)


def _add_held_args(p: argparse.ArgumentParser) -> None:
    """The hyper-parameters the range tests hold, the weight-decay method, and the seed."""
    p.add_argument(
        "--batch-size",
        type=batch_size_arg,
        default=None,
        help="in [1, 16777216] (default: the task's own)",
    )
    p.add_argument(
        "--optimizer",
        choices=OPTIMIZERS,
        default="sgd",
        help="sgd (default; with momentum) or adamw",
    )
    p.add_argument(
        "--weight-decay",
        type=weight_decay_arg,
        default=0.0,
        help="held during momentum and dropout sweeps, in [0, 10] (default 0)",
    )
    p.add_argument(
        "--momentum",
        type=fraction_arg,
        default=0.9,
        help="held during weight-decay and dropout sweeps, in [0, 1) (default 0.9)",
    )
    p.add_argument(
        "--dropout",
        type=fraction_arg,
        default=0.0,
        help="held during weight-decay and momentum sweeps, in [0, 1) (default 0)",
    )
    p.add_argument(
        "--method",
        choices=("range-test", "snapshot"),
        default="range-test",
        help="weight decay: range-test (default: tests from fresh weights) or snapshot "
        "(tests from the weights of a 1cycle run at the middle value)",
    )
    p.add_argument(
        "--snapshot-epochs",
        type=epochs_arg,
        default=None,
        help="with --method snapshot: the 1cycle run's epochs, in (0, 10000] (default 5)",
    )
    p.add_argument(
        "--refine",
        action="store_true",
        help="weight decay: one more value halfway between the best two",
    )
    p.add_argument(
        "--seed",
        type=seed_arg,
        default=0,
        help="seeds the initial weights and the data order; an integer >= 0 (default 0)",
    )


def run(args: argparse.Namespace) -> int:
    """Run the study, write ``decision.json`` and the overlay plot, print the decision."""
    _check_values(args)
    task = task_from_args(args)
    device, amp = device_from_args(args)
    if (args.dropout or args.study == "dropout") and not task.takes_dropout:
        raise UsageError(f"task {task.name!r} has no dropout to set")
    if args.batch_size is not None:
        check_batch_size(task, args.batch_size)
    hp = build_hparams(
        max_lr=1e-5,
        max_momentum=args.momentum,
        min_momentum=args.momentum,
        weight_decay=args.weight_decay,
        dropout=args.dropout,
        batch_size=args.batch_size or task.default_batch_size,
        optimizer=args.optimizer,
    )
    owner = out_owner("sweep", args)
    check_out(args.out, owner, args.force)
    args.logger = logger_from_args(args)
    executor = executor_from_args(args, task)
    runtime = Runtime(
        store=args.store,
        executor=executor,
        on_result=_shown_and_logged(args.logger),
        log_to=args.logger,
        out=args.out,
        force=args.force,
    )
    with executor:
        prepare_out(args.out)  # made first, so that an error's log has a place in it
        with guard_out(runtime.out, owner, force=runtime.force) as out:
            decision = _in_folder(args, hp, replace(runtime, out=out), device, amp)
    print(
        f"{task.name}: {decision.name} = {decision.value:g} ({decision.rule}); "
        f"wrote {out / 'decision.json'}"
    )
    return 0


def _in_folder(
    args: argparse.Namespace,
    hp: HParams,
    runtime: Runtime,
    device: str,
    amp: str | None,
) -> Decision:
    """The study in its guarded folder ``runtime.out``: its store (another task's is refused
    before anything is written), its trials through the runtime's executor, and
    ``decision.json`` with the plot."""
    out = Path(runtime.out)
    store = open_store(runtime.store, out)
    with store:
        store.bind({"task": args.task, "task_options": parse_task_options(args)})
        ctx = StudyContext(
            task=args.task,
            task_options=parse_task_options(args),
            store=store,
            executor=runtime.executor,  # type: ignore[arg-type]  # run() made it
            out=out,
            on_result=runtime.on_result,
            device=device,
            amp=amp,
        )
        decision = _study(ctx, hp, args)
    return save_decision(decision, ctx.results, out)


def _shown_and_logged(logger: TrialLogger | None) -> Callable[[TrialResult, bool], None]:
    """Each finished trial shown on stderr (`trial_progress`), and logged by ``logger``."""
    shown = trial_progress()

    def each(result: TrialResult, cached: bool) -> None:
        if logger is not None:
            logger(result, cached)
        shown(result, cached)

    return each


def _check_values(args: argparse.Namespace) -> None:
    """Refuse ``--values`` outside the study's range, before anything is made."""
    if args.snapshot_epochs is not None and args.method != "snapshot":
        raise UsageError("--snapshot-epochs applies to --method snapshot only")
    if args.values is None:
        return
    bad = [v for v in args.values if v < 0]
    if bad:
        raise UsageError(f"--values must be >= 0, got {bad[0]}")
    if args.study in ("momentum", "dropout") and any(v >= 1 for v in args.values):
        raise UsageError(f"{args.study} values must be < 1, got {max(args.values)}")
    if args.study == "weight-decay" and max(args.values) > MAX_WEIGHT_DECAY:
        raise UsageError(
            f"weight-decay values must be <= {MAX_WEIGHT_DECAY:g}, got {max(args.values)}"
        )
    if len(args.values) < 2:
        raise UsageError(f"a sweep needs at least two --values, got {len(args.values)}")
    if len(set(args.values)) != len(args.values):
        dup = next(v for v in args.values if args.values.count(v) > 1)
        raise UsageError(f"--values holds {dup:g} twice: give each value once")


def _study(ctx: StudyContext, hp: HParams, args: argparse.Namespace) -> Decision:
    """Run the study ``args.study`` names and return its decision."""
    if args.study == "weight-decay":
        return weight_decay_sweep(
            ctx,
            hp,
            args.values,
            num_steps=args.steps,
            seed=args.seed,
            refine=args.refine,
            method=args.method.replace("-", "_"),
            snapshot_epochs=args.snapshot_epochs,
        )
    if args.study == "momentum":
        return momentum_test(
            ctx, hp, args.values or (0.99, 0.97, 0.95, 0.9), num_steps=args.steps, seed=args.seed
        )
    return dropout_sweep(
        ctx, hp, args.values or (0.0, 0.1, 0.2, 0.3, 0.5), num_steps=args.steps, seed=args.seed
    )
