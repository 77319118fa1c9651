"""The LR range test (Smith, arXiv 1506.01186 section 3.3 and 1803.09820 section 4.1).

One short run whose learning rate grows every step from ``start_lr`` to ``end_lr``
(exponentially or linearly, `schedules.RangeSweep`), recording the training loss and, in
validation mode, the loss on a fixed validation subset every ``val_every`` steps. The run stops
by itself once the loss diverges. The largest useful learning rate is read off the curve by a
named rule from `disciplined.measure.suggest`.

Everything the test disturbs is put back bit for bit afterwards, also when it raises or is
interrupted: parameters, buffers, gradients, train/eval modes, optimizer state and param
groups, and the torch (CPU and CUDA), numpy and Python random generators.
"""

from __future__ import annotations

import copy
import math
import os
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from disciplined.divergence import SWEEP_FACTOR, TRAIN_CUT, SweepStop
from disciplined.errors import UsageError
from disciplined.measure.suggest import (
    MIN_POINTS,
    Suggestion,
    smooth_zero_lag,
    suggest,
    suggest_multi,
)
from disciplined.records import JsonRecord, decode_floats, encode_floats
from disciplined.schedules.policies import RangeSweep
from disciplined.training.batching import Data, LossFn
from disciplined.training.fit import History, fit, resolve_device

__all__ = ["RangeTest", "RangeTestConfig", "lr_range_test", "preserved_state"]


