"""Batch size: the largest that fits in memory, and candidates compared as the report says.

Smith (arXiv 1803.09820, section 4.2): use as large a batch as memory allows, since larger
batches permit larger learning rates, but compare batch sizes by wall-clock time to a target,
not by epochs; small batches regularize. On a small data set memory never binds, so the
comparison is the real test: each candidate gets its own range-test max LR and the same
wall-clock time, and the best validation metric wins. Memory only caps the candidates.

Memory on CUDA is probed for real (a training step at each size, out-of-memory caught, the
cache cleared between probes). On the CPU a step's peak is measured rather than provoked:
the bytes of every tensor autograd saves for the backward pass are counted during a forward
pass (`torch.autograd.graph.saved_tensors_hooks`), at two batch sizes, and added to the
parameters, gradients, optimizer state and the batch itself.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from disciplined.errors import UsageError
from disciplined.measure.range_test import preserved_state
from disciplined.studies.decide import Decision
from disciplined.tasks import Task
from disciplined.training.fit import (
    BatchLoss,
    LoaderDataset,
    _batch_loss,
    _to_device,
    resolve_device,
)
from disciplined.trials.hparams import HParams, build_optimizer

__all__ = [
    "MemoryFit",
    "available_memory",
    "largest_batch_that_fits",
    "parse_memory",
    "step_memory",
]


MAX_MEMORY = 2**60
"""The largest memory limit `parse_memory` accepts, in bytes (1 EiB)."""


def parse_memory(text: str | int | float) -> int:
    """Bytes from ``"2GB"``, ``"512MiB"``, ``"1.5G"`` or a plain number of bytes.

    Anything else, a limit <= 0, one that is not finite or one above `MAX_MEMORY` raises
    `UsageError` (a ``ValueError``) naming the value received.
    """
    units = {
        "": 1,
        "b": 1,
        "k": 1e3,
        "kb": 1e3,
        "kib": 2**10,
        "m": 1e6,
        "mb": 1e6,
        "mib": 2**20,
        "g": 1e9,
        "gb": 1e9,
        "gib": 2**30,
        "t": 1e12,
        "tb": 1e12,
        "tib": 2**40,
    }
    if isinstance(text, int | float):
        value = float(text)
    else:
        s = str(text).strip().lower().replace(" ", "")
        num = s.rstrip("abcdefghijklmnopqrstuvwxyz")
        unit = s[len(num) :]
        try:
            value = float(num) * units[unit]
        except (ValueError, KeyError):
            raise UsageError(
                f"memory limit must look like 2GB, 512MiB or 1e9, got {text!r}"
            ) from None
    if not value > 0:
        raise UsageError(f"memory limit must be > 0, got {text!r}")
    if not value <= MAX_MEMORY:  # also catches inf and NaN
        raise UsageError(f"memory limit must be at most 1 EiB (2**60 bytes), got {text!r}")
    return int(value)


def available_memory() -> int:
    """Bytes of memory available now (``MemAvailable`` on Linux, else physical memory)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _tensor_bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def step_memory(
    model: nn.Module, optimizer: torch.optim.Optimizer, task: Task, batch_size: int
) -> int:
    """Bytes a training step at ``batch_size`` needs on the CPU, measured.

    Parameters + gradients + optimizer state (one step taken to create it) + the batch +
    every tensor autograd saves during the forward pass (counted once per storage) + the
    output. Model and optimizer are left as they were.
    """
    batch, one = _probe_batch(task, batch_size), _probe_batch(task, 1)
    with preserved_state(model, optimizer):
        model.train()
        _batch_loss(model, task.loss_fn, one).backward()
        optimizer.step()  # creates momentum buffers / Adam moments
        optimizer.zero_grad(set_to_none=True)
        fixed = 2 * _tensor_bytes(model.parameters())  # weights and their gradients
        for state in optimizer.state.values():
            fixed += _tensor_bytes(v for v in state.values() if torch.is_tensor(v))
        seen: set[tuple[int, int]] = set()
        saved = 0

        def pack(t: torch.Tensor) -> torch.Tensor:
            nonlocal saved
            storage = t.untyped_storage()
            key = (storage.data_ptr(), storage.nbytes())
            if key not in seen:
                seen.add(key)
                saved += storage.nbytes()
            return t

        outputs: list[torch.Tensor] = []
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            if isinstance(task.loss_fn, BatchLoss):
                loss = task.loss_fn(model, batch)
            else:
                x, y = batch
                outputs.append(model(x))
                loss = task.loss_fn(outputs[0], y)
        param_ptrs = {p.untyped_storage().data_ptr() for p in model.parameters()}
        saved -= sum(n for (ptr, n) in seen if ptr in param_ptrs)  # weights counted above
        loss.backward()
        optimizer.zero_grad(set_to_none=True)
    return fixed + saved + _tensor_bytes(_leaves(batch) + outputs)


