"""The race: successive halving over the box the range tests drew.

A range test reads where the loss stops falling over a few hundred steps; a 1cycle run of
many epochs can take its best max LR a few times either side of that reading (on the task
zoo, 3-10x above it on a BatchNorm CNN and a noisy-label MLP, 10x below it on a small
regression: `docs/design-notes.md`), and the weight decay and batch size the range tests
rank are read on the same short horizon. So the recipe does not bet its whole budget on one
reading. The range tests draw the box, and full 1cycle runs decide inside it:

- the entrants: each batch-size candidate at its max LR (the first range test's reading,
  scaled to the batch: `scaled_readings`) times `LR_FACTORS` (`WIDE_LR_FACTORS` when no
  seed's loss fell clearly, so the reading is only where the plateau ended), at the weight
  decay the sweep chose, none above a third of the LR where a range test diverged
  (`within_ceiling`); the sweep's runner-up weight decay at each batch's reading and one
  factor beside it (`RUNNER_UP_FACTORS`); at the reading, the momenta of `RACE_MOMENTA` (in
  place of the momentum range tests);
- the rungs: complete 1cycle runs of ``epochs / 9``, ``epochs / 3`` and ``epochs`` (a
  rung too short to train, under `MIN_RUNG_STEPS` steps, is left out): after each rung the
  best third by validation metric goes on (equal metrics, common on a small validation
  split, ranked by the validation loss; the best of each batch size and max LR first,
  so entrants that differ only in weight decay do not crowd out other LRs), and at most
  `FINALISTS` run the full length; before the last rung, its best `RESEED` run again from
  a second seed and the mean of the two seeds ranks them (F-Race's second look at the
  close contenders: one seed's metric is a noisy pick);
- the winner is the best full run, its lead counted only beyond the metric's noise (ties
  go to the range test's own reading, then to the better score, then to the larger batch).
  Its run is the final run.

The task's default configuration (`default_entrant`: max LR 0.1 for SGD, 3e-3 for AdamW,
weight decay 1e-4 / 1e-2, momentum 0.95 down to 0.85, the task's batch size) races too, so
the answer is measured against what a user would have run without tuning; when the winner's
full run scores below the default's score at the rung where the default was cut, the default
runs the full length and the better of the two is kept. In the same way, when the winner's
full run scores below its own shorter run beyond the noise (it did not hold over the whole
cycle: an LR that overfits on the longer schedule), it runs the full length again at a
third of its max LR (`held_up`), and the better of the two is kept.

Each run is classified once (`measure.diagnose.classify_run`). A run that blew up (a
non-finite or runaway loss, or a collapse back to its start) scores worst. A run still on
its initial plateau (it never left its starting level) is not cut for it: a rung where no
run left its plateau says nothing about which will (an 8-layer MLP without normalization sits
at chance for several epochs at every LR, then learns at some), so the race skips the middle
rungs and spends what they would have cost on full-length runs, chosen by `PLATEAU_ORDER`
(the default first, then the LR factors below the reading, which is only an upper bound
when the loss never fell). A rung where some runs learned sends those on first. When every
run of a rung blew up, the rung runs again with every max LR a tenth as large, at most
`BACKOFFS` times. This is the successive halving of Jamieson and Talwalkar (2016) and of
Hyperband's inner loop (Li et al., 2018), with each rung a whole, shorter cycle instead of a
cut-off longer one, since a 1cycle's validation curve halfway through is read at its peak LR.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

__all__ = [
    "BACKOFFS",
    "CEILING_MARGIN",
    "DEFAULT_MAX_LR",
    "DEFAULT_WEIGHT_DECAY",
    "FINALISTS",
    "HOLD_LOWER",
    "LR_FACTORS",
    "MIN_RUNG_STEPS",
    "PLATEAU_ORDER",
    "RACE_ETA",
    "RACE_MOMENTA",
    "REACH_FROM",
    "RESEED",
    "RUNNER_UP_FACTORS",
    "SECOND_FINALIST_FIRST",
    "WIDE_LR_FACTORS",
    "Entrant",
    "Fitted",
    "RaceRun",
    "cut_to_budget",
    "default_entrant",
    "fit_to_budget",
    "halve",
    "held_up",
    "make_entrants",
    "pick_winner",
    "plateau_pick",
    "race_cost",
    "rank_runs",
    "reseed_cost",
    "rung_counts",
    "rung_epochs",
    "scaled_readings",
    "survivors",
    "within_ceiling",
]

RACE_ETA = 3
"""Each rung keeps the best third of its runs, and each rung's cycle is three times longer."""
LR_FACTORS = (1 / 3, 1.0, 3.0, 10.0)
"""Each candidate's max LR is its range-test reading times each of these. The spread leans
upward: the reading is conservative by construction (just before the loss minimum, the lower
of the training and validation curves, the lower of two seeds), and a 1cycle of many epochs
with warm-up and annealing carries a higher peak than a few hundred steps of rising LR
(Smith and Topin's super-convergence). On the development zoo the best 1cycle max LR sat
5-10x above the reading on 4 of 12 tasks (a BatchNorm CNN, a residual net, a GRU, a
noisy-label MLP) and below a third of it on 2; entrants above where a range test diverged
are left out (`within_ceiling`)."""
REACH_FROM = 3.0
"""LR factors above this are the box's reach upward: raced when the budget pays for them
after every batch size, cut before any (`fit_to_budget`)."""
WIDE_LR_FACTORS = (1 / 30, 1 / 10, 1 / 3, 1.0, 3.0)
"""... or these, when no seed's loss fell clearly in the test: the reading is then only
where the plateau ended (divided by 10, `measure.suggest.smith`), a bound from above."""
MIN_RUNG_STEPS = 30
"""A rung whose cycle is fewer steps than this at the largest candidate batch is left out:
too short to leave the initial plateau, so its ranking would be noise. At 50, every small-data
task of the zoo (a few hundred samples, 7-25 steps an epoch) lost its first rung, so each
entrant's first run cost a third of a full run and the budget paid for 9-13 entrants and one
finalist; at 30 the epochs / 9 rung is kept there, and the same budget pays for half as many
again."""
FINALISTS = 2
"""At most this many entrants run the full length."""
BACKOFFS = 3
"""How many times a rung where every run blew up runs again at a tenth of the max LRs."""
PLATEAU_ORDER = (1 / 3, 1 / 10, 1.0, 1 / 30, 3.0)
"""The LR factors in the order full-length runs are given to them when no run of a rung left
its plateau (after the default entrant): below the reading first, since a reading with no
clear fall is the end of the plateau / 10, a bound from above."""
DEFAULT_MAX_LR = {"sgd": 0.1, "adamw": 3e-3}
"""The default entrant's max LR by optimizer: what a user would try first."""
DEFAULT_WEIGHT_DECAY = {"sgd": 1e-4, "adamw": 1e-2}
"""The default entrant's weight decay by optimizer."""
RUNNER_UP_FACTORS = {True: (1.0, 3.0), False: (1 / 3, 1.0)}
"""The LR factors the weight-decay sweep's runner-up races at, keyed by whether it is
smaller than the sweep's choice: Smith's balance of regularization, where a smaller weight
decay goes with a larger LR and a larger one with a smaller LR. At the reading alone it lost
for the LR, not the weight decay: on the MNIST-1D CNN at 10 epochs one seed of nine read
max LR 0.02 at batch 32 and weight decay 1e-2; the runner-up 1e-3 raced only at 0.02, was
cut at the first rung, and the winner (1e-2 at 0.06) scored 66.6% where the other seeds'
1e-3 or 0 at 0.04-0.16 scored 84-94%."""
HOLD_LOWER = 3.0
"""When the winner's full run scores below its own shorter run (`held_up`), it runs the
full length again at its max LR divided by this, and the better of the two is kept. Short
rungs favour the LRs that learn fastest (the short-horizon bias of successive halving), and
on a task that overfits those are the ones that do not hold over the whole cycle. On the
development zoo's multi-label MLP every full-length run of the race (0.80-0.82 label
accuracy) scored below every run of the rung before (0.826-0.832), and the oracle's grid
puts the full-length best at about a third of the LR the race chose at each batch (batch
64: 0.1 scores 0.827, the race's 0.376 about 0.81). Sending the next of the shorter rung's
ranking instead (v14) sent another fast learner, and left that task 1.78 points behind its
oracle."""
RESEED = 3
"""How many of the best runs of the rung before the last run again from a second seed, the
mean of the two seeds then ranking them for the last rung (F-Race's idea: Birattari et al.
2002). One seed's validation metric is a noisy pick: over the oracle grids of the 20
development tasks, choosing a grid point by one seed's metric and judging it on a third seed
summed 14.6 points of regret, by the mean of two seeds 7.3, and by giving the best three of
one seed a second seed 10.5 (`docs/design-notes.md`)."""
SECOND_FINALIST_FIRST = True
"""Whether the budget pays for the second full-length run before the second seeds
(`fit_to_budget`). The second seeds rerank the rung before the last; they cannot undo its
bias toward what learns fast in a short cycle. In v17b's table 99 of 108 races ran one
finalist (the second seeds had taken its place on 67), so the rung of a third of the
length chose alone, and near-ties there went the wrong way at full length: on the SwiGLU MLP
under AdamW a 10x entrant (batch 32, max LR 0.011, the oracle's best point's batch and LR)
tied at 3.3 epochs on seed 1 within the noise and lost to the reading's 3x, whose full run
scored 0.649 against the oracle's 0.680 on validation; on the 40-class MLP the three
leaders at 5 epochs sat within the noise of one another, and the 3x entrants sent on by two
seeds scored 0.759-0.762 at 15 epochs where seed 0's 1x scored 0.803."""
RACE_MOMENTA = (0.9,)
"""Maximum momenta raced beside the default cycle (0.95 down to 0.85) at each batch's
reading, in place of the momentum range tests (0.9 cycles down to 0.8)."""


