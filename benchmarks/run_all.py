"""Run every benchmark and collect their markdown into one page (``make bench``).

Each benchmark runs as its own process, one after another (the timing benchmarks must not
share the CPU), with ``--quick`` when given. The recipe-against-baselines benchmarks share
one folder of trial stores (``--cache``, a fresh temporary folder by default), so the
recipe's runs that two of them need are computed once. Their markdown is written to
``--out`` under a title, a short introduction and a table of how long each took. A
benchmark that fails is named in the page and makes this command exit with status 1.

``--only a,b`` runs those benchmarks and, when ``--out`` exists, keeps every other
benchmark's section (and its row of the durations table) as the page had it, so one table can
be regenerated without the others. ``--args NAME="--flags"`` passes flags to one benchmark
(e.g. a reduced scale: ``--args tuning_cost="--tasks digits-mlp --seeds 2"``); each
benchmark's header prints the command that reruns its table alone, flags included.

    python benchmarks/run_all.py [--quick] [--out docs/benchmarks.md] [--only a,b]
        [--args NAME="--flags" ...] [--cache DIR]
"""

from __future__ import annotations

import argparse
import atexit
import datetime as _dt
import re
import shlex
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


def run(name: str, quick: bool, cache: Path, extra: str = "") -> tuple[str, int, float, str]:
    """Run one benchmark (with the flags ``extra``); its markdown, exit status, seconds and
    the end of its stderr."""
    cmd = [sys.executable, str(HERE / f"{name}.py"), *shlex.split(extra)]
    if quick:
        cmd.append("--quick")
    if name in SHARE_CACHE:
        cmd += ["--cache", str(cache)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE.parent)
    return proc.stdout, proc.returncode, time.perf_counter() - t0, proc.stderr[-2000:]


def previous(page: str) -> dict[str, tuple[str, str, str, str]]:
    """What an existing page says of each benchmark: (status, minutes, date generated,
    section markdown); "-" for what its row does not say (a page before the date column, or
    a section without a row)."""
    rows = {
        m[0]: (m[1], m[2], m[3] or "-")
        for m in re.findall(
            r"^\| \[(\w+)\]\(#[\w-]+\) \| (.+?) \| ([^|]+?) \|(?: ([^|]+?) \|)?$", page, re.M
        )
    }
    parts = re.split(r"^## ([\w-]+)\n", page, flags=re.M)
    sections = {parts[i].replace("-", "_"): parts[i + 1].strip() for i in range(1, len(parts), 2)}
    return {
        name: (*rows.get(name, ("ok", "-", "-")), text)
        for name, text in sections.items()
        if name in BENCHMARKS
    }


def assemble(
    results: list[tuple[str, str, int, float, str]],
    quick: bool,
    kept: dict[str, tuple[str, str, str, str]] | None = None,
) -> str:
    """The page: title, introduction, durations, then each benchmark's markdown, in the
    order of `BENCHMARKS`; ``kept`` sections (from `previous`) stand for those not run, with
    the date and minutes of the run that made them."""
    kept = {k: v for k, v in (kept or {}).items() if k not in {r[0] for r in results}}
    ran = ", ".join(r[0] for r in results)
    today = _dt.date.today().isoformat()
    lines = [
        "# Benchmarks",
        "",
        INTRO,
        f"Generated {today}"
        + (" in `--quick` mode (tiny budgets: the numbers mean nothing)" if quick else "")
        + f"; {sum(r[3] for r in results) / 60:.1f} minutes in all"
        + (
            f" ({ran}; the other sections are kept from earlier runs: the table gives the "
            "date and minutes of the run that made each, its header its command and scale)."
            if kept
            else "."
        ),
        "",
        "| benchmark | status | minutes | generated |",
        "|---|---|---|---|",
    ]
    body: dict[str, list[str]] = {}
    rows: dict[str, str] = {}
    for name, text, code, seconds, err in results:
        status = "ok" if code == 0 else f"**failed** (exit {code})"
        rows[name] = f"| {status} | {seconds / 60:.1f} | {today} |"
        body[name] = []
        if code != 0:
            body[name] += [f"**failed** with exit status {code}:", "", "```", err.strip(), "```"]
            body[name].append("")
        body[name] += [text.strip(), ""]
    for name, (status, minutes, date, text) in kept.items():
        rows[name] = f"| {status} | {minutes} | {date} |"
        body[name] = [text, ""]
    order = [n for n in BENCHMARKS if n in body]
    lines += [f"| [{n}](#{n.replace('_', '-')}) {rows[n]}" for n in order]
    lines.append("")
    for name in order:
        lines += [f"## {name.replace('_', '-')}", "", *body[name]]
    return "\n".join(lines)


def main() -> int:
    """Run the benchmarks, write the page; 1 when any benchmark failed."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="every benchmark's --quick mode")
    ap.add_argument("--out", default="docs/benchmarks.md")
    ap.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated names")
    ap.add_argument("--cache", default=None, help="shared trial stores; default: a temp folder")
    ap.add_argument(
        "--args",
        action="append",
        default=[],
        metavar='NAME="--flags"',
        help="extra flags for one benchmark (repeatable)",
    )
    args = ap.parse_args()
    names = [n for n in args.only.split(",") if n]
    extra = dict(a.split("=", 1) for a in args.args if "=" in a)
    unknown = sorted((set(names) | set(extra)) - set(BENCHMARKS))
    if unknown or len(extra) != len(args.args):
        ap.error(f"unknown benchmark(s) {unknown}; choose from {list(BENCHMARKS)}")
    cache = Path(args.cache or tempfile.mkdtemp(prefix="bench-cache-"))
    if args.cache is None:  # a throw-away folder: removed when this process ends
        atexit.register(shutil.rmtree, cache, True)
    results = []
    for name in names:
        print(f"{name} ...", file=sys.stderr, flush=True)
        text, code, seconds, err = run(name, args.quick, cache, extra.get(name, ""))
        print(f"{name}: exit {code}, {seconds:.0f} s", file=sys.stderr, flush=True)
        results.append((name, text, code, seconds, err))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    kept = previous(out.read_text()) if out.exists() and set(names) != set(BENCHMARKS) else {}
    out.write_text(assemble(results, args.quick, kept))
    print(f"wrote {out}", file=sys.stderr)
    return 1 if any(r[2] != 0 for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
