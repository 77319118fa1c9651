import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest

from disciplined import HParams
from disciplined.cli import main
from disciplined.errors import UsageError
from disciplined.measure.range_test import RangeTest
from disciplined.measure.suggest import Suggestion
from disciplined.report.save import drawn
from disciplined.studies import (
    StudyContext,
    default_weight_decays,
    dropout_sweep,
    learning_rate_test,
    momentum_test,
    weight_decay_sweep,
)
from disciplined.studies.decide import (
    CurveSummary,
    Decision,
    lowest_val_loss_at_high_lr,
    sgd_effective_lr_factor,
    summarize_range_test,
)
from disciplined.studies.learning_rate import LearningRateReading
from disciplined.studies.momentum import MOMENTUM_RULES, MomentumChoice
from disciplined.tasks import load_task
from disciplined.trials.executors import InProcessExecutor
from disciplined.trials.spec import TrialResult, TrialSpec, run_trial
from disciplined.trials.store import MemoryStore, SQLiteStore


def _row(value, loss, lr, usable=True, div=None):
    return CurveSummary(
        value=value,
        key=f"k{value}",
        status="ok" if usable else "diverged",
        min_loss=loss if usable else math.nan,
        lr_at_min=lr,
        diverge_lr=div,
        start_loss=2.3,
        usable=usable,
        note="" if usable else "never fell",
    )


def test_rule_takes_the_clearly_lowest_loss():
    rows = [_row(1e-2, 0.60, 0.5), _row(1e-3, 0.40, 0.3), _row(0.0, 0.55, 0.4)]
    value, reason = lowest_val_loss_at_high_lr(rows)
    assert value == 1e-3 and "the lowest of all" in reason


def test_rule_prefers_the_higher_lr_among_near_ties():
    rows = [_row(1e-2, 0.405, 0.6), _row(1e-3, 0.400, 0.3), _row(0.0, 0.50, 0.9)]
    value, reason = lowest_val_loss_at_high_lr(rows, tolerance=0.02)
    assert value == 1e-2 and "highest LR" in reason
    # with no tolerance the strictly lowest loss wins
    assert lowest_val_loss_at_high_lr(rows, tolerance=0.0)[0] == 1e-3


def test_momentum_ties_are_ranked_by_the_effective_lr():
    # Momentum 0.95 reaches (almost) the same loss at LR 0.16 as 0.9 does at 0.28. The raw
    # LR ranks 0.9 first; its effective LR 0.28 / 0.1 = 2.8 is below 0.16 / 0.05 = 3.2.
    rows = [_row(0.95, 1.754, 0.16, div=0.5), _row(0.9, 1.777, 0.28, div=0.9)]
    assert lowest_val_loss_at_high_lr(rows)[0] == 0.9
    value, reason = lowest_val_loss_at_high_lr(rows, lr_factor=sgd_effective_lr_factor)
    assert value == 0.95
    assert "highest effective LR" in reason and "0.95: 3.2, 0.9: 2.8" in reason
    # minima at the same raw LR: the raw rule falls back on the later divergence (0.9's);
    # the larger momentum took the larger effective step there and wins
    rows = [_row(0.95, 1.754, 0.163, div=0.5), _row(0.9, 1.777, 0.163, div=0.9)]
    assert lowest_val_loss_at_high_lr(rows)[0] == 0.9
    assert lowest_val_loss_at_high_lr(rows, lr_factor=sgd_effective_lr_factor)[0] == 0.95
    # a clearly lower loss still wins whatever its LR
    rows = [_row(0.99, 1.60, 0.01), _row(0.9, 1.777, 0.28)]
    assert lowest_val_loss_at_high_lr(rows, lr_factor=sgd_effective_lr_factor)[0] == 0.99


def test_sgd_effective_lr_factor():
    assert sgd_effective_lr_factor(0.0) == 1.0
    assert sgd_effective_lr_factor(0.9) == pytest.approx(10.0)
    assert sgd_effective_lr_factor(0.99) == pytest.approx(100.0)


