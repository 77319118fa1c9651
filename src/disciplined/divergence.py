"""When a loss has diverged: every rule the package uses, with its thresholds, in one place.

A run that goes wrong usually does **not** produce NaN. Of 240 runs of the MNIST-1D CNN over
a grid of batch size, max LR, weight decay and momentum, 69 ended at chance accuracy with a
finite loss (`../shared/DESIGN.md`, "What measurements here have already shown"): a
10-class cross-entropy that blows up levels off around 5-6, or sinks back to about ln 10 =
2.3, its starting value. So besides a non-finite loss, each rule here reads the loss
*level*: a multiple of where it started or of its best, or a loss back at or above its
start after having clearly fallen.

The situations differ, and so do the thresholds; each is named once, here:

- `nonfinite`: any loss, everywhere (a NaN or infinity has diverged at once). No threshold.
- `RunDivergence`: a training run, step by step (``fit`` calls it): the running loss far
  above its starting level. `RUN_FACTOR` 4, `RUN_BETA` 0.9, `start_window` (<= 10 steps).
- `SweepStop`: a range test's early stop, step by step: far above its best, or back above
  its start after a 10% fall. `SWEEP_FACTOR` 4, `SWEEP_BETA` 0.98, `SWEEP_WARMUP` 10,
  `SWEEP_FALL` 0.1. Causal and slow, since it must decide during a noisy run.
- `diverged_at_start`: a finished range test (a trial's status): it stopped before its
  stop rule could read anything but a non-finite loss. `SWEEP_WARMUP` 10.
- `CurveCut` / `divergence_cut`: a finished range-test curve, where it diverged, so the
  stored smoothing and the rules stop there. `TRAIN_CUT` (20% fall, 0.9, 10-step start)
  for the training loss, `VAL_CUT` (5%, 0.5, 3) for the sparser validation loss.
- `rise_index`: a curve a suggestion rule reads: the first point back above its start after
  a clear fall. `CLEAR_FALL` 0.05, `RISE_HALF_FALL` 0.5.
- `start_level`, `start_noise`, `ended_above_start`, `collapse_arm`: a finished training
  run's verdict (``diagnose``): above its start (beyond the start's own spread), back at it,
  or never left it. `COLLAPSE_TOL` 0.05, `START_NOISE_SIGMAS` 2, `FALL_SIGMAS` 3 (a short
  run's fall below its start).
- `RunCollapse`: a training run, step by step (``fit`` calls it): back at its starting level,
  steady, after having learned. `COLLAPSE_FALL` 0.1, `COLLAPSE_BAND` 0.1, `COLLAPSE_PATIENCE`
  a tenth of the run and at least an epoch.

A training run's step-by-step check is the loosest: stopping a run wastes it, so it fires
only on a loss running away (4x its start), or on a collapse that has sat at its starting
level, steady, for a tenth of the run; a collapse that stays finite is otherwise judged on
the finished run, within 5% of its start. A range test is driven to diverge on purpose, so its
stop rule also ends it on a collapse (back above its start after a 10% fall), and the curve
it leaves is cut again, more tightly, where it diverged.

Nothing here imports torch: the rules are plain functions and small frozen records over
loss numbers (numpy only where a whole curve is read at once), so each is tested on
numbers whose right answer is known.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "CLEAR_FALL",
    "COLLAPSE_BAND",
    "COLLAPSE_FALL",
    "COLLAPSE_PATIENCE",
    "COLLAPSE_TOL",
    "FALL_SIGMAS",
    "RISE_HALF_FALL",
    "RUN_BETA",
    "RUN_FACTOR",
    "START_NOISE_SIGMAS",
    "SWEEP_BETA",
    "SWEEP_FACTOR",
    "SWEEP_FALL",
    "SWEEP_WARMUP",
    "TRAIN_CUT",
    "VAL_CUT",
    "CurveCut",
    "RunCollapse",
    "RunDivergence",
    "SweepStop",
    "SweepWatch",
    "collapse_arm",
    "diverged_at_start",
    "divergence_cut",
    "ended_above_start",
    "nonfinite",
    "rise_index",
    "start_level",
    "start_noise",
    "start_window",
]


def nonfinite(loss: float) -> bool:
    """Whether ``loss`` is NaN or infinite: diverged, in every situation, at once."""
    return not math.isfinite(loss)


# --------------------------------------------------------------------------- a training run

RUN_FACTOR = 4.0
"""``fit`` ends a run whose running loss exceeds this multiple of its starting level. A loss
that is running away passes 4x within a few steps on its way to overflow, while the noise
of a healthy run's early steps stays far below it. It does not catch a collapse that stays
finite (a 10-class loss back at or a little above its start of ~2.3, or levelled at 5-6,
about 2.5x): that is left to the finished run's verdict (`collapse_arm`)."""