@dataclass(frozen=True)
class Entrant:
    """One configuration in the race: a batch size, a max LR (``lr_factor`` times that
    batch's range-test reading) and a weight decay; ``max_momentum`` when it sets its own
    momentum (the default entrant: 0.95, cycling to 0.85), else the one the momentum test
    chose; ``default`` marks the task's default configuration."""

    batch_size: int
    max_lr: float
    weight_decay: float
    lr_factor: float
    max_momentum: float | None = None
    default: bool = False

    def label(self) -> str:
        """A short name for tables and progress lines."""
        text = f"batch {self.batch_size}, max LR {self.max_lr:.3g}, wd {self.weight_decay:g}"
        if self.max_momentum is not None:
            text += f", momentum {self.max_momentum:g}"
        return text + (" (default)" if self.default else "")

    def lowered(self, factor: float) -> Entrant:
        """The same entrant with its max LR (and factor) divided by ``factor``."""
        return replace(self, max_lr=self.max_lr / factor, lr_factor=self.lr_factor / factor)

    def tie_rank(self) -> tuple[float, int]:
        """How ties are broken, smallest first: nearest the range test's own reading, then
        the larger batch (faster per epoch, and it permits the larger LR)."""
        return (abs(math.log(self.lr_factor)), -self.batch_size)


