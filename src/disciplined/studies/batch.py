"""The batch-size study: the largest batch that fits in memory, the candidates it caps, and
their comparison (`batch_size_search`), with its rules (`best_at_equal_time`,
`metric_noise`, `memory_decision`) and the memory probe.

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
import random
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from disciplined.errors import UsageError
from disciplined.measure.diagnose import describe_run
from disciplined.measure.range_test import preserved_state
from disciplined.rules import Rule
from disciplined.studies.context import (
    StudyContext,
    batch_figure,
    one_cycle_spec,
)
from disciplined.studies.decide import Decision, Payload
from disciplined.studies.learning_rate import learning_rate_test, peak_momentum
from disciplined.tasks import Task
from disciplined.training.batching import (
    BatchLoss,
    LoaderDataset,
    batch_loss,
    batches_per_epoch,
    to_device,
)
from disciplined.training.fit import History, resolve_device
from disciplined.trials.hparams import HParams, build_optimizer
from disciplined.trials.spec import TrialResult, TrialSpec

__all__ = [
    "BATCH_COMPARISONS",
    "CAP_RULE",
    "EQUAL_EPOCHS_RULE",
    "EQUAL_TIME_RULE",
    "MEMORY_RULE",
    "BatchSizeCap",
    "BatchSizeComparison",
    "MemoryFit",
    "MemoryProbe",
    "available_memory",
    "batch_comparison",
    "batch_size_search",
    "best_at_equal_time",
    "candidate_batch_sizes",
    "candidate_readings",
    "equal_epoch_candidates",
    "largest_batch_that_fits",
    "memory_decision",
    "memory_step",
    "metric_noise",
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
    # two samples, not one, for the step that creates the optimizer's state: a BatchNorm
    # layer in training mode refuses a single value per channel (a BatchNorm1d MLP's
    # probe failed so on every seed of the held-out wide-resmlp; its state is the same)
    batch, one = _probe_batch(task, batch_size), _probe_batch(task, min(2, batch_size))
    with preserved_state(model, optimizer):
        model.train()
        batch_loss(model, task.loss_fn, one).backward()
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

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MemoryFit:
        """Rebuild from `to_dict` output (a probe kept in the store)."""
        return cls(
            batch_size=int(d["batch_size"]),
            limit_bytes=int(d["limit_bytes"]),
            probes=tuple(
                (int(b), None if n is None else int(n), bool(ok)) for b, n, ok in d["probes"]
            ),
            capped_by=str(d["capped_by"]),
            device=str(d["device"]),
        )


@contextmanager
def _global_rng_kept(dev: torch.device) -> Iterator[None]:
    """Run the block with the global RNGs (torch's CPU and ``dev``'s, numpy's, Python's)
    restored afterwards to the state they had: the probe seeds its own model and leaves
    the caller's random streams where they were."""
    py_state = random.getstate()
    try:
        import numpy as np

        np_state: Any = np.random.get_state()
    except ImportError:  # pragma: no cover - numpy comes with torch's usual installs
        np, np_state = None, None
    devices = [dev] if dev.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        random.setstate(py_state)
        if np is not None:
            np.random.set_state(np_state)


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
    or ``max_batch``. The task's model is built fresh (seeded with 0) and nothing of the
    caller's is touched, the global RNGs included (`_global_rng_kept`).
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if not 0 <= margin < 1:
        raise ValueError(f"margin must be in [0, 1), got {margin}")
    dev = resolve_device(device)
    with _global_rng_kept(dev):
        return _largest_batch(task, hp, memory_limit, fraction, margin, dev, start, max_batch)


