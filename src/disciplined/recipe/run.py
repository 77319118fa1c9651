"""The recipe of Smith's report (arXiv 1803.09820, section 5), end to end.

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
training steps alike) and capped by ``budget``.
"""

from __future__ import annotations

import json
import math
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from disciplined.errors import UsageError
from disciplined.files import write_text_atomic
from disciplined.measure.diagnose import Diagnosis, diagnose
from disciplined.studies import (
    RECIPE_DROPOUTS,
    StudyContext,
    batch_comparison,
    batch_size_search,
    default_weight_decays,
    learning_rate_test,
    one_cycle_spec,
    peak_momentum,
    range_test_steps,
    starting_hparams,
)
from disciplined.studies.batch import metric_noise
from disciplined.studies.decide import Decision
from disciplined.tasks import Task, load_task
from disciplined.training.fit import History, batches_per_epoch, device_and_amp
from disciplined.trials.executors import Executor, make_executor
from disciplined.trials.hparams import HParams
from disciplined.trials.spec import TrialResult, TrialSpec, run_trial
from disciplined.trials.store import TrialStore, open_store

__all__ = ["TuneResult", "plan_steps", "tune"]


@dataclass(frozen=True)
class TuneResult:
    """What `tune` chose and why: the hyper-parameters, each step's `Decision`, the final
    run's `History` and `Diagnosis`, compute per step, and where the files are."""

    hparams: HParams
    epochs: float
    decisions: tuple[Decision, ...]
    history: History
    diagnosis: Diagnosis
    compute: dict[str, dict[str, float]]
    out: str
    meta: dict[str, Any] = field(default_factory=dict)

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



BUDGET_FACTOR = 12.0
"""The default budget, in final runs: four of them are full runs (`FIXED_RUNS`), the rest
pays for the range tests and the batch-size comparison."""

MIN_RANGE_STEPS = 100
"""The fewest steps a range test of the recipe takes: 100 steps over the sweep's six decades
is about 17 a decade (fewer leave networks like the MNIST-1D CNN on their initial plateau)."""


def plan_steps(
    task: Task,
    hp: HParams,
    budget: float,
    final_epochs: float,
    *,
    n_range_tests: int,
    candidates: list[int],
    requested: int,
    reserved: float = 0.0,
) -> int:
    """Range-test steps that keep the recipe within ``budget`` epochs (may be below
    `MIN_RANGE_STEPS`: the caller decides what a short budget means).

    The fixed part is the final run, its two bracket runs and a corrective run
    (``FIXED_RUNS * final_epochs``) and ``reserved`` epochs (the batch-size comparison's
    runs). What is left pays for ``n_range_tests`` tests at ``hp.batch_size`` and one at
    each of ``candidates``, each of the same number of steps (a sweep needs its steps
    whatever the batch size): that number is ``requested`` if it fits, fewer if not.
    """
    per_step = _epochs_per_test_step(task, hp, n_range_tests, candidates)
    left = budget - reserved - FIXED_RUNS * final_epochs
    steps = int(left / per_step) if left > 0 else 0
    return min(requested, steps)


def _epochs_per_test_step(
    task: Task, hp: HParams, n_range_tests: int, candidates: list[int]
) -> float:
    return n_range_tests / batches_per_epoch(task.train_data, hp.batch_size) + sum(
        1 / batches_per_epoch(task.train_data, b) for b in candidates
    )


@dataclass(frozen=True)
class Plan:
    """The recipe's plan, fixed before anything runs or is written: the budget (epochs of
    the task), the final run's epochs, the range tests' steps, the batch-size comparison
    (mode and candidates), the weight-decay grid, and sentences saying what was adjusted."""

    budget: float
    epochs: float
    steps: int
    mode: str
    candidates: tuple[int, ...]
    weight_decays: tuple[float, ...]
    notes: tuple[str, ...] = ()
    dropout: bool = False


