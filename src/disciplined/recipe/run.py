"""The recipe of Smith's report (arXiv 1803.09820, section 5), end to end.

0. Memory: the largest batch whose training step fits (`studies.batch.memory_step`), a
   measured step charged to the ledger like the others; it caps the plan's batch-size
   candidates (the plan itself trains nothing) and leaves the global RNGs as they were.
1. LR range test at the task's batch size, momentum 0.9 held, no weight decay: a first max LR.
2. Weight decay: validation-mode range tests at the report's grid for this task.
3. Momentum: range tests at 0.99 / 0.97 / 0.95 / 0.9 with that weight decay.
4. Batch size: the largest that fits in memory caps the candidates: the task's batch size,
   half and a quarter of it. Each gets its own range-test max LR (momentum and weight decay
   as chosen) and the full 1cycle run of ``epochs`` epochs the recipe would make with it;
   the best validation metric wins, ties within the metric's standard error going to the
   larger batch. At the same epochs a smaller batch takes more, noisier steps; on the
   MNIST-1D CNN that was worth 4 points at 20 epochs (docs/design-notes.md). With
   ``compare_batch_sizes="time"`` the candidates get short runs of equal wall-clock time
   instead (the report's wording), and with ``"off"`` the task's batch size is kept.
5. Max LR: the chosen batch size's range test (a final range test when nothing was
   compared), with the momentum held at the cycle's minimum: the 1cycle reaches its max LR
   there, and with SGD the momentum scales every step (`studies.peak_momentum`).
6. One 1cycle run with everything chosen (at equal epochs: the winner's run of step 4,
   read back from the store); its validation curve is diagnosed.
7. A final run that diverged (blew up, or collapsed back to its starting loss) is repeated
   at a third of its max LR until one holds, at most three times; if none holds, `tune`
   raises `UsageError` and writes no ``hparams.json``. Then, if the budget allows, one
   corrective round as the diagnosis advises: over- or underfitting moves weight decay one
   grid step the advised way, and the better run by validation metric is kept.

Every trial goes through the store, so an interrupted `tune` resumes where it stopped and
recomputes nothing finished. Compute is counted in epochs of the task (range-test and
training steps alike) by the context's ledger (`studies.ledger.Ledger`: each trial charged
once, to the step that ran it) and capped by ``budget``.
"""

from __future__ import annotations

import math
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from disciplined.errors import UsageError
from disciplined.measure.diagnose import Diagnosis, blew_up, describe_run, diagnose
from disciplined.recipe.config import TuneConfig
from disciplined.recipe.final import (
    corrective_round,
    final_epochs,
    final_run,
    lr_bracket,
    retry_lower,
)
from disciplined.recipe.plan import (
    FIXED_RUNS,
    RANGE_TEST_RUNS,
    candidate_test_epochs,
    make_plan,
)
from disciplined.recipe.race import run_race
from disciplined.recipe.state import RecipeState
from disciplined.studies import (
    StudyContext,
    batch_size_search,
    learning_rate_test,
    peak_momentum,
    range_test_steps,
    starting_hparams,
)
from disciplined.studies.batch import EQUAL_EPOCHS_RULE, memory_step
from disciplined.studies.decide import Decision
from disciplined.tasks import Task, load_task
from disciplined.training.fit import History, device_and_amp
from disciplined.trials.factory import make_executor
from disciplined.trials.hparams import HParams
from disciplined.trials.runtime import Runtime
from disciplined.trials.spec import TrialResult, TrialSpec, run_trial
from disciplined.trials.store import TrialStore, open_store

__all__ = ["TuneResult", "run_recipe"]


