"""`tune`: the recipe run and its result written, the one public call that does both.

The recipe (`recipe.run.run_recipe`) computes and returns a record; `report.save` writes
it. This module sits below both in the layer order (beside the command line), so neither
reaches up to the other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from disciplined.errors import UsageError
from disciplined.integrations.trackers import LogTarget, TrialLogger
from disciplined.outdir import guard_out
from disciplined.recipe.config import TuneConfig
from disciplined.recipe.plan import BUDGET_FACTOR, RACE_BUDGET_FACTOR
from disciplined.recipe.run import TuneResult, run_recipe
from disciplined.report.save import save
from disciplined.tasks import Task, load_task
from disciplined.trials.executor_base import check_threads, thread_choice
from disciplined.trials.executors import Executor, InProcessExecutor
from disciplined.trials.factory import make_executor
from disciplined.trials.runtime import Runtime
from disciplined.trials.spec import TrialResult
from disciplined.trials.store import TrialStore

__all__ = ["tune", "tune_owner"]


def tune(
    task: str | Task,
    config: TuneConfig | None = None,
    *,
    runtime: Runtime | None = None,
    out: str | Path = "runs/tune",
    store: TrialStore | str | None = None,
    workers: int = 1,
    executor: Executor | None = None,
    task_options: dict[str, Any] | None = None,
    progress: Callable[[str], None] | bool | None = True,
    on_result: Callable[[TrialResult, bool], None] | None = None,
    command: str | None = None,
    force: bool = False,
    threads: int | None = None,
    log_to: str | LogTarget | Iterable[str | LogTarget] | TrialLogger | None = None,
    **settings: Any,
) -> TuneResult:
    """Run the recipe on ``task`` and train with what it chose; write the result into ``out``.

    The recipe's settings come as a `TuneConfig` (``config``) or as its fields by name
    (``epochs=20``, ``budget=``, ``seed=``, ``device=``, ``compare_batch_sizes=``, ...;
    given both, the names replace the config's fields). ``epochs`` is the final run's
    length; ``budget`` (epochs of the task; default 8 x ``epochs`` with the race,
    `recipe.plan.RACE_BUDGET_FACTOR`) caps all compute. How it runs (``out`` to ``log_to``
    below) comes as a `trials.runtime.Runtime` (``runtime``) or as those keywords; a keyword
    given beside a runtime, away from its default, replaces the runtime's field.
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

    ``threads`` is torch's CPU thread count for each trial (in this process, or in each
    worker with ``workers``); by default trials in this process take the cores free now
    (the load average deducted) and no more than the model's size pays for
    (`trials.executor_base.choose_threads`: the built-in tasks get one), and torch's count is
    restored afterwards. The choice is recorded in ``tune.json`` (``meta["threads"]``) and the
    report. With ``executor`` given, its own threads hold and ``threads`` must be None.

    ``log_to`` writes each finished trial's curves and hyper-parameters to TensorBoard or
    MLflow as the trial is stored: ``"tensorboard:DIR"``, ``"mlflow:URI"``, several of them,
    or a `integrations.trackers.TrialLogger` (extra ``disciplined[logging]``; a missing
    package is a `UsageError` before anything runs). A trial logged before is not logged
    again, so a resumed tune logs what it has not.

    The output folder is guarded as the command line guards it (`outdir.guard_out`): a
    folder another command or task wrote, or one holding files of the names ``tune``
    writes that it did not write, is refused (`UsageError`) unless ``force``; while the
    tune runs the folder is locked, so a second tune into it (another process, or another
    thread of this one) is refused naming the holder. A tune refused before it wrote
    anything leaves no trace in ``out``.
    """
    given = {"out": out, "store": store, "workers": workers, "executor": executor}
    given |= {"progress": progress, "on_result": on_result, "command": command}
    given |= {"force": force, "threads": threads, "log_to": log_to}
    if "runner" in settings:  # the test hook, no longer in the signature (`Runtime.runner`)
        given["runner"] = settings.pop("runner")
    cfg = TuneConfig.from_settings(config, **settings)
    return _tune(task, cfg, _runtime(runtime, given), task_options)


def _tune(
    task: str | Task,
    config: TuneConfig,
    runtime: Runtime,
    task_options: dict[str, Any] | None = None,
) -> TuneResult:
    """`tune` with its settings in a `TuneConfig` and how it runs in a `Runtime`: the
    runtime's threads checked, its ``log_to`` opened, its folder guarded, then the recipe
    run and its files written."""
    rt = runtime
    _check_threads(rt.threads, rt.executor)
    if rt.log_to is not None:
        rt = replace(rt, on_result=_logging(rt.log_to, rt.on_result), log_to=None)
    with guard_out(rt.out, tune_owner(task, task_options), force=rt.force) as folder:
        return _run_and_save(task, config, replace(rt, out=folder), task_options)


def _runtime(runtime: Runtime | None, given: dict[str, Any]) -> Runtime:
    """``runtime`` (default: the defaults) with each of ``given`` that differs from
    `Runtime`'s default replacing its field."""
    default = Runtime()
    return Runtime.of(runtime, **{k: v for k, v in given.items() if v != getattr(default, k)})


