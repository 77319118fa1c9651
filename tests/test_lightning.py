"""The Lightning integration: `find_lr` on a LightningModule, the `OneCycle` callback."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

L = pytest.importorskip("lightning.pytorch")

from disciplined import OneCyclePolicy, lr_range_test  # noqa: E402
from disciplined.integrations.lightning import OneCycle, find_lr  # noqa: E402

warnings.filterwarnings("ignore", ".*does not have many workers.*")
warnings.filterwarnings("ignore", ".*self.log.*")


def _data(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    return TensorDataset(x, (x[:, :2].sum(1) > 0).long())


class Classifier(L.LightningModule):
    def __init__(self, lr: float = 1e-3, adam: bool = False) -> None:
        super().__init__()
        self.save_hyperparameters()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2))
        self.seen: list[tuple[float, float]] = []

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, idx):
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self(x), y))

    def configure_optimizers(self):
        if self.hparams.adam:
            return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)
        return {"optimizer": torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9)}

    def train_dataloader(self):
        return DataLoader(_data(512, 0), batch_size=32, shuffle=False)

    def val_dataloader(self):
        return DataLoader(_data(256, 1), batch_size=64)


def test_find_lr_equals_the_plain_range_test_and_restores_the_module():
    module = Classifier()
    before = copy.deepcopy(module.state_dict())
    test = find_lr(module, num_steps=120, seed=0)
    for k, v in module.state_dict().items():
        assert torch.equal(v, before[k]), k  # bit for bit
    assert module.hparams.lr == test.max_lr  # written back (hparams: no `lr` attribute)

    # the same test in plain PyTorch on the same weights, optimizer and loaders
    plain = Classifier().net
    opt = torch.optim.SGD(plain.parameters(), lr=1e-3, momentum=0.9)
    ref = lr_range_test(
        plain,
        opt,
        nn.functional.cross_entropy,
        module.train_dataloader(),
        val_data=module.val_dataloader(),
        num_steps=120,
        seed=0,
    )
    assert test.losses == ref.losses and test.val_losses == ref.val_losses
    assert test.suggestion == ref.suggestion


def _trainer(tmp_path, callbacks, max_epochs, **kw):
    return L.Trainer(
        max_epochs=max_epochs,
        callbacks=callbacks,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        num_sanity_val_steps=0,
        **kw,
    )


class Record(L.Callback):
    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        g = optimizer.param_groups[0]
        m = g["momentum"] if "momentum" in g else g["betas"][0]
        pl_module.seen.append((g["lr"], m))


@pytest.mark.parametrize("adam", [False, True])
def test_one_cycle_sets_smiths_schedule_at_every_step(tmp_path, adam):
    module = Classifier(adam=adam)
    _trainer(tmp_path, [OneCycle(max_lr=0.05), Record()], max_epochs=2).fit(module)
    policy = OneCyclePolicy(max_lr=0.05, total_steps=32)  # 512 / 32 = 16 steps an epoch
    assert module.seen == [(policy.lr(i), policy.momentum(i)) for i in range(32)]


class Stop(L.Callback):
    def __init__(self, after: int) -> None:
        self.after = after

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step >= self.after:
            trainer.should_stop = True


def test_one_cycle_resumes_from_a_checkpoint_where_it_stopped(tmp_path):
    full = Classifier()
    _trainer(tmp_path / "a", [OneCycle(max_lr=0.05), Record()], max_epochs=3).fit(full)

    first = Classifier()
    trainer = _trainer(tmp_path / "b", [OneCycle(max_lr=0.05), Record(), Stop(20)], max_epochs=3)
    trainer.fit(first)  # interrupted after 20 of its 48 steps
    assert len(first.seen) == 20
    ckpt = tmp_path / "stop.ckpt"
    trainer.save_checkpoint(ckpt)
    second = Classifier()
    # a callback built with another max LR: the checkpoint's cycle wins
    _trainer(tmp_path / "b", [OneCycle(max_lr=0.5), Record()], max_epochs=3).fit(
        second, ckpt_path=ckpt
    )
    # Lightning restarts the interrupted epoch's loader at the next epoch, with global_step
    # 20: the cycle goes on from step 20 of the original 48-step cycle, not a new one
    assert first.seen == full.seen[:20] and len(second.seen) >= 16
    assert second.seen == full.seen[20 : 20 + len(second.seen)]


def test_tune_lightning_decides_as_the_recipe_does_on_the_same_plain_model(tmp_path):
    from disciplined.integrations.lightning import tune_lightning
    from disciplined.studies import (
        StudyContext,
        learning_rate_test,
        momentum_test,
        peak_momentum,
        weight_decay_sweep,
    )
    from disciplined.tasks import Task
    from disciplined.trials.hparams import HParams
    from disciplined.trials.spec import run_trial

    module = Classifier()
    before = copy.deepcopy(module.state_dict())
    result = tune_lightning(module, num_steps=100, out=str(tmp_path))
    assert [d.name for d in result.decisions] == [
        "learning_rate", "weight_decay", "momentum", "learning_rate"
    ]
    assert all(torch.equal(v, before[k]) for k, v in module.state_dict().items())
    assert module.hparams.lr == result.hparams.max_lr == result.decisions[-1].value
    assert (tmp_path / "weight_decay.png").exists()

    # the same four studies on the bare network and its loss give the same decisions
    plain = Task.from_loaders(
        module.train_dataloader(), module.val_dataloader(), lambda: Classifier().net
    )
    ctx = StudyContext(task="plain", task_obj=plain, runner=lambda s: run_trial(s, task=plain))
    hp = HParams(max_lr=0.1, max_momentum=0.9, min_momentum=0.9, batch_size=32)
    lr0 = learning_rate_test(ctx, hp, num_steps=100)
    hp = hp.with_(max_lr=lr0.value)
    wd = weight_decay_sweep(ctx, hp, None, num_steps=100)
    hp = hp.with_(weight_decay=wd.value)
    mom = momentum_test(ctx, hp, num_steps=100)
    hp = hp.with_(max_momentum=mom.extra["max_momentum"], min_momentum=mom.extra["min_momentum"])
    final = learning_rate_test(ctx, peak_momentum(hp), num_steps=100, tag="final", repeats=True)
    assert [d.value for d in result.decisions] == [lr0.value, wd.value, mom.value, final.value]
    cb = result.callback()
    assert cb.settings["max_lr"] == final.value
    assert cb.settings["min_momentum"] == result.hparams.min_momentum


class Digits(L.LightningDataModule):
    """A datamodule as the Lightning docs write one: its data sets exist only after
    ``setup``, which the Trainer calls (``prepare_data`` first)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def prepare_data(self) -> None:
        self.calls.append("prepare_data")

    def setup(self, stage: str) -> None:
        self.calls.append(f"setup:{stage}")
        self.train_set, self.val_set = _data(512, 0), _data(256, 1)

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=32)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=64)


def test_find_lr_gets_a_datamodule_ready_as_the_trainer_does():
    dm = Digits()
    test = find_lr(Classifier(), datamodule=dm, num_steps=120, seed=0)
    assert dm.calls == ["prepare_data", "setup:fit"]
    # the same reading as with the module's own loaders over the same data
    assert test.max_lr == find_lr(Classifier(), num_steps=120, seed=0).max_lr
    assert test.val_losses  # the datamodule's validation loader was read