def test_rule_skips_unusable_curves_and_fails_when_none_is_left():
    rows = [_row(1e-1, 0.1, 1.0, usable=False), _row(1e-3, 0.4, 0.3)]
    value, reason = lowest_val_loss_at_high_lr(rows)
    assert value == 1e-3 and "not usable: 0.1" in reason
    with pytest.raises(UsageError, match="every trial of the sweep diverged or failed"):
        lowest_val_loss_at_high_lr([rows[0]])


def _rt(val_lrs, val_losses, stop_lr=None, train_until=None):
    """A range test whose training curve is finite up to ``train_until`` (default: the last
    validation LR) and NaN past it, as the stored curve is past its divergence cut."""
    s = Suggestion(max_lr=0.1, min_lr=0.01, rule="smith", reason="", index=0)
    until = train_until if train_until is not None else max(val_lrs)
    return RangeTest(
        lrs=tuple(val_lrs),
        losses=(1.0,) * len(val_lrs),
        smoothed=tuple(1.0 if lr <= until else float("nan") for lr in val_lrs),
        suggestion=s,
        val_lrs=tuple(val_lrs),
        val_losses=tuple(val_losses),
        stop_lr=stop_lr,
    )


def test_summary_ignores_validation_points_past_the_training_curves_divergence():
    # The training loss diverged past LR 0.1 (its stored curve is NaN from there); a blown-up
    # network's validation loss of exactly 0 at LR 1 on a tiny validation set is no evidence.
    spec = TrialSpec(task="digits-mlp", hparams=HParams().to_dict(), kind="range_test", budget={})
    lrs = [0.0001, 0.001, 0.01, 0.03, 0.1, 1.0, 3.0, 10.0]
    losses = [2.0, 2.0, 1.9, 1.5, 1.2, 0.0, 0.0, 0.0]
    test = _rt(lrs, losses, stop_lr=10.0, train_until=0.1)
    s = summarize_range_test(1e-4, TrialResult(spec.key, spec, "ok", 1.0, range_test=test))
    assert s.lr_at_min == 0.03 and s.min_loss == pytest.approx((1.9 + 1.5 + 1.2) / 3)


def test_summary_reads_the_lowest_three_point_mean():
    spec = TrialSpec(task="digits-mlp", hparams=HParams().to_dict(), kind="range_test", budget={})
    lrs = [0.0001, 0.001, 0.01, 0.03, 0.1, 1.0, 10.0, 100.0]
    losses = [2.0, 2.0, 1.9, 1.0, 0.2, 1.1, 1.6, float("nan")]
    res = TrialResult(spec.key, spec, "ok", 1.0, range_test=_rt(lrs, losses, stop_lr=100.0))
    s = summarize_range_test(1e-4, res)
    # 3-point means: 1.967, 1.633, 1.033, (1+.2+1.1)/3=0.7667, (.2+1.1+1.6)/3=0.9667
    assert s.usable and s.min_loss == pytest.approx(2.3 / 3) and s.lr_at_min == 0.1
    assert s.diverge_lr == 100.0 and s.start_loss == 2.0
    flat = TrialResult(spec.key, spec, "ok", 1.0, range_test=_rt(lrs[:4], [1, 2, 3, 4]))
    assert not summarize_range_test(0.0, flat).usable


def test_default_grid_follows_the_report():
    values, why = default_weight_decays(load_task("digits-mlp"))
    assert values == (1e-2, 1e-3, 1e-4, 0.0) and "small data" in why


@pytest.mark.parametrize(
    ("n", "params", "sgd", "adamw"),
    [
        (1_000, 10_000, (1e-2, 1e-3, 1e-4, 0.0), (1e-1, 1e-2, 1e-3, 0.0)),
        (100_000, 10_000, (1e-3, 1e-4, 1e-5, 0.0), (1e-2, 1e-3, 1e-4, 0.0)),
        (1_000_000, 10_000, (1e-4, 1e-5, 1e-6, 0.0), (1e-3, 1e-4, 1e-5, 0.0)),
        (1_000, 30_000_000, (1e-4, 1e-5, 1e-6, 0.0), (1e-3, 1e-4, 1e-5, 0.0)),
    ],
)
def test_adamws_grid_is_the_reports_times_ten_for_its_decoupled_decay(n, params, sgd, adamw):
    from types import SimpleNamespace

    from disciplined.studies.steps import NO_EVIDENCE_WEIGHT_DECAY, no_evidence_weight_decay
    from disciplined.studies.weight_decay import ADAMW_SCALE

    task = SimpleNamespace(num_train=n, param_count=lambda: params)
    assert default_weight_decays(task)[0] == sgd == default_weight_decays(task, "sgd")[0]
    values, why = default_weight_decays(task, "adamw")
    assert values == adamw and "AdamW" in why and why.endswith(", and 0")
    assert ADAMW_SCALE == 10.0
    assert no_evidence_weight_decay(HParams(optimizer="sgd")) == NO_EVIDENCE_WEIGHT_DECAY
    assert no_evidence_weight_decay(HParams(optimizer="adamw")) == 1e-3