def _probe_batch(task: Task, size: int) -> Any:
    """A training batch of ``size`` real samples (the first ones, repeated when the data has
    fewer), built as the training loop builds it: indexed tensors, or a dataset's items
    through its loader's ``collate_fn``."""
    data = task.train_data
    if isinstance(data, tuple | list) and len(data) >= 2:
        idx = torch.arange(size) % len(data[0])
        return (data[0][idx], data[1][idx])
    first = [data[i] for i in range(min(len(data), 64))]
    items = [first[i % len(first)] for i in range(size)]
    if isinstance(data, LoaderDataset):
        return data.collate(items)
    from torch.utils.data import default_collate

    return default_collate(items)


def _leaves(batch: Any) -> list[torch.Tensor]:
    """Every tensor in a batch of any nesting."""
    if isinstance(batch, torch.Tensor):
        return [batch]
    if isinstance(batch, dict):
        return [t for v in batch.values() for t in _leaves(v)]
    if isinstance(batch, tuple | list):
        return [t for v in batch for t in _leaves(v)]
    return []


@dataclass(frozen=True)
class MemoryFit:
    """The largest batch size that fits, with the probes that found it."""

    batch_size: int
    limit_bytes: int
    probes: tuple[tuple[int, int | None, bool], ...]  # (batch size, bytes or None, fits)
    capped_by: str  # "memory" or "data"
    device: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return {
            "batch_size": self.batch_size,
            "limit_bytes": self.limit_bytes,
            "probes": [list(p) for p in self.probes],
            "capped_by": self.capped_by,
            "device": self.device,
        }


