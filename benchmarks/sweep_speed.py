"""A 4-value weight-decay sweep on mnist1d-cnn: in-process against 2 worker processes (a pool
started for the sweep, and one kept from a sweep before: what every study of a `tune` after
its first gets), and the sweep's cost in units of bare training epochs.

Each run starts from an empty in-memory store, so every trial is computed. The bare epoch
is timed with `fit` on the same task and batch size, no evaluation. Median of ``--repeats``.

    python benchmarks/sweep_speed.py [--quick] [--repeats 3] [--task NAME]

``--quick`` runs digits-mlp (its tasks build in a fraction of mnist1d-cnn's time in every
worker), 40 steps, one repeat: it shows the table works, its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from disciplined import HParams, fit, load_task
from disciplined.studies import StudyContext, weight_decay_sweep
from disciplined.trials.executors import InProcessExecutor, ProcessExecutor
from disciplined.trials.hparams import build_optimizer
from disciplined.trials.store import MemoryStore

try:
    from _common import header, median
except ImportError:  # pragma: no cover
    from benchmarks._common import header, median


TASK = {"name": "mnist1d-cnn"}


def sweep_seconds(executor, steps: int, seed: int = 0) -> tuple[float, float]:
    """Wall seconds of one sweep, and the epochs its trials spent."""
    hp = HParams(batch_size=128, max_momentum=0.9, min_momentum=0.9)
    ctx = StudyContext(task=TASK["name"], store=MemoryStore(), executor=executor)
    t0 = time.perf_counter()
    # the seconds are measured, not the decision: a sweep too short for any curve to fall
    # clearly (--quick) keeps a value instead of refusing
    d = weight_decay_sweep(
        ctx, hp, values=(1e-2, 1e-3, 1e-4, 0.0), num_steps=steps, seed=seed, fallback=1e-4
    )
    return time.perf_counter() - t0, d.compute["epochs"]


def warm_sweep_seconds(steps: int) -> float:
    """Seconds of a sweep on a pool that already ran one (its workers have torch and the
    task loaded): the second of two sweeps on one persistent `ProcessExecutor`."""
    with ProcessExecutor(2, threads=1) as ex:
        sweep_seconds(ex, steps, seed=1)
        return sweep_seconds(ex, steps)[0]


def bare_epoch_seconds(task) -> float:
    """Seconds of one training epoch of the task at batch 128, no evaluation."""
    torch.manual_seed(0)
    model = task.model()
    hp = HParams(batch_size=128)
    opt = build_optimizer(model, hp)
    t0 = time.perf_counter()
    h = fit(model, opt, task.train_data, loss_fn=task.loss_fn, epochs=3, batch_size=128)
    return (time.perf_counter() - t0) / h.epochs


def main() -> None:
    """Run the comparison and print a markdown table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--task", default=None, help="default mnist1d-cnn (--quick: digits-mlp)")
    args = ap.parse_args()
    TASK["name"] = args.task or ("digits-mlp" if args.quick else "mnist1d-cnn")
    repeats, steps = (1, 40) if args.quick else (args.repeats, args.steps)
    torch.set_num_threads(1)
    task = load_task(TASK["name"])
    bare = median([bare_epoch_seconds(task) for _ in range(repeats)])
    one, two, warm, epochs = [], [], [], 0.0
    for r in range(repeats):
        order = ["one", "two", "warm"]
        for key in order if r % 2 == 0 else order[::-1]:
            if key == "warm":
                warm.append(warm_sweep_seconds(steps))
                continue
            ex = InProcessExecutor(threads=1) if key == "one" else ProcessExecutor(2, threads=1)
            with ex:
                secs, epochs = sweep_seconds(ex, steps)
            (one if key == "one" else two).append(secs)
    t1, t2, t3 = median(one), median(two), median(warm)
    print(header("Weight-decay sweep: in-process against 2 worker processes"))
    print(
        f"- {TASK['name']}, 4 values (1e-2, 1e-3, 1e-4, 0), validation-mode range tests of "
        f"{steps} steps at batch 128; {repeats} repeats, medians; {os.cpu_count()} cores; "
        "1 torch thread per trial\n"
    )
    print("| executor | wall s | ratio to in-process | sweep cost in bare epochs |")
    print("|---|---|---|---|")
    cost = t1 / bare
    print(f"| in-process | {t1:.2f} | 1.000 | {cost:.1f} ({epochs:.1f} epochs of steps) |")
    print(f"| --workers 2, pool started for the sweep | {t2:.2f} | {t2 / t1:.3f} | - |")
    print(f"| --workers 2, pool kept from a sweep before | {t3:.2f} | {t3 / t1:.3f} | - |")
    print(f"\nOne bare epoch: {bare * 1000:.0f} ms.")


if __name__ == "__main__":
    main()
