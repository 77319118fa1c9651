"""The recipe's race step: the entrants from the range tests' readings, the rungs within
the budget left, the runs through the tune's executor and store, and the winner's full run
kept as the final run. The race itself (entrants, rungs, budget cuts, successive halving,
the winner) is `disciplined.search.race`, pure functions tested on synthetic scores; this
module runs it on the task and records it as a `Decision`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from disciplined.errors import UsageError
from disciplined.measure.diagnose import classify_run
from disciplined.rules import Rule
from disciplined.search.race import (
    CEILING_MARGIN,
    RACE_MOMENTA,
    RESEED,
    Entrant,
    RaceRun,
    default_entrant,
    fit_to_budget,
    halve,
    held_up,
    make_entrants,
    pick_winner,
    rank_runs,
    rung_counts,
    rung_epochs,
    scaled_readings,
    within_ceiling,
)
from disciplined.studies import one_cycle_spec
from disciplined.studies.batch import metric_noise
from disciplined.studies.decide import Decision, Payload, cycle_min_momentum
from disciplined.studies.learning_rate import LearningRateReading
from disciplined.studies.weight_decay import WEIGHT_DECAY_RULES
from disciplined.training.batching import batches_per_epoch
from disciplined.training.history import History
from disciplined.trials.hparams import HParams
from disciplined.trials.spec import TrialResult

if TYPE_CHECKING:
    from disciplined.recipe.state import RecipeState

__all__ = ["RACE_RULE", "RaceRecord", "race_weight_decays", "run_race"]

RACE_RULE = Rule(
    "successive_halving",
    halve,
    "The range tests draw a box, and full 1cycle runs decide inside it: each candidate "
    "batch size at its own range-test max LR times {factors}, at weight decay {wds}. "
    "They race over complete 1cycle runs of {rungs} epochs: after each rung the best "
    "third by validation metric goes on (successive halving), and the best two run the "
    "full length where the budget allows, since a short cycle favours what learns fast; "
    "when the budget pays for more, the best three of the rung before the last run again "
    "from a second seed and the mean of the two ranks them, since one seed's metric is a "
    "noisy pick. The best run of the full length wins; its lead "
    "counts only beyond the metric's noise, ties going to the range test's own reading, "
    "then to the better score, then to the larger batch. The winner's run is the "
    "final run below. A run that blew up scores worst; a run that never left its "
    "starting level did not learn, and is ranked by its metric like any other.",
)
"""The race's rule: successive halving over whole 1cycle runs (`search.race.halve`)."""


@dataclass(frozen=True)
class RaceRecord(Payload):
    """The race's record: the winner's settings (batch size, max LR, weight decay, the
    factor its max LR is of its batch's reading, its maximum momentum, None when it kept
    the cycle's default, and whether it was the task's default entrant), the rungs' epochs,
    how many runs each rung made, and the metric's noise the winner's lead is judged by."""

    KIND: ClassVar[str] = "race"
    NAMES: ClassVar[tuple[str, ...]] = ("race",)
    RULES: ClassVar[tuple[Rule, ...]] = (RACE_RULE,)
    HOW_TO_READ: ClassVar[str] = RACE_RULE.explanation

    batch_size: int
    max_lr: float
    weight_decay: float
    lr_factor: float
    max_momentum: float | None
    default: bool
    rungs: tuple[float, ...]
    counts: tuple[int, ...]
    noise: float

    @classmethod
    def from_dict(cls, d: Any) -> RaceRecord:
        """Rebuild from `to_dict` output."""
        names = set(cls.__dataclass_fields__)
        fields_ = {k: v for k, v in d.items() if k in names}
        fields_["rungs"] = tuple(d["rungs"])
        fields_["counts"] = tuple(d["counts"])
        return cls(**fields_)


def race_weight_decays(decisions: Sequence[Decision], grid: Sequence[float]) -> list[float]:
    """The weight decays that race: the sweep's choice and its runner-up (the usable curve
    with the next lowest validation loss); with no evidence from the sweep, its kept value
    and the grid's next value up."""
    wd = next((d for d in decisions if d.name == "weight_decay"), None)
    if wd is None:
        return [0.0]
    chosen = float(wd.value)
    rows = [r for r in wd.table if r.get("status") == "ok" and r.get("note", "") == ""]
    rows = [r for r in rows if math.isfinite(r.get("lowest_val_loss", math.nan))]
    others = sorted((r for r in rows if r["value"] != chosen), key=lambda r: r["lowest_val_loss"])
    if wd.rule != WEIGHT_DECAY_RULES[1].name and others:
        return [chosen, float(others[0]["value"])]
    up = sorted(v for v in grid if v > chosen)
    return [chosen, up[0]] if up else [chosen]


