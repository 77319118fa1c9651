"""What the searches search over: `SearchSpace`, and how one of its points becomes a run's
`HParams` (`hparams_for`) or is drawn at random (`sample_point`).

The space is the schedule (1cycle, constant, or step: the LR divided by 10 at 50% and 75% of
training), the maximum learning rate (the constant one, or the initial one of the step
schedule), momentum and weight decay, at the task's batch size or over the space's
``batch_sizes``. Random search samples the learning rate and the weight decay log-uniformly,
the momentum uniformly and the schedule uniformly (Bergstra & Bengio 2012).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from disciplined.studies.decide import cycle_min_momentum
from disciplined.trials.hparams import OPTIMIZERS, SCHEDULES, HParams

__all__ = ["SearchSpace", "hparams_for", "sample_point"]


@dataclass(frozen=True)
class SearchSpace:
    """What the baselines search over.

    ``lr``, ``weight_decay`` and ``momentum`` are ``(low, high)`` bounds for random search and
    TPE: the first two sampled log-uniformly, momentum uniformly. Grid search takes the
    explicit ``*_grid`` values instead. ``batch_size`` defaults to the task's own;
    ``batch_sizes``, when given, is searched too (a categorical choice, and a grid axis), as
    the recipe compares batch sizes. The space the recipe itself chooses from is
    ``SearchSpace(schedules=("one-cycle",), batch_sizes=(b, b // 2, b // 4))``.
    """

    schedules: tuple[str, ...] = SCHEDULES
    lr: tuple[float, float] = (1e-3, 3.0)
    weight_decay: tuple[float, float] = (1e-6, 1e-2)
    momentum: tuple[float, float] = (0.8, 0.99)
    lr_grid: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3, 1.0)
    weight_decay_grid: tuple[float, ...] = (0.0, 1e-4, 1e-3)
    momentum_grid: tuple[float, ...] = (0.9, 0.95)
    batch_size: int | None = None
    optimizer: str = "sgd"
    batch_sizes: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not self.schedules or any(s not in SCHEDULES for s in self.schedules):
            raise ValueError(
                f"schedules must be a non-empty subset of {SCHEDULES}, got {self.schedules!r}"
            )
        for name, lo_min in (("lr", 0.0), ("weight_decay", 0.0)):
            lo, hi = getattr(self, name)
            if not (lo > lo_min and hi >= lo and math.isfinite(hi)):
                raise ValueError(
                    f"{name} must be (low, high) with 0 < low <= high (it is sampled "
                    f"log-uniformly), got {getattr(self, name)!r}"
                )
        lo, hi = self.momentum
        if not 0 <= lo <= hi < 1:
            raise ValueError(
                f"momentum must be (low, high) with 0 <= low <= high < 1, got {self.momentum!r}"
            )
        grids = (
            ("lr_grid", self.lr_grid, lambda v: v > 0 and math.isfinite(v), "> 0"),
            ("weight_decay_grid", self.weight_decay_grid, lambda v: v >= 0, ">= 0"),
            ("momentum_grid", self.momentum_grid, lambda v: 0 <= v < 1, "in [0, 1)"),
        )
        for name, values, ok, rule in grids:
            if not values or not all(ok(v) for v in values):
                raise ValueError(
                    f"{name} must be non-empty with every value {rule}, got {values!r}"
                )
        if self.batch_size is not None and (
            int(self.batch_size) != self.batch_size or self.batch_size < 1
        ):
            raise ValueError(f"batch_size must be an integer >= 1 or None, got {self.batch_size!r}")
        if any(int(b) != b or b < 1 for b in self.batch_sizes):
            raise ValueError(f"batch_sizes must be integers >= 1, got {self.batch_sizes!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")

    @property
    def grid_size(self) -> int:
        """The number of points of the full grid."""
        return (
            len(self.schedules)
            * len(self.lr_grid)
            * len(self.weight_decay_grid)
            * len(self.momentum_grid)
            * max(1, len(self.batch_sizes))
        )


def hparams_for(
    schedule: str,
    max_lr: float,
    momentum: float,
    weight_decay: float,
    batch_size: int,
    optimizer: str = "sgd",
) -> HParams:
    """The `HParams` of one search point. For 1cycle, ``momentum`` is the cycle's maximum and
    the minimum follows the recipe's rule (0.85 when the maximum is 0.95 or more, else 0.8,
    never above the maximum); the constant and step schedules hold ``momentum``."""
    cyclic_low = cycle_min_momentum(momentum)
    low = cyclic_low if schedule == "one-cycle" else momentum
    return HParams(
        max_lr=max_lr,
        max_momentum=momentum,
        min_momentum=low,
        weight_decay=weight_decay,
        batch_size=batch_size,
        optimizer=optimizer,  # type: ignore[arg-type]
        schedule=schedule,  # type: ignore[arg-type]
    )


def sample_point(space: SearchSpace, rng: random.Random) -> dict[str, Any]:
    """One random point of ``space``: schedule uniform, max LR and weight decay log-uniform,
    momentum uniform."""

    def log_uniform(bounds: tuple[float, float]) -> float:
        lo, hi = bounds
        return math.exp(rng.uniform(math.log(lo), math.log(hi)))

    point = {
        "schedule": rng.choice(space.schedules),
        "max_lr": log_uniform(space.lr),
        "weight_decay": log_uniform(space.weight_decay),
        "momentum": rng.uniform(*space.momentum),
    }
    if space.batch_sizes:
        point["batch_size"] = rng.choice(space.batch_sizes)
    return point