def make_plan(
    task: Task,
    *,
    epochs: float,
    budget: float | None,
    optimizer: str = "sgd",
    range_steps: int = 300,
    compare_batch_sizes: bool | str = "epochs",
    batch_sizes: list[int] | None = None,
    memory_limit: int | str | None = None,
    device: str = "cpu",
    tune_dropout: bool = False,
) -> Plan:
    """Plan the recipe on ``task`` within ``budget`` epochs (`Plan`); nothing runs or is
    written, so a budget that cannot pay is refused before any file exists.

    The final run and room for a corrective run come first, then the range tests (11 at
    the task's batch size: the first, the weight-decay grid, four momenta, the final two) at
    ``range_steps`` steps or fewer, never under `MIN_RANGE_STEPS`; the batch-size
    comparison runs only if what is left pays for it with the tests shortened by a third
    at most.
    ``budget=None`` is the default, `BUDGET_FACTOR` x ``epochs``; on a data set so small
    that one range test is many epochs (a 100-step test on 106 samples at batch 16 is 14 epochs) the
    default grows to what 100-step tests need, and a note says so: the default is never
    refused. A ``budget`` given that cannot pay for 100-step tests raises `UsageError` with
    the number it would need.
    """
    if not (math.isfinite(epochs) and epochs > 0):
        raise UsageError(f"epochs must be a finite number > 0, got {epochs}")
    if budget is not None and not (math.isfinite(budget) and budget > 0):
        raise UsageError(f"budget must be a finite number > 0, got {budget}")
    if not isinstance(range_steps, int) or range_steps < MIN_RANGE_STEPS:
        raise UsageError(
            f"range_steps must be an integer >= {MIN_RANGE_STEPS}, got {range_steps!r}"
        )
    hp = HParams(batch_size=task.default_batch_size, optimizer=optimizer)
    wd_values, _ = default_weight_decays(task)
    mode = batch_comparison(compare_batch_sizes)
    candidates: list[int] = []
    if mode != "off":
        from disciplined.studies.batch import (
            candidate_batch_sizes,
            equal_epoch_candidates,
            largest_batch_that_fits,
        )

        fits = largest_batch_that_fits(task, hp, memory_limit=memory_limit, device=device)
        pick = equal_epoch_candidates if mode == "epochs" else candidate_batch_sizes
        candidates = pick(task, fits.batch_size, batch_sizes)
    if len(candidates) < 2:
        candidates = []
    # the first test, the weight-decay grid, the dropout rates (the rate 0 is the weight
    # decay's own test) and four momenta
    sweeps_dropout = tune_dropout and task.takes_dropout
    n_fixed = len(wd_values) + 4 + (len(RECIPE_DROPOUTS) - 1 if sweeps_dropout else 0)
    notes: list[str] = []
    chosen_budget = float(budget) if budget is not None else BUDGET_FACTOR * epochs

    def steps_for(mode: str, cands: list[int], total: float) -> int:
        # The final and a corrective run first; then the batch-size comparison's runs (at
        # equal epochs: the losers' full runs, the winner's being the final run; at equal
        # time: 15% of the budget); the range tests share the rest. At equal epochs the
        # winner's range test is the final one.
        # The final max LR is read on two seeds (`studies.learning_rate_test`), so is each
        # candidate's.
        if not cands:
            reserved, n_tests = 0.0, 3
        elif mode == "epochs":
            reserved, n_tests = (len(cands) - 1) * epochs, 1
        else:
            reserved, n_tests = 0.15 * total, 3
        return plan_steps(
            task,
            hp,
            total,
            epochs,
            n_range_tests=n_tests + n_fixed,
            candidates=cands + cands,
            requested=range_steps,
            reserved=reserved,
        )

    steps = steps_for(mode, [], chosen_budget)
    if steps < MIN_RANGE_STEPS:
        need = FIXED_RUNS * epochs + MIN_RANGE_STEPS * _epochs_per_test_step(
            task, hp, n_fixed + 3, []
        )
        if budget is not None:
            raise UsageError(
                f"budget {budget:g} epochs is too small: with a final run of {epochs:g} "
                f"epochs the recipe needs about {math.ceil(need)} (range tests of at least "
                f"{MIN_RANGE_STEPS} steps); raise --budget or lower --epochs"
            )
        chosen_budget = float(math.ceil(need))
        notes.append(
            f"the default budget of {BUDGET_FACTOR * epochs:g} epochs cannot pay for "
            f"{MIN_RANGE_STEPS}-"
            f"step range tests on {task.num_train} samples at batch {hp.batch_size} (one "
            f"test is {MIN_RANGE_STEPS / batches_per_epoch(task.train_data, hp.batch_size):.3g}"
            f" epochs): the budget is {chosen_budget:g} epochs"
        )
        steps = steps_for(mode, [], chosen_budget)
    # The range tests come first: the comparison runs only if the budget pays for it
    # while shortening them by a third at most, and never below `MIN_RANGE_STEPS` (fewer
    # steps leave a network like the MNIST-1D CNN on its plateau and the readings wrong).
    # On small data a range test is many epochs, and a rule that allowed no shortening
    # never compared batch sizes there at the default budget. The largest candidates are
    # kept when not all fit.
    floor = max(MIN_RANGE_STEPS, math.ceil(2 * steps / 3))
    wanted = candidates
    while len(candidates) > 1 and steps_for(mode, candidates, chosen_budget) < floor:
        candidates = candidates[1:]
    if len(candidates) < 2:
        candidates = []
    else:
        steps = min(steps, steps_for(mode, candidates, chosen_budget))
    if wanted and candidates != wanted:
        notes.append(
            f"the budget of {chosen_budget:g} epochs cannot pay for comparing batch sizes "
            f"{wanted} without shortening the range tests below {floor} steps: "
            + (f"comparing {candidates}" if candidates else "keeping the task's batch size")
            + " (raise --budget to compare more)"
        )
    return Plan(
        budget=chosen_budget,
        epochs=float(epochs),
        steps=steps,
        mode=mode if candidates else "off",
        candidates=tuple(candidates),
        weight_decays=tuple(wd_values),
        notes=tuple(notes),
        dropout=sweeps_dropout,
    )


