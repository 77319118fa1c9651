"""Tests for the pure policies in ``disciplined.schedules.policies``.

Hand-computed values at chosen steps, equality with torch's ``OneCycleLR`` and
``CyclicLR`` at every step, property tests over random valid configurations, every
``ValueError`` with its message, and the ``to_dict`` round trip.
"""

from __future__ import annotations

import json
import math
import re
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from disciplined.schedules.policies import (
    ConstantPolicy,
    OneCyclePolicy,
    RangeSweep,
    StepPolicy,
    TriangularPolicy,
    interpolate,
    piecewise,
    policy_from_dict,
)

EXACT = 1e-12

# ----------------------------------------------------------------- the primitives


def test_interpolate_linear_and_cos_by_hand():
    assert interpolate(2.0, 4.0, 0.0) == 2.0
    assert interpolate(2.0, 4.0, 0.25) == 2.5
    assert interpolate(2.0, 4.0, 1.0) == 4.0
    # cos: end + (start - end) / 2 * (cos(pi * frac) + 1)
    assert interpolate(2.0, 4.0, 0.0, "cos") == pytest.approx(2.0, abs=EXACT)
    assert interpolate(2.0, 4.0, 0.5, "cos") == pytest.approx(3.0, abs=EXACT)
    assert interpolate(2.0, 4.0, 1.0, "cos") == pytest.approx(4.0, abs=EXACT)
    # frac 1/3: cos(pi/3) = 1/2, so 4 - 1 * 1.5 = 2.5
    assert interpolate(2.0, 4.0, 1 / 3, "cos") == pytest.approx(2.5, abs=EXACT)


def test_piecewise_fractional_knots_and_clamping():
    knots = [(0.0, 1.0), (2.5, 6.0), (4.5, 2.0)]
    assert piecewise(0, knots) == 1.0
    assert piecewise(1, knots) == pytest.approx(3.0, abs=EXACT)  # 1 + 5 * 1/2.5
    assert piecewise(2.5, knots) == pytest.approx(6.0, abs=EXACT)
    assert piecewise(3.5, knots) == pytest.approx(4.0, abs=EXACT)  # halfway 6 -> 2
    assert piecewise(-1, knots) == 1.0  # before the first knot: held
    assert piecewise(9, knots) == 2.0  # after the last knot: held
    assert piecewise(7, [(3.0, 5.0)]) == 5.0


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda: interpolate(0.0, 1.0, 0.5, "cosine"),
            "shape must be one of 'linear', 'cos', got 'cosine'",
        ),
        (lambda: piecewise(1, []), "knots must be a non-empty sequence"),
        (lambda: piecewise(1, [(0.0, 1.0), (0.0, 2.0)]), "knots must be in strictly increasing"),
    ],
)
def test_primitive_errors(call, match):
    with pytest.raises(ValueError, match=re.escape(match)):
        call()


# ------------------------------------------------------------------- 1cycle by hand

# OneCyclePolicy(max_lr=1.0, total_steps=100), defaults div=10, final_div=100,
# annihilation=0.1, momenta 0.95 / 0.85:
#   pct_start = (1 - 0.1) / 2 = 0.45
#   peak      = 0.45 * 100 - 1     = 44     lr 1.0,   momentum 0.85
#   cycle end = 2 * 0.45 * 100 - 2 = 88     lr 0.1,   momentum 0.95
#   last step = 100 - 1            = 99     lr 0.1 / 100 = 0.001, momentum 0.95
#   min_lr = 1.0 / 10 = 0.1 at step 0 (momentum 0.95).
# Interior points, linear: step 22 is halfway up, lr 0.1 + 0.9 / 2 = 0.55, momentum 0.90;
# step 66 halfway down, lr 0.55, momentum 0.90. The tail runs 88 -> 99 (11 steps) from 0.1
# to 0.001: step 93 is 5/11 of the way, lr 0.1 - 0.099 * 5 / 11 = 0.055; step 95 is 7/11,
# lr 0.1 - 0.099 * 7 / 11 = 0.037; momentum stays 0.95.
# Cos: step 22 (frac 1/2) gives the same 0.55 (cos(pi/2) = 0); step 11 (frac 1/4) gives
# 1.0 + (0.1 - 1.0) / 2 * (cos(pi/4) + 1) = 1 - 0.45 * (1 + sqrt(2)/2) = 0.23180194846605...
# and momentum 0.85 + 0.05 * (1 + sqrt(2)/2) = 0.93535533905932...

