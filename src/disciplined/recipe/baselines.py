"""The baselines the recipe is measured against: grid, random and TPE search.

All three search the same space (`SearchSpace`): the schedule (1cycle, constant, or step:
the LR divided by 10 at 50% and 75% of training), the maximum learning rate (the constant
one, or the initial one of the step schedule), momentum and weight decay, at the task's batch
size or over the space's ``batch_sizes``. Every trial is one full training run of
``epochs`` epochs, scored by its final validation metric.

They run on the recipe's own trial machinery: each trial is a `TrialSpec` of kind ``train``
run by an `Executor` into a `TrialStore`, so a search that is interrupted resumes from its
store without running a finished trial again, and trials can run in worker processes.

Each search returns a frozen `SearchResult`: the trials in the order they ran and a
``trace`` of (cumulative epochs, cumulative seconds, best metric so far), which says what the
search had found after any amount of compute (`SearchResult.best_at`). Compute is counted
like the recipe counts it: in epochs of the task (training steps; evaluation is free) and in
the trials' wall seconds. Given ``budget_seconds``, a search stops once its trials' wall
seconds reach it (no trial starts after; the last may overshoot): the budget the benchmarks
give a search in multiples of the recipe's own seconds.

Random search samples the learning rate and the weight decay log-uniformly, the momentum
uniformly and the schedule uniformly (Bergstra & Bengio 2012). TPE is Optuna's
``TPESampler``, imported only when `tpe_search` runs (``pip install disciplined[optuna]``).
"""

from __future__ import annotations

import itertools
import math
import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from disciplined.errors import UsageError
from disciplined.studies.decide import cycle_min_momentum
from disciplined.tasks import load_task
from disciplined.training.history import whole_epoch
from disciplined.trials.executors import Executor, InProcessExecutor
from disciplined.trials.hparams import OPTIMIZERS, SCHEDULES, HParams
from disciplined.trials.spec import TrialResult, TrialSpec, run_trial
from disciplined.trials.store import MemoryStore, TrialStore

__all__ = [
    "MedianStop",
    "SearchResult",
    "SearchSpace",
    "TracePoint",
    "grid_search",
    "hparams_for",
    "random_search",
    "sample_point",
    "tpe_search",
    "trial_metric",
]

Runner = Callable[[TrialSpec], TrialResult]
OnResult = Callable[[TrialResult, bool], None]


@dataclass(frozen=True)
class SearchSpace:
    """What the baselines search over.

    ``lr``, ``weight_decay`` and ``momentum`` are ``(low, high)`` bounds for random search and
    TPE: the first two sampled log-uniformly, momentum uniformly. Grid search takes the
    explicit ``*_grid`` values instead. ``batch_size`` defaults to the task's own;
    ``batch_sizes``, when given, is searched too (a categorical choice, and a grid axis), as
    the recipe compares batch sizes. The space the recipe itself chooses from is
    ``SearchSpace(schedules=("one-cycle",), batch_sizes=(b, b // 2, b // 4))``.
    """

    schedules: tuple[str, ...] = SCHEDULES
    lr: tuple[float, float] = (1e-3, 3.0)
    weight_decay: tuple[float, float] = (1e-6, 1e-2)
    momentum: tuple[float, float] = (0.8, 0.99)
    lr_grid: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3, 1.0)
    weight_decay_grid: tuple[float, ...] = (0.0, 1e-4, 1e-3)
    momentum_grid: tuple[float, ...] = (0.9, 0.95)
    batch_size: int | None = None
    optimizer: str = "sgd"
    batch_sizes: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not self.schedules or any(s not in SCHEDULES for s in self.schedules):
            raise ValueError(
                f"schedules must be a non-empty subset of {SCHEDULES}, got {self.schedules!r}"
            )
        for name, lo_min in (("lr", 0.0), ("weight_decay", 0.0)):
            lo, hi = getattr(self, name)
            if not (lo > lo_min and hi >= lo and math.isfinite(hi)):
                raise ValueError(
                    f"{name} must be (low, high) with 0 < low <= high (it is sampled "
                    f"log-uniformly), got {getattr(self, name)!r}"
                )
        lo, hi = self.momentum
        if not 0 <= lo <= hi < 1:
            raise ValueError(
                f"momentum must be (low, high) with 0 <= low <= high < 1, got {self.momentum!r}"
            )
        grids = (
            ("lr_grid", self.lr_grid, lambda v: v > 0 and math.isfinite(v), "> 0"),
            ("weight_decay_grid", self.weight_decay_grid, lambda v: v >= 0, ">= 0"),
            ("momentum_grid", self.momentum_grid, lambda v: 0 <= v < 1, "in [0, 1)"),
        )
        for name, values, ok, rule in grids:
            if not values or not all(ok(v) for v in values):
                raise ValueError(
                    f"{name} must be non-empty with every value {rule}, got {values!r}"
                )
        if self.batch_size is not None and (
            int(self.batch_size) != self.batch_size or self.batch_size < 1
        ):
            raise ValueError(f"batch_size must be an integer >= 1 or None, got {self.batch_size!r}")
        if any(int(b) != b or b < 1 for b in self.batch_sizes):
            raise ValueError(f"batch_sizes must be integers >= 1, got {self.batch_sizes!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")

    @property
    def grid_size(self) -> int:
        """The number of points of the full grid."""
        return (
            len(self.schedules)
            * len(self.lr_grid)
            * len(self.weight_decay_grid)
            * len(self.momentum_grid)
            * max(1, len(self.batch_sizes))
        )


