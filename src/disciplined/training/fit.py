"""The one training loop every feature runs on.

`fit` trains a model for a number of optimizer steps or epochs, evaluates on validation data
every N steps (or each epoch), and records per step the learning rate, momentum and training
loss, and per evaluation the validation loss and metric. A NaN or infinite loss, or a loss that
climbs far above where it started, ends the run with ``History.diverged`` set; a run that had
learned and then sank back to its starting loss (a collapse to chance with a finite loss,
`disciplined.divergence.RunCollapse`) ends with ``History.collapsed_step`` set. Neither raises.

The loop is split into named steps: the micro-batches of each optimizer step
(`_MicroBatches`), one optimizer step (`_optimizer_step`), the records and stop rules of a run
(`_RunState`: `flush` checks each loss against the divergence rule and the caller's stop rule,
`evaluate` records an evaluation), and the loop that drives them (`fit_with`). The options are
one frozen `FitConfig`; `fit(...)` takes them as keywords.

The records (`History`, `EvalRecord`), batching, devices and `evaluate` live in their own
modules of this package; their names stay importable from here.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from disciplined.divergence import RUN_FACTOR, RunCollapse, RunDivergence
from disciplined.errors import task_code
from disciplined.training import distributed
from disciplined.training.batching import (
    Batches,
    BatchLoss,
    Data,
    LoaderDataset,
    LossFn,
    batch_loss,
    batches_per_epoch,
    has_batch_norm,
)
from disciplined.training.devices import (
    autocast,
    device_and_amp,
    device_name,
    model_device,
    resolve_device,
)
from disciplined.training.evaluate import evaluate
from disciplined.training.history import EvalRecord, History

StopRule = Callable[[int, float], "str | None"]
EvalRule = Callable[[EvalRecord], "str | None"]
Metric = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

__all__ = [
    "BatchLoss",
    "EvalRecord",
    "EvalRule",
    "FitConfig",
    "History",
    "LoaderDataset",
    "StepListener",
    "add_step_listener",
    "batches_per_epoch",
    "device_and_amp",
    "device_name",
    "evaluate",
    "fit",
    "fit_with",
    "group_momentum",
    "has_batch_norm",
    "remove_step_listener",
    "resolve_device",
]

StepListener = Callable[[int, int, float], None]
"""Called by `fit` after each training step with the step, the run's total steps and the
step's loss (after it was read from the device)."""
_STEP_LISTENERS: list[StepListener] = []


def add_step_listener(listener: StepListener) -> None:
    """Have ``listener(step, total, loss)`` called after every training step of every `fit`
    in this process (a tune's progress shows the running trial with it); a trial running in
    a worker process calls the worker's listeners, none. `remove_step_listener` stops it."""
    _STEP_LISTENERS.append(listener)


def remove_step_listener(listener: StepListener) -> None:
    """Stop calling ``listener`` (nothing when it was not added)."""
    if listener in _STEP_LISTENERS:
        _STEP_LISTENERS.remove(listener)


def group_momentum(group: dict[str, Any]) -> float | None:
    """The momentum in force for a param group: ``momentum``, else ``betas[0]``, else None."""
    if "momentum" in group:
        return float(group["momentum"])
    if "betas" in group:
        return float(group["betas"][0])
    return None