def _ctx(task="digits-mlp", **kw):
    return StudyContext(task=task, store=MemoryStore(), **kw)


def test_digits_rejects_an_over_regularizing_weight_decay(tmp_path):
    ctx = _ctx(out=tmp_path)
    hp = HParams(batch_size=32, max_momentum=0.9, min_momentum=0.9)
    d = weight_decay_sweep(ctx, hp, values=(1e-1, 1e-3, 0.0), num_steps=200)
    assert d.value != 1e-1, d.reason
    assert d.name == "weight_decay" and d.rule == "lowest_val_loss_at_high_lr"
    assert [r["value"] for r in d.table] == [1e-1, 1e-3, 0.0] and len(d.trials) == 3
    by_value = {r["value"]: r for r in d.table}
    assert by_value[1e-1]["lowest_val_loss"] > by_value[d.value]["lowest_val_loss"]
    assert d.compute["trials"] == 3
    # the study draws nothing: it records the plot, which the outputs layer draws
    assert d.plot is None and not list(tmp_path.iterdir())
    (fig,) = d.figures
    assert (fig.kind, fig.file, fig.trials) == ("range_overlay", "weight_decay.png", d.trials)
    assert fig.labels == ("wd=0.1", "wd=0.001", "wd=0")
    shown = drawn(d, ctx.results, tmp_path)
    assert shown.plot == str(tmp_path / "weight_decay.png")
    assert (tmp_path / "weight_decay.png").read_bytes().startswith(b"\x89PNG")
    back = Decision.from_dict(json.loads(json.dumps(d.to_dict())))
    assert back == d


def test_zero_weight_decay_loses_on_a_tiny_training_set():
    # 400 samples of MNIST-1D (320 to train) and a wide MLP: without weight decay it
    # overfits within the test's steps, and its validation loss bottoms out higher.
    ctx = _ctx(task="mnist1d-mlp", task_options={"samples": 400, "hidden": 256})
    hp = HParams(batch_size=32, max_momentum=0.9, min_momentum=0.9)
    d = weight_decay_sweep(ctx, hp, values=(0.0, 1e-2), num_steps=400)
    assert d.value == 1e-2, d.reason


def _nan_runner(bad_value):
    """Runs trials for real, but starts the sweep of one value at an LR that blows up."""

    def runner(spec):
        if spec.hparams["weight_decay"] != bad_value:
            return run_trial(spec)
        return _blow_up(spec)

    return runner


def _blow_up(spec):
    """Run ``spec`` with a sweep that starts at LR 1e4, filed under the spec's own key."""
    hot = replace(spec, budget={**spec.budget, "start_lr": 1e4, "end_lr": 1e6})
    return replace(run_trial(hot), key=spec.key, spec=spec)


def test_a_diverging_trial_is_recorded_and_the_sweep_still_decides():
    ctx = _ctx(runner=_nan_runner(1e-3))
    hp = HParams(batch_size=64, max_momentum=0.9, min_momentum=0.9)
    d = weight_decay_sweep(ctx, hp, values=(1e-3, 1e-4), num_steps=60)
    assert d.value == 1e-4
    bad = next(r for r in d.table if r["value"] == 1e-3)
    assert bad["status"] == "diverged"
    stored = [r for r in ctx.store.results() if r.spec.hparams["weight_decay"] == 1e-3]
    assert stored[0].status == "diverged" and "nan" in stored[0].reason.lower()


