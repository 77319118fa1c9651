"""The check a task gets once, when it is loaded: is it something the loop can train?

Cheap (one forward pass on a few training samples, no gradient), and each failure is a
`UsageError` of one line naming the task and what is wrong: data that is not ``(inputs,
targets)``, train and validation samples of different shapes, NaN or infinity in the
inputs, fewer samples than one batch, a dataset whose ``__len__`` claims more samples than
it can read, bool targets, a model with nothing to train, a model or loss that raises, an
output whose shape does not fit the loss and targets (a loss that broadcasts them, too),
class labels outside the model's outputs, a metric that gives NaN or infinity. Torch's random
number generators are left as they were.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
from torch.utils.data import default_collate

from disciplined.errors import TaskCodeError, UsageError
from disciplined.tasks.base import Task

__all__ = ["check_task"]

SAMPLES = 8
"""Training samples the check's forward pass runs on."""


def check_task(task: Task, ref: str | None = None) -> None:
    """Raise `UsageError` (one line, naming the task as ``ref`` or ``task.name``) unless
    ``task`` can be trained: see the module's docstring for what is checked."""
    name = f"task {ref or task.name!r}"
    try:
        _check(task)
    except _Bad as bad:
        raise UsageError(f"{name}: {bad}") from bad.__cause__


class _Bad(Exception):
    """What is wrong with the task (its message, without the task's name)."""


def _first_line(exc: BaseException) -> str:
    if isinstance(exc, TaskCodeError) and exc.__cause__ is not None:
        exc = exc.__cause__  # the message says what was running; the cause is what failed
    text = str(exc).strip()
    line = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__


def _check(task: Task) -> None:
    from disciplined.training.fit import BatchLoss

    if not isinstance(task.default_batch_size, int) or task.default_batch_size < 1:
        raise _Bad(f"default_batch_size must be an integer >= 1, got {task.default_batch_size!r}")
    if isinstance(task.loss_fn, BatchLoss):
        # the user's own step computes the loss from batches of any shape (a dict, a
        # LightningModule's batch): only the model is checked; the first trial runs the rest
        try:
            model = task.model(dropout=0.0) if task.takes_dropout else task.model()
        except Exception as exc:
            raise _Bad(f"building the model failed: {_first_line(exc)}") from exc
        if not isinstance(model, torch.nn.Module):
            raise _Bad(f"build_model returned {type(model).__name__}, expected a torch Module")
        _trainable(model)
        return
    x_tr, y_tr, n_tr = _sample(task.train_data, "train_data")
    x_va, y_va, _ = _sample(task.val_data, "val_data")
    if n_tr < task.default_batch_size:
        raise _Bad(
            f"train_data has {n_tr} samples, fewer than one batch of {task.default_batch_size} "
            "(lower default_batch_size or give more data)"
        )
    if x_tr.shape[1:] != x_va.shape[1:]:
        raise _Bad(
            f"training inputs have shape {_shape(x_tr)} per sample but validation inputs "
            f"{_shape(x_va)}"
        )
    if y_tr.shape[1:] != y_va.shape[1:]:
        raise _Bad(
            f"training targets have shape {_shape(y_tr)} per sample but validation targets "
            f"{_shape(y_va)}"
        )
    _not_bool(y_tr, y_va)
    for what, t in (
        ("training inputs", _whole(task.train_data, 0, x_tr)),
        ("validation inputs", _whole(task.val_data, 0, x_va)),
        ("training targets", _whole(task.train_data, 1, y_tr)),
        ("validation targets", _whole(task.val_data, 1, y_va)),
    ):
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            raise _Bad(f"the {what} hold {bad} NaN or infinite values")

    with torch.random.fork_rng(devices=[]):
        try:
            model = task.model(dropout=0.0) if task.takes_dropout else task.model()
        except Exception as exc:
            raise _Bad(f"building the model failed: {_first_line(exc)}") from exc
        if not isinstance(model, torch.nn.Module):
            raise _Bad(f"build_model returned {type(model).__name__}, expected a torch Module")
        _trainable(model)
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                out, y = _forward(task, model, x_tr, y_tr)
        finally:
            model.train(was_training)

    if task.kind == "classification" and not y.is_floating_point():
        if out.dim() < 2:
            raise _Bad(
                f"a classification model must output (batch, classes) scores, got shape "
                f"{tuple(out.shape)} for integer targets of shape {tuple(y.shape)}"
            )
        classes = out.shape[1]
        for what, labels in (
            ("training", _whole(task.train_data, 1, y_tr)),
            ("validation", _whole(task.val_data, 1, y_va)),
        ):
            low, high = int(labels.min()), int(labels.max())
            if low < 0 or high >= classes:
                raise _Bad(
                    f"{what} labels run from {low} to {high} but the model outputs {classes} "
                    f"classes (labels must be in 0..{classes - 1})"
                )


def _not_bool(y_tr: torch.Tensor, y_va: torch.Tensor) -> None:
    """Refuse bool targets: no loss takes them (cross-entropy wants integer labels, the
    others floats), and they fail only once training starts."""
    for what, t in (("training targets", y_tr), ("validation targets", y_va)):
        if t.dtype == torch.bool:
            raise _Bad(
                f"the {what} are bool: give integer class labels (targets.long()) or float "
                "targets (targets.float()) for the loss"
            )


