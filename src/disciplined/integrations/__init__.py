"""Where users already train: Lightning (`disciplined.integrations.lightning`) and Hugging
Face's ``Trainer`` (`disciplined.integrations.transformers`).

Each is an optional extra (``pip install disciplined[lightning]`` / ``[transformers]``):
nothing here is imported by ``import disciplined``, and importing a module whose framework
is missing raises ``ImportError`` with the command that installs it.
"""

from __future__ import annotations

from typing import Any

import torch

from disciplined.schedules.policies import OneCyclePolicy

__all__ = ["apply_policy", "cycle_settings", "require"]


def require(module: str, extra: str) -> Any:
    """Import ``module``, or raise ``ImportError`` naming the extra that installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"{module} is not installed: pip install 'disciplined[{extra}]' ({exc})"
        ) from exc


def cycle_settings(
    max_lr: float, div: float, max_momentum: float, min_momentum: float, annihilation: float
) -> dict[str, float]:
    """A callback's 1cycle, all but its length (known only when training starts), checked
    now by building it over a nominal 100 steps: bad values fail where they are given."""
    settings = {
        "max_lr": float(max_lr),
        "div": div,
        "max_momentum": max_momentum,
        "min_momentum": min_momentum,
        "annihilation": annihilation,
    }
    OneCyclePolicy(total_steps=100, **settings)
    return settings


def apply_policy(optimizer: torch.optim.Optimizer, policy: OneCyclePolicy, step: int) -> None:
    """Write the policy's LR and momentum for optimizer step ``step`` into every param group
    (``momentum`` for SGD-style optimizers, ``betas[0]`` for Adam-style ones). A step past
    the end holds the last step's values. The values are a function of the step alone, so
    a run resumed from a checkpoint at step ``k`` continues the cycle exactly."""
    step = min(max(0, int(step)), policy.total_steps - 1)
    lr, momentum = policy.lr(step), policy.momentum(step)
    for group in optimizer.param_groups:
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].fill_(lr)
        else:
            group["lr"] = lr
        if momentum is None:
            continue
        if "momentum" in group:
            group["momentum"] = momentum
        elif "betas" in group:
            group["betas"] = (momentum, *tuple(group["betas"])[1:])
