"""The compute ledger (`studies.ledger.Ledger`): each trial charged once, to the step that ran
it; per-step figures that add up to the store's unique trials; and the recipe's budget read
off it (`RecipeState.spent` + `left` = the budget)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from disciplined import tune
from disciplined.recipe import run as recipe_run
from disciplined.recipe.state import RecipeState
from disciplined.studies import StudyContext, learning_rate_test, weight_decay_sweep
from disciplined.studies.ledger import OUTSIDE, Ledger
from disciplined.trials.hparams import HParams
from disciplined.trials.store import MemoryStore, SQLiteStore


@dataclass(frozen=True)
class _Run:
    key: str
    epochs: float
    seconds: float


def test_a_trial_is_charged_once_to_the_first_step_that_ran_it():
    ledger = Ledger()
    with ledger.step("a"):
        ledger.charge_results([_Run("x", 2.0, 1.0), _Run("y", 1.0, 0.5)])
    start = ledger.mark()
    with ledger.step("b"):
        ledger.charge_results([_Run("x", 2.0, 9.0), _Run("z", 4.0, 2.0)])  # x read back
    with ledger.step("c"):
        ledger.charge_results([_Run("y", 1.0, 0.5)])  # all read back: nothing charged
    assert ledger.by_step() == {
        "a": {"epochs": 3.0, "seconds": 1.5},
        "b": {"epochs": 4.0, "seconds": 2.0},
        "c": {"epochs": 0.0, "seconds": 0.0},
    }
    assert ledger.since(start) == {"epochs": 4.0, "seconds": 2.0, "trials": 1}
    assert ledger.total() == {"epochs": 7.0, "seconds": 3.5}
    ledger.charge_results([_Run("w", 1.0, 1.0)])  # no step open
    assert ledger.by_step()[OUTSIDE] == {"epochs": 1.0, "seconds": 1.0}
    with ledger.step("d"):
        ledger.claim("x")  # moved, still counted once
    assert ledger.cost("a")["epochs"] == 1.0 and ledger.cost("d")["epochs"] == 2.0
    assert ledger.total()["epochs"] == 8.0
    with pytest.raises(KeyError):
        ledger.claim("never-ran")


def test_two_steps_reading_one_trial_charge_it_once_and_the_steps_sum_to_the_store():
    # the first range test (momentum 0.9, no weight decay) is the weight-decay sweep's test
    # at 0: the sweep's step reads it back and is not charged for it
    ctx = StudyContext(task="digits-mlp", store=MemoryStore())
    hp = HParams(max_momentum=0.9, min_momentum=0.9, weight_decay=0.0, batch_size=32)
    with ctx.step("lr_range_test"):
        first = learning_rate_test(ctx, hp, num_steps=100)
    with ctx.step("weight_decay"):
        wd = weight_decay_sweep(ctx, hp.with_(max_lr=first.value), [1e-3, 0.0], num_steps=100)
    shared = first.trials[0]
    assert shared in wd.trials and ctx.ledger.charges[shared].step == "lr_range_test"
    assert wd.compute["trials"] == 1
    other = next(k for k in wd.trials if k != shared)
    per_step = ctx.ledger.by_step()
    assert per_step["weight_decay"]["epochs"] == pytest.approx(ctx.store.get(other).epochs)
    assert per_step["lr_range_test"]["epochs"] == pytest.approx(ctx.store.get(shared).epochs)
    unique = sum(ctx.store.get(k).epochs for k in {*first.trials, *wd.trials})
    assert sum(c["epochs"] for c in per_step.values()) == pytest.approx(unique)
    assert len(ctx.store) == 2


@pytest.mark.parametrize("search", ["race", "bracket"])
def test_the_tunes_ledger_is_the_stores_unique_trials_and_the_budget(tmp_path, monkeypatch, search):
    states: list[RecipeState] = []
    diagnosis = recipe_run.STEPS["diagnosis"]

    def keep(s: RecipeState) -> None:
        states.append(s)
        diagnosis(s)

    monkeypatch.setitem(recipe_run.STEPS, "diagnosis", keep)
    r = tune(
        "digits-mlp", epochs=3, budget=60, range_steps=100, out=tmp_path, seed=0, search=search
    )
    (s,) = states
    with SQLiteStore(tmp_path / "trials.sqlite") as store:
        unique = sum(t.epochs for t in store.results())
    total = s.ctx.ledger.total()["epochs"]
    assert total == pytest.approx(unique)
    assert sum(c["epochs"] for c in r.compute.values()) == pytest.approx(unique)
    assert r.compute == s.ctx.ledger.by_step() and OUTSIDE not in r.compute
    assert s.spent() == pytest.approx(total)
    assert s.left() + s.spent() == pytest.approx(s.plan.budget) and s.plan.budget == 60
    # every trial the tune read is charged to exactly one step; the memory probe, no trial
    # of the store, is charged its seconds at 0 epochs
    trials = {k for k, c in s.ctx.ledger.charges.items() if c.trial}
    assert trials == set(r.trials)
    (probe,) = [c for c in s.ctx.ledger.charges.values() if not c.trial]
    assert probe.step == "memory" and probe.epochs == 0 and probe.seconds > 0
