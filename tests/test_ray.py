"""The Ray executor on a local Ray of 2 CPUs: the in-process decision from the same seeds, a
trial whose worker is killed retried (and the retry recorded) while the study finishes, a bug
in the user's code never retried; and the command line's executor options, refused in one
line before any folder is made, Ray missing included.

The tests that start the local Ray (one for the module, about a minute in all on 2 cores)
are marked slow; the option checks run without Ray."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from disciplined.cli import main
from disciplined.errors import UsageError
from disciplined.studies import StudyContext, weight_decay_sweep
from disciplined.trials.executors import InProcessExecutor, make_executor
from disciplined.trials.hparams import HParams
from disciplined.trials.spec import TrialCrash, TrialResult, TrialSpec, run_trial
from disciplined.trials.store import MemoryStore, SQLiteStore

# under pytest-xdist (make test), every test that may start a local Ray runs in one worker
pytestmark = pytest.mark.xdist_group("ray")

ROOT = Path(__file__).resolve().parents[1]
HP = HParams(batch_size=32, max_momentum=0.9, min_momentum=0.9)
VALUES = (1e-1, 1e-3, 1e-4, 0.0)
STEPS = 200
KILLED_WD = 1e-3  # the value whose first attempt kills its worker


def without_seconds(x: Any) -> Any:
    """``x`` with every ``seconds`` entry dropped, at any depth."""
    if isinstance(x, dict):
        return {k: without_seconds(v) for k, v in x.items() if k != "seconds"}
    if isinstance(x, list | tuple):
        return [without_seconds(v) for v in x]
    return x


def _attempt(folder: str, spec: TrialSpec) -> int:
    """Note one attempt at ``spec`` in ``folder``; the number of attempts so far."""
    path = Path(folder) / f"{spec.key}.attempts"
    with open(path, "a") as f:
        f.write("x")
    return len(path.read_text())


def kill_first_attempt(folder: str, spec: TrialSpec) -> TrialResult:
    """`run_trial`, except that the first attempt at weight decay `KILLED_WD` kills its own
    process with SIGKILL (as the out-of-memory killer would)."""
    if _attempt(folder, spec) == 1 and spec.hparams["weight_decay"] == KILLED_WD:
        os.kill(os.getpid(), signal.SIGKILL)
    return run_trial(spec)


def always_die(folder: str, spec: TrialSpec) -> TrialResult:
    """Every attempt at weight decay `KILLED_WD` ends its process (``os._exit``)."""
    _attempt(folder, spec)
    if spec.hparams["weight_decay"] == KILLED_WD:
        os._exit(3)
    return run_trial(spec)


def buggy(folder: str, spec: TrialSpec) -> TrialResult:
    """Weight decay 1e-4: an error the runner raises (recorded ``failed``); 0: a bug
    (`TrialCrash`, raised); the others run."""
    _attempt(folder, spec)
    if spec.hparams["weight_decay"] == 1e-4:
        raise ValueError("this runner fails on purpose")
    if spec.hparams["weight_decay"] == 0.0:
        raise TrialCrash("a bug in the user's code")
    return run_trial(spec)


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray of 2 CPUs for the module; its workers import this file and the source."""
    ray = pytest.importorskip("ray")
    before = os.environ.get("PYTHONPATH")
    paths = [str(ROOT / "tests"), str(ROOT / "src"), *([before] if before else [])]
    os.environ["PYTHONPATH"] = os.pathsep.join(paths)
    try:
        ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    finally:
        if before is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = before
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def in_process():
    """The sweep in this process, one torch thread: the decision and the store."""
    ctx = StudyContext(task="digits-mlp", store=MemoryStore(), executor=InProcessExecutor(1))
    return weight_decay_sweep(ctx, HP, values=VALUES, num_steps=STEPS), ctx.store


def ray_sweep(runner, **options) -> tuple[Any, MemoryStore]:
    """The sweep through a `RayExecutor` (on the module's Ray) with ``runner``."""
    from disciplined.trials.ray_executor import RayExecutor

    ex = RayExecutor(trial_cpus=1, **options)
    ctx = StudyContext(task="digits-mlp", store=MemoryStore(), executor=ex, runner=runner)
    with ex:
        return weight_decay_sweep(ctx, HP, values=VALUES, num_steps=STEPS), ctx.store


@pytest.mark.slow
def test_a_sweep_on_ray_gives_the_in_process_decision(local_ray, in_process):
    local, local_store = in_process
    assert local.value != 1e-1, local.reason  # digits rejects the over-regularizing value
    remote, store = ray_sweep(run_trial)
    assert remote.value == local.value
    assert without_seconds(remote.to_dict()) == without_seconds(local.to_dict())
    # the driver stored every result, and they are the in-process ones bit for bit
    assert sorted(store.keys()) == sorted(local_store.keys()) and len(store) == 4
    for b in store.results():
        a = local_store.get(b.key)
        assert a.range_test.val_losses == b.range_test.val_losses
        assert b.retries == () and "retries" not in b.to_dict()
    assert local_ray.is_initialized()  # a Ray the executor joined is left running


