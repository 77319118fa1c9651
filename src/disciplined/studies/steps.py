"""The recipe's opening steps as the studies run them: where its range tests start
(`starting_hparams`) and the max LR, weight decay, dropout (when asked) and momentum read
in turn (`range_test_steps`). They compose every study, so they sit above the study
modules; `recipe.tune` and `integrations.lightning.tune_lightning` both run them."""

from __future__ import annotations

from collections.abc import Callable

from disciplined.studies.context import StudyContext
from disciplined.studies.decide import Decision
from disciplined.studies.dropout import dropout_sweep
from disciplined.studies.learning_rate import learning_rate_test
from disciplined.studies.momentum import MomentumChoice, momentum_test
from disciplined.studies.weight_decay import (
    decay_scale,
    default_weight_decays,
    weight_decay_sweep,
)
from disciplined.tasks import Task
from disciplined.trials.hparams import HParams

__all__ = [
    "NO_EVIDENCE_MOMENTUM",
    "NO_EVIDENCE_WEIGHT_DECAY",
    "RECIPE_DROPOUTS",
    "no_evidence_weight_decay",
    "range_test_steps",
    "starting_hparams",
]


def starting_hparams(task: Task, optimizer: str = "sgd") -> HParams:
    """Where the recipe's range tests start: the task's batch size, momentum 0.9 held
    constant, no weight decay (the LR is the sweep's own)."""
    return HParams(
        max_lr=0.1,
        max_momentum=0.9,
        min_momentum=0.9,
        weight_decay=0.0,
        batch_size=task.default_batch_size,
        optimizer=optimizer,
    )


def range_test_steps(
    ctx: StudyContext,
    hp: HParams,
    *,
    num_steps: int,
    seed: int,
    dropout: bool = False,
    momentum: bool = True,
    record: Callable[[str, Decision], Decision] | None = None,
    max_epochs: float | None = None,
) -> HParams:
    """The recipe's first steps, read from range tests at the task's batch size, each at
    the values chosen before it: the max LR (`learning_rate_test`), the weight decay
    (`weight_decay_sweep` over the task's grid), the dropout when asked (`dropout_sweep`),
    then the momentum (`momentum_test`, which also sets the cycle's minimum). Each runs as
    a step of the context's ledger (``lr_range_test``, ``weight_decay``, ``dropout``,
    ``momentum``) and its `Decision` goes to ``record(step, decision)``; returns ``hp`` with
    the choices. ``momentum=False`` (the race, which runs momentum as entrants) skips the
    momentum test and sets the report's default cycle, 0.95 down to 0.85; the LR test is
    then read on two seeds, since the race scales every batch's LR from it.

    ``max_epochs`` caps the range tests together: the LR test's third seed and widened
    rerun run only when they fit beside the sweeps still to come, each of their tests
    counted at what an LR test cost (`learning_rate_test`'s ``spend``)."""
    keep = record or (lambda _step, d: d)
    grid, _ = default_weight_decays(ctx.load(), hp.optimizer)
    later = len(grid) + (len(RECIPE_DROPOUTS) if dropout else 0)

    def spend(total: float, per_test: float) -> bool:
        return max_epochs is None or total + later * per_test <= max_epochs

    with ctx.step("lr_range_test"):
        # the race reads every batch's LR off this one test: read it as the final reading
        # is, on two seeds (a third when they disagree)
        lr0 = learning_rate_test(
            ctx, hp, num_steps=num_steps, seed=seed, repeats=not momentum, spend=spend
        )
    hp = hp.with_(max_lr=keep("lr_range_test", lr0).value)
    with ctx.step("weight_decay"):
        wd = weight_decay_sweep(
            ctx, hp, None, num_steps=num_steps, seed=seed, fallback=no_evidence_weight_decay(hp)
        )
    hp = hp.with_(weight_decay=keep("weight_decay", wd).value)
    if dropout:  # Smith: chosen like weight decay, at the weight decay chosen
        with ctx.step("dropout"):
            drop = dropout_sweep(
                ctx, hp, RECIPE_DROPOUTS, num_steps=num_steps, seed=seed, fallback=0.0
            )
        hp = hp.with_(dropout=keep("dropout", drop).value)
    if not momentum:
        return hp.with_(max_momentum=NO_EVIDENCE_MOMENTUM, min_momentum=0.85)
    with ctx.step("momentum"):
        mom = momentum_test(
            ctx, hp, num_steps=num_steps, seed=seed, fallback=NO_EVIDENCE_MOMENTUM
        )
    choice = keep("momentum", mom).payload
    if not isinstance(choice, MomentumChoice):
        raise TypeError(f"the momentum decision carries no MomentumChoice: {choice!r}")
    return hp.with_(max_momentum=choice.max_momentum, min_momentum=choice.min_momentum)


NO_EVIDENCE_WEIGHT_DECAY = 1e-4
"""The weight decay kept under SGD when no range test of the sweep fell below its start (a
network that needs more steps than a range test to leave its plateau): the report's middle
value when nothing is known (1e-3 ... 1e-5, 0)."""


def no_evidence_weight_decay(hp: HParams) -> float:
    """The weight decay kept when the sweep has no evidence: `NO_EVIDENCE_WEIGHT_DECAY`,
    scaled for the optimizer as its grid is (`studies.weight_decay.decay_scale`)."""
    return NO_EVIDENCE_WEIGHT_DECAY * decay_scale(hp.optimizer)

NO_EVIDENCE_MOMENTUM = 0.95
"""The maximum momentum kept when no range test of the momentum sweep fell below its start:
the report's default cycle, 0.95 down to 0.85."""

RECIPE_DROPOUTS = (0.0, 0.1, 0.2, 0.3, 0.5)
"""The dropout rates the recipe tries, when asked, on a task whose model takes one."""
