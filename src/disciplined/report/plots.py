"""PNG plots of recorded runs. Nothing here computes a decision; it only draws records.

Figures are built with matplotlib's object API and the Agg canvas, so no global pyplot state
and no window are involved.
"""

from __future__ import annotations

import io
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from disciplined.files import write_bytes_atomic
from disciplined.training.fit import History


def _save(fig: Figure, path: str | Path) -> Path:
    """Render ``fig`` as PNG in memory and write it whole or not at all (a full disk leaves
    the previous plot, never an empty one; a link at ``path`` is replaced, not followed)."""
    path = Path(path)
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, dpi=110, format="png")
    write_bytes_atomic(path, buf.getvalue())
    return path


def plot_history(history: History, path: str | Path, title: str | None = None) -> Path:
    """Draw a run's curves to ``path``: losses and metric against epochs, LR and momentum
    against steps. Returns the path."""
    fig = Figure(figsize=(11, 7), layout="constrained")
    (ax_loss, ax_metric), (ax_lr, ax_mom) = fig.subplots(2, 2)
    spe = history.steps_per_epoch
    if history.train_losses:
        xs = [(i + 1) / spe for i in range(history.steps)]
        ax_loss.plot(xs, history.train_losses, color="0.75", lw=0.6, label="train (per step)")
    if history.evals:
        ep = [e.epoch for e in history.evals]
        ax_loss.plot(ep, [e.train_loss for e in history.evals], "o-", ms=3, label="train (mean)")
        ax_loss.plot(ep, [e.val_loss for e in history.evals], "o-", ms=3, label="validation")
        ax_metric.plot(ep, [e.val_metric for e in history.evals], "o-", ms=3, color="C2")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_loss.legend(fontsize=8)
    finite = [x for x in history.train_losses if x == x and abs(x) != float("inf")]
    if finite and min(finite) > 0 and max(finite) / min(finite) > 50:
        ax_loss.set_yscale("log")
    ax_metric.set(
        xlabel="epoch", ylabel=history.metric_name, title=f"validation {history.metric_name}"
    )
    steps = range(history.steps)
    ax_lr.plot(steps, history.lrs, color="C3")
    ax_lr.set(xlabel="step", ylabel="learning rate", title="learning rate")
    moms = [m for m in history.momenta if m is not None]
    if moms:
        ax_mom.plot(
            steps, [m if m is not None else float("nan") for m in history.momenta], color="C4"
        )
    ax_mom.set(xlabel="step", ylabel="momentum", title="momentum")
    stops = [
        (step, f"{word} at step {step}")
        for step, word in (
            (history.diverged_step if history.diverged else None, "diverged"),
            (history.collapsed_step, "collapsed, stopped"),
        )
        if step is not None
    ]
    for step, label in stops:
        for ax in (ax_lr, ax_mom):
            ax.axvline(step, color="red", ls="--", lw=1, label=label)
    for ax in (ax_lr, ax_mom) if stops else ():
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def _loss_ylim(ax, curves: list[list[float]]) -> None:
    """Keep the interesting part in view: from a bit under the lowest loss to a bit over the
    starting level, so a divergence spike does not flatten the curve."""
    finite = [v for c in curves for v in c if v == v and abs(v) != float("inf")]
    starts = [c[0] for c in curves if c and c[0] == c[0] and abs(c[0]) != float("inf")]
    if not finite or not starts:
        return
    low, start = min(finite), max(starts)
    top = max(start * 1.25, low + 1e-12)
    ax.set_ylim(low - 0.05 * (top - low), top)


