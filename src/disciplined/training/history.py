"""What a training run records: `History` (per-step values and evaluations) and its
`EvalRecord`s, with their JSON form (`disciplined.records.JsonRecord`: non-finite numbers
survive the round trip)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from disciplined.records import (
    JsonRecord,
    decode_float,
    decode_floats,
    encode_float,
    encode_floats,
)

__all__ = ["EvalRecord", "History", "whole_epoch"]


def whole_epoch(epoch: float) -> int | None:
    """The epoch's number when an evaluation fell at the end of a whole epoch (``2.0`` ->
    2), else None (an evaluation mid-epoch, or the last one of a fractional run)."""
    n = round(epoch)
    return n if abs(epoch - n) <= 1e-9 else None


@dataclass(frozen=True)
class EvalRecord:
    """One evaluation: where in training it happened and what it measured.

    ``train_loss`` is the mean training loss over the steps since the previous evaluation;
    ``seconds`` is wall-clock time since training started, evaluation time excluded.
    """

    epoch: float
    step: int
    val_loss: float
    val_metric: float
    train_loss: float
    seconds: float


@dataclass(frozen=True)
class History(JsonRecord):
    """What a training run recorded: per-step values, evaluations, and whether it diverged.

    ``lrs``, ``momenta`` and ``train_losses`` have one entry per optimizer step taken (the
    values in force for that step; momentum is ``None`` for optimizers without one).
    """

    lrs: tuple[float, ...]
    momenta: tuple[float | None, ...]
    train_losses: tuple[float, ...]
    evals: tuple[EvalRecord, ...]
    steps_per_epoch: int
    metric_name: str = "metric"
    higher_is_better: bool = True
    diverged: bool = False
    diverged_step: int | None = None
    diverged_reason: str | None = None
    stopped_reason: str | None = None
    seconds: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)
    collapsed_step: int | None = None
    """The step where ``fit`` stopped the run because it collapsed (it had learned, then sank
    back to its starting loss: `disciplined.divergence.RunCollapse`); None when it did not.
    ``stopped_reason`` says why."""

    @property
    def steps(self) -> int:
        """Number of optimizer steps taken."""
        return len(self.train_losses)

    @property
    def epochs(self) -> float:
        """Number of epochs taken (steps / steps per epoch)."""
        return self.steps / self.steps_per_epoch

    @property
    def final(self) -> EvalRecord | None:
        """The last evaluation, or ``None`` when there was none."""
        return self.evals[-1] if self.evals else None

    def best(self) -> EvalRecord | None:
        """The evaluation with the best metric (ties: the earliest)."""
        if not self.evals:
            return None
        sign = 1.0 if self.higher_is_better else -1.0
        finite = [e for e in self.evals if math.isfinite(e.val_metric)]
        return max(finite, key=lambda e: sign * e.val_metric) if finite else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (non-finite numbers become strings)."""
        d = asdict(self)
        d["train_losses"] = encode_floats(self.train_losses)
        d["lrs"] = list(self.lrs)
        d["momenta"] = list(self.momenta)
        d["evals"] = [{k: encode_float(v) for k, v in asdict(e).items()} for e in self.evals]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> History:
        """Rebuild a `History` from `to_dict` output."""
        d = dict(d)
        d["lrs"] = tuple(d["lrs"])
        d["momenta"] = tuple(d["momenta"])
        d["train_losses"] = decode_floats(d["train_losses"])
        d["evals"] = tuple(
            EvalRecord(**{k: decode_float(v) for k, v in e.items()}) for e in d["evals"]
        )
        return cls(**d)