HAND_LINEAR = {
    # step: (lr, momentum)
    0: (0.1, 0.95),
    22: (0.55, 0.90),
    44: (1.0, 0.85),
    66: (0.55, 0.90),
    88: (0.1, 0.95),
    93: (0.055, 0.95),
    95: (0.037, 0.95),
    99: (0.001, 0.95),
}

HAND_COS = {
    0: (0.1, 0.95),
    11: (1 - 0.45 * (1 + math.sqrt(2) / 2), 0.85 + 0.05 * (1 + math.sqrt(2) / 2)),
    22: (0.55, 0.90),
    44: (1.0, 0.85),
    88: (0.1, 0.95),
    99: (0.001, 0.95),
}


@pytest.mark.parametrize(("shape", "table"), [("linear", HAND_LINEAR), ("cos", HAND_COS)])
def test_one_cycle_hand_values(shape, table):
    policy = OneCyclePolicy(max_lr=1.0, total_steps=100, shape=shape)
    assert policy.min_lr == 0.1
    assert policy.final_lr == pytest.approx(0.001, abs=EXACT)
    assert policy.pct_start == 0.45
    assert policy.peak_step == pytest.approx(44.0, abs=EXACT)
    assert policy.cycle_end_step == pytest.approx(88.0, abs=EXACT)
    for step, (lr, momentum) in table.items():
        assert policy.lr(step) == pytest.approx(lr, abs=EXACT), step
        assert policy.momentum(step) == pytest.approx(momentum, abs=EXACT), step


def test_one_cycle_fractional_knots():
    # T = 50: pct_start * T - 1 = 21.5 and 2 * pct_start * T - 2 = 43; no step sits on the
    # peak, steps 21 and 22 lie on either side of it at equal distance (equal halves).
    policy = OneCyclePolicy(max_lr=2.0, total_steps=50)
    assert policy.peak_step == pytest.approx(21.5, abs=EXACT)
    assert policy.cycle_end_step == pytest.approx(43.0, abs=EXACT)
    assert policy.lr(21) == pytest.approx(policy.lr(22), abs=EXACT)
    # step 21: 0.2 + 1.8 * 21 / 21.5
    assert policy.lr(21) == pytest.approx(0.2 + 1.8 * 21 / 21.5, abs=EXACT)
    assert max(policy.lr(s) for s in range(50)) < 2.0


# --------------------------------------------------------------- equal to torch

# The mapping to torch.optim.lr_scheduler.OneCycleLR:
#   OneCyclePolicy(max_lr, total_steps=T, div, annihilation, final_div,
#                  max_momentum, min_momentum, shape)
#   == OneCycleLR(max_lr=max_lr, total_steps=T, div_factor=div, final_div_factor=final_div,
#                 pct_start=(1 - annihilation) / 2, three_phase=True, anneal_strategy=shape,
#                 base_momentum=min_momentum, max_momentum=max_momentum)
# torch's value at step k is read from the optimizer after k calls to scheduler.step().

ONE_CYCLE_CONFIGS = [
    {"max_lr": 1.0, "total_steps": 100},
    {"max_lr": 1.0, "total_steps": 100, "shape": "cos"},
    {"max_lr": 0.3, "total_steps": 37, "div": 4.0, "final_div": 1e4, "annihilation": 0.2},
    {"max_lr": 3e-3, "total_steps": 1000, "div": 25.0, "annihilation": 0.05, "shape": "cos"},
    {"max_lr": 0.08, "total_steps": 7, "max_momentum": 0.99, "min_momentum": 0.8},
    {"max_lr": 5.0, "total_steps": 11, "annihilation": 0.5, "final_div": 1.0, "shape": "cos"},
]