def tune(
    task: str | Task,
    *,
    budget: float | None = None,
    epochs: float = 20.0,
    out: str | Path = "runs/tune",
    store: TrialStore | str | None = None,
    workers: int = 1,
    executor: Executor | None = None,
    task_options: dict[str, Any] | None = None,
    optimizer: str = "sgd",
    seed: int = 0,
    device: str = "auto",
    amp: str | None = None,
    range_steps: int = 300,
    compare_batch_sizes: bool | str = "epochs",
    batch_sizes: list[int] | None = None,
    memory_limit: int | str | None = None,
    correct: bool = True,
    tune_dropout: bool = False,
    runner: Callable[[TrialSpec], TrialResult] = run_trial,
    progress: Callable[[str], None] | None = None,
    on_result: Callable[[TrialResult, bool], None] | None = None,
    command: str | None = None,
) -> TuneResult:
    """Run the recipe on ``task`` and train with what it chose.

    ``task`` is a reference (a built-in name or ``file.py:function``) so worker processes can
    rebuild it; a `Task` object works with the in-process executor. ``epochs`` is the final
    run's length; ``budget`` (epochs of the task, default ``12 * epochs``) caps all compute.
    Writes ``hparams.json``, ``tune.json``, ``history.json``, the plots and ``report.html``
    into ``out`` and keeps the trials in ``store`` (default ``out/trials.sqlite``), from
    which a rerun resumes. ``compare_batch_sizes`` is ``"epochs"`` (default: candidates
    ``batch_sizes``, or the task's batch size, half and a quarter of it, each trained for
    ``epochs``), ``"time"`` (short runs of equal wall-clock time) or ``"off"``
    (`studies.batch_size_search`).
    ``device`` (default ``"auto"``: CUDA when there is one, else the CPU) is where every
    trial runs, worker processes included, and ``amp`` (``"bf16"`` or ``"fp16"``, CUDA
    only) their mixed precision; each result records where it ran. ``tune_dropout`` adds
    a dropout sweep after the weight decay on a task whose model takes dropout (off by
    default: on the task zoo it lowered the decisions, `docs/design-notes.md`).
    """
    started = time.perf_counter()
    say = progress or (lambda _msg: None)
    device, amp = device_and_amp(device, amp)
    if isinstance(task, Task):
        if workers > 1:
            raise UsageError(
                "a Task object runs in-process only; name the task by reference "
                "to use worker processes"
            )
        task_obj, ref = load_task(task), task.name  # load_task checks a Task object too
    else:
        ref = task
        task_obj = load_task(task, task_options)
    # everything that can refuse the request does so before a file is written
    plan = make_plan(
        task_obj,
        epochs=epochs,
        budget=budget,
        optimizer=optimizer,
        range_steps=range_steps,
        compare_batch_sizes=compare_batch_sizes,
        batch_sizes=batch_sizes,
        memory_limit=memory_limit,
        device=device,
        tune_dropout=tune_dropout,
    )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    own_store = not isinstance(store, TrialStore)
    store_obj = store if isinstance(store, TrialStore) else open_store(store, out)
    runner_fn = runner
    if isinstance(task, Task):

        def runner_fn(spec: TrialSpec, _task: Task = task_obj) -> TrialResult:
            return run_trial(spec, task=_task)

    ctx = StudyContext(
        task=ref,
        task_options=dict(task_options or {}),
        store=store_obj,
        executor=executor or make_executor(workers),  # closed below when it is ours
        runner=runner_fn,
        out=out,
        on_result=on_result,
        task_obj=task_obj,
        device=device,
        amp=amp,
    )
    try:
        # a store holding another task's trials is refused before any progress is shown
        store_obj.bind({"task": ref, "task_options": dict(task_options or {})})
        return _tune(
            ctx,
            task_obj,
            plan,
            out,
            optimizer,
            seed,
            memory_limit,
            correct,
            say,
            started,
            command,
        )
    finally:
        if executor is None:
            ctx.executor.close()  # the workers this tune started
        if own_store:
            store_obj.close()


