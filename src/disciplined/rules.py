"""`Rule`: a decision rule by name, the function that applies it, and its explanation.

A rule is defined beside the code that applies it (a study, the race, the recipe's final
steps); the `Decision` it makes records the rule's name, and the report reads the
explanation from the rule, not from a table of its own. No torch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Rule", "rule_named"]


@dataclass(frozen=True)
class Rule:
    """A named rule: ``function`` applies it (None for a rule only older results name);
    ``explanation`` says how to read it, in Smith's terms, as the report shows it. Its
    ``{name}`` fields are filled by the report with facts read off the decision that ran
    (the values tried, the runs, the change)."""

    name: str
    function: Callable[..., Any] | None = field(compare=False, repr=False)
    explanation: str = field(repr=False)

    def __str__(self) -> str:
        """The rule's name."""
        return self.name


def rule_named(rules: Iterable[Rule], name: str) -> Rule | None:
    """The rule among ``rules`` called ``name``, or None."""
    return next((r for r in rules if r.name == name), None)
