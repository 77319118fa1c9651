"""docs/benchmarks.md as run_all assembles it: statuses computed from the tables, each
section's commit read from its header, stale sections found from git, the header's
provenance lines."""

from __future__ import annotations

import importlib
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"


def _bench(name: str):
    """The benchmark module ``name`` from benchmarks/ (not a package)."""
    sys.path.insert(0, str(BENCH))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCH))


@pytest.fixture(scope="module")
def run_all():
    return _bench("run_all")


@pytest.fixture(scope="module")
def common():
    return _bench("_common")


TABLE = """### A table

- commit: abc1234

| target | measured | verdict |
|---|---|---|
| x | 1 | met |
| y | 2 | **MISSED** |
| z | 3 | **met** |

Prose that repeats a verdict: met, MISSED.
"""


def test_the_status_counts_the_verdict_cells_of_tables_only(run_all) -> None:
    assert run_all.status(TABLE) == "ok: 2 met, 1 MISSED"
    assert run_all.status("| a | b |\n|---|---|\n| 1 | 2 |") == "ok: no targets"
    assert run_all.status(TABLE, code=3) == "**failed** (exit 3)"
    assert run_all.status("**failed** with exit status 1:\n\nboom") == "**failed** (exit 1)"
    assert run_all.status("Skipped on this machine: no CUDA device") == "skipped"
    # a cell bold on one side only is not a verdict
    assert run_all.status("| x | **met |") == "ok: no targets"


