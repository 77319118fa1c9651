"""`PlotSpec`: what a study's plot shows, as data. The study records it beside its
`Decision`; the outputs layer (`report.figures`) draws it. Nothing in the studies draws."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = ["PLOT_KINDS", "PlotSpec"]

PLOT_KINDS = ("range_overlay", "range_test", "metric_vs_time", "metric_vs_epoch")
"""The plots a study can ask for: several range tests on one figure (validation loss), one
range test with the decision's max and min LR marked, and validation metric against
wall-clock seconds or epochs, one line per run."""


@dataclass(frozen=True)
class PlotSpec:
    """A plot to draw: its ``kind`` (one of `PLOT_KINDS`), the PNG's file name, the store keys
    of the runs it shows with a label each, the title, and for a single range test the
    decision's marks (``max_lr``, ``min_lr``, ``rule`` and the seeds' ``spread``) that
    replace the curve's own suggestion."""

    kind: Literal["range_overlay", "range_test", "metric_vs_time", "metric_vs_epoch"]
    file: str
    trials: tuple[str, ...]
    labels: tuple[str, ...]
    title: str
    marks: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in PLOT_KINDS:
            raise ValueError(f"kind must be one of {PLOT_KINDS}, got {self.kind!r}")
        if len(self.trials) != len(self.labels):
            raise ValueError(f"got {len(self.trials)} trials but {len(self.labels)} labels")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        d = asdict(self)
        d["trials"], d["labels"] = list(self.trials), list(self.labels)
        if "spread" in d["marks"] and d["marks"]["spread"] is not None:
            d["marks"]["spread"] = list(d["marks"]["spread"])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PlotSpec:
        """Rebuild from `to_dict` output."""
        return cls(
            kind=d["kind"],
            file=d["file"],
            trials=tuple(d["trials"]),
            labels=tuple(d["labels"]),
            title=d["title"],
            marks=dict(d.get("marks") or {}),
        )
