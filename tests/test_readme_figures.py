"""Every figure the README states about measurements is one docs/benchmarks.md carries
(issue 31: "no number in the README is missing from the page").

The README's opening paragraphs, its demo section and its Benchmarks section are read; every
number in them (integers, decimals, ranges' ends, percentages without the sign) must appear on
the page as written. Numbers that are not measurements are listed in `NOT_MEASURED` with why.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NUMBER = re.compile(r"(?<![\w.])(?:\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)(?![\w])")
"""A number as written: ``1,000`` (read as ``1000``), ``0.2345``, ``93``."""
SECTIONS = ("## What `make demo` prints", "## Benchmarks")
NOT_MEASURED = {
    "1803.09820",  # the report's arXiv number
    "2.13.0",  # the torch version pinned
    "3.10",  # the Python version needed
}


def readme_parts() -> str:
    """The README's text before its first section, and the sections of `SECTIONS`."""
    text = (ROOT / "README.md").read_text()
    parts = [text.split("\n## ", 1)[0]]
    for title in SECTIONS:
        start = text.index(title)
        end = text.find("\n## ", start + len(title))
        parts.append(text[start : end if end >= 0 else len(text)])
    return "\n".join(parts)


def numbers(text: str) -> set[str]:
    """Every number written in ``text`` (without code spans' commit hashes)."""
    text = re.sub(r"`[0-9a-f]{7,40}`", "", text)  # commits are named, not measured
    return {n.replace(",", "") for n in NUMBER.findall(text)} - NOT_MEASURED


def test_every_number_the_readme_states_is_on_the_benchmarks_page():
    page = (ROOT / "docs" / "benchmarks.md").read_text()
    on_page = {n.replace(",", "") for n in NUMBER.findall(page)}
    missing = sorted(numbers(readme_parts()) - on_page, key=float)
    assert not missing, f"README numbers missing from docs/benchmarks.md: {missing}"


def test_the_check_sees_a_number_the_page_lacks():
    assert numbers("took 93 s, `01ac5c1`, 0.2345, 1,000 and 1803.09820") == {
        "93",
        "0.2345",
        "1000",
    }
