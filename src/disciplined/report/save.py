"""Writing a tune's result: the one place its files are made (`save`)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from disciplined.files import write_text_atomic
from disciplined.recipe.run import TuneResult
from disciplined.report.figures import draw
from disciplined.report.html import write_report
from disciplined.report.plots import plot_history
from disciplined.studies.decide import Decision
from disciplined.trials.spec import TrialResult

__all__ = ["drawn", "finite", "save", "save_decision"]


def finite(x: Any) -> Any:
    """``x`` with every NaN or infinity (at any depth) replaced by None: JSON has neither."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [finite(v) for v in x]
    return x


def save(result: TuneResult, out: str | Path) -> Path:
    """Write ``result`` into ``out``: ``history.json`` and ``curves.png`` (the final run),
    ``hparams.json`` (the choice), each decision's plots, ``tune.json`` (every decision with
    its evidence and its plot's path) and ``report.html``; each file is replaced whole or
    not at all. Returns the report's path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result = replace(
        result, decisions=tuple(drawn(d, result.trials, out) for d in result.decisions)
    )
    result.history.save(out / "history.json")
    plot_history(
        result.history, out / "curves.png", title=f"{result.meta.get('task')}: final 1cycle run"
    )
    write_text_atomic(out / "hparams.json", json.dumps(finite(result.hparams_json()), indent=1))
    write_text_atomic(
        out / "tune.json", json.dumps(finite(result.to_dict()), indent=1, allow_nan=False)
    )
    return write_report(out)


def drawn(decision: Decision, trials: Mapping[str, TrialResult], out: str | Path) -> Decision:
    """Draw ``decision``'s figures into ``out`` from ``trials``; the decision with ``plot``
    set to its first figure's file (None when that one had nothing to draw)."""
    paths = [draw(f, trials, out) for f in decision.figures]
    first = paths[0] if paths else None
    return replace(decision, plot=str(first) if first is not None else None)


def save_decision(
    decision: Decision, trials: Mapping[str, TrialResult], out: str | Path
) -> Decision:
    """Write one study's result (``disciplined sweep``): its plots and ``decision.json``
    into ``out``. Returns the decision as written (with its plot's path)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    decision = drawn(decision, trials, out)
    decision.save(out / "decision.json")
    return decision