def run_race(s: RecipeState) -> None:
    """The recipe's race step (`recipe.plan.STAGES` with ``search="race"``): each batch
    candidate's max LR scaled from the first range test (`scaled_readings`), the entrants
    (the default among them), the rungs within the budget left, the runs, and the winner's
    full run as the final run."""
    task, plan = s.task, s.plan
    sizes = list(plan.candidates) or [s.hp.batch_size]
    first = next(d for d in s.decisions if d.name == "learning_rate")
    reading = first.payload
    pairs = scaled_readings(
        float(first.value),
        reading.reliable if isinstance(reading, LearningRateReading) else True,
        s.hp.batch_size,
        sizes,
        s.hp.optimizer,
    )
    entrants = make_entrants(
        pairs, race_weight_decays(s.decisions, plan.weight_decays), RACE_MOMENTA
    )
    stops = [r.get("stopped_at_lr") for r in first.table]
    stops = [float(v) for v in stops if isinstance(v, (int, float)) and math.isfinite(v) and v > 0]
    if stops:
        edge = min(stops) / CEILING_MARGIN
        tops = scaled_readings(edge, True, s.hp.batch_size, sizes, s.hp.optimizer)
        entrants = within_ceiling(entrants, {b: lr for b, (lr, _) in tops.items()})
    rungs = rung_epochs(plan.epochs, batches_per_epoch(task.train_data, max(sizes)))
    default = default_entrant(
        task.default_batch_size, s.hp.optimizer, {b: lr for b, (lr, _) in pairs.items()}
    )
    same = _settings(s.hp, default)
    entrants = [default, *(e for e in entrants if _settings(s.hp, e) != same)]
    # the default is counted with the others: one more entrant can add a run to every rung
    # after the first, not only its own first run (`cut_to_budget` never cuts it)
    entrants, finalists, notes, reseed = fit_to_budget(entrants, rungs, s.left(), RESEED)
    for note in notes:
        s.say(f"race: {note}")
    counts = rung_counts(len(entrants), len(rungs), finalists)
    s.say(
        f"race: {len(entrants)} entrants over rungs of {', '.join(f'{e:g}' for e in rungs)} "
        f"epochs ({' -> '.join(map(str, counts))} runs)"
    )
    runs: dict[tuple[Entrant, float], TrialResult] = {}
    classes: dict[tuple[Entrant, float], str] = {}
    again: dict[tuple[Entrant, float], TrialResult] = {}
    runner = _runner(s, runs, classes)
    table = halve(
        entrants,
        rungs,
        counts,
        runner,
        lambda e, ep: classes.get((e, ep)) == "ok",
        lambda e, ep: _final_loss(runs[(e, ep)].history),
        _runner(s, again, {}, seed_offset=1),
        reseed,
    )
    notes += _plateau_notes(table, rungs)
    safety = _default_safety_net(table, rungs, default, runner, task)
    if safety is not None:
        notes.append(safety)
    noise = _noise(table[-1], task)
    winner, _ = pick_winner(table[-1], noise)
    held = _held_up_net(table, rungs, winner, runner, noise)
    if held is not None:
        winner, note = held
        notes.append(note)
    result = runs[(winner, rungs[-1])]
    s.hp = _settings(s.hp, winner)
    s.history, s.final_epochs, s.final_why = result.history, float(rungs[-1]), ""
    s.decisions.append(_decision(table, runs, classes, winner, rungs, noise, notes, s, again))
    s.say(f"race: {winner.label()} won ({s.history.metric_name} {_final(s.history):.4f})")


def _noise(last: Sequence[tuple[Entrant, float]], task: Any) -> float:
    best = max((abs(sc) for _, sc in last if math.isfinite(sc)), default=math.nan)
    return metric_noise(best, task.num_val, task.kind)


