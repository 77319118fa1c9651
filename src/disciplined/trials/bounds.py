"""The ranges of the hyper-parameters and run lengths, in one table: `HParams`, `TuneConfig`,
``train --hparams`` and the command line's option types all check against `BOUNDS`, so a
value the parser refuses is refused from Python and from a file too, with the same range.

The upper bounds are generous: they are there to refuse values that overflow float32
arithmetic or would never finish, not to second-guess a choice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from disciplined.errors import UsageError

__all__ = [
    "BOUNDS",
    "MAX_BATCH_SIZE",
    "MAX_BUDGET",
    "MAX_DIV",
    "MAX_EPOCHS",
    "MAX_LR",
    "MAX_SEED",
    "MAX_STEPS",
    "MAX_WEIGHT_DECAY",
    "MAX_WORKERS",
    "Bound",
    "check_value",
]

MAX_LR = 1e4
"""Largest learning rate accepted (``max_lr``, ``min_lr``, a range test's ends)."""
MAX_WEIGHT_DECAY = 10.0
"""Largest weight decay accepted."""
MAX_EPOCHS = 1e4
"""Longest run accepted, in epochs."""
MAX_BUDGET = 1e6
"""Largest tune budget, in epochs."""
MAX_DIV = 1e6
"""Largest ``div`` (max LR / min LR)."""
MAX_STEPS = 10**7
"""Most steps (or evaluations apart) accepted by any step count."""
MAX_BATCH_SIZE = 2**24
"""Largest batch size accepted."""
MAX_WORKERS = 1024
"""Most worker processes accepted (and most CPUs or GPUs one trial may ask Ray for)."""
MAX_SEED = 2**63 - 1
"""Largest seed accepted (torch's generators take 64-bit seeds)."""


@dataclass(frozen=True)
class Bound:
    """A range of numbers: ``[low, high]``, either end exclusive when ``low_open`` /
    ``high_open``; ``integer`` asks for a whole number. Booleans and non-finite values are
    never in it."""

    low: float
    high: float
    low_open: bool = False
    high_open: bool = False
    integer: bool = False

    @property
    def interval(self) -> str:
        """The range as written in ``--help``: ``(0, 10000]``."""
        low = f"{self.low}" if self.integer else f"{self.low:g}"
        high = f"{self.high}" if self.integer else f"{self.high:g}"
        return f"{'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"

    def describe(self) -> str:
        """What a value must be: ``in (0, 10000]``, ``an integer in [1, 16777216]``."""
        return f"an integer in {self.interval}" if self.integer else f"in {self.interval}"

    def holds(self, value: Any) -> bool:
        """Whether ``value`` is a number (not a bool) in the range."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.integer and int(value) != value:
            return False
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def check(self, name: str, value: Any) -> Any:
        """``value`` if it is in the range, else `UsageError` naming ``name``, the range and
        the value received (a whole float is returned as an int for an integer bound)."""
        if not self.holds(value):
            raise UsageError(f"{name} must be {self.describe()}, got {value!r}")
        return int(value) if self.integer else value


_LR = Bound(0, MAX_LR, low_open=True)
_FRACTION = Bound(0, 1, high_open=True)

BOUNDS: dict[str, Bound] = {
    "max_lr": _LR,
    "min_lr": _LR,
    "start_lr": _LR,
    "end_lr": _LR,
    "div": Bound(1, MAX_DIV, low_open=True),
    "max_momentum": _FRACTION,
    "min_momentum": _FRACTION,
    "weight_decay": Bound(0, MAX_WEIGHT_DECAY),
    "dropout": _FRACTION,
    "annihilation": Bound(0, 1, low_open=True, high_open=True),
    "batch_size": Bound(1, MAX_BATCH_SIZE, integer=True),
    "epochs": Bound(0, MAX_EPOCHS, low_open=True),
    "budget": Bound(0, MAX_BUDGET, low_open=True),
    "seed": Bound(0, MAX_SEED, integer=True),
    "steps": Bound(1, MAX_STEPS, integer=True),
    "workers": Bound(1, MAX_WORKERS, integer=True),
}
"""Each checked name and its range: the ranges ``--help`` states."""


def check_value(name: str, value: Any, *, label: str | None = None) -> Any:
    """``value`` checked against ``BOUNDS[name]`` (`Bound.check`); the error names ``label``
    (default ``name``), e.g. ``"--hparams run/hparams.json: epochs"``."""
    return BOUNDS[name].check(label or name, value)