@dataclass(frozen=True)
class TuneResult:
    """What `tune` chose and why: the hyper-parameters, each step's `Decision`, the final
    run's `History` and `Diagnosis`, compute per step (the context's ledger), the output
    folder (where its store is, and where `report.save` writes), provenance, and the trials
    read."""

    hparams: HParams
    epochs: float
    decisions: tuple[Decision, ...]
    history: History
    diagnosis: Diagnosis
    compute: dict[str, dict[str, float]]
    out: str
    meta: dict[str, Any] = field(default_factory=dict)
    trials: dict[str, TrialResult] = field(default_factory=dict, repr=False, compare=False)
    """Every trial the tune ran or read back, by store key: what its decisions' plots
    show (not written to ``tune.json``; the store keeps them)."""

    def __repr__(self) -> str:
        """One line: the choice, the final metric and verdict, the compute (the decisions,
        histories and trials are in the fields, not the repr)."""
        hp = self.hparams
        spent = sum(c.get("epochs", 0.0) for c in self.compute.values())
        seconds = sum(c.get("seconds", 0.0) for c in self.compute.values())
        return (
            f"TuneResult(max_lr={hp.max_lr:.3g}, batch_size={hp.batch_size}, "
            f"weight_decay={hp.weight_decay:g}, momentum={hp.max_momentum:g}->"
            f"{hp.min_momentum:g}, epochs={self.epochs:g}, "
            f"{self.history.metric_name}={self.final_metric:.4f}, "
            f"verdict={self.diagnosis.verdict!r}, compute={spent:.1f} epochs / {seconds:.0f} s, "
            f"decisions={len(self.decisions)}, out={self.out!r})"
        )

    @property
    def final_metric(self) -> float:
        """Validation metric at the end of the final run."""
        return self.history.final.val_metric if self.history.final else math.nan

    def hparams_json(self) -> dict[str, Any]:
        """The content of ``hparams.json``."""
        hp = self.hparams
        final = self.history.final
        return {
            "task": self.meta.get("task"),
            "max_lr": hp.max_lr,
            "min_lr": hp.min_lr,
            "max_momentum": hp.max_momentum,
            "min_momentum": hp.min_momentum,
            "weight_decay": hp.weight_decay,
            "batch_size": hp.batch_size,
            "dropout": hp.dropout,
            "epochs": self.epochs,
            "optimizer": hp.optimizer,
            "schedule": hp.schedule,
            "final": {
                "val_metric": final.val_metric if final else None,
                "val_loss": final.val_loss if final else None,
                "metric": self.history.metric_name,
                "diagnosis": self.diagnosis.verdict,
                "outcome": describe_run(self.history, self.epochs),
            },
            "compute": self.compute,
        }

    def to_dict(self) -> dict[str, Any]:
        """Everything the report needs, JSON-ready (``tune.json``)."""
        return {
            "hparams": self.hparams.to_dict(),
            "epochs": self.epochs,
            "decisions": [d.to_dict() for d in self.decisions],
            "diagnosis": self.diagnosis.to_dict(),
            "compute": self.compute,
            "out": self.out,
            "meta": self.meta,
            "summary": self.hparams_json(),
        }


def _memory(s: RecipeState) -> None:
    """The memory probe (`studies.batch.memory_step`): the largest batch that fits, kept in
    the store (a resumed tune reads it back, probing nothing), and the plan re-made with it
    so that no candidate batch size exceeds it (the same plan when memory never binds)."""
    with s.ctx.step("memory"):
        s.memory, d = memory_step(s.ctx, s.hp, memory_limit=s.config.memory_limit)
    s.record("memory", d)
    plan = make_plan(s.task, s.config, largest=s.memory.batch_size)
    dropped = sorted(set(s.plan.candidates) - set(plan.candidates))
    if dropped:
        s.say(f"memory: batch sizes {dropped} do not fit; candidates {list(plan.candidates)}")
    s.plan = plan


def _range_tests(s: RecipeState) -> None:
    """LR, weight decay (dropout when asked) and momentum from range tests at the task's
    batch size (`studies.range_test_steps`)."""
    for note in s.plan.notes:
        s.say(note)
    s.say(f"range tests of {s.plan.steps} steps; budget {s.plan.budget:g} epochs")
    s.hp = range_test_steps(
        s.ctx,
        s.hp,
        num_steps=s.plan.steps,
        seed=s.config.seed,
        dropout=s.plan.dropout,
        momentum=s.plan.mode != "race",
        record=s.record,
        max_epochs=RANGE_TEST_RUNS * s.plan.epochs if s.plan.mode == "race" else None,
    )


