"""`trials.runtime.Runtime`: one record of how a tune runs. `disciplined.tune` builds it from
its old keywords or takes it whole, and decides the same either way; the command line
builds one and hands it to the recipe."""

from __future__ import annotations

import pytest

from disciplined import Runtime, tune
from disciplined.trials.spec import run_trial
from disciplined.trials.store import MemoryStore

FAST = {"epochs": 1, "budget": 30, "range_steps": 100, "device": "cpu",
        "compare_batch_sizes": "off", "search": "bracket", "correct": False}
"""A small tune of the digits MLP (the bracket chain, no comparison, no correction)."""


def _decided(result):
    """The hyper-parameters and each decision's name, rule, value and record (no seconds,
    no machine-dependent memory entries)."""
    decisions = []
    for d in result.decisions:
        extra = d.to_dict()["extra"]
        kept = {k: v for k, v in extra.items() if k != "memory" and "seconds" not in k}
        decisions.append((d.name, d.rule, d.value, kept))
    return result.hparams.to_dict(), decisions


def test_runtime_of_replaces_fields_and_refuses_unknown_names():
    base = Runtime(workers=2, command="x")
    assert Runtime.of(base, workers=3) == Runtime(workers=3, command="x")
    assert Runtime.of(None, out="here").out == "here"
    with pytest.raises(TypeError, match=r"unknown runtime setting.*wrokers"):
        Runtime.of(base, wrokers=3)


def test_tune_decides_the_same_from_keywords_and_from_a_runtime(tmp_path):
    calls: dict[str, list[str]] = {"keywords": [], "runtime": []}

    def counting(name):
        def run(spec):
            calls[name].append(spec.key)
            return run_trial(spec)

        return run

    old = tune("digits-mlp", out=tmp_path / "a", store=MemoryStore(), threads=1,
               progress=False, runner=counting("keywords"), **FAST)
    rt = Runtime(out=tmp_path / "b", store=MemoryStore(), threads=1, progress=False,
                 runner=counting("runtime"))
    new = tune("digits-mlp", runtime=rt, **FAST)
    assert _decided(new) == _decided(old)
    assert calls["keywords"] == calls["runtime"] and calls["runtime"]
    assert (tmp_path / "b" / "hparams.json").exists()
    assert new.meta["threads"] == old.meta["threads"]


def test_a_keyword_beside_a_runtime_replaces_its_field(tmp_path):
    said: list[str] = []
    rt = Runtime(out=tmp_path / "ignored", store=MemoryStore(), threads=1, progress=False)
    r = tune("digits-mlp", runtime=rt, out=tmp_path / "used", progress=said.append, **FAST)
    assert r.out == str(tmp_path / "used") and not (tmp_path / "ignored").exists()
    assert said and said[0].startswith("torch threads per trial: 1")


def test_a_search_takes_a_runtime_or_its_fields_by_name():
    from disciplined.search.grid import grid_search
    from disciplined.search.space import SearchSpace

    space = SearchSpace(lr_grid=(0.01,), weight_decay_grid=(0.0,), momentum_grid=(0.9,),
                        schedules=("one-cycle",))
    seen: list[str] = []

    def counting(spec):
        seen.append(spec.key)
        return run_trial(spec)

    store = MemoryStore()
    old = grid_search("digits-mlp", space, 0.2, store=store, runner=counting)
    new = grid_search("digits-mlp", space, 0.2, runtime=Runtime(store=store, runner=counting))
    assert [t.key for t in new.trials] == [t.key for t in old.trials] and len(seen) == 1
    with pytest.raises(TypeError, match="unknown runtime setting"):
        grid_search("digits-mlp", space, 0.2, stroe=store)


def test_the_command_line_builds_one_runtime_and_hands_it_to_the_recipe(tmp_path, monkeypatch):
    import disciplined.api
    from disciplined.cli import main
    from disciplined.errors import UsageError

    got: list[Runtime] = []

    def fake_run_recipe(task, config, *, runtime, task_options):
        got.append(runtime)
        raise UsageError("stopped by the test")

    monkeypatch.setattr(disciplined.api, "run_recipe", fake_run_recipe)
    store = tmp_path / "trials.sqlite"
    code = main(["tune", "--task", "digits-mlp", "--out", str(tmp_path / "o"), "--epochs", "1",
                 "--store", str(store), "--threads", "1"])
    assert code == 2 and len(got) == 1
    rt = got[0]
    assert isinstance(rt, Runtime) and rt.out == tmp_path / "o" and rt.store == str(store)
    assert rt.executor is not None and callable(rt.progress) and rt.on_result is not None
    assert rt.command is not None and rt.command.startswith("disciplined ")
