"""Suggested learning rates read off an LR range test curve: pure, named rules.

The range test (Smith, arXiv 1506.01186 section 3.3; arXiv 1803.09820 section 4.1) records
the loss while the learning rate grows every step. Each rule here is a pure function
``rule(lrs, losses, *, div=10.0) -> Suggestion`` of that record, so it can be tested on
curves whose right answer is known and the report can name it. ``losses`` is the curve to
read (normally the `smooth`-ed training loss); ``lrs`` are positive and strictly increasing.

What every rule does first, in the same way:

- the curve is cut at its first non-finite loss (a NaN or infinity ends the usable record);
- ``L0``, the starting level, is the median of the first few points (``min(10, max(3,
  n // 10))`` of them), so the plateau's noise does not count as a fall;
- the minimum is the lowest loss *before the loss climbs back above* ``L0`` *after having
  clearly fallen* (below ``L0`` by 5% of ``|L0|`` and by half the curve's whole fall, so
  the noise of the first, barely averaged points is no fall: `divergence.rise_index`,
  `divergence.CLEAR_FALL`). With 10-class cross-entropy a diverged run levels off around
  5-6 instead of turning NaN, and a dip in that level must not be read as the minimum or
  as a steep fall; every rule reads the curve only up to this minimum;
- ``min_lr = max_lr / div`` (10 as in the 1cycle report, 3-4 for cyclical learning rates).

A curve whose drop ``L0 - minimum`` is under 5% of ``|L0|``, or whose minimum lies in the
starting window, never fell clearly: every rule still answers, and says in its ``reason``
that the answer is unreliable.

This module imports no torch; `disciplined.measure.range_test` calls it. Where a curve
diverged is `disciplined.divergence`'s to say (`divergence_cut` is importable from here too).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from disciplined.divergence import CLEAR_FALL, VAL_CUT, divergence_cut, rise_index

__all__ = [
    "MIN_POINTS",
    "RULES",
    "Suggestion",
    "divergence_cut",
    "median_curve",
    "minimum_div10",
    "smith",
    "smooth",
    "smooth_zero_lag",
    "steepest",
    "suggest",
    "suggest_multi",
    "validation_curve",
    "validation_cut",
    "valley",
]

MIN_POINTS = 5
"""The fewest finite losses a rule will read."""

_START_MAX = 10  # L0 is the median of at most this many first points ...
_START_MIN = 3  # ... and at least this many
_SMITH_BAND = 0.05  # smith: the fall has ended once within 5% of the drop of the minimum
_VALLEY_TOL = 0.05  # valley: a rise under 5% of the drop does not end a descent
_VALLEY_AT = 2 / 3  # valley: how far along the descent to read


# --------------------------------------------------------------------------- smoothing


def smooth(losses: Sequence[float], beta: float = 0.98) -> list[float]:
    """Exponential moving average of ``losses`` with bias correction.

    ``avg = beta * avg + (1 - beta) * x`` from ``avg = 0``, and point ``i`` is
    ``avg / (1 - beta ** (i + 1))``, so the first point equals the first loss. From the
    first non-finite loss on, every point is NaN. ``beta = 0`` returns the losses.
    """
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0 <= beta < 1:
        raise ValueError(f"beta must be a number in [0, 1), got {beta!r}")
    out: list[float] = []
    avg = 0.0
    broken = False
    for i, loss in enumerate(losses):
        x = float(loss)
        if broken or not math.isfinite(x):
            broken = True
            out.append(math.nan)
            continue
        avg = beta * avg + (1 - beta) * x
        out.append(avg / (1 - beta ** (i + 1)))
    return out


# --------------------------------------------------------------------------- result


@dataclass(frozen=True)
class Suggestion:
    """A suggested learning-rate range and how it was read off the curve.

    ``max_lr`` is the suggested peak (1cycle's ``max_lr``) and ``min_lr = max_lr / div``.
    ``rule`` names the rule (a key of `RULES`); ``reason`` is one sentence with the numbers
    read off the curve. ``index`` is the point of ``lrs`` the rule read: for ``smith``,
    ``valley`` and ``steepest`` ``max_lr == lrs[index]``; for ``minimum/10`` (and smith's
    fallback on a curve that never fell) ``index`` is the minimum and
    ``max_lr == lrs[index] / 10``. From `suggest_multi`, ``index`` points into the median
    curve, ``per_seed`` holds each seed's own ``max_lr`` in the order the curves were given,
    and ``spread`` is ``(min(per_seed), max(per_seed))``. ``reliable`` is False when the
    loss never fell clearly (the module docstring): the rule still answered, but the curve
    shows no learning to read a peak LR from.
    """

    max_lr: float
    min_lr: float
    rule: str
    reason: str
    index: int
    spread: tuple[float, float] | None = None
    per_seed: tuple[float, ...] = ()
    reliable: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "max_lr", float(self.max_lr))
        object.__setattr__(self, "min_lr", float(self.min_lr))
        object.__setattr__(self, "index", int(self.index))
        object.__setattr__(self, "per_seed", tuple(float(v) for v in self.per_seed))
        if self.spread is not None:
            low, high = self.spread
            object.__setattr__(self, "spread", (float(low), float(high)))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary; `from_dict` rebuilds an equal `Suggestion`
        (``reliable`` is written only when False)."""
        d: dict[str, Any] = {
            "max_lr": self.max_lr,
            "min_lr": self.min_lr,
            "rule": self.rule,
            "reason": self.reason,
            "index": self.index,
            "spread": None if self.spread is None else list(self.spread),
            "per_seed": list(self.per_seed),
        }
        if not self.reliable:
            d["reliable"] = False
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Suggestion:
        """Rebuild a `Suggestion` from `to_dict` output (or the same after a JSON trip)."""
        required = ("max_lr", "min_lr", "rule", "reason", "index")
        missing = [key for key in required if key not in data]
        unknown = sorted(set(data) - {*required, "spread", "per_seed", "reliable"})
        if missing or unknown:
            raise ValueError(
                f"Suggestion.from_dict needs keys {list(required)} (and optionally 'spread', "
                f"'per_seed', 'reliable'); missing {missing}, unknown {unknown}"
            )
        spread = data.get("spread")
        return cls(
            max_lr=data["max_lr"],
            min_lr=data["min_lr"],
            rule=str(data["rule"]),
            reason=str(data["reason"]),
            index=data["index"],
            spread=None if spread is None else (spread[0], spread[1]),
            per_seed=tuple(data.get("per_seed", ())),
            reliable=bool(data.get("reliable", True)),
        )


# --------------------------------------------------------------------------- reading a curve


def _f(x: float) -> str:
    """A number for a reason sentence: three significant figures."""
    return f"{x:.3g}"


@dataclass(frozen=True)
class _Curve:
    """A checked curve, cut at its first non-finite loss, with its landmarks."""

    lrs: np.ndarray
    losses: np.ndarray
    given: int  # how many points were given
    start: float  # L0: median of the first few losses
    window: int  # how many points L0 was taken over
    rise: int | None  # first index back above L0 after a clear fall
    low: int  # index of the minimum before `rise`

    @property
    def cut(self) -> bool:
        return len(self.losses) < self.given

    @property
    def drop(self) -> float:
        return self.start - float(self.losses[self.low])

    @property
    def fell(self) -> bool:
        """Whether the loss fell clearly: 5% of |L0|, after the starting window."""
        return self.drop >= CLEAR_FALL * max(abs(self.start), 1e-12) and self.low >= self.window

    def notes(self) -> str:
        """The clauses every reason ends with: cut, rise, unreliability."""
        text = ""
        if self.rise is not None:
            text += f", the loss climbed back above its start at LR {_f(self.lrs[self.rise])}"
        if self.cut:
            text += (
                f", losses from step {len(self.losses)} on are not finite (the curve is "
                "cut where the loss diverged) and were not read"
            )
        if not self.fell:
            text += (
                f"; the loss never fell clearly (from {_f(self.start)} to "
                f"{_f(self.losses[self.low])}), so this suggestion is unreliable"
            )
        return text


def _check_div(div: float) -> float:
    if isinstance(div, bool) or not isinstance(div, (int, float)):
        raise ValueError(f"div must be a number >= 1, got {div!r}")
    if not (math.isfinite(div) and div >= 1):
        raise ValueError(f"div must be a number >= 1, got {div!r}")
    return float(div)


def _read(lrs: Sequence[float], losses: Sequence[float]) -> _Curve:
    """Check a curve, cut it at its first non-finite loss, and find its landmarks."""
    x = np.asarray(lrs, dtype=float)
    y = np.asarray(losses, dtype=float)
    if x.ndim != 1 or y.ndim != 1:
        raise ValueError(f"lrs and losses must be 1-D, got shapes {x.shape} and {y.shape}")
    if len(x) != len(y):
        raise ValueError(f"lrs and losses must have the same length, got {len(x)} and {len(y)}")
    bad = np.flatnonzero(~np.isfinite(x) | (x <= 0))
    if len(bad):
        i = int(bad[0])
        raise ValueError(f"lrs must be positive and finite, got lrs[{i}]={float(x[i])!r}")
    steps = np.flatnonzero(np.diff(x) <= 0)
    if len(steps):
        i = int(steps[0]) + 1
        raise ValueError(
            f"lrs must be strictly increasing, got lrs[{i}]={float(x[i])!r} after "
            f"lrs[{i - 1}]={float(x[i - 1])!r}"
        )
    nonfinite = np.flatnonzero(~np.isfinite(y))
    n = int(nonfinite[0]) if len(nonfinite) else len(y)
    if n < MIN_POINTS:
        raise ValueError(
            f"the curve must have at least {MIN_POINTS} finite losses before the first "
            f"non-finite one, got {n} (of {len(y)} points)"
        )
    x, y = x[:n], y[:n]
    window = min(_START_MAX, max(_START_MIN, n // 10))
    start = float(np.median(y[:window]))
    rise = rise_index(y, start)  # back above the start after a clear fall (`divergence`)
    low = int(np.argmin(y[:rise]))
    return _Curve(x, y, len(losses), start, window, rise, low)


def _result(
    c: _Curve, rule: str, index: int, max_lr: float, div: float, reading: str
) -> Suggestion:
    min_lr = max_lr / div
    reason = f"{reading}; max LR {_f(max_lr)}, min LR {_f(min_lr)} (max/{div:g}){c.notes()}"
    return Suggestion(
        max_lr=max_lr, min_lr=min_lr, rule=rule, reason=reason, index=index, reliable=c.fell
    )


def _fell_to(c: _Curve) -> str:
    verb = "fell" if c.fell else "went"
    return (
        f"the loss {verb} from {_f(c.start)} to a minimum of {_f(c.losses[c.low])} "
        f"at LR {_f(c.lrs[c.low])}"
    )


def _never_fell(c: _Curve, rule: str, div: float) -> Suggestion:
    """The reading of a curve that never fell clearly (marked unreliable either way): where
    its plateau ended, divided by 10.

    With no fall there is no minimum to read; what such a curve does show is the LR up to
    which the loss stayed on its plateau: the last point within 5% of ``|L0|`` above ``L0``
    before the curve rose above that band for good, or the curve's last point (the sweep's
    end, or where the loss blew up and the curve was cut). A deep net without normalization
    sits flat for a 186-step sweep until LR ~3 and learns at max LR 0.1-0.3; the noise
    minimum of such a flat curve lay anywhere (1e-5 on one seed). A curve that rises from
    its first points on (a network already at its minimum) ends its plateau early, and
    reads low.
    """
    band = c.start + CLEAR_FALL * max(abs(c.start), 1e-12)
    inside = np.flatnonzero(c.losses <= band)
    end = int(inside[-1]) if len(inside) else 0
    reading = (
        f"the loss never fell clearly and stayed on its plateau ({_f(c.start)}, up to "
        f"{CLEAR_FALL:.0%} above it) up to LR {_f(c.lrs[end])}"
        + (", the last point of the curve" if end == len(c.losses) - 1 else ", then rose")
        + "; max LR is that LR / 10"
    )
    return _result(c, rule, end, float(c.lrs[end]) / 10, div, reading)


# --------------------------------------------------------------------------- rules


def smith(
    lrs: Sequence[float],
    losses: Sequence[float],
    *,
    div: float = 10.0,
    band: float = _SMITH_BAND,
    stopped: str | None = None,
) -> Suggestion:
    """Smith's reading: the largest LR before the loss stops falling.

    Exact definition: with ``L0`` the starting level and ``Lmin`` the minimum (module
    docstring), the fall has ended once the loss is within ``band`` of the drop of the
    minimum, ``loss <= Lmin + band * (L0 - Lmin)``. ``max_lr`` is the LR of the first point
    in that band, counted from the first point above it (so a low first point cannot be
    read). It is never beyond the minimum. Read on a lag-free curve cut where it diverged
    (`smooth_zero_lag`, `divergence_cut`, as `range_test` stores it), the default
    ``band = 0.05`` sits just before the minimum: `benchmarks/suggestion_quality.py` found
    it the best default; ``band = 0`` (the minimum itself) collapsed a CNN run, and a
    one-way average lags by a decade of LR, which is why older tools divide by 10. If the
    loss never fell clearly, ``max_lr`` is the minimum's LR / 10 and the reason says the
    suggestion is unreliable. If the lowest point is the last one read, the reason says to
    raise the sweep's end LR only when the sweep reached it: ``stopped`` is why the sweep
    stopped before its end LR (the range test's ``stop_reason``: diverged, climbed back above
    its start, a non-finite loss), or None when it ran to its end. A curve that stopped, or
    was cut at a non-finite loss, ended where the loss stopped falling, and its reason says
    so (`_last_point`).
    """
    div = _check_div(div)
    c = _read(lrs, losses)
    y = c.losses
    if not c.fell:
        return _never_fell(c, "smith", div)
    level = float(y[c.low]) + band * c.drop
    first_above = int(np.flatnonzero(y > level)[0])  # in the starting window: L0 > level
    index = first_above + int(np.flatnonzero(y[first_above : c.low + 1] <= level)[0])
    if band > 0:
        reading = (
            f"{_fell_to(c)} and stopped falling (within {band:.0%} of the drop of its "
            f"minimum, loss {_f(level)}) at LR {_f(c.lrs[index])}"
        )
    else:
        reading = f"{_fell_to(c)}, where it stopped falling"
    if c.low == len(y) - 1:
        reading += _last_point(c, stopped)
    return _result(c, "smith", index, float(c.lrs[index]), div, reading)


def _last_point(c: _Curve, stopped: str | None) -> str:
    """The clause for a curve whose lowest point is its last one read: still falling at the
    sweep's end LR (raise it) only when the sweep ran to that end, neither stopped early nor
    cut at a non-finite loss; otherwise the fall ended where the sweep stopped."""
    if stopped is None and not c.cut:
        return " (still falling at the end of the sweep: raise its end LR)"
    why = (
        f"the sweep stopped before its end LR: {stopped}"
        if stopped
        else "the loss diverged after it"
    )
    return f" (its lowest point is the last one read, at LR {_f(c.lrs[-1])}; {why})"


def valley(lrs: Sequence[float], losses: Sequence[float], *, div: float = 10.0) -> Suggestion:
    """Two thirds of the way along the longest descent into the minimum.

    Exact definition: the curve up to its minimum is split into descents; a descent goes
    on while each loss stays below the lowest loss of the descent so far plus a tolerance
    ``tol = 0.05 * (L0 - Lmin)`` (so small local rises are allowed) and a larger rise
    starts a new one. Each descent is trimmed of its flat ends: it begins at its last point
    still within ``tol`` of its starting level (its first loss, or the median of its first
    few points if lower, so one noisy high point cannot stretch it back across the
    plateau) and ends at its first point within ``tol`` of its lowest loss. ``max_lr`` is
    the LR two thirds of the way (in points, rounded) along the longest trimmed descent;
    ties go to the earlier one.
    """
    div = _check_div(div)
    c = _read(lrs, losses)
    y = c.losses[: c.low + 1]
    tol = _VALLEY_TOL * max(c.drop, 0.0)
    runs: list[tuple[int, int]] = []
    begin, lowest = 0, float(y[0])
    for j in range(1, len(y)):
        if y[j] > lowest + tol:
            runs.append((begin, j - 1))
            begin, lowest = j, float(y[j])
        else:
            lowest = min(lowest, float(y[j]))
    runs.append((begin, len(y) - 1))
    best = (0, 0)
    for begin, end in runs:
        seg = y[begin : end + 1]
        level = min(float(seg[0]), float(np.median(seg[: c.window])))
        a = begin + int(np.flatnonzero(seg >= level - tol)[-1])
        rest = y[a : end + 1]
        b = a + int(np.flatnonzero(rest <= rest.min() + tol)[0])
        if b - a > best[1] - best[0]:
            best = (a, b)
    a, b = best
    index = a + (2 * (b - a) + 1) // 3  # round(2/3 * (b - a)); never exactly half-way
    reading = (
        f"the longest descent (rises under {_f(tol)} allowed) ran from LR {_f(c.lrs[a])} "
        f"(loss {_f(y[a])}) to LR {_f(c.lrs[b])} (loss {_f(y[b])}), two thirds along it is "
        f"LR {_f(c.lrs[index])}"
    )
    return _result(c, "valley", index, float(c.lrs[index]), div, reading)


def steepest(lrs: Sequence[float], losses: Sequence[float], *, div: float = 10.0) -> Suggestion:
    """Where the loss falls fastest per unit of log-LR, looking only before the minimum.

    Exact definition: ``max_lr`` is the LR of the most negative
    ``np.gradient(losses, np.log(lrs))`` among the points from the end of the starting
    window (the points ``L0`` is taken over, where a bias-corrected average is still
    mostly noise) up to the minimum (module docstring); if the minimum lies inside the
    window, among the points up to it. The classic rule looks at the whole curve; after
    divergence the loss of a 10-class classifier levels off near 5-6 and a late dip
    there can be the steepest fall (torch-lr-finder once picked 2.48 that way, which then
    diverged in training). Stopping at the minimum is a deliberate fix for that.
    """
    div = _check_div(div)
    c = _read(lrs, losses)
    slope = np.gradient(c.losses, np.log(c.lrs))
    first = c.window if c.low >= c.window else 0
    index = first + int(np.argmin(slope[first : c.low + 1]))
    reading = (
        f"before its minimum at LR {_f(c.lrs[c.low])} the loss fell fastest at "
        f"LR {_f(c.lrs[index])} ({_f(-slope[index] * math.log(10))} per decade)"
    )
    return _result(c, "steepest", index, float(c.lrs[index]), div, reading)


def minimum_div10(
    lrs: Sequence[float], losses: Sequence[float], *, div: float = 10.0
) -> Suggestion:
    """The LR at the minimum of the curve, divided by 10 (rule name ``"minimum/10"``).

    Exact definition: ``max_lr = lrs[low] / 10`` where ``low`` is the minimum before the
    loss climbs back above its start (module docstring); ``index`` is ``low``.
    """
    div = _check_div(div)
    c = _read(lrs, losses)
    max_lr = float(c.lrs[c.low]) / 10
    return _result(c, "minimum/10", c.low, max_lr, div, f"{_fell_to(c)}; max LR is that LR / 10")


Rule = Callable[..., Suggestion]

RULES: dict[str, Rule] = {
    "smith": smith,
    "valley": valley,
    "steepest": steepest,
    "minimum/10": minimum_div10,
}
"""The suggestion rules by name; each is ``rule(lrs, losses, *, div=10.0) -> Suggestion``."""


_READS_STOP = frozenset({"smith"})
"""The rules whose reason reads why the sweep stopped (their ``stopped`` keyword)."""


def _rule(name: str) -> Rule:
    if name not in RULES:
        names = ", ".join(repr(key) for key in RULES)
        raise ValueError(f"rule must be one of {names}, got {name!r}")
    return RULES[name]


def _apply(
    name: str, lrs: Sequence[float], losses: Sequence[float], div: float, stopped: str | None
) -> Suggestion:
    """Rule ``name`` on one curve, told why the sweep stopped where the rule reads that."""
    fn = _rule(name)
    if name in _READS_STOP:
        return fn(lrs, losses, div=div, stopped=stopped)
    return fn(lrs, losses, div=div)


def suggest(
    lrs: Sequence[float],
    losses: Sequence[float],
    rule: str = "smith",
    div: float = 10.0,
    stopped: str | None = None,
) -> Suggestion:
    """Apply the rule named ``rule`` (a key of `RULES`) to one curve. ``stopped`` is why the
    sweep stopped before its end LR (`RangeTest.stop_reason`), None if it ran to its end; a
    rule's reason then never tells to raise an end LR the sweep did not reach."""
    return _apply(rule, lrs, losses, div, stopped)


# --------------------------------------------------------------------------- several seeds


def median_curve(
    curves: Sequence[tuple[Sequence[float], Sequence[float]]],
) -> tuple[list[float], list[float]]:
    """The per-step median of several runs of the same sweep.

    Each curve is ``(lrs, losses)``; runs stop at different steps, so the learning rates of
    one are a prefix of another's. All are cut to the shortest and the median loss is taken
    at each step (NaN where any seed's loss is NaN, so a rule cuts the curve there).
    Returns ``(lrs, median_losses)``.
    """
    if len(curves) == 0:
        raise ValueError("curves must hold at least one (lrs, losses) curve, got none")
    arrays = []
    for k, (lrs, losses) in enumerate(curves):
        x, y = np.asarray(lrs, dtype=float), np.asarray(losses, dtype=float)
        if x.ndim != 1 or x.shape != y.shape:
            raise ValueError(
                f"curve {k}: lrs and losses must be 1-D with the same length, got shapes "
                f"{x.shape} and {y.shape}"
            )
        arrays.append((x, y))
    n = min(len(x) for x, _ in arrays)
    first = arrays[0][0][:n]
    for k, (x, _) in enumerate(arrays[1:], start=1):
        differ = np.flatnonzero(~np.isclose(x[:n], first, rtol=1e-9, atol=0.0))
        if len(differ):
            i = int(differ[0])
            raise ValueError(
                f"curve {k}'s lrs differ from curve 0's at step {i} ({float(x[i])!r} vs "
                f"{float(first[i])!r}): the curves must come from the same sweep"
            )
    median = np.median(np.stack([y[:n] for _, y in arrays]), axis=0)
    return [float(v) for v in first], [float(v) for v in median]


def suggest_multi(
    curves: Sequence[tuple[Sequence[float], Sequence[float]]],
    rule: str = "smith",
    div: float = 10.0,
    stopped: Sequence[str | None] | None = None,
) -> Suggestion:
    """Apply a rule to the median of several seeds' curves, and report the seeds' spread.

    The suggestion is the rule read off `median_curve` (its ``index`` points into that
    curve). The rule is also applied to each seed's whole curve; those ``max_lr`` go into
    ``per_seed`` (in the order given) and ``spread = (min, max)``, and the reason says how
    far apart they were. ``stopped`` holds each seed's stop reason (as in `suggest`); the
    median curve, cut to the shortest seed's, ends where that seed stopped.
    """
    _rule(rule)
    reasons = list(stopped) if stopped is not None else [None] * len(curves)
    if len(reasons) != len(curves):
        raise ValueError(
            f"stopped must hold one reason per curve, got {len(reasons)} for {len(curves)}"
        )
    lrs, losses = median_curve(curves)
    shortest = min(range(len(curves)), key=lambda k: len(curves[k][0]))
    middle = _apply(rule, lrs, losses, div, reasons[shortest])
    picks = []
    for k, (seed_lrs, seed_losses) in enumerate(curves):
        try:
            picks.append(_apply(rule, seed_lrs, seed_losses, div, reasons[k]).max_lr)
        except ValueError as err:
            raise ValueError(f"curve {k}: {err}") from err
    low, high = min(picks), max(picks)
    reason = (
        f"on the median of {len(curves)} seeds' curves, {middle.reason}; over "
        f"{len(curves)} seeds the rule's picks ranged {_f(low)}–{_f(high)} "
        f"({high / low:.1f}x)"
    )
    return Suggestion(
        max_lr=middle.max_lr,
        min_lr=middle.min_lr,
        rule=middle.rule,
        reason=reason,
        index=middle.index,
        spread=(low, high),
        per_seed=tuple(picks),
        reliable=middle.reliable,
    )


def smooth_zero_lag(losses: Sequence[float], beta: float = 0.9) -> list[float]:
    """`smooth` run forwards and then backwards: an average without lag.

    A one-way moving average trails the curve by about ``1 / (1 - beta)`` steps (50 steps at
    0.98, a whole decade of learning rate in a 300-step sweep over six decades), so the
    minimum of a one-way smoothed range test sits later than the loss's own minimum. Run
    both ways, the delays cancel. From the first non-finite loss on, every point is NaN.
    """
    values = [float(v) for v in losses]
    cut = next((i for i, v in enumerate(values) if not math.isfinite(v)), len(values))
    if cut == 0:
        return [math.nan] * len(values)
    forward = smooth(values[:cut], beta)
    both = smooth(forward[::-1], beta)[::-1]
    return both + [math.nan] * (len(values) - cut)


def validation_cut(
    val_lrs: Sequence[float], val_losses: Sequence[float], train_last_lr: float | None
) -> int:
    """How many of a range test's first validation points are evidence.

    Kept: the points at learning rates the training curve still vouches for (up to
    ``train_last_lr``, the last LR before the training loss diverged), before the first
    non-finite loss, and before the validation curve itself diverged
    (`disciplined.divergence.VAL_CUT`: a 5% fall over a 3-point start, since there are ten
    times fewer validation points than steps). Past those points a blown-up network's
    validation loss is noise: on a 35-sample validation set one such network scored a loss
    of exactly 0.
    """
    n = 0
    for lr, v in zip(val_lrs, val_losses, strict=True):
        if (train_last_lr is not None and lr > train_last_lr) or not math.isfinite(v):
            break
        n += 1
    if n == 0:
        return 0
    return VAL_CUT.index([float(v) for v in val_losses[:n]])


def validation_curve(
    val_lrs: Sequence[float], val_losses: Sequence[float], train_last_lr: float | None
) -> tuple[list[float], list[float]]:
    """The evidence part of a validation curve (`validation_cut`), smoothed both ways with
    ``beta = 0.5`` (`smooth_zero_lag`): one point in ten steps needs little averaging, and
    more would blur the turn. Returns ``(lrs, losses)``."""
    n = validation_cut(val_lrs, val_losses, train_last_lr)
    if n == 0:
        return [], []
    return [float(x) for x in val_lrs[:n]], smooth_zero_lag([float(v) for v in val_losses[:n]], 0.5)
