"""`TuneConfig`: the recipe's settings in one record, passed instead of a long argument list."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from disciplined.errors import UsageError
from disciplined.trials.bounds import check_value
from disciplined.trials.hparams import OPTIMIZERS

__all__ = ["TuneConfig"]


@dataclass(frozen=True)
class TuneConfig:
    """How the recipe runs on a task: what it may spend and what it may change.

    ``epochs`` is the final 1cycle run's length and ``budget`` (epochs of the task; None
    is `recipe.plan.BUDGET_FACTOR` x ``epochs``) caps all compute. ``range_steps`` is each
    range test's length (fewer when the budget requires, never under
    `recipe.plan.MIN_RANGE_STEPS`). ``compare_batch_sizes`` is ``"epochs"`` (each candidate
    of ``batch_sizes``, by default the task's batch size, half and a quarter of it, trains
    ``epochs``), ``"time"`` (short runs of equal wall-clock time) or ``"off"``;
    ``memory_limit`` caps the batch size (bytes or a size such as ``"4GB"``). ``correct``
    allows the corrective round after an over- or underfitting verdict; ``tune_dropout``
    adds a dropout sweep on a task whose model takes dropout. ``search`` is how full runs
    settle what the range tests read: ``"race"`` (successive halving over the batch
    candidates, a bracket of max LRs around each one's reading and the weight decay's two
    best values, `search.race`) or ``"bracket"`` (the batch comparison, full runs at a third
    and three times the final max LR, and a corrective run after the diagnosis). ``device``
    (``"auto"``: CUDA when there is one) and ``amp`` (``"bf16"`` / ``"fp16"``, CUDA only)
    say where every trial runs. ``epochs``, ``budget``, ``seed``, ``optimizer`` and
    ``batch_sizes`` are checked here against the ranges ``--help`` states
    (`trials.bounds.BOUNDS`), the rest when the plan is made (`recipe.plan.make_plan`):
    either way a `UsageError` before anything runs or is written.
    """

    epochs: float = 20.0
    budget: float | None = None
    optimizer: str = "sgd"
    seed: int = 0
    device: str = "auto"
    amp: str | None = None
    range_steps: int = 300
    compare_batch_sizes: bool | str = "epochs"
    batch_sizes: tuple[int, ...] | None = None
    memory_limit: int | str | None = None
    correct: bool = True
    tune_dropout: bool = False
    search: str = "race"

    def __post_init__(self) -> None:
        check_value("epochs", self.epochs)
        if self.budget is not None:
            check_value("budget", self.budget)
        check_value("seed", self.seed)
        if self.optimizer not in OPTIMIZERS:
            raise UsageError(
                f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}"
            )
        if self.batch_sizes is not None:
            if isinstance(self.batch_sizes, str) or not self.batch_sizes:
                raise UsageError(
                    f"batch_sizes must be a non-empty sequence of integers, got "
                    f"{self.batch_sizes!r}"
                )
            for size in self.batch_sizes:
                check_value("batch_size", size, label="each of batch_sizes")

    @classmethod
    def from_settings(cls, base: TuneConfig | None = None, **settings: Any) -> TuneConfig:
        """``base`` (default: the defaults) with ``settings`` replacing its fields; an
        unknown name raises `TypeError` naming it, as a misspelt keyword argument does."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(settings) - names)
        if unknown:
            raise TypeError(f"unknown tune setting(s): {', '.join(unknown)}")
        values = asdict(base) if base is not None else {}
        values.update(settings)
        if values.get("batch_sizes") is not None:
            values["batch_sizes"] = tuple(values["batch_sizes"])
        return cls(**values)