def _tune(
    ctx: StudyContext,
    task: Task,
    plan: Plan,
    out: Path,
    optimizer: str,
    seed: int,
    memory_limit: int | str | None,
    correct: bool,
    say: Callable[[str], None],
    started: float,
    command: str | None,
) -> TuneResult:
    hp = starting_hparams(task, optimizer)
    budget, epochs, steps = plan.budget, plan.epochs, plan.steps
    wd_values, candidates, mode = plan.weight_decays, list(plan.candidates), plan.mode
    for note in plan.notes:
        say(note)
    decisions: list[Decision] = []
    compute: dict[str, dict[str, float]] = {}

    def spent() -> float:
        return sum(c["epochs"] for c in compute.values())

    def record(step: str, d: Decision) -> Decision:
        decisions.append(d)
        compute[step] = {
            "epochs": d.compute.get("epochs", 0.0),
            "seconds": d.compute.get("seconds", 0.0),
        }
        say(f"{step}: {d.name} = {d.value:g} ({d.rule})")
        return d

    say(f"range tests of {steps} steps; budget {budget:g} epochs")
    hp = range_test_steps(
        ctx, hp, num_steps=steps, seed=seed, dropout=plan.dropout, record=record
    )
    range_hp = peak_momentum(hp)  # the max LR is read where the cycle's peak runs
    bs = record(
        "batch_size",
        batch_size_search(
            ctx,
            hp,
            compare=mode if candidates else "off",
            candidates=candidates or None,
            memory_limit=memory_limit,
            epochs=epochs,
            compare_epochs=min(5.0, epochs / 2),
            num_steps=steps,
            seed=seed,
            max_epochs=0.15 * budget + _test_epochs(task, steps, candidates),
        ),
    )
    hp = hp.with_(batch_size=int(bs.value))
    if bs.rule == "best_at_equal_epochs":
        # the comparison already ran this batch's range test: read it back from the store
        lr_d = learning_rate_test(
            ctx,
            range_hp.with_(batch_size=hp.batch_size),
            num_steps=steps,
            seed=seed,
            tag=f"batch{hp.batch_size}",
            repeats=True,
        )
        lr_d = replace(
            lr_d,
            reason=lr_d.reason + " (the batch-size comparison's range test at this batch)",
            compute={"epochs": 0.0, "seconds": 0.0, "trials": 0},
        )
    else:
        lr_d = learning_rate_test(
            ctx,
            range_hp.with_(batch_size=hp.batch_size),
            num_steps=steps,
            seed=seed,
            tag="final",
            repeats=True,
        )
    final_lr = record("final_lr", lr_d)
    hp = hp.with_(max_lr=final_lr.value)

    final_epochs, why = _final_epochs(
        task, bs, epochs, (budget - spent()) / (FIXED_RUNS if correct else FIXED_RUNS - 1)
    )
    say(f"final run: {final_epochs:.3g} epochs at batch {hp.batch_size}{why}")
    history, result = _final_run(ctx, hp, final_epochs, seed, "final")
    compute["final_run"] = {"epochs": history.epochs, "seconds": result.seconds}
    if result.key in bs.trials:  # the comparison's run of the winner: counted once, here
        compute["batch_size"]["epochs"] -= history.epochs
        compute["batch_size"]["seconds"] -= result.seconds
        say("final run: the batch-size comparison's run at this batch")
    hp, history = _lr_bracket(
        ctx, task, hp, history, final_epochs, seed, lambda: budget - spent(), decisions,
        compute, say,
    )
    verdict = diagnose(history)
    say(f"final run: validation {history.metric_name} {_metric(history):.4f}; {verdict.verdict}")
    if verdict.verdict == "diverged":
        hp, history, verdict = _retry_lower(
            ctx, hp, history, verdict, final_epochs, seed, decisions, compute, say
        )
    if correct and verdict.verdict in ("overfitting", "underfitting"):
        hp, history, verdict = _corrective_round(
            ctx,
            task,
            hp,
            history,
            verdict,
            wd_values,
            final_epochs,
            seed,
            lambda: budget - spent(),
            decisions,
            compute,
            say,
        )
    from disciplined.report.plots import plot_history

    history.save(out / "history.json")
    plot_history(history, out / "curves.png", title=f"{task.name}: final 1cycle run")
    meta = {
        "task": task.name,
        "task_ref": ctx.task,
        "task_options": ctx.task_options,
        "seed": seed,
        "device": ctx.device,
        "amp": ctx.amp,
        "trial_devices": ctx.device_counts(),
        "budget": budget,
        "requested_epochs": epochs,
        "final_epochs_reason": why.lstrip("; "),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "command": command
        or f"disciplined.tune({ctx.task!r}, epochs={epochs:g}, budget={budget:g}, seed={seed})",
        "wall_seconds": time.perf_counter() - started,
        "metric": history.metric_name,
        "description": task.description,
    }
    result = TuneResult(
        hparams=hp,
        epochs=history.epochs,
        decisions=tuple(decisions),
        history=history,
        diagnosis=verdict,
        compute=compute,
        out=str(out),
        meta=meta,
    )
    write_text_atomic(out / "hparams.json", json.dumps(_finite(result.hparams_json()), indent=1))
    write_text_atomic(
        out / "tune.json", json.dumps(_finite(result.to_dict()), indent=1, allow_nan=False)
    )
    from disciplined.report.html import write_report

    write_report(out)
    return result