@pytest.mark.slow
def test_a_killed_worker_is_retried_and_the_study_finishes(local_ray, in_process, tmp_path):
    local, _ = in_process
    runner = functools.partial(kill_first_attempt, str(tmp_path))
    remote, store = ray_sweep(runner, max_retries=2)
    assert remote.value == local.value
    assert without_seconds(remote.to_dict()) == without_seconds(local.to_dict())
    by_wd = {r.spec.hparams["weight_decay"]: r for r in store.results()}
    assert set(by_wd) == set(VALUES) and all(r.status == "ok" for r in by_wd.values())
    killed = by_wd[KILLED_WD]
    assert len(killed.retries) == 1 and "WorkerCrashedError" in killed.retries[0]
    assert json.loads(json.dumps(killed.to_dict()))["retries"] == list(killed.retries)
    assert all(r.retries == () for wd, r in by_wd.items() if wd != KILLED_WD)
    tries = {p.stem: len(p.read_text()) for p in tmp_path.glob("*.attempts")}
    assert tries == {r.key: (2 if wd == KILLED_WD else 1) for wd, r in by_wd.items()}


@pytest.mark.slow
def test_the_retry_is_kept_in_an_sqlite_store_and_shown(local_ray, tmp_path, capsys):
    from disciplined.cli.common import trial_progress
    from disciplined.trials.ray_executor import RayExecutor

    marks = tmp_path / "marks"
    marks.mkdir()
    specs = [
        TrialSpec("digits-mlp", HP.with_(weight_decay=wd).to_dict(), "train", {"epochs": 0.2})
        for wd in (KILLED_WD, 0.0)
    ]
    with SQLiteStore(tmp_path / "t.sqlite") as store, RayExecutor() as ex:
        ex.run(
            specs,
            store,
            runner=functools.partial(kill_first_attempt, str(marks)),
            on_result=trial_progress(),
        )
    with SQLiteStore(tmp_path / "t.sqlite") as store:
        assert len(store.get(specs[0].key).retries) == 1
        assert store.get(specs[1].key).retries == ()
    assert "retried 1x after its worker was lost" in capsys.readouterr().err


@pytest.mark.slow
def test_a_worker_lost_every_time_is_retried_a_bounded_number_of_times(local_ray, tmp_path):
    from disciplined.trials.ray_executor import RayExecutor

    store = MemoryStore()
    ctx = StudyContext(
        task="digits-mlp",
        store=store,
        executor=RayExecutor(max_retries=1),
        runner=functools.partial(always_die, str(tmp_path)),
    )
    with pytest.raises(RuntimeError, match="lost its worker 2 times"):
        weight_decay_sweep(ctx, HP, values=VALUES, num_steps=40)
    stored = {r.spec.hparams["weight_decay"] for r in store.results()}
    assert stored == set(VALUES) - {KILLED_WD}  # the others finished and were stored
    tries = sorted(len(p.read_text()) for p in tmp_path.glob("*.attempts"))
    assert tries == [1, 1, 1, 2]  # 1 + max_retries attempts at the dying one


@pytest.mark.slow
def test_a_bug_in_user_code_is_not_retried(local_ray, tmp_path):
    from disciplined.trials.ray_executor import RayExecutor

    specs = [
        TrialSpec("digits-mlp", HP.with_(weight_decay=wd).to_dict(), "train", {"epochs": 0.2})
        for wd in (1e-3, 1e-4, 0.0)
    ]
    store = MemoryStore()
    with pytest.raises(TrialCrash, match="a bug in the user's code"), RayExecutor() as ex:
        ex.run(specs, store, runner=functools.partial(buggy, str(tmp_path)))
    tries = {p.stem: len(p.read_text()) for p in tmp_path.glob("*.attempts")}
    assert tries == {s.key: 1 for s in specs}  # each ran once: nothing retried
    assert store.get(specs[1].key).status == "failed"
    assert store.get(specs[1].key).reason == "ValueError: this runner fails on purpose"
    assert store.get(specs[0].key).status == "ok"
    assert specs[2].key not in store  # a bug is not a result