def _torch_one_cycle_values(policy):
    import torch

    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.0, momentum=0.5)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=policy.max_lr,
        total_steps=policy.total_steps,
        div_factor=policy.div,
        final_div_factor=policy.final_div,
        pct_start=policy.pct_start,
        three_phase=True,
        anneal_strategy=policy.shape,
        base_momentum=policy.min_momentum,
        max_momentum=policy.max_momentum,
    )
    values = []
    for step in range(policy.total_steps):
        group = optimizer.param_groups[0]
        values.append((group["lr"], group["momentum"]))
        if step < policy.total_steps - 1:
            optimizer.step()
            scheduler.step()
    return values


@pytest.mark.parametrize("config", ONE_CYCLE_CONFIGS)
def test_one_cycle_equals_torch(config):
    policy = OneCyclePolicy(**config)
    expected = _torch_one_cycle_values(policy)
    for step, (lr, momentum) in enumerate(expected):
        assert abs(policy.lr(step) - lr) <= EXACT, step
        assert abs(policy.momentum(step) - momentum) <= EXACT, step


# TriangularPolicy(base_lr, max_lr, step_size, total_steps, mode, gamma, max_m, min_m)
# == CyclicLR(base_lr=base_lr, max_lr=max_lr, step_size_up=step_size, mode=mode,
#             gamma=gamma, base_momentum=min_m, max_momentum=max_m)
TRIANGULAR_CONFIGS = [
    {"base_lr": 0.01, "max_lr": 0.1, "step_size": 5, "total_steps": 47},
    {"base_lr": 0.001, "max_lr": 0.6, "step_size": 4, "total_steps": 50, "mode": "triangular2"},
    {
        "base_lr": 0.01,
        "max_lr": 1.0,
        "step_size": 3,
        "total_steps": 40,
        "mode": "exp_range",
        "gamma": 0.97,
    },
]


@pytest.mark.parametrize("config", TRIANGULAR_CONFIGS)
def test_triangular_equals_torch(config):
    import torch

    policy = TriangularPolicy(**config, max_momentum=0.95, min_momentum=0.8)
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.0, momentum=0.5)
    scheduler = torch.optim.lr_scheduler.CyclicLR(
        optimizer,
        base_lr=policy.base_lr,
        max_lr=policy.max_lr,
        step_size_up=policy.step_size,
        mode=policy.mode,
        gamma=policy.gamma,
        base_momentum=0.8,
        max_momentum=0.95,
    )
    for step in range(policy.total_steps):
        group = optimizer.param_groups[0]
        assert abs(policy.lr(step) - group["lr"]) <= EXACT, step
        assert abs(policy.momentum(step) - group["momentum"]) <= EXACT, step
        optimizer.step()
        scheduler.step()


def test_triangular_hand_values():
    # step_size 4: up over steps 0..4, down over 4..8; triangular2 halves the second cycle.
    policy = TriangularPolicy(base_lr=0.1, max_lr=0.5, step_size=4, total_steps=20)
    assert policy.lr(0) == pytest.approx(0.1, abs=EXACT)
    assert policy.lr(2) == pytest.approx(0.3, abs=EXACT)
    assert policy.lr(4) == pytest.approx(0.5, abs=EXACT)
    assert policy.lr(8) == pytest.approx(0.1, abs=EXACT)
    assert policy.momentum(4) is None
    halved = TriangularPolicy(0.1, 0.5, 4, 20, mode="triangular2")
    assert halved.lr(12) == pytest.approx(0.3, abs=EXACT)  # 0.1 + 0.4 * 1 * 1/2
    with_momentum = TriangularPolicy(0.1, 0.5, 4, 20, max_momentum=0.9, min_momentum=0.8)
    assert with_momentum.momentum(0) == pytest.approx(0.9, abs=EXACT)
    assert with_momentum.momentum(2) == pytest.approx(0.85, abs=EXACT)
    assert with_momentum.momentum(4) == pytest.approx(0.8, abs=EXACT)


