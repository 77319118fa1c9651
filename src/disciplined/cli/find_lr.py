"""``disciplined find-lr``: the LR range test on a task, with a suggested max and min LR."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from disciplined.cli.common import (
    MAX_DIV,
    RunProgress,
    add_device_args,
    add_force_arg,
    add_log_to_arg,
    add_task_args,
    add_threads_arg,
    batch_size_arg,
    build_hparams,
    check_batch_size,
    command_folder,
    device_from_args,
    float_in,
    fraction_arg,
    int_in,
    learning_rate_arg,
    momentum_pair,
    positive_int,
    range_steps_arg,
    seed_arg,
    task_from_args,
    weight_decay_arg,
)
from disciplined.errors import UsageError
from disciplined.measure.range_test import RangeTest, lr_range_test
from disciplined.measure.suggest import RULES
from disciplined.report.plots import plot_range_test
from disciplined.schedules.policies import RangeSweep
from disciplined.tasks import Task
from disciplined.training import distributed
from disciplined.trials.executor_base import torch_threads
from disciplined.trials.hparams import OPTIMIZERS, HParams, build_optimizer


def momentum_arg(text: str) -> float:
    """``--momentum``: one value, held through the test (a ``MAX,MIN`` pair is refused: the
    range test has no cycle for the second value)."""
    if len([part for part in text.split(",") if part.strip()]) > 1:
        raise argparse.ArgumentTypeError(
            f"the range test holds one momentum; give one value, got {text!r}"
        )
    return momentum_pair(text)[0]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``find-lr`` sub-command."""
    p = sub.add_parser(
        "find-lr",
        help="LR range test with a suggested max/min LR",
        description="Sweep the learning rate over one short run, stop when the "
        "loss diverges, and suggest max and min LR for 1cycle.",
    )
    add_task_args(p)
    _add_sweep_args(p)
    _add_held_args(p)
    add_device_args(p)
    add_threads_arg(p)
    add_log_to_arg(p, "the range test's")
    p.add_argument(
        "--out",
        default="runs/find-lr",
        help="output folder for range_test.json and range_test.png (default runs/find-lr)",
    )
    add_force_arg(p)
    p.set_defaults(run=run)


def _add_sweep_args(p: argparse.ArgumentParser) -> None:
    """The sweep's own options: its LRs, steps, seeds, validation and rule."""
    p.add_argument(
        "--val",
        action="store_true",
        help="also record the validation loss (a fixed subset every --val-every)",
    )
    p.add_argument(
        "--val-every",
        type=positive_int,
        default=10,
        help="with --val: evaluate every N steps, N >= 1 (default 10)",
    )
    p.add_argument(
        "--val-batches",
        type=positive_int,
        default=2,
        help="with --val: validation batches each evaluation reads, >= 1 (default 2)",
    )
    p.add_argument(
        "--mode",
        choices=("exp", "linear"),
        default="exp",
        help="how the LR grows from --start-lr to --end-lr: exp (default; the same factor "
        "each step) or linear (Smith's CLR test)",
    )
    p.add_argument(
        "--start-lr",
        type=learning_rate_arg,
        default=1e-5,
        help="the sweep's first LR, in (0, 10000] (default 1e-5)",
    )
    p.add_argument(
        "--end-lr",
        type=learning_rate_arg,
        default=10.0,
        help="the sweep's last LR, in (0, 10000] (default 10); the test stops early when the "
        "loss diverges",
    )
    p.add_argument(
        "--steps",
        type=range_steps_arg,
        default=300,
        help="steps of the range test, >= 2 (default 300)",
    )
    p.add_argument(
        "--repeats",
        type=int_in(1, 100),
        default=1,
        help="range tests on this many seeds, in [1, 100] (default 1); the rule reads their "
        "median curve",
    )
    p.add_argument(
        "--rule",
        choices=sorted(RULES),
        default="smith",
        help="how the max LR is read off the curve (default smith: the largest LR before "
        "the loss stops falling)",
    )
    p.add_argument(
        "--div",
        type=float_in(1, MAX_DIV),
        default=10.0,
        help="min LR = max LR / div, in [1, 1e6] (default 10, as for 1cycle; 3-4 for CLR)",
    )


def _add_held_args(p: argparse.ArgumentParser) -> None:
    """The hyper-parameters held through the test, and its seed."""
    p.add_argument(
        "--batch-size",
        type=batch_size_arg,
        default=None,
        help="in [1, 16777216] (default: the task's own)",
    )
    p.add_argument(
        "--weight-decay",
        type=weight_decay_arg,
        default=0.0,
        help="held during the test, in [0, 10] (default 0)",
    )
    p.add_argument(
        "--momentum",
        type=momentum_arg,
        default=0.9,
        metavar="M",
        help="momentum (betas[0] for adamw) held during the test, in [0, 1) (default 0.9)",
    )
    p.add_argument("--dropout", type=fraction_arg, default=0.0, help="in [0, 1) (default 0)")
    p.add_argument(
        "--optimizer",
        choices=OPTIMIZERS,
        default="sgd",
        help="sgd (default; with momentum) or adamw",
    )
    p.add_argument(
        "--seed",
        type=seed_arg,
        default=0,
        help="seeds the initial weights and the data order; an integer >= 0 (default 0)",
    )


