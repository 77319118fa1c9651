"""PNG plots of recorded runs. Nothing here computes a decision; it only draws records.

Figures are built with matplotlib's object API and the Agg canvas, so no global pyplot state
and no window are involved.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from disciplined.training import History


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=110)
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
    if history.diverged and history.diverged_step is not None:
        for ax in (ax_lr, ax_mom):
            ax.axvline(history.diverged_step, color="red", ls="--", lw=1)
    if title:
        fig.suptitle(title)
    return _save(fig, path)