@dataclass(frozen=True)
class RaceRun:
    """One run of the race: the entrant, the rung (0 first), its cycle's epochs, the
    score it was ranked by (the validation metric, higher better, or the mean of two seeds';
    -inf when it blew up), the metric itself, whether it went on to the next rung, and the
    second seed's metric when it ran one."""

    entrant: Entrant
    rung: int
    epochs: float
    score: float
    metric: float
    advanced: bool
    key: str = ""
    blew_up: bool = False
    run_class: str = "ok"
    second_metric: float | None = None

    def to_row(self) -> dict[str, Any]:
        """A row of the race's evidence table."""
        return {
            "rung": self.rung,
            "epochs": self.epochs,
            "batch_size": self.entrant.batch_size,
            "max_lr": self.entrant.max_lr,
            "lr_factor": self.entrant.lr_factor,
            "weight_decay": self.entrant.weight_decay,
            "max_momentum": self.entrant.max_momentum,
            "default": self.entrant.default,
            "run_class": self.run_class,
            "val_metric": self.metric,
            "blew_up": self.blew_up,
            "advanced": self.advanced,
            "trial": self.key or None,
            "second_seed_metric": self.second_metric,
        }


def make_entrants(
    readings: Mapping[int, tuple[float, bool]],
    weight_decays: Sequence[float],
    momenta: Sequence[float] = (),
) -> list[Entrant]:
    """Every batch size's reading ``(max LR, reliable)`` times its LR factors
    (`LR_FACTORS`, or `WIDE_LR_FACTORS` when not reliable) at the first of ``weight_decays``
    (the sweep's choice); the others (its runner-up) at the reading and one factor beside it
    (`RUNNER_UP_FACTORS`: a smaller weight decay beside a larger LR, a larger one beside a
    smaller LR; the reading alone when it is not reliable); and each of
    ``momenta`` (a maximum momentum, cycling as `studies.decide.cycle_min_momentum` says)
    at each batch's reading and the first weight decay: the race's momentum test."""
    if not readings:
        raise ValueError("the race needs at least one batch size's reading")
    if not weight_decays:
        raise ValueError("the race needs at least one weight decay")
    wds = list(dict.fromkeys(float(w) for w in weight_decays))
    out = []
    for b in sorted(readings):
        lr, reliable = readings[b]
        if not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"the reading at batch {b} must be a positive LR, got {lr!r}")
        for f in LR_FACTORS if reliable else WIDE_LR_FACTORS:
            out.append(Entrant(int(b), lr * f, wds[0], f))
        for wd in wds[1:]:
            pair = RUNNER_UP_FACTORS[wd < wds[0]] if reliable else (1.0,)
            out += [Entrant(int(b), lr * f, wd, f) for f in pair]
        out += [Entrant(int(b), lr, wds[0], 1.0, float(m)) for m in dict.fromkeys(momenta)]
    return out