def _test_epochs(task: Task, steps: int, candidates: list[int]) -> float:
    """Epochs the candidates' range tests take."""
    return sum(steps / batches_per_epoch(task.train_data, b) for b in candidates)


def _final_epochs(task: Task, bs: Decision, epochs: float, room: float) -> tuple[float, str]:
    """The final run's length. Batch sizes were compared at equal wall-clock time, so the
    run gets the time ``epochs`` epochs take at the task's own batch size: a faster batch
    trains more epochs in it (at most 4x, and within ``room``: the budget left, halved
    when a corrective run may follow)."""
    timing = bs.extra.get("seconds_per_step")
    chosen = int(bs.value)
    ref = task.default_batch_size
    if not timing or str(ref) not in timing or str(chosen) not in timing or chosen == ref:
        return epochs, ""
    per_epoch = {b: batches_per_epoch(task.train_data, b) for b in (ref, chosen)}
    seconds = epochs * per_epoch[ref] * timing[str(ref)]
    equal = seconds / (per_epoch[chosen] * timing[str(chosen)])
    final = max(epochs, min(equal, 4 * epochs, room))
    return round(final, 2), (
        f"; the time of {epochs:g} epochs at batch {ref} "
        f"({seconds:.1f} s) is {equal:.3g} epochs at batch {chosen}"
    )