def test_when_every_trial_diverges_the_error_says_so():
    ctx = _ctx()

    ctx.runner = _blow_up
    with pytest.raises(UsageError, match="every trial of the sweep diverged"):
        weight_decay_sweep(ctx, HParams(batch_size=64), values=(1e-3, 0.0), num_steps=40)


CURVE_LRS = (0.001, 0.01, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3)
LOW_AT_015 = (2.0, 1.9, 1.6, 1.2, 0.8, 1.2, 1.8, 2.4)  # 3-point low 1.067 at LR 0.15
LOW_AT_02 = (2.0, 1.9, 1.8, 1.6, 1.2, 0.8, 1.2, 1.8)  # the same low, at LR 0.2
HIGH_AT_015 = (2.0, 1.9, 1.7, 1.5, 1.3, 1.5, 1.9, 2.4)  # 3-point low 1.43 at LR 0.15


def _curve_runner(param, curves):
    """A runner that trains nothing: the range test of ``param = v`` records the validation
    curve ``curves[v]`` over `CURVE_LRS`, so the study's right answer is known."""

    def runner(spec):
        test = _rt(CURVE_LRS, curves[spec.hparams[param]])
        return TrialResult(spec.key, spec, "ok", 0.0, range_test=test)

    return runner


def test_momentum_test_sets_the_cycle_bounds_and_ranks_sgd_ties_by_the_effective_lr():
    # The same lowest loss, 0.95's at LR 0.15 and 0.9's at 0.2: with SGD the effective LRs
    # are 0.15 / 0.05 = 3 and 0.2 / 0.1 = 2, so 0.95 wins and the cycle goes down to 0.85;
    # AdamW's betas[0] does not scale the step, the raw LR ranks, 0.9 wins, down to 0.8.
    runner = _curve_runner("max_momentum", {0.95: LOW_AT_015, 0.9: LOW_AT_02})
    d = momentum_test(_ctx(runner=runner), HParams(batch_size=64), values=(0.95, 0.9))
    assert d.value == 0.95, d.reason
    assert d.payload == MomentumChoice(max_momentum=0.95, min_momentum=0.85, parameter="momentum")
    assert d.rule == "lowest_val_loss_at_high_effective_lr" and d.applied is MOMENTUM_RULES[0]
    assert "0.95: 3, 0.9: 2" in d.reason and d.reason.endswith("cyclical momentum 0.95 -> 0.85")
    assert [r["lr_at_lowest"] for r in d.table] == [0.15, 0.2]
    adam = HParams(batch_size=64, optimizer="adamw")
    d2 = momentum_test(_ctx(runner=runner), adam, values=(0.95, 0.9))
    assert d2.value == 0.9, d2.reason
    assert d2.payload == MomentumChoice(max_momentum=0.9, min_momentum=0.8, parameter="betas[0]")
    assert d2.rule == "lowest_val_loss_at_high_lr"
    # a clearly lower loss wins whatever its LR
    runner = _curve_runner("max_momentum", {0.95: HIGH_AT_015, 0.9: LOW_AT_015})
    d3 = momentum_test(_ctx(runner=runner), HParams(batch_size=64), values=(0.95, 0.9))
    assert d3.value == 0.9 and d3.payload.min_momentum == 0.8 and "lowest of all" in d3.reason


def test_dropout_sweep_takes_the_lowest_curve_and_refuses_a_task_without_dropout(tmp_path):
    runner = _curve_runner("dropout", {0.0: HIGH_AT_015, 0.2: LOW_AT_02, 0.5: LOW_AT_015})
    hp = HParams(batch_size=64, max_momentum=0.9, min_momentum=0.9)
    d = dropout_sweep(_ctx(runner=runner), hp, values=(0.0, 0.2, 0.5))
    # 0.2 and 0.5 tie on the loss; 0.2 reaches it at the higher LR
    assert d.name == "dropout" and d.value == 0.2 and d.rule == "lowest_val_loss_at_high_lr"
    assert [r["value"] for r in d.table] == [0.0, 0.2, 0.5] and len(set(d.trials)) == 3
    d = dropout_sweep(_ctx(runner=runner), hp, values=(0.0, 0.5))
    assert d.value == 0.5 and "the lowest of all" in d.reason
    f = tmp_path / "nodrop.py"
    f.write_text(NO_DROPOUT_TASK)
    with pytest.raises(UsageError, match="has no dropout to sweep"):
        dropout_sweep(_ctx(task=f"{f}:make"), HParams(), values=(0.0, 0.5))