RUN_BETA = 0.9
"""The running average ``fit``'s check reads after the starting window: ``avg = 0.9 * avg +
0.1 * loss``, about ten steps of memory, so one bad batch cannot end a run."""

_START_WINDOW_MAX = 10  # the starting level is read over at most 10 steps ...
_START_WINDOW_SHARE = 20  # ... and at most a 20th of the run


def start_window(total_steps: int) -> int:
    """How many first steps a training run's starting level is read over:
    ``min(10, max(1, total_steps // 20))``, so a short run keeps most of its steps to be
    judged by."""
    return min(_START_WINDOW_MAX, max(1, total_steps // _START_WINDOW_SHARE))


def start_level(losses: Sequence[float]) -> float | None:
    """A finished run's starting level: the lower of its first loss and the mean of the
    finite losses among its first ``start_window(len(losses))`` steps (the mean alone would
    swallow a blow-up in those steps). None when the first loss is not finite or there is
    none. ``diagnose`` measures a collapse against it."""
    first = losses[0] if losses else None
    if first is None or nonfinite(first):
        return None
    head = [x for x in losses[: start_window(len(losses))] if not nonfinite(x)]
    return min(first, sum(head) / len(head))


class _RunningLoss:
    """The starting level and running average both step checks read: over the first
    ``window`` steps (`start_window`) the plain mean, the start level then set to the lower of
    the first loss and that mean; after it an exponential average (`RUN_BETA`)."""

    def __init__(self, total_steps: int) -> None:
        self.window = start_window(total_steps)
        self.base: float | None = None
        self._first = math.nan
        self._mean = 0.0

    def update(self, step: int, loss: float) -> float | None:
        """Take step ``step``'s finite ``loss``; the running average once past the window,
        else None."""
        if step < self.window:
            if step == 0:
                self._first = self._mean = loss
            else:
                self._mean = self._mean + (loss - self._mean) / (step + 1)
            if step == self.window - 1:
                self.base = min(self._first, self._mean)
            return None
        self._mean = RUN_BETA * self._mean + (1 - RUN_BETA) * loss
        return self._mean


class RunDivergence(_RunningLoss):
    """``fit``'s check, step by step: call it with each step's loss; it returns the reason
    once the run has diverged, else None.

    Diverged means a non-finite loss, or, after the first ``window`` steps
    (`start_window`), a running loss (`RUN_BETA`) above ``factor`` (`RUN_FACTOR`) times the
    starting level: the lower of the first loss and the mean of the first ``window`` losses,
    so a blow-up inside those steps cannot raise the bar it is measured against (a start
    level <= 0 disables the factor). ``factor=None`` checks only for non-finite losses.
    Call it for steps 0, 1, 2, ... in order.
    """

    def __init__(self, total_steps: int, factor: float | None = RUN_FACTOR) -> None:
        if factor is not None and not factor > 1:
            raise ValueError(f"factor must be > 1, got {factor}")
        super().__init__(total_steps)
        self.factor = factor

    def __call__(self, step: int, loss: float) -> str | None:
        """The reason the run diverged at ``step`` with ``loss``, or None."""
        if nonfinite(loss):
            return f"training loss is {loss} at step {step}"
        avg = self.update(step, loss)
        if (
            avg is not None
            and self.factor is not None
            and self.base is not None
            and self.base > 0
            and avg > self.factor * self.base
        ):
            return (
                f"running training loss {avg:.4g} exceeded {self.factor:g}x its "
                f"starting value {self.base:.4g} at step {step}"
            )
        return None


# --------------------------------------------------------------------------- a range test

SWEEP_FACTOR = 4.0
"""A range test stops once its running loss exceeds this multiple of its *best* (the
default of `lr_range_test`'s ``diverge_factor``). torch-lr-finder's 5x its best never fired
on 10-class cross-entropy (the loss levels off at 5-6 with a best of ~2.2), which is why
`SWEEP_FALL` is there too."""

SWEEP_BETA = 0.98
"""The range test's stop rule reads a causal, bias-corrected running average this slow
(about 50 steps of memory), so batch noise cannot end a test."""

SWEEP_WARMUP = 10
"""The stop rule reads nothing but a non-finite loss in a test's first 10 steps; their
median is the starting level `SWEEP_FALL` is measured from."""

SWEEP_FALL = 0.1
"""A range test whose running loss has fallen 10% below its start and then climbs back above
it has collapsed (finite, at chance), and stops."""


@dataclass(frozen=True)
class SweepStop:
    """The range test's early stop, with its thresholds (`SWEEP_FACTOR`, `SWEEP_BETA`,
    `SWEEP_WARMUP`, `SWEEP_FALL`). `watch` returns the per-step rule a test passes to
    ``fit`` as its ``stop``."""

    factor: float = SWEEP_FACTOR
    beta: float = SWEEP_BETA
    warmup: int = SWEEP_WARMUP
    fall: float = SWEEP_FALL

    def __post_init__(self) -> None:
        if not self.factor > 1:
            raise ValueError(f"factor must be > 1, got {self.factor}")

    def watch(self) -> SweepWatch:
        """A fresh per-step rule for one sweep."""
        return SweepWatch(self)


class SweepWatch:
    """One sweep's stop rule: call it with each step's loss (steps 0, 1, 2, ... in order);
    it returns why the test must stop, or None. Stops on a non-finite loss; after the
    warm-up, on the running average above ``factor`` x its best, or back above the start
    (median of the warm-up's losses) once its best is ``fall`` below it."""

    def __init__(self, rule: SweepStop) -> None:
        self.rule = rule
        self.avg, self.best, self.start = 0.0, math.inf, None
        self.first: list[float] = []

    def __call__(self, step: int, loss: float) -> str | None:
        """Why the test stops at ``step`` with ``loss``, or None."""
        r = self.rule
        if nonfinite(loss):
            return f"loss became {loss} at step {step}"
        self.avg = r.beta * self.avg + (1 - r.beta) * loss
        value = self.avg / (1 - r.beta ** (step + 1))
        if step < r.warmup:
            self.first.append(loss)
            return None
        if self.start is None:
            self.start = float(np.median(self.first))
        self.best = min(self.best, value)
        if value > r.factor * self.best:
            return (
                f"smoothed loss {value:.4g} exceeded {r.factor:g}x its best "
                f"{self.best:.4g} at step {step}"
            )
        if self.best < (1 - r.fall) * self.start and value > self.start:
            return (
                f"smoothed loss {value:.4g} climbed back above its starting value "
                f"{self.start:.4g} at step {step}"
            )
        return None


def diverged_at_start(stop_step: int | None) -> bool:
    """Whether a range test that stopped at ``stop_step`` diverged at its start LR: it
    stopped within its first `SWEEP_WARMUP` steps, where the stop rule reads nothing but a
    non-finite loss. Such a test holds no curve; a trial records it as ``diverged``."""
    return stop_step is not None and stop_step < SWEEP_WARMUP


# --------------------------------------------------------------------------- a finished curve


@dataclass(frozen=True)
class CurveCut:
    """Where a finished range-test curve diverged: with ``L0`` the median of the first
    ``window`` losses and a one-way running average (``beta``, bias-corrected) to keep batch
    noise out, once the average has fallen below ``(1 - fall) * L0`` and then risen back
    above ``L0``, the cut is the first raw loss above ``L0`` after the average's lowest
    point. A non-finite loss cuts at once, and so does a loss that exploded without falling
    first: the average above ``explode`` times ``L0`` cuts at that point. (A deep net
    without normalization sits on its plateau until the LR blows it up: its curve never
    fell, and left in, a loss of 6e14 smeared back by the lag-free average buried every
    point of it.) See `TRAIN_CUT` and `VAL_CUT`."""

    fall: float
    beta: float
    window: int
    explode: float = SWEEP_FACTOR

    def index(self, losses: Sequence[float]) -> int:
        """The index where ``losses`` diverged, or their length if they never did."""
        values = [float(v) for v in losses]
        n = len(values)
        head = [v for v in values[: self.window] if math.isfinite(v)]
        if not head:
            return 0
        start = float(np.median(head))
        avg, low, low_at = 0.0, math.inf, 0
        for i, v in enumerate(values):
            if not math.isfinite(v):
                return i
            avg = self.beta * avg + (1 - self.beta) * v
            level = avg / (1 - self.beta ** (i + 1))
            if i < self.window:
                continue
            if start > 0 and level > self.explode * start:
                return i
            if level < low:
                low, low_at = level, i
            if low < (1 - self.fall) * start and level > start:
                return next(j for j in range(low_at, i + 1) if values[j] > start)
        return n


TRAIN_CUT = CurveCut(fall=0.2, beta=0.9, window=10)
"""The training curve of a range test: a 20% fall over a 10-step start, averaged at 0.9.
Losses from the cut on say only that the run diverged; left in, a lag-free average smears
the blow-up backwards over the last good points and moves the minimum to a lower LR (seen
on the MNIST-1D CNN: 0.15 instead of 0.26)."""

VAL_CUT = CurveCut(fall=0.05, beta=0.5, window=3)
"""A range test's validation curve: ten times fewer points than steps, so a 3-point start, a
short average (0.5) and a 5% fall. Past the cut a blown-up network's validation loss is
noise (on a 35-sample validation set one such network scored a loss of exactly 0)."""


def divergence_cut(
    losses: Sequence[float],
    fall: float = TRAIN_CUT.fall,
    beta: float = TRAIN_CUT.beta,
    window: int = TRAIN_CUT.window,
    explode: float = TRAIN_CUT.explode,
) -> int:
    """`CurveCut` ``(fall, beta, window, explode)`` read on ``losses`` (by default
    `TRAIN_CUT`): the index where a range test's curve diverged, or the length if it never
    did."""
    return CurveCut(fall=fall, beta=beta, window=window, explode=explode).index(losses)


CLEAR_FALL = 0.05
"""A fall under 5% of ``|L0|`` is not a clear fall: the plateau's noise. Below this a curve
never fell (a suggestion says it is unreliable), and a later climb above ``L0`` is no
divergence."""

RISE_HALF_FALL = 0.5
"""A curve has clearly fallen only once it is below its start by `CLEAR_FALL` of ``|L0|``
*and* by half its whole fall, so the noise of the first, barely averaged points is no
fall."""


def rise_index(losses: np.ndarray, start: float) -> int | None:
    """The first index where ``losses`` (finite, 1-D) are back above ``start`` after having
    clearly fallen below it (`CLEAR_FALL`, `RISE_HALF_FALL`), or None. With 10-class
    cross-entropy a diverged run levels off around 5-6 instead of turning NaN, and the
    suggestion rules read a curve only up to here."""
    clearly = start - max(
        CLEAR_FALL * max(abs(start), 1e-12), RISE_HALF_FALL * (start - float(losses.min()))
    )
    running_min = np.minimum.accumulate(losses)
    above = np.flatnonzero((losses[1:] > start) & (running_min[:-1] < clearly))
    return int(above[0]) + 1 if len(above) else None


# --------------------------------------------------------------------------- a finished run

COLLAPSE_TOL = 0.05
"""A finished run whose training loss ends within 5% of its starting level kept no progress.
MNIST-1D CNN, 1cycle to max LR 3, batch 128, 20 epochs: two seeds ended at chance with a
finite loss 0.5-1.1% above their start, never 5% lower; a 40-2-2-10 MLP that died at chance
ended 4.6% below its start; the slowest run that was learning (MNIST-1D MLP, constant LR
0.003, 6 epochs) was 7-9% below its start, and falling."""


START_NOISE_SIGMAS = 2.0
"""A finished run ended above its start only when its last loss is this many of the start
window's standard deviations above the starting level, as well as `COLLAPSE_TOL` above it
(`ended_above_start`, `collapse_arm`)."""
FALL_SIGMAS = 3.0
"""A run too short for `diagnose`'s rules fell from its start only when its lowest running
mean is this many of a running mean's spreads below it, as well as `COLLAPSE_TOL` below it
(`measure.diagnose`'s short-run class)."""


def start_noise(losses: Sequence[float]) -> float:
    """The spread of a run's per-step losses over its starting window (`start_window`): the
    standard deviation of those within twice the starting level (a step beyond it is a
    blow-up under way, as on a digits MLP at max LR 10, whose third step's loss was 40), 0.0
    with fewer than two. The starting level is the lower of the first loss and the window's
    mean (`start_level`), so on a small batch it sits up to a step's spread below the
    untrained model's loss. An MSE regression at batch 16 spreads
    about a third of its level from batch to batch: a run that never moved (the adding
    problem's LSTM at max LR 7e-6 under AdamW) ended 6% above a starting level read off one
    lucky first batch, and was read as a blow-up; lowering its LR as for one ran it down to
    7e-12 and `tune` gave up."""
    level = start_level(losses)
    if level is None:
        return 0.0
    # a step past twice the level is a blow-up starting, not the batches' spread
    head = [x for x in losses[: start_window(len(losses))] if not nonfinite(x) and x <= 2 * level]
    if len(head) < 2:
        return 0.0
    mean = sum(head) / len(head)
    return math.sqrt(sum((x - mean) ** 2 for x in head) / (len(head) - 1))


def ended_above_start(
    last: float, start: float, tol: float = COLLAPSE_TOL, noise: float = 0.0
) -> bool:
    """Whether a run's last training loss is at least ``1 + tol`` times its (positive)
    starting level, and `START_NOISE_SIGMAS` times ``noise`` (the start window's spread,
    `start_noise`) above it: a blow-up that stayed finite, readable even on a run too short
    for a verdict."""
    return start > 0 and last >= max((1 + tol) * start, start + START_NOISE_SIGMAS * noise)


def collapse_arm(
    progress: float | None,
    progress_max: float | None,
    change_end: float | None,
    *,
    tol: float = COLLAPSE_TOL,
    flat_tol: float,
    noise: float = 0.0,
) -> str | None:
    """Which way a finished run diverged, read off its training loss, or None.

    ``progress`` is ``(start - end) / start`` (the smoothed end), ``progress_max`` the same
    with the smoothed minimum, ``change_end`` the relative change of the fitted line over the
    tail (negative when falling). Returns ``"above_start"`` when ``progress <= -tol`` (ended
    ``tol`` or more above its start, and ``noise``, the start window's spread over the
    starting level, `START_NOISE_SIGMAS` times); ``"collapse"`` when ``|progress| < tol`` but
    ``progress_max >= tol`` (was ``tol`` lower once, and is back at its start, as a
    collapse to chance with a finite loss is); ``"no_progress"`` when ``|progress| < tol``,
    never ``tol`` lower, and not falling by ``flat_tol`` or more over the tail (a run that
    never learned). A run only now leaving its initial plateau gets None, like one that
    made progress.
    """
    if progress is None:
        return None
    if progress <= -max(tol, START_NOISE_SIGMAS * noise):
        return "above_start"
    if not progress < tol:
        return None
    if progress_max is not None and progress_max >= tol:
        return "collapse"
    if change_end is None or change_end > -flat_tol:
        return "no_progress"
    return None


# --------------------------------------------------------------------------- a collapse, live

COLLAPSE_FALL = 0.1
"""`RunCollapse` reads a run as having learned once its running loss was 10% below its
starting level: twice `COLLAPSE_TOL`, so the plateau's noise is no fall (a deep net without
normalization sits at its start, within a few percent, until it learns)."""

COLLAPSE_PATIENCE = 0.1
"""... and as collapsed once its running loss has then sat, steady, at or above the start's
level for this share of the run's steps (and at least an epoch) without a break."""

COLLAPSE_BAND = 2 * COLLAPSE_TOL
"""Steady: over that stretch the running loss's highest value is at most 10% above its lowest.
A network that died at chance outputs its class prior whatever the input, and its loss sits
still (a 10-class MLP at 2.30-2.35 for hundreds of steps); a loss that blew up and is coming
back down (a GRU at 2x its start for two epochs, then learning) or a noisy one spiking above
its start between near-zero batches (a binary MLP at batch 32) moves far more than that."""


class RunCollapse(_RunningLoss):
    """``fit``'s collapse check, step by step: a run that had learned (its running loss
    `COLLAPSE_FALL` below its starting level) and then sank back to that level (within
    `COLLAPSE_TOL` of it, or above) and sat there, steady (`COLLAPSE_BAND`), for
    `COLLAPSE_PATIENCE` of its steps and at least ``steps_per_epoch`` in a row is stopped: the
    *collapsed* of `disciplined.measure.diagnose.classify_run`, read while the run goes on
    instead of after its last epoch.

    The starting level and the running average are `RunDivergence`'s (`start_window`,
    `RUN_BETA`). A run that never fell `COLLAPSE_FALL` below its start is never stopped, so a
    run still on its initial plateau trains on. Replayed over the 974 stored training runs of
    the development zoo's tunes (``benchmarks/zoo/cache``: 918 ``ok``, 54 ``plateau``, 2
    ``diverged``), it stopped none. Call it for steps 0, 1, 2, ... in order; it returns the
    reason once the run has collapsed, else None.
    """

    def __init__(self, total_steps: int, steps_per_epoch: int = 1) -> None:
        super().__init__(total_steps)
        self.patience = max(int(steps_per_epoch), math.ceil(COLLAPSE_PATIENCE * total_steps))
        self.low = math.inf
        self.streak = 0  # steps in a row back at the starting level, steady, after a fall
        self._lo = self._hi = math.nan  # the streak's lowest and highest running loss

    def __call__(self, step: int, loss: float) -> str | None:
        """The reason the run collapsed at ``step`` with ``loss``, or None."""
        if nonfinite(loss):
            return None  # `RunDivergence`'s to report
        avg = self.update(step, loss)
        base = self.base
        if avg is None or base is None or not base > 0:
            return None
        self.low = min(self.low, avg)
        if self.low > (1 - COLLAPSE_FALL) * base or avg < (1 - COLLAPSE_TOL) * base:
            self.streak = 0
            return None
        lo, hi = min(self._lo, avg), max(self._hi, avg)
        if self.streak == 0 or hi > (1 + COLLAPSE_BAND) * lo:
            self.streak, self._lo, self._hi = 0, avg, avg  # a new stretch starts here
        else:
            self._lo, self._hi = lo, hi
        self.streak += 1
        if self.streak >= self.patience:
            return (
                f"collapsed: running training loss back at its starting level {base:.4g} "
                f"({self._lo:.4g}-{self._hi:.4g}) for {self.streak} steps after falling to "
                f"{self.low:.4g}, at step {step}"
            )
        return None
