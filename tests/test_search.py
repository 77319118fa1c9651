"""Grid, random and TPE search on the trial machinery: sizes, traces, resuming, sampling."""

from __future__ import annotations

import itertools
import math
import random
import statistics
import sys

import pytest

from disciplined.errors import UsageError
from disciplined.search import (
    MedianStop,
    SearchSpace,
    grid_search,
    hparams_for,
    random_search,
    sample_point,
    tpe_search,
    trial_metric,
)
from disciplined.training.history import EvalRecord, History
from disciplined.trials.spec import TrialResult, TrialSpec, prune_rule, run_trial
from disciplined.trials.store import MemoryStore, SQLiteStore

TINY = SearchSpace(
    lr_grid=(0.03, 0.3),
    weight_decay_grid=(1e-4,),
    momentum_grid=(0.9,),
)
EPOCHS = 0.5  # about 22 steps of digits-mlp at batch 32


class Counting:
    """A runner that counts the trials it actually runs."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, spec):
        self.calls += 1
        return run_trial(spec)


def _assert_trace_sound(result):
    trace = result.trace
    assert len(trace) == len(result.trials)
    epochs = [p.epochs for p in trace]
    seconds = [p.seconds for p in trace]
    best = [p.best for p in trace if math.isfinite(p.best)]
    assert all(b >= a for a, b in itertools.pairwise(epochs))
    assert all(b >= a for a, b in itertools.pairwise(seconds))
    assert all(b >= a for a, b in itertools.pairwise(best))
    assert trace[-1].epochs == pytest.approx(result.epochs)
    assert result.best_metric == max(best)


def test_grid_search_runs_every_point_traces_compute_and_reorders_from_the_store():
    store = MemoryStore()
    r = grid_search("digits-mlp", TINY, EPOCHS, store=store)
    assert len(r.trials) == TINY.grid_size == 6
    assert {t.spec.hparams["schedule"] for t in r.trials} == {"one-cycle", "constant", "step"}
    assert all(t.spec.kind == "train" and t.spec.budget == {"epochs": EPOCHS} for t in r.trials)
    _assert_trace_sound(r)
    assert r.trace[-1].epochs == pytest.approx(6 * EPOCHS, rel=0.05)
    assert r.best_metric > 0.5  # digits: 10 classes, chance is 0.1
    assert math.isnan(r.best_at(0.0))  # no trial fits in no compute
    assert r.best_at(r.epochs) == r.best_metric

    counting = Counting()
    shuffled = grid_search("digits-mlp", TINY, EPOCHS, order_seed=1, store=store, runner=counting)
    first_two = grid_search("digits-mlp", TINY, EPOCHS, max_trials=2, store=store, runner=counting)
    assert counting.calls == 0  # every point is read back from the store
    keys = [t.key for t in r.trials]
    assert sorted(t.key for t in shuffled.trials) == sorted(keys)
    assert [t.key for t in shuffled.trials] != keys
    assert [t.key for t in first_two.trials] == keys[:2]


def test_best_trial_at_is_the_best_among_the_trials_that_fit():
    r = grid_search("digits-mlp", TINY, EPOCHS, store=MemoryStore())
    assert r.best_trial_at(0.0) is None
    for k, point in enumerate(r.trace):
        pick = r.best_trial_at(point.epochs)
        assert pick in r.trials[: k + 1] and trial_metric(pick) == point.best
    assert r.best_trial_at(r.epochs) is r.best_trial


def test_random_search_size_trace_and_resume_without_recomputing(tmp_path):
    path = tmp_path / "trials.sqlite"
    first = Counting()
    with SQLiteStore(path) as store:
        r1 = random_search(
            "digits-mlp", n_trials=3, epochs=EPOCHS, seed=5, store=store, runner=first
        )
    assert first.calls == 3 and len(r1.trials) == 3
    _assert_trace_sound(r1)
    again = Counting()
    with SQLiteStore(path) as store:
        r2 = random_search(
            "digits-mlp", n_trials=4, epochs=EPOCHS, seed=5, store=store, runner=again
        )
    assert again.calls == 1  # the first three are read back, only the new one runs
    assert [t.key for t in r2.trials[:3]] == [t.key for t in r1.trials]
    assert [p.best for p in r2.trace[:3]] == [p.best for p in r1.trace]


def test_sample_point_is_log_uniform_within_bounds():
    space = SearchSpace(lr=(1e-4, 1.0), weight_decay=(1e-6, 1e-2), momentum=(0.8, 0.99))
    rng = random.Random(0)
    points = [sample_point(space, rng) for _ in range(4000)]
    for name, (lo, hi) in (("max_lr", space.lr), ("weight_decay", space.weight_decay)):
        values = [p[name] for p in points]
        assert lo <= min(values) and max(values) <= hi
        # log-uniform: the log's quartiles sit at a quarter, half and three quarters of the range
        logs = [(math.log(v) - math.log(lo)) / (math.log(hi) - math.log(lo)) for v in values]
        q = statistics.quantiles(logs, n=4)
        assert q == pytest.approx([0.25, 0.5, 0.75], abs=0.03)
    moms = [p["momentum"] for p in points]
    assert min(moms) >= 0.8 and max(moms) <= 0.99
    assert statistics.fmean(moms) == pytest.approx(0.895, abs=0.005)
    assert {p["schedule"] for p in points} == {"one-cycle", "constant", "step"}


def test_hparams_for_follows_the_recipes_momentum_rule():
    assert hparams_for("one-cycle", 0.1, 0.95, 0.0, 32).min_momentum == 0.85
    assert hparams_for("one-cycle", 0.1, 0.9, 0.0, 32).min_momentum == 0.8
    assert hparams_for("one-cycle", 0.1, 0.7, 0.0, 32).min_momentum == 0.7
    assert hparams_for("step", 0.1, 0.9, 0.0, 32).min_momentum == 0.9


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lr": (0.0, 1.0)}, "lr must be"),
        ({"weight_decay": (1e-3, 1e-4)}, "weight_decay must be"),
        ({"momentum": (0.5, 1.0)}, "momentum must be"),
        ({"schedules": ("cosine",)}, "schedules must be"),
        ({"lr_grid": ()}, "lr_grid must be"),
    ],
)
def test_search_space_rejects_bad_bounds(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SearchSpace(**kwargs)


def test_bad_counts_are_refused():
    with pytest.raises(ValueError, match="n_trials must be"):
        random_search("digits-mlp", n_trials=0, epochs=EPOCHS)
    with pytest.raises(ValueError, match="epochs must be"):
        grid_search("digits-mlp", TINY, 0)


def test_tpe_without_optuna_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # makes `import optuna` fail
    with pytest.raises(UsageError, match=r"pip install disciplined\[optuna\]"):
        tpe_search("digits-mlp", n_trials=2, epochs=EPOCHS)


def test_tpe_search_runs_and_resumes(tmp_path):
    pytest.importorskip(
        "optuna", reason="optuna is not installed (pip install disciplined[optuna])"
    )
    path = tmp_path / "trials.sqlite"
    first = Counting()
    with SQLiteStore(path) as store:
        r1 = tpe_search(
            "digits-mlp",
            n_trials=3,
            epochs=EPOCHS,
            seed=2,
            n_startup_trials=2,
            store=store,
            runner=first,
        )
    assert first.calls == 3 and len(r1.trials) == 3
    _assert_trace_sound(r1)
    again = Counting()
    with SQLiteStore(path) as store:
        r2 = tpe_search(
            "digits-mlp",
            n_trials=3,
            epochs=EPOCHS,
            seed=2,
            n_startup_trials=2,
            store=store,
            runner=again,
        )
    assert again.calls == 0
    assert [t.key for t in r2.trials] == [t.key for t in r1.trials]


def test_batch_size_is_searched_when_the_space_names_batch_sizes():
    space = SearchSpace(
        schedules=("one-cycle",),
        lr_grid=(0.1,),
        weight_decay_grid=(0.0,),
        momentum_grid=(0.9,),
        batch_sizes=(16, 32),
    )
    assert space.grid_size == 2
    grid = grid_search("digits-mlp", space, 0.2)
    assert sorted(t.spec.hparams["batch_size"] for t in grid.trials) == [16, 32]
    rnd = random_search("digits-mlp", space, n_trials=8, epochs=0.2, seed=0)
    sizes = {t.spec.hparams["batch_size"] for t in rnd.trials}
    assert sizes == {16, 32}
    assert {t.spec.hparams["schedule"] for t in rnd.trials} == {"one-cycle"}
    with pytest.raises(ValueError, match="batch_sizes must be integers >= 1"):
        SearchSpace(batch_sizes=(0,))


class OneSecond:
    """A runner that trains for real but records every trial as taking exactly one second,
    so a budget in seconds gives a known number of trials on any machine."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, spec):
        import dataclasses

        self.calls += 1
        return dataclasses.replace(run_trial(spec), seconds=1.0)


