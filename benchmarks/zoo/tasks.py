"""The task zoo: small models and data sets, unlike each other and unlike the built-in tasks,
on which the decision rules are judged (`benchmarks/oracle.py`, `benchmarks/decision_quality.py`).

Every task is offline (scikit-learn's bundled data sets, `mnist1d`'s generator, or a
synthetic generator seeded here), is built in about a second, and splits its data three
ways: train, validation and a held-out test split. The recipe and every search read the
validation split; ``split="test"`` swaps the test split in as ``val_data``, so a benchmark
can retrain a chosen configuration and score it on data no decision saw.

`ZOO` lists each task's factory, the final run's length (epochs) and optimizer, and the
oracle's grid of max LR and weight decay (`benchmarks/oracle.py` adds batch size and
momentum). A task is named by reference like any user task:
``benchmarks/zoo/tasks.py:wine_mlp``.

What each task stands for (and where its data comes from):

| task | stands for | train/val/test | model |
| --- | --- | --- | --- |
| wine_mlp | tiny tabular, 3 classes (sklearn wine) | 106/36/36 | MLP 13-64-64-3 |
| cancer_mlp | small binary tabular (breast cancer) | 341/114/114 | MLP 30-64-2 |
| imbalanced_mlp | imbalanced binary, 9:1, synthetic | 1200/400/400 | MLP 20-64-64-2 |
| diabetes_regression | small regression, R^2 (diabetes) | 266/88/88 | MLP 10-64-64-1 |
| noisy_labels_mlp | 30% of training labels flipped (mnist1d) | 3000/1000/1000 | MLP 40-256-256-10 |
| wide_overfit_mlp | wide and overfitting (digits) | 300/400/400 | MLP 64-1024-1024-10 |
| bn_cnn | BatchNorm CNN (mnist1d) | 3000/1000/1000 | 3x Conv1d(32)+BN |
| resnet1d | residual CNN (mnist1d) | 3000/1000/1000 | stem + 3 residual blocks |
| gru_seq | recurrent (mnist1d as 20 steps) | 3000/1000/1000 | bidirectional GRU(32) |
| attention_seq | transformer-style, AdamW (synthetic) | 3000/1000/1000 | 1 attention layer |
| digits_cnn_adamw | 2-D CNN with AdamW (digits) | 1079/359/359 | 2x Conv2d + BN |
| deep_mlp | deep, no normalization: long plateau (mnist1d) | 3000/1000/1000 | 8x Linear(128)+ReLU |
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import _common  # benchmarks/_common.py: the test-split read counter and seal

from disciplined.tasks import Task
from disciplined.tasks.base import accuracy, r2_score
from disciplined.tasks.builtins import mlp as _mlp

SGD_LRS = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
ADAMW_LRS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2)
SGD_WDS = (1e-4, 1e-3, 1e-2)
ADAMW_WDS = (1e-4, 1e-2, 1e-1)


# --------------------------------------------------------------------------- helpers


def _split3(n: int, seed: int, val: float, test: float) -> tuple[np.ndarray, ...]:
    """Indices of a shuffled train / validation / test split of ``n`` samples."""
    order = np.random.default_rng(seed).permutation(n)
    n_val, n_test = round(val * n), round(test * n)
    return order[n_val + n_test :], order[:n_val], order[n_val : n_val + n_test]


def _standardize(x: np.ndarray, train: np.ndarray) -> np.ndarray:
    mean, std = x[train].mean(0), x[train].std(0)
    return (x - mean) / np.where(std > 1e-6, std, 1.0)


def _pick(name: str, split: str, val: Any, test: Any) -> Any:
    """``val`` or ``test`` by ``split``; a test split's read is counted, and refused while
    the benchmark has sealed it (`benchmarks._common.read_test_split`)."""
    if split not in ("val", "test"):
        raise ValueError(f"split must be 'val' or 'test', got {split!r}")
    if split == "test":
        _common.read_test_split(name)
    return val if split == "val" else test


def _tensors(x: np.ndarray, y: np.ndarray, idx: np.ndarray, y_dtype=torch.long) -> tuple:
    return torch.tensor(x[idx], dtype=torch.float32), torch.tensor(y[idx], dtype=y_dtype)


def _regression_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return nn.functional.mse_loss(outputs.reshape(targets.shape), targets)


def _classifier(name: str, build, train, val, batch: int, description: str, **kw) -> Task:
    return Task(
        name=name,
        build_model=build,
        train_data=train,
        val_data=val,
        loss_fn=nn.functional.cross_entropy,
        metric=accuracy,
        metric_name="accuracy",
        default_batch_size=batch,
        description=description,
        **kw,
    )


# --------------------------------------------------------------------------- tabular


@lru_cache(maxsize=4)
def _sklearn(name: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn import datasets

    loader = {
        "wine": datasets.load_wine,
        "cancer": datasets.load_breast_cancer,
        "diabetes": datasets.load_diabetes,
        "digits": datasets.load_digits,
    }[name]
    x, y = loader(return_X_y=True)
    return np.asarray(x, dtype=np.float64), np.asarray(y)


def _tabular(
    name: str,
    x: np.ndarray,
    y: np.ndarray,
    split: str,
    seed: int,
    sizes: list[int],
    batch: int,
    description: str,
) -> Task:
    """A standardized 60/20/20 tabular classifier with an MLP through ``sizes``."""
    tr, va, te = _split3(len(y), seed, 0.2, 0.2)
    x = _standardize(x, tr)
    return _classifier(
        name,
        lambda hp: _mlp(sizes, float(hp.get("dropout", 0.0))),
        _tensors(x, y, tr),
        _pick(name, split, _tensors(x, y, va), _tensors(x, y, te)),
        batch,
        description,
        takes_dropout=True,
        options={"split": split, "seed": seed},
    )


def wine_mlp(split: str = "val", seed: int = 0) -> Task:
    """Tiny tabular: scikit-learn's wine (178 samples, 13 features, 3 classes), 60/20/20."""
    x, y = _sklearn("wine")
    return _tabular(
        "zoo-wine-mlp", x, y, split, seed, [13, 64, 64, 3], 16, "wine (106 train), MLP 13-64-64-3"
    )


