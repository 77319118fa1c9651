"""What a search returns: a frozen `SearchResult`, its ``trace`` of `TracePoint`s, and the
score of one trial (`trial_metric`).

The trace is (cumulative epochs, cumulative seconds, best metric so far) after each trial: what
the search had found after any amount of compute (`SearchResult.best_at`). Compute is counted
like the recipe counts it: in epochs of the task (training steps; evaluation is free) and in
the trials' wall seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from disciplined.trials.spec import TrialResult

__all__ = ["SearchResult", "TracePoint", "trial_metric"]


class TracePoint(NamedTuple):
    """Where a search stood after a trial: compute spent so far and the best metric found."""

    epochs: float
    seconds: float
    best: float


def trial_metric(result: TrialResult) -> float:
    """A trial's score: the validation metric of its last evaluation (NaN when it has none:
    a failed trial, or a metric that is not finite; NaN too for a trial that diverged or
    was pruned, whose last evaluation is not a finished run's)."""
    h = result.history
    if result.status != "ok" or h is None or h.final is None:
        return math.nan
    if not math.isfinite(h.final.val_metric):
        return math.nan
    return h.final.val_metric


@dataclass(frozen=True)
class SearchResult:
    """A finished search: its trials in the order they ran, and what they found.

    ``trace[i]`` is the compute spent by trials ``0..i`` (epochs of the task and wall
    seconds) and the best validation metric among them (NaN until a trial has a finite
    one). It never gets worse along the way.
    """

    method: str
    task: str
    epochs_per_trial: float
    trials: tuple[TrialResult, ...]
    metric_name: str = "metric"
    higher_is_better: bool = True
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def trace(self) -> tuple[TracePoint, ...]:
        """(cumulative epochs, cumulative seconds, best metric so far), one per trial."""
        out: list[TracePoint] = []
        epochs = seconds = 0.0
        best = math.nan
        for r in self.trials:
            epochs += r.epochs
            seconds += r.seconds
            m = trial_metric(r)
            if math.isfinite(m) and (not math.isfinite(best) or self._better(m, best)):
                best = m
            out.append(TracePoint(epochs, seconds, best))
        return tuple(out)

    def _better(self, a: float, b: float) -> bool:
        return a > b if self.higher_is_better else a < b

    def best_at(self, epochs: float) -> float:
        """The best metric the search had found once it had spent at most ``epochs`` epochs
        (NaN when not even the first trial fits)."""
        best = math.nan
        for point in self.trace:
            if point.epochs > epochs * (1 + 1e-9):
                break
            best = point.best
        return best

    def seconds_at(self, epochs: float) -> float:
        """Wall seconds the trials that fit in ``epochs`` epochs took."""
        seconds = 0.0
        for point in self.trace:
            if point.epochs > epochs * (1 + 1e-9):
                break
            seconds = point.seconds
        return seconds

    @property
    def best_trial(self) -> TrialResult | None:
        """The trial with the best finite metric (ties: the earliest), or None."""
        return self.best_trial_at(math.inf)

    def best_trial_at(self, epochs: float) -> TrialResult | None:
        """The best trial (ties: the earliest) among those the search had run once it had
        spent at most ``epochs`` epochs: what it would have handed its user had it stopped
        there. None when no such trial has a finite metric."""
        best: TrialResult | None = None
        for r, point in zip(self.trials, self.trace, strict=True):
            if point.epochs > epochs * (1 + 1e-9):
                break
            m = trial_metric(r)
            if math.isfinite(m) and (best is None or self._better(m, trial_metric(best))):
                best = r
        return best

    @property
    def best_metric(self) -> float:
        """The best metric over all trials (NaN when none is finite)."""
        return self.trace[-1].best if self.trials else math.nan

    @property
    def epochs(self) -> float:
        """Total compute in epochs of the task."""
        return sum(r.epochs for r in self.trials)

    @property
    def seconds(self) -> float:
        """Total wall seconds of the trials."""
        return sum(r.seconds for r in self.trials)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary: the trace and each trial's point and metric."""
        return {
            "method": self.method,
            "task": self.task,
            "epochs_per_trial": self.epochs_per_trial,
            "metric_name": self.metric_name,
            "higher_is_better": self.higher_is_better,
            "trace": [p._asdict() for p in self.trace],
            "trials": [
                {
                    "key": r.key,
                    "hparams": r.spec.hparams,
                    "status": r.status,
                    "metric": trial_metric(r),
                    "epochs": r.epochs,
                    "seconds": r.seconds,
                }
                for r in self.trials
            ],
            "meta": self.meta,
        }
