"""The held-out zoo (`benchmarks/zoo/heldout.py`): every task builds offline with three
disjoint splits and a sealed test split, like the development zoo's; no name is shared with
the development zoo; and the oracle's ``--zoo heldout`` writes and reads its own file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
sys.path.insert(0, str(BENCH))

import _common  # noqa: E402
import fair  # noqa: E402
import oracle  # noqa: E402
from zoo.heldout import HELDOUT  # noqa: E402
from zoo.tasks import ZOO  # noqa: E402

from disciplined import UsageError, load_task  # noqa: E402
from disciplined.trials.hparams import HParams  # noqa: E402

REPEATED_ROWS = {"affairs-tabular", "randhie-counts", "gin-graphs"}
"""Tasks whose data has identical rows (surveys' discrete answers: two people can answer
alike; a ring lattice that drew no rewiring is the same graph each time), so their splits
are disjoint by sample, not by value."""


@pytest.fixture
def in_root(monkeypatch):
    """Run from the repository root: zoo task references are relative to it."""
    monkeypatch.chdir(ROOT)


def _rows(x: torch.Tensor) -> set[tuple]:
    return {tuple(r.reshape(-1).tolist()) for r in x}


def test_the_heldout_zoo_has_six_tasks_none_named_like_a_development_one(in_root):
    assert len(HELDOUT) >= 6
    assert set(HELDOUT).isdisjoint(ZOO)
    assert all(e.ref == f"benchmarks/zoo/heldout.py:{e.function}" for e in HELDOUT.values())
    # the development entries keep their references
    assert all(e.ref == f"benchmarks/zoo/tasks.py:{e.function}" for e in ZOO.values())
    dev_names = {load_task(ZOO[n].ref).name for n in ("wine-mlp", "bn-cnn")}
    held_names = {load_task(e.ref).name for e in HELDOUT.values()}
    assert len(held_names) == len(HELDOUT) and held_names.isdisjoint(dev_names)


@pytest.mark.parametrize("name", list(HELDOUT))
def test_heldout_task_builds_three_disjoint_splits_and_trains(name, in_root):
    entry = HELDOUT[name]
    val = load_task(entry.ref)
    test = load_task(entry.ref, {"split": "test"})
    assert val.num_train == test.num_train and val.num_val > 0 and test.num_val > 0
    xv, xt = val.val_data[0], test.val_data[0]
    assert not torch.equal(xv[: len(xt)], xt[: len(xv)]), name
    if name not in REPEATED_ROWS:
        train, held_val, held_test = _rows(val.train_data[0]), _rows(xv), _rows(xt)
        assert train.isdisjoint(held_val) and train.isdisjoint(held_test), name
        assert held_val.isdisjoint(held_test), name
    # the model, loss and metric fit the data: one forward pass scores a batch
    hp = HParams(batch_size=val.default_batch_size).to_dict()
    model = val.build_model(hp)
    x, y = val.train_data[0][:8], val.train_data[1][:8]
    out = model(x)
    assert torch.isfinite(val.loss_fn(out, y))
    assert torch.isfinite(val.metric(out, y))


@pytest.mark.parametrize("name", list(HELDOUT))
def test_heldout_task_counts_its_test_reads_and_refuses_them_while_sealed(name, in_root):
    entry = HELDOUT[name]
    before = dict(_common.TEST_READS)
    with fair.sealed(), pytest.raises(UsageError, match="read while sealed"):
        load_task(entry.ref, {"split": "test"})
    assert before == _common.TEST_READS, name
    load_task(entry.ref, {"split": "val"})  # the validation split is not counted
    assert before == _common.TEST_READS, name
    test = load_task(entry.ref, {"split": "test"})
    assert _common.TEST_READS[test.name] == before.get(test.name, 0) + 1


def test_the_oracles_heldout_zoo_has_its_own_file():
    zoo, path = oracle.ZOOS["heldout"]
    assert zoo is HELDOUT and path == oracle.HELDOUT_JSON
    assert path.name == "heldout_oracle.json" and path != oracle.ORACLE_JSON
    assert oracle.ZOOS["dev"] == (ZOO, oracle.ORACLE_JSON)
    for name, summary in oracle.load(path).items():  # what has been run: whole grids
        entry = HELDOUT[name]
        assert summary["ref"] == entry.ref
        n_points = 2 * len(entry.lrs) * len(entry.weight_decays) * 2
        assert len(summary["rows"]) == 3 * n_points, name
        if "test" in summary:
            best = oracle.reference(summary).best_point
            assert tuple(summary["test"]["best_point"]) == best, name


def test_oracle_quick_reads_the_heldout_file_only():
    out = subprocess.run(
        [sys.executable, "benchmarks/oracle.py", "--zoo", "heldout", "--quick"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    assert "held-out zoo's oracles" in out.stdout
    assert "`benchmarks/zoo/heldout_oracle.json`" in out.stdout
    assert all(f"| {name} |" in out.stdout for name in HELDOUT)
    assert not any(f"| {name} |" in out.stdout for name in ZOO)
    bad = subprocess.run(
        [sys.executable, "benchmarks/oracle.py", "--zoo", "heldout", "--tasks", "wine-mlp"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert bad.returncode != 0 and "unknown zoo task" in bad.stderr


SHAPES = {
    "deepsets-sum": (15, "sgd", 3000, 1000, "regression", "r2"),
    "groupnorm-cnn": (15, "sgd", 1079, 359, "classification", "accuracy"),
    "quantile-reg": (20, "sgd", 3600, 1200, "regression", "d2_pinball"),
    "glu-mlp-adamw": (10, "adamw", 4800, 1600, "classification", "accuracy"),
    "matrix-factor": (20, "sgd", 14400, 4800, "regression", "r2"),
    "denoise-conv1d": (8, "adamw", 1800, 600, "regression", "r2"),
    "tanh-mlp": (20, "sgd", 3600, 1200, "classification", "accuracy"),
    "manyclass-adamw": (15, "adamw", 7200, 2400, "classification", "accuracy"),
    "sparse-bow": (10, "sgd", 3000, 1000, "classification", "accuracy"),
    "huber-outliers": (20, "sgd", 3000, 1000, "regression", "r2"),
    "distill-soft": (15, "adamw", 3600, 1200, "classification", "agreement"),
    "adding-lstm": (12, "adamw", 3000, 1000, "regression", "r2"),
    "gin-graphs": (15, "sgd", 2400, 800, "classification", "accuracy"),
    "fourier-coords": (20, "adamw", 4516, 1505, "regression", "r2"),
    "negation-transformer": (10, "adamw", 2400, 800, "classification", "accuracy"),
    "mnist1d-vae": (20, "sgd", 3000, 1000, "regression", "r2"),
}
"""The sixteen held-out tasks added last (2026-12-07 and 08): epochs, optimizer, training and
validation samples, kind and metric. The first four were read at ``ed7740b``, the next four
at ``8f0e2fe``, the next four at ``e0249db``; the last four are unread."""


@pytest.mark.parametrize("name", list(SHAPES))
def test_the_tasks_added_last_have_their_epochs_sizes_and_pass_the_task_check(name, in_root):
    from disciplined.tasks.check import check_task

    val = load_task(HELDOUT[name].ref)
    check_task(val)
    got = (HELDOUT[name].epochs, HELDOUT[name].optimizer, val.num_train, val.num_val)
    assert (*got, val.kind, val.metric_name) == SHAPES[name]


def test_deepsets_is_invariant_to_the_order_of_a_sets_elements_and_its_padding(in_root):
    from zoo.heldout import SET_SIZE, _DeepSets

    task = load_task(HELDOUT["deepsets-sum"].ref)
    x = task.train_data[0][:16]
    assert x.shape == (16, SET_SIZE, 2)
    sizes = x[..., 1].sum(1)
    assert bool(((sizes >= 10) & (sizes <= SET_SIZE)).all())
    assert bool((x[..., 0][x[..., 1] == 0] == 0).all())  # padding is (0, 0)
    torch.manual_seed(0)
    model = _DeepSets().eval()
    shuffled = x[:, torch.randperm(SET_SIZE)]
    with torch.no_grad():
        out = model(x)
        assert out.shape == (16, 1)
        assert torch.allclose(out, model(shuffled), atol=1e-5)
        # a padded slot's value is ignored
        moved = x.clone()
        moved[..., 0] = torch.where(moved[..., 1] > 0, moved[..., 0], torch.tensor(5.0))
        assert torch.allclose(out, model(moved), atol=1e-5)


def test_groupnorm_cnn_has_no_batchnorm_and_scores_a_sample_alike_alone_or_in_a_batch(in_root):
    task = load_task(HELDOUT["groupnorm-cnn"].ref)
    x = task.train_data[0][:8]
    assert x.shape == (8, 1, 8, 8)
    torch.manual_seed(0)
    model = task.build_model({})
    kinds = {type(m) for m in model.modules()}
    assert torch.nn.GroupNorm in kinds
    assert not any(issubclass(k, torch.nn.modules.batchnorm._BatchNorm) for k in kinds)
    model.train()  # GroupNorm uses no batch statistics, even while training
    with torch.no_grad():
        assert torch.allclose(model(x)[:1], model(x[:1]), atol=1e-5)


def test_pinball_loss_and_its_d2_on_known_inputs():
    from sklearn.metrics import d2_pinball_score
    from zoo.heldout import QUANTILE, _pinball, pinball_d2

    assert QUANTILE == 0.9
    y = torch.tensor([0.0, 1.0, 2.0, 3.0])
    # above the target costs 0.1 per unit, below it 0.9
    assert _pinball(torch.tensor([1.0, 1.0, 1.0, 1.0]), y).item() == pytest.approx(
        (0.1 * 1 + 0 + 0.9 * 1 + 0.9 * 2) / 4
    )
    assert _pinball(y.reshape(-1, 1), y).item() == 0.0  # the model's (n, 1) outputs
    assert pinball_d2(y.reshape(-1, 1), y).item() == pytest.approx(1.0)
    const = torch.quantile(y, 0.9).expand(4, 1)
    assert pinball_d2(const, y).item() == pytest.approx(0.0, abs=1e-6)
    g = torch.Generator().manual_seed(0)
    y = torch.randn(200, generator=g)
    f = 0.5 * y + torch.randn(200, generator=g)
    want = d2_pinball_score(y.numpy(), f.numpy(), alpha=0.9)
    assert pinball_d2(f.reshape(-1, 1), y).item() == pytest.approx(want, abs=1e-4)


def test_quantile_reg_targets_are_standardized_and_its_model_gives_one_output(in_root):
    task = load_task(HELDOUT["quantile-reg"].ref)
    x, y = task.train_data
    assert x.shape == (3600, 8) and y.shape == (3600,)
    assert abs(y.mean().item()) < 1e-4 and y.std().item() == pytest.approx(1.0, abs=1e-3)
    out = task.build_model({})(x[:8])
    assert out.shape == (8, 1)


def test_glu_mlp_is_gated_and_layer_normed(in_root):
    task = load_task(HELDOUT["glu-mlp-adamw"].ref)
    x, y = task.train_data
    assert x.shape == (4800, 32) and set(y.unique().tolist()) == set(range(5))
    model = task.build_model({})  # load_task imports the file afresh: compare by class name
    blocks = [m for m in model.modules() if type(m).__name__ == "_SwiGLUBlock"]
    assert len(blocks) == 2
    assert sum(isinstance(m, torch.nn.LayerNorm) for m in model.modules()) == 3
    assert model(x[:8]).shape == (8, 5)
    # the gate multiplies: a zero gate half silences a block
    block = blocks[0]
    with torch.no_grad():
        block.gate_up.weight[: block.out.in_features] = 0.0
        block.gate_up.bias[: block.out.in_features] = 0.0
        h = torch.randn(4, 96)
        assert torch.allclose(block(h), h + block.out.bias, atol=1e-6)


def test_matrix_factor_predicts_the_inner_product_plus_biases_of_its_ids(in_root):
    from zoo.heldout import MF_ITEMS, MF_USERS

    task = load_task(HELDOUT["matrix-factor"].ref)
    x = task.train_data[0]
    assert x.shape[1] == 2 and bool((x == x.round()).all())
    assert x[:, 0].min() >= 0 and x[:, 0].max() < MF_USERS and x[:, 1].max() < MF_ITEMS
    pairs = {tuple(r) for r in x.long().tolist()}
    assert len(pairs) == len(x)  # every (user, item) pair is rated once
    torch.manual_seed(0)
    model = task.build_model({})
    with torch.no_grad():
        model.user_bias.weight.fill_(0.5)
        model.bias.fill_(-0.25)
        u, i = 3, 7
        want = float(model.user.weight[u] @ model.item.weight[i]) + 0.5 - 0.25
        got = float(model(torch.tensor([[float(u), float(i)]]))[0, 0])
    assert got == pytest.approx(want, abs=1e-6)
    kinds = {type(m) for m in model.modules()} - {type(model)}
    assert kinds == {torch.nn.Embedding}  # embeddings only, no hidden layer


def test_denoise_maps_each_signal_to_one_of_the_same_length_and_tanh_mlp_has_no_norm(in_root):
    task = load_task(HELDOUT["denoise-conv1d"].ref)
    x, y = task.train_data[0][:4], task.train_data[1][:4]
    assert x.shape == y.shape == (4, 1, 128)
    torch.manual_seed(0)
    assert task.build_model({})(x).shape == (4, 1, 128)
    noise = (task.train_data[0] - task.train_data[1]).std()
    assert 0.45 < float(noise) < 0.55  # the input is the target plus noise of std 0.5
    tanh = load_task(HELDOUT["tanh-mlp"].ref).build_model({})
    acts = [m for m in tanh.modules() if not isinstance(m, torch.nn.Linear | torch.nn.Sequential)]
    assert [type(m) for m in acts[1:]] == [torch.nn.Tanh] * 4
    many = load_task(HELDOUT["manyclass-adamw"].ref)
    assert set(many.train_data[1].tolist()) == set(range(40))
    assert many.build_model({})(many.train_data[0][:2]).shape == (2, 40)


def test_sparse_bow_rows_are_mostly_zero_log_counts_of_short_documents(in_root):
    from zoo.heldout import BOW_TOPICS, BOW_VOCAB

    task = load_task(HELDOUT["sparse-bow"].ref)
    x, y = task.train_data
    assert x.shape == (3000, BOW_VOCAB) and set(y.tolist()) == set(range(BOW_TOPICS))
    counts = torch.expm1(x).round()
    assert torch.allclose(torch.log1p(counts), x, atol=1e-5)  # log(1 + a whole count)
    words = counts.sum(1)
    assert words.min() >= 15 and words.max() <= 60
    assert (x > 0).float().mean() < 0.05  # each row is mostly zeros


def test_huber_outliers_corrupts_only_the_training_targets(in_root):
    from zoo.heldout import _huber_loss

    task = load_task(HELDOUT["huber-outliers"].ref)
    y_train, y_val = task.train_data[1], task.val_data[1]
    # gross errors make the training targets heavy-tailed; the curated validation has none
    assert (y_train.abs() > 4).float().mean() > 0.03
    assert (y_val.abs() > 4).float().mean() < 0.01
    assert y_train.std() > 1.5 * y_val.std()
    # quadratic within 1 of the target, linear beyond
    got = _huber_loss(torch.tensor([[0.5], [3.0]]), torch.tensor([0.0, 0.0]))
    assert got.item() == pytest.approx((0.5 * 0.25 + (3.0 - 0.5)) / 2)


def test_distill_soft_targets_are_probability_rows_scored_by_their_arg_max(in_root):
    from zoo.heldout import DISTILL_CLASSES, _soft_cross_entropy, teacher_agreement

    task = load_task(HELDOUT["distill-soft"].ref)
    x, p = task.train_data
    assert x.shape == (3600, 32) and p.shape == (3600, DISTILL_CLASSES)
    assert torch.allclose(p.sum(1), torch.ones(3600), atol=1e-5) and bool((p > 0).all())
    # the teacher is soft: its top class holds well under all the mass on most rows
    assert p.max(1).values.median() < 0.9
    assert teacher_agreement(torch.log(p), p).item() == 1.0
    # the soft cross-entropy is least at the targets themselves (it is their entropy)
    at_targets = _soft_cross_entropy(torch.log(p), p)
    assert at_targets < _soft_cross_entropy(torch.zeros_like(p), p)
    entropy = -(p * torch.log(p)).sum(1).mean()
    assert at_targets.item() == pytest.approx(entropy.item(), rel=1e-5)


def test_adding_lstm_target_is_the_sum_of_the_two_marked_values(in_root):
    from zoo.heldout import ADDING_STEPS, _adding

    x, y = _adding()
    assert x.shape == (5000, ADDING_STEPS, 2)
    marks = x[..., 1]
    assert (marks.sum(1) == 2).all()
    half = ADDING_STEPS // 2
    assert (marks[:, :half].sum(1) == 1).all()  # one mark in each half
    assert abs((y - (x[..., 0] * marks).sum(1)).std() - 0.05) < 0.01  # noise of std 0.05
    task = load_task(HELDOUT["adding-lstm"].ref)
    torch.manual_seed(0)
    assert task.build_model({})(task.train_data[0][:3]).shape == (3, 1)


def test_gin_graphs_generators_differ_in_structure_and_padding_stays_zero(in_root):
    from zoo.heldout import _GIN, GRAPH_DEGREES, GRAPH_NODES, _graphs

    x, y = _graphs()
    adj, present = x[..., :GRAPH_NODES], x[..., GRAPH_NODES]
    assert (adj == adj.transpose(0, 2, 1)).all() and (adj.diagonal(0, 1, 2) == 0).all()
    assert (adj.sum(2)[present == 0] == 0).all() and (adj.sum(1)[present == 0] == 0).all()
    sizes = present.sum(1)
    assert sizes.min() == 12 and sizes.max() == GRAPH_NODES
    onehot = x[..., GRAPH_NODES + 1 :]
    assert onehot.shape[-1] == GRAPH_DEGREES and (onehot.sum(2) == present).all()
    # the communities close more triangles than Erdos-Renyi at the same mean degree, and the
    # lattice's degrees spread least (labels by generator, 5% redrawn)
    triangles = (adj @ adj @ adj).diagonal(0, 1, 2).sum(1) / 6 / sizes
    degrees = adj.sum(2)
    spread = ((degrees**2).sum(1) / sizes) - (degrees.sum(1) / sizes) ** 2
    tri = [float(triangles[y == k].mean()) for k in range(3)]
    var = [float(spread[y == k].mean()) for k in range(3)]
    assert tri[1] > 1.2 * tri[0] and var[2] < 0.5 * min(var[0], var[1])
    # the net ignores padding: the same graph padded differently scores the same
    torch.manual_seed(0)
    net = _GIN().eval()
    g = torch.tensor(x[:1])
    k = int(sizes[0])
    perm = torch.cat([torch.randperm(k), torch.arange(k, GRAPH_NODES)])
    moved = g[:, perm][:, :, torch.cat([perm, torch.arange(GRAPH_NODES, g.shape[2])])]
    assert torch.allclose(net(g), net(moved), atol=1e-5)  # and the node order


def test_fourier_coords_reads_coordinates_through_fixed_features(in_root):
    from zoo.heldout import FOURIER_FEATURES, _FourierMLP

    task = load_task(HELDOUT["fourier-coords"].ref)
    x, y = task.train_data
    assert x.shape == (4516, 2) and y.shape == (4516, 3)
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert torch.allclose(y.mean(0), torch.zeros(3), atol=1e-4)  # standardized per channel
    a, b = _FourierMLP(), _FourierMLP()
    assert torch.equal(a.freqs, b.freqs) and a.freqs.shape == (2, FOURIER_FEATURES)
    names = {n for n, _ in a.named_parameters()}
    assert "freqs" not in names and "freqs" in dict(a.named_buffers())  # never trained


def test_negation_transformer_labels_read_not_and_very(in_root):
    from zoo.heldout import NEG_NOT, NEG_VERY, _negation_sentences, _polarity

    x, y = _negation_sentences()
    tok = x.astype(int)
    pol = _polarity()
    w = pol[tok]
    w[:, 1:] *= np.where(tok[:, :-1] == NEG_NOT, -1.0, np.where(tok[:, :-1] == NEG_VERY, 2.0, 1.0))
    rule = (w.sum(1) > 0).astype(int)
    assert 0.95 < (rule == y).mean() < 0.99  # 3% of the labels flipped
    bag = (pol[tok].sum(1) > 0).astype(int)  # the same words without their modifiers
    assert (bag == y).mean() < 0.9
    task = load_task(HELDOUT["negation-transformer"].ref)
    net = task.build_model({"dropout": 0.0})
    assert net(task.train_data[0][:4]).shape == (4, 2)


def test_mnist1d_vae_samples_in_training_and_decodes_its_mean_in_evaluation(in_root):
    from zoo.heldout import VAE_LATENT, _negative_elbo, reconstruction_r2

    task = load_task(HELDOUT["mnist1d-vae"].ref)
    x, t = task.train_data
    assert x.shape == (3000, 40) and t.shape == (3000, 40 + 2 * VAE_LATENT)
    assert torch.equal(t[:, :40], x) and bool((t[:, 40:] == 0).all())
    torch.manual_seed(0)
    net = task.build_model({})
    net.eval()
    assert torch.equal(net(x[:5]), net(x[:5]))  # the posterior mean: deterministic
    net.train()
    assert not torch.equal(net(x[:5]), net(x[:5]))  # a sample of the posterior
    # the loss of a perfect reconstruction from a standard-normal posterior is zero
    perfect = torch.cat([x[:5], torch.zeros(5, 2 * VAE_LATENT)], 1)
    assert _negative_elbo(perfect, t[:5]).item() == pytest.approx(0.0, abs=1e-6)
    assert reconstruction_r2(perfect, t[:5]).item() == pytest.approx(1.0)
