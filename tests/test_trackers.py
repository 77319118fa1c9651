"""Trials logged to TensorBoard and MLflow (issue 34, item 7): ``--log-to tensorboard:DIR`` /
``--log-to mlflow:URI`` (repeatable) and ``log_to=`` from Python write each trial's curves
and hyper-parameters through TensorBoard's ``SummaryWriter`` and MLflow's client, from the
process that stores the trials; the tests read the event files (TensorBoard's
``EventAccumulator``) and the MLflow runs (an SQLite tracking URI under ``tmp_path``) back.
A missing package, or a target that is not one, is one line and exit 2."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from disciplined import tune
from disciplined.cli import main
from disciplined.errors import UsageError
from disciplined.integrations.trackers import LogTarget, TrialLogger, parse_log_to, run_name
from disciplined.trials.store import open_store

tensorboard = pytest.importorskip("tensorboard")
mlflow = pytest.importorskip("mlflow")


def events(folder: Path):
    """The scalars and hparams of one TensorBoard run folder."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    acc.Reload()
    scalars = {tag: acc.Scalars(tag) for tag in acc.Tags()["scalars"]}
    content = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    info = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    hparams = {k: getattr(v, v.WhichOneof("kind")) for k, v in info.hparams.items()}
    return scalars, hparams


