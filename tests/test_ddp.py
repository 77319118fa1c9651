"""Data-parallel training under torch.distributed: a 2-process gloo run (tests/ddp_worker.py,
started the way torchrun starts it) against one process, and the single-process path
unchanged."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

import disciplined
from disciplined.training import distributed
from disciplined.training.batching import batches_per_epoch
from disciplined.training.fit import BatchLoss, fit

sys.path.insert(0, str(Path(__file__).parent))
from ddp_worker import linear_problem

WORKER = Path(__file__).with_name("ddp_worker.py")
SRC = Path(disciplined.__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> list[dict]:
    """Both ranks' ``result.json`` (each ran in its own folder, kept for the file checks)."""
    root = tmp_path_factory.mktemp("ddp")
    port = str(_free_port())
    procs = []
    for r in range(2):
        folder = root / f"rank{r}"
        folder.mkdir()
        env = dict(
            os.environ,
            RANK=str(r),
            LOCAL_RANK=str(r),
            WORLD_SIZE="2",
            LOCAL_WORLD_SIZE="2",
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=port,
            OMP_NUM_THREADS="1",
            PYTHONPATH=os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
        )
        log = (folder / "log.txt").open("w")
        procs.append(
            subprocess.Popen(
                [sys.executable, str(WORKER)], cwd=folder, env=env, stdout=log, stderr=log
            )
        )
    deadline = time.monotonic() + 300
    try:  # a rank that fails leaves the other waiting on it: stop both then
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            if any(p.poll() not in (None, 0) for p in procs):
                break
            time.sleep(0.2)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    codes = [p.wait() for p in procs]
    logs = [(root / f"rank{r}" / "log.txt").read_text() for r in range(2)]
    assert codes == [0, 0], "\n".join(logs)
    results = [json.loads((root / f"rank{r}" / "result.json").read_text()) for r in range(2)]
    for r, res in enumerate(results):
        res["folder"], res["log"] = str(root / f"rank{r}"), logs[r]
    return results


