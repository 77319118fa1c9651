"""Three splits of the built-in tasks: train, validation, and a test split only the final
report reads.

A built-in task has a training and a validation set. Here its validation set is cut in two
halves by a fixed permutation: the first half stays the validation set that the recipe and
every search may read; the second is the test split. ``split="test"`` returns the same task
with the test half as ``val_data`` (the training data is the same), so a chosen
configuration can be retrained and scored on samples no decision saw.

A task here is named by reference, like any user task, e.g.
``benchmarks/splits.py:mnist1d_cnn`` (relative to the repository root). Every read of a test
split is counted (`benchmarks._common.TEST_READS`, per process), and while
``DISCIPLINED_BENCH_SEALED=1`` is set (it is inherited by worker processes) building a test
split raises: the benchmarks set it while the recipe and the searches run.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Literal

import torch

from disciplined import Task, load_task

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # a normal import: its read counter survives reloads of this file)

Split = Literal["val", "test"]
FILE = "benchmarks/splits.py"
BUILTINS = {
    "mnist1d-cnn": "mnist1d_cnn",
    "mnist1d-mlp": "mnist1d_mlp",
    "digits-mlp": "digits_mlp",
    "synthetic-regression": "synthetic_regression",
}


def ref(name: str) -> str:
    """The reference of the three-split version of built-in task ``name``."""
    return f"{FILE}:{BUILTINS[name]}"


def _halves(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    return order[: n // 2], order[n // 2 :]


def three_way(name: str, split: Split = "val") -> Task:
    """Built-in task ``name`` with its validation set halved: ``split="val"`` keeps the first
    half as ``val_data``, ``split="test"`` puts the second half there (counted, and refused
    while the benchmark has sealed the test split)."""
    if split not in ("val", "test"):
        raise ValueError(f"split must be 'val' or 'test', got {split!r}")
    if split == "test":
        _common.read_test_split(name)
    base = load_task(name)
    x, y = base.val_data
    keep = _halves(len(x))[0 if split == "val" else 1]
    return dataclasses.replace(
        base,
        name=f"{base.name}[{split}]",
        val_data=(x[keep], y[keep]),
        description=f"{base.description}; {split} half of its validation set",
        options={**base.options, "split": split},
    )


def mnist1d_cnn(split: Split = "val") -> Task:
    """`three_way` of ``mnist1d-cnn``."""
    return three_way("mnist1d-cnn", split)


def mnist1d_mlp(split: Split = "val") -> Task:
    """`three_way` of ``mnist1d-mlp``."""
    return three_way("mnist1d-mlp", split)


def digits_mlp(split: Split = "val") -> Task:
    """`three_way` of ``digits-mlp``."""
    return three_way("digits-mlp", split)


def synthetic_regression(split: Split = "val") -> Task:
    """`three_way` of ``synthetic-regression``."""
    return three_way("synthetic-regression", split)
