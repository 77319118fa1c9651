"""Studies: one step of the recipe = a set of trials + a named decision rule + its evidence.

Smith (arXiv 1803.09820, sections 4.3-4.4) sets weight decay, momentum and dropout from short
runs rather than from long searches: an LR range test at each candidate value, read on the
validation loss; "the right value lets the network train at a high learning rate with the
lowest loss". Each study here runs its trials through an executor into a store (so it
resumes after a crash and can run trials side by side), applies a pure rule from
`disciplined.studies.decide` to the recorded curves, and returns a frozen `Decision`.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import torch

from disciplined.errors import UsageError
from disciplined.files import write_text_atomic
from disciplined.measure.diagnose import diagnose
from disciplined.measure.range_test import RangeTest
from disciplined.measure.suggest import smith, validation_curve
from disciplined.studies.decide import (
    CurveSummary,
    Decision,
    cycle_min_momentum,
    lowest_val_loss_at_high_lr,
    sgd_effective_lr_factor,
    summarize_range_test,
    train_last_lr,
)
from disciplined.tasks import Task, load_task
from disciplined.trials.executors import Executor, InProcessExecutor
from disciplined.trials.hparams import HParams
from disciplined.trials.spec import TrialResult, TrialSpec, run_trial
from disciplined.trials.store import MemoryStore, TrialStore

__all__ = [
    "BATCH_COMPARISONS",
    "StudyContext",
    "batch_comparison",
    "batch_size_search",
    "default_weight_decays",
    "dropout_sweep",
    "learning_rate_test",
    "momentum_test",
    "one_cycle_spec",
    "weight_decay_sweep",
]

Progress = Callable[[TrialResult, bool], None]


@dataclass
class StudyContext:
    """Where and how a study runs its trials: the task (a reference a worker can rebuild),
    the store, the executor, the runner (``run_trial``; tests count calls through it), the
    output folder for plots, a progress callback, and the ``device`` (with ``amp``, its
    mixed precision) every trial of the context runs on. ``ran_on`` maps each trial it
    handed back to where it ran (a result read from the store keeps where it ran then)."""

    task: str
    task_options: dict[str, Any] = field(default_factory=dict)
    store: TrialStore = field(default_factory=MemoryStore)
    executor: Executor = field(default_factory=InProcessExecutor)
    runner: Callable[[TrialSpec], TrialResult] = run_trial
    out: Path | None = None
    on_result: Progress | None = None
    task_obj: Task | None = None
    counted: set[str] = field(default_factory=set)
    device: str = "cpu"
    amp: str | None = None
    ran_on: dict[str, str] = field(default_factory=dict)

    def load(self) -> Task:
        """The task itself (``task_obj`` when given, else built from the reference)."""
        if self.task_obj is None:
            self.task_obj = load_task(self.task, self.task_options)
        return self.task_obj

    def run(self, specs: Sequence[TrialSpec]) -> list[TrialResult]:
        """Run (or read back) ``specs`` on this context's device; results in the same order."""
        self.store.bind({"task": self.task, "task_options": self.task_options})
        specs = [s if s.device == self.device else replace(s, device=self.device) for s in specs]
        results = self.executor.run(
            specs, self.store, runner=self.runner, on_result=self.on_result
        )
        for r in results:
            self.ran_on[r.key] = r.device or "unrecorded"
        return results

    def device_counts(self) -> dict[str, int]:
        """How many of the trials this context ran or read back ran on each device."""
        counts: dict[str, int] = {}
        for where in self.ran_on.values():
            counts[where] = counts.get(where, 0) + 1
        return dict(sorted(counts.items()))

    def spec(
        self, kind: str, hp: HParams, budget: dict[str, Any], seed: int, **kw: Any
    ) -> TrialSpec:
        """A trial of this context's task, on its device and precision."""
        return TrialSpec(
            task=self.task,
            hparams=hp.to_dict(),
            kind=kind,  # type: ignore[arg-type]
            budget=budget,
            seed=seed,
            task_options=dict(self.task_options),
            device=self.device,
            amp=self.amp,
            **kw,
        )

    def plot_path(self, name: str) -> Path | None:
        """Where a plot called ``name`` goes, or None without an output folder."""
        if self.out is None:
            return None
        self.out.mkdir(parents=True, exist_ok=True)
        return self.out / name


def _range_spec(
    ctx: StudyContext,
    hp: HParams,
    budget: dict[str, Any],
    seed: int,
    tag: str,
    init: str | None = None,
) -> TrialSpec:
    return ctx.spec("range_test", hp, {"val": True, **budget}, seed, init=init, tag=tag)


