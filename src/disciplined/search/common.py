"""What every search shares: the task, where its trials run, and how a point of the space
becomes a `TrialSpec` (`Search`); the checks of the arguments the searches have in common.

Each trial is a `TrialSpec` of kind ``train`` run by an `Executor` into a `TrialStore`, so a
search that is interrupted resumes from its store without running a finished trial again, and
trials can run in worker processes. Where they run and who watches them is a
`trials.runtime.Runtime` (its ``store``, ``executor``, ``runner`` and ``on_result``): each
search takes one as ``runtime=``, or those fields as keywords (`Runtime.of`). Given
``budget_seconds``, a search stops once its trials' wall seconds reach it (no trial starts
after; the last may overshoot).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from disciplined.search.pruning import MedianStop
from disciplined.search.result import SearchResult
from disciplined.search.space import SearchSpace, hparams_for
from disciplined.tasks import load_task
from disciplined.trials.executors import Executor, InProcessExecutor, OnResult, Runner
from disciplined.trials.runtime import Runtime
from disciplined.trials.spec import TrialResult, TrialSpec
from disciplined.trials.store import MemoryStore, TrialStore

__all__ = ["OnResult", "Runner", "Search", "check_budget", "check_trials", "make_search"]


@dataclass
class Search:
    """What every search shares: the task, where trials run, and how a point becomes a spec."""

    task: str
    space: SearchSpace
    epochs: float
    seed: int
    task_options: dict[str, Any]
    store: TrialStore
    executor: Executor
    runner: Runner
    on_result: OnResult | None
    pruning: MedianStop | None = None
    batch_size: int = 0
    metric_name: str = "metric"
    higher_is_better: bool = True

    def __post_init__(self) -> None:
        if not (self.epochs > 0 and math.isfinite(self.epochs)):
            raise ValueError(f"epochs must be > 0, got {self.epochs!r}")
        task = load_task(self.task, self.task_options)
        self.batch_size = self.space.batch_size or task.default_batch_size
        self.metric_name = task.metric_name
        self.higher_is_better = task.higher_is_better

    def spec(
        self, point: dict[str, Any], method: str, finished: Sequence[TrialResult] = ()
    ) -> TrialSpec:
        hp = hparams_for(
            point["schedule"],
            point["max_lr"],
            point["momentum"],
            point["weight_decay"],
            int(point.get("batch_size", self.batch_size)),
            self.space.optimizer,
        )
        budget: dict[str, Any] = {"epochs": self.epochs}
        bounds = self.pruning.bounds(finished, self.epochs) if self.pruning else None
        if bounds is not None:
            budget["prune"] = {"bounds": bounds}
        return TrialSpec(
            task=self.task,
            hparams=hp.to_dict(),
            kind="train",
            budget=budget,
            seed=self.seed,
            task_options=dict(self.task_options),
            tag=f"baseline-{method}",
        )

    def run(self, specs: Sequence[TrialSpec]) -> list[TrialResult]:
        self.store.bind({"task": self.task, "task_options": self.task_options})
        return self.executor.run(specs, self.store, runner=self.runner, on_result=self.on_result)

    def run_within(
        self, points: Sequence[dict[str, Any]], method: str, budget_seconds: float | None
    ) -> list[TrialResult]:
        """The points' trials: all at once, or, with a budget or pruning, one at a time in
        order (each pruned by the trials before it) until the trials' wall seconds reach
        ``budget_seconds``: no trial starts once it is spent."""
        if budget_seconds is None and self.pruning is None:
            return self.run([self.spec(p, method) for p in points])
        limit = math.inf if budget_seconds is None else budget_seconds
        done: list[TrialResult] = []
        for point in points:
            if sum(r.seconds for r in done) >= limit:
                break
            done.extend(self.run([self.spec(point, method, done)]))
        return done

    def result(self, method: str, trials: Sequence[TrialResult], **meta: Any) -> SearchResult:
        return SearchResult(
            method=method,
            task=self.task,
            epochs_per_trial=self.epochs,
            trials=tuple(trials),
            metric_name=self.metric_name,
            higher_is_better=self.higher_is_better,
            meta={"seed": self.seed, "batch_size": self.batch_size, **meta},
        )


def make_search(
    task: str,
    space: SearchSpace | None,
    epochs: float,
    seed: int,
    task_options: dict[str, Any] | None,
    runtime: Runtime,
    pruning: MedianStop | None = None,
) -> Search:
    """The `Search` of ``task`` over ``space`` (the default `SearchSpace` when None), its
    trials run by the runtime's ``executor`` (in process when None) into its ``store`` (in
    memory when None), through its ``runner``, each reported to its ``on_result``;
    ``pruning`` must be a `MedianStop` or None (`ValueError`)."""
    if pruning is not None and not isinstance(pruning, MedianStop):
        raise ValueError(f"pruning must be a MedianStop or None, got {pruning!r}")
    store = runtime.store
    return Search(
        task=task,
        space=space or SearchSpace(),
        epochs=float(epochs),
        seed=seed,
        task_options=dict(task_options or {}),
        store=store if store is not None else MemoryStore(),  # type: ignore[arg-type]
        executor=runtime.executor or InProcessExecutor(),
        runner=runtime.runner,
        on_result=runtime.on_result,
        pruning=pruning,
    )


def check_trials(n_trials: int) -> None:
    """`ValueError` unless ``n_trials`` is an integer >= 1."""
    if not isinstance(n_trials, int) or n_trials < 1:
        raise ValueError(f"n_trials must be an integer >= 1, got {n_trials!r}")


def check_budget(budget_seconds: float | None) -> None:
    """`ValueError` unless ``budget_seconds`` is None or a finite number > 0."""
    if budget_seconds is not None and not (
        isinstance(budget_seconds, int | float) and 0 < budget_seconds < math.inf
    ):
        raise ValueError(f"budget_seconds must be > 0 and finite or None, got {budget_seconds!r}")
