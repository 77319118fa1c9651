"""What every executor shares: the `Executor` contract (its `run`: the cache, the order of
results, duplicate specs, storing, the callback), the `Runner` it calls, and the helpers each
executor runs a trial with (`run_guarded`, `failed_result`, `check_threads`), and how many
torch threads a trial in this process gets (`choose_threads`, the pure rule; `thread_choice`,
the rule read on this machine and this task; `torch_threads`, the count set and restored).

The executors themselves live beside this module, none importing another:
`disciplined.trials.local_executors` (in this process, in worker processes) and
`disciplined.trials.ray_executor` (on Ray); `disciplined.trials.factory.make_executor` picks
one, and `disciplined.trials.executors` names them all.
"""

from __future__ import annotations

import abc
import math
import os
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from disciplined.errors import TaskCodeError
from disciplined.trials.spec import TrialCrash, TrialResult, TrialSpec, run_trial
from disciplined.trials.store import TrialStore

if TYPE_CHECKING:
    from disciplined.tasks import Task

__all__ = [
    "THREAD_WORK",
    "Executor",
    "OnResult",
    "Runner",
    "ThreadChoice",
    "check_threads",
    "choose_threads",
    "failed_result",
    "machine_cpus",
    "machine_load",
    "model_work",
    "run_guarded",
    "thread_choice",
    "torch_threads",
]

Runner = Callable[[TrialSpec], TrialResult]
"""Runs one spec and returns its result (`run_trial` is the one used outside tests)."""

OnResult = Callable[[TrialResult, bool], None]
"""Called with each result as it is stored, and whether it was read back from the store."""


def failed_result(spec: TrialSpec, exc: BaseException) -> TrialResult:
    """The ``failed`` result of ``spec``, its reason the last line of ``exc``."""
    last = traceback.format_exception_only(type(exc), exc)[-1].strip()
    return TrialResult(spec.key, spec, "failed", 0.0, reason=last)


def run_guarded(runner: Runner, spec: TrialSpec) -> TrialResult:
    """``runner(spec)``, turning an exception or a wrong answer into a ``failed`` result;
    a `TrialCrash` (a bug) or a `TaskCodeError` (the task's code failed) is raised, not
    recorded."""
    try:
        result = runner(spec)
    except (TrialCrash, TaskCodeError):
        raise
    except Exception as exc:  # run_trial catches its own; a custom runner might not
        return failed_result(spec, exc)
    if not isinstance(result, TrialResult) or result.key != spec.key:
        got = getattr(result, "key", type(result).__name__)
        return failed_result(spec, RuntimeError(f"runner returned {got!r} for trial {spec.key}"))
    return result


def check_threads(threads: int | None) -> None:
    """`ValueError` unless ``threads`` is None or an integer >= 1."""
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads must be an integer >= 1 or None, got {threads!r}")


THREAD_WORK = 1_000_000
"""Work per training step (the model's parameters times the batch size, about its
multiply-adds per sample times the samples) that earns one torch thread. A step smaller than
this is over before the threads it is split over have started: the built-in tasks (5-17 k
parameters, batches of 32-128) stay below it and run one thread. A judgement, measured by
``benchmarks/threads.py``: the default against one thread and against every core."""


