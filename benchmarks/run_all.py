"""Run every benchmark and collect their markdown into one page (``make bench``).

Each benchmark runs as its own process, one after another (the timing benchmarks must not
share the CPU), with ``--quick`` when given. The recipe-against-baselines benchmarks share
one folder of trial stores (``--cache``, a fresh temporary folder by default), so the
recipe's runs that two of them need are computed once. Their markdown is written to
``--out`` under a title, a short introduction and a table of how long each took. A
benchmark that fails is named in the page and makes this command exit with status 1.

Each section's status is computed from its markdown (`status`): the targets its tables say
were ``met`` and ``MISSED``, or the exit status of a benchmark that failed. The durations
table gives the commit each section was measured at (its header's ``- commit:`` line), and
the introduction says whether every section is at one commit.

``--use NAME=FILE`` puts a section made by the benchmark's own command (run in the
background, or in chunks that resume from ``--cache``) on the page without running it again;
its minutes are ``-``.

Without ``--only`` (``make bench``) the benchmarks of `DEFAULT` run: the timing tables and the
short comparisons, within an hour on 2 cores. The others (`OWN_COMMAND`: the oracle grid, the
zoo's decision-quality, anytime and seed tables, the head-to-head, the ranking measurement and
the tuning-cost searches) take one to many hours; each is rerun by ``--only NAME`` (``make
bench ONLY=NAME``) or by the command its header prints, in chunks that resume, and its
section names its commit and is marked stale on the page when its code changed since.
``--all`` runs every benchmark.

``--only a,b`` runs those benchmarks and, when ``--out`` exists, keeps every other
benchmark's section (and its row of the durations table) as the page had it, so one table can
be regenerated without the others. ``--args NAME="--flags"`` passes flags to one benchmark
(e.g. a reduced scale: ``--args tuning_cost="--tasks digits-mlp --seeds 2"``); each
benchmark's header prints the command that reruns its table alone, flags included.

    python benchmarks/run_all.py [--quick] [--out docs/benchmarks.md] [--only a,b | --all]
        [--args NAME="--flags" ...] [--cache DIR]
"""

from __future__ import annotations

import argparse
import atexit
import datetime as _dt
import math
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = (
    "loop_speed",
    "range_test_overhead",
    "suggestion_quality",
    "sweep_speed",
    "threads",
    "scale",
    "super_convergence",
    "tuning_cost",
    "oracle",
    "decision_quality",
    "anytime",
    "recipe_seeds",
    "head_to_head",
    "ranking",
    "gpu_check",
    "demo_time",
)
OWN_COMMAND = (
    "tuning_cost",
    "oracle",
    "decision_quality",
    "anytime",
    "recipe_seeds",
    "head_to_head",
    "ranking",
)
"""The benchmarks of an hour or more on 2 cores, rerun by name (``--only``) or by their own
command, never by a plain ``make bench``."""
DEFAULT = tuple(n for n in BENCHMARKS if n not in OWN_COMMAND)
"""What ``make bench`` (no ``--only``) reruns: within an hour on 2 cores."""
SHARE_CACHE = (
    "super_convergence",
    "tuning_cost",
    "decision_quality",
    "anytime",
    "recipe_seeds",
    "head_to_head",
)

