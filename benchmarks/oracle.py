"""The oracle for each zoo task: an exhaustive 1cycle grid, run once, cached, read back.

For every task of `benchmarks/zoo/tasks.py` the grid is batch size (the task's and half of
it) x max LR (the task's `ZooEntry.lrs`: six values three-fold apart) x weight decay
(`ZooEntry.weight_decays`) x momentum (0.95 down to 0.85, and 0.9 down to 0.8), each point
trained with 1cycle for the epochs the task states, on seeds 0, 1 and 2: 72 points, 216 runs
a task. The reference a decision is judged against is the grid's best mean over the seeds
and its standard deviation; the "default" configuration (`ZooEntry.default`) is read off
the same grid.

The runs go through the trial machinery (`TrialSpec`, a SQLite store per task under
``--cache``, the worker-process executor), so an interrupted oracle resumes. The summary
(one row per point and seed: metric, epochs, seconds, diverged) is written to
``benchmarks/zoo/oracle.json``, which is committed: `make bench` and the tests read it back
instead of rerunning 2,400 trainings. Rerun a task's grid with ``--tasks NAME --refresh``.

The grid is read on the validation split, like every decision. So that the oracle is judged
like the recipe, its choice (the best point by validation mean) and the default
configuration are also retrained from the fresh seeds `FRESH` and scored on the sealed test
split (`test_scores`, stored under the task's ``"test"`` key; a few runs a task, not the
grid: ``--refresh-test`` reruns them alone).

``--zoo heldout`` runs the same grids on the held-out zoo (`benchmarks/zoo/heldout.py`,
tasks no rule was shaped on) into its own file, ``benchmarks/zoo/heldout_oracle.json``.

    python benchmarks/oracle.py [--zoo dev|heldout] [--tasks a,b] [--workers 2] [--cache DIR]
        [--refresh] [--refresh-test] [--quick]
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

from zoo.heldout import HELDOUT  # noqa: E402
from zoo.tasks import ZOO, ZooEntry  # noqa: E402

ORACLE_JSON = ROOT / "benchmarks" / "zoo" / "oracle.json"
HELDOUT_JSON = ROOT / "benchmarks" / "zoo" / "heldout_oracle.json"
ZOOS: dict[str, tuple[dict[str, ZooEntry], Path]] = {
    "dev": (ZOO, ORACLE_JSON),
    "heldout": (HELDOUT, HELDOUT_JSON),
}
"""Each zoo ``--zoo`` names: its tasks and the file its oracles are written to."""
SEEDS = (0, 1, 2)
FRESH = (100, 101, 102)
"""The seeds the oracle's choice and the default are retrained from for the test split (the
recipe's choices in `decision_quality.py` are retrained from the same ones)."""
MOMENTA = ((0.95, 0.85), (0.9, 0.8))