NO_DROPOUT_TASK = """
import torch
from torch import nn
from disciplined import Task
from disciplined.tasks import accuracy

def make():
    x = torch.randn(64, 3)
    y = (x[:, 0] > 0).long()
    return Task(name="nodrop", build_model=lambda hp: nn.Linear(3, 2), train_data=(x, y),
                val_data=(x, y), loss_fn=nn.functional.cross_entropy, metric=accuracy,
                metric_name="accuracy")
"""


def test_snapshot_method_records_its_cost_and_reuses_the_snapshot(tmp_path):
    ctx = _ctx(out=tmp_path)
    hp = HParams(batch_size=64, max_momentum=0.9, min_momentum=0.9)
    d = weight_decay_sweep(
        ctx, hp, values=(1e-3, 1e-4, 0.0), num_steps=60, method="snapshot", snapshot_epochs=1
    )
    snap = d.payload.snapshot
    assert d.payload.method == "snapshot" and snap["weight_decay"] == 1e-4
    assert snap["epochs"] == 1 and os.path.exists(snap["path"])
    tests = sum(ctx.store.get(k).epochs for k in d.trials)
    assert tests > 0 and d.compute["epochs"] == pytest.approx(snap["epochs"] + tests)
    again = weight_decay_sweep(
        ctx, hp, values=(1e-3, 1e-4, 0.0), num_steps=60, method="snapshot", snapshot_epochs=1
    )
    assert again.value == d.value and again.payload.snapshot == snap


def test_refinement_adds_the_half_exponent():
    ctx = _ctx()
    d = weight_decay_sweep(
        ctx, HParams(batch_size=64), values=(1e-3, 1e-4, 0.0), num_steps=60, refine=True
    )
    values = [r["value"] for r in d.table]
    assert len(values) == 4 and values[-1] == pytest.approx(10**-3.5)


def _reading_runner(readings):
    """A runner that trains nothing: the range test of seed ``s`` swept to ``end_lr``
    suggests ``readings[s, end_lr][0]`` and has turned when ``readings[s, end_lr][1]``
    (no validation points: `read_max_lr` takes the training curve's reading); a third item
    False marks the reading as one whose loss never fell clearly."""

    def runner(spec):
        max_lr, turned, *fell = readings[spec.seed, spec.budget["end_lr"]]
        reliable = fell[0] if fell else True
        test = RangeTest(
            lrs=(0.01, 0.1, 1.0),
            losses=(2.0, 1.5, 1.0),
            smoothed=(2.0, 1.5, 1.0),  # lowest at the end: not turned unless it stopped
            suggestion=Suggestion(max_lr, max_lr / 10, "smith", "read", 1, reliable=reliable),
            stop_reason="the loss diverged" if turned else None,
            end_lr=spec.budget["end_lr"],
        )
        return TrialResult(spec.key, spec, "ok", 0.0, range_test=test)

    return runner


def test_the_final_reading_takes_the_lower_of_two_seeds_or_the_median_of_three():
    hp = HParams(batch_size=64)
    close = _reading_runner({(0, 10.0): (0.1, True), (1000, 10.0): (0.15, True)})
    d = learning_rate_test(_ctx(runner=close), hp, repeats=True)
    assert d.value == 0.1 and d.payload == LearningRateReading(
        min_lr=0.01, inconclusive=False, reliable=True, batch_size=64
    )
    assert d.rule == "smith_train_and_validation_seeds" and len(d.trials) == 2
    assert d.reason.endswith("two seeds read 0.1 and 0.15: the lower was taken")
    apart = _reading_runner(
        {(0, 10.0): (0.1, True), (1000, 10.0): (0.5, True), (2000, 10.0): (0.2, True)}
    )
    d = learning_rate_test(_ctx(runner=apart), hp, repeats=True)
    assert d.value == 0.2 and [r["seed"] for r in d.table] == [0, 1000, 2000]
    assert [r["max_lr"] for r in d.table] == [0.1, 0.5, 0.2]
    assert "a third read 0.2: the median 0.2 was taken" in d.reason


