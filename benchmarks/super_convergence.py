"""Super-convergence: the recipe's 1cycle against the best constant LR and the step schedule.

For each task and seed, `disciplined.tune` (``--tune-epochs`` 20, default budget, its own
seed) chooses the hyper-parameters; 1cycle with them then trains for 5, 10, 20 and 40
epochs. The baselines keep the recipe's momentum and weight decay and change only the
schedule and its learning rate: a constant LR, and the step schedule (LR / 10 at 50% and 75%
of training), each at the best LR of a 4-value grid (0.01, 0.03, 0.1, 0.3) chosen on seed 0
at ``--grid-epochs`` 10 epochs, then trained for 80 epochs with evaluation every epoch.
Every run is a trial spec run through the library's executor (worker processes) into a
store; every number is a final validation accuracy.

Targets (issue 7): the recipe's 1cycle reaches the constant LR's 80-epoch accuracy in at most
1/4 of its epochs (the report: 10,000 iterations against 80,000); on mnist1d-cnn it reaches
>= 94% mean validation accuracy (the MNIST-1D paper's CNN figure) within 20 epochs.

    python benchmarks/super_convergence.py [--quick] [--seeds 3] [--workers 2] [--cache DIR]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from typing import Any

import torch

from disciplined.recipe.baselines import hparams_for, trial_metric
from disciplined.trials.executors import make_executor
from disciplined.trials.spec import TrialResult, TrialSpec
from disciplined.trials.store import SQLiteStore

try:  # run as a script or as a module
    from _common import cache_dir, header, pool_map, tune_job, tune_jobs
except ImportError:  # pragma: no cover
    from benchmarks._common import cache_dir, header, pool_map, tune_job, tune_jobs

TASKS = ("mnist1d-cnn", "digits-mlp", "mnist1d-mlp")
LR_GRID = (0.01, 0.03, 0.1, 0.3)


def run_tunes(jobs: list[tuple], workers: int) -> list[dict[str, Any]]:
    """`tune_job` for each argument tuple, ``workers`` at a time (in this process for 1)."""
    return pool_map(tune_job, jobs, workers)


def mean_std(xs: list[float]) -> str:
    """``0.9412 ± 0.0031`` (no ± for one value)."""
    if len(xs) == 1:
        return f"{xs[0]:.4f}"
    return f"{statistics.fmean(xs):.4f} ± {statistics.stdev(xs):.4f}"


def _spec(task: str, hp: dict, epochs: float, seed: int, tag: str) -> TrialSpec:
    return TrialSpec(task, hp, "train", {"epochs": epochs}, seed=seed, tag=tag)


def _baseline_hp(schedule: str, lr: float, chosen: dict, batch_size: int) -> dict:
    return hparams_for(
        schedule, lr, chosen["max_momentum"], chosen["weight_decay"], batch_size
    ).to_dict()


def main() -> None:
    """Run the benchmark and print markdown tables."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="digits-mlp, one seed, tiny budgets")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--workers", type=int, default=2, help="worker processes (1 thread each)")
    ap.add_argument("--cache", default=None, help="folder for stores (resume); default: temp")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.quick:
        tasks, seeds, workers = ["digits-mlp"], [0], 1
        tune_epochs, tune_budget, tune_steps = 2.0, 36.0, 100
        lengths, long, grid_epochs = (1, 2), 4, 1
    else:
        tasks, seeds, workers = args.tasks.split(","), list(range(args.seeds)), args.workers
        tune_epochs, tune_budget, tune_steps = 20.0, None, 300
        lengths, long, grid_epochs = (5, 10, 20, 40), 80, 10
    cache = cache_dir(args.cache, "bench-supconv-")
    executor = make_executor(workers, 1)
    started = time.perf_counter()

    jobs = tune_jobs(tasks, seeds, tune_epochs, tune_budget, tune_steps, cache)
    budget_txt = "default" if tune_budget is None else f"{tune_budget:g}"
    chosen = dict(zip([(j[0], j[4]) for j in jobs], run_tunes(jobs, workers), strict=True))

    rows: dict[str, dict[str, Any]] = {}
    for task in tasks:
        bs = int(chosen[(task, seeds[0])]["hparams"]["batch_size"])
        with SQLiteStore(cache / f"supconv-{task}.sqlite") as store:
            # 1. the LR grid for the baselines, on the first seed, short runs
            grid = {
                (sch, lr): _spec(
                    task,
                    _baseline_hp(sch, lr, chosen[(task, seeds[0])]["hparams"], bs),
                    grid_epochs,
                    seeds[0],
                    "lr-grid",
                )
                for sch in ("constant", "step")
                for lr in LR_GRID
            }
            grid_results = dict(zip(grid, executor.run(list(grid.values()), store), strict=True))
            best_lr = {
                sch: max(LR_GRID, key=lambda lr, sch=sch: _score(grid_results[(sch, lr)]))
                for sch in ("constant", "step")
            }
            # 2. the long runs: recipe 1cycle at each length, baselines at `long` epochs
            specs: dict[tuple[str, float, int], TrialSpec] = {}
            for s in seeds:
                hp = chosen[(task, s)]["hparams"]
                for n in lengths:
                    specs[("one-cycle", n, s)] = _spec(task, hp, n, s, "recipe")
                for sch in ("constant", "step"):
                    specs[(sch, long, s)] = _spec(
                        task, _baseline_hp(sch, best_lr[sch], hp, bs), long, s, "long"
                    )
            results = dict(zip(specs, executor.run(list(specs.values()), store), strict=True))
        rows[task] = {"best_lr": best_lr, "grid": grid_results, "results": results}
    elapsed = time.perf_counter() - started

    print(header("Super-convergence: the recipe's 1cycle against constant and step LR"))
    print(
        f"- tasks: {', '.join(tasks)}; seeds {seeds} (mean ± sample std over seeds); "
        f"{workers} worker process(es) of 1 torch thread; {elapsed:.0f} s in all\n"
        f"- recipe: `tune(task, epochs={tune_epochs:g}, budget={budget_txt}, "
        f"range_steps={tune_steps}, seed=s)` once per task and seed; its 1cycle retrained "
        f"for {', '.join(map(str, lengths))} epochs\n"
        f"- baselines: the recipe's momentum and weight decay at the batch size it chose on "
        f"seed {seeds[0]}, LR from {list(LR_GRID)} chosen "
        f"on seed {seeds[0]} at {grid_epochs} epochs, trained {long} epochs, evaluated every "
        f"epoch; step = LR / 10 at 50% and 75%\n"
    )
    summary = []
    for task in tasks:
        r = rows[task]
        res = r["results"]
        print(f"#### {task}\n")
        print("| schedule | LR | epochs | final val accuracy | best over epochs |")
        print("|---|---|---|---|---|")
        lrs = [chosen[(task, s)]["hparams"]["max_lr"] for s in seeds]
        lr_txt = f"{min(lrs):.3g}" if len(set(lrs)) == 1 else f"{min(lrs):.3g}-{max(lrs):.3g}"
        oc = {}
        for n in lengths:
            accs = [trial_metric(res[("one-cycle", n, s)]) for s in seeds]
            oc[n] = statistics.fmean(accs)
            print(f"| recipe 1cycle | max {lr_txt} | {n} | {mean_std(accs)} | - |")
        final = {}
        for sch in ("constant", "step"):
            accs = [trial_metric(res[(sch, long, s)]) for s in seeds]
            best = [_best(res[(sch, long, s)]) for s in seeds]
            final[sch] = statistics.fmean(accs)
            print(
                f"| {sch} | {r['best_lr'][sch]:g} | {long} | {mean_std(accs)} | {mean_std(best)} |"
            )
        grid_txt = ", ".join(
            f"{sch} {lr:g}: {_score(r['grid'][(sch, lr)]):.3f}"
            for sch in ("constant", "step")
            for lr in LR_GRID
        )
        print(f"\nLR grid at {grid_epochs} epochs, seed {seeds[0]}: {grid_txt}.\n")
        ref = final["constant"]
        reach = next((n for n in lengths if oc[n] >= ref), None)
        ok = reach is not None and reach <= long / 4
        summary.append((task, ref, final["step"], reach, ok, oc))
        reach_txt = (
            f"{reach} epochs ({reach / long:.3g} of {long})"
            if reach
            else (f"not within {lengths[-1]} epochs")
        )
        print(
            f"Recipe 1cycle reaches the constant LR's {long}-epoch accuracy ({ref:.4f}) at "
            f"{reach_txt}: target <= 1/4 of its epochs **{'met' if ok else 'MISSED'}**.\n"
        )
        if task == "mnist1d-cnn":
            within = [n for n in lengths if n <= 20]
            top = max(oc[n] for n in within)
            print(
                f"mnist1d-cnn within 20 epochs: best mean {top:.4f} (lengths {within}); target "
                f">= 0.94 **{'met' if top >= 0.94 else 'MISSED'}**.\n"
            )
        recipe_txt = "; ".join(
            f"seed {s}: max LR {h['max_lr']:.3g}, momentum {h['max_momentum']:g}-"
            f"{h['min_momentum']:g}, wd {h['weight_decay']:g}, batch {h['batch_size']}, "
            f"tune {chosen[(task, s)]['epochs']:.0f} epochs / {chosen[(task, s)]['seconds']:.0f} s"
            for s in seeds
            for h in [chosen[(task, s)]["hparams"]]
        )
        print(f"Recipe's choices: {recipe_txt}.\n")
    print("#### Summary\n")
    print(
        f"| task | constant @{long} | step @{long} | recipe 1cycle @{lengths[-2]} | "
        f"1cycle epochs to constant's accuracy | target |"
    )
    print("|---|---|---|---|---|---|")
    for task, ref, step, reach, ok, oc in summary:
        print(
            f"| {task} | {ref:.4f} | {step:.4f} | {oc[lengths[-2]]:.4f} | "
            f"{reach if reach else f'> {lengths[-1]}'} | {'met' if ok else 'MISSED'} |"
        )
    print()


def _score(r: TrialResult) -> float:
    m = trial_metric(r)
    return m if math.isfinite(m) else -math.inf


def _best(r: TrialResult) -> float:
    if r.history is None:
        return math.nan
    best = r.history.best()
    return best.val_metric if best else math.nan


if __name__ == "__main__":
    main()
