"""One call from a model to a 1cycle run: `fit_one_cycle`.

A user who has a model, an optimizer and data should not compute the number of steps by
hand or pass it twice: `fit_one_cycle` counts the steps from the data and the epochs, reads
the max LR from a range test when none is given (an inconclusive test raises, saying why),
builds Smith's 1cycle with cyclical momentum (``betas[0]`` for Adam-style optimizers) and
trains with `fit`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from disciplined.errors import UsageError
from disciplined.measure.range_test import RangeTest, lr_range_test
from disciplined.schedules.policies import OneCyclePolicy
from disciplined.schedules.scheduler import OneCycleScheduler
from disciplined.tasks.base import default_metric
from disciplined.training.fit import Data, History, batches_per_epoch, fit

__all__ = ["fit_one_cycle"]


def fit_one_cycle(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train_data: Data,
    *,
    epochs: float,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    max_lr: float | RangeTest | None = None,
    val_data: Data | None = None,
    batch_size: int = 64,
    div: float | None = None,
    max_momentum: float = 0.95,
    min_momentum: float = 0.85,
    annihilation: float = 0.1,
    range_test: dict[str, Any] | None = None,
    device: str | torch.device | None = None,
    seed: int | None = None,
    **fit_kwargs: Any,
) -> History:
    """Train ``model`` for ``epochs`` epochs of Smith's 1cycle and return its `History`.

    ``max_lr`` is a number, a `RangeTest` (its suggestion is used; an inconclusive test
    raises `UsageError` with the reason), or ``None``: a range test is run first on the
    same model, optimizer and data (``range_test`` holds its keyword arguments, e.g.
    ``{"num_steps": 200}``; the validation data is read when given), and the model and
    optimizer come back from it exactly as they were. ``div`` (``max_lr / min_lr``) is the
    suggestion's own when it comes from a test, else 10. Momentum (``betas[0]`` for Adam
    and AdamW) cycles from ``max_momentum`` down to ``min_momentum`` and back.
    ``batch_size`` is ignored for a `DataLoader`. Other keywords (``metric``, ``amp``, ...)
    go to `fit`; without a ``metric``, a cross-entropy or NLL loss is scored by accuracy.
    """
    if not (isinstance(epochs, int | float) and math.isfinite(epochs) and epochs > 0):
        raise UsageError(f"epochs must be a finite number > 0, got {epochs!r}")
    test = max_lr if isinstance(max_lr, RangeTest) else None
    if max_lr is None:
        options = {"val_data": val_data, "batch_size": batch_size, "device": device}
        options.update(range_test or {})
        if seed is not None:
            options.setdefault("seed", seed)
        test = lr_range_test(model, optimizer, loss_fn, train_data, **options)
    if test is not None:
        peak, min_lr = test.max_lr, test.min_lr  # raise, with the reason, if inconclusive
        ratio = div if div is not None else peak / min_lr
    else:
        peak = max_lr  # type: ignore[assignment]
        if isinstance(peak, bool) or not isinstance(peak, int | float):
            raise UsageError(f"max_lr must be a number, a RangeTest or None, got {max_lr!r}")
        ratio = div if div is not None else 10.0
    steps = max(1, round(epochs * batches_per_epoch(train_data, batch_size)))
    try:
        policy = OneCyclePolicy(
            max_lr=float(peak),
            total_steps=steps,
            div=float(ratio),
            annihilation=annihilation,
            max_momentum=max_momentum,
            min_momentum=min_momentum,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    scheduler = OneCycleScheduler(optimizer, policy)
    _default_metric(loss_fn, fit_kwargs)
    meta = dict(fit_kwargs.pop("meta", None) or {})
    meta.update({"schedule": "one-cycle", "max_lr": policy.max_lr, "div": policy.div})
    if test is not None and test.suggestion is not None:
        meta["max_lr_reason"] = test.suggestion.reason
    return fit(
        model,
        optimizer,
        train_data,
        loss_fn=loss_fn,
        val_data=val_data,
        scheduler=scheduler,
        steps=steps,
        batch_size=batch_size,
        device=device,
        seed=seed,
        meta=meta,
        **fit_kwargs,
    )


def _default_metric(loss_fn: Any, fit_kwargs: dict[str, Any]) -> None:
    """Score a classification loss by accuracy when ``fit_kwargs`` name no metric."""
    found = default_metric(loss_fn) if fit_kwargs.get("metric") is None else None
    if found is not None:
        fit_kwargs["metric"] = found[0]
        fit_kwargs.setdefault("metric_name", found[1])
