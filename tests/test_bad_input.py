"""The bad-input table: every bad input gets one line on stderr and exit status 2, never a
traceback, and leaves the output folder as it was.

Each case runs the command line in-process (`disciplined.cli.main`) against an output
folder that already holds files; the test checksums every file in it before and after.
Task files for the bad tasks are written into the test's temporary folder. Then the Python
API: the same refusals as `UsageError` with a one-line message. Last, what is *not* bad
input: a library bug is an internal error (exit 1, the traceback in ``OUT/error.log``), and
a trial that crashes is not recorded as a failed trial of its hyper-parameters.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import pickle
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

import disciplined.cli.common as common
import disciplined.cli.diagnose as cli_diagnose
import disciplined.cli.train as cli_train
from disciplined import Task, fit, tune
from disciplined.cli import main
from disciplined.errors import TaskCodeError, UsageError, task_code
from disciplined.recipe.config import TuneConfig
from disciplined.studies.batch import parse_memory
from disciplined.tasks import accuracy, load_task
from disciplined.training.fit import EvalRecord, History, resolve_device
from disciplined.trials.bounds import BOUNDS
from disciplined.trials.executors import InProcessExecutor
from disciplined.trials.hparams import HParams, train_task
from disciplined.trials.spec import TrialCrash, TrialResult, TrialSpec, run_trial
from disciplined.trials.store import MemoryStore, SQLiteStore

TASKS = """
import sys
import torch
from torch import nn
from disciplined.tasks import Task, accuracy

def _task(**kw):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    y = torch.randint(0, 3, (64,), generator=g)
    d = dict(name="toy", build_model=lambda hp: nn.Linear(4, 3), train_data=(x, y),
             val_data=(x, y), loss_fn=nn.functional.cross_entropy, metric=accuracy,
             metric_name="accuracy", default_batch_size=16)
    d.update(kw)
    return Task(**d)

class Summed(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 3)
    def forward(self, x):
        return self.lin(x).sum(0, keepdim=True)

class Broken(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 3)
    def forward(self, x):
        raise RuntimeError("forward is broken")

def good():
    return _task()

def raises_runtime():
    raise RuntimeError("boom")

def raises_key():
    return {}["missing"]

def exits():
    sys.exit(3)

def not_a_task():
    return 42

def summed_output():
    return _task(build_model=lambda hp: Summed())

def flat_output():
    return _task(build_model=lambda hp: nn.Sequential(nn.Linear(4, 1), nn.Flatten(0)))

def regression_shape():
    x = torch.randn(64, 4)
    return _task(build_model=lambda hp: nn.Linear(4, 3), train_data=(x, torch.randn(64)),
                 val_data=(x, torch.randn(64)), loss_fn=nn.functional.mse_loss,
                 metric=lambda o, t: ((o - t) ** 2).mean(), metric_name="mse",
                 kind="regression")

def regression_broadcast():
    x = torch.randn(64, 4)
    return _task(build_model=lambda hp: nn.Linear(4, 1), train_data=(x, torch.randn(64)),
                 val_data=(x, torch.randn(64)), loss_fn=nn.functional.mse_loss,
                 metric=lambda o, t: ((o - t) ** 2).mean(), metric_name="mse",
                 kind="regression")

def features_differ():
    return _task(val_data=(torch.randn(64, 5), torch.randint(0, 3, (64,))))

def labels_too_high():
    return _task(train_data=(torch.randn(64, 4), torch.randint(0, 9, (64,))))

def labels_negative():
    y = torch.randint(0, 3, (64,))
    y[5] = -1
    return _task(val_data=(torch.randn(64, 4), y))

def nan_inputs():
    x = torch.randn(64, 4)
    x[3, 1] = float("nan")
    return _task(train_data=(x, torch.randint(0, 3, (64,))))

def inf_val_inputs():
    x = torch.randn(64, 4)
    x[0, 0] = float("inf")
    return _task(val_data=(x, torch.randint(0, 3, (64,))))

def too_few():
    return _task(train_data=(torch.randn(10, 4), torch.randint(0, 3, (10,))))

def three_tensors():
    x = torch.randn(64, 4)
    return _task(train_data=(x, torch.randint(0, 3, (64,)), torch.ones(64)))

def lengths_differ():
    return _task(train_data=(torch.randn(64, 4), torch.randint(0, 3, (60,))))

def model_fails_to_build():
    def build(hp):
        raise ValueError("no such layer")
    return _task(build_model=build)

def forward_fails():
    return _task(build_model=lambda hp: Broken())

# the task's own code failing after the task was checked (issue 33)

class Later(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 3)
        self.calls = 0
    def forward(self, x):
        if self.training:
            self.calls += 1
            if self.calls > 2:
                raise RuntimeError("forward broke at call 3")
        return self.lin(x)

class Detached(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 3)
    def forward(self, x):
        return self.lin(x).detach()

class Frozen(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 3).requires_grad_(False)
    def forward(self, x):
        return self.lin(x)

class Items(torch.utils.data.Dataset):
    def __init__(self, lie=0, fail_after=None):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(64, 4, generator=g)
        self.y = torch.randint(0, 3, (64,), generator=g)
        self.lie, self.fail_after, self.reads = lie, fail_after, 0
    def __len__(self):
        return 64 + self.lie
    def __getitem__(self, i):
        self.reads += 1
        if self.fail_after is not None and self.reads > self.fail_after:
            raise OSError(f"cannot read item {i}")
        return self.x[i], self.y[i]

def model_fails_later():
    return _task(build_model=lambda hp: Later())

def backward_fails():
    return _task(build_model=lambda hp: Detached())

def loss_fails_later():
    calls = []
    def picky_loss(out, y):
        calls.append(1)
        if len(calls) > 3:
            raise ValueError("loss broke")
        return nn.functional.cross_entropy(out, y)
    return _task(loss_fn=picky_loss)

def metric_fails_later():
    calls = []
    def picky_metric(out, y):
        calls.append(1)
        if len(calls) > 1:
            raise ZeroDivisionError("metric broke")
        return accuracy(out, y)
    return _task(metric=picky_metric)

def data_fails_later():
    return _task(train_data=Items(fail_after=30), val_data=Items())

def build_fails_later():
    built = []
    def build(hp):
        built.append(1)
        if len(built) > 1:
            raise KeyError("second model")
        return nn.Linear(4, 3)
    return _task(build_model=build)

def frozen_model():
    return _task(build_model=lambda hp: Frozen())

def parameterless_model():
    return _task(build_model=lambda hp: nn.Sequential(nn.Flatten(), nn.Identity()))

def bool_labels():
    x = torch.randn(64, 4)
    y = torch.arange(64) % 2 == 0
    return _task(build_model=lambda hp: nn.Linear(4, 2), train_data=(x, y), val_data=(x, y))

def bool_val_labels():
    x = torch.randn(64, 4)
    return _task(val_data=(x, torch.arange(64) % 2 == 0))

def len_lies():
    return _task(train_data=Items(lie=36), val_data=Items())

def val_len_lies():
    return _task(val_data=Items(lie=1))

# issue 33: silently accepted before

def clustering():
    return _task(kind="clustering")

def nan_metric():
    return _task(metric=lambda out, y: torch.tensor(float("nan")))

def metric_nan_later():
    calls = []
    def fading(out, y):
        calls.append(1)
        return accuracy(out, y) if len(calls) == 1 else torch.tensor(float("nan"))
    return _task(metric=fading)
"""

TUNED = {
    "task": "digits-mlp",
    "max_lr": 0.1,
    "min_lr": 0.01,
    "max_momentum": 0.95,
    "min_momentum": 0.85,
    "weight_decay": 0.0,
    "batch_size": 32,
    "epochs": 1,
}
"""A tune's ``hparams.json`` for digits-mlp; `HPARAMS_FILES` spoils one value each."""

