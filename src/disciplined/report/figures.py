"""Drawing the plots studies ask for (`studies.plotspec.PlotSpec`) from their trials."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from disciplined.measure.range_test import RangeTest
from disciplined.report.plots import (
    plot_metric_vs_epoch,
    plot_metric_vs_time,
    plot_range_overlay,
    plot_range_test,
)
from disciplined.studies.plotspec import PlotSpec
from disciplined.trials.spec import TrialResult

__all__ = ["draw"]


def draw(spec: PlotSpec, trials: Mapping[str, TrialResult], out: str | Path) -> Path | None:
    """Draw ``spec`` into ``out / spec.file`` from the runs in ``trials`` (store key ->
    result); None when none of its runs has a curve to draw."""
    found = [(trials.get(k), label) for k, label in zip(spec.trials, spec.labels, strict=True)]
    path = Path(out) / spec.file
    if spec.kind in ("range_overlay", "range_test"):
        tests = [(r.range_test, lab) for r, lab in found if r is not None and r.range_test]
        if not tests:
            return None
        if spec.kind == "range_test":
            return plot_range_test(_marked(tests[0][0], spec.marks), path, title=spec.title)
        return plot_range_overlay(
            [t for t, _ in tests], [lab for _, lab in tests], path, title=spec.title,
            use_val=True,
        )
    histories = [(r.history if r is not None else None, lab) for r, lab in found]
    if not any(h is not None for h, _ in histories):
        return None
    plot = plot_metric_vs_time if spec.kind == "metric_vs_time" else plot_metric_vs_epoch
    return plot([h for h, _ in histories], [lab for _, lab in histories], path, title=spec.title)


def _marked(test: RangeTest, marks: Mapping[str, Any]) -> RangeTest:
    """``test`` with its suggestion's max and min LR, rule and seeds' spread replaced by the
    decision's ``marks`` (a test without a suggestion is drawn as it is)."""
    if test.suggestion is None or not marks:
        return test
    spread = marks.get("spread")
    fields = {k: v for k, v in marks.items() if k != "spread"}
    marked = replace(test.suggestion, **fields, spread=tuple(spread) if spread else None)
    return replace(test, suggestion=marked)
