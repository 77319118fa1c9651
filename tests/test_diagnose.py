"""`diagnose`: verdicts on constructed curves of known shape, on real runs forced into each
verdict, the JSON round trip, and the ``disciplined diagnose`` command."""

import json
import math
import random

import pytest

from disciplined import History, HParams, load_task, train_task
from disciplined.cli import main
from disciplined.measure.diagnose import VERDICTS, Diagnosis, diagnose
from disciplined.training.fit import EvalRecord

START = 2.3  # the untrained model's loss in the constructed histories (about ln 10)


def _noise(i: int, amp: float) -> float:
    """Deterministic multiplicative noise in [1 - amp, 1 + amp]."""
    return 1.0 + amp * math.sin(2.39 * i + 0.7)


def _history(val, train, *, noise=0.0, diverged=False, steps_per_epoch=10, metric=math.nan):
    """A `History` with one evaluation per epoch (epochs 1..n) of the given curves.

    The per-step training losses start at ``START`` for the first epoch and then repeat each
    evaluation's training loss, so ``train_start`` is ``START``.
    """
    evals = []
    steps: list[float] = []
    for i, (v, t) in enumerate(zip(val, train, strict=True)):
        v = v * _noise(i, noise)
        t = t * _noise(i + 5, noise)
        evals.append(
            EvalRecord(
                epoch=float(i + 1),
                step=(i + 1) * steps_per_epoch,
                val_loss=v,
                val_metric=metric,
                train_loss=t,
                seconds=float(i),
            )
        )
        steps += [START if i == 0 else t] * steps_per_epoch
    return History(
        lrs=(0.1,) * len(steps),
        momenta=(0.9,) * len(steps),
        train_losses=tuple(steps),
        evals=tuple(evals),
        steps_per_epoch=steps_per_epoch,
        diverged=diverged,
        diverged_step=len(steps) - 1 if diverged else None,
        diverged_reason="training loss is nan at step 19" if diverged else None,
    )


EPOCHS = range(1, 21)


def underfit_curves():
    """Exp-decaying validation loss, still steep at epoch 20; training loss 1% above it."""
    val = [1.0 + 1.3 * math.exp(-0.05 * t) for t in EPOCHS]
    return val, [v * 1.01 for v in val]


def overfit_curves():
    """U-shaped validation loss (minimum at epoch 8), training loss falling throughout."""
    val = [0.5 + 0.01 * (t - 8) ** 2 for t in EPOCHS]
    return val, [START * math.exp(-0.25 * t) for t in EPOCHS]


def balanced_curves():
    """Validation loss decaying to a plateau at 0.4; training loss to 0.2 (a steady gap)."""
    val = [0.4 + 1.9 * math.exp(-0.5 * t) for t in EPOCHS]
    return val, [0.2 + 2.1 * math.exp(-0.5 * t) for t in EPOCHS]


# --------------------------------------------------------------------------- constructed


def test_still_falling_with_no_gap_is_underfitting():
    d = diagnose(_history(*underfit_curves(), noise=0.005))
    assert (d.verdict, d.rule) == ("underfitting", "val_falling")
    assert d.evidence["val_min_epoch"] == 20.0
    assert d.evidence["val_change_end"] < -0.05
    assert d.evidence["val_slope_end"] < 0
    assert abs(d.evidence["gap_final"]) < 0.03
    assert any("less regularization" in a for a in d.advice)
    assert "longer cycle" in d.advice[0]


def test_u_shaped_validation_loss_is_overfitting():
    d = diagnose(_history(*overfit_curves(), noise=0.01))
    assert (d.verdict, d.rule) == ("overfitting", "val_rise")
    assert d.evidence["val_min_epoch"] == 8.0
    assert d.evidence["rise_from_min"] > 0.5
    assert d.evidence["gap_trend"] > 0.05
    assert d.evidence["train_end"] < d.evidence["train_at_val_min"]
    assert "larger weight decay" in d.advice[0] and "larger max LR" in d.advice[0]
    assert d.summary.startswith("validation loss rose ")
    assert "epoch 8 while training loss fell" in d.summary


def test_plateau_at_its_minimum_is_balanced():
    d = diagnose(_history(*balanced_curves(), noise=0.01))
    assert (d.verdict, d.rule) == ("balanced", "flat_at_min")
    assert abs(d.evidence["val_change_end"]) < 0.03
    assert d.evidence["rise_from_min"] < 0.03
    assert d.evidence["gap_final"] == pytest.approx(0.5, abs=0.05)
    assert d.advice[0].startswith("keep these settings")


