"""Torch threads for trials in this process (issue 34, item 8): the default rule
(`disciplined.trials.executor_base.thread_choice`: the cores free after the load average, no
more than the model's size pays for) against one thread and against every core, as the
machine was found and beside busy processes (one pure-Python busy loop per core by default).

Each cell is the wall seconds of one 1cycle training run of the task (`train_task`, the
task's batch size, evaluation each epoch), the median of ``--repeats``, the three thread
counts in alternating order. The default is read when its row runs, as a command reads it:
beside the busy processes, after ``--settle`` seconds, so that the 1-minute load average has
seen them (a tune started at the same moment as the load would not see it yet).

    python benchmarks/threads.py [--quick] [--task NAME] [--epochs E] [--repeats N]
        [--busy N] [--settle S]

``--quick`` runs digits-mlp for half an epoch, one repeat, beside one busy process with no
settling: it shows the table works, its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from disciplined import HParams, load_task
from disciplined.trials.executor_base import machine_cpus, thread_choice, torch_threads
from disciplined.trials.hparams import train_task

try:
    from _common import header, median
except ImportError:  # pragma: no cover
    from benchmarks._common import header, median

BUSY_LOOP = "while True:\n    pass\n"


def run_seconds(task, threads: int, epochs: float, seed: int) -> float:
    """Wall seconds of one training run of ``task`` with ``threads`` torch threads."""
    hp = HParams(batch_size=task.default_batch_size, max_lr=0.05)
    with torch_threads(threads):
        t0 = time.perf_counter()
        train_task(task, hp, epochs=epochs, seed=seed)
        return time.perf_counter() - t0


Rows = dict[str, tuple[int, float]]


def measure(task, epochs: float, repeats: int) -> tuple[str, Rows]:
    """Why the default chose its count; and for the default, one thread and every core, the
    thread count and the median seconds. A short untimed run first: the first run of a
    process pays for torch's warm-up."""
    run_seconds(task, 1, min(epochs, 0.2), seed=0)
    choice = thread_choice(None, task)
    counts = {"default": choice.threads, "1 thread": 1, "every core": machine_cpus()}
    seconds: dict[str, list[float]] = {k: [] for k in counts}
    for r in range(repeats):
        order = list(counts) if r % 2 == 0 else list(counts)[::-1]
        for key in order:
            seconds[key].append(run_seconds(task, counts[key], epochs, seed=r))
    return choice.reason, {k: (counts[k], median(v)) for k, v in seconds.items()}


def beside_busy(busy: int, settle: float, task, epochs: float, repeats: int) -> tuple[str, Rows]:
    """`measure` while ``busy`` busy-loop processes run, after ``settle`` seconds."""
    procs = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(busy)]
    try:
        time.sleep(settle)
        return measure(task, epochs, repeats)
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def main() -> None:
    """Run the comparison and print a markdown table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--task", default=None, help="default mnist1d-cnn (--quick: digits-mlp)")
    ap.add_argument("--epochs", type=float, default=None, help="default 40 (--quick: 0.5)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--busy", type=int, default=None, help="default: one per core (--quick: 1)")
    ap.add_argument("--settle", type=float, default=None, help="default 60 (--quick: 0)")
    args = ap.parse_args()
    name = args.task or ("digits-mlp" if args.quick else "mnist1d-cnn")
    epochs = args.epochs or (0.5 if args.quick else 40.0)
    repeats = 1 if args.quick else args.repeats
    busy = args.busy if args.busy is not None else (1 if args.quick else machine_cpus())
    settle = args.settle if args.settle is not None else (0.0 if args.quick else 60.0)
    task = load_task(name)
    print(header("Torch threads for trials in this process: the default, one, every core"))
    found_reason, found = measure(task, epochs, repeats)
    loaded_reason, loaded = beside_busy(busy, settle, task, epochs, repeats)
    print(
        f"- {name}, one 1cycle run of {epochs:g} epoch(s) at batch {task.default_batch_size}; "
        f"{repeats} repeat(s), medians; {machine_cpus()} cores; busy: {busy} pure-Python "
        f"busy loop(s), {settle:g} s to settle\n"
        f"- default as found: {found_reason}\n"
        f"- default beside the busy processes: {loaded_reason}\n"
    )
    print("| machine | threads | count | wall s | ratio to the default |")
    print("|---|---|---|---|---|")
    for label, rows in (("as found", found), (f"beside {busy} busy", loaded)):
        base = rows["default"][1]
        for key, (count, secs) in rows.items():
            print(f"| {label} | {key} | {count} | {secs:.2f} | {secs / base:.2f} |")


if __name__ == "__main__":
    main()
