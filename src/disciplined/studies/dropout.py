"""The dropout study: chosen like the weight decay, from range tests at each rate read by
`decide.lowest_val_loss_at_high_lr`, on a task whose model takes a dropout rate."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from disciplined.errors import UsageError
from disciplined.rules import Rule
from disciplined.studies.context import (
    StudyContext,
    check_values,
    default_range_budget,
    sweep,
    sweep_decision,
)
from disciplined.studies.decide import (
    Decision,
    Payload,
    lowest_val_loss_at_high_lr,
    no_usable_curve,
)
from disciplined.trials.hparams import HParams

__all__ = ["DROPOUT_RULES", "DropoutChoice", "dropout_sweep"]

_HOW_TO_READ = (
    "Chosen like weight decay: one validation-mode range test per dropout value "
    "({values}); the value reaching the lowest loss at the highest learning rate wins."
)

DROPOUT_RULES = (
    Rule("lowest_val_loss_at_high_lr", lowest_val_loss_at_high_lr, _HOW_TO_READ),
    Rule("no_evidence_kept", lowest_val_loss_at_high_lr, _HOW_TO_READ),
)
"""The dropout sweep's rules, as the weight decay's."""


@dataclass(frozen=True)
class DropoutChoice(Payload):
    """The dropout decision's record: nothing beyond the decision's value, table and
    trials; the type carries the study's rules and how to read them."""

    KIND: ClassVar[str] = "dropout"
    NAMES: ClassVar[tuple[str, ...]] = ("dropout",)
    RULES: ClassVar[tuple[Rule, ...]] = DROPOUT_RULES
    HOW_TO_READ: ClassVar[str] = _HOW_TO_READ


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
        rule=DROPOUT_RULES[1 if no_usable_curve(rows) else 0].name,
        payload=DropoutChoice(),
        compute=ctx.ledger.since(start),
    )
