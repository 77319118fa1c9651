"""Learning-rate and momentum policies: pure functions of the step.

A policy is a frozen dataclass. It checks its arguments when it is built and then answers
``lr(step)`` and ``momentum(step)`` for ``0 <= step < total_steps``; it holds no state and
imports no torch. :mod:`disciplined.schedules.scheduler` is the adapter that writes these
values into a torch optimizer.

Everything piecewise is built on one primitive, :func:`piecewise`, which joins
``(position, value)`` knots with :func:`interpolate`. The 1cycle learning rate and the
opposite momentum are two instances of it (Smith 2018, arXiv 1803.09820).

Where a policy has a torch counterpart the two agree to 1e-12 at every step; the
parameter mapping is written on each class and checked in ``tests/test_schedules.py``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from functools import cached_property
from itertools import pairwise
from typing import Any, ClassVar

__all__ = [
    "ConstantPolicy",
    "OneCyclePolicy",
    "Policy",
    "RangeSweep",
    "StepPolicy",
    "TriangularPolicy",
    "interpolate",
    "piecewise",
    "policy_from_dict",
]

_SHAPES = ("linear", "cos")


# --------------------------------------------------------------------------- checks


def _fail(name: str, rule: str, value: object) -> ValueError:
    return ValueError(f"{name} must be {rule}, got {value!r}")


def _real(name: str, value: object, rule: str) -> float:
    """Return ``value`` if it is a finite real number; raise naming ``rule`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(name, rule, value)
    if not math.isfinite(value):
        raise _fail(name, rule, value)
    return value


def _integer(name: str, value: object, rule: str) -> int:
    """Return ``value`` as an ``int`` if it is an integer (``__index__``), else raise."""
    if isinstance(value, bool) or not hasattr(type(value), "__index__"):
        raise _fail(name, rule, value)
    return value.__index__()  # type: ignore[attr-defined]


def _choice(name: str, value: object, choices: Sequence[str]) -> None:
    if value not in choices:
        raise _fail(name, "one of " + ", ".join(repr(c) for c in choices), value)


def _set_int(obj: object, name: str, minimum: int) -> None:
    """Check that field ``name`` of a frozen dataclass is an int >= minimum; store it as int."""
    value = _integer(name, getattr(obj, name), f"an integer >= {minimum}")
    if value < minimum:
        raise _fail(name, f"an integer >= {minimum}", getattr(obj, name))
    object.__setattr__(obj, name, value)


def _check_momenta(max_momentum: object, min_momentum: object) -> None:
    """Check ``0 <= min_momentum <= max_momentum < 1``."""
    _real("max_momentum", max_momentum, "a number in [0, 1)")
    _real("min_momentum", min_momentum, "a number in [0, 1)")
    if not 0 <= max_momentum < 1:  # type: ignore[operator]
        raise _fail("max_momentum", "in [0, 1)", max_momentum)
    if not 0 <= min_momentum < 1:  # type: ignore[operator]
        raise _fail("min_momentum", "in [0, 1)", min_momentum)
    if min_momentum > max_momentum:  # type: ignore[operator]
        raise ValueError(
            f"min_momentum must be <= max_momentum, got min_momentum={min_momentum!r}, "
            f"max_momentum={max_momentum!r}"
        )


def _check_optional_momentum(momentum: object) -> None:
    if momentum is not None:
        _real("momentum", momentum, "None or a number in [0, 1)")
        if not 0 <= momentum < 1:  # type: ignore[operator]
            raise _fail("momentum", "None or a number in [0, 1)", momentum)


def _check_step(step: object, total_steps: int) -> int:
    rule = f"an integer in [0, {total_steps})"
    value = _integer("step", step, rule)
    if not 0 <= value < total_steps:
        raise _fail("step", rule, step)
    return value


# ------------------------------------------------------------------------ primitives


def interpolate(start: float, end: float, frac: float, shape: str = "linear") -> float:
    """Value a fraction ``frac`` of the way from ``start`` to ``end``.

    ``shape="linear"`` gives ``start + (end - start) * frac``; ``shape="cos"`` gives the
    half-cosine ``end + (start - end) / 2 * (cos(pi * frac) + 1)``. Both are evaluated in
    the same floating-point order as torch's ``OneCycleLR`` so the two agree to the last
    bits. ``frac`` is meant to lie in [0, 1]; it is not clamped.
    """
    if shape == "linear":
        return (end - start) * frac + start
    if shape == "cos":
        return end + (start - end) / 2.0 * (math.cos(math.pi * frac) + 1)
    raise _fail("shape", "one of 'linear', 'cos'", shape)


def piecewise(step: float, knots: Sequence[tuple[float, float]], shape: str = "linear") -> float:
    """Value at ``step`` of the curve through ``knots``, joined by :func:`interpolate`.

    ``knots`` is a sequence of ``(position, value)`` pairs with strictly increasing
    positions; positions may be fractional. A step on a knot takes the segment that ends
    there (as torch's ``OneCycleLR`` does). Before the first knot the curve holds the first
    value, after the last knot the last value.
    """
    if len(knots) == 0:
        raise _fail("knots", "a non-empty sequence of (position, value) pairs", knots)
    for (p0, _), (p1, _) in pairwise(knots):
        if not p0 < p1:
            raise _fail("knots", "in strictly increasing order of position", knots)
    return _piecewise(step, knots, shape)


def _piecewise(step: float, knots: Sequence[tuple[float, float]], shape: str) -> float:
    """`piecewise` without the checks, for knots a policy has already validated."""
    first_position, first_value = knots[0]
    if step <= first_position:
        return first_value
    start_position, start_value = first_position, first_value
    for end_position, end_value in knots[1:]:
        if step <= end_position:
            frac = (step - start_position) / (end_position - start_position)
            return interpolate(start_value, end_value, frac, shape)
        start_position, start_value = end_position, end_value
    return knots[-1][1]


# -------------------------------------------------------------------------- policies


class _Serializable:
    """Mixin: ``to_dict()`` for the frozen dataclasses below."""

    kind: ClassVar[str]
    # Fields stored under another name than the constructor's argument (a field cannot be
    # called ``lr`` when ``lr`` is also the method).
    _argument_names: ClassVar[dict[str, str]] = {}

    def _arguments(self) -> dict[str, Any]:
        """The fields under the constructor's argument names."""
        return {
            self._argument_names.get(f.name, f.name): getattr(self, f.name)
            for f in fields(self)  # type: ignore[arg-type]
        }

    def to_dict(self) -> dict[str, Any]:
        """The policy's arguments and its ``"kind"``, as a JSON-friendly dict."""
        data: dict[str, Any] = {"kind": self.kind}
        for key, value in self._arguments().items():
            data[key] = list(value) if isinstance(value, tuple) else value
        return data

    def _argument_repr(self) -> str:
        """``Class(arg=value, ...)`` under the constructor's argument names."""
        inner = ", ".join(f"{key}={value!r}" for key, value in self._arguments().items())
        return f"{type(self).__name__}({inner})"


@dataclass(frozen=True)
class OneCyclePolicy(_Serializable):
    """Smith's 1cycle: one triangular cycle of learning rate, opposite momentum, then a tail.

    Over ``total_steps`` steps the learning rate climbs from ``min_lr = max_lr / div`` to
    ``max_lr``, falls back to ``min_lr`` over an equal number of steps, and in the last
    ``annihilation`` fraction of the run keeps falling to ``final_lr = min_lr / final_div``.
    Momentum goes the other way, ``max_momentum`` -> ``min_momentum`` -> ``max_momentum``,
    and is held at ``max_momentum`` through the tail. ``shape`` joins the knots linearly
    (the report) or by half-cosines.

    The knots sit where torch puts them for ``OneCycleLR(total_steps=total_steps,
    max_lr=max_lr, div_factor=div, final_div_factor=final_div, pct_start=pct_start,
    three_phase=True, anneal_strategy=shape, base_momentum=min_momentum,
    max_momentum=max_momentum)`` with ``pct_start = (1 - annihilation) / 2``: at
    ``0``, ``peak_step = pct_start * T - 1``, ``cycle_end_step = 2 * pct_start * T - 2`` and
    ``T - 1``; the two give the same values at every step.
    """

    kind: ClassVar[str] = "one_cycle"

    max_lr: float
    total_steps: int
    div: float = 10.0
    annihilation: float = 0.1
    final_div: float = 100.0
    max_momentum: float = 0.95
    min_momentum: float = 0.85
    shape: str = "linear"

    def __post_init__(self) -> None:
        _real("max_lr", self.max_lr, "a finite number > 0")
        if not self.max_lr > 0:
            raise _fail("max_lr", "> 0", self.max_lr)
        _set_int(self, "total_steps", 3)
        _real("div", self.div, "a finite number > 1")
        if not self.div > 1:
            raise _fail("div", "> 1", self.div)
        _real("final_div", self.final_div, "a finite number >= 1")
        if not self.final_div >= 1:
            raise _fail("final_div", ">= 1", self.final_div)
        _real("annihilation", self.annihilation, "a number in (0, 1)")
        if not 0 < self.annihilation < 1:
            raise _fail("annihilation", "in (0, 1)", self.annihilation)
        _check_momenta(self.max_momentum, self.min_momentum)
        _choice("shape", self.shape, _SHAPES)
        if not self.peak_step > 0:
            # The smallest total_steps whose warm-up has positive length, computed the way
            # peak_step is (2 / (1 - annihilation) may be off by rounding).
            needed = max(3, math.floor(2 / (1 - self.annihilation)))
            while not self.pct_start * needed - 1 > 0:
                needed += 1
            raise ValueError(
                f"total_steps={self.total_steps} is too small for "
                f"annihilation={self.annihilation!r}: the warm-up would last "
                f"pct_start * total_steps - 1 = {self.peak_step!r} steps; "
                f"total_steps must be at least {needed}"
            )

    @classmethod
    def from_suggestion(
        cls, suggestion: Any, total_steps: int, **kwargs: Any
    ) -> OneCyclePolicy:
        """The 1cycle a range test suggests: ``max_lr`` and ``div = max_lr / min_lr`` from
        ``suggestion`` (a `suggest.Suggestion`, or a `RangeTest`, whose inconclusive
        reading raises), over ``total_steps``; ``kwargs`` set the other fields."""
        max_lr, min_lr = float(suggestion.max_lr), float(suggestion.min_lr)
        if not (math.isfinite(max_lr) and math.isfinite(min_lr) and 0 < min_lr < max_lr):
            raise ValueError(
                f"a suggestion needs 0 < min_lr < max_lr, got min_lr={min_lr!r}, "
                f"max_lr={max_lr!r}"
            )
        kwargs.setdefault("div", max_lr / min_lr)
        return cls(max_lr=max_lr, total_steps=total_steps, **kwargs)

    @property
    def min_lr(self) -> float:
        """Learning rate at the start and at the end of the cycle: ``max_lr / div``."""
        return self.max_lr / self.div

    @property
    def final_lr(self) -> float:
        """Learning rate at the last step: ``min_lr / final_div``."""
        return self.min_lr / self.final_div

    @property
    def pct_start(self) -> float:
        """Fraction of the run spent climbing, ``(1 - annihilation) / 2`` (torch's name)."""
        return (1 - self.annihilation) / 2

    @property
    def peak_step(self) -> float:
        """Step (possibly fractional) where the learning rate peaks."""
        return float(self.pct_start * self.total_steps) - 1

    @property
    def cycle_end_step(self) -> float:
        """Step (possibly fractional) where the cycle ends and the tail begins."""
        return float(2 * self.pct_start * self.total_steps) - 2

    @cached_property
    def lr_knots(self) -> tuple[tuple[float, float], ...]:
        """The ``(position, value)`` knots of the learning rate."""
        return (
            (0.0, self.min_lr),
            (self.peak_step, self.max_lr),
            (self.cycle_end_step, self.min_lr),
            (float(self.total_steps - 1), self.final_lr),
        )

    @cached_property
    def momentum_knots(self) -> tuple[tuple[float, float], ...]:
        """The ``(position, value)`` knots of the momentum."""
        return (
            (0.0, self.max_momentum),
            (self.peak_step, self.min_momentum),
            (self.cycle_end_step, self.max_momentum),
            (float(self.total_steps - 1), self.max_momentum),
        )

    def lr(self, step: int) -> float:
        """Learning rate at ``step`` (``0 <= step < total_steps``)."""
        step = _check_step(step, self.total_steps)
        return _piecewise(step, self.lr_knots, self.shape)

    def momentum(self, step: int) -> float:
        """Momentum (or Adam's ``beta1``) at ``step`` (``0 <= step < total_steps``)."""
        step = _check_step(step, self.total_steps)
        return _piecewise(step, self.momentum_knots, self.shape)


@dataclass(frozen=True)
class RangeSweep(_Serializable):
    """The LR range test's sweep: ``num_steps`` learning rates from ``start_lr`` to ``end_lr``.

    ``mode="exp"`` spaces them by a constant ratio, ``mode="linear"`` (as in the CLR paper)
    by a constant difference. Step 0 gives exactly ``start_lr`` and the last step exactly
    ``end_lr``. Momentum is left alone.
    """

    kind: ClassVar[str] = "range_sweep"

    start_lr: float
    end_lr: float
    num_steps: int
    mode: str = "exp"

    def __post_init__(self) -> None:
        _real("start_lr", self.start_lr, "a finite number > 0")
        if not self.start_lr > 0:
            raise _fail("start_lr", "> 0", self.start_lr)
        _real("end_lr", self.end_lr, "a finite number > start_lr")
        if not self.end_lr > self.start_lr:
            raise ValueError(
                f"end_lr must be > start_lr, got end_lr={self.end_lr!r}, start_lr={self.start_lr!r}"
            )
        _set_int(self, "num_steps", 2)
        _choice("mode", self.mode, ("exp", "linear"))
        if self.mode == "exp" and not math.isfinite(self.end_lr / self.start_lr):
            raise ValueError(
                f"end_lr / start_lr must be finite for an exponential sweep, got "
                f"start_lr={self.start_lr!r}, end_lr={self.end_lr!r}"
            )

    @property
    def total_steps(self) -> int:
        """Number of steps, the same as ``num_steps``."""
        return self.num_steps

    def lr(self, step: int) -> float:
        """Learning rate at ``step`` (``0 <= step < num_steps``)."""
        step = _check_step(step, self.num_steps)
        if step == self.num_steps - 1:
            return self.end_lr
        frac = step / (self.num_steps - 1)
        if self.mode == "exp":
            return self.start_lr * (self.end_lr / self.start_lr) ** frac
        return self.start_lr + (self.end_lr - self.start_lr) * frac

    def momentum(self, step: int) -> None:
        """``None``: the sweep does not set momentum."""
        _check_step(step, self.num_steps)
        return None

    def lrs(self) -> list[float]:
        """All ``num_steps`` learning rates, in order."""
        return [self.lr(step) for step in range(self.num_steps)]


_TRIANGULAR_MODES = ("triangular", "triangular2", "exp_range")


@dataclass(frozen=True)
class TriangularPolicy(_Serializable):
    """The triangular cyclical learning rate of the CLR paper (Smith 2017, arXiv 1506.01186).

    With ``cycle = floor(1 + step / (2 * step_size))`` and
    ``x = |step / step_size - 2 * cycle + 1|``, the learning rate is
    ``base_lr + (max_lr - base_lr) * max(0, 1 - x) * scale`` where ``scale`` is 1
    (``"triangular"``), ``1 / 2 ** (cycle - 1)`` (``"triangular2"``) or ``gamma ** step``
    (``"exp_range"``). Given both momenta, momentum runs the opposite way,
    ``max_momentum - (max_momentum - min_momentum) * max(0, 1 - x) * scale``.

    Equal to torch's ``CyclicLR(base_lr=base_lr, max_lr=max_lr, step_size_up=step_size,
    mode=mode, gamma=gamma, base_momentum=min_momentum, max_momentum=max_momentum)``.
    """

    kind: ClassVar[str] = "triangular"

    base_lr: float
    max_lr: float
    step_size: int
    total_steps: int
    mode: str = "triangular"
    gamma: float = 1.0
    max_momentum: float | None = None
    min_momentum: float | None = None

    def __post_init__(self) -> None:
        _real("base_lr", self.base_lr, "a finite number > 0")
        if not self.base_lr > 0:
            raise _fail("base_lr", "> 0", self.base_lr)
        _real("max_lr", self.max_lr, "a finite number > base_lr")
        if not self.max_lr > self.base_lr:
            raise ValueError(
                f"max_lr must be > base_lr, got max_lr={self.max_lr!r}, base_lr={self.base_lr!r}"
            )
        _set_int(self, "step_size", 1)
        _set_int(self, "total_steps", 1)
        _choice("mode", self.mode, _TRIANGULAR_MODES)
        _real("gamma", self.gamma, "a number in (0, 1]")
        if not 0 < self.gamma <= 1:
            raise _fail("gamma", "in (0, 1]", self.gamma)
        if (self.max_momentum is None) != (self.min_momentum is None):
            raise ValueError(
                "max_momentum and min_momentum must be given together or not at all, got "
                f"max_momentum={self.max_momentum!r}, min_momentum={self.min_momentum!r}"
            )
        if self.max_momentum is not None:
            _check_momenta(self.max_momentum, self.min_momentum)

    def _height_and_scale(self, step: int) -> tuple[float, float]:
        cycle = math.floor(1 + step / (2 * self.step_size))
        x = abs(step / self.step_size - 2 * cycle + 1)
        height = max(0.0, 1 - x)
        if self.mode == "triangular":
            scale = 1.0
        elif self.mode == "triangular2":
            scale = 1 / (2.0 ** (cycle - 1))
        else:
            scale = self.gamma**step
        return height, scale

    def lr(self, step: int) -> float:
        """Learning rate at ``step`` (``0 <= step < total_steps``)."""
        step = _check_step(step, self.total_steps)
        height, scale = self._height_and_scale(step)
        return self.base_lr + (self.max_lr - self.base_lr) * height * scale

    def momentum(self, step: int) -> float | None:
        """Momentum at ``step``, or ``None`` when the policy was built without momenta."""
        step = _check_step(step, self.total_steps)
        if self.max_momentum is None or self.min_momentum is None:
            return None
        height, scale = self._height_and_scale(step)
        return self.max_momentum - (self.max_momentum - self.min_momentum) * height * scale


@dataclass(frozen=True, init=False, repr=False)
class ConstantPolicy(_Serializable):
    """Baseline: the same learning rate (and momentum, if given) at every step."""

    kind: ClassVar[str] = "constant"
    _argument_names: ClassVar[dict[str, str]] = {"lr_value": "lr", "momentum_value": "momentum"}

    lr_value: float
    total_steps: int
    momentum_value: float | None = None

    def __init__(self, lr: float, total_steps: int, momentum: float | None = None) -> None:
        object.__setattr__(self, "lr_value", lr)
        object.__setattr__(self, "total_steps", total_steps)
        object.__setattr__(self, "momentum_value", momentum)
        self.__post_init__()

    __repr__ = _Serializable._argument_repr

    def __post_init__(self) -> None:
        _real("lr", self.lr_value, "a finite number > 0")
        if not self.lr_value > 0:
            raise _fail("lr", "> 0", self.lr_value)
        _set_int(self, "total_steps", 1)
        _check_optional_momentum(self.momentum_value)

    def lr(self, step: int) -> float:
        """Learning rate at ``step``: always ``lr``."""
        _check_step(step, self.total_steps)
        return self.lr_value

    def momentum(self, step: int) -> float | None:
        """Momentum at ``step``: always ``momentum`` (``None`` leaves it alone)."""
        _check_step(step, self.total_steps)
        return self.momentum_value


@dataclass(frozen=True, init=False, repr=False)
class StepPolicy(_Serializable):
    """Baseline: step decay. The learning rate is multiplied by ``gamma`` at each milestone.

    ``milestones`` are fractions of ``total_steps``, strictly increasing in (0, 1); at every
    step ``>= int(fraction * total_steps)`` one more factor of ``gamma`` applies.
    """

    kind: ClassVar[str] = "step"
    _argument_names: ClassVar[dict[str, str]] = {"lr_value": "lr", "momentum_value": "momentum"}

    lr_value: float
    total_steps: int
    milestones: tuple[float, ...] = (0.5, 0.75)
    gamma: float = 0.1
    momentum_value: float | None = None

    def __init__(
        self,
        lr: float,
        total_steps: int,
        milestones: Sequence[float] = (0.5, 0.75),
        gamma: float = 0.1,
        momentum: float | None = None,
    ) -> None:
        object.__setattr__(self, "lr_value", lr)
        object.__setattr__(self, "total_steps", total_steps)
        object.__setattr__(self, "milestones", milestones)
        object.__setattr__(self, "gamma", gamma)
        object.__setattr__(self, "momentum_value", momentum)
        self.__post_init__()

    __repr__ = _Serializable._argument_repr

    def __post_init__(self) -> None:
        _real("lr", self.lr_value, "a finite number > 0")
        if not self.lr_value > 0:
            raise _fail("lr", "> 0", self.lr_value)
        _set_int(self, "total_steps", 1)
        rule = "a sequence of strictly increasing fractions in (0, 1)"
        if isinstance(self.milestones, (str, bytes)) or not isinstance(self.milestones, Sequence):
            raise _fail("milestones", rule, self.milestones)
        milestones = tuple(self.milestones)
        for fraction in milestones:
            _real("milestones", fraction, rule)
            if not 0 < fraction < 1:
                raise _fail("milestones", rule, self.milestones)
        if any(not a < b for a, b in pairwise(milestones)):
            raise _fail("milestones", rule, self.milestones)
        object.__setattr__(self, "milestones", milestones)
        _real("gamma", self.gamma, "a number in (0, 1]")
        if not 0 < self.gamma <= 1:
            raise _fail("gamma", "in (0, 1]", self.gamma)
        _check_optional_momentum(self.momentum_value)

    @property
    def milestone_steps(self) -> tuple[int, ...]:
        """The steps at which the learning rate drops, ``int(fraction * total_steps)``."""
        return tuple(int(fraction * self.total_steps) for fraction in self.milestones)

    def lr(self, step: int) -> float:
        """Learning rate at ``step``: ``lr * gamma ** (milestones passed)``."""
        step = _check_step(step, self.total_steps)
        passed = sum(1 for milestone in self.milestone_steps if step >= milestone)
        return self.lr_value * self.gamma**passed

    def momentum(self, step: int) -> float | None:
        """Momentum at ``step``: always ``momentum`` (``None`` leaves it alone)."""
        _check_step(step, self.total_steps)
        return self.momentum_value


Policy = OneCyclePolicy | RangeSweep | TriangularPolicy | ConstantPolicy | StepPolicy
"""Any of the policies above (for type hints)."""

_KINDS: dict[str, type[Any]] = {
    cls.kind: cls
    for cls in (OneCyclePolicy, RangeSweep, TriangularPolicy, ConstantPolicy, StepPolicy)
}


def policy_from_dict(data: Mapping[str, Any]) -> Policy:
    """Rebuild a policy from the dict its ``to_dict()`` returned (checked like a new one)."""
    if not isinstance(data, Mapping) or "kind" not in data:
        raise _fail("data", "a mapping with a 'kind' key", data)
    kind = data["kind"]
    if kind not in _KINDS:
        raise _fail("kind", "one of " + ", ".join(repr(k) for k in _KINDS), kind)
    cls = _KINDS[kind]
    names = {cls._argument_names.get(f.name, f.name) for f in fields(cls)}
    arguments = {key: value for key, value in data.items() if key != "kind"}
    unknown = sorted(set(arguments) - names)
    if unknown:
        raise ValueError(f"unknown fields for kind {kind!r}: {', '.join(unknown)}")
    return cls(**arguments)
