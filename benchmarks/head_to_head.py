"""Head to head (issue 36): the recipe against what users pick instead, on development and
held-out zoo tasks, each method's pick scored on a sealed test split.

Per task and tuning seed ``s`` (every tuning reads the validation split only, with the test
split sealed: reading it raises), the methods:

- ``recipe``: `disciplined.tune` at its default budget with the task's epochs and optimizer
  (as `decision_quality.py` runs it, 300-step range tests; its tune folder under ``--cache``
  is the one `decision_quality.py` uses, so the two share runs). Its ``seconds`` are its
  trials' wall seconds, evaluation included: what a search's budget counts.
- searches over 1cycle x max LR x weight decay x maximum momentum x batch size (the task's,
  half, a quarter; `search_space`), given 1x and 2x the recipe's seconds on that task and
  seed (read from the recipe's row in the results file: the recipe runs first):
  ``random-1x/-2x`` (random search), ``tpe-median-1x/-2x`` (Optuna's TPE, the median
  stopping rule of Optuna's ``MedianPruner``: 5 startup trials, no stop in the first
  quarter of the epochs), ``tpe-hyperband-1x/-2x`` (Optuna's TPE with the rule of Optuna's
  ``HyperbandPruner``, `HyperbandStop`), ``grid-1x/-2x`` (the grid in an order shuffled by
  ``s``). Each is the library's search (`disciplined.search`); one search runs at 2x and the
  1x row is what it had picked among the trials a 1x search would have started (a trial
  starts only while the trials' seconds are under the budget, and no search's choice of
  points depends on its budget, so the two are the same search).
- one-run alternatives: ``default`` (the task's default 1cycle, `ZooEntry.default` at the
  task's batch size); ``fastai`` (fastai's ``lr_find`` + ``fit_one_cycle`` habit: one range
  test from 1e-7 to 10 over 100 steps, fastai's defaults, at the default configuration,
  read by the ``valley`` rule of `disciplined.measure.suggest`, then one 1cycle run at that
  max LR, the rest of the default kept); ``prodigy`` and ``schedulefree`` (the
  learning-rate-free optimizers as their READMEs set them, `_lrfree.py`). Each costs its
  one run (plus the range test for fastai), made on the validation split.

Every pick is retrained from three fresh seeds (``100 + 3 s .. 100 + 3 s + 2``: the same for
every method at tuning seed ``s``, so the comparison is paired) for the task's epochs (the
recipe: its final run's) and scored on the test split; a run that diverged scores 0 and a
negative R^2 counts as 0, as in `decision_quality.py`. Points are 100 x the metric.

Results: one JSON line per (commit, task, method, seed), appended and flushed as soon as it
is scored, to ``--results`` (default ``benchmarks/results/head_to_head.jsonl``). The commit
is `code_commit`: the last commit that changed what the numbers depend on (this script,
`_lrfree.py` and `run_all.DEPENDS`: the library, the shared helpers, the zoo), ``+dirty``
when those have uncommitted changes; committing the results file itself does not change
it, so chunks committed as they finish resume. A rerun skips the rows already present at
that commit, so the benchmark runs in chunks (``--tasks``, ``--methods``, ``--seeds``,
``--max-minutes``: no new method starts after that many minutes). ``--page`` rebuilds the
table and the plot from the results file without running anything: each task's rows at the
last commit that ran it (`latest_per_task`), the header naming each commit's tasks, or with
``--commit C`` only that commit's rows.

The page: per task, each method's mean ± std test metric over the tuning seeds and its mean
seconds, and the paired difference to the recipe (method - recipe, by tuning seed) with a
95% percentile bootstrap interval; a summary counts, per method, the tasks where the recipe
is significantly ahead (the interval below 0), level, or behind (above 0), with at least
`MIN_PAIRS` seeds; and a plot of quality against seconds for every method on each task.

The held-out tasks (`zoo/heldout.py`) have never been tuned by the recipe: before the first
chunk that runs them, `benchmarks/zoo/HELDOUT.md` records the commit the rules are frozen at
(its rule); the page names each task's zoo.

- the same one-run alternatives at the recipe's seconds (``default-eq``, ``fastai-eq``,
  ``prodigy-eq``, ``schedulefree-eq``): each is given the recipe's seconds on that task and
  seed as a small search of its own over the one knob it leaves its user, full runs at
  `EQUAL_FACTORS` times its own setting, centre out (1, a third, 3, a tenth, 10, ...), a run
  starting only while the runs' seconds (fastai's range test included) are under the
  recipe's, at least one run; its best validation run is its pick. The knob: the max LR of
  the default 1cycle and of fastai's reading, Prodigy's ``d_coef`` (the factor on its
  step-size estimate), Schedule-Free's LR.

    python benchmarks/head_to_head.py [--tasks a,b] [--seeds 5 | 2-4 | 0,3] [--methods m,n]
        [--results FILE] [--workers 1] [--max-minutes M] [--cache DIR] [--quick]
        [--page [--commit C]]
"""

from __future__ import annotations

import argparse
import binascii
import contextlib
import dataclasses
import datetime as _dt
import json
import math
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import _common  # noqa: E402
from zoo.heldout import HELDOUT, MOVED_TO_DEV  # noqa: E402
from zoo.tasks import ZOO, ZooEntry  # noqa: E402

