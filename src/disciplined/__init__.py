"""disciplined: set a network's hyper-parameters the way Smith (arXiv 1803.09820) describes.

The public surface: policies in `disciplined.schedules.policies`, the torch adapter
`OneCycleScheduler`, the training loop `fit` and its `History`, `fit_one_cycle` (the steps
counted, the max LR read from a range test when not given), `lr_range_test` (its options
in a `RangeTestConfig`; drawn by `plot_range_test` and `plot_range_overlay`), `diagnose`, the
recipe `tune` (its settings in a `TuneConfig`, how it runs in a `Runtime`), tasks, and
`HParams` with `train_task`.
"""

import importlib
from typing import Any

from disciplined.errors import UsageError
from disciplined.measure.diagnose import Diagnosis, diagnose
from disciplined.measure.range_test import RangeTest, RangeTestConfig, lr_range_test
from disciplined.recipe.config import TuneConfig
from disciplined.recipe.one_cycle import fit_one_cycle
from disciplined.recipe.run import TuneResult
from disciplined.schedules.policies import OneCyclePolicy, RangeSweep, TriangularPolicy
from disciplined.schedules.scheduler import OneCycleScheduler, PolicyScheduler
from disciplined.tasks import Task, load_task
from disciplined.training.fit import EvalRecord, History, evaluate, fit
from disciplined.trials.hparams import HParams, train_task
from disciplined.trials.runtime import Runtime

__version__ = "0.1.0"

# Drawing needs matplotlib, which `import disciplined` does not load: these names are
# imported when first used.
_LAZY = {
    "tune": "disciplined.api",
    "plot_range_test": "disciplined.report.plots",
    "plot_range_overlay": "disciplined.report.plots",
}


def __getattr__(name: str) -> Any:
    """Import `tune`, `plot_range_test` and `plot_range_overlay` on first use."""
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'disciplined' has no attribute {name!r}")

__all__ = [
    "Diagnosis",
    "EvalRecord",
    "HParams",
    "History",
    "OneCyclePolicy",
    "OneCycleScheduler",
    "PolicyScheduler",
    "RangeSweep",
    "RangeTest",
    "RangeTestConfig",
    "Runtime",
    "Task",
    "TriangularPolicy",
    "TuneConfig",
    "TuneResult",
    "UsageError",
    "diagnose",
    "evaluate",
    "fit",
    "fit_one_cycle",
    "load_task",
    "lr_range_test",
    "plot_range_overlay",
    "plot_range_test",
    "train_task",
    "tune",
]
