"""Shared pieces of the benchmarks: the provenance header and robust summaries."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

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


ROOT = Path(__file__).resolve().parent.parent
"""The repository root: where git is asked for the commit."""

DIRTY_PATHS = ("src", "benchmarks")
"""The tracked paths whose uncommitted changes mark a commit ``+dirty``."""


def commit(root: str | Path = ROOT) -> str:
    """The short hash of ``root``'s HEAD, with ``+dirty`` when tracked files under `DIRTY_PATHS`
    differ from it (staged or not); ``unknown`` when git is missing or ``root`` is not in a
    repository."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=30,
        )
        if head.returncode != 0 or not head.stdout.strip():
            return "unknown"
        diff = subprocess.run(
            ["git", "diff", "--quiet", "HEAD", "--", *DIRTY_PATHS],
            cwd=root,
            capture_output=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head.stdout.strip() + ("+dirty" if diff.returncode == 1 else "")


def load_average() -> tuple[float, float, float] | None:
    """The 1, 5 and 15-minute load averages now; ``None`` where the system has none."""
    try:
        return os.getloadavg()
    except (AttributeError, OSError):
        return None


def count_stores(folder: str | Path) -> int:
    """How many trial stores (``*.sqlite`` files, at any depth) ``folder`` holds; 0 when it
    does not exist."""
    path = Path(folder)
    return sum(1 for _ in path.rglob("*.sqlite")) if path.is_dir() else 0


def _cache_arg(argv: list[str]) -> str | None:
    """The folder given as ``--cache DIR`` or ``--cache=DIR`` in ``argv``, if any."""
    for i, arg in enumerate(argv):
        if arg == "--cache" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--cache="):
            return arg.split("=", 1)[1]
    return None


LOAD_AT_START = load_average()
"""The load averages when this module was first imported: at the start of a benchmark."""
STORES_AT_START: dict[str, int] = {}
"""Trial stores in the ``--cache`` folder of this process's command line at import time."""
if (_given := _cache_arg(sys.argv[1:])) is not None:
    STORES_AT_START[_given] = count_stores(_given)


def _stores(n: int) -> str:
    return f"{n} store" if n == 1 else f"{n} stores"


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; the platform's processor name elsewhere)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return cpu


def header(title: str, cache: str | Path | None = None) -> str:
    """A markdown heading plus where the numbers came from, one bullet line each: the command
    that reruns the table, the commit, the machine (CPU, cores, torch threads, load average at
    the start), the versions, the date and the cache of trial stores read.

    ``cache`` is the folder of stores the benchmark reads; by default, the ``--cache DIR`` of
    the command line. The command is printed without ``--cache DIR`` (the table reruns
    without it); the cache line says how many stores the folder held when the benchmark
    started (counted at import time), or when this header was made for a folder that was not
    on the command line."""
    argv = list(sys.argv[1:])
    given = _cache_arg(argv)
    for i, arg in enumerate(argv):
        if arg == "--cache":
            del argv[i : i + 2]
            break
        if arg.startswith("--cache="):
            del argv[i]
            break
    cmd = "python " + " ".join([os.path.relpath(sys.argv[0]), *argv])
    folder = str(cache) if cache is not None else given
    if folder is None:
        cache_line = "none (every trial run here)"
    elif folder in STORES_AT_START:
        n = STORES_AT_START[folder]
        cache_line = f"read trial stores from {folder} ({_stores(n)} present at start)"
    else:
        n = count_stores(folder)
        cache_line = (
            f"read trial stores from {folder} ({_stores(n)} present when the table was printed)"
        )
    load = (
        "load average unknown"
        if LOAD_AT_START is None
        else "load average {:.2f} / {:.2f} / {:.2f} (1 / 5 / 15 min) at the start".format(
            *LOAD_AT_START
        )
    )
    return (
        f"### {title}\n\n"
        f"- command: `{cmd}`\n"
        f"- commit: {commit()}\n"
        f"- machine: {cpu_model()}, {os.cpu_count()} cores, torch threads "
        f"{torch.get_num_threads()}, {load}\n"
        f"- versions: Python {platform.python_version()}, torch {torch.__version__}\n"
        f"- date: {_dt.date.today().isoformat()}\n"
        f"- cache: {cache_line}\n"
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
