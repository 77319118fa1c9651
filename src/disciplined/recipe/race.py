"""The race: successive halving over the box the range tests drew.

A range test reads where the loss stops falling over a few hundred steps; a 1cycle run of
many epochs can take its best max LR a few times either side of that reading (on the task
zoo, 3-10x above it on a BatchNorm CNN and a noisy-label MLP, 10x below it on a small
regression: `docs/design-notes.md`), and the weight decay and batch size the range tests
rank are read on the same short horizon. So the recipe does not bet its whole budget on one
reading. The range tests draw the box, and full 1cycle runs decide inside it:

- the entrants: each batch-size candidate at its own range-test max LR times `LR_FACTORS`
  (`WIDE_LR_FACTORS` when no seed's loss fell clearly, so the reading is only where the
  plateau ended), at the weight decay the sweep chose and its runner-up;
- the rungs: complete 1cycle runs of ``epochs / 9``, ``epochs / 3`` and ``epochs`` (a
  rung too short to train, under `MIN_RUNG_STEPS` steps, is left out): after each rung the
  best third by validation metric goes on (the best of each batch size and max LR first,
  so entrants that differ only in weight decay do not crowd out other LRs), and at most
  `FINALISTS` run the full length;
- the winner is the best full run, its lead counted only beyond the metric's noise (ties
  go to the range test's own reading, then to the larger batch). Its run is the final run.

A run that blew up (a non-finite or runaway loss, or a collapse back to its start) scores
worst; a run that never left its starting level did not learn, and is ranked by its metric
like any other. This is the successive halving of Jamieson and Talwalkar (2016) and of
Hyperband's inner loop (Li et al., 2018), with each rung a whole, shorter cycle instead of a
cut-off longer one, since a 1cycle's validation curve halfway through is read at its peak LR.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from disciplined.errors import UsageError
from disciplined.measure.diagnose import blew_up
from disciplined.studies import one_cycle_spec
from disciplined.studies.batch import candidate_readings, metric_noise
from disciplined.studies.decide import Decision
from disciplined.training.batching import batches_per_epoch
from disciplined.training.history import History
from disciplined.trials.hparams import HParams
from disciplined.trials.spec import TrialResult

if TYPE_CHECKING:
    from disciplined.recipe.state import RecipeState

__all__ = [
    "FINALISTS",
    "LR_FACTORS",
    "MIN_RUNG_STEPS",
    "RACE_ETA",
    "RACE_RUNS",
    "WIDE_LR_FACTORS",
    "Entrant",
    "RaceRun",
    "fit_to_budget",
    "halve",
    "make_entrants",
    "pick_winner",
    "race_cost",
    "run_race",
    "rung_counts",
    "rung_epochs",
    "survivors",
]

RACE_ETA = 3
"""Each rung keeps the best third of its runs, and each rung's cycle is three times longer."""
LR_FACTORS = (1 / 3, 1.0, 3.0)
"""Each candidate's max LR is its range-test reading times each of these."""
WIDE_LR_FACTORS = (1 / 30, 1 / 10, 1 / 3, 1.0, 3.0)
"""... or these, when no seed's loss fell clearly in the test: the reading is then only
where the plateau ended (divided by 10, `measure.suggest.smith`), a bound from above."""
MIN_RUNG_STEPS = 50
"""A rung whose cycle is fewer steps than this at the largest candidate batch is left out:
too short to leave the initial plateau, so its ranking would be noise."""
FINALISTS = 2
"""At most this many entrants run the full length."""
RACE_RUNS = 6.0
"""Full runs' worth of epochs the plan keeps for the race by default (18 entrants over three
rungs: 18 x 1/9 + 6 x 1/3 + 2 x 1)."""


@dataclass(frozen=True)
class Entrant:
    """One configuration in the race: a batch size, a max LR (``lr_factor`` times that
    batch's range-test reading) and a weight decay."""

    batch_size: int
    max_lr: float
    weight_decay: float
    lr_factor: float

    def label(self) -> str:
        """A short name for tables and progress lines."""
        return f"batch {self.batch_size}, max LR {self.max_lr:.3g}, wd {self.weight_decay:g}"

    def tie_rank(self) -> tuple[float, int]:
        """How ties are broken, smallest first: nearest the range test's own reading, then
        the larger batch (faster per epoch, and it permits the larger LR)."""
        return (abs(math.log(self.lr_factor)), -self.batch_size)