@pytest.mark.parametrize("method", ["grid", "random", "tpe"])
def test_a_seconds_budget_starts_no_trial_once_spent_and_resumes_from_the_store(method):
    if method == "tpe":
        pytest.importorskip("optuna")
    space = SearchSpace(
        schedules=("one-cycle",),
        lr_grid=(0.01, 0.03, 0.1, 0.3),
        weight_decay_grid=(1e-4, 1e-3),
        momentum_grid=(0.9,),
        batch_sizes=(16, 32),
    )
    store = MemoryStore()

    def search(budget, runner):
        if method == "grid":
            return grid_search(
                "digits-mlp",
                space,
                0.2,
                order_seed=3,
                budget_seconds=budget,
                store=store,
                runner=runner,
            )
        fn = random_search if method == "random" else tpe_search
        return fn(
            "digits-mlp",
            space,
            n_trials=12,
            epochs=0.2,
            seed=3,
            budget_seconds=budget,
            store=store,
            runner=runner,
        )

    first = OneSecond()
    r = search(2.5, first)
    # trials start at 0, 1 and 2 seconds spent (< 2.5); none at 3
    assert len(r.trials) == 3 and first.calls == 3
    assert r.seconds == 3.0 and [p.seconds for p in r.trace] == [1.0, 2.0, 3.0]
    assert {t.spec.hp.schedule for t in r.trials} == {"one-cycle"}
    again = OneSecond()
    longer = search(5.0, again)
    # the first three are read back from the store, two more run
    assert len(longer.trials) == 5 and again.calls == 2
    assert [t.key for t in longer.trials[:3]] == [t.key for t in r.trials]


