"""The `Task` record and the metrics the built-in tasks use."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

Data = Any  # a tuple of tensors (inputs, targets), a torch Dataset, or a DataLoader


def accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Fraction of rows whose arg-max matches the integer target (a 0-d tensor)."""
    return (outputs.argmax(dim=1) == targets).float().mean()


def r2_score(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Coefficient of determination of ``outputs`` against ``targets`` within one batch."""
    outputs = outputs.reshape(targets.shape)
    residual = ((targets - outputs) ** 2).sum()
    total = ((targets - targets.mean()) ** 2).sum().clamp_min(1e-12)
    return 1.0 - residual / total


@dataclass(frozen=True)
class Task:
    """What to train and how to score it.

    ``build_model(hparams)`` returns a fresh model; it honours ``hparams["dropout"]`` when
    ``takes_dropout`` is true. ``train_data`` and ``val_data`` are ``(inputs, targets)``
    tensors (the fast path) or any torch ``Dataset``. ``metric`` maps a batch of outputs and
    targets to a 0-d tensor averaged over the batch; ``higher_is_better`` says which way it
    points.
    """

    name: str
    build_model: Callable[[Mapping[str, Any]], nn.Module]
    train_data: Data
    val_data: Data
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    metric: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    metric_name: str
    kind: Literal["classification", "regression"] = "classification"
    higher_is_better: bool = True
    takes_dropout: bool = False
    default_batch_size: int = 64
    description: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def num_train(self) -> int:
        """Number of training samples."""
        return _length(self.train_data)

    @property
    def num_val(self) -> int:
        """Number of validation samples."""
        return _length(self.val_data)

    def model(self, **hparams: Any) -> nn.Module:
        """Build a fresh model; keyword arguments are the hyper-parameters (e.g. ``dropout``)."""
        return self.build_model(hparams)

    def param_count(self) -> int:
        """Number of trainable parameters of a model built with default hyper-parameters."""
        return sum(p.numel() for p in self.model().parameters() if p.requires_grad)


def _length(data: Data) -> int:
    if isinstance(data, tuple | list):
        return len(data[0])
    return len(data)
