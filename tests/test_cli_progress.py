"""``disciplined tune``'s progress as the command line shows it (issue 34, item 1): off a
terminal (here: a captured stream), the recipe's messages, the thread choice, one line per
finished trial numbered from 1, and plain overall lines (trials done, epochs of the budget,
elapsed and left) whose last one counts every trial; the summary table on stdout."""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path

import pytest

from disciplined.cli import common, main

OVERALL = re.compile(
    r"^\[tune\] progress: (\d+) trials? done, ([\d.e+]+) of 30 epochs of budget \((\d+)%\), "
    r"\S+ elapsed(, at most about \S+ left|, finishing)?$"
)


def test_the_tune_command_shows_its_progress_off_a_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["tune", "--task", "digits-mlp", "--epochs", "3", "--budget", "30"]
    assert main([*args, "--range-steps", "100", "--out", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    err = captured.err.splitlines()
    assert "\r" not in captured.err  # no bar redrawn in place off a terminal
    assert err[0].startswith("[tune] torch threads per trial: 1 (default: ")
    assert any(line.startswith("[tune] range tests of 100 steps; budget 30 epochs") for line in err)
    trials = [int(m.group(1)) for m in map(re.compile(r"^  trial (\d+): ").match, err) if m]
    assert trials == list(range(1, len(trials) + 1)) and len(trials) >= 5
    overall = [OVERALL.match(line) for line in err if line.startswith("[tune] progress:")]
    assert overall and all(overall), err
    assert int(overall[-1].group(1)) == len(trials)
    assert int(overall[-1].group(3)) <= 100
    assert captured.out.startswith("hyper-parameter  value\n")
    assert f"report: {tmp_path / 'report.html'}" in captured.out


# ------------------------------------------------- train and find-lr off a terminal

STEP_LINE = re.compile(
    r"^\[train\] epoch ([\d.]+) of 2, step (\d+) of (\d+), loss \S+, \S+ elapsed$"
)
SWEEP_LINE = re.compile(
    r"^\[find-lr\] run (\d) of 2, step (\d+) of 40, LR (\S+), loss \S+, \S+ elapsed$"
)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_train_prints_plain_progress_lines_off_a_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(common, "PROGRESS_EVERY", 0.0)  # a line every step, not every 20 s
    args = ["train", "--task", "digits-mlp", "--epochs", "2", "--out", str(tmp_path)]
    assert main(args) == 0
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.startswith("[train]")]
    found = [STEP_LINE.match(line) for line in lines]
    assert len(found) >= 5 and all(found), captured.err
    steps = [int(m.group(2)) for m in found if m]
    total = int(found[0].group(3)) if found[0] else 0
    assert steps == list(range(1, total))  # every step but the last (the summary follows)
    epochs = [float(m.group(1)) for m in found if m]
    assert epochs == sorted(epochs) and epochs[0] > 0 and epochs[-1] <= 2
    assert "\r" not in captured.err  # no bar drawn in place
    assert "[train]" not in captured.out and captured.out.startswith("digits-mlp: 2 epochs")


def test_train_prints_no_lines_on_a_terminal_and_none_within_the_interval(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    terminal = _Terminal()
    monkeypatch.setattr(common, "PROGRESS_EVERY", 0.0)
    monkeypatch.setattr(sys, "stderr", terminal)  # the bar shows there: no plain lines
    args = ["train", "--task", "digits-mlp", "--epochs", "1", "--out", str(tmp_path / "a")]
    assert main(args) == 0
    assert "[train]" not in terminal.getvalue()
    monkeypatch.undo()  # off a terminal again, at the default interval: a short run is quiet
    args = ["train", "--task", "digits-mlp", "--epochs", "1", "--out", str(tmp_path / "b")]
    assert main(args) == 0
    assert "[train]" not in capsys.readouterr().err


def test_find_lr_prints_plain_progress_lines_off_a_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(common, "PROGRESS_EVERY", 0.0)
    args = ["find-lr", "--task", "digits-mlp", "--steps", "40", "--repeats", "2"]
    assert main([*args, "--end-lr", "1", "--out", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.startswith("[find-lr]")]
    found = [SWEEP_LINE.match(line) for line in lines]
    assert found and all(found), captured.err
    for run in (1, 2):  # one sweep per seed, each counted from step 1 with a rising LR
        mine = [m for m in found if m and m.group(1) == str(run)]
        steps = [int(m.group(2)) for m in mine]
        assert len(steps) >= 5 and steps == list(range(1, len(steps) + 1)), captured.err
        lrs = [float(m.group(3)) for m in mine]
        assert lrs[0] == pytest.approx(1e-5) and lrs == sorted(lrs) and lrs[-1] <= 1
    assert [m.group(1) for m in found if m] == sorted(m.group(1) for m in found if m)
    assert "[find-lr]" not in captured.out and "max LR" in captured.out
