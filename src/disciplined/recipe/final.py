"""The recipe's steps after the final run's settings are read: the final run, the LR
bracket of full runs around its max LR, the divergence retries and the corrective round.

Each step takes the `RecipeState` and records its `Decision` there; its trials are
charged to its own step of the context's ledger (``lr_bracket``, ``divergence_retries``,
``corrective_run``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from disciplined.errors import UsageError
from disciplined.measure.diagnose import blew_up, classify_run, describe_run, diagnose
from disciplined.recipe.state import RecipeState
from disciplined.rules import Rule
from disciplined.studies import StudyContext, one_cycle_spec
from disciplined.studies.batch import BatchSizeComparison, metric_noise
from disciplined.studies.decide import Decision, Payload
from disciplined.tasks import Task
from disciplined.training.fit import History, batches_per_epoch
from disciplined.trials.hparams import HParams
from disciplined.trials.spec import TrialResult


def final_epochs(task: Task, bs: Decision, epochs: float, room: float) -> tuple[float, str]:
    """The final run's length. Batch sizes were compared at equal wall-clock time, so the
    run gets the time ``epochs`` epochs take at the task's own batch size: a faster batch
    trains more epochs in it (at most 4x, and within ``room``: the budget left, halved
    when a corrective run may follow)."""
    record = bs.payload
    timing = record.seconds_per_step if isinstance(record, BatchSizeComparison) else None
    chosen = int(bs.value)
    ref = task.default_batch_size
    if not timing or ref not in timing or chosen not in timing or chosen == ref:
        return epochs, ""
    per_epoch = {b: batches_per_epoch(task.train_data, b) for b in (ref, chosen)}
    seconds = epochs * per_epoch[ref] * timing[ref]
    equal = seconds / (per_epoch[chosen] * timing[chosen])
    final = max(epochs, min(equal, 4 * epochs, room))
    return round(final, 2), (
        f"; the time of {epochs:g} epochs at batch {ref} "
        f"({seconds:.1f} s) is {equal:.3g} epochs at batch {chosen}"
    )


def final_run(
    ctx: StudyContext, hp: HParams, epochs: float, seed: int, tag: str
) -> tuple[History, TrialResult]:
    """Run (or read back) the full 1cycle run ``tag`` at ``hp`` for ``epochs``; a run that
    could not train at all is a `UsageError`."""
    (result,) = ctx.run([one_cycle_spec(ctx, hp, epochs, seed, tag)])
    if result.history is None:
        raise UsageError(f"the {tag} run failed: {result.reason}")
    return result.history, result


BRACKET = 3.0
"""The final run's max LR is bracketed by full runs at it divided and multiplied by this."""


def lr_bracket(s: RecipeState) -> None:
    """Full 1cycle runs at the final max LR divided and multiplied by `BRACKET` beside the
    final run; the best validation metric wins (`best_full_run_of_bracket`), the range
    test's reading keeping any lead within the metric's noise. When an end of the bracket
    wins by more than the noise and the budget pays, one more run a further step that way.

    A range test reads where the loss stops falling over a few hundred steps; the cycle
    then runs a warm-up and many epochs, and the same reading sits 3-10x below what a
    BatchNorm CNN, a GRU or a noisy-label MLP take best, and 10x above what a 266-sample
    regression does (`docs/design-notes.md`). The full runs are the evidence that settles
    it; a diverged run scores worst.
    """
    ctx, task, hp, say = s.ctx, s.task, s.hp, s.say
    epochs, seed, left = s.final_epochs, s.config.seed, s.left
    base = hp.max_lr
    runs: dict[float, tuple[History, str]] = {base: (s.history, "")}
    noise = metric_noise(_metric(s.history), task.num_val, task.kind)

    def run(lrs: list[float]) -> None:
        specs = [
            one_cycle_spec(ctx, hp.with_(max_lr=lr), epochs, seed, f"bracket-{lr:.4g}")
            for lr in lrs
        ]
        with ctx.step("lr_bracket"):
            results = ctx.run(specs)
        for lr, r in zip(lrs, results, strict=True):
            if r.history is None:
                raise UsageError(f"the bracket's run at max LR {lr:.4g} failed: {r.reason}")
            runs[lr] = (r.history, r.key)
            say(
                f"bracket: max LR {lr:.4g}: {describe_run(r.history, epochs)}, validation "
                f"{_metric(r.history):.4f}"
            )

    def score(lr: float) -> float:
        h = runs[lr][0]
        m = _metric(h)
        if blew_up(h) or not math.isfinite(m):  # diverged or collapsed
            return -math.inf
        return m if task.higher_is_better else -m

    run([base / BRACKET, base * BRACKET])
    best = max(runs, key=score)
    if score(best) == -math.inf:  # every run diverged: the retries go on below the lowest
        best = min(runs)
    elif best != base and score(best) - score(base) <= noise:
        best = base
    extended = False
    gain = score(best) - score(base) if score(best) > -math.inf else -math.inf
    if best != base and gain > noise and left() >= epochs:  # left() counts the bracket's
        further = best / BRACKET if best < base else best * BRACKET
        run([further])
        extended = True
        if score(further) > score(best) + noise:
            best = further
    s.decisions.append(
        _bracket_decision(
            runs,
            base,
            best,
            noise,
            epochs,
            extended,
            all_diverged=score(best) == -math.inf,
            compute=ctx.ledger.cost("lr_bracket"),
        )
    )
    say(f"lr_bracket: learning_rate = {best:g} (best_full_run_of_bracket)")
    s.hp, s.history = hp.with_(max_lr=best), runs[best][0]