TASKS: dict[str, ZooEntry] = {**ZOO, **HELDOUT}
"""Every task the head to head can run: the development zoo's and the held-out zoo's."""
DEFAULT_TASKS = (
    # development zoo (seconds per run, mean over the oracle's grid, oracle.json)
    "noisy-labels-mlp",  # 0.6 s
    "bn-cnn",  # 1.4 s
    "deep-mlp",  # 1.2 s
    "digits-cnn-adamw",  # 2.2 s, AdamW
    # held-out zoo (benchmarks/zoo/HELDOUT.md, default / grid)
    "patch-autoencoder",  # 1.4 / 1.2 s
    "co2-forecast",  # 0.5 / 0.7 s
    "affairs-tabular",  # 0.4 / 0.8 s
    "wide-resmlp",  # 2.3 / 2.0 s
    "dropout-overfit",  # 0.8 / 1.3 s
    "randhie-counts",  # 1.2 / 0.8 s
    "digits-vit",  # 4.0 / 6.9 s, AdamW
)
"""Tasks whose tune (about 8 final runs of range tests and race) finishes in under a minute:
at most about 2.5 s per run; the slower ones (gru-seq, resnet1d, attention-seq, char-lm)
and the smallest, noisiest ones (wine, cancer, diabetes, imbalanced) are left out."""
RESULTS = ROOT / "benchmarks" / "results" / "head_to_head.jsonl"
RETRAIN = 100
RETRAINS = 3
SEARCHES = ("random", "tpe-median", "tpe-hyperband", "grid")
MULTIPLES = (1, 2)
ONE_RUN = ("default", "fastai", "prodigy", "schedulefree")
EQUAL_SECONDS = tuple(f"{m}-eq" for m in ONE_RUN)
"""The one-run alternatives given the recipe's seconds as a search over their one knob."""
EQUAL_FACTORS = (1.0, 1 / 3, 3.0, 0.1, 10.0, 1 / 30, 30.0, 0.01, 100.0)
"""The factors an equal-seconds row tries on its method's knob, in order, centre out."""
METHODS = (
    "recipe",
    *(f"{s}-{m}x" for s in SEARCHES for m in MULTIPLES),
    *ONE_RUN,
    *EQUAL_SECONDS,
)
QUICK_METHODS = (
    "recipe",
    "random-1x",
    "random-2x",
    "tpe-hyperband-1x",
    "default",
    "fastai",
    "prodigy",
    "schedulefree",
    "default-eq",
    "prodigy-eq",
)
QUICK_TASK = "cancer-mlp"
QUICK_SEARCH_S = 1.5
"""In ``--quick`` mode a search's 1x budget is at most this many seconds."""
RANGE_STEPS = 300
MAX_TRIALS = 2_000
MIN_PAIRS = 3
"""The fewest paired seeds for a verdict (ahead / level / behind) on a task."""
BOOTSTRAP_DRAWS = 10_000
SCRIPT_DEPENDS = ("benchmarks/head_to_head.py", "benchmarks/_lrfree.py")


def retrain_seeds(seed: int) -> list[int]:
    """The fresh seeds the picks of tuning seed ``seed`` are retrained from (seed 0: the
    oracle's 100, 101, 102)."""
    return [RETRAIN + RETRAINS * seed + k for k in range(RETRAINS)]


def family(method: str) -> str:
    """The search a method's row comes from (``random-2x`` -> ``random``), else the method."""
    for s in SEARCHES:
        if method.startswith(s + "-") and method.removeprefix(s + "-").rstrip("x").isdigit():
            return s
    return method


def multiple(method: str) -> int:
    """The multiple of the recipe's seconds a search row was given (``grid-2x`` -> 2)."""
    return int(method.rsplit("-", 1)[1].rstrip("x"))


# --------------------------------------------------------------------------- results file


def _git(args: list[str], root: Path) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None


def code_commit(root: Path = ROOT) -> str:
    """The short hash of the last commit that changed what the numbers depend on (this
    script, `_lrfree.py`, `run_all.DEPENDS`, notes aside: `run_all.NOT_CODE`), ``+dirty``
    when those paths differ from HEAD;
    ``unknown`` without git. Results committed on their own leave it as it was."""
    from run_all import DEPENDS, NOT_CODE

    paths = [*SCRIPT_DEPENDS, *DEPENDS, *NOT_CODE]
    last = _git(["rev-list", "-1", "--abbrev-commit", "HEAD", "--", *paths], root)
    if last is None or last.returncode != 0 or not last.stdout.strip():
        return "unknown"
    diff = _git(["diff", "--quiet", "HEAD", "--", *paths], root)
    dirty = diff is not None and diff.returncode == 1
    return last.stdout.strip() + ("+dirty" if dirty else "")


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a results file in order; a line that is not a JSON object (a write cut
    short) is skipped with a note on stderr. No file: no rows."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        if not isinstance(row, dict):
            print(f"{path}:{i}: not a results row, skipped", file=sys.stderr)
            continue
        rows.append(row)
    return rows


def append_row(path: str | Path, row: dict[str, Any]) -> None:
    """Append ``row`` as one JSON line, flushed and synced (several worker processes may
    append to one file: each line is one locked write)."""
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(_clean(row), sort_keys=True, allow_nan=False) + "\n"
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


_HELD: dict[str, Any] = {}
"""The lock files this process holds (`claim`, `share`), open until it exits."""


def lock_path(results: str | Path) -> Path:
    """The lock file beside ``results`` that every run writing it holds (`claim`)."""
    return Path(results).with_suffix(".lock")


def claim(results: str | Path) -> None:
    """Refuse to start while another run writes ``results``: its parent or any worker it
    left behind holds a shared lock on `lock_path` (`share`); this takes it exclusively
    without waiting, then holds it shared for the run. A run stopped with ``kill`` on its
    parent leaves its spawned workers finishing the units they hold, and a run restarted
    beside them wrote those units' rows twice; this is the one-line refusal instead."""
    import fcntl

    lock = lock_path(results)
    lock.parent.mkdir(parents=True, exist_ok=True)
    f = open(lock, "a")  # noqa: SIM115 (held until the process exits)
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        raise SystemExit(
            f"another head_to_head run, or a worker one left behind, is writing {results} "
            f"(it holds {lock}); wait for it, or stop it and its workers"
        ) from None
    fcntl.flock(f, fcntl.LOCK_SH)
    _HELD[str(lock)] = f


def share(results: str | Path) -> None:
    """Hold `lock_path` shared in a worker until it exits (once per process), so a run
    cannot `claim` ``results`` while this worker may still append to it."""
    import fcntl

    lock = lock_path(results)
    if str(lock) in _HELD:
        return
    f = open(lock, "a")  # noqa: SIM115 (held until the process exits)
    fcntl.flock(f, fcntl.LOCK_SH)
    _HELD[str(lock)] = f


def release(results: str | Path) -> None:
    """Let go of `lock_path` (``claim``'s or ``share``'s) before this process exits."""
    f = _HELD.pop(str(lock_path(results)), None)
    if f is not None:
        f.close()


