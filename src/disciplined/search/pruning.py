"""Pruning a search's trials: `MedianStop`, the median stopping rule (the rule of Optuna's
``MedianPruner``), sent to each trial as bounds so that it works under any executor."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from disciplined.training.history import whole_epoch
from disciplined.trials.spec import TrialResult

__all__ = ["MedianStop", "epoch_metrics"]


@dataclass(frozen=True)
class MedianStop:
    """The median stopping rule for a search's trials (Golovin et al. 2017, "Google Vizier";
    the rule of Optuna's ``MedianPruner``): a trial stops after an epoch at which its best
    validation metric so far is worse than the median, at that epoch, of the trials that
    finished before it started.

    No trial is stopped until ``n_startup_trials`` have finished, nor before epoch
    ``warmup_epochs`` (None: a quarter of the trial's epochs, at least 1), nor at its last
    epoch. The bounds travel in each trial's spec (``budget["prune"]``,
    `disciplined.trials.spec.PruneRule`), so pruning works with any executor, worker
    processes and Ray included, and a resumed search rebuilds the same specs. A stopped
    trial is ``pruned``: its compute counts, its metric does not (`trial_metric`).
    """

    n_startup_trials: int = 5
    warmup_epochs: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.n_startup_trials, int) or self.n_startup_trials < 1:
            raise ValueError(
                f"n_startup_trials must be an integer >= 1, got {self.n_startup_trials!r}"
            )
        if self.warmup_epochs is not None and (
            not isinstance(self.warmup_epochs, int) or self.warmup_epochs < 0
        ):
            raise ValueError(
                f"warmup_epochs must be an integer >= 0 or None, got {self.warmup_epochs!r}"
            )

    def bounds(self, finished: Sequence[TrialResult], epochs: float) -> list[float | None] | None:
        """The bound after each epoch ``1 .. ceil(epochs) - 1`` for a trial that starts after
        ``finished`` (only those with status ``ok`` count); None when nothing is checked."""
        done = [
            epoch_metrics(r.history)
            for r in finished
            if r.status == "ok" and r.history is not None
        ]
        if len(done) < self.n_startup_trials:
            return None
        warm = self.warmup_epochs if self.warmup_epochs is not None else max(1, int(epochs // 4))
        out: list[float | None] = []
        for epoch in range(1, math.ceil(epochs)):
            values = [m[epoch] for m in done if epoch in m]
            out.append(statistics.median(values) if values and epoch >= warm else None)
        return out if any(b is not None for b in out) else None


def epoch_metrics(history: Any) -> dict[int, float]:
    """The finite validation metrics a history recorded at the end of whole epochs, by
    epoch number."""
    out = {}
    for e in history.evals:
        n = whole_epoch(e.epoch)
        if n is not None and math.isfinite(e.val_metric):
            out.setdefault(n, e.val_metric)
    return out
