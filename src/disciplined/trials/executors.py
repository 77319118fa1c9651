"""Where trials run: in this process, in a pool of worker processes, or on Ray
(`disciplined.trials.ray_executor`, imported only when asked for).

An `Executor` takes trial specs and a `TrialStore`. A spec whose key is already stored is
read back, not run again; every other spec is run by the *runner* (`run_trial` by default)
and its result is stored by this process the moment it arrives, so a study that is killed
loses at most the trials in flight and picks up where it stopped when run again. Workers
never touch the store.

This module names them all in one place; each lives in a module of its own, none importing
another: the contract and what every executor shares in `disciplined.trials.executor_base`,
`InProcessExecutor` and `ProcessExecutor` in `disciplined.trials.local_executors` (with what
makes their results reproducible), `RayExecutor` in `disciplined.trials.ray_executor`, and
`make_executor` in `disciplined.trials.factory`.
"""

from __future__ import annotations

from disciplined.trials.executor_base import (
    Executor,
    OnResult,
    Runner,
    check_threads,
    failed_result,
    run_guarded,
)
from disciplined.trials.factory import EXECUTORS, make_executor
from disciplined.trials.local_executors import (
    PARENT_POLL_SECONDS,
    InProcessExecutor,
    ProcessExecutor,
)

__all__ = [
    "EXECUTORS",
    "PARENT_POLL_SECONDS",
    "Executor",
    "InProcessExecutor",
    "OnResult",
    "ProcessExecutor",
    "Runner",
    "check_threads",
    "failed_result",
    "make_executor",
    "run_guarded",
]
