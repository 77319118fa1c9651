"""The learning-rate-free optimizers of the head to head (`head_to_head.py`, issue 36): one
training run of a task with Prodigy or Schedule-Free, in a loop of its own.

Neither optimizer is one a trial can build (`disciplined.trials.hparams` builds SGD and
AdamW under a 1cycle), so this module trains them itself over the task's public pieces:
``Task.build_model``, ``train_data`` and ``val_data`` as ``(inputs, targets)`` tensors or a
map-style ``Dataset``, ``loss_fn`` and ``metric``, scored by `disciplined.evaluate` like any
run. Each is set as its README tells a user to set it, with nothing tuned:

- **Prodigy** (``prodigyopt.Prodigy``): ``lr=1.0`` (its default: Prodigy estimates the
  step size D itself), betas (0.9, 0.999), decoupled weight decay at the task default's
  value, and the schedule the README recommends, cosine annealing over the whole run
  (``CosineAnnealingLR(T_max=total_steps)``, stepped every batch).
- **Schedule-Free** (``schedulefree.SGDScheduleFree`` for a task trained with SGD,
  ``AdamWScheduleFree`` for one trained with AdamW): the package's default LR (1.0 for SGD,
  0.0025 for AdamW), momentum / beta1 0.9, the task default's weight decay, and a linear
  warm-up over the first 5% of the steps (``warmup_steps``), as its README recommends; no
  schedule. ``optimizer.train()`` is called before every training step's epoch and
  ``optimizer.eval()`` before every evaluation (the weights evaluated are the averaged
  ones). For a model with BatchNorm, the README's fix runs before each evaluation: with the
  optimizer in eval mode, the model in train mode makes up to 50 forward passes over
  training batches without gradients, so the running statistics match the averaged weights.

Both optimizers are imported when a run starts (``pip install disciplined[lrfree]``).
The model is built after ``torch.manual_seed(seed)`` and the batches are shuffled by a
generator seeded with ``seed`` (the last batch of an epoch may be short, as in the library's
loop). A run whose training loss turns non-finite stops there and scores NaN.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import math
import time
from typing import Any

import torch
from torch import nn

OPTIMIZERS = ("prodigy", "schedulefree")
WARMUP = 0.05
"""Schedule-Free's warm-up, a fraction of the run's steps (its README: about 5%)."""
BN_BATCHES = 50
"""Training batches run forward before each evaluation of a Schedule-Free model with
BatchNorm, to reset its running statistics at the averaged weights."""


def config(
    name: str, task_optimizer: str, weight_decay: float, total_steps: int, scale: float = 1.0
) -> dict:
    """What a run of ``name`` uses on a task trained with ``task_optimizer``: the record a
    results row keeps as the method's pick. ``scale`` multiplies the one knob each leaves to
    its user (Prodigy's ``d_coef``, the step-size estimate's factor; Schedule-Free's LR):
    1 is the README's setting, other values are the head to head's equal-seconds search."""
    if name == "prodigy":
        return {
            "optimizer": "prodigy",
            "lr": 1.0,
            "betas": [0.9, 0.999],
            "weight_decay": weight_decay,
            "decouple": True,
            "schedule": "cosine",
            "d_coef": scale,
            "scale": scale,
        }
    if name == "schedulefree":
        sgd = task_optimizer == "sgd"
        return {
            "optimizer": "sgd-schedulefree" if sgd else "adamw-schedulefree",
            "lr": (1.0 if sgd else 0.0025) * scale,
            "scale": scale,
            "momentum": 0.9,
            "weight_decay": weight_decay,
            "warmup_steps": max(1, round(WARMUP * total_steps)),
            "schedule": "none",
        }
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")


def _build(cfg: dict, params: list[nn.Parameter], total_steps: int) -> tuple[Any, Any]:
    """The optimizer ``cfg`` names and its scheduler (None for Schedule-Free)."""
    if cfg["optimizer"] == "prodigy":
        from prodigyopt import Prodigy

        with contextlib.redirect_stdout(io.StringIO()):  # it prints a line when built
            opt = Prodigy(
                params,
                lr=cfg["lr"],
                betas=tuple(cfg["betas"]),
                weight_decay=cfg["weight_decay"],
                decouple=cfg["decouple"],
                d_coef=cfg.get("d_coef", 1.0),
            )
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, total_steps))
        return opt, sched
    import schedulefree

    if cfg["optimizer"] == "sgd-schedulefree":
        opt = schedulefree.SGDScheduleFree(
            params,
            lr=cfg["lr"],
            momentum=cfg["momentum"],
            weight_decay=cfg["weight_decay"],
            warmup_steps=cfg["warmup_steps"],
        )
    else:
        opt = schedulefree.AdamWScheduleFree(
            params,
            lr=cfg["lr"],
            betas=(cfg["momentum"], 0.999),
            weight_decay=cfg["weight_decay"],
            warmup_steps=cfg["warmup_steps"],
        )
    return opt, None


def _batches(data: Any, batch_size: int, generator: torch.Generator):
    """One shuffled pass over ``data`` in batches of ``batch_size`` (the last may be short)."""
    if isinstance(data, tuple | list):
        x, y = data
        order = torch.randperm(len(x), generator=generator)
        for i in range(0, len(x), batch_size):
            idx = order[i : i + batch_size]
            yield x[idx], y[idx]
        return
    from torch.utils.data import DataLoader

    collate = getattr(data, "collate_fn", None)  # a task's DataLoader kept as its dataset
    kw = {"collate_fn": collate} if collate is not None else {}
    yield from DataLoader(data, batch_size=batch_size, shuffle=True, generator=generator, **kw)


def _has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def _evaluate(model, opt, cfg, task, batch_size: int, generator: torch.Generator) -> float:
    """The model's metric on ``task.val_data``; Schedule-Free's averaged weights swapped in
    (``optimizer.eval()``, BatchNorm statistics reset on training batches) and out again."""
    from disciplined import evaluate

    free = cfg["optimizer"].endswith("schedulefree")
    if free:
        opt.eval()
        if _has_batchnorm(model):
            model.train()
            with torch.no_grad():
                for i, (x, _) in enumerate(_batches(task.train_data, batch_size, generator)):
                    if i >= BN_BATCHES:
                        break
                    model(x)
    _, metric = evaluate(model, task.val_data, task.loss_fn, task.metric)
    if free:
        opt.train()
    model.train()
    return metric


def train(
    ref: str,
    split: str,
    name: str,
    task_optimizer: str,
    weight_decay: float,
    epochs: float,
    seed: int,
    scale: float = 1.0,
) -> dict[str, Any]:
    """Train task ``ref`` (its ``split`` swapped in as validation data) for ``epochs`` epochs
    with the optimizer ``name`` from ``seed``, its knob scaled by ``scale`` (`config`): the
    final metric on that split (NaN when the loss turned non-finite or the metric is not
    finite), the wall seconds, the pick (`config`) and, for Prodigy, its final step-size
    estimate ``d``."""
    from disciplined import load_task
    from disciplined.training.batching import batches_per_epoch

    torch.set_num_threads(1)
    importlib.import_module("prodigyopt" if name == "prodigy" else "schedulefree")  # untimed
    task = load_task(ref, {"split": split})
    batch = task.default_batch_size
    per_epoch = batches_per_epoch(task.train_data, batch)
    total = max(1, round(epochs * per_epoch))
    cfg = config(name, task_optimizer, weight_decay, total, scale)
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    model = task.build_model({})
    params = [p for p in model.parameters() if p.requires_grad]
    opt, sched = _build(cfg, params, total)
    generator = torch.Generator().manual_seed(seed)
    free = sched is None
    model.train()
    if free:
        opt.train()
    step, metric, diverged = 0, math.nan, False
    while step < total and not diverged:
        for x, y in _batches(task.train_data, batch, generator):
            loss = task.loss_fn(model(x), y)
            if not torch.isfinite(loss):
                diverged = True
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            step += 1
            if step >= total:
                break
        if not diverged and (step % per_epoch == 0 or step >= total):
            metric = _evaluate(model, opt, cfg, task, batch, generator)
    seconds = time.perf_counter() - t0
    out = {
        "metric": metric if (not diverged and math.isfinite(metric)) else math.nan,
        "seconds": seconds,
        "pick": {**cfg, "batch_size": batch, "epochs": epochs},
        "diverged": diverged,
    }
    if cfg["optimizer"] == "prodigy":
        out["pick"]["d"] = float(opt.param_groups[0]["d"])
    return out
