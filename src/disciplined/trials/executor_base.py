"""What every executor shares: the `Executor` contract (its `run`: the cache, the order of
results, duplicate specs, storing, the callback), the `Runner` it calls, and the helpers each
executor runs a trial with (`run_guarded`, `failed_result`, `check_threads`).

The executors themselves live beside this module, none importing another:
`disciplined.trials.local_executors` (in this process, in worker processes) and
`disciplined.trials.ray_executor` (on Ray); `disciplined.trials.factory.make_executor` picks
one, and `disciplined.trials.executors` names them all.
"""

from __future__ import annotations

import abc
import traceback
from collections.abc import Callable, Sequence

from disciplined.errors import TaskCodeError
from disciplined.trials.spec import TrialCrash, TrialResult, TrialSpec, run_trial
from disciplined.trials.store import TrialStore

__all__ = [
    "Executor",
    "OnResult",
    "Runner",
    "check_threads",
    "failed_result",
    "run_guarded",
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
