"""The `TrialStore` contract, run against every backend through one parametrized fixture,
plus what only the SQLite file promises: concurrent writers and refusing bad paths."""

from __future__ import annotations

import dataclasses
import math
import multiprocessing
import os
import re
import sqlite3
from pathlib import Path

import pytest

from disciplined.errors import UsageError
from disciplined.trials.hparams import HParams
from disciplined.trials.spec import TrialResult, TrialSpec, run_trial
from disciplined.trials.store import MemoryStore, SQLiteStore, TrialStore, open_store

HP = HParams(batch_size=256).to_dict()


def small_result(seed: int, status: str = "ok", reason: str | None = None) -> TrialResult:
    """A result that was never run: enough to exercise a store."""
    spec = TrialSpec(task="digits-mlp", hparams=HP, kind="train", budget={"epochs": 1}, seed=seed)
    return TrialResult(spec.key, spec, status, 0.25 * seed, reason=reason)


# --------------------------------------------------------------------------- the fixture

PRIOR = small_result(10_000, reason="written before the store was reopened")


@pytest.fixture(params=["memory", "fresh-file", "reopened-file"])
def store(request, tmp_path):
    """Every backend, in every state a study meets it in. The reopened file already holds
    `PRIOR`; tests count from what is there."""
    if request.param == "memory":
        s: TrialStore = MemoryStore()
    elif request.param == "fresh-file":
        s = SQLiteStore(tmp_path / "trials.sqlite")
    else:
        with SQLiteStore(tmp_path / "trials.sqlite") as first:
            first.put(PRIOR)
        s = SQLiteStore(tmp_path / "trials.sqlite")
        assert s.keys() == [PRIOR.key]
        assert s.get(PRIOR.key).to_dict() == PRIOR.to_dict()
    yield s
    s.close()


# --------------------------------------------------------------------------- the contract


def test_put_get_contains_len_and_order(store):
    base = len(store)
    rs = [small_result(s) for s in (3, 1, 2)]
    assert store.get(rs[0].key) is None
    assert rs[0].key not in store
    for r in rs:
        assert store.put(r).to_dict() == r.to_dict()
    assert len(store) == base + 3
    assert all(r.key in store for r in rs)
    assert 123 not in store
    assert store.get(rs[1].key).to_dict() == rs[1].to_dict()
    assert [r.key for r in store.results()[base:]] == [r.key for r in rs]  # insertion order
    assert store.keys()[base:] == [r.key for r in rs]


def test_a_stored_key_is_immutable(store):
    base = len(store)
    first = small_result(7)
    store.put(first)
    again = dataclasses.replace(first, status="failed", reason="a later writer", seconds=99.0)
    kept = store.put(again)
    assert kept.to_dict() == first.to_dict()
    assert store.get(first.key).to_dict() == first.to_dict()
    assert len(store) == base + 1


def test_meta(store):
    assert store.get_meta("nothing") is None
    store.set_meta("plan", {"steps": ["lr", "wd"], "n": 3, "x": 0.5, "none": None})
    assert store.get_meta("plan") == {"steps": ["lr", "wd"], "n": 3, "x": 0.5, "none": None}
    store.set_meta("plan", "replaced")
    assert store.get_meta("plan") == "replaced"
    assert store.setdefault_meta("plan", "ignored") == "replaced"
    assert store.setdefault_meta("new", [1, 2]) == [1, 2]
    with pytest.raises(ValueError, match="meta 'bad'"):
        store.set_meta("bad", math.nan)


def test_bind_refuses_another_task(store):
    ident = {"task": "digits-mlp", "task_options": {"n_train": 500}}
    store.bind(ident)
    store.bind(dict(ident))  # the same identity again is fine
    assert store.get_meta("identity") == ident
    with pytest.raises(UsageError) as info:
        store.bind({"task": "mnist1d-cnn", "task_options": {}})
    message = str(info.value)
    assert "\n" not in message
    assert message == (
        f"store {store.location} holds trials of task 'digits-mlp' ({{\"n_train\": 500}}); "
        "refusing to mix in task 'mnist1d-cnn' — use another --store"
    )
    with pytest.raises(UsageError, match=r"refusing to mix in task 'digits-mlp' \(\{\"n_train\""):
        store.bind({"task": "digits-mlp", "task_options": {"n_train": 600}})


def test_a_closed_store_refuses_use(store):
    store.close()
    store.close()  # twice is harmless
    with pytest.raises(RuntimeError, match="closed"):
        store.get("k")