class TracePoint(NamedTuple):
    """Where a search stood after a trial: compute spent so far and the best metric found."""

    epochs: float
    seconds: float
    best: float


def hparams_for(
    schedule: str,
    max_lr: float,
    momentum: float,
    weight_decay: float,
    batch_size: int,
    optimizer: str = "sgd",
) -> HParams:
    """The `HParams` of one search point. For 1cycle, ``momentum`` is the cycle's maximum and
    the minimum follows the recipe's rule (0.85 when the maximum is 0.95 or more, else 0.8,
    never above the maximum); the constant and step schedules hold ``momentum``."""
    cyclic_low = cycle_min_momentum(momentum)
    low = cyclic_low if schedule == "one-cycle" else momentum
    return HParams(
        max_lr=max_lr,
        max_momentum=momentum,
        min_momentum=low,
        weight_decay=weight_decay,
        batch_size=batch_size,
        optimizer=optimizer,  # type: ignore[arg-type]
        schedule=schedule,  # type: ignore[arg-type]
    )


def sample_point(space: SearchSpace, rng: random.Random) -> dict[str, Any]:
    """One random point of ``space``: schedule uniform, max LR and weight decay log-uniform,
    momentum uniform."""

    def log_uniform(bounds: tuple[float, float]) -> float:
        lo, hi = bounds
        return math.exp(rng.uniform(math.log(lo), math.log(hi)))

    point = {
        "schedule": rng.choice(space.schedules),
        "max_lr": log_uniform(space.lr),
        "weight_decay": log_uniform(space.weight_decay),
        "momentum": rng.uniform(*space.momentum),
    }
    if space.batch_sizes:
        point["batch_size"] = rng.choice(space.batch_sizes)
    return point


def trial_metric(result: TrialResult) -> float:
    """A trial's score: the validation metric of its last evaluation (NaN when it has none:
    a failed trial, or a metric that is not finite; NaN too for a trial that diverged or
    was pruned, whose last evaluation is not a finished run's)."""
    h = result.history
    if result.status != "ok" or h is None or h.final is None:
        return math.nan
    if not math.isfinite(h.final.val_metric):
        return math.nan
    return h.final.val_metric


