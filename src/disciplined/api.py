"""`tune`: the recipe run and its result written, the one public call that does both.

The recipe (`recipe.run.run_recipe`) computes and returns a record; `report.save` writes
it. This module sits below both in the layer order (beside the command line), so neither
reaches up to the other.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from disciplined.recipe.config import TuneConfig
from disciplined.recipe.run import TuneResult, run_recipe
from disciplined.report.save import save
from disciplined.tasks import Task
from disciplined.trials.executors import Executor
from disciplined.trials.spec import TrialResult, TrialSpec, run_trial
from disciplined.trials.store import TrialStore

__all__ = ["tune"]


def tune(
    task: str | Task,
    config: TuneConfig | None = None,
    *,
    out: str | Path = "runs/tune",
    store: TrialStore | str | None = None,
    workers: int = 1,
    executor: Executor | None = None,
    task_options: dict[str, Any] | None = None,
    runner: Callable[[TrialSpec], TrialResult] = run_trial,
    progress: Callable[[str], None] | None = None,
    on_result: Callable[[TrialResult, bool], None] | None = None,
    command: str | None = None,
    **settings: Any,
) -> TuneResult:
    """Run the recipe on ``task`` and train with what it chose; write the result into ``out``.

    The recipe's settings come as a `TuneConfig` (``config``) or as its fields by name
    (``epochs=20``, ``budget=``, ``seed=``, ``device=``, ``compare_batch_sizes=``, ...;
    given both, the names replace the config's fields). ``epochs`` is the final run's
    length; ``budget`` (epochs of the task, default 12 x ``epochs``) caps all compute.
    Writes ``hparams.json``, ``tune.json``, ``history.json``, ``curves.png`` and
    ``report.html`` into ``out`` (`report.save`) and keeps the trials in ``store`` (default
    ``out/trials.sqlite``), from which a rerun resumes. ``task`` is a reference (a built-in
    name or ``file.py:function``) so worker processes can rebuild it; a `Task` object works
    with the in-process executor. `recipe.run.run_recipe` is the same without the files.
    """
    result = run_recipe(
        task,
        TuneConfig.from_settings(config, **settings),
        out=out,
        store=store,
        workers=workers,
        executor=executor,
        task_options=task_options,
        runner=runner,
        progress=progress,
        on_result=on_result,
        command=command,
    )
    save(result, out)
    return result