def test_a_single_spike_and_3_percent_noise_do_not_make_a_verdict():
    val, train = balanced_curves()
    val[9] *= 1.6  # one bad evaluation mid-run (as at a 1cycle's peak LR)
    assert diagnose(_history(val, train, noise=0.03)).verdict == "balanced"


def test_turning_up_with_a_growing_gap_is_overfitting_before_a_10_percent_rise():
    val = [0.5 + 1.5 * math.exp(-0.6 * t) + (0.008 * (t - 15) if t > 15 else 0) for t in EPOCHS]
    train = [0.4 * math.exp(-0.1 * t) for t in EPOCHS]
    d = diagnose(_history(val, train))
    assert (d.verdict, d.rule) == ("overfitting", "gap_growing")
    assert d.evidence["rise_from_min"] < 0.10
    assert d.evidence["val_change_end"] >= 0.03 and d.evidence["gap_trend"] >= 0.05


def test_flat_with_training_loss_no_lower_is_underfitting():
    val = [1.7 + 0.6 * math.exp(-0.5 * t) for t in EPOCHS]
    d = diagnose(_history(val, [v * 0.995 for v in val]))
    assert (d.verdict, d.rule) == ("underfitting", "plateau_no_gap")
    assert "larger model" in d.advice[0]


def test_still_falling_far_below_training_loss_is_balanced_still_improving():
    val, _ = underfit_curves()
    d = diagnose(_history(val, [0.3 * v for v in val]))
    assert (d.verdict, d.rule) == ("balanced", "still_improving")
    assert "longer cycle" in d.advice[0]


def test_diverged_flag_and_nonfinite_final_loss():
    val, train = balanced_curves()
    d = diagnose(_history(val[:2], train[:2], diverged=True))
    assert (d.verdict, d.rule) == ("diverged", "diverged_flag")
    assert "nan" in d.summary and "lower max LR" in d.advice[0]
    d = diagnose(_history([*val[:-1], math.nan], train))
    assert (d.verdict, d.rule) == ("diverged", "nonfinite")
    assert d.evidence["val_final"] is None  # NaN is not JSON: it becomes None


def test_collapse_to_chance_with_a_finite_loss_is_diverged():
    # learns to 0.8, then collapses back to chance (ln 10 = 2.303 < START) and stays there
    curve = [0.8 + 1.5 * math.exp(-0.5 * t) if t < 10 else 2.303 for t in EPOCHS]
    d = diagnose(_history(curve, curve, noise=0.01))
    assert (d.verdict, d.rule) == ("diverged", "collapse")
    assert d.evidence["train_progress"] < 0.05 <= d.evidence["train_progress_max"]
    assert "collapsed back" in d.summary and "lower max LR" in d.advice[0]


def test_never_leaving_the_starting_level_is_diverged_with_a_range_test_advice():
    flat = [2.31] * 20
    d = diagnose(_history(flat, flat, noise=0.01))
    assert (d.verdict, d.rule) == ("diverged", "no_progress")
    assert "never left" in d.summary and "range test" in d.advice[0]


def test_a_run_only_now_leaving_its_initial_plateau_is_not_a_collapse():
    # at chance for 15 epochs, then falling: 4.3% below the start, but 4% over the tail
    curve = [START if t <= 15 else START - 0.02 * (t - 15) for t in EPOCHS]
    d = diagnose(_history(curve, curve))
    assert d.evidence["train_progress"] < 0.05
    assert (d.verdict, d.rule) == ("underfitting", "val_falling")


def test_three_evaluations_are_too_short_unless_far_above_the_start():
    val, train = underfit_curves()
    d = diagnose(_history(val[:3], train[:3]))
    assert (d.verdict, d.rule) == ("too-short", "too_few_evals")
    assert d.evidence["evals"] == 3 and "5 evaluations" in d.advice[0]
    blown = [9.0, 11.0, 10.0]
    d = diagnose(_history(blown, blown))
    assert (d.verdict, d.rule) == ("diverged", "above_start")