INTRO = """\
Every table below was produced by `python benchmarks/run_all.py`, on the machine its header
names; each header gives the benchmark's own command, the machine, the versions, the date
and the seeds, so any number can be rerun on its own. `make bench` reruns the timing tables
and the short comparisons (loop_speed, range_test_overhead, suggestion_quality, sweep_speed,
threads, scale, super_convergence, gpu_check, demo_time: within an hour on 2 cores); the tables
of an hour or more (tuning_cost, oracle, decision_quality, anytime, recipe_seeds, head_to_head,
ranking) are rerun one at a time, `make bench ONLY=name` or the command in their header, and
the table below names the commit each was made at and marks it stale when its code changed
since. The baselines (grid, random, TPE and pruned-TPE search over the recipe's own 1cycle
space with batch size, constant and step learning rates with their own grids) are measured
in the same run, on the same machine, as the recipe. Compute is counted in wall-clock
seconds, evaluation included (epochs beside). The recipe-against-baselines tables use three
splits: the recipe and every search read the validation split, and every accuracy they
headline is a chosen configuration retrained from fresh seeds and scored on a test split
that is sealed (reading it raises) while they run. A target that a run misses says
**MISSED** in its table.
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


VERDICT = re.compile(r"^(\*\*)?(met|MISSED)(\*\*)?$")
"""A table cell that is a target's verdict: ``met`` or ``MISSED``, bold or not."""
FAILED = re.compile(r"^\*\*failed\*\* with exit status (-?\d+):")
"""The first line of a section whose benchmark failed (as `assemble` writes it)."""
SKIPPED = re.compile(r"^Skipped\b")
"""The first line of a section whose benchmark did not run here (`gpu_check` on a machine
without CUDA)."""
COMMIT = re.compile(r"^- commit: `?([^`\s]+)`?\s*$", re.M)
"""A benchmark header's commit line (`_common.header`)."""


def status(text: str, code: int = 0) -> str:
    """A section's status, computed from its markdown ``text`` and its exit status ``code``:
    ``**failed** (exit N)`` when the benchmark failed (``code`` is not 0, or ``text`` starts
    with the failure note `assemble` writes); ``skipped`` when ``text`` starts with
    ``Skipped``; else ``ok: M met, K MISSED`` counting the verdict cells of its tables
    (`VERDICT`; prose outside tables repeats them and is not counted), or ``ok: no targets``."""
    failed = FAILED.match(text.lstrip())
    if code == 0 and failed:
        code = int(failed[1])
    if code != 0:
        return f"**failed** (exit {code})"
    if SKIPPED.match(text.lstrip()):
        return "skipped"
    counts = {"met": 0, "MISSED": 0}
    for line in text.splitlines():
        line = line.strip()
        if not (line.startswith("|") and line.endswith("|")):
            continue
        for cell in line[1:-1].split("|"):
            m = VERDICT.match(cell.strip())
            if m and bool(m[1]) == bool(m[3]):
                counts[m[2]] += 1
    if not any(counts.values()):
        return "ok: no targets"
    return f"ok: {counts['met']} met, {counts['MISSED']} MISSED"


def section_commit(text: str) -> str | None:
    """The commit a section's header names (``- commit: X``); ``None`` when it names none
    (a page from before the commit line, or a benchmark that failed before its header)."""
    m = COMMIT.search(text)
    return m[1] if m else None


def previous(page: str) -> dict[str, tuple[str, str, str, str]]:
    """What an existing page says of each benchmark: (status, minutes, date generated,
    section markdown); "-" for what its row does not say (a page before the date column, or
    a section without a row). Rows with and without the commit column are read alike (the
    commit is read back from each section's header)."""
    rows = {
        m[0]: (m[1], m[2], m[3] or "-")
        for m in re.findall(
            r"^\| \[(\w+)\]\(#[\w-]+\) \| (.+?) \| ([^|]+?) \|(?: ([^|]+?) \|)?"
            r"(?: [^|]+? \|)?$",
            page,
            re.M,
        )
    }
    parts = re.split(r"^## ([\w-]+)\n", page, flags=re.M)
    sections = {parts[i].replace("-", "_"): parts[i + 1].strip() for i in range(1, len(parts), 2)}
    return {
        name: (*rows.get(name, ("ok", "-", "-")), text)
        for name, text in sections.items()
        if name in BENCHMARKS
    }