def _one_process(batch_size: int, as_dataset: bool = False, batch_loss: bool = False) -> dict:
    """The worker's linear run in this process (no process group), rank 0's start."""
    from torch.utils.data import TensorDataset

    (x, y), val = linear_problem()
    torch.manual_seed(100)
    model = nn.Linear(5, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    mse = nn.MSELoss()
    history = fit(
        model,
        opt,
        TensorDataset(x, y) if as_dataset else (x, y),
        loss_fn=BatchLoss(lambda m, b: mse(m(b[0]), b[1])) if batch_loss else mse,
        val_data=val,
        epochs=3,
        batch_size=batch_size,
        eval_every=4,
        seed=3,
    )
    return {
        "weight": model.weight.detach().flatten().tolist() + model.bias.detach().tolist(),
        "history": history,
    }


@pytest.mark.slow
@pytest.mark.parametrize(
    "run,reference",
    [
        ("per_rank_16", {}),
        ("per_rank_8_accumulate_2", {}),
        ("dataset_batch_loss", {"as_dataset": True, "batch_loss": True}),
    ],
)
def test_two_ranks_train_as_one_process_at_twice_the_batch(two_ranks, run, reference):
    one = _one_process(32, **reference)
    h1 = one["history"]
    for res in two_ranks:
        got = res[run]
        assert got["weight"] == pytest.approx(one["weight"], rel=1e-5, abs=1e-6)
        h = got["history"]
        assert len(h["train_losses"]) == h1.steps == 12  # 128 samples / 32 a step, 3 epochs
        assert h["steps_per_epoch"] == h1.steps_per_epoch == 4
        assert h["train_losses"] == pytest.approx(list(h1.train_losses), rel=1e-5, abs=1e-7)
        assert got["eval_losses"] == pytest.approx(
            [e.val_loss for e in h1.evals], rel=1e-5, abs=1e-7
        )
        assert h["meta"]["world_size"] == 2
        assert h["meta"]["total_batch_size"] == 32
    # the run moved the weights: equality above is not that of two untouched models
    assert max(abs(w) for w in one["weight"]) > 0.5


@pytest.mark.slow
def test_every_rank_records_the_same_history(two_ranks):
    a, b = two_ranks
    for run in ("per_rank_16", "per_rank_8_accumulate_2", "dataset_batch_loss", "uneven"):
        assert a[run]["history"] == b[run]["history"], run
        assert a[run]["weight"] == b[run]["weight"], run
    # 128 samples at a total batch of 24: 6 steps an epoch, the last batch (8) split 4 + 4
    assert a["uneven"]["history"]["steps_per_epoch"] == 6
    assert len(a["uneven"]["history"]["train_losses"]) == 18


@pytest.mark.slow
def test_range_test_gives_one_suggestion_and_restores_every_rank(two_ranks):
    a, b = two_ranks
    assert a["range_test"]["suggestion"] is not None
    assert a["range_test"] == b["range_test"]  # curve, stop and suggestion alike
    assert len(a["range_test"]["val_losses"]) >= 3
    for res in two_ranks:
        assert res["restored"] == {
            "weights": True,
            "grads": True,
            "momentum": True,
            "lr": True,
            "rng": True,
        }, res["rank"]


@pytest.mark.slow
def test_only_rank_zero_writes_and_the_total_batch_is_reported(two_ranks):
    a, b = two_ranks
    assert a["train_exit"] == b["train_exit"] == 0
    assert a["find_lr_exit"] == b["find_lr_exit"] == 0
    zero, one = Path(a["folder"]), Path(b["folder"])
    history = json.loads((zero / "train" / "history.json").read_text())
    assert (zero / "train" / "curves.png").is_file()
    assert (zero / "find-lr" / "range_test.json").is_file()
    assert not (one / "train").exists() and not (one / "find-lr").exists()
    assert history["meta"]["total_batch_size"] == 32
    assert history["meta"]["batch_size_per_process"] == 16
    assert history["steps_per_epoch"] == 45  # 1437 digits at a total batch of 32
    assert "total batch 32 = 16 x 2 processes" in a["log"]
    assert "digits-mlp" not in b["log"]  # rank 1 printed no summary


@pytest.mark.slow
def test_a_tuned_batch_is_the_total_batch_split_over_the_processes(two_ranks):
    # `train --hparams` under torchrun: the tune's batch of 32 is the total one, 16 a rank,
    # and the run is the one given --batch-size 16 with the same settings
    a, b = two_ranks
    assert a["tuned_exit"] == b["tuned_exit"] == 0
    zero = Path(a["folder"])
    tuned = json.loads((zero / "tuned" / "history.json").read_text())
    given = json.loads((zero / "train" / "history.json").read_text())
    assert tuned["meta"]["total_batch_size"] == 32
    assert tuned["meta"]["batch_size_per_process"] == 16
    assert tuned["train_losses"] == given["train_losses"]
    assert not (Path(b["folder"]) / "tuned").exists()


@pytest.mark.slow
def test_a_data_loader_is_refused_with_what_to_pass_instead(two_ranks):
    for res in two_ranks:
        assert "got a DataLoader" in res["data_loader"]
        assert "LoaderDataset.from_loader" in res["data_loader"]


# --------------------------------------------------------------------------- one process


def test_launched_does_nothing_outside_torchrun(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with distributed.launched("cpu"):
        assert not torch.distributed.is_initialized()


def test_without_a_process_group_nothing_changes():
    assert not distributed.is_distributed()
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
    t = torch.arange(5.0)
    assert distributed.all_reduce_mean(t) is t and distributed.all_reduce_sum(t) is t
    assert distributed.all_reduce_max(2.5) == 2.5 and distributed.broadcast_int(7) == 7
    model = nn.Linear(2, 1)
    assert distributed.wrap(model, torch.device("cpu")) is model
    assert batches_per_epoch((torch.zeros(100, 2), torch.zeros(100)), 32) == 4
    assert batches_per_epoch((torch.zeros(100, 2), torch.zeros(100)), 32, world_size=2) == 2


def test_one_process_fit_is_the_plain_sgd_loop():
    """fit without a process group takes exactly the steps a hand-written loop takes."""
    (x, y), _ = linear_problem()
    torch.manual_seed(0)
    model = nn.Linear(5, 1)
    twin = nn.Linear(5, 1)
    twin.load_state_dict(model.state_dict())
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    h = fit(model, opt, (x, y), loss_fn=nn.MSELoss(), epochs=2, batch_size=32, seed=5)
    assert "total_batch_size" not in h.meta and "world_size" not in h.meta
    gen = torch.Generator().manual_seed(5)
    opt2 = torch.optim.SGD(twin.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(2):
        order = torch.randperm(128, generator=gen)
        for i in range(0, 128, 32):
            idx = order[i : i + 32]
            loss = nn.MSELoss()(twin(x[idx]), y[idx])
            loss.backward()
            opt2.step()
            opt2.zero_grad()
            losses.append(loss.item())
    assert list(h.train_losses) == losses
    assert torch.equal(model.weight, twin.weight) and torch.equal(model.bias, twin.bias)


def test_shard_batch_splits_in_rank_order_and_fills_the_last_batch():
    idx = torch.arange(10, 20)
    assert distributed.shard_batch(idx, 0, 2).tolist() == [10, 11, 12, 13, 14]
    assert distributed.shard_batch(idx, 1, 2).tolist() == [15, 16, 17, 18, 19]
    # 5 samples over 2 ranks: 3 each, the batch repeated from its start
    assert distributed.shard_batch([1, 2, 3, 4, 5], 0, 2) == [1, 2, 3]
    assert distributed.shard_batch([1, 2, 3, 4, 5], 1, 2) == [4, 5, 1]
    # fewer samples than ranks: every rank still gets one
    assert [distributed.shard_batch([9], r, 3) for r in range(3)] == [[9], [9], [9]]
    assert distributed.shard_batch(idx, 0, 1) is idx
