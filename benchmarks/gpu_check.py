"""The CUDA and mixed-precision path end to end: `disciplined tune --device cuda --amp bf16` on
the MNIST-1D CNN, every trial checked to have run on the card, and its wall seconds against the
same tune on the CPU.

Both tunes run as the command line a user types, each in a fresh output folder (no trial is
read back from a store), one after the other; the table gives each one's wall seconds, its
trial count, the devices its trials record, the validation metric of its final run, and the
CPU-to-GPU speed ratio. On a machine without a CUDA device it prints why it was skipped and
exits 0 (the table needs the card).

    python benchmarks/gpu_check.py [--quick] [--epochs 10] [--amp bf16]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

try:  # run as a script or as a module
    from _common import header
except ImportError:  # pragma: no cover
    from benchmarks._common import header

from disciplined.trials.store import SQLiteStore

TASK = "mnist1d-cnn"


def tune_once(device: str, amp: str | None, epochs: float, out: Path) -> dict:
    """Run ``disciplined tune`` on `TASK` with ``device`` (and ``amp``) into ``out``; its wall
    seconds, exit status, the devices its trials record, their number and the final metric."""
    cmd = [
        sys.executable,
        "-m",
        "disciplined",
        "tune",
        "--task",
        TASK,
        "--out",
        str(out),
        "--epochs",
        f"{epochs:g}",
        "--device",
        device,
    ]
    if amp:
        cmd += ["--amp", amp]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    row = {"device": device, "amp": amp or "-", "seconds": seconds, "code": proc.returncode}
    if proc.returncode != 0:
        row["error"] = (proc.stderr.strip().splitlines() or ["(no message)"])[-1]
        return row
    with SQLiteStore(out / "trials.sqlite") as store:
        results = store.results()
    row["trials"] = len(results)
    row["devices"] = sorted({str(r.device) for r in results})
    row["metric"] = json.loads((out / "hparams.json").read_text())["final"]["val_metric"]
    return row


def main() -> int:
    """Print the markdown table (or the reason it was skipped); exit 1 when a trial of the
    CUDA tune ran elsewhere or either tune failed."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="3-epoch tunes, to check the script")
    p.add_argument("--epochs", type=float, default=10.0)
    p.add_argument("--amp", default="bf16", choices=("bf16", "fp16"))
    args = p.parse_args()
    epochs = 3.0 if args.quick else args.epochs
    title = f"GPU check: tune --device cuda --amp {args.amp} on {TASK}, {epochs:g} epochs"
    if not torch.cuda.is_available():
        # the sentence first (the page reads a section that starts with it as skipped),
        # then the header, so the page names the commit and machine that skipped it
        print(
            f"Skipped on this machine: no CUDA device (torch {torch.__version__}, "
            f"torch.cuda.is_available() is False); {title} needs one.\n"
        )
        print(header(title))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        gpu = tune_once("cuda", args.amp, epochs, Path(tmp) / "gpu")
        cpu = tune_once("cpu", None, epochs, Path(tmp) / "cpu")
    print(header(title))
    print(f"- card: {torch.cuda.get_device_name(0)}\n")
    print("| run | wall s | trials | trial devices | final val metric | exit |")
    print("|---|---:|---:|---|---:|---:|")
    for r in (gpu, cpu):
        name = r["device"] + (f" --amp {r['amp']}" if r["amp"] != "-" else "")
        if "metric" in r:
            cells = [f"{r['trials']}", ", ".join(r["devices"]), f"{r['metric']:.4f}", "0"]
        else:
            cells = ["-", "-", "-", f"{r['code']}: {r.get('error', '')}"]
        print(f"| {name} | {r['seconds']:.1f} | " + " | ".join(cells) + " |")
    ok = gpu["code"] == 0 and cpu["code"] == 0
    on_card = ok and all(d.startswith("cuda") for d in gpu["devices"])
    verdict = "met" if on_card else "MISSED"
    print()
    print("| target | measured | verdict |")
    print("|---|---|---|")
    print(
        f"| every trial of the CUDA tune ran on the card | "
        f"{', '.join(gpu.get('devices', [])) or 'tune failed'} | {verdict} |"
    )
    if ok:
        print(
            f"\nSpeed: the CPU tune took {cpu['seconds'] / gpu['seconds']:.2f}x the GPU tune's "
            "wall seconds."
        )
    return 0 if on_card else 1


if __name__ == "__main__":
    sys.exit(main())
