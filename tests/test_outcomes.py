"""One vocabulary for a run's outcome (issue 34, item 2): `RunCollapse` stops a run that
collapsed and never one on its initial plateau; `describe_run`'s words label it on the
command line, in the report and in ``tune.json``."""

import json
import math
from dataclasses import replace

import pytest

from disciplined.cli.common import trial_line
from disciplined.divergence import COLLAPSE_PATIENCE, RunCollapse
from disciplined.measure.diagnose import classify_run, describe_run, diagnose
from disciplined.recipe.final import _bracket_decision
from disciplined.report.html import _history_summary
from disciplined.tasks import load_task
from disciplined.trials.spec import TrialSpec, run_trial


def _fires(losses, total=None, per_epoch=10):
    rule = RunCollapse(total or len(losses), per_epoch)
    for step, loss in enumerate(losses):
        if rule(step, loss):
            return step
    return None


def test_a_run_on_its_initial_plateau_is_never_stopped() -> None:
    # a deep net without normalization: at its start (ln 10) for most of the run, then learns
    plateau = [2.303 + 0.02 * math.sin(i) for i in range(800)]
    learns = [2.303 - 1.5 * (i / 200) for i in range(200)]
    assert _fires(plateau + learns) is None


def test_a_run_that_learned_and_sat_back_at_its_start_is_stopped() -> None:
    learned = [2.3 - 1.2 * i / 100 for i in range(100)]
    dead = [2.31 + 0.01 * math.sin(i) for i in range(900)]
    step = _fires(learned + dead)
    assert step is not None
    # stopped a tenth of the run (and at least an epoch) after it sat back at its start
    assert 100 + COLLAPSE_PATIENCE * 1000 <= step < 100 + COLLAPSE_PATIENCE * 1000 + 20


def test_a_blow_up_that_comes_back_down_is_not_stopped() -> None:
    # a GRU at peak LR: fell, blew up to twice its start, came back down and learned
    fell = [2.3 - 0.8 * i / 100 for i in range(100)]
    up = [1.5 + 3.0 * i / 150 for i in range(150)] + [4.5 - 3.0 * i / 300 for i in range(300)]
    learns = [1.5 - 0.5 * i / 450 for i in range(450)]
    assert _fires(fell + up + learns) is None
    # a noisy binary loss spiking above its start between near-zero batches
    spiky = [0.7] * 10 + [0.01 if i % 3 else 4.0 for i in range(600)]
    assert _fires(spiky) is None


@pytest.fixture(scope="module")
def collapsed():
    """A real collapse: the digits MLP at max LR 0.8, batch 32, learns in its first epoch
    and dies at chance (accuracy 0.1) with a finite loss."""
    spec = TrialSpec(
        task="digits-mlp",
        hparams={"max_lr": 0.8, "batch_size": 32},
        kind="train",
        budget={"epochs": 10},
        seed=0,
        tag="bracket-0.8",
    )
    return run_trial(spec, load_task("digits-mlp"))


def test_a_collapse_is_stopped_early_and_labelled(collapsed) -> None:
    h = collapsed.history
    assert h.collapsed_step is not None and not h.diverged
    assert h.epochs < 6  # of 10: stopped, not trained to the end
    assert h.final.val_metric < 0.2  # at chance
    assert classify_run(h) == "collapsed"
    assert diagnose(h).verdict == "diverged" and diagnose(h).rule == "collapse"
    words = describe_run(h, 10)
    assert words.startswith("collapsed, stopped early at epoch ") and words.endswith(" of 10")
    # the command line's progress line
    line = trial_line(collapsed)
    assert line.startswith(words + ", accuracy 0.1") and "diverged" not in line
    assert collapsed.reason == h.stopped_reason


def test_report_and_tune_json_use_the_same_words(collapsed) -> None:
    h = collapsed.history
    words = describe_run(h, 10)
    assert f"outcome: {words}" in _history_summary(h)
    decision = _bracket_decision(
        {0.8: (h, collapsed.key)}, 0.8, 0.8, 0.0, 10.0, False, all_diverged=True, compute={}
    )
    row = json.loads(json.dumps(decision.to_dict()))["table"][0]
    assert row["outcome"] == words and "diverged" not in row
    assert "0.8: collapsed" in decision.reason


def test_describe_run_words_for_each_class(collapsed) -> None:
    h = collapsed.history
    diverged = describe_run(replace(h, diverged=True, diverged_step=5, collapsed_step=None), 10)
    assert diverged.startswith("diverged, stopped at epoch ")
    flat = [2.3] * 400
    evals = tuple(
        replace(h.evals[0], epoch=float(i), step=40 * i, val_loss=2.3, train_loss=2.3)
        for i in range(1, 11)
    )
    plateau = replace(h, train_losses=tuple(flat), evals=evals, collapsed_step=None)
    assert describe_run(plateau) == "plateau: never left its starting loss"