CEILING_MARGIN = 3.0
"""Entrants above the reading peak at most this many times below the LR at which a range
test diverged (`within_ceiling`). A 1cycle spends many more steps near its peak than a
range test does near any one LR: on the development zoo the grid's best max LR sat at 0.05
to 0.5 of the (batch-scaled) LR where the test diverged, and runs collapsed from about 0.5
of it on (a GRU at 0.75 of it collapsed on one seed of three, a wide MLP and a small
classifier at 1-2x)."""


def within_ceiling(entrants: Sequence[Entrant], ceilings: Mapping[int, float]) -> list[Entrant]:
    """``entrants`` less those above the reading whose max LR passes their batch's ceiling
    (``ceilings[batch]``: the lowest LR at which a range test's loss diverged, scaled to the
    batch as the reading is, over `CEILING_MARGIN`; a batch not in it has none). A range
    test that blew up at an LR drew the box's upper edge below it: a 1cycle run peaking near
    it is not worth a place."""
    out = []
    for e in entrants:
        top = ceilings.get(e.batch_size, math.inf)
        if e.default or e.lr_factor <= 1.0 or e.max_lr <= top:
            out.append(e)
    return out


def scaled_readings(
    lr: float, reliable: bool, batch: int, sizes: Sequence[int], optimizer: str
) -> dict[int, tuple[float, bool]]:
    """Each of ``sizes``' max LR scaled from one range-test reading ``lr`` at ``batch``:
    in proportion to the batch for SGD (the linear scaling rule, Goyal et al. 2017), by its
    square root for AdamW (Malladi et al. 2022). The race spans each a few times either way,
    so a range test per batch (two seeds each) is not worth its cost; Smith measured the
    best LR growing with the batch, and so did `docs/design-notes.md` (about 3x from batch
    32 to 128 on the MNIST-1D CNN)."""
    power = 0.5 if optimizer == "adamw" else 1.0
    return {int(b): (lr * (b / batch) ** power, reliable) for b in sizes}


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


class Fitted(NamedTuple):
    """What `fit_to_budget` kept: the entrants, how many run the full length, a sentence per
    cut, and how many of the rung before the last run a second seed (`RESEED`, or 0)."""

    entrants: list[Entrant]
    finalists: int
    notes: list[str]
    reseed: int


def reseed_cost(rungs: Sequence[float], reseed: int) -> float:
    """Epochs the second seeds of ``reseed`` runs of the rung before the last cost (none
    with one rung)."""
    return reseed * rungs[-2] if len(rungs) > 1 else 0.0


