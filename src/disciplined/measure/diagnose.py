"""Under/overfitting diagnosis from a training run's curves (Smith, arXiv 1803.09820, sec. 3).

The report reads the validation loss: still falling steeply with little gap to the training
loss means *underfitting* (less regularization, or more capacity / a longer cycle); turning up
while the training loss keeps falling, the gap growing, means *overfitting* (more
regularization); the goal is a validation loss that flattens, "horizontal", at its lowest
value (*balanced*). `diagnose` is a pure function of a `History` that applies that reading
with named thresholds, and returns the verdict with the numbers it read (`Diagnosis`).

`diagnose`'s definitions (all "relative" numbers are fractions of the loss level named):

- *tail*: the last ``max(3, ceil(tail * evals))`` evaluations; *level*: the mean validation
  loss over the tail. Losses are taken to be >= 0 (cross-entropy, MSE).
- *smoothed*: a centered 3-point running mean (2 points at the ends).
- ``val_min``, ``val_min_epoch``: the smoothed validation loss's minimum and where it is;
  ``val_min_raw``: the lowest single evaluation; ``val_final``: the last evaluation;
  ``val_end``: the smoothed last value (mean of the last two evaluations).
- ``rise_from_min = (val_end - val_min) / val_min``.
- ``val_slope_end``: least-squares slope of the validation loss per epoch over the tail,
  divided by the level; ``val_change_end``: that slope times the tail's span in epochs -
  how much the fitted line changes over the tail, as a fraction of the level.
- ``train_start``: the untrained model's training loss - the lower of the first step's
  loss and the mean of the first ``min(10, steps // 20)`` steps (the first evaluation's
  training loss when no steps were recorded); ``train_end``: the
  smoothed last training loss; ``train_progress = (train_start - train_end) /
  train_start``; ``train_progress_max`` the same with the smoothed minimum;
  ``train_slope_end``/``train_change_end``: as for the validation loss, relative to the
  training loss's own tail mean; ``train_rebound = (train_end - train_min) / (train_start
  - train_min)``: how much of its progress the training loss gave back by the end.
- ``gap_final = (val_end - train_end) / val_end``; ``gap_trend``: the least-squares change
  of ``val - train`` over the tail, relative to the level.

Rules, first match wins (``rule`` names the arm):

1. ``diverged`` (``diverged_flag``/``nonfinite``): ``history.diverged`` or the last
   validation loss is NaN/infinite; ``diverged`` (``collapse``) when ``fit`` stopped the run
   because it collapsed (``history.collapsed_step``, `disciplined.divergence.RunCollapse`).
2. With fewer than ``min_evals`` evaluations (5): ``diverged`` (``above_start``) when the
   last training loss is at least ``1 + collapse_tol`` times its starting level
   (`disciplined.divergence.ended_above_start`), else
   ``too-short`` (``too_few_evals``): a short run may still sit on its initial plateau.
3. ``diverged``, reading ``train_progress`` (needs training losses;
   `disciplined.divergence.collapse_arm`):
   (a) ``above_start``: ``train_progress <= -collapse_tol`` (-0.05): the training loss
   ends 5%+ above its starting level (a blow-up that stayed finite);
   (b) ``collapse``: ``|train_progress| < collapse_tol`` but ``train_progress_max >=
   collapse_tol``: it was 5%+ lower once and is back at its starting level - a collapse
   to chance with a finite loss;
   (c) ``no_progress``: ``|train_progress| < collapse_tol``, never 5% lower, and not
   falling clearly now (``train_change_end > -flat_tol``): a run that never learned.
   A run that is only now leaving its initial plateau (falling 3%+ over the tail) is read
   by the next rules instead.
4. ``overfitting``, when the training loss did not rise (smoothed training loss at the end
   below its value where the validation loss was lowest; vacuous without training
   losses), and either
   (a) ``rise_from_min >= rise_tol`` (0.10) (``val_rise``), or
   (b) ``val_change_end >= flat_tol`` (0.03) and ``gap_trend >= gap_tol`` (0.05):
   validation loss turning up while the gap grows (``gap_growing``).
5. ``underfitting``, when (a) ``val_change_end <= -flat_tol`` (still falling by 3%+ over
   the tail) and ``gap_final <= gap_small`` (0.25) (``val_falling``), or (b) the
   validation loss is flat (``|val_change_end| < flat_tol``) and ``gap_final <=
   gap_none`` (0.05): a plateau the training loss is no lower than - nothing left to
   learn at this capacity and regularization (``plateau_no_gap``).
   (c) ``val_falling_steeply``: whatever the gap, the validation loss still falls by
   ``steep_tol`` (10%) or more over the tail (``val_change_end <= -steep_tol``): the run
   ended before the loss flattened, so it is not the "horizontal" curve of a balanced
   run (a BatchNorm CNN ended still falling 60% at 10 epochs); Smith reads a faster
   falling test loss at a larger LR as underfitting at the smaller one.
6. ``balanced`` (``flat_at_min``, or ``still_improving`` when the validation loss still
   falls by less than ``steep_tol`` but the training loss is well below it).

The summaries quote the smoothed validation loss at the start and the end of the tail
(the fitted change can exceed 100% on a steep tail; the losses cannot).

Whatever the verdict, a ``train_rebound`` of 5% or more (the training loss gave back part
of its progress), or a ``rise_from_min >= rise_tol`` with the training loss rising too,
marks an unstable peak LR and adds "lower max LR" to the advice.

Where the thresholds come from (``disciplined`` 0.1.0, torch 2.13 CPU, one thread, seeds 0-2,
evaluation each epoch):

- ``collapse_tol = 0.05``: `disciplined.divergence.COLLAPSE_TOL`, read by the collapse arms
  (`disciplined.divergence.collapse_arm`), where every divergence rule and its measurements
  are. MNIST-1D CNN, 1cycle to max LR 3, batch 128, 20 epochs: seed 0 was stopped by
  ``fit``'s divergence check; seeds 1 and 2 ended at chance with a finite loss (training
  loss 2.308 and 2.310 against a start of 2.297 and 2.285, never 5% lower).
- ``rise_tol = 0.10``. Digits MLP, 1cycle max LR 0.1, 20 epochs, no weight decay: the
  smoothed validation loss ended 11%, 2% and 2% above its minimum while the training loss
  fell to ~1e-4 (with weight decay 1e-3 all three ended at their minimum). After the LR has
  annealed, flat validation curves move under 1% per evaluation; at the peak LR single
  evaluations jump 50-100%, which the 3-point smoothing and the tail fit absorb. A wide MLP
  (40-512-512-10) on 400 MNIST-1D samples at constant LR 0.05 rose 36-39% from its minimum
  (epoch 3-7) in 15 epochs and 66-75% in 40, its training loss falling to 0.05 and 0.004.
- ``flat_tol = 0.03``. Too small a constant LR (digits 0.001 for 6 epochs; MNIST-1D MLP
  0.003 for 10) left the validation loss falling 8% and 4.5-5.5% over the tail. Sound runs
  whose validation loss had flattened moved -2.8% to +1% over it.
- ``gap_small = 0.25``, ``gap_none = 0.05``. Runs with capacity to spare end with the
  training loss 34-100% below the validation loss (digits 53-100%, MNIST-1D CNN 35-80%,
  synthetic regression 34-46%); the underfitting runs above end within 2%, as does a 2-unit
  MLP on its plateau (0.3%).
- ``gap_tol = 0.05``: the wide MLP's gap grew 22-24% over the tail at 15 epochs; in sound
  runs whose validation loss had flattened it moved -6% to +12% (the training loss still
  falling under weight decay 1e-2), so it counts only with a validation loss rising 3%+.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from disciplined.divergence import (
    COLLAPSE_TOL,
    FALL_SIGMAS,
    collapse_arm,
    ended_above_start,
    start_level,
    start_noise,
)
from disciplined.training.fit import EvalRecord, History

__all__ = [
    "RUN_CLASSES",
    "VERDICTS",
    "Diagnosis",
    "blew_up",
    "classify_run",
    "describe_run",
    "diagnose",
]

VERDICTS = ("underfitting", "overfitting", "balanced", "diverged", "too-short")

Number = float | int | None

_ADVICE_MORE_REG = (
    "more regularization: a larger weight decay (the next value up the 1e-5..1e-2 grid), "
    "dropout, a smaller batch size or a larger max LR"
)
_ADVICE_LESS_REG = "less regularization: a smaller weight decay or dropout"
_ADVICE_CAPACITY = "or a larger model"
_ADVICE_LONGER = "a longer cycle (more epochs)"
_ADVICE_KEEP = "keep these settings: the validation loss is flat at its lowest value"
_ADVICE_LOWER_LR = "lower max LR (run a range test and take a value below where the loss turns)"
_ADVICE_RANGE_TEST = (
    "run a range test: lower max LR if the loss is ragged at its starting level, "
    "raise it if the loss crawls"
)
_ADVICE_TOO_SHORT = "train longer or evaluate more often (at least {n} evaluations)"


@dataclass(frozen=True)
class Diagnosis:
    """A verdict on a training run, with the numbers it rests on and what to do about it.

    ``verdict`` is one of `VERDICTS`; ``evidence`` maps names (documented in `diagnose`) to
    numbers read off the curves, ``None`` where a number is undefined; ``advice`` says what to
    change, in the report's terms; ``summary`` is one sentence with the key numbers; ``rule``
    names the rule (and arm) that decided.
    """

    verdict: str
    evidence: dict[str, Number]
    advice: tuple[str, ...]
    summary: str
    rule: str
    thresholds: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")

    def line(self) -> str:
        """The verdict, the summary and the advice on one line."""
        advice = "; ".join(self.advice)
        return f"{self.verdict}: {self.summary}; advice: {advice}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (non-finite numbers are already ``None``)."""
        return {
            "verdict": self.verdict,
            "evidence": dict(self.evidence),
            "advice": list(self.advice),
            "summary": self.summary,
            "rule": self.rule,
            "thresholds": dict(self.thresholds),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Diagnosis:
        """Rebuild from `to_dict` output."""
        return cls(
            verdict=d["verdict"],
            evidence=dict(d["evidence"]),
            advice=tuple(d["advice"]),
            summary=d["summary"],
            rule=d["rule"],
            thresholds=dict(d.get("thresholds", {})),
        )


# --------------------------------------------------------------------------- curve helpers


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def _slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ``ys`` on ``xs`` (on the index when all ``xs`` are equal)."""
    n = len(ys)
    if n < 2:
        return 0.0
    if max(xs) == min(xs):
        xs = list(range(n))
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx


def _smooth(ys: Sequence[float]) -> list[float]:
    """Centered 3-point running mean (2 points at either end)."""
    n = len(ys)
    out = []
    for i in range(n):
        window = ys[max(0, i - 1) : i + 2]
        out.append(sum(window) / len(window))
    return out


def _rel(x: float, scale: float) -> float:
    return x / max(abs(scale), 1e-12)


def _clean(evidence: dict[str, Number]) -> dict[str, Number]:
    return {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v)
        for k, v in evidence.items()
    }


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.0f}%"


def _train_start(history: History) -> float | None:
    """The untrained model's training loss: `disciplined.divergence.start_level` of the
    per-step losses (the lower of the first step's loss and the mean of the first ``min(10,
    steps // 20)`` steps); the first evaluation's training loss when no finite first step
    was recorded."""
    start = start_level(history.train_losses)
    if start is not None:
        return start
    measured = [e.train_loss for e in history.evals if _finite(e.train_loss)]
    return measured[0] if measured else None


# --------------------------------------------------------------------------- the rule


@dataclass(frozen=True)
class _Limits:
    """`diagnose`'s thresholds, checked; in this order in a `Diagnosis`'s ``thresholds``."""

    tail: float
    flat_tol: float
    rise_tol: float
    gap_small: float
    gap_none: float
    gap_tol: float
    steep_tol: float
    collapse_tol: float
    min_evals: int

    def __post_init__(self) -> None:
        if not 0 < self.tail <= 1:
            raise ValueError(f"tail must be in (0, 1], got {self.tail}")
        if self.min_evals < 3:
            raise ValueError(f"min_evals must be >= 3, got {self.min_evals}")
        for name in (
            "flat_tol",
            "rise_tol",
            "gap_small",
            "gap_none",
            "gap_tol",
            "collapse_tol",
            "steep_tol",
        ):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")

    def verdict(
        self, verdict: str, rule: str, ev: dict[str, Number], summary: str, advice: Sequence[str]
    ) -> Diagnosis:
        """The `Diagnosis` with these thresholds."""
        thresholds = {f.name: getattr(self, f.name) for f in fields(self)}
        return Diagnosis(verdict, _clean(ev), tuple(advice), summary, rule, thresholds)


@dataclass(frozen=True)
class _Val:
    """The validation curve's numbers (`diagnose`'s definitions)."""

    xs: list[float]
    val: list[float]
    sval: list[float]
    k: int  # evaluations in the tail
    span: float
    level: float
    i_min: int
    i_raw: int
    rise: float
    slope: float
    change: float

    @property
    def min(self) -> float:
        return self.sval[self.i_min]

    @property
    def end(self) -> float:
        return self.sval[-1]


@dataclass(frozen=True)
class _Train:
    """The training curve's numbers; None where there are too few training losses."""

    start: float | None
    end: float | None = None
    final: float | None = None
    slope: float | None = None
    change: float | None = None
    progress: float | None = None
    progress_max: float | None = None
    rebound: float | None = None
    gap_final: float | None = None
    gap_trend: float | None = None
    at_min: float | None = None
    fell: bool = True  # vacuous without training losses
    noise: float = 0.0  # the start window's spread over the starting level


def diagnose(
    history: History,
    *,
    tail: float = 0.3,
    flat_tol: float = 0.03,
    rise_tol: float = 0.10,
    gap_small: float = 0.25,
    gap_none: float = 0.05,
    gap_tol: float = 0.05,
    collapse_tol: float = COLLAPSE_TOL,
    steep_tol: float = 0.10,
    min_evals: int = 5,
) -> Diagnosis:
    """Read a run's validation (and training) loss curves and say whether it under- or overfits.

    Only losses are read (the metric may be NaN, as for any task without one). The curves are
    the evaluations' ``val_loss`` and ``train_loss`` (the mean training loss since the previous
    evaluation) against ``epoch``; evaluations with a non-finite loss are dropped (a non-finite
    *last* validation loss means the run diverged). The numbers in the evidence and the rules,
    tried in order (first match wins; ``rule`` names the arm), are defined in this module's
    docstring; each threshold is the keyword of the same name. `ValueError` for a threshold
    out of range.
    """
    lim = _Limits(
        tail=tail,
        flat_tol=flat_tol,
        rise_tol=rise_tol,
        gap_small=gap_small,
        gap_none=gap_none,
        gap_tol=gap_tol,
        steep_tol=steep_tol,
        collapse_tol=collapse_tol,
        min_evals=min_evals,
    )
    early = _diverged(history, lim) or _too_short(history, lim)
    if early is not None:
        return early
    pts = [e for e in history.evals if _finite(e.val_loss)]
    v = _read_val(pts, tail)
    t = _read_train(history, pts, v, tail)
    ev = _evidence(len(pts), v, t)
    extra = _unstable_peak(v, t, rise_tol)
    for rule in (_no_progress, _overfitting, _underfitting):
        found = rule(v, t, ev, extra, lim)
        if found is not None:
            return found
    return _balanced(v, t, ev, extra, lim)


def _diverged(history: History, lim: _Limits) -> Diagnosis | None:
    """Rule 1: flagged by the run, or a non-finite last validation loss; or stopped by
    ``fit`` as collapsed (arm ``collapse``, as when the finished run is read so)."""
    evals = history.evals
    if history.collapsed_step is not None and not history.diverged:
        ev_c: dict[str, Number] = {
            "evals": len(evals),
            "val_final": evals[-1].val_loss if evals else None,
            "collapsed_step": history.collapsed_step,
        }
        reason = (history.stopped_reason or "").removeprefix("collapsed: ")
        why = f"collapsed, stopped early at epoch {history.epochs:.3g}" + (
            f": {reason}" if reason else ""
        )
        return lim.verdict("diverged", "collapse", ev_c, why, [_ADVICE_LOWER_LR])
    if not (history.diverged or (evals and not _finite(evals[-1].val_loss))):
        return None
    last = evals[-1].val_loss if evals else None
    ev: dict[str, Number] = {"evals": len(evals), "val_final": last}
    ev["diverged_step"] = history.diverged_step
    why = history.diverged_reason or (
        f"the last validation loss is {last}" if evals else "the run diverged"
    )
    rule = "diverged_flag" if history.diverged else "nonfinite"
    return lim.verdict("diverged", rule, ev, why, [_ADVICE_LOWER_LR])


def _too_short(history: History, lim: _Limits) -> Diagnosis | None:
    """Rule 2: fewer than ``min_evals`` finite evaluations: diverged when the training loss
    ended above its start (`disciplined.divergence.ended_above_start`), else too short."""
    pts = [e for e in history.evals if _finite(e.val_loss)]
    n = len(pts)
    if n >= lim.min_evals:
        return None
    start = _train_start(history)
    ends = [e.train_loss for e in pts if _finite(e.train_loss)]
    ev: dict[str, Number] = {
        "evals": n,
        "val_final": pts[-1].val_loss if pts else None,
        "train_start": start,
        "train_final": ends[-1] if ends else None,
    }
    noise = start_noise(history.train_losses)
    if ends and start is not None and ended_above_start(ends[-1], start, lim.collapse_tol, noise):
        summary = f"training loss ended at {ends[-1]:.4g}, above its starting level {start:.4g}"
        return lim.verdict("diverged", "above_start", ev, summary, [_ADVICE_LOWER_LR])
    summary = f"only {n} evaluation{'s' if n != 1 else ''} with a finite validation loss"
    return lim.verdict(
        "too-short", "too_few_evals", ev, summary, [_ADVICE_TOO_SHORT.format(n=lim.min_evals)]
    )


def _read_val(pts: Sequence[EvalRecord], tail: float) -> _Val:
    """The validation curve's numbers (at least ``min_evals`` finite points)."""
    n = len(pts)
    xs = [e.epoch for e in pts]
    val = [e.val_loss for e in pts]
    k = min(n, max(3, math.ceil(tail * n)))
    tx, tv = xs[-k:], val[-k:]
    span = tx[-1] - tx[0] if tx[-1] > tx[0] else float(k - 1)
    level = sum(tv) / k
    sval = _smooth(val)
    i_min = min(range(n), key=sval.__getitem__)
    i_raw = min(range(n), key=val.__getitem__)
    rise = _rel(sval[-1] - sval[i_min], sval[i_min])
    slope = _rel(_slope(tx, tv), level)
    return _Val(xs, val, sval, k, span, level, i_min, i_raw, rise, slope, slope * span)


def _read_train(history: History, pts: Sequence[EvalRecord], v: _Val, tail: float) -> _Train:
    """The training curve's numbers, per evaluation (too few training losses: only its
    start)."""
    tpts = [(e.epoch, e.train_loss) for e in pts if _finite(e.train_loss)]
    start = _train_start(history)
    if len(tpts) < 3:
        return _Train(start=start)
    trx = [x for x, _ in tpts]
    trl = [y for _, y in tpts]
    strain = _smooth(trl)
    end = strain[-1]
    kt = min(len(trl), max(3, math.ceil(tail * len(trl))))
    t_level = sum(trl[-kt:]) / kt
    t_span = trx[-1] - trx[-kt] if trx[-1] > trx[-kt] else float(kt - 1)
    slope = _rel(_slope(trx[-kt:], trl[-kt:]), t_level)
    train_min = min(strain)
    progress = progress_max = rebound = gap_trend = None
    noise = 0.0
    if start is not None and start > 0:
        noise = start_noise(history.train_losses) / start
        progress = (start - end) / start
        progress_max = (start - train_min) / start
        if start > train_min:
            rebound = (end - train_min) / (start - train_min)
    # training loss where the validation loss was lowest (nearest evaluation at or before)
    j = max((i for i, (x, _) in enumerate(tpts) if x <= v.xs[v.i_min]), default=0)
    both = [(e.epoch, e.val_loss - e.train_loss) for e in pts[-v.k :] if _finite(e.train_loss)]
    if len(both) >= 2:
        gx = [x for x, _ in both]
        gy = [g for _, g in both]
        gap_trend = _rel(_slope(gx, gy), v.level) * v.span
    return _Train(
        start=start,
        noise=noise,
        end=end,
        final=trl[-1],
        slope=slope,
        change=slope * t_span,
        progress=progress,
        progress_max=progress_max,
        rebound=rebound,
        gap_final=_rel(v.end - end, v.end),
        gap_trend=gap_trend,
        at_min=strain[j],
        fell=end < strain[j],
    )


def _evidence(n: int, v: _Val, t: _Train) -> dict[str, Number]:
    """The evidence a verdict quotes (names defined in the module docstring)."""
    return {
        "evals": n,
        "tail_evals": v.k,
        "epochs": v.xs[-1],
        "val_min": v.min,
        "val_min_epoch": v.xs[v.i_min],
        "val_min_raw": v.val[v.i_raw],
        "val_min_raw_epoch": v.xs[v.i_raw],
        "val_final": v.val[-1],
        "val_end": v.end,
        "rise_from_min": v.rise,
        "val_slope_end": v.slope,
        "val_change_end": v.change,
        "train_start": t.start,
        "train_final": t.final,
        "train_end": t.end,
        "train_at_val_min": t.at_min,
        "train_progress": t.progress,
        "train_progress_max": t.progress_max,
        "train_rebound": t.rebound,
        "train_slope_end": t.slope,
        "train_change_end": t.change,
        "gap_final": t.gap_final,
        "gap_trend": t.gap_trend,
    }


def _unstable_peak(v: _Val, t: _Train, rise_tol: float) -> list[str]:
    """The advice to lower the max LR, with its reason, whatever the verdict: when the training
    loss gave back 5%+ of its progress, or rose with a validation loss ``rise_tol`` above its
    minimum."""
    if t.rebound is not None and t.rebound >= 0.05:
        return [
            f"{_ADVICE_LOWER_LR}: the training loss gave back {_pct(t.rebound)} of its progress"
        ]
    if v.rise >= rise_tol and not t.fell:
        return [
            f"{_ADVICE_LOWER_LR}: the validation loss is {_pct(v.rise)} above its minimum and "
            "the training loss rose with it"
        ]
    return []


def _no_progress(
    v: _Val, t: _Train, ev: dict[str, Number], extra: list[str], lim: _Limits
) -> Diagnosis | None:
    """Rule 3: no progress kept (`disciplined.divergence.collapse_arm`): a finite blow-up, a
    collapse, or a run that never learned."""
    arm = collapse_arm(
        t.progress,
        t.progress_max,
        t.change,
        tol=lim.collapse_tol,
        flat_tol=lim.flat_tol,
        noise=t.noise,
    )
    if arm is None:  # progress kept, or only now leaving its initial plateau: read on
        return None
    assert t.start is not None and t.end is not None  # progress was read from them
    if arm == "above_start":
        summary = (
            f"training loss ended at {t.end:.4g}, {t.end / t.start:.2g}x its "
            f"starting level {t.start:.4g}"
        )
        return lim.verdict("diverged", arm, ev, summary, [_ADVICE_LOWER_LR])
    if arm == "collapse":
        assert t.progress_max is not None
        summary = (
            f"training loss collapsed back to {t.end:.4g} from a low of "
            f"{t.start * (1 - t.progress_max):.4g} (start {t.start:.4g})"
        )
        return lim.verdict("diverged", arm, ev, summary, [_ADVICE_LOWER_LR])
    summary = (
        f"training loss never left its starting level: {t.end:.4g} at the end, "
        f"{t.start:.4g} at the start"
    )
    return lim.verdict("diverged", arm, ev, summary, [_ADVICE_RANGE_TEST])


def _overfitting(
    v: _Val, t: _Train, ev: dict[str, Number], extra: list[str], lim: _Limits
) -> Diagnosis | None:
    """Rule 4: the validation loss rose from its minimum, or turns up while the gap grows,
    and the training loss did not rise."""
    if not t.fell:
        return None
    fell = f" while training loss fell to {t.end:.3g}" if t.end is not None else ""
    if v.rise >= lim.rise_tol:
        summary = (
            f"validation loss rose {1 + v.rise:.2g}x, to {v.end:.3g}, from its minimum "
            f"{v.min:.3g} at epoch {v.xs[v.i_min]:g}{fell}"
        )
        return lim.verdict("overfitting", "val_rise", ev, summary, [_ADVICE_MORE_REG, *extra])
    if v.change >= lim.flat_tol and t.gap_trend is not None and t.gap_trend >= lim.gap_tol:
        summary = (
            f"validation loss turned up {_pct(v.change)} over the last {v.k} evaluations "
            f"and the gap to training loss grew {_pct(t.gap_trend)}{fell}"
        )
        advice = [_ADVICE_MORE_REG, *extra]
        return lim.verdict("overfitting", "gap_growing", ev, summary, advice)
    return None


def _gap_text(t: _Train) -> str:
    if t.gap_final is None:
        return ""
    side = "above" if t.gap_final >= 0 else "below"
    return f", {_pct(abs(t.gap_final))} {side} the training loss"


def _underfitting(
    v: _Val, t: _Train, ev: dict[str, Number], extra: list[str], lim: _Limits
) -> Diagnosis | None:
    """Rule 5: still falling with a small gap, falling steeply whatever the gap, or a flat
    plateau the training loss is no lower than."""
    falling = (
        f"validation loss still falling over the last {v.k} evaluations, from "
        f"{v.sval[-v.k]:.3g} to {v.end:.3g}{_gap_text(t)}"
    )
    if v.change <= -lim.flat_tol and (t.gap_final is None or t.gap_final <= lim.gap_small):
        advice = [_ADVICE_LONGER, f"{_ADVICE_LESS_REG}, {_ADVICE_CAPACITY}", *extra]
        return lim.verdict("underfitting", "val_falling", ev, falling, advice)
    if v.change <= -lim.steep_tol:
        advice = [f"{_ADVICE_LONGER} or a larger max LR", _ADVICE_LESS_REG, *extra]
        return lim.verdict("underfitting", "val_falling_steeply", ev, falling, advice)
    if abs(v.change) < lim.flat_tol and t.gap_final is not None and t.gap_final <= lim.gap_none:
        summary = (
            f"validation loss flat at {v.end:.3g} with the training loss no lower "
            f"(gap {_pct(t.gap_final)})"
        )
        advice = [f"{_ADVICE_LESS_REG}, {_ADVICE_CAPACITY}", *extra]
        return lim.verdict("underfitting", "plateau_no_gap", ev, summary, advice)
    return None


def _balanced(
    v: _Val, t: _Train, ev: dict[str, Number], extra: list[str], lim: _Limits
) -> Diagnosis:
    """Rule 6: flat at its minimum, or still improving a little with the training loss well
    below."""
    if v.change <= -lim.flat_tol:
        summary = (
            f"validation loss still improving over the last {v.k} evaluations, from "
            f"{v.sval[-v.k]:.3g} to {v.end:.3g}{_gap_text(t)}"
        )
        advice = [
            "keep these settings; a longer cycle may lower the validation loss further",
            *extra,
        ]
        return lim.verdict("balanced", "still_improving", ev, summary, advice)
    summary = (
        f"validation loss flat at {v.end:.3g}, {_pct(v.rise)} above its minimum "
        f"{v.min:.3g} at epoch {v.xs[v.i_min]:g}{_gap_text(t)}"
    )
    return lim.verdict("balanced", "flat_at_min", ev, summary, [_ADVICE_KEEP, *extra])


def blew_up(history: History) -> bool:
    """Whether a finished run diverged in the sense that rules it out: `classify_run` says
    ``diverged`` or ``collapsed``. A run that never left its starting level (``plateau``)
    did not learn, which is not a divergence: it stays a candidate, ranked by its metric like
    any other (and a lower LR is no cure for it)."""
    return classify_run(history) in ("diverged", "collapsed")


RUN_CLASSES = ("ok", "plateau", "collapsed", "diverged")
"""What a finished run is, for every place that labels one (`classify_run`)."""


def classify_run(history: History) -> str:
    """One of `RUN_CLASSES` for a finished run: ``diverged`` (a non-finite or runaway loss,
    or a finite blow-up that ended above its start), ``collapsed`` (it learned, then fell back
    to its starting level), ``plateau`` (it never left its starting level: it did not learn,
    which a longer run or another LR may change) or ``ok`` (it learned and kept it).

    Read by `diagnose`'s rules; a run too short for them (fewer than 5 evaluations) is read
    off its training loss alone: ``plateau`` when it ends within `COLLAPSE_TOL` of its
    starting level (`divergence.start_level`) and never fell that far below it."""
    if history.diverged:
        return "diverged"
    if history.collapsed_step is not None:  # `fit` stopped it as collapsed
        return "collapsed"
    verdict = diagnose(history)
    if verdict.verdict == "too-short":
        return _short_run_class(history.train_losses)
    if verdict.verdict != "diverged":
        return "ok"
    if verdict.rule == "no_progress":
        return "plateau"
    if verdict.rule == "collapse":
        return "collapsed"
    return "diverged"


_OUTCOME_WORDS = {
    "ok": "ok",
    "plateau": "plateau: never left its starting loss",
    "collapsed": "collapsed",
    "diverged": "diverged",
}


def describe_run(history: History, planned_epochs: float | None = None) -> str:
    """A finished run's label, the same words everywhere a run is shown (the command line's
    progress lines, the report's tables, ``tune.json``): `classify_run`'s class, and for a
    run stopped before its end, where: ``"ok"``, ``"plateau: never left its starting
    loss"``, ``"collapsed, stopped early at epoch 2.1 of 10"``, ``"diverged, stopped at
    epoch 0.3 of 10"``, or ``"diverged"`` (trained to its end, ending above its start).
    ``planned_epochs`` is the run's planned length (the "of 10"); without it only the epoch
    is given."""
    cls = classify_run(history)
    text = _OUTCOME_WORDS[cls]
    stopped = history.diverged or history.collapsed_step is not None
    if cls in ("collapsed", "diverged") and stopped:
        of = f" of {planned_epochs:.3g}" if planned_epochs else ""
        early = "stopped early" if cls == "collapsed" else "stopped"
        text += f", {early} at epoch {history.epochs:.3g}{of}"
    return text


def _short_run_class(losses: tuple[float, ...]) -> str:
    """A run too short for `diagnose`'s rules, read off its per-step training losses: their
    running means over a tenth of the run against the starting level: ``ok`` when it ends
    `COLLAPSE_TOL` below it; ``diverged`` when it ends above it by that and by the noise
    (`start_noise`, `START_NOISE_SIGMAS` times: the start may be one step's loss); else
    ``collapsed`` when its lowest running mean fell below the start by that and by
    `FALL_SIGMAS` times a running mean's spread (the step's over the root of its length: the
    lowest of a run's ten or so independent running means sits about two of them below their
    level by chance), ``plateau`` when not. The noise only raises the bar for a rise or a
    fall that would call the run broken; a start window that holds the first steep steps of
    a run that learns spreads wide, and must not hide that it learned. On a noisy MSE
    regression at batch 16 or 64 the lowest running mean dipped 5-14% below the start by
    chance, so a run that never moved was read as one that learned and fell back."""
    finite = [x for x in losses if math.isfinite(x)]
    start = start_level(losses)
    if start is None or not finite or start <= 0:
        return "ok"  # nothing to compare with: left to the metric
    window = max(1, len(finite) // 10)
    means = [sum(finite[i : i + window]) / window for i in range(len(finite) - window + 1)]
    end, low = means[-1], min(means)
    noise = start_noise(losses)
    if ended_above_start(end, start, COLLAPSE_TOL, noise):
        return "diverged"
    if end > start * (1 - COLLAPSE_TOL):
        fell = max(COLLAPSE_TOL * start, FALL_SIGMAS * noise / math.sqrt(window))
        return "plateau" if low > start - fell else "collapsed"
    return "ok"
