"""``disciplined tune``'s progress as the command line shows it (issue 34, item 1): off a
terminal (here: a captured stream), the recipe's messages, the thread choice, one line per
finished trial numbered from 1, and plain overall lines (trials done, epochs of the budget,
elapsed and left) whose last one counts every trial; the summary table on stdout."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from disciplined.cli import main

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
