"""Every benchmark's ``--quick`` mode runs and prints a markdown table, so none can silently rot.

The scripts run as subprocesses, two at a time (the machine has 2 cores; quick-mode numbers
mean nothing, so sharing the CPU does no harm), started once for the module.
"""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
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
    "super_convergence",
    "tuning_cost",
    "oracle",
    "decision_quality",
    "recipe_seeds",
)


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, cwd=ROOT, timeout=240
    )


@pytest.fixture(scope="module")
def quick_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "benchmarks.md"
    jobs = {name: [str(BENCH / f"{name}.py"), "--quick"] for name in SCRIPTS}
    jobs["run_all"] = [
        str(BENCH / "run_all.py"),
        "--quick",
        "--only",
        "suggestion_quality",
        "--out",
        str(out),
    ]
    with ThreadPoolExecutor(2) as pool:
        done = dict(zip(jobs, pool.map(_run, jobs.values()), strict=True))
    return done, out


def test_every_benchmark_is_collected_by_run_all():
    sys.path.insert(0, str(BENCH))
    try:
        import run_all
    finally:
        sys.path.remove(str(BENCH))
    assert set(run_all.BENCHMARKS) == set(SCRIPTS)
    on_disk = {p.stem for p in BENCH.glob("*.py")} - {"_common", "run_all"}
    assert on_disk == set(SCRIPTS)


@pytest.mark.parametrize("name", SCRIPTS)
def test_quick_mode_prints_a_table_with_its_provenance(quick_runs, name):
    proc = quick_runs[0][name]
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "|---" in proc.stdout
    for field in ("- command: `python ", "- machine: ", "- versions: ", "- date: "):
        assert field in proc.stdout


def test_run_all_writes_the_page(quick_runs):
    done, out = quick_runs
    assert done["run_all"].returncode == 0, done["run_all"].stderr[-3000:]
    page = out.read_text()
    assert page.startswith("# Benchmarks")
    assert "[suggestion_quality](#suggestion-quality) | ok |" in page
    assert "## suggestion-quality" in page
    assert "|---" in page.split("## suggestion-quality", 1)[1]
