"""Run every benchmark and collect their markdown into one page (``make bench``).

Each benchmark runs as its own process, one after another (the timing benchmarks must not
share the CPU), with ``--quick`` when given. The recipe-against-baselines benchmarks share
one folder of trial stores (``--cache``, a fresh temporary folder by default), so the
recipe's runs that two of them need are computed once. Their markdown is written to
``--out`` under a title, a short introduction and a table of how long each took. A
benchmark that fails is named in the page and makes this command exit with status 1.

    python benchmarks/run_all.py [--quick] [--out docs/benchmarks.md] [--only a,b] [--cache DIR]
"""

from __future__ import annotations

import argparse
import atexit
import datetime as _dt
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = (
    "loop_speed",
    "range_test_overhead",
    "suggestion_quality",
    "sweep_speed",
    "scale",
    "super_convergence",
    "tuning_cost",
    "oracle",
    "decision_quality",
    "recipe_seeds",
)
SHARE_CACHE = ("super_convergence", "tuning_cost", "decision_quality", "recipe_seeds")

INTRO = """\
Every table below was produced by one command, `make bench` (`python benchmarks/run_all.py
--out docs/benchmarks.md`), on the machine its header names; each header gives the
benchmark's own command, the machine, the versions, the date and the seeds, so any number
can be rerun on its own. The baselines (grid, random, TPE and pruned-TPE search over the
recipe's own 1cycle space with batch size, constant and step learning rates with their own
grids) are measured in the same run, on the same machine, as the recipe. Compute is counted
in wall-clock seconds, evaluation included (epochs beside). The recipe-against-baselines
tables use three splits: the recipe and every search read the validation split, and every
accuracy they headline is a chosen configuration retrained from fresh seeds and scored on a
test split that is sealed (reading it raises) while they run. A target that a run misses
says **MISSED** in its table.
"""


def run(name: str, quick: bool, cache: Path) -> tuple[str, int, float, str]:
    """Run one benchmark; its markdown, exit status, seconds and the end of its stderr."""
    cmd = [sys.executable, str(HERE / f"{name}.py")]
    if quick:
        cmd.append("--quick")
    if name in SHARE_CACHE:
        cmd += ["--cache", str(cache)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE.parent)
    return proc.stdout, proc.returncode, time.perf_counter() - t0, proc.stderr[-2000:]


def assemble(results: list[tuple[str, str, int, float, str]], quick: bool) -> str:
    """The page: title, introduction, durations, then each benchmark's markdown."""
    lines = [
        "# Benchmarks",
        "",
        INTRO,
        f"Generated {_dt.date.today().isoformat()}"
        + (" in `--quick` mode (tiny budgets: the numbers mean nothing)" if quick else "")
        + f"; {sum(r[3] for r in results) / 60:.1f} minutes in all.",
        "",
        "| benchmark | status | minutes |",
        "|---|---|---|",
    ]
    for name, _, code, seconds, _ in results:
        status = "ok" if code == 0 else f"**failed** (exit {code})"
        lines.append(f"| [{name}](#{name.replace('_', '-')}) | {status} | {seconds / 60:.1f} |")
    lines.append("")
    for name, text, code, _, err in results:
        lines += [f"## {name.replace('_', '-')}", ""]
        if code != 0:
            lines += [f"**failed** with exit status {code}:", "", "```", err.strip(), "```", ""]
        lines += [text.strip(), ""]
    return "\n".join(lines)


def main() -> int:
    """Run the benchmarks, write the page; 1 when any benchmark failed."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="every benchmark's --quick mode")
    ap.add_argument("--out", default="docs/benchmarks.md")
    ap.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated names")
    ap.add_argument("--cache", default=None, help="shared trial stores; default: a temp folder")
    args = ap.parse_args()
    names = [n for n in args.only.split(",") if n]
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        ap.error(f"unknown benchmark(s) {unknown}; choose from {list(BENCHMARKS)}")
    cache = Path(args.cache or tempfile.mkdtemp(prefix="bench-cache-"))
    if args.cache is None:  # a throw-away folder: removed when this process ends
        atexit.register(shutil.rmtree, cache, True)
    results = []
    for name in names:
        print(f"{name} ...", file=sys.stderr, flush=True)
        text, code, seconds, err = run(name, args.quick, cache)
        print(f"{name}: exit {code}, {seconds:.0f} s", file=sys.stderr, flush=True)
        results.append((name, text, code, seconds, err))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(assemble(results, args.quick))
    print(f"wrote {out}", file=sys.stderr)
    return 1 if any(r[2] != 0 for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