def _bracket_decision(
    runs: dict[float, tuple[History, str]],
    base: float,
    best: float,
    noise: float,
    epochs: float,
    extended: bool,
    *,
    all_diverged: bool,
    compute: dict[str, float],
) -> Decision:
    """The bracket's `Decision`: a row per run (max LR, validation metric and loss, its
    outcome in `describe_run`'s words, trial key; the final run's own key is not the
    bracket's) and the sentence with every score."""
    rows = [
        {
            "max_lr": lr,
            "val_metric": _metric(h),
            "val_loss": h.final.val_loss if h.final else None,
            "outcome": describe_run(h, epochs),
            "trial": key or None,
        }
        for lr, (h, key) in sorted(runs.items())
    ]
    scored = "; ".join(
        f"{lr:.4g}: "
        + (classify_run(h) if blew_up(h) else f"{_metric(h):.4f}")
        for lr, (h, _) in sorted(runs.items())
    )
    if all_diverged:
        kept = f"every run diverged or collapsed: lower runs follow from {best:.4g}"
    else:
        kept = (
            f"kept the range test's {base:.4g}" if best == base else f"kept {best:.4g}"
        ) + (f" (ties within the metric's noise {noise:.3g} go to the reading)" if noise else "")
    metric_name = runs[base][0].metric_name
    reason = (
        f"full {epochs:g}-epoch runs at the final max LR {base:.4g} and at 1/{BRACKET:g} and "
        f"{BRACKET:g}x it" + (", then one step further" if extended else "")
        + f": {metric_name} {scored}; {kept}"
    )
    return Decision(
        name="learning_rate",
        value=best,
        rule=BRACKET_RULE.name,
        reason=reason,
        table=tuple(rows),
        trials=tuple(r["trial"] for r in rows if r["trial"]),
        payload=LrBracket(noise=noise, reading=base),
        compute=compute,
    )


RETRY_FACTOR = 3.0
"""A final run that diverged is repeated at its max LR divided by this ..."""
MAX_RETRIES = 3
"""... at most this many times (27x lower in all) before `tune` gives up."""


def retry_lower(s: RecipeState) -> None:
    """Repeat a diverged final run at a lower max LR until one holds (`lower_max_lr_until_stable`).

    A run that blew up or collapsed back to its starting loss tells only that the 1cycle's
    peak was past what the network takes; a diverged run is never an answer. Each retry
    divides the max LR by `RETRY_FACTOR`, at most `MAX_RETRIES` times, whatever the budget
    (the budget was planned for a run that holds). When none holds, `UsageError` says so
    and `tune` writes no ``hparams.json``. The retries are recorded as one decision with a
    row per attempt.
    """
    ctx, hp, history, verdict, say = s.ctx, s.hp, s.history, s.verdict, s.say
    epochs, seed = s.final_epochs, s.config.seed
    rows = [
        {
            "max_lr": hp.max_lr,
            "val_metric": _metric(history),
            "outcome": describe_run(history, epochs),
            "verdict": verdict.verdict,
        }
    ]
    keys: list[str] = []
    first_lr = hp.max_lr
    while verdict.verdict == "diverged" and len(keys) < MAX_RETRIES:
        hp = hp.with_(max_lr=hp.max_lr / RETRY_FACTOR)
        with ctx.step("divergence_retries"):
            history, result = final_run(ctx, hp, epochs, seed, f"retry{len(keys) + 1}")
        verdict = diagnose(history)
        keys.append(result.key)
        rows.append(
            {
                "max_lr": hp.max_lr,
                "val_metric": _metric(history),
                "outcome": describe_run(history, epochs),
                "verdict": verdict.verdict,
            }
        )
        say(f"retried at max LR {hp.max_lr:.4g}: {describe_run(history, epochs)}")
    tried = ", ".join(f"{r['max_lr']:.4g}" for r in rows)
    if verdict.verdict == "diverged":
        raise UsageError(
            f"the final run diverged at every max LR tried ({tried}): {verdict.summary}; "
            "no hyper-parameters were written (the trials are kept in the store)"
        )
    s.decisions.append(
        Decision(
            name="correction",
            value=hp.max_lr,
            rule=RETRY_RULE.name,
            reason=(
                f"the final run at max LR {first_lr:.4g} diverged; repeated at 1/"
                f"{RETRY_FACTOR:g} of the max LR each time until a run held: {tried}; kept "
                f"{hp.max_lr:.4g} ({history.metric_name} {_metric(history):.4f})"
            ),
            table=tuple(rows),
            trials=tuple(keys),
            payload=Correction(parameter="max_lr"),
            compute=ctx.ledger.cost("divergence_retries"),
        )
    )
    s.hp, s.history, s.verdict = hp, history, verdict


