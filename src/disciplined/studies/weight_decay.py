"""The weight-decay study (Smith, section 4.3): validation-mode range tests at each value of
the report's grid for the task, read by `decide.lowest_val_loss_at_high_lr`; optionally one
more test halfway (in the exponent) between the two best, or the report's snapshot
variant (the tests restarted from the weights of one cycle at the middle value)."""

from __future__ import annotations

import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch

from disciplined.errors import UsageError
from disciplined.files import write_text_atomic
from disciplined.rules import Rule
from disciplined.studies.context import (
    StudyContext,
    check_values,
    default_range_budget,
    sweep,
    sweep_decision,
)
from disciplined.studies.decide import (
    CurveSummary,
    Decision,
    Payload,
    lowest_val_loss_at_high_lr,
    no_usable_curve,
)
from disciplined.tasks import Task
from disciplined.trials.hparams import HParams

__all__ = [
    "ADAMW_SCALE",
    "WEIGHT_DECAY_RULES",
    "WeightDecayChoice",
    "decay_scale",
    "default_weight_decays",
    "weight_decay_sweep",
]

_HOW_TO_READ = (
    "One LR range test per candidate weight decay ({values}), read on the validation "
    "loss. Smith: "
    "the right value lets the network train at a high learning rate and reach the lowest "
    "loss, so among values whose lowest losses are nearly equal, the one reaching it at "
    "the highest learning rate wins. Weight decay then stays constant through training."
)

WEIGHT_DECAY_RULES = (
    Rule("lowest_val_loss_at_high_lr", lowest_val_loss_at_high_lr, _HOW_TO_READ),
    Rule("no_evidence_kept", lowest_val_loss_at_high_lr, _HOW_TO_READ),
)
"""The weight-decay sweep's rules: Smith's reading of the curves, or, when no curve fell
below its start, the fallback kept."""


@dataclass(frozen=True)
class WeightDecayChoice(Payload):
    """The weight-decay decision's record: why the grid was the one tried (``grid``, a
    sentence, or "values given"), the ``method`` (``range_test`` or ``snapshot``), and
    with the snapshot variant its run (weight decay, epochs, seconds, path, validation
    loss)."""

    KIND: ClassVar[str] = "weight_decay"
    NAMES: ClassVar[tuple[str, ...]] = ("weight_decay",)
    RULES: ClassVar[tuple[Rule, ...]] = WEIGHT_DECAY_RULES
    HOW_TO_READ: ClassVar[str] = _HOW_TO_READ
    OMITTED_WHEN_NONE: ClassVar[tuple[str, ...]] = ("snapshot",)

    grid: str
    method: str = "range_test"
    snapshot: dict[str, Any] | None = None


ADAMW_SCALE = 10.0
"""How much larger AdamW's weight-decay grid is than SGD's (`default_weight_decays`)."""


def decay_scale(optimizer: str) -> float:
    """What the report's SGD weight decays are multiplied by for ``optimizer``:
    `ADAMW_SCALE` for AdamW's decoupled decay, 1 for SGD."""
    return ADAMW_SCALE if optimizer == "adamw" else 1.0


def default_weight_decays(task: Task, optimizer: str = "sgd") -> tuple[tuple[float, ...], str]:
    """The report's candidate grid for this task and optimizer, and a sentence saying why.

    Smith (section 4.3): "1e-3, 1e-4, 1e-5 and 0" when nothing is known; larger values
    (1e-2 .. 1e-4) for small data sets and shallow architectures, smaller ones
    (1e-4 .. 1e-6) for complex data and deep architectures. Here "small" means under 50k
    training samples and under 1M parameters; "large" means over 500k samples or over
    20M parameters.

    The report's values are for SGD, whose weight decay is coupled to the gradient. AdamW's
    is decoupled (Loshchilov and Hutter 2019): each step shrinks the weights by the LR
    times the weight decay, at LRs some 30x below SGD's, so the same values barely
    regularize; its grid is the report's times `ADAMW_SCALE` (1e-1 .. 1e-3 for small
    data, the range AdamW users reach for: PyTorch's default is 1e-2, transformers train
    at 0.05-0.1).
    """
    n, params = task.num_train, task.param_count()
    if n < 50_000 and params < 1_000_000:
        grid, why = (1e-2, 1e-3, 1e-4), (
            f"small data and a shallow model ({n} samples, {params} parameters): the report's "
            "larger values 1e-2 .. 1e-4"
        )
    elif n > 500_000 or params > 20_000_000:
        grid, why = (1e-4, 1e-5, 1e-6), (
            f"large data or a deep model ({n} samples, {params} parameters): the report's "
            "smaller values 1e-4 .. 1e-6"
        )
    else:
        grid, why = (1e-3, 1e-4, 1e-5), (
            f"neither small nor large ({n} samples, {params} parameters): the report's "
            "default 1e-3 .. 1e-5"
        )
    scale = decay_scale(optimizer)
    if scale != 1.0:
        grid = tuple(float(f"{scale * v:.0e}") for v in grid)
        why += f" times {scale:g} for AdamW's decoupled decay ({grid[0]:g} .. {grid[-1]:g})"
    return (*grid, 0.0), why + ", and 0"


