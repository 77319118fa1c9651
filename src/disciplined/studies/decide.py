"""Decisions and the pure rules that make them from recorded curves.

A `Decision` is what each step of the recipe returns: the value chosen, the rule's name, a
sentence saying why, the evidence table, the trials it read and the plot. Rules here are pure
functions of summaries of recorded curves, so each can be tested on curves with a known
answer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar

from disciplined.divergence import CLEAR_FALL
from disciplined.errors import UsageError
from disciplined.measure.suggest import validation_cut
from disciplined.records import JsonRecord
from disciplined.rules import Rule, rule_named
from disciplined.studies.plotspec import PlotSpec

if TYPE_CHECKING:  # a record read by duck type: the rules do not import the trial layer
    from disciplined.trials.spec import TrialResult

__all__ = [
    "CurveSummary",
    "Decision",
    "Payload",
    "UntypedPayload",
    "lowest_val_loss_at_high_lr",
    "no_usable_curve",
    "payload_type",
    "payload_types",
    "read_payload",
    "sgd_effective_lr_factor",
    "summarize_range_test",
    "train_last_lr",
]


@dataclass(frozen=True)
class Payload:
    """The typed record a study's `Decision` carries (``Decision.payload``): one frozen
    dataclass per study, defined beside it, read by attribute.

    ``KIND`` names it in the JSON (``"record"``, the record's fields under ``"extra"``);
    ``NAMES`` are the decision names it is recorded under, so a decision written before the
    records were typed (no ``"record"`` key) is read back by its name and rule; ``RULES``
    are the `Rule`s its study applies, and ``HOW_TO_READ`` the study's reading for a rule
    not among them. Fields named in ``OMITTED_WHEN_NONE`` are left out of the JSON when
    None, as the untyped record left them out."""

    KIND: ClassVar[str] = ""
    NAMES: ClassVar[tuple[str, ...]] = ()
    RULES: ClassVar[tuple[Rule, ...]] = ()
    HOW_TO_READ: ClassVar[str] = ""
    OMITTED_WHEN_NONE: ClassVar[tuple[str, ...]] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary of the fields (tuples as lists, integer keys as strings)."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None and f.name in self.OMITTED_WHEN_NONE:
                continue
            out[f.name] = _plain(value)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Payload:
        """Rebuild from `to_dict` output (keys it does not know are ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    @classmethod
    def rule(cls, name: str) -> Rule | None:
        """The rule of this study called ``name``, or None."""
        return rule_named(cls.RULES, name)

    @classmethod
    def recorded_as(cls, name: str, rule: str) -> bool:
        """Whether a decision ``name`` made by ``rule`` carries this record (for a decision
        written without its ``"record"`` key)."""
        return name in cls.NAMES and (not cls.RULES or cls.rule(rule) is not None)


@dataclass(frozen=True)
class UntypedPayload(Payload):
    """A record no typed payload reads (a decision of an unknown kind, or one written by an
    older version whose record does not fit): its entries as they were written."""

    KIND: ClassVar[str] = "untyped"
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The entries as they were written."""
        return dict(self.data)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> UntypedPayload:
        """Keep ``d`` as it is."""
        return cls(dict(d))


def _plain(value: Any) -> Any:
    """A record's value as JSON holds it: tuples as lists, integer keys as strings, nested
    records as their dictionaries."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return value


def payload_types() -> list[type[Payload]]:
    """Every typed payload defined so far (the subclasses of `Payload` of the modules
    imported), the untyped one left out."""
    found, todo = [], list(Payload.__subclasses__())
    while todo:
        cls = todo.pop(0)
        todo.extend(cls.__subclasses__())
        if cls is not UntypedPayload and cls.KIND:
            found.append(cls)
    return found


def payload_type(
    d: Mapping[str, Any], types: Sequence[type[Payload]] | None = None
) -> type[Payload] | None:
    """The payload type of a decision's dictionary ``d``, among ``types`` (default: every
    one defined): the one its ``"record"`` key names, or, for a decision written before the
    records were typed, the one recorded under its name that knows its rule (else the first
    recorded under its name). None when none fits."""
    types = payload_types() if types is None else types
    kind, name, rule = d.get("record"), str(d.get("name", "")), str(d.get("rule", ""))
    if kind:
        return next((t for t in types if kind == t.KIND), None)
    named = [t for t in types if name in t.NAMES]
    return next((t for t in named if t.recorded_as(name, rule)), named[0] if named else None)


def read_payload(
    d: Mapping[str, Any], types: Sequence[type[Payload]] | None = None
) -> Payload | None:
    """The typed record of a decision's dictionary ``d``: by its ``"record"`` key, or, for a
    decision written before the records were typed, by its name and rule; its ``"extra"``
    entries kept as an `UntypedPayload` when no type fits (or, without the key, when no type
    knows its rule). None when it has neither."""
    extra = d.get("extra")
    extra = extra if isinstance(extra, Mapping) else {}
    cls = payload_type(d, types)
    known = cls is not None and (bool(d.get("record")) or cls.rule(str(d.get("rule"))) is not None)
    if cls is None or not known:  # a rule no type knows: keep every entry as it was
        return UntypedPayload(dict(extra)) if extra else None
    try:
        return cls.from_dict(extra)
    except (TypeError, ValueError, KeyError, AttributeError):
        return UntypedPayload(dict(extra))


@dataclass(frozen=True, init=False)
class Decision(JsonRecord):
    """One step's choice with its evidence. ``rule`` is the name of the `Rule` applied (its
    explanation: `applied`); ``table`` rows are plain dicts (the columns depend on the
    study); ``trials`` are the store keys of the trials read; ``figures`` are the plots of
    the evidence as data (`PlotSpec`; the first is the step's own), which the outputs layer
    draws, filling ``plot`` with the first one's file; ``payload`` is the study's own typed
    record (`Payload`); ``compute`` holds ``epochs`` and ``seconds`` spent. It saves and
    loads itself as JSON through `records.JsonRecord` (``decision.json``)."""

    JSON_INDENT: ClassVar[int | None] = 1

    name: str
    value: Any
    rule: str
    reason: str
    table: tuple[dict[str, Any], ...] = ()
    trials: tuple[str, ...] = ()
    plot: str | None = None
    figures: tuple[PlotSpec, ...] = ()
    payload: Payload | None = None
    compute: dict[str, float] = field(default_factory=dict)

    def __init__(
        self,
        name: str,
        value: Any,
        rule: str,
        reason: str,
        table: tuple[dict[str, Any], ...] = (),
        trials: tuple[str, ...] = (),
        plot: str | None = None,
        figures: tuple[PlotSpec, ...] = (),
        payload: Payload | Mapping[str, Any] | None = None,
        compute: dict[str, float] | None = None,
        *,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        """The fields as named; ``extra`` (an untyped dictionary, the record before it was
        typed, also taken in ``payload``'s place) is kept as an `UntypedPayload`."""
        if isinstance(payload, Mapping):
            payload, extra = None, payload
        if payload is None and extra:
            payload = UntypedPayload(dict(extra))
        for key, val in (
            ("name", name),
            ("value", value),
            ("rule", rule),
            ("reason", reason),
            ("table", table),
            ("trials", trials),
            ("plot", plot),
            ("figures", figures),
            ("payload", payload),
            ("compute", dict(compute) if compute is not None else {}),
        ):
            object.__setattr__(self, key, val)

    @property
    def extra(self) -> dict[str, Any]:
        """The payload as the untyped dictionary ``tune.json`` keeps under ``"extra"``
        (kept for older callers: read `payload`'s attributes instead)."""
        return self.payload.to_dict() if self.payload is not None else {}

    @property
    def applied(self) -> Rule | None:
        """The `Rule` this decision applied, found by name among its payload's rules (None
        for a rule the payload does not know)."""
        return type(self.payload).rule(self.rule) if self.payload is not None else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary: the payload's fields under ``"extra"``, its kind under
        ``"record"``."""
        d: dict[str, Any] = {
            "name": self.name,
            "value": self.value,
            "rule": self.rule,
            "reason": self.reason,
            "table": [_clean(r) for r in self.table],
            "trials": list(self.trials),
            "plot": self.plot,
            "figures": [f.to_dict() for f in self.figures],
            "extra": self.extra,
            "compute": dict(self.compute),
        }
        if self.payload is not None and not isinstance(self.payload, UntypedPayload):
            d["record"] = self.payload.KIND
        return d

    @classmethod
    def from_dict(
        cls, d: dict[str, Any], types: Sequence[type[Payload]] | None = None
    ) -> Decision:
        """Rebuild from `to_dict` output, or from a decision written before the records
        were typed (`read_payload`; ``types`` default: every payload type defined)."""
        return cls(
            name=d["name"],
            value=d["value"],
            rule=d["rule"],
            reason=d["reason"],
            table=tuple(d.get("table") or ()),
            trials=tuple(d.get("trials") or ()),
            plot=d.get("plot"),
            figures=tuple(PlotSpec.from_dict(f) for f in d.get("figures") or ()),
            payload=read_payload(d, types),
            compute=dict(d.get("compute") or {}),
        )


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()
    }


@dataclass(frozen=True)
class CurveSummary:
    """What a rule reads off one validation-mode range test.

    ``min_loss`` is the lowest 3-point running mean of the validation losses and ``lr_at_min``
    the LR there; ``diverge_lr`` is where the test stopped (None if it ran to the end);
    ``usable`` is false for failed trials and curves that never fell clearly (by
    `divergence.CLEAR_FALL` of their start) below their start.
    """

    value: float
    key: str
    status: str
    min_loss: float
    lr_at_min: float
    diverge_lr: float | None
    start_loss: float
    usable: bool
    note: str = ""

    def to_row(self) -> dict[str, Any]:
        """A row of the evidence table."""
        return {
            "value": self.value,
            "lowest_val_loss": self.min_loss,
            "lr_at_lowest": self.lr_at_min,
            "diverged_at_lr": self.diverge_lr,
            "status": self.status,
            "note": self.note,
            "trial": self.key,
        }


def summarize_range_test(value: float, result: TrialResult) -> CurveSummary:
    """Summarize a validation-mode range-test trial for the sweep rules."""
    test = result.range_test
    if result.status == "failed" or test is None:
        return CurveSummary(
            value,
            result.key,
            result.status,
            math.nan,
            math.nan,
            None,
            math.nan,
            False,
            note=result.reason or "failed",
        )
    lrs, losses = list(test.val_lrs), list(test.val_losses)
    if losses:  # only the points the training curve vouches for (`validation_cut`)
        n = validation_cut(lrs, losses, train_last_lr(test.lrs, test.smoothed))
        lrs, losses = lrs[:n], losses[:n]
    else:  # no validation points: read the smoothed training curve
        lrs, losses = list(test.lrs), list(test.smoothed)
    cut = next((i for i, v in enumerate(losses) if not math.isfinite(v)), len(losses))
    lrs, losses = lrs[:cut], losses[:cut]
    if len(losses) < 3:
        return CurveSummary(
            value,
            result.key,
            "diverged",
            math.nan,
            math.nan,
            test.stop_lr,
            math.nan,
            False,
            note="fewer than 3 finite validation points",
        )
    means = [sum(losses[i - 1 : i + 2]) / 3 for i in range(1, len(losses) - 1)]
    i_min = min(range(len(means)), key=means.__getitem__)
    start = losses[0]
    min_loss = means[i_min]
    # a fall within the plateau's noise is no evidence (`divergence.CLEAR_FALL`)
    usable = min_loss < start - CLEAR_FALL * abs(start)
    return CurveSummary(
        value,
        result.key,
        result.status if usable else "diverged",
        min_loss,
        lrs[i_min + 1],
        test.stop_lr,
        start,
        usable,
        note="" if usable else "the validation loss never fell clearly below its start",
    )


def train_last_lr(lrs: tuple[float, ...], smoothed: tuple[float, ...]) -> float | None:
    """The last learning rate at which a range test's smoothed training curve is finite: the
    stored curve is cut (NaN) from where the training loss diverged (`suggest.divergence_cut`)."""
    finite = [lr for lr, v in zip(lrs, smoothed, strict=False) if math.isfinite(v)]
    return finite[-1] if finite else None


def sgd_effective_lr_factor(momentum: float) -> float:
    """How much a heavy-ball momentum multiplies the step of SGD (torch's form,
    ``v = m v + g``, ``p -= lr v``): on a steady gradient the step is ``lr / (1 - m)``."""
    return 1.0 / (1.0 - momentum)


def lowest_val_loss_at_high_lr(
    rows: list[CurveSummary],
    tolerance: float = 0.02,
    lr_factor: Callable[[float], float] | None = None,
    fallback: float | None = None,
) -> tuple[float, str]:
    """Smith's reading of a sweep: the value whose validation curve reaches the lowest loss
    while still allowing a high learning rate.

    Among the usable curves, those whose lowest loss is within ``tolerance`` (relative) of
    the best are taken as equally good, and of these the one whose lowest loss sits at the
    highest learning rate wins (then the one that diverged latest). ``lr_factor(value)``
    puts the curves' learning rates on one scale when the swept value itself scales the step
    (momentum: `sgd_effective_lr_factor`), so that the tie is broken by the effective
    learning rate. Returns the value and a sentence with the numbers. When no curve is
    usable (none fell below its start: a network still on its plateau after the sweep's
    steps, or every test diverged) the sweep holds no evidence: ``fallback`` is returned with
    a sentence saying so (the recipe's full runs then decide), or, without one, `UsageError`
    is raised.
    """
    usable = [r for r in rows if r.usable]
    if not usable:
        reasons = "; ".join(f"{r.value:g}: {r.status} ({r.note})" for r in rows)
        if fallback is None:
            raise UsageError(f"every trial of the sweep diverged or failed: {reasons}")
        return fallback, (
            f"no range test of the sweep is evidence ({reasons}); kept {fallback:g}"
        )
    best = min(r.min_loss for r in usable)
    margin = tolerance * abs(best)
    near = [r for r in usable if r.min_loss <= best + margin]

    def scale(r: CurveSummary) -> float:
        return lr_factor(r.value) if lr_factor is not None else 1.0

    chosen = max(
        near,
        key=lambda r: (r.lr_at_min * scale(r), (r.diverge_lr or math.inf) * scale(r)),
    )
    others = ", ".join(
        f"{r.value:g} (loss {r.min_loss:.4g} at LR {r.lr_at_min:.3g})"
        for r in usable
        if r is not chosen
    )
    dropped = [r for r in rows if not r.usable]
    text = (
        f"{chosen.value:g} reached validation loss {chosen.min_loss:.4g} at LR "
        f"{chosen.lr_at_min:.3g}"
    )
    if len(near) > 1:
        which = "the highest LR" if lr_factor is None else "the highest effective LR"
        text += (
            f"; {len(near)} values came within {tolerance:.0%} of the lowest loss "
            f"{best:.4g} and the one reaching it at {which} was taken"
        )
        if lr_factor is not None:
            text += (
                " (" + ", ".join(f"{r.value:g}: {r.lr_at_min * scale(r):.3g}" for r in near) + ")"
            )
    else:
        text += ", the lowest of all"
    if others:
        text += f"; others: {others}"
    if dropped:
        text += "; not usable: " + ", ".join(f"{r.value:g} ({r.note})" for r in dropped)
    return chosen.value, text


def no_usable_curve(rows: Sequence[CurveSummary]) -> bool:
    """Whether no curve of a sweep is usable (`lowest_val_loss_at_high_lr` then falls back)."""
    return not any(r.usable for r in rows)


def cycle_min_momentum(max_momentum: float) -> float:
    """The 1cycle's minimum momentum for a chosen maximum, by the report's ranges: 0.85
    under a maximum of 0.95-0.99, 0.8 under 0.9 (never above the maximum itself)."""
    return min(max_momentum, 0.85 if max_momentum >= 0.95 else 0.8)
