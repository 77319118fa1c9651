"""`tune`: the recipe run and its result written, the one public call that does both.

The recipe (`recipe.run.run_recipe`) computes and returns a record; `report.save` writes
it. This module sits below both in the layer order (beside the command line), so neither
reaches up to the other.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from disciplined.outdir import guard_out
from disciplined.recipe.config import TuneConfig
from disciplined.recipe.plan import BUDGET_FACTOR, RACE_BUDGET_FACTOR
from disciplined.recipe.run import TuneResult, run_recipe
from disciplined.report.save import save
from disciplined.tasks import Task
from disciplined.trials.executors import Executor
from disciplined.trials.spec import TrialResult, TrialSpec, run_trial
from disciplined.trials.store import TrialStore

__all__ = ["tune", "tune_owner"]


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
    progress: Callable[[str], None] | bool | None = True,
    on_result: Callable[[TrialResult, bool], None] | None = None,
    command: str | None = None,
    force: bool = False,
    **settings: Any,
) -> TuneResult:
    """Run the recipe on ``task`` and train with what it chose; write the result into ``out``.

    The recipe's settings come as a `TuneConfig` (``config``) or as its fields by name
    (``epochs=20``, ``budget=``, ``seed=``, ``device=``, ``compare_batch_sizes=``, ...;
    given both, the names replace the config's fields). ``epochs`` is the final run's
    length; ``budget`` (epochs of the task; default 8 x ``epochs`` with the race,
    `recipe.plan.RACE_BUDGET_FACTOR`) caps all compute.
    Writes ``hparams.json``, ``tune.json``, ``history.json``, ``curves.png`` and
    ``report.html`` into ``out`` (`report.save`) and keeps the trials in ``store`` (default
    ``out/trials.sqlite``), from which a rerun resumes. ``task`` is a reference (a built-in
    name or ``file.py:function``) so worker processes can rebuild it; a `Task` object works
    with the in-process executor. `recipe.run.run_recipe` is the same without the files.

    Progress goes to stderr by default (``progress=True``), as the command line shows it
    (`cli.common.TuneProgress`): the recipe's messages, a line per finished trial, and an
    overall line (trials done, epochs spent of the budget, time elapsed and left), one
    updating bar on a terminal and a plain line every 30 s elsewhere. ``progress=False``
    (or None) silences it; a callable receives the recipe's messages instead, and then
    nothing is printed. ``on_result(result, cached)`` is called for each finished trial
    either way.

    The output folder is guarded as the command line guards it (`outdir.guard_out`): a
    folder another command or task wrote, or one holding files of the names ``tune``
    writes that it did not write, is refused (`UsageError`) unless ``force``; while the
    tune runs the folder is locked, so a second tune into it (another process, or another
    thread of this one) is refused naming the holder. A tune refused before it wrote
    anything leaves no trace in ``out``.
    """
    cfg = TuneConfig.from_settings(config, **settings)
    with guard_out(out, tune_owner(task, task_options), force=force) as folder:
        return _run_and_save(
            task,
            cfg,
            folder,
            progress,
            on_result,
            store=store,
            workers=workers,
            executor=executor,
            task_options=task_options,
            runner=runner,
            command=command,
        )


def tune_owner(task: str | Task, task_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Who writes a tune's output folder (its `outdir.MARKER`): ``tune`` on the task's
    reference (a `Task` object's name) and options, as ``disciplined tune`` writes it."""
    ref = task.name if isinstance(task, Task) else task
    return {"command": "tune", "task": ref, "task_options": dict(task_options or {})}


def _run_and_save(
    task: str | Task,
    cfg: TuneConfig,
    out: Path,
    progress: Callable[[str], None] | bool | None,
    on_result: Callable[[TrialResult, bool], None] | None,
    **recipe: Any,
) -> TuneResult:
    """`tune` inside its guarded folder: the recipe (``recipe``: `run_recipe`'s other
    arguments) with its progress shown, then its files."""
    from disciplined.cli.common import TuneProgress  # beside this module: the CLI's own

    shown = TuneProgress(_planned_budget(cfg)) if progress is True else None
    say = shown.say if shown is not None else (progress or None)

    def each(result: TrialResult, cached: bool) -> None:
        if shown is not None:
            shown.on_result(result, cached)
        if on_result is not None:
            on_result(result, cached)

    try:
        result = run_recipe(
            task,
            cfg,
            out=out,
            progress=say if callable(say) else None,
            on_result=each if shown is not None or on_result is not None else None,
            **recipe,
        )
    finally:
        if shown is not None:
            shown.close()
    save(result, out)
    return result


def _planned_budget(config: TuneConfig) -> float:
    """The budget in epochs before the plan is made: the one given, else the default's
    multiple of the final run (the plan may raise it and says so; the progress line
    follows)."""
    if config.budget is not None:
        return float(config.budget)
    factor = RACE_BUDGET_FACTOR if config.search == "race" else BUDGET_FACTOR
    return factor * config.epochs
