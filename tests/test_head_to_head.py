"""The head to head's pure parts (`benchmarks/head_to_head.py`), without training: what a
rerun skips, the results file, the paired bootstrap, the Hyperband rule against Optuna's, and
the page built from a results file."""

from __future__ import annotations

import json
import math
import random
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"


@pytest.fixture(scope="module")
def h2h():
    sys.path.insert(0, str(BENCH))
    try:
        import head_to_head
    finally:
        sys.path.remove(str(BENCH))
    return head_to_head


def _row(task, method, seed, test, seconds=1.0, commit="abc", **kw):
    return {
        "commit": commit,
        "task": task,
        "method": method,
        "seed": seed,
        "test": test,
        "seconds": seconds,
        "zoo": "dev",
        **kw,
    }


# ------------------------------------------------------------------ resume and the file


def test_a_rerun_skips_the_rows_present_at_its_commit_and_runs_the_recipe_first(h2h):
    rows = [
        _row("bn-cnn", "recipe", 0, 0.9),
        _row("bn-cnn", "random-1x", 0, 0.9),
        _row("bn-cnn", "random-2x", 0, 0.9),
        _row("bn-cnn", "default", 0, 0.9),
        _row("bn-cnn", "random-1x", 1, 0.9, commit="old"),  # another commit: not done
    ]
    done = h2h.done_keys(rows, "abc")
    methods = ["default", "random-1x", "random-2x", "recipe"]
    units = h2h.plan(["bn-cnn", "co2-forecast"], [0, 1], methods, done)
    assert units == [
        ("bn-cnn", 1, ["recipe", "random-1x", "random-2x", "default"]),
        ("co2-forecast", 0, ["recipe", "random-1x", "random-2x", "default"]),
        ("co2-forecast", 1, ["recipe", "random-1x", "random-2x", "default"]),
    ]  # (bn-cnn, 0) is done and dropped; the recipe comes first in every unit
    assert h2h.plan(["bn-cnn"], [0], methods, done) == []


def test_the_results_file_takes_one_line_a_row_and_survives_a_cut_write(h2h, tmp_path, capsys):
    path = tmp_path / "r" / "h2h.jsonl"
    h2h.append_row(path, _row("bn-cnn", "recipe", 0, math.nan, pick={"d": math.inf}))
    h2h.append_row(path, _row("bn-cnn", "default", 0, 0.5))
    with open(path, "a") as f:
        f.write('{"commit": "abc", "task": "bn-')  # a process killed mid-line
    rows = h2h.read_rows(path)
    assert [r["method"] for r in rows] == ["recipe", "default"]
    assert rows[0]["test"] is None and rows[0]["pick"] == {"d": None}  # JSON has no NaN
    assert "not a results row" in capsys.readouterr().err
    assert h2h.read_rows(tmp_path / "missing.jsonl") == []


def test_methods_and_seeds_on_the_command_line(h2h):
    assert h2h.parse_seeds("5") == [0, 1, 2, 3, 4]
    assert h2h.parse_seeds("2-4") == [2, 3, 4]
    assert h2h.parse_seeds("3,0") == [0, 3]
    assert h2h.parse_methods("default,random") == ["random-1x", "random-2x", "default"]
    assert h2h.parse_methods(None) == list(h2h.METHODS)
    with pytest.raises(SystemExit, match="unknown method"):
        h2h.parse_methods("bayes")
    assert h2h.family("tpe-median-2x") == "tpe-median" and h2h.multiple("tpe-median-2x") == 2
    assert h2h.family("schedulefree") == "schedulefree"
    assert h2h.retrain_seeds(0) == [100, 101, 102] and h2h.retrain_seeds(2) == [106, 107, 108]
    assert len(h2h.DEFAULT_TASKS) >= 6 and set(h2h.DEFAULT_TASKS) <= set(h2h.TASKS)
    assert {h2h.TASKS[t].module for t in h2h.DEFAULT_TASKS} == {"tasks", "heldout"}


def test_a_search_at_1x_is_its_2x_run_cut_where_a_1x_search_would_have_stopped(h2h):
    trials = [
        {"metric": 0.5, "seconds": 2.0, "start": 0.0, "pruned": False, "hparams": {"i": 0}},
        {"metric": math.nan, "seconds": 1.0, "start": 2.0, "pruned": True, "hparams": {"i": 1}},
        {"metric": 0.7, "seconds": 2.0, "start": 3.0, "pruned": False, "hparams": {"i": 2}},
        {"metric": 0.7, "seconds": 2.0, "start": 5.0, "pruned": False, "hparams": {"i": 3}},
        {"metric": 0.9, "seconds": 2.0, "start": 7.0, "pruned": False, "hparams": {"i": 4}},
    ]
    one = h2h.pick_within(trials, 4.0)  # trials starting under 4 s: 0, 1, 2 (ends at 5 s)
    assert one["trial"]["hparams"] == {"i": 2} and one["seconds"] == 5.0
    assert one["trials"] == 3 and one["pruned"] == 1
    two = h2h.pick_within(trials, 8.0)
    assert two["trial"]["hparams"] == {"i": 4} and two["seconds"] == 9.0
    assert h2h.pick_within(trials[1:2], 4.0)["trial"] is None  # nothing finite: no pick


