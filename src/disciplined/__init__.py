"""disciplined: set a network's hyper-parameters the way Smith (arXiv 1803.09820) describes.

The public surface: policies in `disciplined.schedules`, the torch adapter
`OneCycleScheduler`, the training loop `fit` and its `History`, `fit_one_cycle` (the steps
counted, the max LR read from a range test when not given), `lr_range_test`, `diagnose`,
the recipe `tune`, tasks, and `HParams` with `train_task`.
"""

from disciplined.diagnose import Diagnosis, diagnose
from disciplined.errors import UsageError
from disciplined.hparams import HParams, train_task
from disciplined.one_cycle import fit_one_cycle
from disciplined.range_test import RangeTest, lr_range_test
from disciplined.recipe import TuneResult, tune
from disciplined.scheduler import OneCycleScheduler, PolicyScheduler
from disciplined.schedules import OneCyclePolicy, RangeSweep, TriangularPolicy
from disciplined.tasks import Task, load_task
from disciplined.training import EvalRecord, History, evaluate, fit

__version__ = "0.1.0"

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
    "Task",
    "TriangularPolicy",
    "TuneResult",
    "UsageError",
    "diagnose",
    "evaluate",
    "fit",
    "fit_one_cycle",
    "load_task",
    "lr_range_test",
    "train_task",
    "tune",
]
