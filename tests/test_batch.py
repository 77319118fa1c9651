import math

import pytest
import torch
from torch import nn

from disciplined import HParams, Task
from disciplined.errors import UsageError
from disciplined.report.save import drawn
from disciplined.studies import (
    StudyContext,
    batch_comparison,
    batch_size_search,
    one_cycle_spec,
)
from disciplined.studies.batch import (
    best_at_equal_time,
    candidate_batch_sizes,
    equal_epoch_candidates,
    largest_batch_that_fits,
    parse_memory,
    step_memory,
)
from disciplined.tasks import accuracy, load_task
from disciplined.training.fit import batches_per_epoch
from disciplined.trials.hparams import build_optimizer
from disciplined.trials.spec import TrialResult, run_trial
from disciplined.trials.store import MemoryStore


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("2GB", 2_000_000_000),
        ("512MiB", 512 * 2**20),
        ("1.5g", 1_500_000_000),
        ("1e6", 1_000_000),
        (4096, 4096),
        ("10 kb", 10_000),
    ],
)
def test_parse_memory(text, value):
    assert parse_memory(text) == value


@pytest.mark.parametrize("text", ["lots", "-1GB", "0", "3XB"])
def test_parse_memory_rejects_nonsense(text):
    with pytest.raises(ValueError, match="memory limit must"):
        parse_memory(text)


def _mlp_task(n=2048):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 64, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    return Task(
        name="mlp",
        train_data=(x, y),
        val_data=(x[:256], y[:256]),
        build_model=lambda hp: nn.Sequential(
            nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10)
        ),
        loss_fn=nn.functional.cross_entropy,
        metric=accuracy,
        metric_name="accuracy",
    )


def test_step_memory_grows_by_the_activations_autograd_keeps():
    task = _mlp_task()
    model = task.model()
    opt = build_optimizer(model, HParams())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    m1, m2 = step_memory(model, opt, task, 256), step_memory(model, opt, task, 512)
    per_sample = (m2 - m1) / 256
    # Kept for backward per sample: the input (64 floats), the first hidden layer (128,
    # shared by ReLU and the next Linear), the second (64), and the softmax of the 10
    # logits; plus the batch itself (64 inputs, one int64 label) and the 10 outputs.
    kept = 4 * (64 + 128 + 64 + 10)
    batch = 4 * 64 + 8 + 4 * 10
    assert kept + batch <= per_sample <= 2 * (kept + batch), per_sample
    params = sum(p.numel() for p in model.parameters()) * 4
    assert m1 >= 3 * params  # weights, gradients, momentum buffers
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    assert opt.state_dict()["state"] == {}


def test_largest_batch_is_the_boundary_of_the_limit():
    task = _mlp_task()
    hp = HParams()
    model = task.model()
    opt = build_optimizer(model, hp)
    need = {b: step_memory(model, opt, task, b) for b in (300, 301)}
    limit = (need[300] + need[301]) / 2 / 0.8  # the 20% margin puts the edge between them
    fit = largest_batch_that_fits(task, hp, memory_limit=int(limit))
    assert fit.batch_size == 300 and fit.capped_by == "memory"
    assert [b for b, _, _ in fit.probes][:5] == [16, 32, 64, 128, 256]
    assert all(ok == (n <= limit * 0.8) for _, n, ok in fit.probes)


def test_the_probe_runs_on_a_batchnorm_mlp():
    # BatchNorm1d in training mode refuses a batch of one sample: the probe's step that
    # creates the optimizer's state used one, and the held-out wide-resmlp failed there
    torch.manual_seed(0)
    x, y = torch.randn(200, 8), torch.randint(0, 2, (200,))
    task = Task(
        name="bn-mlp",
        build_model=lambda hp: nn.Sequential(
            nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 2)
        ),
        train_data=(x, y),
        val_data=(x[:50], y[:50]),
        loss_fn=nn.functional.cross_entropy,
        default_batch_size=32,
    )
    fit = largest_batch_that_fits(task, HParams(batch_size=32), memory_limit="4GB")
    assert fit.batch_size == 200 and fit.capped_by == "data"
    model = task.model()
    need = step_memory(model, build_optimizer(model, HParams()), task, 16)
    assert need > 0


