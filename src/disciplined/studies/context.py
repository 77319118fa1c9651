"""What every study shares: the `StudyContext` its trials run through (its `Ledger` the one
account of their compute), the range-test spec and budget, a sweep over one setting, the
check of a sweep's values, the full 1cycle run's spec, and the plots a study asks for.

Studies draw nothing: each records the plots of its evidence as `PlotSpec`s on its
`Decision` (`sweep_figure`, `range_test_figure`, `batch_figure`, the last block of this
module), and the outputs layer draws them from the trials (`report.figures.draw`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from disciplined.errors import UsageError
from disciplined.studies.decide import (
    CurveSummary,
    Decision,
    Payload,
    UntypedPayload,
    summarize_range_test,
)
from disciplined.studies.ledger import Ledger
from disciplined.studies.plotspec import PlotSpec
from disciplined.tasks import Task, load_task
from disciplined.trials.executors import Executor, InProcessExecutor
from disciplined.trials.hparams import HParams
from disciplined.trials.spec import TrialResult, TrialSpec, run_trial
from disciplined.trials.store import MemoryStore, TrialStore

__all__ = [
    "StudyContext",
    "batch_figure",
    "check_values",
    "default_range_budget",
    "one_cycle_spec",
    "range_spec",
    "range_test_figure",
    "sweep",
    "sweep_decision",
    "sweep_figure",
]

Progress = Callable[[TrialResult, bool], None]


@dataclass
class StudyContext:
    """Where and how a study runs its trials: the task (a reference a worker can rebuild),
    the store, the executor, the runner (``run_trial``; tests count calls through it), a
    working folder (``out``: the weight-decay study's snapshots), a progress callback, and
    the ``device`` (with ``amp``, its mixed precision) every trial of the context runs on.
    ``ran_on`` maps each trial it handed back to where it ran (a result read from the store
    keeps where it ran then); ``results`` keeps every result it handed back, by key, for
    the plots its decisions ask for; ``ledger`` charges each of them once, to the step open
    when it came back (`step`)."""

    task: str
    task_options: dict[str, Any] = field(default_factory=dict)
    store: TrialStore = field(default_factory=MemoryStore)
    executor: Executor = field(default_factory=InProcessExecutor)
    runner: Callable[[TrialSpec], TrialResult] = run_trial
    out: Path | None = None
    on_result: Progress | None = None
    task_obj: Task | None = None
    device: str = "cpu"
    amp: str | None = None
    ran_on: dict[str, str] = field(default_factory=dict)
    results: dict[str, TrialResult] = field(default_factory=dict)
    ledger: Ledger = field(default_factory=Ledger)

    def load(self) -> Task:
        """The task itself (``task_obj`` when given, else built from the reference)."""
        if self.task_obj is None:
            self.task_obj = load_task(self.task, self.task_options)
        return self.task_obj

    def run(self, specs: Sequence[TrialSpec]) -> list[TrialResult]:
        """Run (or read back) ``specs`` on this context's device; results in the same order,
        each charged to the open step unless a step already paid for it (`Ledger`)."""
        self.store.bind({"task": self.task, "task_options": self.task_options})
        specs = [s if s.device == self.device else replace(s, device=self.device) for s in specs]
        results = self.executor.run(specs, self.store, runner=self.runner, on_result=self.on_result)
        for r in results:
            self.ran_on[r.key] = r.device or "unrecorded"
            self.results[r.key] = r
        self.ledger.charge_results(results)
        return results

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Charge every trial that comes back through `run` inside the block to the step
        ``name`` (`Ledger.step`)."""
        with self.ledger.step(name):
            yield

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


def range_spec(
    ctx: StudyContext,
    hp: HParams,
    budget: dict[str, Any],
    seed: int,
    tag: str,
    init: str | None = None,
) -> TrialSpec:
    """A validation-mode range test of ``hp`` on this context's task (`StudyContext.spec`)."""
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


def sweep(
    ctx: StudyContext,
    name: str,
    values: Sequence[float],
    make_hp: Callable[[float], HParams],
    budget: dict[str, Any],
    seed: int,
    init: str | None = None,
) -> tuple[list[TrialResult], list[CurveSummary]]:
    """Range tests at each of ``values`` (``make_hp(v)`` the settings of each), run
    together; their results and their `decide.summarize_range_test` summaries, in order."""
    specs = [
        range_spec(ctx, make_hp(v), budget, seed, tag=f"{name}={v!r}", init=init) for v in values
    ]
    results = ctx.run(specs)
    summaries = [summarize_range_test(v, r) for v, r in zip(values, results, strict=True)]
    return results, summaries


def check_values(name: str, values: Sequence[float], lo: float, hi: float | None) -> list[float]:
    """The values of a ``name`` sweep as floats, each finite and in ``[lo, hi)`` (``>= lo``
    when ``hi`` is None), at least two and none repeated; else `UsageError` naming them."""
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


def one_cycle_spec(
    ctx: StudyContext, hp: HParams, epochs: float, seed: int, tag: str = "final"
) -> TrialSpec:
    """The trial of a full 1cycle run at ``hp`` for ``epochs``: the recipe's final run and
    the batch-size comparison's runs are the same spec, so the store hands the winner's run
    back as the final run instead of training it twice."""
    return ctx.spec("train", hp.with_(schedule="one-cycle"), {"epochs": epochs}, seed, tag=tag)


# Drawing. Every plot the studies make is drawn by one of the three functions below (with
# `StudyContext.plot_path`), called as a study's decision is built and handed back as its
# ``plot`` (a path, or None without an output folder). Issue 17 moves them to `report/`.


def sweep_figure(
    file: str, results: Sequence[TrialResult], labels: Sequence[str], title: str
) -> PlotSpec:
    """The overlay of a sweep's range tests (their validation curves) in ``file``."""
    return PlotSpec(
        "range_overlay", file, tuple(r.key for r in results), tuple(labels), title
    )


def sweep_decision(
    task: str,
    name: str,
    label: str,
    what: str,
    values: Sequence[float],
    results: Sequence[TrialResult],
    rows: Sequence[CurveSummary],
    chosen: float,
    reason: str,
    *,
    compute: dict[str, float],
    rule: str = "lowest_val_loss_at_high_lr",
    payload: Payload | None = None,
    extra: dict[str, Any] | None = None,
) -> Decision:
    """The `Decision` of a sweep of range tests over one setting (weight decay, momentum,
    dropout): the value chosen by ``rule`` with its reason, a row per value, the trials, the
    study's typed ``payload``, and the overlay of their validation curves (``name``.png,
    each labelled ``label=value``, titled with the ``task``'s name and ``what`` the sweep
    varied). ``extra`` (an untyped dictionary, kept for older callers) is used only
    without a ``payload``."""
    figure = sweep_figure(
        f"{name}.png",
        results,
        [f"{label}={v:g}" for v in values],
        f"{task}: LR range tests at each {what} (validation loss)",
    )
    return Decision(
        name=name,
        value=chosen,
        rule=rule,
        reason=reason,
        table=tuple(r.to_row() for r in rows),
        trials=tuple(r.key for r in results),
        figures=(figure,),
        payload=payload if payload is not None or not extra else UntypedPayload(dict(extra)),
        compute=compute,
    )


def range_test_figure(
    file: str, first: TrialResult, value: float, rule: str, picks: Sequence[float], title: str
) -> PlotSpec:
    """A `learning_rate_test`'s first range test, marked with the decided max LR (and the
    seeds' spread), not the training curve's own suggestion."""
    marks = {
        "max_lr": value,
        "min_lr": value / 10,
        "rule": rule,
        "spread": (min(picks), max(picks)) if len(picks) > 1 else None,
    }
    return PlotSpec("range_test", file, (first.key,), ("range test",), title, marks)


def batch_figure(
    results: Sequence[TrialResult],
    sizes: Sequence[int],
    max_lr: dict[int, float],
    name: str,
    epochs: float | None,
) -> PlotSpec:
    """The batch-size candidates' runs: the metric over the final run's ``epochs``, or over
    wall-clock time when ``epochs`` is None (the equal-time comparison)."""
    keys = tuple(r.key for r in results)
    if epochs is None:
        return PlotSpec(
            "metric_vs_time",
            "batch_size.png",
            keys,
            tuple(f"batch {b}" for b in sizes),
            f"{name}: batch sizes at equal wall-clock time",
        )
    return PlotSpec(
        "metric_vs_epoch",
        "batch_size.png",
        keys,
        tuple(f"batch {b} (max LR {max_lr[b]:.3g})" for b in sizes),
        f"{name}: batch sizes over the final run's {epochs:g} epochs",
    )
