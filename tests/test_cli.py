import json
import subprocess
import sys

import pytest

from disciplined.cli import main


def test_train_writes_history_and_curves(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(
        ["train", "--task", "digits-mlp", "--epochs", "2", "--max-lr", "0.1", "--out", str(out)]
    )
    assert code == 0
    data = json.loads((out / "history.json").read_text())
    assert data["meta"]["task"] == "digits-mlp" and data["meta"]["hparams"]["max_lr"] == 0.1
    assert len(data["train_losses"]) == 2 * 45
    png = (out / "curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    line = capsys.readouterr().out.strip()
    assert "validation accuracy" in line and len(line.splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task", "no-such-task"], "unknown task 'no-such-task'"),
        (["--task", "digits-mlp", "--max-lr", "abc"], "must be a number, got 'abc'"),
        (["--task", "digits-mlp", "--max-lr", "-1"], "must be in (0, 10000], got '-1'"),
        (["--task", "digits-mlp", "--momentum", "0.85,0.95"], "MIN must be <= MAX"),
        (["--task", "digits-mlp", "--epochs", "nan"], "must be finite"),
        (["--task", "digits-mlp", "--batch-size", "0"], "must be >= 1"),
        (["--task", "digits-mlp", "--task-option", "bogus"], "KEY=VALUE"),
        (["--task", "digits-mlp", "--device", "tpu"], "device"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, message):
    code = main(["train", *args, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("disciplined: error:") and message in err
    assert len(err.strip().splitlines()) == 1


def test_unwritable_out_is_refused_before_training(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = main(["train", "--task", "digits-mlp", "--out", str(blocker / "sub")])
    err = capsys.readouterr().err
    assert code == 2 and "cannot create output folder" in err
    assert len(err.strip().splitlines()) == 1


def test_divergence_is_an_error_but_keeps_the_evidence(tmp_path, capsys):
    out = tmp_path / "d"
    code = main(
        [
            "train",
            "--task",
            "digits-mlp",
            "--epochs",
            "2",
            "--max-lr",
            "10",
            "--schedule",
            "constant",
            "--out",
            str(out),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "training diverged" in err
    assert (out / "history.json").exists() and (out / "curves.png").exists()


def test_python_dash_m_runs_the_command_line():
    proc = subprocess.run(
        [sys.executable, "-m", "disciplined", "train", "--task", "nope"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "disciplined: error: unknown task 'nope': use a built-in (mnist1d-cnn, mnist1d-mlp, "
        "digits-mlp, synthetic-regression) or path/to/file.py:function or "
        "package.module:function"
    )


TUNED = {
    "task": "digits-mlp",
    "max_lr": 0.07,
    "min_lr": 0.0175,
    "max_momentum": 0.97,
    "min_momentum": 0.8,
    "weight_decay": 0.001,
    "batch_size": 64,
    "dropout": 0.0,
    "epochs": 1.0,
    "optimizer": "sgd",
    "schedule": "one-cycle",
}


def _history(folder):
    return json.loads((folder / "history.json").read_text())


def test_train_takes_a_tunes_hparams_and_options_override_them(tmp_path):
    # `train --hparams` is the run the same values given one by one would be; an option
    # given beside the file wins over the file's value
    path = tmp_path / "hparams.json"
    path.write_text(json.dumps(TUNED))
    base = ["train", "--task", "digits-mlp", "--seed", "2"]
    assert main([*base, "--hparams", str(path), "--out", str(tmp_path / "file")]) == 0
    flags = ["--max-lr", "0.07", "--div", "4", "--momentum", "0.97,0.8"]
    flags += ["--weight-decay", "0.001", "--batch-size", "64", "--epochs", "1"]
    assert main([*base, *flags, "--out", str(tmp_path / "flags")]) == 0
    from_file, by_hand = _history(tmp_path / "file"), _history(tmp_path / "flags")
    assert from_file["train_losses"] == by_hand["train_losses"]
    assert from_file["lrs"] == by_hand["lrs"] and from_file["momenta"] == by_hand["momenta"]
    assert from_file["steps_per_epoch"] == 23 and 0.06 < max(from_file["lrs"]) <= 0.07
    over = ["--hparams", str(path), "--max-lr", "0.02", "--out", str(tmp_path / "over")]
    assert main([*base, *over]) == 0
    assert 0.015 < max(_history(tmp_path / "over")["lrs"]) <= 0.02


@pytest.mark.parametrize(
    "content,message",
    [
        (None, "cannot read it"),
        ("{not json", "not JSON"),
        (json.dumps({"max_lr": 0.1}), "not a tune's hparams.json"),
        (json.dumps({**TUNED, "task": "mnist1d-cnn"}), "was tuned on task 'mnist1d-cnn'"),
    ],
)
def test_train_refuses_a_bad_hparams_file(tmp_path, capsys, content, message):
    path = tmp_path / "hparams.json"
    if content is not None:
        path.write_text(content)
    out = tmp_path / "out"
    code = main(["train", "--task", "digits-mlp", "--hparams", str(path), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_tune_under_torchrun_is_refused_with_what_to_run_instead(tmp_path, capsys, monkeypatch):
    # every process would run the whole recipe into one folder: refused before anything
    monkeypatch.setenv("WORLD_SIZE", "2")
    out = tmp_path / "out"
    code = main(["tune", "--task", "digits-mlp", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "tune does not run under torchrun" in err and "--hparams" in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()
