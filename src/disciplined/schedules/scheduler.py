"""The torch adapter: a ``LRScheduler`` that writes a policy's values into an optimizer.

:class:`PolicyScheduler` holds the step (``last_epoch``), the policy, per-group LR scales
and whether it cycles momentum, and nothing else. On construction and on every
``step()`` it writes ``policy.lr(step) * scale`` into each param group's ``"lr"`` and, when
the policy sets momentum, the momentum into ``"momentum"`` (SGD, RMSprop) or into
``betas[0]`` (the Adam family). It keeps nothing of its own in the param groups (the
``initial_lr`` there is the base class's). ``state_dict()`` is plain data (the step and
the policy as a dict), so a scheduler built fresh after a restart and loaded from it
continues exactly.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from disciplined.schedules.policies import OneCyclePolicy, Policy, policy_from_dict

__all__ = ["OneCycleScheduler", "PolicyScheduler"]

_STATE_KEYS = ("step", "policy", "lr_scales", "cycle_momentum")


class PolicyScheduler(LRScheduler):
    """Drive an optimizer's learning rate (and momentum) from a policy, one step per batch.

    Args:
        optimizer: the optimizer whose param groups are written.
        policy: any policy of :mod:`disciplined.schedules.policies`.
        lr_scales: one factor > 0 per param group (e.g. 0.1 for a pretrained backbone);
            group ``i`` gets ``policy.lr(step) * lr_scales[i]``. ``None`` means 1.0 for all.
        cycle_momentum: write the policy's momentum too, when it gives one. It goes into
            ``group["momentum"]`` if the optimizer has a ``momentum`` setting, else into
            ``group["betas"][0]`` if it has ``betas``.

    After construction the groups hold the values of step 0. Call ``step()`` once after
    every ``optimizer.step()``. A policy of ``T`` steps allows ``T`` calls: the last one
    (after the last batch of the run) leaves the values of step ``T - 1`` in place; one
    more raises ``RuntimeError``.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        policy: Policy,
        *,
        lr_scales: Sequence[float] | None = None,
        cycle_momentum: bool = True,
    ) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {optimizer!r}")
        self._check_policy(policy)
        self.policy = policy
        self.lr_scales = _check_lr_scales(lr_scales, optimizer)
        self.cycle_momentum = bool(cycle_momentum)
        self._momentum_key = _momentum_key(optimizer, policy, self.cycle_momentum)
        # The base class records ``initial_lr`` in each group and calls ``step()`` once,
        # which takes ``last_epoch`` from -1 to 0 and writes the step-0 values.
        super().__init__(optimizer, last_epoch=-1)

    # ------------------------------------------------------------------ checks

    @staticmethod
    def _check_policy(policy: object) -> None:
        """Raise ``TypeError`` unless ``policy`` looks like a policy."""
        missing = [
            name
            for name in ("total_steps", "lr", "momentum", "to_dict")
            if not hasattr(policy, name)
        ]
        if missing:
            raise TypeError(
                f"policy must be a disciplined.schedules policy, got {type(policy).__name__} "
                f"(no {', '.join(missing)})"
            )

    # ------------------------------------------------------------ the contract

    def _policy_step(self) -> int:
        """The policy step whose values apply now (the last one after the final call)."""
        return min(max(self.last_epoch, 0), self.policy.total_steps - 1)

    def get_lr(self) -> list[float]:
        """The learning rate of each param group at the current step (no side effects)."""
        base = self.policy.lr(self._policy_step())
        return [base * scale for scale in self.lr_scales]

    def get_momentum(self) -> float | None:
        """The policy's momentum at the current step, or ``None`` if it sets none."""
        return self.policy.momentum(self._policy_step())

    def step(self, epoch: int | None = None) -> None:
        """Advance one step and write its learning rate (and momentum) into the groups."""
        if epoch is not None:
            raise TypeError(
                "PolicyScheduler.step() takes no epoch argument (torch deprecated it); "
                "call step() once per optimizer step"
            )
        calls = self.last_epoch + 1
        total = self.policy.total_steps
        if calls > total:
            raise RuntimeError(
                f"PolicyScheduler: the policy has {total} steps and step() was called "
                f"{calls} times; build the policy with more total_steps"
            )
        # Not torch's LRScheduler.step: its bookkeeping costs several microseconds a step,
        # as much as a small model's whole step on the CPU. The contract is the same:
        # last_epoch advances and the step's values are written into the groups.
        self._step_count = getattr(self, "_step_count", 0) + 1
        if self._step_count == 2 and not getattr(self.optimizer, "_opt_called", False):
            warnings.warn(
                "PolicyScheduler.step() was called before optimizer.step(); the first value "
                "of the schedule is skipped. Call optimizer.step() first.",
                UserWarning,
                stacklevel=2,
            )
        self.last_epoch += 1
        self._write_lrs()
        self._write_momentum()

    def _write_lrs(self) -> None:
        base = self.policy.lr(self._policy_step())
        for group, scale in zip(self.optimizer.param_groups, self.lr_scales, strict=True):
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].fill_(base * scale)
            else:
                group["lr"] = base * scale
        self._last_lr = [
            group["lr"].clone() if isinstance(group["lr"], torch.Tensor) else group["lr"]
            for group in self.optimizer.param_groups
        ]

    def _write_momentum(self) -> None:
        if self._momentum_key is None:
            return
        momentum = self.get_momentum()
        if momentum is None:
            return
        for group in self.optimizer.param_groups:
            if self._momentum_key == "momentum":
                group["momentum"] = momentum
            else:
                group["betas"] = (momentum, group["betas"][1])

    # ------------------------------------------------------------------ resume

    def state_dict(self) -> dict[str, Any]:
        """The step, the policy as a dict, the LR scales and ``cycle_momentum``: plain data."""
        return {
            "step": self.last_epoch,
            "policy": self.policy.to_dict(),
            "lr_scales": list(self.lr_scales),
            "cycle_momentum": self.cycle_momentum,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Take step, policy, scales and ``cycle_momentum`` from ``state_dict``; write them.

        The scheduler may have been built with another policy (as after a restart); the
        loaded one replaces it. The current step's values are written into the groups at
        once, so it does not matter whether the optimizer's state was loaded before.
        """
        missing = [key for key in _STATE_KEYS if key not in state_dict]
        if missing:
            raise ValueError(
                f"state_dict is missing {', '.join(missing)}; "
                "expected the dict returned by PolicyScheduler.state_dict()"
            )
        policy = policy_from_dict(state_dict["policy"])
        self._check_policy(policy)
        step = state_dict["step"]
        if (
            isinstance(step, bool)
            or not isinstance(step, int)
            or not 0 <= step <= policy.total_steps
        ):
            raise ValueError(
                f"step must be an integer in [0, {policy.total_steps}] for this policy, "
                f"got {step!r}"
            )
        lr_scales = _check_lr_scales(state_dict["lr_scales"], self.optimizer)
        cycle_momentum = bool(state_dict["cycle_momentum"])
        momentum_key = _momentum_key(self.optimizer, policy, cycle_momentum)
        self.policy = policy
        self.lr_scales = lr_scales
        self.cycle_momentum = cycle_momentum
        self._momentum_key = momentum_key
        self.last_epoch = step
        self._write_lrs()
        self._write_momentum()


class OneCycleScheduler(PolicyScheduler):
    """A :class:`PolicyScheduler` for Smith's 1cycle; the policy must be a ``OneCyclePolicy``."""

    def __init__(self, optimizer: Optimizer, policy: OneCyclePolicy, **kwargs: Any) -> None:
        super().__init__(optimizer, policy, **kwargs)

    @staticmethod
    def _check_policy(policy: object) -> None:
        """Raise ``TypeError`` unless ``policy`` is a ``OneCyclePolicy``."""
        if not isinstance(policy, OneCyclePolicy):
            raise TypeError(f"policy must be a OneCyclePolicy, got {type(policy).__name__}")


def _check_lr_scales(lr_scales: Sequence[float] | None, optimizer: Optimizer) -> tuple[float, ...]:
    groups = len(optimizer.param_groups)
    if lr_scales is None:
        return (1.0,) * groups
    if isinstance(lr_scales, (str, bytes)) or not isinstance(lr_scales, Sequence):
        raise ValueError(f"lr_scales must be None or a sequence of floats, got {lr_scales!r}")
    if len(lr_scales) != groups:
        raise ValueError(
            f"lr_scales must have one entry per param group: the optimizer has {groups} "
            f"param groups, got {len(lr_scales)} lr_scales"
        )
    for scale in lr_scales:
        if (
            isinstance(scale, bool)
            or not isinstance(scale, (int, float))
            or not math.isfinite(scale)
            or not scale > 0
        ):
            raise ValueError(f"lr_scales must all be finite numbers > 0, got {list(lr_scales)!r}")
    return tuple(float(scale) for scale in lr_scales)


def _momentum_key(optimizer: Optimizer, policy: Policy, cycle_momentum: bool) -> str | None:
    """Which param-group key takes the momentum: ``"momentum"``, ``"betas"`` or ``None``."""
    if not cycle_momentum or policy.momentum(0) is None:
        return None
    name = type(optimizer).__name__
    if "momentum" in optimizer.defaults:
        for group in optimizer.param_groups:
            if group["momentum"] == 0:
                raise ValueError(
                    f"{name} was built with momentum=0; cycling momentum would turn it on. "
                    "Build it with momentum>0 or pass cycle_momentum=False"
                )
        return "momentum"
    if "betas" in optimizer.defaults:
        return "betas"
    raise ValueError(
        f"{name} has neither a momentum nor a betas setting, so momentum cannot be cycled; "
        "pass cycle_momentum=False"
    )
