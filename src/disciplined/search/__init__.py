"""The searches: ways to pick a configuration by running trials.

This layer holds the searches that the recipe and the benchmarks share: grid search
(`grid_search`), random search (`random_search`) and TPE (`tpe_search`). These are the
baselines the recipe is measured against. The race that decides inside the range tests' box
(`search/race`: entrants, rungs, budget cuts and successive halving, pure functions over
scores) is here too; the recipe's step that runs it on a task is `recipe/race`. A search
runs trials and reads their
results: it may import the trials, the studies and the layers before them, and the recipe may
import it. Nothing here imports the recipe, the command line or the outputs.

Every search covers the same space (`SearchSpace`, in `search/space`). Each trial is one full
training run of ``epochs`` epochs, scored by its final validation metric (`trial_metric`).
The trials run on the project's own machinery (`search/common`): a `TrialSpec` run by an
`Executor` into a `TrialStore`, so a search that was interrupted resumes from its store.
Given ``budget_seconds``, a search stops once its trials' wall seconds reach it. That is the
budget the benchmarks give a search, in multiples of the recipe's own seconds. `MedianStop`
(`search/pruning`) prunes trials that fall behind the median, under any executor. Each search
returns a frozen `SearchResult` (`search/result`): its trials in the order they ran, and the
``trace`` of what it had found after any amount of compute. Optuna is imported only when
`tpe_search` runs (``pip install disciplined[optuna]``).
"""

from disciplined.search.grid import grid_search
from disciplined.search.pruning import MedianStop
from disciplined.search.result import SearchResult, TracePoint, trial_metric
from disciplined.search.sampled import random_search
from disciplined.search.space import SearchSpace, hparams_for, sample_point
from disciplined.search.tpe import tpe_search

__all__ = [
    "MedianStop",
    "SearchResult",
    "SearchSpace",
    "TracePoint",
    "grid_search",
    "hparams_for",
    "random_search",
    "sample_point",
    "tpe_search",
    "trial_metric",
]