# ------------------------------------------------------------- properties of 1cycle


@st.composite
def one_cycle_configs(draw):
    annihilation = draw(st.floats(0.01, 0.6))
    smallest = 3
    while not (1 - annihilation) / 2 * smallest - 1 > 0:  # the warm-up must have length
        smallest += 1
    total_steps = draw(st.integers(smallest, 400))
    max_momentum = draw(st.floats(0.5, 0.99))
    min_momentum = draw(st.floats(0.0, max_momentum - 0.01))
    return {
        "max_lr": draw(st.floats(1e-4, 10.0)),
        "total_steps": total_steps,
        "div": draw(st.floats(1.5, 100.0)),
        "annihilation": annihilation,
        "final_div": draw(st.floats(1.0, 1e4)),
        "max_momentum": max_momentum,
        "min_momentum": min_momentum,
        "shape": draw(st.sampled_from(["linear", "cos"])),
    }


@settings(max_examples=150, deadline=None)
@given(one_cycle_configs())
def test_one_cycle_properties(config):
    policy = OneCyclePolicy(**config)
    steps = range(policy.total_steps)
    lrs = [policy.lr(step) for step in steps]
    momenta = [policy.momentum(step) for step in steps]
    tol = 1e-12 * policy.max_lr
    max_m, min_m = policy.max_momentum, policy.min_momentum

    assert policy.peak_step == pytest.approx(policy.cycle_end_step - policy.peak_step)
    assert lrs[0] == pytest.approx(policy.min_lr, abs=tol)
    assert lrs[-1] == pytest.approx(policy.final_lr, abs=tol)
    for step in steps:
        lr, m = lrs[step], momenta[step]
        assert policy.final_lr - tol <= lr <= policy.max_lr + tol
        assert min_m - EXACT <= m <= max_m + EXACT
        if step <= policy.cycle_end_step:
            # Momentum mirrors the learning rate through the cycle.
            lr_frac = (lr - policy.min_lr) / (policy.max_lr - policy.min_lr)
            m_frac = (max_m - m) / (max_m - min_m)
            assert lr_frac == pytest.approx(m_frac, abs=1e-9)
            assert lr >= policy.min_lr - tol
        else:
            assert lr <= policy.min_lr + tol
            assert m == max_m
        if step == 0:
            continue
        previous = lrs[step - 1]
        if step <= policy.peak_step:
            assert lr >= previous - tol  # warm-up: rising
        elif step - 1 >= policy.peak_step:
            assert lr <= previous + tol  # cool-down and tail: falling
    # The peak is reached within one step's worth of the climb.
    climb = (policy.max_lr - policy.min_lr) / policy.peak_step
    assert max(lrs) >= policy.max_lr - climb - tol


# ------------------------------------------------------------------------ the sweep


@pytest.mark.parametrize("mode", ["exp", "linear"])
def test_range_sweep_endpoints_exact(mode):
    sweep = RangeSweep(start_lr=1e-7, end_lr=3.0, num_steps=101, mode=mode)
    lrs = sweep.lrs()
    assert len(lrs) == 101
    assert lrs[0] == 1e-7
    assert lrs[-1] == 3.0
    assert sweep.total_steps == 101
    assert sweep.momentum(5) is None


@settings(max_examples=100, deadline=None)
@given(
    start=st.floats(1e-8, 1.0),
    ratio=st.floats(1.5, 1e8),
    num_steps=st.integers(2, 300),
)
def test_range_sweep_spacing(start, ratio, num_steps):
    end = start * ratio
    exp = RangeSweep(start, end, num_steps, mode="exp").lrs()
    assert exp[0] == start
    assert exp[-1] == end
    step_ratio = ratio ** (1 / (num_steps - 1))
    for a, b in pairwise(exp):
        assert b / a == pytest.approx(step_ratio, rel=1e-9)
    linear = RangeSweep(start, end, num_steps, mode="linear").lrs()
    assert linear[0] == start
    assert linear[-1] == end
    difference = (end - start) / (num_steps - 1)
    for a, b in pairwise(linear):
        assert b - a == pytest.approx(difference, rel=1e-6)