def test_a_reading_whose_loss_never_fell_calls_a_third_seed_and_does_not_vote():
    hp = HParams(batch_size=64)
    # close together, but one curve never fell: a third seed, and the unreliable one is out
    one_bad = _reading_runner(
        {(0, 10.0): (0.02, True, False), (1000, 10.0): (0.03, True), (2000, 10.0): (0.2, True)}
    )
    d = learning_rate_test(_ctx(runner=one_bad), hp, repeats=True)
    assert len(d.trials) == 3 and d.value == 0.03
    assert "never fell clearly in the test that read 0.02" in d.reason
    assert d.reason.endswith("the lower of the other two, 0.03, was taken")
    # the mnist1d-cnn case: two readings off curves that never fell, far apart; the third
    # has a clear fall and is taken, not the median of the three
    two_bad = _reading_runner(
        {(0, 10.0): (0.0222, True, False), (1000, 10.0): (1e-6, True, False),
         (2000, 10.0): (0.122, True)}
    )
    d = learning_rate_test(_ctx(runner=two_bad), hp, repeats=True)
    assert d.value == 0.122 and "the one reading with a clear fall, 0.122" in d.reason
    # none fell: the median of the three, and the reason says no reading is reliable
    none = _reading_runner(
        {(0, 10.0): (0.02, True, False), (1000, 10.0): (0.03, True, False),
         (2000, 10.0): (0.5, True, False)}
    )
    d = learning_rate_test(_ctx(runner=none), hp, repeats=True)
    assert d.value == 0.03 and d.reason.endswith("(no reading is reliable)")


def test_a_capped_reading_adds_no_test_and_keeps_both_readings_in_the_box():
    # the range tests' budget (``spend``) has no room: two readings apart give their
    # geometric mean, one without a clear fall gives the other, and a sweep that never
    # turned is not widened
    hp, never = HParams(batch_size=64), (lambda _total, _per: False)
    asked: list[tuple[float, float]] = []

    def watch(total: float, per: float) -> bool:
        asked.append((total, per))
        return False

    apart = _reading_runner({(0, 10.0): (0.1, True), (1000, 10.0): (0.4, True)})
    d = learning_rate_test(_ctx(runner=apart), hp, repeats=True, spend=watch)
    assert len(d.trials) == 2 and d.value == pytest.approx(0.2)
    assert d.reason.endswith("no room for a third: their geometric mean 0.2 was taken")
    assert len(asked) == 1  # asked once, for the third seed
    one_bad = _reading_runner({(0, 10.0): (0.02, True, False), (1000, 10.0): (0.03, True)})
    d = learning_rate_test(_ctx(runner=one_bad), hp, repeats=True, spend=never)
    assert len(d.trials) == 2 and d.value == 0.03
    assert "the one reading with a clear fall, 0.03, was taken" in d.reason
    flat = _reading_runner({(0, 10.0): (0.1, False), (1000, 10.0): (0.12, True)})
    d = learning_rate_test(_ctx(runner=flat), hp, repeats=True, spend=never)
    assert len(d.trials) == 2 and d.payload.inconclusive
    assert "no room for a wider rerun" in d.reason
    # with room, the same readings call the third seed as before
    roomy = _reading_runner(
        {(0, 10.0): (0.1, True), (1000, 10.0): (0.4, True), (2000, 10.0): (0.3, True)}
    )
    d = learning_rate_test(_ctx(runner=roomy), hp, repeats=True, spend=lambda _t, _p: True)
    assert len(d.trials) == 3 and d.value == 0.3


def test_a_sweep_that_never_turned_is_widened_once_then_called_inconclusive():
    hp = HParams(batch_size=64)
    widened = _reading_runner({(0, 10.0): (9.0, False), (0, 1000.0): (30.0, True)})
    d = learning_rate_test(_ctx(runner=widened), hp)
    assert d.value == 30.0 and not d.payload.inconclusive and len(d.trials) == 2
    assert [(r["end_lr"], r["max_lr"]) for r in d.table] == [(10.0, 9.0), (1000.0, 30.0)]
    assert [r["steps"] for r in d.table] == [3, 3] and "rerun to 1000" in d.reason
    still = _reading_runner({(0, 10.0): (9.0, False), (0, 1000.0): (900.0, False)})
    d = learning_rate_test(_ctx(runner=still), hp)
    assert d.value == 900.0 and d.payload.inconclusive
    assert "where it still had not turned: inconclusive" in d.reason