# ------------------------------------------------------------------ statistics


def test_the_bootstrap_interval_on_known_data(h2h):
    assert h2h.bootstrap_interval([0.02] * 5) == pytest.approx((0.02, 0.02, 0.02))
    mean, lo, hi = h2h.bootstrap_interval([1.0, 2.0, 3.0, 4.0, 5.0])
    # the mean of 5 draws from {1..5}: sd sqrt(2/5) = 0.63, so about 3 -+ 1.24
    assert mean == 3.0 and 1.5 < lo < 2.1 and 3.9 < hi < 4.5
    assert h2h.bootstrap_interval([1.0, 2.0, 3.0, 4.0, 5.0]) == (mean, lo, hi)  # seeded
    _, lo, hi = h2h.bootstrap_interval([-0.01, 0.012, -0.004, 0.008, 0.0])
    assert lo < 0 < hi
    assert h2h.verdict(-0.03, -0.01, 5) == "recipe ahead"
    assert h2h.verdict(0.01, 0.03, 5) == "recipe behind"
    assert h2h.verdict(-0.01, 0.01, 5) == "level"
    assert h2h.verdict(-0.03, -0.01, 2).startswith("-")  # too few seeds for a verdict
    with pytest.raises(ValueError):
        h2h.bootstrap_interval([])


def test_a_diverged_pick_scores_zero_and_r2_is_floored(h2h):
    assert h2h.score(None) == 0.0 and h2h.score(math.nan) == 0.0
    assert h2h.score(-0.4) == 0.0 and h2h.score(0.93) == 0.93


# ------------------------------------------------------------------ Hyperband against Optuna


def test_the_hyperband_bounds_prune_as_optunas_hyperband_pruner(h2h):
    optuna = pytest.importorskip("optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    epochs = 10
    study = optuna.create_study(
        study_name="head-to-head",
        direction="maximize",
        pruner=optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=epochs, reduction_factor=3
        ),
    )
    rng = random.Random(0)
    previous: list[dict[int, float]] = []
    finished = 0
    pruned_somewhere = 0
    for _ in range(40):
        # a rising curve, so the best so far (the library's rule) is the value at the epoch
        rate, ceiling = rng.uniform(0.1, 1.0), rng.uniform(0.3, 1.0)
        curve = {e: ceiling * (1 - math.exp(-rate * e)) for e in range(1, epochs + 1)}
        bounds = h2h.hyperband_bounds(previous, finished, epochs)
        mine = next(
            (
                e
                for e in range(1, epochs)
                if bounds is not None and bounds[e - 1] is not None and curve[e] < bounds[e - 1]
            ),
            None,
        )
        trial = study.ask()
        theirs = None
        for e in range(1, epochs + 1):
            trial.report(curve[e], e)
            if trial.should_prune():
                theirs = e
                break
        assert mine == theirs, (len(previous), mine, theirs)
        if theirs is None:
            study.tell(trial, curve[epochs])
            finished += 1
            previous.append(curve)
        else:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            pruned_somewhere += 1
            previous.append({e: v for e, v in curve.items() if e <= theirs})
    assert pruned_somewhere >= 5  # the comparison covered pruned trials, not only survivors
    assert h2h.hyperband_bounds([], 0, epochs) is None  # nothing finished: nothing pruned


# ------------------------------------------------------------------ the page


def _fixture_rows():
    """Three tasks x 5 seeds: random-1x well below the recipe on bn-cnn, above it on
    co2-forecast, level on deep-mlp; default on one task with 2 seeds (no verdict)."""
    rng = random.Random(1)
    rows = []
    for task, shift in (("bn-cnn", -0.05), ("co2-forecast", 0.04), ("deep-mlp", 0.0)):
        zoo = "heldout" if task == "co2-forecast" else "dev"
        for s in range(5):
            base = 0.8 + rng.uniform(-0.01, 0.01)
            noise = rng.uniform(-0.01, 0.01) if shift == 0 else 0.0
            rows.append(_row(task, "recipe", s, base, 10.0, zoo=zoo, load=1.5, date="2026-12-07"))
            rows.append(
                _row(
                    task,
                    "random-1x",
                    s,
                    base + shift + noise,
                    11.0,
                    zoo=zoo,
                    load=2.5,
                    date="2026-12-08",
                )
            )
    rows += [_row("bn-cnn", "default", s, None, 1.0) for s in (0, 1)]  # diverged: scores 0
    return rows