def _largest_batch(
    task: Task,
    hp: HParams,
    memory_limit: int | str | None,
    fraction: float,
    margin: float,
    dev: torch.device,
    start: int,
    max_batch: int | None,
) -> MemoryFit:
    """`largest_batch_that_fits` once its arguments are checked and the RNGs kept."""
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
        raise UsageError(
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
            batch = to_device(_probe_batch(task, b), dev)
            loss = batch_loss(model, task.loss_fn, batch)
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
            raise UsageError(f"no candidate batch size fits (largest that fits: {largest})")
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


MEMORY_RULE = Rule(
    "largest_that_fits",
    largest_batch_that_fits,
    "A training step at growing batch sizes, its memory measured, finds the largest batch "
    "whose step fits under the limit less a safety margin; no candidate batch size may "
    "exceed it. The probe trains nothing that is kept.",
)
"""The memory step's rule: the largest batch whose step fits (`largest_batch_that_fits`)."""

CAP_RULE = Rule(
    "largest_that_fits",
    largest_batch_that_fits,
    "Smith: use the largest batch size that fits in memory, since larger batches permit "
    "larger learning rates. Only that cap was applied here: {not_compared}.",
)
"""The batch size without a comparison: the task's own, capped by what fits
(`memory_decision`)."""


def _memory_fit(d: Any) -> MemoryFit | dict[str, Any]:
    """A record's ``memory`` entry as a `MemoryFit`; one that does not read as one (written
    by an older version, or in part) stays the dictionary it was."""
    try:
        return MemoryFit.from_dict(d)
    except (KeyError, TypeError, ValueError):
        return dict(d)


@dataclass(frozen=True)
class MemoryProbe(Payload):
    """The memory step's record: the probe (`MemoryFit`: the largest batch that fits, the
    limit, each probe's step memory, what capped it, the device)."""

    KIND: ClassVar[str] = "memory"
    NAMES: ClassVar[tuple[str, ...]] = ("memory",)
    RULES: ClassVar[tuple[Rule, ...]] = (MEMORY_RULE,)
    HOW_TO_READ: ClassVar[str] = MEMORY_RULE.explanation

    memory: MemoryFit | dict[str, Any]

    @classmethod
    def from_dict(cls, d: Any) -> MemoryProbe:
        """Rebuild from `to_dict` output."""
        return cls(memory=_memory_fit(d["memory"]))


@dataclass(frozen=True)
class BatchSizeCap(Payload):
    """A batch-size decision without a comparison: the memory probe, and why no batch sizes
    were compared (``not_compared``, None when the reason does not say)."""

    KIND: ClassVar[str] = "batch_size_cap"
    NAMES: ClassVar[tuple[str, ...]] = ("batch_size",)
    RULES: ClassVar[tuple[Rule, ...]] = (CAP_RULE,)
    OMITTED_WHEN_NONE: ClassVar[tuple[str, ...]] = ("not_compared",)

    memory: MemoryFit | dict[str, Any]
    not_compared: str | None = None

    @classmethod
    def from_dict(cls, d: Any) -> BatchSizeCap:
        """Rebuild from `to_dict` output."""
        return cls(memory=_memory_fit(d["memory"]), not_compared=d.get("not_compared"))


def memory_decision(fit_: MemoryFit, task: Task, why: str = "") -> Decision:
    """A `Decision` without a comparison: the task's own batch size, capped by what fits
    (memory is a cap, not a choice: a batch of the whole data set fits in memory but
    leaves too few steps to train). ``why`` says why no batch sizes were compared; it
    ends the reason and is kept as the record's ``not_compared`` (`BatchSizeCap`)."""
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
        rule=CAP_RULE.name,
        reason=reason + (f"; {why}" if why else ""),
        table=rows,
        payload=BatchSizeCap(memory=fit_, not_compared=why or None),
    )


