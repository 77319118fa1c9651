"""How a record writes its numbers to JSON: JSON has no NaN or infinity, so a non-finite
float is written as the string ``"NaN"``, ``"Infinity"`` or ``"-Infinity"`` and read back
as the float it was (``float("Infinity")``); finite numbers and None are written as they
are. No torch."""

from __future__ import annotations

import math

__all__ = ["decode_float", "encode_float"]


def encode_float(x: float | None) -> float | str | None:
    """``x`` as JSON can hold it: a non-finite float as a string, anything else as it is."""
    if x is None or math.isfinite(x):
        return x
    return "NaN" if math.isnan(x) else ("Infinity" if x > 0 else "-Infinity")


def decode_float(x: float | str | None) -> float | None:
    """The float `encode_float` wrote: a string back to its float, anything else as it is."""
    return float(x) if isinstance(x, str) else x
