"""``disciplined train``: one training run with given hyper-parameters.

Under ``torchrun --nproc-per-node N`` the run is data-parallel over N processes (one per
GPU, or gloo on the CPU): ``--batch-size`` is each process's batch, the total batch is N
times it, and only rank 0 writes the output folder and prints."""

from __future__ import annotations

import argparse
from pathlib import Path

from disciplined.cli.common import (
    MAX_DIV,
    add_device_args,
    add_force_arg,
    add_task_args,
    batch_size_arg,
    build_hparams,
    check_batch_size,
    check_out,
    claim_out,
    device_from_args,
    epochs_arg,
    float_in,
    fraction_arg,
    learning_rate_arg,
    momentum_pair,
    out_owner,
    positive_int,
    prepare_out,
    seed_arg,
    task_from_args,
    weight_decay_arg,
)
from disciplined.errors import UsageError
from disciplined.report.plots import plot_history
from disciplined.training import distributed
from disciplined.training.history import History
from disciplined.trials.hparams import OPTIMIZERS, SCHEDULES, HParams, train_task


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``train`` sub-command."""
    p = sub.add_parser(
        "train",
        help="train a task with given hyper-parameters",
        description="Train a task once with 1cycle (or a constant / step "
        "schedule) and write history.json and curves.png.",
    )
    add_task_args(p)
    p.add_argument("--epochs", type=epochs_arg, default=10.0, help="in (0, 10000]")
    p.add_argument(
        "--batch-size", type=batch_size_arg, default=None, help="default: the task's own"
    )
    p.add_argument(
        "--max-lr",
        type=learning_rate_arg,
        default=0.1,
        help="1cycle peak (or the constant / initial step LR), in (0, 10000]",
    )
    p.add_argument(
        "--div",
        type=float_in(1, MAX_DIV, low_open=True),
        default=10.0,
        help="min LR = max LR / div, in (1, 1e6]",
    )
    p.add_argument("--schedule", choices=SCHEDULES, default="one-cycle")
    p.add_argument(
        "--momentum",
        type=momentum_pair,
        default=(0.95, 0.85),
        metavar="MAX[,MIN]",
        help="cyclical momentum bounds (betas[0] for adamw), or one constant value",
    )
    p.add_argument("--weight-decay", type=weight_decay_arg, default=0.0, help="in [0, 10]")
    p.add_argument("--dropout", type=fraction_arg, default=0.0, help="in [0, 1)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd")
    p.add_argument("--seed", type=seed_arg, default=0)
    add_device_args(p)
    p.add_argument(
        "--eval-every",
        type=positive_int,
        default=None,
        help="evaluate every N steps (default: each epoch)",
    )
    p.add_argument("--out", default="runs/train")
    add_force_arg(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Train, write ``history.json`` and ``curves.png``, print one summary line (under
    ``torchrun``, in every process; rank 0 writes and prints)."""
    with distributed.launched(args.device):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    task = task_from_args(args)
    device, amp = device_from_args(args)
    if args.dropout and not task.takes_dropout:
        raise UsageError(f"task {task.name!r} has no dropout to set (--dropout {args.dropout})")
    if args.batch_size is not None:
        check_batch_size(task, args.batch_size)
    hp = build_hparams(
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
    owner = out_owner("train", args)
    check_out(args.out, owner, args.force)
    distributed.barrier()  # every rank has checked the folder before rank 0 creates it
    main = distributed.is_main()
    out = prepare_out(args.out) if main else Path(args.out)
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
    if main:
        claim_out(out, owner)
        history.save(out / "history.json")
        plot_history(history, out / "curves.png", title=f"{task.name}: {_what(hp, history)}")
    if history.diverged:
        raise UsageError(
            f"training diverged: {history.diverged_reason}; try a lower --max-lr "
            f"(history written to {out / 'history.json'})"
        )
    if main:
        _summary(task.name, history, out)
    return 0


def _what(hp: HParams, history: History) -> str:
    """The plot's title: schedule, max LR and batch (the total one under torchrun)."""
    batch = f"batch {hp.batch_size}"
    if "total_batch_size" in history.meta:
        batch = f"total batch {history.meta['total_batch_size']} ({_per_process(history)})"
    return f"{hp.schedule}, max LR {hp.max_lr:g}, {batch}"


def _per_process(history: History) -> str:
    m = history.meta
    return f"{m['batch_size_per_process']} x {m['world_size']} processes"


def _summary(name: str, history: History, out: Path) -> None:
    """Print the one summary line."""
    final = history.final
    metric = f"{final.val_metric:.4f}" if final else "n/a"
    loss = f"{final.val_loss:.4f}" if final else "n/a"
    batch = ""
    if "total_batch_size" in history.meta:
        batch = f", total batch {history.meta['total_batch_size']} = {_per_process(history)}"
    print(
        f"{name}: {history.epochs:g} epochs ({history.steps} steps{batch}, "
        f"{history.seconds:.1f} s) -> validation {history.metric_name} {metric}, "
        f"loss {loss}; wrote {out / 'history.json'} and {out / 'curves.png'}"
    )