@dataclass(frozen=True)
class FitConfig:
    """Everything `fit` takes besides the model, the optimizer and the training data; the
    fields are `fit`'s keyword arguments, with the same defaults and meaning."""

    loss_fn: LossFn
    val_data: Data | None = None
    metric: Metric | None = None
    metric_name: str = "metric"
    higher_is_better: bool = True
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
    epochs: float | None = None
    steps: int | None = None
    batch_size: int = 64
    eval_every: int | None = None
    eval_batches: int | None = None
    eval_batch_size: int = 1024
    device: str | torch.device | None = None
    amp: bool | str = False
    accumulation_steps: int = 1
    seed: int | None = None
    diverge_factor: float | None = RUN_FACTOR
    collapse_stop: bool = True
    stop: StopRule | None = None
    on_eval: EvalRule | None = None
    max_seconds: float | None = None
    sync_every: int | None = None
    progress: bool | Callable[[int, int], None] = False
    meta: dict[str, Any] | None = None

    def check(self) -> None:
        """`ValueError` for a setting out of range (before anything runs)."""
        if (self.epochs is None) == (self.steps is None):
            raise ValueError("give exactly one of epochs and steps")
        if self.epochs is not None and not (math.isfinite(self.epochs) and self.epochs > 0):
            raise ValueError(f"epochs must be a finite number > 0, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.accumulation_steps < 1:
            raise ValueError(f"accumulation_steps must be >= 1, got {self.accumulation_steps}")
        if self.eval_every is not None and self.eval_every < 1:
            raise ValueError(f"eval_every must be >= 1, got {self.eval_every}")
        if self.diverge_factor is not None and self.diverge_factor <= 1:
            raise ValueError(f"diverge_factor must be > 1, got {self.diverge_factor}")


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train_data: Data,
    *,
    loss_fn: LossFn,
    val_data: Data | None = None,
    metric: Metric | None = None,
    metric_name: str = "metric",
    higher_is_better: bool = True,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    epochs: float | None = None,
    steps: int | None = None,
    batch_size: int = 64,
    eval_every: int | None = None,
    eval_batches: int | None = None,
    eval_batch_size: int = 1024,
    device: str | torch.device | None = None,
    amp: bool | str = False,
    accumulation_steps: int = 1,
    seed: int | None = None,
    diverge_factor: float | None = 4.0,
    collapse_stop: bool = True,
    stop: StopRule | None = None,
    on_eval: EvalRule | None = None,
    max_seconds: float | None = None,
    sync_every: int | None = None,
    progress: bool | Callable[[int, int], None] = False,
    meta: dict[str, Any] | None = None,
) -> History:
    """Train ``model`` and return its `History`.

    Exactly one of ``epochs`` and ``steps`` sets the length; a step is one optimizer step
    (``accumulation_steps`` mini-batches of ``batch_size``). The data cycles as long as
    needed. ``scheduler.step()`` runs after every optimizer step. Evaluation runs every
    ``eval_every`` steps (default: each epoch) on ``val_data`` (its first ``eval_batches``
    batches when given) and once more at the end.

    The run stops early, without raising, when the loss is NaN or infinite or its running
    mean exceeds ``diverge_factor`` times the mean of the first steps (``diverged`` is set),
    when it collapsed (``collapse_stop``, `disciplined.divergence.RunCollapse`:
    ``collapsed_step`` is set), when ``stop(step, loss)`` or ``on_eval(record)`` (an
    early-stopping or pruning rule reading an `EvalRecord`) returns a reason, or after
    ``max_seconds`` of training; the reason is the history's ``stopped_reason``.
    ``seed`` seeds torch's global generator (dropout, initial noise) and the shuffling.
    ``device`` is where to train (``None``: where the model's parameters are). ``amp`` is
    ``True``/``"bf16"`` or ``"fp16"`` (with loss scaling) and needs CUDA. ``progress`` is
    ``True`` for a tqdm bar or a callable ``(step, total)``.

    Under ``torch.distributed`` (e.g. ``torchrun``) the run is data-parallel: ``batch_size``
    is each process's share of a step's total batch (``batch_size x world size``), and every
    process returns the same `History` (see `disciplined.training.distributed`).
    """
    config = FitConfig(
        loss_fn=loss_fn,
        val_data=val_data,
        metric=metric,
        metric_name=metric_name,
        higher_is_better=higher_is_better,
        scheduler=scheduler,
        epochs=epochs,
        steps=steps,
        batch_size=batch_size,
        eval_every=eval_every,
        eval_batches=eval_batches,
        eval_batch_size=eval_batch_size,
        device=device,
        amp=amp,
        accumulation_steps=accumulation_steps,
        seed=seed,
        diverge_factor=diverge_factor,
        collapse_stop=collapse_stop,
        stop=stop,
        on_eval=on_eval,
        max_seconds=max_seconds,
        sync_every=sync_every,
        progress=progress,
        meta=meta,
    )
    return fit_with(model, optimizer, train_data, config)


