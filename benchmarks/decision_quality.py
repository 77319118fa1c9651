"""Decision quality over the task zoo: the recipe's choice against each task's oracle.

For every task of `benchmarks/zoo/tasks.py`, `disciplined.tune` runs at its default budget
(12x the final run's epochs) with the task's epochs and optimizer, once per seed. Its
choice is then trained again from a fresh seed (seed + 100), and that run's validation
metric is compared with the task's oracle (`benchmarks/oracle.py`: an exhaustive 1cycle
grid of batch size x max LR x weight decay x momentum on three seeds, read back from
``benchmarks/zoo/oracle.json``). The recipe picks among a few full runs on the validation
set (the batch sizes, the LR bracket); the fresh seed's run carries none of that
selection's luck. The tune's own final metric is shown beside it.

Goal per task (issue 12): the retrained mean over seeds is within max(0.5 points, one
oracle standard deviation) of the oracle's best mean; the recipe uses at most 10% of the
oracle's compute (its grid on three seeds, in epochs; the fraction of one seed's grid and
of the oracle's seconds are shown beside); it beats the default configuration wherever the
default is more than 1 point below the oracle; and no seed diverges or collapses (a `tune`
that refuses to return a diverged run counts as a collapse). Points are 100 x the metric
(accuracy or R^2).

    python benchmarks/decision_quality.py [--quick] [--tasks a,b] [--seeds 3] [--workers 2]
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
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import cache_dir, header, pool_map  # noqa: E402
from oracle import Reference, load, reference  # noqa: E402
from zoo.tasks import ZOO  # noqa: E402


def tune_zoo(name: str, seed: int, out: str, budget: float | None, steps: int) -> dict[str, Any]:
    """Run (or resume from ``out``) the recipe on a zoo task; what it chose and scored."""
    from disciplined import tune
    from disciplined.errors import UsageError

    torch.set_num_threads(1)
    entry = ZOO[name]
    t0 = time.perf_counter()
    try:
        r = tune(
            entry.ref,
            epochs=entry.epochs,
            budget=budget,
            optimizer=entry.optimizer,
            seed=seed,
            out=out,
            range_steps=steps,
        )
    except UsageError as exc:  # e.g. every final run diverged: tune refuses to answer
        return {
            "error": str(exc),
            "final": math.nan,
            "tuned": math.nan,
            "collapsed": True,
            "hparams": None,
            "epochs": math.nan,
            "seconds": time.perf_counter() - t0,
            "verdict": "error",
        }
    from disciplined.tasks import load_task
    from disciplined.trials.hparams import train_task

    task = load_task(entry.ref)
    _, again = train_task(task, r.hparams, epochs=r.epochs, seed=seed + 100)
    fresh = again.final.val_metric if again.final and not again.diverged else math.nan
    return {
        "hparams": r.hparams.to_dict(),
        "tuned": r.final_metric,
        "final": fresh,
        "epochs": sum(c["epochs"] for c in r.compute.values()),
        "seconds": sum(c["seconds"] for c in r.compute.values()),
        "verdict": r.diagnosis.verdict,
        "collapsed": r.diagnosis.verdict == "diverged"
        or not math.isfinite(r.final_metric)
        or not math.isfinite(fresh),
        "error": None,
    }


def _ms(xs: list[float]) -> str:
    xs = [x for x in xs if math.isfinite(x)]
    if not xs:
        return "-"
    if len(xs) == 1:
        return f"{100 * xs[0]:.2f}"
    return f"{100 * statistics.fmean(xs):.2f} ± {100 * statistics.stdev(xs):.2f}"


def held_out(ref: Reference) -> float:
    """What running the grid search would give: for each seed, the grid point with the best
    mean over the other seeds, scored on the seed left out; the mean of those scores. The
    grid's best mean is read on the same seeds it was chosen on, so noise lifts it (the
    winner's curse); this does not."""
    n = len(next(iter(ref.by_point.values())))
    scores = []
    for i in range(n):
        pick = max(
            ref.by_point,
            key=lambda p: statistics.fmean(ref.by_point[p][:i] + ref.by_point[p][i + 1 :]),
        )
        scores.append(ref.by_point[pick][i])
    return statistics.fmean(scores)


ORACLE_SEEDS = 3
"""The oracle's grid runs on this many seeds (`benchmarks/oracle.py`)."""