def test_a_finite_blow_up_is_diverged():
    blown = [10.0 + math.sin(t) for t in EPOCHS]
    d = diagnose(_history(blown, blown))
    assert (d.verdict, d.rule) == ("diverged", "above_start")
    assert d.evidence["train_progress"] < -3 and "lower max LR" in d.advice[0]


def test_training_loss_rising_with_validation_loss_adds_lower_lr_advice():
    # an instability at the peak LR: both losses jump at epoch 10 and recover only partly
    val = [
        0.6 + 1.6 * math.exp(-0.4 * t) + (0.5 * math.exp(-0.1 * (t - 10)) if t >= 10 else 0)
        for t in EPOCHS
    ]
    train = [v * 0.9 for v in val]
    d = diagnose(_history(val, train))
    assert d.verdict != "overfitting"  # the training loss rose too
    assert any("lower max LR" in a for a in d.advice)


def test_validation_loss_alone_is_enough():
    val, _ = overfit_curves()
    d = diagnose(_history(val, [math.nan] * len(val)))
    assert d.verdict == "overfitting" and d.evidence["gap_final"] is None


def test_bad_thresholds_are_refused():
    h = _history(*balanced_curves())
    with pytest.raises(ValueError, match="tail must be in"):
        diagnose(h, tail=0)
    with pytest.raises(ValueError, match="rise_tol must be a finite number >= 0, got -1"):
        diagnose(h, rise_tol=-1)
    with pytest.raises(ValueError, match="min_evals must be >= 3"):
        diagnose(h, min_evals=2)
    with pytest.raises(ValueError, match="verdict must be one of"):
        Diagnosis("fine", {}, (), "", "")


@pytest.mark.parametrize("curves", [underfit_curves, overfit_curves, balanced_curves])
def test_json_round_trip(curves):
    d = diagnose(_history(*curves(), noise=0.01))
    text = json.dumps(d.to_dict(), allow_nan=False)
    assert Diagnosis.from_dict(json.loads(text)) == d
    assert d.verdict in VERDICTS and d.thresholds["rise_tol"] == 0.10


# --------------------------------------------------------------------------- real runs


def test_real_too_small_lr_underfits(digits):
    hp = HParams(max_lr=0.001, schedule="constant", max_momentum=0.9, batch_size=32)
    _, h = train_task(digits, hp, epochs=6, seed=0)
    d = diagnose(h)
    assert (d.verdict, d.rule) == ("underfitting", "val_falling"), d.line()
    assert d.evidence["val_change_end"] < -0.05  # -8% on seeds 0-2
    assert d.evidence["val_min_epoch"] == 6.0


def test_real_two_unit_mlp_plateaus_without_a_gap():
    task = load_task("mnist1d-mlp", {"hidden": 2})
    _, h = train_task(task, HParams(max_lr=0.1, batch_size=128), epochs=10, seed=0)
    d = diagnose(h)
    assert (d.verdict, d.rule) == ("underfitting", "plateau_no_gap"), d.line()
    assert abs(d.evidence["gap_final"]) < 0.02


def test_real_wide_mlp_on_400_samples_overfits():
    task = load_task("mnist1d-mlp", {"samples": 400, "hidden": 512})
    hp = HParams(max_lr=0.05, schedule="constant", max_momentum=0.9, batch_size=32)
    _, h = train_task(task, hp, epochs=15, seed=0)
    d = diagnose(h)
    assert (d.verdict, d.rule) == ("overfitting", "val_rise"), d.line()
    assert d.evidence["rise_from_min"] > 0.25  # 0.36-0.39 on seeds 0-2
    assert d.evidence["val_min_epoch"] <= 8
    assert d.evidence["gap_final"] > 0.9


def test_real_sound_one_cycle_run_is_balanced(digits):
    # With weight decay 1e-3 all of seeds 0-2 end at their minimum; without it seed 0's
    # validation loss ends 11% above its minimum (mild overfitting) and seeds 1-2 are balanced.
    hp = HParams(max_lr=0.1, batch_size=32, weight_decay=1e-3)
    _, h = train_task(digits, hp, epochs=20, seed=0)
    d = diagnose(h)
    assert d.verdict == "balanced", d.line()
    assert d.evidence["rise_from_min"] < 0.05 and d.evidence["val_min_epoch"] >= 15


def test_real_constant_lr_10_is_diverged(digits):
    hp = HParams(max_lr=10.0, schedule="constant", batch_size=32)
    _, h = train_task(digits, hp, epochs=2, seed=0)
    d = diagnose(h)
    assert (d.verdict, d.rule) == ("diverged", "diverged_flag")