def test_a_sections_commit_is_its_headers(run_all) -> None:
    assert run_all.section_commit(TABLE) == "abc1234"
    assert run_all.section_commit("- commit: `abc1234+dirty`\n") == "abc1234+dirty"
    assert run_all.section_commit("no header") is None
    assert run_all.commits_sentence({"a": "x1", "b": "x1"}) == "All sections at commit `x1`."
    two = run_all.commits_sentence({"a": "x1", "b": "-", "c": "x1"})
    assert two == (
        "The sections are at different commits: at commit `x1`: a, c; at an unrecorded commit: b."
    )


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository with a benchmark, the library, and three commits."""
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "config", "user.email", "t@example.com")
    _git(tmp_path, "config", "user.name", "t")
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "src").mkdir()
    (tmp_path / "benchmarks" / "one.py").write_text("1\n")
    (tmp_path / "benchmarks" / "two.py").write_text("1\n")
    (tmp_path / "src" / "lib.py").write_text("1\n")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-qm", "first")
    return tmp_path


def test_a_section_is_stale_since_the_first_change_to_its_script_or_the_library(
    run_all, repo: Path
) -> None:
    first = _git(repo, "rev-parse", "--short", "HEAD")
    assert run_all.stale_since(first, "one", repo) is None
    (repo / "benchmarks" / "two.py").write_text("2\n")  # another benchmark's script
    _git(repo, "commit", "-qam", "two")
    assert run_all.stale_since(first, "one", repo) is None
    assert run_all.stale_since(first, "two", repo) == _git(repo, "rev-parse", "--short", "HEAD")
    (repo / "src" / "lib.py").write_text("2\n")  # the library: every section
    _git(repo, "commit", "-qam", "lib")
    lib = _git(repo, "rev-parse", "--short", "HEAD")
    assert run_all.stale_since(first, "one", repo) == lib
    assert run_all.stale_since(lib, "one", repo) is None
    (repo / "src" / "NOTES.md").write_text("a note beside the code\n")  # changes no number
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "notes")
    assert run_all.stale_since(lib, "one", repo) is None
    assert run_all.stale_since(f"{lib}+dirty", "two", repo) is None
    assert run_all.stale_since("-", "one", repo) == "unknown"
    assert run_all.stale_since("0000000", "one", repo) == "unknown"
    assert run_all.commit_cell("abc", "def") == "abc (**stale since def**)"
    assert run_all.commit_cell("abc", None) == "abc"
    assert run_all.commit_cell("-", "unknown").startswith("unrecorded (**stale**")


def test_the_page_marks_stale_sections_and_computes_every_status(run_all) -> None:
    results = [("loop_speed", TABLE, 0, 60.0, "")]
    kept = {"scale": ("ok", "1.0", "2026-01-01", "### Scale\n\n- commit: old0001\n")}
    page = run_all.assemble(
        results,
        False,
        kept,
        current="abc1234",
        stale=lambda c, _name: "new0002" if c == "old0001" else None,
    )
    assert "| [loop_speed](#loop-speed) | ok: 2 met, 1 MISSED | 1.0 |" in page
    assert "| abc1234 |" in page
    assert "| [scale](#scale) | ok: no targets | 1.0 | 2026-01-01 | " in page
    assert "old0001 (**stale since new0002**) |" in page
    assert "The sections are at different commits" in page


def test_the_commit_is_heads_with_dirty_when_the_code_differs(common, repo: Path) -> None:
    head = _git(repo, "rev-parse", "--short", "HEAD")
    assert common.commit(repo) == head
    (repo / "src" / "lib.py").write_text("changed\n")
    assert common.commit(repo) == f"{head}+dirty"
    assert common.commit(repo.parent / "not-a-repo-here") == "unknown"


def test_the_header_names_commit_machine_load_and_cache(common, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.sqlite").write_text("")
    text = common.header("T", cache=tmp_path)
    lines = text.splitlines()
    assert lines[0] == "### T"
    assert any(line.startswith("- commit: ") for line in lines)
    machine = next(line for line in lines if line.startswith("- machine: "))
    assert "cores, torch threads" in machine and "load average" in machine
    assert f"- cache: read trial stores from {tmp_path} (1 store present" in text
    assert "- cache: none (every trial run here)" in common.header("T")


def test_random_search_draws_are_what_a_search_of_those_seconds_would_pick(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import decision_quality as dq

    def row(b, lr, seed, metric, seconds=1.0, diverged=False):
        return {
            "batch_size": b,
            "max_lr": lr,
            "weight_decay": 0.0,
            "max_momentum": 0.9,
            "seed": seed,
            "metric": metric,
            "seconds": seconds,
            "diverged": diverged,
        }

    rows = [row(32, lr, s, m) for s in (0, 1) for lr, m in ((0.1, 0.5), (0.3, 0.9), (1.0, 0.7))]
    rows.append(row(32, 3.0, 0, 0.99, diverged=True))  # a diverged run scores 0
    rows.append(row(32, 3.0, 1, None))
    summary = {"rows": rows}
    # seconds for every row of a seed: every draw finds the grid's best
    assert dq.random_picks(summary, seconds=100.0, draws=50) == {(32, 0.3, 0.0, 0.9): 50}
    # one row's seconds: each draw picks its first row, so every point is picked sometimes
    one = dq.random_picks(summary, seconds=1.0, draws=400, seed=1)
    assert sum(one.values()) == 400 and len(one) == 4
    assert min(one.values()) > 50  # about 100 each
    # the same seed draws the same searches
    assert dq.random_picks(summary, 2.0, draws=100, seed=3) == dq.random_picks(
        summary, 2.0, draws=100, seed=3
    )


def test_random_searchs_seconds_are_the_recipes_final_runs_on_the_oracles_clock(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import decision_quality as dq

    rows = [{"batch_size": 32, "seconds": s} for s in (1.0, 2.0, 9.0)]
    rows += [{"batch_size": 64, "seconds": s} for s in (0.5, 0.6, 0.7)]
    summary = {"rows": rows}
    assert dq.oracle_run_seconds(summary, 32) == 2.0  # the median at that batch
    assert dq.oracle_run_seconds(summary, 64) == 0.6
    assert dq.oracle_run_seconds(summary, 16) == 4.0  # nearest 32, an epoch's steps x 2
    assert math.isclose(dq.oracle_run_seconds(summary, 128), 0.3)
    # a tune of 30 s whose final run took 3 s cost 10 final runs, whatever the load: at the
    # oracle's 2 s a run at batch 32, random search gets 20 s
    run = {"seconds": 30.0, "final_seconds": 3.0, "hparams": {"batch_size": 32}}
    assert dq.final_runs(run) == 10.0
    assert dq.random_budget(run, summary) == 20.0
    slow = {
        **run,
        "seconds": 90.0,
        "final_seconds": 9.0,
    }  # the same tune under three times the load
    assert dq.random_budget(slow, summary) == 20.0
    # no final run (the tune refused to answer): its own seconds
    refused = {"seconds": 12.0, "final_seconds": math.nan, "hparams": None}
    assert math.isnan(dq.final_runs(refused)) and dq.random_budget(refused, summary) == 12.0


def test_a_zoo_tune_runs_in_a_warmed_up_process_and_the_warm_up_draws_nothing(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import decision_quality as dq
    import torch

    import disciplined
    from disciplined.errors import UsageError

    monkeypatch.setattr(dq, "_WARM", [])
    state = torch.random.get_rng_state()
    dq.warm_up()
    dq.warm_up()  # once a process
    assert dq._WARM == [True] and torch.equal(state, torch.random.get_rng_state())
    calls = []

    def refuse(*args, **kwargs):
        calls.append("tune")
        raise UsageError("refused")

    monkeypatch.setattr(dq, "warm_up", lambda: calls.append("warm"))
    monkeypatch.setattr(disciplined, "tune", refuse)
    row = dq.tune_zoo("wine-mlp", 0, "unused", None, 100)
    assert calls == ["warm", "tune"] and row["error"] == "refused"


def test_a_section_made_by_its_own_command_is_placed_without_running(tmp_path):
    import subprocess
    import sys

    made = tmp_path / "dq.md"
    made.write_text(
        "### Decision quality\n\n- commit: abc1234\n\n| a | verdict |\n|---|---|\n| 1 | met |\n"
    )
    page = tmp_path / "benchmarks.md"
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCH / "run_all.py"),
            "--out",
            str(page),
            "--use",
            f"decision_quality={made}",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    text = page.read_text()
    assert "| [decision_quality](#decision-quality) | ok: 1 met, 0 MISSED | - |" in text
    assert "abc1234" in text and "## loop-speed" not in text  # nothing else ran


def test_a_plain_make_bench_runs_the_short_tables_and_names_the_long_ones(run_all) -> None:
    assert set(run_all.DEFAULT) | set(run_all.OWN_COMMAND) == set(run_all.BENCHMARKS)
    assert not set(run_all.DEFAULT) & set(run_all.OWN_COMMAND)
    assert {"head_to_head", "oracle", "decision_quality", "anytime"} <= set(run_all.OWN_COMMAND)
    assert "loop_speed" in run_all.DEFAULT and "gpu_check" in run_all.DEFAULT
    for name in (*run_all.DEFAULT, *run_all.OWN_COMMAND):  # the introduction names each
        assert name in run_all.INTRO


def test_all_and_only_exclude_each_other() -> None:
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "run_all.py"
    proc = subprocess.run(
        [sys.executable, str(script), "--all", "--only", "loop_speed"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "--all and --only exclude each other" in proc.stderr