@dataclass(frozen=True)
class RangeTest(JsonRecord):
    """The record of a range test: the curve, where it stopped, and the suggestion.

    ``suggestion`` is None when the loss diverged before the curve had enough finite points
    to read (start the sweep lower). ``lrs``/``losses``/``smoothed`` have one entry per step
    taken (of the first seed when
    ``repeats > 1``; ``smoothed`` is then the per-step median of the seeds' smoothed curves,
    and ``seed_smoothed`` holds each seed's own). ``val_lrs``/``val_losses`` are the
    validation-mode points.
    """

    lrs: tuple[float, ...]
    losses: tuple[float, ...]
    smoothed: tuple[float, ...]
    suggestion: Suggestion | None
    val_lrs: tuple[float, ...] = ()
    val_losses: tuple[float, ...] = ()
    stop_step: int | None = None
    stop_lr: float | None = None
    stop_reason: str | None = None
    mode: str = "exp"
    start_lr: float = 1e-5
    end_lr: float = 10.0
    num_steps: int = 0
    smoothing: float = 0.9
    seconds: float = 0.0
    repeats: int = 1
    seed_smoothed: tuple[tuple[float, ...], ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def diverged(self) -> bool:
        """Whether the test stopped because the loss diverged."""
        return self.stop_reason is not None and self.stop_step is not None

    @property
    def turned(self) -> bool:
        """Whether the loss stopped falling before the sweep's end (it diverged, or its
        smoothed minimum lies before the last 5% of the steps). A test that never turned
        says only that the max LR is at least the sweep's end."""
        finite = [i for i, v in enumerate(self.smoothed) if math.isfinite(v)]
        if self.stop_reason is not None:
            return True
        if not finite:
            return False
        low = min(finite, key=lambda i: self.smoothed[i])
        return low < 0.95 * (len(self.lrs) - 1)

    @property
    def inconclusive(self) -> str | None:
        """Why the test cannot set a max LR, or None when it can: no suggestion (the loss
        diverged before there was a curve to read), or a sweep that never turned."""
        if self.suggestion is None:
            where = f" at step {self.stop_step}" if self.stop_step is not None else ""
            why = f" ({self.stop_reason})" if self.stop_reason else ""
            return (
                f"the loss diverged{where}{why} before the curve could be read: start the "
                f"sweep lower than {self.start_lr:g}"
            )
        if not self.turned:
            return (
                f"the loss was still falling at the sweep's end LR {self.end_lr:g}: the max "
                f"LR is at least that; rerun with a higher end_lr"
            )
        return None

    @property
    def max_lr(self) -> float:
        """The suggested max LR; `UsageError` saying why when the test is `inconclusive`."""
        reason = self.inconclusive
        if reason is not None or self.suggestion is None:
            raise UsageError(f"the range test is inconclusive: {reason}")
        return self.suggestion.max_lr

    @property
    def min_lr(self) -> float:
        """The suggested min LR (``max_lr / div``); raises like `max_lr`."""
        self.max_lr  # noqa: B018 - raises when inconclusive
        assert self.suggestion is not None
        return self.suggestion.min_lr

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (non-finite numbers become strings)."""
        d = asdict(self)
        d["losses"] = encode_floats(self.losses)
        d["smoothed"] = encode_floats(self.smoothed)
        d["val_losses"] = encode_floats(self.val_losses)
        d["seed_smoothed"] = [encode_floats(s) for s in self.seed_smoothed]
        d["suggestion"] = self.suggestion.to_dict() if self.suggestion else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RangeTest:
        """Rebuild from `to_dict` output."""
        d = dict(d)
        for key in ("lrs", "val_lrs"):
            d[key] = tuple(d[key])
        for key in ("losses", "smoothed", "val_losses"):
            d[key] = decode_floats(d[key])
        d["seed_smoothed"] = tuple(decode_floats(s) for s in d["seed_smoothed"])
        d["suggestion"] = Suggestion.from_dict(d["suggestion"]) if d["suggestion"] else None
        return cls(**d)



# --------------------------------------------------------------------------- state


@contextmanager
def preserved_state(
    model: nn.Module, optimizer: torch.optim.Optimizer, spill_dir: str | Path | None = None
) -> Iterator[None]:
    """Take everything a training run disturbs and put it back on exit, bit for bit.

    Parameters and buffers (through ``state_dict``), gradients, each module's train/eval
    mode, the model's device, the optimizer's state and param groups (and any attribute a
    scheduler adds to it), and the torch CPU/CUDA, numpy and Python random generators. With
    ``spill_dir`` the model and optimizer copies go to a temporary file there instead of
    memory, for models too large to copy.
    """
    params = list(model.parameters())
    device = params[0].device if params else torch.device("cpu")
    modes = [(m, m.training) for m in model.modules()]
    grads = [None if p.grad is None else p.grad.detach().clone() for p in params]
    opt_attrs = dict(optimizer.__dict__)
    rng = (torch.get_rng_state(), np.random.get_state(), random.getstate())
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    tmp = None
    if spill_dir is not None:
        fd, tmp = tempfile.mkstemp(dir=spill_dir, suffix=".pt", prefix="range-test-state-")
        os.close(fd)
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, tmp)
        saved_model = saved_opt = None
    else:
        saved_model = {k: v.detach().clone() for k, v in model.state_dict().items()}
        saved_opt = copy.deepcopy(optimizer.state_dict())
    try:
        yield
    finally:
        try:
            model.to(device)
            if tmp is not None:
                blob = torch.load(tmp, map_location="cpu", weights_only=True)
                saved_model, saved_opt = blob["model"], blob["optimizer"]
            model.load_state_dict(saved_model)
            optimizer.load_state_dict(saved_opt)
            # A scheduler wraps optimizer.step and adds flags; drop what was not there.
            for key in list(optimizer.__dict__):
                if key not in opt_attrs:
                    del optimizer.__dict__[key]
            optimizer.__dict__.update(
                {k: v for k, v in opt_attrs.items() if k not in ("state", "param_groups")}
            )
            for p, g in zip(params, grads, strict=True):
                p.grad = g
            for m, mode in modes:
                m.training = mode
            torch.set_rng_state(rng[0])
            np.random.set_state(rng[1])
            random.setstate(rng[2])
            if cuda_rng is not None:
                torch.cuda.set_rng_state_all(cuda_rng)
        finally:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)


# --------------------------------------------------------------------------- the test


class _SweepStepper:
    """Writes the sweep's next LR into every param group after each optimizer step.

    The range test's own stepper, not a torch scheduler: the sweep's values are computed
    once, and a step is a list lookup and a dict write (a full `LRScheduler` step costs
    microseconds, a visible share of a small model's step). The optimizer is restored
    after the test anyway, so nothing of a scheduler's state needs keeping.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, sweep: RangeSweep) -> None:
        self.policy = sweep
        self.groups = optimizer.param_groups
        self.lrs = sweep.lrs()
        self.step_index = 0
        self._write()

    def _write(self) -> None:
        lr = self.lrs[min(self.step_index, len(self.lrs) - 1)]
        for group in self.groups:
            group["lr"] = lr

    def step(self) -> None:
        """Advance to the next learning rate of the sweep."""
        self.step_index += 1
        self._write()


@dataclass(frozen=True)
class RangeTestConfig:
    """The options of an LR range test, checked when built (`ValueError` naming the option).

    The learning rate follows ``RangeSweep(start_lr, end_lr, num_steps, mode)``, one value
    per optimizer step of ``accumulation_steps`` mini-batches of ``batch_size``; the data
    cycles when it has fewer batches. ``momentum`` and ``weight_decay`` are held during the
    test (the optimizer's own when None). ``smoothing`` is the factor of the lag-free average
    (`suggest.smooth_zero_lag`) that gives the ``smoothed`` curve the rules read.
    ``diverge_factor`` is the stop rule's multiple of the best loss
    (`disciplined.divergence.SweepStop`). With validation data, its first ``val_batches``
    batches are evaluated every ``val_every`` steps. ``repeats=k`` runs k tests on seeds
    ``seed .. seed+k-1`` and reads the rule off the median curve, reporting the spread.
    ``rule`` names the suggestion rule (`disciplined.measure.suggest.RULES`), read off the
    training curve or, with ``suggest_from="val"``, the validation points; ``div`` sets
    ``min_lr = max_lr / div`` (10 for 1cycle, 3-4 for CLR). ``amp`` and ``device`` are as in
    `fit` (``device=None``: where the model is). ``spill_dir`` keeps the saved state in a
    file there instead of memory; ``progress`` is ``True`` for a bar or a callable ``(step,
    total)``; ``meta`` is added to the record's ``meta``.
    """

    start_lr: float = 1e-5
    end_lr: float = 10.0
    num_steps: int = 300
    mode: Literal["exp", "linear"] = "exp"
    batch_size: int = 64
    smoothing: float = 0.9
    diverge_factor: float = SWEEP_FACTOR
    val_every: int = 10
    val_batches: int = 2
    accumulation_steps: int = 1
    momentum: float | None = None
    weight_decay: float | None = None
    amp: bool | str = False
    device: str | torch.device | None = None
    seed: int = 0
    repeats: int = 1
    rule: str = "smith"
    div: float = 10.0
    suggest_from: Literal["train", "val"] = "train"
    spill_dir: str | Path | None = None
    progress: bool | Callable[[int, int], None] = False
    meta: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.sweep  # noqa: B018 - RangeSweep checks the sweep's options
        if not 0 <= self.smoothing < 1:
            raise ValueError(f"smoothing must be in [0, 1), got {self.smoothing}")
        if self.diverge_factor <= 1:
            raise ValueError(f"diverge_factor must be > 1, got {self.diverge_factor}")
        if self.val_every < 1 or self.val_batches < 1:
            raise ValueError(
                f"val_every and val_batches must be >= 1, got {self.val_every}, {self.val_batches}"
            )
        if self.repeats < 1:
            raise ValueError(f"repeats must be >= 1, got {self.repeats}")
        if self.suggest_from not in ("train", "val"):
            raise ValueError(f"suggest_from must be 'train' or 'val', got {self.suggest_from!r}")
        if self.momentum is not None and not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        if self.weight_decay is not None and self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")

    @property
    def sweep(self) -> RangeSweep:
        """The learning rates the test steps through."""
        return RangeSweep(
            start_lr=self.start_lr, end_lr=self.end_lr, num_steps=self.num_steps, mode=self.mode
        )


_OPTIONS = frozenset(f.name for f in fields(RangeTestConfig))


def lr_range_test(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    train_data: Data,
    *,
    val_data: Data | None = None,
    config: RangeTestConfig | None = None,
    **options: Any,
) -> RangeTest:
    """Run the LR range test and return its `RangeTest`; model and optimizer come back as
    they were (`preserved_state`).

    The options are a `RangeTestConfig`, given as ``config`` or as keywords named like its
    fields (``lr_range_test(..., start_lr=1e-4, num_steps=200)``); keywords given beside
    ``config`` replace its fields. ``val_data`` adds the validation points.

    The test stops (`disciplined.divergence.SweepStop`) on a NaN/inf loss, when the running
    average (0.98) of the loss exceeds ``diverge_factor`` x its best, or when it climbs back
    above its starting value after having fallen 10%. The stored ``smoothed`` curve ends
    where the loss diverged (`disciplined.divergence.TRAIN_CUT`).
    """
    cfg = _config(config, options)
    if cfg.suggest_from == "val" and val_data is None:
        raise ValueError("suggest_from='val' needs val_data")
    sweep = cfg.sweep
    dev = resolve_device(cfg.device) if cfg.device is not None else _param_device(model)
    runs = []
    t0 = time.perf_counter()
    for r in range(cfg.repeats):
        with preserved_state(model, optimizer, cfg.spill_dir):
            runs.append(
                _one_sweep(
                    model, optimizer, loss_fn, train_data, val_data, cfg, sweep, dev, cfg.seed + r
                )
            )
    seconds = time.perf_counter() - t0
    return _record(runs, _suggestion(runs, cfg), cfg, seconds)


def _config(config: RangeTestConfig | None, options: dict[str, Any]) -> RangeTestConfig:
    """The test's options: ``config`` with ``options`` replacing its fields."""
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise TypeError(f"lr_range_test() got unexpected keyword arguments {unknown}")
    if config is None:
        return RangeTestConfig(**options)
    return replace(config, **options) if options else config


def _param_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def _suggestion(runs: list[dict[str, Any]], cfg: RangeTestConfig) -> Suggestion | None:
    """The rule read off the runs' curves (their median when there are several); None when
    a curve has too few finite points to read."""
    if cfg.suggest_from == "val":
        curves = [(run["val_lrs"], run["val_losses"]) for run in runs]
    else:
        curves = [(run["lrs"], run["smoothed"]) for run in runs]
    finite = min(sum(1 for v in c[1] if math.isfinite(v)) for c in curves)
    if finite < MIN_POINTS:
        return None  # the loss diverged (almost) at once: nothing to read
    stops = [run["stop_reason"] for run in runs]
    if cfg.repeats == 1:
        return suggest(curves[0][0], curves[0][1], rule=cfg.rule, div=cfg.div, stopped=stops[0])
    return suggest_multi(curves, rule=cfg.rule, div=cfg.div, stopped=stops)


def _record(
    runs: list[dict[str, Any]],
    suggestion: Suggestion | None,
    cfg: RangeTestConfig,
    seconds: float,
) -> RangeTest:
    """The `RangeTest` of the runs: the first seed's curve (the median of the seeds' smoothed
    curves, cut to the shortest, when there are several), where it stopped, the suggestion."""
    first = runs[0]
    repeats = cfg.repeats
    n_common = min(len(run["smoothed"]) for run in runs)
    median_smoothed = (
        tuple(float(v) for v in np.median([run["smoothed"][:n_common] for run in runs], axis=0))
        if repeats > 1
        else tuple(first["smoothed"])
    )
    return RangeTest(
        lrs=tuple(first["lrs"][: len(median_smoothed)]) if repeats > 1 else tuple(first["lrs"]),
        losses=tuple(first["losses"][: len(median_smoothed)]),
        smoothed=median_smoothed,
        suggestion=suggestion,
        val_lrs=tuple(first["val_lrs"]),
        val_losses=tuple(first["val_losses"]),
        stop_step=first["stop_step"],
        stop_lr=first["stop_lr"],
        stop_reason=first["stop_reason"],
        mode=cfg.mode,
        start_lr=cfg.start_lr,
        end_lr=cfg.end_lr,
        num_steps=cfg.num_steps,
        smoothing=cfg.smoothing,
        seconds=seconds,
        repeats=repeats,
        seed_smoothed=tuple(tuple(run["smoothed"]) for run in runs) if repeats > 1 else (),
        meta={
            "seed": cfg.seed,
            "batch_size": cfg.batch_size,
            "rule": cfg.rule,
            "suggest_from": cfg.suggest_from,
            **(cfg.meta or {}),
        },
    )


def _hold(
    optimizer: torch.optim.Optimizer, momentum: float | None, weight_decay: float | None
) -> None:
    """Write the momentum (``betas[0]`` for Adam) and weight decay the test holds."""
    for group in optimizer.param_groups:
        if weight_decay is not None:
            group["weight_decay"] = weight_decay
        if momentum is not None:
            if "momentum" in group:
                group["momentum"] = momentum
            elif "betas" in group:
                group["betas"] = (momentum, group["betas"][1])
            else:
                raise ValueError(
                    f"{type(optimizer).__name__} has neither momentum nor betas to set"
                )


def _one_sweep(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    train_data: Data,
    val_data: Data | None,
    cfg: RangeTestConfig,
    sweep: RangeSweep,
    device: torch.device,
    seed: int,
) -> dict[str, Any]:
    """One sweep on ``seed``, as the curve it recorded (`_curve`)."""
    _hold(optimizer, cfg.momentum, cfg.weight_decay)
    scheduler = _SweepStepper(optimizer, sweep)
    stop = SweepStop(factor=cfg.diverge_factor).watch()
    history = fit(
        model,
        optimizer,
        train_data,
        loss_fn=loss_fn,
        val_data=val_data,
        scheduler=scheduler,
        steps=sweep.num_steps,
        batch_size=cfg.batch_size,
        eval_every=cfg.val_every if val_data is not None else None,
        eval_batches=cfg.val_batches,
        eval_batch_size=cfg.batch_size,
        device=device,
        amp=cfg.amp,
        accumulation_steps=cfg.accumulation_steps,
        seed=seed,
        diverge_factor=None,
        collapse_stop=False,
        stop=stop,
        progress=cfg.progress,
    )
    return _curve(history, cfg.smoothing)


def _curve(history: History, smoothing: float) -> dict[str, Any]:
    """A sweep's curve from its `History`: LRs, raw losses, the lag-free smoothed losses up
    to where they diverged (NaN after), the validation points, and where and why it stopped."""
    n = history.steps
    # smoothed up to where the curve diverged; past it only the raw losses are kept
    cut = TRAIN_CUT.index(history.train_losses)
    smoothed = smooth_zero_lag(history.train_losses[:cut], smoothing) + [math.nan] * (n - cut)
    stopped = history.stopped_reason if history.stopped_reason or history.diverged else None
    if history.diverged:
        stopped = history.diverged_reason
    val_points = [e for e in history.evals if e.step <= n]
    return {
        "lrs": list(history.lrs),
        "losses": list(history.train_losses),
        "smoothed": [float(v) for v in smoothed[:n]],
        # an evaluation after step s saw the weights updated with LRs up to lrs[s - 1]
        "val_lrs": [history.lrs[e.step - 1] for e in val_points],
        "val_losses": [e.val_loss for e in val_points],
        "stop_step": n - 1 if stopped else None,
        "stop_lr": history.lrs[n - 1] if stopped and n else None,
        "stop_reason": stopped,
    }