def _batch_size(s: RecipeState) -> None:
    """The batch size: the plan's candidates compared as it says (`batch_size_search`)."""
    plan, candidates = s.plan, list(s.plan.candidates)
    with s.ctx.step("batch_size"):
        d = batch_size_search(
            s.ctx,
            s.hp,
            compare=plan.mode if candidates else "off",
            candidates=candidates or None,
            memory_limit=s.config.memory_limit,
            epochs=s.plan.epochs,
            compare_epochs=min(5.0, s.plan.epochs / 2),
            num_steps=plan.steps,
            seed=s.config.seed,
            max_epochs=0.15 * plan.budget + candidate_test_epochs(s.task, plan.steps, candidates),
            why_off=plan.batch_note,
            memory=s.memory,
        )
    s.batch = s.record("batch_size", d)
    s.hp = s.hp.with_(batch_size=int(s.batch.value))


def _final_lr(s: RecipeState) -> None:
    """The final max LR: the chosen batch size's range test with the momentum held where
    the cycle's peak runs (`studies.peak_momentum`); at equal epochs the batch-size
    comparison already ran it, and it is read back from the store."""
    range_hp = peak_momentum(s.hp)
    compared = s.batch is not None and s.batch.rule == EQUAL_EPOCHS_RULE.name
    with s.ctx.step("final_lr"):  # read back at equal epochs: the ledger charges nothing
        lr_d = learning_rate_test(
            s.ctx,
            range_hp,
            num_steps=s.plan.steps,
            seed=s.config.seed,
            tag=f"batch{s.hp.batch_size}" if compared else "final",
            repeats=True,
        )
    if compared:
        lr_d = replace(
            lr_d, reason=lr_d.reason + " (the batch-size comparison's range test at this batch)"
        )
    s.hp = s.hp.with_(max_lr=s.record("final_lr", lr_d).value)


def _final_run(s: RecipeState) -> None:
    """One 1cycle run with everything chosen; the batch-size comparison's run of the
    winner when there was one (charged once, and shown here: `Ledger.claim`)."""
    runs = FIXED_RUNS if s.config.correct else FIXED_RUNS - 1
    s.final_epochs, s.final_why = final_epochs(
        s.task, s.batch, s.plan.epochs, s.left() / runs
    )
    s.say(f"final run: {s.final_epochs:.3g} epochs at batch {s.hp.batch_size}{s.final_why}")
    with s.ctx.step("final_run"):
        s.history, result = final_run(s.ctx, s.hp, s.final_epochs, s.config.seed, "final")
        s.ctx.ledger.claim(result.key)  # the comparison's run, when it was one, moves here
    if s.batch is not None and result.key in s.batch.trials:
        s.say("final run: the batch-size comparison's run at this batch")


def _diagnosis(s: RecipeState) -> None:
    """The final run's verdict; a diverged run is repeated lower until one holds."""
    s.verdict = diagnose(s.history)
    s.say(
        f"final run: validation {s.history.metric_name} {_metric(s.history):.4f}; "
        f"{s.verdict.verdict}"
    )
    if s.verdict.verdict == "diverged" and (s.plan.mode != "race" or blew_up(s.history)):
        # the race ran lower max LRs already; a run that never left its start did not
        # learn at any of them, and a lower LR is no cure for that
        retry_lower(s)


def _corrective_run(s: RecipeState) -> None:
    """One corrective round when the verdict is over- or underfitting and it is allowed."""
    if s.config.correct and s.verdict.verdict in ("overfitting", "underfitting"):
        corrective_round(s)


STEPS: dict[str, Callable[[RecipeState], None]] = {
    "memory": _memory,
    "range_tests": _range_tests,
    "race": run_race,
    "batch_size": _batch_size,
    "final_lr": _final_lr,
    "final_run": _final_run,
    "lr_bracket": lr_bracket,
    "diagnosis": _diagnosis,
    "corrective_run": _corrective_run,
}
"""Each name of `recipe.plan.STAGES` and the function that runs it."""


def _metric(h: History) -> float:
    return h.final.val_metric if h.final else math.nan


