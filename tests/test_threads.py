"""Torch threads for trials run in this process (issue 34, item 8): ``--threads N`` on
``tune``, ``sweep``, ``find-lr`` and ``train`` (and ``threads=`` from Python), bounded like
every option; the count applied while the trials run and torch's own count restored after;
the default rule (`choose_threads`) on stated loads and model sizes; the choice recorded in
``tune.json`` and shown in the report."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import disciplined.cli.find_lr as cli_find_lr
import disciplined.cli.train as cli_train
from disciplined import tune
from disciplined.cli import main
from disciplined.errors import UsageError
from disciplined.trials.executor_base import (
    THREAD_WORK,
    choose_threads,
    model_work,
    thread_choice,
    torch_threads,
)
from disciplined.trials.executors import InProcessExecutor
from disciplined.trials.spec import TrialResult, TrialSpec, run_trial

COMMANDS = {
    "tune": ["tune", "--task", "digits-mlp"],
    "sweep": ["sweep", "momentum", "--task", "digits-mlp"],
    "find-lr": ["find-lr", "--task", "digits-mlp"],
    "train": ["train", "--task", "digits-mlp"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize(
    ("value", "said"),
    [("0", "must be >= 1, got '0'"), ("1025", "must be <= 1024"), ("two", "must be an integer")],
)
def test_the_threads_option_is_bounded(
    command: str, value: str, said: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main([*COMMANDS[command], "--threads", value, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--threads" in err[0] and said in err[0], err
    assert not out.exists()


def test_every_command_that_trains_states_the_default_in_its_help(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for args in COMMANDS.values():
        try:
            code = main([args[0], *(["momentum"] if args[0] == "sweep" else []), "--help"])
        except SystemExit as exc:
            code = exc.code
        assert code == 0
        text = " ".join(capsys.readouterr().out.split())
        assert "--threads N" in text and "[1, 1024]" in text and "(default: the cores free" in text


@pytest.mark.parametrize(
    ("cpus", "load", "work", "ceiling", "threads"),
    [
        (2, 0.0, math.inf, None, 2),  # idle, and a model large enough for every core
        (2, 2.0, math.inf, None, 1),  # issue 34's machine: two busy processes on 2 cores
        (2, 7.3, math.inf, None, 1),  # overloaded: still one
        (16, 3.4, math.inf, None, 13),  # 12.6 cores free, rounded
        (16, 3.6, math.inf, None, 12),
        (16, 0.0, 6.67e5, None, 1),  # the MNIST-1D CNN at batch 128: too small to split
        (16, 0.0, 2.5 * THREAD_WORK, None, 2),
        (16, 0.0, 1.4e9, None, 16),  # a ResNet-18 at batch 128
        (16, 10.0, 1.4e9, None, 6),  # ... beside ten busy processes
        (16, 0.0, 1.4e9, 4, 4),  # OMP_NUM_THREADS=4 (torch's count) is a ceiling
        (4, -1.0, math.inf, None, 4),  # a nonsense load reads as none
    ],
)
def test_the_default_rule_on_stated_loads(
    cpus: int, load: float, work: float, ceiling: int | None, threads: int
) -> None:
    assert choose_threads(cpus=cpus, load=load, work=work, ceiling=ceiling) == threads


def test_the_rule_refuses_no_cores() -> None:
    with pytest.raises(ValueError, match="cpus must be >= 1, got 0"):
        choose_threads(cpus=0, load=0.0, work=1.0)


def test_the_choice_on_this_machine_names_its_reading(digits, monkeypatch) -> None:
    import disciplined.trials.executor_base as base

    monkeypatch.setattr(base, "machine_cpus", lambda: 8)
    monkeypatch.setattr(base, "machine_load", lambda: 2.2)
    rng = torch.get_rng_state()
    with torch_threads(8):
        choice = thread_choice(None, digits)
    assert torch.equal(torch.get_rng_state(), rng)  # building the model drew no numbers
    assert model_work(digits) == 17226 * 32
    assert choice.threads == 1
    assert choice.reason == (
        "default: 6 of 8 cores free at load 2.20; the model's step (5.51e+05 parameters x "
        "samples) pays for 1"
    )
    assert thread_choice(3, digits).to_dict() == {"threads": 3, "reason": "asked for"}
    with pytest.raises(ValueError, match="threads must be an integer >= 1 or None, got 0"):
        thread_choice(0)


def test_torch_threads_restores_the_count_after_an_exception() -> None:
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError), torch_threads(before + 1):
        assert torch.get_num_threads() == before + 1
        raise RuntimeError("boom")
    assert torch.get_num_threads() == before


@pytest.mark.parametrize(
    ("module", "name"), [(cli_train, "train_task"), (cli_find_lr, "lr_range_test")]
)
@pytest.mark.parametrize("asked", [None, 2])
def test_train_and_find_lr_run_with_the_threads_and_restore_them(
    module, name: str, asked: int | None, tmp_path: Path, monkeypatch
) -> None:
    inner = getattr(module, name)
    seen: list[int] = []

    def counting(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return inner(*args, **kwargs)

    monkeypatch.setattr(module, name, counting)
    command = "train" if module is cli_train else "find-lr"
    length = ["--epochs", "0.2"] if command == "train" else ["--steps", "20"]
    extra = ["--threads", str(asked)] if asked else []
    before = torch.get_num_threads()
    assert main([command, "--task", "digits-mlp", *length, *extra, "--out", str(tmp_path)]) == 0
    # the default: the built-in task is too small for a second thread (and the tests run one)
    assert seen == [asked or 1]
    assert torch.get_num_threads() == before


def test_a_tune_runs_its_trials_with_the_threads_and_records_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: set[int] = set()

    def runner(spec: TrialSpec) -> TrialResult:
        seen.add(torch.get_num_threads())
        return run_trial(spec)

    before = torch.get_num_threads()
    r = tune(
        "digits-mlp", epochs=3, budget=30, range_steps=100, out=tmp_path, threads=2, runner=runner
    )
    assert seen == {2} and torch.get_num_threads() == before
    assert r.meta["threads"] == {"threads": 2, "reason": "asked for"}
    meta = json.loads((tmp_path / "tune.json").read_text())["meta"]
    assert meta["threads"] == {"threads": 2, "reason": "asked for"}
    assert "Torch CPU threads per trial: 2 (asked for)." in (tmp_path / "report.html").read_text()
    assert "[tune] torch threads per trial: 2 (asked for)" in capsys.readouterr().err


def test_tune_refuses_bad_threads_and_threads_beside_an_executor(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="threads must be an integer >= 1 or None, got 0"):
        tune("digits-mlp", out=tmp_path / "a", threads=0)
    with pytest.raises(UsageError, match="threads=2 applies to the executor tune makes"):
        tune("digits-mlp", out=tmp_path / "b", threads=2, executor=InProcessExecutor(1))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
