"""The device a user asks for reaches every trial, in this process and in workers.

This machine has no GPU: the CUDA paths are checked by a stub that stands in for CUDA (the
device name travels through the recipe; the arithmetic stays on the CPU) and, where it
matters, by a worker that must refuse a CUDA spec exactly as the CPU-only machine would.
"""

from __future__ import annotations

import json

import pytest
import torch

import disciplined.studies.batch
import disciplined.training.devices
import disciplined.training.fit
import disciplined.trials.spec
from disciplined import tune
from disciplined.cli import main
from disciplined.errors import UsageError
from disciplined.training.fit import device_and_amp, resolve_device
from disciplined.trials.executors import ProcessExecutor
from disciplined.trials.hparams import HParams
from disciplined.trials.spec import TrialResult, TrialSpec, run_trial
from disciplined.trials.store import MemoryStore

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only refusal")
HP = HParams(max_lr=0.1, batch_size=64).to_dict()


def test_bad_devices_are_refused_with_one_line():
    for bad in ("meta", "tpu", "gpu0", 3.5):
        with pytest.raises(UsageError, match="device must be"):
            resolve_device(bad)
    assert resolve_device("cpu") == torch.device("cpu")
    assert device_and_amp("cpu", "off") == ("cpu", None)
    with pytest.raises(UsageError, match="needs a CUDA device"):
        device_and_amp("cpu", "bf16")
    with pytest.raises(UsageError, match="amp must be"):
        device_and_amp("cpu", "fp8")


@no_cuda
def test_auto_is_the_cpu_here_and_cuda_is_refused():
    assert device_and_amp("auto") == ("cpu", None)
    for asked in ("cuda", "cuda:1"):
        with pytest.raises(UsageError, match="CUDA is not available"):
            resolve_device(asked)


def test_the_device_is_not_in_a_trials_key_but_mixed_precision_is():
    spec = TrialSpec("digits-mlp", HP, "train", {"epochs": 1})
    assert spec.device == "cpu" and spec.amp is None
    moved = TrialSpec("digits-mlp", HP, "train", {"epochs": 1}, device="cuda:0")
    assert moved.key == spec.key  # resumed on another machine, the finished run is read back
    bf16 = TrialSpec("digits-mlp", HP, "train", {"epochs": 1}, device="cuda:0", amp="bf16")
    assert bf16.key != spec.key
    with pytest.raises(ValueError, match="amp must be"):
        TrialSpec("digits-mlp", HP, "train", {"epochs": 1}, amp="fp8")
    # a spec and a result written before the device was kept still load, as CPU runs
    old = spec.to_dict()
    del old["device"], old["amp"]
    assert TrialSpec.from_dict(old) == spec
    result = TrialResult(spec.key, spec, "failed", 0.0, reason="x").to_dict()
    del result["device"]
    assert TrialResult.from_dict(result).device is None


def test_a_trial_records_where_it_ran():
    spec = TrialSpec("digits-mlp", HP, "train", {"epochs": 0.2})
    r = run_trial(spec)
    assert r.status == "ok" and r.device == "cpu"
    back = TrialResult.from_dict(json.loads(json.dumps(r.to_dict())))
    assert back.device == "cpu"


@no_cuda
def test_worker_processes_run_the_spec_on_its_device():
    # A worker that ignored the spec's device would train on the CPU and succeed; one that
    # reads it must fail as this CPU-only machine does.
    specs = [
        TrialSpec("digits-mlp", HP, "train", {"epochs": 0.1}, seed=s, device="cuda:0")
        for s in (0, 1)
    ]
    results = ProcessExecutor(workers=2, threads=1).run(specs, MemoryStore())
    assert [r.status for r in results] == ["failed", "failed"]
    assert all("CUDA is not available" in (r.reason or "") for r in results)