@dataclass(frozen=True)
class RaceRun:
    """One run of the race: the entrant, the rung (0 first), its cycle's epochs, the
    score it was ranked by (the validation metric, higher better; -inf when it blew up),
    the metric itself, and whether it went on to the next rung."""

    entrant: Entrant
    rung: int
    epochs: float
    score: float
    metric: float
    advanced: bool
    key: str = ""
    blew_up: bool = False

    def to_row(self) -> dict[str, Any]:
        """A row of the race's evidence table."""
        return {
            "rung": self.rung,
            "epochs": self.epochs,
            "batch_size": self.entrant.batch_size,
            "max_lr": self.entrant.max_lr,
            "lr_factor": self.entrant.lr_factor,
            "weight_decay": self.entrant.weight_decay,
            "val_metric": self.metric,
            "blew_up": self.blew_up,
            "advanced": self.advanced,
            "trial": self.key or None,
        }


def make_entrants(
    readings: Mapping[int, tuple[float, bool]], weight_decays: Sequence[float]
) -> list[Entrant]:
    """Every batch size's reading ``(max LR, reliable)`` times its LR factors
    (`LR_FACTORS`, or `WIDE_LR_FACTORS` when not reliable), at each of ``weight_decays``."""
    if not readings:
        raise ValueError("the race needs at least one batch size's reading")
    if not weight_decays:
        raise ValueError("the race needs at least one weight decay")
    out = []
    for b in sorted(readings):
        lr, reliable = readings[b]
        if not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"the reading at batch {b} must be a positive LR, got {lr!r}")
        for f in LR_FACTORS if reliable else WIDE_LR_FACTORS:
            for wd in dict.fromkeys(weight_decays):
                out.append(Entrant(int(b), lr * f, float(wd), f))
    return out


def rung_epochs(epochs: float, steps_per_epoch: int, levels: int = 3) -> tuple[float, ...]:
    """The rungs' cycle lengths, shortest first: ``epochs / RACE_ETA**k`` for ``k = levels
    - 1 ... 0``, leaving out those under `MIN_RUNG_STEPS` steps (``steps_per_epoch`` at the
    largest candidate batch); the full length is always the last rung."""
    if not (math.isfinite(epochs) and epochs > 0):
        raise ValueError(f"epochs must be a finite number > 0, got {epochs!r}")
    lengths = [epochs / RACE_ETA**k for k in range(levels - 1, 0, -1)]
    kept = [round(e, 4) for e in lengths if e * steps_per_epoch >= MIN_RUNG_STEPS]
    return (*kept, float(epochs))


def rung_counts(n: int, rungs: int, finalists: int = FINALISTS) -> tuple[int, ...]:
    """How many entrants run each rung: all ``n`` first, then the best third (rounded up)
    of the rung before, the last rung at most ``finalists``; one rung runs them all."""
    if n < 1 or rungs < 1:
        raise ValueError(f"need at least one entrant and one rung, got {n} and {rungs}")
    counts = [n]
    for _ in range(rungs - 1):
        counts.append(max(1, math.ceil(counts[-1] / RACE_ETA)))
    if rungs > 1:
        counts[-1] = min(counts[-1], finalists)
    return tuple(counts)


def race_cost(n: int, rungs: Sequence[float], finalists: int = FINALISTS) -> float:
    """Epochs the race spends with ``n`` entrants over ``rungs``."""
    return sum(c * e for c, e in zip(rung_counts(n, len(rungs), finalists), rungs, strict=True))


def fit_to_budget(
    entrants: list[Entrant], rungs: tuple[float, ...], room: float
) -> tuple[list[Entrant], int, list[str]]:
    """The entrants and the finalists the budget ``room`` (epochs) pays for, with a sentence
    per cut: first one finalist, then the weight decays' runner-up, then the smallest batch
    sizes, then the LR factors furthest from the reading. The race always keeps the range
    test's reading at the largest batch (one entrant: a single full run)."""
    finalists, notes = FINALISTS, []

    def cost() -> float:
        return race_cost(len(entrants), rungs, finalists)

    if cost() > room and finalists > 1 and race_cost(len(entrants), rungs, 1) < cost():
        finalists = 1
        notes.append("the budget left room for one full-length run")
    wds = list(dict.fromkeys(e.weight_decay for e in entrants))
    if cost() > room and len(wds) > 1:
        entrants = [e for e in entrants if e.weight_decay == wds[0]]
        notes.append(
            "the budget left no room for weight decay " + ", ".join(f"{w:g}" for w in wds[1:])
        )
    batches = sorted({e.batch_size for e in entrants})
    while cost() > room and len(batches) > 1:
        entrants = [e for e in entrants if e.batch_size != batches[0]]
        notes.append(f"the budget left no room for batch {batches.pop(0)}")
    while cost() > room and len(entrants) > 1:
        far = max(entrants, key=Entrant.tie_rank)
        entrants = [e for e in entrants if e is not far]
        notes.append(f"the budget left no room for max LR {far.max_lr:.3g}")
    return entrants, finalists, notes


