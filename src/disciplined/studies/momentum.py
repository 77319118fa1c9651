"""The momentum study (Smith, section 4.4): range tests at each momentum held constant,
read by `decide.lowest_val_loss_at_high_lr` on the effective LR with SGD; the cycle's
minimum momentum follows from the chosen maximum (`decide.cycle_min_momentum`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

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
    cycle_min_momentum,
    lowest_val_loss_at_high_lr,
    no_usable_curve,
    sgd_effective_lr_factor,
)
from disciplined.trials.hparams import HParams

__all__ = ["MOMENTUM_RULES", "MomentumChoice", "momentum_test"]

_HOW_TO_READ = (
    "Range tests at momentum {values}, read like weight decay: the value "
    "whose validation loss goes lowest at the highest learning rate is kept. With SGD the "
    "momentum multiplies the step by 1 / (1 - momentum), so near ties are ranked by that "
    "effective learning rate. In the 1cycle the momentum then runs opposite to the "
    "learning rate: from this maximum down to the minimum while the rate climbs, and back "
    "up while it falls; the final range test is run at that minimum, where the peak runs."
)

MOMENTUM_RULES = (
    Rule("lowest_val_loss_at_high_effective_lr", lowest_val_loss_at_high_lr, _HOW_TO_READ),
    Rule("lowest_val_loss_at_high_lr", lowest_val_loss_at_high_lr, _HOW_TO_READ),
    Rule("no_evidence_kept", lowest_val_loss_at_high_lr, _HOW_TO_READ),
)
"""The momentum study's rules: SGD ranks ties by the effective LR, AdamW by the raw LR;
with no usable curve the fallback is kept."""


@dataclass(frozen=True)
class MomentumChoice(Payload):
    """The momentum decision's record: the cycle's maximum and minimum momentum and the
    optimizer's parameter that carries it (``momentum``, or ``betas[0]`` for AdamW)."""

    KIND: ClassVar[str] = "momentum"
    NAMES: ClassVar[tuple[str, ...]] = ("momentum",)
    RULES: ClassVar[tuple[Rule, ...]] = MOMENTUM_RULES
    HOW_TO_READ: ClassVar[str] = _HOW_TO_READ

    max_momentum: float
    min_momentum: float
    parameter: str = "momentum"


def momentum_test(
    ctx: StudyContext,
    hp: HParams,
    values: Sequence[float] = (0.99, 0.97, 0.95, 0.9),
    *,
    num_steps: int = 300,
    seed: int = 0,
    tolerance: float = 0.02,
    fallback: float | None = None,
) -> Decision:
    """Choose ``max_momentum`` (``betas[0]`` for AdamW) from range tests at each value.

    The momentum is held constant during each test. Decision: the value whose validation
    curve reaches the lowest loss while still allowing a high learning rate
    (`lowest_val_loss_at_high_lr`); ``min_momentum`` is 0.85, or 0.8 when the chosen maximum
    is below 0.95 (the report's ranges: 0.95-0.99 down to 0.85, or 0.9 down to 0.8).

    With SGD, momentum ``m`` multiplies the step by ``1 / (1 - m)`` (the report: a large
    constant momentum acts like a larger learning rate), so curves within the tolerance of
    the lowest loss are ranked by the effective learning rate at their minimum, ``lr / (1 -
    m)``; ranked by the raw LR, the lowest momentum would win every tie, its curve reaching
    the same loss only at a higher raw LR. Adam's ``betas[0]`` averages the gradient
    instead of summing it, so AdamW ties are ranked by the raw LR. When no test fell below
    its start, ``fallback`` is kept (rule ``no_evidence_kept``; `UsageError` without one).
    """
    task = ctx.load()
    start = ctx.ledger.mark()
    values = check_values("momentum", values, lo=0.0, hi=1.0)
    budget = default_range_budget(task, hp, num_steps)
    results, rows = sweep(
        ctx,
        "momentum",
        values,
        lambda v: hp.with_(max_momentum=v, min_momentum=min(v, hp.min_momentum)),
        budget,
        seed,
    )
    sgd = hp.optimizer == "sgd"
    chosen, reason = lowest_val_loss_at_high_lr(
        rows,
        tolerance=tolerance,
        lr_factor=sgd_effective_lr_factor if sgd else None,
        fallback=fallback,
    )
    min_m = cycle_min_momentum(chosen)
    min_m = min(min_m, chosen)
    param = "betas[0]" if hp.optimizer == "adamw" else "momentum"
    rule = MOMENTUM_RULES[2] if no_usable_curve(rows) else MOMENTUM_RULES[0 if sgd else 1]
    return sweep_decision(
        task.name, "momentum", "momentum", "momentum", values, results, rows, chosen,
        f"{reason}; cyclical {param} {chosen:g} -> {min_m:g}",
        rule=rule.name,
        payload=MomentumChoice(max_momentum=chosen, min_momentum=min_m, parameter=param),
        compute=ctx.ledger.since(start),
    )
