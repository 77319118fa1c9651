"""The anytime curve's pure parts (`benchmarks/anytime.py`), without training: the budgets
parsed, tune's refusal read, the smallest-budget rule and the default's target on made-up
regrets, the tables built from made-up runs, the rows kept per tune folder, the plot."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"


@pytest.fixture(scope="module")
def mods():
    sys.path.insert(0, str(BENCH))
    try:
        import anytime
        import run_all
        from oracle import load
    finally:
        sys.path.remove(str(BENCH))
    return anytime, run_all, load()


def _entry(budget, regret, factor=None):
    return {
        "budget": budget,
        "factor": factor if budget is None else float(budget),
        "label": f"default ({factor:g}x)" if budget is None else f"{budget:g}x",
        "regret": regret,
        "median": regret,
    }


def _curve(anytime, regrets: dict, default: float | None = None) -> list[dict]:
    out = [_entry(k, r) for k, r in regrets.items()]
    if default is not None:
        out.append(_entry(None, default, anytime.RACE_BUDGET_FACTOR))
    return sorted(out, key=lambda e: e["factor"])


def test_budgets_are_parsed_ordered_with_the_default_at_its_factor(mods):
    anytime, _, _ = mods
    assert anytime.RACE_BUDGET_FACTOR == 8.0  # the labels below say 8x
    got = anytime.parse_budgets("18,6,default,12x,9,6")
    assert got == [6.0, None, 9.0, 12.0, 18.0]
    assert [anytime.label(k) for k in got] == ["6x", "default (8x)", "9x", "12x", "18x"]
    assert [anytime.tag(k) for k in got] == ["6", "default", "9", "12", "18"]
    assert anytime.parse_budgets("8,default") == [None, 8.0]  # level: the default first
    for bad in ("0", "-3", "abc", "", "nan", "inf"):
        with pytest.raises(ValueError):
            anytime.parse_budgets(bad)


def test_a_refused_budget_names_what_tune_needs(mods):
    anytime, _, _ = mods
    error = (
        "budget 60 epochs is too small: with a final run of 30 epochs the recipe needs about "
        "184 (range tests of at least 100 steps); raise --budget or lower --epochs"
    )
    assert anytime.needed(error) == 184.0
    assert anytime.needed("every batch-size candidate diverged") is None
    assert anytime.needed(None) is None


def test_a_refused_budget_is_raised_once_to_what_tune_names(mods, monkeypatch, tmp_path):
    anytime, _, _ = mods
    calls = []

    def fake(name, seed, out, budget, steps):
        calls.append(budget)
        if budget is not None and budget < 184:
            return {
                "error": f"budget {budget:g} epochs is too small: ... needs about 184 (",
                "epochs": math.nan,
                "seconds": 0.01,
            }
        return {"error": None, "epochs": 180.0, "seconds": 2.0}

    monkeypatch.setattr(anytime, "tune_zoo", fake)
    (tmp_path / "history.json").write_text('{"seconds": 0.5}')
    row = anytime.tune_at("cancer-mlp", 0, str(tmp_path), 180.0, 100)
    assert calls == [180.0, 184.0]
    assert row["asked"] == 180.0 and row["grown"] == 184.0 and row["final_seconds"] == 0.5
    calls.clear()
    row = anytime.tune_at("cancer-mlp", 0, str(tmp_path), None, 100)  # the default: as is
    assert calls == [None] and row["grown"] is None and row["asked"] is None


def test_the_smallest_budget_within_the_tolerance_of_the_largest(mods):
    anytime, _, _ = mods
    tol = anytime.TOLERANCE
    assert tol == 0.2
    pick = anytime.smallest_within
    # falling regret: 9x is the first within 0.2 of 18x's 0.30 (0.50 is on the bound)
    curve = _curve(anytime, {6: 1.0, 9: 0.5, 12: 0.35, 18: 0.3})
    assert pick(curve)["budget"] == 9.0
    assert pick(curve, tolerance=0.05)["budget"] == 12.0
    assert pick(curve, tolerance=0.0)["budget"] == 18.0
    # not monotone: the smallest within counts, not the first after the last miss
    assert pick(_curve(anytime, {6: 0.45, 9: 0.9, 12: 0.3, 18: 0.3}))["budget"] == 6.0
    # the default is a budget too, at its multiple (8x: between 6x and 9x)
    curve = _curve(anytime, {6: 1.0, 9: 0.6, 18: 0.3}, default=0.0)
    assert pick(curve)["budget"] is None and pick(curve)["factor"] == 8.0
    assert anytime.largest(curve)["budget"] == 18.0  # the largest is a multiple asked for
    # by the median: a task's outlier moves the mean, not the median
    curve = [{**e, "median": m} for e, m in zip(curve, (0.9, 0.2, 0.6, 0.1), strict=True)]
    assert [e["factor"] for e in curve] == [6.0, 8.0, 9.0, 18.0]
    assert pick(curve, key="median")["factor"] == 8.0
    assert "By the zoo-median regret" in anytime.conclusion(curve)
    # a larger budget doing worse: measured against the largest, whatever its regret
    assert pick(_curve(anytime, {6: 1.1, 9: 0.5, 18: 0.8}))["budget"] == 9.0
    assert pick(_curve(anytime, {}, default=0.1)) is None


def test_the_default_meets_its_target_within_the_tolerance(mods):
    anytime, run_all, _ = mods
    target = anytime.default_target
    met = _curve(anytime, {6: 1.0, 9: 0.6, 18: 0.3}, default=0.45)
    assert target(met)[1:] == ("0.45 against 0.30 + 0.2", "met")
    missed = _curve(anytime, {6: 1.0, 9: 0.6, 18: 0.3}, default=0.55)
    assert target(missed)[2] == "**MISSED**"
    assert target(_curve(anytime, {6: 1.0, 18: 0.3}))[2] == "-"  # no default row
    # run_all computes the section's status from the target row
    assert run_all.status(anytime.target_table(met)) == "ok: 1 met, 0 MISSED"
    assert run_all.status(anytime.target_table(missed)) == "ok: 0 met, 1 MISSED"
    assert run_all.status(anytime.target_table(_curve(anytime, {6: 1.0}))) == "ok: no targets"
    text = anytime.conclusion(_curve(anytime, {6: 0.4, 9: 0.6, 18: 0.3}))
    assert "within 0.2 points of 18x's (0.30): 6x (0.40)" in text and "could be lowered" in text
    assert "above the default" in anytime.conclusion(_curve(anytime, {6: 1.0, 9: 0.6, 18: 0.3}))


def _run(test, epochs=180.0, seconds=3.0, **kw):
    return {
        "test": test,
        "collapsed": False,
        "epochs": epochs,
        "seconds": seconds,
        "final_seconds": 0.5,
        "error": None,
        "grown": None,
        **kw,
    }


def test_the_tables_are_built_from_the_runs_as_judge_scores_them(mods):
    anytime, run_all, oracle = mods
    from decision_quality import judge
    from oracle import reference

    names, seeds = ["cancer-mlp", "wine-mlp"], [0, 1]
    best = {n: sum(oracle[n]["test"]["best"]) / 3 for n in names}
    runs = {}
    for k in (6.0, None, 18.0):
        for n in names:
            for s in seeds:
                gap = {6.0: 0.02, None: 0.004, 18.0: 0.003}[k]
                runs[(n, s, k)] = _run(best[n] - gap, epochs=6 * 30.0 if k == 6.0 else 240.0)
    # every seed of one task refused at 6x: scored 0, and the table still builds
    runs[("wine-mlp", 0, 6.0)] = _run(
        math.nan, epochs=math.nan, collapsed=True, error="refused", final_seconds=math.nan
    )
    runs[("wine-mlp", 1, 6.0)] = dict(runs[("wine-mlp", 0, 6.0)])
    runs[("cancer-mlp", 1, 6.0)]["grown"] = 184.0
    for r in runs.values():
        r["test"] = r["test"] if math.isfinite(r["test"]) else math.nan
    summary = anytime.summarize(names, seeds, [6.0, None, 18.0], runs, oracle)
    assert [e["label"] for e in summary] == ["6x", "default (8x)", "18x"]
    six, default, top = summary
    j = judge(
        reference(oracle["cancer-mlp"]),
        oracle["cancer-mlp"]["test"],
        [runs[("cancer-mlp", s, 6.0)] for s in seeds],
    )
    assert six["tasks"]["cancer-mlp"]["regret"] == pytest.approx(j["regret"])
    assert six["tasks"]["wine-mlp"]["regret"] == pytest.approx(100 * best["wine-mlp"])
    assert six["regret"] == pytest.approx(
        (six["tasks"]["cancer-mlp"]["regret"] + six["tasks"]["wine-mlp"]["regret"]) / 2
    )
    assert (six["grown"], six["refused"]) == (1, 2)
    assert default["regret"] == pytest.approx(0.4) and top["regret"] == pytest.approx(0.3)
    # cancer-mlp runs 30 epochs, wine-mlp 40: 240 epochs are 8 and 6 final runs
    assert default["runs_epochs"] == pytest.approx((8 + 6) / 2)
    assert default["runs_seconds"] == pytest.approx(6.0)
    assert six["runs_epochs"] == pytest.approx(6.0)  # the refused seeds spent nothing known
    table = anytime.budget_table(summary, len(names))
    assert "| 6x | " in table and "| 1 / 2 |" in table and table.count("\n") == 5
    tasks = anytime.task_table(summary, names)
    assert tasks.splitlines()[0] == "| task | 6x | default (8x) | 18x |"
    assert "| zoo mean | " in tasks and len(tasks.splitlines()) == 2 + len(names) + 2
    # the median row (of two tasks: their mean)
    assert tasks.splitlines()[-1] == "| zoo median | 51.00 | 0.40 | 0.30 |"
    assert summary[0]["median"] == pytest.approx(51.0) and summary[0]["regret"] == 51.0
    page = table + tasks + anytime.target_table(summary)
    assert run_all.status(page) == "ok: 1 met, 0 MISSED"  # 0.4 <= 0.3 + 0.2


def test_a_row_is_read_back_only_at_its_code_commit_and_once_scored(mods, tmp_path):
    anytime, _, _ = mods
    folder = tmp_path / "anytime" / "cancer-mlp-s0-b6"
    assert anytime.read_row(folder, "abc") is None
    row = {**_run(0.95), "hparams": {"batch_size": 16}, "seconds": math.nan}
    anytime.write_row(folder, "abc", row)
    back = anytime.read_row(folder, "abc")
    assert back["test"] == 0.95 and math.isnan(back["seconds"])
    assert anytime.read_row(folder, "abd") is None
    assert anytime.read_row(folder, "unknown") is None
    anytime.write_row(folder, "abc", {k: v for k, v in row.items() if k != "test"})
    assert anytime.read_row(folder, "abc") is None  # tuned but never scored
    (folder / anytime.ROW_FILE).write_text("{cut short")
    assert anytime.read_row(folder, "abc") is None


def test_the_code_commit_names_the_last_change_to_what_the_rows_depend_on(mods):
    anytime, _, _ = mods
    c = anytime.code_commit()
    assert c == "unknown" or len(c.split("+dirty-")[0]) >= 7


def test_the_plot_is_written(mods, tmp_path):
    anytime, _, _ = mods
    names = ["a", "b"]
    summary = []
    for k, r in ((6.0, 1.0), (None, 0.5), (18.0, 0.3)):
        e = _entry(k, r, anytime.RACE_BUDGET_FACTOR)
        e["tasks"] = {n: {"regret": r + i} for i, n in enumerate(names)}
        summary.append(e)
    path = tmp_path / "sub" / "anytime.png"
    path.parent.mkdir()
    anytime.plot(summary, names, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_results_file_keeps_scored_rows_by_commit_and_the_last_line_wins(mods, tmp_path):
    anytime, _, _ = mods
    path = tmp_path / "results" / "anytime.jsonl"
    assert anytime.results_rows(path, "abc") == {}  # no file yet
    row = {**_run(0.95), "hparams": {"batch_size": 16}, "seconds": math.nan}
    anytime.append_row(path, "abc", "cancer-mlp", 0, 6.0, row)
    anytime.append_row(path, "abd", "cancer-mlp", 0, 6.0, {**row, "test": 0.5})
    anytime.append_row(path, "abc", "cancer-mlp", 1, None, {**row, "test": 0.9})
    anytime.append_row(path, "abc", "cancer-mlp", 1, None, {**row, "test": 0.91})
    anytime.append_row(
        path, "abc", "wine-mlp", 0, 6.0, {k: v for k, v in row.items() if k != "test"}
    )
    with open(path, "a") as f:
        f.write("{cut short\n")
    rows = anytime.results_rows(path, "abc")
    assert set(rows) == {("cancer-mlp", 0, "6"), ("cancer-mlp", 1, "default")}
    assert rows["cancer-mlp", 0, "6"]["test"] == 0.95 and math.isnan(
        rows["cancer-mlp", 0, "6"]["seconds"]
    )
    assert rows["cancer-mlp", 1, "default"]["test"] == 0.91  # the later line wins
    assert anytime.results_rows(path, "abd")["cancer-mlp", 0, "6"]["test"] == 0.5
    assert anytime.results_rows(path, "unknown") == {}