# ---------------------------------------------------------------------- baselines


def test_constant_and_step_policies():
    constant = ConstantPolicy(lr=0.05, total_steps=10)
    assert [constant.lr(s) for s in range(10)] == [0.05] * 10
    assert constant.momentum(3) is None
    assert ConstantPolicy(lr=0.05, total_steps=10, momentum=0.9).momentum(9) == 0.9

    # milestones 0.5 and 0.75 of 100 steps: drops at steps 50 and 75.
    step = StepPolicy(lr=0.1, total_steps=100)
    assert step.milestone_steps == (50, 75)
    assert step.lr(0) == 0.1
    assert step.lr(49) == 0.1
    assert step.lr(50) == pytest.approx(0.01, abs=EXACT)
    assert step.lr(74) == pytest.approx(0.01, abs=EXACT)
    assert step.lr(75) == pytest.approx(0.001, abs=EXACT)
    assert step.lr(99) == pytest.approx(0.001, abs=EXACT)
    assert step.momentum(0) is None
    # milestones given as a list are stored as a tuple (hashable).
    custom = StepPolicy(lr=1.0, total_steps=10, milestones=[0.3], gamma=0.5, momentum=0.9)
    assert custom.milestones == (0.3,)
    assert hash(custom) == hash(StepPolicy(1.0, 10, (0.3,), 0.5, 0.9))
    assert custom.lr(2) == 1.0
    assert custom.lr(3) == 0.5
    assert custom.momentum(4) == 0.9


# ------------------------------------------------------------------------- errors

