"""Records that write themselves to JSON and read themselves back.

JSON has no NaN or infinity, so a non-finite float is written as the string ``"NaN"``,
``"Infinity"`` or ``"-Infinity"`` (`encode_float`) and read back as the float it was
(`decode_float`); finite numbers and None are written as they are. A record class defines
``to_dict`` (JSON-ready, its floats through `encode_float`) and the classmethod
``from_dict``, and takes `to_json`, `from_json`, `save` and `load` from `JsonRecord`. No torch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar

from disciplined.files import write_text_atomic

__all__ = ["JsonRecord", "decode_float", "decode_floats", "encode_float", "encode_floats"]

R = TypeVar("R", bound="JsonRecord")


def encode_float(x: float | None) -> float | str | None:
    """``x`` as JSON can hold it: a non-finite float as a string, anything else as it is."""
    if x is None or math.isfinite(x):
        return x
    return "NaN" if math.isnan(x) else ("Infinity" if x > 0 else "-Infinity")


def decode_float(x: float | str | None) -> float | None:
    """The float `encode_float` wrote: a string back to its float, anything else as it is."""
    return float(x) if isinstance(x, str) else x


def encode_floats(values: Iterable[float | None]) -> list[float | str | None]:
    """Each value through `encode_float`, as a list (a JSON array)."""
    return [encode_float(x) for x in values]


def decode_floats(values: Iterable[float | str | None]) -> tuple[float | None, ...]:
    """Each value through `decode_float`, as a tuple (a record's field)."""
    return tuple(decode_float(x) for x in values)


class JsonRecord:
    """What a record needs to be written to JSON and read back, given its ``to_dict`` and
    ``from_dict``: `to_json` / `from_json` (one JSON document, ``allow_nan=False``, so a
    non-finite float that ``to_dict`` did not encode is a `ValueError`, not invalid JSON),
    `save` (written whole or not at all, `disciplined.files.write_text_atomic`) and `load`.

    A frozen dataclass takes it as a base class; it adds no field. ``JSON_INDENT`` is the
    indent `to_json` writes with (None: one line).
    """

    JSON_INDENT: ClassVar[int | None] = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary; each record class defines its own."""
        raise NotImplementedError(f"{type(self).__name__} must define to_dict")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Self:
        """Rebuild the record from `to_dict` output; each record class defines its own."""
        raise NotImplementedError(f"{cls.__name__} must define from_dict")

    def to_json(self) -> str:
        """Serialize to a JSON string."""
        return json.dumps(self.to_dict(), indent=self.JSON_INDENT, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> Self:
        """Parse `to_json` output."""
        return cls.from_dict(json.loads(text))

    def save(self, path: str | Path) -> None:
        """Write the JSON to ``path``."""
        write_text_atomic(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """Read a record written by `save`."""
        return cls.from_json(Path(path).read_text())
