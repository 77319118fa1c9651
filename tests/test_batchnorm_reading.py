"""The LR reading of a net with BatchNorm: the training curve only (`read_max_lr`'s
``batchnorm``), since evaluation's running statistics trail the weights a rising LR moves and
the validation loss turns early; `has_batchnorm` finds the layers without moving the RNG."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from disciplined.measure.range_test import RangeTest
from disciplined.measure.suggest import Suggestion
from disciplined.studies.learning_rate import BATCHNORM_NOTE, has_batchnorm, read_max_lr
from disciplined.tasks import Task


def _early_turning_validation() -> RangeTest:
    """A sweep whose training curve reads 0.1 and whose validation loss falls clearly to LR
    0.003 and climbs from there (what a BatchNorm net's evaluation shows)."""
    lrs = tuple(10 ** (-4 + 4 * i / 40) for i in range(41))  # 1e-4 .. 1
    train = tuple(2.3 - 1.5 * min(lr, 0.1) / 0.1 for lr in lrs)
    val = tuple(
        2.3 - 1.0 * min(lr, 0.003) / 0.003 + 3.0 * max(0.0, math.log10(lr / 0.003)) for lr in lrs
    )
    s = Suggestion(max_lr=0.1, min_lr=0.01, rule="smith", reason="fell to 0.1", index=30)
    return RangeTest(
        lrs=lrs,
        losses=train,
        smoothed=train,
        suggestion=s,
        val_lrs=lrs,
        val_losses=val,
        stop_lr=1.0,
        stop_reason="the loss climbed",
    )


def test_a_batchnorm_net_is_read_on_its_training_curve_alone():
    test = _early_turning_validation()
    plain, how, _ = read_max_lr(test)
    assert plain < 0.01 and how.startswith("validation curve")  # the validation curve's lower
    value, how, turned = read_max_lr(test, batchnorm=True)
    assert value == 0.1 and how.startswith("training curve") and BATCHNORM_NOTE in how
    assert turned == test.turned


def _task(model) -> Task:
    x, y = torch.zeros(8, 4), torch.zeros(8, dtype=torch.long)
    return Task(
        name="toy",
        build_model=lambda hp: model(),
        train_data=(x, y),
        val_data=(x, y),
        loss_fn=nn.functional.cross_entropy,
    )


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (lambda: nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)), False),
        (lambda: nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2)), True),
        (lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)), True),
        (lambda: nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 2)), False),
    ],
)
def test_has_batchnorm_finds_the_layers_and_leaves_the_rng_as_it_was(model, expected):
    torch.manual_seed(3)
    before = torch.get_rng_state()
    assert has_batchnorm(_task(model)) is expected
    assert torch.equal(torch.get_rng_state(), before)
