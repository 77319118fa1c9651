"""Hugging Face ``Trainer``: the range test on its model and data, and 1cycle as a callback.

    from disciplined.integrations.transformers import OneCycleCallback, find_lr_for_trainer

    test = find_lr_for_trainer(trainer)            # model and optimizer restored after it
    trainer.add_callback(OneCycleCallback(max_lr=test.max_lr))
    trainer.train()

`find_lr_for_trainer` runs `disciplined.lr_range_test` with the trainer's own model,
optimizer (``create_optimizer``), training and evaluation loaders and loss
(``compute_loss``). `OneCycleCallback` writes the LR and momentum (``betas[0]`` for AdamW)
before every optimizer step from ``state.global_step``; the trainer's own scheduler is then
overridden step by step, so a resumed run continues the cycle. Install with ``pip install
'disciplined[transformers]'``.
"""

from __future__ import annotations

from typing import Any

import torch

from disciplined.errors import UsageError
from disciplined.integrations import apply_policy, cycle_settings, require
from disciplined.measure.range_test import RangeTest, lr_range_test
from disciplined.schedules.policies import OneCyclePolicy
from disciplined.training.fit import BatchLoss

transformers = require("transformers", "transformers")

__all__ = ["OneCycleCallback", "find_lr_for_trainer"]


def find_lr_for_trainer(trainer: Any, *, validate: bool = True, **range_test: Any) -> RangeTest:
    """Run the LR range test on ``trainer``'s model with its optimizer, its training loader
    and its ``compute_loss``; the evaluation loader's loss is read too when the trainer has
    an ``eval_dataset`` and ``validate`` is true. Keyword arguments go to `lr_range_test`
    (``num_steps``, ``end_lr``, ...). Model and optimizer come back exactly as they were; the
    test's ``max_lr`` raises `UsageError` with the reason when it is inconclusive."""
    model = trainer.model
    optimizer = trainer.create_optimizer()
    if optimizer is None:
        raise UsageError("the trainer built no optimizer")
    train = trainer.get_train_dataloader()
    val = trainer.get_eval_dataloader() if validate and trainer.eval_dataset is not None else None

    def loss(m: torch.nn.Module, batch: Any) -> torch.Tensor:
        return trainer.compute_loss(m, batch)

    range_test.setdefault("device", trainer.args.device)
    return lr_range_test(model, optimizer, BatchLoss(loss), train, val_data=val, **range_test)


class OneCycleCallback(transformers.TrainerCallback):
    """Smith's 1cycle with cyclical momentum for a ``transformers.Trainer``.

    ``total_steps`` defaults to the run's ``state.max_steps``. Before each optimizer step the
    LR and momentum of step ``state.global_step`` are written into the optimizer, whatever
    the trainer's ``lr_scheduler_type``; a run resumed from a checkpoint continues the cycle
    because the values depend on the step alone.
    """

    def __init__(
        self,
        max_lr: float,
        *,
        total_steps: int | None = None,
        div: float = 10.0,
        max_momentum: float = 0.95,
        min_momentum: float = 0.85,
        annihilation: float = 0.1,
    ) -> None:
        """A 1cycle peaking at ``max_lr``; see `OneCyclePolicy` for the other values."""
        self.settings = cycle_settings(max_lr, div, max_momentum, min_momentum, annihilation)
        self.total_steps = total_steps
        self.policy: OneCyclePolicy | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Size the cycle to the run."""
        total = self.total_steps or int(state.max_steps)
        self.policy = OneCyclePolicy(total_steps=total, **self.settings)
        self._apply(state, kwargs.get("optimizer"))

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Write the values for the optimizer step about to be taken."""
        self._apply(state, kwargs.get("optimizer"))

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Write them again just before the step (the trainer's scheduler ran since)."""
        self._apply(state, kwargs.get("optimizer"))

    def _apply(self, state: Any, optimizer: Any) -> None:
        if self.policy is None or optimizer is None:
            return
        apply_policy(getattr(optimizer, "optimizer", optimizer), self.policy, state.global_step)
