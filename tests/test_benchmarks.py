"""Every benchmark's ``--quick`` mode runs and prints a markdown table, so none can silently rot.

Each script runs as its own subprocess in its own test, so pytest-xdist spreads them over the
workers like any other test; quick-mode numbers mean nothing, so sharing the CPU does no harm.
"""

from __future__ import annotations

import datetime
import math
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
SCRIPTS = (
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
HANG = 1800
"""Seconds after which a benchmark subprocess counts as hung: not a speed limit (a quick run
takes 10-100 s on 2 idle cores, several times that on a loaded machine)."""


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, cwd=ROOT, timeout=HANG
    )


def test_every_benchmark_is_collected_by_run_all():
    sys.path.insert(0, str(BENCH))
    try:
        import run_all
    finally:
        sys.path.remove(str(BENCH))
    assert set(run_all.BENCHMARKS) == set(SCRIPTS)
    helpers = {"_common", "_lrfree", "run_all", "fair", "splits"}
    on_disk = {p.stem for p in BENCH.glob("*.py")} - helpers
    assert on_disk == set(SCRIPTS)


@pytest.mark.parametrize(
    "name",
    # scale.py starts a local Ray: in the xdist group of the other tests that do
    [pytest.param(n, marks=pytest.mark.xdist_group("ray")) if n == "scale" else n for n in SCRIPTS],
)
def test_quick_mode_prints_a_table_with_its_provenance(name):
    proc = _run([str(BENCH / f"{name}.py"), "--quick"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    fields = ("- command: `python ", "- commit: ", "- machine: ", "- versions: ", "- date: ")
    if name == "gpu_check" and proc.stdout.startswith("Skipped"):
        # skipped, and still the commit and machine that skipped it, for the page's table
        assert "no CUDA device" in proc.stdout
        assert all(field in proc.stdout for field in fields)
        return
    assert "|---" in proc.stdout
    for field in (*fields, "- cache: ", "load average"):
        assert field in proc.stdout


def test_run_all_writes_the_page(tmp_path):
    out = tmp_path / "benchmarks.md"
    proc = _run(
        [str(BENCH / "run_all.py"), "--quick", "--only", "suggestion_quality", "--out", str(out)]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    page = out.read_text()
    assert page.startswith("# Benchmarks")
    assert "[suggestion_quality](#suggestion-quality) | ok: " in page
    assert "## suggestion-quality" in page
    assert "|---" in page.split("## suggestion-quality", 1)[1]


# ------------------------------------------------------------------ the fair benchmarks' parts


@pytest.fixture(scope="module")
def fair_mods():
    sys.path.insert(0, str(BENCH))
    try:
        import _common
        import fair
        import splits
    finally:
        sys.path.remove(str(BENCH))
    return _common, fair, splits


@pytest.fixture
def in_root(monkeypatch):
    monkeypatch.chdir(ROOT)  # task references are relative to the repository root


def test_the_test_split_is_disjoint_from_validation_and_sealed(fair_mods, in_root):
    _common, fair, splits = fair_mods
    from disciplined import UsageError, load_task

    ref = splits.ref("digits-mlp")
    base = load_task("digits-mlp")
    val, test = load_task(ref, {"split": "val"}), load_task(ref, {"split": "test"})
    assert val.num_val + test.num_val == base.num_val
    rows = {tuple(r.tolist()) for r in val.val_data[0]}
    assert not any(tuple(r.tolist()) in rows for r in test.val_data[0][:50])
    assert val.train_data[0].equal(test.train_data[0])
    before = _common.TEST_READS.get("digits-mlp", 0)
    with fair.sealed(), pytest.raises(UsageError, match="read while sealed"):
        load_task(ref, {"split": "test"})
    assert _common.TEST_READS.get("digits-mlp", 0) == before


@pytest.mark.parametrize("method", ["grid", "random", "tpe", "tpe-median"])
def test_searches_never_read_the_test_split_and_search_the_recipes_space(
    fair_mods, in_root, method
):
    _common, fair, splits = fair_mods
    space = fair.space(32)
    assert space.batch_sizes == (8, 16, 32) and space.schedules == ("one-cycle",)
    reads_before = dict(_common.TEST_READS)
    with fair.sealed():  # a read of a test split would raise here
        trials = fair.search(method, splits.ref("digits-mlp"), space, 0.2, 0, 1.0)
    reads_after = dict(_common.TEST_READS)
    assert reads_after == reads_before  # not one read of any test split
    from disciplined import HParams

    hps = [HParams.from_dict(t["hparams"]) for t in trials]
    assert {h.schedule for h in hps} == {"one-cycle"}
    assert {h.batch_size for h in hps} <= set(space.batch_sizes)
    if len(hps) >= 10:  # every method varies the batch size, not only the LR
        assert len({h.batch_size for h in hps}) > 1
    assert all(0.8 <= h.max_momentum <= 0.99 and h.min_momentum < h.max_momentum for h in hps)


def test_a_search_spends_its_budget_in_seconds_and_stops(fair_mods, in_root):
    _, fair, splits = fair_mods
    space = fair.space(32)
    budget = 1.5
    trials = fair.search("random", splits.ref("digits-mlp"), space, 0.3, 0, budget)
    spent = [t["spent"] for t in trials]
    assert spent[-1] >= budget  # it used the budget...
    assert len(spent) == 1 or spent[-2] < budget  # ...and started no trial after it was spent
    assert spent[-1] - budget <= trials[-1]["seconds"]  # overshoot: at most the last trial
    assert spent == sorted(spent)
    half = fair.best_within(trials, budget / 2)
    if half is not None:
        assert half["spent"] <= budget / 2


def test_every_zoo_task_counts_its_test_reads_and_refuses_them_while_sealed(fair_mods, in_root):
    _common, fair, _ = fair_mods
    from disciplined import UsageError, load_task

    sys.path.insert(0, str(BENCH))
    try:
        from zoo.tasks import ZOO
    finally:
        sys.path.remove(str(BENCH))
    # one task per way the zoo builds its splits (tabular, regression, MNIST-1D, tokens,
    # digits images, digits flat); the others share one of these code paths
    names = ("wine-mlp", "diabetes-regression", "gru-seq", "attention-seq", "digits-cnn-adamw")
    for entry in (ZOO[n] for n in (*names, "wide-overfit-mlp")):
        before = dict(_common.TEST_READS)
        with fair.sealed(), pytest.raises(UsageError, match="read while sealed"):
            load_task(entry.ref, {"split": "test"})
        assert before == _common.TEST_READS, entry.name
        load_task(entry.ref, {"split": "val"})  # the validation split is not counted
        assert before == _common.TEST_READS, entry.name
        test = load_task(entry.ref, {"split": "test"})
        name = test.name
        assert _common.TEST_READS[name] == before.get(name, 0) + 1


def test_the_oracles_test_scores_are_its_validation_choice_from_fresh_seeds():
    sys.path.insert(0, str(BENCH))
    try:
        from oracle import FRESH, load, reference
    finally:
        sys.path.remove(str(BENCH))
    data = load()
    for name, summary in data.items():
        test = summary["test"]
        assert tuple(test["seeds"]) == FRESH and set(FRESH).isdisjoint(summary["seeds"])
        assert tuple(test["best_point"]) == reference(summary).best_point, name
        assert len(test["best"]) == len(test["default"]) == len(FRESH)
        assert all(0.0 <= x <= 1.0 for x in test["best"] + test["default"]), name


def test_decision_quality_judges_on_test_scores():
    sys.path.insert(0, str(BENCH))
    try:
        import decision_quality as dq
        from oracle import load, reference
    finally:
        sys.path.remove(str(BENCH))
    ref = reference(load()["cancer-mlp"])
    test = {"best": [0.96, 0.97, 0.98], "default": [0.90, 0.90, 0.90]}
    run = {"collapsed": False, "epochs": ref.epochs * 3 * 0.05, "seconds": 1.0}
    good = [{**run, "test": x} for x in (0.965, 0.97, 0.975)]
    j = dq.judge(ref, test, good)
    assert j["regret"] == pytest.approx(0.0, abs=1e-9) and j["allowed"] == pytest.approx(1.0)
    assert j["frac_epochs"] == pytest.approx(0.05) and j["ok"]
    # one collapsed seed scores 0 and breaks the goal; a small lead over the default is not
    # enough when the default is over a point below the oracle
    bad = dq.judge(ref, test, [*good[:2], {**run, "test": 0.97, "collapsed": True}])
    expected = 100 * (0.97 - (0.965 + 0.97 + 0.0) / 3)
    assert bad["collapses"] == 1 and bad["regret"] == pytest.approx(expected, rel=1e-9)
    assert not bad["ok"]
    low = dq.judge(ref, test, [{**run, "test": 0.89}] * 3)
    assert not low["beats_default"] and not low["ok"]
    # a regret of exactly the allowance is within it, float32's last bits aside (resnet1d's
    # three test accuracies as they came back); a tenth of a point more is not
    edge = {"best": [0.9860000014305115, 0.9810000061988831, 0.9800000190734863]}
    edge["default"] = [0.97, 0.97, 0.97]
    at = [0.9789999723434448, 0.9729999899864197, 0.9800000190734863]
    j = dq.judge(ref, edge, [{**run, "test": x} for x in at])
    assert j["regret"] > 0.5 and j["allowed"] == 0.5 and j["ok"]
    over = dq.judge(ref, edge, [{**run, "test": x - 0.001} for x in at])
    assert not over["ok"]


def test_decision_quality_counts_the_tune_and_its_range_tests_in_final_runs():
    sys.path.insert(0, str(BENCH))
    try:
        import decision_quality as dq
    finally:
        sys.path.remove(str(BENCH))
    steps = {"memory": 0.1, "lr_range_test": 1.0, "weight_decay": 1.5, "race": 4.4}
    run = {"hparams": {"batch_size": 32}, "final_seconds": 1.0, "seconds": 7.0, "steps": steps}
    assert dq.final_runs(run) == pytest.approx(7.0)
    assert dq.range_test_runs(run) == pytest.approx(2.5)  # the probe and the race are not tests
    assert math.isnan(dq.range_test_runs({**run, "steps": None}))
    assert math.isnan(dq.range_test_runs({**run, "hparams": None}))
    cmp = {
        "a": {"final_runs": 7.0, "range_runs": 2.5},
        "b": {"final_runs": 8.5, "range_runs": 3.2},
        "c": {"final_runs": math.nan, "range_runs": math.nan},
    }
    assert dq.cost_verdicts(cmp) == (["b", "c"], ["b", "c"])


def test_run_all_regenerates_one_section_and_keeps_the_others():
    sys.path.insert(0, str(BENCH))
    try:
        import run_all
    finally:
        sys.path.remove(str(BENCH))
    old = run_all.assemble(
        [
            ("loop_speed", "### Loop\n\n| a |\n|---|\n| 1 |", 0, 60.0, ""),
            ("oracle", "### Oracle\n\n#### sub\n\n| b |\n|---|\n| 2 |", 0, 120.0, ""),
        ],
        quick=False,
    )
    kept = run_all.previous(old)
    today = datetime.date.today().isoformat()
    assert kept["oracle"] == (
        "ok: no targets",
        "2.0",
        today,
        "### Oracle\n\n#### sub\n\n| b |\n|---|\n| 2 |",
    )
    new = run_all.assemble(
        [("loop_speed", "### Loop\n\n| a |\n|---|\n| 9 |", 3, 30.0, "x")], quick=False, kept=kept
    )
    assert f"| [loop_speed](#loop-speed) | **failed** (exit 3) | 0.5 | {today} |" in new
    assert f"| [oracle](#oracle) | ok: no targets | 2.0 | {today} |" in new
    # a page from before the date column, and a section with no row: "-" for what is unsaid
    older = "| [oracle](#oracle) | ok | 10 |\n\n## oracle\n\n### O\n\n## scale\n\n### S\n"
    assert run_all.previous(older) == {
        "oracle": ("ok", "10", "-", "### O"),
        "scale": ("ok", "-", "-", "### S"),
    }
    assert new.index("## loop-speed") < new.index("## oracle")  # the order of BENCHMARKS
    assert "| 9 |" in new and "| 1 |" not in new and "#### sub\n\n| b |" in new
    assert "the other sections are kept" in new


def test_a_header_gives_the_command_without_the_resume_folder(fair_mods, monkeypatch):
    _common, _, _ = fair_mods
    argv = [
        "benchmarks/tuning_cost.py",
        "--tasks",
        "digits-mlp",
        "--cache",
        "/tmp/x",
        "--seeds",
        "2",
    ]
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.chdir(ROOT)
    text = _common.header("T")
    assert "- command: `python benchmarks/tuning_cost.py --tasks digits-mlp --seeds 2`" in text