def test_memory_never_binds_on_a_small_data_set():
    fit = largest_batch_that_fits(load_task("digits-mlp"), HParams(), memory_limit="4GB")
    assert fit.batch_size == 1437 and fit.capped_by == "data"


def test_a_limit_too_small_for_one_sample_is_an_error():
    with pytest.raises(ValueError, match="not even a batch of 1 fits"):
        largest_batch_that_fits(_mlp_task(), HParams(), memory_limit=1000)


def test_candidates_keep_enough_steps_per_epoch():
    task = load_task("mnist1d-cnn")
    assert candidate_batch_sizes(task, 4000) == [16, 32, 64, 128, 256]
    assert candidate_batch_sizes(task, 100) == [16, 32, 64]
    assert candidate_batch_sizes(task, 4000, base=[8, 100, 5000]) == [8, 100]


def _r(b, metric, diverged=False):
    return {"batch_size": b, "val_metric": metric, "diverged": diverged}


def test_equal_time_rule():
    assert best_at_equal_time([_r(32, 0.95), _r(128, 0.93)])[0] == 32
    assert best_at_equal_time([_r(32, 0.95), _r(128, 0.95)])[0] == 128  # tie: larger
    assert best_at_equal_time([_r(32, 0.99, True), _r(128, 0.9)])[0] == 128
    assert best_at_equal_time([_r(32, 0.2), _r(128, 0.3)], higher_is_better=False)[0] == 32
    with pytest.raises(ValueError, match="every batch-size candidate diverged"):
        best_at_equal_time([_r(32, math.nan), _r(64, 0.5, True)])


def test_comparison_at_equal_time_plans_from_the_recorded_timings(tmp_path):
    # Step timings as recorded in the store (a resumed search reads them back): batch 128
    # takes twice the seconds a step of batch 32 does. The runs get the seconds of one
    # epoch at the middle candidate, 128: batch 128 takes an epoch of steps, batch 32 twice
    # as many. Batch 32's run is made to blow up, so the right answer is 128.
    store = MemoryStore()
    ctx = StudyContext(task="digits-mlp", store=store, out=tmp_path)
    store.bind({"task": "digits-mlp", "task_options": {}})
    step = {"32": 2.0**-9, "128": 2.0**-8}  # exact in binary: the step counts are exact
    store.setdefault_meta("batch_step_seconds:[32, 128]:sgd", step)

    def runner(spec):
        if spec.kind == "train" and spec.hparams["batch_size"] == 32:
            return TrialResult(spec.key, spec, "diverged", 0.0, reason="blew up")
        return run_trial(spec)

    ctx.runner = runner
    hp = HParams(batch_size=32, max_momentum=0.9, min_momentum=0.9)
    d = batch_size_search(
        ctx, hp, compare="time", candidates=[32, 128], compare_epochs=1, num_steps=120
    )
    assert d.name == "batch_size" and d.rule == "best_at_equal_time" and d.value == 128
    epoch = batches_per_epoch(load_task("digits-mlp").train_data, 128)
    assert d.payload.seconds_each == epoch * step["128"]
    assert d.payload.seconds_per_step == {int(b): s for b, s in step.items()}
    assert d.extra["seconds_per_step"] == step  # the JSON keeps the batch sizes as strings
    rows = {r["batch_size"]: r for r in d.table}
    assert rows[128]["steps"] == epoch and rows[32]["steps"] == 2 * epoch
    assert rows[32]["outcome"] == "diverged" and rows[128]["outcome"] == "ok"
    assert rows[128]["val_metric"] > 0 and rows[128]["max_lr"] == d.payload.max_lr[128] > 0
    assert "batch 128 reached" in d.reason
    fig = d.figures[0]
    assert (fig.kind, fig.file, fig.labels) == (
        "metric_vs_time", "batch_size.png", ("batch 32", "batch 128")
    )
    again = batch_size_search(
        ctx, hp, compare="time", candidates=[32, 128], compare_epochs=1, num_steps=120
    )
    assert again.table == d.table and again.trials == d.trials  # the same plan, read back


