import numpy as np
import pytest
import torch
from torch import nn

from disciplined import Task, UsageError, load_task
from disciplined.tasks import BUILTIN_TASKS


@pytest.mark.parametrize("name", sorted(BUILTIN_TASKS))
def test_builtin_tasks_build_and_their_models_fit_the_data(name):
    task = load_task(name)
    x, y = task.train_data
    xv, _ = task.val_data
    assert len(x) == len(y) == task.num_train and len(xv) == task.num_val
    out = task.model()(x[:7])
    if task.kind == "classification":
        assert out.shape == (7, 10) and y.dtype == torch.long
        assert set(y.unique().tolist()) == set(range(10))
    else:
        assert out.numel() == 7
    loss = task.loss_fn(out, y[:7])
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert 0 <= task.metric(out, y[:7]) <= 1 or task.kind == "regression"


def test_sizes_of_the_builtin_data():
    assert load_task("mnist1d-cnn").num_train == 4000
    assert load_task("mnist1d-cnn").num_val == 1000
    assert load_task("digits-mlp").num_train == 1437
    assert load_task("digits-mlp").num_val == 360
    small = load_task("mnist1d-mlp", {"samples": 1000})
    assert small.num_train == 800 and small.options["samples"] == 1000


def test_mnist1d_cnn_is_the_papers_three_conv_layers_of_25_channels():
    model = load_task("mnist1d-cnn").model()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv1d)]
    assert [c.out_channels for c in convs] == [25, 25, 25]


@pytest.mark.parametrize("name", sorted(BUILTIN_TASKS))
def test_dropout_is_honoured_and_zero_dropout_adds_no_layer(name):
    task = load_task(name)
    assert task.takes_dropout
    with_d = [m.p for m in task.model(dropout=0.3).modules() if isinstance(m, nn.Dropout)]
    without = [m for m in task.model(dropout=0.0).modules() if isinstance(m, nn.Dropout)]
    assert with_d and all(p == 0.3 for p in with_d) and without == []


def test_generating_mnist1d_leaves_the_global_numpy_generator_alone():
    from disciplined.tasks.builtins import _mnist1d_arrays

    _mnist1d_arrays.cache_clear()
    np.random.seed(123)
    expected = np.random.rand(3)
    np.random.seed(123)
    load_task("mnist1d-mlp", {"samples": 500})
    assert np.array_equal(np.random.rand(3), expected)


USER_TASK = """
import torch
from torch import nn
from disciplined import Task
from disciplined.tasks import accuracy

def make(n=64):
    x = torch.randn(n, 3)
    y = (x[:, 0] > 0).long()
    return Task(name="user-toy", build_model=lambda hp: nn.Linear(3, 2),
                train_data=(x, y), val_data=(x, y), loss_fn=nn.functional.cross_entropy,
                metric=accuracy, metric_name="accuracy")

def not_a_task():
    return 42
"""


def test_user_task_from_a_file(tmp_path):
    f = tmp_path / "mytask.py"
    f.write_text(USER_TASK)
    task = load_task(f"{f}:make", {"n": 100})
    assert isinstance(task, Task) and task.name == "user-toy" and task.num_train == 100


def test_user_task_from_a_module(tmp_path, monkeypatch):
    (tmp_path / "my_tasks_pkg.py").write_text(USER_TASK)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load_task("my_tasks_pkg:make").name == "user-toy"


@pytest.mark.parametrize(
    ("ref", "options", "message"),
    [
        ("nope", {}, "unknown task 'nope'"),
        ("missing/file.py:make", {}, "task file not found: missing/file.py"),
        ("{file}:absent", {}, "has no function 'absent'"),
        ("{file}:not_a_task", {}, "returned int, expected disciplined.Task"),
        ("no_such_module_xyz:make", {}, "cannot import module 'no_such_module_xyz'"),
        ("digits-mlp", {"bogus": 1}, "has no option 'bogus'"),
    ],
)
def test_bad_task_references_give_one_line_errors(tmp_path, ref, options, message):
    f = tmp_path / "t.py"
    f.write_text(USER_TASK)
    with pytest.raises(UsageError, match=message) as info:
        load_task(ref.format(file=f), options)
    assert "\n" not in str(info.value)


def test_validation_inputs_are_on_the_training_scale():
    # A pixel constant in the training split must not be divided by ~0 (it once gave
    # validation values of 6e4 and a validation loss twice the training loss).
    for name in sorted(BUILTIN_TASKS):
        task = load_task(name)
        xv = task.val_data[0]
        assert xv.abs().max() < 100, name
