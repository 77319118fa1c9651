"""Issue 33's last bad inputs from Python and the report command: a subnormal range-test
start, no batch size fitting the memory limit, and a tune.json nested too deep."""

from __future__ import annotations

import pytest

from disciplined.cli import main
from disciplined.errors import UsageError
from disciplined.schedules.policies import RangeSweep
from disciplined.studies.batch import candidate_batch_sizes, largest_batch_that_fits
from disciplined.trials.hparams import HParams


def test_an_exponential_sweep_whose_ratio_overflows_is_refused_when_built():
    with pytest.raises(ValueError, match="end_lr / start_lr must be finite"):
        RangeSweep(5e-324, 10.0, 100)
    assert RangeSweep(5e-324, 10.0, 100, mode="linear").lr(99) == 10.0  # linear has no ratio
    assert RangeSweep(1e-7, 10.0, 100).lr(0) == 1e-7


def test_no_batch_fitting_the_memory_limit_is_the_users_mistake(digits):
    with pytest.raises(UsageError, match="not even a batch of 1 fits"):
        largest_batch_that_fits(digits, HParams(), memory_limit=1)
    with pytest.raises(UsageError, match="no candidate batch size fits"):
        candidate_batch_sizes(digits, 8, base=[64, 128])


def test_report_on_a_tune_json_nested_too_deep_is_exit_2_with_one_line(tmp_path, capsys):
    out = tmp_path / "tuned"
    out.mkdir()
    text = '{"hparams": ' + "[" * 100_000 + "]" * 100_000 + "}"
    (out / "tune.json").write_text(text)
    before = sorted(p.name for p in out.iterdir())
    assert main(["report", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nested too deep" in err[0]
    assert sorted(p.name for p in out.iterdir()) == before  # nothing written
    assert (out / "tune.json").read_text() == text