def mlflow_runs(uri: str) -> dict[str, object]:
    """Every run of the ``disciplined`` experiment at ``uri``, by its name."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("disciplined")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    return {r.info.run_name: (r, client) for r in runs}


def test_log_targets_are_parsed_or_refused() -> None:
    assert parse_log_to(None) == ()
    assert parse_log_to("tensorboard:runs/tb") == (LogTarget("tensorboard", "runs/tb"),)
    assert parse_log_to(["mlflow:sqlite:///x.db"]) == (LogTarget("mlflow", "sqlite:///x.db"),)
    for bad in ("tensorboard", "wandb:x", "mlflow:", "runs/tb"):
        with pytest.raises(UsageError, match="--log-to must be tensorboard:DIR or mlflow:URI"):
            parse_log_to(bad)


@pytest.mark.parametrize("command", ["tune", "sweep", "find-lr", "train"])
def test_a_bad_target_is_one_line_and_exit_2(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    study = ["momentum"] if command == "sweep" else []
    args = [command, *study, "--task", "digits-mlp", "--out", str(tmp_path / "o")]
    assert main([*args, "--log-to", "wandb:x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--log-to: must be tensorboard:DIR or mlflow:URI" in err[0], err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("target", "hidden", "said"),
    [
        ("tensorboard:tb", "torch.utils.tensorboard", "needs the tensorboard package"),
        ("mlflow:sqlite:///m.db", "mlflow", "needs the mlflow package"),
    ],
)
def test_a_missing_package_is_one_line_and_exit_2(
    target: str, hidden: str, said: str, tmp_path: Path, monkeypatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in [m for m in sys.modules if m == hidden or m.startswith(hidden + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, hidden, None)  # import raises ImportError
    out = tmp_path / "o"
    train = ["train", "--task", "digits-mlp", "--epochs", "0.1", "--out", str(out)]
    assert main([*train, "--log-to", target]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and said in err[0] and "pip install" in err[0], err
    assert not out.exists()
    with pytest.raises(UsageError, match=said):
        TrialLogger(target)


def test_train_and_a_sweep_write_tensorboard_and_mlflow(tmp_path: Path) -> None:
    tb, uri = tmp_path / "tb", f"sqlite:///{tmp_path / 'mlflow.db'}"
    logs = ["--log-to", f"tensorboard:{tb}", "--log-to", f"mlflow:{uri}"]
    assert main(
        ["train", "--task", "digits-mlp", "--epochs", "2", "--max-lr", "0.05",
         "--out", str(tmp_path / "t"), *logs]
    ) == 0
    from disciplined.training.history import History

    h = History.load(tmp_path / "t" / "history.json")
    (run,) = [p for p in tb.iterdir() if p.name.startswith("train")]
    scalars, hparams = events(run)
    assert [e.value for e in scalars["train/loss"]] == pytest.approx(list(h.train_losses))
    assert [e.step for e in scalars["train/lr"]] == list(range(h.steps))
    assert [e.value for e in scalars["epoch/val_loss"]] == pytest.approx(
        [e.val_loss for e in h.evals]
    )
    assert [e.step for e in scalars["epoch/val_accuracy"]] == [e.step for e in h.evals]
    assert hparams["max_lr"] == pytest.approx(0.05) and hparams["task"] == "digits-mlp"
    r, client = mlflow_runs(uri)[run.name]
    assert r.data.params["max_lr"] == "0.05"
    history = client.get_metric_history(r.info.run_id, "epoch/val_loss")
    assert [m.value for m in history] == pytest.approx([e.val_loss for e in h.evals])

    sweep = ["sweep", "momentum", "--task", "digits-mlp", "--values", "0.9,0.95", "--steps", "150"]
    assert main([*sweep, "--out", str(tmp_path / "s"), *logs]) == 0
    with open_store(None, tmp_path / "s") as store:
        trials = list(store.results())
    assert len(trials) == 2
    runs = mlflow_runs(uri)
    for t in trials:
        name = run_name(t)
        scalars, hparams = events(tb / name)
        assert [e.value for e in scalars["range_test/lr"]] == pytest.approx(list(t.range_test.lrs))
        assert hparams["max_momentum"] == pytest.approx(t.spec.hparams["max_momentum"])
        r, client = runs[name]
        assert r.data.tags["disciplined.key"] == t.key and r.info.status == "FINISHED"
        assert len(client.get_metric_history(r.info.run_id, "range_test/loss")) == len(
            t.range_test.losses
        )


def test_a_tune_logs_every_trial_once(tmp_path: Path) -> None:
    tb, uri = tmp_path / "tb", f"sqlite:///{tmp_path / 'mlflow.db'}"
    log_to = [f"tensorboard:{tb}", f"mlflow:{uri}"]
    r = tune(
        "digits-mlp", epochs=3, budget=30, range_steps=100, out=tmp_path / "t",
        progress=False, log_to=log_to,
    )
    runs = mlflow_runs(uri)
    assert len(runs) == len(r.trials) == len(list(tb.iterdir()))
    final = next(t for t in r.trials.values() if t.history is r.history or t.history == r.history)
    name = run_name(final)
    scalars, _ = events(tb / name)
    assert len(scalars["train/loss"]) == len(r.history.train_losses)
    # resumed: every trial read back from the store, none logged again
    tune(
        "digits-mlp", epochs=3, budget=30, range_steps=100, out=tmp_path / "t",
        progress=False, log_to=log_to,
    )
    assert len(mlflow_runs(uri)) == len(r.trials) == len(list(tb.iterdir()))
    assert all(len(list((tb / p.name).iterdir())) == 1 for p in tb.iterdir())


def test_find_lr_writes_its_range_test(tmp_path: Path) -> None:
    from disciplined.measure.range_test import RangeTest

    tb = tmp_path / "tb"
    find = ["find-lr", "--task", "digits-mlp", "--steps", "60", "--out", str(tmp_path / "f")]
    assert main([*find, "--log-to", f"tensorboard:{tb}"]) == 0
    test = RangeTest.load(tmp_path / "f" / "range_test.json")
    (run,) = tb.iterdir()
    scalars, hparams = events(run)
    assert [e.value for e in scalars["range_test/lr"]] == pytest.approx(list(test.lrs))
    assert [e.value for e in scalars["range_test/loss"]] == pytest.approx(list(test.losses))
    assert hparams["task"] == "digits-mlp" and hparams["batch_size"] == 32
