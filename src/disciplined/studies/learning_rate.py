"""The learning-rate study: the recipe's LR range test, its max LR read from the training
and validation curves (`read_max_lr`), widened when the sweep never turned, and read on
two or three seeds for the final run; `peak_momentum` gives the settings it runs at."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from disciplined.errors import UsageError
from disciplined.measure.range_test import RangeTest
from disciplined.measure.suggest import smith, validation_curve
from disciplined.studies.context import (
    StudyContext,
    compute_spent,
    default_range_budget,
    range_spec,
)
from disciplined.studies.decide import Decision, train_last_lr
from disciplined.trials.hparams import HParams
from disciplined.trials.spec import TrialResult

__all__ = ["SPREAD_LIMIT", "WIDEN", "learning_rate_test", "peak_momentum", "read_max_lr"]


def peak_momentum(hp: HParams) -> HParams:
    """``hp`` with the momentum held at the cycle's minimum: the settings of the range test
    that reads the 1cycle's max LR.

    The 1cycle reaches its max LR when the momentum is at its minimum, and with SGD the
    momentum scales the step (``lr / (1 - m)``): a test held at the cycle's maximum
    momentum of 0.99 stops at a learning rate the cycle, at 0.85, could take ten times
    over. The test therefore runs where the peak runs.
    """
    return hp.with_(max_momentum=hp.min_momentum)


SPREAD_LIMIT = 2.0
"""Two seeds' max-LR readings further apart than this factor call for a third seed."""
WIDEN = 100.0
"""A sweep still falling at its end is run again with its end LR this many times higher."""


def read_max_lr(test: RangeTest) -> tuple[float, str, bool]:
    """The max LR a range test supports, the sentence saying how it was read, and whether the
    test turned (the loss stopped falling before the sweep's end).

    Smith reads the test loss: the reading is the lower of `suggest.smith` on the smoothed
    training curve and `suggest.smith` on the validation curve (`suggest.validation_curve`:
    only the points the training curve vouches for), when the validation loss fell clearly.
    On small data the training loss keeps falling while the network memorizes, and the
    validation loss turns first (a 266-sample regression: training curve 0.02-0.11,
    validation curve 0.015-0.025, grid best 0.003-0.01); elsewhere the two agree.
    """
    s = test.suggestion
    if s is None:
        raise ValueError("the range test has no suggestion")
    turned = test.turned
    value, how = s.max_lr, f"training curve: {s.reason}"
    vl, vv = validation_curve(test.val_lrs, test.val_losses, train_last_lr(test.lrs, test.smoothed))
    if len(vv) >= 5:
        try:
            sv = smith(vl, vv)
        except ValueError:
            sv = None
        if sv is not None and "unreliable" not in sv.reason:
            if sv.max_lr < value:
                how = f"validation curve (lower than the training curve's {value:.3g}): {sv.reason}"
                value = sv.max_lr
            else:
                how += f"; the validation curve read {sv.max_lr:.3g}, no lower"
    return value, how, turned


