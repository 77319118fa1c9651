"""Trials as Ray tasks: on a local Ray started for the run, or on a Ray cluster.

`RayExecutor` submits each trial as one Ray task asking for ``trial_cpus`` CPUs and
``trial_gpus`` GPUs; Ray places it on a worker with those free. The result comes back to
this process (the driver), which stores it, exactly as the other executors do: workers never
touch the store, so the store may be a file only the driver can see.

A trial whose worker is lost — the worker process killed (the out-of-memory killer, a
``kill -9``), or its node gone — is submitted again, at most ``max_retries`` times; the
reasons of the lost attempts are kept in the result (`TrialResult.retries`), so a retry is
visible in the store, the JSON and the progress line. A trial that fails in the user's code
is never retried: a spec that cannot run is a ``failed`` result, a bug (`TrialCrash`) is
raised once the trials in flight are stored, as in-process.

Ray is an optional dependency (``pip install 'disciplined[ray]'``): it is imported when a
`RayExecutor` is made, never by ``import disciplined``.

Reproducibility: a trial's result depends only on its spec and on torch's thread count, which
each Ray task sets to ``threads`` (default: ``trial_cpus`` rounded down, at least 1), so a
sweep on Ray with ``trial_cpus=1`` gives the results of ``InProcessExecutor(threads=1)`` bit
for bit, and the same decision.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch

from disciplined.errors import TaskCodeError, UsageError
from disciplined.trials.executor_base import Executor, Runner, check_threads, run_guarded
from disciplined.trials.spec import TrialCrash, TrialResult, TrialSpec, run_trial, task_for

__all__ = ["INSTALL_HINT", "RayExecutor", "check_address", "import_ray"]

INSTALL_HINT = "pip install 'disciplined[ray]'"
"""What to run when Ray is missing."""

MAX_RETRIES = 2
"""How many times a trial whose worker was lost is submitted again, by default."""

LOST_WORKER = (
    "WorkerCrashedError",
    "NodeDiedError",
    "LocalRayletDiedError",
    "ObjectLostError",  # and its kinds: the owner died, reconstruction failed, ...
    "OutOfMemoryError",  # Ray's memory monitor killed the worker
)
"""The Ray errors that say a trial's worker (or node) was lost, not that its code failed."""

_ADDRESS = re.compile(r"ray://[^\s:/]+:(\d{1,5})")


def import_ray() -> Any:
    """The ``ray`` module; `UsageError` saying what to install when it is missing."""
    try:
        import ray
    except ImportError:
        raise UsageError(
            f"the Ray executor needs Ray, which is not installed: {INSTALL_HINT}"
        ) from None
    return ray


def check_address(address: str | None) -> str | None:
    """``address`` if it is ``None``, ``"auto"`` or ``ray://HOST:PORT`` (port 1-65535);
    `UsageError` otherwise."""
    if address is None or address == "auto":
        return address
    match = _ADDRESS.fullmatch(str(address))
    if match is None or not 1 <= int(match.group(1)) <= 65535:
        raise UsageError(f"--address must be 'auto' or ray://HOST:PORT, got {address!r}")
    return address


def _run_on_worker(runner: Runner, spec: TrialSpec, threads: int) -> TrialResult:
    """The Ray task: ``runner(spec)`` with ``threads`` torch threads, as `run_guarded` runs it.

    With `run_trial`, the task is built first: the driver built it already, so a task that
    cannot be built here is this worker's environment (the task's code or data missing on
    the node), not the trial's hyper-parameters; it is raised, never recorded."""
    torch.set_num_threads(threads)
    if runner is run_trial:
        try:
            task_for(spec)
        except Exception as exc:
            raise RuntimeError(
                f"task {spec.task!r} cannot be built on this Ray worker ({_last_line(exc)}); "
                "install the task's code on every node, or ship it with "
                "init_options={'runtime_env': ...}"
            ) from None
    return run_guarded(runner, spec)


def _last_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".strip()


