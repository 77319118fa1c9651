"""Accuracy by default for a classifier (issue 34, item 6): `fit_one_cycle` and `Task`
score a cross-entropy or NLL loss by accuracy when no metric is given."""

import math
from functools import partial

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from disciplined import Task
from disciplined.errors import UsageError
from disciplined.recipe.one_cycle import fit_one_cycle
from disciplined.tasks import accuracy, is_classification_loss, r2_score


def _data(n: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 8, generator=g)
    return x, (x[:, 0] > 0).long()


def _model() -> nn.Module:
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))


@pytest.mark.parametrize(
    "loss",
    [
        F.cross_entropy,
        nn.CrossEntropyLoss(),
        partial(F.cross_entropy, label_smoothing=0.1),
        lambda out, y: F.nll_loss(F.log_softmax(out, dim=1), y),
    ],
    ids=["F.cross_entropy", "nn.CrossEntropyLoss", "partial", "own-nll"],
)
def test_fit_one_cycle_scores_a_classifier_by_accuracy(loss) -> None:
    torch.manual_seed(0)
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    h = fit_one_cycle(
        model, opt, _data(), epochs=3, loss_fn=loss, max_lr=0.3, val_data=_data(128), seed=0
    )
    if getattr(loss, "__name__", "") == "<lambda>":  # a loss of one's own: not guessed at
        assert math.isnan(h.final.val_metric) and h.metric_name == "metric"
    else:
        assert h.metric_name == "accuracy" and 0.5 < h.final.val_metric <= 1.0


def test_a_metric_given_is_kept() -> None:
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    h = fit_one_cycle(
        model,
        opt,
        _data(),
        epochs=1,
        loss_fn=F.cross_entropy,
        max_lr=0.1,
        val_data=_data(64),
        metric=lambda out, y: torch.tensor(0.25),
        metric_name="quarter",
    )
    assert h.metric_name == "quarter" and h.final.val_metric == 0.25


def test_task_defaults_the_metric_from_its_loss() -> None:
    common = {"build_model": lambda hp: _model(), "train_data": _data(), "val_data": _data(64)}
    task = Task(name="t", loss_fn=F.cross_entropy, **common)
    assert task.metric is accuracy and task.metric_name == "accuracy"
    task = Task(name="t", loss_fn=nn.NLLLoss(), metric_name="acc", **common)
    assert task.metric is accuracy and task.metric_name == "acc"
    task = Task(name="t", loss_fn=F.mse_loss, kind="regression", **common)
    assert task.metric is r2_score and task.metric_name == "r2"
    with pytest.raises(UsageError, match="give a metric; only a cross-entropy or NLL loss"):
        Task(name="t", loss_fn=lambda out, y: out.sum(), **common)
    assert is_classification_loss(nn.CrossEntropyLoss()) and not is_classification_loss(F.mse_loss)