@pytest.fixture
def fake_cuda(monkeypatch):
    """CUDA as far as the names go: ``cuda:0`` is accepted and reported, the tensors stay
    on the CPU. Every device a trial asks for is recorded."""
    real = resolve_device
    asked: list[str] = []

    def resolve(device):
        if isinstance(device, str) and device.startswith("cuda"):
            asked.append(device)
            return torch.device("cpu")
        if device in (None, "auto"):
            asked.append("cuda:0")
            return torch.device("cpu")
        return real(device)

    for module in (
        disciplined.training.devices,
        disciplined.training.fit,
        disciplined.trials.spec,
        disciplined.studies.batch,
    ):
        monkeypatch.setattr(module, "resolve_device", resolve)
    monkeypatch.setattr(disciplined.training.devices, "device_name", lambda _dev: "cuda:0")
    monkeypatch.setattr(disciplined.training.fit, "device_name", lambda _dev: "cuda:0")
    monkeypatch.setattr(disciplined.trials.spec, "device_name", lambda _dev: "cuda:0")
    return asked


def test_every_trial_of_a_tune_runs_where_it_was_asked(tmp_path, fake_cuda):
    seen: list[str] = []

    def runner(spec: TrialSpec) -> TrialResult:
        seen.append(spec.device)
        return run_trial(spec)

    r = tune("digits-mlp", epochs=2, out=tmp_path, device="cuda:0", runner=runner)
    assert seen and set(seen) == {"cuda:0"}, seen
    # each trial resolved its own spec's device, and the report says where they ran
    assert fake_cuda.count("cuda:0") >= len(seen)
    assert r.meta["device"] == "cuda:0"
    assert r.meta["trial_devices"] == {"cuda:0": sum(r.meta["trial_devices"].values())}
    assert sum(r.meta["trial_devices"].values()) == len(seen) > 5  # all run fresh
    html = (tmp_path / "report.html").read_text()
    assert "Trials ran on: cuda:0" in html


def test_a_resumed_tune_reports_the_device_each_trial_ran_on(tmp_path, fake_cuda, monkeypatch):
    tune("digits-mlp", epochs=2, out=tmp_path, device="cuda:0")
    monkeypatch.undo()  # the real devices again: resumed on a CPU machine
    again = tune("digits-mlp", epochs=2, out=tmp_path, device="cpu")
    # nothing recomputed on the CPU: every trial was read back, and says it ran on cuda:0
    assert again.meta["device"] == "cpu"
    assert set(again.meta["trial_devices"]) == {"cuda:0"}


def test_sweep_takes_a_device(tmp_path, fake_cuda):
    code = main(
        [
            "sweep",
            "momentum",
            "--task",
            "digits-mlp",
            "--values",
            "0.9,0.95",
            "--steps",
            "100",
            "--device",
            "cuda",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0 and "cuda" in fake_cuda


@no_cuda
@pytest.mark.parametrize("command", ["tune", "train", "find-lr", "sweep"])
def test_the_cli_refuses_cuda_here_before_writing_anything(tmp_path, capsys, command):
    out = tmp_path / "out"
    argv = [command] + (["momentum"] if command == "sweep" else [])
    argv += ["--task", "digits-mlp", "--device", "cuda", "--out", str(out)]
    if command == "train":
        argv += ["--max-lr", "0.1", "--epochs", "1"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == "disciplined: error: device 'cuda' was asked for but CUDA is not available"
    assert not out.exists()
    assert main([*argv[:-2], "--device", "cpu", "--amp", "bf16", "--out", str(out)]) == 2
    assert "needs a CUDA device" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_cuda_with_mixed_precision_every_trial_runs_on_the_card(tmp_path):
    r = tune("digits-mlp", epochs=2, out=tmp_path, device="cuda", amp="bf16")
    assert r.meta["device"] == "cuda:0" and r.meta["amp"] == "bf16"
    assert set(r.meta["trial_devices"]) == {"cuda:0"}
    assert r.final_metric > 0.8