def cancer_mlp(split: str = "val", seed: int = 0) -> Task:
    """Small binary tabular: breast cancer (569 samples, 30 features, 37% positive), 60/20/20."""
    x, y = _sklearn("cancer")
    return _tabular(
        "zoo-cancer-mlp",
        x,
        y,
        split,
        seed,
        [30, 64, 2],
        32,
        "breast cancer (341 train), MLP 30-64-2",
    )


def imbalanced_mlp(split: str = "val", seed: int = 0) -> Task:
    """Imbalanced binary: 2,000 synthetic samples, 9 negatives to 1 positive, 5% label noise."""
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=2000,
        n_features=20,
        n_informative=6,
        n_redundant=4,
        weights=[0.9, 0.1],
        flip_y=0.05,
        class_sep=0.8,
        random_state=1234,
    )
    return _tabular(
        "zoo-imbalanced-mlp",
        x,
        y,
        split,
        seed,
        [20, 64, 64, 2],
        64,
        "synthetic 9:1 binary (1200 train), MLP 20-64-64-2",
    )


def diabetes_regression(split: str = "val", seed: int = 0) -> Task:
    """Small regression: scikit-learn's diabetes (442 samples, 10 features), target standardized."""
    x, y = _sklearn("diabetes")
    tr, va, te = _split3(len(y), seed, 0.2, 0.2)
    x = _standardize(x, tr)
    y = (y - y[tr].mean()) / y[tr].std()
    as_y = torch.float32
    return Task(
        name="zoo-diabetes-regression",
        build_model=lambda hp: _mlp([10, 64, 64, 1], float(hp.get("dropout", 0.0))),
        train_data=_tensors(x, y, tr, as_y),
        val_data=_pick(
            "zoo-diabetes-regression", split, _tensors(x, y, va, as_y), _tensors(x, y, te, as_y)
        ),
        loss_fn=_regression_loss,
        metric=r2_score,
        metric_name="r2",
        kind="regression",
        higher_is_better=True,
        takes_dropout=True,
        default_batch_size=32,
        description="diabetes (264 train), MLP 10-64-64-1, MSE",
        options={"split": split, "seed": seed},
    )


