"""Suggestion rules on curves whose right answer is known by construction.

The curves are functions of ``u = log10(lr)`` on ``LRS = geomspace(1e-4, 10, 200)``, so the
point each rule should read (where the fall ends, where it is steepest, where the minimum
is) can be computed from the formula and compared with what the rule read off the samples.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from disciplined.measure.suggest import (
    RULES,
    Suggestion,
    median_curve,
    minimum_div10,
    smith,
    smooth,
    steepest,
    suggest,
    suggest_multi,
    valley,
)

LRS = np.geomspace(1e-4, 10, 200)
STEP = LRS[1] / LRS[0]  # one grid point, as a factor of LR
TOP, FLOOR = 2.3, 0.3  # plateau level and the bottom of the fall
U0, U1 = -3.0, math.log10(0.3)  # the fall runs from LR 1e-3 to LR 0.3


def valley_curve(lrs: np.ndarray = LRS, shift: float = 1.0) -> np.ndarray:
    """Flat at 2.3 up to LR 1e-3, a half cosine down to 0.3 at LR 0.3, a gentle bowl up to
    0.5 at LR 1, then a sharp rise that levels off near 5.5 (a diverged classifier).
    ``shift`` moves the whole curve right by that factor in LR."""
    u = np.log10(np.asarray(lrs) / shift)
    t = np.clip((u - U0) / (U1 - U0), 0.0, 1.0)
    y = FLOOR + (TOP - FLOOR) * (1 + np.cos(np.pi * t)) / 2
    bowl = 0.2 * (np.clip(u - U1, 0.0, -U1) / -U1) ** 2
    blowup = 5.0 * (1 - np.exp(-np.clip(u, 0.0, None) / 0.15))
    return y + bowl + blowup


def lr_at(t: float, shift: float = 1.0) -> float:
    """The LR a fraction ``t`` of the way along the fall (in log-LR)."""
    return shift * 10 ** (U0 + t * (U1 - U0))


def index_of(lr: float) -> int:
    """The grid point nearest ``lr`` in log-LR."""
    return int(np.argmin(np.abs(np.log(LRS) - math.log(lr))))


# Where the clean curve's landmarks are, from the formula:
# smith: within 10% of the drop of the floor, (1 + cos(pi t)) / 2 = 0.1
T_SMITH = math.acos(-0.8) / math.pi
# steepest: d/du of cos(pi t) is most negative at t = 1/2
T_STEEP = 0.5
# valley: tol = 5% of the drop; the descent starts where cos leaves 2.3 - tol and ends
# where it reaches 0.3 + tol; the pick is two thirds along in points (u is linear in index)
T_VALLEY_A = math.acos(1 - 2 * 0.05) / math.pi
T_VALLEY_B = math.acos(-1 + 2 * 0.05) / math.pi
T_VALLEY = T_VALLEY_A + 2 / 3 * (T_VALLEY_B - T_VALLEY_A)


# --------------------------------------------------------------------------- smooth


def test_smooth_by_hand() -> None:
    # beta 0.5: avg 1, 2.5, 1.75; corrections 1 - 0.5, 1 - 0.25, 1 - 0.125
    assert smooth([2.0, 4.0, 1.0], beta=0.5) == pytest.approx([2.0, 2.5 / 0.75, 1.75 / 0.875])


def test_smooth_nan_from_first_nonfinite_on() -> None:
    out = smooth([1.0, 2.0, math.inf, 1.0, 1.0], beta=0.5)
    assert out[:2] == pytest.approx([1.0, (0.25 + 1.0) / 0.75])
    assert all(math.isnan(v) for v in out[2:])


def test_smooth_beta_zero_is_identity_and_bad_beta_raises() -> None:
    assert smooth([3.0, 1.0, 2.0], beta=0.0) == [3.0, 1.0, 2.0]
    with pytest.raises(ValueError, match=r"beta must be a number in \[0, 1\), got 1.0"):
        smooth([1.0], beta=1.0)


# --------------------------------------------------------------------------- clean valley


def test_clean_valley_smith_band_zero_reads_the_minimum() -> None:
    # band 0: "where the loss stops falling" on a lag-free curve is its minimum; the
    # default 5% band reads just before it
    y = valley_curve()
    s = smith(LRS, y, band=0.0)
    low = int(np.argmin(y))
    assert s.index == low and s.max_lr == LRS[low]
    default = smith(LRS, y)
    assert LRS[low] / 10 < default.max_lr < s.max_lr
    assert default.min_lr == pytest.approx(default.max_lr / 10)


def test_clean_valley_smith_reads_where_the_fall_ends() -> None:
    y = valley_curve()
    s = smith(LRS, y, band=0.10)
    expected = lr_at(T_SMITH)  # ~0.093, the first LR at or past it is the answer
    assert LRS[s.index] == s.max_lr
    assert LRS[s.index - 1] < expected <= s.max_lr < expected * STEP
    assert 0.05 <= s.max_lr <= 0.3
    assert s.min_lr == pytest.approx(s.max_lr / 10)
    assert s.rule == "smith"
    assert "fell from 2.3 to a minimum of 0.3" in s.reason
    assert "unreliable" not in s.reason and s.reliable and "reliable" not in s.to_dict()


def test_clean_valley_minimum_div10_is_exact() -> None:
    y = valley_curve()
    s = minimum_div10(LRS, y)
    low = int(np.argmin(y))
    assert s.max_lr == LRS[low] / 10
    assert s.index == low
    assert 0.3 / STEP < LRS[low] < 0.3 * STEP
    assert s.rule == "minimum/10"


def test_clean_valley_steepest_is_the_fastest_fall() -> None:
    y = valley_curve()
    s = steepest(LRS, y)
    assert abs(s.index - index_of(lr_at(T_STEEP))) <= 1
    assert s.max_lr == LRS[s.index]


def test_clean_valley_valley_is_two_thirds_down_the_descent() -> None:
    y = valley_curve()
    s = valley(LRS, y)
    assert 1e-3 < s.max_lr < 0.3
    assert abs(s.index - index_of(lr_at(T_VALLEY))) <= 2


def test_div_sets_min_lr() -> None:
    y = valley_curve()
    for name in RULES:
        s = suggest(LRS, y, rule=name, div=4.0)
        assert s.min_lr == pytest.approx(s.max_lr / 4)
        assert "(max/4)" in s.reason


# --------------------------------------------------------------------------- early spike


def test_early_spike_on_the_plateau_does_not_fool_the_rules() -> None:
    clean = valley_curve()
    spiky = clean.copy()
    spiky[index_of(1e-3)] += 3.0
    for name in RULES:
        a = suggest(LRS, smooth(clean), rule=name)
        b = suggest(LRS, smooth(spiky), rule=name)
        assert a.max_lr / 1.5 <= b.max_lr <= a.max_lr * 1.5, name


def test_smoothing_lags_but_smith_stays_on_the_fall() -> None:
    y = valley_curve()
    s = smith(LRS, smooth(y))
    # the smoothed curve lags the raw one, so its fall ends later, but before divergence
    assert lr_at(T_SMITH) <= s.max_lr < 1.0


# --------------------------------------------------------------------------- noisy plateau


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("smoothed", [True, False])
def test_noisy_plateau_is_unreliable_and_no_rule_crashes(seed: int, smoothed: bool) -> None:
    rng = np.random.default_rng(seed)
    y = TOP + 0.03 * rng.standard_normal(len(LRS))
    if smoothed:
        y = np.asarray(smooth(y))
    s = smith(LRS, y)
    assert "never fell clearly" in s.reason
    assert "unreliable" in s.reason and not s.reliable
    assert Suggestion.from_dict(s.to_dict()) == s and s.to_dict()["reliable"] is False
    for name in RULES:
        s = suggest(LRS, y, rule=name)
        assert LRS[0] / 10 <= s.max_lr <= LRS[-1]
        assert 0 <= s.index < len(LRS)
        assert "unreliable" in s.reason


def test_a_plateau_that_never_fell_reads_where_it_ended_not_its_noise_minimum() -> None:
    # a deep net without normalization: flat (with noise) up to LR 3, where it blew up and
    # the curve was cut; its noise minimum can sit at any LR, its plateau's end cannot
    rng = np.random.default_rng(0)
    flat = TOP + 0.01 * rng.standard_normal(len(LRS))
    end = int(np.searchsorted(LRS, 3.0))
    y = np.concatenate([flat[:end], np.full(len(LRS) - end, np.nan)])
    s = smith(LRS, y)
    assert not s.reliable and "stayed on its plateau" in s.reason
    assert s.index == end - 1 and s.max_lr == pytest.approx(LRS[end - 1] / 10)
    # a curve flat up to LR 0.01 that then rises for good (without a fall) leaves its band
    # (5% above the start) where 0.5 log10(lr / 0.01) = 0.05, at LR 0.01 * 10**0.1
    rising = np.where(LRS <= 0.01, TOP, TOP * (1 + 0.5 * np.log10(LRS / 0.01)))
    s = smith(LRS, rising)
    edge = 0.01 * 10**0.1
    assert not s.reliable and edge / STEP <= 10 * s.max_lr <= edge


# --------------------------------------------------------------------------- no divergence


def falling_curve() -> np.ndarray:
    """Flat at 2.3 up to LR 1e-3, then an exponential approach to 0.3 that goes on falling
    (ever more slowly) to the end of the sweep: no minimum before the last LR."""
    u = np.log10(LRS)
    return FLOOR + (TOP - FLOOR) * np.exp(-np.clip(u - U0, 0.0, None) / 0.5)


def test_curve_that_never_diverges() -> None:
    y = falling_curve()
    assert int(np.argmin(y)) == len(LRS) - 1
    default = smith(LRS, y, band=0.0)  # band 0: the fall never ends inside the sweep
    assert default.max_lr == LRS[-1] and "raise its end LR" in default.reason
    s = smith(LRS, y, band=0.10)
    # within 10% of the drop (the drop is ~2.0 to ~0.3): exp(-(u + 3) / 0.5) = 0.1
    expected = 10 ** (U0 + 0.5 * math.log(10))
    assert LRS[s.index - 1] < expected <= s.max_lr < expected * STEP
    assert s.max_lr < LRS[-1] / 100
    assert "climbed back" not in s.reason
    for name in RULES:
        s = suggest(LRS, y, rule=name)
        assert LRS[0] / 10 <= s.max_lr <= LRS[-1], name


# --------------------------------------------------------------------------- late dip


def late_dip_curve() -> np.ndarray:
    """The clean valley, but after diverging to ~5.5 the loss dips steeply to 4.0 around
    LR 3 and comes back: the classic steepest-slope rule reads the dip."""
    u = np.log10(LRS)
    dip = -1.5 * np.exp(-(((u - math.log10(3.0)) / 0.08) ** 2))
    return valley_curve() + dip


def test_steepest_ignores_a_late_dip_after_divergence() -> None:
    y = late_dip_curve()
    low = int(np.argmin(y))
    classic = int(np.argmin(np.gradient(y, np.log(LRS))))
    assert LRS[classic] > 1.0  # the fixture has the failure the fix is for
    s = steepest(LRS, y)
    assert s.index < low
    assert abs(s.index - index_of(lr_at(T_STEEP))) <= 1
    assert "climbed back above its start" in s.reason
    for name in RULES:
        assert suggest(LRS, y, rule=name).max_lr < LRS[low] * STEP, name


def test_a_dip_below_the_minimum_after_divergence_is_not_the_minimum() -> None:
    y = valley_curve().copy()
    late = index_of(5.0)
    y[late] = 0.0  # lower than the real minimum, but after the loss rose above its start
    assert int(np.argmin(y)) == late
    assert minimum_div10(LRS, y).max_lr == minimum_div10(LRS, valley_curve()).max_lr
    assert smith(LRS, y).max_lr == smith(LRS, valley_curve()).max_lr


# --------------------------------------------------------------------------- NaN cut


@pytest.mark.parametrize("k", [120, 185])
@pytest.mark.parametrize("bad", [math.nan, math.inf])
@pytest.mark.parametrize("name", list(RULES))
def test_nan_cut_equals_truncation(k: int, bad: float, name: str) -> None:
    y = valley_curve()
    cut = y.copy()
    cut[k] = bad
    cut[k + 1 :] = 1.0  # finite losses after a non-finite one are ignored too
    a = suggest(LRS, cut, rule=name)
    b = suggest(LRS[:k], y[:k], rule=name)
    assert (a.max_lr, a.min_lr, a.index, a.rule) == (b.max_lr, b.min_lr, b.index, b.rule)
    assert f"losses from step {k} on are not finite" in a.reason
    assert "not finite" not in b.reason


# --------------------------------------------------------------------------- several seeds

SHIFTS = (0.8, 1.0, 1.25)


def shifted_curves(lengths: tuple[int, ...] = (200, 200, 200)) -> list:
    return [
        (LRS[:n].tolist(), valley_curve(shift=shift)[:n].tolist())
        for shift, n in zip(SHIFTS, lengths, strict=True)
    ]


def test_median_curve_truncates_to_the_shortest() -> None:
    curves = shifted_curves((200, 190, 180))
    lrs, losses = median_curve(curves)
    assert len(lrs) == len(losses) == 180
    assert lrs == LRS[:180].tolist()
    stacked = np.stack([np.asarray(c[1][:180]) for c in curves])
    assert losses == pytest.approx(np.median(stacked, axis=0).tolist())


@pytest.mark.parametrize("name", ["smith", "steepest", "minimum/10", "valley"])
def test_suggest_multi_reports_each_seed_and_the_spread(name: str) -> None:
    curves = shifted_curves((200, 190, 180))
    s = suggest_multi(curves, rule=name)
    single = suggest(LRS, valley_curve(), rule=name).max_lr
    assert len(s.per_seed) == 3
    assert list(s.per_seed) == sorted(s.per_seed)
    tolerance = STEP**2 if name == "valley" else STEP
    for pick, shift in zip(s.per_seed, SHIFTS, strict=True):
        assert single * shift / tolerance <= pick <= single * shift * tolerance
    assert s.spread == (min(s.per_seed), max(s.per_seed))
    # On the falling part the median of the shifted curves is the middle one; around the
    # minimum they cross, and the median's minimum lies up to two grid points later.
    near = (STEP**2 if name in ("valley", "minimum/10", "smith") else STEP) * 1.001
    assert s.per_seed[1] / near <= s.max_lr <= s.per_seed[1] * near
    assert s.rule == name
    assert "over 3 seeds the rule's picks ranged" in s.reason
    assert f"({max(s.per_seed) / min(s.per_seed):.1f}x)" in s.reason


def test_median_curve_rejects_different_sweeps() -> None:
    curves = [(LRS.tolist(), valley_curve().tolist()), ((LRS * 2).tolist(), valley_curve())]
    with pytest.raises(ValueError, match=r"curve 1's lrs differ from curve 0's at step 0"):
        median_curve(curves)
    with pytest.raises(ValueError, match="at least one"):
        median_curve([])


# --------------------------------------------------------------------------- records


def test_round_trip_through_json() -> None:
    multi = suggest_multi(shifted_curves())
    single = smith(LRS, valley_curve())
    for s in (multi, single):
        back = Suggestion.from_dict(json.loads(json.dumps(s.to_dict())))
        assert back == s
    assert isinstance(Suggestion.from_dict(multi.to_dict()).spread, tuple)
    with pytest.raises(ValueError, match=r"missing \['index'\], unknown \['extra'\]"):
        bad = single.to_dict()
        del bad["index"]
        bad["extra"] = 1
        Suggestion.from_dict(bad)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("name", list(RULES))
def test_errors_name_the_problem(name: str) -> None:
    rule = RULES[name]
    with pytest.raises(ValueError, match=r"at least 5 finite losses .* got 4 \(of 4 points\)"):
        rule([1e-3, 1e-2, 1e-1, 1.0], [2.3, 2.0, 1.0, 3.0])
    with pytest.raises(ValueError, match=r"at least 5 finite losses .* got 3 \(of 8 points\)"):
        rule(LRS[:8], [2.3, 2.2, 2.1, math.nan, 1.0, 1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="must have the same length, got 200 and 199"):
        rule(LRS, valley_curve()[:-1])
    with pytest.raises(ValueError, match=r"strictly increasing, got lrs\[3\]"):
        rule([1e-3, 1e-2, 1e-1, 1e-1, 1.0, 2.0], [2.3] * 6)
    with pytest.raises(ValueError, match=r"positive and finite, got lrs\[0\]=0.0"):
        rule([0.0, 1e-2, 1e-1, 0.5, 1.0], [2.3] * 5)
    with pytest.raises(ValueError, match=r"div must be a number >= 1, got 0.5"):
        rule(LRS, valley_curve(), div=0.5)


def test_unknown_rule_lists_the_names() -> None:
    message = r"rule must be one of 'smith', 'valley', 'steepest', 'minimum/10', got 'fast'"
    with pytest.raises(ValueError, match=message):
        suggest(LRS, valley_curve(), rule="fast")
    with pytest.raises(ValueError, match=message):
        suggest_multi(shifted_curves(), rule="fast")


def test_suggest_multi_with_a_seed_that_turns_nan_early_raises() -> None:
    curves = shifted_curves()
    bad = list(curves[2][1])
    bad[3] = math.nan
    curves[2] = (curves[2][0], bad)
    with pytest.raises(ValueError, match="at least 5 finite"):
        suggest_multi(curves)  # the median is cut at step 3 too


# --------------------------------------------------------------------------- any curve


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.floats(min_value=-10, max_value=10, allow_nan=False, allow_infinity=False),
        min_size=5,
        max_size=60,
    ),
    st.sampled_from(list(RULES)),
)
def test_any_finite_curve_gets_an_answer_in_range(losses: list[float], name: str) -> None:
    lrs = np.geomspace(1e-5, 1.0, len(losses))
    s = suggest(lrs, losses, rule=name)
    assert lrs[0] / 10 <= s.max_lr <= lrs[-1]
    assert 0 <= s.index < len(lrs)
    assert s.min_lr == pytest.approx(s.max_lr / 10)
    assert s.reason


def test_zero_lag_smoothing_does_not_trail_the_curve() -> None:
    from disciplined.measure.suggest import smooth_zero_lag

    ramp = [float(i) for i in range(200)]
    one_way, both = smooth(ramp, 0.9), smooth_zero_lag(ramp, 0.9)
    # one way trails a ramp by about beta / (1 - beta) = 9 steps; both ways, by nothing
    assert ramp[100] - one_way[100] == pytest.approx(9.0, abs=0.01)
    assert both[100] == pytest.approx(100.0, abs=0.01)
    # the points before a NaN are the finite prefix smoothed both ways (forward 1, 5/3; then
    # backward 5/3, 11/9), and nothing after it, not even the finite 3.0, is read
    out = smooth_zero_lag([1.0, 2.0, float("nan"), 3.0], 0.5)
    assert out[:2] == pytest.approx([11 / 9, 5 / 3], rel=1e-12)
    assert math.isnan(out[2]) and math.isnan(out[3])


# --------------------------------------------------------------------------- stop reasons


def _stop_reason(losses: list[float]) -> str | None:
    """The reason the range test's own stop rule (`SweepStop`) gives on ``losses``."""
    from disciplined.divergence import SweepStop

    watch = SweepStop().watch()
    for step, loss in enumerate(losses):
        why = watch(step, loss)
        if why is not None:
            return why
    return None