@dataclass(frozen=True)
class SearchResult:
    """A finished search: its trials in the order they ran, and what they found.

    ``trace[i]`` is the compute spent by trials ``0..i`` (epochs of the task and wall
    seconds) and the best validation metric among them (NaN until a trial has a finite
    one). It never gets worse along the way.
    """

    method: str
    task: str
    epochs_per_trial: float
    trials: tuple[TrialResult, ...]
    metric_name: str = "metric"
    higher_is_better: bool = True
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def trace(self) -> tuple[TracePoint, ...]:
        """(cumulative epochs, cumulative seconds, best metric so far), one per trial."""
        out: list[TracePoint] = []
        epochs = seconds = 0.0
        best = math.nan
        for r in self.trials:
            epochs += r.epochs
            seconds += r.seconds
            m = trial_metric(r)
            if math.isfinite(m) and (not math.isfinite(best) or self._better(m, best)):
                best = m
            out.append(TracePoint(epochs, seconds, best))
        return tuple(out)

    def _better(self, a: float, b: float) -> bool:
        return a > b if self.higher_is_better else a < b

    def best_at(self, epochs: float) -> float:
        """The best metric the search had found once it had spent at most ``epochs`` epochs
        (NaN when not even the first trial fits)."""
        best = math.nan
        for point in self.trace:
            if point.epochs > epochs * (1 + 1e-9):
                break
            best = point.best
        return best

    def seconds_at(self, epochs: float) -> float:
        """Wall seconds the trials that fit in ``epochs`` epochs took."""
        seconds = 0.0
        for point in self.trace:
            if point.epochs > epochs * (1 + 1e-9):
                break
            seconds = point.seconds
        return seconds

    @property
    def best_trial(self) -> TrialResult | None:
        """The trial with the best finite metric (ties: the earliest), or None."""
        return self.best_trial_at(math.inf)

    def best_trial_at(self, epochs: float) -> TrialResult | None:
        """The best trial (ties: the earliest) among those the search had run once it had
        spent at most ``epochs`` epochs: what it would have handed its user had it stopped
        there. None when no such trial has a finite metric."""
        best: TrialResult | None = None
        for r, point in zip(self.trials, self.trace, strict=True):
            if point.epochs > epochs * (1 + 1e-9):
                break
            m = trial_metric(r)
            if math.isfinite(m) and (best is None or self._better(m, trial_metric(best))):
                best = r
        return best

    @property
    def best_metric(self) -> float:
        """The best metric over all trials (NaN when none is finite)."""
        return self.trace[-1].best if self.trials else math.nan

    @property
    def epochs(self) -> float:
        """Total compute in epochs of the task."""
        return sum(r.epochs for r in self.trials)

    @property
    def seconds(self) -> float:
        """Total wall seconds of the trials."""
        return sum(r.seconds for r in self.trials)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary: the trace and each trial's point and metric."""
        return {
            "method": self.method,
            "task": self.task,
            "epochs_per_trial": self.epochs_per_trial,
            "metric_name": self.metric_name,
            "higher_is_better": self.higher_is_better,
            "trace": [p._asdict() for p in self.trace],
            "trials": [
                {
                    "key": r.key,
                    "hparams": r.spec.hparams,
                    "status": r.status,
                    "metric": trial_metric(r),
                    "epochs": r.epochs,
                    "seconds": r.seconds,
                }
                for r in self.trials
            ],
            "meta": self.meta,
        }


# --------------------------------------------------------------------------- pruning


