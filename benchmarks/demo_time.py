"""The demo's time: what `make demo` runs (`disciplined tune --task mnist1d-cnn --out DIR`),
timed whole, as a user waits for it.

Each repeat runs the command line in a subprocess (``python -m disciplined tune``) into an
empty folder, with torch's default thread count as the demo has it (``OMP_NUM_THREADS`` is
removed from the child's environment). The table gives each repeat's wall seconds (start-up,
import, trials, report), the trials' seconds and epochs as ``tune.json`` counts them, the
final runs those epochs make (epochs / the final run's epochs), the range tests' share, and
the validation metric of the final run; the median line is what the README quotes. The last
repeat's closing lines (what ``make demo`` prints) are quoted under the table. The package
install that ``make demo`` does first on a fresh machine is not timed.

``--quick`` runs the built-in digits MLP for 2 epochs, 100-step range tests, one batch size
(its numbers mean nothing: it shows the table works).

    python benchmarks/demo_time.py [--quick] [--repeats 1] [--task mnist1d-cnn]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

try:  # run as a script or as a module
    from _common import header
except ImportError:  # pragma: no cover
    from benchmarks._common import header

RANGE_STEPS = ("memory", "learning_rate", "weight_decay", "momentum", "batch_size")
"""The steps of ``tune.json``'s compute that draw the box (the rest is the race and after)."""


def run_demo(task: str, out: Path, extra: list[str]) -> dict:
    """Run the demo's command into ``out``; its wall seconds, the compute ``tune.json``
    counts (epochs and seconds in all and in the range tests), the final run's epochs and
    validation metric, and the last lines it printed."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    cmd = [sys.executable, "-m", "disciplined", "tune", "--task", task, "--out", str(out)]
    t0 = time.perf_counter()
    proc = subprocess.run([*cmd, *extra], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"the demo's command failed ({proc.returncode}): {proc.stderr[-2000:]}")
    compute = json.loads((out / "tune.json").read_text())["compute"]
    epochs = sum(c.get("epochs", 0.0) for c in compute.values())
    seconds = sum(c.get("seconds", 0.0) for c in compute.values())
    box = sum(c.get("epochs", 0.0) for k, c in compute.items() if k in RANGE_STEPS)
    chosen = json.loads((out / "hparams.json").read_text())
    final_epochs = float(chosen["epochs"])
    return {
        "wall": wall,
        "epochs": epochs,
        "seconds": seconds,
        "box": box,
        "final_epochs": final_epochs,
        "val": chosen.get("final", {}).get("val_metric"),
        "tail": proc.stdout.strip().splitlines()[-14:],
    }


def main() -> None:
    """Time the demo's command and print a markdown table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="digits-mlp, 2 epochs, tiny")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--task", default="mnist1d-cnn")
    args = ap.parse_args()
    task = "digits-mlp" if args.quick else args.task
    extra = ["--epochs", "2", "--range-steps", "100", "--compare-batch-sizes", "off"]
    extra = extra if args.quick else []
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-demo-") as tmp:
        for r in range(max(1, args.repeats)):
            rows.append(run_demo(task, Path(tmp) / f"demo-{r}", extra))
    print(header("The demo's time: `make demo`'s command, timed whole"))
    print(
        f"- `disciplined tune --task {task} --out DIR{' ' + ' '.join(extra) if extra else ''}`"
        f" in a subprocess, torch's default threads ({os.cpu_count()} cores), an empty folder "
        f"each time; {len(rows)} repeat(s); the package install is not timed; final runs = "
        "the trials' epochs / the final run's epochs\n"
    )
    print(
        "| repeat | wall s | trials s | trials epochs | final runs | of them range tests "
        "| validation metric |"
    )
    print("|---|---|---|---|---|---|---|")
    for i, row in enumerate(rows):
        runs, box = row["epochs"] / row["final_epochs"], row["box"] / row["final_epochs"]
        val = "n/a" if row["val"] is None else f"{row['val']:.4f}"
        print(
            f"| {i} | {row['wall']:.0f} | {row['seconds']:.0f} | {row['epochs']:.1f} | "
            f"{runs:.1f} | {box:.1f} | {val} |"
        )
    med = statistics.median(row["wall"] for row in rows)
    print(f"\nMedian wall time: {med:.0f} s.\n")
    print("What the last repeat printed at its end:\n")
    print("```")
    print("\n".join(rows[-1]["tail"]))
    print("```")


if __name__ == "__main__":
    main()
