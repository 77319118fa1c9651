"""`RecipeState`: a tune in progress, handed from one step of the plan to the next."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from disciplined.measure.diagnose import Diagnosis
from disciplined.recipe.config import TuneConfig
from disciplined.recipe.plan import Plan
from disciplined.studies import StudyContext
from disciplined.studies.context import compute_spent
from disciplined.studies.decide import Decision
from disciplined.tasks import Task
from disciplined.training.fit import History
from disciplined.trials.hparams import HParams
from disciplined.trials.spec import TrialResult

__all__ = ["RecipeState"]


@dataclass
class RecipeState:
    """What the recipe's steps read and write as they run, in place of a long argument list:
    the study context, the task, the plan and settings, the hyper-parameters chosen so far,
    each step's `Decision`, the compute per step, the batch-size decision, the final run's
    length (with the sentence saying why), its `History` and its diagnosis."""

    ctx: StudyContext
    task: Task
    plan: Plan
    config: TuneConfig
    say: Callable[[str], None]
    hp: HParams
    decisions: list[Decision] = field(default_factory=list)
    compute: dict[str, dict[str, float]] = field(default_factory=dict)
    batch: Decision | None = None
    final_epochs: float = 0.0
    final_why: str = ""
    history: History | None = None
    verdict: Diagnosis | None = None

    def spent(self) -> float:
        """Epochs spent so far, all steps together."""
        return sum(c["epochs"] for c in self.compute.values())

    def left(self) -> float:
        """Epochs of the budget not yet spent."""
        return self.plan.budget - self.spent()

    def record(self, step: str, d: Decision) -> Decision:
        """Keep ``d`` as the decision of ``step`` with its compute, and say what it chose."""
        self.decisions.append(d)
        self.compute[step] = {
            "epochs": d.compute.get("epochs", 0.0),
            "seconds": d.compute.get("seconds", 0.0),
        }
        self.say(f"{step}: {d.name} = {d.value:g} ({d.rule})")
        return d

    def fresh_cost(self, results: Sequence[TrialResult]) -> dict[str, float]:
        """What ``results`` cost that no step has counted yet: each trial counts once per
        tune (`studies.context.compute_spent`), so a run an earlier step made and this one
        reads back from the store (a correction the bracket already ran) costs nothing."""
        return compute_spent(self.ctx, results)

    def add_compute(self, step: str, epochs: float, seconds: float) -> None:
        """Add a run's cost to ``step``'s compute."""
        cost = self.compute.setdefault(step, {"epochs": 0.0, "seconds": 0.0})
        cost["epochs"] += epochs
        cost["seconds"] += seconds