LR_STEP = 3.0
"""An underfitting run's corrective run tries the max LR this many times higher."""


def _corrections(
    hp: HParams, grid: tuple[float, ...], verdict: str
) -> list[tuple[HParams, str, str, str]]:
    """The corrective runs for an over- or underfitting verdict, in order: each as
    ``(settings, rule, parameter, what changes)``.

    Overfitting: weight decay one grid step up (`_one_step`): more regularization.
    Underfitting: the max LR `LR_STEP` times higher first (Smith, section 3: a test loss that
    falls faster at a larger LR shows underfitting at the smaller one; and a large LR is the
    regularizer that still lets the network fit, where a noisy-label MLP did best at the
    top of its grid), then weight decay one grid step down.
    """
    if verdict not in ("overfitting", "underfitting"):
        raise ValueError(f"no corrective run for verdict {verdict!r}")
    out = []
    if verdict == "underfitting":
        new = hp.max_lr * LR_STEP
        out.append(
            (
                hp.with_(max_lr=new),
                LARGER_LR_RULE.name,
                "max_lr",
                f"max LR {hp.max_lr:.4g} -> {new:.4g}",
            )
        )
    wd = _one_step(grid, hp.weight_decay, verdict)
    if wd is not None:
        out.append(
            (
                hp.with_(weight_decay=wd),
                GRID_STEP_RULE.name,
                "weight_decay",
                f"weight decay {hp.weight_decay:g} -> {wd:g}",
            )
        )
    return out


def corrective_round(s: RecipeState) -> None:
    """Run the corrective runs (`_corrections`) the budget pays for, each changing one
    hyper-parameter of the run kept so far; a run that diverges or scores lower is dropped.
    Each run is recorded as a ``correction`` decision."""
    ctx, task, hp, history, verdict, say = s.ctx, s.task, s.hp, s.history, s.verdict, s.say
    epochs, seed, left, grid = s.final_epochs, s.config.seed, s.left, s.plan.weight_decays
    base = hp
    for hp2, rule, key, what in _corrections(base, grid, verdict.verdict):
        hp2 = hp.with_(**{key: getattr(hp2, key)})
        known = one_cycle_spec(ctx, hp2, epochs, seed, "corrective").key in ctx.results
        if not known and left() < epochs:
            say(f"{verdict.verdict}, but the budget has no room for a corrective run ({what})")
            break
        with ctx.step("corrective_run"):
            start = ctx.ledger.mark()
            h2, r2 = final_run(ctx, hp2, epochs, seed, "corrective")
        cost = ctx.ledger.since(start)  # nothing when an earlier step ran it
        v2 = diagnose(h2)
        better = v2.verdict != "diverged" and _better(h2, history, task.higher_is_better)
        row = {
            key: getattr(hp2, key),
            "val_metric": _metric(h2),
            "replaces": getattr(hp, key),
            "previous_val_metric": _metric(history),
            "outcome": describe_run(h2, epochs),
            "verdict": v2.verdict,
        }
        reason = (
            f"{verdict.verdict}: {what}; validation {history.metric_name} "
            f"{_metric(history):.4f} -> {_metric(h2):.4f}"
            + (f" ({describe_run(h2, epochs)})" if v2.verdict == "diverged" else "")
            + (" (an earlier step's run, read back: no new compute)" if known else "")
            + f"; kept the {'new' if better else 'previous'} run"
        )
        s.decisions.append(
            Decision(
                name="correction",
                value=getattr(hp2 if better else hp, key),
                rule=rule,
                reason=reason,
                table=(row,),
                trials=(r2.key,),
                payload=Correction(parameter=key),
                compute={"epochs": cost["epochs"], "seconds": cost["seconds"]},
            )
        )
        say(reason)
        if better:
            hp, history = hp2, h2
    s.hp, s.history = hp, history
    s.verdict = diagnose(history) if hp is not base else verdict