def _finite(x: Any) -> Any:
    """``x`` with every NaN or infinity (at any depth) replaced by None: JSON has neither."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_finite(v) for v in x]
    return x


def _final_run(
    ctx: StudyContext, hp: HParams, epochs: float, seed: int, tag: str
) -> tuple[History, TrialResult]:
    (result,) = ctx.run([one_cycle_spec(ctx, hp, epochs, seed, tag)])
    if result.history is None:
        raise UsageError(f"the {tag} run failed: {result.reason}")
    return result.history, result


BRACKET = 3.0
"""The final run's max LR is bracketed by full runs at it divided and multiplied by this."""
FIXED_RUNS = 4
"""Full runs the plan keeps room for: the final run, its two bracket runs, a corrective run."""


def _lr_bracket(
    ctx: StudyContext,
    task: Task,
    hp: HParams,
    history: History,
    epochs: float,
    seed: int,
    left: Callable[[], float],
    decisions: list[Decision],
    compute: dict[str, dict[str, float]],
    say: Callable[[str], None],
) -> tuple[HParams, History]:
    """Full 1cycle runs at the final max LR divided and multiplied by `BRACKET` beside the
    final run; the best validation metric wins (`best_full_run_of_bracket`), the range
    test's reading keeping any lead within the metric's noise. When an end of the bracket
    wins by more than the noise and the budget pays, one more run a further step that way.

    A range test reads where the loss stops falling over a few hundred steps; the cycle
    then runs a warm-up and many epochs, and the same reading sits 3-10x below what a
    BatchNorm CNN, a GRU or a noisy-label MLP take best, and 10x above what a 266-sample
    regression does (`docs/design-notes.md`). The full runs are the evidence that settles
    it; a diverged run scores worst.
    """
    base = hp.max_lr
    runs: dict[float, tuple[History, str]] = {base: (history, "")}
    spent = {"epochs": 0.0, "seconds": 0.0}
    noise = metric_noise(_metric(history), task.num_val, task.kind)

    def run(lrs: list[float]) -> None:
        specs = [
            one_cycle_spec(ctx, hp.with_(max_lr=lr), epochs, seed, f"bracket-{lr:.4g}")
            for lr in lrs
        ]
        for lr, r in zip(lrs, ctx.run(specs), strict=True):
            if r.history is None:
                raise UsageError(f"the bracket's run at max LR {lr:.4g} failed: {r.reason}")
            runs[lr] = (r.history, r.key)
            spent["epochs"] += r.history.epochs
            spent["seconds"] += r.seconds
            say(f"bracket: max LR {lr:.4g}: validation {_metric(r.history):.4f}")

    def score(lr: float) -> float:
        h = runs[lr][0]
        m = _metric(h)
        if h.diverged or not math.isfinite(m):
            return -math.inf
        return m if task.higher_is_better else -m

    run([base / BRACKET, base * BRACKET])
    best = max(runs, key=score)
    if score(best) == -math.inf:  # every run diverged: the retries go on below the lowest
        best = min(runs)
    elif best != base and score(best) - score(base) <= noise:
        best = base
    extended = False
    gain = score(best) - score(base) if score(best) > -math.inf else -math.inf
    if best != base and gain > noise and left() - spent["epochs"] >= epochs:
        further = best / BRACKET if best < base else best * BRACKET
        run([further])
        extended = True
        if score(further) > score(best) + noise:
            best = further
    compute["lr_bracket"] = spent
    decisions.append(
        _bracket_decision(
            runs,
            base,
            best,
            noise,
            epochs,
            extended,
            all_diverged=score(best) == -math.inf,
            compute=spent,
        )
    )
    say(f"lr_bracket: learning_rate = {best:g} (best_full_run_of_bracket)")
    return hp.with_(max_lr=best), runs[best][0]


