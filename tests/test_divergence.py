"""`disciplined.divergence`: each rule on loss numbers whose answer is known by hand, and
`RunDivergence` against the check ``fit`` runs today on a real blow-up."""

import ast
import math
from pathlib import Path

import numpy as np
import pytest

from disciplined.divergence import (
    CLEAR_FALL,
    COLLAPSE_TOL,
    RUN_FACTOR,
    SWEEP_FACTOR,
    SWEEP_WARMUP,
    TRAIN_CUT,
    VAL_CUT,
    CurveCut,
    RunDivergence,
    SweepStop,
    collapse_arm,
    diverged_at_start,
    divergence_cut,
    ended_above_start,
    nonfinite,
    rise_index,
    start_level,
    start_window,
)


def _first_reason(rule, losses):
    """(step, reason) of the first step the per-step rule fires on, or None."""
    for step, loss in enumerate(losses):
        why = rule(step, loss)
        if why:
            return step, why
    return None


def test_the_module_imports_nothing_but_the_standard_library_and_numpy() -> None:
    # (importing it through the package loads torch anyway: `disciplined/__init__` does)
    import disciplined.divergence as module

    tree = ast.parse(Path(module.__file__).read_text())
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert names == {"__future__", "collections.abc", "dataclasses", "math", "numpy"}


def test_nonfinite() -> None:
    assert nonfinite(math.nan) and nonfinite(math.inf) and nonfinite(-math.inf)
    assert not nonfinite(0.0) and not nonfinite(1e308)


# --------------------------------------------------------------------------- a training run


@pytest.mark.parametrize(("total", "window"), [(1, 1), (39, 1), (40, 2), (199, 9), (10**6, 10)])
def test_start_window_is_a_twentieth_of_the_run_between_1_and_10(total, window) -> None:
    assert start_window(total) == window


def test_run_divergence_fires_when_the_running_loss_passes_4x_its_start() -> None:
    # window 1: the start is the first loss, 1.0; then a constant 5.0. The running mean is
    # 5 - 4 * 0.9**k after k such steps: above 4.0 first at k = 14 (0.9**13 = 0.254).
    rule = RunDivergence(total_steps=20)
    assert rule.window == 1 and RUN_FACTOR == 4.0
    step, why = _first_reason(rule, [1.0] + [5.0] * 30)
    assert step == 14 and rule.base == 1.0
    assert why == (
        f"running training loss {5 - 4 * 0.9**14:.4g} exceeded 4x its starting value 1 at step 14"
    )


def test_run_divergence_start_is_the_lower_of_first_loss_and_mean() -> None:
    # a blow-up inside the starting window cannot raise the bar it is measured against
    rule = RunDivergence(total_steps=200)  # window 10
    assert _first_reason(rule, [2.0, 50.0] + [2.0] * 8) is None
    assert rule.base == 2.0
    rule = RunDivergence(total_steps=200)
    assert _first_reason(rule, [3.0] + [1.0] * 9) is None
    assert rule.base == pytest.approx(1.2)  # mean of 3 and nine 1s, below the first loss


def test_run_divergence_ignores_a_level_it_cannot_measure_against() -> None:
    high = [1.0] + [100.0] * 50
    assert _first_reason(RunDivergence(20, factor=None), high) is None
    assert _first_reason(RunDivergence(20), [0.0] + [100.0] * 50) is None  # start level 0
    assert _first_reason(RunDivergence(20, factor=None), [1.0, math.nan]) == (
        1,
        "training loss is nan at step 1",
    )
    with pytest.raises(ValueError, match="factor must be > 1, got 1"):
        RunDivergence(20, factor=1)


def test_run_divergence_says_what_fit_says_on_a_real_blow_up(digits) -> None:
    # the check `fit` runs today, replayed on its own losses, ends at the same step for the
    # same reason: the one `fit` is to call
    from disciplined import HParams, train_task
    from disciplined.trials.hparams import steps_for

    hp = HParams(max_lr=10.0, schedule="constant", batch_size=32)
    _, h = train_task(digits, hp, epochs=2, seed=0)
    assert h.diverged and h.diverged_step < len(h.train_losses)
    rule = RunDivergence(total_steps=steps_for(digits, hp, 2))
    assert _first_reason(rule, h.train_losses) == (h.diverged_step, h.diverged_reason)


def test_start_level() -> None:
    assert start_level([]) is None and start_level([math.nan, 1.0]) is None
    assert start_level([2.0] * 5) == 2.0
    losses = [3.0] + [1.0] * 199  # window 10
    assert start_level(losses) == pytest.approx(1.2)
    assert start_level([1.0, 9.0] + [1.0] * 198) == 1.0


# --------------------------------------------------------------------------- a range test


def test_sweep_stop_reads_nothing_but_nan_in_its_warmup() -> None:
    watch = SweepStop().watch()
    assert _first_reason(watch, [1.0] * 5 + [1e6] * (SWEEP_WARMUP - 5)) is None
    assert _first_reason(SweepStop().watch(), [1.0, math.inf]) == (1, "loss became inf at step 1")


def test_sweep_stop_fires_on_4x_its_best() -> None:
    # beta 0: the "running average" is the loss itself, so the step is exact; the best
    # (1.9) is not 10% below the start (2.0), so only the factor can fire
    watch = SweepStop(beta=0.0).watch()
    assert SWEEP_FACTOR == 4.0
    losses = [2.0] * 10 + [1.9] * 5 + [7.5, 7.7]
    assert _first_reason(watch, losses) == (
        16,
        "smoothed loss 7.7 exceeded 4x its best 1.9 at step 16",
    )


