"""Batching: the data `fit` and `evaluate` accept (tensors, a `Dataset`, a `DataLoader`, a
user's loader taken apart as `LoaderDataset`), losses computed by user code (`BatchLoss`),
the count of batches per epoch, and the endless shuffled batches already on the device.

In-memory tensors ``(inputs, targets)`` take a fast path: the tensors move to the device once
and each epoch draws shuffled index batches, with no per-sample ``DataLoader`` work.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from disciplined.errors import UsageError, task_code
from disciplined.training import distributed

Data = Any  # (inputs, targets) tensors, a Dataset, or a DataLoader
LossFn = Any  # loss_fn(outputs, targets) -> loss, or a `BatchLoss` (fn(model, batch) -> loss)

__all__ = [
    "BatchLoss",
    "Batches",
    "Data",
    "LoaderDataset",
    "LossFn",
    "batch_bounds",
    "batch_len",
    "batch_loss",
    "batches_per_epoch",
    "callable_name",
    "has_batch_norm",
    "loss_of",
    "model_output",
    "to_device",
]


def has_batch_norm(model: nn.Module) -> bool:
    """Whether ``model`` has a BatchNorm layer (any of torch's, synchronised or lazy): in
    training mode it refuses a batch of one sample, so `Batches` never hands it one, and
    its evaluation uses running statistics, which the LR test's reading allows for."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def _is_tensor_pair(data: Data) -> bool:
    return (
        isinstance(data, tuple | list)
        and len(data) >= 2
        and all(isinstance(t, torch.Tensor) for t in data)
    )


class BatchLoss:
    """A loss computed from the whole batch by the user's own code, ``fn(model, batch)``,
    for models whose batches are not ``(inputs, targets)`` pairs: a LightningModule's
    ``training_step``, a Hugging Face model fed a dict with ``labels``. Pass it where a
    ``loss_fn`` goes (`fit`, `evaluate`, `lr_range_test`); batches then reach ``fn`` as the
    loader built them (tensors, tuples, dicts, or anything with ``.to(device)``), moved to
    the device. No metric is computed from a `BatchLoss` (it gives no outputs)."""

    def __init__(self, fn: Callable[[nn.Module, Any], torch.Tensor]) -> None:
        """Wrap ``fn(model, batch) -> scalar loss tensor``."""
        if not callable(fn):
            raise TypeError(f"BatchLoss needs a callable fn(model, batch), got {fn!r}")
        self.fn = fn

    def __call__(self, model: nn.Module, batch: Any) -> torch.Tensor:
        """The batch's loss."""
        return self.fn(model, batch)

    def __repr__(self) -> str:
        return f"BatchLoss({getattr(self.fn, '__qualname__', self.fn)!r})"


def to_device(batch: Any, device: torch.device) -> Any:
    """A batch of any nesting of tensors, tuples, lists and dicts, moved to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, tuple | list):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    to = getattr(batch, "to", None)  # e.g. a Hugging Face BatchEncoding
    return to(device) if callable(to) else batch


def batch_len(batch: Any) -> int:
    """Samples in a batch: the length of its first tensor."""
    if isinstance(batch, torch.Tensor):
        return len(batch) if batch.dim() else 1
    values = batch.values() if hasattr(batch, "values") else batch
    if isinstance(values, tuple | list) or hasattr(batch, "values"):
        for v in values:
            n = batch_len(v)
            if n:
                return n
    return 0


def callable_name(fn: Any) -> str:
    """A callable's name for a message: ``Net.forward``, ``cross_entropy``."""
    if isinstance(fn, nn.Module):
        return f"{type(getattr(fn, 'module', fn)).__name__}.forward"  # DDP: the user's module
    if isinstance(fn, BatchLoss):
        fn = fn.fn
    return getattr(fn, "__qualname__", None) or type(fn).__name__


def model_output(model: nn.Module, x: Any) -> Any:
    """``model(x)``; an exception raised in it is a `TaskCodeError` naming the model."""
    with task_code(f"the model ({callable_name(model)})"):
        return model(x)


def loss_of(loss_fn: Any, out: Any, y: Any) -> torch.Tensor:
    """``loss_fn(out, y)``; an exception raised in it is a `TaskCodeError` naming it."""
    with task_code(f"the loss ({callable_name(loss_fn)})"):
        return loss_fn(out, y)


def batch_loss(model: nn.Module, loss_fn: Any, batch: Any) -> torch.Tensor:
    """The loss of one batch: ``loss_fn(model(x), y)``, or a `BatchLoss`'s own; an
    exception raised in the task's code is a `TaskCodeError` naming the part."""
    if isinstance(loss_fn, BatchLoss):
        with task_code(f"the loss step ({callable_name(loss_fn)})"):
            return loss_fn(model, batch)
    x, y = batch
    return loss_of(loss_fn, model_output(model, x), y)


class LoaderDataset(Dataset):
    """A user's `DataLoader` taken apart so it can be re-batched at any size: its dataset,
    its ``collate_fn``, worker count and pinning, and the batch size it had (a task's
    default). The batch-size study needs this; a `DataLoader` as such batches only at its
    own size. `from_loader` refuses an iterable dataset (no length, no indexing)."""

    def __init__(
        self,
        dataset: Dataset,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        *,
        num_workers: int = 0,
        pin_memory: bool = False,
        batch_size: int | None = None,
    ) -> None:
        """Wrap ``dataset`` (map-style, with a length) and how its batches are built."""
        self.dataset = dataset
        self.collate_fn = collate_fn
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.batch_size = batch_size

    @classmethod
    def from_loader(cls, loader: DataLoader, what: str = "data") -> LoaderDataset:
        """The loader's parts; `UsageError` for a loader without a map-style dataset."""
        dataset = loader.dataset
        if isinstance(dataset, torch.utils.data.IterableDataset) or not hasattr(dataset, "__len__"):
            raise UsageError(
                f"{what}: a DataLoader over an iterable dataset cannot be re-batched or "
                "counted; give a map-style Dataset (with __len__ and __getitem__)"
            )
        return cls(
            dataset,
            loader.collate_fn,
            num_workers=loader.num_workers,
            pin_memory=loader.pin_memory,
            batch_size=loader.batch_size,
        )

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        return self.dataset[index]

    def collate(self, items: list[Any]) -> Any:
        """A batch of ``items`` the way the user's loader builds one."""
        from torch.utils.data import default_collate

        return (self.collate_fn or default_collate)(items)


def batches_per_epoch(data: Data, batch_size: int, world_size: int | None = None) -> int:
    """Number of mini-batches one pass over ``data`` gives (the last one may be short).

    Under ``torch.distributed`` a step takes ``batch_size`` samples on each of the
    ``world_size`` processes (default: the process group's size, 1 without one), so an
    epoch has ``ceil(n / (batch_size x world_size))`` of them; a `DataLoader` counts its own.
    """
    if isinstance(data, DataLoader):
        return len(data)
    world = distributed.world_size() if world_size is None else world_size
    n = len(data[0]) if _is_tensor_pair(data) else len(data)
    return max(1, math.ceil(n / (batch_size * world)))


def batch_bounds(n: int, step: int, no_single: bool = False) -> list[tuple[int, int]]:
    """The ``(start, end)`` of each of one pass's batches of ``step`` samples over ``n``
    (the last one may be short). With ``no_single``, a last batch of a single sample is
    avoided by splitting the last two batches' ``step + 1`` samples in halves: the count
    of batches, and so every schedule's steps, stays the same. A BatchNorm layer in
    training mode refuses a batch of one sample ("Expected more than 1 value per channel"),
    which a data set of ``k x batch + 1`` samples would hand it once an epoch."""
    bounds = [(i, min(i + step, n)) for i in range(0, n, step)]
    if no_single and len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1 and step > 1:
        start = bounds[-2][0]
        middle = start + (step + 2) // 2
        bounds[-2:] = [(start, middle), (middle, n)]
    return bounds


class _IndexBatches:
    """Batches of indices from one permutation per pass (or in order when not shuffling);
    with ``shard=(rank, world)``, rank's share of each global batch of ``batch_size x world``."""

    def __init__(
        self,
        n: int,
        batch_size: int,
        shuffle: bool,
        generator: torch.Generator,
        shard: tuple[int, int] = (0, 1),
        no_single: bool = False,
    ):
        self.n, self.batch_size, self.shuffle, self.generator = n, batch_size, shuffle, generator
        self.rank, self.world = shard
        self.no_single = no_single and self.world == 1

    def __len__(self) -> int:
        return math.ceil(self.n / (self.batch_size * self.world))

    def __iter__(self) -> Iterator[list[int]]:
        order = torch.randperm(self.n, generator=self.generator) if self.shuffle else None
        step = self.batch_size * self.world
        for i, j in batch_bounds(self.n, step, self.no_single):
            idx = list(range(i, j)) if order is None else order[i:j].tolist()
            yield distributed.shard_batch(idx, self.rank, self.world)


class Batches:
    """Endless shuffled mini-batches, epoch after epoch, already on the device.

    ``shard=(rank, world)`` gives rank's share of each global batch of ``batch_size x
    world`` samples (`distributed.shard_batch`); a `DataLoader`, which batches by itself,
    cannot be sharded. ``no_single`` (for a model with BatchNorm layers, on one process)
    never hands out a batch of a single sample (`batch_bounds`); a `DataLoader` batches as
    its owner built it."""

    def __init__(
        self,
        data: Data,
        batch_size: int,
        device: torch.device,
        shuffle: bool,
        generator: torch.Generator,
        raw: bool = False,
        shard: tuple[int, int] = (0, 1),
        no_single: bool = False,
    ) -> None:
        self.device = device
        self.rank, self.world = shard
        self.no_single = no_single and self.world == 1
        self.raw = raw
        self.generator = generator
        self.shuffle = shuffle
        self.batch_size = batch_size
        if _is_tensor_pair(data):
            if len(data) != 2:
                raise UsageError(
                    f"a data tuple must be (inputs, targets), got {len(data)} tensors; "
                    "per-sample weights or extra fields need a custom loss over a Dataset"
                )
            self.tensors = tuple(t.to(device) for t in data)
            self.loader = None
            self.n = len(self.tensors[0])
            if any(len(t) != self.n for t in self.tensors):
                raise UsageError(
                    "the tensors of a data tuple must have the same length, got "
                    + " and ".join(str(len(t)) for t in self.tensors)
                )
        elif isinstance(data, DataLoader):
            if self.world > 1:
                raise UsageError(
                    "under torch.distributed the training data must be tensors or a Dataset "
                    "(each process takes its share of every batch), got a DataLoader: pass "
                    "LoaderDataset.from_loader(loader) instead"
                )
            self.tensors, self.loader = None, data
        elif isinstance(data, Dataset):
            # Index batches drawn exactly as the fast path draws them, so a Dataset of the
            # same tensors trains identically; the loader's own seed comes from a side
            # generator, never from torch's global one.
            self.tensors = None
            side = torch.Generator().manual_seed(int(generator.initial_seed()) + 1)
            parts = data if isinstance(data, LoaderDataset) else None
            self.loader = DataLoader(
                parts.dataset if parts else data,
                batch_sampler=_IndexBatches(
                    len(data), batch_size, shuffle, generator, shard, self.no_single
                ),
                generator=side,
                collate_fn=parts.collate_fn if parts else None,
                num_workers=parts.num_workers if parts else 0,
                pin_memory=parts.pin_memory if parts else False,
            )
        else:
            raise TypeError(
                "data must be a (inputs, targets) tuple of tensors, a Dataset or a DataLoader, "
                f"got {type(data).__name__}"
            )
        self.per_epoch = batches_per_epoch(data, batch_size, world_size=self.world)

    def epoch(self) -> Iterator[tuple[torch.Tensor, ...]]:
        """One pass over the data."""
        if self.tensors is not None:
            step = self.batch_size * self.world
            if self.shuffle:
                order = torch.randperm(self.n, generator=self.generator).to(self.device)
                for i, j in batch_bounds(self.n, step, self.no_single):
                    idx = distributed.shard_batch(order[i:j], self.rank, self.world)
                    yield tuple(t[idx] for t in self.tensors)
            elif self.world > 1:
                for i in range(0, self.n, step):
                    idx = torch.arange(i, min(i + step, self.n), device=self.device)
                    idx = distributed.shard_batch(idx, self.rank, self.world)
                    yield tuple(t[idx] for t in self.tensors)
            else:
                for i in range(0, self.n, self.batch_size):
                    yield tuple(t[i : i + self.batch_size] for t in self.tensors)
        else:
            batches = iter(self.loader)
            what = f"reading the data ({callable_name(type(self.loader.dataset))})"
            while True:
                with task_code(what):
                    try:
                        batch = next(batches)
                    except StopIteration:
                        break
                if self.raw:
                    yield to_device(batch, self.device)
                    continue
                if not (isinstance(batch, tuple | list) and len(batch) == 2):
                    what = (
                        f"{len(batch)} items"
                        if isinstance(batch, tuple | list)
                        else type(batch).__name__
                    )
                    raise UsageError(
                        f"each batch must be (inputs, targets), got {what}: return a pair from "
                        "the dataset or the collate_fn (extra items such as sample weights "
                        "are not supported)"
                    )
                yield tuple(t.to(self.device, non_blocking=True) for t in batch)