def learning_rate_test(
    ctx: StudyContext,
    hp: HParams,
    *,
    num_steps: int = 300,
    seed: int = 0,
    tag: str = "lr",
    repeats: bool = False,
) -> Decision:
    """The recipe's LR range test at ``hp``: max LR by `read_max_lr` (the lower of the
    training and validation readings of `suggest.smith`), min LR = max/10.

    A sweep that never turned (its loss still falling at the end LR) is run again once
    with an end LR `WIDEN` times higher and proportionally more steps; if it still has not
    turned, the decision says the test is inconclusive (``extra["inconclusive"]``).

    ``repeats=True`` (the final reading) runs the test on two seeds; when their readings
    are more than `SPREAD_LIMIT` apart a third seed is run and the median of the three is
    taken (the outlier dropped), else the lower of the two: one range test's reading can
    move 5x between seeds, and a 1cycle past its peak LR collapses while one a little below
    it loses a little.
    """
    task = ctx.load()
    budget = default_range_budget(task, hp, num_steps)
    seeds = [seed, seed + 1000] if repeats else [seed]
    readings, results, notes, inconclusive = [], [], [], False

    def one(seed_: int, budget_: dict[str, Any], tag_: str) -> tuple[TrialResult, RangeTest]:
        (result,) = ctx.run([range_spec(ctx, hp, budget_, seed_, tag=tag_)])
        test = result.range_test
        if result.status == "failed" or test is None or test.suggestion is None:
            raise UsageError(
                f"the LR range test at batch {hp.batch_size} gave no suggestion: "
                f"{result.reason or (test.stop_reason if test else '')}"
            )
        return result, test

    def reading(seed_: int, k: int) -> tuple[float, str]:
        nonlocal inconclusive
        suffix = "" if k == 0 else f"-seed{k}"
        result, test = one(seed_, budget, tag + suffix)
        value, how, turned = read_max_lr(test)
        results.append((result, value))
        if not turned:
            wide = {
                **budget,
                "end_lr": budget["end_lr"] * WIDEN,
                "num_steps": int(budget["num_steps"] * (1 + math.log10(WIDEN) / 6)),
            }
            result, test = one(seed_, wide, tag + suffix + "-wide")
            value, how, turned = read_max_lr(test)
            results.append((result, value))
            notes.append(
                f"seed {seed_}: the loss was still falling at the sweep's end LR "
                f"{budget['end_lr']:g}; rerun to {wide['end_lr']:g}"
                + ("" if turned else ", where it still had not turned: inconclusive")
            )
            inconclusive = inconclusive or not turned
        return value, how

    for k, sd in enumerate(seeds):
        readings.append(reading(sd, k))
    if repeats:
        a, b = readings[0][0], readings[1][0]
        if max(a, b) / min(a, b) > SPREAD_LIMIT:
            readings.append(reading(seed + 2000, 2))
            value = sorted(r[0] for r in readings)[1]
            combine = (
                f"two seeds read {a:.3g} and {b:.3g} (more than {SPREAD_LIMIT:g}x apart); a "
                f"third read {readings[2][0]:.3g}: the median {value:.3g} was taken"
            )
        else:
            value = min(a, b)
            combine = f"two seeds read {a:.3g} and {b:.3g}: the lower was taken"
    else:
        value, combine = readings[0][0], ""
    rule = "smith_train_and_validation" + ("_seeds" if repeats else "")
    first_test = results[0][0].range_test
    plot = ctx.plot_path(f"{tag}_range_test.png")
    if plot is not None:
        # the plot marks the decision's max LR (and the seeds' spread), not the training
        # curve's own suggestion
        picks = [r[0] for r in readings]
        decided = replace(
            first_test.suggestion,
            max_lr=value,
            min_lr=value / 10,
            rule=rule,
            spread=(min(picks), max(picks)) if len(picks) > 1 else None,
        )
        replace(first_test, suggestion=decided).plot(
            plot,
            title=f"{task.name}: LR range test, batch {hp.batch_size}, "
            f"weight decay {hp.weight_decay:g}, momentum {hp.max_momentum:g}",
        )
    rows = []
    for r, read in results:
        t = r.range_test
        rows.append(
            {
                "seed": r.spec.seed,
                "max_lr": read,
                "training_curve": t.suggestion.max_lr,
                "end_lr": t.end_lr,
                "stopped_at_lr": t.stop_lr,
                "stop_reason": t.stop_reason,
                "steps": len(t.lrs),
            }
        )
    reason = "; ".join(x for x in [readings[0][1], *notes, combine] if x)
    return Decision(
        name="learning_rate",
        value=value,
        rule=rule,
        reason=reason,
        table=tuple(rows),
        trials=tuple(r.key for r, _ in results),
        plot=str(plot) if plot else None,
        extra={"min_lr": value / 10, "inconclusive": inconclusive},
        compute=compute_spent(ctx, [r for r, _ in results]),
    )
