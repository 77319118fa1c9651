"""Which LR suggestion rule should be the default? Judge each by the accuracy it produces.

For each built-in task and seed: one LR range test (SGD, momentum 0.9 held, no weight decay,
the task's default batch size, 300 steps from 1e-5 to 10); every rule of
`disciplined.measure.suggest` is applied to the smoothed curve, and to the median curve of the three
seeds' tests ("3-seed"). torch-lr-finder's own suggestion (steepest gradient of its
smoothed loss, its defaults) is taken from its own range test on the same model and data.
Then 1cycle (momentum 0.95-0.85, max LR = the suggestion, min = max/10) trains the task for
a fixed number of epochs from the same initial weights; the final validation metric and
whether the run diverged are recorded. The default rule is the one with the best mean metric
over tasks and seeds and no divergence.

That table is in-sample: the rules' constants (the ``smith`` rule's 5% band, the smoothing)
were fitted on these four built-in tasks. The second table (``--suite zoo``) is out of sample:
the same one-test rules and torch-lr-finder's suggestion on the task zoo
(`benchmarks/zoo/tasks.py`), none of which was used to fit them. There the range test reads
the training split with the task's optimizer, 1cycle trains for the task's epochs at each
suggestion, and the score is the final model's metric on the zoo task's held-out test split.

    python benchmarks/suggestion_quality.py [--quick] [--seeds 3] [--epochs 10]
        [--suite both|builtin|zoo] [--zoo-tasks a,b] [--workers 2]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

from disciplined import HParams, diagnose, load_task, train_task
from disciplined.measure.range_test import lr_range_test
from disciplined.measure.suggest import (
    RULES,
    divergence_cut,
    smooth,
    smooth_zero_lag,
    suggest,
    suggest_multi,
)
from disciplined.trials.hparams import build_optimizer

try:
    from _common import header, quiet
except ImportError:  # pragma: no cover
    from benchmarks._common import header, quiet


def _cut_then_smooth(xs):
    cut = divergence_cut(xs)
    return smooth_zero_lag(xs[:cut], 0.9) + [float("nan")] * (len(xs) - cut)


SMOOTHERS = {
    "zero-lag": _cut_then_smooth,  # what lr_range_test stores as `smoothed`
    "zero-lag-uncut": lambda xs: smooth_zero_lag(xs, 0.9),
    "ema": lambda xs: smooth(xs, 0.98),  # the one-way average of fastai / torch-lr-finder
}
TASKS = ("digits-mlp", "mnist1d-cnn", "mnist1d-mlp", "synthetic-regression")


def _range_test(task, seed: int, steps: int, optimizer: str = "sgd"):
    torch.manual_seed(seed)
    hp = HParams(
        max_lr=1e-5,
        max_momentum=0.9,
        min_momentum=0.9,
        batch_size=task.default_batch_size,
        optimizer=optimizer,  # type: ignore[arg-type]
    )
    model = task.model()
    opt = build_optimizer(model, hp)
    return lr_range_test(
        model,
        opt,
        task.loss_fn,
        task.train_data,
        num_steps=steps,
        batch_size=hp.batch_size,
        seed=seed,
    )


def _torch_lr_finder(task, seed: int, steps: int, optimizer: str = "sgd") -> float | None:
    try:
        from matplotlib.figure import Figure
        from torch_lr_finder import LRFinder
    except ImportError:
        return None
    torch.manual_seed(seed)
    model = task.model()
    hp = HParams(max_lr=1e-5, max_momentum=0.9, min_momentum=0.9, optimizer=optimizer)  # type: ignore[arg-type]
    opt = build_optimizer(model, hp)
    loader = DataLoader(
        TensorDataset(*task.train_data),
        batch_size=task.default_batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    finder = LRFinder(model, opt, task.loss_fn, device="cpu")
    quiet(finder.range_test, loader, end_lr=10, num_iter=steps, step_mode="exp")
    ax = Figure().subplots()
    try:
        _, lr = quiet(finder.plot, ax=ax, suggest_lr=True)
    except Exception:  # its rule fails on very short curves
        lr = None
    finder.reset()
    return lr


def _train(task, max_lr: float, seed: int, epochs: float) -> tuple[float, bool]:
    """Final metric, and whether the run diverged: NaN, an exploding loss, or a collapse
    that stays finite (`disciplined.measure.diagnose` says "diverged")."""
    hp = HParams(max_lr=max_lr, batch_size=task.default_batch_size)
    _, h = train_task(task, hp, epochs=epochs, seed=seed)
    metric = h.final.val_metric if h.final else float("nan")
    failed = h.diverged or not math.isfinite(metric) or diagnose(h).verdict == "diverged"
    return metric, failed


ZOO_RULES = tuple(RULES)
"""The one-test rules judged out of sample, each on the curve `lr_range_test` stores."""


def zoo_job(name: str, seed: int, steps: int, epochs: float | None) -> dict[str, tuple]:
    """One zoo task and seed: the range test on its training split, every rule's and
    torch-lr-finder's suggestion, and 1cycle at each scored on the test split; rule ->
    (max LR, test metric, diverged)."""
    import os
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    os.chdir(root)
    sys.path.insert(0, str(root / "benchmarks"))
    from zoo.tasks import ZOO

    torch.set_num_threads(1)
    entry = ZOO[name]
    task = load_task(entry.ref, {"split": "val"})
    test_task = load_task(entry.ref, {"split": "test"})
    t = _range_test(task, seed, steps, entry.optimizer)
    curve = (t.lrs, _cut_then_smooth(t.losses))
    picks: dict[str, float | None] = {}
    for rule in ZOO_RULES:
        try:
            picks[rule] = suggest(*curve, rule=rule).max_lr
        except Exception:  # a rule that cannot read the curve gives no suggestion
            picks[rule] = None
    with contextlib.redirect_stdout(io.StringIO()):
        picks["torch-lr-finder"] = _torch_lr_finder(task, seed, steps, entry.optimizer)
    out = {}
    for rule, lr in picks.items():
        if lr is None:
            continue
        hp = HParams(
            max_lr=lr,
            batch_size=task.default_batch_size,
            optimizer=entry.optimizer,  # type: ignore[arg-type]
        )
        _, h = train_task(test_task, hp, epochs=epochs or entry.epochs, seed=seed)
        metric = h.final.val_metric if h.final else float("nan")
        failed = h.diverged or not math.isfinite(metric) or diagnose(h).verdict == "diverged"
        out[rule] = (lr, metric, failed)
    return out


def zoo_table(
    names: list[str], seeds: list[int], steps: int, epochs: float | None, workers: int
) -> None:
    """Print the out-of-sample table: each rule on the zoo tasks, scored on test splits."""
    try:
        from _common import pool_map
    except ImportError:  # pragma: no cover
        from benchmarks._common import pool_map

    t0 = time.perf_counter()
    jobs = [(n, s, steps, epochs) for n in names for s in seeds]
    res = dict(
        zip([(n, s) for n in names for s in seeds], pool_map(zoo_job, jobs, workers), strict=True)
    )
    rules = [*ZOO_RULES, "torch-lr-finder"]
    print(
        f"\n#### Out of sample: the task zoo\n\n- tasks: {', '.join(names)} "
        f"(`benchmarks/zoo/tasks.py`, none used to fit the rules; the rules were fitted on "
        f"{', '.join(TASKS)}); seeds {seeds}; range test {steps} steps with the task's "
        f"optimizer; 1cycle for {'the task' + chr(39) + 's epochs' if epochs is None else epochs}"
        f" at each suggestion; score: metric on the test split; {workers} worker(s); "
        f"{time.perf_counter() - t0:.0f} s\n"
    )
    print("| rule | " + " | ".join(names) + " | mean | diverged |")
    print("|---|" + "---|" * (len(names) + 2))
    ranked = []
    for rule in rules:
        cells, means, n_div = [], [], 0
        for n in names:
            rows = [res[(n, s)][rule] for s in seeds if rule in res[(n, s)]]
            if len(rows) < len(seeds):
                cells.append("-")
                means.append(math.nan)
                continue
            ms = [m if math.isfinite(m) and not d else 0.0 for _, m, d in rows]
            n_div += sum(d for _, _, d in rows)
            means.append(statistics.fmean(ms))
            lrs = [lr for lr, _, _ in rows]
            cells.append(f"{statistics.fmean(ms):.4f} (LR {min(lrs):.3g}-{max(lrs):.3g})")
        mean = statistics.fmean(means) if all(map(math.isfinite, means)) else math.nan
        ranked.append((rule, mean, n_div))
        print(f"| {rule} | " + " | ".join(cells) + f" | {mean:.4f} | {n_div} |")
    ok = sorted((r for r in ranked if math.isfinite(r[1])), key=lambda r: -r[1])
    print("\nA diverged or collapsed run scores 0 in the mean.")
    if ok:
        print(
            f"Best mean test metric out of sample: **{ok[0][0]}** ({ok[0][1]:.4f}); "
            f"the default rule `smith`: {dict((r[0], r[1]) for r in ranked)['smith']:.4f}."
        )


def main() -> None:
    """Run the study and print markdown tables."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one task, one seed, 2 epochs")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=float, default=10)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--smoothers",
        default="zero-lag,ema",
        help="curves the rules read: zero-lag (ours) and/or ema (one-way, 0.98)",
    )
    ap.add_argument("--rules", default=",".join(RULES))
    ap.add_argument("--suite", default="both", choices=("both", "builtin", "zoo"))
    ap.add_argument("--zoo-tasks", default=None, help="comma-separated; default: the whole zoo")
    ap.add_argument("--workers", type=int, default=2, help="worker processes for the zoo")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.suite in ("both", "builtin"):
        builtin_table(args)
    else:
        print(header("LR suggestion rules judged by the accuracy they produce"))
    if args.suite in ("both", "zoo"):
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from zoo.tasks import ZOO

        names = (
            ["cancer-mlp"]
            if args.quick
            else (args.zoo_tasks.split(",") if args.zoo_tasks else list(ZOO))
        )
        zoo_table(
            names,
            [0] if args.quick else list(range(args.seeds)),
            100 if args.quick else args.steps,
            2 if args.quick else None,
            1 if args.quick else args.workers,
        )


