"""What the fair benchmarks share: a sealed test split, the recipe's own search space, searches
with a budget in wall-clock seconds, and scoring on the test split.

- **Splits.** The recipe and every search read a three-split task's validation split
  (`splits.py`, or a zoo task); `sealed()` sets ``DISCIPLINED_BENCH_SEALED=1``, inherited by
  worker processes, under which building a test split raises. `test_score` retrains a
  configuration from a fresh seed and scores it on the test split: the only number a
  headline quotes.
- **The space.** `space` is what the recipe chooses among, as the library's `SearchSpace`:
  1cycle only (with the recipe's momentum cycle, the minimum 0.85 under a maximum of 0.95
  or more, else 0.8), max LR, weight decay, maximum momentum and batch size (the task's,
  half and a quarter: the batch sizes the recipe compares).
- **Searches.** `search` runs the library's grid, random and Optuna TPE searches
  (`disciplined.search`, with ``budget_seconds``), and TPE with the median
  stopping rule of Optuna's ``MedianPruner`` (`MedianStop`: a trial stops after an epoch
  at which it is behind the median of the finished trials) until the trials' wall seconds
  reach a budget; no trial starts once the budget is spent, so a search overshoots by at
  most its last trial. `best_within` is what
  a search would hand its user had it been given fewer seconds.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterator
from typing import Any

import torch

from disciplined import HParams, load_task, train_task
from disciplined.search import (
    MedianStop,
    SearchResult,
    SearchSpace,
    grid_search,
    random_search,
    tpe_search,
    trial_metric,
)

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


def space(task_batch: int) -> SearchSpace:
    """The recipe's space as the library's `SearchSpace`: 1cycle only; max LR and weight
    decay log-uniform (random, TPE) or from the grids; maximum momentum uniform or from its
    grid (the minimum follows the recipe's rule); batch size the task's, half or a quarter."""
    return SearchSpace(
        schedules=("one-cycle",),
        lr=(1e-3, 3.0),
        weight_decay=(1e-6, 1e-2),
        momentum=(0.8, 0.99),
        lr_grid=(0.03, 0.1, 0.3, 1.0),
        weight_decay_grid=(0.0, 1e-4, 1e-3),
        momentum_grid=(0.9, 0.95),
        batch_sizes=batch_sizes(task_batch),
    )


def _trials(result: SearchResult) -> list[dict[str, Any]]:
    """A library search's trials as picklable dicts: hyper-parameters, final validation
    metric (NaN when it diverged, failed or is not finite), wall seconds, epochs and
    ``spent``, the cumulative seconds at the trial's end."""
    out, spent = [], 0.0
    for r in result.trials:
        spent += r.seconds
        m = trial_metric(r) if r.status == "ok" else math.nan
        out.append(
            {
                "hparams": dict(r.spec.hparams),
                "metric": m,
                "seconds": r.seconds,
                "epochs": r.epochs,
                "pruned": r.status == "pruned",
                "spent": spent,
            }
        )
    return out


def search(
    method: str,
    ref: str,
    space: SearchSpace,
    epochs: float,
    seed: int,
    budget_s: float,
    max_trials: int = 2_000,
) -> list[dict[str, Any]]:
    """Run ``method`` on the validation split of ``ref`` until its trials' wall seconds reach
    ``budget_s``; every trial (see `_trials`), in the order they ran. Grid, random and TPE
    are the library's searches (`disciplined.search`, ``budget_seconds``); the
    grid runs in an order shuffled by ``seed`` and stops when it is done. ``tpe-median`` is
    the library's TPE with `median_stop`, the rule of Optuna's MedianPruner."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if not budget_s > 0:
        raise ValueError(f"budget_s must be > 0, got {budget_s!r}")
    torch.set_num_threads(1)
    common = {"seed": seed, "budget_seconds": budget_s, "task_options": {"split": "val"}}
    if method == "grid":
        r = grid_search(ref, space, epochs, order_seed=seed, **common)
    elif method == "random":
        r = random_search(ref, space, max_trials, epochs, **common)
    elif method == "tpe":
        r = tpe_search(ref, space, max_trials, epochs, **common)
    else:
        r = tpe_search(ref, space, max_trials, epochs, pruning=median_stop(epochs), **common)
    return _trials(r)


def median_stop(epochs: float) -> MedianStop:
    """The pruned TPE's rule, Optuna's ``MedianPruner`` as a user would set it: 5 finished
    trials before any is stopped, and no stop in the first quarter of the epochs."""
    return MedianStop(n_startup_trials=5, warmup_epochs=max(1, int(epochs // 4)))


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
    validation metric, its epochs, ``seconds`` (its trials' wall seconds, evaluation
    included: what a search's seconds count) and ``wall_seconds`` (the whole ``tune`` call:
    loading, planning, memory probe, trial store and the report's figures too; read back
    from ``out`` on a rerun instead of the resumed call's)."""
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
    wall = time.perf_counter() - t0
    if saved.exists():
        wall = json.loads(saved.read_text())["seconds"]
    else:
        saved.write_text(json.dumps({"seconds": wall}))
    return {
        "hparams": r.hparams.to_dict(),
        "val": r.final_metric,
        "epochs": sum(c["epochs"] for c in r.compute.values()),
        "seconds": sum(c["seconds"] for c in r.compute.values()),
        "wall_seconds": wall,
        "epochs_final": r.epochs,
        "verdict": r.diagnosis.verdict,
    }