def _ranked(runs: list[tuple[Entrant, float]]) -> list[tuple[Entrant, float]]:
    return sorted(runs, key=lambda p: (-p[1], p[0].tie_rank()))


def halve(
    entrants: Sequence[Entrant],
    rungs: Sequence[float],
    counts: Sequence[int],
    run: Callable[[list[Entrant], float], list[float]],
) -> list[list[tuple[Entrant, float]]]:
    """Successive halving: ``run(alive, epochs)`` scores each entrant alive at a rung
    (higher is better; NaN counts as -inf), and ``counts[k + 1]`` go on (`survivors`: the
    best of each batch size and max LR first). Returns each rung's ``(entrant, score)``
    pairs, best first (ties by `Entrant.tie_rank`)."""
    alive, table = list(entrants), []
    for k, epochs in enumerate(rungs):
        scores = [s if not math.isnan(s) else -math.inf for s in run(alive, epochs)]
        ranked = _ranked(list(zip(alive, scores, strict=True)))
        table.append(ranked)
        if k + 1 < len(rungs):
            alive = survivors(ranked, counts[k + 1])
    return table


def survivors(ranked: Sequence[tuple[Entrant, float]], n: int) -> list[Entrant]:
    """The ``n`` entrants that go on from a rung ranked best first: the best of each
    distinct (batch size, max LR) first, in rank order, then the rest in rank order.

    Entrants that differ only in weight decay score within noise of each other over a short
    cycle, and a rung that kept them all would send twins on and push other LRs out. On the
    zoo's GRU the last rung then held one max LR at two weight decays, and its full-length
    run at that LR fell from 0.77 (at a third of the epochs) to 0.59: a finalist at another
    LR is the evidence that catches a configuration that does not hold over the whole cycle.
    """
    seen: set[tuple[int, float]] = set()
    first, rest = [], []
    for e, _ in ranked:
        key = (e.batch_size, e.max_lr)
        (rest if key in seen else first).append(e)
        seen.add(key)
    return (first + rest)[:n]


def pick_winner(last: Sequence[tuple[Entrant, float]], noise: float) -> tuple[Entrant, float]:
    """The winner of the last rung: of the runs within ``noise`` of the best score, the one
    `Entrant.tie_rank` puts first (nearest the reading, then the larger batch); when every
    run blew up, the entrant at the lowest max LR (the retries go on below it)."""
    if not last:
        raise ValueError("the last rung ran no entrant")
    best = max(s for _, s in last)
    if best == -math.inf:
        return min(last, key=lambda p: p[0].max_lr)
    near = [p for p in last if p[1] >= best - noise]
    return min(near, key=lambda p: p[0].tie_rank())


# --------------------------------------------------------------------------- the recipe's step


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
    if wd.rule != "no_evidence_kept" and others:
        return [chosen, float(others[0]["value"])]
    up = sorted(v for v in grid if v > chosen)
    return [chosen, up[0]] if up else [chosen]


def run_race(s: RecipeState) -> None:
    """The recipe's race step (`recipe.plan.STAGES` with ``search="race"``): each batch
    candidate's max LR read by range tests on two seeds, the entrants, the rungs within the
    budget left, the runs, and the winner's full run as the final run."""
    ctx, task, plan = s.ctx, s.task, s.plan
    sizes = list(plan.candidates) or [s.hp.batch_size]
    readings = candidate_readings(ctx, s.hp, sizes, plan.steps, s.config.seed)
    for d in readings.values():
        s.decisions.append(d)
        s.add_compute("race_readings", d.compute["epochs"], d.compute["seconds"])
    pairs = {b: (float(d.value), bool(d.extra.get("reliable", True))) for b, d in readings.items()}
    entrants = make_entrants(pairs, race_weight_decays(s.decisions, plan.weight_decays))
    rungs = rung_epochs(plan.epochs, batches_per_epoch(task.train_data, max(sizes)))
    entrants, finalists, notes = fit_to_budget(entrants, rungs, s.left())
    for note in notes:
        s.say(f"race: {note}")
    counts = rung_counts(len(entrants), len(rungs), finalists)
    s.say(
        f"race: {len(entrants)} entrants over rungs of {', '.join(f'{e:g}' for e in rungs)} "
        f"epochs ({' -> '.join(map(str, counts))} runs)"
    )
    runs: dict[tuple[Entrant, float], TrialResult] = {}
    table = halve(entrants, rungs, counts, _runner(s, runs))
    last = table[-1]
    best = max((abs(sc) for _, sc in last if math.isfinite(sc)), default=math.nan)
    noise = metric_noise(best, task.num_val, task.kind)
    winner, _ = pick_winner(last, noise)
    result = runs[(winner, rungs[-1])]
    s.hp = _settings(s.hp, winner)
    s.history, s.final_epochs, s.final_why = result.history, float(rungs[-1]), ""
    s.decisions.append(_decision(table, runs, winner, rungs, counts, noise, notes, s))
    s.say(f"race: {winner.label()} won ({s.history.metric_name} {_final(s.history):.4f})")