def builtin_table(args: argparse.Namespace) -> None:
    """The in-sample table: every rule on the four built-in tasks the rules were fitted on."""
    tasks = TASKS[:1] if args.quick else TASKS
    seeds = range(1 if args.quick else args.seeds)
    epochs = 2 if args.quick else args.epochs
    steps = 150 if args.quick else args.steps
    t_start = time.perf_counter()
    # results[rule][task] = list of (lr, metric, diverged), one per seed
    results: dict[str, dict[str, list[tuple[float, float, bool]]]] = {}
    for name in tasks:
        task = load_task(name)
        tests = [_range_test(task, s, steps) for s in seeds]
        picks: dict[str, list[float | None]] = {}
        for smoother in args.smoothers.split(","):
            curves = [(t.lrs, SMOOTHERS[smoother](t.losses)) for t in tests]
            suffix = "" if smoother == args.smoothers.split(",")[0] else f", {smoother}"
            for rule in args.rules.split(","):
                picks[f"{rule}{suffix}"] = [suggest(*c, rule=rule).max_lr for c in curves]
                if len(tests) > 1:
                    multi = suggest_multi(curves, rule=rule)
                    picks[f"{rule} (3-seed{suffix})"] = [multi.max_lr] * len(tests)
        with contextlib.redirect_stdout(io.StringIO()):
            picks["torch-lr-finder"] = [_torch_lr_finder(task, s, steps) for s in seeds]
        for rule, lrs in picks.items():
            for s, lr in zip(seeds, lrs, strict=True):
                if lr is None:
                    continue
                metric, diverged = _train(task, lr, s, epochs)
                results.setdefault(rule, {}).setdefault(name, []).append((lr, metric, diverged))
    elapsed = time.perf_counter() - t_start

    print(header("LR suggestion rules judged by the accuracy they produce"))
    print(
        "#### In sample: the built-in tasks the rules were fitted on\n\n"
        f"- tasks: {', '.join(tasks)}; seeds {list(seeds)}; range test {steps} steps "
        f"1e-5..10; 1cycle {epochs:g} epochs at each suggestion; {elapsed:.0f} s in all\n"
    )
    print(
        "Per task: mean final validation metric (accuracy; R^2 for synthetic-regression) "
        "and the suggested max LRs over seeds. Divergences marked.\n"
    )
    print("| rule | " + " | ".join(tasks) + " | mean | diverged |")
    print("|---|" + "---|" * (len(tasks) + 2))
    summary = []
    for rule, per_task in results.items():
        cells, means, n_div = [], [], 0
        for name in tasks:
            rows = per_task.get(name, [])
            if not rows:
                cells.append("-")
                continue
            metrics = [m for _, m, _ in rows]
            lrs = [lr for lr, _, _ in rows]
            n_div += sum(d for _, _, d in rows)
            mean = statistics.fmean(metrics) if all(map(math.isfinite, metrics)) else math.nan
            means.append(mean)
            lr_txt = f"{min(lrs):.3g}" if min(lrs) == max(lrs) else f"{min(lrs):.3g}-{max(lrs):.3g}"
            cells.append(f"{mean:.4f} (LR {lr_txt})")
        overall = statistics.fmean(means) if means and all(map(math.isfinite, means)) else math.nan
        summary.append((rule, overall, n_div))
        print(f"| {rule} | " + " | ".join(cells) + f" | {overall:.4f} | {n_div} |")
    ranked = sorted((s for s in summary if s[2] == 0 and math.isfinite(s[1])), key=lambda s: -s[1])
    print()
    if ranked:
        print(f"Best mean metric with no divergence: **{ranked[0][0]}** ({ranked[0][1]:.4f}).")


if __name__ == "__main__":
    main()
