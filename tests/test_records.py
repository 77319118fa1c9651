"""The JSON records (issue 35, item 5): one helper (`disciplined.records`) gives `History` and
`RangeTest` their ``to_json`` / ``from_json`` / ``save`` / ``load``; a file written before it
loads with the same values, bit for bit (infinities and NaN included), and is written back
byte for byte."""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import pytest

from disciplined.measure.range_test import RangeTest
from disciplined.measure.suggest import Suggestion
from disciplined.records import (
    JsonRecord,
    decode_float,
    decode_floats,
    encode_float,
    encode_floats,
)
from disciplined.training.history import EvalRecord, History

INF, NAN = math.inf, math.nan

# Written by History.to_json and RangeTest.to_json at 12e8148, before the helper.
OLD_HISTORY = (
    '{"lrs": [0.01, 0.03333333333333333, 0.3], "momenta": [0.95, null, 0.85], "train_losses": '
    '[2.302585092994046, "NaN", "Infinity"], "evals": [{"epoch": 1.0, "step": 2, "val_loss": '
    '1.9999999999999998, "val_metric": 0.30000000000000004, "train_loss": "-Infinity", '
    '"seconds": 0.125}, {"epoch": 1.5, "step": 3, "val_loss": "NaN", "val_metric": "NaN", '
    '"train_loss": "Infinity", "seconds": 1e-300}], "steps_per_epoch": 2, "metric_name": '
    '"accuracy", "higher_is_better": true, "diverged": true, "diverged_step": 2, '
    '"diverged_reason": "loss is nan", "stopped_reason": null, "seconds": 3.25, "meta": '
    '{"seed": 7, "note": "x"}, "collapsed_step": null}'
)
OLD_RANGE_TEST = (
    '{"lrs": [1e-05, 0.001, 0.1, 10.0], "losses": [2.3, 1.7000000000000002, "NaN", '
    '"Infinity"], "smoothed": [2.3, 2.24, "-Infinity", "NaN"], "suggestion": {"max_lr": 0.03, '
    '"min_lr": 0.003, "rule": "valley", "reason": "the valley at 0.03", "index": 1, "spread": '
    '[0.02, 0.04], "per_seed": [0.02, 0.04], "reliable": false}, "val_lrs": [0.001, 0.1], '
    '"val_losses": [1.9, "NaN"], "stop_step": 3, "stop_lr": 10.0, "stop_reason": "loss 4x its '
    'start", "mode": "exp", "start_lr": 1e-05, "end_lr": 10.0, "num_steps": 4, "smoothing": '
    '0.9, "seconds": 0.5, "repeats": 2, "seed_smoothed": [[2.3, "Infinity"], ["NaN", 1.1]], '
    '"meta": {"device": "cpu"}}'
)


def bits(values: Any) -> Any:
    """Every float of a nested structure as its 8 bytes, so NaN compares equal to NaN."""
    if isinstance(values, float):
        return struct.pack("<d", values)
    if isinstance(values, tuple | list):
        return [bits(v) for v in values]
    return values


def old_history() -> History:
    return History(
        lrs=(0.01, 0.1 / 3, 0.3),
        momenta=(0.95, None, 0.85),
        train_losses=(2.302585092994046, NAN, INF),
        evals=(
            EvalRecord(1.0, 2, 1.9999999999999998, 0.1 + 0.2, -INF, 0.125),
            EvalRecord(1.5, 3, NAN, NAN, INF, 1e-300),
        ),
        steps_per_epoch=2,
        metric_name="accuracy",
        diverged=True,
        diverged_step=2,
        diverged_reason="loss is nan",
        seconds=3.25,
        meta={"seed": 7, "note": "x"},
    )


def old_range_test() -> RangeTest:
    return RangeTest(
        lrs=(1e-5, 1e-3, 0.1, 10.0),
        losses=(2.3, 1.7000000000000002, NAN, INF),
        smoothed=(2.3, 2.24, -INF, NAN),
        suggestion=Suggestion(
            0.03, 0.003, "valley", "the valley at 0.03", 1, (0.02, 0.04), (0.02, 0.04), False
        ),
        val_lrs=(1e-3, 0.1),
        val_losses=(1.9, NAN),
        stop_step=3,
        stop_lr=10.0,
        stop_reason="loss 4x its start",
        num_steps=4,
        seconds=0.5,
        repeats=2,
        seed_smoothed=((2.3, INF), (NAN, 1.1)),
        meta={"device": "cpu"},
    )