SLOW_TASK = """
import time
from disciplined.tasks import load_task
from dataclasses import replace

def make():
    base = load_task("digits-mlp")
    def slow_loss(out, y):
        time.sleep(0.003)
        return base.loss_fn(out, y)
    return replace(base, name="slow-digits", loss_fn=slow_loss)
"""


def test_a_killed_sweep_resumed_in_worker_processes_decides_as_one_in_process_run(tmp_path):
    # The studies layer's kill-and-resume and in-process/worker parity, in one test: a sweep
    # killed mid-way is finished by worker processes, which run only the missing trials,
    # and decides exactly as one uninterrupted in-process sweep does.
    from disciplined.trials.executors import ProcessExecutor

    task_file = tmp_path / "slow.py"
    task_file.write_text(SLOW_TASK)
    task = f"{task_file}:make"
    store_path = tmp_path / "kill" / "trials.sqlite"
    args = [
        "sweep",
        "weight-decay",
        "--task",
        task,
        "--values",
        "1e-2,1e-3,1e-4,0",
        "--steps",
        "150",
        "--out",
        str(tmp_path / "kill"),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # as this process: identical arithmetic
    child = subprocess.Popen(
        [sys.executable, "-m", "disciplined", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    done_before = 0
    while time.time() < deadline and child.poll() is None:
        if store_path.exists():
            with SQLiteStore(store_path) as s:
                done_before = len(s)
            if done_before >= 2:
                break
        time.sleep(0.02)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    with SQLiteStore(store_path) as s:
        done_before = len(s)
    assert 1 <= done_before < 4, "the child should be killed mid-sweep"

    ran, read = [], []

    def seen(result, cached):
        (read if cached else ran).append(result.key)

    hp = HParams(max_lr=1e-5, batch_size=32, max_momentum=0.9, min_momentum=0.9)
    values = (1e-2, 1e-3, 1e-4, 0.0)
    with SQLiteStore(store_path) as store, ProcessExecutor(workers=2, threads=1) as workers:
        ctx = StudyContext(task=task, store=store, executor=workers, on_result=seen)
        resumed = weight_decay_sweep(ctx, hp, values=values, num_steps=150)
    assert len(ran) == 4 - done_before and len(read) == done_before
    fresh = weight_decay_sweep(
        StudyContext(task=task, store=MemoryStore(), executor=InProcessExecutor(threads=1)),
        hp,
        values=values,
        num_steps=150,
    )
    assert resumed.value == fresh.value and resumed.table == fresh.table
    assert resumed.trials == fresh.trials


def test_sweep_command_writes_the_decision(tmp_path, capsys):
    out = tmp_path / "s"
    code = main(
        [
            "sweep",
            "momentum",
            "--task",
            "digits-mlp",
            "--values",
            "0.95,0.9",
            "--steps",
            "60",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    d = json.loads((out / "decision.json").read_text())
    assert (out / "momentum.png").exists() and (out / "trials.sqlite").exists()
    line = capsys.readouterr().out.strip()
    assert line == (
        f"digits-mlp: momentum = {d['value']:g} ({d['rule']}); wrote {out / 'decision.json'}"
    )
    # what was written is the study's decision on the trials the command recorded: the
    # study, run again on that store with the command's defaults, trains nothing
    calls = []
    hp = HParams(max_lr=1e-5, max_momentum=0.9, min_momentum=0.9, batch_size=32)
    with SQLiteStore(out / "trials.sqlite") as store:
        ctx = StudyContext(task="digits-mlp", store=store, runner=calls.append)
        again = momentum_test(ctx, hp, values=(0.95, 0.9), num_steps=60)
    assert calls == [] and len(d["trials"]) == 2
    assert {**json.loads(json.dumps(again.to_dict())), "plot": d["plot"]} == d


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bogus", "--task", "digits-mlp"], "invalid choice: 'bogus'"),
        (["weight-decay", "--task", "digits-mlp", "--values=-1e-3,0"], "must be >= 0"),
        (["momentum", "--task", "digits-mlp", "--values", "0.9,1.0"], "must be < 1"),
        (["weight-decay", "--task", "digits-mlp", "--values", "abc"], "comma-separated"),
        (["weight-decay", "--task", "digits-mlp", "--momentum", "1.5"], "--momentum: must be in"),
    ],
)
def test_sweep_bad_input(tmp_path, capsys, args, message):
    code = main(["sweep", *args, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_sweep_refuses_an_unwritable_store_and_a_store_of_another_task(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = main(
        [
            "sweep",
            "weight-decay",
            "--task",
            "digits-mlp",
            "--store",
            str(blocker / "t.sqlite"),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2 and len(capsys.readouterr().err.strip().splitlines()) == 1
    store = tmp_path / "shared.sqlite"
    with SQLiteStore(store) as s:
        s.bind({"task": "mnist1d-cnn", "task_options": {}})
    code = main(
        [
            "sweep",
            "weight-decay",
            "--task",
            "digits-mlp",
            "--store",
            str(store),
            "--values",
            "1e-3,0",
            "--steps",
            "30",
            "--out",
            str(tmp_path / "o2"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "refusing to mix" in err and len(err.strip().splitlines()) == 1


def test_a_trials_key_holds_only_what_determines_its_result():
    hp = HParams(max_lr=0.1, weight_decay=1e-4, max_momentum=0.9, min_momentum=0.8)
    rt = TrialSpec(task="digits-mlp", hparams=hp.to_dict(), kind="range_test", budget={}, tag="a")
    # a range test sweeps its own LR and holds max_momentum: max LR, min momentum, tag don't count
    same = TrialSpec(
        task="digits-mlp",
        hparams=hp.with_(max_lr=3.0, min_momentum=0.5).to_dict(),
        kind="range_test",
        budget={},
        tag="b",
    )
    assert same.key == rt.key
    other = TrialSpec(
        task="digits-mlp",
        hparams=hp.with_(weight_decay=0.0).to_dict(),
        kind="range_test",
        budget={},
    )
    assert other.key != rt.key
    train = TrialSpec(task="digits-mlp", hparams=hp.to_dict(), kind="train", budget={"epochs": 1})
    hotter = TrialSpec(
        task="digits-mlp",
        hparams=hp.with_(max_lr=0.2).to_dict(),
        kind="train",
        budget={"epochs": 1},
    )
    assert train.key != hotter.key


def test_a_run_two_studies_share_is_counted_once(tmp_path):
    # The first range test (momentum 0.9, no weight decay) is the weight-decay sweep's test
    # at 0: the sweep reads it back and its compute does not count it again.
    ctx = StudyContext(task="digits-mlp")
    hp = HParams(max_momentum=0.9, min_momentum=0.9, weight_decay=0.0, batch_size=32)
    first = learning_rate_test(ctx, hp, num_steps=100)
    wd = weight_decay_sweep(ctx, hp.with_(max_lr=first.value), [1e-3, 0.0], num_steps=100)
    shared = first.trials[0]
    assert shared in wd.trials and wd.compute["trials"] == 1
    assert len(ctx.store) == 2


def test_the_recipes_plan_races_adamws_grid_under_adamw():
    from disciplined.recipe.config import TuneConfig
    from disciplined.recipe.plan import make_plan

    task = load_task("digits-mlp")
    assert make_plan(task, TuneConfig(epochs=3)).weight_decays == (1e-2, 1e-3, 1e-4, 0.0)
    adamw = make_plan(task, TuneConfig(epochs=3, optimizer="adamw"))
    assert adamw.weight_decays == (1e-1, 1e-2, 1e-3, 0.0)


def test_the_sweep_takes_adamws_grid_when_no_values_are_given():
    d = weight_decay_sweep(_ctx(), HParams(batch_size=32, optimizer="adamw"), num_steps=100)
    assert [r["value"] for r in d.table] == [0.1, 0.01, 0.001, 0.0]
    assert "AdamW" in d.payload.grid and d.value in (0.1, 0.01, 0.001, 0.0)