def run_recipe(
    task: str | Task,
    config: TuneConfig | None = None,
    *,
    runtime: Runtime | None = None,
    task_options: dict[str, Any] | None = None,
    **how: Any,
) -> TuneResult:
    """Run the recipe on ``task`` with ``config`` and return what it chose (`TuneResult`).

    How it runs comes as a `trials.runtime.Runtime` (``runtime``) or as its fields by name
    (``out=``, ``store=``, ``workers=``, ``executor=``, ``progress=``, ``on_result=``,
    ``command=``; given both, the names replace the runtime's fields; an unknown name is a
    `TypeError`). It reads the runtime's ``out``, ``store``, ``executor`` (or ``workers``
    and ``threads`` for one made and closed here), ``progress`` (called when callable),
    ``on_result`` and ``command``; ``log_to`` and ``force`` are `disciplined.tune`'s.

    Writes nothing but its trials, kept in the store (default ``out/trials.sqlite``), from
    which a rerun resumes; `report.save` writes the result's files, and `disciplined.tune`
    does both. ``task`` is a reference (a built-in name or ``file.py:function``) so worker
    processes can rebuild it; a `Task` object works with the in-process executor only.
    """
    started = time.perf_counter()
    rt = Runtime.of(runtime, **how)
    config = config or TuneConfig()
    device, amp = device_and_amp(config.device, config.amp)
    config = replace(config, device=device, amp=amp)
    task_obj, ref = _load(task, task_options, rt.workers)
    plan = make_plan(task_obj, config)  # refuses what it must before a file is written;
    # it trains nothing: the memory step re-makes it with the probe's answer
    out = Path(rt.out)
    out.mkdir(parents=True, exist_ok=True)
    store = rt.store
    own_store = not isinstance(store, TrialStore)
    store_obj = store if isinstance(store, TrialStore) else open_store(store, out)
    ctx = StudyContext(
        task=ref,
        task_options=dict(task_options or {}),
        store=store_obj,
        executor=rt.executor or make_executor(rt.workers, rt.threads),  # closed below if ours
        runner=_in_process(task_obj) if isinstance(task, Task) else rt.runner,
        out=out,
        on_result=rt.on_result,
        task_obj=task_obj,
        device=device,
        amp=amp,
    )
    try:
        # a store holding another task's trials is refused before any progress is shown
        store_obj.bind({"task": ref, "task_options": dict(task_options or {})})
        state = RecipeState(
            ctx, task_obj, plan, config, rt.say(), starting_hparams(task_obj, config.optimizer)
        )
        for stage in plan.stages:
            STEPS[stage](state)
        return _result(state, out, started, rt.command)
    finally:
        if rt.executor is None:
            ctx.executor.close()  # the workers this tune started
        if own_store:
            store_obj.close()


def _load(
    task: str | Task, task_options: dict[str, Any] | None, workers: int
) -> tuple[Task, str]:
    """The task and the reference worker processes rebuild it from."""
    if isinstance(task, Task):
        if workers > 1:
            raise UsageError(
                "a Task object runs in-process only; name the task by reference "
                "to use worker processes"
            )
        return load_task(task), task.name  # load_task checks a Task object too
    return load_task(task, task_options), task


def _in_process(task: Task) -> Callable[[TrialSpec], TrialResult]:
    """The runner for a `Task` object: every trial trains that object (it has no reference
    a worker could rebuild)."""

    def run(spec: TrialSpec) -> TrialResult:
        return run_trial(spec, task=task)

    return run


def _result(s: RecipeState, out: Path, started: float, command: str | None) -> TuneResult:
    """The `TuneResult` of a finished run, with the provenance a report needs."""
    cfg, ctx, history = s.config, s.ctx, s.history
    meta = {
        "task": s.task.name,
        "task_ref": ctx.task,
        "task_options": ctx.task_options,
        "seed": cfg.seed,
        "device": ctx.device,
        "amp": ctx.amp,
        "trial_devices": ctx.device_counts(),
        "trial_retries": sum(len(r.retries) for r in ctx.results.values()),
        "budget": s.plan.budget,
        "requested_epochs": s.plan.epochs,
        "final_epochs_reason": s.final_why.lstrip("; "),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "command": command
        or f"disciplined.tune({ctx.task!r}, epochs={s.plan.epochs:g}, budget={s.plan.budget:g}, "
        f"seed={cfg.seed})",
        "wall_seconds": time.perf_counter() - started,
        "metric": history.metric_name,
        "description": s.task.description,
    }
    return TuneResult(
        hparams=s.hp,
        epochs=history.epochs,
        decisions=tuple(s.decisions),
        history=history,
        diagnosis=s.verdict,
        compute=ctx.ledger.by_step(),
        out=str(out),
        meta=meta,
        trials=dict(ctx.results),
    )