class RayExecutor(Executor):
    """Runs each trial as a Ray task with ``trial_cpus`` CPUs and ``trial_gpus`` GPUs.

    ``address``: ``None`` starts a local Ray with ``num_cpus`` CPUs (default: the machine's)
    at the first `run`, shut down by `close`; ``"auto"`` joins the cluster this machine is
    part of; ``"ray://HOST:PORT"`` joins a remote one through the Ray client. When Ray is
    already initialized in this process (a notebook, a test), that Ray is used and left
    running. ``init_options`` go to ``ray.init`` as they are (``runtime_env`` to ship the
    task's code to a cluster, ``log_to_driver=False`` to silence the workers' output).
    The runner is sent to the workers with Ray's pickling, so a closure works, but what it
    references must be importable there (install ``disciplined`` and the task's code on
    every node). A trial whose worker is lost is submitted again up to ``max_retries``
    times. Raises `UsageError` at once when Ray is not installed.
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        num_cpus: int | None = None,
        trial_cpus: float = 1.0,
        trial_gpus: float = 0.0,
        threads: int | None = None,
        max_retries: int = MAX_RETRIES,
        init_options: dict[str, Any] | None = None,
    ) -> None:
        """An executor for Ray at ``address`` (a local one when ``None``)."""
        if not (isinstance(trial_cpus, int | float) and math.isfinite(trial_cpus)) or not (
            trial_cpus > 0
        ):
            raise ValueError(f"trial_cpus must be a number > 0, got {trial_cpus!r}")
        if not (isinstance(trial_gpus, int | float) and math.isfinite(trial_gpus)) or not (
            trial_gpus >= 0
        ):
            raise ValueError(f"trial_gpus must be a number >= 0, got {trial_gpus!r}")
        if num_cpus is not None and (not isinstance(num_cpus, int) or num_cpus < 1):
            raise ValueError(f"num_cpus must be an integer >= 1 or None, got {num_cpus!r}")
        if num_cpus is not None and address is not None:
            raise ValueError("num_cpus applies to a local Ray only (address=None)")
        if not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be an integer >= 0, got {max_retries!r}")
        check_threads(threads)
        self.address = check_address(address)
        self.num_cpus = num_cpus
        self.trial_cpus = float(trial_cpus)
        self.trial_gpus = float(trial_gpus)
        self.threads = threads
        self.max_retries = max_retries
        self.init_options = dict(init_options or {})
        self._ray = import_ray()
        self._started = False  # whether this executor started (and so shuts down) Ray
        self._task: Any = None

    @property
    def worker_threads(self) -> int:
        """Torch threads per trial."""
        return self.threads or max(1, int(self.trial_cpus))

    def start(self) -> None:
        """Connect to Ray (starting a local one when no address was given), and check that the
        cluster can hold one trial; `UsageError` if it cannot be reached or is too small."""
        ray = self._ray
        if not ray.is_initialized():
            options: dict[str, Any] = {"include_dashboard": False, "logging_level": "WARNING"}
            options.update(self.init_options)
            if self.address is None:
                options["num_cpus"] = self.num_cpus
            else:
                options["address"] = self.address
            try:
                ray.init(**options)
            except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
                where = "start a local Ray" if self.address is None else f"reach {self.address}"
                raise UsageError(f"cannot {where}: {_last_line(exc)}") from None
            self._started = True
        have = ray.cluster_resources()
        for name, want in (("CPU", self.trial_cpus), ("GPU", self.trial_gpus)):
            if want > have.get(name, 0.0):
                self.close()  # a local Ray started for nothing
                raise UsageError(
                    f"--trial-{name.lower()}s {want:g}: the Ray cluster has "
                    f"{have.get(name, 0.0):g} {name}s in all, so no trial could start"
                )

    def close(self) -> None:
        """Shut down the local Ray this executor started (a Ray it joined is left alone)."""
        if self._started and self._ray.is_initialized():
            self._ray.shutdown()
        self._started, self._task = False, None

    def _slots(self) -> int:
        """How many trials the cluster can run at once now (at least 1)."""
        have = self._ray.cluster_resources()
        slots = int(have.get("CPU", 0.0) // self.trial_cpus)
        if self.trial_gpus > 0:
            slots = min(slots, int(have.get("GPU", 0.0) // self.trial_gpus))
        return max(1, slots)

    def _execute(
        self, specs: list[TrialSpec], runner: Runner, deliver: Callable[[TrialResult], None]
    ) -> None:
        self.start()
        ray = self._ray
        if self._task is None:
            self._task = ray.remote(_run_on_worker).options(
                num_cpus=self.trial_cpus, num_gpus=self.trial_gpus, max_retries=0
            )
        runner_ref = ray.put(runner)
        queue = list(reversed(specs))
        waiting: dict[Any, TrialSpec] = {}
        lost: dict[str, list[str]] = {}
        stop: BaseException | None = None  # a bug: no new trial starts, raised at the end
        gave_up: BaseException | None = None  # a trial lost too often: the others go on
        slots = self._slots()

        def submit(spec: TrialSpec) -> None:
            waiting[self._task.remote(runner_ref, spec, self.worker_threads)] = spec

        try:
            while waiting or (queue and stop is None):
                while queue and stop is None and len(waiting) < slots:
                    submit(queue.pop())
                (ref,), _ = ray.wait(list(waiting), num_returns=1)
                spec = waiting.pop(ref)
                outcome, value = self._collect(ref, spec, lost.setdefault(spec.key, []))
                if outcome == "result":
                    deliver(replace(value, retries=tuple(lost[spec.key])))
                elif outcome == "retry":
                    queue.append(spec)
                elif outcome == "gave_up":
                    gave_up = gave_up or value
                else:
                    stop = stop or value
        except BaseException:  # an interrupt: stop what runs for us
            for ref in waiting:
                with contextlib.suppress(Exception):  # one that just finished, say
                    ray.cancel(ref, force=True)
            raise
        if stop is not None or gave_up is not None:
            raise stop or gave_up

    def _collect(self, ref: Any, spec: TrialSpec, lost: list[str]) -> tuple[str, Any]:
        """What a finished task gave: ``("result", TrialResult)``; ``("retry", None)`` when
        its worker was lost and it may run again (the reason appended to ``lost``);
        ``("gave_up", error)`` when it was lost too often; ``("stop", error)`` for a bug or
        a failure of Ray itself, after which no new trial starts."""
        ray = self._ray
        what = f"trial {spec.key} ({spec.tag or spec.kind})"
        try:
            return "result", ray.get(ref)
        except ray.exceptions.RayTaskError as exc:  # raised in the task: never retried
            cause = getattr(exc, "cause", None)
            if isinstance(cause, TrialCrash):
                return "stop", TrialCrash(str(cause))
            if isinstance(cause, TaskCodeError):
                return "stop", TaskCodeError(str(cause), cause.details)
            return "stop", RuntimeError(
                f"{what} could not run on its Ray worker: {_last_line(cause or exc)}; "
                "nothing was recorded for it"
            )
        except ray.exceptions.RayError as exc:
            kinds = tuple(
                getattr(ray.exceptions, n) for n in LOST_WORKER if hasattr(ray.exceptions, n)
            )
            if not isinstance(exc, kinds):
                return "stop", RuntimeError(f"{what}: Ray failed: {_last_line(exc)}")
            lost.append(_last_line(exc))
            if len(lost) <= self.max_retries:
                return "retry", None
            return "gave_up", RuntimeError(
                f"{what} lost its worker {len(lost)} times (last: {lost[-1]}); the trials "
                "that completed are stored — run again to retry it"
            )

    def __repr__(self) -> str:
        return (
            f"RayExecutor(address={self.address!r}, trial_cpus={self.trial_cpus:g}, "
            f"trial_gpus={self.trial_gpus:g})"
        )