@dataclass(frozen=True)
class MedianStop:
    """The median stopping rule for a search's trials (Golovin et al. 2017, "Google Vizier";
    the rule of Optuna's ``MedianPruner``): a trial stops after an epoch at which its best
    validation metric so far is worse than the median, at that epoch, of the trials that
    finished before it started.

    No trial is stopped until ``n_startup_trials`` have finished, nor before epoch
    ``warmup_epochs`` (None: a quarter of the trial's epochs, at least 1), nor at its last
    epoch. The bounds travel in each trial's spec (``budget["prune"]``,
    `disciplined.trials.spec.PruneRule`), so pruning works with any executor, worker
    processes and Ray included, and a resumed search rebuilds the same specs. A stopped
    trial is ``pruned``: its compute counts, its metric does not (`trial_metric`).
    """

    n_startup_trials: int = 5
    warmup_epochs: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.n_startup_trials, int) or self.n_startup_trials < 1:
            raise ValueError(
                f"n_startup_trials must be an integer >= 1, got {self.n_startup_trials!r}"
            )
        if self.warmup_epochs is not None and (
            not isinstance(self.warmup_epochs, int) or self.warmup_epochs < 0
        ):
            raise ValueError(
                f"warmup_epochs must be an integer >= 0 or None, got {self.warmup_epochs!r}"
            )

    def bounds(self, finished: Sequence[TrialResult], epochs: float) -> list[float | None] | None:
        """The bound after each epoch ``1 .. ceil(epochs) - 1`` for a trial that starts after
        ``finished`` (only those with status ``ok`` count); None when nothing is checked."""
        done = [
            _epoch_metrics(r.history)
            for r in finished
            if r.status == "ok" and r.history is not None
        ]
        if len(done) < self.n_startup_trials:
            return None
        warm = self.warmup_epochs if self.warmup_epochs is not None else max(1, int(epochs // 4))
        out: list[float | None] = []
        for epoch in range(1, math.ceil(epochs)):
            values = [m[epoch] for m in done if epoch in m]
            out.append(statistics.median(values) if values and epoch >= warm else None)
        return out if any(b is not None for b in out) else None


def _epoch_metrics(history: Any) -> dict[int, float]:
    """The finite validation metrics a history recorded at the end of whole epochs, by
    epoch number."""
    out = {}
    for e in history.evals:
        n = whole_epoch(e.epoch)
        if n is not None and math.isfinite(e.val_metric):
            out.setdefault(n, e.val_metric)
    return out


# --------------------------------------------------------------------------- running


@dataclass
class _Search:
    """What every search shares: the task, where trials run, and how a point becomes a spec."""

    task: str
    space: SearchSpace
    epochs: float
    seed: int
    task_options: dict[str, Any]
    store: TrialStore
    executor: Executor
    runner: Runner
    on_result: OnResult | None
    pruning: MedianStop | None = None
    batch_size: int = 0
    metric_name: str = "metric"
    higher_is_better: bool = True

    def __post_init__(self) -> None:
        if not (self.epochs > 0 and math.isfinite(self.epochs)):
            raise ValueError(f"epochs must be > 0, got {self.epochs!r}")
        task = load_task(self.task, self.task_options)
        self.batch_size = self.space.batch_size or task.default_batch_size
        self.metric_name = task.metric_name
        self.higher_is_better = task.higher_is_better

    def spec(
        self, point: dict[str, Any], method: str, finished: Sequence[TrialResult] = ()
    ) -> TrialSpec:
        hp = hparams_for(
            point["schedule"],
            point["max_lr"],
            point["momentum"],
            point["weight_decay"],
            int(point.get("batch_size", self.batch_size)),
            self.space.optimizer,
        )
        budget: dict[str, Any] = {"epochs": self.epochs}
        bounds = self.pruning.bounds(finished, self.epochs) if self.pruning else None
        if bounds is not None:
            budget["prune"] = {"bounds": bounds}
        return TrialSpec(
            task=self.task,
            hparams=hp.to_dict(),
            kind="train",
            budget=budget,
            seed=self.seed,
            task_options=dict(self.task_options),
            tag=f"baseline-{method}",
        )

    def run(self, specs: Sequence[TrialSpec]) -> list[TrialResult]:
        self.store.bind({"task": self.task, "task_options": self.task_options})
        return self.executor.run(specs, self.store, runner=self.runner, on_result=self.on_result)

    def run_within(
        self, points: Sequence[dict[str, Any]], method: str, budget_seconds: float | None
    ) -> list[TrialResult]:
        """The points' trials: all at once, or, with a budget or pruning, one at a time in
        order (each pruned by the trials before it) until the trials' wall seconds reach
        ``budget_seconds``: no trial starts once it is spent."""
        if budget_seconds is None and self.pruning is None:
            return self.run([self.spec(p, method) for p in points])
        limit = math.inf if budget_seconds is None else budget_seconds
        done: list[TrialResult] = []
        for point in points:
            if sum(r.seconds for r in done) >= limit:
                break
            done.extend(self.run([self.spec(point, method, done)]))
        return done

    def result(self, method: str, trials: Sequence[TrialResult], **meta: Any) -> SearchResult:
        return SearchResult(
            method=method,
            task=self.task,
            epochs_per_trial=self.epochs,
            trials=tuple(trials),
            metric_name=self.metric_name,
            higher_is_better=self.higher_is_better,
            meta={"seed": self.seed, "batch_size": self.batch_size, **meta},
        )


def _search(
    task: str,
    space: SearchSpace | None,
    epochs: float,
    seed: int,
    task_options: dict[str, Any] | None,
    store: TrialStore | None,
    executor: Executor | None,
    runner: Runner,
    on_result: OnResult | None,
    pruning: MedianStop | None = None,
) -> _Search:
    if pruning is not None and not isinstance(pruning, MedianStop):
        raise ValueError(f"pruning must be a MedianStop or None, got {pruning!r}")
    return _Search(
        task=task,
        space=space or SearchSpace(),
        epochs=float(epochs),
        seed=seed,
        task_options=dict(task_options or {}),
        store=store if store is not None else MemoryStore(),
        executor=executor or InProcessExecutor(),
        runner=runner,
        on_result=on_result,
        pruning=pruning,
    )


def _check_trials(n_trials: int) -> None:
    if not isinstance(n_trials, int) or n_trials < 1:
        raise ValueError(f"n_trials must be an integer >= 1, got {n_trials!r}")


def _check_budget(budget_seconds: float | None) -> None:
    if budget_seconds is not None and not (
        isinstance(budget_seconds, int | float) and 0 < budget_seconds < math.inf
    ):
        raise ValueError(f"budget_seconds must be > 0 and finite or None, got {budget_seconds!r}")


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
    store: TrialStore | None = None,
    executor: Executor | None = None,
    runner: Runner = run_trial,
    on_result: OnResult | None = None,
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
    """
    _check_budget(budget_seconds)
    s = _search(
        task, space, epochs, seed, task_options, store, executor, runner, on_result, pruning
    )
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
        _check_trials(max_trials)
        points = points[:max_trials]
    trials = s.run_within(points, "grid", budget_seconds)
    return s.result("grid", trials, order_seed=order_seed, grid_size=s.space.grid_size)


def random_search(
    task: str,
    space: SearchSpace | None = None,
    n_trials: int = 20,
    epochs: float = 20.0,
    seed: int = 0,
    *,
    budget_seconds: float | None = None,
    pruning: MedianStop | None = None,
    task_options: dict[str, Any] | None = None,
    store: TrialStore | None = None,
    executor: Executor | None = None,
    runner: Runner = run_trial,
    on_result: OnResult | None = None,
) -> SearchResult:
    """Train ``task`` for ``epochs`` epochs at ``n_trials`` random points of ``space``
    (`sample_point`, drawn from ``random.Random(seed)``). ``seed`` also sets every trial's
    initial weights. The same arguments draw the same points, so a rerun resumes from
    ``store``; a larger ``n_trials`` extends the same sequence. With ``budget_seconds`` it
    stops early once the trials' wall seconds reach that many (no trial starts after);
    ``pruning`` (`MedianStop`) stops trials that fall behind the median of those before."""
    _check_trials(n_trials)
    _check_budget(budget_seconds)
    s = _search(
        task, space, epochs, seed, task_options, store, executor, runner, on_result, pruning
    )
    rng = random.Random(seed)
    points = [sample_point(s.space, rng) for _ in range(n_trials)]
    trials = s.run_within(points, "random", budget_seconds)
    return s.result("random", trials)


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
    store: TrialStore | None = None,
    executor: Executor | None = None,
    runner: Runner = run_trial,
    on_result: OnResult | None = None,
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

    Raises `UsageError` when Optuna is not installed (``pip install disciplined[optuna]``).
    """
    _check_trials(n_trials)
    if not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be an integer >= 1, got {batch!r}")
    _check_budget(budget_seconds)
    optuna = _optuna()
    s = _search(
        task, space, epochs, seed, task_options, store, executor, runner, on_result, pruning
    )
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
        for epoch, metric in _epoch_metrics(result.history).items():
            trial.report(metric, epoch)
        study.tell(trial, state=states.PRUNED)
        return
    m = trial_metric(result)
    if math.isfinite(m):
        study.tell(trial, m)
    else:
        study.tell(trial, state=states.FAIL)