def judge(ref: Reference, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The task's row: regret, goal, compute fraction, default comparison, collapses."""
    scores = [0.0 if r["collapsed"] else max(r["final"], 0.0) for r in runs]
    mean = statistics.fmean(scores)
    regret = 100 * (ref.best_mean - mean)
    allowed = max(0.5, 100 * ref.best_std)
    # ref.epochs and ref.seconds are one seed's grid; the oracle ran it on `ORACLE_SEEDS`
    one_grid = statistics.fmean(r["epochs"] for r in runs if math.isfinite(r["epochs"])) / (
        ref.epochs
    )
    frac_epochs = one_grid / ORACLE_SEEDS
    frac_seconds = statistics.fmean(r["seconds"] for r in runs) / (ref.seconds * ORACLE_SEEDS)
    default_gap = 100 * (ref.best_mean - ref.default_mean)
    beats_default = default_gap <= 1.0 or mean > ref.default_mean
    collapses = sum(r["collapsed"] for r in runs)
    ok = regret <= allowed and frac_epochs <= 0.10 and beats_default and collapses == 0
    return {
        "held_out": 100 * (held_out(ref) - mean),
        "mean": mean,
        "regret": regret,
        "allowed": allowed,
        "frac_epochs": frac_epochs,
        "frac_one_grid": one_grid,
        "frac_seconds": frac_seconds,
        "default_gap": default_gap,
        "beats_default": beats_default,
        "collapses": collapses,
        "ok": ok,
    }


def main() -> None:
    """Run the recipe on the zoo and print the tables."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one small task, one seed, tiny budget")
    ap.add_argument("--tasks", default=",".join(ZOO))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2, help="worker processes (1 thread each)")
    ap.add_argument("--cache", default=None, help="folder for tune outputs (resume)")
    args = ap.parse_args()
    os.chdir(ROOT)
    torch.set_num_threads(1)
    oracle = load()
    if args.quick:
        names, seeds, budget, steps = ["cancer-mlp"], [0], None, 100
    else:
        names = [n for n in args.tasks.split(",") if n]
        seeds, budget, steps = list(range(args.seeds)), None, 300
    missing = [n for n in names if n not in oracle]
    if missing:
        raise SystemExit(f"no oracle for {missing}: run python benchmarks/oracle.py first")
    cache = cache_dir(args.cache, "bench-zoo-")
    started = time.perf_counter()
    jobs = [
        (n, s, str(cache / "zoo-tune" / f"{n}-s{s}-r{steps}"), budget, steps)
        for n in names
        for s in seeds
    ]
    outputs = pool_map(tune_zoo, jobs, 1 if args.quick else args.workers)
    runs = {(j[0], j[1]): o for j, o in zip(jobs, outputs, strict=True)}
    elapsed = time.perf_counter() - started

    print(header("Decision quality over the task zoo: the recipe against each task's oracle"))
    print(
        f"- tasks: {', '.join(names)} (`benchmarks/zoo/tasks.py`); recipe seeds {seeds}; "
        f"{args.workers if not args.quick else 1} worker process(es) of 1 torch thread; "
        f"{elapsed:.0f} s for the recipe runs\n"
        "- oracle: `python benchmarks/oracle.py` (read from `benchmarks/zoo/oracle.json`): "
        "1cycle at batch {task's, half} x 6-7 max LRs x 3 weight decays x momentum "
        "{0.95-0.85, 0.9-0.8}, seeds 0-2; best = the best mean over seeds (a run that "
        "diverged scores 0)\n"
        "- recipe: `tune(task, epochs=<task's>, optimizer=<task's>, seed=s)` at the default "
        "budget; its choice retrained from seed + 100, whose final validation metric is the "
        "score (the tune's own final metric in brackets); points = 100 x metric\n"
        "- goal: regret <= max(0.5, oracle std) points, compute <= 10% of the oracle's (its "
        "grid on 3 seeds, epochs), beats the default where the default is > 1 point below "
        "the oracle, no collapse\n"
    )
    print(
        "| task | metric | oracle best (batch, max LR, wd, mom) | default "
        "| recipe, retrained (mean ± std) [tune's own] "
        "| recipe's choices per seed (batch, max LR, wd, mom) | regret | allowed "
        "| regret vs the grid's held-out pick "
        "| compute: of the oracle (epochs / s), of one seed's grid | collapses | goal |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    met = 0
    for n in names:
        ref = reference(oracle[n])
        rs = [runs[(n, s)] for s in seeds]
        j = judge(ref, rs)
        met += j["ok"]
        b, lr, wd, m = ref.best_point
        choices = "; ".join(
            "error"
            if r["hparams"] is None
            else (
                f"{r['hparams']['batch_size']}, {r['hparams']['max_lr']:.3g}, "
                f"{r['hparams']['weight_decay']:g}, {r['hparams']['max_momentum']:g}"
            )
            for r in rs
        )
        print(
            f"| {n} | {oracle[n]['metric']} | {100 * ref.best_mean:.2f} ± "
            f"{100 * ref.best_std:.2f} ({b}, {lr:g}, {wd:g}, {m:g}) | "
            f"{100 * ref.default_mean:.2f} | {_ms([r['final'] for r in rs])} "
            f"[{_ms([r['tuned'] for r in rs])}] | {choices} | "
            f"{j['regret']:.2f} | {j['allowed']:.2f} | {j['held_out']:.2f} | "
            f"{100 * j['frac_epochs']:.1f}% / "
            f"{100 * j['frac_seconds']:.1f}%, {100 * j['frac_one_grid']:.1f}% | "
            f"{j['collapses']} | "
            f"{'met' if j['ok'] else '**MISSED**'} |"
        )
    print(f"\n**Tasks within goal: {met} / {len(names)}.**\n")
    print(
        "Regret is the oracle's best mean minus the recipe's mean, in points; the held-out "
        "column compares with what a grid search would actually give (each seed scored at "
        "the point chosen on the other two), since the best of 84 means over the seeds it was "
        "picked on is lifted by their noise. Compute is the recipe's (the retraining not "
        "counted), over the oracle's three-seed grid and, last, over one seed's grid: what "
        "a single grid search would cost.\n"
    )
    errors = [(k, r["error"]) for k, r in runs.items() if r["error"]]
    for (n, s), e in errors:
        print(f"- {n}, seed {s}: `tune` refused to return a run: {e}")


if __name__ == "__main__":
    main()