def choose_threads(*, cpus: int, load: float, work: float, ceiling: int | None = None) -> int:
    """The torch thread count for trials run in this process (a pure rule).

    The cores free: ``cpus`` (those this process may use) less ``load`` (the 1-minute load
    average: processes running or waiting), rounded to the nearest whole core, at least 1.
    Then no more than the model's ``work`` per step (parameters x batch size) pays for, one
    thread per `THREAD_WORK` (at least 1), and no more than ``ceiling`` (the count torch has
    now, which ``OMP_NUM_THREADS`` or the user's ``torch.set_num_threads`` may have lowered).
    On a machine others keep busy a thread more than the cores free waits for a core at every
    parallel region: with two busy processes on 2 cores, issue 34 measured a tune at 107 s
    with 2 threads and 45 s with one.
    """
    if cpus < 1:
        raise ValueError(f"cpus must be >= 1, got {cpus!r}")
    free = max(1, math.floor(cpus - max(load, 0.0) + 0.5))
    by_size = max(1, int(work // THREAD_WORK)) if math.isfinite(work) else cpus
    threads = min(free, by_size, cpus)
    return max(1, min(threads, ceiling)) if ceiling is not None else threads


def machine_cpus() -> int:
    """The cores this process may run on: its CPU affinity (`os.sched_getaffinity`, else
    `os.cpu_count`), capped by a cgroup's CPU quota (``/sys/fs/cgroup/cpu.max``) when a
    container sets one."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cpus)


def machine_load() -> float:
    """The 1-minute load average (`os.getloadavg`), 0 where the system has none."""
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return 0.0


def model_work(task: Task, batch_size: int | None = None) -> float:
    """The task's model's parameters times ``batch_size`` (default: the task's): the size of
    one training step that `choose_threads` reads. The model is built once to count them,
    with the global random state left as it was."""
    import torch

    with torch.random.fork_rng(devices=[]):
        parameters = sum(p.numel() for p in task.model().parameters())
    return float(parameters * (batch_size or task.default_batch_size))


@dataclass(frozen=True)
class ThreadChoice:
    """How many torch threads each trial runs with (``threads``) and why (``reason``, one
    line: asked for, or the rule's reading of the machine and the model)."""

    threads: int
    reason: str

    def to_dict(self) -> dict[str, object]:
        """``{"threads": ..., "reason": ...}``, as ``tune.json``'s meta keeps it."""
        return {"threads": self.threads, "reason": self.reason}


def thread_choice(
    threads: int | None, task: Task | None = None, batch_size: int | None = None
) -> ThreadChoice:
    """``threads`` when given (checked, `check_threads`); otherwise `choose_threads` on this
    machine (`machine_cpus`, `machine_load`, torch's current count as the ceiling) and the
    task's step (`model_work`; no task: the free cores alone decide)."""
    import torch

    check_threads(threads)
    if threads is not None:
        return ThreadChoice(threads, "asked for")
    cpus, load, ceiling = machine_cpus(), machine_load(), torch.get_num_threads()
    work = model_work(task, batch_size) if task is not None else math.inf
    chosen = choose_threads(cpus=cpus, load=load, work=work, ceiling=ceiling)
    free = choose_threads(cpus=cpus, load=load, work=math.inf)
    reason = f"default: {free} of {cpus} cores free at load {load:.2f}"
    if math.isfinite(work):
        paid = max(1, int(work // THREAD_WORK))
        reason += f"; the model's step ({work:.3g} parameters x samples) pays for {paid}"
    if ceiling < min(free, cpus):
        reason += f"; torch was set to {ceiling}"
    return ThreadChoice(chosen, reason)


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Torch's CPU thread count set to ``threads`` inside the block (None: left as it is),
    and the previous count restored after it, exception or not."""
    import torch

    check_threads(threads)
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if threads is not None:
            torch.set_num_threads(previous)


class Executor(abc.ABC):
    """Runs trial specs, storing each result as it finishes.

    Subclasses implement `_execute`; `run` holds the logic they share (the cache, the
    order of results, duplicate specs, storing, the callback). ``thread_choice`` is the
    torch threads each trial runs with and why, where the executor sets them (None: it
    leaves torch's count as it is).
    """

    thread_choice: ThreadChoice | None = None

    def run(
        self,
        specs: Sequence[TrialSpec],
        store: TrialStore,
        *,
        runner: Runner = run_trial,
        on_result: OnResult | None = None,
    ) -> list[TrialResult]:
        """Run ``specs`` and return their results in the order of ``specs``.

        A spec whose key is in ``store`` is read, not run (``on_result(result, True)``).
        Every other spec is run once (duplicates in ``specs`` share one run) by
        ``runner``; this process stores its result with ``store.put`` as soon as it arrives
        and then calls ``on_result(result, False)``. A runner that raises gives a ``failed``
        result with the error's last line and the other trials go on, except for a
        `TrialCrash` (a bug), which is raised once the trials in flight are stored.
        """
        results: dict[str, TrialResult] = {}
        pending: list[TrialSpec] = []
        seen: set[str] = set()
        for spec in specs:
            if spec.key in seen:
                continue
            seen.add(spec.key)
            cached = store.get(spec.key)
            if cached is None:
                pending.append(spec)
                continue
            results[spec.key] = cached
            if on_result is not None:
                on_result(cached, True)

        def deliver(result: TrialResult) -> None:
            try:
                stored = store.put(result)
            except ValueError as exc:  # a result that cannot be written (not JSON)
                stored = store.put(failed_result(result.spec, exc))
            results[stored.key] = stored
            if on_result is not None:
                on_result(stored, False)

        if pending:
            self._execute(pending, runner, deliver)
        return [results[spec.key] for spec in specs]

    def start(self) -> None:
        """Acquire now what the executor needs (a cluster connection), so that a problem is
        reported before any work; nothing by default (worker processes start at `run`)."""
        return None

    def close(self) -> None:
        """Release what the executor holds (worker processes); nothing by default."""
        return None

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @abc.abstractmethod
    def _execute(
        self, specs: list[TrialSpec], runner: Runner, deliver: Callable[[TrialResult], None]
    ) -> None:
        """Run every spec (distinct, none stored) and hand each result to ``deliver``."""
