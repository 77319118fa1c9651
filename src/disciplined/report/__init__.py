"""Outputs: plots (PNG) now; the HTML report builds on them."""

from disciplined.report.plots import plot_history

__all__ = ["plot_history"]