def plot_range_test(test, path: str | Path, title: str | None = None) -> Path:
    """Draw a `RangeTest`: loss against LR on a log axis (raw and smoothed), the validation
    points, the suggested max and min LR, and where the test stopped."""
    fig = Figure(figsize=(8, 5), layout="constrained")
    ax = fig.subplots()
    for i, curve in enumerate(test.seed_smoothed):
        ax.plot(
            test.lrs[: len(curve)],
            curve[: len(test.lrs)],
            color="C0",
            alpha=0.25,
            lw=0.8,
            label="smoothed, each seed" if i == 0 else None,
        )
    ax.plot(test.lrs, test.losses, color="0.7", lw=0.6, label="training loss")
    label = "smoothed (median of seeds)" if test.repeats > 1 else "smoothed"
    ax.plot(test.lrs, test.smoothed, color="C0", lw=1.6, label=label)
    curves = [list(test.smoothed)]
    if test.val_losses:
        ax.plot(
            test.val_lrs, test.val_losses, "o-", color="C1", ms=3, lw=1, label="validation loss"
        )
        curves.append(list(test.val_losses))
    s = test.suggestion
    if s is not None:
        ax.axvline(s.max_lr, color="C2", lw=1.5, label=f"max LR {s.max_lr:.3g} ({s.rule})")
        ax.axvline(s.min_lr, color="C2", lw=1, ls=":", label=f"min LR {s.min_lr:.3g}")
    if s is not None and s.spread:
        ax.axvspan(s.spread[0], s.spread[1], color="C2", alpha=0.12, label="spread over seeds")
    if test.stop_lr is not None:
        label = f"sweep stopped at LR {test.stop_lr:.3g}"
        ax.axvline(test.stop_lr, color="red", lw=1, ls="--", label=label)
    ax.set_xscale("log")
    ax.set(xlabel="learning rate", ylabel="loss", title=title or "LR range test")
    _loss_ylim(ax, curves)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_range_overlay(
    tests, labels, path: str | Path, title: str | None = None, use_val: bool = False
) -> Path:
    """Several range tests on one figure: one curve each (validation loss when ``use_val``),
    with each test's suggested max LR marked in the curve's colour (a dotted line, labelled
    in the legend under its curve)."""
    if len(tests) != len(labels):
        raise ValueError(f"got {len(tests)} tests but {len(labels)} labels")
    fig = Figure(figsize=(8, 5), layout="constrained")
    ax = fig.subplots()
    curves = []
    for i, (test, label) in enumerate(zip(tests, labels, strict=True)):
        if use_val and test.val_losses:
            xs, ys = test.val_lrs, test.val_losses
        else:
            xs, ys = test.lrs, test.smoothed
        ax.plot(xs, ys, color=f"C{i}", lw=1.4, label=label)
        if test.suggestion is not None:
            max_lr = test.suggestion.max_lr
            ax.axvline(max_lr, color=f"C{i}", lw=0.8, ls=":", label=f"  its max LR {max_lr:.3g}")
        curves.append(list(ys))
    ax.set_xscale("log")
    kind = "validation loss" if use_val else "smoothed training loss"
    ax.set(xlabel="learning rate", ylabel=kind, title=title or "LR range tests")
    _loss_ylim(ax, curves)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_metric_vs_time(histories, labels, path: str | Path, title: str | None = None) -> Path:
    """Validation metric against wall-clock seconds, one line per run (the report's way of
    comparing batch sizes at equal time)."""
    return _metric_lines(histories, labels, path, title, by="seconds")


def plot_metric_vs_epoch(histories, labels, path: str | Path, title: str | None = None) -> Path:
    """Validation metric against epochs, one line per run (batch sizes compared over the
    final run's epochs)."""
    return _metric_lines(histories, labels, path, title, by="epoch")


def _metric_lines(histories, labels, path: str | Path, title: str | None, by: str) -> Path:
    fig = Figure(figsize=(8, 5), layout="constrained")
    ax = fig.subplots()
    name = "metric"
    for i, (h, label) in enumerate(zip(histories, labels, strict=True)):
        if h is None or not h.evals:
            continue
        name = h.metric_name
        ax.plot(
            [getattr(e, by) for e in h.evals],
            [e.val_metric for e in h.evals],
            "o-",
            ms=3,
            color=f"C{i}",
            label=label,
        )
    xlabel = "training seconds" if by == "seconds" else "epoch"
    ax.set(xlabel=xlabel, ylabel=f"validation {name}", title=title or "")
    ax.legend(fontsize=8)
    return _save(fig, path)
