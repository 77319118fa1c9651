"""The learning-rate study: the recipe's LR range test, its max LR read from the training
and validation curves (`read_max_lr`), widened when the sweep never turned, and read on
two or three seeds for the final run; `peak_momentum` gives the settings it runs at."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from disciplined.errors import UsageError
from disciplined.measure.range_test import RangeTest
from disciplined.measure.suggest import RULES as SUGGESTION_RULES
from disciplined.measure.suggest import smith, validation_curve
from disciplined.rules import Rule
from disciplined.studies.context import (
    StudyContext,
    default_range_budget,
    range_spec,
    range_test_figure,
)
from disciplined.studies.decide import Decision, Payload, train_last_lr
from disciplined.tasks import Task
from disciplined.training.batching import has_batch_norm
from disciplined.trials.hparams import HParams
from disciplined.trials.spec import TrialResult

__all__ = [
    "LEARNING_RATE_RULES",
    "SPREAD_LIMIT",
    "WIDEN",
    "LearningRateReading",
    "has_batchnorm",
    "learning_rate_test",
    "peak_momentum",
    "read_max_lr",
]


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


BATCHNORM_NOTE = (
    "the validation curve is not read: the model has BatchNorm, whose running statistics "
    "(what evaluation uses) trail the weights a rising LR keeps moving, so its validation "
    "loss turns early"
)


def has_batchnorm(task: Task) -> bool:
    """Whether the task's model has a BatchNorm layer: one model built with the default
    hyper-parameters, the global random state left as it was (`training.has_batch_norm`)."""
    with torch.random.fork_rng(devices=[]):
        return has_batch_norm(task.model())


def read_max_lr(test: RangeTest, batchnorm: bool = False) -> tuple[float, str, bool]:
    """The max LR a range test supports, the sentence saying how it was read, and whether the
    test turned (the loss stopped falling before the sweep's end).

    Smith reads the test loss: the reading is the lower of `suggest.smith` on the smoothed
    training curve and `suggest.smith` on the validation curve (`suggest.validation_curve`:
    only the points the training curve vouches for), when the validation loss fell clearly.
    On small data the training loss keeps falling while the network memorizes, and the
    validation loss turns first (a 266-sample regression: training curve 0.02-0.11,
    validation curve 0.015-0.025, grid best 0.003-0.01); elsewhere the two agree.

    With ``batchnorm`` (the model has a BatchNorm layer, `has_batchnorm`) only the training
    curve is read: evaluation uses the layers' running statistics, which trail the weights
    while the LR rises, so the validation loss turns well before the training loss does
    (the development zoo's residual CNN: validation 0.008, training 0.11, the oracle grid's
    best 0.1).
    """
    s = test.suggestion
    if s is None:
        raise ValueError("the range test has no suggestion")
    turned = test.turned
    value, how = s.max_lr, f"training curve: {s.reason}"
    if batchnorm:
        return value, f"{how}; {BATCHNORM_NOTE}", turned
    vl, vv = validation_curve(test.val_lrs, test.val_losses, train_last_lr(test.lrs, test.smoothed))
    if len(vv) >= 5:
        try:
            sv = smith(vl, vv, stopped=test.stop_reason)
        except ValueError:
            sv = None
        if sv is not None and "unreliable" not in sv.reason:
            if sv.max_lr < value:
                how = f"validation curve (lower than the training curve's {value:.3g}): {sv.reason}"
                value = sv.max_lr
            else:
                how += f"; the validation curve read {sv.max_lr:.3g}, no lower"
    return value, how, turned


LEARNING_RATE_RULES = (
    Rule(
        "smith_train_and_validation",
        read_max_lr,
        "the largest learning rate before the loss stops falling, read on the training and on "
        "the validation curve, the lower of the two",
    ),
    Rule(
        "smith_train_and_validation_seeds",
        read_max_lr,
        "the largest learning rate before the loss stops falling, read on the training and on "
        "the validation curve (the lower), on two seeds (the lower; the median of three when "
        "they disagree by more than 2x)",
    ),
    # one curve's suggestion rules (`measure.suggest.RULES`), which older tunes named
    Rule(
        "smith",
        SUGGESTION_RULES["smith"],
        "the largest learning rate before the loss stops falling",
    ),
    Rule(
        "valley",
        SUGGESTION_RULES["valley"],
        "two thirds of the way along the longest descent into the minimum",
    ),
    Rule(
        "steepest",
        SUGGESTION_RULES["steepest"],
        "where the loss falls fastest, looking only before the minimum",
    ),
    Rule(
        "minimum/10",
        SUGGESTION_RULES["minimum/10"],
        "the learning rate at the lowest loss, divided by 10",
    ),
)
"""The rules a learning-rate decision reads its max LR by; each explanation completes the
sentence "the rule reads max LR as ...". `learning_rate_test` applies the first two."""


@dataclass(frozen=True)
class LearningRateReading(Payload):
    """A learning-rate range test's record: the 1cycle's min LR (max/10), whether the test
    was inconclusive (the loss still falling at the widened sweep's end), whether any seed's
    loss fell clearly (``reliable``: without a fall the reading is only where the plateau
    ended, and the race spans it wider), and the batch size it ran at.

    Its how-to-read texts, by the step that ran it: ``HOW_TO_READ`` (the recipe's first
    test), ``FINAL_HOW_TO_READ`` (the final reading at the chosen settings) and
    ``CANDIDATE_HOW_TO_READ`` (a candidate batch size's reading for the race)."""

    KIND: ClassVar[str] = "learning_rate"
    NAMES: ClassVar[tuple[str, ...]] = ("learning_rate",)
    RULES: ClassVar[tuple[Rule, ...]] = LEARNING_RATE_RULES
    HOW_TO_READ: ClassVar[str] = (
        "In an LR range test the learning rate grows every mini-batch from a tiny value to a "
        "large one while the loss is recorded. Smith takes the largest useful learning rate "
        "where the loss stops falling and turns ragged or rises: that is the 1cycle's max LR, "
        "and its min LR is a tenth of it."
    )
    FINAL_HOW_TO_READ: ClassVar[str] = (
        "The range test again, now at the chosen batch size and weight decay and with the "
        "momentum held at the cycle's minimum, where the 1cycle reaches its max LR, since "
        "each of them moves the largest usable learning rate (larger batches allow larger "
        "rates, and with SGD a larger momentum makes every step larger). Its max LR is the "
        "one the final 1cycle run uses."
    )
    CANDIDATE_HOW_TO_READ: ClassVar[str] = (
        "The range test at one of the candidate batch sizes, with the weight decay and "
        "momentum chosen above and the momentum held at the cycle's minimum, where the 1cycle "
        "reaches its max LR; read on two seeds. Larger batches allow larger learning rates, "
        "so each candidate races at its own reading."
    )

    min_lr: float
    inconclusive: bool = False
    reliable: bool = True
    batch_size: int | None = None


def learning_rate_test(
    ctx: StudyContext,
    hp: HParams,
    *,
    num_steps: int = 300,
    seed: int = 0,
    tag: str = "lr",
    repeats: bool = False,
    spend: Callable[[float, float], bool] | None = None,
) -> Decision:
    """The recipe's LR range test at ``hp``: max LR by `read_max_lr` (the lower of the
    training and validation readings of `suggest.smith`), min LR = max/10.

    A sweep that never turned (its loss still falling at the end LR) is run again once
    with an end LR `WIDEN` times higher and proportionally more steps; if it still has not
    turned, the decision says the test is inconclusive (its `LearningRateReading`).

    ``repeats=True`` (the final reading) runs the test on two seeds; when their readings
    are more than `SPREAD_LIMIT` apart a third seed is run and the median of the three is
    taken (the outlier dropped), else the lower of the two: one range test's reading can
    move 5x between seeds, and a 1cycle past its peak LR collapses while one a little below
    it loses a little. A reading off a curve whose loss never fell clearly
    (`Suggestion.reliable`) is no evidence of where the fall ends: it also calls for the
    third seed, and does not vote while a reading with a clear fall exists
    (`_combine_seeds`).

    ``spend(epochs, per_test)`` says whether the test may spend ``epochs`` in all, a test
    costing about ``per_test`` (the recipe's cap on its range tests, which counts the tests
    still to come at that cost); the third seed and a widened rerun run only when it
    allows them. Without the third seed, two readings that
    disagree give the one with a clear fall, else their geometric mean (`_two_seeds`).
    """
    task = ctx.load()
    start = ctx.ledger.mark()
    tests = _Readings(
        ctx,
        hp,
        default_range_budget(task, hp, num_steps),
        tag,
        spend=spend,
        start=start,
        batchnorm=has_batchnorm(task),
    )
    for k, sd in enumerate([seed, seed + 1000] if repeats else [seed]):
        tests.read(sd, k)
    value, combine = _combine_seeds(tests, seed) if repeats else (tests.values[0], "")
    rule = LEARNING_RATE_RULES[1 if repeats else 0].name
    figure = range_test_figure(
        f"{tag}_range_test.png",
        tests.results[0][0],
        value,
        rule,
        tests.values,
        f"{task.name}: LR range test, batch {hp.batch_size}, "
        f"weight decay {hp.weight_decay:g}, momentum {hp.max_momentum:g}",
    )
    reason = "; ".join(x for x in [tests.how[0], *tests.notes, combine] if x)
    return Decision(
        name="learning_rate",
        value=value,
        rule=rule,
        reason=reason,
        table=tuple(_row(r, read) for r, read in tests.results),
        trials=tuple(r.key for r, _ in tests.results),
        figures=(figure,),
        payload=LearningRateReading(
            min_lr=value / 10,
            inconclusive=tests.inconclusive,
            reliable=any(tests.reliable),
            batch_size=hp.batch_size,
        ),
        compute=ctx.ledger.since(start),
    )


@dataclass
class _Readings:
    """The range tests of one `learning_rate_test` and what was read off them: per seed,
    the max LR (``values``), whether its curve fell clearly (``reliable``) and how it was
    read (``how``); every test run with the value
    read off it (``results``, a widened rerun included); the notes on reruns."""

    ctx: StudyContext
    hp: HParams
    budget: dict[str, Any]
    tag: str
    values: list[float] = field(default_factory=list)
    reliable: list[bool] = field(default_factory=list)
    how: list[str] = field(default_factory=list)
    results: list[tuple[TrialResult, float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    inconclusive: bool = False
    spend: Callable[[float, float], bool] | None = None
    start: int = 0
    batchnorm: bool = False

    def affords(self, tests: float) -> bool:
        """Whether ``tests`` more tests (each costing what the tests so far did on average)
        fit what ``spend(total, per_test)`` allows; always, without a ``spend``."""
        if self.spend is None or not self.results:
            return True
        spent = self.ctx.ledger.since(self.start)["epochs"]
        per = spent / len(self.results)
        return self.spend(spent + tests * per, per)

    def read(self, seed: int, k: int) -> None:
        """Read the ``k``-th seed: its test, rerun once wider when it never turned."""
        suffix = "" if k == 0 else f"-seed{k}"
        value, how, turned, reliable = self._test(seed, self.budget, self.tag + suffix)
        widen = 1 + math.log10(WIDEN) / 6
        if not turned and not self.affords(widen):
            self.notes.append(
                f"seed {seed}: the loss was still falling at the sweep's end LR "
                f"{self.budget['end_lr']:g}; the range tests' budget left no room for a "
                "wider rerun: inconclusive"
            )
            self.inconclusive = True
        elif not turned:
            wide = {
                **self.budget,
                "end_lr": self.budget["end_lr"] * WIDEN,
                "num_steps": int(self.budget["num_steps"] * widen),
            }
            value, how, turned, reliable = self._test(seed, wide, self.tag + suffix + "-wide")
            self.notes.append(
                f"seed {seed}: the loss was still falling at the sweep's end LR "
                f"{self.budget['end_lr']:g}; rerun to {wide['end_lr']:g}"
                + ("" if turned else ", where it still had not turned: inconclusive")
            )
            self.inconclusive = self.inconclusive or not turned
        self.values.append(value)
        self.reliable.append(reliable)
        self.how.append(how)

    def _test(
        self, seed: int, budget: dict[str, Any], tag: str
    ) -> tuple[float, str, bool, bool]:
        ctx, hp = self.ctx, self.hp
        (result,) = ctx.run([range_spec(ctx, hp, budget, seed, tag=tag)])
        test = result.range_test
        if result.status == "failed" or test is None or test.suggestion is None:
            raise UsageError(
                f"the LR range test at batch {hp.batch_size} gave no suggestion: "
                f"{result.reason or (test.stop_reason if test else '')}"
            )
        value, how, turned = read_max_lr(test, self.batchnorm)
        self.results.append((result, value))
        # a reading off the validation curve is one with a clear fall (`read_max_lr`)
        reliable = test.suggestion.reliable or value != test.suggestion.max_lr
        return value, how, turned, reliable


def _two_seeds(tests: _Readings, apart: bool) -> tuple[float, str]:
    """Two readings that call for a third seed when the range tests' budget has no room for
    it: the one with a clear fall when only one has it, else their geometric mean (the race
    spans it a few times either way, so both readings stay inside its box)."""
    (a, b), (ok_a, ok_b) = tests.values[:2], tests.reliable[:2]
    why = f"two seeds read {a:.3g} and {b:.3g}" + (
        f" (more than {SPREAD_LIMIT:g}x apart)" if apart else ""
    )
    why += "; the range tests' budget left no room for a third"
    if ok_a != ok_b:
        value = a if ok_a else b
        return value, why + f", so the one reading with a clear fall, {value:.3g}, was taken"
    value = math.sqrt(a * b)
    return value, why + f": their geometric mean {value:.3g} was taken"


def _combine_seeds(tests: _Readings, seed: int) -> tuple[float, str]:
    """Two seeds' readings combined: the lower, or, when more than `SPREAD_LIMIT` apart or
    when either came from a curve that never fell clearly (`Suggestion.reliable`), with a
    third seed read here. A reading with no clear fall behind it does not vote while one
    with a fall exists: of the readings that are left, the median of three, the lower of
    two, or the only one; with none left, the median of all three. Returns the value and
    the sentence."""
    a, b = tests.values[0], tests.values[1]
    apart = max(a, b) / min(a, b) > SPREAD_LIMIT
    if not apart and all(tests.reliable):
        return min(a, b), f"two seeds read {a:.3g} and {b:.3g}: the lower was taken"
    if not tests.affords(1.0):
        return _two_seeds(tests, apart)
    tests.read(seed + 2000, 2)
    values, ok = tests.values, tests.reliable
    trusted = sorted(v for v, good in zip(values, ok, strict=True) if good)
    doubtful = [v for v, good in zip(values, ok, strict=True) if not good]
    why = f"two seeds read {a:.3g} and {b:.3g}" + (
        f" (more than {SPREAD_LIMIT:g}x apart)" if apart else ""
    )
    why += f"; a third read {values[2]:.3g}"
    if doubtful:
        why += (
            "; the loss never fell clearly in the test"
            + ("s" if len(doubtful) > 1 else "")
            + " that read "
            + ", ".join(f"{v:.3g}" for v in doubtful)
        )
    if len(trusted) in (0, 3):
        value = sorted(values)[1]
        return value, why + (
            f": the median {value:.3g} was taken"
            + ("" if trusted else " (no reading is reliable)")
        )
    value = trusted[0]
    if len(trusted) == 2:
        return value, why + f": the lower of the other two, {value:.3g}, was taken"
    return value, why + f", so the one reading with a clear fall, {value:.3g}, was taken"


def _row(result: TrialResult, read: float) -> dict[str, Any]:
    """A row of the evidence table: one range test and the max LR read off it."""
    t = result.range_test
    return {
        "seed": result.spec.seed,
        "max_lr": read,
        "training_curve": t.suggestion.max_lr,
        "end_lr": t.end_lr,
        "stopped_at_lr": t.stop_lr,
        "stop_reason": t.stop_reason,
        "steps": len(t.lrs),
    }