def _bracket_decision(
    runs: dict[float, tuple[History, str]],
    base: float,
    best: float,
    noise: float,
    epochs: float,
    extended: bool,
    *,
    all_diverged: bool,
    compute: dict[str, float],
) -> Decision:
    """The bracket's `Decision`: a row per run (max LR, validation metric and loss,
    diverged, trial key; the final run's own key is not the bracket's) and the sentence
    with every score."""
    rows = [
        {
            "max_lr": lr,
            "val_metric": _metric(h),
            "val_loss": h.final.val_loss if h.final else None,
            "diverged": h.diverged,
            "trial": key or None,
        }
        for lr, (h, key) in sorted(runs.items())
    ]
    scored = "; ".join(
        f"{r['max_lr']:.4g}: " + ("diverged" if r["diverged"] else f"{r['val_metric']:.4f}")
        for r in rows
    )
    if all_diverged:
        kept = f"every run diverged: lower runs follow from {best:.4g}"
    else:
        kept = (
            f"kept the range test's {base:.4g}" if best == base else f"kept {best:.4g}"
        ) + (f" (ties within the metric's noise {noise:.3g} go to the reading)" if noise else "")
    metric_name = runs[base][0].metric_name
    reason = (
        f"full {epochs:g}-epoch runs at the final max LR {base:.4g} and at 1/{BRACKET:g} and "
        f"{BRACKET:g}x it" + (", then one step further" if extended else "")
        + f": {metric_name} {scored}; {kept}"
    )
    return Decision(
        name="learning_rate",
        value=best,
        rule="best_full_run_of_bracket",
        reason=reason,
        table=tuple(rows),
        trials=tuple(r["trial"] for r in rows if r["trial"]),
        extra={"noise": noise, "reading": base},
        compute=compute,
    )


RETRY_FACTOR = 3.0
"""A final run that diverged is repeated at its max LR divided by this ..."""
MAX_RETRIES = 3
"""... at most this many times (27x lower in all) before `tune` gives up."""


def _retry_lower(
    ctx: StudyContext,
    hp: HParams,
    history: History,
    verdict: Diagnosis,
    epochs: float,
    seed: int,
    decisions: list[Decision],
    compute: dict[str, dict[str, float]],
    say: Callable[[str], None],
) -> tuple[HParams, History, Diagnosis]:
    """Repeat a diverged final run at a lower max LR until one holds (`lower_max_lr_until_stable`).

    A run that blew up or collapsed back to its starting loss tells only that the 1cycle's
    peak was past what the network takes; a diverged run is never an answer. Each retry
    divides the max LR by `RETRY_FACTOR`, at most `MAX_RETRIES` times, whatever the budget
    (the budget was planned for a run that holds). When none holds, `UsageError` says so
    and `tune` writes no ``hparams.json``. The retries are recorded as one decision with a
    row per attempt.
    """
    rows = [{"max_lr": hp.max_lr, "val_metric": _metric(history), "verdict": verdict.verdict}]
    keys: list[str] = []
    spent = {"epochs": 0.0, "seconds": 0.0}
    first_lr = hp.max_lr
    while verdict.verdict == "diverged" and len(keys) < MAX_RETRIES:
        hp = hp.with_(max_lr=hp.max_lr / RETRY_FACTOR)
        history, result = _final_run(ctx, hp, epochs, seed, f"retry{len(keys) + 1}")
        verdict = diagnose(history)
        keys.append(result.key)
        spent["epochs"] += history.epochs
        spent["seconds"] += result.seconds
        rows.append(
            {"max_lr": hp.max_lr, "val_metric": _metric(history), "verdict": verdict.verdict}
        )
        say(f"diverged: retried at max LR {hp.max_lr:.4g}: {verdict.verdict}")
    compute["divergence_retries"] = spent
    tried = ", ".join(f"{r['max_lr']:.4g}" for r in rows)
    if verdict.verdict == "diverged":
        raise UsageError(
            f"the final run diverged at every max LR tried ({tried}): {verdict.summary}; "
            "no hyper-parameters were written (the trials are kept in the store)"
        )
    decisions.append(
        Decision(
            name="correction",
            value=hp.max_lr,
            rule="lower_max_lr_until_stable",
            reason=(
                f"the final run at max LR {first_lr:.4g} diverged; repeated at 1/"
                f"{RETRY_FACTOR:g} of the max LR each time until a run held: {tried}; kept "
                f"{hp.max_lr:.4g} ({history.metric_name} {_metric(history):.4f})"
            ),
            table=tuple(rows),
            trials=tuple(keys),
            extra={"parameter": "max_lr"},
            compute=spent,
        )
    )
    return hp, history, verdict


LR_STEP = 3.0
"""An underfitting run's corrective run tries the max LR this many times higher."""