# --------------------------------------------------------------------------- mnist1d


@lru_cache(maxsize=2)
def _mnist1d(samples: int = 5000) -> tuple[np.ndarray, np.ndarray]:
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = samples
    args.seed = 7  # not the built-in tasks' 42
    state = np.random.get_state(), random.getstate()
    try:
        d = make_dataset(args)
    finally:
        np.random.set_state(state[0])
        random.setstate(state[1])
    x = np.concatenate([d["x"], d["x_test"]]).astype(np.float32)
    y = np.concatenate([d["y"], d["y_test"]]).astype(np.int64)
    return x, y


def _mnist1d_split(
    name: str, seed: int, split: str, channel: bool, noise: float = 0.0, pool: int = 1
):
    x, y = _mnist1d()
    if pool > 1:
        x = x.reshape(len(x), -1, pool).mean(-1)
    tr, va, te = _split3(len(y), seed, 0.2, 0.2)
    y_train = y.copy()
    if noise > 0:  # flip a fraction of the training labels to another class, at random
        rng = np.random.default_rng(1000 + seed)
        flip = tr[rng.random(len(tr)) < noise]
        y_train[flip] = (y[flip] + rng.integers(1, 10, len(flip))) % 10
    xt = torch.tensor(x)
    if channel:
        xt = xt.unsqueeze(1)
    as_t = lambda idx, labels: (xt[idx], torch.tensor(labels[idx]))  # noqa: E731
    return as_t(tr, y_train), _pick(name, split, as_t(va, y), as_t(te, y))


def noisy_labels_mlp(split: str = "val", seed: int = 0) -> Task:
    """Label noise: MNIST-1D with 30% of the training labels flipped, a wide MLP (validation and
    test labels are clean)."""
    train, val = _mnist1d_split("zoo-noisy-labels-mlp", seed, split, channel=False, noise=0.3)
    return _classifier(
        "zoo-noisy-labels-mlp",
        lambda hp: _mlp([40, 256, 256, 10], float(hp.get("dropout", 0.0))),
        train,
        val,
        128,
        "MNIST-1D, 30% of training labels flipped, MLP 40-256-256-10",
        takes_dropout=True,
        options={"split": split, "seed": seed},
    )


def deep_mlp(split: str = "val", seed: int = 0) -> Task:
    """Deep without normalization: MNIST-1D, eight Linear(128)+ReLU layers and a linear head,
    PyTorch's default initialization. Its runs sit at chance for several epochs before they
    learn (issue 32: a run at chance after 5 epochs reached 54% after 20), and weight decay
    1e-3 keeps it from learning at all: a rule that reads short runs must survive that."""
    train, val = _mnist1d_split("zoo-deep-mlp", seed, split, channel=False)
    return _classifier(
        "zoo-deep-mlp",
        lambda hp: _mlp([40] + [128] * 8 + [10]),
        train,
        val,
        128,
        "MNIST-1D, MLP 40-(128 x 8)-10, no normalization",
        options={"split": split, "seed": seed},
    )


class _ConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, k: int, stride: int) -> None:
        super().__init__(
            nn.Conv1d(c_in, c_out, k, stride=stride, padding=k // 2, bias=False),
            nn.BatchNorm1d(c_out),
            nn.ReLU(),
        )


def bn_cnn(split: str = "val", seed: int = 0) -> Task:
    """A BatchNorm CNN on MNIST-1D: three Conv1d(32)+BN+ReLU, global average pool, linear."""

    def build(hp):
        return nn.Sequential(
            _ConvBN(1, 32, 5, 2),
            _ConvBN(32, 32, 3, 2),
            _ConvBN(32, 32, 3, 2),
            nn.AdaptiveAvgPool1d(1),
            nn.Flatten(),
            nn.Linear(32, 10),
        )

    train, val = _mnist1d_split("zoo-bn-cnn", seed, split, channel=True)
    return _classifier(
        "zoo-bn-cnn",
        build,
        train,
        val,
        128,
        "MNIST-1D, 3x Conv1d(32)+BatchNorm",
        options={"split": split, "seed": seed},
    )


class _Residual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv1d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm1d(channels),
            nn.ReLU(),
            nn.Conv1d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm1d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.body(x))