def test_without_a_budget_the_trial_count_is_unchanged_and_a_bad_budget_is_refused():
    r = random_search("digits-mlp", TINY, n_trials=2, epochs=0.2, runner=OneSecond())
    assert len(r.trials) == 2
    for bad in (0, -1.0, math.inf, math.nan, "10"):
        with pytest.raises(ValueError, match="budget_seconds must be > 0"):
            random_search("digits-mlp", TINY, n_trials=2, epochs=0.2, budget_seconds=bad)
        with pytest.raises(ValueError, match="budget_seconds must be > 0"):
            grid_search("digits-mlp", TINY, 0.2, budget_seconds=bad)


# --------------------------------------------------------------------------- pruning


def _history(metrics, higher_is_better=True):
    """A history whose evaluation after epoch e + 1 measured ``metrics[e]``."""
    evals = tuple(
        EvalRecord(epoch=float(e + 1), step=10 * (e + 1), val_loss=1.0, val_metric=m,
                   train_loss=1.0, seconds=0.0)
        for e, m in enumerate(metrics)
    )
    n = 10 * len(metrics)
    return History(lrs=(0.1,) * n, momenta=(0.9,) * n, train_losses=(1.0,) * n, evals=evals,
                   steps_per_epoch=10, higher_is_better=higher_is_better)


def _finished(metrics, status="ok"):
    spec = TrialSpec(task="digits-mlp", hparams={}, kind="train", budget={"epochs": 4})
    return TrialResult(spec.key, spec, status, 1.0, history=_history(metrics))


def test_median_stop_bounds_are_the_median_of_the_finished_trials_at_each_epoch():
    rule = MedianStop(n_startup_trials=3, warmup_epochs=2)
    done = [_finished([0.1, 0.2, 0.3, 0.4]), _finished([0.3, 0.5, 0.6, 0.7]),
            _finished([0.2, 0.4, 0.8, 0.9])]
    assert rule.bounds(done[:2], 4) is None  # fewer than n_startup_trials finished
    # epochs 1..3 (none at the last); epoch 1 is inside the warm-up
    assert rule.bounds(done, 4) == [None, 0.4, 0.6]
    # pruned and diverged trials do not count, and an even count takes the middle mean
    more = [*done, _finished([0.0] * 4, "pruned"), _finished([0.5, 0.6, 0.7, 0.8])]
    assert rule.bounds(more, 4) == [None, pytest.approx(0.45), pytest.approx(0.65)]
    # default warm-up: a quarter of 8 epochs; no value recorded after epoch 4: no bound
    assert MedianStop(n_startup_trials=1).bounds(done[:1], 8) == [
        None, 0.2, 0.3, 0.4, None, None, None
    ]
    for bad in ({"n_startup_trials": 0}, {"warmup_epochs": -1}, {"warmup_epochs": 1.5}):
        with pytest.raises(ValueError):
            MedianStop(**bad)


