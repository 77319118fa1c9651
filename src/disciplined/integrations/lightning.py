"""Lightning: the range test on a ``LightningModule`` and Smith's 1cycle as a callback.

    from disciplined.integrations.lightning import OneCycle, find_lr

    test = find_lr(module, datamodule=dm)          # writes module.lr (or hparams.lr)
    trainer = L.Trainer(max_epochs=10, callbacks=[OneCycle(max_lr=test.max_lr)])
    trainer.fit(module, datamodule=dm)

`find_lr` runs `disciplined.lr_range_test` on the module itself: its own
``configure_optimizers`` and ``training_step`` (the loss it returns is the curve), the
datamodule's or module's loaders, and it puts weights and optimizer back bit for bit.
`OneCycle` sets the LR and momentum (``betas[0]`` for Adam-style optimizers) before every
optimizer step from the trainer's ``global_step``, so a run resumed from a Lightning
checkpoint continues the cycle where it stopped. Install with ``pip install
'disciplined[lightning]'``.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

from disciplined.errors import UsageError
from disciplined.integrations import apply_policy, cycle_settings, require
from disciplined.measure.range_test import RangeTest, lr_range_test
from disciplined.schedules.policies import OneCyclePolicy
from disciplined.training.fit import BatchLoss

L = require("lightning.pytorch", "lightning")

__all__ = ["LightningTuneResult", "OneCycle", "find_lr", "tune_lightning"]


def _optimizer(module: Any) -> torch.optim.Optimizer:
    """The one optimizer ``configure_optimizers`` returns, in any of Lightning's shapes."""
    got = module.configure_optimizers()
    if isinstance(got, dict):
        got = got.get("optimizer")
    if isinstance(got, list | tuple):
        first = got[0] if got else None
        if isinstance(first, list | tuple):  # ([optimizers], [schedulers])
            first = first[0] if first else None
        if isinstance(first, dict):
            first = first.get("optimizer")
        if len(got) > 1 and isinstance(got[1], torch.optim.Optimizer):
            raise UsageError("find_lr supports one optimizer; configure_optimizers gave several")
        got = first
    if not isinstance(got, torch.optim.Optimizer):
        raise UsageError(
            f"configure_optimizers must return an optimizer (or Lightning's dict/list of one), "
            f"got {type(got).__name__}"
        )
    return got


def _loader(source: Any, name: str) -> Any:
    try:
        return getattr(source, name)()
    except (AttributeError, NotImplementedError):
        return None
    except Exception as exc:  # Lightning raises MisconfigurationException when undefined
        if type(exc).__name__ == "MisconfigurationException":
            return None
        raise


def _prepare(datamodule: Any) -> None:
    """Get ``datamodule`` ready as Lightning's Trainer does before it asks for loaders:
    ``prepare_data()``, then ``setup("fit")`` (a datamodule that builds its data sets in
    ``setup`` has none before)."""
    for hook, args in (("prepare_data", ()), ("setup", ("fit",))):
        method = getattr(datamodule, hook, None)
        if callable(method):
            method(*args)


def _loaders(module: Any, datamodule: Any, train: Any, val: Any) -> tuple[Any, Any]:
    """The training and validation loaders: those given, else the datamodule's (made ready
    as the Trainer would, `_prepare`), else the module's own (the module's validation loader
    only when no training loader was given, so loaders passed by hand are never mixed with
    the module's)."""
    given = train is not None
    if datamodule is not None and (train is None or val is None):
        _prepare(datamodule)
    if train is None and datamodule is not None:
        train = _loader(datamodule, "train_dataloader")
    if train is None:
        train = _loader(module, "train_dataloader")
    if val is None and datamodule is not None:
        val = _loader(datamodule, "val_dataloader")
    if val is None and not given:
        val = _loader(module, "val_dataloader")
    return train, val


