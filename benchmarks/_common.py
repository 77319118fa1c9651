"""Shared pieces of the benchmarks: the provenance header and robust summaries."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import statistics
import sys

import torch

SEALED = "DISCIPLINED_BENCH_SEALED"
TEST_READS: dict[str, int] = {}
"""How many times this process built each task's test split (`read_test_split`)."""


def read_test_split(name: str) -> None:
    """Count a read of ``name``'s test split; raise `PermissionError` while the test split is
    sealed (``DISCIPLINED_BENCH_SEALED=1``: the recipe and the searches are running)."""
    if os.environ.get(SEALED) == "1":
        raise PermissionError(
            f"the test split of {name} was read while sealed: only the final report may read it"
        )
    TEST_READS[name] = TEST_READS.get(name, 0) + 1


def header(title: str) -> str:
    """A markdown heading plus where the numbers came from: command, machine, versions, date."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    argv = list(sys.argv[1:])
    if "--cache" in argv:  # a folder of stores to resume from: not needed to rerun the table
        i = argv.index("--cache")
        del argv[i : i + 2]
    cmd = "python " + " ".join([os.path.relpath(sys.argv[0]), *argv])
    return (
        f"### {title}\n\n"
        f"- command: `{cmd}`\n"
        f"- machine: {cpu}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}\n"
        f"- versions: Python {platform.python_version()}, torch {torch.__version__}\n"
        f"- date: {_dt.date.today().isoformat()}\n"
    )


def quiet(fn, *args, **kwargs):
    """Call ``fn`` with its standard output discarded: torch-lr-finder prints a line after
    every test and on ``plot``, which must not end up in the benchmark's markdown."""
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args, **kwargs)


def pool_map(fn, jobs: list[tuple], workers: int) -> list:
    """``fn(*job)`` for each job, in order, on ``workers`` spawned processes (in this process
    when ``workers`` is 1 or there is one job)."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    if workers == 1 or len(jobs) <= 1:
        return [fn(*j) for j in jobs]
    with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=get_context("spawn")) as pool:
        return list(pool.map(fn, *zip(*jobs, strict=True)))


def median(values: list[float]) -> float:
    """Median of a non-empty list."""
    return statistics.median(values)


def cache_dir(given: str | None, prefix: str):
    """The folder for a benchmark's stores and tune outputs: ``given`` (kept, so runs can
    share it), else a temporary one removed when the process ends."""
    import atexit
    import shutil
    import tempfile
    from pathlib import Path

    path = Path(given or tempfile.mkdtemp(prefix=prefix))
    if given is None:
        atexit.register(shutil.rmtree, path, True)
    return path
