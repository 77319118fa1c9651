"""The Hugging Face integration, on a tiny randomly initialised model (no hub download)."""

from __future__ import annotations

import copy

import pytest
import torch

transformers = pytest.importorskip("transformers")

from disciplined import OneCyclePolicy  # noqa: E402
from disciplined.integrations.transformers import (  # noqa: E402
    OneCycleCallback,
    find_lr_for_trainer,
)


class Tokens(torch.utils.data.Dataset):
    """Sequences of 12 token ids; the label says whether token 7 occurs."""

    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(1, 40, (n, 12), generator=g)
        self.labels = (self.ids == 7).any(1).long()

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.labels[i]}


def _trainer(tmp_path, callbacks=(), **kw):
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=40,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
        num_labels=2,
    )
    model = transformers.BertForSequenceClassification(config)
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=16,
        per_device_eval_batch_size=64,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        seed=0,
        data_seed=0,
        dataloader_num_workers=0,
        **kw,
    )
    return transformers.Trainer(
        model=model,
        args=args,
        train_dataset=Tokens(256, 0),
        eval_dataset=Tokens(128, 1),
        callbacks=list(callbacks),
    )


def test_find_lr_for_trainer_reads_a_curve_and_restores_model_and_optimizer(tmp_path):
    trainer = _trainer(tmp_path, learning_rate=1e-3)
    before = copy.deepcopy(trainer.model.state_dict())
    test = find_lr_for_trainer(trainer, num_steps=60, end_lr=1.0, seed=0)
    for k, v in trainer.model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert len(test.losses) >= 30 and test.val_losses  # the eval loader was read too
    assert trainer.optimizer.state_dict()["state"] == {}  # as created: no steps taken
    assert trainer.optimizer.param_groups[0]["lr"] == 1e-3
    assert test.suggestion is not None and 1e-5 < test.suggestion.max_lr <= 1.0


class Record(transformers.TrainerCallback):
    def __init__(self) -> None:
        self.seen: list[tuple[float, float]] = []

    def on_pre_optimizer_step(self, args, state, control, optimizer=None, **kw):
        g = optimizer.param_groups[0]
        self.seen.append((g["lr"], g["betas"][0]))


def test_the_callback_drives_lr_and_betas_at_every_step(tmp_path):
    record = Record()
    # the callback runs before the recorder: both act on_pre_optimizer_step, in order
    trainer = _trainer(
        tmp_path, [OneCycleCallback(max_lr=3e-3), record], max_steps=24, lr_scheduler_type="linear"
    )
    trainer.train()
    policy = OneCyclePolicy(max_lr=3e-3, total_steps=24)
    assert record.seen == [(policy.lr(i), policy.momentum(i)) for i in range(24)]