def test_sweep_stop_fires_on_a_collapse_back_above_its_start_only_after_a_clear_fall() -> None:
    collapse = [2.0] * 10 + [1.7] * 5 + [2.01]
    assert _first_reason(SweepStop(beta=0.0).watch(), collapse) == (
        15,
        "smoothed loss 2.01 climbed back above its starting value 2 at step 15",
    )
    shallow = [2.0] * 10 + [1.85] * 5 + [2.01] * 5  # fell 7.5% only: noise, no collapse
    assert _first_reason(SweepStop(beta=0.0).watch(), shallow) is None


def test_diverged_at_start_is_a_stop_inside_the_warmup() -> None:
    assert not diverged_at_start(None)
    assert diverged_at_start(0) and diverged_at_start(SWEEP_WARMUP - 1)
    assert not diverged_at_start(SWEEP_WARMUP)


def test_sweep_stop_refuses_a_factor_of_one() -> None:
    with pytest.raises(ValueError, match=r"factor must be > 1, got 1\.0"):
        SweepStop(factor=1.0)


# --------------------------------------------------------------------------- finished curves


def test_divergence_cut_finds_a_blow_up_with_no_fall_before_it() -> None:
    # flat at 2.3 (with noise), then the loss runs away without ever having fallen: the cut
    # is where the running average passes 4x the start, so the lag-free average cannot
    # smear 6e14 back over the plateau; a noisy flat curve is not cut
    rng = np.random.default_rng(0)
    flat = list(2.3 + 0.01 * rng.standard_normal(280))
    assert divergence_cut([*flat, 3.17, 335.5, 6e14]) == 281
    assert divergence_cut(flat) == 280
    assert divergence_cut([*flat, 3.17, 335.5, 6e14], explode=1000.0) == 282


def test_divergence_cut_finds_the_blow_up_after_the_fall() -> None:
    rng = np.random.default_rng(0)
    fall = list(np.linspace(2.3, 1.5, 100) + 0.02 * rng.standard_normal(100))
    blow = [2.7, 3.8, 2.9, 3.6, 2.5, 2.4, 2.4, 2.5] * 3
    assert divergence_cut([2.3] * 20 + fall + blow) == 120  # the first loss above the start
    assert divergence_cut([2.3] * 20 + fall) == 120  # never diverged: the whole curve
    assert divergence_cut([2.3] * 20 + [float("nan")]) == 20
    # batch noise of 20% around a flat loss never counts as a fall and a rise
    noisy = list(1.0 + 0.2 * rng.standard_normal(300))
    assert divergence_cut(noisy) == 300
    assert divergence_cut([]) == 0 and divergence_cut([math.nan, 1.0]) == 0


def test_the_validation_cut_is_tighter_than_the_training_cut() -> None:
    # a 10% fall and a climb back: a collapse for the sparse validation curve (5%), noise
    # for the training curve (20%)
    curve = [2.0, 2.0, 2.0, 1.8, 1.8, 1.8, 2.2, 2.4]
    assert VAL_CUT.index(curve) == 6
    assert TRAIN_CUT.index(curve) == len(curve)
    assert divergence_cut(curve, VAL_CUT.fall, VAL_CUT.beta, VAL_CUT.window) == 6
    assert CurveCut(fall=0.2, beta=0.9, window=10) == TRAIN_CUT


def test_rise_index_needs_a_clear_fall_first() -> None:
    y = np.array([2.3, 2.3, 2.0, 1.5, 1.0, 1.6, 2.4, 2.5])
    assert rise_index(y, 2.3) == 6
    # below the start by under 5% of it, then above: the plateau's noise, no rise
    assert CLEAR_FALL == 0.05
    assert rise_index(np.array([2.3, 2.25, 2.2, 2.4, 2.5]), 2.3) is None
    # below by 5% but not by half the whole (later) fall: still no clear fall yet
    assert rise_index(np.array([2.3, 2.15, 2.4, 1.0, 2.5]), 2.3) == 4


# --------------------------------------------------------------------------- a finished run


@pytest.mark.parametrize(
    ("progress", "progress_max", "change", "arm"),
    [
        (-0.05, 0.5, -0.5, "above_start"),  # ended 5% above its start
        (-0.3, None, None, "above_start"),
        (0.0, 0.05, -0.5, "collapse"),  # was 5% lower, back at its start
        (0.04, 0.5, 0.0, "collapse"),
        (0.0, 0.04, 0.0, "no_progress"),  # never 5% lower, not falling
        (0.0, 0.0, -0.029, "no_progress"),
        (0.0, 0.0, None, "no_progress"),
        (0.0, 0.0, -0.03, None),  # only now leaving its plateau: read on
        (0.05, 0.05, 0.0, None),  # kept 5%: progress
        (None, None, None, None),  # no training losses
        (math.nan, 0.0, 0.0, None),
    ],
)
def test_collapse_arm(progress, progress_max, change, arm) -> None:
    assert COLLAPSE_TOL == 0.05
    assert collapse_arm(progress, progress_max, change, flat_tol=0.03) == arm


def test_ended_above_start() -> None:
    assert ended_above_start(2.3 * 1.05, 2.3) and not ended_above_start(2.3 * 1.04, 2.3)
    assert not ended_above_start(5.0, 0.0)  # no positive start to measure against
    assert ended_above_start(2.3 * 1.03, 2.3, tol=0.02)
