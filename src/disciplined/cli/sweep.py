"""``disciplined sweep weight-decay|momentum|dropout``: one study of the recipe."""

from __future__ import annotations

import argparse

from disciplined.cli.common import (
    add_device_args,
    add_task_args,
    device_from_args,
    nonneg_float,
    parse_task_options,
    positive_float,
    positive_int,
    prepare_out,
    task_from_args,
    trial_progress,
)
from disciplined.errors import UsageError
from disciplined.executors import make_executor
from disciplined.hparams import OPTIMIZERS, HParams
from disciplined.store import open_store
from disciplined.studies import StudyContext, dropout_sweep, momentum_test, weight_decay_sweep

STUDIES = ("weight-decay", "momentum", "dropout")


def _values(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated numbers, got {text!r}") from None


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``sweep`` sub-command."""
    p = sub.add_parser(
        "sweep",
        help="weight-decay, momentum or dropout study",
        description="Run LR range tests at each candidate value, read them on "
        "the validation loss, and choose (Smith, section 4).",
    )
    p.add_argument("study", choices=STUDIES)
    add_task_args(p)
    p.add_argument(
        "--values",
        type=_values,
        default=None,
        help="comma-separated candidates (default: the report's grid)",
    )
    p.add_argument("--workers", type=positive_int, default=1)
    p.add_argument(
        "--store", default=None, help="SQLite file of trials (default: OUT/trials.sqlite)"
    )
    p.add_argument("--steps", type=positive_int, default=300, help="steps of each range test")
    p.add_argument("--batch-size", type=positive_int, default=None)
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd")
    p.add_argument(
        "--weight-decay",
        type=nonneg_float,
        default=0.0,
        help="held during momentum and dropout sweeps",
    )
    p.add_argument(
        "--momentum", type=float, default=0.9, help="held during weight-decay and dropout sweeps"
    )
    p.add_argument("--dropout", type=nonneg_float, default=0.0)
    p.add_argument(
        "--method",
        choices=("range-test", "snapshot"),
        default="range-test",
        help="weight decay: tests from fresh weights, or from a one-cycle snapshot",
    )
    p.add_argument("--snapshot-epochs", type=positive_float, default=None)
    p.add_argument(
        "--refine",
        action="store_true",
        help="weight decay: one more value halfway between the best two",
    )
    p.add_argument("--seed", type=int, default=0)
    add_device_args(p)
    p.add_argument("--out", default="runs/sweep")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the study, write ``decision.json`` and the overlay plot, print the decision."""
    if not 0 <= args.momentum < 1:
        raise UsageError(f"--momentum must be in [0, 1), got {args.momentum}")
    if args.values is not None:
        bad = [v for v in args.values if v < 0]
        if bad:
            raise UsageError(f"--values must be >= 0, got {bad[0]}")
        if args.study in ("momentum", "dropout") and any(v >= 1 for v in args.values):
            raise UsageError(f"{args.study} values must be < 1, got {max(args.values)}")
    task = task_from_args(args)
    device, amp = device_from_args(args)
    out = prepare_out(args.out)
    store = open_store(args.store, out)
    hp = HParams(
        max_lr=1e-5,
        max_momentum=args.momentum,
        min_momentum=args.momentum,
        weight_decay=args.weight_decay,
        dropout=args.dropout,
        batch_size=args.batch_size or task.default_batch_size,
        optimizer=args.optimizer,
    )
    ctx = StudyContext(
        task=args.task,
        task_options=parse_task_options(args),
        store=store,
        executor=make_executor(args.workers),
        out=out,
        on_result=trial_progress(),
        device=device,
        amp=amp,
    )
    with store, ctx.executor:
        if args.study == "weight-decay":
            decision = weight_decay_sweep(
                ctx,
                hp,
                args.values,
                num_steps=args.steps,
                seed=args.seed,
                refine=args.refine,
                method=args.method.replace("-", "_"),
                snapshot_epochs=args.snapshot_epochs,
            )
        elif args.study == "momentum":
            decision = momentum_test(
                ctx,
                hp,
                args.values or (0.99, 0.97, 0.95, 0.9),
                num_steps=args.steps,
                seed=args.seed,
            )
        else:
            decision = dropout_sweep(
                ctx,
                hp,
                args.values or (0.0, 0.1, 0.2, 0.3, 0.5),
                num_steps=args.steps,
                seed=args.seed,
            )
    decision.save(out / "decision.json")
    print(
        f"{task.name}: {decision.name} = {decision.value:g} ({decision.rule}); "
        f"wrote {out / 'decision.json'}"
    )
    return 0
