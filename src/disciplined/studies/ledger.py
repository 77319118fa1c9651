"""The compute ledger: what a `StudyContext` spent, each trial charged once, to the step
that ran it.

A step is opened with ``with ctx.step("name"):``; every trial whose result comes back
through ``ctx.run`` while it is open is charged to it (the innermost step when steps nest),
unless a step already paid for that key: a run read back from the store that an earlier step
made costs nothing the second time. A result read back from the store that no step of this
context has paid for yet (a resumed tune) is charged like a fresh one, so a resumed tune
reports what the whole tune cost. Trials run with no step open are charged to `OUTSIDE`.

The ledger is the one account of compute: the recipe's budget (`RecipeState.spent` and
``left``) and the compute per step in ``tune.json`` read it, and a study's `Decision` keeps
what its own call charged (`Ledger.mark` / `Ledger.since`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Protocol

__all__ = ["OUTSIDE", "Charge", "Ledger"]

OUTSIDE = "outside_steps"
"""The step a trial is charged to when it ran with no step open (a study called on its own,
as the ``sweep`` command and the Lightning adapter do)."""


class _Costed(Protocol):
    """What the ledger reads off a trial result: its key, epochs and seconds."""

    @property
    def key(self) -> str: ...

    @property
    def epochs(self) -> float: ...

    @property
    def seconds(self) -> float: ...


@dataclass(frozen=True)
class Charge:
    """One charge: the trial's key (or another run's: a weight-decay snapshot), the step
    that paid, its epochs of the task and seconds, and whether it is a trial of the store
    (what a decision's ``trials`` count counts)."""

    key: str
    step: str
    epochs: float
    seconds: float
    trial: bool = True


@dataclass
class Ledger:
    """Every charge of a context, once per key, in the order they were made, and the steps
    in the order they were first opened (a step that charged nothing is listed at zero)."""

    charges: dict[str, Charge] = field(default_factory=dict)
    steps: list[str] = field(default_factory=list)
    _open: list[str] = field(default_factory=list, repr=False)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Charge what runs inside the block to ``name``."""
        if name not in self.steps:
            self.steps.append(name)
        self._open.append(name)
        try:
            yield
        finally:
            self._open.pop()

    @property
    def current(self) -> str:
        """The step charges go to now: the innermost open one, else `OUTSIDE`."""
        return self._open[-1] if self._open else OUTSIDE

    def charge(self, key: str, epochs: float, seconds: float, *, trial: bool = True) -> bool:
        """Charge ``key`` to the current step unless a step already paid for it; whether
        it was charged now."""
        if key in self.charges:
            return False
        step = self.current
        if step not in self.steps:
            self.steps.append(step)
        self.charges[key] = Charge(key, step, epochs, seconds, trial)
        return True

    def charge_results(self, results: Iterable[_Costed]) -> None:
        """Charge each trial result by its key (`charge`)."""
        for r in results:
            self.charge(r.key, r.epochs, r.seconds)

    def claim(self, key: str) -> None:
        """Move ``key``'s charge to the current step, still counted once: the batch-size
        comparison's run of the winner is the final run, and is shown as the final run's
        cost. Only a key this context charged can be claimed."""
        old = self.charges.get(key)
        if old is None:
            raise KeyError(f"trial {key} was never run through this context")
        step = self.current
        if step not in self.steps:
            self.steps.append(step)
        self.charges[key] = replace(old, step=step)

    def mark(self) -> int:
        """A place in the ledger; `since` sums what was charged after it."""
        return len(self.charges)

    def since(self, mark: int) -> dict[str, float]:
        """What was charged after ``mark``: epochs, seconds and the number of trials (the
        compute a study's `Decision` keeps for its own call)."""
        new = list(self.charges.values())[mark:]
        return {
            "epochs": sum(c.epochs for c in new),
            "seconds": sum(c.seconds for c in new),
            "trials": sum(1 for c in new if c.trial),
        }

    def cost(self, step: str) -> dict[str, float]:
        """What ``step`` paid for: epochs and seconds (zero for a step that charged
        nothing)."""
        epochs = seconds = 0.0
        for c in self.charges.values():
            if c.step == step:
                epochs += c.epochs
                seconds += c.seconds
        return {"epochs": epochs, "seconds": seconds}

    def by_step(self) -> dict[str, dict[str, float]]:
        """Epochs and seconds per step, in the order the steps were first opened."""
        return {s: self.cost(s) for s in self.steps}

    def total(self) -> dict[str, float]:
        """Epochs and seconds of every charge, all steps together."""
        per = self.by_step().values()
        return {"epochs": sum(c["epochs"] for c in per), "seconds": sum(c["seconds"] for c in per)}
