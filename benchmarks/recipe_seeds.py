"""The recipe across seeds: what it chose and what it reached on a test split, seed by seed.

The other benchmarks average three seeds; a rule that fails one seed in four hides in such a
mean. Here `disciplined.tune` runs on more seeds per task (default budget, 300-step range
tests) on the validation split of the task's three-split version (`benchmarks/splits.py`),
with the test split sealed. Each seed's choice is then retrained from a fresh seed (seed +
1000) and scored on the test split. The table lists every seed's choices (max LR, momentum
cycle, weight decay, batch size), its test metric (the tune's own final validation metric
beside) and the diagnosis, then the mean, the worst seed and how many seeds fell below a
floor (half-way between chance and the mean). The tasks are the MNIST-1D CNN at 10 and at
20 epochs, the MNIST-1D MLP, the synthetic regression and `digits-mlp` at 20 epochs.

Target (issue 32): on the MNIST-1D CNN, at 10 and at 20 epochs, the worst seed's test metric
is within 5 points of the median seed's.

    python benchmarks/recipe_seeds.py [--quick] [--seeds 9] [--tasks a,b] [--workers 2]
        [--cache DIR]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import fair  # noqa: E402
import splits  # noqa: E402
from _common import cache_dir, header, pool_map  # noqa: E402

# task, final-run epochs, the metric's chance level (accuracy of a constant guess; R^2 0)
TASKS = (
    ("mnist1d-cnn", 10.0, 0.1),
    ("mnist1d-cnn", 20.0, 0.1),
    ("mnist1d-mlp", 20.0, 0.1),
    ("synthetic-regression", 20.0, 0.0),
    ("digits-mlp", 20.0, 0.1),
)
SPREAD_TARGET = {"mnist1d-cnn": 0.05}
"""Tasks whose worst seed must lie within this of the median seed (5 points of accuracy)."""
RETRAIN = 1000
"""Seed ``s``'s choice is retrained from seed ``s + RETRAIN`` for the test split."""


def run(
    plan: list[tuple[str, float, float]], seeds: list[int], budget, steps: int, cache, workers
) -> dict[tuple[str, int], dict]:
    """Each task, length and seed (keyed ``(task, epochs, seed)``): the recipe on the
    validation split (test sealed), then its choice retrained from a fresh seed and scored on
    the test split (``"test"``)."""
    keys = [(t, e, s) for t, e, _ in plan for s in seeds]
    jobs = [
        (
            splits.ref(t),
            e,
            s,
            str(cache / "fair-tune" / f"{t}-e{e:g}-r{steps}-s{s}"),
            steps,
            budget,
        )
        for t, e, s in keys
    ]
    with fair.sealed():
        results = dict(zip(keys, pool_map(fair.recipe_job, jobs, workers), strict=True))
    tjobs = [
        (
            splits.ref(t),
            "test",
            results[(t, e, s)]["hparams"],
            results[(t, e, s)]["epochs_final"],
            s + RETRAIN,
        )
        for t, e, s in keys
    ]
    for key, (metric, _) in zip(keys, pool_map(fair.run_on, tjobs, workers), strict=True):
        results[key]["test"] = metric
    return results


def main() -> None:
    """Run the recipe on every task and seed and print a markdown table per task."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="digits-mlp, two seeds, tiny budget")
    ap.add_argument("--seeds", type=int, default=9)
    ap.add_argument("--tasks", default=",".join(t for t, _, _ in TASKS), help="comma-separated")
    ap.add_argument("--workers", type=int, default=2, help="worker processes (1 thread each)")
    ap.add_argument("--cache", default=None, help="folder for tune outputs; default: temp")
    args = ap.parse_args()
    os.chdir(ROOT)
    torch.set_num_threads(1)
    if args.quick:
        plan, seeds, budget, steps = [("digits-mlp", 1.0, 0.1)], [0, 1], 30.0, 100
    else:
        names = args.tasks.split(",")
        unknown = sorted(set(names) - {t for t, _, _ in TASKS})
        if unknown:
            ap.error(f"unknown task(s) {unknown}; choose from {[t for t, _, _ in TASKS]}")
        plan = [t for t in TASKS if t[0] in names]
        seeds, budget, steps = list(range(args.seeds)), None, 300
    cache = cache_dir(args.cache, "bench-seeds-")
    started = time.perf_counter()
    workers = 1 if args.quick else args.workers  # quick: starting workers costs more
    results = run(plan, seeds, budget, steps, cache, workers)
    elapsed = time.perf_counter() - started

    budget_txt = "default" if budget is None else f"{budget:g}"
    print(header("The recipe across seeds, scored on a test split"))
    print(
        f"- seeds {seeds}; `tune(task, epochs=E, budget={budget_txt}, range_steps={steps}, "
        "seed=s)` on the validation split of the three-split task (`benchmarks/splits.py`), "
        f"the test split sealed; each choice retrained from seed s + {RETRAIN} and scored on "
        f"the test split; {workers} worker process(es) of 1 torch thread; "
        f"{elapsed:.0f} s in all\n"
        "- floor: half-way between the metric's chance level and the task's mean test metric "
        "(a diverged retraining scores the chance level)\n"
    )
    summary = []
    for task, epochs, chance in plan:
        rows = [results[(task, epochs, s)] for s in seeds]
        finals = [r["test"] if math.isfinite(r["test"]) else chance for r in rows]
        mean = statistics.fmean(finals)
        floor = (chance + mean) / 2
        print(f"#### {task}, {epochs:g} epochs\n")
        print(
            "| seed | max LR | momentum | weight decay | batch | test metric [tune's val] | "
            "diagnosis | epochs | seconds |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for s, r, f in zip(seeds, rows, finals, strict=True):
            h = r["hparams"]
            print(
                f"| {s} | {h['max_lr']:.3g} | {h['max_momentum']:g} -> {h['min_momentum']:g} | "
                f"{h['weight_decay']:g} | {h['batch_size']} | {f:.4f} [{r['val']:.4f}] | "
                f"{r['verdict']} | {r['epochs']:.0f} | {r['seconds']:.0f} |"
            )
        below = sum(f < floor for f in finals)
        spread = statistics.stdev(finals) if len(finals) > 1 else 0.0
        median = statistics.median(finals)
        print(
            f"\nMean {mean:.4f} ± {spread:.4f}; median {median:.4f}; worst seed "
            f"{min(finals):.4f}.\n"
        )
        summary.append((task, epochs, mean, spread, median, min(finals), below, len(finals)))
    print("#### Summary (test split)\n")
    print(
        "| task | epochs | mean | std | median | worst seed | worst below median | "
        "seeds below the floor | target: worst within 5 points of the median |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for task, epochs, mean, spread, median, worst, below, n in summary:
        gap = median - worst
        verdict = (
            ("met" if gap <= SPREAD_TARGET[task] else "**MISSED**")
            if task in SPREAD_TARGET
            else "-"
        )
        print(
            f"| {task} | {epochs:g} | {mean:.4f} | {spread:.4f} | {median:.4f} | {worst:.4f} | "
            f"{100 * gap:.1f} points | {below} of {n} | {verdict} |"
        )
    print()


if __name__ == "__main__":
    main()
