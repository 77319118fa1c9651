"""The `Task` record and the metrics the built-in tasks use."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

import torch
from torch import nn

from disciplined.errors import task_code

Data = Any  # a tuple of tensors (inputs, targets), a torch Dataset, or a DataLoader


def accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Fraction of rows whose arg-max matches the integer target (a 0-d tensor)."""
    return (outputs.argmax(dim=1) == targets).float().mean()


_CLASSIFICATION_LOSSES = (
    nn.functional.cross_entropy,
    nn.functional.nll_loss,
    nn.CrossEntropyLoss,
    nn.NLLLoss,
)


def is_classification_loss(loss_fn: Any) -> bool:
    """Whether ``loss_fn`` is cross-entropy or negative log-likelihood: torch's functions
    (``F.cross_entropy``, ``F.nll_loss``), modules (``nn.CrossEntropyLoss()``,
    ``nn.NLLLoss()``) or a ``functools.partial`` of one. A loss of one's own is not
    guessed at."""
    while isinstance(loss_fn, partial):
        loss_fn = loss_fn.func
    if isinstance(loss_fn, nn.CrossEntropyLoss | nn.NLLLoss):
        return True
    return any(loss_fn is f for f in _CLASSIFICATION_LOSSES[:2])


def default_metric(
    loss_fn: Any,
) -> tuple[Callable[[torch.Tensor, torch.Tensor], torch.Tensor], str] | None:
    """The metric a run scores by when none is given: `accuracy` for a classification
    loss (`is_classification_loss`), else None."""
    return (accuracy, "accuracy") if is_classification_loss(loss_fn) else None


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
    tensors (the fast path), any map-style torch ``Dataset`` whose items are
    ``(input, target)`` pairs, or a ``DataLoader`` over one: a loader is kept as its dataset
    and ``collate_fn`` (`training.LoaderDataset`) so the recipe can batch it at any size.
    ``metric`` maps a batch of outputs and targets to a 0-d tensor averaged over the batch;
    ``higher_is_better`` says which way it points. Without a ``metric``, a cross-entropy or
    NLL loss is scored by `accuracy` (`default_metric`), a ``kind="regression"`` task by
    `r2_score`; any other loss needs one (`UsageError`). Without a ``metric_name``, the
    default metric's name, else ``"metric"``. `from_tensors` and `from_loaders` build
    one without writing the fields out.
    """

    name: str
    build_model: Callable[[Mapping[str, Any]], nn.Module]
    train_data: Data
    val_data: Data
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    metric: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    metric_name: str = ""
    kind: Literal["classification", "regression"] = "classification"
    higher_is_better: bool = True
    takes_dropout: bool = False
    default_batch_size: int = 64
    description: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from disciplined.errors import UsageError

        if self.kind not in ("classification", "regression"):
            raise UsageError(
                f"task {self.name!r}: kind must be 'classification' or 'regression', got "
                f"{self.kind!r}"
            )
        if self.metric is None:
            found = default_metric(self.loss_fn)
            if found is None and self.kind == "regression":
                found = (r2_score, "r2")
            if found is None:
                raise UsageError(
                    f"task {self.name!r}: give a metric; only a cross-entropy or NLL loss "
                    "defaults to accuracy (and kind='regression' to R²)"
                )
            object.__setattr__(self, "metric", found[0])
            object.__setattr__(self, "metric_name", self.metric_name or found[1])
        if not self.metric_name:
            object.__setattr__(self, "metric_name", "metric")
        for name in ("train_data", "val_data"):
            object.__setattr__(self, name, _checked_data(getattr(self, name), name))

    @classmethod
    def from_tensors(
        cls,
        train: tuple[torch.Tensor, torch.Tensor],
        val: tuple[torch.Tensor, torch.Tensor],
        model: Callable[..., nn.Module],
        **kwargs: Any,
    ) -> Task:
        """A task on in-memory ``(inputs, targets)`` tensors. ``model()`` (or
        ``model(dropout=p)`` with ``takes_dropout=True``) builds a fresh model; the other
        keyword arguments are `Task` fields, with defaults read from ``kind``
        (``"classification"``: cross-entropy and accuracy; ``"regression"``: mean squared
        error and R²) and ``name="user-task"``."""
        return cls._build(train, val, model, **kwargs)

    @classmethod
    def from_loaders(
        cls,
        train: Any,
        val: Any,
        model: Callable[..., nn.Module],
        **kwargs: Any,
    ) -> Task:
        """A task on a user's ``DataLoader``s (or ``Dataset``s): as `from_tensors`, the
        default batch size being the training loader's own. The loaders' datasets must be
        map-style; their ``collate_fn`` builds every batch, at whatever size a study asks."""
        if "default_batch_size" not in kwargs:
            size = getattr(train, "batch_size", None)
            if isinstance(size, int) and size > 0:
                kwargs["default_batch_size"] = size
        return cls._build(train, val, model, **kwargs)

    @classmethod
    def _build(cls, train: Any, val: Any, model: Callable[..., nn.Module], **kw: Any) -> Task:
        from disciplined.errors import UsageError

        if isinstance(model, nn.Module) or not callable(model):
            raise UsageError(
                "model must be a callable returning a fresh nn.Module (a class or a "
                f"function: every trial starts from new weights), got {type(model).__name__}"
            )
        kind = kw.pop("kind", "classification")
        if kind not in ("classification", "regression"):
            raise UsageError(f"kind must be 'classification' or 'regression', got {kind!r}")
        classify = kind == "classification"
        kw.setdefault("loss_fn", nn.functional.cross_entropy if classify else _mse)
        if "metric" not in kw:
            kw["metric"] = accuracy if classify else r2_score
            kw.setdefault("metric_name", "accuracy" if classify else "r2")
        kw.setdefault("metric_name", "metric")
        takes_dropout = bool(kw.pop("takes_dropout", False))

        def build(hparams: Mapping[str, Any]) -> nn.Module:
            if takes_dropout:
                return model(dropout=float(hparams.get("dropout", 0.0)))
            return model()

        return cls(
            name=kw.pop("name", "user-task"),
            build_model=build,
            train_data=train,
            val_data=val,
            kind=kind,
            takes_dropout=takes_dropout,
            **kw,
        )

    @property
    def num_train(self) -> int:
        """Number of training samples."""
        return _length(self.train_data)

    @property
    def num_val(self) -> int:
        """Number of validation samples."""
        return _length(self.val_data)

    def model(self, **hparams: Any) -> nn.Module:
        """Build a fresh model; keyword arguments are the hyper-parameters (e.g. ``dropout``).
        An exception raised in ``build_model`` is a `TaskCodeError` naming it."""
        name = getattr(self.build_model, "__qualname__", type(self.build_model).__name__)
        with task_code(f"building the model ({name})"):
            return self.build_model(hparams)

    def param_count(self) -> int:
        """Number of trainable parameters of a model built with default hyper-parameters."""
        return sum(p.numel() for p in self.model().parameters() if p.requires_grad)


def _mse(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return nn.functional.mse_loss(outputs.reshape(targets.shape), targets)


def _checked_data(data: Data, name: str) -> Data:
    """``data`` as the training loop takes it; one-line `UsageError` for what it cannot."""
    from torch.utils.data import DataLoader, Dataset, IterableDataset

    from disciplined.errors import UsageError
    from disciplined.training.fit import LoaderDataset

    if isinstance(data, DataLoader):
        return LoaderDataset.from_loader(data, name)
    if isinstance(data, tuple | list):
        if not all(isinstance(t, torch.Tensor) for t in data):
            raise UsageError(f"{name} must be (inputs, targets) tensors, a Dataset or a DataLoader")
        if len(data) != 2:
            raise UsageError(
                f"{name} must be (inputs, targets): got a tuple of {len(data)} tensors "
                "(extra tensors such as sample weights are not supported)"
            )
        if len(data[0]) != len(data[1]):
            raise UsageError(
                f"{name}: inputs and targets differ in length ({len(data[0])} vs {len(data[1])})"
            )
        if len(data[0]) == 0:
            raise UsageError(f"{name} is empty")
        return tuple(data)
    if isinstance(data, IterableDataset) or not isinstance(data, Dataset):
        raise UsageError(
            f"{name} must be (inputs, targets) tensors, a map-style Dataset or a DataLoader, "
            f"got {type(data).__name__}"
        )
    if not hasattr(data, "__len__"):
        raise UsageError(f"{name}: a Dataset without a length cannot be batched into epochs")
    return data


def _length(data: Data) -> int:
    if isinstance(data, tuple | list):
        return len(data[0])
    return len(data)