def _trainable(model: torch.nn.Module) -> None:
    """Refuse a model with nothing to train (no parameter, or none with requires_grad)."""
    params = list(model.parameters())
    if not any(p.requires_grad for p in params):
        why = "has no parameters" if not params else "has every parameter frozen"
        raise _Bad(
            f"the model {why} (requires_grad=False): an optimizer has nothing to train"
        )


def _forward(
    task: Task, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    n = len(x)
    try:
        out = model(x)
    except Exception as exc:
        raise _Bad(
            f"the model failed on a batch of training inputs of shape {tuple(x.shape)}: "
            f"{_first_line(exc)}"
        ) from exc
    if not isinstance(out, torch.Tensor):
        raise _Bad(f"the model returned {type(out).__name__}, expected a tensor")
    if out.dim() == 0 or out.shape[0] != n:
        raise _Bad(
            f"the model returned shape {tuple(out.shape)} for a batch of {n} inputs "
            f"(the first dimension must be the batch)"
        )
    if not bool(torch.isfinite(out).all()):
        raise _Bad("the freshly built model outputs NaN or infinity")
    if task.kind == "regression" and out.numel() != y.numel():
        raise _Bad(
            f"the model outputs shape {tuple(out.shape)} for targets of shape "
            f"{tuple(y.shape)}: a regression needs one output per target value"
        )
    if task.kind == "classification" and not y.is_floating_point() and out.dim() >= 2:
        # a label the model has no output for makes the loss raise a bare IndexError or a
        # device assert; the label check below words it, so only the loss's shape is tried
        y_try = y.clamp(0, out.shape[1] - 1)
    else:
        y_try = y
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            loss = task.loss_fn(out, y_try)
    except Exception as exc:
        raise _Bad(
            f"the loss failed on model outputs of shape {tuple(out.shape)} and targets of "
            f"shape {tuple(y.shape)}: {_first_line(exc)}"
        ) from exc
    if any("broadcast" in str(w.message) for w in caught):
        raise _Bad(
            f"the loss broadcasts model outputs of shape {tuple(out.shape)} against targets "
            f"of shape {tuple(y.shape)} (every output is compared with every target): "
            "reshape the outputs to the targets' shape in the loss"
        )
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise _Bad(f"the loss must be a single number, got {shape}")
    if not math.isfinite(float(loss)):
        raise _Bad(f"the loss of the freshly built model is {float(loss)}")
    try:
        value = float(task.metric(out, y_try))
    except Exception as exc:
        raise _Bad(
            f"the metric {task.metric_name!r} failed on model outputs of shape "
            f"{tuple(out.shape)}: {_first_line(exc)}"
        ) from exc
    if not math.isfinite(value):
        # runs are ranked by it: a NaN would lose every comparison without a word
        raise _Bad(
            f"the metric {task.metric_name!r} returned {value} on the freshly built model's "
            f"outputs for a batch of {n}: it must give a finite number for any batch"
        )
    return out, y


def _shape(t: torch.Tensor) -> str:
    return str(tuple(t.shape[1:]))


def _whole(data: Any, index: int, sample: torch.Tensor) -> torch.Tensor:
    """All of a tensor-pair's inputs (``index`` 0) or targets (1); the sample otherwise."""
    if isinstance(data, tuple | list):
        return data[index]
    return sample


def _sample(data: Any, what: str) -> tuple[torch.Tensor, torch.Tensor, int]:
    """A few ``(inputs, targets)`` of ``data`` and its number of samples. A `Task` holds
    tensors or a Dataset (a DataLoader is taken apart when the task is built)."""
    if isinstance(data, tuple | list):  # `Task` checked the pair's form when it was built
        x, y = data
        if x.dim() == 0 or y.dim() == 0:
            raise _Bad(f"{what} tensors must have a first (sample) dimension")
        return x[:SAMPLES], y[:SAMPLES], len(x)
    if not hasattr(data, "__getitem__") or not hasattr(data, "__len__"):
        raise _Bad(
            f"{what} must be an (inputs, targets) pair of tensors, a Dataset or a DataLoader, "
            f"got {type(data).__name__}"
        )
    n = len(data)
    if n == 0:
        raise _Bad(f"{what} is empty")
    # batch the first items the way training will: the dataset's own ``collate`` when it
    # has one (a user's DataLoader taken apart), else torch's default collate
    collate = getattr(data, "collate", None) or default_collate
    try:
        batch = collate([data[i] for i in range(min(n, SAMPLES))])
    except Exception as exc:
        raise _Bad(f"reading {what} failed: {_first_line(exc)}") from exc
    try:  # a __len__ that claims more samples than there are fails mid-epoch: say so now
        data[n - 1]
    except Exception as exc:
        raise _Bad(
            f"{what} says it holds {n} samples (__len__) but reading sample {n - 1} failed: "
            f"{_first_line(exc)}"
        ) from exc
    x, y = _pair(batch, what)
    return x, y, n


def _pair(batch: Any, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(batch, tuple | list) or len(batch) != 2:
        size = f"{len(batch)} values" if isinstance(batch, tuple | list) else type(batch).__name__
        raise _Bad(f"each batch of {what} must be an (inputs, targets) pair, got {size}")
    return torch.as_tensor(batch[0]), torch.as_tensor(batch[1])