def run(args: argparse.Namespace) -> int:
    """Run the test, write ``range_test.json`` and ``range_test.png``, print the suggestion
    (under ``torchrun``, in every process; rank 0 writes and prints)."""
    with distributed.launched(args.device):
        return _run(args)


def _check_sweep(args: argparse.Namespace) -> None:
    """Refuse a sweep that cannot run: a start at or above the end, or an exponential
    sweep whose ratio ``--end-lr / --start-lr`` overflows a float (a subnormal start: every
    LR after the first would be infinite)."""
    if args.start_lr >= args.end_lr:
        raise UsageError(f"--start-lr must be < --end-lr, got {args.start_lr} >= {args.end_lr}")
    if args.mode == "exp" and not math.isfinite(args.end_lr / args.start_lr):
        raise UsageError(
            f"--start-lr {args.start_lr} is too small for an exponential sweep to --end-lr "
            f"{args.end_lr:g}: their ratio overflows a float; raise --start-lr (default 1e-5) "
            "or give --mode linear"
        )


def _range_test(
    args: argparse.Namespace, task: Task, hp: HParams, device: str, amp: str | None
) -> RangeTest:
    """The range test the options ask for, on a freshly built model seeded with --seed."""
    import torch

    torch.manual_seed(args.seed)
    model = task.model(dropout=hp.dropout) if task.takes_dropout else task.model()
    optimizer = build_optimizer(model, hp)
    return lr_range_test(
        model,
        optimizer,
        task.loss_fn,
        task.train_data,
        val_data=task.val_data if args.val else None,
        start_lr=args.start_lr,
        end_lr=args.end_lr,
        num_steps=args.steps,
        mode=args.mode,
        batch_size=hp.batch_size,
        val_every=args.val_every,
        val_batches=args.val_batches,
        device=device,
        amp=amp or False,
        seed=args.seed,
        repeats=args.repeats,
        rule=args.rule,
        div=args.div,
        progress=True,
        meta={"task": task.name, "hparams": hp.to_dict()},
    )


def _run(args: argparse.Namespace) -> int:
    task = task_from_args(args)
    device, amp = device_from_args(args)
    _check_sweep(args)
    if args.dropout and not task.takes_dropout:
        raise UsageError(f"task {task.name!r} has no dropout to set (--dropout {args.dropout})")
    if args.batch_size is not None:
        check_batch_size(task, args.batch_size)
    hp = build_hparams(
        max_lr=args.start_lr,
        max_momentum=args.momentum,
        min_momentum=args.momentum,
        weight_decay=args.weight_decay,
        batch_size=args.batch_size or task.default_batch_size,
        dropout=args.dropout,
        optimizer=args.optimizer,
    )
    with command_folder("find-lr", args, task, hp.batch_size) as folder:
        out = folder.out
        progress = RunProgress("find-lr", _step_text(args), runs=args.repeats)
        with torch_threads(folder.threads), progress:
            test = _range_test(args, task, hp, device, amp)
        if folder.main:
            test.save(out / "range_test.json")
            title = f"{task.name}: LR range test, batch {hp.batch_size}"
            plot_range_test(test, out / "range_test.png", title=title)
        if folder.logger is not None:
            from disciplined.integrations.trackers import range_test_curves

            params = {**hp.to_dict(), "task": task.name, "seed": args.seed}
            folder.logger.write(range_test_curves(f"find-lr-{task.name}-{out.name}", test, params))
    s = test.suggestion
    if s is None:
        raise UsageError(
            f"the loss diverged at once ({test.stop_reason}); nothing to read: "
            f"lower --start-lr (wrote {out / 'range_test.json'})"
        )
    stop = f"; stopped at LR {test.stop_lr:.3g}" if test.stop_lr is not None else ""
    if folder.main:
        print(
            f"{task.name}: max LR {s.max_lr:.3g}, min LR {s.min_lr:.3g} (rule {s.rule}{stop}); "
            f"wrote {out / 'range_test.json'}"
        )
    return 0


def _step_text(args: argparse.Namespace) -> Callable[[int, int, float], str]:
    """What a progress line off a terminal says of a step of the sweep (`RunProgress`):
    "step S of T, LR X, loss L", X the learning rate that step trained at."""
    sweep = RangeSweep(
        start_lr=args.start_lr, end_lr=args.end_lr, num_steps=args.steps, mode=args.mode
    )

    def text(step: int, total: int, loss: float) -> str:
        lr = sweep.lr(min(step, sweep.num_steps) - 1)
        return f"step {step} of {total}, LR {lr:.3g}, loss {loss:.4g}"

    return text
