"""`TuneConfig`: the recipe's settings in one record, passed instead of a long argument list."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

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
    best values, `recipe.race`) or ``"bracket"`` (the batch comparison, full runs at a third
    and three times the final max LR, and a corrective run after the diagnosis). ``device``
    (``"auto"``: CUDA when there is one) and ``amp`` (``"bf16"`` / ``"fp16"``, CUDA only)
    say where every trial runs. Values are checked when the plan is made
    (`recipe.plan.make_plan`), before anything runs or is written.
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
