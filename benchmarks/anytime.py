"""The race's anytime curve (issue 32, item 4): the quality `tune` reaches against its budget,
over the development zoo, and the smallest budget that loses nothing to a large one.

For every task of the development zoo (`decision_quality.DEV`: `benchmarks/zoo/tasks.py`
and the held-out tasks moved to it), seed and budget ``k`` of ``--budgets``
(multiples of the task's epochs, i.e. final runs: 6, 9, 12 and 18 by default),
`disciplined.tune` runs with ``budget=k x epochs`` (and the task's epochs and optimizer, 300-step
range tests) on the validation split, the test split sealed, exactly as
`decision_quality.py` runs it at the default budget (its `tune_zoo`); ``default`` in
``--budgets`` adds the row of the default budget (``budget=None``, `RACE_BUDGET_FACTOR` final
runs), so the curve shows where the default sits. A budget too small for the recipe's
100-step range tests (tune refuses it and names what it needs: the small tabular tasks at 6x)
is raised to what tune names, as the default budget grows; the table counts those rows as
``grown``. Each choice is retrained from seed + 100 and scored on the test split
(`decision_quality.score_on_test`), and each task's regret is the oracle choice's test mean
minus the recipe's, in points, as `decision_quality.judge` computes it (a collapsed run or a
refused tune scores 0).

Per budget: each task's regret, the zoo-mean regret, the tasks within decision quality's goal,
and the compute spent, as final runs (epochs / the task's epochs, and seconds / the final
run's seconds) and seconds. The last lines state the smallest budget whose zoo-mean regret is
within `TOLERANCE` points of the largest budget's, and a target: the default budget's
zoo-mean regret is within `TOLERANCE` points of the largest budget's (issue 32: the default
budget is the smallest such budget). A plot of the zoo-mean regret (and each task's, thin)
against the budget in final runs is written to ``--plot`` (default
``benchmarks/results/anytime.png``; in ``--quick`` mode into the temporary cache).

Every scored row is also appended to ``--results`` (default
``benchmarks/results/anytime.jsonl``, committed; in ``--quick`` mode the temporary cache), one
JSON line with its code commit, task, seed and budget, so a chunk run in one session and
committed is read back in the next without its cache: a row of the current code commit found
there is not tuned again. ``--commit C`` prints the page from the rows of an earlier code
commit C (nothing is tuned then; a row C lacks is named and the run stops).

Tune outputs go to ``--cache``/anytime/<task>-s<seed>-b<k> (``-bdefault`` for the default
budget; not decision_quality's folder, so the two share no runs): a rerun resumes each tune
from its trial store, so the benchmark runs in chunks, one budget at a time
(``--budgets 12``), and a last run over every budget prints the page. Each
folder also keeps its row, test score included, in ``anytime.json``, stamped with
`code_commit` (the last commit that changed this script, `decision_quality.py`, `oracle.py`
or `run_all.DEPENDS`, with a hash of the uncommitted diff of those tracked paths when there
is one);
a rerun at the same code reads the row back without tuning or retraining.

    python benchmarks/anytime.py [--quick] [--budgets 6,9,12,18,default] [--tasks a,b]
        [--seeds 3] [--workers 2] [--cache DIR] [--plot FILE] [--results FILE] [--commit C]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import fair  # noqa: E402
from _common import cache_dir, header, pool_map  # noqa: E402
from decision_quality import (  # noqa: E402
    DEV,
    RETRAIN,
    final_seconds,
    judge,
    load_dev_oracle,
    score_on_test,
    tune_zoo,
)
from oracle import reference  # noqa: E402

from disciplined.recipe.plan import RACE_BUDGET_FACTOR  # noqa: E402

BUDGETS = (6.0, 9.0, 12.0, 18.0)
"""The budgets measured by default, in final runs (multiples of the task's epochs)."""
TOLERANCE = 0.2
"""Points of zoo-mean regret a budget may lose to the largest budget and still count."""
STEPS = 300
"""Range-test steps, as `decision_quality.py` runs the recipe."""
QUICK_TASK = "cancer-mlp"
QUICK_BUDGETS = "6,9,default"
QUICK_STEPS = 100
RESULTS = ROOT / "benchmarks" / "results" / "anytime.jsonl"
"""The committed file every scored row is appended to, with its code commit."""
ROW_FILE = "anytime.json"
"""The file in each tune folder that keeps its row (test score included) and code commit."""
SCRIPT_DEPENDS = (
    "benchmarks/anytime.py",
    "benchmarks/decision_quality.py",
    "benchmarks/oracle.py",
)
"""What this benchmark's rows depend on beside `run_all.DEPENDS`."""


# --------------------------------------------------------------------------- budgets


def factor(k: float | None) -> float:
    """Budget ``k`` in final runs; ``None`` (the default budget) is `RACE_BUDGET_FACTOR`."""
    return RACE_BUDGET_FACTOR if k is None else float(k)


def label(k: float | None) -> str:
    """``6x``, or ``default (8x)`` for the default budget."""
    return f"default ({RACE_BUDGET_FACTOR:g}x)" if k is None else f"{k:g}x"


def tag(k: float | None) -> str:
    """The budget's part of a tune folder's name: ``6``, ``default``."""
    return "default" if k is None else f"{k:g}"


def parse_budgets(text: str) -> list[float | None]:
    """``"6,9,default"`` -> ``[6.0, None, 9.0]``: positive multiples of the final run and
    ``default`` (``None``), without repeats, ordered by `factor` (the default among them)."""
    out: list[float | None] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if part == "default":
            k = None
        else:
            try:
                k = float(part.removesuffix("x"))
            except ValueError:
                msg = f"a budget is a number of final runs or 'default', got {part!r}"
                raise ValueError(msg) from None
            if not (math.isfinite(k) and k > 0):
                raise ValueError(f"a budget must be a finite number > 0, got {part!r}")
        if k not in out:
            out.append(k)
    if not out:
        raise ValueError("no budget given")
    return sorted(out, key=lambda k: (factor(k), k is not None))


NEEDS = re.compile(r"needs about (\d+(?:\.\d+)?)")
"""What tune's refusal of a budget too small for its range tests names (`recipe.plan`)."""


def needed(error: str | None) -> float | None:
    """The budget (epochs) that tune's refusal ``error`` says the recipe needs; ``None`` when
    ``error`` is no such refusal."""
    m = NEEDS.search(error or "")
    return float(m[1]) if m else None


# --------------------------------------------------------------------------- running


def tune_at(name: str, seed: int, out: str, budget: float | None, steps: int) -> dict[str, Any]:
    """`decision_quality.tune_zoo` at ``budget`` epochs (``None``: the default); a budget
    refused as too small for the range tests is raised once to the budget tune names. The
    row adds the budget asked (``asked``), the one it was raised to (``grown``, else
    ``None``) and the final run's seconds (``final_seconds``)."""
    row = tune_zoo(name, seed, out, budget, steps)
    grown = None
    need = needed(row["error"]) if budget is not None else None
    if need is not None and need > budget:
        grown = need
        row = tune_zoo(name, seed, out, need, steps)
    row["asked"], row["grown"] = budget, grown
    row["final_seconds"] = final_seconds(out) if row["error"] is None else math.nan
    return row


def _git(args: list[str], root: Path) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None


def code_commit(root: Path = ROOT) -> str:
    """The short hash of the last commit that changed what the rows depend on
    (`SCRIPT_DEPENDS`, `run_all.DEPENDS`), with ``+dirty-<hash of the diff>`` when those paths
    have uncommitted changes; ``unknown`` without git (then no row is read back)."""
    from run_all import DEPENDS

    paths = [*SCRIPT_DEPENDS, *DEPENDS]
    last = _git(["rev-list", "-1", "--abbrev-commit", "HEAD", "--", *paths], root)
    if last is None or last.returncode != 0 or not last.stdout.strip():
        return "unknown"
    diff = _git(["diff", "HEAD", "--", *paths], root)
    if diff is None or diff.returncode != 0:
        return "unknown"
    if not diff.stdout:
        return last.stdout.strip()
    digest = hashlib.sha256(diff.stdout.encode()).hexdigest()[:10]
    return f"{last.stdout.strip()}+dirty-{digest}"


def read_row(folder: Path, commit: str) -> dict[str, Any] | None:
    """The row kept in ``folder`` at code ``commit``, scored on the test split; else ``None``."""
    if commit == "unknown":
        return None
    try:
        data = json.loads((folder / ROW_FILE).read_text())
    except (OSError, ValueError):
        return None
    row = data.get("row") if isinstance(data, dict) else None
    if data.get("commit") != commit or not isinstance(row, dict) or "test" not in row:
        return None
    return row


def write_row(folder: Path, commit: str, row: dict[str, Any]) -> None:
    """Keep ``row`` (scored) in ``folder`` with the code commit it was made at."""
    from disciplined.files import write_text_atomic

    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(folder / ROW_FILE, json.dumps({"commit": commit, "row": row}))


def results_rows(path: Path, commit: str) -> dict[tuple[str, int, str], dict[str, Any]]:
    """The scored rows kept in the results file ``path`` at code ``commit``, by (task, seed,
    budget tag); a later line of the same key wins, a damaged or unscored line is skipped."""
    rows: dict[tuple[str, int, str], dict[str, Any]] = {}
    if commit == "unknown":
        return rows
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return rows
    for line in lines:
        try:
            data = json.loads(line)
            key = (str(data["task"]), int(data["seed"]), str(data["budget"]))
            row = data["row"]
        except (ValueError, KeyError, TypeError):
            continue
        if data.get("commit") == commit and isinstance(row, dict) and "test" in row:
            rows[key] = row
    return rows


def append_row(
    path: Path, commit: str, name: str, seed: int, k: float | None, row: dict[str, Any]
) -> None:
    """Append ``row`` (scored) to the results file ``path`` as one JSON line with its code
    commit, task, seed and budget tag, flushed to disk before the next."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"commit": commit, "task": name, "seed": seed, "budget": tag(k), "row": row})
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


# --------------------------------------------------------------------------- the tables


def _finite(xs) -> list[float]:
    return [float(x) for x in xs if x is not None and math.isfinite(x)]


def _mean(xs) -> float:
    xs = _finite(xs)
    return statistics.fmean(xs) if xs else math.nan


def summarize(
    names: list[str],
    seeds: list[int],
    budgets: list[float | None],
    runs: dict[tuple, dict[str, Any]],
    oracle: dict[str, Any],
) -> list[dict[str, Any]]:
    """One entry per budget (in the order of ``budgets``): each task's `judge` row
    (``tasks``), the zoo-mean regret, the tasks within goal, the compute as final runs (by
    epochs and by the final run's seconds, mean over tasks and seeds), the mean seconds of a
    tune, and the rows grown or refused. ``runs`` maps (task, seed, budget) to a scored row."""
    out = []
    for k in budgets:
        tasks, spent_epochs, spent_seconds, seconds = {}, [], [], []
        grown = refused = 0
        for n in names:
            rs = [runs[(n, s, k)] for s in seeds]
            judged = rs
            if not _finite(r["epochs"] for r in rs):  # every seed refused: judge needs one
                judged = [{**r, "epochs": 0.0} for r in rs]
            tasks[n] = judge(reference(oracle[n]), oracle[n]["test"], judged)
            for r in rs:
                spent_epochs.append(r["epochs"] / DEV[n].epochs)
                final = r.get("final_seconds", math.nan)
                spent_seconds.append(r["seconds"] / final if final and final > 0 else math.nan)
                seconds.append(r["seconds"])
                grown += r.get("grown") is not None
                refused += r.get("error") is not None
        out.append(
            {
                "budget": k,
                "factor": factor(k),
                "label": label(k),
                "tasks": tasks,
                "regret": statistics.fmean(t["regret"] for t in tasks.values()),
                "median": statistics.median(t["regret"] for t in tasks.values()),
                "within": sum(t["ok"] for t in tasks.values()),
                "runs_epochs": _mean(spent_epochs),
                "runs_seconds": _mean(spent_seconds),
                "seconds": _mean(seconds),
                "grown": grown,
                "refused": refused,
            }
        )
    return out


def largest(summary: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The entry of the largest budget given as a multiple (not the default); ``None``."""
    sized = [e for e in summary if e["budget"] is not None]
    return max(sized, key=lambda e: e["factor"]) if sized else None


def smallest_within(
    summary: list[dict[str, Any]], tolerance: float = TOLERANCE, key: str = "regret"
) -> dict[str, Any] | None:
    """The entry of the smallest budget (a multiple, or the default at its multiple) whose
    zoo-mean regret (``key="median"``: zoo-median) is within ``tolerance`` points of the
    largest budget's; ``None`` without budgets."""
    top = largest(summary)
    if top is None:
        return None
    ordered = sorted(summary, key=lambda e: (e["factor"], e["budget"] is None))
    return next(e for e in ordered if e[key] <= top[key] + tolerance)


def default_target(
    summary: list[dict[str, Any]], tolerance: float = TOLERANCE
) -> tuple[str, str, str]:
    """The target row's cells: what it asks, what was measured, and the verdict (``met``,
    ``**MISSED**``, or ``-`` when the default budget or a multiple was not run)."""
    top = largest(summary)
    default = next((e for e in summary if e["budget"] is None), None)
    ref = top["label"] if top else "the largest budget"
    target = (
        f"default budget ({RACE_BUDGET_FACTOR:g}x): zoo-mean regret within {tolerance:g} "
        f"points of {ref}'s"
    )
    if top is None or default is None:
        missing = "the default budget" if default is None else "a multiple of the final run"
        return target, f"not measured ({missing} not run)", "-"
    ok = default["regret"] <= top["regret"] + tolerance
    measured = f"{default['regret']:.2f} against {top['regret']:.2f} + {tolerance:g}"
    return target, measured, "met" if ok else "**MISSED**"


def conclusion(summary: list[dict[str, Any]], tolerance: float = TOLERANCE) -> str:
    """The sentence on the smallest budget within ``tolerance`` of the largest, computed."""
    top, best = largest(summary), smallest_within(summary, tolerance)
    if top is None or best is None:
        return "No multiple of the final run was measured: no smallest budget to state."
    text = (
        f"**Smallest budget whose zoo-mean regret is within {tolerance:g} points of "
        f"{top['label']}'s ({top['regret']:.2f}): {best['label']} ({best['regret']:.2f}).**"
    )
    if best["factor"] < RACE_BUDGET_FACTOR:
        text += (
            f" It is below the default ({RACE_BUDGET_FACTOR:g}x): by this rule the default "
            "could be lowered."
        )
    elif best["factor"] > RACE_BUDGET_FACTOR:
        text += f" It is above the default ({RACE_BUDGET_FACTOR:g}x)."
    by_median = smallest_within(summary, tolerance, key="median")
    if by_median is not None and "median" in top:
        text += (
            f" By the zoo-median regret, which one seed-fragile task cannot move: "
            f"{by_median['label']} ({by_median['median']:.2f} against {top['median']:.2f})."
        )
    return text


def _num(x: float, fmt: str = ".2f") -> str:
    return format(x, fmt) if math.isfinite(x) else "-"


def budget_table(summary: list[dict[str, Any]], n_tasks: int) -> str:
    """One row per budget: zoo-mean and zoo-median regret (the median is what one
    seed-fragile task cannot move), tasks within goal, compute and seconds."""
    lines = [
        "| budget | zoo-mean regret (points) | zoo-median regret | tasks within goal | compute: "
        "final runs spent (epochs) | compute: final runs spent (seconds) | seconds per tune "
        "(mean) | grown / refused |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for e in summary:
        lines.append(
            f"| {e['label']} | {_num(e['regret'])} | {_num(e['median'])} | "
            f"{e['within']} / {n_tasks} | "
            f"{_num(e['runs_epochs'], '.1f')} | {_num(e['runs_seconds'], '.1f')} | "
            f"{_num(e['seconds'], '.1f')} | {e['grown']} / {e['refused']} |"
        )
    return "\n".join(lines) + "\n"


def task_table(summary: list[dict[str, Any]], names: list[str]) -> str:
    """Each task's regret (points) at each budget; a task within goal is marked ``ok``."""
    lines = [
        "| task | " + " | ".join(e["label"] for e in summary) + " |",
        "|---|" + "---|" * len(summary),
    ]
    for n in names:
        cells = []
        for e in summary:
            t = e["tasks"][n]
            cells.append(f"{t['regret']:.2f}" + (" ok" if t["ok"] else ""))
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    zoo = " | ".join(f"**{_num(e['regret'])}**" for e in summary)
    lines.append(f"| zoo mean | {zoo} |")
    lines.append(f"| zoo median | {' | '.join(_num(e['median']) for e in summary)} |")
    return "\n".join(lines) + "\n"


def target_table(summary: list[dict[str, Any]], tolerance: float = TOLERANCE) -> str:
    """The target, as the other benchmarks write one (run_all counts its verdict)."""
    target, measured, verdict = default_target(summary, tolerance)
    return (
        f"| target | measured | verdict |\n|---|---|---|\n| {target} | {measured} | {verdict} |\n"
    )


def plot(summary: list[dict[str, Any]], names: list[str], path: str | Path) -> None:
    """Zoo-mean regret (thick) and each task's (thin) against the budget in final runs; the
    default budget starred, the largest budget's regret + `TOLERANCE` dashed. PNG, atomic."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from disciplined.files import write_bytes_atomic

    sized = [e for e in summary if e["budget"] is not None]
    default = next((e for e in summary if e["budget"] is None), None)
    fig, ax = plt.subplots(figsize=(9.0, 4.5))
    colors = plt.get_cmap("tab20")
    for i, n in enumerate(names):
        xs = [e["factor"] for e in sized]
        ys = [e["tasks"][n]["regret"] for e in sized]
        ax.plot(xs, ys, lw=0.8, alpha=0.6, color=colors(i % 20), marker=".", label=n)
        if default is not None:
            ax.plot(
                default["factor"],
                default["tasks"][n]["regret"],
                "*",
                ms=5,
                alpha=0.6,
                color=colors(i % 20),
            )
    if sized:
        ax.plot(
            [e["factor"] for e in sized],
            [e["regret"] for e in sized],
            "o-",
            lw=2.5,
            color="black",
            label="zoo mean",
        )
    top = largest(summary)
    if top is not None:
        ax.axhline(
            top["regret"] + TOLERANCE,
            ls="--",
            lw=1,
            color="gray",
            label=f"{top['label']}'s zoo mean + {TOLERANCE:g}",
        )
    if default is not None:
        ax.plot(
            default["factor"],
            default["regret"],
            "*",
            ms=16,
            color="crimson",
            label=f"{default['label']}: zoo mean",
        )
    ax.axhline(0.0, lw=0.5, color="black")
    ax.set_xticks(sorted({e["factor"] for e in summary}))
    ax.set_xticklabels([f"{x:g}" for x in sorted({e["factor"] for e in summary})])
    ax.set_xlabel("budget (final runs)")
    ax.set_ylabel("regret against the oracle (test points)")
    ax.set_title("The race's anytime curve over the zoo", fontsize=10)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    write_bytes_atomic(path, buf.getvalue())


# --------------------------------------------------------------------------- main


def main() -> None:
    """Tune (or read back) every task, seed and budget; print the tables; write the plot."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one small task, one seed, 2 budgets")
    ap.add_argument(
        "--budgets",
        default="6,9,12,18,default",
        help="final runs (multiples of the task's epochs), and 'default' for budget=None",
    )
    ap.add_argument("--tasks", default=",".join(DEV))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2, help="worker processes (1 thread each)")
    ap.add_argument("--cache", default=None, help="folder for tune outputs (resume, chunks)")
    ap.add_argument("--plot", default=None, help="default: benchmarks/results/anytime.png")
    ap.add_argument("--results", default=None, help=f"default: {RESULTS.relative_to(ROOT)}")
    ap.add_argument("--commit", default=None, help="print the rows of this code commit, tune none")
    args = ap.parse_args()
    os.chdir(ROOT)
    torch.set_num_threads(1)
    oracle = load_dev_oracle()
    try:
        budgets = parse_budgets(args.budgets)
    except ValueError as exc:
        ap.error(str(exc))
    if args.quick:
        names, seeds, budgets, steps = [QUICK_TASK], [0], parse_budgets(QUICK_BUDGETS), QUICK_STEPS
    else:
        names = [n for n in args.tasks.split(",") if n]
        seeds, steps = list(range(args.seeds)), STEPS
    unknown = [n for n in names if n not in DEV]
    if unknown:
        ap.error(f"unknown task(s) {unknown}: one of {', '.join(DEV)}")
    missing = [n for n in names if "test" not in oracle.get(n, {})]
    if missing:
        raise SystemExit(
            f"no oracle test scores for {missing}: run python benchmarks/oracle.py first"
        )
    cache = cache_dir(args.cache, "bench-anytime-")
    workers = 1 if args.quick else args.workers
    commit = args.commit or code_commit()
    if args.results:
        results = Path(args.results)
    else:  # quick numbers mean nothing: never into the committed file
        results = cache / "anytime.jsonl" if args.quick else RESULTS
    kept = results_rows(results, commit)

    runs: dict[tuple, dict[str, Any]] = {}
    jobs, keys = [], []
    for k in budgets:
        for n in names:
            for s in seeds:
                folder = cache / "anytime" / f"{n}-s{s}-b{tag(k)}"
                row = kept.get((n, s, tag(k))) or read_row(folder, commit)
                if row is not None:
                    runs[(n, s, k)] = row
                    continue
                budget = None if k is None else k * DEV[n].epochs
                jobs.append((n, s, str(folder), budget, steps))
                keys.append((n, s, k))
    read_back = len(runs)
    if args.commit and jobs:
        lacking = ", ".join(f"{n} s{s} {label(k)}" for n, s, k in keys)
        raise SystemExit(f"{results} holds no row at code commit {commit} for: {lacking}")
    started = time.perf_counter()
    with fair.sealed():  # the recipe never sees the test split
        outputs = pool_map(tune_at, jobs, workers)
    elapsed = time.perf_counter() - started
    for k in budgets:  # score_on_test takes (task, seed) keys: one budget at a time
        fresh = {(n, s): o for (n, s, kk), o in zip(keys, outputs, strict=True) if kk == k}
        score_on_test(fresh, workers)
        for (n, s), row in fresh.items():
            runs[(n, s, k)] = row
            write_row(cache / "anytime" / f"{n}-s{s}-b{tag(k)}", commit, row)
            append_row(results, commit, n, s, k, row)
    scored = time.perf_counter() - started

    summary = summarize(names, seeds, budgets, runs, oracle)
    if args.plot:
        plot_path = Path(args.plot)
    elif args.quick:  # quick numbers mean nothing: never into the results folder
        plot_path = cache / "anytime.png"
    else:
        plot_path = ROOT / "benchmarks" / "results" / "anytime.png"
    plot(summary, names, plot_path)
    inside = plot_path.resolve().is_relative_to(ROOT)
    link = os.path.relpath(plot_path.resolve(), ROOT / "docs") if inside else str(plot_path)

    head = header("The race's anytime curve: zoo regret against the budget")
    if args.commit:  # the rows' commit is the table's: the code that printed it made none
        head = re.sub(
            r"^- commit: (\S+)",
            lambda m: (
                f"- commit: {args.commit}\n- printed at: {m[1]}, from the rows of the "
                "commit above (--commit)"
            ),
            head,
            count=1,
            flags=re.M,
        )
    print(head)
    print(
        f"- tasks: {', '.join(names)} (`benchmarks/zoo/tasks.py` and the held-out tasks "
        f"moved to the development zoo); seeds {seeds}; budgets "
        f"{', '.join(label(k) for k in budgets)} (final runs: multiples of the task's "
        f"epochs); {steps}-step range tests; {workers} worker process(es) of 1 torch thread\n"
        f"- rows: {len(jobs)} tuned now ({elapsed:.0f} s for the tunes, {scored:.0f} s with "
        f"the test retraining), {read_back} read back (`anytime.json` in the cache, or "
        f"`{os.path.relpath(results, ROOT)}`) at code commit {commit}\n"
        "- recipe: `tune(task, epochs=<task's>, budget=<k x epochs>, optimizer=<task's>, "
        "seed=s)` on the validation split, the test split sealed (the default row: "
        "`budget=None`); a budget tune refuses as too small for 100-step range tests is "
        "raised to what it names (`grown`); its choice retrained from seed s + "
        f"{RETRAIN} and scored on the test split\n"
        "- regret: the oracle choice's test mean minus the recipe's, in points "
        "(`decision_quality.judge`: a collapsed run or a refused tune scores 0); goal as "
        "in decision_quality (regret <= max(0.5, the oracle's test std), compute <= 10% of "
        "the oracle's, beats the default where it is > 1 point below, no collapse)\n"
        "- compute: the tune's trials (the test retraining not counted), mean over tasks "
        "and seeds, in final runs by epochs (epochs / the task's epochs) and by seconds "
        "(seconds / the seconds of the tune's own final run, at the batch it chose)\n"
    )
    print(budget_table(summary, len(names)))
    print("#### Regret per task (points; `ok`: within decision quality's goal)\n")
    print(task_table(summary, names))
    print(conclusion(summary) + "\n")
    print(target_table(summary))
    print(f"![Zoo-mean and per-task regret against the budget in final runs]({link})\n")
    errors = [(key, r["error"]) for key, r in runs.items() if r.get("error")]
    for (n, s, k), e in errors:
        print(f"- {n}, seed {s}, {label(k)}: `tune` refused to return a run: {e}")


if __name__ == "__main__":
    main()
