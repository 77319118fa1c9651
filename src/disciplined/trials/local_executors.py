"""Trials run on this machine: one after another in this process (`InProcessExecutor`), or
in a pool of worker processes (`ProcessExecutor`).

Reproducibility: a trial's result depends only on its spec (the seed is in the spec) and on
the number of threads torch uses for its CPU kernels — with the same thread count,
`InProcessExecutor` and `ProcessExecutor` give the same results bit for bit for the same
specs (the tests check ``InProcessExecutor(threads=1)`` against
``ProcessExecutor(workers=2, threads=1)``). A different thread count may change the order of
floating-point reductions and so the last bits of the losses.
"""

from __future__ import annotations

import os
import pickle
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context

import torch

from disciplined.errors import TaskCodeError
from disciplined.trials.executor_base import (
    Executor,
    Runner,
    ThreadChoice,
    check_threads,
    failed_result,
    run_guarded,
    torch_threads,
)
from disciplined.trials.spec import TrialCrash, TrialResult, TrialSpec

__all__ = ["PARENT_POLL_SECONDS", "InProcessExecutor", "ProcessExecutor"]


class InProcessExecutor(Executor):
    """Runs trials one after another in this process.

    ``threads``, when given, is torch's CPU thread count while `run` runs; the previous
    count is restored afterwards (None leaves torch's count as it is). ``reason`` says why
    that count (`executor_base.thread_choice` gives both: the command line and
    `disciplined.tune` choose it from the free cores and the model's size). The runner may be
    any callable (a closure is fine).
    """

    def __init__(self, threads: int | None = None, *, reason: str | None = None) -> None:
        """An executor running in this process, with ``threads`` torch threads if given."""
        check_threads(threads)
        self.threads = threads
        if threads is not None:
            self.thread_choice = ThreadChoice(threads, reason or "asked for")

    def _execute(
        self, specs: list[TrialSpec], runner: Runner, deliver: Callable[[TrialResult], None]
    ) -> None:
        with torch_threads(self.threads):
            for spec in specs:
                deliver(run_guarded(runner, spec))

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

    @property
    def thread_choice(self) -> ThreadChoice:  # type: ignore[override]
        """Each worker's torch threads and why."""
        if self.threads is not None:
            return ThreadChoice(self.threads, "asked for")
        cpus = os.cpu_count() or 1
        return ThreadChoice(self.worker_threads, f"default: {cpus} cores / {self.workers} workers")

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
                        result = failed_result(spec, exc)
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