@pytest.fixture(scope="module")
def real_results() -> list[TrialResult]:
    """One real training result (a `History`), one range test, and a history with a NaN and
    an infinite loss in it."""
    train = run_trial(
        TrialSpec(task="digits-mlp", hparams=HP, kind="train", budget={"epochs": 0.5}, seed=1)
    )
    rt = run_trial(
        TrialSpec(
            task="digits-mlp",
            hparams=HP,
            kind="range_test",
            budget={"num_steps": 30, "val": False},
            seed=1,
        )
    )
    assert train.history is not None and rt.range_test is not None, (train.reason, rt.reason)
    losses = (math.nan, math.inf, *train.history.train_losses[2:])
    bad_history = dataclasses.replace(train.history, train_losses=losses, diverged=True)
    spec = dataclasses.replace(train.spec, seed=2)
    nan = TrialResult(spec.key, spec, "diverged", 1.0, history=bad_history, reason="NaN")
    return [train, rt, nan]


def test_json_round_trip_of_real_results(store, real_results):
    for r in real_results:
        store.put(r)
    for r in real_results:
        back = store.get(r.key)
        assert back.to_dict() == r.to_dict()
    train, rt, nan = (store.get(r.key) for r in real_results)
    assert train.history.train_losses == real_results[0].history.train_losses
    assert rt.range_test.lrs == real_results[1].range_test.lrs
    assert math.isnan(nan.history.train_losses[0]) and nan.history.train_losses[1] == math.inf


# --------------------------------------------------------------------------- SQLite only


def _put_many(path: str, first_seed: int, n: int, barrier) -> None:
    barrier.wait(timeout=60)  # both processes are past their imports: the writes overlap
    with SQLiteStore(path) as s:
        for seed in range(first_seed, first_seed + n):
            s.put(small_result(seed))


def test_two_processes_write_one_file(tmp_path):
    path = str(tmp_path / "deep" / "shared.sqlite")  # neither process finds it there
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_put_many, args=(path, k, 40, barrier)) for k in (0, 40)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0]
    with SQLiteStore(path) as s:
        assert len(s) == 80
        got = s.results()
        assert sorted(r.spec.seed for r in got) == list(range(80))
        assert all(r.to_dict() == small_result(r.spec.seed).to_dict() for r in got)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_bad_paths_are_usage_errors(tmp_path):
    a_file = tmp_path / "plain.txt"
    a_file.write_text("hello")
    for bad in (a_file / "trials.sqlite", a_file / "sub" / "trials.sqlite"):
        with pytest.raises(UsageError, match=re.escape(f"store {bad}: {a_file} is not a folder")):
            SQLiteStore(bad)
    with pytest.raises(UsageError, match=re.escape(f"store {tmp_path} is a folder")):
        SQLiteStore(tmp_path)


def test_a_file_that_is_not_ours_is_refused(tmp_path):
    text = tmp_path / "notes.sqlite"
    text.write_text("not a database, just some words that fill the header " * 4)
    with pytest.raises(UsageError, match=r"notes\.sqlite is not a trial store") as info:
        SQLiteStore(text)
    assert "\n" not in str(info.value)
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE people (name TEXT)")
    conn.close()
    with pytest.raises(UsageError, match=r"other\.sqlite is an SQLite database but not a trial"):
        SQLiteStore(other)


def test_an_empty_file_becomes_a_store(tmp_path):
    empty = tmp_path / "empty.sqlite"
    empty.touch()
    with SQLiteStore(empty) as s:
        s.put(small_result(1))
    with SQLiteStore(empty) as s:
        assert len(s) == 1


def test_open_store(tmp_path):
    with open_store(None, tmp_path / "out") as s:
        assert isinstance(s, SQLiteStore)
        assert s.path == tmp_path / "out" / "trials.sqlite"
        assert s.path.exists()
    assert isinstance(open_store(":memory:", tmp_path), MemoryStore)
    with open_store(str(tmp_path / "x.sqlite"), tmp_path / "out") as s:
        assert isinstance(s, SQLiteStore) and Path(s.location) == tmp_path / "x.sqlite"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_uses_its_own_connection(tmp_path):
    with SQLiteStore(tmp_path / "forked.sqlite") as s:
        s.put(small_result(1))
        pid = os.fork()
        if pid == 0:  # the child: write through the inherited object, then leave at once
            code = 1
            try:
                s.put(small_result(2))
                code = 0 if len(s) == 2 else 1
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert [r.spec.seed for r in s.results()] == [1, 2]  # the parent's connection still works
        s.put(small_result(3))
        assert len(s) == 3