def test_real_blow_up_is_diverged_even_from_a_loop_that_does_not_flag_it(digits):
    import torch

    from disciplined import fit
    from disciplined.trials.hparams import build_optimizer

    torch.manual_seed(0)
    model = digits.model()
    opt = build_optimizer(model, HParams(max_lr=10.0, batch_size=32))
    # diverge_factor=None: fit only stops on NaN, like a loop that does not check levels
    h = fit(
        model,
        opt,
        digits.train_data,
        val_data=digits.val_data,
        loss_fn=digits.loss_fn,
        metric=digits.metric,
        epochs=10,
        batch_size=32,
        seed=0,
        diverge_factor=None,
    )
    assert not h.diverged
    d = diagnose(h)
    assert (d.verdict, d.rule) == ("diverged", "above_start"), d.line()
    assert d.evidence["train_end"] > 3 * d.evidence["train_start"]


def test_real_collapse_at_chance_is_diverged_though_the_loss_stays_finite(mnist1d_cnn):
    _, h = train_task(mnist1d_cnn, HParams(max_lr=3.0, batch_size=128), epochs=20, seed=1)
    assert not h.diverged and all(math.isfinite(e.val_loss) for e in h.evals)
    d = diagnose(h)
    assert (d.verdict, d.rule) == ("diverged", "no_progress"), d.line()
    assert d.evidence["train_end"] == pytest.approx(math.log(10), rel=0.02)


# --------------------------------------------------------------------------- command line


