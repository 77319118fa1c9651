"""Grid search: every point of the space's grid, in the grid's order or a shuffled one."""

from __future__ import annotations

import itertools
import random
from typing import Any

from disciplined.search.common import check_budget, check_trials, make_search
from disciplined.search.pruning import MedianStop
from disciplined.search.result import SearchResult
from disciplined.search.space import SearchSpace
from disciplined.trials.runtime import Runtime

__all__ = ["grid_search"]


def grid_search(
    task: str,
    space: SearchSpace | None = None,
    epochs: float = 20.0,
    *,
    order_seed: int | None = None,
    max_trials: int | None = None,
    budget_seconds: float | None = None,
    pruning: MedianStop | None = None,
    seed: int = 0,
    task_options: dict[str, Any] | None = None,
    runtime: Runtime | None = None,
    **how: Any,
) -> SearchResult:
    """Train ``task`` for ``epochs`` epochs at every point of the grid: schedules x
    ``lr_grid`` x ``weight_decay_grid`` x ``momentum_grid`` of ``space``.

    The points run in the grid's order, or, with ``order_seed``, in a random order drawn
    from it, so that the best after any part of the budget is the best of a random subset of
    the grid rather than of its first rows. ``max_trials`` runs only the first points of that
    order; ``budget_seconds`` stops it once the trials' wall seconds reach that many (no
    trial starts after, so the last may overshoot); ``pruning`` (`MedianStop`) stops trials
    that fall behind the median of those before them. Every trial is trained from the
    initial weights of ``seed``. ``task`` is a
    reference (a built-in name or ``file.py:function``) so worker processes can rebuild it.

    Where the trials run is a `trials.runtime.Runtime` (``runtime``: its ``store``, default
    in memory, ``executor``, default in process, ``runner`` and ``on_result``), or those
    fields by name (``store=``, ``executor=``, ``on_result=``), replacing the runtime's.
    """
    check_budget(budget_seconds)
    rt = Runtime.of(runtime, **how)
    s = make_search(task, space, epochs, seed, task_options, rt, pruning)
    points = [
        {"schedule": sch, "max_lr": lr, "weight_decay": wd, "momentum": m, "batch_size": b}
        for sch, lr, wd, m, b in itertools.product(
            s.space.schedules,
            s.space.lr_grid,
            s.space.weight_decay_grid,
            s.space.momentum_grid,
            s.space.batch_sizes or (s.batch_size,),
        )
    ]
    if order_seed is not None:
        random.Random(order_seed).shuffle(points)
    if max_trials is not None:
        check_trials(max_trials)
        points = points[:max_trials]
    trials = s.run_within(points, "grid", budget_seconds)
    return s.result("grid", trials, order_seed=order_seed, grid_size=s.space.grid_size)