def find_lr(
    module: Any,
    *,
    trainer: Any = None,
    datamodule: Any = None,
    train_dataloaders: Any = None,
    val_dataloaders: Any = None,
    attr: str | None = None,
    **range_test: Any,
) -> RangeTest:
    """Run the LR range test on ``module`` (a ``LightningModule``) and write the suggested
    max LR back into it: ``module.<attr>`` when it has that attribute, else
    ``module.hparams[<attr>]``; ``attr`` defaults to the first of ``lr`` and
    ``learning_rate`` the module has (as Lightning's own tuner does), and nothing is written
    when it has neither. The loaders are ``train_dataloaders``/``val_dataloaders``, else the
    ``datamodule``'s, else the module's own; validation is optional. The device is the
    ``trainer``'s when given, else where the module is. Keyword arguments go to
    `lr_range_test` (``num_steps``, ``end_lr``, ``rule``, ...). Weights and optimizer come
    back exactly as they were. An inconclusive test raises `UsageError` saying why.
    """
    train, val = _loaders(module, datamodule, train_dataloaders, val_dataloaders)
    if train is None:
        raise UsageError("find_lr needs training data: train_dataloaders, a datamodule, or "
                         "the module's train_dataloader()")
    if trainer is not None and "device" not in range_test:
        range_test["device"] = trainer.strategy.root_device
    optimizer = _optimizer(module)
    test = lr_range_test(module, optimizer, _batch_step_loss(), train, val_data=val, **range_test)
    max_lr = test.max_lr  # raises, with the reason, when inconclusive
    _write_back(module, (attr,) if attr else ("lr", "learning_rate"), max_lr)
    return test


class OneCycle(L.Callback):
    """Smith's 1cycle with cyclical momentum on the module's optimizer(s).

    ``total_steps`` defaults to the trainer's ``estimated_stepping_batches`` (optimizer
    steps over all epochs, accumulation counted). The values for step ``global_step`` are
    written before each optimizer step, so Lightning's own schedulers should be left out of
    ``configure_optimizers``. The policy is saved in the checkpoint and taken back on
    resume, with the step, so the cycle goes on as if never stopped.
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
        super().__init__()
        self.settings = cycle_settings(max_lr, div, max_momentum, min_momentum, annihilation)
        self.total_steps = total_steps
        self.policy: OneCyclePolicy | None = None
        if total_steps is not None:
            self.policy = OneCyclePolicy(total_steps=total_steps, **self.settings)

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        """Size the cycle (unless given or restored) and write step ``global_step``."""
        if self.policy is None:
            total = int(trainer.estimated_stepping_batches)
            self.policy = OneCyclePolicy(total_steps=total, **self.settings)
        self._apply(trainer)

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, idx: int) -> None:
        """Write the values for the optimizer step this batch contributes to."""
        self._apply(trainer)

    def _apply(self, trainer: Any) -> None:
        assert self.policy is not None
        for optimizer in trainer.optimizers:
            apply_policy(optimizer, self.policy, trainer.global_step)

    def state_dict(self) -> dict[str, Any]:
        """The policy, so a resumed run keeps the cycle it started with."""
        return {"policy": self.policy.to_dict() if self.policy else None}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Take the checkpoint's policy back."""
        saved = state_dict.get("policy")
        if saved:
            from disciplined.schedules.policies import policy_from_dict

            policy = policy_from_dict(saved)
            if not isinstance(policy, OneCyclePolicy):
                raise UsageError(f"the checkpoint holds a {type(policy).__name__}, not 1cycle")
            self.policy = policy


def _optimizer_name(optimizer: torch.optim.Optimizer) -> str:
    """The recipe's optimizer family for the user's own: SGD, or AdamW for Adam-style."""
    if isinstance(optimizer, torch.optim.SGD):
        return "sgd"
    if isinstance(optimizer, torch.optim.Adam | torch.optim.AdamW):
        return "adamw"
    raise UsageError(
        f"tune_lightning supports SGD and Adam/AdamW optimizers, got {type(optimizer).__name__}"
    )


class LightningTuneResult:
    """What `tune_lightning` chose: the `HParams`, the `Decision` of each step with its
    evidence, and a `OneCycle` callback set to the choice."""

    def __init__(self, hparams: Any, decisions: list[Any]) -> None:
        """Wrap the chosen ``hparams`` and the ``decisions`` that chose them."""
        self.hparams = hparams
        self.decisions = decisions

    def callback(self, **kwargs: Any) -> OneCycle:
        """A `OneCycle` at the chosen max LR and momenta (``kwargs`` override)."""
        settings = {
            "max_momentum": self.hparams.max_momentum,
            "min_momentum": self.hparams.min_momentum,
            **kwargs,
        }
        return OneCycle(max_lr=self.hparams.max_lr, **settings)


