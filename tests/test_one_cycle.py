"""`fit_one_cycle`, `OneCyclePolicy.from_suggestion` and a range test that cannot decide."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from disciplined import OneCyclePolicy, RangeTest, UsageError, fit_one_cycle, lr_range_test
from disciplined.measure.suggest import Suggestion


def _data(n: int = 512, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    y = (x[:, :2].sum(1) > 0).long()
    return x, y


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2))


def _sgd(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)


LOSS = nn.functional.cross_entropy


def test_the_steps_are_counted_and_the_schedule_is_smiths_1cycle():
    model = _model()
    h = fit_one_cycle(model, _sgd(model), _data(), epochs=3, loss_fn=LOSS, max_lr=0.2, seed=0)
    # 512 samples at batch 64: 8 steps an epoch, 24 in all
    assert h.steps == 24 and h.steps_per_epoch == 8
    policy = OneCyclePolicy(max_lr=0.2, total_steps=24, div=10.0)
    assert list(h.lrs) == [policy.lr(i) for i in range(24)]
    assert list(h.momenta) == [policy.momentum(i) for i in range(24)]
    assert h.meta["max_lr"] == 0.2 and h.meta["schedule"] == "one-cycle"


def test_adam_gets_its_betas_cycled():
    model = _model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    h = fit_one_cycle(model, opt, _data(), epochs=1, loss_fn=LOSS, max_lr=0.01, seed=0)
    policy = OneCyclePolicy(max_lr=0.01, total_steps=8, div=10.0)
    assert list(h.momenta) == [policy.momentum(i) for i in range(8)]


def test_a_dataloader_batches_itself():
    x, y = _data()
    loader = DataLoader(TensorDataset(x, y), batch_size=100, shuffle=True)
    model = _model()
    h = fit_one_cycle(model, _sgd(model), loader, epochs=2, loss_fn=LOSS, max_lr=0.1, seed=0)
    assert h.steps == 2 * len(loader) == 12


def test_without_a_max_lr_the_range_test_runs_first_and_leaves_no_trace():
    x, y = _data()
    val = _data(256, seed=1)
    options = {"num_steps": 120, "end_lr": 10.0}
    a = _model()
    h = fit_one_cycle(
        a, _sgd(a), (x, y), epochs=2, loss_fn=LOSS, val_data=val, range_test=options, seed=3
    )
    # the same test by hand, then a run at its suggestion: the same weights bit for bit, so
    # the test restored the model and optimizer exactly before training began
    b = _model()
    opt_b = _sgd(b)
    test = lr_range_test(b, opt_b, LOSS, (x, y), val_data=val, batch_size=64, seed=3, **options)
    assert h.meta["max_lr"] == test.max_lr and "max_lr_reason" in h.meta
    fit_one_cycle(b, opt_b, (x, y), epochs=2, loss_fn=LOSS, val_data=val, max_lr=test, seed=3)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


def _test(smoothed, suggestion, stop_reason=None, stop_step=None) -> RangeTest:
    lrs = tuple(1e-4 * 1.1**i for i in range(len(smoothed)))
    return RangeTest(
        lrs=lrs,
        losses=tuple(smoothed),
        smoothed=tuple(smoothed),
        suggestion=suggestion,
        stop_reason=stop_reason,
        stop_step=stop_step,
        end_lr=lrs[-1],
    )


def test_an_inconclusive_test_says_why_and_max_lr_refuses():
    falling = [2.0 - 0.01 * i for i in range(100)]
    still_falling = _test(falling, Suggestion(0.5, 0.05, "smith", "x", 90))
    assert not still_falling.turned
    assert "still falling at the sweep's end" in still_falling.inconclusive
    with pytest.raises(UsageError, match="inconclusive: the loss was still falling"):
        _ = still_falling.max_lr
    model = _model()
    with pytest.raises(UsageError, match="still falling"):
        fit_one_cycle(model, _sgd(model), _data(), epochs=1, loss_fn=LOSS, max_lr=still_falling)

    no_curve = _test([2.0, float("nan")], None, stop_reason="loss is nan", stop_step=1)
    assert "diverged at step 1 (loss is nan)" in no_curve.inconclusive
    with pytest.raises(UsageError, match="start the sweep lower"):
        _ = no_curve.max_lr

    dipped = [2.0 - 0.02 * i for i in range(60)] + [0.8 + 0.05 * i for i in range(40)]
    good = _test(dipped, Suggestion(0.01, 0.001, "smith", "x", 40))
    assert good.turned and good.inconclusive is None
    assert (good.max_lr, good.min_lr) == (0.01, 0.001)


def test_a_policy_from_a_suggestion():
    p = OneCyclePolicy.from_suggestion(Suggestion(0.3, 0.03, "smith", "x", 5), 100)
    assert p.max_lr == 0.3 and p.div == pytest.approx(10.0) and p.total_steps == 100
    assert p.min_lr == pytest.approx(0.03)
    p4 = OneCyclePolicy.from_suggestion(Suggestion(0.3, 0.1, "smith", "x", 5), 50, div=4.0)
    assert p4.div == 4.0
    with pytest.raises(ValueError, match="min_lr < max_lr"):
        OneCyclePolicy.from_suggestion(Suggestion(0.3, 0.3, "smith", "x", 5), 50)


def test_bad_arguments_are_one_line_usage_errors():
    model = _model()
    for epochs in (0, -1, float("inf")):
        with pytest.raises(UsageError, match="epochs must be"):
            fit_one_cycle(model, _sgd(model), _data(), epochs=epochs, loss_fn=LOSS, max_lr=0.1)
    with pytest.raises(UsageError, match="max_lr must be"):
        fit_one_cycle(model, _sgd(model), _data(), epochs=1, loss_fn=LOSS, max_lr="0.1")
    with pytest.raises(UsageError, match="max_lr"):
        fit_one_cycle(model, _sgd(model), _data(), epochs=1, loss_fn=LOSS, max_lr=-0.1)
