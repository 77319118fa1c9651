"""``disciplined train``: one training run with given hyper-parameters."""

from __future__ import annotations

import argparse

from disciplined.cli.common import (
    add_device_args,
    add_task_args,
    device_from_args,
    momentum_pair,
    nonneg_float,
    positive_float,
    positive_int,
    prepare_out,
    task_from_args,
)
from disciplined.errors import UsageError
from disciplined.hparams import OPTIMIZERS, SCHEDULES, HParams, train_task
from disciplined.report.plots import plot_history


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``train`` sub-command."""
    p = sub.add_parser(
        "train",
        help="train a task with given hyper-parameters",
        description="Train a task once with 1cycle (or a constant / step "
        "schedule) and write history.json and curves.png.",
    )
    add_task_args(p)
    p.add_argument("--epochs", type=positive_float, default=10.0)
    p.add_argument("--batch-size", type=positive_int, default=None, help="default: the task's own")
    p.add_argument(
        "--max-lr",
        type=positive_float,
        default=0.1,
        help="1cycle peak (or the constant / initial step LR)",
    )
    p.add_argument("--div", type=positive_float, default=10.0, help="min LR = max LR / div")
    p.add_argument("--schedule", choices=SCHEDULES, default="one-cycle")
    p.add_argument(
        "--momentum",
        type=momentum_pair,
        default=(0.95, 0.85),
        metavar="MAX[,MIN]",
        help="cyclical momentum bounds (betas[0] for adamw), or one constant value",
    )
    p.add_argument("--weight-decay", type=nonneg_float, default=0.0)
    p.add_argument("--dropout", type=nonneg_float, default=0.0)
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd")
    p.add_argument("--seed", type=int, default=0)
    add_device_args(p)
    p.add_argument(
        "--eval-every",
        type=positive_int,
        default=None,
        help="evaluate every N steps (default: each epoch)",
    )
    p.add_argument("--out", default="runs/train")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Train, write ``history.json`` and ``curves.png``, print one summary line."""
    task = task_from_args(args)
    device, amp = device_from_args(args)
    out = prepare_out(args.out)
    if args.dropout and not task.takes_dropout:
        raise UsageError(f"task {task.name!r} has no dropout to set (--dropout {args.dropout})")
    hp = HParams(
        max_lr=args.max_lr,
        div=args.div,
        max_momentum=args.momentum[0],
        min_momentum=args.momentum[1],
        weight_decay=args.weight_decay,
        batch_size=args.batch_size or task.default_batch_size,
        dropout=args.dropout,
        optimizer=args.optimizer,
        schedule=args.schedule,
    )
    _, history = train_task(
        task,
        hp,
        epochs=args.epochs,
        seed=args.seed,
        device=device,
        amp=amp or False,
        eval_every=args.eval_every,
        progress=True,
    )
    history.save(out / "history.json")
    plot_history(
        history,
        out / "curves.png",
        title=f"{task.name}: {hp.schedule}, max LR {hp.max_lr:g}, batch {hp.batch_size}",
    )
    if history.diverged:
        raise UsageError(
            f"training diverged: {history.diverged_reason}; try a lower --max-lr "
            f"(history written to {out / 'history.json'})"
        )
    final = history.final
    metric = f"{final.val_metric:.4f}" if final else "n/a"
    loss = f"{final.val_loss:.4f}" if final else "n/a"
    print(
        f"{task.name}: {history.epochs:g} epochs ({history.steps} steps, "
        f"{history.seconds:.1f} s) -> validation {history.metric_name} {metric}, "
        f"loss {loss}; wrote {out / 'history.json'} and {out / 'curves.png'}"
    )
    return 0