def fit_to_budget(
    entrants: list[Entrant], rungs: tuple[float, ...], room: float, reseed: int = 0
) -> Fitted:
    """The entrants, the finalists and the second seeds (``reseed`` runs of the rung before
    the last, `reseed_cost`) the budget ``room`` (epochs) pays for, with a sentence per
    cut. The second finalist comes before the second seeds (`SECOND_FINALIST_FIRST`): both
    are bought with the momentum entrants and the reach (`cut_to_budget`'s speculative
    cuts), the finalist first. When the two finalists do not fit, the second seeds are
    bought with the speculative entrants only: one finalist, the momentum entrants and the
    reach; when those do not pay for them, the race runs without them and cuts as it would
    have (then they come back only if its cuts left room for them), so a race that cannot
    afford the second seeds loses nothing to them. On the development zoo, cutting the
    reach and then dropping the second seeds all the same cost the noisy-label MLP its 10x
    entrants and 1.5 points."""
    if not reseed or len(rungs) < 2:
        return Fitted(*cut_to_budget(entrants, rungs, room), 0)
    extra = reseed_cost(rungs, reseed)
    if SECOND_FINALIST_FIRST:
        for cost, seeds in ((room - extra, reseed), (room, 0)):
            kept, finalists, notes = cut_to_budget(
                entrants, rungs, cost, speculative=True, keep_finalists=True
            )
            if race_cost(len(kept), rungs, finalists) <= cost:
                if not seeds:
                    notes = ["the budget left no room for a second seed", *notes]
                return Fitted(kept, finalists, notes, seeds)
    kept, finalists, notes = cut_to_budget(entrants, rungs, room - extra, speculative=True)
    if race_cost(len(kept), rungs, finalists) <= room - extra:
        return Fitted(kept, finalists, notes, reseed)
    kept, finalists, notes = cut_to_budget(entrants, rungs, room)
    if race_cost(len(kept), rungs, finalists) + reseed_cost(rungs, reseed) <= room:
        return Fitted(kept, finalists, notes, reseed)  # the cuts left room for them
    return Fitted(kept, finalists, ["the budget left no room for a second seed", *notes], 0)


def cut_to_budget(
    entrants: list[Entrant],
    rungs: tuple[float, ...],
    room: float,
    speculative: bool = False,
    keep_finalists: bool = False,
) -> tuple[list[Entrant], int, list[str]]:
    """The entrants and the finalists the budget ``room`` (epochs) pays for, with a sentence
    per cut: first one finalist; then the momentum entrants; then the entrants reaching
    beyond 3x the reading (`REACH_FROM`: the speculative end of the box, which on the
    BatchNorm CNN and the residual net, whose range tests leave the race about 3 final runs,
    pushed the grid's best batch out of the race); with ``speculative`` no further; then
    the smallest batch sizes; then the LR factors furthest from each reading (never the
    reading itself); then the weight decays' runner-up. What the range tests read least
    reliably stays longest: the LR reading sits 3-10x from a cycle's best on several zoo
    tasks, and a weight-decay sweep whose curves tie picks the largest value (on the
    MNIST-1D CNN at 10 epochs, 1e-2 on 3 seeds of 9, each then 54-63% where 1e-3 gave
    88-93%). Cutting the LR spread before the batches left that CNN at the reading alone,
    2-4x too low (75% mean over 9 seeds). The race always keeps one entrant (a single full
    run). With ``keep_finalists`` the first cut (one finalist) is skipped, so the room is
    met by the other cuts or not at all (`fit_to_budget` checks which)."""
    finalists, notes = FINALISTS, []

    def cost() -> float:
        return race_cost(len(entrants), rungs, finalists)

    n = len(entrants)
    if cost() > room and finalists > 1 and race_cost(n, rungs, 1) < cost() and not keep_finalists:
        finalists = 1
        notes.append("the budget left room for one full-length run")
    if cost() > room and any(e.max_momentum is not None and not e.default for e in entrants):
        entrants = [e for e in entrants if e.max_momentum is None or e.default]
        notes.append("the budget left no room for the momentum entrants")
    reach = [e for e in entrants if e.lr_factor > REACH_FROM and not e.default]
    if cost() > room and reach:
        entrants = [e for e in entrants if e not in reach]
        notes.append(
            "the budget left no room for "
            + ", ".join(f"{f:.3g}x" for f in sorted({e.lr_factor for e in reach}))
            + " the reading"
        )
    if speculative:
        return entrants, finalists, notes
    batches = sorted({e.batch_size for e in entrants if not e.default})
    while cost() > room and len(batches) > 1:
        entrants = [e for e in entrants if e.batch_size != batches[0] or e.default]
        notes.append(f"the budget left no room for batch {batches.pop(0)}")
    while cost() > room and any(e.lr_factor != 1.0 and not e.default for e in entrants):
        far = max(
            (e for e in entrants if e.lr_factor != 1.0 and not e.default), key=Entrant.tie_rank
        )
        entrants = [
            e for e in entrants if e.default or not math.isclose(e.lr_factor, far.lr_factor)
        ]
        notes.append(f"the budget left no room for {far.lr_factor:.3g}x the reading")
    wds = list(dict.fromkeys(e.weight_decay for e in entrants if not e.default))
    if cost() > room and len(wds) > 1:
        entrants = [e for e in entrants if e.weight_decay == wds[0] or e.default]
        notes.append(
            "the budget left no room for weight decay " + ", ".join(f"{w:g}" for w in wds[1:])
        )
    while cost() > room and len(entrants) > 1:
        drop = max(entrants, key=lambda e: (not e.default, e.tie_rank()))
        entrants = [e for e in entrants if e is not drop]
        notes.append(f"the budget left no room for {drop.label()}")
    return entrants, finalists, notes


