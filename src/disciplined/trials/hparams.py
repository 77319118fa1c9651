"""A set of hyper-parameters, and training a task with it.

`HParams` is the record every step of the recipe reads and writes; `train_task` turns a task
and an `HParams` into a model, an optimizer and a schedule, and runs `fit`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import torch
from torch import nn

from disciplined.errors import UsageError
from disciplined.schedules.policies import ConstantPolicy, OneCyclePolicy, StepPolicy
from disciplined.schedules.scheduler import PolicyScheduler
from disciplined.tasks import Task
from disciplined.training.fit import EvalRule, History, batches_per_epoch, fit
from disciplined.trials.bounds import check_value

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("one-cycle", "constant", "step")
RANGED = (
    "max_lr",
    "div",
    "max_momentum",
    "min_momentum",
    "weight_decay",
    "batch_size",
    "dropout",
    "annihilation",
)
"""The fields of `HParams` checked against `bounds.BOUNDS`."""


@dataclass(frozen=True)
class HParams:
    """Hyper-parameters of one training run.

    ``max_lr`` is the peak of the 1cycle (or the constant / initial step LR); ``div`` sets
    ``min_lr = max_lr / div``. ``max_momentum``/``min_momentum`` are the cyclical momentum
    bounds (``betas[0]`` for AdamW); for the constant and step schedules ``max_momentum`` is
    used throughout. Each value is checked against its range in `bounds.BOUNDS` (the one
    ``--help`` states): out of it, or not a number, is a `UsageError` naming it.
    """

    max_lr: float = 0.1
    div: float = 10.0
    max_momentum: float = 0.95
    min_momentum: float = 0.85
    weight_decay: float = 0.0
    batch_size: int = 64
    dropout: float = 0.0
    optimizer: Literal["sgd", "adamw"] = "sgd"
    schedule: Literal["one-cycle", "constant", "step"] = "one-cycle"
    annihilation: float = 0.1

    def __post_init__(self) -> None:
        for name in RANGED:  # the ranges of `bounds.BOUNDS`, the ones --help states
            check_value(name, getattr(self, name))
        if self.min_momentum > self.max_momentum:
            raise UsageError(
                f"min_momentum must be in [0, max_momentum], got {self.min_momentum!r} > "
                f"max_momentum {self.max_momentum!r}"
            )
        for name, choices in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES)):
            if getattr(self, name) not in choices:
                raise UsageError(
                    f"{name} must be one of {', '.join(choices)}, got {getattr(self, name)!r}"
                )

    @property
    def min_lr(self) -> float:
        """The 1cycle's lower learning rate, ``max_lr / div``."""
        return self.max_lr / self.div

    def to_dict(self) -> dict[str, Any]:
        """Plain dictionary (JSON-ready), with ``min_lr`` added for readers."""
        d = asdict(self)
        d["min_lr"] = self.min_lr
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HParams:
        """Rebuild from `to_dict` output (extra keys such as ``min_lr`` are ignored)."""
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in names})

    def with_(self, **changes: Any) -> HParams:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)


def build_optimizer(model: nn.Module, hp: HParams) -> torch.optim.Optimizer:
    """SGD with momentum or AdamW, at ``hp``'s LR, momentum and weight decay; a model with
    nothing to train is a `UsageError`."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise UsageError(
            f"the model ({type(model).__name__}) has no trainable parameters "
            "(requires_grad=False): an optimizer has nothing to train"
        )
    if hp.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=hp.max_lr, momentum=hp.max_momentum, weight_decay=hp.weight_decay
        )
    return torch.optim.AdamW(
        params, lr=hp.max_lr, betas=(hp.max_momentum, 0.999), weight_decay=hp.weight_decay
    )


def build_policy(hp: HParams, total_steps: int) -> OneCyclePolicy | ConstantPolicy | StepPolicy:
    """The schedule ``hp.schedule`` names, over ``total_steps`` steps."""
    if hp.schedule == "one-cycle":
        return OneCyclePolicy(
            max_lr=hp.max_lr,
            total_steps=total_steps,
            div=hp.div,
            annihilation=hp.annihilation,
            max_momentum=hp.max_momentum,
            min_momentum=hp.min_momentum,
        )
    if hp.schedule == "constant":
        return ConstantPolicy(lr=hp.max_lr, total_steps=total_steps, momentum=hp.max_momentum)
    return StepPolicy(lr=hp.max_lr, total_steps=total_steps, momentum=hp.max_momentum)


def steps_for(task: Task, hp: HParams, epochs: float) -> int:
    """Optimizer steps that ``epochs`` epochs of ``task`` take at ``hp.batch_size``."""
    return max(1, round(epochs * batches_per_epoch(task.train_data, hp.batch_size)))


def train_task(
    task: Task,
    hp: HParams,
    *,
    epochs: float,
    seed: int | None = 0,
    device: str | torch.device | None = None,
    amp: bool | str = False,
    eval_every: int | None = None,
    max_seconds: float | None = None,
    progress: bool = False,
    model: nn.Module | None = None,
    on_eval: EvalRule | None = None,
) -> tuple[nn.Module, History]:
    """Build ``task``'s model (or take ``model``) and train it with ``hp`` for ``epochs``.

    ``device`` is where to train (``None``: where the model is; a task's fresh model is
    on the CPU). ``on_eval`` is `fit`'s rule read after every evaluation.
    Returns the trained model and its `History`; the history's ``meta`` holds
    the task name, the hyper-parameters, the epochs and the seed. ``epochs`` out of
    `bounds.BOUNDS` is a `UsageError`.
    """
    epochs = check_value("epochs", epochs)
    if seed is not None:
        torch.manual_seed(seed)  # the model's initial weights depend on the seed
    if model is None:
        model = task.model(dropout=hp.dropout) if task.takes_dropout else task.model()
    opt = build_optimizer(model, hp)
    total = steps_for(task, hp, epochs)
    try:
        policy = build_policy(hp, total)
    except ValueError as exc:  # the hyper-parameters and the length do not make a schedule
        raise UsageError(
            f"no {hp.schedule} schedule fits {epochs:g} epochs at batch size {hp.batch_size} "
            f"({total} steps): {exc}"
        ) from exc
    sched = PolicyScheduler(opt, policy)
    history = fit(
        model,
        opt,
        task.train_data,
        loss_fn=task.loss_fn,
        val_data=task.val_data,
        metric=task.metric,
        metric_name=task.metric_name,
        higher_is_better=task.higher_is_better,
        scheduler=sched,
        steps=total,
        batch_size=hp.batch_size,
        eval_every=eval_every,
        device=device,
        amp=amp,
        seed=seed,
        max_seconds=max_seconds,
        progress=progress,
        on_eval=on_eval,
        meta={"task": task.name, "hparams": hp.to_dict(), "epochs": epochs, "seed": seed},
    )
    return model, history