HPARAMS_FILES = {
    "epochs_huge": {"epochs": 1e300},
    "epochs_negative": {"epochs": -2},
    "epochs_text": {"epochs": "ten"},
    "max_lr_huge": {"max_lr": 1e300},
    "min_lr_zero": {"min_lr": 0},
    "min_lr_above_max": {"min_lr": 0.5},
    "batch_zero": {"batch_size": 0},
    "batch_fraction": {"batch_size": 2.5},
    "dropout_one": {"dropout": 1.0},
    "momenta_crossed": {"max_momentum": 0.8, "min_momentum": 0.9},
    "optimizer": {"optimizer": "adam"},
    "schedule": {"schedule": "cosine"},
}


IMPORT_FAILS = "raise ImportError('a dependency is missing')\n"
IMPORT_EXITS = "import sys\nsys.exit(4)\n"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """Task files, histories, stores and folders the cases refer to, and an output folder
    that already holds files (``{out}``)."""
    (tmp_path / "tasks.py").write_text(TASKS)
    (tmp_path / "import_fails.py").write_text(IMPORT_FAILS)
    (tmp_path / "import_exits.py").write_text(IMPORT_EXITS)
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    (out / "notes.txt").write_text("the user's own file\n")
    (out / "sub" / "data.bin").write_bytes(bytes(range(256)))
    (out / "blocker").write_text("a file where a folder would go\n")
    _history(out / "empty.json", [], [])
    _history(out / "nan.json", [math.nan] * 5, [math.nan] * 5)
    (out / "not_json.json").write_text("{not json")
    (out / "list.json").write_text("[1, 2]")
    (out / "no_field.json").write_text('{"evals": [], "train_losses": []}')
    _damaged_store(out / "damaged.sqlite")
    (out / "garbage.sqlite").write_text("this is not a database\n" * 100)
    _truncated_store(out / "truncated.sqlite")
    _store_of_another_task(out / "other.sqlite")
    (out / "store_dir").mkdir()
    (out / "no_results").mkdir()
    (out / "no_results" / "tune.json").write_text('{"hparams": {}, "decisions": [], "meta": {}}')
    (out / "bad_tune").mkdir()
    (out / "bad_tune" / "tune.json").write_text("{")
    (out / "unfinished").mkdir()
    SQLiteStore(out / "unfinished" / "trials.sqlite").close()
    (out / "empty_dir").mkdir()
    (out / "tuned").mkdir()
    (out / "tuned" / ".disciplined.json").write_text(
        json.dumps({"command": "tune", "task": "digits-mlp", "task_options": {}})
    )
    (out / "mine").mkdir()
    (out / "mine" / "range_test.json").write_text('{"my": "own range test"}')
    (tmp_path / "hp").mkdir()
    for name, changes in HPARAMS_FILES.items():
        (tmp_path / "hp" / f"{name}.json").write_text(json.dumps({**TUNED, **changes}))
    # issue 33: JSON nested 100k deep, histories with a bad steps_per_epoch, stores whose
    # meta row is damaged or whose tables are another program's
    (tmp_path / "hp" / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (out / "deep.json").write_text('{"evals": ' + "[" * 100_000 + "]" * 100_000 + "}")
    for name, value in (("zero", 0), ("negative", -3), ("text", "x")):
        _history(out / f"steps_{name}.json", [2.0, 1.5, 1.2], [2.0, 1.6, 1.3])
        data = json.loads((out / f"steps_{name}.json").read_text())
        (out / f"steps_{name}.json").write_text(json.dumps({**data, "steps_per_epoch": value}))
    _store_with_a_damaged_meta_row(out / "bad_meta.sqlite")
    _store_of_another_schema(out / "schema.sqlite")
    return {"tasks": str(tmp_path / "tasks.py"), "tmp": str(tmp_path), "out": str(out)}


def _history(path: Path, train_losses: list[float], val_losses: list[float]) -> None:
    evals = tuple(
        EvalRecord(
            epoch=i + 1, step=i + 1, val_loss=v, val_metric=math.nan, train_loss=v, seconds=0.0
        )
        for i, v in enumerate(val_losses)
    )
    n = len(train_losses)
    History(
        lrs=(0.1,) * n,
        momenta=(0.9,) * n,
        train_losses=tuple(train_losses),
        evals=evals,
        steps_per_epoch=1,
        metric_name="accuracy",
        higher_is_better=True,
        diverged=False,
        diverged_step=None,
        diverged_reason=None,
        stopped_reason=None,
        seconds=0.0,
        meta={},
    ).save(path)


def _a_store(path: Path) -> None:
    with SQLiteStore(path) as store:
        store.bind({"task": "digits-mlp", "task_options": {}})
        for i in range(40):
            store.set_meta(f"filler{i}", "x" * 500)


def _damaged_store(path: Path) -> None:
    _a_store(path)
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) >= 3 * page
    data[page : 2 * page] = bytes(page)  # a zeroed page past the schema
    path.write_bytes(bytes(data))


def _truncated_store(path: Path) -> None:
    _a_store(path)
    path.write_bytes(path.read_bytes()[: 4096 + 100])


def _store_of_another_task(path: Path) -> None:
    with SQLiteStore(path) as store:
        store.bind({"task": "mnist1d-cnn", "task_options": {}})


def _store_with_a_damaged_meta_row(path: Path) -> None:
    with SQLiteStore(path) as store:
        store.bind({"task": "digits-mlp", "task_options": {}})
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE meta SET value = '{\"task\": ' WHERE name = 'identity'")
    conn.close()


def _store_of_another_schema(path: Path) -> None:
    """An SQLite file with tables of our names and other columns, in the rollback journal
    mode (opening it as a store would once switch it to WAL before refusing it)."""
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("CREATE TABLE trials (id INTEGER PRIMARY KEY, blob TEXT)")
        conn.execute("CREATE TABLE meta (k TEXT, v TEXT)")
        conn.execute("INSERT INTO trials (blob) VALUES ('someone else''s row')")
    conn.close()


@dataclass(frozen=True)
class Case:
    """One bad input: the command line (``{tasks}``, ``{out}``, ``{tmp}`` filled in) and a
    piece of the one-line message it must give."""

    id: str
    argv: tuple[str, ...]
    message: str


def _train(*args: str) -> tuple[str, ...]:
    return ("train", *args, "--epochs", "1", "--out", "{out}")


def _task_case(name: str, message: str, command: str = "train") -> Case:
    extra = {
        "train": ("--epochs", "1"),
        "find-lr": ("--steps", "20"),
        "tune": ("--epochs", "1"),
    }[command]
    return Case(
        f"{command}-{name}",
        (command, "--task", f"{{tasks}}:{name}", *extra, "--out", "{out}"),
        message,
    )


D = ("--task", "digits-mlp")


def _hp_case(name: str, message: str) -> Case:
    return Case(
        f"train-hparams-{name.replace('_', '-')}",
        _train(*D, "--hparams", f"{{tmp}}/hp/{name}.json"),
        f"--hparams {{tmp}}/hp/{name}.json: {message}",
    )