def _plateau_notes(table: list[list[tuple[Entrant, float]]], rungs: Sequence[float]) -> list[str]:
    skipped = [rungs[k] for k, rows in enumerate(table) if not rows]
    if not skipped:
        return []
    return [
        "no run of the first rung left its initial plateau, so the rungs of "
        + ", ".join(f"{e:g}" for e in skipped)
        + " epochs were skipped and their cost spent on full-length runs"
    ]


def _default_safety_net(
    table: list[list[tuple[Entrant, float]]],
    rungs: Sequence[float],
    default: Entrant,
    run: Callable[[list[Entrant], float], list[float]],
    task: Any,
) -> str | None:
    """When the default entrant was cut at a rung where it scored more than the best full
    run (beyond the metric's noise), it runs the full length too (added to the last rung),
    so the answer is never worse than the default's evidence; the sentence saying so, or
    None."""
    last = table[-1]
    if any(e == default for e, _ in last):
        return None
    at = [(k, sc) for k, rows in enumerate(table) for e, sc in rows if e == default]
    if not at:
        return None
    k, score = at[-1]
    best = max((sc for _, sc in last), default=-math.inf)
    noise = _noise(last, task)
    if not score > best + (noise if math.isfinite(noise) else 0.0):
        return None
    (full,) = run([default], rungs[-1])
    table[-1] = rank_runs([*last, (default, -math.inf if math.isnan(full) else full)])
    return (
        f"the default scored {abs(score):.4g} at {rungs[k]:g} epochs, above every full run, "
        "so it also ran the full length"
    )


def _held_up_net(
    table: list[list[tuple[Entrant, float]]],
    rungs: Sequence[float],
    winner: Entrant,
    run: Callable[[list[Entrant], float], list[float]],
    noise: float,
) -> tuple[Entrant, str] | None:
    """When the winner's full run scored below its own shorter run beyond the noise
    (`search.race.held_up`), the winner at a third of its max LR runs the full length too
    (added to the last rung, which is ranked again) and the better of the two wins; the
    winner and the sentence saying so, or None."""
    lower = held_up(table, winner, noise)
    if lower is None:
        return None
    before = [sc for rows in table[:-1] for e, sc in rows if e == winner][-1]
    full = next(sc for e, sc in table[-1] if e == winner)
    (score,) = run([lower], rungs[-1])
    score = -math.inf if math.isnan(score) else score
    table[-1] = rank_runs([*table[-1], (lower, score)])
    better = lower if score > full else winner
    return better, (
        f"{winner.label()} scored {abs(before):.4g} on a shorter cycle and {abs(full):.4g} "
        f"at the full {rungs[-1]:g} epochs, so it also ran at max LR {lower.max_lr:.3g} "
        f"({abs(score):.4g}); {better.label()} was kept"
    )


def _settings(hp: HParams, e: Entrant) -> HParams:
    out = hp.with_(batch_size=e.batch_size, max_lr=e.max_lr, weight_decay=e.weight_decay)
    if e.max_momentum is not None:
        low = min(cycle_min_momentum(e.max_momentum), e.max_momentum)
        out = out.with_(max_momentum=e.max_momentum, min_momentum=low)
    return out


def _final(history: History | None) -> float:
    return history.final.val_metric if history is not None and history.final else math.nan


def _final_loss(history: History | None) -> float:
    return history.final.val_loss if history is not None and history.final else math.nan


def _runner(
    s: RecipeState,
    runs: dict[tuple[Entrant, float], TrialResult],
    classes: dict[tuple[Entrant, float], str],
    seed_offset: int = 0,
) -> Callable[[list[Entrant], float], list[float]]:
    """The `halve` callback: one rung's runs through the store (in parallel where the
    executor has workers), their cost charged to the race, each run classified
    (`classify_run`, kept in ``classes``), their scores (-inf for a run that blew up);
    ``seed_offset`` 1 for the second seeds."""
    sign = 1.0 if s.task.higher_is_better else -1.0
    seed = s.config.seed + seed_offset
    tag = "race-seed2-" if seed_offset else "race-"

    def run(alive: list[Entrant], epochs: float) -> list[float]:
        specs = [
            one_cycle_spec(s.ctx, _settings(s.hp, e), epochs, seed, f"{tag}{e.label()}")
            for e in alive
        ]
        with s.ctx.step("race"):
            results = s.ctx.run(specs)
        scores = []
        for e, r in zip(alive, results, strict=True):
            if r.history is None:
                raise UsageError(f"the race's run at {e.label()} failed: {r.reason}")
            runs[(e, epochs)] = r
            cls = classes[(e, epochs)] = classify_run(r.history)
            metric = _final(r.history)
            # a task whose metric is NaN (none given for its batches) races on the loss
            score = sign * metric if math.isfinite(metric) else -_final_loss(r.history)
            bad = cls in ("diverged", "collapsed") or not math.isfinite(score)
            scores.append(-math.inf if bad else score)
        again = " again from a second seed" if seed_offset else ""
        s.say(f"race: rung of {epochs:g} epochs, {len(alive)} runs{again}")
        return scores

    return run