def _stop_cases() -> dict[str, tuple[list[float], str | None]]:
    """A falling curve as a range test stores it for each way a sweep ends: the losses the
    rules read (cut where the sweep stopped, NaN after) and the stop rule's own reason."""
    y = [float(v) for v in falling_curve()]
    k = 60  # where the sweeps that stop, stop: the loss is still falling (to ~1.3) up to here
    n = len(y)
    blown = y[:k] + [1e4] * (n - k)  # exploded: above 4x its best at once
    back = y[:k] + [TOP + 0.2] * (n - k)  # climbed back above its start, under 4x its best
    nan = y[:k] + [math.nan] * (n - k)  # a non-finite loss
    cases = {}
    for name, raw in (("diverged", blown), ("climbed back", back), ("non-finite", nan)):
        why = _stop_reason(raw)
        assert why is not None, name
        stop = int(why.rsplit(" ", 1)[1])
        cases[name] = (y[:k] + [math.nan] * (n - k), why)
        assert stop >= k, name
    assert _stop_reason(y) is None
    cases["reached end"] = (y, None)
    return cases


def test_reason_agrees_with_why_the_sweep_stopped() -> None:
    """Every stop reason gives a reason text that agrees with it: "raise its end LR" only
    when the sweep ran to its end LR without a stop; a stopped sweep's reason names why."""
    cases = _stop_cases()
    assert "climbed back above its starting value" in cases["climbed back"][1]
    assert "exceeded" in cases["diverged"][1]
    assert "nan" in cases["non-finite"][1]
    for name, (losses, why) in cases.items():
        s = smith(LRS, losses, band=0.0, stopped=why)  # band 0: reads the last point
        assert s.index == int(np.nanargmin(losses)), name
        if why is None:
            assert "raise its end LR" in s.reason, name
        else:
            assert "raise its end LR" not in s.reason, name
            assert "still falling at the end" not in s.reason, name
            assert why in s.reason, name
        for rule in RULES:
            r = suggest(LRS, losses, rule=rule, stopped=why)
            assert why is None or "raise its end LR" not in r.reason, (name, rule)
        multi = suggest_multi([(LRS, losses), (LRS, losses)], stopped=[why, why])
        assert why is None or "raise its end LR" not in multi.reason, name
        assert why is None or why in multi.reason, name


def test_a_curve_cut_at_a_nonfinite_loss_is_not_still_falling_at_the_end() -> None:
    """Without a stop reason, a curve cut at a non-finite loss did not reach its end LR."""
    y = [float(v) for v in falling_curve()]
    cut = y[:150] + [math.nan] * (len(y) - 150)
    s = smith(LRS, cut, band=0.0)
    assert s.index == 149
    assert "raise its end LR" not in s.reason and "diverged after it" in s.reason
