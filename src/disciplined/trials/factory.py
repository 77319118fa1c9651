"""The executor a command asks for (`make_executor`): in process, in worker processes, or on
Ray (`disciplined.trials.ray_executor`, imported only when asked for).

It sits in a module of its own so that no executor imports another: the factory imports
them, they import only `disciplined.trials.executor_base`.
"""

from __future__ import annotations

import math

from disciplined.trials.executor_base import Executor
from disciplined.trials.local_executors import InProcessExecutor, ProcessExecutor

__all__ = ["EXECUTORS", "make_executor"]

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
