"""Where trials run: in this process, in a pool of worker processes, or on Ray
(`disciplined.trials.ray_executor`, imported only when asked for).

An `Executor` takes trial specs and a `TrialStore`. A spec whose key is already stored is
read back, not run again; every other spec is run by the *runner* (`run_trial` by default)
and its result is stored by this process the moment it arrives, so a study that is killed
loses at most the trials in flight and picks up where it stopped when run again. Workers
never touch the store.

Reproducibility: a trial's result depends only on its spec (the seed is in the spec) and on
the number of threads torch uses for its CPU kernels — with the same thread count,
`InProcessExecutor` and `ProcessExecutor` give the same results bit for bit for the same
specs (the tests check ``InProcessExecutor(threads=1)`` against
``ProcessExecutor(workers=2, threads=1)``). A different thread count may change the order of
floating-point reductions and so the last bits of the losses.
"""

from __future__ import annotations

import abc
import math
import os
import pickle
import threading
import time
import traceback
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context

import torch

from disciplined.errors import TaskCodeError
from disciplined.trials.spec import TrialCrash, TrialResult, TrialSpec, run_trial
from disciplined.trials.store import TrialStore

__all__ = [
    "EXECUTORS",
    "Executor",
    "InProcessExecutor",
    "ProcessExecutor",
    "Runner",
    "check_threads",
    "make_executor",
    "run_guarded",
]

Runner = Callable[[TrialSpec], TrialResult]
"""Runs one spec and returns its result (`run_trial` is the one used outside tests)."""

OnResult = Callable[[TrialResult, bool], None]


def _failed(spec: TrialSpec, exc: BaseException) -> TrialResult:
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
        return _failed(spec, exc)
    if not isinstance(result, TrialResult) or result.key != spec.key:
        got = getattr(result, "key", type(result).__name__)
        return _failed(spec, RuntimeError(f"runner returned {got!r} for trial {spec.key}"))
    return result


def check_threads(threads: int | None) -> None:
    """`ValueError` unless ``threads`` is None or an integer >= 1."""
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads must be an integer >= 1 or None, got {threads!r}")


class Executor(abc.ABC):
    """Runs trial specs, storing each result as it finishes.

    Subclasses implement `_execute`; `run` holds the logic they share (the cache, the
    order of results, duplicate specs, storing, the callback).
    """

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
                stored = store.put(_failed(result.spec, exc))
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


class InProcessExecutor(Executor):
    """Runs trials one after another in this process.

    ``threads``, when given, is torch's CPU thread count while `run` runs; the previous
    count is restored afterwards. The runner may be any callable (a closure is fine).
    """

    def __init__(self, threads: int | None = None) -> None:
        """An executor running in this process, with ``threads`` torch threads if given."""
        check_threads(threads)
        self.threads = threads

    def _execute(
        self, specs: list[TrialSpec], runner: Runner, deliver: Callable[[TrialResult], None]
    ) -> None:
        previous = torch.get_num_threads()
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        try:
            for spec in specs:
                deliver(run_guarded(runner, spec))
        finally:
            if self.threads is not None:
                torch.set_num_threads(previous)

    def __repr__(self) -> str:
        return f"InProcessExecutor(threads={self.threads})"


PARENT_POLL_SECONDS = 0.5
"""How often a worker process checks that the process that started it is still alive."""


