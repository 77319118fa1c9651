"""What the fair benchmarks share: a sealed test split, the recipe's own search space, searches
with a budget in wall-clock seconds, and scoring on the test split.

- **Splits.** The recipe and every search read a three-split task's validation split
  (`splits.py`, or a zoo task); `sealed()` sets ``DISCIPLINED_BENCH_SEALED=1``, inherited by
  worker processes, under which building a test split raises. `test_score` retrains a
  configuration from a fresh seed and scores it on the test split: the only number a
  headline quotes.
- **The space.** `Space` is what the recipe chooses among: 1cycle only (with the recipe's
  momentum cycle, the minimum 0.85 under a maximum of 0.95 or more, else 0.8), max LR,
  weight decay, maximum momentum and batch size (the task's, half and a quarter: the batch
  sizes the recipe compares).
- **Searches.** `search` runs grid, random, Optuna TPE, or TPE with Optuna's
  ``MedianPruner`` (the validation metric reported after every epoch) until the trials'
  wall seconds reach a budget; no trial starts once the budget is spent, so a search
  overshoots by at most its last trial. `best_within` is what a search would hand its
  user had it been given fewer seconds.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch

from disciplined import HParams, fit, load_task, train_task

try:  # run as a script or as a module
    import _common
except ImportError:  # pragma: no cover
    from benchmarks import _common

SEALED = _common.SEALED
METHODS = ("grid", "random", "tpe", "tpe-median")


@contextlib.contextmanager
def sealed() -> Iterator[None]:
    """While inside, building a test split raises, here and in processes started here."""
    old = os.environ.get(SEALED)
    os.environ[SEALED] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(SEALED, None)
        else:
            os.environ[SEALED] = old


def batch_sizes(task_batch: int) -> tuple[int, ...]:
    """The batch sizes the recipe compares: the task's, half and a quarter of it."""
    return tuple(sorted({task_batch, max(1, task_batch // 2), max(1, task_batch // 4)}))


@dataclass(frozen=True)
class Space:
    """The recipe's space: 1cycle only; max LR and weight decay log-uniform (random, TPE)
    or from the grids; maximum momentum uniform or from its grid; batch size categorical."""

    batch_sizes: tuple[int, ...]
    lr: tuple[float, float] = (1e-3, 3.0)
    weight_decay: tuple[float, float] = (1e-6, 1e-2)
    momentum: tuple[float, float] = (0.8, 0.99)
    lr_grid: tuple[float, ...] = (0.03, 0.1, 0.3, 1.0)
    weight_decay_grid: tuple[float, ...] = (0.0, 1e-4, 1e-3)
    momentum_grid: tuple[float, ...] = (0.9, 0.95)
    optimizer: str = "sgd"
    schedule: str = "one-cycle"

    def grid(self) -> list[dict[str, Any]]:
        """Every grid point (batch x LR x weight decay x momentum)."""
        return [
            {"batch_size": b, "max_lr": lr, "weight_decay": wd, "momentum": m}
            for b, lr, wd, m in itertools.product(
                self.batch_sizes, self.lr_grid, self.weight_decay_grid, self.momentum_grid
            )
        ]

    def sample(self, rng: random.Random) -> dict[str, Any]:
        """A random point: LR and weight decay log-uniform, momentum uniform, batch uniform."""

        def log_uniform(lo: float, hi: float) -> float:
            return math.exp(rng.uniform(math.log(lo), math.log(hi)))

        return {
            "batch_size": rng.choice(self.batch_sizes),
            "max_lr": log_uniform(*self.lr),
            "weight_decay": log_uniform(*self.weight_decay),
            "momentum": rng.uniform(*self.momentum),
        }

    def suggest(self, trial: Any) -> dict[str, Any]:
        """The same space asked of an Optuna trial."""
        return {
            "batch_size": trial.suggest_categorical("batch_size", list(self.batch_sizes)),
            "max_lr": trial.suggest_float("max_lr", *self.lr, log=True),
            "weight_decay": trial.suggest_float("weight_decay", *self.weight_decay, log=True),
            "momentum": trial.suggest_float("momentum", *self.momentum),
        }

    def hparams(self, point: dict[str, Any]) -> HParams:
        """The point as the recipe's `HParams` (1cycle with the recipe's momentum cycle)."""
        m = float(point["momentum"])
        return HParams(
            max_lr=float(point["max_lr"]),
            max_momentum=m,
            min_momentum=min(m, 0.85 if m >= 0.95 else 0.8),
            weight_decay=float(point["weight_decay"]),
            batch_size=int(point["batch_size"]),
            optimizer=self.optimizer,  # type: ignore[arg-type]
            schedule=self.schedule,  # type: ignore[arg-type]
        )


@lru_cache(maxsize=8)
def _task(ref: str, split: str = "val") -> Any:
    return load_task(ref, {"split": split})


def train_point(
    ref: str, space: Space, point: dict[str, Any], epochs: float, seed: int, trial: Any = None
) -> dict[str, Any]:
    """Train one point for ``epochs`` on the validation split; its final validation metric
    (NaN when not finite), wall seconds (evaluation included), epochs trained and whether it
    was pruned. With an Optuna ``trial`` the metric is reported after every epoch and the
    run stops when the trial's pruner says so."""
    task = _task(ref)
    hp = space.hparams(point)
    t0 = time.perf_counter()
    if trial is None:
        _, h = train_task(task, hp, epochs=epochs, seed=seed)
        pruned = False
    else:
        h, pruned = _pruned_run(task, hp, epochs, seed, trial)
    seconds = time.perf_counter() - t0
    metric = h.final.val_metric if h.final is not None else math.nan
    return {
        "point": dict(point),
        "metric": metric if math.isfinite(metric) and not pruned else math.nan,
        "seconds": seconds,
        "epochs": h.epochs,
        "pruned": pruned,
    }


def _pruned_run(task: Any, hp: HParams, epochs: float, seed: int, trial: Any) -> tuple[Any, bool]:
    """`train_task`'s run, evaluated after every epoch by a stop rule that asks the pruner."""
    from disciplined import PolicyScheduler, evaluate
    from disciplined.trials.hparams import build_optimizer, build_policy, steps_for

    torch.manual_seed(seed)
    model = task.model()
    opt = build_optimizer(model, hp)
    total = steps_for(task, hp, epochs)
    per_epoch = max(1, round(total / epochs))
    state = {"pruned": False}

    def stop(step: int, loss: float) -> str | None:
        if (step + 1) % per_epoch or step + 1 >= total:
            return None
        _, metric = evaluate(model, task.val_data, task.loss_fn, task.metric)
        trial.report(metric if math.isfinite(metric) else 0.0, (step + 1) // per_epoch)
        if trial.should_prune():
            state["pruned"] = True
            return "pruned"
        return None

    h = fit(
        model,
        opt,
        task.train_data,
        loss_fn=task.loss_fn,
        val_data=task.val_data,
        metric=task.metric,
        metric_name=task.metric_name,
        scheduler=PolicyScheduler(opt, build_policy(hp, total)),
        steps=total,
        batch_size=hp.batch_size,
        eval_every=total,
        seed=seed,
        stop=stop,
    )
    return h, state["pruned"]


def search(
    method: str,
    ref: str,
    space: Space,
    epochs: float,
    seed: int,
    budget_s: float,
    max_trials: int = 10_000,
) -> list[dict[str, Any]]:
    """Run ``method`` on ``ref`` until its trials' wall seconds reach ``budget_s``; every
    trial (``train_point``'s dict plus ``spent``, the cumulative seconds at its end), in the
    order they ran. Grid search runs its points in an order shuffled by ``seed`` and stops
    when the grid is done."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if not budget_s > 0:
        raise ValueError(f"budget_s must be > 0, got {budget_s!r}")
    torch.set_num_threads(1)
    trials: list[dict[str, Any]] = []
    spent = 0.0

    def record(r: dict[str, Any]) -> None:
        nonlocal spent
        spent += r["seconds"]
        trials.append({**r, "spent": spent})

    if method in ("grid", "random"):
        rng = random.Random(seed)
        points: Iterator[dict[str, Any]]
        if method == "grid":
            grid = space.grid()
            rng.shuffle(grid)
            points = iter(grid)
        else:
            points = iter(lambda: space.sample(rng), None)
        for point in points:
            if spent >= budget_s or len(trials) >= max_trials:
                break
            record(train_point(ref, space, point, epochs, seed))
        return trials
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruner = (
        optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=max(1, int(epochs // 4)))
        if method == "tpe-median"
        else optuna.pruners.NopPruner()
    )
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=10),
        pruner=pruner,
    )
    while spent < budget_s and len(trials) < max_trials:
        t = study.ask()
        point = space.suggest(t)
        r = train_point(ref, space, point, epochs, seed, t if method == "tpe-median" else None)
        record(r)
        if r["pruned"]:
            study.tell(t, state=optuna.trial.TrialState.PRUNED)
        elif math.isfinite(r["metric"]):
            study.tell(t, r["metric"])
        else:
            study.tell(t, state=optuna.trial.TrialState.FAIL)
    return trials


def best_within(trials: list[dict[str, Any]], seconds: float) -> dict[str, Any] | None:
    """The best finished trial (ties: the earliest) among those that had ended once the
    search had spent ``seconds``: what it would have handed its user. None if there is none."""
    best = None
    for t in trials:
        if t["spent"] > seconds * (1 + 1e-9):
            break
        if math.isfinite(t["metric"]) and (best is None or t["metric"] > best["metric"]):
            best = t
    return best


def run_on(
    ref: str, split: str, hparams: dict[str, Any], epochs: float, seed: int
) -> tuple[float, float]:
    """Train ``hparams`` for ``epochs`` from ``seed`` on the training split; the final
    metric on ``split`` (NaN when not finite or diverged) and the wall seconds."""
    torch.set_num_threads(1)
    task = load_task(ref, {"split": split})
    t0 = time.perf_counter()
    _, h = train_task(task, HParams.from_dict(hparams), epochs=epochs, seed=seed)
    seconds = time.perf_counter() - t0
    m = h.final.val_metric if h.final is not None and not h.diverged else math.nan
    return (m if math.isfinite(m) else math.nan), seconds


def test_score(ref: str, hparams: dict[str, Any], epochs: float, seed: int) -> float:
    """Train ``hparams`` for ``epochs`` from ``seed`` on the training split and score the
    final model on the test split (NaN when not finite). Refused while `sealed`."""
    return run_on(ref, "test", hparams, epochs, seed)[0]


def recipe_job(
    ref: str, epochs: float, seed: int, out: str, steps: int, budget: float | None
) -> dict[str, Any]:
    """Run the recipe on the validation split of ``ref``; what it chose, its own final
    validation metric, its epochs and its wall seconds (the whole ``tune`` call, every
    evaluation included; read back from ``out`` on a rerun instead of the resumed call's)."""
    import json
    from pathlib import Path

    from disciplined import tune

    torch.set_num_threads(1)
    saved = Path(out) / "bench-seconds.json"
    t0 = time.perf_counter()
    r = tune(
        ref,
        epochs=epochs,
        budget=budget,
        range_steps=steps,
        seed=seed,
        out=out,
        task_options={"split": "val"},
    )
    seconds = time.perf_counter() - t0
    if saved.exists():
        seconds = json.loads(saved.read_text())["seconds"]
    else:
        saved.write_text(json.dumps({"seconds": seconds}))
    return {
        "hparams": r.hparams.to_dict(),
        "val": r.final_metric,
        "epochs": sum(c["epochs"] for c in r.compute.values()),
        "seconds": seconds,
        "epochs_final": r.epochs,
    }
