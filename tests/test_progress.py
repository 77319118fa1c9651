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


def _train_a_little(steps: int = 6) -> None:
    import torch
    from torch import nn

    from disciplined.training.fit import fit

    torch.manual_seed(0)
    x, y = torch.randn(6 * steps, 4), torch.randint(0, 2, (6 * steps,))
    model = nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    fit(model, opt, (x, y), loss_fn=nn.functional.cross_entropy, epochs=1, batch_size=6)


def test_fit_tells_its_step_listeners_each_step_until_removed() -> None:
    from disciplined.training.fit import add_step_listener, remove_step_listener

    seen: list[tuple[int, int, float]] = []

    def listen(step: int, total: int, loss: float) -> None:
        seen.append((step, total, loss))

    add_step_listener(listen)
    try:
        _train_a_little(6)
    finally:
        remove_step_listener(listen)
    assert [s for s, _, _ in seen] == [1, 2, 3, 4, 5, 6] and {t for _, t, _ in seen} == {6}
    assert all(loss > 0 for _, _, loss in seen)
    _train_a_little(6)
    assert len(seen) == 6  # removed: told nothing more
    remove_step_listener(listen)  # removing twice is nothing


def test_a_running_trial_shows_its_steps_on_a_plain_stream_and_in_the_bar() -> None:
    stream = io.StringIO()
    shown = TuneProgress(10.0, stream=stream, every=0.0)
    _train_a_little(4)  # a trial's fit in this process
    assert shown.running is not None and shown.running[:2] == (4, 4)
    lines = [ln for ln in stream.getvalue().splitlines() if "running trial" in ln]
    assert lines[0].startswith("[tune] running trial: step 1 of 4, loss ")  # then every 0 s
    assert len(lines) == 3  # steps 1-3; the last step's line is the trial's own line
    shown.close()
    _train_a_little(4)
    assert len([ln for ln in stream.getvalue().splitlines() if "running trial" in ln]) == 3

    stream = io.StringIO()
    shown = TuneProgress(10.0, stream=stream, bar=True)
    _train_a_little(4)
    shown.close()
    assert "| trial: step 4 of 4, loss " in stream.getvalue()