# --------------------------------------------------------------------------- the steps


class _MicroBatches:
    """The mini-batches an optimizer step takes, epoch after epoch; a step never takes
    micro-batches from two epochs (the last step of an epoch may take fewer)."""

    def __init__(self, batches: Batches, accumulation_steps: int) -> None:
        self.batches = batches
        self.accumulation_steps = accumulation_steps
        self.per_epoch = batches.per_epoch
        self.left = self.per_epoch  # micro-batches left in this epoch
        self.iterator = batches.epoch()

    def step_size(self) -> int:
        """How many micro-batches the next optimizer step takes."""
        return min(self.accumulation_steps, self.left)

    def next(self) -> Any:
        """The next micro-batch (a new epoch begins when this one is spent)."""
        try:
            return next(self.iterator)
        except StopIteration:
            self.iterator = self.batches.epoch()
            return next(self.iterator)

    def consumed(self, n: int) -> None:
        """Count ``n`` micro-batches as taken."""
        self.left -= n
        if self.left == 0:
            self.left = self.per_epoch


def _optimizer_step(
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    config: FitConfig,
    micro: _MicroBatches,
    cast: Any,
    scaler: torch.amp.GradScaler | None,
) -> torch.Tensor:
    """One optimizer step over the next micro-batches; returns its loss (on the device).

    ``net`` is the model, or under ``torch.distributed`` the model in
    ``DistributedDataParallel`` (gradients are averaged in the last micro-batch's backward;
    a `BatchLoss`, which calls the model itself, has them averaged after backward)."""
    n_micro = micro.step_size()
    step_loss = None
    ddp = isinstance(net, torch.nn.parallel.DistributedDataParallel)
    for i in range(n_micro):
        batch = micro.next()
        with net.no_sync() if ddp and i < n_micro - 1 else nullcontext():
            with cast:
                loss = batch_loss(net, config.loss_fn, batch)
            scaled = loss / n_micro if n_micro > 1 else loss
            with task_code("the backward pass through the model"):
                if scaler is not None:
                    scaler.scale(scaled).backward()
                else:
                    scaled.backward()
        d = scaled.detach()
        step_loss = d if step_loss is None else step_loss + d
    micro.consumed(n_micro)
    if not ddp:
        distributed.average_gradients(net.parameters())
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if config.scheduler is not None:
        config.scheduler.step()
    return step_loss