def default_range_budget(task: Task, hp: HParams, num_steps: int = 300) -> dict[str, Any]:
    """Range-test settings for a study: the sweep, and a validation subset of about 512
    samples (or the whole validation set when smaller) read every 10 steps."""
    val_batches = max(1, math.ceil(min(512, task.num_val) / hp.batch_size))
    return {
        "num_steps": num_steps,
        "start_lr": 1e-5,
        "end_lr": 10.0,
        "val_every": 10,
        "val_batches": val_batches,
    }


def default_weight_decays(task: Task) -> tuple[tuple[float, ...], str]:
    """The report's candidate grid for this task, and a sentence saying why.

    Smith (section 4.3): "1e-3, 1e-4, 1e-5 and 0" when nothing is known; larger values
    (1e-2 .. 1e-4) for small data sets and shallow architectures, smaller ones
    (1e-4 .. 1e-6) for complex data and deep architectures. Here "small" means under 50k
    training samples and under 1M parameters; "large" means over 500k samples or over
    20M parameters.
    """
    n, params = task.num_train, task.param_count()
    if n < 50_000 and params < 1_000_000:
        return (1e-2, 1e-3, 1e-4, 0.0), (
            f"small data and a shallow model ({n} samples, {params} parameters): the report's "
            "larger values 1e-2 .. 1e-4, and 0"
        )
    if n > 500_000 or params > 20_000_000:
        return (1e-4, 1e-5, 1e-6, 0.0), (
            f"large data or a deep model ({n} samples, {params} parameters): the report's "
            "smaller values 1e-4 .. 1e-6, and 0"
        )
    return (1e-3, 1e-4, 1e-5, 0.0), (
        f"neither small nor large ({n} samples, {params} parameters): the report's default "
        "1e-3, 1e-4, 1e-5, 0"
    )


def _sweep(
    ctx: StudyContext,
    name: str,
    values: Sequence[float],
    make_hp: Callable[[float], HParams],
    budget: dict[str, Any],
    seed: int,
    init: str | None = None,
) -> tuple[list[TrialResult], list[CurveSummary]]:
    specs = [
        _range_spec(ctx, make_hp(v), budget, seed, tag=f"{name}={v!r}", init=init) for v in values
    ]
    results = ctx.run(specs)
    summaries = [summarize_range_test(v, r) for v, r in zip(values, results, strict=True)]
    return results, summaries


def _plot(
    ctx: StudyContext, file: str, results: Sequence[TrialResult], labels: Sequence[str], title: str
) -> str | None:
    path = ctx.plot_path(file)
    tests = [r.range_test for r in results if r.range_test is not None]
    names = [lab for r, lab in zip(results, labels, strict=True) if r.range_test is not None]
    if path is None or not tests:
        return None
    from disciplined.measure.range_test import overlay

    overlay(tests, names, path, title=title, use_val=True)
    return str(path)


def _compute(ctx: StudyContext, results: Sequence[TrialResult]) -> dict[str, float]:
    """Compute the study spent: each trial counted once per context, so a run two studies
    share (the same spec, read back from the store) is not counted twice."""
    fresh = []
    for r in results:
        if r.key not in ctx.counted:
            ctx.counted.add(r.key)
            fresh.append(r)
    return {
        "epochs": sum(r.epochs for r in fresh),
        "seconds": sum(r.seconds for r in fresh),
        "trials": len(fresh),
    }


def weight_decay_sweep(
    ctx: StudyContext,
    hp: HParams,
    values: Sequence[float] | None = None,
    *,
    num_steps: int = 300,
    seed: int = 0,
    refine: bool = False,
    method: Literal["range_test", "snapshot"] = "range_test",
    snapshot_epochs: float | None = None,
    tolerance: float = 0.02,
) -> Decision:
    """Choose the weight decay from validation-mode range tests at each value.

    ``values=None`` takes the report's grid for this task (`default_weight_decays`).
    ``refine=True`` adds one test halfway (in the exponent) between the two best non-zero
    values, as the report's 10^-3.5 example. ``method="snapshot"`` is the report's variant:
    train one cycle at the middle value, then restart the range tests from that snapshot.
    The rule is `lowest_val_loss_at_high_lr`.
    """
    task = ctx.load()
    why = "values given"
    if values is None:
        values, why = default_weight_decays(task)
    values = _check_values("weight decay", values, lo=0.0, hi=None)
    budget = default_range_budget(task, hp, num_steps)
    init, snapshot_cost = None, None
    if method == "snapshot":
        init, snapshot_cost = _snapshot(ctx, hp, values, seed, snapshot_epochs, task)
    elif method != "range_test":
        raise ValueError(f"method must be 'range_test' or 'snapshot', got {method!r}")
    results, rows = _sweep(
        ctx,
        "weight_decay",
        values,
        lambda v: hp.with_(weight_decay=v),
        budget,
        seed,
        init=init,
    )
    if refine:
        extra = _refinement(rows)
        if extra is not None and extra not in values:
            more, more_rows = _sweep(
                ctx,
                "weight_decay",
                [extra],
                lambda v: hp.with_(weight_decay=v),
                budget,
                seed,
                init=init,
            )
            results, rows, values = results + more, rows + more_rows, [*values, extra]
    chosen, reason = lowest_val_loss_at_high_lr(rows, tolerance=tolerance)
    plot = _plot(
        ctx,
        "weight_decay.png",
        results,
        [f"wd={v:g}" for v in values],
        f"{task.name}: LR range tests at each weight decay (validation loss)",
    )
    compute = _compute(ctx, results)
    extra_info: dict[str, Any] = {"grid": why, "method": method}
    if snapshot_cost is not None:
        extra_info["snapshot"] = snapshot_cost
        compute["epochs"] += snapshot_cost["epochs"]
        compute["seconds"] += snapshot_cost["seconds"]
    return Decision(
        name="weight_decay",
        value=chosen,
        rule="lowest_val_loss_at_high_lr",
        reason=reason,
        table=tuple(r.to_row() for r in rows),
        trials=tuple(r.key for r in results),
        plot=plot,
        extra=extra_info,
        compute=compute,
    )


