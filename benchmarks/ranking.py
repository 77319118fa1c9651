"""Short 1cycle runs or pruned partial curves: which ranks configurations better (issue 32).

A successive-halving race has to judge many configurations on a fraction of a final run's
epochs. It can read them two ways: run each as a *whole, shorter* 1cycle (what the race in
`disciplined.search.race` does: rungs of ``epochs / 9`` and ``epochs / 3``), or start every
run at full length and read its validation curve part of the way through, cutting the worse
ones there (what a pruner sees: Optuna's ``SuccessiveHalvingPruner`` / ``HyperbandPruner``,
Ray Tune's ``ASHAScheduler``). This benchmark measures which of the two ranks configurations
the way their full-length runs do.

For each task, 16 configurations (batch {the task's, half} x max LR {4 values log-spaced over
30x, centred on the task's default: 0.1 for SGD, 3e-3 for AdamW} x weight decay {1e-4, 1e-2};
momentum 0.95 down to 0.85), each on every seed:

- (a) a full-length 1cycle run, its validation metric read after every epoch (`fit`'s
  default evaluation), so its curve at ``epochs / 9`` and ``epochs / 3`` (the nearest whole
  epoch, at least 1) is what a pruner would have seen;
- (b) whole short 1cycle runs of ``epochs / 9`` and ``epochs / 3``.

The reference is each configuration's full-length final metric, the mean over the seeds. Per
task the table gives the Spearman rank correlation of each proxy (its mean over the seeds)
with that reference, and whether the proxy's best configuration is within the noise of the
best full-length one (the noise: the median over configurations that did not diverge of
the standard deviation over seeds of a full-length run's final metric; a median, since one
seed's collapse would swamp a pooled figure), and whether the reference's best is in the
proxy's top third (what a rung of the race with reduction factor 3 keeps). A run that
diverged, or has no finite metric at the point read, scores 0 there (the metric's worst, as
in `benchmarks/oracle.py`). The rank correlation of the full runs' seeds with each other is
shown beside, as the ceiling noise sets.

Every run is appended as one JSON line to ``--cache``/``runs.jsonl`` as it finishes; a rerun
skips the runs already there.

    python benchmarks/ranking.py [--tasks mnist1d-cnn,digits-mlp,deep-mlp,bn-cnn]
        [--seeds 2] [--workers 2] [--cache DIR] [--quick]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import cache_dir, header  # noqa: E402

DEFAULT_TASKS = ("mnist1d-cnn", "digits-mlp", "deep-mlp", "bn-cnn")
BUILTIN_EPOCHS = {"mnist1d-cnn": 10.0, "digits-mlp": 10.0}
"""The built-in tasks measured, at their epochs (zoo tasks take their `ZooEntry.epochs`)."""
FRACTIONS = (9, 3)
"""The short lengths, as divisors of the full run's epochs: the race's rungs."""
WEIGHT_DECAYS = (1e-4, 1e-2)
LR_SPAN = 30.0
MOMENTUM = (0.95, 0.85)
QUICK_TASK = ("digits-mlp", 9.0)


# --------------------------------------------------------------------------- statistics


def ranks(xs: list[float]) -> list[float]:
    """The rank of each value (1 = smallest), ties given the mean of the ranks they span."""
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    out = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def pearson(xs: list[float], ys: list[float]) -> float:
    """Pearson's correlation; NaN when either side is constant or has under 2 values."""
    if len(xs) != len(ys):
        raise ValueError(f"lengths differ: {len(xs)} and {len(ys)}")
    if len(xs) < 2:
        return math.nan
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    if sxx == 0 or syy == 0:
        return math.nan
    return sxy / math.sqrt(sxx * syy)


def spearman(xs: list[float], ys: list[float]) -> float:
    """Spearman's rank correlation (Pearson's on the ranks, ties at their mean rank, as
    ``scipy.stats.spearmanr``); NaN when either side is constant."""
    return pearson(ranks(xs), ranks(ys))


def top_fraction(scores: list[float], fraction: float) -> set[int]:
    """The indices of the best ``ceil(fraction * n)`` scores (higher is better; ties: the
    earlier index)."""
    keep = max(1, math.ceil(fraction * len(scores)))
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    return set(order[:keep])


# --------------------------------------------------------------------------- the runs


