"""The recipe's plan: what it will run and what each part may spend, fixed before anything
runs or is written (so a budget that cannot pay is refused before a file exists).

Steps per epoch have one source, `training.fit.batches_per_epoch`; every count of the
recipe's compute below goes through it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from disciplined.errors import UsageError
from disciplined.recipe.config import TuneConfig
from disciplined.studies import RECIPE_DROPOUTS, batch_comparison, default_weight_decays
from disciplined.tasks import Task
from disciplined.training.fit import batches_per_epoch
from disciplined.trials.hparams import HParams

__all__ = [
    "BUDGET_FACTOR",
    "FIXED_RUNS",
    "MIN_FINAL_STEPS",
    "MIN_RANGE_STEPS",
    "RACE_BUDGET_FACTOR",
    "RACE_STAGES",
    "RANGE_TEST_RUNS",
    "SEARCHES",
    "STAGES",
    "Plan",
    "make_plan",
    "plan_steps",
]

BUDGET_FACTOR = 12.0
"""The default budget, in final runs: four of them are full runs (`FIXED_RUNS`), the rest
pays for the range tests and the batch-size comparison."""

MIN_RANGE_STEPS = 100
"""The fewest steps a range test of the recipe takes: 100 steps over the sweep's six decades
is about 17 a decade (fewer leave networks like the MNIST-1D CNN on their initial plateau)."""

RACE_BUDGET_FACTOR = 8.0
"""The race's default budget, in final runs: the LR test and the weight-decay sweep at the
task's batch size (no momentum test, no test per candidate batch: the race spans both), then
the race in what is left (issue 32: at most 8 final runs, the range tests at most 3 of them).
"""
RANGE_TEST_RUNS = 3.0
"""What the race's range tests may spend together, in final runs, before they add tests:
the LR test's third seed and its widened rerun run only when they fit beside the sweeps to
come (`studies.range_test_steps`' ``max_epochs``). Without it a BatchNorm CNN's tests (four
LR tests, its validation curve reading 3-100x below its training curve on some seeds) took
4 final runs and left the race 3."""
MIN_FINAL_STEPS = 3
"""The fewest steps a final 1cycle run can have (its warm-up, peak and annealing)."""
FIXED_RUNS = 4
"""Full runs the plan keeps room for: the final run, its two bracket runs, a corrective run."""

SEARCHES = ("race", "bracket")
"""How the recipe's full runs settle what its range tests read (`TuneConfig.search`)."""

RACE_STAGES = ("memory", "range_tests", "race", "diagnosis")
"""The recipe's steps with ``search="race"``: the memory probe (which caps the plan's
candidates, `make_plan`'s ``largest``), the range tests, the race (`recipe.race`), whose
winner's full run is the final run, and its diagnosis (a run that blew up repeated
lower)."""

STAGES = (
    "memory",
    "range_tests",
    "batch_size",
    "final_lr",
    "final_run",
    "lr_bracket",
    "diagnosis",
    "corrective_run",
)
"""The recipe's steps in the order they run (`recipe.run.STEPS` maps each name to its
function). The memory probe comes first, as a measured step: the plan trains nothing. The
diagnosis repeats a diverged final run lower until one holds; the corrective
run acts only on an over- or underfitting verdict."""


@dataclass(frozen=True)
class Plan:
    """The recipe's plan, fixed before anything runs or is written: the budget (epochs of
    the task), the final run's epochs, the range tests' steps, the batch-size comparison
    (mode and candidates), the weight-decay grid, sentences saying what was adjusted, and
    the steps to run in order (``stages``). ``batch_note`` says why no batch sizes are
    compared (comparison off, fewer than two candidates, or the budget), else is empty.
    ``largest`` is the largest batch that fits in memory when the plan was made with the
    memory probe's answer (the recipe's memory step re-makes it so), None before: then only
    the training set caps the candidates."""

    budget: float
    epochs: float
    steps: int
    mode: str
    candidates: tuple[int, ...]
    weight_decays: tuple[float, ...]
    notes: tuple[str, ...] = ()
    dropout: bool = False
    stages: tuple[str, ...] = STAGES
    batch_note: str = ""
    largest: int | None = None


def plan_steps(
    task: Task,
    hp: HParams,
    budget: float,
    final_epochs: float,
    *,
    n_range_tests: int,
    candidates: list[int],
    requested: int,
    reserved: float = 0.0,
) -> int:
    """Range-test steps that keep the recipe within ``budget`` epochs (may be below
    `MIN_RANGE_STEPS`: the caller decides what a short budget means).

    The fixed part is the final run, its two bracket runs and a corrective run
    (``FIXED_RUNS * final_epochs``) and ``reserved`` epochs (the batch-size comparison's
    runs). What is left pays for ``n_range_tests`` tests at ``hp.batch_size`` and one at
    each of ``candidates``, each of the same number of steps (a sweep needs its steps
    whatever the batch size): that number is ``requested`` if it fits, fewer if not.
    """
    per_step = _epochs_per_test_step(task, hp, n_range_tests, candidates)
    left = budget - reserved - FIXED_RUNS * final_epochs
    steps = int(left / per_step) if left > 0 else 0
    return min(requested, steps)


def _epochs_per_test_step(
    task: Task, hp: HParams, n_range_tests: int, candidates: list[int]
) -> float:
    return n_range_tests / batches_per_epoch(task.train_data, hp.batch_size) + sum(
        1 / batches_per_epoch(task.train_data, b) for b in candidates
    )


def candidate_test_epochs(
    task: Task, steps: int, candidates: list[int] | tuple[int, ...]
) -> float:
    """Epochs the candidates' range tests of ``steps`` steps take."""
    return sum(steps / batches_per_epoch(task.train_data, b) for b in candidates)


@dataclass(frozen=True)
class _Sizing:
    """What the range tests' length depends on: the task, where the tests start, the final
    run's epochs, the steps asked for and the number of tests at the task's batch size
    besides the first and final ones."""

    task: Task
    hp: HParams
    epochs: float
    requested: int
    n_fixed: int

    def steps(self, mode: str, cands: list[int], total: float) -> int:
        """Range-test steps within ``total`` epochs when ``cands`` are compared by ``mode``.

        The final and a corrective run first; then the batch-size comparison's runs (at
        equal epochs: the losers' full runs, the winner's being the final run; at equal
        time: 15% of the budget); the range tests share the rest. At equal epochs the
        winner's range test is the final one. The final max LR is read on two seeds
        (`studies.learning_rate_test`), so is each candidate's.
        """
        if mode == "race" or not cands:  # the race: the first test on two seeds (a third
            # when they disagree), the candidates' LRs scaled from it, no test of their own;
            # it takes what the tests leave (a range test shortened to pay for the race
            # misreads the LR on a network still on its plateau)
            reserved, n_tests, cands = 0.0, 3, []
        elif mode == "epochs":
            reserved, n_tests = (len(cands) - 1) * self.epochs, 1
        else:
            reserved, n_tests = 0.15 * total, 3
        return plan_steps(
            self.task,
            self.hp,
            total,
            self.epochs,
            n_range_tests=n_tests + self.n_fixed,
            candidates=cands + cands,
            requested=self.requested,
            reserved=reserved,
        )


def make_plan(task: Task, config: TuneConfig, largest: int | None = None) -> Plan:
    """Plan the recipe on ``task`` with ``config`` (`Plan`); nothing runs, trains or is
    written.

    The batch-size candidates are capped by ``largest``, the largest batch that fits in
    memory, when the memory probe has run (the recipe's first step, which re-makes the plan
    with its answer), else by the training set only. A probe that finds memory never binds
    answers the training set's size, so the plan it re-makes is the same.

    The final run and room for a corrective run come first, then the range tests (11 at
    the task's batch size: the first, the weight-decay grid, four momenta, the final two) at
    ``config.range_steps`` steps or fewer, never under `MIN_RANGE_STEPS`; the batch-size
    comparison runs only if what is left pays for it with the tests shortened by a third
    at most. ``config.budget=None`` is the default, `BUDGET_FACTOR` x ``epochs``; on a data
    set so small that one range test is many epochs (a 100-step test on 106 samples at
    batch 16 is 14 epochs) the default grows to what 100-step tests need, and a note says
    so: the default is never refused. A budget given that cannot pay for 100-step tests
    raises `UsageError` with the number it would need.
    """
    _check(config)
    hp = HParams(batch_size=task.default_batch_size, optimizer=config.optimizer)
    final_steps = int(config.epochs * batches_per_epoch(task.train_data, hp.batch_size))
    if final_steps < MIN_FINAL_STEPS:
        raise UsageError(
            f"epochs {config.epochs:g} is {final_steps} steps at batch {hp.batch_size}: a "
            f"1cycle run needs at least {MIN_FINAL_STEPS}; raise --epochs"
        )
    wd_values, _ = default_weight_decays(task, config.optimizer)
    mode = batch_comparison(config.compare_batch_sizes)
    race = config.search == "race"
    candidates = _candidates(task, mode, config, largest)
    if race:
        mode = "race"
    # the first test, the weight-decay grid, the dropout rates (the rate 0 is the weight
    # decay's own test) and four momenta
    sweeps_dropout = config.tune_dropout and task.takes_dropout
    momenta = 0 if race else 4  # the race runs momentum as entrants, not range tests
    n_fixed = len(wd_values) + momenta + (len(RECIPE_DROPOUTS) - 1 if sweeps_dropout else 0)
    sizing = _Sizing(task, hp, config.epochs, config.range_steps, n_fixed)
    budget, steps, notes = _budget(sizing, config.budget, mode)
    wanted = candidates
    candidates, steps, note = _affordable(sizing, mode, candidates, budget, steps)
    return Plan(
        budget=budget,
        epochs=float(config.epochs),
        steps=steps,
        mode=mode if candidates or race else "off",
        candidates=tuple(candidates),
        weight_decays=tuple(wd_values),
        notes=tuple(notes + ([note] if note else [])),
        dropout=sweeps_dropout,
        stages=RACE_STAGES if race else STAGES,
        batch_note=_batch_note(config, task, wanted, candidates, note),
        largest=largest,
    )


def _batch_note(
    config: TuneConfig, task: Task, wanted: list[int], candidates: list[int], note: str | None
) -> str:
    """Why no batch sizes are compared, or "" when they are."""
    if candidates:
        return ""
    if batch_comparison(config.compare_batch_sizes) == "off":
        return "batch sizes were not compared (compare_batch_sizes='off')"
    if not wanted:
        return (
            "batch sizes were not compared: fewer than two candidates were left under the "
            f"memory cap and the task's batch size {task.default_batch_size}"
        )
    return note or ""


def _check(config: TuneConfig) -> None:
    epochs, budget, range_steps = config.epochs, config.budget, config.range_steps
    if not (math.isfinite(epochs) and epochs > 0):
        raise UsageError(f"epochs must be a finite number > 0, got {epochs}")
    if budget is not None and not (math.isfinite(budget) and budget > 0):
        raise UsageError(f"budget must be a finite number > 0, got {budget}")
    if config.search not in SEARCHES:
        raise UsageError(f"search must be one of {', '.join(SEARCHES)}, got {config.search!r}")
    if config.search == "race" and config.compare_batch_sizes == "time":
        raise UsageError(
            "comparing batch sizes at equal time runs with search='bracket'; the race compares "
            "them at equal epochs (give search='bracket', or compare_batch_sizes='epochs')"
        )
    if not isinstance(range_steps, int) or range_steps < MIN_RANGE_STEPS:
        raise UsageError(
            f"range_steps must be an integer >= {MIN_RANGE_STEPS}, got {range_steps!r}"
        )


def _candidates(task: Task, mode: str, config: TuneConfig, largest: int | None) -> list[int]:
    """The batch sizes to compare (none when ``mode`` is off or fewer than two fit), capped
    by ``largest`` (the memory probe's answer) or, before the probe, by the training set;
    the race takes the equal-epoch candidates."""
    if mode == "off":
        return []
    from disciplined.studies.batch import candidate_batch_sizes, equal_epoch_candidates

    cap = task.num_train if largest is None else min(largest, task.num_train)
    pick = equal_epoch_candidates if mode == "epochs" else candidate_batch_sizes
    wanted = list(config.batch_sizes) if config.batch_sizes is not None else None
    candidates = pick(task, cap, wanted)
    return candidates if len(candidates) >= 2 else []


def _budget(sizing: _Sizing, budget: float | None, mode: str) -> tuple[float, int, list[str]]:
    """The budget, the range tests' steps without a batch-size comparison, and a note when
    the default budget had to grow to pay for `MIN_RANGE_STEPS`-step tests."""
    epochs, task, hp = sizing.epochs, sizing.task, sizing.hp
    factor = RACE_BUDGET_FACTOR if mode == "race" else BUDGET_FACTOR
    chosen = float(budget) if budget is not None else factor * epochs
    steps = sizing.steps(mode, [], chosen)
    if steps >= MIN_RANGE_STEPS:
        return chosen, steps, []
    need = FIXED_RUNS * epochs + MIN_RANGE_STEPS * _epochs_per_test_step(
        task, hp, sizing.n_fixed + 3, []
    )
    if budget is not None:
        raise UsageError(
            f"budget {budget:g} epochs is too small: with a final run of {epochs:g} "
            f"epochs the recipe needs about {math.ceil(need)} (range tests of at least "
            f"{MIN_RANGE_STEPS} steps); raise --budget or lower --epochs"
        )
    chosen = float(math.ceil(need))
    note = (
        f"the default budget of {factor * epochs:g} epochs cannot pay for "
        f"{MIN_RANGE_STEPS}-"
        f"step range tests on {task.num_train} samples at batch {hp.batch_size} (one "
        f"test is {MIN_RANGE_STEPS / batches_per_epoch(task.train_data, hp.batch_size):.3g}"
        f" epochs): the budget is {chosen:g} epochs"
    )
    return chosen, sizing.steps(mode, [], chosen), [note]


def _affordable(
    sizing: _Sizing, mode: str, candidates: list[int], budget: float, steps: int
) -> tuple[list[int], int, str | None]:
    """The candidates the budget pays for, the range tests' steps with them, and a note
    when some were dropped.

    The range tests come first: the comparison runs only if the budget pays for it while
    shortening them by a third at most, and never below `MIN_RANGE_STEPS` (fewer steps
    leave a network like the MNIST-1D CNN on its plateau and the readings wrong). On small
    data a range test is many epochs, and a rule that allowed no shortening never compared
    batch sizes there at the default budget. The largest candidates are kept when not all
    fit.
    """
    floor = max(MIN_RANGE_STEPS, math.ceil(2 * steps / 3))
    wanted = candidates
    while len(candidates) > 1 and sizing.steps(mode, candidates, budget) < floor:
        candidates = candidates[1:]
    if len(candidates) < 2:
        candidates = []
    else:
        steps = min(steps, sizing.steps(mode, candidates, budget))
    note = None
    if wanted and candidates != wanted:
        note = (
            f"the budget of {budget:g} epochs cannot pay for comparing batch sizes "
            f"{wanted} without shortening the range tests below {floor} steps: "
            + (f"comparing {candidates}" if candidates else "keeping the task's batch size")
            + " (raise --budget to compare more)"
        )
    return candidates, steps, note
