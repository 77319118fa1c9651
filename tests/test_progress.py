"""The tune's progress (issue 34, item 1): a line per trial and an overall line (trials done,
epochs of the budget, elapsed and time left), printed by default from Python and the CLI,
silenced by ``progress=False``."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from disciplined import tune
from disciplined.cli.common import TuneProgress

OVERALL = re.compile(
    r"\[tune\] progress: (\d+) trials? done, ([\d.e+]+) of (\d+) epochs of budget \((\d+)%\), "
    r"\S+ elapsed(, at most about \S+ left|, finishing)?"
)


def test_a_python_tune_prints_its_progress_by_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    r = tune("digits-mlp", epochs=3, budget=30, range_steps=100, out=tmp_path / "a")
    err = capsys.readouterr().err
    assert "[tune] range tests of" in err and "budget 30 epochs" in err
    trials = re.findall(r"^  trial (\d+): ", err, flags=re.M)
    assert trials and [int(n) for n in trials] == list(range(1, len(trials) + 1))
    overall = [OVERALL.search(line) for line in err.splitlines() if "progress:" in line]
    assert overall and all(overall), err
    first, last = overall[0], overall[-1]
    assert int(first.group(1)) == 1 and first.group(3) == "30" and first.group(5)
    assert int(last.group(1)) == len(trials)  # close() prints the last count
    assert float(last.group(2)) == pytest.approx(
        sum(c["epochs"] for c in r.compute.values()), rel=0.02
    )
    # the same folder again: every trial is read back from the store, the output says so
    tune("digits-mlp", epochs=3, budget=30, range_steps=100, out=tmp_path / "a")
    err = capsys.readouterr().err
    assert "cached)" in err
    tune("digits-mlp", epochs=3, budget=30, range_steps=100, out=tmp_path / "a", progress=False)
    assert capsys.readouterr().err == ""


def test_the_overall_line_on_a_plain_stream_is_periodic() -> None:
    stream = io.StringIO()
    shown = TuneProgress(None, stream=stream, every=3600)
    shown.say("range tests of 100 steps; budget 45 epochs")
    assert shown.budget == 45
    assert "45 epochs of budget" in shown.line() and "left" not in shown.line()
    shown.close()
    assert stream.getvalue() == "[tune] range tests of 100 steps; budget 45 epochs\n"


def test_the_overall_line_on_a_terminal_is_one_bar() -> None:
    stream = io.StringIO()
    shown = TuneProgress(12.0, stream=stream, bar=True)
    shown.say("hello")
    shown.close()
    text = stream.getvalue()
    assert "[tune] hello" in text and "0 trials done, 0 of 12 epochs of budget (0%)" in text
    assert "[tune] progress:" not in text
