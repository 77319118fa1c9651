"""Scaling out a 4-value weight-decay sweep (mnist1d-cnn): in this process, on a persistent
pool of 2 worker processes, and on a local Ray of 2 CPUs, at several trial lengths; wall-clock
ratios to in-process, and the trial length from which each pays.

Each parallel executor is timed two ways: *started for the sweep* (the pool, or the local Ray,
started inside the timing: what one `disciplined sweep` pays) and *kept* (a sweep on a pool or
Ray that already ran one, so its workers hold torch and the task: what every study of a
`tune` after its first pays). The task is built in this process before the timings, as the
command line does before any trial, and one untimed sweep runs in it (torch's first calls),
so a started pool or Ray pays its workers' torch import and task build, and in-process pays
neither. Every sweep starts from an empty in-memory
store, so all four trials run; one torch thread per trial. Medians of ``--repeats``, the
order of the executors alternating between repeats. The break-even length is where a
straight line through an executor's (steps, seconds) medians crosses in-process's line.

    python benchmarks/scale.py [--quick] [--repeats 3] [--steps 50,200,800] [--task NAME]
        [--no-ray]

``--quick`` (digits-mlp, 40 steps, one repeat) leaves the Ray rows out, as ``--no-ray``
does: starting a local Ray three times costs about a minute, and the quick mode only shows the
table works (Ray's executor has tests of its own).
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from disciplined import HParams, load_task
from disciplined.studies import StudyContext, weight_decay_sweep
from disciplined.trials.executors import InProcessExecutor, ProcessExecutor
from disciplined.trials.store import MemoryStore

try:
    from _common import header, median
except ImportError:  # pragma: no cover
    from benchmarks._common import header, median

VALUES = (1e-2, 1e-3, 1e-4, 0.0)
ROWS = {
    "in-process": "in-process",
    "pool-cold": "--workers 2, pool started for the sweep",
    "pool-kept": "--workers 2, pool kept from a sweep before",
    "ray-cold": "--executor ray, local Ray started for the sweep",
    "ray-kept": "--executor ray, Ray kept from a sweep before",
}


TASK = {"name": "mnist1d-cnn"}


def sweep_seconds(executor, steps: int, seed: int = 0) -> float:
    """Wall seconds of one sweep through ``executor`` (started inside the timing if it is
    not yet)."""
    hp = HParams(batch_size=128, max_momentum=0.9, min_momentum=0.9)
    ctx = StudyContext(task=TASK["name"], store=MemoryStore(), executor=executor)
    t0 = time.perf_counter()
    executor.start()
    # the runs are what is timed, not the sweep's answer: at 50 steps no range test has the
    # 3 validation points a reading needs, and the sweep then keeps its fallback
    weight_decay_sweep(ctx, hp, values=VALUES, num_steps=steps, seed=seed, fallback=0.0)
    return time.perf_counter() - t0


def ray_executor():
    """A `RayExecutor` for a local Ray of 2 CPUs, 1 CPU per trial, its workers' output kept
    off this table; ``None`` without Ray."""
    try:
        from disciplined.trials.ray_executor import RayExecutor

        return RayExecutor(num_cpus=2, trial_cpus=1, init_options={"log_to_driver": False})
    except Exception:  # Ray not installed: its rows are left out
        return None


def one_repeat(lengths: list[int], times: dict, reverse: bool, ray: bool = True) -> None:
    """Time every executor at every length once, appending to ``times[(row, steps)]``; Ray's
    rows only with ``ray``."""
    blocks = ["in-process", "pool", "ray"] if ray else ["in-process", "pool"]
    for block in blocks[::-1] if reverse else blocks:
        if block == "in-process":
            for steps in lengths:
                times["in-process", steps].append(sweep_seconds(InProcessExecutor(1), steps))
            continue
        make = (lambda: ProcessExecutor(2, threads=1)) if block == "pool" else ray_executor
        if make() is None:
            continue
        for steps in lengths:  # started for each sweep, closed after it
            with make() as ex:
                times[f"{block}-cold", steps].append(sweep_seconds(ex, steps))
        with make() as ex:  # kept: one warm-up sweep, then every length on the same workers
            sweep_seconds(ex, lengths[0], seed=1)
            for steps in lengths:
                times[f"{block}-kept", steps].append(sweep_seconds(ex, steps))


def break_even(xs: list[int], mine: list[float], base: list[float]) -> str:
    """Steps per trial where ``mine`` (seconds at ``xs``) meets ``base``, from a least-squares
    line through each; a text for the table."""
    if len(xs) < 2:
        return "-"

    def line(ys: list[float]) -> tuple[float, float]:
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
            (x - mx) ** 2 for x in xs
        )
        return my - slope * mx, slope

    (a, b), (a0, b0) = line(mine), line(base)
    if a <= a0 and b <= b0:
        return "always"
    if b >= b0:
        return "never (no faster per step)"
    return f"~{max(0.0, (a - a0) / (b0 - b)):.0f}"


def table(lengths: list[int], times: dict) -> list[str]:
    """The markdown rows: seconds and ratio at each length, the shortest measured length from
    which it is faster than in-process at every longer one, and the fitted break-even."""
    base = [median(times["in-process", s]) for s in lengths]
    cols = " | ".join(f"{s} steps: s (ratio)" for s in lengths)
    lines = [
        f"| executor | {cols} | pays from (measured) | break-even steps (fit) |",
        "|---|" + "---|" * (len(lengths) + 2),
    ]
    for key, label in ROWS.items():
        if not times.get((key, lengths[0])):
            continue
        secs = [median(times[key, s]) for s in lengths]
        cells = " | ".join(f"{t:.2f} ({t / b:.2f})" for t, b in zip(secs, base, strict=True))
        faster = [t < b for t, b in zip(secs, base, strict=True)]
        pays = next((f"{s} steps" for i, s in enumerate(lengths) if all(faster[i:])), None)
        fit = "-" if key == "in-process" else break_even(lengths, secs, base)
        first = "-" if key == "in-process" else pays or f"not within {lengths[-1]}"
        lines.append(f"| {label} | {cells} | {first} | {fit} |")
    return lines


def main() -> None:
    """Run the comparison and print a markdown table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", default="50,200,800", help="comma-separated trial lengths")
    ap.add_argument("--task", default=None, help="default mnist1d-cnn (--quick: digits-mlp)")
    ap.add_argument("--no-ray", action="store_true", help="leave Ray's rows out (--quick does)")
    args = ap.parse_args()
    ray = not (args.no_ray or args.quick)
    TASK["name"] = args.task or ("digits-mlp" if args.quick else "mnist1d-cnn")
    load_task(TASK["name"])  # as the command line does before any trial: built once here
    lengths = [40] if args.quick else sorted(int(s) for s in args.steps.split(","))
    repeats = 1 if args.quick else args.repeats
    torch.set_num_threads(1)
    sweep_seconds(InProcessExecutor(1), lengths[0], seed=1)  # and torch's first-call costs
    times: dict = {(k, s): [] for k in ROWS for s in lengths}
    load = [os.getloadavg()[0]]
    for r in range(repeats):
        one_repeat(lengths, times, reverse=r % 2 == 1, ray=ray)
        load.append(os.getloadavg()[0])
    print(header("Scale-out: a weight-decay sweep in-process, on a process pool, on Ray"))
    have_ray = bool(times["ray-cold", lengths[0]])
    print(
        f"- {TASK['name']}, 4 values ({', '.join(f'{v:g}' for v in VALUES)}), validation-mode "
        f"range tests at batch 128 of {', '.join(map(str, lengths))} steps; {repeats} "
        f"repeats, medians; {os.cpu_count()} cores, 2 workers (pool) or 2 CPUs (Ray), 1 torch "
        "thread per trial; ratio = seconds / in-process seconds at that length"
        + (
            ""
            if have_ray
            else "; Ray's rows left out (--quick or --no-ray)"
            if not ray
            else "; **Ray is not installed: its rows are left out**"
        )
    )
    print(
        f"- load average (1 min) at the start and after each repeat: "
        f"{', '.join(f'{x:.1f}' for x in load)} — above {os.cpu_count()}, other jobs "
        "held the cores and no executor can run trials side by side\n"
    )
    print("\n".join(table(lengths, times)))


if __name__ == "__main__":
    main()
