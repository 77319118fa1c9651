"""Studies: each of Smith's short experiments (range tests, weight decay, momentum,
dropout, batch size) as trial specs run through a `StudyContext`, read by a pure rule that
returns a `Decision`.

One module per study: `learning_rate`, `weight_decay`, `momentum`, `dropout`, `batch`
(with its memory probe and rules); `context` holds what they share, `ledger` the one
account of their compute (each trial charged once, to the step that ran it), `decide` the
rules over curves, `steps` the recipe's opening steps that run them in turn.
"""

from disciplined.studies.batch import (
    BATCH_COMPARISONS,
    MemoryFit,
    batch_comparison,
    batch_size_search,
    largest_batch_that_fits,
    parse_memory,
)
from disciplined.studies.context import StudyContext, default_range_budget, one_cycle_spec
from disciplined.studies.decide import CurveSummary, Decision, lowest_val_loss_at_high_lr
from disciplined.studies.dropout import dropout_sweep
from disciplined.studies.learning_rate import learning_rate_test, peak_momentum, read_max_lr
from disciplined.studies.momentum import momentum_test
from disciplined.studies.steps import RECIPE_DROPOUTS, range_test_steps, starting_hparams
from disciplined.studies.weight_decay import default_weight_decays, weight_decay_sweep

__all__ = [
    "BATCH_COMPARISONS",
    "RECIPE_DROPOUTS",
    "CurveSummary",
    "Decision",
    "MemoryFit",
    "StudyContext",
    "batch_comparison",
    "batch_size_search",
    "default_range_budget",
    "default_weight_decays",
    "dropout_sweep",
    "largest_batch_that_fits",
    "learning_rate_test",
    "lowest_val_loss_at_high_lr",
    "momentum_test",
    "one_cycle_spec",
    "parse_memory",
    "peak_momentum",
    "range_test_steps",
    "read_max_lr",
    "starting_hparams",
    "weight_decay_sweep",
]