def weight_decay_sweep(
    ctx: StudyContext,
    hp: HParams,
    values: Sequence[float] | None = None,
    *,
    num_steps: int = 300,
    seed: int = 0,
    refine: bool = False,
    method: Literal["range_test", "snapshot"] = "range_test",
    snapshot_epochs: float | None = None,
    tolerance: float = 0.02,
    fallback: float | None = None,
) -> Decision:
    """Choose the weight decay from validation-mode range tests at each value.

    ``values=None`` takes the report's grid for this task and ``hp``'s optimizer
    (`default_weight_decays`).
    ``refine=True`` adds one test halfway (in the exponent) between the two best non-zero
    values, as the report's 10^-3.5 example. ``method="snapshot"`` is the report's variant:
    train one cycle at the middle value, then restart the range tests from that snapshot.
    The rule is `lowest_val_loss_at_high_lr`; when no test of the sweep fell below its
    start, ``fallback`` is kept (rule ``no_evidence_kept``), or `UsageError` is raised
    without one.
    """
    task = ctx.load()
    why = "values given"
    if values is None:
        values, why = default_weight_decays(task, hp.optimizer)
    values = check_values("weight decay", values, lo=0.0, hi=None)
    budget = default_range_budget(task, hp, num_steps)
    init, snapshot_cost = None, None
    start = ctx.ledger.mark()
    if method == "snapshot":
        init, snapshot_cost = _snapshot(ctx, hp, values, seed, snapshot_epochs, task)
        # the snapshot is no trial of the store: charged by its weights' file, once
        ctx.ledger.charge(
            f"snapshot:{init}", snapshot_cost["epochs"], snapshot_cost["seconds"], trial=False
        )
    elif method != "range_test":
        raise ValueError(f"method must be 'range_test' or 'snapshot', got {method!r}")
    results, rows = sweep(
        ctx,
        "weight_decay",
        values,
        lambda v: hp.with_(weight_decay=v),
        budget,
        seed,
        init=init,
    )
    if refine:
        extra = _refinement(rows)
        if extra is not None and extra not in values:
            more, more_rows = sweep(
                ctx,
                "weight_decay",
                [extra],
                lambda v: hp.with_(weight_decay=v),
                budget,
                seed,
                init=init,
            )
            results, rows, values = results + more, rows + more_rows, [*values, extra]
    chosen, reason = lowest_val_loss_at_high_lr(rows, tolerance=tolerance, fallback=fallback)
    rule = WEIGHT_DECAY_RULES[1 if no_usable_curve(rows) else 0]
    return sweep_decision(
        task.name, "weight_decay", "wd", "weight decay", values, results, rows, chosen, reason,
        rule=rule.name,
        payload=WeightDecayChoice(grid=why, method=method, snapshot=snapshot_cost),
        compute=ctx.ledger.since(start),
    )


def _refinement(rows: Sequence[CurveSummary]) -> float | None:
    """Halfway in the exponent between the two best positive values, if they are adjacent
    powers apart."""
    ok = sorted((r for r in rows if r.usable and r.value > 0), key=lambda r: r.min_loss)
    if len(ok) < 2:
        return None
    a, b = ok[0].value, ok[1].value
    return float(10 ** ((math.log10(a) + math.log10(b)) / 2))


def _snapshot(
    ctx: StudyContext,
    hp: HParams,
    values: Sequence[float],
    seed: int,
    epochs: float | None,
    task: Task,
) -> tuple[str, dict[str, Any]]:
    """Train one cycle at the middle value and keep its final weights (the end of a 1cycle,
    where the validation loss has flattened) as the restart point. The weights and their
    cost are kept beside the plots, so a resumed study does not train them again."""
    import json
    import time

    from disciplined.trials.hparams import train_task

    positive = sorted(v for v in values if v > 0)
    middle = positive[(len(positive) - 1) // 2] if positive else 0.0
    epochs = epochs if epochs is not None else 5.0
    spec = ctx.spec(
        "train", hp.with_(weight_decay=middle), {"epochs": epochs}, seed, tag="snapshot"
    )
    folder = ctx.out if ctx.out is not None else Path(tempfile.mkdtemp(prefix="disciplined-"))
    folder.mkdir(parents=True, exist_ok=True)
    path, info_path = folder / f"snapshot-{spec.key}.pt", folder / f"snapshot-{spec.key}.json"
    if path.exists() and info_path.exists():
        return str(path), json.loads(info_path.read_text())
    t0 = time.perf_counter()
    model, history = train_task(
        task, spec.hp, epochs=epochs, seed=seed, device=ctx.device, amp=ctx.amp or False
    )
    model.to("cpu")  # the snapshot loads on any device
    if history.diverged:
        raise UsageError(
            f"the snapshot run at weight decay {middle:g} diverged: {history.diverged_reason}"
        )
    info = {
        "weight_decay": middle,
        "epochs": history.epochs,
        "seconds": time.perf_counter() - t0,
        "path": str(path),
        "val_loss": history.final.val_loss if history.final else None,
    }
    tmp = path.with_suffix(".tmp")
    torch.save(model.state_dict(), tmp)
    tmp.replace(path)
    write_text_atomic(info_path, json.dumps(info))
    return str(path), info
