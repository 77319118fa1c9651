"""Trials written to the tools users already watch their runs in: TensorBoard and MLflow
(``--log-to tensorboard:DIR`` / ``--log-to mlflow:URI``, ``log_to=`` from Python).

Each finished trial becomes one run there, written by the process that stores the trial
(the command, or `disciplined.tune`), from its `TrialResult` alone: so it works the same
whichever executor ran the trial (this process, worker processes, Ray). A training run logs
its learning rate, momentum and training loss at every step and, at each evaluation, the
mean training loss since the previous one, the validation loss and the task's metric; a
range test logs its learning rate and raw and smoothed loss at every step and its validation
losses; both log the trial's hyper-parameters (its spec) and its final values. The writers
are TensorBoard's own (`torch.utils.tensorboard.SummaryWriter`, with its hparams summary)
and MLflow's own client (`mlflow.tracking.MlflowClient`), imported only when asked for; a
missing package is a `UsageError` saying what to install (``pip install
'disciplined[logging]'``).

A trial is logged once: a run already there (the TensorBoard run folder of its name, the
MLflow run tagged with its store key) is left as it is, so a resumed tune logs only what
it has not logged yet, and a tune that adds ``--log-to`` on its rerun logs the trials it
reads back from its store.
"""

from __future__ import annotations

import bisect
import math
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from disciplined.errors import UsageError
from disciplined.measure.range_test import RangeTest
from disciplined.training.history import History
from disciplined.trials.spec import TrialResult

__all__ = [
    "TRACKERS",
    "Curves",
    "LogTarget",
    "TrialLogger",
    "history_curves",
    "parse_log_to",
    "range_test_curves",
    "run_name",
    "trial_curves",
]

TRACKERS = ("tensorboard", "mlflow")
"""The tools ``--log-to`` writes to."""

INSTALL = "pip install 'disciplined[logging]'"


@dataclass(frozen=True)
class LogTarget:
    """Where trials are logged: ``kind`` (one of `TRACKERS`) and ``where`` (TensorBoard's
    log folder, or MLflow's tracking URI)."""

    kind: str
    where: str

    @classmethod
    def parse(cls, text: str) -> LogTarget:
        """``tensorboard:DIR`` or ``mlflow:URI`` (a path is made a ``file:`` URI); anything
        else is a `UsageError` naming the text."""
        kind, sep, where = text.partition(":")
        if not sep or kind not in TRACKERS or not where.strip():
            raise UsageError(
                f"--log-to must be tensorboard:DIR or mlflow:URI, got {text!r}"
            )
        return cls(kind, where.strip())

    def __str__(self) -> str:
        return f"{self.kind}:{self.where}"


def parse_log_to(
    log_to: str | LogTarget | Iterable[str | LogTarget] | None,
) -> tuple[LogTarget, ...]:
    """The targets ``log_to`` names: None, one ``kind:where`` text or `LogTarget`, or several."""
    if log_to is None:
        return ()
    items = [log_to] if isinstance(log_to, str | LogTarget) else list(log_to)
    return tuple(t if isinstance(t, LogTarget) else LogTarget.parse(str(t)) for t in items)


@dataclass(frozen=True)
class Curves:
    """One run to log: its ``name``, a store ``key`` when it is a trial's, its
    hyper-parameters (``params``: numbers, text, booleans), its curves (``scalars``:
    ``(name, step, value)``, finite values only) and its final values (``final``)."""

    name: str
    params: dict[str, Any]
    scalars: tuple[tuple[str, int, float], ...]
    final: dict[str, float] = field(default_factory=dict)
    key: str | None = None
    status: str = "ok"


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _param(value: Any) -> Any:
    """A hyper-parameter as the trackers take it: a number, text or a boolean."""
    if isinstance(value, bool | int | float | str):
        return value
    return "None" if value is None else str(value)