def test_the_page_from_a_results_file(h2h, tmp_path, monkeypatch):
    path = tmp_path / "h2h.jsonl"
    for r in _fixture_rows():
        h2h.append_row(path, r)
    h2h.append_row(path, _row("bn-cnn", "recipe", 0, 0.1, commit="other"))  # another commit
    rows = [r for r in h2h.read_rows(path) if r["commit"] == "abc"]
    body = h2h.page_body(rows, "plot.png")
    lines = body.splitlines()

    def line(task, method):
        return next(ln for ln in lines if ln.startswith(f"| {task} | {method} |"))

    assert "| verdict |" in body and "|---|" in body
    assert line("bn-cnn", "random-1x").endswith("| recipe ahead |")
    assert "-5.00 [-5.00, -5.00]" in line("bn-cnn", "random-1x")
    assert line("co2-forecast", "random-1x").endswith("| recipe behind |")
    assert line("deep-mlp", "random-1x").endswith("| level |")
    assert "| 0.00 ± 0.00 | 1.0 |" in line("bn-cnn", "default")  # diverged runs score 0
    assert line("bn-cnn", "default").endswith("| - (n < 3) |")
    assert "| 5 | 80." in line("bn-cnn", "recipe") and "| 10.0 | - | - |" in line(
        "bn-cnn", "recipe"
    )
    assert "co2-forecast (dev: moved)" in body and "bn-cnn (dev)" in body  # MOVED_TO_DEV
    assert "| random-1x | 1 | 1 | 1 | 3 |" in body  # ahead, level, behind, tasks
    assert "default |" not in body.split("| method | recipe ahead |")[1]  # no verdict, no count
    assert "![Test metric against tuning seconds, per task](plot.png)" in body
    # the whole page: header with the rows' commit, the results line, and the plot written
    monkeypatch.setattr(sys, "argv", ["benchmarks/head_to_head.py", "--page"])
    plot = tmp_path / "h2h.png"
    text = h2h.page(rows, "abc", path, plot)
    assert "\n- commit: abc\n" in text and "- machine: " in text
    assert "32 rows at commit abc" in text and "load average (1 min) 1.50 to 2.50" in text
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads(path.read_text().splitlines()[0])["commit"] == "abc"


# ------------------------------------------------------------------ equal seconds


@pytest.mark.slow
def test_an_equal_seconds_row_searches_its_knob_centre_out_within_the_recipes_seconds(
    h2h, monkeypatch
):
    monkeypatch.chdir(ROOT)  # zoo task references are relative to the repository root
    entry = h2h.TASKS["cancer-mlp"]
    default = h2h.default_hparams(entry, 16)
    # no seconds to spend: the one run at the method's own setting, as its one-run row
    res, kind = h2h.run_equal_seconds("default-eq", entry, 0, 0.0, default)
    assert kind == "hparams" and res["trials"] == 1 and res["factor"] == 1.0
    assert res["pick"]["max_lr"] == pytest.approx(default["max_lr"])
    # seconds for every factor: each tried once, the best validation run picked
    calls = []
    import fair

    def fake(ref, split, hp, epochs, seed):  # validation peaks at 3x the default's max LR
        calls.append(hp["max_lr"])
        return 1.0 - abs(math.log(hp["max_lr"] / (3 * default["max_lr"]))), 1.0

    monkeypatch.setattr(fair, "run_on", fake)
    res, _ = h2h.run_equal_seconds("default-eq", entry, 0, 1e9, default)
    factors = [x / default["max_lr"] for x in calls]
    assert factors == pytest.approx(list(h2h.EQUAL_FACTORS))  # all within the LR bounds
    assert res["factor"] == 3.0 and res["pick"]["max_lr"] == pytest.approx(3 * default["max_lr"])
    assert res["seconds"] == pytest.approx(len(calls))
    # 2.5 s allowed at 1 s a run: a third run starts at 2 s spent, a fourth does not
    calls.clear()
    res, _ = h2h.run_equal_seconds("default-eq", entry, 0, 2.5, default)
    assert res["trials"] == 3 and res["factor"] == 3.0