def resnet1d(split: str = "val", seed: int = 0) -> Task:
    """A residual CNN on MNIST-1D: a strided stem, three residual blocks of 24 channels."""

    def build(hp):
        return nn.Sequential(
            _ConvBN(1, 24, 5, 2),
            _Residual(24),
            nn.MaxPool1d(2),
            _Residual(24),
            _Residual(24),
            nn.AdaptiveAvgPool1d(1),
            nn.Flatten(),
            nn.Linear(24, 10),
        )

    train, val = _mnist1d_split("zoo-resnet1d", seed, split, channel=True)
    return _classifier(
        "zoo-resnet1d",
        build,
        train,
        val,
        128,
        "MNIST-1D, residual CNN (3 blocks of 24)",
        options={"split": split, "seed": seed},
    )


class _BiGRU(nn.Module):
    def __init__(self, hidden: int = 32) -> None:
        super().__init__()
        self.gru = nn.GRU(1, hidden, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * hidden, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(x.unsqueeze(-1))
        return self.head(out.mean(dim=1))


def gru_seq(split: str = "val", seed: int = 0) -> Task:
    """A recurrent net: a bidirectional GRU(32) reading MNIST-1D as a 20-step sequence."""
    train, val = _mnist1d_split("zoo-gru-seq", seed, split, channel=False, pool=2)
    return _classifier(
        "zoo-gru-seq",
        lambda hp: _BiGRU(32),
        train,
        val,
        64,
        "MNIST-1D as 20-step sequences, bidirectional GRU(32)",
        options={"split": split, "seed": seed},
    )


# --------------------------------------------------------------------------- attention


@lru_cache(maxsize=1)
def _token_task(n: int = 5000, length: int = 12, vocab: int = 8) -> tuple[np.ndarray, ...]:
    """Sequences of 12 random tokens from 8; the class is the most frequent token (ties to
    the lowest). Reading it off needs the counts of every token and a comparison of them,
    which a mean-pooled attention layer learns only part of within the epochs given."""
    rng = np.random.default_rng(99)
    x = rng.integers(0, vocab, (n, length))
    counts = np.stack([(x == t).sum(1) for t in range(vocab)], 1)
    return x, counts.argmax(1)


class _Attention(nn.Module):
    def __init__(self, vocab: int = 8, length: int = 12, d: int = 32, dropout: float = 0.0):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.randn(length, d) * 0.02)
        self.layer = nn.TransformerEncoderLayer(
            d, nhead=2, dim_feedforward=64, dropout=dropout, batch_first=True
        )
        self.head = nn.Linear(d, vocab)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x.long()) + self.pos
        return self.head(self.layer(h).mean(dim=1))


def attention_seq(split: str = "val", seed: int = 0) -> Task:
    """A transformer-style classifier (one encoder layer, d=32, 2 heads) on a token-counting
    task (the most frequent of 8 tokens), trained with AdamW."""
    x, y = _token_task()
    tr, va, te = _split3(len(y), seed, 0.2, 0.2)
    xf = x.astype(np.float32)
    return _classifier(
        "zoo-attention-seq",
        lambda hp: _Attention(dropout=float(hp.get("dropout", 0.0))),
        _tensors(xf, y, tr),
        _pick("zoo-attention-seq", split, _tensors(xf, y, va), _tensors(xf, y, te)),
        64,
        "synthetic majority token (12 tokens of 8), 1-layer attention",
        takes_dropout=True,
        options={"split": split, "seed": seed},
    )


def digits_cnn_adamw(split: str = "val", seed: int = 0) -> Task:
    """scikit-learn's digits as 8x8 images, a small Conv2d+BN network, trained with AdamW."""
    x, y = _sklearn("digits")
    tr, va, te = _split3(len(y), seed, 0.2, 0.2)
    x = (x / 16.0).reshape(-1, 1, 8, 8)

    def build(hp):
        return nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1, bias=False),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1, bias=False),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(32, 10),
        )

    return _classifier(
        "zoo-digits-cnn-adamw",
        build,
        _tensors(x, y, tr),
        _pick("zoo-digits-cnn-adamw", split, _tensors(x, y, va), _tensors(x, y, te)),
        32,
        "digits 8x8 (1077 train), Conv2d(16)+Conv2d(32) with BN",
        options={"split": split, "seed": seed},
    )