def history_curves(
    name: str, history: History, params: Mapping[str, Any] | None = None, *, key: str | None = None
) -> Curves:
    """A training run's curves (`History`): learning rate, momentum and training loss per
    step; at each evaluation the training loss since the last one, the validation loss and
    the metric, and the epoch."""
    rows: list[tuple[str, int, float]] = []
    for step, (lr, m, loss) in enumerate(
        zip(history.lrs, history.momenta, history.train_losses, strict=False)
    ):
        rows += [("train/lr", step, lr), ("train/momentum", step, m), ("train/loss", step, loss)]
    metric = history.metric_name
    for e in history.evals:
        rows += [
            ("epoch", e.step, e.epoch),
            ("epoch/train_loss", e.step, e.train_loss),
            ("epoch/val_loss", e.step, e.val_loss),
            (f"epoch/val_{metric}", e.step, e.val_metric),
        ]
    final: dict[str, float] = {"epochs": history.epochs}
    if history.final is not None:
        final["val_loss"] = history.final.val_loss
        final[f"val_{metric}"] = history.final.val_metric
    return Curves(
        name=name,
        params={k: _param(v) for k, v in (params or {}).items()},
        scalars=tuple((k, s, float(v)) for k, s, v in rows if _finite(v)),
        final={k: float(v) for k, v in final.items() if _finite(v)},
        key=key,
    )


def run_name(result: TrialResult) -> str:
    """A trial's run name in the trackers (and its TensorBoard folder): its tag (else its
    kind) and the start of its store key, with only letters, digits and ``._=-``."""
    spec = result.spec
    return re.sub(r"[^\w.=-]+", "_", f"{spec.tag or spec.kind}-{result.key[:10]}")


def trial_curves(result: TrialResult) -> Curves:
    """A trial's run: its curves (`history_curves` or `range_test_curves`), its spec as
    hyper-parameters (the `HParams`, the kind, tag, seed, task and budget) and its status."""
    spec = result.spec
    params: dict[str, Any] = {**spec.hparams, "kind": spec.kind, "tag": spec.tag, "seed": spec.seed}
    params["task"] = spec.task
    params.update({f"budget_{k}": v for k, v in spec.budget.items()})
    params["status"] = result.status
    name = run_name(result)
    if result.history is not None:
        c = history_curves(name, result.history, params, key=result.key)
        return Curves(c.name, c.params, c.scalars, c.final, c.key, result.status)
    if result.range_test is not None:
        c = range_test_curves(name, result.range_test, params, key=result.key)
        return Curves(c.name, c.params, c.scalars, c.final, c.key, result.status)
    plain = {k: _param(v) for k, v in params.items()}
    return Curves(name, plain, (), {}, result.key, result.status)


def range_test_curves(
    name: str, test: RangeTest, params: Mapping[str, Any] | None = None, *, key: str | None = None
) -> Curves:
    """A range test's curves: learning rate, raw and smoothed loss per step, validation
    losses at the step of their learning rate; the suggested max and min LR as its final
    values."""
    rows: list[tuple[str, int, float]] = []
    for step, (lr, raw, smooth) in enumerate(
        zip(test.lrs, test.losses, test.smoothed, strict=False)
    ):
        rows += [
            ("range_test/lr", step, lr),
            ("range_test/loss", step, raw),
            ("range_test/smoothed_loss", step, smooth),
        ]
    for lr, loss in zip(test.val_lrs, test.val_losses, strict=False):
        rows.append(("range_test/val_loss", bisect.bisect_left(test.lrs, lr), loss))
    final: dict[str, float] = {}
    if test.suggestion is not None:
        final = {"max_lr": test.suggestion.max_lr, "min_lr": test.suggestion.min_lr}
    return Curves(
        name=name,
        params={k: _param(v) for k, v in (params or {}).items()},
        scalars=tuple((k, s, float(v)) for k, s, v in rows if _finite(v)),
        final={k: float(v) for k, v in final.items() if _finite(v)},
        key=key,
    )


class _TensorBoard:
    """A TensorBoard log folder: one run folder per trial, written with `SummaryWriter`."""

    def __init__(self, where: str) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
            from torch.utils.tensorboard.summary import hparams
        except ImportError:
            raise UsageError(
                f"--log-to tensorboard:{where} needs the tensorboard package: {INSTALL} "
                "(or pip install tensorboard)"
            ) from None
        self.root = Path(where)
        self.writer, self.hparams = SummaryWriter, hparams

    def write(self, curves: Curves) -> None:
        folder = self.root / re.sub(r"[^\w.=-]+", "_", curves.name)
        if folder.exists():  # logged before (a resumed tune): left as it is
            return
        writer = self.writer(log_dir=str(folder))
        try:
            for name, step, value in curves.scalars:
                writer.add_scalar(name, value, step)
            metrics = {f"final/{k}": v for k, v in curves.final.items()}
            if curves.params:
                summaries = self.hparams(curves.params, metrics)
                for summary in summaries:
                    writer.file_writer.add_summary(summary)
                for k, v in metrics.items():
                    writer.add_scalar(k, v)
        finally:
            writer.close()


