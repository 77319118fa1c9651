"""Executors: the same results in process and in workers, nothing rerun that is stored, a
killed study resumed without loss, and a failing trial that does not stop the others."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from disciplined.trials.executors import (
    InProcessExecutor,
    ProcessExecutor,
    make_executor,
)
from disciplined.trials.hparams import HParams
from disciplined.trials.spec import TrialResult, TrialSpec, run_trial
from disciplined.trials.store import MemoryStore, SQLiteStore

HP = HParams(batch_size=256).to_dict()
CALLS_FILE = "DISCIPLINED_TEST_RUNNER_CALLS"  # env var naming the file runners append to
BOOM_SEED = 99
DIE_SEED = 666


def train_spec(seed: int) -> TrialSpec:
    """A trial of a few steps."""
    return TrialSpec(task="digits-mlp", hparams=HP, kind="train", budget={"epochs": 0.5}, seed=seed)


def range_spec(seed: int) -> TrialSpec:
    """A 30-step range test without validation."""
    budget = {"num_steps": 30, "val": False}
    return TrialSpec(task="digits-mlp", hparams=HP, kind="range_test", budget=budget, seed=seed)


def counting_runner(spec: TrialSpec) -> TrialResult:
    """`run_trial`, noting each call in the file ``$DISCIPLINED_TEST_RUNNER_CALLS`` (so calls
    made in worker processes are counted too); raises for seed `BOOM_SEED` and kills its own
    process for seed `DIE_SEED`."""
    with open(os.environ[CALLS_FILE], "a") as f:
        f.write(f"{spec.key}\n")
    if spec.seed == BOOM_SEED:
        raise RuntimeError("boom: this runner fails on purpose")
    if spec.seed == DIE_SEED:
        time.sleep(0.3)
        os._exit(3)
    return run_trial(spec)


@pytest.fixture
def calls(tmp_path, monkeypatch):
    """A function returning the keys `counting_runner` was called with so far."""
    path = tmp_path / "calls.txt"
    path.touch()
    monkeypatch.setenv(CALLS_FILE, str(path))
    return lambda: path.read_text().split()


def without_seconds(x: Any) -> Any:
    """``x`` with every ``seconds`` entry dropped, at any depth (wall time differs run to run)."""
    if isinstance(x, dict):
        return {k: without_seconds(v) for k, v in x.items() if k != "seconds"}
    if isinstance(x, list):
        return [without_seconds(v) for v in x]
    return x


def test_in_process_and_worker_processes_agree(calls):
    specs = [train_spec(0), train_spec(1), range_spec(3), train_spec(BOOM_SEED), train_spec(2)]
    threads_before = torch.get_num_threads()
    local = InProcessExecutor(threads=1).run(specs, MemoryStore(), runner=counting_runner)
    assert torch.get_num_threads() == threads_before
    assert len(calls()) == 5

    store = MemoryStore()
    seen: list[tuple[str, bool]] = []
    remote = ProcessExecutor(workers=2, threads=1).run(
        specs, store, runner=counting_runner, on_result=lambda r, c: seen.append((r.key, c))
    )
    assert len(calls()) == 10  # the workers called the runner
    assert [r.key for r in remote] == [s.key for s in specs]  # in the order of the specs
    assert sorted(seen) == sorted((s.key, False) for s in specs)
    assert [r.status for r in remote] == ["ok", "ok", "ok", "failed", "ok"]
    assert remote[3].reason == "RuntimeError: boom: this runner fails on purpose"
    for a, b in zip(local, remote, strict=True):
        assert without_seconds(a.to_dict()) == without_seconds(b.to_dict())
        if a.history is not None:
            assert a.history.train_losses == b.history.train_losses
            assert a.history.final.val_metric == b.history.final.val_metric
            assert a.history.final.val_loss == b.history.final.val_loss
    assert local[2].range_test.losses == remote[2].range_test.losses

    # Run again over the same store: everything is read, nothing rerun, no pool started.
    seen.clear()
    again = ProcessExecutor(workers=2, threads=1).run(
        specs, store, runner=counting_runner, on_result=lambda r, c: seen.append((r.key, c))
    )
    assert len(calls()) == 10
    assert seen == [(s.key, True) for s in specs]
    assert [r.to_dict() for r in again] == [r.to_dict() for r in remote]


def test_a_second_run_reruns_nothing_and_duplicates_run_once():
    ran: list[int] = []

    def runner(spec: TrialSpec) -> TrialResult:
        ran.append(spec.seed)
        return run_trial(spec)

    store = MemoryStore()
    specs = [train_spec(5), train_spec(6), train_spec(5)]
    first = InProcessExecutor().run(specs, store, runner=runner)
    assert ran == [5, 6]
    assert len(store) == 2
    assert first[0].to_dict() == first[2].to_dict()
    second = InProcessExecutor().run([*specs, train_spec(7)], store, runner=runner)
    assert ran == [5, 6, 7]
    assert [r.to_dict() for r in second[:3]] == [r.to_dict() for r in first]


def test_a_raising_runner_is_recorded_failed_and_the_others_finish():
    def runner(spec: TrialSpec) -> TrialResult:
        if spec.seed == 1:
            raise ValueError("bad batch size for this task")
        return run_trial(spec)

    store = MemoryStore()
    out = InProcessExecutor().run(
        [train_spec(0), train_spec(1), train_spec(2)], store, runner=runner
    )
    assert [r.status for r in out] == ["ok", "failed", "ok"]
    assert out[1].reason == "ValueError: bad batch size for this task"
    assert store.get(train_spec(1).key).status == "failed"  # recorded, so not rerun


def test_a_dead_worker_stores_what_completed_then_raises(calls):
    store = MemoryStore()
    specs = [train_spec(0), train_spec(DIE_SEED), train_spec(1)]
    with pytest.raises(RuntimeError, match="worker process died"):
        ProcessExecutor(workers=1, threads=1).run(specs, store, runner=counting_runner)
    assert store.keys() == [specs[0].key]
    assert store.get(specs[0].key).status == "ok"


def test_an_unpicklable_runner_is_refused_before_anything_runs():
    with pytest.raises(TypeError, match="picklable runner"):
        ProcessExecutor(workers=2).run(
            [train_spec(0)], MemoryStore(), runner=lambda s: run_trial(s)
        )


def test_make_executor():
    with pytest.raises(ValueError, match="workers must be an integer >= 1, got 0"):
        make_executor(0)
    with pytest.raises(ValueError, match="got -2"):
        make_executor(-2)
    with pytest.raises(ValueError, match="threads must be an integer >= 1 or None, got 0"):
        make_executor(2, threads=0)
    assert isinstance(make_executor(1), InProcessExecutor)
    ex = make_executor(3, threads=2)
    assert isinstance(ex, ProcessExecutor)
    assert (ex.workers, ex.worker_threads) == (3, 2)
    # --executor: no kind keeps the --workers mapping; a kind is taken as asked
    assert isinstance(make_executor(), InProcessExecutor)
    assert isinstance(make_executor(kind="inprocess"), InProcessExecutor)
    one = make_executor(kind="process")
    assert isinstance(one, ProcessExecutor) and one.workers == 1
    with pytest.raises(ValueError, match="kind must be one of"):
        make_executor(kind="dask")
    with pytest.raises(ValueError, match="'inprocess' runs one trial at a time, got workers=2"):
        make_executor(2, kind="inprocess")
    with pytest.raises(ValueError, match="apply to kind 'ray', not 'process'"):
        make_executor(2, address="auto")
    with pytest.raises(ValueError, match="apply to kind 'ray', not 'inprocess'"):
        make_executor(trial_gpus=1)


KILLED_STUDY = textwrap.dedent(
    """
    import sys, time
    from disciplined.trials.executors import InProcessExecutor
    from disciplined.trials.hparams import HParams
    from disciplined.trials.store import SQLiteStore
    from disciplined.trials.spec import TrialSpec, run_trial

    def slow(spec):
        time.sleep(0.5)
        return run_trial(spec)

    hp = HParams(batch_size=256).to_dict()
    specs = [TrialSpec(task="digits-mlp", hparams=hp, kind="train", budget={"epochs": 0.5},
                       seed=s) for s in range(6)]
    with SQLiteStore(sys.argv[1]) as store:
        InProcessExecutor(threads=1).run(specs, store, runner=slow)
    """
)


def test_a_killed_study_resumes_where_it_stopped(tmp_path: Path):
    path = tmp_path / "killed.sqlite"
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_STUDY, str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 90
        while not path.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        store = SQLiteStore(path)
        while len(store) < 2 and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert child.poll() is None, child.stderr.read().decode()
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL

    before = len(store)
    assert 2 <= before < 6
    ran: list[int] = []

    def runner(spec: TrialSpec) -> TrialResult:
        ran.append(spec.seed)
        return run_trial(spec)

    specs = [train_spec(s) for s in range(6)]
    resumed = InProcessExecutor(threads=1).run(specs, store, runner=runner)
    assert len(ran) == 6 - before
    assert len(store) == 6
    store.close()

    with SQLiteStore(tmp_path / "fresh.sqlite") as fresh:
        whole = InProcessExecutor(threads=1).run(specs, fresh)
    assert [without_seconds(r.to_dict()) for r in resumed] == [
        without_seconds(r.to_dict()) for r in whole
    ]
    assert all(r.status == "ok" for r in whole)


def pid_runner(spec: TrialSpec) -> TrialResult:
    """A trial that only says which process ran it."""
    return TrialResult(spec.key, spec, "ok", 0.0, reason=str(os.getpid()))


def test_the_workers_are_started_once_and_reused_until_closed():
    with ProcessExecutor(workers=2, threads=1) as ex:
        first = ex.run([train_spec(s) for s in range(4)], MemoryStore(), runner=pid_runner)
        second = ex.run([train_spec(s) for s in range(4, 8)], MemoryStore(), runner=pid_runner)
        pids = {r.reason for r in first} | {r.reason for r in second}
        # the same two workers ran both (fresh pools would have brought new processes)
        assert len(pids) <= 2 and str(os.getpid()) not in pids
        held = ex._pool
        assert held is not None
    assert ex._pool is None  # closed at the end of the block
    again = ex.run([train_spec(9)], MemoryStore(), runner=pid_runner)
    assert again[0].reason not in pids  # a closed executor starts new workers
    ex.close()
    one_shot = ProcessExecutor(workers=1, threads=1, persistent=False)
    one_shot.run([train_spec(0)], MemoryStore(), runner=pid_runner)
    assert one_shot._pool is None