def _settings(hp: HParams, e: Entrant) -> HParams:
    return hp.with_(batch_size=e.batch_size, max_lr=e.max_lr, weight_decay=e.weight_decay)


def _final(history: History | None) -> float:
    return history.final.val_metric if history is not None and history.final else math.nan


def _runner(
    s: RecipeState, runs: dict[tuple[Entrant, float], TrialResult]
) -> Callable[[list[Entrant], float], list[float]]:
    """The `halve` callback: one rung's runs through the store (in parallel where the
    executor has workers), their cost charged to the race, their scores."""
    sign = 1.0 if s.task.higher_is_better else -1.0

    def run(alive: list[Entrant], epochs: float) -> list[float]:
        specs = [
            one_cycle_spec(s.ctx, _settings(s.hp, e), epochs, s.config.seed, f"race-{e.label()}")
            for e in alive
        ]
        results = s.ctx.run(specs)
        cost = s.fresh_cost(results)
        s.add_compute("race", cost["epochs"], cost["seconds"])
        scores = []
        for e, r in zip(alive, results, strict=True):
            if r.history is None:
                raise UsageError(f"the race's run at {e.label()} failed: {r.reason}")
            runs[(e, epochs)] = r
            bad = blew_up(r.history)
            metric = _final(r.history)
            scores.append(-math.inf if bad or not math.isfinite(metric) else sign * metric)
        s.say(f"race: rung of {epochs:g} epochs, {len(alive)} runs")
        return scores

    return run


def _decision(
    table: list[list[tuple[Entrant, float]]],
    runs: dict[tuple[Entrant, float], TrialResult],
    winner: Entrant,
    rungs: tuple[float, ...],
    counts: tuple[int, ...],
    noise: float,
    notes: list[str],
    s: RecipeState,
) -> Decision:
    """The race's `Decision`: a row per run (rung by rung, best first), the winner's
    settings, the rungs and the sentence."""
    rows, keys = [], []
    for k, ranked in enumerate(table):
        going_on = {e for e, _ in table[k + 1]} if k + 1 < len(table) else {winner}
        for e, _score in ranked:
            r = runs[(e, rungs[k])]
            keys.append(r.key)
            run = RaceRun(e, k, rungs[k], _score, _final(r.history), e in going_on, r.key,
                          blew_up(r.history))
            rows.append(run.to_row())
    last = ", ".join(
        f"{e.label()}: "
        + ("blew up" if sc == -math.inf else f"{_final(runs[(e, rungs[-1])].history):.4f}")
        for e, sc in table[-1]
    )
    reason = (
        f"{counts[0]} entrants (each batch's range-test max LR times "
        f"{', '.join(f'{f:.3g}' for f in sorted({e.lr_factor for e, _ in table[0]}))}, at weight "
        f"decay {', '.join(f'{w:g}' for w in sorted({e.weight_decay for e, _ in table[0]}))}) "
        f"raced over 1cycle runs of {', '.join(f'{e:g}' for e in rungs)} epochs "
        f"({' -> '.join(map(str, counts))} runs, the best third going on); the full runs: "
        f"{last}; {winner.label()} won"
        + (
            f" (ties within the metric's noise {noise:.3g} go to the reading, then the larger "
            "batch)"
            if noise
            else ""
        )
        + ("; " + "; ".join(notes) if notes else "")
    )
    return Decision(
        name="race",
        value=winner.max_lr,
        rule="successive_halving",
        reason=reason,
        table=tuple(rows),
        trials=tuple(keys),
        extra={
            "batch_size": winner.batch_size,
            "max_lr": winner.max_lr,
            "weight_decay": winner.weight_decay,
            "lr_factor": winner.lr_factor,
            "rungs": list(rungs),
            "counts": list(counts),
            "noise": noise,
        },
        compute=dict(s.compute.get("race", {"epochs": 0.0, "seconds": 0.0})),
    )