def test_prune_rule_compares_the_best_so_far_and_fires_once_behind():
    rule = prune_rule({"bounds": [None, 0.5, 0.6]}, higher_is_better=True)
    records = _history([0.7, 0.4, 0.55, 0.9]).evals
    assert rule(records[0]) is None  # no bound at epoch 1
    assert rule(records[1]) is None  # 0.4 now, but its best so far 0.7 >= 0.5
    why = rule(records[2])  # best 0.7 >= 0.6: still fine
    assert why is None and not rule.fired
    behind = prune_rule({"bounds": [None, 0.5]}, higher_is_better=True)
    assert behind(_history([0.3]).evals[0]) is None
    why = behind(_history([0.3, 0.45]).evals[1])
    assert behind.fired and why.startswith("pruned after epoch 2: best validation metric")
    def lower():  # a loss: lower is better
        return prune_rule({"bounds": [2.0]}, higher_is_better=False)

    assert lower()(_history([1.5]).evals[0]) is None and lower()(_history([2.5]).evals[0])
    nan = prune_rule({"bounds": [0.1]}, higher_is_better=True)
    assert nan(_history([math.nan]).evals[0]) and nan.fired  # no finite metric: behind
    assert prune_rule(None, True) is None and prune_rule({}, True) is None
    with pytest.raises(ValueError, match="budget\\['prune'\\]"):
        prune_rule({"bounds": "0.5"}, True)


def test_median_stop_decides_as_optunas_median_pruner():
    optuna = pytest.importorskip("optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rng = random.Random(0)
    curves = [[rng.random() for _ in range(6)] for _ in range(12)]
    study = optuna.create_study(
        direction="maximize",
        pruner=optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=2),
    )
    rule, finished = MedianStop(n_startup_trials=4, warmup_epochs=2), []
    for curve in curves:
        ours = prune_rule({"bounds": rule.bounds(finished, 7) or []}, True)
        trial = study.ask()
        pruned = False
        for e, m in enumerate(curve, start=1):
            trial.report(m, e)
            theirs = trial.should_prune()
            assert (ours(_history(curve[:e]).evals[-1]) is not None) == theirs, (curve, e)
            if theirs:
                pruned = True
                break
        if pruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            finished.append(_finished(curve[:e], "pruned"))
        else:
            study.tell(trial, curve[-1])
            finished.append(_finished(curve))
    assert sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials) >= 3


def test_fit_stops_at_the_evaluation_its_on_eval_rule_names():
    from disciplined import HParams, load_task
    from disciplined.trials.hparams import train_task

    task = load_task("digits-mlp")
    seen = []

    def rule(record):
        seen.append(record.epoch)
        return "enough" if record.epoch >= 2 else None

    _, h = train_task(task, HParams(batch_size=64), epochs=4, seed=0, on_eval=rule)
    per_epoch = h.steps_per_epoch
    assert seen == [1.0, 2.0] and h.stopped_reason == "enough"
    assert h.steps == 2 * per_epoch and len(h.evals) == 2 and h.evals[-1].step == h.steps


def test_a_pruned_search_stops_trials_behind_the_median_and_resumes_from_the_store():
    space = SearchSpace(
        schedules=("one-cycle",),
        lr=(1e-4, 0.5),
        weight_decay=(1e-5, 1e-4),
        momentum=(0.9, 0.9),
        batch_sizes=(32,),
    )
    store = MemoryStore()
    rule = MedianStop(n_startup_trials=3, warmup_epochs=1)
    first = Counting()
    r = random_search("digits-mlp", space, n_trials=10, epochs=3, seed=1, pruning=rule,
                      store=store, runner=first)
    statuses = [t.status for t in r.trials]
    assert first.calls == 10 and statuses[:3] == ["ok"] * 3
    pruned = [t for t in r.trials if t.status == "pruned"]
    assert pruned, statuses
    for t in pruned:
        assert t.epochs < 3 and math.isnan(trial_metric(t)) and t.reason.startswith("pruned")
        assert "prune" in t.spec.budget
    # the best is a finished trial, and no pruned trial was ahead of the bound it was given
    assert r.best_trial.status == "ok"
    again = Counting()
    r2 = random_search("digits-mlp", space, n_trials=10, epochs=3, seed=1, pruning=rule,
                       store=store, runner=again)
    assert again.calls == 0 and [t.key for t in r2.trials] == [t.key for t in r.trials]
    with pytest.raises(ValueError, match="pruning must be a MedianStop"):
        random_search("digits-mlp", space, n_trials=2, epochs=1, pruning="median")


def test_tpe_with_pruning_tells_optuna_which_trials_were_pruned():
    pytest.importorskip("optuna")
    space = SearchSpace(schedules=("one-cycle",), lr=(1e-4, 0.5), batch_sizes=(32,))
    r = tpe_search("digits-mlp", space, n_trials=8, epochs=3, seed=0, n_startup_trials=4,
                   pruning=MedianStop(n_startup_trials=2, warmup_epochs=1))
    statuses = [t.status for t in r.trials]
    assert len(statuses) == 8 and statuses[:2] == ["ok", "ok"] and "pruned" in statuses
    assert all(math.isfinite(trial_metric(t)) == (t.status == "ok") for t in r.trials)