def tune_owner(task: str | Task, task_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Who writes a tune's output folder (its `outdir.MARKER`): ``tune`` on the task's
    reference (a `Task` object's name) and options, as ``disciplined tune`` writes it."""
    ref = task.name if isinstance(task, Task) else task
    return {"command": "tune", "task": ref, "task_options": dict(task_options or {})}


def _run_and_save(
    task: str | Task,
    cfg: TuneConfig,
    rt: Runtime,
    task_options: dict[str, Any] | None,
) -> TuneResult:
    """`tune` inside its guarded folder ``rt.out``: the recipe with its progress shown,
    through the runtime's executor or one made here with its torch threads chosen
    (`_own_executor`), then its files."""
    from disciplined.cli.common import TuneProgress  # beside this module: the CLI's own

    own = None
    executor = rt.executor
    if executor is None:
        own = executor = _own_executor(task, task_options, rt.workers, rt.threads)
    choice = executor.thread_choice
    shown = TuneProgress(_planned_budget(cfg)) if rt.progress is True else None
    say = shown.say if shown is not None else (rt.progress or None)
    on_result = rt.on_result

    def each(result: TrialResult, cached: bool) -> None:
        if shown is not None:
            shown.on_result(result, cached)
        if on_result is not None:
            on_result(result, cached)

    if choice is not None and callable(say):
        say = _first_saying(say, f"torch threads per trial: {choice.threads} ({choice.reason})")
    try:
        result = run_recipe(
            task,
            cfg,
            runtime=replace(
                rt,
                progress=say if callable(say) else None,
                on_result=each if shown is not None or on_result is not None else None,
                executor=executor,
            ),
            task_options=task_options,
        )
    finally:
        if shown is not None:
            shown.close()
        if own is not None:
            own.close()
    if choice is not None:
        result = replace(result, meta={**result.meta, "threads": choice.to_dict()})
    save(result, rt.out)
    return result


def _check_threads(threads: int | None, executor: Executor | None) -> None:
    """Refuse (`UsageError`) ``threads`` that is not an integer >= 1, or given beside an
    ``executor`` (whose own threads hold)."""
    try:
        check_threads(threads)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if executor is not None and threads is not None:
        raise UsageError(
            f"threads={threads} applies to the executor tune makes; with executor= given, "
            "give that executor its threads"
        )


def _logging(
    log_to: str | LogTarget | Iterable[str | LogTarget] | TrialLogger,
    on_result: Callable[[TrialResult, bool], None] | None,
) -> Callable[[TrialResult, bool], None]:
    """``on_result`` with each result logged to ``log_to`` first (its targets opened now:
    a missing package is a `UsageError` before anything runs)."""
    logger = log_to if isinstance(log_to, TrialLogger) else TrialLogger(log_to)

    def each(result: TrialResult, cached: bool) -> None:
        logger(result, cached)
        if on_result is not None:
            on_result(result, cached)

    return each


def _first_saying(say: Callable[[str], None], first: str) -> Callable[[str], None]:
    """``say``, saying ``first`` before the recipe's first message (so not when the plan
    refuses the settings before anything runs)."""
    pending = [first]

    def said(message: str) -> None:
        while pending:
            say(pending.pop())
        say(message)

    return said


def _own_executor(
    task: str | Task,
    task_options: dict[str, Any] | None,
    workers: int,
    threads: int | None,
) -> Executor:
    """The executor `tune` makes when given none: worker processes for ``workers > 1``
    (``threads`` each, by default the cores over the workers), else this process with
    ``threads`` torch threads, by default `thread_choice`'s (the free cores, the model's
    size)."""
    if workers != 1:
        return make_executor(workers, threads)
    task_obj = task if isinstance(task, Task) else load_task(task, task_options)
    choice = thread_choice(threads, task_obj)
    return InProcessExecutor(choice.threads, reason=choice.reason)


def _planned_budget(config: TuneConfig) -> float:
    """The budget in epochs before the plan is made: the one given, else the default's
    multiple of the final run (the plan may raise it and says so; the progress line
    follows)."""
    if config.budget is not None:
        return float(config.budget)
    factor = RACE_BUDGET_FACTOR if config.search == "race" else BUDGET_FACTOR
    return factor * config.epochs