def _one_step(grid: tuple[float, ...], current: float, verdict: str) -> float | None:
    """Weight decay one step the advised way: the next grid value up (overfitting: more
    regularization) or down (underfitting: less). Past the top of the grid it goes up half
    a decade (the report's 10^-3.5-style refinement); below the bottom, to 0."""
    values = sorted(set(grid) | {current})
    i = values.index(current)
    j = i + 1 if verdict == "overfitting" else i - 1
    if 0 <= j < len(values):
        return values[j]
    if verdict == "overfitting":
        return (current or 1e-5) * math.sqrt(10)
    return None


def _metric(h: History) -> float:
    return h.final.val_metric if h.final else math.nan


def _better(new: History, old: History, higher_is_better: bool) -> bool:
    a, b = _metric(new), _metric(old)
    if blew_up(new) or not math.isfinite(a):
        return False
    if not math.isfinite(b):
        return True
    return a > b if higher_is_better else a < b


# The rules these steps apply and the records their decisions carry.

BRACKET_RULE = Rule(
    "best_full_run_of_bracket",
    lr_bracket,
    "A range test reads where the loss stops falling over a few hundred steps; a 1cycle "
    "run warms up and trains for many epochs, and the largest rate it takes well can lie "
    "a few times either side of that reading. So the final run is flanked by two more "
    "full runs, at max LR {bracket}; the best validation metric wins, the reading "
    "keeping a lead within the metric's noise, and when an end wins clearly one more run "
    "goes a step further that way.",
)
"""The bracket's rule: the best of the full runs around the reading, ties within the
metric's noise going to the reading."""


@dataclass(frozen=True)
class LrBracket(Payload):
    """The LR bracket's record: the metric's noise the runs were judged by and the range
    test's reading the bracket was drawn around."""

    KIND: ClassVar[str] = "lr_bracket"
    NAMES: ClassVar[tuple[str, ...]] = ("learning_rate",)
    RULES: ClassVar[tuple[Rule, ...]] = (BRACKET_RULE,)

    noise: float
    reading: float


_CORRECTION_HOW_TO_READ = (
    "The final run was read for under- or overfitting (below). Since the regularizers must "
    "balance, weight decay moved one grid step the advised way (up when overfitting, down "
    "when underfitting): {change}, and the run was repeated; the run with the better "
    "validation metric is kept."
)

RETRY_RULE = Rule(
    "lower_max_lr_until_stable",
    retry_lower,
    "The final run diverged: its loss blew up or collapsed back to where it started, so "
    "the 1cycle's peak was past what the network takes. The run was repeated at lower "
    "max LRs until one held (max LR {tried}); a diverged run is never returned as the "
    "answer.",
)
"""A diverged final run repeated at lower max LRs until one holds (`retry_lower`)."""

LARGER_LR_RULE = Rule(
    "larger_max_lr_when_underfitting",
    corrective_round,
    "The final run underfit: its validation loss was still falling when the cycle ended. "
    "Smith reads a test loss that falls faster at a larger learning rate as underfitting "
    "at the smaller one, so the run was repeated at a larger max LR ({change}); the run "
    "with the better validation metric is kept (a run that diverges never is).",
)
"""An underfitting run repeated at a larger max LR (`corrective_round`)."""

GRID_STEP_RULE = Rule("one_grid_step_as_advised", corrective_round, _CORRECTION_HOW_TO_READ)
"""An over- or underfitting run repeated with the weight decay one grid step the advised
way (`corrective_round`)."""


@dataclass(frozen=True)
class Correction(Payload):
    """A correction's record: the hyper-parameter it changed (``max_lr`` or
    ``weight_decay``)."""

    KIND: ClassVar[str] = "correction"
    NAMES: ClassVar[tuple[str, ...]] = ("correction",)
    RULES: ClassVar[tuple[Rule, ...]] = (RETRY_RULE, LARGER_LR_RULE, GRID_STEP_RULE)
    HOW_TO_READ: ClassVar[str] = _CORRECTION_HOW_TO_READ

    parameter: str