def batch_sizes(task_batch: int) -> tuple[int, ...]:
    """The oracle's batch sizes: half the task's and the task's own."""
    return (max(1, task_batch // 2), task_batch)


def grid(entry: ZooEntry, task_batch: int) -> list[dict[str, Any]]:
    """Every point of the task's grid as a hyper-parameter dictionary."""
    return [
        {
            "batch_size": b,
            "max_lr": lr,
            "weight_decay": wd,
            "max_momentum": m,
            "min_momentum": m_low,
            "optimizer": entry.optimizer,
        }
        for b in batch_sizes(task_batch)
        for lr in entry.lrs
        for wd in entry.weight_decays
        for m, m_low in MOMENTA
    ]


def _entry(name: str) -> ZooEntry:
    """The entry called ``name`` in the development or the held-out zoo (no name is in both)."""
    return ZOO[name] if name in ZOO else HELDOUT[name]


def run_grid(name: str, workers: int, cache: Path) -> dict[str, Any]:
    """Run (or read back from the cache's store) one task's grid; its JSON summary."""
    from disciplined.tasks import load_task
    from disciplined.trials.executors import make_executor
    from disciplined.trials.hparams import HParams
    from disciplined.trials.spec import TrialSpec
    from disciplined.trials.store import SQLiteStore

    entry = _entry(name)
    task = load_task(entry.ref)
    points = grid(entry, task.default_batch_size)
    specs = [
        TrialSpec(
            task=entry.ref,
            hparams=HParams(**p).to_dict(),
            kind="train",
            budget={"epochs": entry.epochs},
            seed=s,
            tag="oracle",
        )
        for p in points
        for s in SEEDS
    ]
    cache.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with SQLiteStore(cache / f"oracle-{name}.sqlite") as store:
        results = make_executor(workers, threads=1).run(specs, store)
    rows = []
    for spec, r in zip(specs, results, strict=True):
        final = r.history.final if r.history is not None else None
        hp = spec.hparams
        rows.append(
            {
                "batch_size": hp["batch_size"],
                "max_lr": hp["max_lr"],
                "weight_decay": hp["weight_decay"],
                "max_momentum": hp["max_momentum"],
                "seed": spec.seed,
                "metric": _num(final.val_metric if final else math.nan),
                "val_loss": _num(final.val_loss if final else math.nan),
                "epochs": r.epochs,
                "seconds": round(r.seconds, 3),
                "diverged": r.status != "ok" or (r.history is not None and r.history.diverged),
            }
        )
    print(f"{name}: {len(rows)} runs in {time.perf_counter() - started:.0f} s", flush=True)
    return {
        "task": name,
        "ref": entry.ref,
        "epochs": entry.epochs,
        "optimizer": entry.optimizer,
        "metric": task.metric_name,
        "num_train": task.num_train,
        "num_val": task.num_val,
        "task_batch": task.default_batch_size,
        "seeds": list(SEEDS),
        "default": {**entry.default, "batch_size": task.default_batch_size},
        "rows": rows,
    }


def _point_hparams(summary: dict[str, Any], key: tuple) -> dict[str, Any]:
    """The grid point ``key`` (batch, max LR, wd, max momentum) as an `HParams` dict."""
    from disciplined.trials.hparams import HParams

    entry = _entry(summary["task"])
    for p in grid(entry, summary["task_batch"]):
        if _key(p) == tuple(key):
            return HParams(**p).to_dict()
    raise KeyError(f"{key} is not a point of {summary['task']}'s grid")


def test_scores(summary: dict[str, Any], workers: int) -> dict[str, Any]:
    """The oracle's choice (best validation mean) and the default configuration, each
    retrained from every seed of `FRESH` and scored on the task's test split (a run that
    diverged scores 0); run with the test split unsealed, after every decision."""
    from _common import pool_map
    from fair import run_on

    ref = reference(summary)
    d = summary["default"]
    points = {
        "best": ref.best_point,
        "default": (d["batch_size"], d["max_lr"], d["weight_decay"], d["max_momentum"]),
    }
    jobs = [
        (summary["ref"], "test", _point_hparams(summary, key), summary["epochs"], s)
        for key in points.values()
        for s in FRESH
    ]
    started = time.perf_counter()
    got = [m for m, _ in pool_map(run_on, jobs, workers)]
    scores = [0.0 if not math.isfinite(m) else max(m, 0.0) for m in got]
    n = len(FRESH)
    return {
        "seeds": list(FRESH),
        "best_point": list(ref.best_point),
        "best": scores[:n],
        "default": scores[n:],
        "seconds": round(time.perf_counter() - started, 1),
    }


def _num(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


@dataclass(frozen=True)
class Reference:
    """What a task's grid says: the best point by mean metric over the seeds, its mean and
    standard deviation, the default configuration's mean, the grid's compute, and every
    point's mean (``by_point``)."""

    task: str
    best_point: tuple
    best_mean: float
    best_std: float
    default_mean: float
    default_std: float
    epochs: float
    seconds: float
    by_point: dict[tuple, list[float]]

    def near_best(self, points: float) -> list[tuple]:
        """The points whose mean is within ``points`` (in metric units x 100) of the best."""
        return [
            p
            for p, ms in self.by_point.items()
            if 100 * (self.best_mean - statistics.fmean(ms)) <= points
        ]


def _key(row: dict[str, Any]) -> tuple:
    return (row["batch_size"], row["max_lr"], row["weight_decay"], row["max_momentum"])


GOAL_MIN_POINTS = 0.5
"""A choice is within goal when its regret is at most max(this, the oracle choice's test std)
points."""
FLOAT32_POINTS = 1e-4
"""Points of regret below which a regret counts as equal to its allowance: metrics come
back as float32 (0.986 is stored as 0.98600000143), so resnet1d's regret of exactly half a
point (three seeds' test accuracies, in steps of 0.1 on 1000 samples) computed as
0.5000015. Far below any metric's resolution here (0.1 points at 1000 test samples)."""


def regret_goal(best: list[float], mean: float) -> tuple[float, float, bool]:
    """A choice scoring ``mean`` on the test split against the oracle choice's test scores
    ``best``: the regret in points (100 x (mean of ``best`` - ``mean``)), the allowance
    (max(`GOAL_MIN_POINTS`, 100 x the std of ``best``)) and whether the regret is within it
    (`FLOAT32_POINTS` of slack)."""
    best_std = statistics.stdev(best) if len(best) > 1 else 0.0
    regret = 100 * (statistics.fmean(best) - mean)
    allowed = max(GOAL_MIN_POINTS, 100 * best_std)
    return regret, allowed, regret <= allowed + FLOAT32_POINTS


def reference(summary: dict[str, Any]) -> Reference:
    """The oracle's reference for one task's summary (`run_grid`). A point with a run that
    diverged or has no metric scores that run as the metric's worst (0 for accuracy and for
    R^2 below 0), so a grid point that is unstable on one seed cannot be the best."""
    by_point: dict[tuple, list[float]] = {}
    for row in summary["rows"]:
        m = row["metric"]
        m = 0.0 if m is None or row["diverged"] else max(float(m), 0.0)
        by_point.setdefault(_key(row), []).append(m)
    best = max(by_point, key=lambda p: statistics.fmean(by_point[p]))
    d = summary["default"]
    dkey = (d["batch_size"], d["max_lr"], d["weight_decay"], d["max_momentum"])
    dm = by_point[dkey]
    n_seeds = len(summary["seeds"])
    return Reference(
        task=summary["task"],
        best_point=best,
        best_mean=statistics.fmean(by_point[best]),
        best_std=statistics.stdev(by_point[best]) if n_seeds > 1 else 0.0,
        default_mean=statistics.fmean(dm),
        default_std=statistics.stdev(dm) if n_seeds > 1 else 0.0,
        epochs=sum(r["epochs"] for r in summary["rows"]) / n_seeds,
        seconds=sum(r["seconds"] for r in summary["rows"]) / n_seeds,
        by_point=by_point,
    )


def _dump(data: dict[str, Any]) -> str:
    """Compact JSON with one grid row a line, so a rerun's diff shows the rows that moved."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return text.replace('{"batch_size"', '\n{"batch_size"')


def load(path: Path = ORACLE_JSON) -> dict[str, dict[str, Any]]:
    """Every cached task summary, by task name ({} when the file does not exist)."""
    if not path.exists():
        return {}
    return json.loads(path.read_text())


def main() -> None:
    """Run the grids that are missing (or ``--refresh``-ed) and update the zoo's file
    (``oracle.json``, or ``heldout_oracle.json`` with ``--zoo heldout``)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--zoo", choices=tuple(ZOOS), default="dev", help="the development or held-out zoo"
    )
    ap.add_argument("--tasks", default=None, help="comma-separated names (default: the zoo's)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cache", default=str(ROOT / "benchmarks" / "zoo" / "cache"))
    ap.add_argument("--refresh", action="store_true", help="rerun the named tasks' grids")
    ap.add_argument(
        "--refresh-test", action="store_true", help="rescore the named tasks' choices on test"
    )
    ap.add_argument(
        "--quick", action="store_true", help="print the cached grids and test scores; run none"
    )
    args = ap.parse_args()
    os.chdir(ROOT)  # task references are relative to the repository
    zoo, path = ZOOS[args.zoo]
    names = [n for n in (args.tasks or ",".join(zoo)).split(",") if n]
    unknown = [n for n in names if n not in zoo]
    if unknown:
        raise SystemExit(f"unknown zoo task(s) {unknown}: one of {', '.join(zoo)}")
    data = load(path)
    from fair import sealed

    for name in names:
        if args.quick or (name in data and not args.refresh):
            continue
        with sealed():  # the grid reads the validation split only
            data[name] = run_grid(name, args.workers, Path(args.cache))
        path.write_text(_dump(data))
    for name in names:  # the choices on the test split: after every grid, a few runs a task
        stale = name in data and data[name].get("test", {}).get("best_point") != list(
            reference(data[name]).best_point
        )
        if name in data and not args.quick and (stale or args.refresh_test):
            data[name]["test"] = test_scores(data[name], args.workers)
            path.write_text(_dump(data))
    from _common import header

    title = "The zoo's oracles" if args.zoo == "dev" else "The held-out zoo's oracles"
    print(header(f"{title}: exhaustive 1cycle grids (batch x max LR x wd x momentum)", args.cache))
    print(
        "- grid per task: batch {half the task's, the task's} x the task's max LRs x its "
        "weight decays x momentum {0.95-0.85, 0.9-0.8}, 1cycle for the task's epochs, seeds "
        f"{list(SEEDS)}, scored on the validation split; read back from "
        f"`{path.relative_to(ROOT)}` (rerun a task with `--tasks NAME --refresh`); a diverged "
        "run scores 0\n"
        f"- test: the grid's choice (best validation mean) and the default retrained from "
        f"fresh seeds {list(FRESH)} and scored on the test split; only these runs are redone "
        "when the choice changes (`--refresh-test` forces them), not the grid: the date of "
        f"each is in the git history of `{path.name}`\n"
    )
    print(
        "| task | metric | epochs | optimizer | best val mean ± std | best (batch, max LR, "
        "wd, momentum) | its test mean ± std | default val / test | points within 1 | "
        "grid epochs / s per seed |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in names:
        if name not in data:
            print(f"| {name} | not run yet | | | | | | | |")
            continue
        ref = reference(data[name])
        b, lr, wd, m = ref.best_point
        test = data[name].get("test")
        best_test = _points(test["best"]) if test else "not run"
        default_test = _points(test["default"]) if test else "not run"
        print(
            f"| {name} | {data[name]['metric']} | {data[name]['epochs']:g} | "
            f"{data[name]['optimizer']} | {100 * ref.best_mean:.2f} ± {100 * ref.best_std:.2f} "
            f"| {b}, {lr:g}, {wd:g}, {m:g} | {best_test} | {100 * ref.default_mean:.2f} / "
            f"{default_test} | {len(ref.near_best(1.0))} of {len(ref.by_point)} | "
            f"{ref.epochs:.0f} / {ref.seconds:.0f} |"
        )


def _points(xs: list[float]) -> str:
    """``97.22 ± 0.31``: the mean and standard deviation in points (x 100)."""
    if len(xs) == 1:
        return f"{100 * xs[0]:.2f}"
    return f"{100 * statistics.fmean(xs):.2f} ± {100 * statistics.stdev(xs):.2f}"


if __name__ == "__main__":
    main()
