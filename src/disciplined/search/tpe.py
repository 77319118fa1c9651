"""TPE search: Optuna's ``TPESampler`` proposes the points. Optuna is imported only when
`tpe_search` runs (``pip install disciplined[optuna]``), never when this module is."""

from __future__ import annotations

import math
from typing import Any

from disciplined.errors import UsageError
from disciplined.search.common import check_budget, check_trials, make_search
from disciplined.search.pruning import MedianStop, epoch_metrics
from disciplined.search.result import SearchResult, trial_metric
from disciplined.search.space import SearchSpace
from disciplined.trials.runtime import Runtime
from disciplined.trials.spec import TrialResult

__all__ = ["tpe_search"]


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise UsageError(
            "tpe_search needs Optuna, which is not installed: pip install disciplined[optuna]"
        ) from None
    return optuna


def tpe_search(
    task: str,
    space: SearchSpace | None = None,
    n_trials: int = 20,
    epochs: float = 20.0,
    seed: int = 0,
    *,
    n_startup_trials: int = 10,
    batch: int = 1,
    budget_seconds: float | None = None,
    pruning: MedianStop | None = None,
    task_options: dict[str, Any] | None = None,
    runtime: Runtime | None = None,
    **how: Any,
) -> SearchResult:
    """Train ``task`` for ``epochs`` epochs at ``n_trials`` points proposed by Optuna's
    ``TPESampler(seed=seed, n_startup_trials=n_startup_trials)`` over ``space`` (LR and weight
    decay on a log scale), ``batch`` points asked at a time (set it to the number of workers
    to keep them busy). The study is rebuilt from the store on a rerun: the sampler is
    seeded and told the same results in the same order, so it proposes the same points and
    finished trials are read back, not run again. With ``budget_seconds`` no batch of
    points is asked once the trials' wall seconds reach that many. With ``pruning``
    (`MedianStop`, what Optuna's ``MedianPruner`` does) a trial stops once it falls behind
    the median of the trials finished before its batch was asked; Optuna is told its
    per-epoch metrics and that it was pruned.

    Where the trials run is a `trials.runtime.Runtime` (``runtime``: its ``store``, default
    in memory, ``executor``, default in process, ``runner`` and ``on_result``), or those
    fields by name (``store=``, ``executor=``, ``on_result=``), replacing the runtime's.

    Raises `UsageError` when Optuna is not installed (``pip install disciplined[optuna]``).
    """
    check_trials(n_trials)
    if not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be an integer >= 1, got {batch!r}")
    check_budget(budget_seconds)
    optuna = _optuna()
    rt = Runtime.of(runtime, **how)
    s = make_search(task, space, epochs, seed, task_options, rt, pruning)
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=n_startup_trials)
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(
            direction="maximize" if s.higher_is_better else "minimize", sampler=sampler
        )
        trials: list[TrialResult] = []
        limit = math.inf if budget_seconds is None else budget_seconds
        while len(trials) < n_trials and sum(r.seconds for r in trials) < limit:
            asked = [study.ask() for _ in range(min(batch, n_trials - len(trials)))]
            points = [
                {
                    "schedule": t.suggest_categorical("schedule", list(s.space.schedules)),
                    "max_lr": t.suggest_float("max_lr", *s.space.lr, log=True),
                    "weight_decay": t.suggest_float(
                        "weight_decay", *s.space.weight_decay, log=True
                    ),
                    "momentum": t.suggest_float("momentum", *s.space.momentum),
                    "batch_size": (
                        t.suggest_categorical("batch_size", list(s.space.batch_sizes))
                        if s.space.batch_sizes
                        else s.batch_size
                    ),
                }
                for t in asked
            ]
            results = s.run([s.spec(p, "tpe", trials) for p in points])
            for t, r in zip(asked, results, strict=True):
                _tell(study, t, r, optuna.trial.TrialState)
            trials.extend(results)
    finally:
        optuna.logging.set_verbosity(verbosity)
    return s.result("tpe", trials, n_startup_trials=n_startup_trials, batch=batch)


def _tell(study: Any, trial: Any, result: TrialResult, states: Any) -> None:
    """Tell Optuna a trial's outcome: its metric; or, pruned, its metric after each whole
    epoch and the state PRUNED (the sampler reads pruned trials by how far they got); or
    FAIL."""
    if result.status == "pruned" and result.history is not None:
        for epoch, metric in epoch_metrics(result.history).items():
            trial.report(metric, epoch)
        study.tell(trial, state=states.PRUNED)
        return
    m = trial_metric(result)
    if math.isfinite(m):
        study.tell(trial, m)
    else:
        study.tell(trial, state=states.FAIL)
