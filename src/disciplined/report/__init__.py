"""Outputs: PNG plots of recorded runs and the self-contained HTML report of a tune."""

from disciplined.report.html import write_report
from disciplined.report.plots import plot_history

__all__ = ["plot_history", "write_report"]