DEPENDS = (
    "benchmarks/_common.py",
    "benchmarks/fair.py",
    "benchmarks/splits.py",
    "benchmarks/zoo",
    "src",
    "pyproject.toml",
)
"""What every benchmark's numbers also depend on, beside its own script: the shared helpers,
the zoo's tasks and oracles, the library and its pinned dependencies."""
NOT_CODE = (":(exclude,glob)**/*.md",)
"""Pathspecs left out of `DEPENDS`: the notes beside the code (the zoo's HELDOUT.md) change
no number."""
SCRIPT_DEPENDS = {
    "anytime": ("benchmarks/decision_quality.py", "benchmarks/oracle.py"),
}
"""What one benchmark's numbers also depend on beside `DEPENDS`: the other benchmarks whose
pieces it imports."""


def stale_since(commit: str, name: str, root: Path = HERE.parent) -> str | None:
    """The first commit after ``commit`` that changed benchmark ``name``'s script or what it
    exercises (`SCRIPT_DEPENDS`, `DEPENDS`), as a short hash: the section is stale since
    then. ``None`` when nothing it depends on changed since; ``"unknown"`` when ``commit`` is
    not recorded or git does not know it. A ``+dirty`` commit is judged from its base (its
    own uncommitted changes are not known afterwards)."""
    base = commit.removesuffix("+dirty")
    if base in ("-", "unknown", ""):
        return "unknown"
    try:
        proc = subprocess.run(
            [
                "git",
                "rev-list",
                "--reverse",
                "--abbrev-commit",
                f"{base}..HEAD",
                "--",
                f"benchmarks/{name}.py",
                *SCRIPT_DEPENDS.get(name, ()),
                *DEPENDS,
                *NOT_CODE,
            ],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if proc.returncode != 0:
        return "unknown"
    first = proc.stdout.split()
    return first[0] if first else None


def commit_cell(commit: str, stale: str | None) -> str:
    """The durations table's commit cell: the commit, and ``stale since X`` when `stale_since`
    found a change after it."""
    if stale is None:
        return commit
    if commit in ("-", "unknown"):
        return "unrecorded (**stale**: made before sections named their commit)"
    return f"{commit} (**stale since {stale}**)"


def commits_sentence(commits: dict[str, str]) -> str:
    """The introduction's sentence on the commits of the sections (``commits``: section name
    to commit, ``-`` where unrecorded): one commit for all, or each commit with its sections."""
    by: dict[str, list[str]] = {}
    for name, c in commits.items():
        by.setdefault(c, []).append(name)

    def where(c: str) -> str:
        return "at an unrecorded commit" if c == "-" else f"at commit `{c}`"

    if len(by) == 1:
        return f"All sections {where(next(iter(by)))}."
    parts = [f"{where(c)}: {', '.join(ns)}" for c, ns in by.items()]
    return "The sections are at different commits: " + "; ".join(parts) + "."


def assemble(
    results: list[tuple[str, str, int, float, str]],
    quick: bool,
    kept: dict[str, tuple[str, str, str, str]] | None = None,
    current: str | None = None,
    stale: Callable[[str, str], str | None] | None = None,
) -> str:
    """The page: title, introduction, durations, then each benchmark's markdown, in the
    order of `BENCHMARKS`; ``kept`` sections (from `previous`) stand for those not run, with
    the date and minutes of the run that made them. Every status is computed (`status`), the
    kept sections' too; each section's commit is its header's, else (for a benchmark run now
    that failed before printing its header) ``current``, the commit this process runs at.
    ``stale(commit, name)`` (`stale_since` by default) marks a section whose code changed
    after its commit."""
    stale = stale or stale_since
    kept = {k: v for k, v in (kept or {}).items() if k not in {r[0] for r in results}}
    ran = ", ".join(r[0] for r in results)
    today = _dt.date.today().isoformat()
    body: dict[str, list[str]] = {}
    rows: dict[str, str] = {}
    commits: dict[str, str] = {}
    for name, text, code, seconds, err in results:
        commits[name] = section_commit(text) or current or "-"
        cell = commit_cell(commits[name], stale(commits[name], name))
        minutes = f"{seconds / 60:.1f}" if math.isfinite(seconds) else "-"
        rows[name] = f"| {status(text, code)} | {minutes} | {today} | {cell} |"
        body[name] = []
        if code != 0:
            body[name] += [f"**failed** with exit status {code}:", "", "```", err.strip(), "```"]
            body[name].append("")
        body[name] += [text.strip(), ""]
    for name, (_, minutes, date, text) in kept.items():
        commits[name] = section_commit(text) or "-"
        cell = commit_cell(commits[name], stale(commits[name], name))
        rows[name] = f"| {status(text)} | {minutes} | {date} | {cell} |"
        body[name] = [text, ""]
    order = [n for n in BENCHMARKS if n in body]
    lines = [
        "# Benchmarks",
        "",
        INTRO,
        f"Generated {today}"
        + (" in `--quick` mode (tiny budgets: the numbers mean nothing)" if quick else "")
        + f"; {sum(r[3] for r in results if math.isfinite(r[3])) / 60:.1f} minutes in all"
        + (
            f" ({ran}; the other sections are kept from earlier runs: the table gives the "
            "date and minutes of the run that made each, its header its command and scale)."
            if kept
            else "."
        )
        + " "
        + commits_sentence({n: commits[n] for n in order}),
        "",
        "| benchmark | status | minutes | generated | commit |",
        "|---|---|---|---|---|",
    ]
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
    ap.add_argument(
        "--only",
        default=None,
        help="comma-separated names (default: those under an hour, or none with --use)",
    )
    ap.add_argument("--all", action="store_true", help="every benchmark, the long ones too")
    ap.add_argument("--cache", default=None, help="shared trial stores; default: a temp folder")
    ap.add_argument(
        "--args",
        action="append",
        default=[],
        metavar='NAME="--flags"',
        help="extra flags for one benchmark (repeatable)",
    )
    ap.add_argument(
        "--use",
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="take benchmark NAME's section from FILE, the markdown its own command printed "
        "(a long run made in the background or in chunks), instead of running it",
    )
    args = ap.parse_args()
    used = dict(u.split("=", 1) for u in args.use if "=" in u)
    if len(used) != len(args.use) or set(used) - set(BENCHMARKS):
        ap.error(f"--use takes NAME=FILE with NAME one of {list(BENCHMARKS)}")
    if args.all and args.only is not None:
        ap.error("--all and --only exclude each other")
    every = BENCHMARKS if args.all else DEFAULT
    only = args.only if args.only is not None else ("" if used else ",".join(every))
    names = [n for n in only.split(",") if n and n not in used]
    extra = dict(a.split("=", 1) for a in args.args if "=" in a)
    unknown = sorted((set(names) | set(extra)) - set(BENCHMARKS))
    if unknown or len(extra) != len(args.args):
        ap.error(f"unknown benchmark(s) {unknown}; choose from {list(BENCHMARKS)}")
    cache = Path(args.cache or tempfile.mkdtemp(prefix="bench-cache-"))
    if args.cache is None:  # a throw-away folder: removed when this process ends
        atexit.register(shutil.rmtree, cache, True)
    results = [(n, Path(f).read_text(), 0, math.nan, "") for n, f in used.items()]
    for name in names:
        print(f"{name} ...", file=sys.stderr, flush=True)
        text, code, seconds, err = run(name, args.quick, cache, extra.get(name, ""))
        print(f"{name}: exit {code}, {seconds:.0f} s", file=sys.stderr, flush=True)
        results.append((name, text, code, seconds, err))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    ran = set(names) | set(used)
    kept = previous(out.read_text()) if out.exists() and ran != set(BENCHMARKS) else {}
    sys.path.insert(0, str(HERE))
    from _common import commit  # here, not at the top: importing it imports torch

    out.write_text(assemble(results, args.quick, kept, current=commit()))
    print(f"wrote {out}", file=sys.stderr)
    return 1 if any(r[2] != 0 for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
