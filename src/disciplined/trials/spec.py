"""Trials: the unit of work a study runs, as plain serializable records.

A `TrialSpec` names a task (by reference, so a worker process can rebuild it), the
hyper-parameters, the kind of run (``range_test`` or ``train``), its budget and its seed; its
`key` is a stable hash of all that, so a store can tell a finished trial from a new one. A
`TrialResult` holds the outcome: a `RangeTest` or a `History`, the wall seconds, and a status
(``ok``, ``diverged``, ``failed`` with its reason, or ``pruned``: a training run stopped by
the pruning bounds in its budget, `prune_rule`). `run_trial` executes a spec in this
process.

Only what says something about the hyper-parameters is recorded: a loss that turns NaN,
infinite or too large, or arithmetic that overflows, is ``diverged``; a spec that cannot run
(a `UsageError`, such as a schedule too short to build at its batch size, or running out of
memory) is ``failed``. The task's own code failing (`TaskCodeError`) is raised as it is, and
any other exception is a bug of ours, raised as `TrialCrash`: neither is stored as a result of
the user's hyper-parameters.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import traceback
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch

from disciplined.divergence import diverged_at_start
from disciplined.errors import TaskCodeError, UsageError
from disciplined.measure.range_test import RangeTest, lr_range_test
from disciplined.tasks import Task, load_task
from disciplined.training.fit import EvalRecord, History, device_name, resolve_device
from disciplined.training.history import whole_epoch
from disciplined.trials.hparams import HParams, build_optimizer, train_task

__all__ = [
    "PruneRule",
    "TrialCrash",
    "TrialResult",
    "TrialSpec",
    "prune_rule",
    "run_trial",
    "task_for",
]

TrialKind = Literal["range_test", "train"]

RANGE_TEST_HPARAMS = ("batch_size", "dropout", "max_momentum", "optimizer", "weight_decay")
"""The hyper-parameters a range test's result depends on (`run_trial`: the optimizer is built
at the sweep's start LR with ``max_momentum``; the schedule is the sweep's own)."""
Status = Literal["ok", "diverged", "failed", "pruned"]


@dataclass(frozen=True)
class TrialSpec:
    """What to run. ``budget`` holds the run's size: for ``train`` ``{"epochs": E}``, with
    optionally ``"eval_every"`` (steps) and ``"prune"`` (`prune_rule`); for
    ``range_test`` any of ``num_steps``, ``start_lr``, ``end_lr``, ``val_every``,
    ``val_batches``, ``mode``. ``task_options`` are passed to the task function.
    ``init`` optionally names a snapshot (a path) to start training from instead of fresh
    weights. ``device`` is where it runs (``cpu``, ``cuda``, ``cuda:N``; a worker process
    reads it from the spec) and ``amp`` its mixed precision on CUDA (``bf16`` or ``fp16``,
    ``None`` for full precision).
    """

    task: str
    hparams: dict[str, Any]
    kind: TrialKind
    budget: dict[str, Any]
    seed: int = 0
    task_options: dict[str, Any] = field(default_factory=dict)
    init: str | None = None
    tag: str = ""
    device: str = "cpu"
    amp: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("range_test", "train"):
            raise ValueError(f"kind must be 'range_test' or 'train', got {self.kind!r}")
        if self.amp not in (None, "bf16", "fp16"):
            raise ValueError(f"amp must be None, 'bf16' or 'fp16', got {self.amp!r}")
        HParams.from_dict(self.hparams)  # validates

    @property
    def key(self) -> str:
        """A stable 16-hex-digit hash of everything that determines the result, and nothing
        else: the ``tag`` is a label, and a range test reads only the hyper-parameters in
        `RANGE_TEST_HPARAMS` (its LR is the sweep's). Two studies asking for the same run
        (the first range test and the weight-decay sweep's test at 0, say) share one.
        The ``device`` is where the run happens, not what it is (like the thread count, it
        moves only the last bits), so a study resumed on another machine reads back what
        finished; mixed precision changes the arithmetic and is in the key when set."""
        d = asdict(self)
        del d["tag"], d["device"]
        if d["amp"] is None:
            del d["amp"]
        if self.kind == "range_test":
            d["hparams"] = {k: v for k, v in self.hparams.items() if k in RANGE_TEST_HPARAMS}
        text = json.dumps(d, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def hp(self) -> HParams:
        """The hyper-parameters as an `HParams`."""
        return HParams.from_dict(self.hparams)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dictionary."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrialSpec:
        """Rebuild from `to_dict` output."""
        return cls(**d)


@dataclass(frozen=True)
class TrialResult:
    """The outcome of one trial; immutable once recorded."""

    key: str
    spec: TrialSpec
    status: Status
    seconds: float
    range_test: RangeTest | None = None
    history: History | None = None
    reason: str | None = None
    device: str | None = None
    """Where the trial ran (``cpu``, ``cuda:0``); None for a result recorded before this
    was kept, or one that failed before reaching a device."""
    retries: tuple[str, ...] = ()
    """Why each earlier attempt at this trial was lost, oldest first (its worker process or
    node died: the error's last line); empty when the first attempt finished. Only an
    executor that retries lost workers fills it (`RayExecutor`); it is in the JSON only
    when not empty."""

    @property
    def epochs(self) -> float:
        """Compute spent, in epochs of the task (range-test steps count as training steps)."""
        if self.history is not None:
            return self.history.epochs
        if self.range_test is not None:
            per_epoch = self.range_test.meta.get("steps_per_epoch") or 1
            return len(self.range_test.lrs) / per_epoch
        return 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dictionary (``retries`` only when there were some)."""
        d = {
            "key": self.key,
            "spec": self.spec.to_dict(),
            "status": self.status,
            "seconds": self.seconds,
            "range_test": self.range_test.to_dict() if self.range_test else None,
            "history": self.history.to_dict() if self.history else None,
            "reason": self.reason,
            "device": self.device,
        }
        if self.retries:
            d["retries"] = list(self.retries)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrialResult:
        """Rebuild from `to_dict` output."""
        return cls(
            key=d["key"],
            spec=TrialSpec.from_dict(d["spec"]),
            status=d["status"],
            seconds=d["seconds"],
            range_test=RangeTest.from_dict(d["range_test"]) if d.get("range_test") else None,
            history=History.from_dict(d["history"]) if d.get("history") else None,
            reason=d.get("reason"),
            device=d.get("device"),
            retries=tuple(d.get("retries", ())),
        )


class TrialCrash(RuntimeError):
    """A trial raised an exception that says nothing about its hyper-parameters: a bug in
    this library or in the task's code. The original exception is the ``__cause__``; the
    trial is not recorded, so it runs again once the bug is fixed."""


def _numeric_blow_up(exc: BaseException) -> bool:
    """Whether ``exc`` is arithmetic overflowing (a learning rate or weight decay too large
    for float32, say): a divergence of the hyper-parameters, not a bug."""
    if isinstance(exc, FloatingPointError | OverflowError):
        return True
    return isinstance(exc, RuntimeError) and "overflow" in str(exc).lower()


_TASK_CACHE: dict[str, Task] = {}


def task_for(spec: TrialSpec) -> Task:
    """The spec's task, built once per process and reused."""
    cache_key = json.dumps([spec.task, spec.task_options], sort_keys=True, default=str)
    if cache_key not in _TASK_CACHE:
        _TASK_CACHE[cache_key] = load_task(spec.task, spec.task_options)
    return _TASK_CACHE[cache_key]


def run_trial(spec: TrialSpec, task: Task | None = None, device: str | None = None) -> TrialResult:
    """Run ``spec`` in this process, on ``spec.device`` (``device``, when given, overrides
    it). A run whose loss diverges, or whose arithmetic overflows, is returned as
    ``diverged``; one that cannot run (`UsageError`, out of memory) as ``failed`` (the
    reason is the error's last line). Any other exception is raised as `TrialCrash`. The
    result records the device."""
    t0 = time.perf_counter()
    where: str | None = None
    try:
        dev = resolve_device(device or spec.device)
        where = device_name(dev)
        amp: bool | str = spec.amp or False
        task = task or task_for(spec)
        hp = spec.hp
        if spec.kind == "train":
            return _run_train(spec, task, hp, dev, amp, where, t0)
        torch.manual_seed(spec.seed)
        model = _initial_model(spec, task, hp)
        opt = build_optimizer(model, hp.with_(max_lr=spec.budget.get("start_lr", 1e-5)))
        b = spec.budget
        test = lr_range_test(
            model,
            opt,
            task.loss_fn,
            task.train_data,
            val_data=task.val_data if b.get("val", True) else None,
            start_lr=b.get("start_lr", 1e-5),
            end_lr=b.get("end_lr", 10.0),
            num_steps=int(b.get("num_steps", 300)),
            mode=b.get("mode", "exp"),
            batch_size=hp.batch_size,
            val_every=int(b.get("val_every", 10)),
            val_batches=int(b.get("val_batches", 2)),
            seed=spec.seed,
            device=dev,
            amp=amp,
            rule=b.get("rule", "smith"),
            meta={"task": task.name, "steps_per_epoch": _steps_per_epoch(task, hp)},
        )
        # stopped before its stop rule could read a level: diverged at the sweep's start LR
        status = "diverged" if diverged_at_start(test.stop_step) else "ok"
        return TrialResult(
            spec.key,
            spec,
            status,
            time.perf_counter() - t0,
            range_test=test,
            reason=test.stop_reason if status == "diverged" else None,
            device=where,
        )
    except Exception as exc:
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        seconds = time.perf_counter() - t0
        if isinstance(exc, TaskCodeError):  # the task's code failed: not a result, not ours
            raise
        if _numeric_blow_up(exc):  # the hyper-parameters' fault: recorded, the study goes on
            return TrialResult(spec.key, spec, "diverged", seconds, reason=last, device=where)
        if isinstance(exc, UsageError | torch.OutOfMemoryError):  # this spec cannot run
            return TrialResult(spec.key, spec, "failed", seconds, reason=last, device=where)
        raise TrialCrash(f"trial {spec.key} ({spec.tag or spec.kind}) crashed: {last}") from exc


def _run_train(
    spec: TrialSpec,
    task: Task,
    hp: HParams,
    dev: torch.device,
    amp: bool | str,
    where: str,
    t0: float,
) -> TrialResult:
    """A ``train`` spec's run: its 1cycle (or other schedule) from the spec's initial
    weights, pruned by ``budget["prune"]`` when given."""
    model = _initial_model(spec, task, hp)
    prune = prune_rule(spec.budget.get("prune"), task.higher_is_better)
    _, history = train_task(
        task,
        hp,
        epochs=float(spec.budget["epochs"]),
        seed=spec.seed,
        device=dev,
        amp=amp,
        model=model,
        eval_every=spec.budget.get("eval_every"),
        on_eval=prune,
    )
    status: Status = "diverged" if history.diverged else "ok"
    if prune is not None and prune.fired:
        status = "pruned"
    return TrialResult(
        spec.key,
        spec,
        status,
        time.perf_counter() - t0,
        history=history,
        reason=(
            history.stopped_reason
            if status == "pruned" or history.collapsed_step is not None
            else history.diverged_reason
        ),
        device=where,
    )


class PruneRule:
    """A training trial's pruning rule, read after each evaluation (`fit`'s ``on_eval``).

    ``bounds[i]`` is the bound after epoch ``i + 1`` (None: no check there), set by the
    search before the trial starts (`disciplined.search.MedianStop`: the median
    of the finished trials at each epoch). As in Optuna's ``MedianPruner``, the trial's
    best validation metric so far is compared: once it is worse than the bound (or not
    finite), the run stops and the trial is ``pruned``.
    """

    def __init__(self, bounds: Sequence[float | None], higher_is_better: bool) -> None:
        self.bounds = list(bounds)
        self.higher_is_better = higher_is_better
        self.best = math.nan
        self.fired = False

    def __call__(self, record: EvalRecord) -> str | None:
        m = record.val_metric
        if math.isfinite(m) and not (
            math.isfinite(self.best)
            and (self.best >= m if self.higher_is_better else self.best <= m)
        ):
            self.best = m
        epoch = whole_epoch(record.epoch)
        if epoch is None or not 1 <= epoch <= len(self.bounds):
            return None
        bound = self.bounds[epoch - 1]
        if bound is None:
            return None
        worse = self.best < bound if self.higher_is_better else self.best > bound
        if math.isfinite(self.best) and not worse:
            return None
        self.fired = True
        return (
            f"pruned after epoch {epoch}: best validation metric so far {self.best:.4g}, "
            f"worse than the bound {bound:.4g} at that epoch"
        )


def prune_rule(prune: dict[str, Any] | None, higher_is_better: bool) -> PruneRule | None:
    """The `PruneRule` of a train spec's ``budget["prune"]`` (``{"bounds": [...]}``), or
    None when there is none."""
    if not prune:
        return None
    bounds = prune.get("bounds")
    if not isinstance(bounds, list) or not all(
        b is None or isinstance(b, int | float) for b in bounds
    ):
        raise ValueError(
            f"budget['prune'] must be {{'bounds': [number or None, ...]}}, got {prune!r}"
        )
    return PruneRule(bounds, higher_is_better)


def _steps_per_epoch(task: Task, hp: HParams) -> int:
    from disciplined.training.fit import batches_per_epoch

    return batches_per_epoch(task.train_data, hp.batch_size)


def _initial_model(spec: TrialSpec, task: Task, hp: HParams) -> torch.nn.Module:
    torch.manual_seed(spec.seed)
    model = task.model(dropout=hp.dropout) if task.takes_dropout else task.model()
    if spec.init is not None:
        state = torch.load(spec.init, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    return model
