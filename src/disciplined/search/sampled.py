"""Random search: points drawn from the space (`sample_point`) by a seeded generator, so
that the same arguments draw the same points and a rerun resumes from its store."""

from __future__ import annotations

import random
from typing import Any

from disciplined.search.common import check_budget, check_trials, make_search
from disciplined.search.pruning import MedianStop
from disciplined.search.result import SearchResult
from disciplined.search.space import SearchSpace, sample_point
from disciplined.trials.runtime import Runtime

__all__ = ["random_search"]


def random_search(
    task: str,
    space: SearchSpace | None = None,
    n_trials: int = 20,
    epochs: float = 20.0,
    seed: int = 0,
    *,
    budget_seconds: float | None = None,
    pruning: MedianStop | None = None,
    task_options: dict[str, Any] | None = None,
    runtime: Runtime | None = None,
    **how: Any,
) -> SearchResult:
    """Train ``task`` for ``epochs`` epochs at ``n_trials`` random points of ``space``
    (`sample_point`, drawn from ``random.Random(seed)``). ``seed`` also sets every trial's
    initial weights. The same arguments draw the same points, so a rerun resumes from
    ``store``; a larger ``n_trials`` extends the same sequence. With ``budget_seconds`` it
    stops early once the trials' wall seconds reach that many (no trial starts after);
    ``pruning`` (`MedianStop`) stops trials that fall behind the median of those before.

    Where the trials run is a `trials.runtime.Runtime` (``runtime``: its ``store``, default
    in memory, ``executor``, default in process, ``runner`` and ``on_result``), or those
    fields by name (``store=``, ``executor=``, ``on_result=``), replacing the runtime's.
    """
    check_trials(n_trials)
    check_budget(budget_seconds)
    rt = Runtime.of(runtime, **how)
    s = make_search(task, space, epochs, seed, task_options, rt, pruning)
    rng = random.Random(seed)
    points = [sample_point(s.space, rng) for _ in range(n_trials)]
    trials = s.run_within(points, "random", budget_seconds)
    return s.result("random", trials)
