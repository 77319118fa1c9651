"""`evaluate`: a model's mean loss and metric over validation data."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from disciplined.errors import task_code
from disciplined.training import distributed
from disciplined.training.batching import (
    Batches,
    BatchLoss,
    Data,
    LossFn,
    batch_len,
    callable_name,
    loss_of,
    model_output,
)
from disciplined.training.devices import autocast, model_device, resolve_device

__all__ = ["evaluate"]


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: Data,
    loss_fn: LossFn,
    metric: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    *,
    batch_size: int = 1024,
    max_batches: int | None = None,
    device: str | torch.device | None = None,
    amp: bool | str = False,
) -> tuple[float, float]:
    """Mean loss and mean metric of ``model`` over ``data`` (or its first ``max_batches``).

    Means are weighted by batch size. The model is put in eval mode and back in the mode it
    was in. ``metric=None`` gives NaN for the metric. Under ``torch.distributed`` each
    process evaluates every world-size-th batch and the sums are all-reduced: every rank
    gets the means over all the batches. An exception raised in the model, the loss, the
    metric or the data is a `TaskCodeError` naming it.
    """
    dev = resolve_device(device) if device is not None else model_device(model)
    was_training = model.training
    model.eval()
    total_loss = torch.zeros((), dtype=torch.float64, device=dev)
    total_metric = torch.zeros((), dtype=torch.float64, device=dev)
    count = 0
    raw = isinstance(loss_fn, BatchLoss)
    if raw:
        metric = None  # a BatchLoss gives the loss, not outputs to score
    batches = Batches(data, batch_size, dev, shuffle=False, generator=torch.Generator(), raw=raw)
    cast = autocast(dev, amp)
    rank, world = distributed.rank(), distributed.world_size()
    try:
        for i, batch in enumerate(batches.epoch()):
            if max_batches is not None and i >= max_batches:
                break
            if i % world != rank:
                continue
            if raw:
                with cast, task_code(f"the loss step ({callable_name(loss_fn)})"):
                    loss = loss_fn(model, batch)
                n = max(1, batch_len(batch))
                total_loss += loss.detach().double() * n
                count += n
                continue
            x, y = batch
            with cast:
                out = model_output(model, x)
                loss = loss_of(loss_fn, out, y)
            n = len(y)
            total_loss += loss.double() * n
            if metric is not None:
                with task_code(f"the metric ({callable_name(metric)})"):
                    score = metric(out.float(), y)
                total_metric += score.double() * n
            count += n
    finally:
        model.train(was_training)
    if distributed.is_distributed():
        n_seen = torch.tensor(float(count), dtype=torch.float64, device=dev)
        sums = distributed.all_reduce_sum(torch.stack([total_loss, total_metric, n_seen]))
        total_loss, total_metric, count = sums[0], sums[1], int(sums[2].item())
    if count == 0:
        raise ValueError("validation data is empty")
    loss_v = total_loss.item() / count
    metric_v = total_metric.item() / count if metric is not None else math.nan
    return loss_v, metric_v