ERROR_CASES = [
    (OneCyclePolicy, {"max_lr": -1.0, "total_steps": 100}, "max_lr must be > 0, got -1.0"),
    (OneCyclePolicy, {"max_lr": 0.0, "total_steps": 100}, "max_lr must be > 0, got 0.0"),
    (
        OneCyclePolicy,
        {"max_lr": math.nan, "total_steps": 100},
        "max_lr must be a finite number > 0, got nan",
    ),
    (
        OneCyclePolicy,
        {"max_lr": "0.1", "total_steps": 100},
        "max_lr must be a finite number > 0, got '0.1'",
    ),
    (
        OneCyclePolicy,
        {"max_lr": 1.0, "total_steps": 2},
        "total_steps must be an integer >= 3, got 2",
    ),
    (
        OneCyclePolicy,
        {"max_lr": 1.0, "total_steps": 100.0},
        "total_steps must be an integer >= 3, got 100.0",
    ),
    (OneCyclePolicy, {"max_lr": 1.0, "total_steps": 100, "div": 1.0}, "div must be > 1, got 1.0"),
    (
        OneCyclePolicy,
        {"max_lr": 1.0, "total_steps": 100, "final_div": 0.5},
        "final_div must be >= 1, got 0.5",
    ),
    (
        OneCyclePolicy,
        {"max_lr": 1.0, "total_steps": 100, "annihilation": 0.0},
        "annihilation must be in (0, 1), got 0.0",
    ),
    (
        OneCyclePolicy,
        {"max_lr": 1.0, "total_steps": 100, "annihilation": 1.0},
        "annihilation must be in (0, 1), got 1.0",
    ),
    (
        OneCyclePolicy,
        {"max_lr": 1.0, "total_steps": 100, "max_momentum": 1.0},
        "max_momentum must be in [0, 1), got 1.0",
    ),
    (
        OneCyclePolicy,
        {"max_lr": 1.0, "total_steps": 100, "min_momentum": -0.1},
        "min_momentum must be in [0, 1), got -0.1",
    ),
    (
        OneCyclePolicy,
        {"max_lr": 1.0, "total_steps": 100, "min_momentum": 0.96},
        "min_momentum must be <= max_momentum, got min_momentum=0.96, max_momentum=0.95",
    ),
    (
        OneCyclePolicy,
        {"max_lr": 1.0, "total_steps": 100, "shape": "cosine"},
        "shape must be one of 'linear', 'cos', got 'cosine'",
    ),
    (
        OneCyclePolicy,
        {"max_lr": 1.0, "total_steps": 4, "annihilation": 0.5},
        "total_steps=4 is too small for annihilation=0.5",
    ),
    (
        OneCyclePolicy,
        {"max_lr": 1.0, "total_steps": 4, "annihilation": 0.5},
        "= 0.0 steps; total_steps must be at least 5",
    ),
    (
        # 2 / (1 - 1/3) rounds to just under 3, yet 3 steps leave a warm-up of 0.0 steps.
        OneCyclePolicy,
        {"max_lr": 1.0, "total_steps": 3, "annihilation": 1 / 3},
        "total_steps must be at least 4",
    ),
    (
        RangeSweep,
        {"start_lr": 0.0, "end_lr": 1.0, "num_steps": 10},
        "start_lr must be > 0, got 0.0",
    ),
    (
        RangeSweep,
        {"start_lr": 1.0, "end_lr": 1.0, "num_steps": 10},
        "end_lr must be > start_lr, got end_lr=1.0, start_lr=1.0",
    ),
    (
        RangeSweep,
        {"start_lr": 1e-5, "end_lr": 1.0, "num_steps": 1},
        "num_steps must be an integer >= 2, got 1",
    ),
    (
        RangeSweep,
        {"start_lr": 1e-5, "end_lr": 1.0, "num_steps": 10, "mode": "log"},
        "mode must be one of 'exp', 'linear', got 'log'",
    ),
    (
        TriangularPolicy,
        {"base_lr": -0.1, "max_lr": 1.0, "step_size": 2, "total_steps": 10},
        "base_lr must be > 0, got -0.1",
    ),
    (
        TriangularPolicy,
        {"base_lr": 0.1, "max_lr": 0.1, "step_size": 2, "total_steps": 10},
        "max_lr must be > base_lr, got max_lr=0.1, base_lr=0.1",
    ),
    (
        TriangularPolicy,
        {"base_lr": 0.1, "max_lr": 1.0, "step_size": 0, "total_steps": 10},
        "step_size must be an integer >= 1, got 0",
    ),
    (
        TriangularPolicy,
        {"base_lr": 0.1, "max_lr": 1.0, "step_size": 2, "total_steps": 0},
        "total_steps must be an integer >= 1, got 0",
    ),
    (
        TriangularPolicy,
        {"base_lr": 0.1, "max_lr": 1.0, "step_size": 2, "total_steps": 10, "mode": "tri"},
        "mode must be one of 'triangular', 'triangular2', 'exp_range', got 'tri'",
    ),
    (
        TriangularPolicy,
        {"base_lr": 0.1, "max_lr": 1.0, "step_size": 2, "total_steps": 10, "gamma": 1.5},
        "gamma must be in (0, 1], got 1.5",
    ),
    (
        TriangularPolicy,
        {"base_lr": 0.1, "max_lr": 1.0, "step_size": 2, "total_steps": 10, "max_momentum": 0.9},
        "max_momentum and min_momentum must be given together",
    ),
    (
        TriangularPolicy,
        {
            "base_lr": 0.1,
            "max_lr": 1.0,
            "step_size": 2,
            "total_steps": 10,
            "max_momentum": 0.8,
            "min_momentum": 0.9,
        },
        "min_momentum must be <= max_momentum, got min_momentum=0.9, max_momentum=0.8",
    ),
    (ConstantPolicy, {"lr": -1.0, "total_steps": 10}, "lr must be > 0, got -1.0"),
    (ConstantPolicy, {"lr": 1.0, "total_steps": 0}, "total_steps must be an integer >= 1, got 0"),
    (
        ConstantPolicy,
        {"lr": 1.0, "total_steps": 10, "momentum": 1.0},
        "momentum must be None or a number in [0, 1), got 1.0",
    ),
    (StepPolicy, {"lr": 0.0, "total_steps": 10}, "lr must be > 0, got 0.0"),
    (
        StepPolicy,
        {"lr": 1.0, "total_steps": 10, "milestones": (0.5, 0.4)},
        "milestones must be a sequence of strictly increasing fractions in (0, 1), got (0.5, 0.4)",
    ),
    (
        StepPolicy,
        {"lr": 1.0, "total_steps": 10, "milestones": (0.5, 1.0)},
        "milestones must be a sequence of strictly increasing fractions in (0, 1), got (0.5, 1.0)",
    ),
    (StepPolicy, {"lr": 1.0, "total_steps": 10, "gamma": 0.0}, "gamma must be in (0, 1], got 0.0"),
]