def _refinement(rows: Sequence[CurveSummary]) -> float | None:
    """Halfway in the exponent between the two best positive values, if they are adjacent
    powers apart."""
    ok = sorted((r for r in rows if r.usable and r.value > 0), key=lambda r: r.min_loss)
    if len(ok) < 2:
        return None
    a, b = ok[0].value, ok[1].value
    return float(10 ** ((math.log10(a) + math.log10(b)) / 2))


def _snapshot(
    ctx: StudyContext,
    hp: HParams,
    values: Sequence[float],
    seed: int,
    epochs: float | None,
    task: Task,
) -> tuple[str, dict[str, Any]]:
    """Train one cycle at the middle value and keep its final weights (the end of a 1cycle,
    where the validation loss has flattened) as the restart point. The weights and their
    cost are kept beside the plots, so a resumed study does not train them again."""
    import json
    import time

    from disciplined.trials.hparams import train_task

    positive = sorted(v for v in values if v > 0)
    middle = positive[(len(positive) - 1) // 2] if positive else 0.0
    epochs = epochs if epochs is not None else 5.0
    spec = ctx.spec(
        "train", hp.with_(weight_decay=middle), {"epochs": epochs}, seed, tag="snapshot"
    )
    folder = ctx.out if ctx.out is not None else Path(tempfile.mkdtemp(prefix="disciplined-"))
    folder.mkdir(parents=True, exist_ok=True)
    path, info_path = folder / f"snapshot-{spec.key}.pt", folder / f"snapshot-{spec.key}.json"
    if path.exists() and info_path.exists():
        return str(path), json.loads(info_path.read_text())
    t0 = time.perf_counter()
    model, history = train_task(
        task, spec.hp, epochs=epochs, seed=seed, device=ctx.device, amp=ctx.amp or False
    )
    model.to("cpu")  # the snapshot loads on any device
    if history.diverged:
        raise UsageError(
            f"the snapshot run at weight decay {middle:g} diverged: {history.diverged_reason}"
        )
    info = {
        "weight_decay": middle,
        "epochs": history.epochs,
        "seconds": time.perf_counter() - t0,
        "path": str(path),
        "val_loss": history.final.val_loss if history.final else None,
    }
    tmp = path.with_suffix(".tmp")
    torch.save(model.state_dict(), tmp)
    tmp.replace(path)
    write_text_atomic(info_path, json.dumps(info))
    return str(path), info


def momentum_test(
    ctx: StudyContext,
    hp: HParams,
    values: Sequence[float] = (0.99, 0.97, 0.95, 0.9),
    *,
    num_steps: int = 300,
    seed: int = 0,
    tolerance: float = 0.02,
) -> Decision:
    """Choose ``max_momentum`` (``betas[0]`` for AdamW) from range tests at each value.

    The momentum is held constant during each test. Decision: the value whose validation
    curve reaches the lowest loss while still allowing a high learning rate
    (`lowest_val_loss_at_high_lr`); ``min_momentum`` is 0.85, or 0.8 when the chosen maximum
    is below 0.95 (the report's ranges: 0.95-0.99 down to 0.85, or 0.9 down to 0.8).

    With SGD, momentum ``m`` multiplies the step by ``1 / (1 - m)`` (the report: a large
    constant momentum acts like a larger learning rate), so curves within the tolerance of
    the lowest loss are ranked by the effective learning rate at their minimum, ``lr / (1 -
    m)``; ranked by the raw LR, the lowest momentum would win every tie, its curve reaching
    the same loss only at a higher raw LR. Adam's ``betas[0]`` averages the gradient
    instead of summing it, so AdamW ties are ranked by the raw LR.
    """
    task = ctx.load()
    values = _check_values("momentum", values, lo=0.0, hi=1.0)
    budget = default_range_budget(task, hp, num_steps)
    results, rows = _sweep(
        ctx,
        "momentum",
        values,
        lambda v: hp.with_(max_momentum=v, min_momentum=min(v, hp.min_momentum)),
        budget,
        seed,
    )
    sgd = hp.optimizer == "sgd"
    chosen, reason = lowest_val_loss_at_high_lr(
        rows, tolerance=tolerance, lr_factor=sgd_effective_lr_factor if sgd else None
    )
    min_m = cycle_min_momentum(chosen)
    min_m = min(min_m, chosen)
    plot = _plot(
        ctx,
        "momentum.png",
        results,
        [f"momentum={v:g}" for v in values],
        f"{task.name}: LR range tests at each momentum (validation loss)",
    )
    param = "betas[0]" if hp.optimizer == "adamw" else "momentum"
    return Decision(
        name="momentum",
        value=chosen,
        rule="lowest_val_loss_at_high_effective_lr" if sgd else "lowest_val_loss_at_high_lr",
        reason=f"{reason}; cyclical {param} {chosen:g} -> {min_m:g}",
        table=tuple(r.to_row() for r in rows),
        trials=tuple(r.key for r in results),
        plot=plot,
        extra={"max_momentum": chosen, "min_momentum": min_m, "parameter": param},
        compute=_compute(ctx, results),
    )


def dropout_sweep(
    ctx: StudyContext,
    hp: HParams,
    values: Sequence[float] = (0.0, 0.1, 0.2, 0.3, 0.5),
    *,
    num_steps: int = 300,
    seed: int = 0,
    tolerance: float = 0.02,
) -> Decision:
    """Choose the dropout rate like the weight decay: range tests at each value, read on
    the validation loss. The task's model must take a dropout rate."""
    task = ctx.load()
    if not task.takes_dropout:
        raise UsageError(f"task {task.name!r} has no dropout to sweep")
    values = _check_values("dropout", values, lo=0.0, hi=1.0)
    budget = default_range_budget(task, hp, num_steps)
    results, rows = _sweep(ctx, "dropout", values, lambda v: hp.with_(dropout=v), budget, seed)
    chosen, reason = lowest_val_loss_at_high_lr(rows, tolerance=tolerance)
    plot = _plot(
        ctx,
        "dropout.png",
        results,
        [f"dropout={v:g}" for v in values],
        f"{task.name}: LR range tests at each dropout rate (validation loss)",
    )
    return Decision(
        name="dropout",
        value=chosen,
        rule="lowest_val_loss_at_high_lr",
        reason=reason,
        table=tuple(r.to_row() for r in rows),
        trials=tuple(r.key for r in results),
        plot=plot,
        extra={},
        compute=_compute(ctx, results),
    )


def _check_values(name: str, values: Sequence[float], lo: float, hi: float | None) -> list[float]:
    out = []
    for v in values:
        try:
            x = float(v)
        except (TypeError, ValueError):
            raise UsageError(f"{name} values must be numbers, got {v!r}") from None
        if not math.isfinite(x) or x < lo or (hi is not None and x >= hi):
            bound = f"in [{lo:g}, {hi:g})" if hi is not None else f">= {lo:g}"
            raise UsageError(f"{name} values must be {bound}, got {v!r}")
        out.append(x)
    if len(out) < 2:
        raise UsageError(f"a {name} sweep needs at least two values, got {len(out)}")
    if len(set(out)) != len(out):
        raise UsageError(f"{name} values repeat: {list(values)}")
    return out


def peak_momentum(hp: HParams) -> HParams:
    """``hp`` with the momentum held at the cycle's minimum: the settings of the range test
    that reads the 1cycle's max LR.

    The 1cycle reaches its max LR when the momentum is at its minimum, and with SGD the
    momentum scales the step (``lr / (1 - m)``): a test held at the cycle's maximum
    momentum of 0.99 stops at a learning rate the cycle, at 0.85, could take ten times
    over. The test therefore runs where the peak runs.
    """
    return hp.with_(max_momentum=hp.min_momentum)


SPREAD_LIMIT = 2.0
"""Two seeds' max-LR readings further apart than this factor call for a third seed."""
WIDEN = 100.0
"""A sweep still falling at its end is run again with its end LR this many times higher."""


def read_max_lr(test: RangeTest) -> tuple[float, str, bool]:
    """The max LR a range test supports, the sentence saying how it was read, and whether the
    test turned (the loss stopped falling before the sweep's end).

    Smith reads the test loss: the reading is the lower of `suggest.smith` on the smoothed
    training curve and `suggest.smith` on the validation curve (`suggest.validation_curve`:
    only the points the training curve vouches for), when the validation loss fell clearly.
    On small data the training loss keeps falling while the network memorizes, and the
    validation loss turns first (a 266-sample regression: training curve 0.02-0.11,
    validation curve 0.015-0.025, grid best 0.003-0.01); elsewhere the two agree.
    """
    s = test.suggestion
    if s is None:
        raise ValueError("the range test has no suggestion")
    turned = test.turned
    value, how = s.max_lr, f"training curve: {s.reason}"
    vl, vv = validation_curve(test.val_lrs, test.val_losses, train_last_lr(test.lrs, test.smoothed))
    if len(vv) >= 5:
        try:
            sv = smith(vl, vv)
        except ValueError:
            sv = None
        if sv is not None and "unreliable" not in sv.reason:
            if sv.max_lr < value:
                how = f"validation curve (lower than the training curve's {value:.3g}): {sv.reason}"
                value = sv.max_lr
            else:
                how += f"; the validation curve read {sv.max_lr:.3g}, no lower"
    return value, how, turned


def learning_rate_test(
    ctx: StudyContext,
    hp: HParams,
    *,
    num_steps: int = 300,
    seed: int = 0,
    tag: str = "lr",
    repeats: bool = False,
) -> Decision:
    """The recipe's LR range test at ``hp``: max LR by `read_max_lr` (the lower of the
    training and validation readings of `suggest.smith`), min LR = max/10.

    A sweep that never turned (its loss still falling at the end LR) is run again once
    with an end LR `WIDEN` times higher and proportionally more steps; if it still has not
    turned, the decision says the test is inconclusive (``extra["inconclusive"]``).

    ``repeats=True`` (the final reading) runs the test on two seeds; when their readings
    are more than `SPREAD_LIMIT` apart a third seed is run and the median of the three is
    taken (the outlier dropped), else the lower of the two: one range test's reading can
    move 5x between seeds, and a 1cycle past its peak LR collapses while one a little below
    it loses a little.
    """
    task = ctx.load()
    budget = default_range_budget(task, hp, num_steps)
    seeds = [seed, seed + 1000] if repeats else [seed]
    readings, results, notes, inconclusive = [], [], [], False

    def one(seed_: int, budget_: dict[str, Any], tag_: str) -> tuple[TrialResult, RangeTest]:
        (result,) = ctx.run([_range_spec(ctx, hp, budget_, seed_, tag=tag_)])
        test = result.range_test
        if result.status == "failed" or test is None or test.suggestion is None:
            raise UsageError(
                f"the LR range test at batch {hp.batch_size} gave no suggestion: "
                f"{result.reason or (test.stop_reason if test else '')}"
            )
        return result, test

    def reading(seed_: int, k: int) -> tuple[float, str]:
        nonlocal inconclusive
        suffix = "" if k == 0 else f"-seed{k}"
        result, test = one(seed_, budget, tag + suffix)
        value, how, turned = read_max_lr(test)
        results.append((result, value))
        if not turned:
            wide = {
                **budget,
                "end_lr": budget["end_lr"] * WIDEN,
                "num_steps": int(budget["num_steps"] * (1 + math.log10(WIDEN) / 6)),
            }
            result, test = one(seed_, wide, tag + suffix + "-wide")
            value, how, turned = read_max_lr(test)
            results.append((result, value))
            notes.append(
                f"seed {seed_}: the loss was still falling at the sweep's end LR "
                f"{budget['end_lr']:g}; rerun to {wide['end_lr']:g}"
                + ("" if turned else ", where it still had not turned: inconclusive")
            )
            inconclusive = inconclusive or not turned
        return value, how

    for k, sd in enumerate(seeds):
        readings.append(reading(sd, k))
    if repeats:
        a, b = readings[0][0], readings[1][0]
        if max(a, b) / min(a, b) > SPREAD_LIMIT:
            readings.append(reading(seed + 2000, 2))
            value = sorted(r[0] for r in readings)[1]
            combine = (
                f"two seeds read {a:.3g} and {b:.3g} (more than {SPREAD_LIMIT:g}x apart); a "
                f"third read {readings[2][0]:.3g}: the median {value:.3g} was taken"
            )
        else:
            value = min(a, b)
            combine = f"two seeds read {a:.3g} and {b:.3g}: the lower was taken"
    else:
        value, combine = readings[0][0], ""
    rule = "smith_train_and_validation" + ("_seeds" if repeats else "")
    first_test = results[0][0].range_test
    plot = ctx.plot_path(f"{tag}_range_test.png")
    if plot is not None:
        # the plot marks the decision's max LR (and the seeds' spread), not the training
        # curve's own suggestion
        picks = [r[0] for r in readings]
        decided = replace(
            first_test.suggestion,
            max_lr=value,
            min_lr=value / 10,
            rule=rule,
            spread=(min(picks), max(picks)) if len(picks) > 1 else None,
        )
        replace(first_test, suggestion=decided).plot(
            plot,
            title=f"{task.name}: LR range test, batch {hp.batch_size}, "
            f"weight decay {hp.weight_decay:g}, momentum {hp.max_momentum:g}",
        )
    rows = []
    for r, read in results:
        t = r.range_test
        rows.append(
            {
                "seed": r.spec.seed,
                "max_lr": read,
                "training_curve": t.suggestion.max_lr,
                "end_lr": t.end_lr,
                "stopped_at_lr": t.stop_lr,
                "stop_reason": t.stop_reason,
                "steps": len(t.lrs),
            }
        )
    reason = "; ".join(x for x in [readings[0][1], *notes, combine] if x)
    return Decision(
        name="learning_rate",
        value=value,
        rule=rule,
        reason=reason,
        table=tuple(rows),
        trials=tuple(r.key for r, _ in results),
        plot=str(plot) if plot else None,
        extra={"min_lr": value / 10, "inconclusive": inconclusive},
        compute=_compute(ctx, [r for r, _ in results]),
    )


BATCH_COMPARISONS = ("epochs", "time", "off")
"""How `batch_size_search` compares candidate batch sizes (see `batch_comparison`)."""


def batch_comparison(compare: bool | str) -> str:
    """The comparison mode named by ``compare``: ``"epochs"`` (each candidate trains the
    final run's epochs; True means this), ``"time"`` (short runs of equal wall-clock time)
    or ``"off"`` (False: the task's batch size capped by memory)."""
    if compare is True:
        return "epochs"
    if compare is False or compare is None:
        return "off"
    if compare not in BATCH_COMPARISONS:
        raise UsageError(
            f"the batch-size comparison must be one of {', '.join(BATCH_COMPARISONS)}, "
            f"got {compare!r}"
        )
    return str(compare)


def one_cycle_spec(
    ctx: StudyContext, hp: HParams, epochs: float, seed: int, tag: str = "final"
) -> TrialSpec:
    """The trial of a full 1cycle run at ``hp`` for ``epochs``: the recipe's final run and
    the batch-size comparison's runs are the same spec, so the store hands the winner's run
    back as the final run instead of training it twice."""
    return ctx.spec("train", hp.with_(schedule="one-cycle"), {"epochs": epochs}, seed, tag=tag)


def batch_size_search(
    ctx: StudyContext,
    hp: HParams,
    *,
    compare: bool | str = "epochs",
    candidates: Sequence[int] | None = None,
    memory_limit: int | str | None = None,
    epochs: float = 20.0,
    compare_epochs: float = 5.0,
    num_steps: int = 300,
    seed: int = 0,
    device: str | None = None,
    max_epochs: float | None = None,
) -> Decision:
    """Choose the batch size. The largest that fits in memory caps the candidates; then,
    by ``compare`` (`batch_comparison`):

    - ``"epochs"`` (default): each candidate (`batch.equal_epoch_candidates`) gets its own
      range-test max LR and the full 1cycle run the recipe would make with it, ``epochs``
      epochs of ``hp`` (the spec of `one_cycle_spec`); the best final validation metric
      wins, ties within the metric's standard error going to the larger batch. The
      seconds each took are in the table.
    - ``"time"``: the same, but the runs are short and of equal wall-clock time (that of
      ``compare_epochs`` epochs at the middle candidate, shortened so the whole comparison
      stays within ``max_epochs`` epochs of compute). Step timings are kept in the store,
      so a resumed search plans the same runs.
    - ``"off"``: the task's batch size, capped by memory.

    ``hp`` carries the final run's settings (cyclical momentum included); the range tests
    hold momentum at ``hp.max_momentum``. The decision's ``extra["max_lr"]`` holds each
    candidate's max LR and ``extra["lr_trials"]`` the keys of their range tests.
    """
    from disciplined.studies.batch import (
        best_at_equal_time,
        candidate_batch_sizes,
        equal_epoch_candidates,
        equal_time_steps,
        largest_batch_that_fits,
        measure_step_seconds,
        memory_decision,
        metric_noise,
    )
    from disciplined.training.fit import batches_per_epoch

    mode = batch_comparison(compare)
    task = ctx.load()
    device = device or ctx.device  # the memory probe and the timings run where the trials do
    fit_ = largest_batch_that_fits(task, hp, memory_limit=memory_limit, device=device)
    if mode == "off":
        return memory_decision(fit_, task)
    if mode == "epochs":
        sizes = equal_epoch_candidates(task, fit_.batch_size, candidates)
    else:
        sizes = candidate_batch_sizes(task, fit_.batch_size, candidates)
    if len(sizes) == 1:
        return memory_decision(fit_, task, why=f"only one candidate ({sizes[0]}) to compare")
    range_hp = peak_momentum(hp)
    lr_decisions = {
        b: learning_rate_test(
            ctx,
            range_hp.with_(batch_size=b),
            num_steps=num_steps,
            seed=seed,
            tag=f"batch{b}",
            repeats=True,
        )
        for b in sizes
    }
    if mode == "epochs":
        return _compare_at_equal_epochs(ctx, task, hp, fit_, sizes, lr_decisions, epochs, seed)
    ctx.store.bind({"task": ctx.task, "task_options": ctx.task_options})
    timing_key = f"batch_step_seconds:{sizes}:{hp.optimizer}"
    timing = ctx.store.get_meta(timing_key)
    if timing is None:
        measured = measure_step_seconds(task, hp, sizes, device=device)
        timing = ctx.store.setdefault_meta(timing_key, {str(b): s for b, s in measured.items()})
    per_step = {int(b): float(s) for b, s in timing.items()}
    middle = sizes[len(sizes) // 2]
    per_epoch = {b: batches_per_epoch(task.train_data, b) for b in sizes}

    test_cost = sum(num_steps / per_epoch[b] for b in sizes)
    seconds = compare_epochs * per_epoch[middle] * per_step[middle]
    epochs_per_second = sum(1 / (per_epoch[b] * per_step[b]) for b in sizes)
    if max_epochs is not None:
        room = max_epochs - test_cost
        if room < len(sizes):  # not even an epoch a candidate
            return memory_decision(
                fit_,
                task,
                why=(
                    f"the {max_epochs:.1f} epochs of budget left cannot compare {len(sizes)} "
                    f"batch sizes (their range tests alone take {test_cost:.1f})"
                ),
            )
        seconds = min(seconds, room / epochs_per_second)
    steps = equal_time_steps(per_step, seconds)
    specs = []
    for b in sizes:
        epochs = steps[b] / batches_per_epoch(task.train_data, b)
        specs.append(
            ctx.spec(
                "train",
                hp.with_(batch_size=b, max_lr=lr_decisions[b].value),
                {"epochs": epochs, "eval_every": max(1, steps[b] // 10)},
                seed,
                tag=f"batch_size={b}",
            )
        )
    results = ctx.run(specs)
    rows = []
    for b, r in zip(sizes, results, strict=True):
        h = r.history
        final = h.final if h else None
        rows.append(
            {
                "batch_size": b,
                "max_lr": lr_decisions[b].value,
                "steps": steps[b],
                "epochs": h.epochs if h else 0.0,
                "seconds": h.seconds if h else 0.0,
                "val_metric": final.val_metric if final else math.nan,
                "val_loss": final.val_loss if final else math.nan,
                "diverged": r.status != "ok",
                "trial": r.key,
            }
        )
    finite = [r["val_metric"] for r in rows if math.isfinite(r["val_metric"])]
    noise = metric_noise(max(finite), task.num_val, task.kind) if finite else 0.0
    chosen, reason = best_at_equal_time(rows, task.higher_is_better, tolerance=noise)
    plot = ctx.plot_path("batch_size.png")
    if plot is not None:
        from disciplined.report.plots import plot_metric_vs_time

        plot_metric_vs_time(
            [r.history for r in results],
            [f"batch {b}" for b in sizes],
            plot,
            title=f"{task.name}: batch sizes at equal wall-clock time",
        )
    lr_trials = tuple(k for d in lr_decisions.values() for k in d.trials)
    compute = _compute(ctx, results)
    for d in lr_decisions.values():
        compute["epochs"] += d.compute["epochs"]
        compute["seconds"] += d.compute["seconds"]
        compute["trials"] += d.compute["trials"]
    return Decision(
        name="batch_size",
        value=chosen,
        rule="best_at_equal_time",
        reason=reason,
        table=tuple(rows),
        trials=lr_trials + tuple(r.key for r in results),
        plot=str(plot) if plot else None,
        extra={
            "memory": fit_.to_dict(),
            "seconds_each": seconds,
            "seconds_per_step": {str(b): per_step[b] for b in sizes},
            "max_lr": {str(b): lr_decisions[b].value for b in sizes},
            "lr_trials": {str(b): lr_decisions[b].trials[0] for b in sizes},
        },
        compute=compute,
    )


def _compare_at_equal_epochs(
    ctx: StudyContext,
    task: Task,
    hp: HParams,
    fit_: Any,
    sizes: list[int],
    lr_decisions: dict[int, Decision],
    epochs: float,
    seed: int,
) -> Decision:
    """Each candidate's full 1cycle run at its own max LR; the best final metric wins."""
    from disciplined.studies.batch import best_at_equal_time, metric_noise

    specs = [
        one_cycle_spec(ctx, hp.with_(batch_size=b, max_lr=lr_decisions[b].value), epochs, seed)
        for b in sizes
    ]
    results = ctx.run(specs)
    rows = []
    for b, r in zip(sizes, results, strict=True):
        final = r.history.final if r.history else None
        rows.append(
            {
                "batch_size": b,
                "max_lr": lr_decisions[b].value,
                "epochs": r.history.epochs if r.history else 0.0,
                "seconds": r.seconds,
                "val_metric": final.val_metric if final else math.nan,
                "val_loss": final.val_loss if final else math.nan,
                # a blow-up or a finite collapse back to the starting loss (`diagnose`)
                "diverged": r.status != "ok"
                or r.history is None
                or diagnose(r.history).verdict == "diverged",
                "trial": r.key,
            }
        )
    finite = [r["val_metric"] for r in rows if math.isfinite(r["val_metric"])]
    noise = metric_noise(max(finite), task.num_val, task.kind) if finite else 0.0
    try:
        chosen, reason = best_at_equal_time(
            rows, task.higher_is_better, tolerance=noise, same=f"{epochs:g} epochs"
        )
    except ValueError as exc:
        raise UsageError(f"batch-size comparison: {exc}") from None
    plot = ctx.plot_path("batch_size.png")
    if plot is not None:
        from disciplined.report.plots import plot_metric_vs_epoch

        plot_metric_vs_epoch(
            [r.history for r in results],
            [f"batch {b} (max LR {lr_decisions[b].value:.3g})" for b in sizes],
            plot,
            title=f"{task.name}: batch sizes over the final run's {epochs:g} epochs",
        )
    compute = _compute(ctx, results)
    for d in lr_decisions.values():
        for key in ("epochs", "seconds", "trials"):
            compute[key] += d.compute[key]
    return Decision(
        name="batch_size",
        value=chosen,
        rule="best_at_equal_epochs",
        reason=reason,
        table=tuple(rows),
        trials=tuple(k for d in lr_decisions.values() for k in d.trials)
        + tuple(r.key for r in results),
        plot=str(plot) if plot else None,
        extra={
            "memory": fit_.to_dict(),
            "max_lr": {str(b): lr_decisions[b].value for b in sizes},
            "lr_trials": {str(b): lr_decisions[b].trials[0] for b in sizes},
            "run_trials": {str(b): r.key for b, r in zip(sizes, results, strict=True)},
            "noise": noise,
        },
        compute=compute,
    )


def starting_hparams(task: Task, optimizer: str = "sgd") -> HParams:
    """Where the recipe's range tests start: the task's batch size, momentum 0.9 held
    constant, no weight decay (the LR is the sweep's own)."""
    return HParams(
        max_lr=0.1,
        max_momentum=0.9,
        min_momentum=0.9,
        weight_decay=0.0,
        batch_size=task.default_batch_size,
        optimizer=optimizer,
    )


def range_test_steps(
    ctx: StudyContext,
    hp: HParams,
    *,
    num_steps: int,
    seed: int,
    dropout: bool = False,
    record: Callable[[str, Decision], Decision] | None = None,
) -> HParams:
    """The recipe's first steps, read from range tests at the task's batch size, each at
    the values chosen before it: the max LR (`learning_rate_test`), the weight decay
    (`weight_decay_sweep` over the task's grid), the dropout when asked (`dropout_sweep`),
    then the momentum (`momentum_test`, which also sets the cycle's minimum). Each
    `Decision` goes to ``record(step, decision)``; returns ``hp`` with the choices."""
    keep = record or (lambda _step, d: d)
    lr0 = keep("lr_range_test", learning_rate_test(ctx, hp, num_steps=num_steps, seed=seed))
    hp = hp.with_(max_lr=lr0.value)
    wd = keep("weight_decay", weight_decay_sweep(ctx, hp, None, num_steps=num_steps, seed=seed))
    hp = hp.with_(weight_decay=wd.value)
    if dropout:  # Smith: chosen like weight decay, at the weight decay chosen
        drop = keep(
            "dropout",
            dropout_sweep(ctx, hp, RECIPE_DROPOUTS, num_steps=num_steps, seed=seed),
        )
        hp = hp.with_(dropout=drop.value)
    mom = keep("momentum", momentum_test(ctx, hp, num_steps=num_steps, seed=seed))
    return hp.with_(max_momentum=mom.extra["max_momentum"], min_momentum=mom.extra["min_momentum"])


RECIPE_DROPOUTS = (0.0, 0.1, 0.2, 0.3, 0.5)
"""The dropout rates the recipe tries, when asked, on a task whose model takes one."""
