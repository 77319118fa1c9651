"""Fault injection: a loss that turns NaN or infinite at a random step of a random trial is
recorded as a diverged trial and the study goes on; a damaged or truncated store is refused
and left byte for byte as it was.

The faults are injected through the task's loss (the trials run a real training loop on
digits); which trials and which steps are drawn from a seeded generator, so a failure
reproduces.
"""

from __future__ import annotations

import errno
import math
import os
import random
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from disciplined.errors import UsageError
from disciplined.studies import StudyContext, weight_decay_sweep
from disciplined.tasks import Task, load_task
from disciplined.trials.executors import InProcessExecutor
from disciplined.trials.hparams import HParams
from disciplined.trials.spec import TrialResult, TrialSpec, run_trial
from disciplined.trials.store import MemoryStore, SQLiteStore


def _poisoned(task: Task, step: int, value: float) -> Task:
    """``task`` whose training loss is ``value`` (NaN or inf) from training step ``step``
    on (evaluation calls, under no_grad, are left alone)."""
    calls = {"n": 0}

    def loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        real = task.loss_fn(out, y)
        if not torch.is_grad_enabled():
            return real
        calls["n"] += 1
        return real * value if calls["n"] > step else real

    return replace(task, loss_fn=loss)


def _train_spec(seed: int) -> TrialSpec:
    return TrialSpec(
        task="digits-mlp",
        hparams=HParams(batch_size=64, max_lr=0.05).to_dict(),
        kind="train",
        budget={"epochs": 1},
        seed=seed,
    )


@pytest.mark.parametrize("draw", range(3))
def test_nan_or_inf_at_random_steps_of_random_trials_is_recorded_diverged(draw):
    rng = random.Random(1000 + draw)
    digits = load_task("digits-mlp")
    specs = [_train_spec(seed) for seed in range(6)]
    hit = set(rng.sample(range(6), 3))
    faults = {s: (rng.randrange(0, 22), rng.choice([math.nan, math.inf])) for s in hit}

    def runner(spec: TrialSpec) -> TrialResult:
        if spec.seed in faults:
            step, value = faults[spec.seed]
            return run_trial(spec, task=_poisoned(digits, step, value))
        return run_trial(spec, task=digits)

    store = MemoryStore()
    results = InProcessExecutor().run(specs, store, runner=runner)
    assert len(store) == 6  # every trial recorded; the ones after a fault ran too
    for spec, result in zip(specs, results, strict=True):
        if spec.seed in faults:
            step, value = faults[spec.seed]
            assert result.status == "diverged", result.reason
            word = "nan" if math.isnan(value) else "inf"
            assert result.reason == f"training loss is {word} at step {step}"
            assert result.history is not None and result.history.diverged_step == step
        else:
            assert result.status == "ok" and not result.history.diverged


def test_a_sweep_whose_trial_turns_nan_early_still_decides(tmp_path):
    digits = load_task("digits-mlp")
    poisoned_wd = 1e-3

    def runner(spec: TrialSpec) -> TrialResult:
        if spec.hparams["weight_decay"] == poisoned_wd:
            return run_trial(spec, task=_poisoned(digits, 2, math.nan))
        return run_trial(spec, task=digits)

    ctx = StudyContext(task="digits-mlp", store=MemoryStore(), runner=runner, out=tmp_path)
    hp = HParams(batch_size=32, max_momentum=0.9, min_momentum=0.9)
    d = weight_decay_sweep(ctx, hp, values=(1e-2, poisoned_wd, 0.0), num_steps=120)
    rows = {r["value"]: r for r in d.table}
    assert rows[poisoned_wd]["status"] == "diverged"
    assert d.value in (1e-2, 0.0)
    stored = {r.spec.hparams["weight_decay"]: r.status for r in ctx.store.results()}
    assert stored[poisoned_wd] == "diverged" and len(stored) == 3


def _store_with_trials(path: Path) -> None:
    digits = load_task("digits-mlp")
    with SQLiteStore(path) as store:
        store.bind({"task": "digits-mlp", "task_options": {}})
        for seed in range(3):
            spec = replace(_train_spec(seed), budget={"epochs": 0.1})
            store.put(run_trial(spec, task=digits))


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[: len(b) // 2],  # truncated halfway
        lambda b: b[:100],  # only the header left
        lambda b: b[:4096] + bytes(4096) + b[8192:],  # a zeroed page
        lambda b: b[:4096] + bytes(random.Random(7).randbytes(len(b) - 4096)),  # noise
        lambda b: b"SQLite format 4\x00" + b[16:],  # a wrong header
    ],
    ids=["truncated-half", "header-only", "zeroed-page", "noise", "bad-header"],
)
def test_a_damaged_store_is_refused_and_never_overwritten(tmp_path, damage):
    path = tmp_path / "trials.sqlite"
    _store_with_trials(path)
    assert path.stat().st_size >= 3 * 4096
    path.write_bytes(damage(path.read_bytes()))
    before = path.read_bytes()
    with pytest.raises(UsageError, match=r"is damaged|is not a trial store") as info:
        SQLiteStore(path)
    assert "\n" not in str(info.value)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trials.sqlite"]


class _FullDisk:
    """A file descriptor on a disk that fills up: half of the first write lands, then
    ENOSPC (stands in for `os.fdopen` in `disciplined.files`)."""

    def __init__(self, fd, *args, **kwargs):
        self.f = os.fdopen(fd, *args, **kwargs)

    def write(self, data) -> int:
        self.f.write(data[: len(data) // 2])
        self.f.flush()
        raise OSError(errno.ENOSPC, "No space left on device", "a result file")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


def _full_disk(monkeypatch) -> None:
    import disciplined.files as files

    def fdopen(fd, mode="r", *args, **kwargs):  # result files (binary) hit the full disk
        if "b" in mode:
            return _FullDisk(fd, mode, *args, **kwargs)
        return os.fdopen(fd, mode, *args, **kwargs)

    class _Os:  # the os module as files.py sees it, with fdopen on a full disk
        def __getattr__(self, name):
            return fdopen if name == "fdopen" else getattr(os, name)

    monkeypatch.setattr(files, "os", _Os())


def test_a_full_disk_leaves_the_previous_result_and_no_half_file(tmp_path, capsys, monkeypatch):
    from disciplined.cli import main
    from disciplined.cli.diagnose import load_history

    out = tmp_path / "run"
    argv = ["train", "--task", "digits-mlp", "--epochs", "1", "--out", str(out)]
    assert main(argv) == 0
    previous = (out / "history.json").read_bytes()
    capsys.readouterr()
    _full_disk(monkeypatch)
    code = main([*argv, "--max-lr", "0.05"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("disciplined: error: the disk is full writing ")
    assert "nothing half-written was kept" in err
    assert (out / "history.json").read_bytes() == previous  # the last whole result
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    monkeypatch.undo()
    history, _ = load_history(out)  # and it reads back as the result it is
    assert history.meta["hparams"]["max_lr"] == 0.1


def test_an_atomic_write_that_fails_leaves_no_file(tmp_path, monkeypatch):
    import disciplined.files as files

    _full_disk(monkeypatch)
    with pytest.raises(OSError, match="No space left"):
        files.write_text_atomic(tmp_path / "tune.json", '{"a": 1}')
    assert list(tmp_path.iterdir()) == []
