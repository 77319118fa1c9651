"""The rank statistics of `benchmarks/ranking.py`, on data whose answer is known."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))
try:
    import ranking
finally:
    sys.path.remove(str(BENCH))


def test_ranks_give_ties_their_mean_rank():
    assert ranking.ranks([10.0, 30.0, 20.0]) == [1.0, 3.0, 2.0]
    assert ranking.ranks([1.0, 2.0, 2.0, 3.0]) == [1.0, 2.5, 2.5, 4.0]
    assert ranking.ranks([5.0, 5.0, 5.0]) == [2.0, 2.0, 2.0]


def test_spearman_on_known_data():
    xs = [1.0, 2.0, 3.0, 4.0, 5.0]
    assert ranking.spearman(xs, [x**3 for x in xs]) == pytest.approx(1.0)  # monotone
    assert ranking.spearman(xs, [-x for x in xs]) == pytest.approx(-1.0)
    # rank differences d = (0, 0, 1, -1, 0): 1 - 6 * 2 / (5 * 24) = 0.9
    assert ranking.spearman(xs, [10.0, 20.0, 40.0, 30.0, 50.0]) == pytest.approx(0.9)
    # with ties: Pearson's on the mean ranks, as scipy computes it
    tied = ranking.spearman([1.0, 2.0, 2.0, 3.0], [1.0, 3.0, 2.0, 4.0])
    assert tied == pytest.approx(0.9486832980505138)


def test_spearman_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    xs = [0.1, 0.5, 0.5, 0.9, 0.3, 0.7, 0.2, 0.2]
    ys = [0.3, 0.1, 0.6, 0.8, 0.8, 0.5, 0.0, 0.4]
    assert ranking.spearman(xs, ys) == pytest.approx(stats.spearmanr(xs, ys)[0])


def test_spearman_is_undefined_for_a_constant_side():
    assert math.isnan(ranking.spearman([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))
    with pytest.raises(ValueError):
        ranking.spearman([1.0, 2.0], [1.0])


def test_top_third_and_the_grid():
    assert ranking.top_fraction([0.1, 0.9, 0.5, 0.7, 0.2, 0.3], 1 / 3) == {1, 3}
    assert ranking.top_fraction([0.4], 1 / 3) == {0}
    lrs = ranking.lrs("sgd")
    assert len(lrs) == 4 and lrs[-1] / lrs[0] == pytest.approx(30.0, rel=0.01)
    assert math.sqrt(lrs[0] * lrs[-1]) == pytest.approx(0.1, rel=0.01)  # centred on 0.1
    assert math.sqrt(ranking.lrs("adamw")[0] * ranking.lrs("adamw")[-1]) == pytest.approx(
        3e-3, rel=0.01
    )
    spec = ranking.TaskSpec("t", "t", {}, 9.0, "sgd")
    grid = ranking.configs(spec, 128)
    assert len(grid) == 16 and {g["batch_size"] for g in grid} == {128, 64}
    assert len(ranking.configs(spec, 128, quick=True)) == 4


def test_scores_and_partial_reads():
    run = {"evals": [[1.0, 0.2], [2.0, 0.5], [3.0, float("nan")]], "diverged": True}
    assert ranking.score(run) == 0.0  # diverged at the end
    assert ranking.score(run, 2.0) == 0.5  # a pruner read it before it diverged
    assert ranking.score(run, 3.0) == 0.0 and ranking.score(run, 4.0) == 0.0
    assert ranking.partial_epoch(10, 9) == 1.0 and ranking.partial_epoch(20, 3) == 7.0
    assert ranking.partial_epoch(3, 9) == 1.0
