"""The dropout study: chosen like the weight decay, from range tests at each rate read by
`decide.lowest_val_loss_at_high_lr`, on a task whose model takes a dropout rate."""

from __future__ import annotations

from collections.abc import Sequence

from disciplined.errors import UsageError
from disciplined.studies.context import (
    StudyContext,
    check_values,
    default_range_budget,
    sweep,
    sweep_decision,
)
from disciplined.studies.decide import Decision, lowest_val_loss_at_high_lr, no_usable_curve
from disciplined.trials.hparams import HParams

__all__ = ["dropout_sweep"]


def dropout_sweep(
    ctx: StudyContext,
    hp: HParams,
    values: Sequence[float] = (0.0, 0.1, 0.2, 0.3, 0.5),
    *,
    num_steps: int = 300,
    seed: int = 0,
    tolerance: float = 0.02,
    fallback: float | None = None,
) -> Decision:
    """Choose the dropout rate like the weight decay: range tests at each value, read on
    the validation loss (``fallback`` kept when no test fell below its start). The task's
    model must take a dropout rate."""
    task = ctx.load()
    if not task.takes_dropout:
        raise UsageError(f"task {task.name!r} has no dropout to sweep")
    values = check_values("dropout", values, lo=0.0, hi=1.0)
    start = ctx.ledger.mark()
    budget = default_range_budget(task, hp, num_steps)
    results, rows = sweep(ctx, "dropout", values, lambda v: hp.with_(dropout=v), budget, seed)
    chosen, reason = lowest_val_loss_at_high_lr(rows, tolerance=tolerance, fallback=fallback)
    return sweep_decision(
        task.name, "dropout", "dropout", "dropout rate", values, results, rows, chosen, reason,
        rule="no_evidence_kept" if no_usable_curve(rows) else "lowest_val_loss_at_high_lr",
        compute=ctx.ledger.since(start),
    )