class _Mlflow:
    """An MLflow tracking URI: one run per trial in an experiment, written with
    `MlflowClient`; a run is tagged ``disciplined.key`` with the trial's store key."""

    KEY_TAG = "disciplined.key"

    def __init__(self, where: str, experiment: str) -> None:
        try:
            from mlflow.entities import Metric, Param, RunTag
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise UsageError(
                f"--log-to mlflow:{where} needs the mlflow package: {INSTALL} "
                "(or pip install mlflow)"
            ) from None
        uri = where if re.match(r"^[a-z][\w+.-]*:", where) else Path(where).resolve().as_uri()
        self.Metric, self.Param, self.RunTag = Metric, Param, RunTag
        try:
            self.client = MlflowClient(tracking_uri=uri)
            found = self.client.get_experiment_by_name(experiment)
            self.experiment = (
                found.experiment_id if found else self.client.create_experiment(experiment)
            )
        except Exception as exc:  # mlflow's own errors: a bad URI, a refused store
            first = str(exc).split(". ")[0].strip()
            raise UsageError(f"--log-to mlflow:{where}: {first}") from None

    def write(self, curves: Curves) -> None:
        if curves.key is not None:
            logged = self.client.search_runs(
                [self.experiment], filter_string=f"tags.`{self.KEY_TAG}` = '{curves.key}'"
            )
            if logged:  # logged before (a resumed tune): left as it is
                return
        tags = {self.KEY_TAG: curves.key} if curves.key else {}
        run = self.client.create_run(self.experiment, run_name=curves.name, tags=tags)
        run_id, now = run.info.run_id, int(time.time() * 1000)
        params = [self.Param(k, str(v)) for k, v in curves.params.items()]
        metrics = [self.Metric(k, v, now, s) for k, s, v in curves.scalars]
        metrics += [self.Metric(f"final/{k}", v, now, 0) for k, v in curves.final.items()]
        for start in range(0, len(params), 100):  # MLflow's caps per batch: 100 params,
            self.client.log_batch(run_id, params=params[start : start + 100])
        for start in range(0, len(metrics), 1000):  # 1000 metrics
            self.client.log_batch(run_id, metrics=metrics[start : start + 1000])
        status = "FINISHED" if curves.status in ("ok", "pruned") else "FAILED"
        self.client.set_terminated(run_id, status=status)


class TrialLogger:
    """Writes each finished trial to ``targets`` (`LogTarget`s or their texts), as a tune's
    or a sweep's ``on_result(result, cached)``; `log_history` writes one training run.

    Every target is opened when the logger is made, so a missing package or a refused URI
    is a `UsageError` before any work. A trial is logged once per logger (it may be read
    back from the store several times in one tune), and not at all where it was logged
    before. ``experiment`` names MLflow's experiment.
    """

    def __init__(
        self,
        targets: str | LogTarget | Iterable[str | LogTarget],
        *,
        experiment: str = "disciplined",
    ) -> None:
        """Open every target of ``targets``."""
        self.targets = parse_log_to(targets)
        self.writers: list[Any] = [
            _TensorBoard(t.where) if t.kind == "tensorboard" else _Mlflow(t.where, experiment)
            for t in self.targets
        ]
        self.logged: set[str] = set()

    def __call__(self, result: TrialResult, cached: bool = False) -> None:
        """Log ``result`` (read back or not) unless this logger logged its key already."""
        if result.key in self.logged or (result.history is None and result.range_test is None):
            return
        self.logged.add(result.key)
        self.write(trial_curves(result))

    def log_history(self, name: str, history: History, params: Mapping[str, Any]) -> None:
        """Log one training run that is not a trial (``disciplined train``)."""
        self.write(history_curves(name, history, params))

    def write(self, curves: Curves) -> None:
        """Write ``curves`` to every target."""
        for writer in self.writers:
            writer.write(curves)

    def __repr__(self) -> str:
        return f"TrialLogger({', '.join(map(str, self.targets))})"