def _corrections(
    hp: HParams, grid: tuple[float, ...], verdict: str
) -> list[tuple[HParams, str, str, str]]:
    """The corrective runs for an over- or underfitting verdict, in order: each as
    ``(settings, rule, parameter, what changes)``.

    Overfitting: weight decay one grid step up (`_one_step`): more regularization.
    Underfitting: the max LR `LR_STEP` times higher first (Smith, section 3: a test loss that
    falls faster at a larger LR shows underfitting at the smaller one; and a large LR is the
    regularizer that still lets the network fit, where a noisy-label MLP did best at the
    top of its grid), then weight decay one grid step down.
    """
    if verdict not in ("overfitting", "underfitting"):
        raise ValueError(f"no corrective run for verdict {verdict!r}")
    out = []
    if verdict == "underfitting":
        new = hp.max_lr * LR_STEP
        out.append(
            (
                hp.with_(max_lr=new),
                "larger_max_lr_when_underfitting",
                "max_lr",
                f"max LR {hp.max_lr:.4g} -> {new:.4g}",
            )
        )
    wd = _one_step(grid, hp.weight_decay, verdict)
    if wd is not None:
        out.append(
            (
                hp.with_(weight_decay=wd),
                "one_grid_step_as_advised",
                "weight_decay",
                f"weight decay {hp.weight_decay:g} -> {wd:g}",
            )
        )
    return out


def _corrective_round(
    ctx: StudyContext,
    task: Task,
    hp: HParams,
    history: History,
    verdict: Diagnosis,
    grid: tuple[float, ...],
    epochs: float,
    seed: int,
    left: Callable[[], float],
    decisions: list[Decision],
    compute: dict[str, dict[str, float]],
    say: Callable[[str], None],
) -> tuple[HParams, History, Diagnosis]:
    """Run the corrective runs (`_corrections`) the budget pays for, each changing one
    hyper-parameter of the run kept so far; a run that diverges or scores lower is dropped.
    Each run is recorded as a ``correction`` decision."""
    base = hp
    for hp2, rule, key, what in _corrections(base, grid, verdict.verdict):
        if left() < epochs:
            say(f"{verdict.verdict}, but the budget has no room for a corrective run ({what})")
            break
        hp2 = hp.with_(**{key: getattr(hp2, key)})
        h2, r2 = _final_run(ctx, hp2, epochs, seed, "corrective")
        cost = compute.setdefault("corrective_run", {"epochs": 0.0, "seconds": 0.0})
        cost["epochs"] += h2.epochs
        cost["seconds"] += r2.seconds
        v2 = diagnose(h2)
        better = v2.verdict != "diverged" and _better(h2, history, task.higher_is_better)
        row = {
            key: getattr(hp2, key),
            "val_metric": _metric(h2),
            "replaces": getattr(hp, key),
            "previous_val_metric": _metric(history),
            "verdict": v2.verdict,
        }
        reason = (
            f"{verdict.verdict}: {what}; validation {history.metric_name} "
            f"{_metric(history):.4f} -> {_metric(h2):.4f}"
            + (" (diverged)" if v2.verdict == "diverged" else "")
            + f"; kept the {'new' if better else 'previous'} run"
        )
        decisions.append(
            Decision(
                name="correction",
                value=getattr(hp2 if better else hp, key),
                rule=rule,
                reason=reason,
                table=(row,),
                trials=(r2.key,),
                extra={"parameter": key},
                compute={"epochs": h2.epochs, "seconds": r2.seconds},
            )
        )
        say(reason)
        if better:
            hp, history = hp2, h2
    return hp, history, diagnose(history) if hp is not base else verdict


def _one_step(grid: tuple[float, ...], current: float, verdict: str) -> float | None:
    """Weight decay one step the advised way: the next grid value up (overfitting: more
    regularization) or down (underfitting: less). Past the top of the grid it goes up half
    a decade (the report's 10^-3.5-style refinement); below the bottom, to 0."""
    values = sorted(set(grid) | {current})
    i = values.index(current)
    j = i + 1 if verdict == "overfitting" else i - 1
    if 0 <= j < len(values):
        return values[j]
    if verdict == "overfitting":
        return (current or 1e-5) * math.sqrt(10)
    return None


def _metric(h: History) -> float:
    return h.final.val_metric if h.final else math.nan


def _better(new: History, old: History, higher_is_better: bool) -> bool:
    a, b = _metric(new), _metric(old)
    if new.diverged or not math.isfinite(a):
        return False
    if not math.isfinite(b):
        return True
    return a > b if higher_is_better else a < b