def rank_runs(
    runs: list[tuple[Entrant, float]], loss: Callable[[Entrant], float] | None = None
) -> list[tuple[Entrant, float]]:
    """Best score first; equal scores (a metric counted on a small validation split ties
    often: 114 samples move accuracy in steps of 0.9 points) by the lower validation loss
    ``loss(entrant)`` when given, then by `Entrant.tie_rank`."""

    def lower_loss(e: Entrant) -> float:
        value = loss(e) if loss is not None else math.nan
        return value if math.isfinite(value) else math.inf

    return sorted(runs, key=lambda p: (-p[1], lower_loss(p[0]), p[0].tie_rank()))


def _scored(
    alive: list[Entrant], scores: Sequence[float], loss: Callable[[Entrant], float] | None = None
) -> list[tuple[Entrant, float]]:
    clean = [sc if not math.isnan(sc) else -math.inf for sc in scores]
    return rank_runs(list(zip(alive, clean, strict=True)), loss)


def halve(
    entrants: Sequence[Entrant],
    rungs: Sequence[float],
    counts: Sequence[int],
    run: Callable[[list[Entrant], float], list[float]],
    learned: Callable[[Entrant, float], bool] | None = None,
    loss: Callable[[Entrant, float], float] | None = None,
    reseed: Callable[[list[Entrant], float], list[float]] | None = None,
    reseed_top: int = 0,
) -> list[list[tuple[Entrant, float]]]:
    """Successive halving: ``run(alive, epochs)`` scores each entrant alive at a rung
    (higher is better; NaN or -inf: it blew up), and ``counts[k + 1]`` go on (`survivors`);
    equal scores are ranked by the lower ``loss(entrant, epochs)`` (the validation loss of
    that run) when given.
    ``learned(entrant, epochs)`` says whether a run left its initial plateau (default: all
    did). When no run of a rung below the last learned, the middle rungs are skipped and
    what they would have cost buys full-length runs (at least ``counts[-1]``), chosen by
    `plateau_pick`; their rows are empty. When every run of a rung blew up, it runs again
    with every max LR a tenth as large, at most `BACKOFFS` times (the rung's row holds every
    try). At the rung before the last, the best ``reseed_top`` runs that learned (one per
    batch size and max LR first, `survivors`' order) run again from a second seed
    (``reseed(entrants, epochs)``, scored as ``run`` scores), and each one's score is the mean
    of its two seeds (-inf when either blew up) before the rung is ranked and cut; with fewer
    than two to compare it is skipped. When the middle rungs are skipped (no run left its
    plateau), what those second seeds would have cost buys full-length runs too, and when
    that makes four or more, half of them are second seeds of the other half, the mean of
    the two ranking each: whether a run leaves its plateau at all can depend on the seed.
    Returns each rung's ``(entrant, score)`` pairs, best
    first (ties by the loss, then `Entrant.tie_rank`)."""
    learned = learned or (lambda _e, _epochs: True)
    seeding = reseed is not None and reseed_top > 1
    alive, table, k, last_reseed = list(entrants), [], 0, False
    while k < len(rungs):
        epochs = rungs[k]
        at = None if loss is None else (lambda e, ep=epochs: loss(e, ep))
        ranked = _scored(alive, run(alive, epochs), at)
        tried = ranked
        for _ in range(BACKOFFS):
            if any(sc > -math.inf for _, sc in ranked):
                break
            alive = [e.lowered(10.0) for e in alive]
            ranked = _scored(alive, run(alive, epochs), at)
            tried = rank_runs(ranked + tried, at)
        grew = [e for e, sc in tried if sc > -math.inf and learned(e, epochs)]
        if seeding and k + 2 == len(rungs) and len(grew) > 1:
            tried = _second_seed(tried, _distinct_first(grew)[:reseed_top], epochs, reseed, at)
        live = [e for e, sc in tried if sc > -math.inf]
        if seeding and k + 1 == len(rungs) and last_reseed and len(live) > 1:
            tried = _second_seed(tried, live, epochs, reseed, at)
        table.append(tried)
        if k + 1 == len(rungs):
            break
        if grew:
            alive = survivors(tried, counts[k + 1], lambda e, ep=epochs: learned(e, ep))
            k += 1
            continue
        later = sum(c * r for c, r in zip(counts[k + 1 :], rungs[k + 1 :], strict=True))
        if seeding:  # the second seeds not run at rung -2
            later += reseed_top * rungs[-2]
        n = max(counts[-1], int(later // rungs[-1]))
        if seeding and n >= 4:
            last_reseed, n = True, n // 2
        alive = plateau_pick([e for e, sc in tried if sc > -math.inf], n)
        if not alive:  # nothing but blow-ups: the best-ranked go on, lowest LR first
            alive = sorted((e for e, _ in tried), key=lambda e: e.max_lr)[: counts[-1]]
        table += [[] for _ in range(len(rungs) - k - 2)]
        k = len(rungs) - 1
    return table


def _second_seed(
    ranked: list[tuple[Entrant, float]],
    top: list[Entrant],
    epochs: float,
    reseed: Callable[[list[Entrant], float], list[float]],
    loss: Callable[[Entrant], float] | None,
) -> list[tuple[Entrant, float]]:
    """``ranked`` with each of ``top``'s scores replaced by the mean of it and its second
    seed's (-inf when either is -inf or NaN), and ``top`` ranked first by that mean, then
    the others in their order, then every run that blew up. The others keep their place
    below: they scored below ``top`` on the first seed, and a second seed pulls a lucky
    first score down (the best of many noisy scores is biased up), so a run scored once
    would otherwise overtake the runs measured twice on that bias alone."""
    again = dict(zip(top, reseed(top, epochs), strict=True))

    def mean(first: float, second: float) -> float:
        if math.isnan(second) or second == -math.inf or first == -math.inf:
            return -math.inf
        return (first + second) / 2

    group = rank_runs([(e, mean(sc, again[e])) for e, sc in ranked if e in again], loss)
    rest = [(e, sc) for e, sc in ranked if e not in again]
    alive = [p for p in group + rest if p[1] > -math.inf]
    return alive + rank_runs([p for p in group + rest if p[1] == -math.inf], loss)


def _distinct_first(entrants: Sequence[Entrant]) -> list[Entrant]:
    seen: set[tuple[int, float]] = set()
    first, rest = [], []
    for e in entrants:
        key = (e.batch_size, e.max_lr)
        (rest if key in seen else first).append(e)
        seen.add(key)
    return first + rest


def plateau_pick(entrants: Sequence[Entrant], n: int) -> list[Entrant]:
    """``n`` of ``entrants`` chosen without a ranking (none of them left its plateau): the
    default entrant first, then by LR factor in `PLATEAU_ORDER` (factors not in it after,
    nearest a third first), the larger batch first, the weight decays in the order given;
    one entrant per (batch size, max LR) before any twin."""
    wd_order = {w: i for i, w in enumerate(dict.fromkeys(e.weight_decay for e in entrants))}

    def factor_rank(f: float) -> tuple[int, float]:
        for i, g in enumerate(PLATEAU_ORDER):
            if math.isclose(f, g, rel_tol=1e-6):
                return (i, 0.0)
        return (len(PLATEAU_ORDER), abs(math.log(f * 3)))

    ordered = sorted(
        entrants,
        key=lambda e: (
            not e.default,
            factor_rank(e.lr_factor),
            -e.batch_size,
            wd_order[e.weight_decay],
        ),
    )
    return _distinct_first(ordered)[: max(0, n)]


def survivors(
    ranked: Sequence[tuple[Entrant, float]],
    n: int,
    learned: Callable[[Entrant], bool] | None = None,
) -> list[Entrant]:
    """The ``n`` entrants that go on from a rung ranked best first: those that learned
    (``learned``, default all), the best of each distinct (batch size, max LR) first, in rank
    order, then their twins; then, if places are left, runs still on their plateau in
    `plateau_pick`'s order (their scores at chance are noise); runs that blew up last.

    Entrants that differ only in weight decay score within noise of each other over a short
    cycle, and a rung that kept them all would send twins on and push other LRs out. On the
    zoo's GRU the last rung then held one max LR at two weight decays, and its full-length
    run at that LR fell from 0.77 (at a third of the epochs) to 0.59: a finalist at another
    LR is the evidence that catches a configuration that does not hold over the whole cycle.
    """
    learned = learned or (lambda _e: True)
    live = [e for e, sc in ranked if sc > -math.inf]
    picked = _distinct_first([e for e in live if learned(e)])[:n]
    if len(picked) < n:
        picked += plateau_pick([e for e in live if e not in picked], n - len(picked))
    if len(picked) < n:
        picked += [e for e, sc in ranked if sc == -math.inf][: n - len(picked)]
    return picked


def default_entrant(batch_size: int, optimizer: str, readings: Mapping[int, float]) -> Entrant:
    """The task's default configuration as an entrant: `DEFAULT_MAX_LR` and
    `DEFAULT_WEIGHT_DECAY` for ``optimizer``, momentum 0.95 (cycling to 0.85), at
    ``batch_size``; its ``lr_factor`` is its max LR over the reading nearest that batch."""
    if optimizer not in DEFAULT_MAX_LR:
        raise ValueError(f"no default configuration for optimizer {optimizer!r}")
    lr = DEFAULT_MAX_LR[optimizer]
    near = min(readings, key=lambda b: abs(math.log(b / batch_size))) if readings else None
    factor = lr / readings[near] if near is not None and readings[near] > 0 else 1.0
    return Entrant(batch_size, lr, DEFAULT_WEIGHT_DECAY[optimizer], factor, 0.95, True)


def pick_winner(last: Sequence[tuple[Entrant, float]], noise: float) -> tuple[Entrant, float]:
    """The winner of the last rung: of the runs within ``noise`` of the best score, the one
    nearest the range test's reading (the prior the noise cannot overrule); among those
    equally near, the better score, then `Entrant.tie_rank` (the larger batch); when every
    run blew up, the entrant at the lowest max LR (the retries go on below it).

    Among entrants equally near the reading the measured score decides, not the batch:
    the larger batch first gave away the better run on the development zoo's deep MLP
    without normalization (batch 64 at a third of its reading 0.517 and 0.535 on two
    seeds, batch 128 at a third of its own 0.510 and 0.524, both within the noise; 128
    won, and retrained from fresh seeds it stayed at chance on some), and on 9 of the 12
    development tasks the oracle's best 1cycle is at the smaller of its two batch sizes."""
    if not last:
        raise ValueError("the last rung ran no entrant")
    best = max(s for _, s in last)
    if best == -math.inf:
        return min(last, key=lambda p: p[0].max_lr)
    near = [p for p in last if p[1] >= best - noise]
    return min(near, key=lambda p: (p[0].tie_rank()[0], -p[1], p[0].tie_rank()[1]))


def held_up(
    table: Sequence[Sequence[tuple[Entrant, float]]], winner: Entrant, noise: float
) -> Entrant | None:
    """Whether the last rung's ``winner`` held over the whole cycle: None when it did, else
    the entrant that should run the full length beside it, the winner at a `HOLD_LOWER`th
    of its max LR (None when that one ran the full length already). It did not hold when
    its full-length score (``table[-1]``) is below its own score at the latest shorter rung
    it ran (the mean of two seeds where it had a second one) by more than ``noise``: a
    longer cycle at the same settings should score at least as well, so a drop says the
    configuration overfits on the longer schedule, which the short rungs cannot show."""
    if len(table) < 2 or not table[-1]:
        return None
    full = next((sc for e, sc in table[-1] if e == winner), -math.inf)
    shorter = [sc for rows in table[:-1] for e, sc in rows if e == winner]
    if not shorter or not math.isfinite(full) or not math.isfinite(shorter[-1]):
        return None
    margin = noise if math.isfinite(noise) and noise > 0 else 0.0
    if not full < shorter[-1] - margin:
        return None
    lower = replace(winner.lowered(HOLD_LOWER), default=False)
    return None if any(e == lower for e, _ in table[-1]) else lower