def _init_worker(threads: int, parent: int | None = None) -> None:
    torch.set_num_threads(threads)
    if parent is not None:
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def _watch_parent(parent: int) -> None:
    """End this worker as soon as the process that started it is gone (killed with SIGKILL,
    say): a worker is re-parented when its parent dies, so ``os.getppid()`` changes. Without
    this the workers outlive a killed command, holding its stdout open."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_SECONDS)
    os._exit(1)


def _shutdown(pool: ProcessPoolExecutor) -> None:
    pool.shutdown(wait=True, cancel_futures=True)


def _terminate(pool: ProcessPoolExecutor) -> None:
    """Stop ``pool``'s workers now, trials in flight included (an interrupt: the run ends
    and a resumed run trains them again)."""
    stop = getattr(pool, "terminate_workers", None)  # Python 3.14+
    if stop is not None:
        stop()
        return
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        if proc.is_alive():
            proc.terminate()
    pool.shutdown(wait=False, cancel_futures=True)


class ProcessExecutor(Executor):
    """Runs trials in ``workers`` worker processes (started with ``spawn``: torch and fork do
    not mix).

    Each worker sets torch's thread count to ``threads``, or ``os.cpu_count() // workers``
    (at least 1). The runner is sent to the workers by pickling, so it must be a module-level
    function. Results are gathered as they complete and stored by this process; the workers
    never touch the store. If the pool breaks (a worker killed, for instance by the
    out-of-memory killer), everything that completed is stored and `RuntimeError` is raised;
    the next `run` starts fresh workers.

    The workers are started at the first `run` and kept for the next ones (a worker that
    imported torch and built a task once reuses both), until `close` (or the end of a
    ``with`` block, or of the program). ``persistent=False`` starts and stops them around
    each `run`, as before.
    """

    def __init__(
        self, workers: int, threads: int | None = None, *, persistent: bool = True
    ) -> None:
        """An executor with ``workers`` processes of ``threads`` torch threads each."""
        if not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
        check_threads(threads)
        self.workers = workers
        self.threads = threads
        self.persistent = persistent
        self._pool: ProcessPoolExecutor | None = None
        self._finalizer: weakref.finalize | None = None

    def _start(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=get_context("spawn"),
                initializer=_init_worker,
                initargs=(self.worker_threads, os.getpid()),
            )
            self._finalizer = weakref.finalize(self, _shutdown, self._pool)
        return self._pool

    def close(self) -> None:
        """Stop the workers (a later `run` starts new ones)."""
        if self._finalizer is not None:
            self._finalizer()
        self._pool, self._finalizer = None, None

    def abort(self) -> None:
        """Stop the workers at once, trials in flight included (an interrupt or SIGTERM)."""
        if self._pool is not None:
            _terminate(self._pool)
        if self._finalizer is not None:
            self._finalizer.detach()
        self._pool, self._finalizer = None, None

    @property
    def worker_threads(self) -> int:
        """Torch threads per worker."""
        return self.threads or max(1, (os.cpu_count() or 1) // self.workers)

    def _execute(
        self, specs: list[TrialSpec], runner: Runner, deliver: Callable[[TrialResult], None]
    ) -> None:
        try:
            pickle.dumps(runner)
        except Exception as exc:
            raise TypeError(
                f"ProcessExecutor needs a picklable runner (a module-level function), got "
                f"{runner!r}: {exc}"
            ) from None
        pool = self._start()
        broken: BaseException | None = None
        crash: Exception | None = None  # raised once the trials in flight are stored
        try:
            waiting: dict[Future[TrialResult], TrialSpec] = {
                pool.submit(run_guarded, runner, spec): spec for spec in specs
            }
            while waiting:
                done, _ = wait(waiting, return_when=FIRST_COMPLETED)
                for future in done:
                    spec = waiting.pop(future)
                    if future.cancelled():
                        continue
                    try:
                        result = future.result()
                    except BrokenProcessPool as exc:
                        broken = exc
                        continue
                    except (TrialCrash, TaskCodeError) as exc:
                        crash = crash or exc
                        for other in waiting:  # those not started yet; running ones finish
                            other.cancel()
                        continue
                    except Exception as exc:  # e.g. a result that could not be pickled
                        result = _failed(spec, exc)
                    deliver(result)
        except BaseException:  # an interrupt: the workers stop now, with the run
            self.abort()
            raise
        if broken is not None or crash is not None or not self.persistent:
            self.close()
        if crash is not None:
            raise crash
        if broken is not None:
            raise RuntimeError(
                f"a worker process died (killed, or out of memory?): {broken}; the trials that "
                f"completed are stored — run again to finish the rest"
            ) from broken

    def __repr__(self) -> str:
        return f"ProcessExecutor(workers={self.workers}, threads={self.threads})"


EXECUTORS = ("inprocess", "process", "ray")
"""The kinds of executor `make_executor` builds (``--executor``)."""


def make_executor(
    workers: int | None = None,
    threads: int | None = None,
    *,
    kind: str | None = None,
    address: str | None = None,
    trial_cpus: float = 1.0,
    trial_gpus: float = 0.0,
) -> Executor:
    """The executor for ``kind`` (one of `EXECUTORS`).

    With no ``kind``, ``workers`` decides as it always did: `InProcessExecutor` for 1 (the
    default), `ProcessExecutor` for more. ``"ray"`` gives a `RayExecutor` (imported only
    then): at ``address``, or on a local Ray of ``ceil(workers * trial_cpus)`` CPUs (the
    machine's when ``workers`` is ``None``), each trial asking for ``trial_cpus`` CPUs and
    ``trial_gpus`` GPUs. ``workers < 1`` raises ``ValueError``; so does ``workers > 1`` with
    ``"inprocess"`` and ``workers`` with a Ray ``address``. A missing Ray is a `UsageError`
    saying what to install.
    """
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    if kind is None:
        kind = "process" if (workers or 1) > 1 else "inprocess"
    if kind not in EXECUTORS:
        raise ValueError(f"kind must be one of {EXECUTORS}, got {kind!r}")
    if kind != "ray" and (address is not None or trial_cpus != 1.0 or trial_gpus != 0.0):
        raise ValueError(f"address, trial_cpus and trial_gpus apply to kind 'ray', not {kind!r}")
    if kind == "inprocess":
        if (workers or 1) > 1:
            raise ValueError(f"kind 'inprocess' runs one trial at a time, got workers={workers}")
        return InProcessExecutor(threads)
    if kind == "process":
        return ProcessExecutor(workers or 1, threads)
    from disciplined.trials.ray_executor import RayExecutor

    if workers is not None and address is not None:
        raise ValueError(
            f"workers sizes a local Ray; at address {address!r} the cluster's resources "
            f"decide how many trials run at once, got workers={workers}"
        )
    num_cpus = None if workers is None else math.ceil(workers * trial_cpus)
    return RayExecutor(
        address, num_cpus=num_cpus, trial_cpus=trial_cpus, trial_gpus=trial_gpus, threads=threads
    )