def _clean(x: Any) -> Any:
    """``x`` with every non-finite float (at any depth) as None: JSON has no NaN."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    return x


def _num(x: float | None) -> float | None:
    """A metric for the results file: None when missing or not finite."""
    return float(x) if x is not None and math.isfinite(x) else None


def done_keys(rows: Iterable[dict[str, Any]], commit: str) -> set[tuple[str, str, int]]:
    """(task, method, seed) of every row at ``commit``."""
    return {(r["task"], r["method"], int(r["seed"])) for r in rows if r.get("commit") == commit}


def plan(
    tasks: Sequence[str], seeds: Sequence[int], methods: Sequence[str], done: set[tuple]
) -> list[tuple[str, int, list[str]]]:
    """The units left to run, in order: per task and seed, the methods without a row (the
    recipe first, since the searches' budgets are its seconds). Units with nothing left are
    dropped."""
    order = [m for m in METHODS if m in methods]
    out = []
    for t in tasks:
        for s in seeds:
            todo = [m for m in order if (t, m, s) not in done]
            if todo:
                out.append((t, s, todo))
    return out


# --------------------------------------------------------------------------- scoring


def score(x: float | None) -> float:
    """A test metric as the page counts it: 0 for a diverged run (None, NaN) and for an R^2
    below 0."""
    return 0.0 if x is None or not math.isfinite(x) else max(float(x), 0.0)


def bootstrap_interval(
    diffs: Sequence[float], draws: int = BOOTSTRAP_DRAWS, level: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """The mean of ``diffs`` and its percentile bootstrap interval at ``level``: the seeds
    resampled with replacement ``draws`` times (``random.Random(seed)``)."""
    if not diffs:
        raise ValueError("no differences to resample")
    n = len(diffs)
    rng = random.Random(seed)
    means = sorted(sum(rng.choice(diffs) for _ in range(n)) / n for _ in range(draws))
    tail = (1 - level) / 2

    def at(q: float) -> float:
        return means[min(draws - 1, max(0, round(q * (draws - 1))))]

    return statistics.fmean(diffs), at(tail), at(1 - tail)


def verdict(lo: float, hi: float, n: int) -> str:
    """The recipe against a method whose paired interval (method - recipe) is ``lo, hi``
    over ``n`` seeds."""
    if n < MIN_PAIRS:
        return f"- (n < {MIN_PAIRS})"
    if hi < 0:
        return "recipe ahead"
    if lo > 0:
        return "recipe behind"
    return "level"


def summarize(rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per task and method: the test score and the seconds by tuning seed, and the zoo (a
    held-out task moved to the development zoo since, `MOVED_TO_DEV`, reads ``dev: moved``
    whatever its rows were labelled when they ran)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for r in rows:
        zoo = "dev: moved" if r["task"] in MOVED_TO_DEV else r.get("zoo", "?")
        cell = out.setdefault(r["task"], {}).setdefault(
            r["method"], {"test": {}, "seconds": {}, "zoo": zoo}
        )
        cell["test"][int(r["seed"])] = score(r.get("test"))
        cell["seconds"][int(r["seed"])] = float(r["seconds"])
    return out


def compare(cells: dict[str, dict[str, Any]], method: str) -> dict[str, Any] | None:
    """``method`` against the recipe on one task, paired by tuning seed: mean difference
    and bootstrap interval (in metric units), the verdict, the number of pairs."""
    if method == "recipe" or "recipe" not in cells or method not in cells:
        return None
    a, r = cells[method]["test"], cells["recipe"]["test"]
    seeds = sorted(set(a) & set(r))
    if not seeds:
        return None
    mean, lo, hi = bootstrap_interval([a[s] - r[s] for s in seeds])
    return {
        "mean": mean,
        "lo": lo,
        "hi": hi,
        "n": len(seeds),
        "verdict": verdict(lo, hi, len(seeds)),
    }


def _order(names: Iterable[str], first: Sequence[str]) -> list[str]:
    """``names`` in the order of ``first`` (once each), then the others sorted."""
    names = set(names)
    return [n for n in dict.fromkeys(first) if n in names] + sorted(names - set(first))


def _pm(xs: list[float]) -> str:
    if not xs:
        return "-"
    if len(xs) == 1:
        return f"{100 * xs[0]:.2f}"
    return f"{100 * statistics.fmean(xs):.2f} ± {100 * statistics.stdev(xs):.2f}"


def page_body(rows: list[dict[str, Any]], plot_link: str | None = None) -> str:
    """The markdown under the header: the protocol, one row per task and method, the summary
    per method and the plot's link. Pure: a function of the rows."""
    s = summarize(rows)
    tasks = _order(s, [*DEFAULT_TASKS, *TASKS])
    seeds = sorted({int(r["seed"]) for r in rows})
    lines = [
        f"- tasks: {', '.join(f'{t} ({_zoo(s[t])})' for t in tasks) or 'none'}; tuning seeds "
        f"{seeds}; every pick retrained from 3 fresh seeds (100 + 3 s + k) and scored on the "
        "test split, which was sealed while the methods chose; a diverged run scores 0; "
        "points = 100 x metric (accuracy, or R^2 floored at 0)",
        "- methods: `recipe` = `tune` at its default budget; `<search>-1x/-2x` = random, "
        "Optuna TPE + median pruner, Optuna TPE + Hyperband pruner, shuffled grid, over "
        "1cycle x max LR x weight decay x momentum x batch size, given 1x / 2x the "
        "recipe's seconds on that task and seed; `default` = the task's default 1cycle; "
        "`fastai` = one range test (1e-7 to 10, 100 steps, valley reading) + one 1cycle run; "
        "`prodigy` = Prodigy lr=1.0 with cosine annealing; `schedulefree` = Schedule-Free "
        "(SGD or AdamW as the task) at its default LR with 5% warm-up",
        "- seconds: the method's tuning (trials' wall seconds for the recipe and the "
        "searches; the run, and the range test, for the one-run methods), retraining not "
        "counted; method - recipe is paired by tuning seed, with a 95% percentile bootstrap "
        f"interval ({BOOTSTRAP_DRAWS} draws); a verdict needs >= {MIN_PAIRS} seeds",
        "",
        "| task | method | seeds | test (mean ± std) | seconds | method - recipe [95% CI] "
        "| verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    counts: dict[str, dict[str, int]] = {}
    for t in tasks:
        for m in _order(s[t], METHODS):
            cell = s[t][m]
            c = compare(s[t], m)
            diff = (
                "-"
                if c is None
                else f"{100 * c['mean']:+.2f} [{100 * c['lo']:+.2f}, {100 * c['hi']:+.2f}]"
            )
            v = "-" if c is None else c["verdict"]
            if c is not None and not v.startswith("-"):
                k = counts.setdefault(m, {"recipe ahead": 0, "level": 0, "recipe behind": 0})
                k[v] += 1
            lines.append(
                f"| {t} | {m} | {len(cell['test'])} | {_pm(list(cell['test'].values()))} | "
                f"{statistics.fmean(cell['seconds'].values()):.1f} | {diff} | {v} |"
            )
    lines += [
        "",
        f"Summary: per method, the tasks (with >= {MIN_PAIRS} paired seeds) where the recipe "
        "is significantly ahead (the interval of method - recipe below 0), level, or behind.",
        "",
        "| method | recipe ahead | level | recipe behind | tasks |",
        "|---|---|---|---|---|",
    ]
    for m in _order(counts, METHODS):
        k = counts[m]
        lines.append(
            f"| {m} | {k['recipe ahead']} | {k['level']} | {k['recipe behind']} | "
            f"{sum(k.values())} |"
        )
    if not counts:
        lines.append("| - | - | - | - | 0 |")
    if plot_link:
        lines += ["", f"![Test metric against tuning seconds, per task]({plot_link})"]
    return "\n".join(lines) + "\n"


def oracle_table(rows: list[dict[str, Any]], oracles: dict[str, dict[str, Any]]) -> str:
    """Each task's recipe against its oracle (``oracles``: `oracle.load` summaries with test
    scores, by task), the held-out tasks apart from the development ones: the recipe's test
    mean ± std over its tuning seeds (each the mean of its 3 retrainings), the oracle's
    choice and the default retrained on the test split, the regret (oracle - recipe, in
    points), the allowance (max(0.5, the oracle choice's test std)) and the verdict;
    misses say **MISSED**. Empty when no task has both."""
    import oracle  # benchmarks/oracle.py: the goal decision quality judges by

    s = summarize(rows)
    found = [t for t in _order(s, [*DEFAULT_TASKS, *TASKS]) if "recipe" in s[t]]
    found = [t for t in found if "test" in oracles.get(t, {})]
    if not found:
        return ""
    lines = [
        "#### The recipe against each task's oracle",
        "",
        "The oracle: `python benchmarks/oracle.py` (`--zoo heldout` for the held-out tasks), "
        "the 1cycle grid of batch x max LR x weight decay x momentum on 3 seeds, its best "
        "validation point and the default retrained from fresh seeds and scored on the test "
        "split. Goal as in decision quality: regret <= max(0.5, the oracle choice's test std) "
        "points. The recipe's rows are the head to head's (5 tuning seeds, each pick retrained "
        "from 3 fresh seeds).",
        "",
        "| task | zoo | recipe test (mean ± std over tuning seeds) | oracle's choice test | "
        "default test | regret | allowed | goal |",
        "|---|---|---|---|---|---|---|---|",
    ]
    met: dict[str, list[int]] = {}
    for t in found:
        rec = list(s[t]["recipe"]["test"].values())
        test = oracles[t]["test"]
        best = [score(x) for x in test["best"]]
        default = [score(x) for x in test["default"]]
        regret, allowed, ok = oracle.regret_goal(best, statistics.fmean(rec))
        zoo = _zoo(s[t])
        met.setdefault(zoo, [0, 0])[0 if ok else 1] += 1
        lines.append(
            f"| {t} | {zoo} | {_pm(rec)} | {_pm(best)} | {_pm(default)} | {regret:.2f} | "
            f"{allowed:.2f} | {'met' if ok else '**MISSED**'} |"
        )
    lines += [
        "",
        "Within goal, by zoo: "
        + "; ".join(f"{z} {k[0]} of {k[0] + k[1]}" for z, k in sorted(met.items()))
        + ".",
    ]
    return "\n".join(lines) + "\n"


def load_oracles() -> dict[str, dict[str, Any]]:
    """Every oracle summary on file, the development zoo's and the held-out zoo's, by task."""
    import oracle  # benchmarks/oracle.py

    out = dict(oracle.load(oracle.HELDOUT_JSON))
    out.update(oracle.load(oracle.ORACLE_JSON))
    return out


def _zoo(cells: dict[str, dict[str, Any]]) -> str:
    zoos = {c["zoo"] for c in cells.values()}
    return "/".join(sorted(zoos))


def plot(rows: list[dict[str, Any]], path: str | Path) -> None:
    """Test metric (mean ± std over the tuning seeds) against mean tuning seconds (log) for
    every method, one panel per task; written atomically as a PNG."""
    import io

    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from disciplined.files import write_bytes_atomic

    s = summarize(rows)
    tasks = _order(s, [*DEFAULT_TASKS, *TASKS])
    cols = min(3, max(1, len(tasks)))
    n_rows = max(1, math.ceil(len(tasks) / cols))
    fig, axes = plt.subplots(
        n_rows, cols, figsize=(max(8.0, 4.2 * cols), 3.4 * n_rows + 1.0), squeeze=False
    )
    colors = plt.get_cmap("tab20")
    markers = {"recipe": "*", **{f: "o" for f in SEARCHES}}
    for ax, t in zip(axes.flat, tasks, strict=False):
        for m in _order(s[t], METHODS):
            cell = s[t][m]
            ys = [100 * v for v in cell["test"].values()]
            x = statistics.fmean(cell["seconds"].values())
            i = METHODS.index(m) if m in METHODS else len(METHODS)
            f = family(m)
            hollow = f in SEARCHES and multiple(m) == 1
            color = "black" if m == "recipe" else colors(i % 20)
            ax.errorbar(
                max(x, 1e-2),
                statistics.fmean(ys),
                yerr=statistics.stdev(ys) if len(ys) > 1 else 0.0,
                fmt=markers.get(f, "s"),
                color=color,
                mfc="none" if hollow else color,
                ms=11 if m == "recipe" else 6,
                capsize=2,
                label=m,
            )
        ax.set_xscale("log")
        ticks = matplotlib.ticker
        ax.xaxis.set_major_formatter(ticks.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_locator(ticks.LogLocator(subs=(2.0, 5.0)))
        ax.xaxis.set_minor_formatter(ticks.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_title(f"{t} ({_zoo(s[t])})", fontsize=9)
        ax.set_xlabel("tuning seconds", fontsize=8)
        ax.set_ylabel("test (points)", fontsize=8)
        ax.tick_params(which="both", labelsize=7)
    for ax in list(axes.flat)[len(tasks) :]:
        ax.axis("off")
    handles, labels = {}, []
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in handles:
                handles[lab] = h
                labels.append(lab)
    if labels:
        fig.legend([handles[k] for k in labels], labels, loc="lower center", ncol=4, fontsize=7)
    legend_h = 0.22 * math.ceil(len(labels) / 4) / (3.4 * n_rows + 1.0)
    fig.tight_layout(rect=(0, legend_h + 0.02 if labels else 0, 1, 1))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    write_bytes_atomic(path, buf.getvalue())


def latest_per_task(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each task's rows at the last commit that ran it (the commit of its last row in the
    file's order): a chunk run after the library changed stands beside the tasks run
    before, each under its own commit (`page` names them), instead of hiding them."""
    rows = list(rows)
    last = {r["task"]: r.get("commit") for r in rows}
    return [r for r in rows if r.get("commit") == last[r["task"]]]


def commits_by_task(rows: Iterable[dict[str, Any]]) -> dict[str, list[str]]:
    """Each commit among ``rows`` and the tasks it ran, in order of first appearance."""
    out: dict[str, list[str]] = {}
    for r in rows:
        tasks = out.setdefault(str(r.get("commit")), [])
        if r["task"] not in tasks:
            tasks.append(r["task"])
    return out


def oldest_commit(rows: Sequence[dict[str, Any]]) -> str | None:
    """The commit of the earliest-dated row: the one a page of several commits is stamped
    with, so that it is marked stale as soon as any of its rows is."""
    dated = [r for r in rows if r.get("commit")]
    return min(dated, key=lambda r: str(r.get("date", "")))["commit"] if dated else None


def page(rows: list[dict[str, Any]], commit: str, results: Path, plot_path: Path | None) -> str:
    """The header (its commit line ``commit``; with rows from several commits, a line naming
    each commit's tasks; the results file, its rows' dates and load) and `page_body`."""
    head = _common.header("Head to head: the recipe against searches and one-run methods")
    lines = head.splitlines()
    lines = [f"- commit: {commit}" if ln.startswith("- commit: ") else ln for ln in lines]
    by_commit = commits_by_task(rows)
    if len(by_commit) > 1:
        lines.append(
            "- commits by task (each task's rows are from the last commit that ran it; the "
            "commit line above is the oldest): "
            + "; ".join(f"{c}: {', '.join(ts)}" for c, ts in by_commit.items())
        )
    loads = [r["load"] for r in rows if isinstance(r.get("load"), int | float)]
    dates = sorted(str(r.get("date", ""))[:10] for r in rows)
    heads = sorted({str(r.get("head", "?")) for r in rows})
    lines.append(
        f"- results: `{_rel(results)}`, {len(rows)} rows at "
        + (f"commit {commit}" if len(by_commit) <= 1 else f"{len(by_commit)} commits")
        + " (run at HEAD "
        f"{', '.join(heads) or '-'}; dated {dates[0] if dates else '-'} to "
        f"{dates[-1] if dates else '-'}"
        + (f"; load average (1 min) {min(loads):.2f} to {max(loads):.2f}" if loads else "")
        + ")"
    )
    link = None
    if plot_path is not None and rows:
        plot(rows, plot_path)
        inside = Path(plot_path).resolve().is_relative_to(ROOT)
        link = os.path.relpath(plot_path, ROOT / "docs") if inside else str(plot_path)
    body = page_body(rows, link)
    table = oracle_table(rows, load_oracles())
    return "\n".join(lines) + "\n\n" + body + ("\n" + table if table else "")


def _rel(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------- the methods


def search_space(entry: ZooEntry, task_batch: int):
    """The searches' space (`disciplined.search.SearchSpace`): 1cycle only, the batch sizes
    the recipe compares (the task's, half, a quarter); for SGD tasks the fair benchmarks'
    space (`fair.space`), for AdamW tasks the same shape around AdamW's scale (max LR 3e-5
    to 0.1, weight decay 1e-5 to 0.3)."""
    import fair

    sgd = fair.space(task_batch)
    if entry.optimizer != "adamw":
        return sgd
    return dataclasses.replace(
        sgd,
        lr=(3e-5, 0.1),
        weight_decay=(1e-5, 0.3),
        lr_grid=(3e-4, 1e-3, 3e-3, 1e-2),
        weight_decay_grid=(0.0, 1e-2, 1e-1),
        optimizer="adamw",
    )


def hyperband_bounds(
    previous: Sequence[dict[int, float] | None],
    finished: int,
    epochs: float,
    eta: int = 3,
    min_resource: int = 1,
    study: str = "head-to-head",
) -> list[float | None] | None:
    """The pruning bounds (after epochs ``1 .. ceil(epochs) - 1``) of trial number
    ``len(previous)`` under Optuna's ``HyperbandPruner(min_resource, max_resource=epochs,
    reduction_factor=eta)``. ``previous[i]`` is trial i's validation metric after each whole
    epoch it reached (None: a trial that failed); ``finished`` counts the trials that ran
    to the end.

    As Optuna: nothing is pruned before a trial has finished (``finished == 0``: its
    ``"auto"`` maximum resource is not known yet); the trial goes to bracket b by the CRC32
    of ``"{study}_{number}"`` against the brackets' allocation budgets; in bracket b, rung
    k is at epoch ``min_resource * eta**(b + k)``, and a trial continues past it when its
    value is among the top ``max(1, n // eta)`` of the ``n`` values the bracket's trials
    had there, its own included, i.e. when it is at least the ``max(1, (m + 1) // eta)``-th
    best of the ``m`` others' (higher is better). Unlike Optuna, the value compared is the
    trial's best so far (the library's `PruneRule`), and TPE samples from every bracket's
    trials together."""
    e = math.ceil(epochs)
    if finished < 1:
        return None
    n_brackets = math.floor(math.log(e / min_resource, eta) + 1e-9) + 1
    budgets = [
        math.ceil(n_brackets * eta ** (n_brackets - 1 - b) / (n_brackets - b))
        for b in range(n_brackets)
    ]

    def bracket(number: int) -> int:
        n = binascii.crc32(f"{study}_{number}".encode()) % sum(budgets)
        for b, budget in enumerate(budgets):
            n -= budget
            if n < 0:
                return b
        return n_brackets - 1  # unreachable

    mine = bracket(len(previous))
    rivals = [p for i, p in enumerate(previous) if p and bracket(i) == mine]
    bounds: list[float | None] = [None] * max(0, e - 1)
    k = 0
    while (step := min_resource * eta ** (mine + k)) < e:
        values = sorted((p[step] for p in rivals if step in p), reverse=True)
        if values:
            top = max(1, (len(values) + 1) // eta)
            bounds[step - 1] = values[top - 1]
        k += 1
    return bounds if any(b is not None for b in bounds) else None


def _epoch_metrics(history: Any) -> dict[int, float]:
    """A trial's finite validation metric after each whole epoch."""
    from disciplined.training.history import whole_epoch

    out: dict[int, float] = {}
    if history is None:
        return out
    for ev in history.evals:
        n = whole_epoch(ev.epoch)
        if n is not None and math.isfinite(ev.val_metric):
            out.setdefault(n, ev.val_metric)
    return out


def _hyperband_stop(epochs: float):
    """The library's pruning rule with `hyperband_bounds` as its bounds: a subclass of
    `disciplined.search.MedianStop`, the type the searches take."""
    from disciplined.search import MedianStop

    class HyperbandStop(MedianStop):
        def bounds(self, finished, epochs):  # type: ignore[override]
            previous = [
                _epoch_metrics(r.history) if r.status in ("ok", "pruned") else None
                for r in finished
            ]
            done = sum(r.status == "ok" for r in finished)
            return hyperband_bounds(previous, done, epochs)

    return HyperbandStop(n_startup_trials=1, warmup_epochs=0)


def run_search(name: str, entry: ZooEntry, seed: int, budget_s: float) -> list[dict[str, Any]]:
    """Run search ``name`` on the task's validation split until its trials' wall seconds
    reach ``budget_s``; every trial (hyper-parameters, metric, seconds, start), in order."""
    import torch

    from disciplined import load_task
    from disciplined.search import (
        MedianStop,
        grid_search,
        random_search,
        tpe_search,
        trial_metric,
    )

    torch.set_num_threads(1)
    task_batch = load_task(entry.ref).default_batch_size
    space = search_space(entry, task_batch)
    epochs = entry.epochs
    common = {"seed": seed, "budget_seconds": budget_s, "task_options": {"split": "val"}}
    if name == "grid":
        r = grid_search(entry.ref, space, epochs, order_seed=seed, **common)
    elif name == "random":
        r = random_search(entry.ref, space, MAX_TRIALS, epochs, **common)
    elif name == "tpe-median":
        rule = MedianStop(n_startup_trials=5, warmup_epochs=max(1, int(epochs // 4)))
        r = tpe_search(entry.ref, space, MAX_TRIALS, epochs, pruning=rule, **common)
    elif name == "tpe-hyperband":
        rule = _hyperband_stop(epochs)
        r = tpe_search(entry.ref, space, MAX_TRIALS, epochs, pruning=rule, **common)
    else:
        raise ValueError(f"search must be one of {SEARCHES}, got {name!r}")
    out, spent = [], 0.0
    for t in r.trials:
        m = trial_metric(t) if t.status == "ok" else math.nan
        out.append(
            {
                "hparams": dict(t.spec.hparams),
                "metric": m,
                "seconds": t.seconds,
                "start": spent,
                "pruned": t.status == "pruned",
            }
        )
        spent += t.seconds
    return out


def pick_within(trials: list[dict[str, Any]], budget_s: float) -> dict[str, Any]:
    """What a search given ``budget_s`` seconds would have handed its user: among the trials
    it would have started (those starting while the seconds spent were under the budget),
    the best finite metric (ties: the earliest), with those trials' seconds and count."""
    started = [t for t in trials if t["start"] < budget_s]
    best = None
    for t in started:
        if math.isfinite(t["metric"]) and (best is None or t["metric"] > best["metric"]):
            best = t
    return {
        "trial": best,
        "seconds": sum(t["seconds"] for t in started),
        "trials": len(started),
        "pruned": sum(t["pruned"] for t in started),
    }


def default_hparams(entry: ZooEntry, task_batch: int) -> dict[str, Any]:
    """The task's default 1cycle (`ZooEntry.default`) at its batch size, as an HParams dict."""
    from disciplined import HParams

    return HParams(
        **entry.default,
        batch_size=task_batch,
        optimizer=entry.optimizer,  # type: ignore[arg-type]
    ).to_dict()


def run_recipe(entry: ZooEntry, seed: int, out: str, steps: int) -> dict[str, Any]:
    """`tune` at its default budget on the task's validation split (resumed from ``out``)."""
    import torch

    from disciplined import tune
    from disciplined.errors import UsageError

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    try:
        r = tune(
            entry.ref,
            epochs=entry.epochs,
            optimizer=entry.optimizer,
            seed=seed,
            out=out,
            range_steps=steps,
        )
    except UsageError as exc:  # every final run diverged: tune refuses to answer
        return {
            "pick": None,
            "val": None,
            "seconds": time.perf_counter() - t0,
            "epochs": entry.epochs,
            "error": str(exc),
        }
    return {
        "pick": r.hparams.to_dict(),
        "val": _num(r.final_metric),
        "seconds": sum(c["seconds"] for c in r.compute.values()),
        "wall_seconds": time.perf_counter() - t0,
        "epochs": r.epochs,
        "tune_epochs": sum(c["epochs"] for c in r.compute.values()),
        "verdict": r.diagnosis.verdict,
    }


def run_fastai(entry: ZooEntry, seed: int) -> dict[str, Any]:
    """fastai's habit: one range test (1e-7 to 10, 100 steps, exponential) at the default
    configuration, its ``valley`` reading as the max LR of one 1cycle run."""
    import fair

    pick, test_s, info = fastai_reading(entry, seed)
    val, run_s = fair.run_on(entry.ref, "val", pick, entry.epochs, seed)
    return {
        "pick": pick,
        "val": _num(val),
        "seconds": test_s + run_s,
        "epochs": entry.epochs,
        **info,
    }


def fastai_reading(entry: ZooEntry, seed: int) -> tuple[dict[str, Any], float, dict[str, Any]]:
    """fastai's range test at the default configuration: the default with the ``valley``
    reading as max LR (the default's where there is none), the test's seconds, and the
    reading's reason and reliability."""
    import torch

    from disciplined import HParams, load_task, lr_range_test
    from disciplined.trials.hparams import build_optimizer

    torch.set_num_threads(1)
    task = load_task(entry.ref, {"split": "val"})
    hp = default_hparams(entry, task.default_batch_size)
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    model = task.build_model({})
    optimizer = build_optimizer(model, HParams.from_dict(hp))
    test = lr_range_test(
        model,
        optimizer,
        task.loss_fn,
        task.train_data,
        start_lr=1e-7,
        end_lr=10.0,
        num_steps=100,
        batch_size=hp["batch_size"],
        seed=seed,
        rule="valley",
    )
    test_s = time.perf_counter() - t0
    s = test.suggestion
    pick = HParams.from_dict({**hp, "max_lr": s.max_lr if s is not None else hp["max_lr"]})
    info = {
        "reading": None if s is None else s.reason,
        "reliable": None if s is None else s.reliable,
    }
    return pick.to_dict(), test_s, info


def run_equal_seconds(
    method: str, entry: ZooEntry, seed: int, budget_s: float, default: dict[str, Any]
) -> tuple[dict[str, Any], str]:
    """The one-run alternative ``method`` (``default-eq``, ...) given ``budget_s`` seconds as
    a search over its knob (`EQUAL_FACTORS`, centre out; a run starts only while the seconds
    spent, fastai's range test included, are under ``budget_s``; at least one run): its best
    validation run as the pick, the seconds, the runs made and the factor picked; and the
    kind of retraining its pick needs (``hparams`` or ``lrfree``)."""
    import fair

    from disciplined import HParams

    base = method.removesuffix("-eq")
    spent, info, centre = 0.0, {}, default
    if base == "fastai":
        centre, spent, info = fastai_reading(entry, seed)
    tried: list[dict[str, Any]] = []
    for f in EQUAL_FACTORS:
        if tried and spent >= budget_s:
            break
        if base in ("default", "fastai"):
            try:
                pick = HParams.from_dict({**centre, "max_lr": centre["max_lr"] * f}).to_dict()
            except ValueError:  # outside the bounds a trial accepts
                continue
            val, sec = fair.run_on(entry.ref, "val", pick, entry.epochs, seed)
        else:
            import _lrfree

            got = _lrfree.train(
                entry.ref,
                "val",
                base,
                entry.optimizer,
                default["weight_decay"],
                entry.epochs,
                seed,
                scale=f,
            )
            val, sec, pick = got["metric"], got["seconds"], got["pick"]
        spent += sec
        tried.append({"factor": f, "val": _num(val), "pick": pick})
    good = [t for t in tried if t["val"] is not None]
    best = max(good, key=lambda t: t["val"]) if good else None
    res = {
        "pick": None if best is None else best["pick"],
        "val": None if best is None else best["val"],
        "seconds": spent,
        "epochs": entry.epochs,
        "budget_seconds": budget_s,
        "trials": len(tried),
        "factor": None if best is None else best["factor"],
        **info,
    }
    return res, "hparams" if base in ("default", "fastai") else "lrfree"


def retrain(kind: str, entry: ZooEntry, pick: dict[str, Any] | None, epochs: float, seed: int):
    """The pick of tuning seed ``seed`` retrained from each of `retrain_seeds` and scored on
    the test split: the raw metrics (None where a run diverged)."""
    if pick is None:
        return [None] * RETRAINS
    out = []
    for s in retrain_seeds(seed):
        if kind == "lrfree":
            import _lrfree

            name = "prodigy" if pick["optimizer"] == "prodigy" else "schedulefree"
            m = _lrfree.train(
                entry.ref,
                "test",
                name,
                entry.optimizer,
                pick["weight_decay"],
                epochs,
                s,
                scale=pick.get("scale", 1.0),
            )["metric"]
        else:
            import fair

            m = fair.run_on(entry.ref, "test", pick, epochs, s)[0]
        out.append(_num(m))
    return out


def warm_up(entry: ZooEntry, methods: Sequence[str], default: dict[str, Any]) -> None:
    """One epoch of the task's default run, and of each learning-rate-free optimizer asked
    for, untimed: a process's first training run pays for lazy imports and first calls
    (1.9 s against 0.2 s for cancer-mlp's 30 epochs), which no method's seconds should."""
    import fair

    fair.run_on(entry.ref, "val", default, 1.0, 0)
    for name in ("prodigy", "schedulefree"):
        if name in methods or f"{name}-eq" in methods:
            import _lrfree

            _lrfree.train(entry.ref, "val", name, entry.optimizer, 0.0, 1.0, 0)


def _sealed():
    import fair

    return fair.sealed()


def run_unit(
    task: str,
    seed: int,
    methods: list[str],
    results: str,
    commit: str,
    head: str,
    cache: str,
    quick: bool,
    deadline: float,
) -> int:
    """Run ``methods`` on one task and tuning seed, appending each row to ``results`` as it
    is scored; the number of rows written. No method starts after ``deadline`` (epoch
    seconds). The searches read the recipe's seconds from its row (run first if missing)."""
    import torch

    from disciplined import load_task

    os.chdir(ROOT)
    share(results)
    torch.set_num_threads(1)
    entry = TASKS[task]
    task_batch = load_task(entry.ref).default_batch_size
    have = {
        r["method"]: r
        for r in read_rows(results)
        if r.get("commit") == commit
        and r["task"] == task
        and int(r["seed"]) == seed
        and bool(r.get("quick")) == quick
    }
    written = 0
    scored: dict[str, list] = {}  # a pick already retrained (e.g. a search's 1x and 2x)

    def emit(method: str, kind: str, res: dict[str, Any], **extra: Any) -> dict[str, Any]:
        nonlocal written
        epochs = res.get("epochs", entry.epochs)
        key = json.dumps([kind, res["pick"], epochs], sort_keys=True)
        if key not in scored:
            scored[key] = retrain(kind, entry, res["pick"], epochs, seed)
        tests = scored[key]
        row = {
            "commit": commit,
            "head": head,
            "task": task,
            "zoo": "heldout" if task in HELDOUT and task not in MOVED_TO_DEV else "dev",
            "method": method,
            "seed": seed,
            "seconds": res["seconds"],
            "val": res.get("val"),
            "test": statistics.fmean(score(x) for x in tests),
            "tests": tests,
            "retrain_seeds": retrain_seeds(seed),
            "epochs": epochs,
            "pick": res["pick"],
            "date": _dt.datetime.now().isoformat(timespec="seconds"),
            "load": (_common.load_average() or (math.nan,))[0],
            "machine": f"{_common.cpu_model()}, {os.cpu_count()} cores",
            "quick": quick,
            **{k: v for k, v in res.items() if k not in ("pick", "seconds", "val", "epochs")},
            **extra,
        }
        if not math.isfinite(row["load"]):
            row["load"] = None
        append_row(results, row)
        have[method] = row
        written += 1
        return row

    def late() -> bool:
        return time.time() > deadline

    if not late():
        with _sealed():
            warm_up(entry, methods, default_hparams(entry, task_batch))

    searches = [m for m in methods if family(m) in SEARCHES]
    equal = [m for m in EQUAL_SECONDS if m in methods]
    needs_recipe = "recipe" in methods or searches or equal
    if needs_recipe and "recipe" not in have and not late():
        out = str(Path(cache) / "zoo-tune" / f"{task}-s{seed}-r{100 if quick else RANGE_STEPS}")
        with _sealed():
            res = run_recipe(entry, seed, out, 100 if quick else RANGE_STEPS)
        emit("recipe", "hparams", res)
    recipe_s = have["recipe"]["seconds"] if "recipe" in have else None
    for name in SEARCHES:
        wanted = [m for m in searches if family(m) == name]
        if not wanted or recipe_s is None or late():
            continue
        one = min(recipe_s, QUICK_SEARCH_S) if quick else recipe_s
        with _sealed():
            trials = run_search(name, entry, seed, one * max(multiple(m) for m in wanted))
        for m in wanted:
            budget = one * multiple(m)
            got = pick_within(trials, budget)
            best = got["trial"]
            res = {
                "pick": None if best is None else best["hparams"],
                "val": None if best is None else _num(best["metric"]),
                "seconds": got["seconds"],
            }
            emit(
                m, "hparams", res, budget_seconds=budget, trials=got["trials"], pruned=got["pruned"]
            )
    default = default_hparams(entry, task_batch)
    for m in (x for x in ONE_RUN if x in methods):
        if late():
            break
        with _sealed():
            if m == "default":
                import fair

                val, sec = fair.run_on(entry.ref, "val", default, entry.epochs, seed)
                res = {"pick": default, "val": _num(val), "seconds": sec}
                kind = "hparams"
            elif m == "fastai":
                res, kind = run_fastai(entry, seed), "hparams"
            else:
                import _lrfree

                got = _lrfree.train(
                    entry.ref,
                    "val",
                    m,
                    entry.optimizer,
                    default["weight_decay"],
                    entry.epochs,
                    seed,
                )
                res = {"pick": got["pick"], "val": _num(got["metric"]), "seconds": got["seconds"]}
                kind = "lrfree"
        emit(m, kind, res)
    for m in equal:
        if late() or recipe_s is None:
            break
        one = min(recipe_s, QUICK_SEARCH_S) if quick else recipe_s
        with _sealed():
            res, kind = run_equal_seconds(m, entry, seed, one, default)
        emit(m, kind, res)
    return written


# --------------------------------------------------------------------------- command line


def parse_seeds(text: str) -> list[int]:
    """``N`` (seeds 0 .. N-1), ``a-b`` (a .. b) or ``a,b,c``."""
    text = text.strip()
    if "," in text:
        return sorted({int(x) for x in text.split(",") if x.strip()})
    if "-" in text:
        a, b = (int(x) for x in text.split("-", 1))
        return list(range(a, b + 1))
    return list(range(int(text)))


def parse_methods(text: str | None) -> list[str]:
    """Method names, or search names standing for both their rows (``random`` ->
    ``random-1x``, ``random-2x``); one-line error for an unknown one."""
    if not text:
        return list(METHODS)
    out: list[str] = []
    for name in (x.strip() for x in text.split(",") if x.strip()):
        if name in SEARCHES:
            out += [f"{name}-{m}x" for m in MULTIPLES]
        elif name in METHODS:
            out.append(name)
        else:
            raise SystemExit(
                f"unknown method {name!r}: one of {', '.join(METHODS)} (or a search: "
                f"{', '.join(SEARCHES)})"
            )
    return [m for m in METHODS if m in out]


def main() -> int:
    """Run the units left (or none, with ``--page``) and print the page."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default=",".join(DEFAULT_TASKS))
    ap.add_argument("--seeds", default="5", help="N (0..N-1), a-b, or a,b,c")
    ap.add_argument("--methods", default=None, help="comma-separated (default: all)")
    ap.add_argument("--results", default=None, help=f"default: {_rel(RESULTS)}")
    ap.add_argument("--workers", type=int, default=1, help="processes, one (task, seed) each")
    ap.add_argument("--max-minutes", type=float, default=None, help="start nothing after this")
    ap.add_argument("--cache", default=None, help="folder of the recipe's tune outputs")
    ap.add_argument("--quick", action="store_true", help="one small task, one seed, tiny budget")
    ap.add_argument("--page", action="store_true", help="only rebuild the page from --results")
    ap.add_argument("--commit", default=None, help="with --page: the rows of this commit")
    args = ap.parse_args()
    os.chdir(ROOT)
    if args.quick:
        tasks, seeds, methods = [QUICK_TASK], [0], list(QUICK_METHODS)
    else:
        tasks = [t for t in args.tasks.split(",") if t]
        seeds, methods = parse_seeds(args.seeds), parse_methods(args.methods)
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise SystemExit(f"unknown task(s) {unknown}: one of {', '.join(TASKS)}")
    if args.results:
        results = Path(args.results)
    elif args.quick:  # quick numbers mean nothing: never into the committed file
        results = _common.cache_dir(None, "bench-h2h-quick-") / "head_to_head.jsonl"
    else:
        results = RESULTS
    plot_path = results.with_suffix(".png")
    commit = code_commit()

    def rows_here() -> list[dict[str, Any]]:  # a quick run's rows and the others never mix
        return [r for r in read_rows(results) if bool(r.get("quick")) == args.quick]

    if not args.page:
        claim(results)
        head = _common.commit()
        cache = _common.cache_dir(args.cache, "bench-h2h-")
        units = plan(tasks, seeds, methods, done_keys(rows_here(), commit))
        deadline = time.time() + (args.max_minutes * 60 if args.max_minutes else math.inf)
        jobs = [
            (t, s, ms, str(results), commit, head, str(cache), args.quick, deadline)
            for t, s, ms in units
        ]
        print(f"{len(units)} (task, seed) units to run at commit {commit}", file=sys.stderr)
        started = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr):  # the page alone goes to stdout
            written = sum(_common.pool_map(run_unit, jobs, max(1, args.workers)))
        print(
            f"{written} rows written to {results} in {time.perf_counter() - started:.0f} s",
            file=sys.stderr,
        )
    rows = rows_here()
    if args.commit:
        mine, chosen = [r for r in rows if r.get("commit") == args.commit], args.commit
    else:
        mine = latest_per_task(rows)
        chosen = oldest_commit(mine) or commit
    print(page(mine, chosen, results, plot_path if mine else None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
