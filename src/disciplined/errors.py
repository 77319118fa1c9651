"""The one exception type that means "the user asked for something we cannot do"."""

from __future__ import annotations


class UsageError(ValueError):
    """Bad input from the user: an unknown task, a malformed value, a missing file.

    The command line turns it into one line on stderr and exit status 2. It subclasses
    ``ValueError`` so library callers can catch it the ordinary way.
    """