def test_cli_prints_one_line_and_writes_diagnosis_beside_the_history(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    _history(*overfit_curves(), noise=0.01).save(run / "history.json")
    assert main(["diagnose", str(run / "history.json")]) == 0
    line = capsys.readouterr().out.strip()
    assert len(line.splitlines()) == 1
    assert line.startswith("overfitting: validation loss rose ") and "; advice: " in line
    saved = Diagnosis.from_dict(json.loads((run / "diagnosis.json").read_text()))
    assert saved == diagnose(History.load(run / "history.json"))


def test_cli_takes_a_folder_and_out(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    _history(*balanced_curves()).save(run / "history.json")
    assert main(["diagnose", str(run), "--out", str(tmp_path / "o")]) == 0
    assert capsys.readouterr().out.startswith("balanced: ")
    assert json.loads((tmp_path / "o" / "diagnosis.json").read_text())["verdict"] == "balanced"
    assert not (run / "diagnosis.json").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no history file at"),
        ("not json {", "is not JSON"),
        ("[1, 2]", "is not a history: expected a JSON object"),
        ('{"max_lr": 0.1}', "is not a history: no 'evals' field"),
        ('{"evals": [], "train_losses": [], "steps_per_epoch": 1}', "no 'lrs' field"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys, content, message):
    path = tmp_path / "history.json"
    if content is not None:
        path.write_text(content)
    assert main(["diagnose", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("disciplined: error:") and message in err
    assert len(err.strip().splitlines()) == 1


def test_still_falling_steeply_far_below_training_loss_is_underfitting():
    # A run that ends with its validation loss still dropping fast (here 45% over the tail)
    # has not flattened, whatever the gap: underfitting, advised a longer cycle or larger LR.
    val = [0.2 + 2.0 * math.exp(-0.15 * t) for t in EPOCHS]
    d = diagnose(_history(val, [0.3 * v for v in val]))
    assert (d.verdict, d.rule) == ("underfitting", "val_falling_steeply")
    assert d.evidence["val_change_end"] <= -0.10
    assert "larger max LR" in d.advice[0]
    # the summary quotes the losses, not a fitted change that can exceed 100%
    assert "%" not in d.summary.split(",")[0] and " from " in d.summary


# ------------------------------------------------------------------ run classification


def _run(losses, metric=0.5, evals=8, diverged=False, averaged=False):
    """A run of per-step ``losses`` with ``evals`` evaluations; each evaluation carries the
    loss at its step, or with ``averaged`` the mean training loss since the last one, as
    `fit` records it."""
    from disciplined.training.fit import EvalRecord, History

    n = len(losses)
    per = max(1, n // evals)

    def at(i):
        if averaged:
            return sum(losses[(i - 1) * per : i * per]) / per
        return losses[min(n - 1, i * per)]

    recs = tuple(
        EvalRecord(
            epoch=float(i),
            step=i * per,
            val_loss=at(i),
            val_metric=metric,
            train_loss=at(i),
            seconds=0.0,
        )
        for i in range(1, evals + 1)
    )
    return History(
        lrs=(0.1,) * n,
        momenta=(0.9,) * n,
        train_losses=tuple(losses),
        evals=recs,
        steps_per_epoch=per,
        diverged=diverged,
    )


@pytest.mark.parametrize("evals", [8, 2])
def test_a_run_is_classified_ok_plateau_collapsed_or_diverged(evals):
    from disciplined.measure.diagnose import blew_up, classify_run

    n = 400
    learned = [2.3 * (1 - 0.6 * i / n) for i in range(n)]
    flat = [2.3 + 0.001 * math.sin(i) for i in range(n)]
    back = [2.3 * (1 - 0.5 * i / 100) if i < 100 else 2.3 for i in range(n)]
    up = [2.3 * (1 + 2.0 * i / n) for i in range(n)]
    assert classify_run(_run(learned, evals=evals)) == "ok"
    assert classify_run(_run(flat, evals=evals)) == "plateau"
    assert classify_run(_run(back, evals=evals)) == "collapsed"
    assert classify_run(_run(up, evals=evals)) == "diverged"
    assert classify_run(_run(learned, evals=evals, diverged=True)) == "diverged"
    assert not blew_up(_run(flat, evals=evals)) and blew_up(_run(back, evals=evals))


@pytest.mark.parametrize("evals", [8, 2])
def test_a_noisy_run_that_never_moved_is_a_plateau_not_a_blow_up_or_a_collapse(evals):
    from disciplined.measure.diagnose import blew_up, classify_run

    # an MSE regression at a small batch: per-step losses spread a third of their level
    # around 1.0, the first batch a lucky 0.9; the weights never move (the adding problem's
    # LSTM at a tiny LR), so the running means only wander
    rng = random.Random(7)
    flat = [0.9] + [max(0.05, rng.gauss(1.0, 0.35)) for _ in range(399)]
    assert classify_run(_run(flat, evals=evals, averaged=True)) == "plateau"
    assert not blew_up(_run(flat, evals=evals, averaged=True))
    # the same noise on a run that blew up to twice its level, or learned and fell back,
    # still reads as that
    up = [x * (1 + 1.5 * i / 400) for i, x in enumerate(flat)]
    assert classify_run(_run(up, evals=evals, averaged=True)) == "diverged"
    back = [x * (0.3 if 40 <= i < 200 else 1.0) for i, x in enumerate(flat)]
    assert classify_run(_run(back, evals=evals, averaged=True)) == "collapsed"
    learned = [x * (1 - 0.7 * i / 400) for i, x in enumerate(flat)]
    assert classify_run(_run(learned, evals=evals, averaged=True)) == "ok"


def test_the_start_windows_noise_raises_the_bar_for_ending_above_the_start():
    from disciplined.divergence import (
        FALL_SIGMAS,
        START_NOISE_SIGMAS,
        collapse_arm,
        ended_above_start,
        start_noise,
    )

    # the window is min(10, steps // 20) steps: here the first 10 of 400
    losses = [1.0, 1.2, 0.8, 1.2, 0.8, 1.2, 0.8, 1.2, 0.8, 1.0] + [1.0] * 390
    sd = start_noise(losses)
    assert sd == pytest.approx(math.sqrt(8 * 0.04 / 9))
    assert start_noise([1.0]) == 0.0 and start_noise([1.0, math.nan]) == 0.0
    assert START_NOISE_SIGMAS == 2.0 and FALL_SIGMAS == 3.0
    assert ended_above_start(1.06, 1.0) and not ended_above_start(1.06, 1.0, noise=sd)
    assert ended_above_start(1.0 + 2 * sd, 1.0, noise=sd)
    # the verdict's arms: 6% above the start is a blow-up only without noise
    assert collapse_arm(-0.06, -0.06, 0.0, flat_tol=0.03) == "above_start"
    assert collapse_arm(-0.06, -0.06, 0.0, flat_tol=0.03, noise=0.35) == "no_progress"
    assert collapse_arm(-0.8, -0.06, 0.0, flat_tol=0.03, noise=0.35) == "above_start"