class _RunState:
    """What one run has recorded so far, and its stop rules."""

    def __init__(
        self,
        model: nn.Module,
        config: FitConfig,
        device: torch.device,
        steps_per_epoch: int,
        total: int,
    ) -> None:
        self.model, self.config, self.device = model, config, device
        self.steps_per_epoch = steps_per_epoch
        self.lrs: list[float] = []
        self.momenta: list[float | None] = []
        self.losses: list[float] = []
        self.pending: list[torch.Tensor] = []
        self.evals: list[EvalRecord] = []
        self.since_eval: list[float] = []
        self.divergence = RunDivergence(total, config.diverge_factor)
        self.collapse = RunCollapse(total, steps_per_epoch) if config.collapse_stop else None
        self.diverged, self.div_step, self.div_reason = False, None, None
        self.collapsed_step: int | None = None
        self.eval_seconds = 0.0
        self.start = time.perf_counter()

    def train_seconds(self) -> float:
        """Wall-clock time since the start, evaluation time excluded."""
        return time.perf_counter() - self.start - self.eval_seconds

    def flush(self) -> str | None:
        """Move pending losses to the host and check each for divergence and stop rules;
        return why the run stops, or None."""
        if not self.pending:
            return None
        pending = self.pending
        if distributed.is_distributed():
            # every rank records the mean over the ranks, and so stops at the same step
            values = distributed.all_reduce_mean(torch.stack(pending)).tolist()
        elif len(pending) > 1:
            values = torch.stack(pending).tolist()
        else:
            values = [pending[0].item()]
        pending.clear()
        for v in values:
            step_i = len(self.losses)
            self.losses.append(v)
            self.since_eval.append(v)
            reason = self.divergence(step_i, v)
            if reason is not None:
                self.diverged, self.div_step, self.div_reason = True, step_i, reason
                return "diverged"
            if self.collapse is not None:
                why = self.collapse(step_i, v)
                if why:
                    self.collapsed_step = step_i
                    return why
            if self.config.stop is not None:
                why = self.config.stop(step_i, v)
                if why:
                    return why
        return None

    def evaluate(self, step_done: int) -> None:
        """Evaluate on the validation data (if any) and record it after ``step_done`` steps."""
        c = self.config
        if c.val_data is None:
            return
        t0 = time.perf_counter()
        train_seconds = t0 - self.start - self.eval_seconds
        vl, vm = evaluate(
            self.model,
            c.val_data,
            c.loss_fn,
            c.metric,
            batch_size=c.eval_batch_size,
            max_batches=c.eval_batches,
            device=self.device,
            amp=c.amp,
        )
        self.eval_seconds += time.perf_counter() - t0
        finite = [x for x in self.since_eval if math.isfinite(x)]
        tl = sum(finite) / len(finite) if finite else math.nan
        self.since_eval.clear()
        self.evals.append(
            EvalRecord(
                epoch=step_done / self.steps_per_epoch,
                step=step_done,
                val_loss=vl,
                val_metric=vm,
                train_loss=tl,
                seconds=train_seconds,
            )
        )

    def after_eval(self) -> str | None:
        """The caller's ``on_eval`` rule on the evaluation just recorded: why to stop, or
        None (every rank reads the same all-reduced record, so all stop together)."""
        if self.config.on_eval is None or not self.evals:
            return None
        return self.config.on_eval(self.evals[-1]) or None

    def history(self, stopped: str | None) -> History:
        """The `History` of the run as recorded."""
        c = self.config
        return History(
            lrs=tuple(self.lrs),
            momenta=tuple(self.momenta),
            train_losses=tuple(self.losses),
            evals=tuple(self.evals),
            steps_per_epoch=self.steps_per_epoch,
            metric_name=c.metric_name,
            higher_is_better=c.higher_is_better,
            diverged=self.diverged,
            diverged_step=self.div_step,
            diverged_reason=self.div_reason,
            stopped_reason=stopped,
            seconds=self.train_seconds(),
            meta=_meta(c),
            collapsed_step=self.collapsed_step,
        )


def _meta(config: FitConfig) -> dict[str, Any]:
    """The caller's ``meta``; under ``torch.distributed`` also the processes and the total
    batch an optimizer step takes (per-process batch x accumulation x processes)."""
    meta = dict(config.meta or {})
    if distributed.is_distributed():
        world = distributed.world_size()
        meta["world_size"] = world
        meta["batch_size_per_process"] = config.batch_size
        meta["total_batch_size"] = config.batch_size * config.accumulation_steps * world
    return meta


# --------------------------------------------------------------------------- the loop


def _generator(seed: int | None) -> torch.Generator:
    """The shuffling generator; ``seed`` also seeds torch's global one."""
    gen = torch.Generator()
    if seed is not None:
        torch.manual_seed(seed)
        gen.manual_seed(seed)
    else:
        drawn = int(torch.randint(0, 2**62, (1,)).item())
        gen.manual_seed(distributed.broadcast_int(drawn))  # every rank shuffles alike
    return gen