@pytest.mark.slow
def test_a_task_the_worker_cannot_build_is_raised_not_recorded(local_ray, tmp_path):
    from disciplined.trials.ray_executor import RayExecutor

    gone = tmp_path / "gone.py"  # the task's file is not there for the worker
    spec = TrialSpec(f"{gone}:task", HP.to_dict(), "train", {"epochs": 0.2})
    store = MemoryStore()
    with (
        pytest.raises(RuntimeError, match="cannot be built on this Ray worker"),
        RayExecutor() as ex,
    ):
        ex.run([spec], store)
    assert len(store) == 0  # not a "failed" trial: it runs once the node has the code


@pytest.mark.slow
def test_ray_executor_arguments(local_ray):
    from disciplined.trials.ray_executor import RayExecutor

    with pytest.raises(ValueError, match="trial_cpus must be a number > 0, got 0"):
        RayExecutor(trial_cpus=0)
    with pytest.raises(ValueError, match="trial_gpus must be a number >= 0"):
        RayExecutor(trial_gpus=float("nan"))
    with pytest.raises(ValueError, match="max_retries"):
        RayExecutor(max_retries=-1)
    with pytest.raises(UsageError, match="--address must be 'auto' or ray://HOST:PORT"):
        RayExecutor("ray://head:0")
    ex = make_executor(3, kind="ray", trial_cpus=0.5)
    assert (ex.num_cpus, ex.trial_cpus, ex.worker_threads) == (2, 0.5, 1)
    assert make_executor(kind="ray", trial_cpus=2).worker_threads == 2
    with pytest.raises(UsageError, match="--trial-gpus 1: the Ray cluster has 0 GPUs"):
        RayExecutor(trial_gpus=1).start()  # no trial could ever be placed: refused


# ------------------------------------------------------------------------ command line


def _cli(argv: list[str], capsys) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--trial-cpus", "0"], "--trial-cpus: must be in (0, 1024], got '0'"),
        (["--trial-cpus", "nan"], "--trial-cpus: must be finite"),
        (["--trial-gpus", "-1"], "--trial-gpus: must be in [0, 1024], got '-1'"),
        (["--workers", "0"], "--workers: must be >= 1"),
        (["--executor", "dask"], "--executor: invalid choice"),
        (["--address", "auto"], "--address applies to --executor ray only"),
        (["--trial-gpus", "1", "--workers", "2"], "--trial-gpus applies to --executor ray"),
        (["--executor", "inprocess", "--workers", "2"], "runs one trial at a time"),
        (["--executor", "ray", "--address", "head:6379"], "--address must be 'auto' or"),
        (["--executor", "ray", "--address", "ray://h:70000"], "got 'ray://h:70000'"),
        (["--executor", "ray", "--address", "auto", "--workers", "2"], "--workers sizes"),
    ],
)
@pytest.mark.parametrize("command", ["sweep", "tune"])
def test_bad_executor_options_are_one_line_before_any_folder(
    tmp_path, capsys, command, extra, message
):
    out = tmp_path / "out"
    head = ["sweep", "weight-decay"] if command == "sweep" else ["tune"]
    code, err = _cli([*head, "--task", "digits-mlp", "--out", str(out), *extra], capsys)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


@pytest.mark.parametrize("command", ["sweep", "tune"])
def test_ray_missing_says_what_to_install(tmp_path, capsys, monkeypatch, command):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    out = tmp_path / "out"
    head = ["sweep", "weight-decay"] if command == "sweep" else ["tune"]
    argv = [*head, "--task", "digits-mlp", "--executor", "ray", "--out", str(out)]
    code, err = _cli(argv, capsys)
    assert code == 2
    assert err.strip() == (
        "disciplined: error: the Ray executor needs Ray, which is not installed: "
        "pip install 'disciplined[ray]'"
    )
    assert not out.exists()


def test_importing_disciplined_does_not_import_ray():
    code = (
        "import sys, disciplined, disciplined.cli, disciplined.trials.ray_executor; "
        "assert 'ray' not in sys.modules, 'ray imported'"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.slow
def test_the_sweep_command_on_a_local_ray_decides_as_in_process(tmp_path):
    pytest.importorskip("ray")
    decisions = {}
    for name, extra in (("ray", ["--executor", "ray", "--workers", "2"]), ("local", [])):
        out = tmp_path / name
        argv = ["sweep", "weight-decay", "--task", "digits-mlp", "--values", "0.1,0.001,0"]
        argv += ["--steps", "60", "--batch-size", "32", "--out", str(out), *extra]
        proc = subprocess.run(
            [sys.executable, "-m", "disciplined", *argv],
            capture_output=True,
            text=True,
            timeout=240,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        decisions[name] = json.loads((out / "decision.json").read_text())
    assert decisions["ray"]["value"] == decisions["local"]["value"]
    assert without_seconds(decisions["ray"]["table"]) == without_seconds(
        decisions["local"]["table"]
    )
