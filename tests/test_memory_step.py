"""The memory probe as a measured step of the recipe (issue 32, item 1): the plan trains
nothing, the probe runs as the recipe's first step, charged to the ledger and recorded as a
decision, leaves the global RNGs untouched, and is read back from the store on a resume."""

import json
import random

import numpy as np
import pytest
import torch

from disciplined import tune
from disciplined.recipe import run as recipe_run
from disciplined.recipe.config import TuneConfig
from disciplined.recipe.plan import make_plan
from disciplined.studies import batch as batch_study
from disciplined.studies.batch import largest_batch_that_fits
from disciplined.tasks import load_task
from disciplined.trials.hparams import HParams

SMALL = {"epochs": 6, "budget": 90, "range_steps": 100}  # test_race's tune on digits


def test_the_probe_leaves_the_global_rngs_untouched():
    task = load_task("digits-mlp")
    torch.manual_seed(123)
    np.random.seed(123)
    random.seed(123)
    before = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    fit = largest_batch_that_fits(task, HParams(), memory_limit="4GB")
    assert fit.batch_size > 0
    assert torch.equal(torch.get_rng_state(), before[0])
    assert (np.random.get_state()[1] == before[1]).all() and random.getstate() == before[2]
    # what the global stream draws next is what it would have drawn without the probe
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    largest_batch_that_fits(task, HParams(), memory_limit="4GB")
    assert torch.equal(torch.rand(3), expected)


def test_the_plan_trains_nothing(monkeypatch):
    def no_probe(*args, **kwargs):
        raise AssertionError("the plan probed memory")

    monkeypatch.setattr(batch_study, "largest_batch_that_fits", no_probe)
    task = load_task("digits-mlp")
    plan = make_plan(task, TuneConfig(**SMALL))
    assert plan.largest is None and plan.stages[0] == "memory"
    assert plan.candidates == (8, 16, 32)  # capped by the training set only
    # a cap below the task's batch size moves the candidates down, as the probe's would
    capped = make_plan(task, TuneConfig(**SMALL), largest=24)
    assert capped.candidates == (6, 12, 24) and capped.largest == 24
    # memory that never binds (the probe answers the training set's size): the same plan
    same = make_plan(task, TuneConfig(**SMALL), largest=task.num_train)
    assert same.candidates == plan.candidates and same.steps == plan.steps


def _plan_time_probe(s):
    """The memory step as it was before issue 32: a probe when the plan is made, outside
    the ledger and recorded nowhere."""
    fit = largest_batch_that_fits(
        s.task, s.hp, memory_limit=s.config.memory_limit, device=s.config.device
    )
    s.plan = make_plan(s.task, s.config, largest=fit.batch_size)


@pytest.mark.parametrize(
    "options",
    [{}, {"memory_limit": "300KB"}],
    ids=["memory-never-binds", "memory-binds"],
)
def test_the_memory_step_decides_as_a_plan_time_probe_did(tmp_path, monkeypatch, options):
    plans = []
    race = recipe_run.STEPS["race"]

    def keep(s):
        plans.append(s.plan)
        race(s)

    monkeypatch.setitem(recipe_run.STEPS, "race", keep)
    r = tune("digits-mlp", out=tmp_path / "step", seed=0, **SMALL, **options)
    monkeypatch.setitem(recipe_run.STEPS, "memory", _plan_time_probe)
    before = tune("digits-mlp", out=tmp_path / "plan", seed=0, **SMALL, **options)

    # the same answer and the same decisions, the memory step's own one aside
    assert r.hparams == before.hparams
    memory = r.decisions[0]
    assert [d.name for d in r.decisions[1:]] == [d.name for d in before.decisions]
    assert [d.value for d in r.decisions[1:]] == [d.value for d in before.decisions]
    assert plans[0] == plans[1] and plans[0].largest == memory.value
    # the memory step is a step of the ledger: its seconds, no epochs of the budget
    assert next(iter(r.compute)) == "memory" and "memory" not in before.compute
    assert r.compute["memory"]["epochs"] == 0 and r.compute["memory"]["seconds"] > 0
    assert {k: v["epochs"] for k, v in r.compute.items() if k != "memory"} == {
        k: v["epochs"] for k, v in before.compute.items()
    }
    # its decision: the largest batch that fits, the limit and the step memory measured
    assert memory.name == "memory" and memory.rule == "largest_that_fits"
    assert "MiB" in memory.reason and memory.table
    assert memory.compute == {"seconds": r.compute["memory"]["seconds"]}
    if options:
        assert memory.value == 24 and memory.payload.memory.capped_by == "memory"
        assert set(plans[0].candidates) == {6, 12, 24}
        assert "24 is the largest batch whose step fits" in memory.reason
    else:
        assert memory.value == 1437 and plans[0].candidates == (8, 16, 32)
    # tune.json and the report show it like the other decisions
    saved = json.loads((tmp_path / "step" / "tune.json").read_text())
    assert saved["decisions"][0]["name"] == "memory"
    assert saved["decisions"][0]["value"] == memory.value and "memory" in saved["compute"]
    page = (tmp_path / "step" / "report.html").read_text()
    assert "Memory: the largest batch that fits" in page and "Memory probe" in page


def test_a_resumed_tune_reads_the_probe_back_from_its_store(tmp_path, monkeypatch):
    first = tune("digits-mlp", out=tmp_path, seed=0, **SMALL)

    def no_probe(*args, **kwargs):
        raise AssertionError("the resumed tune probed memory again")

    monkeypatch.setattr(batch_study, "largest_batch_that_fits", no_probe)
    again = tune("digits-mlp", out=tmp_path, seed=0, **SMALL)
    assert again.hparams == first.hparams
    assert again.decisions[0] == first.decisions[0]
    # a resumed tune reports what the whole tune cost: the probe at what it cost then
    assert again.compute["memory"] == first.compute["memory"]