def memory_step(
    ctx: StudyContext,
    hp: HParams,
    *,
    memory_limit: int | str | None = None,
    device: str | None = None,
) -> tuple[MemoryFit, Decision]:
    """The memory probe as a measured step: the largest batch that fits
    (`largest_batch_that_fits`, on ``device``, default the context's) and its `Decision`
    (name ``memory``, value that batch size, the limit and each probe's step memory in
    the reason and table).

    The probe is kept in the store's meta entries, keyed by optimizer, device and limit, so
    a resumed tune reads it back without probing again (and decides the same, even where
    the CPU's limit follows the memory available now). Its seconds are charged to the open
    step of the ledger, once (read back, at what it cost when it ran); its epochs are
    charged as 0: it keeps no training (one step at each size on a model thrown away, the
    global RNGs left as they were), and the budget in epochs pays for training.
    """
    device = device or ctx.device
    ctx.store.bind({"task": ctx.task, "task_options": ctx.task_options})
    key = f"memory_probe:{hp.optimizer}:{device}:{memory_limit}"
    stored = ctx.store.get_meta(key)
    if stored is None:
        started = time.perf_counter()
        fit_ = largest_batch_that_fits(ctx.load(), hp, memory_limit=memory_limit, device=device)
        seconds = time.perf_counter() - started
        stored = ctx.store.setdefault_meta(key, {"fit": fit_.to_dict(), "seconds": seconds})
    fit_, seconds = MemoryFit.from_dict(stored["fit"]), float(stored["seconds"])
    ctx.ledger.charge(key, 0.0, seconds, trial=False)
    rows = tuple({"batch_size": b, "step_bytes": need, "fits": ok} for b, need, ok in fit_.probes)
    limit = f"{fit_.limit_bytes / 2**20:.0f} MiB less the safety margin"
    top = max((need for _, need, ok in fit_.probes if ok and need is not None), default=None)
    measured = f"; its step needs {top / 2**20:.3g} MiB" if top is not None else ""
    if fit_.capped_by == "data":
        reason = f"a step over the whole training set ({fit_.batch_size}) fits in {limit}"
    else:
        reason = f"{fit_.batch_size} is the largest batch whose step fits in {limit}"
    return fit_, Decision(
        name="memory",
        value=fit_.batch_size,
        rule=MEMORY_RULE.name,
        reason=reason + measured + f" (probed on {fit_.device})",
        table=rows,
        payload=MemoryProbe(memory=fit_),
        compute={"seconds": seconds},  # no epochs, no trial of the store
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
    learning rate and runs faster per epoch. Rows need ``batch_size`` and ``val_metric``; a
    row whose ``outcome`` (`describe_run`'s words) is other than ``ok``, or whose
    ``diverged`` is true, is out."""
    ok = [r for r in rows if _usable(r) and math.isfinite(r["val_metric"])]
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
    ``sqrt(p (1 - p) / n)``, with ``p`` kept at least one sample from 0 and 1 (an accuracy
    of 1.0 on 36 samples is not known to the last sample: the formula's 0 there let a
    one-sample lead decide); 0 for other kinds of metric (no such formula)."""
    if kind != "classification" or not math.isfinite(metric) or n <= 0:
        return 0.0
    p = min(max(metric, 1.0 / n), 1.0 - 1.0 / n) if n > 1 else 0.5
    return math.sqrt(p * (1 - p) / n)


EQUAL_TIME_RULE = Rule(
    "best_at_equal_time",
    best_at_equal_time,
    "Larger batches permit larger learning rates, but on a small data set memory never "
    "binds. As the report does, each candidate batch size ({batches}) gets its own "
    "range-test max LR "
    "and a 1cycle run of the same wall-clock time, and the best validation metric wins; "
    "the largest batch that fits in memory only caps the candidates.",
)
"""The candidates compared by short runs of equal wall-clock time."""

EQUAL_EPOCHS_RULE = Rule(
    "best_at_equal_epochs",
    best_at_equal_time,
    "Larger batches permit larger learning rates; smaller ones take more, noisier steps "
    "in the same epochs, which regularize. Each candidate batch size ({batches}, capped "
    "by memory) got its own range-test max LR and the "
    "full 1cycle run of the final run's epochs; the best validation metric won, ties "
    "within the metric's standard error going to the larger batch. The winner's run is "
    "the final run below; the seconds column shows what each batch costs.",
)
"""The candidates compared by the final run's full 1cycle runs (`best_at_equal_time` with
the final run's epochs as the budget)."""


def _by_batch(d: Any, kind: type) -> dict[int, Any] | None:
    """A record's mapping keyed by batch size (strings in the JSON) with ``kind`` values."""
    return None if d is None else {int(b): kind(v) for b, v in d.items()}


@dataclass(frozen=True)
class BatchSizeComparison(Payload):
    """A batch-size comparison's record, by candidate batch size: the memory probe that
    capped them, each candidate's max LR and the key of its (first) range test; at equal
    epochs each candidate's run and the tie tolerance (the metric's noise); at equal time
    the seconds each run got and each batch's measured seconds per step."""

    KIND: ClassVar[str] = "batch_size"
    NAMES: ClassVar[tuple[str, ...]] = ("batch_size",)
    RULES: ClassVar[tuple[Rule, ...]] = (EQUAL_TIME_RULE, EQUAL_EPOCHS_RULE)
    OMITTED_WHEN_NONE: ClassVar[tuple[str, ...]] = (
        "seconds_each",
        "seconds_per_step",
        "run_trials",
        "noise",
    )

    memory: MemoryFit | dict[str, Any]
    seconds_each: float | None = None
    seconds_per_step: dict[int, float] | None = None
    max_lr: dict[int, float] = field(default_factory=dict)
    lr_trials: dict[int, str] = field(default_factory=dict)
    run_trials: dict[int, str] | None = None
    noise: float | None = None

    @classmethod
    def from_dict(cls, d: Any) -> BatchSizeComparison:
        """Rebuild from `to_dict` output (batch sizes back to integers)."""
        return cls(
            memory=_memory_fit(d["memory"]),
            seconds_each=d.get("seconds_each"),
            seconds_per_step=_by_batch(d.get("seconds_per_step"), float),
            max_lr=_by_batch(d.get("max_lr") or {}, float) or {},
            lr_trials=_by_batch(d.get("lr_trials") or {}, str) or {},
            run_trials=_by_batch(d.get("run_trials"), str),
            noise=d.get("noise"),
        )


BATCH_COMPARISONS = ("epochs", "time", "off")
"""How `batch_size_search` compares candidate batch sizes (see `batch_comparison`)."""


def batch_comparison(compare: bool | str) -> str:
    """The comparison mode named by ``compare``: ``"epochs"`` (each candidate trains the
    final run's epochs; True means this), ``"time"`` (short runs of equal wall-clock time)
    or ``"off"`` (False: the task's batch size capped by memory)."""
    if compare is True:
        return "epochs"
    if compare is False or compare is None:
        return "off"
    if compare not in BATCH_COMPARISONS:
        raise UsageError(
            f"the batch-size comparison must be one of {', '.join(BATCH_COMPARISONS)}, "
            f"got {compare!r}"
        )
    return str(compare)


def batch_size_search(
    ctx: StudyContext,
    hp: HParams,
    *,
    compare: bool | str = "epochs",
    candidates: Sequence[int] | None = None,
    memory_limit: int | str | None = None,
    epochs: float = 20.0,
    compare_epochs: float = 5.0,
    num_steps: int = 300,
    seed: int = 0,
    device: str | None = None,
    max_epochs: float | None = None,
    why_off: str = "",
    memory: MemoryFit | None = None,
) -> Decision:
    """Choose the batch size. The largest that fits in memory (``memory``, a probe made
    already by `memory_step`, else probed here) caps the candidates; by ``compare``:

    - ``"epochs"`` (default): each candidate (`batch.equal_epoch_candidates`) gets its own
      range-test max LR and the full 1cycle run the recipe would make with it, ``epochs``
      epochs of ``hp`` (`one_cycle_spec`); the best final validation metric wins, ties
      within the metric's standard error going to the larger batch (seconds in the table).
    - ``"time"``: the same, but the runs are short and of equal wall-clock time (that of
      ``compare_epochs`` epochs at the middle candidate, shortened so the whole comparison
      stays within ``max_epochs`` epochs of compute). Step timings are kept in the store,
      so a resumed search plans the same runs.
    - ``"off"``: the task's batch size, capped by memory; ``why_off`` says why no batch
      sizes were compared (the recipe's plan: the budget, or the comparison turned off),
      in the reason and in the record's ``not_compared`` (`BatchSizeCap`).

    ``hp`` carries the final run's settings (cyclical momentum included); the range tests
    hold momentum at the cycle's minimum (`peak_momentum`), where its max LR is reached.
    The decision's record (`BatchSizeComparison`) holds each candidate's max LR
    (``max_lr``) and the keys of their range tests (``lr_trials``); at equal epochs
    ``run_trials`` holds each candidate's run.
    """
    mode = batch_comparison(compare)
    task = ctx.load()
    device = device or ctx.device  # the memory probe and the timings run where trials do
    fit_ = memory or largest_batch_that_fits(task, hp, memory_limit=memory_limit, device=device)
    if mode == "off":
        return memory_decision(fit_, task, why=why_off)
    pick = equal_epoch_candidates if mode == "epochs" else candidate_batch_sizes
    sizes = pick(task, fit_.batch_size, candidates)
    if len(sizes) == 1:
        return memory_decision(fit_, task, why=f"only one candidate ({sizes[0]}) to compare")
    start = ctx.ledger.mark()
    lr_decisions = candidate_readings(ctx, hp, sizes, num_steps, seed)
    max_lr = {b: d.value for b, d in lr_decisions.items()}
    if mode == "epochs":
        plan = _equal_epoch_runs(ctx, hp, sizes, max_lr, epochs, seed)
    else:
        plan = _equal_time_runs(
            ctx, hp, sizes, max_lr, compare_epochs, num_steps, max_epochs, seed, device
        )
        if isinstance(plan, str):
            return memory_decision(fit_, task, why=plan)
    results = ctx.run(plan.specs)
    rows = [_row(b, r, max_lr[b], plan.steps) for b, r in zip(sizes, results, strict=True)]
    chosen, reason, noise = _choose(rows, task, plan.same)
    figure = batch_figure(
        results,
        sizes,
        max_lr,
        task.name,
        epochs if mode == "epochs" else None,
    )
    return Decision(
        name="batch_size",
        value=chosen,
        rule=plan.rule,
        reason=reason,
        table=tuple(rows),
        trials=tuple(k for d in lr_decisions.values() for k in d.trials)
        + tuple(r.key for r in results),
        figures=(figure, *(f for d in lr_decisions.values() for f in d.figures)),
        payload=_comparison(plan, fit_, sizes, lr_decisions, results, noise),
        compute=ctx.ledger.since(start),
    )


def candidate_readings(
    ctx: StudyContext, hp: HParams, sizes: list[int], num_steps: int, seed: int
) -> dict[int, Decision]:
    """Each candidate's max LR, read as the final run's is: on two seeds, the momentum held
    at the cycle's minimum (`peak_momentum`)."""
    range_hp = peak_momentum(hp)
    return {
        b: learning_rate_test(
            ctx,
            range_hp.with_(batch_size=b),
            num_steps=num_steps,
            seed=seed,
            tag=f"batch{b}",
            repeats=True,
        )
        for b in sizes
    }


@dataclass(frozen=True)
class _Runs:
    """The candidates' runs a comparison makes: their specs (in the candidates' order), the
    steps each takes at equal time (None at equal epochs), the rule's name, what the runs
    have the same of (for the reason), and at equal time the seconds each run gets and each
    batch's seconds per step."""

    specs: list[TrialSpec]
    steps: dict[int, int] | None
    rule: str
    same: str
    seconds_each: float | None = None
    seconds_per_step: dict[int, float] | None = None


def _equal_epoch_runs(
    ctx: StudyContext,
    hp: HParams,
    sizes: list[int],
    max_lr: dict[int, float],
    epochs: float,
    seed: int,
) -> _Runs:
    """Each candidate's full 1cycle run at its own max LR: the recipe's final-run spec."""
    specs = [
        one_cycle_spec(ctx, hp.with_(batch_size=b, max_lr=max_lr[b]), epochs, seed) for b in sizes
    ]
    return _Runs(specs, None, EQUAL_EPOCHS_RULE.name, f"{epochs:g} epochs")


def _equal_time_runs(
    ctx: StudyContext,
    hp: HParams,
    sizes: list[int],
    max_lr: dict[int, float],
    compare_epochs: float,
    num_steps: int,
    max_epochs: float | None,
    seed: int,
    device: str,
) -> _Runs | str:
    """Short runs of equal wall-clock time, from step timings kept in the store; or, when
    ``max_epochs`` cannot pay for an epoch a candidate, the sentence saying so."""
    task = ctx.load()
    ctx.store.bind({"task": ctx.task, "task_options": ctx.task_options})
    timing_key = f"batch_step_seconds:{sizes}:{hp.optimizer}"
    timing = ctx.store.get_meta(timing_key)
    if timing is None:
        measured = measure_step_seconds(task, hp, sizes, device=device)
        timing = ctx.store.setdefault_meta(timing_key, {str(b): s for b, s in measured.items()})
    per_step = {int(b): float(s) for b, s in timing.items()}
    middle = sizes[len(sizes) // 2]
    per_epoch = {b: batches_per_epoch(task.train_data, b) for b in sizes}

    test_cost = sum(num_steps / per_epoch[b] for b in sizes)
    seconds = compare_epochs * per_epoch[middle] * per_step[middle]
    epochs_per_second = sum(1 / (per_epoch[b] * per_step[b]) for b in sizes)
    if max_epochs is not None:
        room = max_epochs - test_cost
        if room < len(sizes):  # not even an epoch a candidate
            return (
                f"the {max_epochs:.1f} epochs of budget left cannot compare {len(sizes)} "
                f"batch sizes (their range tests alone take {test_cost:.1f})"
            )
        seconds = min(seconds, room / epochs_per_second)
    steps = equal_time_steps(per_step, seconds)
    specs = []
    for b in sizes:
        epochs = steps[b] / batches_per_epoch(task.train_data, b)
        specs.append(
            ctx.spec(
                "train",
                hp.with_(batch_size=b, max_lr=max_lr[b]),
                {"epochs": epochs, "eval_every": max(1, steps[b] // 10)},
                seed,
                tag=f"batch_size={b}",
            )
        )
    timings = {b: per_step[b] for b in sizes}
    return _Runs(specs, steps, EQUAL_TIME_RULE.name, "wall-clock time", seconds, timings)


def _usable(row: dict[str, Any]) -> bool:
    """Whether a candidate's row counts: its run ended ``ok``."""
    return row.get("outcome", "ok") == "ok" and not row.get("diverged", False)


def _outcome(r: TrialResult) -> str:
    """A candidate's outcome: `describe_run`'s words for its run, or its trial's status
    (``failed``, ``pruned``) when it has no usable run."""
    if r.history is None or r.status in ("failed", "pruned"):
        return r.status
    return describe_run(r.history, r.spec.budget.get("epochs"))


def _collapsed(h: History | None) -> bool:
    """Whether ``fit`` stopped the run as collapsed."""
    return h is not None and h.collapsed_step is not None


def _row(b: int, r: TrialResult, max_lr: float, steps: dict[int, int] | None) -> dict[str, Any]:
    """A candidate's row of the evidence table. At equal time (``steps`` given) a run that
    ended ``ok`` counts; at equal epochs a run that `diagnose` calls diverged (a finite
    collapse back to the starting loss) is out too."""
    h = r.history
    final = h.final if h else None
    if steps is not None:
        return {
            "batch_size": b,
            "max_lr": max_lr,
            "steps": steps[b],
            "epochs": h.epochs if h else 0.0,
            "seconds": h.seconds if h else 0.0,
            "val_metric": final.val_metric if final else math.nan,
            "val_loss": final.val_loss if final else math.nan,
            # a short run of equal time is not read for a plateau: ok unless it was stopped
            "outcome": "ok" if r.status == "ok" and not _collapsed(h) else _outcome(r),
            "trial": r.key,
        }
    return {
        "batch_size": b,
        "max_lr": max_lr,
        "epochs": h.epochs if h else 0.0,
        "seconds": r.seconds,
        "val_metric": final.val_metric if final else math.nan,
        "val_loss": final.val_loss if final else math.nan,
        # a blow-up, a finite collapse back to the starting loss or a run that never left
        # it (`diagnose`'s diverged) is out
        "outcome": _outcome(r),
        "trial": r.key,
    }


def _choose(rows: list[dict[str, Any]], task: Task, same: str) -> tuple[int, str, float]:
    """`best_at_equal_time` with the best metric's standard error as the tie tolerance:
    the batch size, the sentence, and the tolerance."""
    finite = [r["val_metric"] for r in rows if math.isfinite(r["val_metric"])]
    noise = metric_noise(max(finite), task.num_val, task.kind) if finite else 0.0
    try:
        chosen, reason = best_at_equal_time(rows, task.higher_is_better, tolerance=noise, same=same)
    except ValueError as exc:
        raise UsageError(f"batch-size comparison: {exc}") from None
    return chosen, reason, noise


def _comparison(
    plan: _Runs,
    fit_: MemoryFit,
    sizes: list[int],
    lr_decisions: dict[int, Decision],
    results: list[TrialResult],
    noise: float,
) -> BatchSizeComparison:
    """The decision's record: memory, the plan's timings, each candidate's max LR and
    range test, and at equal epochs each candidate's run and the tie tolerance."""
    equal_epochs = plan.steps is None
    return BatchSizeComparison(
        memory=fit_,
        seconds_each=plan.seconds_each,
        seconds_per_step=plan.seconds_per_step,
        max_lr={b: lr_decisions[b].value for b in sizes},
        lr_trials={b: lr_decisions[b].trials[0] for b in sizes},
        run_trials={b: r.key for b, r in zip(sizes, results, strict=True)}
        if equal_epochs
        else None,
        noise=noise if equal_epochs else None,
    )