def wide_overfit_mlp(split: str = "val", seed: int = 0) -> Task:
    """Wide and overfitting: 300 training digits, an MLP with 1.1M parameters."""
    x, y = _sklearn("digits")
    order = np.random.default_rng(seed).permutation(len(y))
    tr, va, te = order[:300], order[300:700], order[700:1100]
    x = _standardize(x / 16.0, tr)
    return _classifier(
        "zoo-wide-overfit-mlp",
        lambda hp: _mlp([64, 1024, 1024, 10], float(hp.get("dropout", 0.0))),
        _tensors(x, y, tr),
        _pick("zoo-wide-overfit-mlp", split, _tensors(x, y, va), _tensors(x, y, te)),
        32,
        "digits, 300 train, MLP 64-1024-1024-10",
        takes_dropout=True,
        options={"split": split, "seed": seed},
    )


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class ZooEntry:
    """A zoo task: its factory's name, the final run's epochs, the optimizer, the oracle's
    max-LR and weight-decay grids, and the file under ``benchmarks/zoo`` that holds the
    factory (``module``: ``tasks``, this file, for the development zoo; ``heldout`` for the
    held-out zoo)."""

    name: str
    function: str
    epochs: float
    optimizer: str = "sgd"
    module: str = "tasks"

    @property
    def ref(self) -> str:
        """The task reference `disciplined.load_task` takes, relative to the repository root
        (the benchmarks run from there), so trial keys are the same in every clone."""
        return f"benchmarks/zoo/{self.module}.py:{self.function}"

    @property
    def lrs(self) -> tuple[float, ...]:
        """The oracle's max-LR grid."""
        return ADAMW_LRS if self.optimizer == "adamw" else SGD_LRS

    @property
    def weight_decays(self) -> tuple[float, ...]:
        """The oracle's weight-decay grid."""
        return ADAMW_WDS if self.optimizer == "adamw" else SGD_WDS

    @property
    def default(self) -> dict[str, float]:
        """The configuration a user would try first: max LR 0.1 (AdamW: 3e-3), the task's
        batch size, weight decay 1e-4 (AdamW: 1e-2), momentum 0.95 down to 0.85."""
        if self.optimizer == "adamw":
            return {"max_lr": 3e-3, "weight_decay": 1e-2, "max_momentum": 0.95}
        return {"max_lr": 0.1, "weight_decay": 1e-4, "max_momentum": 0.95}


ZOO: dict[str, ZooEntry] = {
    e.name: e
    for e in (
        ZooEntry("wine-mlp", "wine_mlp", 40),
        ZooEntry("cancer-mlp", "cancer_mlp", 30),
        ZooEntry("imbalanced-mlp", "imbalanced_mlp", 20),
        ZooEntry("diabetes-regression", "diabetes_regression", 40),
        ZooEntry("noisy-labels-mlp", "noisy_labels_mlp", 15),
        ZooEntry("wide-overfit-mlp", "wide_overfit_mlp", 20),
        ZooEntry("bn-cnn", "bn_cnn", 10),
        ZooEntry("resnet1d", "resnet1d", 10),
        ZooEntry("gru-seq", "gru_seq", 10),
        ZooEntry("attention-seq", "attention_seq", 15, optimizer="adamw"),
        ZooEntry("digits-cnn-adamw", "digits_cnn_adamw", 15, optimizer="adamw"),
        ZooEntry("deep-mlp", "deep_mlp", 20),
    )
}
"""The zoo by name."""


def entry(name: str) -> ZooEntry:
    """The zoo entry called ``name``, or a one-line error listing the names."""
    if name not in ZOO:
        raise SystemExit(f"unknown zoo task {name!r}: one of {', '.join(ZOO)}")
    return ZOO[name]