def tune_lightning(
    module: Any,
    *,
    datamodule: Any = None,
    train_dataloaders: Any = None,
    val_dataloaders: Any = None,
    num_steps: int = 300,
    seed: int = 0,
    device: str | None = None,
    out: str | None = None,
) -> LightningTuneResult:
    """The recipe's range-test steps on a ``LightningModule``: the max LR, weight decay (Smith's
    grid for the model and data size), momentum, and the max LR again at the cycle's peak
    momentum on two seeds (`disciplined.studies.learning_rate`). Every trial trains a copy
    of ``module`` as it is now with its ``training_step`` as the loss, through the loaders
    as given (`find_lr`'s sources) re-batched at the batch size of the training loader; the
    validation loader is required (the weight-decay and momentum rules read it). The module
    itself is not trained; its ``lr`` (or ``learning_rate``) and ``weight_decay``, as
    attributes or hparams, are set to the choice. ``out`` keeps the plots.
    """
    import copy

    from disciplined.studies import (
        StudyContext,
        learning_rate_test,
        peak_momentum,
        range_test_steps,
        starting_hparams,
    )
    from disciplined.tasks import Task
    from disciplined.training.devices import device_and_amp, model_device
    from disciplined.trials.spec import run_trial

    train, val = _loaders(module, datamodule, train_dataloaders, val_dataloaders)
    if train is None or val is None:
        raise UsageError("tune_lightning needs training and validation loaders")
    optimizer = _optimizer_name(_optimizer(module))
    start = copy.deepcopy(module)
    task = Task.from_loaders(
        train,
        val,
        lambda: copy.deepcopy(start),
        loss_fn=_batch_step_loss(),
        metric=_no_metric,
        metric_name="val_loss",
        higher_is_better=False,
        name=type(module).__name__,
    )
    where, _ = device_and_amp(device or model_device(module))
    ctx = StudyContext(
        task=task.name,
        task_obj=task,
        runner=lambda spec: run_trial(spec, task=task),
        device=where,
    )
    hp = starting_hparams(task, optimizer)
    decisions: list[Any] = []

    def keep(_step: str, d: Any) -> Any:
        decisions.append(d)
        return d

    hp = range_test_steps(ctx, hp, num_steps=num_steps, seed=seed, record=keep)
    decisions.append(
        learning_rate_test(ctx, peak_momentum(hp), num_steps=num_steps, seed=seed,
                           tag="final", repeats=True)
    )
    hp = hp.with_(max_lr=decisions[-1].value)
    if out:
        from disciplined.report.save import drawn

        decisions = [drawn(d, ctx.results, out) for d in decisions]
    _write_back(module, ("lr", "learning_rate"), hp.max_lr)
    _write_back(module, ("weight_decay",), hp.weight_decay)
    return LightningTuneResult(hp, decisions)


def _batch_step_loss() -> BatchLoss:
    """The loss of a trial's own copy of the module: its ``training_step``."""

    def loss(model: Any, batch: Any) -> torch.Tensor:
        with warnings.catch_warnings():  # self.log() outside a Trainer only warns
            warnings.filterwarnings("ignore", message=r".*self\.log\(\).*")
            out = model.training_step(batch, 0)
        if isinstance(out, dict):
            out = out.get("loss")
        if not isinstance(out, torch.Tensor):
            raise UsageError("training_step must return the loss (a tensor or {'loss': ...})")
        return out

    return BatchLoss(loss)


def _no_metric(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return torch.tensor(float("nan"))


def _write_back(module: Any, names: tuple[str, ...], value: float) -> None:
    for name in names:
        if hasattr(module, name):
            setattr(module, name, value)
            return
        hparams = getattr(module, "hparams", None)
        if hparams is not None and name in hparams:
            hparams[name] = value
            return