@pytest.mark.slow
def test_the_lr_free_optimizers_knob_is_scaled_and_kept_in_the_pick(h2h, monkeypatch):
    monkeypatch.chdir(ROOT)
    import _lrfree

    cfg = _lrfree.config("schedulefree", "sgd", 0.0, 100, scale=3.0)
    assert cfg["lr"] == pytest.approx(3.0) and cfg["scale"] == 3.0
    cfg = _lrfree.config("prodigy", "adamw", 0.0, 100, scale=0.1)
    assert cfg["d_coef"] == pytest.approx(0.1) and cfg["lr"] == 1.0
    entry = h2h.TASKS["cancer-mlp"]
    default = h2h.default_hparams(entry, 16)
    res, kind = h2h.run_equal_seconds("prodigy-eq", entry, 0, 0.0, default)
    assert kind == "lrfree" and res["trials"] == 1 and res["pick"]["d_coef"] == 1.0


def test_the_page_takes_each_tasks_last_commit_and_names_every_commit(h2h, tmp_path, monkeypatch):
    rows = [
        _row("bn-cnn", "recipe", 0, 0.80, commit="old"),
        _row("co2-forecast", "recipe", 0, 0.70, commit="old"),
        _row("bn-cnn", "recipe", 0, 0.90, commit="new"),
        _row("bn-cnn", "random-1x", 0, 0.85, commit="new"),
    ]
    rows[0]["date"] = rows[1]["date"] = "2026-12-06T10:00:00"
    rows[2]["date"] = rows[3]["date"] = "2026-12-07T10:00:00"
    picked = h2h.latest_per_task(rows)
    assert [(r["task"], r["commit"], r["method"]) for r in picked] == [
        ("co2-forecast", "old", "recipe"),
        ("bn-cnn", "new", "recipe"),
        ("bn-cnn", "new", "random-1x"),
    ]
    assert h2h.oldest_commit(picked) == "old"
    assert h2h.commits_by_task(picked) == {"old": ["co2-forecast"], "new": ["bn-cnn"]}
    monkeypatch.setattr(sys, "argv", ["benchmarks/head_to_head.py", "--page"])
    text = h2h.page(picked, "old", tmp_path / "x.jsonl", None)
    assert "\n- commit: old\n" in text
    assert "- commits by task" in text and "old: co2-forecast; new: bn-cnn" in text
    assert "3 rows at 2 commits" in text
    single = h2h.page(picked[1:], "new", tmp_path / "x.jsonl", None)
    assert "commits by task" not in single and "2 rows at commit new" in single


def test_the_oracle_table_judges_each_task_and_says_missed(h2h):
    rows = [_row("bn-cnn", "recipe", s, t) for s, t in enumerate((0.950, 0.952, 0.954))] + [
        _row("fresh-heldout", "recipe", s, t, zoo="heldout") for s, t in ((0, 0.90), (1, 0.92))
    ]
    oracles = {
        # regret 100 x (0.955 - 0.952) = 0.3 <= 0.5: met
        "bn-cnn": {"test": {"best": [0.95, 0.955, 0.96], "default": [0.9, 0.9, 0.9]}},
        # regret 100 x (0.94 - 0.91) = 3.0 > max(0.5, 1.0): missed
        "fresh-heldout": {"test": {"best": [0.93, 0.94, 0.95], "default": [0.8] * 3}},
        "deep-mlp": {"test": {"best": [0.5] * 3, "default": [0.2] * 3}},  # no recipe row
    }
    text = h2h.oracle_table(rows, oracles)
    lines = {ln.split(" | ")[0].lstrip("| "): ln for ln in text.splitlines() if ln.startswith("| ")}
    assert "deep-mlp" not in lines
    assert lines["bn-cnn"].endswith("| 0.30 | 0.50 | met |")
    assert "| heldout |" in lines["fresh-heldout"]
    assert lines["fresh-heldout"].endswith("| 3.00 | 1.00 | **MISSED** |")
    assert "Within goal, by zoo: dev 1 of 1; heldout 0 of 1." in text
    assert h2h.oracle_table(rows, {}) == ""  # no oracle on file: no table


def test_a_second_run_on_the_same_results_file_is_refused_while_any_writer_holds_it(
    h2h, tmp_path
):
    results = tmp_path / "h2h.jsonl"
    h2h.claim(results)
    with pytest.raises(SystemExit, match=r"another head_to_head run.*h2h\.jsonl"):
        h2h.claim(results)
    h2h.release(results)
    h2h.share(results)  # a worker the stopped run left behind, still holding its unit
    with pytest.raises(SystemExit, match="a worker one left behind"):
        h2h.claim(results)
    h2h.release(results)
    h2h.claim(results)  # nobody writes it any more
    h2h.release(results)
    assert h2h.lock_path(results) == tmp_path / "h2h.lock"
