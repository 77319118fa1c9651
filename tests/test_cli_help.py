"""The command line's help is written for users (issue 34, item 5): every option of every
command says what it does, its default and, for a number, its range; the top-level help
says what the tool is for and where to start."""

import argparse
import re

import pytest

from disciplined.cli import build_parser

_NAMED_RANGES = {"positive_int": ">= 1", "range_steps_arg": ">= 2", "momentum_arg": "[0, 1)"}
"""The range each unnamed-interval type must state in its option's help."""


def _options() -> list[tuple[str, argparse.Action]]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return [
        (name, action)
        for name, command in sub.choices.items()
        for action in command._actions
        if not isinstance(action, argparse._HelpAction)
    ]


def _range(action: argparse.Action) -> str | None:
    """The range the option's type accepts, as its help must write it."""
    name = getattr(action.type, "__name__", "")
    found = re.search(r" in ([\[(].*[\])])$", name)
    if found:
        return re.sub(r"e\+0*", "e", found.group(1))
    return _NAMED_RANGES.get(name)


@pytest.mark.parametrize(
    ("command", "action"),
    _options(),
    ids=[f"{c} {'/'.join(a.option_strings) or a.dest}" for c, a in _options()],
)
def test_every_option_has_help_with_its_default_and_range(
    command: str, action: argparse.Action
) -> None:
    text = " ".join((action.help or "").split())
    assert text, f"{command} {action.option_strings or action.dest} has no help text"
    valued = action.option_strings and action.nargs != 0
    if valued:
        required = action.required and "required" in text
        assert required or re.search(r"\bdefault\b", text), text
    bound = _range(action)
    if bound is None:
        return
    huge = re.search(r"\d{10,}", bound)  # the seed's upper bound is no use to a reader
    assert (">= 0" in text) if huge else (bound in text), f"{bound!r} not in {text!r}"


def test_the_top_level_help_is_for_users() -> None:
    text = build_parser().format_help()
    assert "dispatch" not in text and "``" not in text
    for command in ("tune", "train", "find-lr", "sweep", "diagnose", "report"):
        assert command in text
    assert "disciplined tune --task" in text  # where to start
    assert "disciplined COMMAND --help" in text