def largest_batch_that_fits(
    task: Task,
    hp: HParams,
    *,
    memory_limit: int | str | None = None,
    fraction: float = 0.5,
    margin: float = 0.2,
    device: str | torch.device = "cpu",
    start: int = 16,
    max_batch: int | None = None,
) -> MemoryFit:
    """Doubling from ``start``, then bisection, to the largest batch whose training step
    needs no more than the limit less a ``margin`` (20%).

    On the CPU the limit is ``memory_limit`` or ``fraction`` of the memory available now,
    and a step's need is measured by `step_memory`. On CUDA each probe runs a real step and
    out-of-memory ends it. The batch never exceeds the training set (``capped_by="data"``)
    or ``max_batch``. The task's model is built fresh; nothing of the caller's is touched.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if not 0 <= margin < 1:
        raise ValueError(f"margin must be in [0, 1), got {margin}")
    dev = resolve_device(device)
    cap = min(task.num_train, max_batch or task.num_train)
    torch.manual_seed(0)
    model = task.model(dropout=hp.dropout) if task.takes_dropout else task.model()
    model.to(dev)
    optimizer = build_optimizer(model, hp)
    probes: list[tuple[int, int | None, bool]] = []
    if dev.type == "cuda":
        total = torch.cuda.get_device_properties(dev).total_memory
        limit = parse_memory(memory_limit) if memory_limit is not None else total

        def fits(b: int) -> bool:
            ok, used = _cuda_probe(model, optimizer, task, b, dev)
            ok = ok and used <= limit * (1 - margin)
            probes.append((b, used, ok))
            return ok
    else:
        limit = (
            parse_memory(memory_limit)
            if memory_limit is not None
            else int(available_memory() * fraction)
        )

        def fits(b: int) -> bool:
            need = step_memory(model, optimizer, task, b)
            ok = need <= limit * (1 - margin)
            probes.append((b, need, ok))
            return ok

    b = min(start, cap)
    if not fits(b):
        lo, hi = 0, b
    else:
        lo = b
        while lo < cap and fits(min(2 * lo, cap)):
            lo = min(2 * lo, cap)
        hi = min(2 * lo, cap) if lo < cap else cap + 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    if lo < 1:
        raise ValueError(
            f"not even a batch of 1 fits in {limit / 2**20:.0f} MiB (less {margin:.0%} margin)"
        )
    return MemoryFit(
        batch_size=lo,
        limit_bytes=int(limit),
        probes=tuple(probes),
        capped_by="data" if lo >= cap else "memory",
        device=str(dev),
    )


def _cuda_probe(model, optimizer, task, b, dev) -> tuple[bool, int | None]:
    try:
        with preserved_state(model, optimizer):
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(dev)
            batch = _to_device(_probe_batch(task, b), dev)
            loss = _batch_loss(model, task.loss_fn, batch)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            torch.cuda.synchronize(dev)
            used = torch.cuda.max_memory_allocated(dev)
        return True, used
    except torch.cuda.OutOfMemoryError:
        return False, None
    finally:
        torch.cuda.empty_cache()


def candidate_batch_sizes(
    task: Task, largest: int, base: Sequence[int] | None = None, min_steps_per_epoch: int = 10
) -> list[int]:
    """Powers of two from 16 up to the largest that fits, keeping at least
    ``min_steps_per_epoch`` steps an epoch (a batch near the data set's size leaves too few
    steps to train)."""
    ceiling = min(largest, max(1, task.num_train // min_steps_per_epoch))
    if base is not None:
        out = sorted({int(b) for b in base if 1 <= int(b) <= largest})
        if not out:
            raise ValueError(f"no candidate batch size fits (largest that fits: {largest})")
        return out
    out = [b for b in (16, 32, 64, 128, 256, 512, 1024, 2048, 4096) if b <= ceiling]
    return out or [max(1, ceiling)]


def equal_epoch_candidates(
    task: Task, largest: int, base: Sequence[int] | None = None
) -> list[int]:
    """Candidates for the comparison at equal epochs: the task's batch size (capped by
    memory), half of it and a quarter of it, or ``base`` when given (capped by memory).

    Only smaller batches are tried: at the same epochs a larger batch takes fewer steps
    than the task was set up for, while a smaller one takes more, noisier steps, which
    regularize (Smith, section 4.3), at more seconds an epoch (the table shows them).
    """
    if base is not None:
        return candidate_batch_sizes(task, largest, base)
    top = max(1, min(task.default_batch_size, largest))
    return sorted({max(1, top // 4), max(1, top // 2), top})


def equal_time_steps(seconds_per_step: dict[int, float], seconds: float) -> dict[int, int]:
    """Steps each batch size can take in ``seconds`` at its measured speed (at least 10)."""
    return {b: max(10, int(seconds / s)) for b, s in seconds_per_step.items()}


def measure_step_seconds(
    task: Task, hp: HParams, batch_sizes: Sequence[int], steps: int = 20, device: str = "cpu"
) -> dict[int, float]:
    """Median wall seconds of one training step at each batch size (fresh model each)."""
    from disciplined.training.fit import fit

    out = {}
    for b in batch_sizes:
        torch.manual_seed(0)
        model = task.model(dropout=hp.dropout) if task.takes_dropout else task.model()
        opt = build_optimizer(model, hp.with_(batch_size=b))
        fit(
            model,
            opt,
            task.train_data,
            loss_fn=task.loss_fn,
            steps=3,
            batch_size=b,
            device=device,
            seed=0,
        )  # warm-up
        t0 = time.perf_counter()
        h = fit(
            model,
            opt,
            task.train_data,
            loss_fn=task.loss_fn,
            steps=steps,
            batch_size=b,
            device=device,
            seed=0,
        )
        out[b] = (time.perf_counter() - t0) / max(1, h.steps)
    return out


def memory_decision(fit_: MemoryFit, task: Task, why: str = "") -> Decision:
    """A `Decision` without a comparison: the task's own batch size, capped by what fits
    (memory is a cap, not a choice: a batch of the whole data set fits in memory but
    leaves too few steps to train)."""
    rows = tuple({"batch_size": b, "step_bytes": need, "fits": ok} for b, need, ok in fit_.probes)
    value = min(task.default_batch_size, fit_.batch_size)
    if fit_.capped_by == "data":
        reason = (
            f"memory never binds (a step over the whole training set, "
            f"{fit_.batch_size}, fits in {fit_.limit_bytes / 2**20:.0f} MiB)"
        )
    else:
        reason = (
            f"{fit_.batch_size} is the largest batch whose step fits in "
            f"{fit_.limit_bytes / 2**20:.0f} MiB less the safety margin"
        )
    reason += (
        f"; kept the task's batch size {value}"
        if value == task.default_batch_size
        else f"; the task's batch size {task.default_batch_size} is capped to {value}"
    )
    return Decision(
        name="batch_size",
        value=value,
        rule="largest_that_fits",
        reason=reason + (f"; {why}" if why else ""),
        table=rows,
        extra={"memory": fit_.to_dict()},
    )


def best_at_equal_time(
    rows: Sequence[dict[str, Any]],
    higher_is_better: bool = True,
    tolerance: float = 0.0,
    same: str = "wall-clock time",
) -> tuple[int, str]:
    """The report's batch-size rule: the best validation metric after the same budget
    (``same`` names it for the reason: wall-clock time, or the epochs of the final run).
    Candidates within ``tolerance`` of the best are taken as tied (the recipe passes the
    metric's standard error), and of those the largest batch wins: it permits the larger
    learning rate and runs faster per epoch. Rows need ``batch_size``, ``val_metric`` and
    ``diverged``."""
    ok = [r for r in rows if not r["diverged"] and math.isfinite(r["val_metric"])]
    if not ok:
        raise ValueError("every batch-size candidate diverged")
    sign = 1 if higher_is_better else -1
    best = max(sign * r["val_metric"] for r in ok)
    near = [r for r in ok if sign * r["val_metric"] >= best - tolerance]
    chosen = max(near, key=lambda r: r["batch_size"])
    others = ", ".join(f"{r['batch_size']}: {r['val_metric']:.4f}" for r in ok if r is not chosen)
    reason = (
        f"batch {chosen['batch_size']} reached validation metric "
        f"{chosen['val_metric']:.4f} in the same {same} as the others "
        f"({others})"
    )
    if len(near) > 1:
        reason += (
            f"; {len(near)} candidates were within {tolerance:.3g} of the best "
            "(noise), and the largest of them was taken"
        )
    return int(chosen["batch_size"]), reason


def metric_noise(metric: float, n: int, kind: str) -> float:
    """Standard error of an accuracy ``metric`` measured on ``n`` samples,
    ``sqrt(p (1 - p) / n)``; 0 for other kinds of metric (no such formula)."""
    if kind != "classification" or not math.isfinite(metric) or n <= 0:
        return 0.0
    p = min(max(metric, 0.0), 1.0)
    return math.sqrt(p * (1 - p) / n)
