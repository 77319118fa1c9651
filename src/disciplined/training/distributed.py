"""Training under ``torch.distributed`` (one process per device, started by ``torchrun``).

When a process group is initialised with more than one process, `fit` runs data-parallel:
every rank draws the same shuffled order (same seed), each global batch of ``batch_size x
world size`` samples is cut into one contiguous block per rank (`shard_batch`), gradients are
averaged by torch's ``DistributedDataParallel`` (`wrap`), and the losses and evaluation sums
are all-reduced, so every rank records the same `History`. Without a process group (or with
one process) nothing here changes anything: every helper is then the identity.

`launched` starts the process group a ``torchrun`` launch asks for (``WORLD_SIZE`` > 1 in
the environment): NCCL on CUDA, gloo on the CPU. `is_main` guards what only rank 0 does
(writing files, printing).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from disciplined.errors import UsageError

__all__ = [
    "all_reduce_max",
    "all_reduce_mean",
    "all_reduce_sum",
    "average_gradients",
    "barrier",
    "broadcast_int",
    "broadcast_module",
    "is_distributed",
    "is_main",
    "launched",
    "rank",
    "shard_batch",
    "world_size",
    "wrap",
]


def is_distributed() -> bool:
    """Whether a process group with more than one process is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """The number of processes (1 without a process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main() -> bool:
    """Whether this process is rank 0, the one that writes files and prints."""
    return rank() == 0


def _comm_device() -> torch.device:
    """Where tensors must be for a collective: CUDA for NCCL, the CPU for gloo."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """The element-wise sum of ``t`` over all ranks (a new tensor on ``t``'s device);
    ``t`` itself without a process group."""
    if not is_distributed():
        return t
    out = t.detach().to(_comm_device(), copy=True)
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out.to(t.device)


def all_reduce_mean(t: torch.Tensor) -> torch.Tensor:
    """The element-wise mean of ``t`` over all ranks; ``t`` itself without a process group."""
    if not is_distributed():
        return t
    return all_reduce_sum(t) / world_size()


def all_reduce_max(x: float) -> float:
    """The largest of the ranks' ``x`` (``x`` without a process group)."""
    if not is_distributed():
        return x
    t = torch.tensor([x], dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t.item())


def broadcast_int(value: int) -> int:
    """Rank 0's ``value`` on every rank."""
    if not is_distributed():
        return value
    t = torch.tensor([value], dtype=torch.int64, device=_comm_device())
    dist.broadcast(t, src=0)
    return int(t.item())


def barrier() -> None:
    """Wait until every rank is here (nothing without a process group)."""
    if is_distributed():
        dist.barrier()


def broadcast_module(model: nn.Module) -> None:
    """Copy rank 0's parameters and buffers into every rank's ``model``."""
    if not is_distributed():
        return
    with torch.no_grad():
        for t in [*model.parameters(), *model.buffers()]:
            buf = t.detach().to(_comm_device(), copy=True)
            dist.broadcast(buf, src=0)
            t.copy_(buf.to(t.device))


def average_gradients(params: Iterable[nn.Parameter]) -> None:
    """Replace each gradient with its mean over the ranks (a parameter without a gradient
    takes part with zeros, so every rank makes the same calls)."""
    if not is_distributed():
        return
    params = [p for p in params if p.requires_grad]
    if not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = all_reduce_mean(torch.cat([g.detach().reshape(-1) for g in grads]))
    offset = 0
    for p, g in zip(params, grads, strict=True):
        n = g.numel()
        p.grad = flat[offset : offset + n].view_as(g).to(g.dtype)
        offset += n


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` in torch's ``DistributedDataParallel`` (which copies rank 0's weights to
    every rank and averages gradients in backward); ``model`` itself without a process
    group."""
    if not is_distributed():
        return model
    from torch.nn.parallel import DistributedDataParallel

    if device.type != "cuda":
        return DistributedDataParallel(model)
    index = device.index if device.index is not None else torch.cuda.current_device()
    return DistributedDataParallel(model, device_ids=[index])


def shard_batch(indices: Any, rank_: int, world: int) -> Any:
    """Rank ``rank_``'s share of one global batch of ``indices`` (a tensor or a list): one
    contiguous block of ``ceil(len / world)`` per rank, in rank order. A batch that does not
    split evenly (the last of an epoch) is filled by repeating it from its start, so that
    every rank has the same number of samples."""
    if world == 1:
        return indices
    n = len(indices)
    per = -(-n // world)
    if per * world > n:
        if isinstance(indices, torch.Tensor):
            indices = indices[torch.arange(per * world, device=indices.device) % n]
        else:
            indices = [indices[i % n] for i in range(per * world)]
    return indices[rank_ * per : (rank_ + 1) * per]


def _launch_wanted() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def refuse_launch(what: str, instead: str) -> None:
    """Refuse (`UsageError`, one line) to run ``what`` under a ``torchrun`` launch or in a
    process group, saying what to do ``instead``: for commands whose processes would each
    run the whole job and write the same folder."""
    if _launch_wanted() or is_distributed():
        raise UsageError(f"{what} does not run under torchrun: {instead}")


@contextmanager
def launched(device: str | None = None) -> Iterator[None]:
    """Within the block, the process group a ``torchrun`` launch asks for (``WORLD_SIZE``
    > 1): NCCL when ``device`` is CUDA (or ``None``/``"auto"`` with CUDA available), with
    this process on the GPU ``LOCAL_RANK`` names; gloo otherwise. Destroyed on exit if this
    block started it. Nothing happens in a plain single-process run."""
    if not _launch_wanted() or dist.is_initialized():
        yield
        return
    local = device in (None, "auto", "cuda")
    cuda = torch.cuda.is_available() and (local or str(device).startswith("cuda"))
    if cuda and local:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    try:
        yield
    finally:
        dist.destroy_process_group()
