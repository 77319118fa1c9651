"""`RecipeState`: a tune in progress, handed from one step of the plan to the next."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from disciplined.measure.diagnose import Diagnosis
from disciplined.recipe.config import TuneConfig
from disciplined.recipe.plan import Plan
from disciplined.studies import MemoryFit, StudyContext
from disciplined.studies.decide import Decision
from disciplined.tasks import Task
from disciplined.training.fit import History
from disciplined.trials.hparams import HParams

__all__ = ["RecipeState"]


@dataclass
class RecipeState:
    """What the recipe's steps read and write as they run, in place of a long argument list:
    the study context (whose `studies.ledger.Ledger` holds the compute per step), the task,
    the plan and settings, the hyper-parameters chosen so far, each step's `Decision`, the
    batch-size decision, the final run's length (with the sentence saying why), its
    `History` and its diagnosis, and the memory probe's answer (``memory``, once the
    memory step ran)."""

    ctx: StudyContext
    task: Task
    plan: Plan
    config: TuneConfig
    say: Callable[[str], None]
    hp: HParams
    decisions: list[Decision] = field(default_factory=list)
    batch: Decision | None = None
    final_epochs: float = 0.0
    final_why: str = ""
    history: History | None = None
    verdict: Diagnosis | None = None
    memory: MemoryFit | None = None

    @property
    def compute(self) -> dict[str, dict[str, float]]:
        """Epochs and seconds per step so far, read off the context's ledger."""
        return self.ctx.ledger.by_step()

    def spent(self) -> float:
        """Epochs spent so far, all steps together (the ledger's total)."""
        return self.ctx.ledger.total()["epochs"]

    def left(self) -> float:
        """Epochs of the budget not yet spent."""
        return self.plan.budget - self.spent()

    def record(self, step: str, d: Decision) -> Decision:
        """Keep ``d`` as the decision of ``step`` and say what it chose (its compute is
        the ledger's, charged while the step ran)."""
        self.decisions.append(d)
        self.say(f"{step}: {d.name} = {d.value:g} ({d.rule})")
        return d