def test_ties_within_the_noise_go_to_the_larger_batch():
    from disciplined.studies.batch import metric_noise

    se = metric_noise(0.96, 360, "classification")
    assert se == pytest.approx(math.sqrt(0.96 * 0.04 / 360))
    rows = [_r(32, 0.961), _r(64, 0.955), _r(128, 0.944)]
    value, reason = best_at_equal_time(rows, tolerance=se)
    assert value == 64 and "2 candidates were within" in reason
    assert metric_noise(0.9, 100, "regression") == 0.0


def test_equal_epoch_candidates_are_the_task_batch_half_and_quarter():
    cnn, digits = load_task("mnist1d-cnn"), load_task("digits-mlp")
    assert equal_epoch_candidates(cnn, 4000) == [32, 64, 128]
    assert equal_epoch_candidates(digits, 1437) == [8, 16, 32]
    assert equal_epoch_candidates(cnn, 100) == [25, 50, 100]  # memory caps the top
    assert equal_epoch_candidates(cnn, 2) == [1, 2]
    assert equal_epoch_candidates(cnn, 4000, base=[16, 512]) == [16, 512]


def test_comparison_at_equal_epochs_rejects_a_batch_that_leaves_few_steps(tmp_path):
    # digits at batch 720 takes two steps an epoch: after 2 epochs it is far behind batch
    # 32 (90 steps). At 1437 (one step an epoch) a 1cycle of 2 steps cannot even be built:
    # that candidate fails and is out. The right answer is known; every candidate trains
    # exactly the epochs asked for, with its own max LR.
    ctx = StudyContext(task="digits-mlp", store=MemoryStore(), out=tmp_path)
    hp = HParams(batch_size=32, max_momentum=0.9, min_momentum=0.8)
    d = batch_size_search(ctx, hp, candidates=[32, 720, 1437], epochs=2, num_steps=100)
    assert d.rule == "best_at_equal_epochs" and d.value == 32
    rows = {r["batch_size"]: r for r in d.table}
    assert rows[32]["val_metric"] > rows[720]["val_metric"] + 0.1
    assert rows[32]["epochs"] == rows[720]["epochs"] == 2
    assert rows[1437]["outcome"] == "failed" and math.isnan(rows[1437]["val_metric"])
    assert rows[32]["max_lr"] == d.payload.max_lr[32] > 0
    assert "same 2 epochs" in d.reason
    # the comparison's plot, then each candidate's range test, drawn from the trials
    files = [f.file for f in d.figures]
    assert files[0] == "batch_size.png" and d.figures[0].kind == "metric_vs_epoch"
    assert sorted(files[1:]) == sorted(f"batch{b}_range_test.png" for b in (32, 720, 1437))
    shown = drawn(d, ctx.results, tmp_path)
    assert shown.plot == str(tmp_path / "batch_size.png")
    assert all((tmp_path / f).read_bytes().startswith(b"\x89PNG") for f in files)
    # the winner's run is the recipe's final-run spec: the store hands it back as is
    final = one_cycle_spec(ctx, hp.with_(batch_size=32, max_lr=rows[32]["max_lr"]), 2, 0)
    assert final.key == rows[32]["trial"] == d.payload.run_trials[32]
    assert ctx.store.get(final.key) is not None


def test_comparison_modes():
    assert batch_comparison(True) == "epochs" and batch_comparison(False) == "off"
    assert [batch_comparison(m) for m in ("epochs", "time", "off")] == ["epochs", "time", "off"]
    with pytest.raises(UsageError, match="must be one of epochs, time, off"):
        batch_comparison("weekly")