@pytest.mark.parametrize(("cls", "kwargs", "message"), ERROR_CASES)
def test_invalid_arguments(cls, kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        cls(**kwargs)


POLICIES = [
    OneCyclePolicy(max_lr=1.0, total_steps=100),
    OneCyclePolicy(max_lr=0.3, total_steps=40, div=4.0, annihilation=0.2, shape="cos"),
    RangeSweep(start_lr=1e-6, end_lr=10.0, num_steps=50),
    RangeSweep(start_lr=1e-3, end_lr=1.0, num_steps=20, mode="linear"),
    TriangularPolicy(0.01, 0.1, 5, 40),
    TriangularPolicy(0.01, 0.1, 5, 40, "exp_range", 0.99, 0.95, 0.85),
    ConstantPolicy(lr=0.1, total_steps=30),
    ConstantPolicy(lr=0.1, total_steps=30, momentum=0.9),
    StepPolicy(lr=0.1, total_steps=30),
    StepPolicy(lr=0.1, total_steps=30, milestones=(0.3, 0.6, 0.9), gamma=0.5, momentum=0.9),
]


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: type(p).__name__)
def test_step_out_of_range(policy):
    total = policy.total_steps
    for bad in (-1, total):
        with pytest.raises(
            ValueError, match=re.escape(f"step must be an integer in [0, {total}), got {bad}")
        ):
            policy.lr(bad)
        with pytest.raises(ValueError, match=re.escape(f"[0, {total}), got {bad}")):
            policy.momentum(bad)
    with pytest.raises(ValueError, match=re.escape("step must be an integer in")):
        policy.lr(1.5)


# ----------------------------------------------------------------------- round trip


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: type(p).__name__)
def test_to_dict_round_trip(policy):
    data = policy.to_dict()
    assert data["kind"] == policy.kind
    rebuilt = policy_from_dict(json.loads(json.dumps(data)))
    assert rebuilt == policy
    assert hash(rebuilt) == hash(policy)
    assert type(rebuilt) is type(policy)
    steps = range(policy.total_steps)
    assert [rebuilt.lr(s) for s in steps] == [policy.lr(s) for s in steps]
    assert [rebuilt.momentum(s) for s in steps] == [policy.momentum(s) for s in steps]


def test_policy_from_dict_errors():
    with pytest.raises(ValueError, match=r"kind must be one of .*, got 'cosine'"):
        policy_from_dict({"kind": "cosine", "max_lr": 1.0})
    with pytest.raises(ValueError, match="data must be a mapping with a 'kind' key"):
        policy_from_dict({"max_lr": 1.0})
    with pytest.raises(ValueError, match="unknown fields for kind 'one_cycle': warmup"):
        policy_from_dict({"kind": "one_cycle", "max_lr": 1.0, "total_steps": 10, "warmup": 3})
    with pytest.raises(ValueError, match=re.escape("max_lr must be > 0, got -2.0")):
        policy_from_dict({"kind": "one_cycle", "max_lr": -2.0, "total_steps": 10})


def test_policies_are_frozen():
    policy = OneCyclePolicy(max_lr=1.0, total_steps=100)
    with pytest.raises(AttributeError):
        policy.max_lr = 2.0  # type: ignore[misc]