@dataclass(frozen=True)
class TaskSpec:
    """A task as measured here: its name, reference, options, epochs and optimizer."""

    name: str
    ref: str
    options: dict[str, Any]
    epochs: float
    optimizer: str


def task_spec(name: str) -> TaskSpec:
    """A built-in task (`BUILTIN_EPOCHS`) or a development-zoo task, by name."""
    if name in BUILTIN_EPOCHS:
        return TaskSpec(name, name, {}, BUILTIN_EPOCHS[name], "sgd")
    from zoo.tasks import ZOO

    if name not in ZOO:
        known = ", ".join([*BUILTIN_EPOCHS, *ZOO])
        raise SystemExit(f"unknown task {name!r}: one of {known}")
    e = ZOO[name]
    return TaskSpec(name, e.ref, {"split": "val"}, float(e.epochs), e.optimizer)


def lrs(optimizer: str, n: int = 4) -> tuple[float, ...]:
    """``n`` max LRs log-spaced over `LR_SPAN`, centred (geometrically) on the default."""
    default = 3e-3 if optimizer == "adamw" else 0.1
    if n == 1:
        return (default,)
    return tuple(float(f"{default * LR_SPAN ** (i / (n - 1) - 0.5):.3g}") for i in range(n))


def configs(spec: TaskSpec, task_batch: int, quick: bool = False) -> list[dict[str, Any]]:
    """The configurations as `HParams` dictionaries: batch {task's, half} x `lrs` x
    `WEIGHT_DECAYS` (16); with ``quick``, the task's batch x 2 LRs x 2 weight decays."""
    batches = (task_batch,) if quick else (task_batch, max(1, task_batch // 2))
    grid_lrs = lrs(spec.optimizer)[1:3] if quick else lrs(spec.optimizer)
    return [
        {
            "batch_size": b,
            "max_lr": lr,
            "weight_decay": wd,
            "max_momentum": MOMENTUM[0],
            "min_momentum": MOMENTUM[1],
            "optimizer": spec.optimizer,
        }
        for b in batches
        for lr in grid_lrs
        for wd in WEIGHT_DECAYS
    ]


def run_key(task: str, epochs: float, hp: dict[str, Any], seed: int) -> str:
    """The cache key of one run."""
    return json.dumps([task, epochs, hp, seed], sort_keys=True)


def train(
    task: str, ref: str, options: dict[str, Any], hp: dict[str, Any], epochs: float, seed: int
) -> dict[str, Any]:
    """One 1cycle run of ``epochs``: its evaluations (epoch, metric; NaN when not finite),
    whether it diverged, and its wall seconds."""
    import torch

    from disciplined import HParams, load_task, train_task

    torch.set_num_threads(1)
    t = load_task(ref, options or None)
    t0 = time.perf_counter()
    _, h = train_task(t, HParams.from_dict(hp), epochs=epochs, seed=seed)
    evals = [[e.epoch, e.val_metric if math.isfinite(e.val_metric) else math.nan] for e in h.evals]
    return {
        "key": run_key(task, epochs, hp, seed),
        "evals": evals,
        "diverged": bool(h.diverged),
        "higher_is_better": bool(h.higher_is_better),
        "seconds": round(time.perf_counter() - t0, 3),
    }


def _load(path: Path) -> dict[str, dict[str, Any]]:
    done: dict[str, dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                try:
                    r = json.loads(line)
                except json.JSONDecodeError:  # a line cut off by a killed run
                    continue
                done[r["key"]] = r
    return done


def run_all(jobs: list[tuple], workers: int, path: Path) -> dict[str, dict[str, Any]]:
    """Every job of ``jobs`` (`train`'s arguments) not already in ``path``; each result
    appended to ``path`` as it finishes. Every result by key."""
    done = _load(path)
    todo = [j for j in jobs if run_key(j[0], j[4], j[3], j[5]) not in done]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:

        def keep(r: dict[str, Any]) -> None:
            done[r["key"]] = r
            f.write(json.dumps(r) + "\n")
            f.flush()

        if workers <= 1 or len(todo) <= 1:
            for j in todo:
                keep(train(*j))
        else:
            from concurrent.futures import ProcessPoolExecutor, as_completed
            from multiprocessing import get_context

            with ProcessPoolExecutor(min(workers, len(todo)), mp_context=get_context("spawn")) as p:
                for fut in as_completed([p.submit(train, *j) for j in todo]):
                    keep(fut.result())
    return done


def score(run: dict[str, Any], at_epoch: float | None = None) -> float:
    """A run's metric at its end (or at the evaluation at ``at_epoch``), as a score: 0 when it
    diverged before that point or the metric is not finite there, else ``max(metric, 0)``
    (the oracle's rule: 0 is chance-or-worse for accuracy and R^2)."""
    evals = run["evals"]
    if at_epoch is None:
        if run["diverged"] or not evals:
            return 0.0
        m = evals[-1][1]
    else:
        hit = [m for e, m in evals if abs(e - at_epoch) <= 1e-6]
        if not hit:
            return 0.0
        m = hit[0]
    return max(float(m), 0.0) if m is not None and math.isfinite(m) else 0.0


def partial_epoch(epochs: float, divisor: int) -> float:
    """The whole epoch a pruner reads for ``epochs / divisor``: the nearest, at least 1."""
    return float(max(1, round(epochs / divisor)))


# --------------------------------------------------------------------------- one task


def measure(
    spec: TaskSpec, seeds: list[int], workers: int, path: Path, quick: bool = False
) -> dict[str, Any]:
    """Run (or read back) one task's runs; its correlations and top-1 agreements."""
    from disciplined import load_task

    task_batch = load_task(spec.ref, spec.options or None).default_batch_size
    points = configs(spec, task_batch, quick)
    lengths = [spec.epochs] + [spec.epochs / d for d in FRACTIONS]
    jobs = [
        (spec.name, spec.ref, spec.options, hp, ep, s)
        for ep in lengths
        for hp in points
        for s in seeds
    ]
    t0 = time.perf_counter()
    runs = run_all(jobs, workers, path)
    wall = time.perf_counter() - t0

    def get(hp: dict[str, Any], ep: float, s: int) -> dict[str, Any]:
        return runs[run_key(spec.name, ep, hp, s)]

    full_by_seed = [[score(get(hp, spec.epochs, s)) for s in seeds] for hp in points]
    full = [statistics.fmean(x) for x in full_by_seed]
    steady = [
        x
        for hp, x in zip(points, full_by_seed, strict=True)
        if not any(get(hp, spec.epochs, s)["diverged"] for s in seeds)
    ]
    noise = (
        statistics.median(statistics.stdev(x) for x in steady) if len(seeds) > 1 and steady else 0.0
    )
    proxies: dict[str, list[float]] = {}
    labels: dict[str, str] = {}
    for d in FRACTIONS:
        ep = spec.epochs / d
        proxies[f"short-{d}"] = [
            statistics.fmean(score(get(hp, ep, s)) for s in seeds) for hp in points
        ]
        labels[f"short-{d}"] = f"short 1cycle, 1/{d} ({ep:.3g} ep)"
    for d in FRACTIONS:
        at = partial_epoch(spec.epochs, d)
        proxies[f"partial-{d}"] = [
            statistics.fmean(score(get(hp, spec.epochs, s), at) for s in seeds) for hp in points
        ]
        labels[f"partial-{d}"] = f"partial curve at epoch {at:g} of {spec.epochs:g}"
    best = max(range(len(points)), key=lambda i: (full[i], -i))
    out: dict[str, Any] = {}
    for name, p in proxies.items():
        pick = max(range(len(points)), key=lambda i: (p[i], -i))
        regret = full[best] - full[pick]
        out[name] = {
            "label": labels[name],
            "rho": spearman(p, full),
            "regret": regret,
            "within_noise": regret <= noise + 1e-12,
            "best_in_top_third": best in top_fraction(p, 1 / 3),
        }
    seed_rho = (
        spearman([x[0] for x in full_by_seed], [x[1] for x in full_by_seed])
        if len(seeds) > 1
        else math.nan
    )
    hp = points[best]
    seconds = {ep: sum(get(h, ep, s)["seconds"] for h in points for s in seeds) for ep in lengths}
    return {
        "task": spec.name,
        "epochs": spec.epochs,
        "optimizer": spec.optimizer,
        "task_batch": task_batch,
        "lrs": sorted({h["max_lr"] for h in points}),
        "n": len(points),
        "best": (hp["batch_size"], hp["max_lr"], hp["weight_decay"]),
        "best_mean": full[best],
        "noise": noise,
        "seed_rho": seed_rho,
        "proxies": out,
        "seconds": seconds,
        "wall": wall,
    }


# --------------------------------------------------------------------------- the tables


def _rho(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.2f}"


def table(results: list[dict[str, Any]]) -> str:
    """The markdown tables: rank correlations, then what each proxy's pick costs."""
    names = ("short-9", "short-3", "partial-9", "partial-3")
    lines = [
        "Spearman rank correlation with the full-length final metric (mean over seeds):\n",
        "| task | epochs | configs | short 1cycle 1/9 | short 1cycle 1/3 | partial curve ~1/9 "
        "(epoch) | partial curve ~1/3 (epoch) | full runs, seed vs seed | best full (batch, "
        "max LR, wd): mean ± noise | seconds: full / 1/9 / 1/3 (all runs) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        p = r["proxies"]
        e9, e3 = (partial_epoch(r["epochs"], d) for d in FRACTIONS)
        b, lr, wd = r["best"]
        secs = " / ".join(f"{v:.0f}" for v in r["seconds"].values())
        lines.append(
            f"| {r['task']} | {r['epochs']:g} | {r['n']} | {_rho(p['short-9']['rho'])} | "
            f"{_rho(p['short-3']['rho'])} | {_rho(p['partial-9']['rho'])} ({e9:g}) | "
            f"{_rho(p['partial-3']['rho'])} ({e3:g}) | {_rho(r['seed_rho'])} | "
            f"{b}, {lr:g}, {wd:g}: {100 * r['best_mean']:.2f} ± {100 * r['noise']:.2f} | "
            f"{secs} |"
        )
    lines += [
        "",
        "The proxy's best configuration: its full-length regret in points (within the noise? "
        "yes/no), and whether the full-length best is in the proxy's top third:\n",
        "| task | short 1cycle 1/9 | short 1cycle 1/3 | partial curve ~1/9 | partial curve ~1/3 |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        cells = []
        for n in names:
            q = r["proxies"][n]
            cells.append(
                f"{100 * q['regret']:.2f} ({'yes' if q['within_noise'] else 'no'}); "
                f"top third {'yes' if q['best_in_top_third'] else 'no'}"
            )
        lines.append(f"| {r['task']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default=",".join(DEFAULT_TASKS), help="comma-separated names")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cache", default=None, help="folder of runs.jsonl (resumes)")
    ap.add_argument("--quick", action="store_true", help="one tiny task, 4 configs, 1 seed")
    args = ap.parse_args()
    os.chdir(ROOT)  # zoo task references are relative to the repository
    folder = cache_dir(args.cache, "ranking-")
    path = Path(folder) / "runs.jsonl"
    if args.quick:
        specs = [TaskSpec(QUICK_TASK[0], QUICK_TASK[0], {}, QUICK_TASK[1], "sgd")]
        seeds = [0]
    else:
        specs = [task_spec(n) for n in args.tasks.split(",") if n]
        seeds = list(range(args.seeds))
    results = []
    for spec in specs:
        r = measure(spec, seeds, args.workers, path, quick=args.quick)
        print(f"{spec.name}: {r['wall']:.0f} s", file=sys.stderr, flush=True)
        results.append(r)
    print(header("Short 1cycle runs or partial curves: which ranks configurations better"))
    print(
        f"- per task: batch {{task's, half}} x max LR {{4 values log-spaced over "
        f"{LR_SPAN:g}x around 0.1 (SGD) / 3e-3 (AdamW)}} x weight decay "
        f"{{{', '.join(f'{w:g}' for w in WEIGHT_DECAYS)}}}, momentum 0.95-0.85, 1cycle; seeds "
        f"{seeds}; validation split"
        + (
            " (--quick: the task's batch, 2 LRs, 1 seed: the numbers mean nothing)"
            if args.quick
            else ""
        )
        + "\n- the reference: each configuration's full-length final metric, mean over the "
        "seeds; a diverged run, or one with no finite metric where it is read, scores 0\n"
        "- short 1cycle 1/k: a whole 1cycle of epochs/k (what the race's rungs run); partial "
        "curve ~1/k: the full run's validation metric after the whole epoch nearest epochs/k "
        "(what a pruner reads); noise: the median over configurations of the standard "
        "deviation over seeds of a full-length run's final metric\n"
        "- max LRs: "
        + "; ".join(f"{r['task']} {', '.join(f'{x:g}' for x in r['lrs'])}" for r in results)
        + "\n"
    )
    print(table(results))


if __name__ == "__main__":
    main()