def test_a_history_saved_before_the_helper_loads_bit_for_bit(tmp_path):
    path = tmp_path / "history.json"
    path.write_text(OLD_HISTORY)
    got, want = History.load(path), old_history()
    for name in ("lrs", "momenta", "train_losses"):
        assert bits(getattr(got, name)) == bits(getattr(want, name)), name
    for g, w in zip(got.evals, want.evals, strict=True):
        assert bits(list(vars(g).values())) == bits(list(vars(w).values()))
    assert got.meta == want.meta and got.diverged_reason == want.diverged_reason
    assert got.to_json() == OLD_HISTORY == want.to_json()
    got.save(tmp_path / "again.json")
    assert (tmp_path / "again.json").read_text() == OLD_HISTORY


def test_a_range_test_saved_before_the_helper_loads_bit_for_bit(tmp_path):
    path = tmp_path / "range_test.json"
    path.write_text(OLD_RANGE_TEST)
    got, want = RangeTest.load(path), old_range_test()
    for name in ("lrs", "losses", "smoothed", "val_lrs", "val_losses", "seed_smoothed"):
        assert bits(getattr(got, name)) == bits(getattr(want, name)), name
    assert got.suggestion == want.suggestion and got.stop_reason == want.stop_reason
    assert got.to_json() == OLD_RANGE_TEST == want.to_json()
    assert RangeTest.from_json(got.to_json()).to_json() == OLD_RANGE_TEST


def test_history_and_range_test_take_the_helper():
    assert issubclass(History, JsonRecord) and issubclass(RangeTest, JsonRecord)
    for cls in (History, RangeTest):
        for name in ("to_json", "from_json", "save", "load"):
            assert name not in vars(cls), f"{cls.__name__}.{name} is written out again"


def test_floats_are_encoded_and_decoded():
    assert [encode_float(x) for x in (1.5, None, INF, -INF)] == [1.5, None, "Infinity", "-Infinity"]
    assert encode_float(NAN) == "NaN"
    assert encode_floats((0.0, NAN)) == [0.0, "NaN"]
    assert decode_float("-Infinity") == -INF and decode_float(None) is None
    assert decode_float(2) == 2 and math.isnan(decode_float("NaN"))
    assert bits(decode_floats(encode_floats((1e-300, -0.0, INF, NAN)))) == bits(
        [1e-300, -0.0, INF, NAN]
    )


@dataclass(frozen=True)
class Point(JsonRecord):
    JSON_INDENT: ClassVar[int | None] = 1

    x: float
    label: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"x": encode_float(self.x), "label": self.label}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Point:
        return cls(decode_float(d["x"]), d["label"])


def test_a_record_class_gets_json_save_and_load(tmp_path):
    p = Point(-INF, "low")
    assert p.to_json() == json.dumps({"x": "-Infinity", "label": "low"}, indent=1)
    p.save(tmp_path / "p.json")
    assert Point.load(tmp_path / "p.json") == p
    assert Point.from_json(p.to_json()) == p
    assert [f.name for f in fields(Point)] == ["x", "label"]  # JSON_INDENT is no field


def test_a_non_finite_float_left_unencoded_is_refused():
    @dataclass(frozen=True)
    class Raw(JsonRecord):
        x: float

        def to_dict(self) -> dict[str, Any]:
            return {"x": self.x}

    with pytest.raises(ValueError):
        Raw(NAN).to_json()


def test_a_record_without_to_dict_says_so():
    class Bare(JsonRecord):
        pass

    with pytest.raises(NotImplementedError, match="Bare must define to_dict"):
        Bare().to_json()
    with pytest.raises(NotImplementedError, match="Bare must define from_dict"):
        Bare.from_json("{}")