CASES = [
    # --------------------------------------------------------------- tasks (train)
    Case("unknown-task", _train("--task", "no-such-task"), "unknown task 'no-such-task'"),
    Case("missing-task-file", _train("--task", "{tmp}/absent.py:make"), "task file not found"),
    Case("no-function", _train("--task", "{tasks}:absent"), "has no function 'absent'"),
    Case(
        "import-raises",
        _train("--task", "{tmp}/import_fails.py:make"),
        "importing {tmp}/import_fails.py failed: ImportError: a dependency is missing",
    ),
    Case(
        "import-exits",
        _train("--task", "{tmp}/import_exits.py:make"),
        "importing {tmp}/import_exits.py called sys.exit(4)",
    ),
    _task_case("raises_runtime", "tasks.py:raises_runtime' could not be built: RuntimeError: boom"),
    _task_case("raises_key", "tasks.py:raises_key' could not be built: KeyError: 'missing'"),
    _task_case("exits", "tasks.py:exits' called sys.exit(3)"),
    _task_case("not_a_task", "returned int, expected disciplined.Task"),
    _task_case("summed_output", "the model returned shape (1, 3) for a batch of 8 inputs"),
    _task_case("flat_output", "the loss failed on model outputs of shape (8,)"),
    _task_case("regression_shape", "a regression needs one output per target value"),
    _task_case("regression_broadcast", "the loss broadcasts model outputs of shape (8, 1)"),
    _task_case(
        "features_differ", "training inputs have shape (4,) per sample but validation inputs (5,)"
    ),
    _task_case("labels_too_high", "training labels run from 0 to 8 but the model outputs 3"),
    _task_case("labels_negative", "validation labels run from -1 to 2"),
    _task_case("nan_inputs", "the training inputs hold 1 NaN or infinite values"),
    _task_case("inf_val_inputs", "the validation inputs hold 1 NaN or infinite values"),
    _task_case("too_few", "train_data has 10 samples, fewer than one batch of 16"),
    _task_case("three_tensors", "train_data must be (inputs, targets): got a tuple of 3 tensors"),
    _task_case("lengths_differ", "train_data: inputs and targets differ in length (64 vs 60)"),
    _task_case("model_fails_to_build", "building the model failed: ValueError: no such layer"),
    _task_case("forward_fails", "the model failed on a batch of training inputs"),
    # issue 33: what fails later in training is refused when the task is loaded
    _task_case("frozen_model", "the model has every parameter frozen (requires_grad=False)"),
    _task_case("parameterless_model", "the model has no parameters (requires_grad=False)"),
    _task_case("bool_labels", "the training targets are bool: give integer class labels"),
    _task_case("bool_val_labels", "the validation targets are bool"),
    _task_case(
        "len_lies",
        "train_data says it holds 100 samples (__len__) but reading sample 99 failed: IndexError",
    ),
    _task_case("val_len_lies", "val_data says it holds 65 samples (__len__)"),
    _task_case("frozen_model", "has every parameter frozen", command="find-lr"),
    _task_case("bool_labels", "the training targets are bool", command="tune"),
    # the same checks reached from the other commands
    _task_case("labels_too_high", "labels run from 0 to 8", command="find-lr"),
    _task_case("exits", "called sys.exit(3)", command="tune"),
    _task_case("features_differ", "per sample but validation inputs", command="tune"),
    Case(
        "sweep-nan-inputs",
        ("sweep", "momentum", "--task", "{tasks}:nan_inputs", "--out", "{out}"),
        "NaN or infinite",
    ),
    # --------------------------------------------------------------- task options
    Case(
        "task-option-negative-hidden",
        _train(*D, "--task-option", "hidden=-5"),
        "task 'digits-mlp hidden=-5': building the model failed",
    ),
    Case("task-option-unknown", _train(*D, "--task-option", "bogus=1"), "has no option 'bogus'"),
    Case("task-option-no-equals", _train(*D, "--task-option", "hidden"), "KEY=VALUE"),
    Case(
        "task-option-overflow",
        _train(*D, "--task-option", "split_seed=1e400"),
        "--task-option split_seed=1e400: the value must be finite",
    ),
    # --------------------------------------------------------------- train's numbers
    Case("train-epochs-huge", _train(*D, "--epochs", "1e308"), "--epochs: must be in (0, 10000]"),
    Case("train-epochs-zero", _train(*D, "--epochs", "0"), "--epochs: must be in (0, 10000]"),
    Case("train-epochs-nan", _train(*D, "--epochs", "nan"), "--epochs: must be finite"),
    Case("train-max-lr-huge", _train(*D, "--max-lr", "1e308"), "--max-lr: must be in (0, 10000]"),
    Case("train-max-lr-inf", _train(*D, "--max-lr", "inf"), "--max-lr: must be finite"),
    Case("train-max-lr-text", _train(*D, "--max-lr", "fast"), "--max-lr: must be a number"),
    Case(
        "train-wd-huge", _train(*D, "--weight-decay", "1e300"), "--weight-decay: must be in [0, 10]"
    ),
    Case("train-wd-negative", _train(*D, "--weight-decay=-1e-4"), "--weight-decay: must be in"),
    Case("train-div-one", _train(*D, "--div", "1"), "--div: must be in (1, 1e+06]"),
    Case("train-dropout-one", _train(*D, "--dropout", "1.5"), "--dropout: must be in [0, 1)"),
    Case("train-momentum", _train(*D, "--momentum", "1.2"), "momentum must be in [0, 1)"),
    Case(
        "train-batch-too-big",
        _train(*D, "--batch-size", "100000"),
        "--batch-size 100000 is larger than task 'digits-mlp''s training set (1437 samples)",
    ),
    Case("train-batch-zero", _train(*D, "--batch-size", "0"), "--batch-size: must be >= 1"),
    Case("train-seed-huge", _train(*D, "--seed", str(2**64)), "--seed: must be <="),
    Case("train-eval-every", _train(*D, "--eval-every", "0"), "--eval-every: must be >= 1"),
    Case("train-schedule", _train(*D, "--schedule", "cosine"), "invalid choice: 'cosine'"),
    Case(
        "train-dropout-no-dropout-task",
        _train("--task", "{tasks}:good", "--dropout", "0.1"),
        "task 'toy' has no dropout to set",
    ),
    Case(
        "train-one-step-schedule",
        _train(*D, "--batch-size", "1437"),
        "no one-cycle schedule fits 1 epochs at batch size 1437 (1 steps)",
    ),
    Case(
        "train-out-under-a-file",
        ("train", *D, "--epochs", "1", "--out", "{out}/blocker/run"),
        "cannot create output folder",
    ),
    Case("unknown-option", _train(*D, "--learning-rate", "0.1"), "unrecognized arguments"),
    Case("no-command", (), "the following arguments are required: COMMAND"),
    # --------------------------------------------------------------- find-lr
    Case(
        "find-lr-end-lr-huge-linear",
        ("find-lr", *D, "--end-lr", "1e308", "--mode", "linear", "--out", "{out}"),
        "--end-lr: must be in (0, 10000]",
    ),
    Case(
        "find-lr-start-above-end",
        ("find-lr", *D, "--start-lr", "1", "--end-lr", "0.1", "--out", "{out}"),
        "--start-lr must be < --end-lr, got 1.0 >= 0.1",
    ),
    Case("find-lr-steps-zero", ("find-lr", *D, "--steps", "0", "--out", "{out}"), "--steps"),
    Case(
        "find-lr-repeats",
        ("find-lr", *D, "--repeats", "1000", "--out", "{out}"),
        "--repeats: must be <= 100",
    ),
    Case("find-lr-div", ("find-lr", *D, "--div", "0.5", "--out", "{out}"), "--div: must be in"),
    Case(
        "find-lr-val-every",
        ("find-lr", *D, "--val-every", "-3", "--out", "{out}"),
        "--val-every: must be >= 1",
    ),
    Case("find-lr-mode", ("find-lr", *D, "--mode", "cubic", "--out", "{out}"), "invalid choice"),
    # issue 33: find-lr holds one momentum, and owns its folder as the other commands do
    Case(
        "find-lr-momentum-pair",
        ("find-lr", *D, "--momentum", "0.99,0.5", "--out", "{out}"),
        "--momentum: the range test holds one momentum; give one value, got '0.99,0.5'",
    ),
    Case(
        "find-lr-into-a-tune-folder",
        ("find-lr", *D, "--steps", "20", "--out", "{out}/tuned"),
        "was written by `disciplined tune` on task 'digits-mlp'; use another --out, or --force",
    ),
    Case(
        "find-lr-over-the-users-range-test",
        ("find-lr", *D, "--steps", "20", "--out", "{out}/mine"),
        "holds range_test.json, not written by disciplined; move it away",
    ),
    # --------------------------------------------------------------- sweep
    Case(
        "sweep-store-damaged",
        ("sweep", "momentum", *D, "--store", "{out}/damaged.sqlite", "--out", "{out}"),
        "is damaged",
    ),
    Case(
        "sweep-store-truncated",
        ("sweep", "weight-decay", *D, "--store", "{out}/truncated.sqlite", "--out", "{out}"),
        "is damaged",
    ),
    Case(
        "sweep-store-garbage",
        ("sweep", "momentum", *D, "--store", "{out}/garbage.sqlite", "--out", "{out}"),
        "is not a trial store (not an SQLite database",
    ),
    Case(
        "sweep-store-a-folder",
        ("sweep", "momentum", *D, "--store", "{out}/store_dir", "--out", "{out}"),
        "is a folder, not a file",
    ),
    Case(
        "sweep-store-other-task",
        ("sweep", "momentum", *D, "--store", "{out}/other.sqlite", "--out", "{out}"),
        "holds trials of task 'mnist1d-cnn'",
    ),
    Case(
        "sweep-values-nan",
        ("sweep", "weight-decay", *D, "--values", "1e-4,nan", "--out", "{out}"),
        "--values: must be finite numbers, got nan",
    ),
    Case(
        "sweep-values-text",
        ("sweep", "weight-decay", *D, "--values", "1e-4,lots", "--out", "{out}"),
        "--values: must be comma-separated numbers",
    ),
    Case(
        "sweep-values-empty",
        ("sweep", "weight-decay", *D, "--values", ",", "--out", "{out}"),
        "--values: must hold at least one number",
    ),
    Case(
        "sweep-momentum-values",
        ("sweep", "momentum", *D, "--values", "0.9,1.5", "--out", "{out}"),
        "momentum values must be < 1, got 1.5",
    ),
    Case(
        "sweep-wd-values-huge",
        ("sweep", "weight-decay", *D, "--values", "1e300", "--out", "{out}"),
        "weight-decay values must be <= 10",
    ),
    Case(
        "sweep-dropout-no-dropout-task",
        ("sweep", "dropout", "--task", "{tasks}:good", "--out", "{out}"),
        "task 'toy' has no dropout to set",
    ),
    Case(
        "sweep-momentum-one",
        ("sweep", "weight-decay", *D, "--momentum", "1", "--out", "{out}"),
        "--momentum: must be in [0, 1)",
    ),
    Case(
        "sweep-workers-zero",
        ("sweep", "momentum", *D, "--workers", "0", "--out", "{out}"),
        "--workers: must be >= 1",
    ),
    Case("sweep-study", ("sweep", "batch", *D, "--out", "{out}"), "invalid choice: 'batch'"),
    # issue 33: refused by the parser or before the folder is claimed
    Case(
        "sweep-steps-one",
        ("sweep", "weight-decay", *D, "--steps", "1", "--out", "{out}"),
        "--steps: must be >= 2, got '1'",
    ),
    Case(
        "find-lr-steps-one",
        ("find-lr", *D, "--steps", "1", "--out", "{out}"),
        "--steps: must be >= 2, got '1'",
    ),
    Case(
        "sweep-one-value",
        ("sweep", "weight-decay", *D, "--values", "0.1", "--out", "{out}"),
        "a sweep needs at least two --values, got 1",
    ),
    Case(
        "sweep-duplicate-values",
        ("sweep", "momentum", *D, "--values", "0.9,0.9,0.95", "--out", "{out}"),
        "--values holds 0.9 twice",
    ),
    Case(
        "sweep-snapshot-epochs-without-snapshot",
        ("sweep", "weight-decay", *D, "--snapshot-epochs", "2", "--out", "{out}"),
        "--snapshot-epochs applies to --method snapshot only",
    ),
    Case(
        "train-max-lr-digit-separator",
        _train(*D, "--max-lr", "0_1"),
        "--max-lr: must be a number without '_', got '0_1'",
    ),
    # issue 33: train --hparams is checked against the ranges the options state
    _hp_case("epochs_huge", "epochs must be in (0, 10000], got 1e+300"),
    _hp_case("epochs_negative", "epochs must be in (0, 10000], got -2"),
    _hp_case("epochs_text", "epochs must be in (0, 10000], got 'ten'"),
    _hp_case("max_lr_huge", "max_lr must be in (0, 10000], got 1e+300"),
    _hp_case("min_lr_zero", "min_lr must be in (0, 10000], got 0"),
    _hp_case("min_lr_above_max", "max_lr / min_lr must be in (1, 1e+06], got 0.2"),
    _hp_case("batch_zero", "batch_size must be an integer in [1, 16777216], got 0"),
    _hp_case("batch_fraction", "batch_size must be an integer in [1, 16777216], got 2.5"),
    _hp_case("dropout_one", "dropout must be in [0, 1), got 1.0"),
    _hp_case("momenta_crossed", "min_momentum must be <= max_momentum, got 0.9 > 0.8"),
    _hp_case("optimizer", "optimizer must be one of sgd, adamw, got 'adam'"),
    _hp_case("schedule", "schedule must be one of one-cycle, constant, step, got 'cosine'"),
    # --------------------------------------------------------------- tune
    Case(
        "tune-memory-limit-overflow",
        ("tune", *D, "--memory-limit", "1e400", "--out", "{out}"),
        "--memory-limit: memory limit must be at most 1 EiB",
    ),
    Case(
        "tune-memory-limit-text",
        ("tune", *D, "--memory-limit", "lots", "--out", "{out}"),
        "memory limit must look like 2GB",
    ),
    Case(
        "tune-epochs-too-few-steps",
        ("tune", *D, "--epochs", "0.001", "--out", "{out}"),
        "a 1cycle run needs at least 3; raise --epochs",
    ),
    Case(
        "tune-epochs-huge",
        ("tune", *D, "--epochs", "1e300", "--out", "{out}"),
        "--epochs: must be in (0, 10000]",
    ),
    Case(
        "tune-budget-huge",
        ("tune", *D, "--budget", "1e300", "--out", "{out}"),
        "--budget: must be in (0, 1e+06]",
    ),
    Case(
        "tune-budget-too-small",
        ("tune", *D, "--epochs", "2", "--budget", "3", "--out", "{out}"),
        "budget 3 epochs is too small",
    ),
    Case(
        "tune-batch-sizes",
        ("tune", *D, "--batch-sizes", "0,32", "--out", "{out}"),
        "batch sizes must be >= 1",
    ),
    Case(
        "tune-range-steps",
        ("tune", *D, "--range-steps", "50", "--out", "{out}"),
        "range_steps must be an integer >= 100, got 50",
    ),
    Case(
        "tune-store-damaged",
        ("tune", *D, "--epochs", "1", "--store", "{out}/damaged.sqlite", "--out", "{out}"),
        "is damaged",
    ),
    Case(
        "tune-store-other-task",
        ("tune", *D, "--epochs", "1", "--store", "{out}/other.sqlite", "--out", "{out}"),
        "holds trials of task 'mnist1d-cnn'",
    ),
    Case(
        "tune-compare",
        ("tune", *D, "--compare-batch-sizes", "weekly", "--out", "{out}"),
        "invalid choice: 'weekly'",
    ),
    # --------------------------------------------------------------- diagnose
    Case("diagnose-empty", ("diagnose", "{out}/empty.json", "--out", "{out}"), "empty history"),
    Case("diagnose-nan", ("diagnose", "{out}/nan.json", "--out", "{out}"), "holds no finite loss"),
    Case("diagnose-missing", ("diagnose", "{out}/absent.json"), "no history file at"),
    Case("diagnose-not-json", ("diagnose", "{out}/not_json.json"), "is not JSON"),
    Case("diagnose-list", ("diagnose", "{out}/list.json"), "expected a JSON object"),
    Case("diagnose-no-field", ("diagnose", "{out}/no_field.json"), "no 'steps_per_epoch' field"),
    Case("diagnose-folder-without", ("diagnose", "{out}/sub"), "no history file at"),
    # --------------------------------------------------------------- report
    Case("report-empty-folder", ("report", "{out}/empty_dir"), "it has no tune.json"),
    Case("report-no-results", ("report", "{out}/no_results"), "holds no results"),
    Case("report-bad-json", ("report", "{out}/bad_tune"), "is not valid JSON"),
    Case("report-missing", ("report", "{out}/absent"), "no such folder"),
    Case("report-a-file", ("report", "{out}/notes.txt"), "is not a folder"),
    Case("report-unfinished", ("report", "{out}/unfinished"), "the tune did not finish"),
    # --------------------------------------------------------------- issue 33, the rest
    Case(
        "find-lr-start-lr-subnormal",
        ("find-lr", *D, "--start-lr", "5e-324", "--steps", "20", "--out", "{out}"),
        "--start-lr 5e-324 is too small for an exponential sweep to --end-lr 10: their "
        "ratio overflows a float",
    ),
    Case(
        "tune-memory-limit-one-byte",
        ("tune", *D, "--device", "cpu", "--memory-limit", "1B", "--out", "{out}"),
        "--memory-limit 1B: not even a batch of 1 fits in 0 MiB",
    ),
    Case(
        "tune-batch-sizes-none-fit",
        (
            "tune", *D, "--device", "cpu", "--memory-limit", "300KB", "--batch-sizes", "512,1024",
            "--out", "{out}",
        ),
        "--batch-sizes 512,1024: none fits in memory (300KB): the largest batch of task "
        "'digits-mlp' that fits is",
    ),
    _hp_case("deep", "not a tune's hparams.json (its JSON is nested too deeply to read)"),
    Case(
        "diagnose-deep-json",
        ("diagnose", "{out}/deep.json", "--out", "{out}"),
        "is not a history: its JSON is nested too deeply to read",
    ),
    Case(
        "diagnose-steps-per-epoch-zero",
        ("diagnose", "{out}/steps_zero.json", "--out", "{out}"),
        "steps_per_epoch must be an integer >= 1, got 0",
    ),
    Case(
        "diagnose-steps-per-epoch-negative",
        ("diagnose", "{out}/steps_negative.json", "--out", "{out}"),
        "steps_per_epoch must be an integer >= 1, got -3",
    ),
    Case(
        "diagnose-steps-per-epoch-text",
        ("diagnose", "{out}/steps_text.json"),
        "steps_per_epoch must be an integer >= 1, got 'x'",
    ),
    Case(
        "sweep-store-damaged-meta-row",
        ("sweep", "momentum", *D, "--store", "{out}/bad_meta.sqlite", "--out", "{out}"),
        "holds a meta entry 'identity' that cannot be read (JSONDecodeError",
    ),
    Case(
        "tune-store-damaged-meta-row",
        ("tune", *D, "--epochs", "1", "--store", "{out}/bad_meta.sqlite", "--out", "{out}"),
        "holds a meta entry 'identity' that cannot be read",
    ),
    Case(
        "sweep-store-another-schema",
        ("sweep", "momentum", *D, "--store", "{out}/schema.sqlite", "--out", "{out}"),
        "is not a trial store (table 'trials' lacks columns ['created', 'key', 'payload'",
    ),
    Case(
        "tune-store-another-schema",
        ("tune", *D, "--epochs", "1", "--store", "{out}/schema.sqlite", "--out", "{out}"),
        "is not a trial store (table 'trials' lacks columns",
    ),
    _task_case("clustering", "kind must be 'classification' or 'regression', got 'clustering'"),
    _task_case(
        "nan_metric",
        "the metric 'accuracy' returned nan on the freshly built model's outputs for a batch "
        "of 8: it must give a finite number for any batch",
    ),
    _task_case("nan_metric", "the metric 'accuracy' returned nan", command="tune"),
]


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file and folder under ``folder``: relative path -> SHA-256 (or ``"dir"``)."""
    return {
        str(p.relative_to(folder)): "dir"
        if p.is_dir()
        else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
    }


def test_the_table_holds_at_least_50_distinct_cases():
    assert len(CASES) >= 50
    assert len({c.id for c in CASES}) == len(CASES)
    assert {c.argv[0] for c in CASES if c.argv} == {
        "train",
        "find-lr",
        "sweep",
        "tune",
        "diagnose",
        "report",
    }


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_exit_2_and_touches_nothing(case, env, capsys):
    out = Path(env["out"])
    before = _snapshot(out)
    argv = [a.format(**env) for a in case.argv]
    code = main(argv)
    captured = capsys.readouterr()
    err = captured.err
    assert code == 2, err
    assert "Traceback" not in err and "Traceback" not in captured.out
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("disciplined: error: ")
    assert case.message.format(**env) in lines[0]
    assert _snapshot(out) == before


# ------------------------------------------------------------------- the Python API


def _toy(**kw) -> Task:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    y = torch.randint(0, 3, (64,), generator=g)
    d = dict(
        name="toy",
        build_model=lambda hp: nn.Linear(4, 3),
        train_data=(x, y),
        val_data=(x, y),
        loss_fn=nn.functional.cross_entropy,
        metric=accuracy,
        metric_name="accuracy",
        default_batch_size=16,
    )
    d.update(kw)
    return Task(**d)


def _bad_labels() -> Task:
    return _toy(train_data=(torch.randn(64, 4), torch.full((64,), 7)))


def _nan_val() -> Task:
    x = torch.randn(64, 4)
    x[1, 1] = math.nan
    return _toy(val_data=(x, torch.randint(0, 3, (64,))))


class _Items(torch.utils.data.Dataset):
    """A map-style dataset of ``(numpy input, int label[, extra])`` items."""

    def __init__(self, extra: bool = False) -> None:
        self.x = torch.randn(64, 4).numpy()
        self.extra = extra

    def __len__(self) -> int:
        return 64

    def __getitem__(self, i: int):
        item = (self.x[i], i % 3)
        return (*item, 1.0) if self.extra else item


def _fit(data):
    model = nn.Linear(4, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    return fit(model, opt, data, loss_fn=nn.functional.cross_entropy, steps=2, batch_size=8)


API_CASES = [
    ("load-task-object-bad-labels", lambda env: load_task(_bad_labels()), "labels run from 7 to 7"),
    ("load-task-file-raises", lambda env: load_task(env["tasks"] + ":raises_runtime"), "boom"),
    ("load-task-file-exits", lambda env: load_task(env["tasks"] + ":exits"), "sys.exit(3)"),
    (
        "load-task-option",
        lambda env: load_task("digits-mlp", {"hidden": -5}),
        "building the model failed",
    ),
    (
        "fit-three-tensors",
        lambda env: _fit((torch.randn(32, 4), torch.randint(0, 3, (32,)), torch.ones(32))),
        "a data tuple must be (inputs, targets), got 3 tensors",
    ),
    (
        "fit-lengths-differ",
        lambda env: _fit((torch.randn(32, 4), torch.randint(0, 3, (30,)))),
        "must have the same length, got 32 and 30",
    ),
    (
        "tune-task-with-nan",
        lambda env: tune(_nan_val(), epochs=1, out=Path(env["tmp"]) / "never"),
        "the validation inputs hold 1 NaN",
    ),
    (
        "dataset-items-of-three",
        lambda env: load_task(_toy(train_data=_Items(extra=True))),
        "each batch of train_data must be an (inputs, targets) pair, got 3 values",
    ),
    ("parse-memory-overflow", lambda env: parse_memory("1e400"), "at most 1 EiB"),
    ("parse-memory-nan", lambda env: parse_memory(math.nan), "memory limit must be > 0"),
    (
        "store-damaged",
        lambda env: SQLiteStore(Path(env["out"]) / "damaged.sqlite"),
        "is damaged",
    ),
    ("device", lambda env: resolve_device("tpu"), "device must be 'cpu', 'cuda'"),
    # issue 33: one range per hyper-parameter, from Python as from the command line
    ("hparams-max-lr-huge", lambda env: HParams(max_lr=1e300), "max_lr must be in (0, 10000]"),
    ("hparams-batch-zero", lambda env: HParams(batch_size=0), "batch_size must be an integer"),
    ("hparams-batch-bool", lambda env: HParams(batch_size=True), "got True"),
    ("hparams-lr-text", lambda env: HParams(max_lr="0.1"), "max_lr must be in (0, 10000]"),
    ("hparams-wd-huge", lambda env: HParams(weight_decay=100.0), "weight_decay must be in [0, 10]"),
    ("hparams-div-huge", lambda env: HParams(div=1e9), "div must be in (1, 1e+06]"),
    ("hparams-optimizer", lambda env: HParams(optimizer="adam"), "optimizer must be one of"),
    (
        "train-task-epochs-huge",
        lambda env: train_task(load_task("digits-mlp"), HParams(), epochs=1e300),
        "epochs must be in (0, 10000], got 1e+300",
    ),
    (
        "train-task-epochs-negative",
        lambda env: train_task(load_task("digits-mlp"), HParams(), epochs=-1),
        "epochs must be in (0, 10000], got -1",
    ),
    (
        "tune-epochs-huge",
        lambda env: tune("digits-mlp", epochs=1e300, out=Path(env["tmp"]) / "never"),
        "epochs must be in (0, 10000], got 1e+300",
    ),
    (
        "tune-config-seed",
        lambda env: TuneConfig(seed=-1),
        "seed must be an integer in [0, 9223372036854775807], got -1",
    ),
    (
        "tune-config-batch-sizes",
        lambda env: tune("digits-mlp", batch_sizes=[32, 0], out=Path(env["tmp"]) / "never"),
        "each of batch_sizes must be an integer in [1, 16777216], got 0",
    ),
    (
        "train-task-one-step",
        lambda env: train_task(load_task("digits-mlp"), HParams(batch_size=1437), epochs=1),
        "no one-cycle schedule fits",
    ),
]


@pytest.mark.parametrize(("name", "call", "message"), API_CASES, ids=[c[0] for c in API_CASES])
def test_the_python_api_refuses_with_one_line_usage_errors(name, call, message, env):
    out = Path(env["out"])
    before = _snapshot(out)
    with pytest.raises(UsageError) as info:
        call(env)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert _snapshot(out) == before
    assert not (Path(env["tmp"]) / "never").exists()


def test_a_dataset_of_numpy_items_passes_the_check_as_training_batches_it():
    task = load_task(_toy(train_data=_Items(), val_data=_Items()))
    assert task.num_train == 64


def test_the_task_check_leaves_torchs_random_state_alone():
    state = torch.random.get_rng_state()
    load_task(_toy())
    assert torch.equal(torch.random.get_rng_state(), state)


# ------------------------------------------------------------------- not bad input


def test_a_library_bug_is_an_internal_error_with_the_traceback_in_out(
    tmp_path, capsys, monkeypatch
):
    def broken(*args, **kwargs):
        raise ValueError("an internal invariant failed")

    monkeypatch.setattr(cli_train, "train_task", broken)
    out = tmp_path / "run"
    code = main(["train", "--task", "digits-mlp", "--epochs", "1", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1  # not 2: a ValueError from the library is not the user's fault
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    assert lines[0] == (
        "disciplined: internal error: ValueError: an internal invariant failed; "
        f"full traceback in {out / 'error.log'}"
    )
    log = (out / "error.log").read_text()
    assert "Traceback (most recent call last)" in log and "in broken" in log
    assert "disciplined train --task digits-mlp" in log


def test_without_an_output_folder_the_traceback_goes_to_the_temp_dir(tmp_path, capsys, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    history = tmp_path / "h.json"
    _history(history, [2.0, 1.5, 1.2, 1.0, 0.9], [2.0, 1.6, 1.3, 1.1, 1.0])

    def broken(_history):
        raise KeyError("verdict")

    monkeypatch.setattr(cli_diagnose, "diagnose", broken)
    code = main(["diagnose", str(history)])
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.startswith("disciplined: internal error: KeyError: 'verdict'")
    logs = list((tmp_path / "tmp").glob("disciplined-error-*.log"))
    assert len(logs) == 1 and err.endswith(f"full traceback in {logs[0]}")
    assert "KeyError" in logs[0].read_text()


def _spec(seed: int = 0) -> TrialSpec:
    return TrialSpec(
        task="digits-mlp",
        hparams=HParams(batch_size=32).to_dict(),
        kind="range_test",
        budget={"num_steps": 20},
        seed=seed,
    )


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (FloatingPointError("overflow encountered"), "diverged"),
        (RuntimeError("value cannot be converted to type float without overflow"), "diverged"),
        (UsageError("no one-cycle schedule fits 1 epochs at batch size 1437"), "failed"),
        (torch.OutOfMemoryError("CUDA out of memory"), "failed"),
    ],
)
def test_a_trial_that_fails_from_its_hyper_parameters_is_recorded(monkeypatch, error, status):
    import disciplined.trials.spec as trials

    def blow_up(*args, **kwargs):
        raise error

    monkeypatch.setattr(trials, "lr_range_test", blow_up)
    result = run_trial(_spec())
    assert result.status == status and type(error).__name__ in result.reason


def test_a_trial_that_crashes_from_a_bug_is_raised_not_recorded(monkeypatch):
    import disciplined.trials.spec as trials

    calls = []

    def runner(spec: TrialSpec) -> TrialResult:
        calls.append(spec.seed)
        if spec.seed == 1:
            return run_trial(spec)  # the patched range test raises a KeyError: a bug
        return TrialResult(spec.key, spec, "ok", 0.0)

    def buggy(*args, **kwargs):
        return {}["no such key"]

    monkeypatch.setattr(trials, "lr_range_test", buggy)
    with pytest.raises(TrialCrash, match="crashed: KeyError: 'no such key'") as info:
        run_trial(_spec(1))
    assert isinstance(info.value.__cause__, KeyError)
    store = MemoryStore()
    with pytest.raises(TrialCrash):
        InProcessExecutor().run([_spec(0), _spec(1), _spec(2)], store, runner=runner)
    assert calls == [0, 1]  # the study stopped at the bug
    assert _spec(0).key in store and _spec(1).key not in store  # the bug is not a result


def test_equal_time_batch_comparison_with_a_budget_too_small_keeps_the_task_batch(tmp_path):
    # The memory_decision call on this path had no task (a TypeError).
    from disciplined.studies import StudyContext, batch_size_search

    ctx = StudyContext(task="digits-mlp", store=MemoryStore(), out=tmp_path)
    hp = HParams(batch_size=32, max_momentum=0.9, min_momentum=0.9)
    d = batch_size_search(
        ctx, hp, compare="time", candidates=[32, 128], num_steps=100, max_epochs=1.0
    )
    assert d.name == "batch_size" and d.value == 32
    assert "cannot compare 2 batch sizes" in d.reason


def test_a_damaged_store_is_refused_before_sqlite_writes_anything(tmp_path):
    path = tmp_path / "s.sqlite"
    _damaged_store(path)
    before = path.read_bytes()
    with pytest.raises(UsageError, match="is damaged"):
        SQLiteStore(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.sqlite"]  # no -wal, no -shm
    conn = sqlite3.connect(path)  # and it really is damaged
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() != [("ok",)]
    except sqlite3.DatabaseError:
        pass
    finally:
        conn.close()


# ------------------------------------------------------------------- output folders


def _run(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


def test_a_folder_written_by_another_task_or_command_is_refused_unless_forced(tmp_path, capsys):
    out = tmp_path / "run"
    train = ("train", "--epochs", "1", "--out", str(out))
    assert _run(capsys, *train, "--task", "digits-mlp")[0] == 0
    marker = json.loads((out / ".disciplined.json").read_text())
    assert marker == {"command": "train", "task": "digits-mlp", "task_options": {}}
    # the same command on the same task may rerun there (another max LR, say)
    assert _run(capsys, *train, "--task", "digits-mlp", "--max-lr", "0.05")[0] == 0
    before = _snapshot(out)
    refusals = [
        (
            (*train, "--task", "synthetic-regression"),
            "was written by `disciplined train` on task 'digits-mlp'",
        ),
        (
            (*train, "--task", "digits-mlp", "--task-option", "hidden=64"),
            "was written by `disciplined train` on task 'digits-mlp'; use another --out",
        ),
        (
            ("sweep", "momentum", "--task", "digits-mlp", "--steps", "20", "--out", str(out)),
            "was written by `disciplined train`",
        ),
        (("tune", "--task", "digits-mlp", "--epochs", "1", "--out", str(out)), "or --force"),
    ]
    for argv, message in refusals:
        code, err = _run(capsys, *argv)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
        assert _snapshot(out) == before
    code, _ = _run(capsys, *train, "--task", "synthetic-regression", "--force")
    assert code == 0
    assert json.loads((out / ".disciplined.json").read_text())["task"] == "synthetic-regression"


def test_files_the_tool_did_not_write_are_not_overwritten_unless_forced(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "history.json").write_text('{"my": "own history"}')
    (out / "notes.txt").write_text("unrelated, never touched")
    before = _snapshot(out)
    argv = ("train", "--task", "digits-mlp", "--epochs", "1", "--out", str(out))
    code, err = _run(capsys, *argv)
    assert code == 2
    assert err.strip() == (
        f"disciplined: error: output folder {str(out)!r} holds history.json, not written by "
        "disciplined; move it away, use another --out, or --force to replace it"
    )
    assert _snapshot(out) == before
    assert _run(capsys, *argv, "--force")[0] == 0
    assert "train_losses" in (out / "history.json").read_text()
    assert (out / "notes.txt").read_text() == "unrelated, never touched"


def test_a_folder_of_unrelated_files_is_written_into_and_they_are_left_alone(tmp_path, capsys):
    out = tmp_path / "shared"
    out.mkdir()
    (out / "README").write_text("my notes")
    argv = ("train", "--task", "digits-mlp", "--epochs", "1", "--out", str(out))
    assert _run(capsys, *argv)[0] == 0
    assert (out / "README").read_text() == "my notes"
    assert {p.name for p in out.iterdir()} == {
        "README",
        ".disciplined.json",
        ".disciplined.lock",
        "history.json",
        "curves.png",
    }


def test_a_second_process_on_a_locked_folder_is_refused_naming_the_holder(tmp_path, capsys):
    import subprocess
    import sys

    out = tmp_path / "busy"
    out.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path;"
            "from disciplined.cli.common import claim_out;"
            "claim_out(Path(sys.argv[1]), {'command': 'tune', 'task': 'digits-mlp', "
            "'task_options': {}}); print('held', flush=True); time.sleep(60)",
            str(out),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        before = _snapshot(out)
        code, err = _run(capsys, "tune", "--task", "digits-mlp", "--epochs", "1", "--out", str(out))
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert f"is in use by `disciplined tune` (pid {holder.pid}, since " in err
        assert _snapshot(out) == before
    finally:
        holder.kill()
        holder.wait()
    # the lock goes with the process: the folder is free again, and still tune's
    code, err = _run(capsys, "train", "--task", "digits-mlp", "--epochs", "1", "--out", str(out))
    assert code == 2 and "was written by `disciplined tune` on task 'digits-mlp'" in err, err


@pytest.mark.parametrize(
    ("arg", "name"),
    [
        (common.learning_rate_arg, "max_lr"),
        (common.epochs_arg, "epochs"),
        (common.budget_arg, "budget"),
        (common.div_arg, "div"),
        (common.weight_decay_arg, "weight_decay"),
        (common.fraction_arg, "dropout"),
        (common.batch_size_arg, "batch_size"),
        (common.seed_arg, "seed"),
        (common.workers_arg, "workers"),
    ],
)
def test_the_parser_refuses_exactly_what_the_library_refuses(arg, name):
    bound = BOUNDS[name]
    middle = (bound.low + bound.high) / 2
    for value in (bound.low, bound.high, bound.low - 1, bound.high * 2, middle):
        value = int(value) if bound.integer else float(value)
        try:
            arg(str(value))
            parsed = True
        except argparse.ArgumentTypeError:
            parsed = False
        assert parsed == bound.holds(value), (name, value)


# ------------------------------------------------------------------- the task's own code failing

TASK_CODE_CASES = [
    ("train", "model_fails_later", "the model (Later.forward) raised RuntimeError: forward broke"),
    ("train", "loss_fails_later", "the loss (loss_fails_later.<locals>.picky_loss) raised "),
    ("train", "metric_fails_later", "raised ZeroDivisionError: metric broke"),
    ("train", "data_fails_later", "reading the data (Items) raised OSError: cannot read item"),
    ("train", "build_fails_later", "building the model (build_fails_later.<locals>.build) raised"),
    ("train", "backward_fails", "the backward pass through the model raised RuntimeError"),
    ("find-lr", "model_fails_later", "the model (Later.forward) raised RuntimeError"),
    ("find-lr", "data_fails_later", "reading the data (Items) raised OSError"),
    ("sweep", "model_fails_later", "the model (Later.forward) raised RuntimeError"),
    ("sweep-workers", "loss_fails_later", "the loss (loss_fails_later.<locals>.picky_loss)"),
]
"""A task whose own code raises after it was checked: (command, task function, message)."""

_COMMANDS = {
    "train": ("train", "--epochs", "1"),
    "find-lr": ("find-lr", "--steps", "20"),
    "sweep": ("sweep", "momentum", "--steps", "20"),
    "sweep-workers": ("sweep", "momentum", "--steps", "20", "--workers", "2"),
}


@pytest.mark.parametrize(
    ("command", "name", "message"), TASK_CODE_CASES, ids=[f"{c}-{n}" for c, n, _ in TASK_CODE_CASES]
)
def test_the_tasks_own_code_failing_is_exit_2_naming_it_with_the_traceback_in_out(
    command, name, message, env, capsys
):
    out = Path(env["tmp"]) / "run"
    ref = f"{env['tasks']}:{name}"
    code = main([*_COMMANDS[command], "--task", ref, "--out", str(out)])
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, captured.err  # the user's code failed, not ours (exit 1)
    assert len(lines) == 1 and "Traceback" not in captured.err + captured.out, captured.err
    assert lines[0].startswith(f"disciplined: error: task {ref!r}: ")
    assert message in lines[0]
    assert lines[0].endswith(f"; full traceback in {out / 'error.log'}")
    log = (out / "error.log").read_text()
    assert "Traceback (most recent call last)" in log and "The task's code was called from" in log
    # no result was written, and no trial was recorded as a result of its hyper-parameters
    assert {p.name for p in out.iterdir()} <= {
        "error.log",
        "trials.sqlite",
        ".disciplined.json",
        ".disciplined.lock",
    }
    if (out / "trials.sqlite").exists():
        with SQLiteStore(out / "trials.sqlite") as store:
            assert len(store) == 0


def test_a_task_code_error_from_python_is_a_usage_error_with_the_traceback(env):
    task = load_task(env["tasks"] + ":model_fails_later")
    with pytest.raises(TaskCodeError) as info:
        train_task(task, HParams(batch_size=16), epochs=1)
    error = info.value
    assert isinstance(error, UsageError)
    assert str(error) == "the model (Later.forward) raised RuntimeError: forward broke at call 3"
    assert "forward broke at call 3" in error.details and "tasks.py" in error.details
    copy = pickle.loads(pickle.dumps(error))  # from a worker process, the details come along
    assert (str(copy), copy.details) == (str(error), error.details)


def test_a_trial_whose_task_code_fails_is_raised_not_recorded(env):
    spec = TrialSpec(
        task=env["tasks"] + ":model_fails_later",
        hparams=HParams(batch_size=16).to_dict(),
        kind="train",
        budget={"epochs": 1},
    )
    store = MemoryStore()
    with pytest.raises(TaskCodeError, match=r"the model \(Later.forward\) raised"):
        InProcessExecutor().run([spec], store)
    assert spec.key not in store


@pytest.mark.parametrize(
    "error",
    [
        FloatingPointError("overflow encountered"),
        RuntimeError("value cannot be converted to type float without overflow"),
        torch.OutOfMemoryError("CUDA out of memory"),
        UsageError("already worded"),
        KeyboardInterrupt(),
    ],
    ids=lambda e: type(e).__name__,
)
def test_what_says_something_about_the_hyper_parameters_passes_through_task_code(error):
    with pytest.raises(type(error)) as info, task_code("the model"):
        raise error
    assert info.value is error
    with pytest.raises(TaskCodeError, match=r"^the model raised KeyError: 'x'$"), task_code(
        "the model"
    ):
        raise KeyError("x")


def test_find_lr_claims_its_folder_and_replaces_a_users_file_only_when_forced(tmp_path, capsys):
    out = tmp_path / "lr"
    out.mkdir()
    (out / "range_test.json").write_text('{"my": "own range test"}')
    argv = ("find-lr", "--task", "digits-mlp", "--steps", "20", "--out", str(out))
    code, err = _run(capsys, *argv)
    assert code == 2 and "holds range_test.json, not written by disciplined" in err
    assert (out / "range_test.json").read_text() == '{"my": "own range test"}'
    assert _run(capsys, *argv, "--force")[0] == 0
    marker = json.loads((out / ".disciplined.json").read_text())
    assert marker == {"command": "find-lr", "task": "digits-mlp", "task_options": {}}
    assert "lrs" in json.loads((out / "range_test.json").read_text())
    assert _run(capsys, *argv)[0] == 0  # its own folder: a rerun writes there
    code, err = _run(capsys, "train", "--task", "digits-mlp", "--epochs", "1", "--out", str(out))
    assert code == 2 and "was written by `disciplined find-lr` on task 'digits-mlp'" in err


# ------------------------------------------------------------------- issue 33: the rest


@pytest.mark.parametrize(
    "argv",
    [
        ("train", *D, "--epochs", "1", "--out", ""),
        ("find-lr", *D, "--steps", "20", "--out", ""),
        ("sweep", "momentum", *D, "--steps", "20", "--out", " "),
        ("tune", *D, "--epochs", "1", "--out", ""),
        ("diagnose", "{tmp}/h.json", "--out", ""),
    ],
    ids=["train", "find-lr", "sweep", "tune", "diagnose"],
)
def test_an_empty_out_is_refused_not_read_as_the_current_folder(
    argv, tmp_path, monkeypatch, capsys
):
    _history(tmp_path / "h.json", [2.0, 1.5, 1.2], [2.0, 1.6, 1.3])
    monkeypatch.chdir(tmp_path)
    before = _snapshot(tmp_path)
    code, err = _run(capsys, *(a.format(tmp=tmp_path) for a in argv))
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "disciplined: error: the output folder must be named, got '" in err
    assert _snapshot(tmp_path) == before


def test_diagnose_beside_a_history_in_a_read_only_folder_is_refused(tmp_path, capsys):
    import os

    folder = tmp_path / "ro"
    folder.mkdir()
    _history(folder / "history.json", [2.0, 1.5, 1.2], [2.0, 1.6, 1.3])
    folder.chmod(0o555)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("this user (root) writes into a read-only folder anyway")
        before = _snapshot(folder)
        code, err = _run(capsys, "diagnose", str(folder))
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert f"cannot write diagnosis.json beside {str(folder / 'history.json')!r}: its " in err
        assert "give --out DIR" in err
        assert _snapshot(folder) == before
    finally:
        folder.chmod(0o755)


def test_diagnose_whose_write_is_denied_is_one_line_exit_2(tmp_path, capsys, monkeypatch):
    # what a read-only folder or file system does to the write (as root, os.access says yes)
    import errno

    _history(tmp_path / "history.json", [2.0, 1.5, 1.2], [2.0, 1.6, 1.3])

    def denied(path, _text):
        raise PermissionError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(cli_diagnose, "write_text_atomic", denied)
    code, err = _run(capsys, "diagnose", str(tmp_path))
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.strip() == (
        f"disciplined: error: cannot write {str(tmp_path / 'diagnosis.json')!r}: Read-only "
        "file system; give --out DIR"
    )


def test_a_metric_that_turns_nan_in_training_is_labelled_not_printed_bare(env, capsys):
    out = Path(env["tmp"]) / "run"
    argv = ("train", "--task", f"{env['tasks']}:metric_nan_later", "--epochs", "1")
    code = main([*argv, "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "validation accuracy nan (the task's metric returned no finite number)" in captured.out
    assert "accuracy nan," not in captured.out
    assert common.metric_text(0.91234) == "0.9123"
    assert common.metric_text(None) == "n/a"


def test_a_task_of_an_unknown_kind_is_refused_from_python():
    with pytest.raises(UsageError, match="kind must be 'classification' or 'regression', got 'c"):
        _toy(kind="clustering")


def test_a_store_of_another_schema_is_refused_before_it_is_modified(tmp_path):
    path = tmp_path / "other.sqlite"
    _store_of_another_schema(path)
    before = path.read_bytes()
    with pytest.raises(UsageError, match=r"is not a trial store \(table 'trials' lacks"):
        SQLiteStore(path)
    assert path.read_bytes() == before  # the journal mode too: not switched to WAL
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.sqlite"]


def test_a_damaged_meta_row_is_a_usage_error_naming_the_entry(tmp_path):
    path = tmp_path / "s.sqlite"
    _store_with_a_damaged_meta_row(path)
    with SQLiteStore(path) as store:
        with pytest.raises(UsageError, match=r"holds a meta entry 'identity' that cannot be read"):
            store.get_meta("identity")
        with pytest.raises(UsageError, match="meta entry 'identity'"):
            store.bind({"task": "digits-mlp", "task_options": {}})
