"""Tasks on a user's own data: tensors, Datasets and DataLoaders, through the whole recipe."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset

from disciplined import HParams, Task, UsageError, train_task, tune
from disciplined.studies.batch import largest_batch_that_fits
from disciplined.tasks import accuracy, load_task, r2_score
from disciplined.training.fit import LoaderDataset
from disciplined.trials.store import SQLiteStore


def _digits():
    base = load_task("digits-mlp")
    return base, base.train_data, base.val_data


def _mlp(dropout: float = 0.0) -> nn.Module:
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Dropout(dropout), nn.Linear(64, 10))


class DictDigits(Dataset):
    """Items as dictionaries, as many user datasets return them: only the loader's
    collate_fn turns them into (inputs, targets)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"pixels": self.x[i], "label": self.y[i]}


def collate(items):
    return torch.stack([d["pixels"] for d in items]), torch.stack([d["label"] for d in items])


def test_from_tensors_fills_in_the_fields_from_the_kind():
    _, train, val = _digits()
    t = Task.from_tensors(train, val, _mlp, name="mine")
    assert (t.name, t.metric_name, t.metric) == ("mine", "accuracy", accuracy)
    assert t.kind == "classification"
    assert t.loss_fn is nn.functional.cross_entropy and t.default_batch_size == 64
    assert t.num_train == len(train[0]) and not t.takes_dropout
    x = torch.randn(50, 3)
    r = Task.from_tensors((x, x.sum(1)), (x, x.sum(1)), lambda: nn.Linear(3, 1), kind="regression")
    assert r.metric is r2_score and r.metric_name == "r2" and r.higher_is_better is not False
    loss = r.loss_fn(torch.zeros(50, 1), x.sum(1))  # outputs (N, 1) against targets (N,)
    assert loss == pytest.approx(float((x.sum(1) ** 2).mean()))
    d = Task.from_tensors(train, val, _mlp, takes_dropout=True)
    assert d.takes_dropout and d.model(dropout=0.3)[2].p == 0.3


def test_a_loader_task_counts_samples_and_batches_like_the_tensors():
    _, train, val = _digits()
    loader = DataLoader(TensorDataset(*train), batch_size=100, shuffle=True)
    t = Task.from_loaders(loader, DataLoader(TensorDataset(*val), batch_size=500), _mlp)
    assert isinstance(t.train_data, LoaderDataset) and t.default_batch_size == 100
    assert t.num_train == len(train[0]) != len(loader) and t.num_val == len(val[0])
    # at any batch size (not the loader's 100), the loader trains exactly as the tensors do
    hp = HParams(max_lr=0.1, batch_size=32)
    tensors = Task.from_tensors(train, val, _mlp)
    _, a = train_task(t, hp, epochs=1, seed=0)
    _, b = train_task(tensors, hp, epochs=1, seed=0)
    assert a.steps_per_epoch == b.steps_per_epoch == -(-len(train[0]) // 32)
    assert a.train_losses == b.train_losses
    assert [(e.val_loss, e.val_metric) for e in a.evals] == [
        (e.val_loss, e.val_metric) for e in b.evals
    ]


def test_the_recipe_runs_on_a_loader_with_its_own_collate_fn(tmp_path):
    _, train, val = _digits()
    loader = DataLoader(DictDigits(*train), batch_size=64, collate_fn=collate)
    val_loader = DataLoader(DictDigits(*val), batch_size=256, collate_fn=collate)
    task = Task.from_loaders(loader, val_loader, _mlp, name="dict-digits")
    # the memory probe batches real items through the collate_fn (they cannot be stacked)
    fit = largest_batch_that_fits(task, HParams(batch_size=64), memory_limit="4GiB")
    assert fit.batch_size >= 64
    r = tune(task, epochs=4, budget=120, out=tmp_path, seed=0)
    decisions = json.loads((tmp_path / "tune.json").read_text())["decisions"]
    race = next(d for d in decisions if d["name"] == "race")
    # the race re-batched the user's loader at each candidate size
    first = [row for row in race["table"] if row["rung"] == 0]
    assert sorted({row["batch_size"] for row in first}) == [16, 32, 64]
    with SQLiteStore(tmp_path / "trials.sqlite") as store:
        for row in race["table"]:
            h = store.get(row["trial"]).history
            size = row["batch_size"]
            assert h.steps_per_epoch == -(-task.num_train // size)
            # a run that blew up stops early; every other run trained its rung's epochs
            # (a rung's length is rounded to 4 decimals, a run's counted in whole steps)
            trained = abs(h.epochs - row["epochs"]) <= 1 / h.steps_per_epoch
            assert trained or (row["blew_up"] and h.epochs < row["epochs"])
    assert r.hparams.batch_size in (16, 32, 64)
    assert r.final_metric > 0.8  # digits reaches ~0.97 in 4 epochs; chance is 0.1


class Stream(IterableDataset):
    def __iter__(self):
        yield torch.zeros(64), torch.tensor(0)


class Triples(Dataset):
    def __len__(self) -> int:
        return 40

    def __getitem__(self, i: int):
        return torch.zeros(64), torch.tensor(0), torch.tensor(1.0)


def test_data_the_loop_cannot_take_is_refused_in_one_line():
    _, train, val = _digits()
    w = torch.ones(len(train[0]))
    with pytest.raises(UsageError, match="tuple of 3 tensors"):
        Task.from_tensors((*train, w), val, _mlp)
    with pytest.raises(UsageError, match="differ in length"):
        Task.from_tensors((train[0], train[1][:10]), val, _mlp)
    with pytest.raises(UsageError, match="iterable dataset"):
        Task.from_loaders(DataLoader(Stream(), batch_size=8), val, _mlp)
    with pytest.raises(UsageError, match="must be"):
        Task.from_tensors("data.csv", val, _mlp)
    with pytest.raises(UsageError, match="model must be a callable"):
        Task.from_tensors(train, val, _mlp())
    with pytest.raises(UsageError, match="kind must be"):
        Task.from_tensors(train, val, _mlp, kind="ranking")
    triples = Task.from_loaders(DataLoader(Triples(), batch_size=8), val, _mlp)
    with pytest.raises(UsageError, match=r"each batch must be \(inputs, targets\), got 3 items"):
        train_task(triples, HParams(max_lr=0.1, batch_size=8), epochs=1)


def test_a_task_with_its_own_batch_loss_runs_the_recipe_on_dict_batches(tmp_path):
    from disciplined.training.fit import BatchLoss

    _, train, val = _digits()

    def step(model, batch):  # the user's own step on dict batches, as HF models take them
        return nn.functional.cross_entropy(model(batch["pixels"]), batch["label"])

    task = Task.from_loaders(
        DataLoader(DictDigits(*train), batch_size=64),
        DataLoader(DictDigits(*val), batch_size=256),
        _mlp,
        loss_fn=BatchLoss(step),
        metric=accuracy,
        name="dict-steps",
    )
    r = tune(task, epochs=3, budget=60, out=tmp_path, compare_batch_sizes="off", range_steps=100)
    assert math.isfinite(r.history.final.val_loss) and r.history.final.val_loss < 1.0