def _decision(
    table: list[list[tuple[Entrant, float]]],
    runs: dict[tuple[Entrant, float], TrialResult],
    classes: dict[tuple[Entrant, float], str],
    winner: Entrant,
    rungs: tuple[float, ...],
    noise: float,
    notes: list[str],
    s: RecipeState,
    again: dict[tuple[Entrant, float], TrialResult] | None = None,
) -> Decision:
    """The race's `Decision`: a row per run (rung by rung, best first, with its second
    seed's metric when ``again`` holds one), the winner's settings, the rungs, the runs each
    rung made and the sentence."""
    rows, keys = [], []
    held = [k for k, ranked in enumerate(table) if ranked]
    for i, k in enumerate(held):
        going_on = {e for e, _ in table[held[i + 1]]} if i + 1 < len(held) else {winner}
        for e, score in table[k]:
            r = runs[(e, rungs[k])]
            keys.append(r.key)
            second = (again or {}).get((e, rungs[k]))
            if second is not None:
                keys.append(second.key)
            cls = classes.get((e, rungs[k]), "ok")
            run = RaceRun(
                e,
                k,
                rungs[k],
                score,
                _final(r.history),
                e in going_on,
                r.key,
                cls in ("diverged", "collapsed"),
                cls,
                None if second is None else _final(second.history),
            )
            rows.append(run.to_row())
    counts = [len(ranked) for ranked in table]
    reason = _reason(table, runs, winner, rungs, noise, notes, len(again or {}))
    return Decision(
        name="race",
        value=winner.max_lr,
        rule=RACE_RULE.name,
        reason=reason,
        table=tuple(rows),
        trials=tuple(keys),
        payload=RaceRecord(
            batch_size=winner.batch_size,
            max_lr=winner.max_lr,
            weight_decay=winner.weight_decay,
            lr_factor=winner.lr_factor,
            max_momentum=winner.max_momentum,
            default=winner.default,
            rungs=tuple(rungs),
            counts=tuple(counts),
            noise=noise,
        ),
        compute=s.ctx.ledger.cost("race"),
    )


def _reason(
    table: list[list[tuple[Entrant, float]]],
    runs: dict[tuple[Entrant, float], TrialResult],
    winner: Entrant,
    rungs: tuple[float, ...],
    noise: float,
    notes: list[str],
    again: int,
) -> str:
    """The race's sentence: the entrants, the rungs, the full runs, the winner, the second
    seeds (``again`` runs) and the budget's cuts."""
    counts = [len(ranked) for ranked in table]
    last = ", ".join(
        f"{e.label()}: "
        + ("blew up" if sc == -math.inf else f"{_final(runs[(e, rungs[-1])].history):.4f}")
        for e, sc in table[-1]
    )
    first = [e for e, _ in table[0] if not e.default]
    return (
        f"{counts[0]} entrants (the default, and each batch's range-test max LR times "
        f"{', '.join(f'{f:.3g}' for f in sorted({e.lr_factor for e in first}))}, at weight "
        f"decay {', '.join(f'{w:g}' for w in sorted({e.weight_decay for e in first}))}) "
        f"raced over 1cycle runs of {', '.join(f'{e:g}' for e in rungs)} epochs "
        f"({' -> '.join(map(str, counts))} runs, the best third going on); the full runs: "
        f"{last}; {winner.label()} won"
        + (
            f" (ties within the metric's noise {noise:.3g} go to the reading, then the better "
            "score, then the larger batch)"
            if noise
            else ""
        )
        + (
            f"; {again} runs were run again from a second seed, the mean of the two ranking them"
            if again
            else ""
        )
        + ("; " + "; ".join(notes) if notes else "")
    )
