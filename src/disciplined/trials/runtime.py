"""`Runtime`: how a tune or a search runs, not what it decides.

One frozen record for what `disciplined.tune`, `recipe.run.run_recipe`, the race and the
searches (grid, random, TPE) used to take as 10-14 keyword arguments each: where the trials
are kept (``store``), where they run (``executor``, or the ``workers`` and ``threads`` of one
made for the run), what watches them (``progress``, ``on_result``, ``log_to``), the output
folder (``out``, ``force``) and the command recorded as provenance. The command line builds
one per command; from Python it is built from the old keywords (`Runtime.of`), so every
keyword those functions took still works.

``runner`` is a test hook, not part of any public signature: the function that runs one
trial in this process (default `trials.spec.run_trial`); tests swap it for a scripted one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from disciplined.trials.executor_base import Executor, OnResult, Runner
from disciplined.trials.spec import run_trial
from disciplined.trials.store import TrialStore

__all__ = ["Runtime"]


@dataclass(frozen=True)
class Runtime:
    """How trials run and who watches them; nothing here changes what a tune decides.

    - ``store``: a `TrialStore`, a path of an SQLite file, or None for the caller's default
      (``out/trials.sqlite`` for a tune, memory for a search).
    - ``executor``: where trials run; None makes one for the run (in this process, or
      ``workers`` worker processes), closed when the run ends. ``threads`` is torch's CPU
      threads for each trial of an executor made here (None: chosen for the machine).
    - ``progress``: a callable given the recipe's messages; ``True`` (a tune's default) shows
      them on stderr as the command line does, ``False`` or None says nothing. Searches do
      not read it.
    - ``on_result(result, cached)``: called for each finished trial.
    - ``log_to``: TensorBoard or MLflow targets for each finished trial (what
      `integrations.trackers.TrialLogger` takes, or one), read by `disciplined.tune`.
    - ``out``: the output folder (the tune's store and files); ``force`` lets a tune write
      into a folder another command wrote (`outdir.guard_out`).
    - ``command``: the command recorded in the result's provenance (None: a Python call).
    - ``runner``: the test hook that runs one trial in this process.
    """

    store: TrialStore | str | Path | None = None
    executor: Executor | None = None
    workers: int = 1
    threads: int | None = None
    progress: Callable[[str], None] | bool | None = True
    on_result: OnResult | None = None
    log_to: Any = None
    out: str | Path = "runs/tune"
    force: bool = False
    command: str | None = None
    runner: Runner = run_trial

    @classmethod
    def of(cls, base: Runtime | None = None, **changes: Any) -> Runtime:
        """``base`` (default: the defaults) with ``changes`` replacing its fields; an unknown
        name raises `TypeError` naming it, as a misspelt keyword argument does."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise TypeError(f"unknown runtime setting(s): {', '.join(unknown)}")
        return replace(base, **changes) if base is not None else cls(**changes)

    def say(self) -> Callable[[str], None]:
        """The recipe's message sink: ``progress`` when it is callable, else silence."""
        progress = self.progress
        if callable(progress):
            return progress
        return _silent


def _silent(_message: str) -> None:
    """Say nothing."""