def _total_steps(config: FitConfig, steps_per_epoch: int) -> int:
    """The run's optimizer steps; `ValueError` when fewer than one or more than the
    scheduler's policy covers."""
    if config.steps is not None:
        total = int(config.steps)
    else:
        total = round(float(config.epochs) * steps_per_epoch)
    if total < 1:
        raise ValueError(f"the run must take at least one step, got {total}")
    policy = getattr(config.scheduler, "policy", None)
    if policy is not None and policy.total_steps < total:
        raise ValueError(
            f"the schedule has {policy.total_steps} steps but the run takes {total}; "
            "build the policy with total_steps >= the run's steps"
        )
    return total


def _progress(config: FitConfig, total: int) -> tuple[Any, Callable[[int, int], None] | None]:
    """A tqdm bar (``progress=True``) and a ``(step, total)`` callback, each or None."""
    bar = None
    if config.progress is True and distributed.is_main():
        from tqdm.auto import tqdm

        bar = tqdm(total=total, unit="step", leave=False, dynamic_ncols=True, disable=None)
    report = config.progress if callable(config.progress) else None
    return bar, report


def _over_time(run: _RunState, max_seconds: float) -> bool:
    """Whether training has taken more than ``max_seconds`` (on any rank)."""
    return distributed.all_reduce_max(run.train_seconds()) > max_seconds


def fit_with(
    model: nn.Module, optimizer: torch.optim.Optimizer, train_data: Data, config: FitConfig
) -> History:
    """`fit` with its options as one `FitConfig`."""
    config.check()
    dev = resolve_device(config.device) if config.device is not None else model_device(model)
    cast = autocast(dev, config.amp)
    scaler = torch.amp.GradScaler("cuda") if config.amp == "fp16" else None
    gen = _generator(config.seed)
    model.to(dev)
    model.train()
    raw = isinstance(config.loss_fn, BatchLoss)
    shard = (distributed.rank(), distributed.world_size())
    batches = Batches(
        train_data,
        config.batch_size,
        dev,
        shuffle=True,
        generator=gen,
        raw=raw,
        shard=shard,
        no_single=has_batch_norm(model),
    )
    micro = _MicroBatches(batches, config.accumulation_steps)
    steps_per_epoch = max(1, math.ceil(micro.per_epoch / config.accumulation_steps))
    total = _total_steps(config, steps_per_epoch)
    every = config.eval_every or steps_per_epoch
    sync_every = config.sync_every
    if sync_every is None:
        sync_every = 1 if (dev.type == "cpu" or config.stop is not None) else 25
    bar, report = _progress(config, total)
    run = _RunState(model, config, dev, steps_per_epoch, total)
    if raw:
        distributed.broadcast_module(model)  # DDP does this itself
    net = model if raw else distributed.wrap(model, dev)
    group0 = optimizer.param_groups[0]
    stopped = None
    step = 0
    while step < total:
        run.lrs.append(float(group0["lr"]))
        run.momenta.append(group_momentum(group0))
        step_loss = _optimizer_step(net, optimizer, config, micro, cast, scaler)
        run.pending.append(step_loss.float())
        step += 1
        if len(run.pending) >= sync_every or step % every == 0 or step == total:
            stopped = run.flush()
            if stopped:
                break
        if step % every == 0:
            run.evaluate(step)
            stopped = run.after_eval()
            if stopped:
                break
        if bar is not None:
            bar.update(1)
        if report is not None:
            report(step, total)
        if _STEP_LISTENERS and run.losses:
            for listen in tuple(_STEP_LISTENERS):
                listen(step, total, run.losses[-1])
        if config.max_seconds is not None and _over_time(run, config.max_seconds):
            stopped = f"time limit of {config.max_seconds:g} s reached"
            run.flush()
            break
    if bar is not None:
        bar.close()
    steps_taken = len(run.losses)
    del run.lrs[steps_taken:], run.momenta[steps_taken:]
    if not run.diverged and (not run.evals or run.evals[-1].step != steps_taken):
        run.evaluate(steps_taken)
    return run.history(stopped)
