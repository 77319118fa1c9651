"""The held-out zoo (`benchmarks/zoo/heldout.py`): every task builds offline with three
disjoint splits and a sealed test split, like the development zoo's; no name is shared with
the development zoo; and the oracle's ``--zoo heldout`` writes and reads its own file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
sys.path.insert(0, str(BENCH))

import _common  # noqa: E402
import fair  # noqa: E402
import oracle  # noqa: E402
from zoo.heldout import HELDOUT  # noqa: E402
from zoo.tasks import ZOO  # noqa: E402

from disciplined import UsageError, load_task  # noqa: E402
from disciplined.trials.hparams import HParams  # noqa: E402

REPEATED_ROWS = {"affairs-tabular", "randhie-counts"}
"""Tasks whose data has identical rows (surveys' discrete answers: two people can answer
alike), so their splits are disjoint by sample, not by value."""


@pytest.fixture
def in_root(monkeypatch):
    """Run from the repository root: zoo task references are relative to it."""
    monkeypatch.chdir(ROOT)


def _rows(x: torch.Tensor) -> set[tuple]:
    return {tuple(r.reshape(-1).tolist()) for r in x}


def test_the_heldout_zoo_has_six_tasks_none_named_like_a_development_one(in_root):
    assert len(HELDOUT) >= 6
    assert set(HELDOUT).isdisjoint(ZOO)
    assert all(e.ref == f"benchmarks/zoo/heldout.py:{e.function}" for e in HELDOUT.values())
    # the development entries keep their references
    assert all(e.ref == f"benchmarks/zoo/tasks.py:{e.function}" for e in ZOO.values())
    dev_names = {load_task(ZOO[n].ref).name for n in ("wine-mlp", "bn-cnn")}
    held_names = {load_task(e.ref).name for e in HELDOUT.values()}
    assert len(held_names) == len(HELDOUT) and held_names.isdisjoint(dev_names)


@pytest.mark.parametrize("name", list(HELDOUT))
def test_heldout_task_builds_three_disjoint_splits_and_trains(name, in_root):
    entry = HELDOUT[name]
    val = load_task(entry.ref)
    test = load_task(entry.ref, {"split": "test"})
    assert val.num_train == test.num_train and val.num_val > 0 and test.num_val > 0
    xv, xt = val.val_data[0], test.val_data[0]
    assert not torch.equal(xv[: len(xt)], xt[: len(xv)]), name
    if name not in REPEATED_ROWS:
        train, held_val, held_test = _rows(val.train_data[0]), _rows(xv), _rows(xt)
        assert train.isdisjoint(held_val) and train.isdisjoint(held_test), name
        assert held_val.isdisjoint(held_test), name
    # the model, loss and metric fit the data: one forward pass scores a batch
    hp = HParams(batch_size=val.default_batch_size).to_dict()
    model = val.build_model(hp)
    x, y = val.train_data[0][:8], val.train_data[1][:8]
    out = model(x)
    assert torch.isfinite(val.loss_fn(out, y))
    assert torch.isfinite(val.metric(out, y))


@pytest.mark.parametrize("name", list(HELDOUT))
def test_heldout_task_counts_its_test_reads_and_refuses_them_while_sealed(name, in_root):
    entry = HELDOUT[name]
    before = dict(_common.TEST_READS)
    with fair.sealed(), pytest.raises(UsageError, match="read while sealed"):
        load_task(entry.ref, {"split": "test"})
    assert before == _common.TEST_READS, name
    load_task(entry.ref, {"split": "val"})  # the validation split is not counted
    assert before == _common.TEST_READS, name
    test = load_task(entry.ref, {"split": "test"})
    assert _common.TEST_READS[test.name] == before.get(test.name, 0) + 1


def test_the_oracles_heldout_zoo_has_its_own_file():
    zoo, path = oracle.ZOOS["heldout"]
    assert zoo is HELDOUT and path == oracle.HELDOUT_JSON
    assert path.name == "heldout_oracle.json" and path != oracle.ORACLE_JSON
    assert oracle.ZOOS["dev"] == (ZOO, oracle.ORACLE_JSON)
    for name, summary in oracle.load(path).items():  # what has been run: whole grids
        entry = HELDOUT[name]
        assert summary["ref"] == entry.ref
        n_points = 2 * len(entry.lrs) * len(entry.weight_decays) * 2
        assert len(summary["rows"]) == 3 * n_points, name
        if "test" in summary:
            best = oracle.reference(summary).best_point
            assert tuple(summary["test"]["best_point"]) == best, name


def test_oracle_quick_reads_the_heldout_file_only():
    out = subprocess.run(
        [sys.executable, "benchmarks/oracle.py", "--zoo", "heldout", "--quick"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    assert "held-out zoo's oracles" in out.stdout
    assert "`benchmarks/zoo/heldout_oracle.json`" in out.stdout
    assert all(f"| {name} |" in out.stdout for name in HELDOUT)
    assert not any(f"| {name} |" in out.stdout for name in ZOO)
    bad = subprocess.run(
        [sys.executable, "benchmarks/oracle.py", "--zoo", "heldout", "--tasks", "wine-mlp"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert bad.returncode != 0 and "unknown zoo task" in bad.stderr
